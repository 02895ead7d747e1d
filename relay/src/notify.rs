//! Notifications: what the relay tells its operator. Each is a typed [`Notice`] with a level
//! and, where it concerns one, a switch number; the newest `notification_lines` are kept and
//! live followers subscribe to a broadcast.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::clock::WallClock;
use crate::protocol::Product;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Fault,
}

/// Why a switch refused or failed a link attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkFailure {
    /// Could not connect (refused, unreachable, name not resolved).
    Dial(String),
    /// `o` result 1.
    Refused,
    /// `o` result 2: the switch's CTI server address (MMC 830) is not this host.
    AddressMismatch,
    /// `c` result 1: wrong EasySet password (MMC 841).
    WrongPassword,
    /// The attempt did not complete within 60 s.
    AttemptTimeout,
    /// The switch closed or broke the link during the attempt.
    Broken(String),
    /// The switch sent something the protocol does not allow.
    Protocol(String),
}

impl fmt::Display for LinkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkFailure::Dial(e) => write!(f, "cannot connect: {e}"),
            LinkFailure::Refused => f.write_str("the switch refused the CTI link"),
            LinkFailure::AddressMismatch => f.write_str(
                "the switch refused the CTI link: its CTI server address (MMC 830) does not match this host",
            ),
            LinkFailure::WrongPassword => f.write_str(
                "the switch rejected the EasySet password (MMC 841): correct easyset_password",
            ),
            LinkFailure::AttemptTimeout => {
                f.write_str("the switch did not complete the link within 60 s")
            }
            LinkFailure::Broken(e) => write!(f, "the link broke during set-up: {e}"),
            LinkFailure::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// Why an established link was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LossCause {
    Closed,
    Error(String),
    Protocol(String),
    Silent,
    /// The relay is stopping.
    Stopping,
    /// An operator disconnected it.
    Operator,
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossCause::Closed => f.write_str("the switch closed the link"),
            LossCause::Error(e) => write!(f, "link error: {e}"),
            LossCause::Protocol(e) => write!(f, "protocol error: {e}"),
            LossCause::Silent => f.write_str("no frame for 30 s"),
            LossCause::Stopping => f.write_str("the relay is stopping"),
            LossCause::Operator => f.write_str("disconnected by the operator"),
        }
    }
}

/// Every notification the relay emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    RelayStarted {
        version: &'static str,
    },
    RelayStopping,
    Connecting {
        switch: u8,
        address: String,
        port: u16,
    },
    SwitchConnected {
        switch: u8,
        address: String,
        port: u16,
    },
    Downloading {
        switch: u8,
    },
    AllServicesRunning,
    LinkAttemptFailed {
        switch: u8,
        failure: LinkFailure,
    },
    SwitchDisconnected {
        switch: u8,
        cause: LossCause,
    },
    SessionTooSlow {
        peer: SocketAddr,
        product: Product,
    },
    ListenFailed {
        what: &'static str,
        port: u16,
        error: String,
    },
    LicenceApplied {
        serial: u32,
        grants: String,
    },
    LicenceRefused {
        reason: String,
    },
    LicenceRemoved,
    RecoveryStarted {
        switch: u8,
        attempts: u32,
        cycle_minutes: u32,
    },
    RecoveryWaiting {
        switch: u8,
        minutes: u32,
    },
    RecoveryCompleted {
        switch: u8,
    },
    RecoveryExhausted {
        switch: u8,
        attempts: u32,
    },
    AttemptAborted {
        switch: u8,
    },
}

impl Notice {
    pub fn level(&self) -> Level {
        match self {
            Notice::SwitchDisconnected {
                cause: LossCause::Stopping | LossCause::Operator,
                ..
            } => Level::Info,
            Notice::RecoveryExhausted { .. } => Level::Fault,
            Notice::LinkAttemptFailed { .. }
            | Notice::SwitchDisconnected { .. }
            | Notice::SessionTooSlow { .. }
            | Notice::ListenFailed { .. }
            | Notice::LicenceRefused { .. } => Level::Fault,
            _ => Level::Info,
        }
    }

    pub fn switch(&self) -> Option<u8> {
        match self {
            Notice::Connecting { switch, .. }
            | Notice::SwitchConnected { switch, .. }
            | Notice::Downloading { switch }
            | Notice::LinkAttemptFailed { switch, .. }
            | Notice::SwitchDisconnected { switch, .. }
            | Notice::RecoveryStarted { switch, .. }
            | Notice::RecoveryWaiting { switch, .. }
            | Notice::RecoveryCompleted { switch }
            | Notice::RecoveryExhausted { switch, .. }
            | Notice::AttemptAborted { switch } => Some(*switch),
            _ => None,
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::RelayStarted { version } => write!(f, "CTI relay {version} started"),
            Notice::RelayStopping => f.write_str("CTI relay stopping: closing every session"),
            Notice::Connecting {
                switch,
                address,
                port,
            } => write!(f, "Connecting to switch {switch} [{address}, {port}]"),
            Notice::SwitchConnected {
                switch,
                address,
                port,
            } => write!(
                f,
                "Switch connection success [switch {switch}, {address}, {port}]"
            ),
            Notice::Downloading { .. } => {
                f.write_str("Downloading the switch configuration information")
            }
            Notice::AllServicesRunning => f.write_str("All services are running"),
            Notice::LinkAttemptFailed { switch, failure } => {
                write!(f, "Switch {switch} link attempt failed: {failure}")
            }
            Notice::SwitchDisconnected { switch, cause } => {
                write!(f, "Switch {switch} disconnected ({cause})")
            }
            Notice::SessionTooSlow { peer, product } => write!(
                f,
                "{product} session {peer} closed: it did not read its messages fast enough"
            ),
            Notice::ListenFailed { what, port, error } => {
                write!(f, "Cannot listen on the {what} port {port}: {error}")
            }
            Notice::LicenceApplied { serial, grants } => {
                write!(f, "Licence {serial} is in force: {grants}")
            }
            Notice::LicenceRefused { reason } => write!(
                f,
                "Licence key refused: {reason}; the previous licence state stays in force"
            ),
            Notice::LicenceRemoved => {
                f.write_str("The registered licence was removed; the trial terms apply")
            }
            Notice::RecoveryStarted {
                switch,
                attempts,
                cycle_minutes,
            } => write!(
                f,
                "Automatic link recovery started [switch {switch}]: up to {attempts} attempt(s), one every {cycle_minutes} minute(s)"
            ),
            Notice::RecoveryWaiting { switch, minutes } => write!(
                f,
                "Switch {switch} link will be reactivated after {minutes} minute(s)"
            ),
            Notice::RecoveryCompleted { switch } => {
                write!(f, "Automatic link recovery completed [switch {switch}]")
            }
            Notice::RecoveryExhausted { switch, attempts } => write!(
                f,
                "Automatic link recovery of switch {switch} gave up after {attempts} attempt(s): reconnect it when the switch is ready"
            ),
            Notice::AttemptAborted { switch } => {
                write!(f, "Link attempt to switch {switch} aborted by the operator")
            }
        }
    }
}

/// One kept notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub time_ms: u64,
    pub notice: Notice,
}

impl Entry {
    pub fn level(&self) -> Level {
        self.notice.level()
    }
}

/// The newest notifications and the live stream of new ones.
pub struct Notices {
    kept: Mutex<(u64, VecDeque<Entry>)>,
    capacity: usize,
    live: broadcast::Sender<Entry>,
    clock: Arc<dyn WallClock>,
}

impl Notices {
    pub fn new(capacity: usize, clock: Arc<dyn WallClock>) -> Notices {
        Notices {
            kept: Mutex::new((0, VecDeque::with_capacity(capacity.min(1024)))),
            capacity: capacity.max(1),
            live: broadcast::channel(1024).0,
            clock,
        }
    }

    pub fn emit(&self, notice: Notice) {
        match (notice.level(), notice.switch()) {
            (Level::Info, Some(switch)) => tracing::info!(switch, "{notice}"),
            (Level::Info, None) => tracing::info!("{notice}"),
            (Level::Fault, Some(switch)) => tracing::warn!(switch, "{notice}"),
            (Level::Fault, None) => tracing::warn!("{notice}"),
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.0 += 1;
        let entry = Entry {
            seq: kept.0,
            time_ms: self.clock.now_ms(),
            notice,
        };
        if kept.1.len() == self.capacity {
            kept.1.pop_front();
        }
        kept.1.push_back(entry.clone());
        drop(kept);
        // No follower is not an error.
        let _ = self.live.send(entry);
    }

    /// The kept notifications, oldest first.
    pub fn list(&self) -> Vec<Entry> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.1.iter().cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Entry> {
        self.live.subscribe()
    }
}
