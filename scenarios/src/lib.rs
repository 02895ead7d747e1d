//! Deterministic scenarios: the relay, simulated switches and simulated applications run in
//! one process on an in-memory network with a paused clock; every party's view is written to
//! a readable transcript.
//!
//! Module map:
//! - [`schema`]: the scenario file format (see `scenarios/README.md`).
//! - [`runner`]: builds the site (`runner/build.rs`), opens its connections
//!   (`runner/connect.rs`), plays each step (`runner/steps.rs`, one function per step) and
//!   records what every party received (`runner/record.rs`).
//! - [`render`]: frames and notifications as transcript lines.
//! - [`observe`]: what each application did and received, as data, and the view of a site
//!   the checker is given; [`invariants`]: what every history must keep, checked after every
//!   step (it reads that view, never the runner).
//! - [`world`]: random worlds made from a seed; [`explore`]: plays them and shrinks a
//!   violation to a scenario the runner replays (the `explore` binary).
//! - [`runtime`]: the single-threaded, paused-clock, seeded runtime everything plays on.
//! - [`site`]: worlds of a site two relays share over a bus, with bus and relay faults and
//!   their own invariants (the `explore-site` binary).
//! - [`watchdog`]: both explorers' report of a world that never ends.

pub mod explore;
pub mod invariants;
pub mod observe;
pub mod render;
pub mod runner;
pub mod runtime;
pub mod schema;
pub mod site;
pub mod watchdog;
pub mod world;

pub use runner::{play_checked, run_file, run_file_timed, run_scenario, run_scenario_timed};
