//! The CTI link relay: holds the CTI links to up to eight switches and serves every CTI
//! application on the LAN. This is the daemon as a library; the `relay` command (the
//! `relay-cli` crate) is its front-end. Protocol bytes are the `wire` crate's; the network is
//! reached through the `netseam` crate (real TCP, or an in-memory network).
//!
//! Module map, downhill from the switch to the applications:
//! - [`link`]: one switch link (open, station download, heartbeat, reading) and
//!   [`link::recovery`], the schedule of attempts and the operator's connect/disconnect/abort.
//! - [`hub`]: the state the links, sessions and ports share; [`hub::admission`] decides who
//!   may identify.
//! - [`session`]: one application connection; [`session::handle`] is what others see of it,
//!   [`session::fanout`] sends events to every session served a switch,
//!   [`session::outqueue`] bounds what waits for a slow one, [`session::invoke`] rewrites
//!   INVOKE and times answers out, [`session::routing`] says which switches it is served.
//! - [`ports`]: the monitor ports and the SMDR/UCD export port.
//! - [`spool`]: SMDR/UCD records made durable until a collector has them; [`calls`]: the
//!   call-record store (SQLite).
//! - [`licensing`]: licence keys, trial, entitlements, use, registration.
//! - [`notify`]: notifications and their texts in five languages.
//! - [`admin`]: the admin HTTP API ([`admin::contract`]: every body), metrics, web console.
//! - [`config`]: the configuration file and its rules; [`reconfigure`]: a live change,
//!   planned as a pure function; [`server`]: the running relay: listeners, supervisors,
//!   orderly stop.
//! - [`connection`]: what links and sessions do alike (heartbeat, silence, writer grace).
//! - [`status`]: the status view; [`stats`]: counters; [`clock`]: the wall clock;
//!   [`debug_log`]: the OSLn.LOG files, written through [`rotating`], which also writes the
//!   files the monitor programs save.

pub mod admin;
pub mod calls;
pub mod clock;
pub mod config;
pub(crate) mod connection;
pub mod debug_log;
pub mod hub;
pub mod licensing;
pub(crate) mod link;
pub mod notify;
pub mod ports;
pub(crate) mod reconfigure;
pub mod rotating;
pub mod server;
pub(crate) mod session;
pub mod spool;
pub(crate) mod stats;
pub(crate) mod status;

pub use config::Config;
pub use hub::Tuning;
pub use server::{Listeners, Relay, RelayParts};
