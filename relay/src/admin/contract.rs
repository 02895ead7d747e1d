//! The admin API's contract: every request and reply body, with the JSON's field names. The
//! API serves these types, `relay ctl` and the tests read them, so a renamed field breaks the
//! build instead of printing nothing.
//!
//! | route | reply |
//! |---|---|
//! | `GET /api/status` | [`StatusReply`] |
//! | `GET /api/sessions` | `Vec<`[`SessionStatus`]`>` |
//! | `GET /api/license` | [`LicenceStatus`] |
//! | `POST /api/license` ([`LicenceKey`]) | [`LicenceRegistered`] |
//! | `GET /api/config` | [`crate::Config`] (passwords masked) |
//! | `POST/PUT/DELETE /api/switches…`, `…/api/users…` | [`Changed`] |
//! | `GET /api/notifications`, each `data:` of `…/live` | [`Notification`] |
//! | `GET /api/calls` ([`CallQuery`]) | [`CallPage`] |
//! | `GET /api/audit?limit=N` | `Vec<`[`AuditEntry`]`>`, oldest first |
//! | `GET /api/openapi.json` | the OpenAPI 3.1 document of all of these ([`super::openapi`]) |
//! | any refusal | [`ErrorReply`] |

use serde::{Deserialize, Serialize};

pub use crate::calls::{CallPage, CallQuery, CallRecord};
pub use crate::licensing::{BypassUse, LicenceStatus, ProductUse};
pub use crate::notify::Level;
pub use crate::status::{SessionStatus, Status, SwitchStatus};

/// `GET /api/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusReply {
    pub status: Status,
    pub monitors: Monitors,
    pub export_spool: SpoolStatus,
}

/// Monitor and export connections attached now, and the ports they use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Monitors {
    pub switch_messages: usize,
    pub smdr_ucd: usize,
    pub export: usize,
    pub ports: MonitorPorts,
    /// Whether the monitor ports ask for a password.
    pub password: bool,
}

/// The monitor and export ports; `None` when the port is off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MonitorPorts {
    pub switch_messages: Option<u16>,
    pub smdr_ucd: Option<u16>,
    pub export: Option<u16>,
}

/// What waits in the export spool, and what it has done since the relay started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpoolStatus {
    pub pending: u64,
    pub pending_bytes: u64,
    pub spooled: u64,
    pub exported: u64,
    pub dropped: u64,
}

/// `POST /api/license`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenceKey {
    pub key: String,
}

/// The licence a registration put in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LicenceRegistered {
    pub serial: u32,
    /// What it grants, in words.
    pub grants: String,
}

/// A configuration change that was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Changed {
    pub applied: bool,
    /// Whether it was written back to the configuration file.
    pub saved: bool,
    /// Switches the change added, which the relay now dials.
    pub switches_added: Vec<u8>,
}

/// One notification, in the relay's configured language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    pub seq: u64,
    pub time_ms: u64,
    pub level: Level,
    pub switch: Option<u8>,
    pub text: String,
}

/// Why a request was refused: the first or only message, the field and value concerned, and
/// every broken rule when there are several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorReply {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// One broken rule: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl ErrorReply {
    /// One line per error: the message, then the field it concerns in parentheses.
    pub fn lines(&self) -> String {
        let line = |message: &str, field: Option<&str>| match field {
            Some(f) => format!("{message} ({f})"),
            None => message.to_owned(),
        };
        if self.errors.is_empty() {
            return line(&self.error, self.field.as_deref());
        }
        self.errors
            .iter()
            .map(|e| line(&e.message, Some(&e.field)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One line of the audit log (`log_dir/audit.log`): a change made through the admin
/// interface, or a reload of the configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When (Unix milliseconds) and the same as RFC 3339 text, UTC.
    pub time_ms: u64,
    pub time: String,
    pub who: AuditWho,
    /// The request (`POST /api/switches/2/disconnect`) or `reload`.
    pub what: String,
    /// The request body, passwords and keys masked, when it was JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// The HTTP status answered (or 200/422 for a reload: applied or refused).
    pub status: u16,
    /// Why it was refused, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditWho {
    /// `token`, `certificate`, `none` (no token asked), `no valid token` (refused) or
    /// `signal` (SIGHUP).
    pub by: String,
    /// The client's address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The name of the client certificate presented, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}
