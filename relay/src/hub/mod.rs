//! The relay's shared state: the configuration, one slot per switch number (its link when up
//! and a read-mostly snapshot of the sessions it serves), the session registry, notifications.
//!
//! [`admission`] decides who may identify; [`subscribers`] is a switch's snapshot of its
//! sessions, with the device index of the filtering ones; [`event_journal`] numbers a switch's events
//! and keeps them for [`resume`]d sessions; [`fence`] keeps a shared site's dialling within
//! this relay's lease. Admission, device changes and link
//! transitions are serialized by one `membership` lock, so a session is either subscribed
//! before a switch's loss is handled (and gets `W` or `X`) or admitted after it (and sees the
//! switch down). The event path never takes that lock.

pub mod admission;
pub mod event_journal;
pub mod fence;
pub mod invoke;
pub mod monitors;
pub mod resume;
pub mod routing;
pub mod session_handle;
pub mod subscribers;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::clock::WallClock;
use crate::config::{Config, InForce, SwitchNo};
use crate::connection::outqueue::OutQueue;
use crate::hub::event_journal::{EventJournal, Keep};
use crate::hub::invoke::InvokeMap;
use crate::hub::resume::ResumeBook;
use crate::hub::session_handle::{DeviceKey, SessionHandle};
pub use crate::hub::subscribers::Subscribers;
use crate::licensing::{Licensing, Standing};
use crate::notify::{LossCause, Notice, Notices};
use crate::stats::Stats;
use netseam::Network;
use wire::relay_result;
use wire::{CloseReason, IdentifyResult, LinkMsg, Str8};

/// Limits and timings that are not part of the configuration file.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Bytes a session may have queued and unwritten before it is closed as too slow.
    pub session_queue_bytes: usize,
    /// Bytes of requests queued for a switch before new ones are answered 0xE3.
    pub switch_queue_bytes: usize,
    /// Bytes a monitor may have waiting before frames are dropped (and counted with `G`).
    pub monitor_queue_bytes: usize,
    /// Requests one session may have in flight before new ones are answered 0xE3.
    pub max_in_flight: usize,
    /// Devices one session may watch.
    pub max_devices: usize,
    pub identify_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub silence_limit: Duration,
    pub attempt_timeout: Duration,
    pub answer_timeout: Duration,
    /// Overrides `options.recovery.cycle_minutes` (tests and simulations).
    pub recovery_cycle: Option<Duration>,
    /// Time a closing connection is given to take its last frame.
    pub close_grace: Duration,
    /// Seed of resume tokens (simulations, for the same tokens every run); random when unset.
    pub resume_seed: Option<u64>,
    /// The export spool's disk work on the runtime's own thread, not a blocking thread
    /// (simulations: a blocking thread's real timing would make two plays of a world differ).
    pub disk_work_inline: bool,
}

impl Tuning {
    /// For a simulated world: tokens and term ids drawn from `seed`, and the spool's disk work
    /// on the runtime's thread, so the world plays the same on every run.
    pub fn simulated(seed: u64) -> Tuning {
        Tuning {
            resume_seed: Some(seed),
            disk_work_inline: true,
            ..Tuning::default()
        }
    }
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            session_queue_bytes: 4 << 20,
            switch_queue_bytes: 1 << 20,
            monitor_queue_bytes: 1 << 20,
            max_in_flight: 256,
            max_devices: 1024,
            identify_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(10),
            silence_limit: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(60),
            answer_timeout: Duration::from_secs(30),
            recovery_cycle: None,
            close_grace: Duration::from_secs(5),
            resume_seed: None,
            disk_work_inline: false,
        }
    }
}

/// What the relay learned of a switch while opening its link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub model: Str8,
    pub software: Str8,
    pub mac: [u8; 6],
    pub caps: u8,
    pub stations: HashSet<Str8>,
}

/// An established switch link.
#[derive(Debug)]
pub struct LinkHandle {
    pub no: u8,
    pub info: LinkInfo,
    /// Frames to the switch.
    pub out: OutQueue,
    pub invokes: Mutex<InvokeMap>,
    /// A remote switch's link: its site's relay holds the real one, reached over the bus.
    pub via_bus: bool,
}

impl LinkHandle {
    pub fn invokes(&self) -> std::sync::MutexGuard<'_, InvokeMap> {
        self.invokes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One switch number.
#[derive(Debug)]
pub struct SwitchSlot {
    pub no: u8,
    pub subscribers: ArcSwap<Subscribers>,
    pub link: ArcSwapOption<LinkHandle>,
    pub counters: LinkCounters,
    /// What the switch's link and supervisor are doing ([`LinkPhase`] as a byte): `Up` and
    /// its end are set with the link itself, the rest by the supervisor.
    phase: std::sync::atomic::AtomicU8,
    /// The number of the attempt in progress or last made in the current series (1-based).
    pub attempt: std::sync::atomic::AtomicU32,
    /// The switch's numbered events.
    journal: Mutex<EventJournal>,
}

/// What a switch's supervisor is doing, for status views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkPhase {
    /// Not trying: waiting for an operator's connect (or not yet started).
    Idle = 0,
    /// An attempt is in progress.
    Connecting = 1,
    /// The link is open.
    Up = 2,
    /// Between attempts, on the recovery schedule.
    Waiting = 3,
}

impl LinkPhase {
    pub fn name(self) -> &'static str {
        match self {
            LinkPhase::Idle => "idle",
            LinkPhase::Connecting => "connecting",
            LinkPhase::Up => "up",
            LinkPhase::Waiting => "waiting",
        }
    }
}

/// What has crossed one switch's link since the relay started (for `/metrics`).
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Frames read from the switch, set-up included.
    pub frames_in: AtomicU64,
    /// Frames written (queued) to the switch, set-up included.
    pub frames_out: AtomicU64,
    /// Links lost other than by an operator's disconnect or the relay stopping.
    pub losses: AtomicU64,
    /// Links that came back up on the recovery schedule after a loss.
    pub recoveries: AtomicU64,
}

impl SwitchSlot {
    pub fn phase(&self) -> LinkPhase {
        match self.phase.load(Ordering::Relaxed) {
            1 => LinkPhase::Connecting,
            2 => LinkPhase::Up,
            3 => LinkPhase::Waiting,
            _ => LinkPhase::Idle,
        }
    }

    pub fn set_phase(&self, phase: LinkPhase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.link.load().is_some()
    }

    /// Whether `link` is this switch's link (not yet marked down).
    pub fn holds(&self, link: &LinkHandle) -> bool {
        self.link
            .load()
            .as_deref()
            .is_some_and(|l| std::ptr::eq(l, link))
    }

    /// The link, when up.
    pub fn link_handle(&self) -> Option<Arc<LinkHandle>> {
        self.link.load_full()
    }

    /// The journal, locked: the reader holds it while it numbers and delivers a run.
    pub fn journal(&self) -> std::sync::MutexGuard<'_, EventJournal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The relay's shared state. Its fields are the library's own; from outside, the methods
/// below read it (the configuration in force, counters, notices, licence use, monitors).
pub struct Hub {
    pub(crate) config: ArcSwap<InForce>,
    pub(crate) slots: [SwitchSlot; 8],
    membership: Mutex<()>,
    sessions: Mutex<BTreeMap<u64, Arc<SessionHandle>>>,
    next_session: AtomicU64,
    pub(crate) notices: Notices,
    pub(crate) clock: Arc<dyn WallClock>,
    pub(crate) tuning: Tuning,
    pub(crate) net: Arc<dyn Network>,
    pub(crate) stats: Stats,
    pub(crate) licensing: Licensing,
    pub(crate) monitors: monitors::AttachedMonitors,
    /// SMDR/UCD records kept for collectors.
    pub(crate) spool: Arc<crate::spool::Spool>,
    /// This host's MAC addresses, read once at start.
    pub(crate) system_macs: Vec<[u8; 6]>,
    /// Resumable sessions, connected or waiting to come back (under the membership lock).
    resume: Mutex<ResumeBook>,
    /// How many sessions the book holds: while there are any, journals keep events.
    resumables: AtomicUsize,
    /// Where this relay's switches are published, with a bus.
    pub(crate) bus: ArcSwapOption<crate::outbox::Outbox>,
    /// On a shared site, where the other relay's resumable sessions are found.
    pub(crate) site_sessions: ArcSwapOption<Box<dyn resume::SiteSessions>>,
    /// A session moved here from the other relay of the site: its entry is written at once,
    /// so that relay lets its own copy (and licence use) go.
    pub(crate) session_moved_here: tokio::sync::Notify,
    /// Whether this relay may dial its links now (shut while another relay of a shared site
    /// holds the lease).
    pub(crate) fence: fence::Fence,
    /// TLS on the ports that speak it.
    pub(crate) tls: crate::tls::TlsState,
}

/// Who connected: the address, and the names of the client certificate it presented on a
/// TLS port (verified against `tls.client_ca`; none otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub addr: std::net::SocketAddr,
    pub names: Vec<String>,
}

impl Caller {
    /// A caller in clear text (or without a client certificate).
    pub fn at(addr: std::net::SocketAddr) -> Caller {
        Caller {
            addr,
            names: Vec::new(),
        }
    }
}

/// A refused identify: the result and the served switches to report with it.
pub type Refusal = (IdentifyResult, Vec<(u8, bool)>);

impl Hub {
    pub fn new(
        config: InForce,
        net: Arc<dyn Network>,
        clock: Arc<dyn WallClock>,
        tuning: Tuning,
        licensing: Licensing,
        spool: Arc<crate::spool::Spool>,
    ) -> Hub {
        let system_macs = crate::licensing::host_macs(&Config::default());
        let lines = config.options.notification_lines as usize;
        let seed = tuning.resume_seed.unwrap_or_else(|| {
            let mut bytes = [0; 8];
            // Cannot fail: no input reaches it: only a system without a random source fails here, and the relay cannot run there.
            getrandom::fill(&mut bytes).expect("the system's random source");
            u64::from_le_bytes(bytes)
        });
        // Two relays of a site never begin terms of one id, even when seeded alike (simulations).
        let term_seed = config
            .bus
            .node
            .bytes()
            .fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let fence = match config.bus.shared {
            true => fence::Fence::shut(),
            false => fence::Fence::unfenced(),
        };
        Hub {
            fence,
            config: ArcSwap::from_pointee(config),
            slots: std::array::from_fn(|i| SwitchSlot {
                no: i as u8 + 1,
                subscribers: ArcSwap::from_pointee(Subscribers::empty(i as u8 + 1)),
                link: ArcSwapOption::empty(),
                counters: LinkCounters::default(),
                phase: Default::default(),
                attempt: Default::default(),
                // Own terms' ids differ between relays (the seed) and between switches.
                journal: Mutex::new(EventJournal::new(term_seed.rotate_left(8 * i as u32))),
            }),
            membership: Mutex::new(()),
            sessions: Mutex::new(BTreeMap::new()),
            next_session: AtomicU64::new(1),
            notices: Notices::new(lines, clock.clone()),
            clock,
            tuning,
            net,
            stats: Stats::default(),
            licensing,
            monitors: Default::default(),
            spool,
            system_macs,
            resume: Mutex::new(ResumeBook::new(seed)),
            resumables: AtomicUsize::new(0),
            bus: ArcSwapOption::empty(),
            site_sessions: ArcSwapOption::empty(),
            session_moved_here: tokio::sync::Notify::new(),
            tls: Default::default(),
        }
    }

    /// Queues a frame to a switch (if its queue has room), showing it to link monitors.
    pub fn send_to_switch(&self, link: &LinkHandle, frame: bytes::Bytes) -> bool {
        // Link monitors see the frame before the switch can answer it.
        let watching = self.monitors.watching_links();
        let sent = link.out.offer_then(frame, |f| {
            if watching {
                self.monitors
                    .link_frame(self.clock.now_ms(), link.no, true, f);
            }
        });
        if sent {
            if let Some(slot) = self.slot_of(link.no) {
                slot.counters.frames_out.fetch_add(1, Ordering::Relaxed);
            }
        }
        sent
    }

    /// This host's MACs: `license.host_macs` when set, else the interfaces'.
    pub fn host_macs(&self) -> Vec<[u8; 6]> {
        let config = self.config.load();
        match &config.license.host_macs {
            Some(_) => crate::licensing::host_macs(&config),
            None => self.system_macs.clone(),
        }
    }

    /// MACs of the switches connected now.
    pub fn switch_macs(&self) -> Vec<[u8; 6]> {
        self.slots
            .iter()
            .filter_map(|s| s.link_handle().map(|l| l.info.mac))
            .collect()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<InForce> {
        self.config.load_full()
    }

    pub fn notices(&self) -> &Notices {
        &self.notices
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn licensing(&self) -> &Licensing {
        &self.licensing
    }

    /// The monitors and collectors attached.
    pub fn monitors(&self) -> &monitors::AttachedMonitors {
        &self.monitors
    }

    /// SMDR/UCD records kept for collectors.
    pub fn spool(&self) -> &Arc<crate::spool::Spool> {
        &self.spool
    }

    /// Whether the bus client has started (with a bus configured).
    pub fn bus_started(&self) -> bool {
        self.bus.load().is_some()
    }

    pub fn tls(&self) -> &crate::tls::TlsState {
        &self.tls
    }

    /// What governs admission now.
    pub fn standing(&self) -> Standing {
        self.licensing
            .standing(self.clock.now_ms(), &self.host_macs(), &self.switch_macs())
    }

    /// The slot of switch `no` (1..=8).
    pub fn slot(&self, no: SwitchNo) -> &SwitchSlot {
        &self.slots[no.index()]
    }

    /// The slot of switch `no` as read from outside (a request's SWITCH byte, a path of the
    /// admin API, a number of the configuration), when it is a switch number at all.
    pub fn slot_of(&self, no: u8) -> Option<&SwitchSlot> {
        SwitchNo::new(no).map(|no| self.slot(no))
    }

    fn lock_membership(&self) -> std::sync::MutexGuard<'_, ()> {
        self.membership.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<SessionHandle>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn any_switch_up(&self) -> bool {
        self.slots.iter().any(SwitchSlot::is_up)
    }

    /// Forgets a session that has ended. A resumable one whose end may be resumed waits for
    /// its window with its licence use; a replaced one has already handed both on.
    pub fn remove_session(&self, session: &Arc<SessionHandle>) {
        let _membership = self.lock_membership();
        self.unsubscribe(session);
        if self.registry().remove(&session.id).is_none() {
            return;
        }
        if session.resume.is_some() {
            let resume = self.config.load().resume;
            let until = (resume.enabled() && session.end_resumable())
                .then(|| tokio::time::Instant::now() + resume.window());
            let mut book = self.resume_book();
            if book.ended(session, until) && until.is_some() {
                return;
            }
            self.count_resumables(&book);
        }
        self.licensing.usage().release(&session.grant);
    }

    fn unsubscribe(&self, session: &Arc<SessionHandle>) {
        for no in &session.served {
            if let Some(slot) = self.slot_of(*no) {
                let next = slot.subscribers.load().without(session);
                slot.subscribers.store(Arc::new(next));
            }
        }
    }

    fn resume_book(&self) -> std::sync::MutexGuard<'_, ResumeBook> {
        self.resume.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_resumables(&self, book: &ResumeBook) {
        self.resumables.store(book.count(), Ordering::Release);
    }

    /// Whether journals keep events: some session may come back for them (on a shared site,
    /// any session of the other relay may come here).
    pub fn keeping_events(&self) -> bool {
        self.resumables.load(Ordering::Acquire) > 0 || self.site_sessions.load().is_some()
    }

    /// How long and how much journals keep.
    pub fn journal_keep(&self) -> Keep {
        let resume = self.config.load().resume;
        Keep {
            window: resume.window(),
            max_bytes: resume.max_bytes(),
        }
    }

    /// Sessions waiting to come back.
    pub fn parked(&self) -> Vec<Arc<SessionHandle>> {
        self.resume_book().parked()
    }

    /// Ends the waits whose window has passed, giving back their licence use; once nobody can
    /// come back, journals let go of what they kept.
    pub fn expire_parked(&self) {
        let _membership = self.lock_membership();
        let mut book = self.resume_book();
        for session in book.expire(tokio::time::Instant::now()) {
            self.licensing.usage().release(&session.grant);
        }
        self.count_resumables(&book);
        if !self.keeping_events() {
            for slot in &self.slots {
                slot.journal().clear();
            }
        }
    }

    /// Sets the devices `session` watches (a `D` add or remove on switch `no`), with the
    /// switch's device index, under the membership lock so a session leaving cannot miss them.
    pub fn set_devices(&self, session: &Arc<SessionHandle>, no: u8, devices: BTreeSet<DeviceKey>) {
        let _membership = self.lock_membership();
        let before = session.devices.swap(Arc::new(devices));
        if !session.filtering {
            return;
        }
        if let Some(slot) = self.slot_of(no) {
            let after = session.devices.load();
            let next = slot
                .subscribers
                .load()
                .with_devices(session, &before, &after);
            slot.subscribers.store(Arc::new(next));
        }
    }

    pub fn session(&self, id: u64) -> Option<Arc<SessionHandle>> {
        self.registry().get(&id).cloned()
    }

    /// The sessions now admitted, by id.
    pub fn sessions(&self) -> Vec<Arc<SessionHandle>> {
        self.registry().values().cloned().collect()
    }

    pub fn session_count(&self) -> usize {
        self.registry().len()
    }

    /// A link finished opening: sessions served this switch are told it is up.
    pub fn link_up(&self, link: Arc<LinkHandle>) {
        let no = link.no;
        let Some(slot) = self.slot_of(no) else { return };
        {
            let _membership = self.lock_membership();
            slot.link.store(Some(link));
            slot.set_phase(LinkPhase::Up);
            let up = LinkMsg::SwitchState {
                switch: no,
                up: true,
            };
            for session in slot.subscribers.load().list.values() {
                session.send_link(&up);
            }
        }
        let config = self.config.load();
        let all_up = config
            .switches
            .iter()
            .filter(|s| s.enabled)
            .all(|s| self.slot_of(s.no).is_some_and(SwitchSlot::is_up));
        if all_up {
            self.notices.emit(Notice::AllServicesRunning);
        }
    }

    /// A link was lost: requests in flight are answered 0xE0; sessions left with no switch up
    /// are closed (`X` reason 1), the others get `W`; when no switch is up, every session is
    /// closed.
    pub fn link_lost(&self, no: u8, cause: LossCause) {
        self.link_lost_if(no, |_| true, cause);
    }

    /// [`Hub::link_lost`], when the link in switch `no`'s slot is `which` (the link that ended):
    /// a link that ends late (a local link closing after the site's other relay took the
    /// lease, once this relay serves the switch from the bus) never takes down the one that
    /// replaced it.
    pub fn link_lost_if(&self, no: u8, which: impl Fn(&LinkHandle) -> bool, cause: LossCause) {
        let Some(slot) = self.slot_of(no) else { return };
        let _membership = self.lock_membership();
        let current = slot.link.load_full();
        let Some(current) = current.filter(|l| which(l)) else {
            return;
        };
        let swapped = slot.link.compare_and_swap(&Some(current.clone()), None);
        let Some(link) = swapped
            .as_ref()
            .filter(|l| Arc::ptr_eq(l, &current))
            .cloned()
        else {
            return;
        };
        // Until the supervisor says what comes next (an attempt, or waiting for an operator).
        slot.set_phase(LinkPhase::Idle);
        for pending in link.invokes().drain() {
            if let Some(session) = pending.session.upgrade() {
                session.answer_pending(
                    pending.code,
                    pending.app_invoke,
                    no,
                    relay_result::NOT_CONNECTED,
                );
            }
        }
        self.notices
            .emit(Notice::SwitchDisconnected { switch: no, cause });
        let text = format!("switch {no} link lost");
        if !self.any_switch_up() {
            for session in self.registry().values() {
                session.close(CloseReason::SwitchLost, &text);
            }
            return;
        }
        let down = LinkMsg::SwitchState {
            switch: no,
            up: false,
        };
        for session in slot.subscribers.load().list.values() {
            let still_served = session
                .served
                .iter()
                .any(|n| self.slot_of(*n).is_some_and(SwitchSlot::is_up));
            if still_served {
                session.send_link(&down);
            } else {
                session.close(CloseReason::SwitchLost, &text);
            }
        }
    }

    /// Closes every session with `X` reason 2 (the relay is stopping).
    pub fn close_all_sessions(&self, text: &str) {
        let _membership = self.lock_membership();
        for session in self.registry().values() {
            session.close(CloseReason::Shutdown, text);
        }
    }
}
