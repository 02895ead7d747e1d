//! The scenario file format.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows, in a sentence or two.
    pub description: String,
    /// Overrides of the relay configuration (any field of docs/configuration.md, merged at the top level). The
    /// switch table is made from `switches` unless given here.
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
    /// Relay limits that are not in the configuration file.
    #[serde(default)]
    pub tuning: TuningSpec,
    pub switches: Vec<SwitchSpec>,
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub monitors: Vec<MonitorSpec>,
    pub steps: Vec<StepEntry>,
    /// Check the explorer's invariants after every step (switches then tag their events with
    /// sequence numbers); the first violation ends the scenario and is recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invariants: bool,
}

impl Scenario {
    /// The scenario as a file the runner reads back.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&readable(self)).unwrap_or_default()
    }
}

/// A monitor program or call-accounting program on a monitor or export port.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    pub name: String,
    /// `sw` (switch messages), `su` (SMDR/UCD) or `export`.
    pub port: String,
    /// Sent in `P`; left out on an unprotected export port.
    #[serde(default)]
    pub password: Option<String>,
    /// false: does not read until a `resume` step.
    #[serde(default = "yes")]
    pub reads: bool,
}

/// A step written as a one-key mapping (`- connect: alex`) or a name (`- connect_all`).
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "serde_yaml::Value")]
pub struct StepEntry(pub Step);

impl Serialize for StepEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        readable(&self.0).serialize(s)
    }
}

impl Serialize for FaultEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        readable(&self.0).serialize(s)
    }
}

/// `value` in the readable form [`enum_from_yaml`] reads: every enum as a name or a one-key
/// mapping rather than a YAML tag, and fields that are not set left out.
fn readable<T: Serialize>(value: &T) -> serde_yaml::Value {
    fn untag(v: serde_yaml::Value) -> serde_yaml::Value {
        use serde_yaml::Value;
        match v {
            Value::Tagged(t) => {
                let name = t.tag.to_string().trim_start_matches('!').to_owned();
                let mut map = serde_yaml::Mapping::new();
                map.insert(Value::String(name), untag(t.value));
                Value::Mapping(map)
            }
            Value::Mapping(m) => Value::Mapping(
                m.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, untag(v)))
                    .collect(),
            ),
            Value::Sequence(items) => Value::Sequence(items.into_iter().map(untag).collect()),
            other => other,
        }
    }
    untag(serde_yaml::to_value(value).unwrap_or(serde_yaml::Value::Null))
}

impl TryFrom<serde_yaml::Value> for StepEntry {
    type Error = String;

    fn try_from(value: serde_yaml::Value) -> Result<StepEntry, String> {
        enum_from_yaml(value, "step").map(StepEntry)
    }
}

/// A fault written as a name (`drop`) or a one-key mapping (`refuse_opens: 2`).
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "serde_yaml::Value")]
pub struct FaultEntry(pub Fault);

impl TryFrom<serde_yaml::Value> for FaultEntry {
    type Error = String;

    fn try_from(value: serde_yaml::Value) -> Result<FaultEntry, String> {
        enum_from_yaml(value, "fault").map(FaultEntry)
    }
}

/// Reads an enum written as a plain name or as a one-key mapping (`name: argument`), the
/// readable forms, rather than serde_yaml's YAML tags.
fn enum_from_yaml<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    what: &str,
) -> Result<T, String> {
    use serde_yaml::value::{Tag, TaggedValue};
    let value = match value {
        serde_yaml::Value::Mapping(map) => {
            let mut entries = map.into_iter();
            let (Some((serde_yaml::Value::String(name), arg)), None) =
                (entries.next(), entries.next())
            else {
                return Err(format!(
                    "a {what} is a name or a one-key mapping such as `name: value`"
                ));
            };
            serde_yaml::Value::Tagged(Box::new(TaggedValue {
                tag: Tag::new(name),
                value: arg,
            }))
        }
        other => other,
    };
    serde_yaml::from_value(value).map_err(|e| format!("{what}: {e}"))
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TuningSpec {
    pub session_queue_bytes: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub monitor_queue_bytes: Option<usize>,
}

/// A simulated switch, reachable at 10.0.1.`no`:5002.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSpec {
    pub no: u8,
    /// `model` (default), `echo` or `silent`.
    #[serde(default)]
    pub answering: Option<String>,
    #[serde(default)]
    pub caps: Option<u8>,
    /// The switch's EasySet password (MMC 841); default "1234".
    #[serde(default)]
    pub password: Option<String>,
    /// The password in the relay's configuration; default "1234".
    #[serde(default)]
    pub relay_password: Option<String>,
    /// MMC 830: the only address allowed to open the link.
    #[serde(default)]
    pub cti_server: Option<IpAddr>,
    /// The switch's MAC, `02:00:00:00:00:01`; default 00:00:F0:5A:00:`no`.
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Keysets, e.g. `3201-3232`; default 2201-2232.
    #[serde(default)]
    pub keysets: Option<String>,
    /// false: the switch is on the network but not in the relay's configuration (a
    /// `reconfigure` step can add it).
    #[serde(default = "yes")]
    pub configured: bool,
}

/// A simulated application.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    pub address: IpAddr,
    pub protocol: u8,
    /// call, callplus, operator, opentsp, easyset, dataview, news, acd, messenger,
    /// bypass-dataview, callpro, callsim, other; or a number.
    pub product: String,
    /// `SWITCH:DEVICE` (switch 0 = the default switch).
    #[serde(default)]
    pub devices: Vec<String>,
    /// `licensed` or `bypass`; default: where the product belongs.
    #[serde(default)]
    pub port: Option<String>,
    /// false: the application does not read until a `resume` step (a slow application).
    #[serde(default = "yes")]
    pub reads: bool,
    /// true: the application asks for a resumable session, and each `connect` after the first
    /// comes back with its token and the last event number it saw on each switch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumable: bool,
    /// More than 1: that many applications `name#01`, `name#02`… from consecutive addresses
    /// starting at `address`; `connect: name` connects each in turn.
    #[serde(default = "one")]
    pub copies: u8,
}

fn one() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// One step of the timeline. Time advances only in `advance` (and by a few milliseconds while
/// each step settles).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Connect and identify.
    Connect(String),
    /// Connect a monitor (and send its password, if it has one).
    ConnectMonitor(String),
    /// Connect and send these bytes (hex) instead of an identify.
    ConnectRaw { app: String, hex: String },
    /// Close the application's connection.
    Disconnect(String),
    /// The application stops reading and answering but leaves its connection open, as when
    /// its host or the network between fails (a half-open connection).
    Hang(String),
    /// Close a monitor's (or collector's) connection.
    DisconnectMonitor(String),
    /// Start reading (an application declared with `reads: false`).
    Resume(String),
    /// A request: `fields` are str8 fields of the body.
    Request {
        app: String,
        #[serde(default)]
        switch: Option<u8>,
        code: String,
        invoke: u16,
        #[serde(default)]
        fields: Vec<String>,
    },
    /// Watch or stop watching a device.
    Device {
        app: String,
        add: bool,
        switch: u8,
        device: String,
    },
    /// Raw bytes (hex) from an application.
    Send { app: String, hex: String },
    /// A phone user acts on a switch: `code` K (dial `to`), N (answer), D (hang up), H, G, T, F.
    Phone {
        switch: u8,
        code: String,
        device: String,
        #[serde(default)]
        to: Option<String>,
    },
    /// An outside call arrives on a trunk.
    Incoming {
        switch: u8,
        trunk: String,
        device: String,
    },
    /// Register a licence through the relay (signed by the scenarios' test issuer).
    Licence(LicenceSpec),
    /// Write a licence key to the state directory, as `relay license register` does; the
    /// running relay picks it up within a second or two.
    LicenceFile(LicenceSpec),
    /// Move wall time forward by whole days (timers do not run through them).
    SkipDays(u64),
    /// A switch sends its UCD group statistics records.
    ReportUcd(u8),
    /// Change the relay's configuration while it runs (fields merged at the top level, as in
    /// `config`); a refused change is recorded in the transcript.
    Reconfigure(serde_yaml::Value),
    /// An operator's edit through the admin interface (fields merged at the top level, as in
    /// `config`): unlike a reload, switches that are down may be changed, disabled or
    /// deleted; a refused edit is recorded in the transcript.
    Edit(serde_yaml::Value),
    /// An operator's edit of one switch through the admin interface, made to the
    /// configuration in force (as `relay ctl switch set`, `add` and `delete` make it).
    EditSwitch { switch: u8, change: SwitchEdit },
    /// A switch sends `count` identical events about `device`.
    Burst {
        switch: u8,
        device: String,
        count: usize,
    },
    /// A switch misbehaves.
    Fault { switch: u8, fault: FaultEntry },
    /// An operator acts on a switch's link.
    Operator(OperatorAction),
    /// An operator connects every enabled switch.
    ConnectAll,
    /// An operator disconnects every switch (every session is closed, `X` reason 2).
    DisconnectAll,
    /// An operator closes the application's session (`X` reason 7).
    CloseSession(String),
    /// Let virtual time pass (e.g. 31s, 2m).
    Advance(String),
    /// Record the relay's status under this name.
    Checkpoint(String),
}

/// `connect: N`, `disconnect: N` or `abort: N` (the attempt in progress on switch N).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct OperatorAction {
    #[serde(default)]
    pub connect: Option<u8>,
    #[serde(default)]
    pub disconnect: Option<u8>,
    #[serde(default)]
    pub abort: Option<u8>,
}

/// A licence for the scenarios' test issuer to sign.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceSpec {
    pub serial: u32,
    /// `computer` (default) or `switch`.
    #[serde(default)]
    pub mac_type: Option<String>,
    /// Default: the scenario host's MAC, 02:00:00:00:00:01.
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub call: u16,
    #[serde(default)]
    pub opentsp: u16,
    #[serde(default)]
    pub operator: u16,
    #[serde(default)]
    pub easyset: bool,
    #[serde(default)]
    pub news: bool,
    #[serde(default)]
    pub dataview: bool,
    /// Last valid day, YYYY-MM-DD.
    #[serde(default)]
    pub expires: Option<String>,
    /// Flip one bit of the signed key (a forged key).
    #[serde(default)]
    pub forge: bool,
}

/// What an operator's edit does to one switch.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchEdit {
    Enable,
    Disable,
    Delete,
    /// Configured at the simulated switch's address (10.0.1.N, port 5002), enabled.
    Add,
    /// Its port moved between 5002 (where the simulated switch listens) and 5012 (where
    /// nothing does): an address typed wrong, and corrected by the next such edit.
    Readdress,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Close the link.
    Drop,
    /// Stop reading and writing, keep the connection open.
    HalfOpen,
    /// Send bytes that are not a frame.
    Garbage,
    /// Send a frame header with LEN 4095.
    Oversize,
    /// Refuse the next N opens.
    RefuseOpens(u32),
    /// Stop answering requests.
    Silent,
    /// Stop answering heartbeats.
    NoHeartbeats,
    /// Accept connections but never answer an open (attempts hang).
    MuteOpens,
    /// Answer opens again.
    AnswerOpens,
    /// Answer each request only after this long (e.g. 2s).
    SlowAnswers(String),
    /// Stop reading and writing for this long (e.g. 5s), then carry on.
    Stall(String),
    /// Behave again: answer through the call model, promptly; answer opens and heartbeats;
    /// refuse no opens.
    Heal,
}
