//! The configuration file (docs/configuration.md): serde types with the binding field names and defaults,
//! and validation that reports every broken rule at once, each naming the field and value.
//! `load` reads a file whole or refuses it and writes one back atomically;
//! [`file_edit`] saves a change made through the admin interface into the operator's file,
//! keeping its comments and layout.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod api_schema;
pub mod file_edit;
mod in_force;
mod load;
mod switch_no;
mod validate;
pub mod web_origin;

pub use load::{backup_path, LoadError};

pub use in_force::InForce;
pub use switch_no::SwitchNo;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: Listen,
    pub switches: Vec<SwitchConfig>,
    pub default_switch: u8,
    pub options: Options,
    pub monitor: Monitor,
    pub export: Export,
    pub calls: Calls,
    pub resume: Resume,
    pub bus: Bus,
    pub tls: Tls,
    pub users: Vec<User>,
    pub access: Access,
    pub bypass_limits: BypassLimits,
    pub license: License,
    pub admin: Admin,
    #[schema(value_type = String)]
    pub state_dir: PathBuf,
    #[schema(value_type = String)]
    pub log_dir: PathBuf,
    pub log: Log,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: Listen::default(),
            switches: Vec::new(),
            default_switch: 1,
            options: Options::default(),
            monitor: Monitor::default(),
            export: Export::default(),
            calls: Calls::default(),
            resume: Resume::default(),
            bus: Bus::default(),
            tls: Tls::default(),
            users: Vec::new(),
            access: Access::default(),
            bypass_limits: BypassLimits::default(),
            license: License::default(),
            admin: Admin::default(),
            state_dir: PathBuf::from("./state"),
            log_dir: PathBuf::from("./log"),
            log: Log::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    #[schema(schema_with = api_schema::ip_address)]
    pub address: IpAddr,
    pub client_port: u16,
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            address: IpAddr::from([0, 0, 0, 0]),
            client_port: 6000,
        }
    }
}

impl Listen {
    /// The bypass port is always the client port + 500.
    pub fn bypass_port(&self) -> u32 {
        u32::from(self.client_port) + 500
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SwitchType {
    #[default]
    Officeserv,
    General,
}

impl std::fmt::Display for SwitchType {
    /// As the configuration file spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SwitchType::Officeserv => "officeserv",
            SwitchType::General => "general",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    #[schema(minimum = 1, maximum = 8)]
    pub no: u8,
    /// The switch's address; empty for a remote switch.
    #[serde(default)]
    pub address: String,
    #[serde(default = "default_switch_port")]
    #[schema(minimum = 1)]
    pub port: u16,
    #[serde(default)]
    #[schema(max_length = 255)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: SwitchType,
    #[serde(default)]
    #[schema(max_length = 255)]
    pub easyset_password: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A switch of another site, reached through the bus instead of dialled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSwitch>,
    /// The local address the link is dialled from: the one set as the switch's CTI server
    /// address (MMC 830), such as a floating address two relays of a site share. Unset: the
    /// host's routing chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = api_schema::ip_address_or_null)]
    pub source_address: Option<IpAddr>,
    /// The CTI link speaks TLS (a TLS terminator in front of the switch), whose certificate
    /// this authority (PEM) issued for the switch's address. Unset: clear text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tls_ca: Option<PathBuf>,
}

/// Where a switch's link comes from: dialled by this relay's site, or served from another
/// site's relay over the bus. The file keeps `address`/`port` and `remote` side by side; this
/// is what they mean together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchSource<'a> {
    Dial { address: &'a str, port: u16 },
    Remote(&'a RemoteSwitch),
}

impl SwitchConfig {
    /// Where this switch's link comes from: `remote` when given, else its address.
    pub fn source(&self) -> SwitchSource<'_> {
        match &self.remote {
            Some(remote) => SwitchSource::Remote(remote),
            None => SwitchSource::Dial {
                address: &self.address,
                port: self.port,
            },
        }
    }
}

/// A switch whose link another relay holds, at site `site` as its switch `no`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteSwitch {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub site: String,
    #[schema(minimum = 1, maximum = 8)]
    pub no: u8,
}

/// Federation over NATS: this relay's site name, and the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Bus {
    /// `nats://HOST:PORT`; unset: no bus.
    pub nats: Option<String>,
    /// This site's name in subjects: letters, digits, `-` and `_`.
    pub site: String,
    /// Two relays of the site share its switch links: only the holder of the site's lease (in
    /// the bus's key-value store) dials the switches; the other serves them through the bus and
    /// takes the lease, and the links, when the holder is gone.
    pub shared: bool,
    /// This relay's name among those sharing the site (letters, digits, `-` and `_`).
    pub node: String,
}

impl Bus {
    pub fn enabled(&self) -> bool {
        self.nats.is_some()
    }
}

/// Whether `name` may be a site name (one NATS subject token).
pub fn valid_site(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SwitchConfig {
    /// An enabled OfficeServ switch at `address:port` with the other fields at their defaults.
    pub fn new(no: u8, address: &str, port: u16, easyset_password: &str) -> SwitchConfig {
        SwitchConfig {
            no,
            address: address.to_owned(),
            port,
            name: format!("Switch {no}"),
            kind: SwitchType::Officeserv,
            easyset_password: easyset_password.to_owned(),
            enabled: true,
            remote: None,
            source_address: None,
            tls_ca: None,
        }
    }
}

fn default_switch_port() -> u16 {
    5002
}
fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Ko,
    De,
    It,
    Ru,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    pub auto_connect: bool,
    pub notification_lines: u32,
    pub call_plus: bool,
    pub debug_log: bool,
    pub language: Language,
    pub recovery: Recovery,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            auto_connect: true,
            notification_lines: 500,
            call_plus: false,
            debug_log: false,
            language: Language::En,
            recovery: Recovery::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Recovery {
    pub attempts: u32,
    pub cycle_minutes: u32,
}

impl Default for Recovery {
    fn default() -> Recovery {
        Recovery {
            attempts: 30,
            cycle_minutes: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Monitor {
    pub sw_port: Option<u16>,
    pub su_port: Option<u16>,
    pub password: Option<String>,
}

impl Default for Monitor {
    fn default() -> Monitor {
        Monitor {
            sw_port: Some(6001),
            su_port: Some(6002),
            password: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Export {
    pub port: Option<u16>,
    pub password_protected: bool,
    pub format: ExportFormat,
    pub spool: SpoolLimits,
}

/// How much of the records not yet delivered to a collector the spool keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolLimits {
    /// MiB of undelivered records, 1..=65536.
    pub max_mb: u32,
    /// Days an undelivered record is kept, 1..=3650.
    pub max_days: u32,
}

impl Default for SpoolLimits {
    fn default() -> SpoolLimits {
        SpoolLimits {
            max_mb: 256,
            max_days: 31,
        }
    }
}

/// The call-record store: every SMDR record, parsed, kept in `state_dir/calls.sqlite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Calls {
    /// Whether records are stored at all.
    pub store: bool,
    /// Days a stored record is kept, 1..=3650.
    pub keep_days: u32,
}

impl Default for Calls {
    fn default() -> Calls {
        Calls {
            store: true,
            keep_days: 400,
        }
    }
}

/// TLS on the relay's ports. Clear text stays the default: TLS is on only on the ports named.
/// The files are read at start and again on every reload (SIGHUP), without dropping a session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// The ports that speak TLS.
    pub ports: Vec<TlsPort>,
    /// The relay's certificate chain (PEM), its own certificate first.
    #[schema(value_type = Option<String>)]
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[schema(value_type = Option<String>)]
    pub key: Option<PathBuf>,
    /// Certificates of the authorities that issue client certificates (PEM). When set, a client
    /// on a TLS port must present a certificate one of them issued; its subject's common name
    /// or a DNS name among its alternative names may name a user entry (`users[].certificate`).
    #[schema(value_type = Option<String>)]
    pub client_ca: Option<PathBuf>,
}

impl Tls {
    pub fn on(&self, port: TlsPort) -> bool {
        self.ports.contains(&port)
    }
}

/// A port that may speak TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsPort {
    /// The client port and the bypass port.
    Client,
    /// Both monitor ports.
    Monitor,
    /// The SMDR/UCD export port.
    Export,
    /// The admin interface (API, console, metrics).
    Admin,
}

/// Session resume: how long a resumable session that lost its connection is kept, with its
/// licence use, and the events it misses, so that it can come back without losing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Resume {
    /// Seconds a session is kept after its connection ends, 0..=3600; 0 turns resume off.
    pub window_seconds: u32,
    /// MiB of events kept per switch for sessions to resume, 1..=1024; older events beyond it
    /// are dropped first, and a session that needed them is told how many it lost.
    pub max_mib: u32,
}

impl Default for Resume {
    fn default() -> Resume {
        Resume {
            window_seconds: 60,
            max_mib: 16,
        }
    }
}

impl Resume {
    pub fn enabled(&self) -> bool {
        self.window_seconds > 0
    }

    pub fn window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.window_seconds))
    }

    pub fn max_bytes(&self) -> usize {
        self.max_mib as usize * (1 << 20)
    }
}

/// What the export port sends (docs/protocol.md §6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// The switch's own record stream: each record's text, then one NUL.
    #[default]
    Native,
    /// Every `S` and `U` frame byte for byte.
    Frames,
}

impl Default for Export {
    fn default() -> Export {
        Export {
            port: Some(6003),
            password_protected: false,
            format: ExportFormat::Native,
            spool: SpoolLimits::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The address the user's applications connect from; may be empty when `certificate`
    /// names the user.
    #[serde(default)]
    #[schema(schema_with = api_schema::ip_address_or_empty)]
    pub ip: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub info: String,
    #[serde(default)]
    #[schema(schema_with = api_schema::switch_numbers)]
    pub switches: Vec<u8>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 8)]
    pub default_switch: Option<u8>,
    #[serde(default)]
    pub filtering: bool,
    /// On the TLS ports with client certificates (`tls.client_ca`): the name in the user's
    /// certificate (its subject's common name, or a DNS name among its alternative names).
    /// A session presenting it is this user, from whatever address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub certificate: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Access {
    pub allow_unregistered: bool,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            allow_unregistered: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BypassLimits {
    pub acd: u32,
    pub messenger: u32,
    pub dataview: u32,
    pub callpro: u32,
    pub callsim: u32,
    pub other: u32,
}

impl Default for BypassLimits {
    fn default() -> BypassLimits {
        BypassLimits {
            acd: 1,
            messenger: 8,
            dataview: 1,
            callpro: 8,
            callsim: 8,
            other: 8,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct License {
    pub issuer_keys: Vec<String>,
    pub host_macs: Option<Vec<String>>,
}

/// How `relay run` writes its log to standard error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
}

/// `text`: a line for people; `json`: one JSON object a line, for log shippers (journald,
/// Loki, Elastic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    #[schema(schema_with = api_schema::ip_address)]
    pub address: IpAddr,
    pub port: u16,
    /// The bearer token every API request must carry. `None`: the relay makes one at first
    /// start and keeps it in `state_dir/admin.token` (see [`crate::admin::token`]).
    pub token: Option<String>,
    /// `false` turns the token off; allowed on a loopback address only.
    pub require_token: bool,
    /// Host names, besides `localhost`, loopback addresses and the address a client dialled,
    /// that a request's `Host` header may carry (a name in DNS for this host).
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`), besides the console's own, whose pages may change
    /// anything or open `/ws`.
    pub allowed_origins: Vec<String>,
    /// The largest HTTP request body and the largest gateway message, in KiB.
    pub max_message_kib: u32,
}

impl Default for Admin {
    fn default() -> Admin {
        Admin {
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            token: None,
            require_token: true,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_message_kib: 128,
        }
    }
}

impl Admin {
    /// [`Admin::max_message_kib`] in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_kib as usize * 1024
    }
}

/// One broken rule: the field (a path such as `switches[1].address`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl Config {
    pub fn switch(&self, no: u8) -> Option<&SwitchConfig> {
        self.switches.iter().find(|s| s.no == no)
    }
}

/// Parses `AA:BB:CC:DD:EE:FF` (or with `-`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}
