//! Notifications: what the relay tells its operator. Each is a typed [`Notice`] with a level
//! and, where it concerns one, a switch number; the newest `notification_lines` are kept and
//! live followers subscribe to a broadcast.

pub mod catalog;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::clock::WallClock;
use wire::Product;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Fault,
}

/// Why a switch refused or failed a link attempt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// The English text (see [`crate::notify::catalog`] for every language).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::notify::catalog::failure(
            self,
            crate::config::Language::En,
        ))
    }
}

/// Why an established link was lost.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossCause {
    Closed,
    Error(String),
    Protocol(String),
    Silent,
    /// The relay is stopping.
    Stopping,
    /// An operator disconnected it.
    Operator,
    /// A remote switch: its site says its link is down.
    SiteDown,
    /// A remote switch: its site (its relay, or the bus) has fallen silent.
    SiteSilent,
}

impl fmt::Display for LossCause {
    /// The English text (see [`crate::notify::catalog`] for every language).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::notify::catalog::cause(
            self,
            crate::config::Language::En,
        ))
    }
}

/// `$found` with `$switch` bound to the switch field of `$notice` (by reference, shared or
/// mutable as `$notice` is), or `$none` for a notice of no switch: the one list of the
/// notices about a switch.
macro_rules! with_switch {
    ($notice:expr, $switch:ident => $found:expr, $none:expr) => {
        match $notice {
            Notice::Connecting {
                switch: $switch, ..
            }
            | Notice::SwitchConnected {
                switch: $switch, ..
            }
            | Notice::Downloading { switch: $switch }
            | Notice::LinkAttemptFailed {
                switch: $switch, ..
            }
            | Notice::SwitchDisconnected {
                switch: $switch, ..
            }
            | Notice::RecoveryStarted {
                switch: $switch, ..
            }
            | Notice::RecoveryWaiting {
                switch: $switch, ..
            }
            | Notice::RecoveryCompleted { switch: $switch }
            | Notice::RecoveryExhausted {
                switch: $switch, ..
            }
            | Notice::AttemptAborted { switch: $switch } => $found,
            _ => $none,
        }
    };
}

/// Every notification the relay emits. The notices of a switch cross the bus as JSON (see
/// [`crate::bus`]); the others never leave the relay (`serde(skip)`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    #[serde(skip)]
    RelayStarted {
        version: String,
    },
    #[serde(skip)]
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
    #[serde(skip)]
    SessionTooSlow {
        peer: SocketAddr,
        product: Product,
    },
    #[serde(skip)]
    ListenFailed {
        what: String,
        port: u16,
        error: String,
    },
    LicenceApplied {
        serial: u32,
        grants: String,
    },
    /// A switch-bound key waits for its switch before it replaces the licence in force.
    LicenceWaiting {
        serial: u32,
        mac: String,
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
    ConfigReloaded {
        added_switches: Vec<u8>,
    },
    ConfigReloadRefused {
        reason: String,
    },
    /// Undelivered SMDR/UCD records removed from the export spool by retention.
    #[serde(skip)]
    SpoolDropped {
        count: u64,
        reason: crate::spool::DropReason,
    },
    /// The export spool could not write or sync its journal.
    SpoolWriteFailed {
        error: String,
    },
    /// A notice of a switch of another site (or of this site's other relay), as that relay
    /// emitted it, with `notice`'s switch number made this relay's (`switch`).
    #[serde(skip)]
    AtSite {
        site: String,
        /// The switch's number at its site.
        remote: u8,
        notice: Box<Notice>,
    },
    /// The other relay of a shared site changed the switches or users through its admin
    /// interface, and this relay applied the change (and saved it when it has a file).
    #[serde(skip)]
    PeerConfigApplied {
        node: String,
    },
    /// The change of the other relay of a shared site breaks a rule here; this relay keeps
    /// its configuration.
    #[serde(skip)]
    PeerConfigRefused {
        node: String,
        reason: String,
    },
    /// A change made here could not be passed to the other relay of the shared site yet;
    /// it is retried every second.
    #[serde(skip)]
    PeerConfigNotPassed {
        error: String,
    },
}

impl Notice {
    pub fn level(&self) -> Level {
        match self {
            Notice::SwitchDisconnected {
                cause: LossCause::Stopping | LossCause::Operator,
                ..
            } => Level::Info,
            Notice::AtSite { notice, .. } => notice.level(),
            Notice::RecoveryExhausted { .. }
            | Notice::ConfigReloadRefused { .. }
            | Notice::PeerConfigRefused { .. }
            | Notice::PeerConfigNotPassed { .. } => Level::Fault,
            Notice::LinkAttemptFailed { .. }
            | Notice::SwitchDisconnected { .. }
            | Notice::SessionTooSlow { .. }
            | Notice::ListenFailed { .. }
            | Notice::LicenceRefused { .. }
            | Notice::LicenceWaiting { .. }
            | Notice::SpoolDropped { .. }
            | Notice::SpoolWriteFailed { .. } => Level::Fault,
            _ => Level::Info,
        }
    }

    pub fn switch(&self) -> Option<u8> {
        match self {
            Notice::AtSite { notice, .. } => notice.switch(),
            other => with_switch!(other, switch => Some(*switch), None),
        }
    }

    /// `self` about switch `no` instead (a notice of no switch stays as it is).
    pub fn renumbered(mut self, no: u8) -> Notice {
        match &mut self {
            Notice::AtSite { notice, .. } => **notice = notice.as_ref().clone().renumbered(no),
            other => with_switch!(other, switch => *switch = no, ()),
        }
        self
    }
}

impl fmt::Display for Notice {
    /// The English text (see [`crate::notify::catalog`] for every language).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::notify::catalog::notice(
            self,
            crate::config::Language::En,
        ))
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

    /// The text in `lang`.
    pub fn text(&self, lang: crate::config::Language) -> String {
        crate::notify::catalog::notice(&self.notice, lang)
    }
}

/// Notifications a live follower may fall behind by before it skips ahead (what it skipped
/// stays in the kept list). Every slot holds a notification once that many have been sent, so
/// this is memory the relay fills in its first hours and keeps.
const LIVE_BACKLOG: usize = 256;

/// The newest notifications and the live stream of new ones.
pub struct Notices {
    kept: Mutex<(u64, VecDeque<Entry>)>,
    capacity: std::sync::atomic::AtomicUsize,
    live: broadcast::Sender<Entry>,
    clock: Arc<dyn WallClock>,
}

impl Notices {
    pub fn new(capacity: usize, clock: Arc<dyn WallClock>) -> Notices {
        Notices {
            kept: Mutex::new((0, VecDeque::with_capacity(capacity.min(1024)))),
            capacity: std::sync::atomic::AtomicUsize::new(capacity.max(1)),
            live: broadcast::channel(LIVE_BACKLOG).0,
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
        let capacity = self.capacity.load(std::sync::atomic::Ordering::Relaxed);
        while kept.1.len() >= capacity {
            kept.1.pop_front();
        }
        kept.1.push_back(entry.clone());
        drop(kept);
        // No follower is not an error.
        let _ = self.live.send(entry);
    }

    /// Keeps at most `lines` from now on (the oldest beyond it are dropped at once).
    pub fn set_capacity(&self, lines: usize) {
        let lines = lines.max(1);
        self.capacity
            .store(lines, std::sync::atomic::Ordering::Relaxed);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        while kept.1.len() > lines {
            kept.1.pop_front();
        }
    }

    /// The kept notifications, oldest first.
    pub fn list(&self) -> Vec<Entry> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.1.iter().cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Entry> {
        self.live.subscribe()
    }

    /// How many follow the live stream now.
    pub fn followers(&self) -> usize {
        self.live.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedStartClock;

    #[tokio::test(start_paused = true)]
    async fn the_newest_lines_are_kept_and_followers_get_each_one_live() {
        let notices = Notices::new(3, Arc::new(FixedStartClock::new(1_000)));
        let mut follower = notices.subscribe();
        for switch in 1..=5 {
            notices.emit(Notice::RecoveryCompleted { switch });
        }
        let kept: Vec<(u64, Option<u8>)> = notices
            .list()
            .iter()
            .map(|e| (e.seq, e.notice.switch()))
            .collect();
        assert_eq!(kept, [(3, Some(3)), (4, Some(4)), (5, Some(5))]);
        for switch in 1..=5 {
            let e = follower.recv().await.unwrap();
            assert_eq!(
                (e.notice.switch(), e.time_ms, e.level()),
                (Some(switch), 1_000, Level::Info)
            );
        }
        notices.emit(Notice::RecoveryExhausted {
            switch: 2,
            attempts: 30,
        });
        let e = follower.recv().await.unwrap();
        assert_eq!(e.level(), Level::Fault);
        assert_eq!(
            e.text(crate::config::Language::It),
            "Ripristino automatico del centralino 2 interrotto dopo 30 tentativi: ricollegarlo quando il centralino è pronto"
        );
    }
}
