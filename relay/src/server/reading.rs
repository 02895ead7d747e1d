//! What code outside the library reads of a running relay (tools, tests, benches, the
//! simulation's checks): the configuration in force, its sessions, its counters. Everything
//! here is a read; changes go through [`Relay`]'s operator actions and configuration edits.

use std::sync::Arc;

use super::Relay;
use crate::config::{InForce, SwitchNo};
use crate::hub::monitors::AttachedMonitors;
use crate::hub::session_handle::SessionHandle;
use crate::hub::SwitchSlot;
use crate::licensing::{Licensing, Standing};
use crate::notify::Notices;
use crate::spool::Spool;
use crate::stats::Stats;
use crate::tls::TlsState;

impl Relay {
    /// The configuration in force.
    pub fn config(&self) -> Arc<InForce> {
        self.hub.config()
    }

    /// The sessions open now (identified or not yet).
    pub fn sessions(&self) -> Vec<Arc<SessionHandle>> {
        self.hub.sessions()
    }

    pub fn session_count(&self) -> usize {
        self.hub.session_count()
    }

    /// Sessions gone and waiting, within their resume window, to be resumed.
    pub fn parked(&self) -> Vec<Arc<SessionHandle>> {
        self.hub.parked()
    }

    /// Switch `no`'s live state: its link when up (and whether through the bus), its
    /// counters. `None` for a number that is no switch.
    pub fn switch(&self, no: u8) -> Option<&SwitchSlot> {
        self.hub.slot_of(no)
    }

    /// Whether switch `no`'s link is up (false for a number that is no switch).
    pub fn switch_up(&self, no: u8) -> bool {
        SwitchNo::new(no).is_some_and(|no| self.hub.slot(no).is_up())
    }

    pub fn notices(&self) -> &Notices {
        self.hub.notices()
    }

    pub fn stats(&self) -> &Stats {
        self.hub.stats()
    }

    pub fn monitors(&self) -> &AttachedMonitors {
        self.hub.monitors()
    }

    pub fn licensing(&self) -> &Licensing {
        self.hub.licensing()
    }

    /// The licence standing now: trial, licensed, expired, or nothing admissible.
    pub fn standing(&self) -> Standing {
        self.hub.standing()
    }

    pub fn spool(&self) -> &Arc<Spool> {
        self.hub.spool()
    }

    pub fn tls(&self) -> &TlsState {
        self.hub.tls()
    }

    /// Whether this relay may dial its switch links now: always on a site of its own; on a site
    /// shared with another relay, while its lease is valid by its own clock.
    pub fn may_dial(&self) -> bool {
        self.hub.fence.open()
    }

    /// Whether the relay is connected to its bus (and serves and publishes over it).
    pub fn bus_started(&self) -> bool {
        self.hub.bus_started()
    }
}
