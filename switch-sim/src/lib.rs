//! A switch (MCP) emulator speaking the relay's wire protocol.
//!
//! Module map:
//! - [`settings`]: what the switch is (model, MAC, caps, station table, passwords).
//! - [`switch`]: the listening switch, its CTI link handler and the control API
//!   (emit events, answer, inject faults, read what the relay sent).

pub mod settings;
pub mod switch;

pub use settings::{Answering, Settings};
pub use switch::SimSwitch;
