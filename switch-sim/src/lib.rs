//! A switch (MCP) emulator speaking the relay's wire protocol.
//!
//! Module map:
//! - [`calls`]: the call model: requests, events, SMDR and UCD records.
//! - [`load`]: load mode: events at a steady rate carrying their send time.
//! - [`smdr`]: the SMDR printer: native records per leg of every outside call.
//! - [`settings`]: what the switch is (model, MAC, caps, station table, passwords).
//! - [`switch`]: the listening switch, its CTI link handler and the control API
//!   (emit events, answer, inject faults, read what the relay sent).
//! - [`traffic`]: seeded live call traffic (phone users, trunk calls, UCD reports).

pub mod calls;
pub mod load;
pub mod settings;
pub mod smdr;
pub mod switch;
pub mod traffic;

pub use settings::{Answering, Settings};
pub use switch::SimSwitch;
