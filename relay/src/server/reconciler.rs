//! The switch reconciler: the one owner of each switch's tasks. What runs for a switch number
//! follows from the configuration in force alone: nothing for a switch that is absent or
//! disabled, a supervisor (dialling, recovery, operator commands) for one this relay's site
//! dials, a bus task for a remote one. Start-up, reloads, operator edits and the peer's edits
//! of a shared site all end in [`Reconciler::reconcile`], which starts, stops or replaces
//! tasks so that they match; the bus tasks that publish or share the local switches follow
//! [`Reconciler::local`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info_span, Instrument};

use crate::config::{Config, RemoteSwitch, SwitchConfig, SwitchNo, SwitchSource};
use crate::hub::{Hub, LinkPhase};
use crate::link::recovery::SwitchCommand;

/// What the configuration asks to run for one switch.
#[derive(Clone, Debug, PartialEq)]
enum Wanted {
    /// This relay's site holds the link, as configured here; any change to it (made while
    /// the link is down) restarts its supervisor, which dials at once.
    Local(Box<SwitchConfig>),
    /// Another site's relay holds it; it is served from the bus.
    Remote(RemoteSwitch),
}

impl Wanted {
    /// What each enabled switch of `config` asks for. A number outside 1..=8 cannot pass
    /// the configuration's rules; such an entry would ask for nothing.
    fn of(config: &Config) -> BTreeMap<SwitchNo, Wanted> {
        config
            .switches
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| {
                let wanted = match s.source() {
                    SwitchSource::Remote(remote) => Wanted::Remote(remote.clone()),
                    SwitchSource::Dial { .. } => Wanted::Local(Box::new(s.clone())),
                };
                Some((SwitchNo::new(s.no)?, wanted))
            })
            .collect()
    }
}

/// What the reconciler runs for a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchTasks {
    /// A supervisor that dials the link (on a shared site, while this relay holds the lease).
    Dial,
    /// A task that serves it from the bus, as another site's relay publishes it.
    Bus,
}

/// The tasks running for one switch.
struct Running {
    wanted: Wanted,
    /// A local switch's supervisor takes commands; a remote one's task does not.
    commands: Option<mpsc::UnboundedSender<SwitchCommand>>,
    stop: CancellationToken,
    /// Ends when the tasks have; whatever replaces them starts only then, so that two never
    /// drive the same switch slot.
    done: JoinHandle<()>,
}

/// Whether a local switch whose supervisor starts now dials at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dial {
    /// At start-up: as `options.auto_connect` says.
    AsConfigured,
    /// After a change: a switch added or enabled is dialled.
    Now,
}

pub(super) struct Reconciler {
    hub: Arc<Hub>,
    tasks: TaskTracker,
    stop: CancellationToken,
    running: BTreeMap<SwitchNo, Running>,
    /// The bus client, once connected; remote switches wait for it.
    bus: Option<busseam::Bus>,
    local: watch::Sender<Vec<u8>>,
}

impl Reconciler {
    pub(super) fn new(hub: Arc<Hub>, tasks: TaskTracker, stop: CancellationToken) -> Reconciler {
        Reconciler {
            hub,
            tasks,
            stop,
            running: BTreeMap::new(),
            bus: None,
            local: watch::Sender::new(Vec::new()),
        }
    }

    /// The enabled switches this relay's site dials, as the configuration in force says; it
    /// changes when they do.
    pub(super) fn local(&self) -> watch::Receiver<Vec<u8>> {
        self.local.subscribe()
    }

    /// The bus is connected: remote switches can be served from now on.
    pub(super) fn bus_connected(&mut self, client: busseam::Bus) {
        self.bus = Some(client);
        let config = self.hub.config.load_full();
        self.reconcile(&config, Dial::AsConfigured);
    }

    /// Makes the tasks running match `config`: starts what it adds or enables, stops what it
    /// disables or deletes, replaces what changed kind (local ↔ remote, another remote).
    pub(super) fn reconcile(&mut self, config: &Config, dial: Dial) {
        let wanted = Wanted::of(config);
        let stale: Vec<SwitchNo> = self
            .running
            .iter()
            .filter(|(no, running)| wanted.get(no) != Some(&running.wanted))
            .map(|(no, _)| *no)
            .collect();
        let mut ended: BTreeMap<SwitchNo, JoinHandle<()>> = BTreeMap::new();
        for no in stale {
            if let Some(running) = self.running.remove(&no) {
                running.stop.cancel();
                ended.insert(no, running.done);
            }
        }
        let dial_now = !config.bus.shared
            && match dial {
                Dial::AsConfigured => config.options.auto_connect,
                Dial::Now => true,
            };
        for (no, wanted) in wanted {
            if self.running.contains_key(&no) {
                continue;
            }
            let before = ended.remove(&no);
            let started = match &wanted {
                Wanted::Local(_) => Some(self.start_local(no, dial_now, before)),
                Wanted::Remote(remote) => self
                    .bus
                    .clone()
                    .map(|client| self.start_remote(no, remote.clone(), client, before)),
            };
            if let Some((commands, stop, done)) = started {
                self.running.insert(
                    no,
                    Running {
                        wanted,
                        commands,
                        stop,
                        done,
                    },
                );
            }
        }
        // Switches no longer wanted: idle once their tasks have ended.
        for (no, before) in ended {
            let hub = self.hub.clone();
            crate::task::spawn_tracked(&self.tasks, async move {
                let _ = before.await;
                hub.slot(no).set_phase(LinkPhase::Idle);
            });
        }
        let local: Vec<u8> = self
            .running
            .iter()
            .filter(|(_, r)| matches!(r.wanted, Wanted::Local(_)))
            .map(|(no, _)| no.get())
            .collect();
        self.local.send_if_modified(|now| {
            let changed = *now != local;
            *now = local;
            changed
        });
    }

    fn start_local(
        &self,
        no: SwitchNo,
        connect_now: bool,
        before: Option<JoinHandle<()>>,
    ) -> (
        Option<mpsc::UnboundedSender<SwitchCommand>>,
        CancellationToken,
        JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = self.stop.child_token();
        let supervise =
            crate::link::recovery::supervise(self.hub.clone(), no, stop.clone(), rx, connect_now);
        let done = self.spawn_after(
            before,
            supervise.instrument(info_span!("switch", no = no.get())),
        );
        (Some(tx), stop, done)
    }

    fn start_remote(
        &self,
        no: SwitchNo,
        remote: RemoteSwitch,
        client: busseam::Bus,
        before: Option<JoinHandle<()>>,
    ) -> (
        Option<mpsc::UnboundedSender<SwitchCommand>>,
        CancellationToken,
        JoinHandle<()>,
    ) {
        let stop = self.stop.child_token();
        let serve = crate::bus::remote::run(self.hub.clone(), client, no, remote, stop.clone());
        let done = self.spawn_after(
            before,
            serve.instrument(info_span!("remote switch", no = no.get())),
        );
        (None, stop, done)
    }

    /// Runs `task` once the tasks it replaces (`before`) have ended.
    fn spawn_after(
        &self,
        before: Option<JoinHandle<()>>,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        crate::task::spawn_tracked(&self.tasks, async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            task.await;
        })
    }

    /// Sends an operator's command to switch `no`'s supervisor. False when it has none (not a
    /// configured, enabled switch this relay's site dials).
    pub(super) fn command(&self, no: u8, command: SwitchCommand) -> bool {
        let Some(no) = SwitchNo::new(no) else {
            return false;
        };
        self.running
            .get(&no)
            .and_then(|r| r.commands.as_ref())
            .is_some_and(|tx| tx.send(command).is_ok())
    }

    /// What runs for each switch.
    pub(super) fn running(&self) -> BTreeMap<u8, SwitchTasks> {
        self.running
            .iter()
            .map(|(no, r)| {
                let kind = match r.wanted {
                    Wanted::Local(_) => SwitchTasks::Dial,
                    Wanted::Remote(_) => SwitchTasks::Bus,
                };
                (no.get(), kind)
            })
            .collect()
    }

    /// The switches that have a supervisor.
    pub(super) fn supervised(&self) -> Vec<u8> {
        self.running
            .iter()
            .filter(|(_, r)| r.commands.is_some())
            .map(|(no, _)| no.get())
            .collect()
    }
}
