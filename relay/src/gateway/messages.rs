//! The gateway's JSON messages, one per WebSocket text message, tagged by `type`. These types
//! are the contract: the gateway, its tests and Rust clients use them, and the JSON Schema
//! (`docs/gateway.schema.json`) is made from them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an application sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToRelay {
    /// The first message, and only then: who the application is (as `I` on the client port).
    Identify(Identify),
    /// A request to a switch. Its one answer carries the same `id`.
    Request(Request),
    /// Adds or removes a watched device.
    Device(DeviceChange),
}

/// `identify`: who the application is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identify {
    /// `call`, `callplus`, `operator`, `opentsp`, `easyset`, `dataview`, `news`, or a
    /// bypass product: `acd`, `messenger`, `bypass-dataview`, `callpro`, `callsim`, `other`.
    pub product: String,
    /// 3 (every served switch, events name theirs; the default) or 2 (one switch).
    #[serde(default = "protocol_3")]
    pub protocol: u8,
    /// The application's name, as the status view shows it.
    #[serde(default)]
    pub name: String,
    /// Devices to receive the events of (a filtering user's session receives only those).
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Events that come together arrive as one `events` message (fewer messages for a busy
    /// tab); false or absent: one `event` message each.
    #[serde(default)]
    pub batch: bool,
}

/// `request`: a request to a switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Any JSON value the application chooses, returned in the answer.
    pub id: serde_json::Value,
    /// The switch, 1..=8 (0 or absent: the session's default switch; a protocol-2 session
    /// has only that one).
    #[serde(default)]
    #[schemars(range(max = 8))]
    pub switch: u8,
    /// The request code, one character (`K` make call, `N` answer, `D` clear, …).
    pub code: String,
    /// The body as `str8` fields, in order (`["2201", "2202"]`)…
    #[serde(default)]
    pub fields: Vec<String>,
    /// …or as hex, when the body is not text fields.
    #[serde(default)]
    pub body: Option<String>,
}

/// `device`: adds or removes a watched device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceChange {
    pub add: bool,
    /// 1..=8, or 0 (absent): the session's default switch.
    #[serde(default)]
    #[schemars(range(max = 8))]
    pub switch: u8,
    pub device: String,
}

impl ToRelay {
    /// The value of `type` each kind of message carries.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToRelay::Identify(_) => "identify",
            ToRelay::Request(_) => "request",
            ToRelay::Device(_) => "device",
        }
    }
}

fn protocol_3() -> u8 {
    3
}

/// A device on a switch (0 or absent: the default switch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    #[serde(default)]
    #[schemars(range(max = 8))]
    pub switch: u8,
    pub device: String,
}

/// What the relay sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromRelay {
    /// The answer to `identify`: result 0 and the switches served, or the refusal (the
    /// connection then closes).
    Identified {
        result: u8,
        /// What the result means (`accepted`, `no licence available`, …).
        reason: String,
        switches: Vec<SwitchState>,
    },
    /// A call event of a served switch.
    Event(Event),
    /// Events that came together, in order, to a session identified with `batch`: up to
    /// 64 KiB of them in one message, the rest in the next.
    Events {
        events: Vec<Event>,
        /// How many `events` there are.
        count: usize,
    },
    /// The one answer to a request.
    Answer {
        id: serde_json::Value,
        switch: u8,
        code: String,
        /// The body's first byte: 0 done; `0xE0` the switch is not connected, …
        result: u8,
        body: String,
    },
    /// A served switch went down or came back.
    Switch { switch: u8, up: bool },
    /// The result of a `device` message: 0 done, 1 refused.
    Device { result: u8 },
    /// The relay closes the session (`X`): the reason's number and text.
    Close { reason: u8, text: String },
    /// A message the relay could not take; the session goes on.
    Error {
        error: String,
        /// The field that is wrong, when one is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

/// A call event of a served switch (an `event` message, or an element of `events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub switch: u8,
    /// One character.
    pub code: String,
    /// The device the event concerns (the body's first field).
    pub device: String,
    /// When the relay first passed it on to a tab (Unix milliseconds; every tab that gets
    /// it within 50 ms is given the same).
    pub time_ms: u64,
    /// The whole body, hex.
    pub body: String,
    /// The body's fields, for the events the simulated switch sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<EventFields>,
}

/// The most text of events one `events` message carries (more go in the next one).
pub const BATCH_BYTES: usize = 64 << 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SwitchState {
    pub switch: u8,
    pub up: bool,
}

/// The fields of a call event in the simulated switch's convention (`wire::events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventFields {
    /// `ringing`, `dialling`, `established`, `cleared`, `held`, `retrieved`, `transferred`,
    /// `forward changed` or `device state`.
    pub name: String,
    pub call: u16,
    pub other: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The JSON Schema of a message either way, as `docs/gateway.schema.json` holds it.
pub fn schema() -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let to = generator.subschema_for::<ToRelay>();
    let from = generator.subschema_for::<FromRelay>();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "CTI relay WebSocket gateway (/ws)",
        "description": "One JSON object per WebSocket text message: an application sends ToRelay messages (identify first) and receives FromRelay messages.",
        "anyOf": [to, from],
        "$defs": generator.take_definitions(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/gateway.schema.json` is made from these types: `UPDATE_SCHEMA=1 cargo test -p
    /// relay --lib gateway` writes it again after a change.
    #[test]
    fn the_schema_file_is_made_from_these_types() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gateway.schema.json");
        let made = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &made).unwrap();
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            kept == made,
            "{} is not what the message types make: run UPDATE_SCHEMA=1 cargo test -p relay --lib gateway",
            path.display()
        );
    }

    #[test]
    fn messages_read_and_write_as_documented() {
        let m: ToRelay = serde_json::from_str(
            r#"{"type":"identify","product":"call","devices":[{"switch":1,"device":"2201"}]}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            ToRelay::Identify(Identify {
                product: "call".into(),
                protocol: 3,
                name: String::new(),
                devices: vec![Device {
                    switch: 1,
                    device: "2201".into()
                }],
                batch: false,
            })
        );
        assert_eq!(
            serde_json::to_string(&FromRelay::Switch {
                switch: 2,
                up: false
            })
            .unwrap(),
            r#"{"type":"switch","switch":2,"up":false}"#
        );
    }
}
