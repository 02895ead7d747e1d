//! Deterministic scenarios: the relay, simulated switches and simulated applications run in
//! one process on an in-memory network with a paused clock; every party's view is written to
//! a readable transcript.
//!
//! Module map:
//! - [`schema`]: the scenario file format (see `scenarios/README.md`).
//! - [`runner`]: builds the site and plays the steps.
//! - [`render`]: frames and notifications as transcript lines.

pub mod render;
pub mod runner;
pub mod schema;

pub use runner::{run_file, run_file_timed, run_scenario, run_scenario_timed};
