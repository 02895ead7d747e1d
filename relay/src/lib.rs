//! The CTI link relay: holds the CTI links to up to eight switches and serves every CTI
//! application on the LAN. This is the daemon as a library; the `relay` command (the
//! `relay-cli` crate) is its front-end. Protocol bytes are the `wire` crate's; the network is
//! reached through the `netseam` crate (real TCP, or an in-memory network).
//!
//! Module map, downhill from the switch to the applications (no module imports one that
//! imports it):
//! - [`link`]: one switch link (open, station download, heartbeat, reading) and its recovery
//!   schedule with the operator's connect/disconnect/abort.
//! - [`session`]: one application connection, and the fan-out of a switch's events to every
//!   session served it.
//! - [`hub`]: the state links, sessions and ports share: switch slots, the session registry
//!   and each session's handle, INVOKE maps, routing, admission, the monitors attached, the
//!   fence that keeps a shared site's links within this relay's lease.
//! - [`connection`]: what every connection does alike: the bounded output queue and its
//!   writer, heartbeat and silence, writer grace; [`tls`]: TLS on the relay's ports.
//! - [`ports`]: the monitor ports, the SMDR/UCD export port, the licence watch.
//! - [`bus`]: federation over NATS: this relay's switches published and served to other
//!   sites, and remote switches served here as if local; [`outbox`]: the bounded queue the
//!   links put their frames on for it.
//! - [`spool`]: SMDR/UCD records made durable until a collector has them; [`calls`]: the
//!   call-record store (SQLite) they also go to.
//! - [`licensing`]: licence keys, trial, entitlements, use.
//! - [`notify`]: notifications and their texts in five languages.
//! - [`admin`]: the admin HTTP API ([`admin::contract`]: every body), metrics, web console;
//!   [`gateway`]: the WebSocket/JSON gateway it serves at `/ws`.
//! - [`config`]: the configuration file and its rules, and [`config::InForce`], the validated
//!   configuration the relay runs on; [`reconfigure`]: a live change,
//!   planned as a pure function; [`server`]: the running relay: listeners, supervisors,
//!   the switch reconciler, the lease's loop, what tools and tests read of it, orderly stop.
//! - [`daemon`]: the composition root: the relay and its admin interface started together
//!   and stopped with one call (`relay run`, `relay demo` and the test kit start it).
//! - [`task`]: every task the relay starts, so that one relay's tasks can be held at once
//!   (the site explorer's stopped process).
//! - [`status`]: the status view; [`stats`]: counters; [`clock`]: the wall clock;
//!   [`debug_log`]: the OSLn.LOG files, written through [`rotating`], which also writes the
//!   files the monitor programs save.

pub mod admin;
pub mod bus;
pub mod calls;
pub mod clock;
pub mod config;
pub(crate) mod connection;
pub mod daemon;
pub mod debug_log;
pub mod gateway;
pub mod hub;
pub mod licensing;
pub(crate) mod link;
pub mod notify;
pub mod outbox;
pub mod ports;
pub(crate) mod reconfigure;
pub mod rotating;
pub mod server;
pub(crate) mod session;
pub mod spool;
pub(crate) mod stats;
pub(crate) mod status;
pub mod task;
pub mod tls;

pub use config::Config;
pub use daemon::{Daemon, DaemonError};
pub use hub::Tuning;
pub use server::{Listeners, Relay, RelayParts};
