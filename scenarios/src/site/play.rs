//! Plays a [`SiteWorld`]: two relays sharing site `hq` over an in-memory bus, the site's
//! switches and resumable applications on an in-memory network, on a paused clock; checks the
//! site's invariants as it goes ([`super::check`]) and at the end.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use busseam::mem::{MemBus, Reach};
use netseam::MemNetwork;
use relay::config::SwitchConfig;
use relay::task::Hold;
use relay::{Config, Listeners, Relay, RelayParts};
use switch_sim::{Answering, Settings, SimSwitch};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::app::{App, AppSummary};
use super::check::{Check, Shared};
use super::host::{Host, HostState};
use super::world::{Action, SiteWorld, BRANCH, NODES};

/// Wall time at the start of every world: 2026-01-05 09:00:00 UTC.
const EPOCH_MS: u64 = 1_767_603_600_000;
/// How often each switch sends an event.
const EVENT_EVERY: Duration = Duration::from_millis(50);
/// After the timeline, with every fault healed: long enough for every request's deadline
/// (30 s), a lease's expiry and the sessions' sharing.
const SETTLE: Duration = Duration::from_secs(45);

/// What one world gave.
pub struct SiteRun {
    pub seed: u64,
    /// Every invariant broken, in the order found, with the virtual time.
    pub violations: Vec<String>,
    /// What every party saw, in summary (YAML), to compare two plays of one seed.
    pub transcript: String,
    pub virtual_time: Duration,
    /// What the applications saw, added up.
    pub totals: Totals,
}

/// Counts over every application of a world.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub connections: u64,
    pub resumed: u64,
    pub not_resumed: u64,
    pub events: u64,
    pub told_lost: u64,
    pub unknown_gaps: u64,
    pub requests: u64,
    pub answers: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.connections += o.connections;
        self.resumed += o.resumed;
        self.not_resumed += o.not_resumed;
        self.events += o.events;
        self.told_lost += o.told_lost;
        self.unknown_gaps += o.unknown_gaps;
        self.requests += o.requests;
        self.answers += o.answers;
    }

    fn of(s: &AppSummary) -> Totals {
        Totals {
            connections: s.connections.into(),
            resumed: s.resumed.into(),
            not_resumed: s.not_resumed.into(),
            events: s.events,
            told_lost: s.told_lost,
            unknown_gaps: s.unknown_gaps.into(),
            requests: s.requests.into(),
            answers: s.answers.into(),
        }
    }
}

/// Plays `world` on a runtime of its own with a paused clock.
pub fn play(world: &SiteWorld) -> SiteRun {
    let runtime = crate::runtime::paused(world.seed);
    runtime.block_on(play_on_paused_clock(world))
}

/// A relay of the site, as the world runs it.
struct Slot {
    state_dir: tempfile::TempDir,
    generation: u32,
    running: Option<Running>,
    /// Faults in force: stalls and cuts that have not ended.
    stalls: u32,
    cuts: u32,
}

struct Running {
    daemon: relay::Daemon,
    host: Arc<HostState>,
    /// Holds every task of the relay while it is paused.
    hold: Arc<Hold>,
    bus_name: String,
}

/// What the relays and the world share.
struct Site {
    /// The world's seed: every relay's random choices (tokens, term ids) derive from it.
    seed: u64,
    net: MemNetwork,
    bus: MemBus,
    switches: Vec<SocketAddr>,
    slots: Mutex<Vec<Slot>>,
    /// The relays running now, for the dial check.
    registry: Arc<Mutex<[Option<Arc<Relay>>; 2]>>,
    /// Each of hq's relays' client port while it runs.
    addrs: watch::Sender<[Option<SocketAddr>; 2]>,
    /// The branch's client port while it runs (twice: its applications have one relay).
    branch_addrs: watch::Sender<[Option<SocketAddr>; 2]>,
    /// The branch relay while it runs.
    branch: Mutex<Option<Arc<Relay>>>,
    check: Shared,
    bus_down: AtomicUsize,
}

impl Site {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts relay `i` (again) with its state directory, on a new host and bus client.
    fn start(&self, i: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[i];
        if slot.running.is_some() {
            return;
        }
        slot.generation += 1;
        slot.stalls = 0;
        slot.cuts = 0;
        let ip = IpAddr::from([10, 0, 0, 1 + i as u8]);
        let registry = self.registry.clone();
        let check = self.check.clone();
        let switches = self.switches.clone();
        let on_dial = Arc::new(move |addr: SocketAddr| {
            if let Some(no) = switches.iter().position(|s| *s == addr) {
                let relays = registry.lock().unwrap_or_else(|e| e.into_inner()).clone();
                check.dialled(i, no as u8 + 1, &relays);
            }
        });
        let host = Host::new(self.net.clone(), ip, on_dial);
        let bus_name = format!("{}{}", NODES[i], slot.generation);
        let bus = self.bus.client(&bus_name);
        let config = match i {
            BRANCH => branch_config(self.switches.len() as u8),
            _ => site_config(&self.switches),
        };
        // Each start of each relay draws differently, and alike in every play.
        let seed = self.seed ^ (u64::from(slot.generation) << 32) ^ i as u64;
        let hold = Hold::new();
        let started = relay::task::starting(&hold, || {
            start_relay(&host, config, i, slot.state_dir.path(), bus, seed)
        });
        let daemon = match started {
            Ok(d) => d,
            Err(e) => {
                self.check.broke(
                    "the relays start",
                    format!("{} did not start: {e}", NODES[i]),
                );
                return;
            }
        };
        let relay = daemon.relay().clone();
        self.publish(i, Some(relay));
        slot.running = Some(Running {
            daemon,
            host: host.state.clone(),
            hold,
            bus_name,
        });
    }

    /// Makes relay `i` (or its absence) known to the dial check and to the applications.
    fn publish(&self, i: usize, relay: Option<Arc<Relay>>) {
        let client = relay.as_ref().map(|r| r.client_addr());
        if i == BRANCH {
            *self.branch.lock().unwrap_or_else(|e| e.into_inner()) = relay;
            self.branch_addrs.send_modify(|a| *a = [client, client]);
            return;
        }
        self.registry.lock().unwrap_or_else(|e| e.into_inner())[i] = relay;
        self.addrs.send_modify(|a| a[i] = client);
    }

    /// Relay `i` is no longer running: out of the registry and the applications' reach.
    fn gone(&self, i: usize) -> Option<Running> {
        let running = self.lock()[i].running.take()?;
        self.publish(i, None);
        Some(running)
    }

    /// SIGKILL: connections reset, the bus client gone; what is left of the process is
    /// stopped out of sight.
    fn kill(&self, i: usize) {
        let Some(running) = self.gone(i) else { return };
        running.host.kill();
        self.bus.set_reach(&running.bus_name, Reach::Cut);
        // A stopped process is killed as well: what is left of it runs into its dead host.
        running.hold.release(0);
        tokio::spawn(running.daemon.shutdown());
    }

    /// SIGTERM: a planned stop.
    async fn stop(&self, i: usize) {
        let Some(running) = ({
            let mut slots = self.lock();
            slots[i].running.take()
        }) else {
            return;
        };
        // Out of the applications' reach at once, known to the dial check until it is gone.
        match i {
            BRANCH => self.branch_addrs.send_modify(|a| *a = [None, None]),
            _ => self.addrs.send_modify(|a| a[i] = None),
        }
        // A paused relay is woken to stop, as a service manager does (SIGTERM, SIGCONT).
        running.hold.release(0);
        running.daemon.shutdown().await;
        self.publish(i, None);
        running.host.kill();
        self.bus.set_reach(&running.bus_name, Reach::Cut);
    }

    /// Applies relay `i`'s faults in force to its host and bus client.
    fn apply_faults(&self, i: usize) {
        let slots = self.lock();
        let slot = &slots[i];
        let Some(running) = &slot.running else { return };
        let reach = if slot.cuts > 0 {
            Reach::Cut
        } else if slot.stalls > 0 {
            Reach::Paused
        } else {
            Reach::Connected
        };
        match slot.stalls > 0 {
            true => running.host.stall(),
            false => running.host.resume(),
        }
        self.bus.set_reach(&running.bus_name, reach);
    }

    /// Starts a fault on relay `i` now and ends it after `d` (unless the relay was restarted
    /// meanwhile).
    fn fault_for(self: &Arc<Self>, i: usize, d: Duration, stall: bool) {
        let generation = {
            let mut slots = self.lock();
            let slot = &mut slots[i];
            if slot.running.is_none() {
                return;
            }
            match stall {
                true => slot.stalls += 1,
                false => slot.cuts += 1,
            }
            slot.generation
        };
        self.apply_faults(i);
        let site = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            {
                let mut slots = site.lock();
                let slot = &mut slots[i];
                if slot.generation != generation {
                    return;
                }
                match stall {
                    true => slot.stalls = slot.stalls.saturating_sub(1),
                    false => slot.cuts = slot.cuts.saturating_sub(1),
                }
            }
            site.apply_faults(i);
        });
    }

    /// Pauses relay `i` now and wakes it after `d`, its tasks woken meanwhile in an order drawn
    /// from `order` (unless it was killed or stopped meanwhile: then it was woken already).
    fn pause_for(&self, i: usize, d: Duration, order: u64) {
        let hold = match &self.lock()[i].running {
            Some(running) => running.hold.clone(),
            None => return,
        };
        hold.hold();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            if hold.is_on() {
                hold.release(order);
            }
        });
    }

    fn bus_down_for(self: &Arc<Self>, d: Duration) {
        self.bus_down.fetch_add(1, Ordering::SeqCst);
        self.bus.set_down(true);
        let site = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let left = site.bus_down.fetch_sub(1, Ordering::SeqCst) - 1;
            site.bus.set_down(left > 0);
        });
    }
}

/// Starts relay `NODES[node]` on `host` with `config` (its switches and site), its state in
/// `state_dir`, on `bus`, its random draws from `seed`.
fn start_relay(
    host: &Host,
    mut config: Config,
    node: usize,
    state_dir: &std::path::Path,
    bus: busseam::Bus,
    seed: u64,
) -> Result<relay::Daemon, String> {
    config.state_dir = state_dir.to_owned();
    config.log_dir = state_dir.join("log");
    // Never dialled: the bus is given.
    config.bus.nats = Some("nats://bus.invalid:4222".into());
    config.bus.node = NODES[node].into();
    let parts = RelayParts {
        net: Arc::new(host.clone()),
        clock: Arc::new(relay::clock::FixedStartClock::new(EPOCH_MS)),
        bus: Some(bus),
        tuning: relay::Tuning::simulated(seed),
        ..RelayParts::new(config)
    };
    let started = futures_util::FutureExt::now_or_never(Listeners::loopback(host))
        .expect("binding on the in-memory network does not wait")
        .map_err(|e| e.to_string())?;
    relay::Daemon::start(parts, started).map_err(|e| e.to_string())
}

/// The configuration of hq's relays: they dial the site's switches and share the site.
fn site_config(switches: &[SocketAddr]) -> Config {
    let mut config = Config::default();
    for (k, addr) in switches.iter().enumerate() {
        config.switches.push(SwitchConfig::new(
            k as u8 + 1,
            &addr.ip().to_string(),
            addr.port(),
            "1234",
        ));
    }
    config.bus.site = "hq".into();
    config.bus.shared = true;
    config
}

/// The configuration of the branch: a relay of site `branch` serving each of hq's switches
/// (under the same number) from the bus, as a branch office does. It dials nothing.
fn branch_config(switches: u8) -> Config {
    let mut config = Config::default();
    for no in 1..=switches {
        config.switches.push(SwitchConfig {
            remote: Some(relay::config::RemoteSwitch {
                site: "hq".into(),
                no,
            }),
            ..SwitchConfig::new(no, "", 5000, "")
        });
    }
    config.bus.site = "branch".into();
    config
}

/// An application of the world, as the timeline drives it.
struct AppCtl {
    target: watch::Sender<usize>,
    /// The relay it is connected to now.
    at: Arc<AtomicUsize>,
    requests: mpsc::UnboundedSender<u8>,
    done: tokio::task::JoinHandle<AppSummary>,
}

async fn play_on_paused_clock(world: &SiteWorld) -> SiteRun {
    let started = Instant::now();
    super::log::world_begins();
    let net = MemNetwork::new();
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_millis(EPOCH_MS);
    let bus = MemBus::new(epoch);
    let check = Shared::new(Check::new(started));
    let mut switches = Vec::new();
    let mut sims = Vec::new();
    for no in 1..=world.switches {
        let addr = SocketAddr::from(([10, 1, 0, no], 5000));
        let settings = Settings {
            answering: Answering::Echo,
            epoch_ms: Some(EPOCH_MS),
            ..Settings::officeserv(no)
        };
        let sim = SimSwitch::start_on(&net, addr, settings)
            .await
            .expect("a switch on the in-memory network");
        switches.push(addr);
        sims.push(sim);
    }
    let site = Arc::new(Site {
        seed: world.seed,
        net: net.clone(),
        bus: bus.clone(),
        switches,
        slots: Mutex::new(
            (0..NODES.len())
                .map(|_| Slot {
                    state_dir: tempfile::tempdir().expect("a state directory"),
                    generation: 0,
                    running: None,
                    stalls: 0,
                    cuts: 0,
                })
                .collect(),
        ),
        registry: Arc::new(Mutex::new([None, None])),
        addrs: watch::Sender::new([None, None]),
        branch_addrs: watch::Sender::new([None, None]),
        branch: Mutex::new(None),
        check: check.clone(),
        bus_down: AtomicUsize::new(0),
    });
    for i in 0..NODES.len() {
        site.start(i);
    }

    let stop = CancellationToken::new();
    let emitting = tokio::spawn(emit_events(sims, stop.clone()));
    // The site's applications, then one of the branch (index `world.apps.len()`), which stays
    // there and is sent the requests the site's first application is.
    let homes = world
        .apps
        .iter()
        .map(|&home| (home, [0, 1]))
        .chain([(0, [BRANCH, BRANCH])]);
    let apps: Vec<AppCtl> = homes
        .enumerate()
        .map(|(k, (home, relays))| {
            let (target, target_rx) = watch::channel(home);
            let (requests, requests_rx) = mpsc::unbounded_channel();
            let at = Arc::new(AtomicUsize::new(home));
            let app = App {
                k,
                net: net.clone(),
                addrs: match relays {
                    [BRANCH, BRANCH] => site.branch_addrs.subscribe(),
                    _ => site.addrs.subscribe(),
                },
                homes: relays,
                target: target_rx,
                requests: requests_rx,
                at: at.clone(),
                check: check.clone(),
                stop: stop.clone(),
                switches: world.switches,
            };
            AppCtl {
                target,
                at,
                requests,
                done: tokio::spawn(app.run()),
            }
        })
        .collect();

    for (at, action) in &world.timeline {
        tokio::time::sleep_until(started + *at).await;
        check.note(format!("{:?}", action));
        tracing::info!(target: "world", "{action:?}");
        match action {
            Action::Kill(i) => site.kill(*i),
            Action::Stop(i) => site.stop(*i).await,
            Action::Start(i) => site.start(*i),
            Action::Stall(i, d) => site.fault_for(*i, *d, true),
            Action::CutOff(i, d) => site.fault_for(*i, *d, false),
            Action::Pause(i, d, order) => site.pause_for(*i, *d, *order),
            Action::BusDown(d) => site.bus_down_for(*d),
            Action::BusSlow(delay, d) => {
                bus.set_delay(*delay);
                let bus = bus.clone();
                let d = *d;
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    bus.set_delay(Duration::ZERO);
                });
            }
            Action::HandOver(i) => {
                let relay = site.registry.lock().unwrap_or_else(|e| e.into_inner())[*i].clone();
                if let Some(relay) = relay {
                    let _ = relay.hand_over_lease();
                }
            }
            Action::Move(k) => {
                let ctl = &apps[*k];
                let _ = ctl.target.send(1 - ctl.at.load(Ordering::SeqCst));
            }
            Action::Requests(k, n) => {
                let _ = apps[*k].requests.send(*n);
                if *k == 0 {
                    let _ = apps[world.apps.len()].requests.send(*n);
                }
            }
        }
    }
    tokio::time::sleep_until(started + world.length).await;
    // Every fault healed, every relay running: the site settles.
    bus.set_delay(Duration::ZERO);
    for i in 0..NODES.len() {
        site.start(i);
    }
    tokio::time::sleep(SETTLE).await;
    let relays: Vec<Arc<Relay>> = site
        .registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .flatten()
        .cloned()
        .collect();
    check.settled(&relays, world.switches);
    let branch = site
        .branch
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(branch) = branch {
        check.branch_settled(&branch, world.switches);
    }
    stop.cancel();
    let mut summaries = BTreeMap::new();
    for (k, ctl) in apps.into_iter().enumerate() {
        let summary = ctl.done.await.unwrap_or_default();
        summaries.insert(format!("app{k}"), summary);
    }
    let _ = emitting.await;
    let virtual_time = started.elapsed();
    // Taken before the relays stop: how long a stop takes is not part of the world.
    let bus_stats = bus.stats();
    for i in 0..NODES.len() {
        if let Some(running) = site.gone(i) {
            running.hold.release(0);
            running.daemon.shutdown().await;
        }
    }
    let mut totals = Totals::default();
    for s in summaries.values() {
        totals.add(&Totals::of(s));
    }
    let (violations, transcript) = check.finish(summaries, bus_stats);
    SiteRun {
        seed: world.seed,
        violations,
        transcript,
        virtual_time,
        totals,
    }
}

/// Each switch sends an event every [`EVENT_EVERY`] to whichever relay holds its link; the
/// event's device is its number at the switch, which only goes up.
async fn emit_events(sims: Vec<SimSwitch>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVENT_EVERY);
    let mut next = vec![1u64; sims.len()];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (sim, id) in sims.iter().zip(next.iter_mut()) {
            if sim.emit_event(b's', &id.to_string(), &[]) {
                *id += 1;
            }
        }
    }
}
