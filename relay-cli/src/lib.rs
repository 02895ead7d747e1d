//! The `relay` command's front-ends, on top of the relay library.
//!
//! Module map:
//! - [`ctl`]: `relay ctl`, the admin API's command-line client.
//! - [`license`]: `relay license …` (`relay licence …` is accepted too): the operator's and the
//!   issuer's licence tools.
//! - [`monitor`]: `relay monitor sw|su`, and [`monitor_files`]: the rotating files it saves.
//! - [`demo`]: `relay demo`, the relay with simulated switches and applications.
//! - [`manual`]: `relay man DIR`, the manual pages.
//!
//! `main.rs` parses the command line and runs one of these, or the relay itself.

pub mod ctl;
pub mod demo;
pub mod license;
pub mod manual;
pub mod monitor;
pub mod monitor_files;
