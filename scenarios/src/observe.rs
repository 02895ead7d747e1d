//! What each simulated application and monitor did and received, as data (the transcript has it as text),
//! for the invariant checker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use switch_sim::SimSwitch;
use wire::Frame;

/// What the invariant checker looks at after each step: the relay, the simulated switches and
/// what every connection did and received.
pub struct SiteView<'a> {
    pub relay: &'a relay::Relay,
    pub switches: &'a BTreeMap<u8, SimSwitch>,
    pub obs: &'a Observations,
}

/// A request an application sent.
#[derive(Clone, Debug)]
pub struct Request {
    /// The SWITCH byte as sent (protocol 3), `None` on protocol 2.
    pub switch: Option<u8>,
    pub invoke: u16,
    pub code: u8,
}

/// How a connection ended, seen from the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The relay closed the connection.
    Closed,
    /// Reading failed.
    Error(String),
    /// The application closed it (a `disconnect` step).
    Left,
}

/// One application connection, from connect to its end.
#[derive(Clone, Debug)]
pub struct Conn {
    pub app: String,
    pub address: IpAddr,
    pub protocol: u8,
    pub product: u8,
    /// Connected to the bypass port.
    pub bypass_port: bool,
    /// Whether the application reads (and so answers heartbeats) now.
    pub reads: bool,
    /// It did not read for a while (declared `reads: false`): the relay may have closed it as
    /// too slow or silent.
    pub stalled: bool,
    /// The application sent bytes of its own (not an identify, or frames a test wrote by
    /// hand): a protocol error is then its own doing.
    pub raw: bool,
    /// The relay's identify result and served switches, when it answered.
    pub identify: Option<(u8, Vec<(u8, bool)>)>,
    /// Switches docs/behaviour.md §4 says this connection is served, for the configuration at identify.
    pub expected_served: Vec<u8>,
    /// What switch 0 means for this connection.
    pub default_switch: u8,
    /// Whether filtering mode applies (Call or CallPlus of a user with filtering on).
    pub filtering: bool,
    /// Devices watched since identify, switch 0 resolved.
    pub watched: BTreeSet<(u8, String)>,
    /// Devices added or removed later: their events may or may not be delivered around the
    /// change, so the checker passes over them.
    pub touched: BTreeSet<(u8, String)>,
    /// Per switch: the sequence number of the switch's next event when identify was answered;
    /// every event from then on is due to this connection.
    pub admitted_at_seq: BTreeMap<u8, u32>,
    /// Licensed sessions in use and the access limit just after this connection was admitted.
    pub licensed_after_admit: Option<(u32, u32)>,
    pub requests: Vec<Request>,
    /// A resumed session: the index of the application's connection it took over from. Its
    /// events go on from that connection's last, with none missing unless `G` said so.
    pub resumed_from: Option<usize>,
    /// Everything received, in order, with the virtual time.
    pub frames: Vec<(Duration, Frame)>,
    pub end: Option<End>,
}

impl Conn {
    pub fn admitted(&self) -> bool {
        matches!(self.identify, Some((0, _)))
    }

    /// Still connected as far as the application knows.
    pub fn open(&self) -> bool {
        self.end.is_none()
    }

    /// The switch that protocol-2 frames concern (the one switch served).
    pub fn single_switch(&self) -> Option<u8> {
        match &self.identify {
            Some((0, served)) => served.first().map(|(no, _)| *no),
            _ => None,
        }
    }
}

/// One switch-message monitor connection, from connect to its end.
#[derive(Clone, Debug, Default)]
pub struct MonitorConn {
    pub name: String,
    /// Per switch: the sequence number of the switch's next event when the relay accepted the
    /// password; every event the relay reads from then on is due to this monitor.
    pub accepted_at_seq: BTreeMap<u8, u32>,
    /// Everything received, in order, with the virtual time.
    pub frames: Vec<(Duration, Frame)>,
    pub end: Option<End>,
}

/// Every connection of a scenario, shared with the tasks that record what they receive.
#[derive(Clone, Default)]
pub struct Observations {
    conns: Arc<Mutex<Vec<Conn>>>,
    monitors: Arc<Mutex<Vec<MonitorConn>>>,
}

impl Observations {
    pub fn lock(&self) -> MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn monitors(&self) -> MutexGuard<'_, Vec<MonitorConn>> {
        self.monitors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a monitor connection and returns its index.
    pub fn add_monitor(&self, monitor: MonitorConn) -> usize {
        let mut all = self.monitors();
        all.push(monitor);
        all.len() - 1
    }

    pub fn with_monitor<T>(&self, index: usize, f: impl FnOnce(&mut MonitorConn) -> T) -> T {
        f(&mut self.monitors()[index])
    }

    /// Adds a connection and returns its index.
    pub fn add(&self, conn: Conn) -> usize {
        let mut all = self.lock();
        all.push(conn);
        all.len() - 1
    }

    pub fn with<T>(&self, index: usize, f: impl FnOnce(&mut Conn) -> T) -> T {
        f(&mut self.lock()[index])
    }
}
