//! The wire protocol (docs/protocol.md) shared by the relay, the switch simulator and the
//! application simulators.
//!
//! - [`frame`]: LEN/KIND/CODE/INVOKE framing, checked before parsed; the per-connection reader.
//! - [`link`]: typed link-control (`L`) messages of every link.
//! - [`call`]: call-processing frames, relay-made answers, SWITCH byte insertion/stripping;
//!   [`events`]: the fields of the simulated switch's call events.
//! - [`monitor`]: the monitor ports' `M` frames.
//! - [`smdr`]: the switch's native SMDR record layout.
//! - [`product`]: application products and identify results.
//! - [`text`]: the byte-exact `str8` field, and reading a body field by field.
//! - [`date`]: calendar dates of records and licences.
//!
//! Nothing here touches a socket.

#![forbid(unsafe_code)]

mod byte_enum;
pub mod call;
pub mod date;
pub mod events;
pub mod frame;
pub mod link;
pub mod monitor;
pub mod product;
pub mod smdr;
pub mod text;

pub use call::{relay_result, CallMsg};
pub use frame::{Frame, FrameError, FrameReader, Kind, NO_INVOKE};
pub use link::{DeviceRef, LinkMsg, ResumeAsk, ResumeGrant, Station, StationKind, Token};
pub use monitor::MonitorMsg;
pub use product::{CloseReason, IdentifyResult, Port, Product};
pub use text::{str8_body, FieldReader, Str8};
