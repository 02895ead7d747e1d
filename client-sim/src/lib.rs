//! Application simulators: connect as any product over protocol 2 or 3, from a chosen source
//! address, identify, send requests, and read back every frame in order.
//!
//! Module map:
//! - [`app`]: one simulated application connection.
//! - [`describe`]: frames rendered as readable one-line text (for logs and transcripts).
//! - [`interactive`]: one verbose session printing every frame.
//! - [`load`]: load mode: many sessions reporting events/s and latency each second.
//! - [`soak`]: the real-time soak: its own switches, living applications, link faults and
//!   the explorer's invariants, reported once a minute.

pub mod app;
pub mod describe;
pub mod interactive;
pub mod load;
pub mod soak;

pub use app::{AppIdentity, Identified, SimApp};
