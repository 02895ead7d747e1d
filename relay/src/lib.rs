//! The CTI link relay: holds the CTI links to up to eight switches and serves every CTI
//! application on the LAN. This is the daemon as a library; the `relay` command (the
//! `relay-cli` crate) is its front-end.
//!
//! Module map:
//! - [`admin`]: the admin HTTP API, Prometheus metrics and the web console.
//! - [`protocol`]: the wire protocol (the `wire` crate: framing, link messages, SWITCH byte).
//! - [`debug_log`]: the rotating OSLn.LOG files, written off the hot path.
//! - [`config`]: the configuration file, its defaults and every validation rule.
//! - [`net`]: the seam to the network (real TCP, or a simulated network).
//! - [`clock`]: the wall clock the relay is handed.
//! - [`server`]: the running relay: listeners, switch supervisors, orderly stop;
//!   [`reconfigure`]: a live configuration change planned as a pure function.
//! - [`hub`]: shared state, admission, consequences of a link going up or down.
//! - [`routing`]: which switches a session is served.
//! - [`switch_link`]: one switch link: open, station download, heartbeat, reading.
//! - [`recovery`]: the schedule of attempts and the operator's connect/disconnect/abort.
//! - [`fanout`]: events to every session served the switch, encoded once per form.
//! - [`invoke`]: INVOKE rewriting and the answer timeout.
//! - [`licensing`]: licence keys, trial, entitlements; [`licence_watch`]: registration.
//! - [`session`]: one application connection; [`session_handle`]: what others see of it.
//! - [`outqueue`]: bounded output queues and their coalescing writers.
//! - [`spool`]: SMDR/UCD records made durable and kept until a collector has them;
//!   [`calls`]: the call-record store (SQLite) behind `GET /api/calls`.
//! - [`export`]: the SMDR/UCD export port, served from the spool.
//! - [`monitor`]: monitor ports.
//! - [`notify`]: notifications, whose texts in five languages are in [`catalog`]; [`status`]: the status view; [`stats`]: counters.

/// The wire protocol (the `wire` crate), under the name the relay's modules use.
pub use wire as protocol;

pub mod calls;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod debug_log;
pub mod export;
pub mod fanout;
pub mod hub;
pub mod invoke;
pub mod licence_watch;
pub mod licensing;
/// The network seam (the `netseam` crate).
pub use netseam as net;

pub mod admin;
pub mod monitor;
pub mod notify;
pub mod outqueue;
pub mod reconfigure;
pub mod recovery;
pub mod routing;
pub mod server;
pub mod session;
pub mod session_handle;
pub mod spool;
pub mod stats;
pub mod status;
pub mod switch_link;

pub use config::Config;
pub use hub::Tuning;
pub use server::{Listeners, Relay, RelayParts};
