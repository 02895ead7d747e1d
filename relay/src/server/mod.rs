//! The running relay: listeners for the client and bypass ports, one supervisor per switch,
//! and an orderly stop that tells every session first.

mod bus_links;
mod changes;
mod listeners;
mod reading;
mod reconciler;
mod site_config;

pub use changes::EditRefused;

pub use listeners::{BindError, Listeners};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{warn, Instrument};

use crate::calls::CallStore;
use crate::clock::WallClock;
use crate::config::Config;
use crate::hub::{Caller, Hub, Tuning};
use crate::link::recovery::SwitchCommand;
use crate::notify::Notice;
use crate::ports::monitor::MonitorPort;
use crate::session;
use crate::spool::{Committer, CommitterParts, Spool};
use crate::status::Status;
use netseam::{BoxStream, Listener, Network};
pub use reconciler::SwitchTasks;
use reconciler::{Dial, Reconciler};
use wire::Port;

/// Everything a relay is made from.
pub struct RelayParts {
    pub config: Config,
    /// The file the configuration was read from: admin edits and the changes of a shared
    /// site's other relay are saved to it (`None`: kept in memory only).
    pub config_file: Option<std::path::PathBuf>,
    pub net: Arc<dyn Network>,
    pub clock: Arc<dyn WallClock>,
    pub tuning: Tuning,
    /// The bus to use instead of connecting to `bus.nats` (the simulation's in-memory bus).
    pub bus: Option<busseam::Bus>,
}

impl RelayParts {
    /// A relay on the operating system's TCP and clock, with the default limits.
    pub fn new(config: Config) -> RelayParts {
        RelayParts {
            config,
            config_file: None,
            net: Arc::new(netseam::TcpNetwork),
            clock: Arc::new(crate::clock::SystemClock),
            tuning: Tuning::default(),
            bus: None,
        }
    }

    pub fn with_tuning(mut self, tuning: Tuning) -> RelayParts {
        self.tuning = tuning;
        self
    }

    /// The configuration was read from `path`, where changes are saved.
    pub fn from_file(mut self, path: std::path::PathBuf) -> RelayParts {
        self.config_file = Some(path);
        self
    }
}

/// Why [`Relay::hand_over_lease`] did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandOverRefused {
    #[error("this relay shares no site with another (bus.shared is off): it holds no lease")]
    NotShared,
    #[error(
        "this relay does not hold the lease: ask the relay that does (relay ctl status says which)"
    )]
    NotHeld,
}

/// Why the relay could not start; nothing was started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the configuration breaks {} rule(s):\n{}", .0.len(), rule_list(.0))]
    Config(Vec<crate::config::ConfigError>),
    #[error("cannot read the address of a listening port")]
    ListenerAddr(#[source] std::io::Error),
    #[error("cannot use the state directory {} (state_dir)", .0.display())]
    StateDir(std::path::PathBuf, #[source] std::io::Error),
    #[error("cannot open the call-record store {}", .0.display())]
    CallStore(std::path::PathBuf, #[source] rusqlite::Error),
    #[error("cannot open the export spool {}", .0.display())]
    Spool(std::path::PathBuf, #[source] std::io::Error),
    #[error("{field}: {0}", field = .0.field())]
    Tls(#[source] crate::tls::TlsError),
}

fn rule_list(errors: &[crate::config::ConfigError]) -> String {
    let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    list.join("\n")
}

/// A relay that is running; dropping it does not stop it, [`Relay::shutdown`] does.
pub struct Relay {
    hub: Arc<Hub>,
    monitor_addrs: [Option<SocketAddr>; 3],
    /// Each switch's tasks, as the configuration in force asks.
    switches: Arc<std::sync::Mutex<Reconciler>>,
    client_addr: SocketAddr,
    bypass_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Held while a configuration change is worked out and applied, one at a time.
    changes: std::sync::Mutex<()>,
    /// The switches and users as last changed here through the admin interface, for the other
    /// relay of a shared site ([`Relay::share_site_config`]).
    site_config: tokio::sync::watch::Sender<Option<crate::bus::shared_config::SiteConfig>>,
    /// Asks the lease's loop of a shared site to hand the lease over ([`Relay::hand_over_lease`]).
    hand_over: Arc<tokio::sync::Notify>,
    /// The bus given instead of `bus.nats` ([`RelayParts::bus`]).
    given_bus: Option<busseam::Bus>,
}

impl Relay {
    /// Starts serving on `listeners` and, when `auto_connect` is on, dials the switches; with
    /// a bus, connects to it, and for a shared site keeps the switches and users alike with
    /// its other relay. A configuration that breaks a rule is refused whole. (The admin
    /// interface is started with the relay by [`crate::daemon::Daemon`].)
    pub fn start(parts: RelayParts, listeners: Listeners) -> Result<Arc<Relay>, StartError> {
        let config = crate::config::InForce::new(parts.config).map_err(StartError::Config)?;
        let tls = crate::tls::server_config(&config.tls).map_err(StartError::Tls)?;
        let client_addr = listeners
            .client
            .local_addr()
            .map_err(StartError::ListenerAddr)?;
        let bypass_addr = listeners
            .bypass
            .local_addr()
            .map_err(StartError::ListenerAddr)?;
        let addr_of = |l: &Option<Box<dyn Listener>>| l.as_ref().and_then(|l| l.local_addr().ok());
        let monitor_addrs = [
            addr_of(&listeners.monitor_sw),
            addr_of(&listeners.monitor_su),
            addr_of(&listeners.export),
        ];
        let licensing = crate::licensing::Licensing::open(&config.state_dir, parts.clock.now_ms())
            .map_err(|e| StartError::StateDir(config.state_dir.clone(), e))?;
        let state_dir = config.state_dir.clone();
        let store_error = |e| StartError::CallStore(state_dir.join(crate::calls::FILE), e);
        let store = match config.calls.store {
            true => Some(CallStore::open(&state_dir, config.calls.keep_days).map_err(store_error)?),
            false => None,
        };
        let stored = match &store {
            Some(s) => s.last_seq().map_err(store_error)?,
            None => 0,
        };
        let spool_dir = state_dir.join("spool");
        let (spool, committer, damaged) =
            Spool::open(&spool_dir, stored + 1).map_err(|e| StartError::Spool(spool_dir, e))?;
        for d in &damaged {
            warn!("export spool: a damaged entry ends a segment: {d}");
        }
        let spool = Arc::new(spool.with_disk_work_inline(parts.tuning.disk_work_inline));
        let config_file = parts.config_file;
        let hub = Arc::new(Hub::new(
            config,
            parts.net,
            parts.clock,
            parts.tuning,
            licensing,
            spool.clone(),
        ));
        hub.tls.set(tls);
        hub.notices.emit(Notice::RelayStarted {
            version: env!("CARGO_PKG_VERSION").into(),
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let switches = Reconciler::new(hub.clone(), tasks.clone(), stop.clone());
        let relay = Relay {
            hub,
            monitor_addrs,
            client_addr,
            bypass_addr,
            stop,
            tasks,
            switches: Arc::new(std::sync::Mutex::new(switches)),
            changes: Default::default(),
            site_config: tokio::sync::watch::Sender::new(None),
            hand_over: Default::default(),
            given_bus: parts.bus,
        };
        relay.start_committer(committer, store);
        crate::task::spawn_tracked(
            &relay.tasks,
            crate::ports::licence_watch::run(relay.hub.clone(), relay.stop.clone()),
        );
        crate::task::spawn_tracked(
            &relay.tasks,
            expire_parked(relay.hub.clone(), relay.stop.clone()),
        );
        relay.accept(listeners.client, Port::Licensed);
        relay.accept(listeners.bypass, Port::Bypass);
        for (listener, port) in [
            (listeners.monitor_sw, MonitorPort::SwitchMessages),
            (listeners.monitor_su, MonitorPort::SmdrUcd),
            (listeners.export, MonitorPort::Export),
        ] {
            if let Some(l) = listener {
                relay.accept_monitors(l, port);
            }
        }
        // Links shared with another relay of the site are dialled only by the lease holder.
        relay.reconcile(Dial::AsConfigured);
        relay.start_bus();
        let relay = Arc::new(relay);
        crate::task::spawn_tracked(&relay.tasks, relay.clone().share_site_config(config_file));
        Ok(relay)
    }

    /// Starts the spool's committer. Journalled records the call store lacks go to it first (a
    /// crash may have come between the journal and the store).
    fn start_committer(&self, committer: Committer, mut store: Option<CallStore>) {
        if let Some(store) = store.as_mut() {
            let from = store.last_seq().unwrap_or(0) + 1;
            if let Err(e) = self.hub.spool.replay(from, |batch| store.insert(batch)) {
                warn!("cannot read the export spool back into the call-record store: {e}");
            }
        }
        let hub = self.hub.clone();
        let (h1, h2, h3) = (hub.clone(), hub.clone(), hub.clone());
        let parts = CommitterParts {
            limits: Box::new(move || h1.config.load().export.spool),
            now_ms: Box::new(move || h2.clock.now_ms()),
            dropped: Box::new(move |count, reason| {
                h3.notices.emit(Notice::SpoolDropped { count, reason });
            }),
            write_failed: Box::new(move |e| {
                hub.notices.emit(Notice::SpoolWriteFailed {
                    error: e.to_string(),
                });
            }),
            store: store.map(|s| Box::new(s) as Box<dyn crate::spool::RecordSink>),
        };
        crate::task::spawn_tracked(
            &self.tasks,
            committer.run(self.hub.spool.clone(), parts, self.stop.clone()),
        );
    }

    /// Accepts connections on `listener` until the relay stops, serving each with `serve`.
    /// Connections that `end_with_relay` are dropped when it stops; the others (application
    /// sessions) finish on their own, after their `X` reason 2.
    fn accept_with<S, F>(
        &self,
        mut listener: Box<dyn Listener>,
        (what, tls): (&'static str, crate::config::TlsPort),
        end_with_relay: bool,
        serve: S,
    ) where
        S: Fn(Arc<Hub>, BoxStream, Caller) -> F + Clone + Send + Sync + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let hub = self.hub.clone();
        let stop = self.stop.clone();
        let tasks = self.tasks.clone();
        crate::task::spawn_tracked(&self.tasks, async move {
            loop {
                let accepted = tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        hub.stats
                            .connections_accepted
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let stop = stop.clone();
                        let hub = hub.clone();
                        let serve = serve.clone();
                        crate::task::spawn_tracked(&tasks, async move {
                            // On a TLS port, the handshake first (in this connection's task,
                            // so that a slow client holds up no other).
                            let (stream, names) = match hub.tls.on(&hub.config.load().tls, tls) {
                                None => (stream, Vec::new()),
                                Some(config) => match hub.tls.accept(config, stream).await {
                                    Ok(accepted) => accepted,
                                    Err(e) => {
                                        tracing::debug!(%peer, port = what, error = %e, "TLS handshake failed");
                                        return;
                                    }
                                },
                            };
                            let served = serve(hub, stream, Caller { addr: peer, names });
                            tokio::select! {
                                _ = served => {}
                                _ = stop.cancelled(), if end_with_relay => {}
                            }
                        });
                    }
                    Err(e) => {
                        // Out of descriptors or a reset during the handshake: the listener
                        // itself is fine, so back off briefly and keep accepting.
                        warn!(error = %e, port = what, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }

    fn accept(&self, listener: Box<dyn Listener>, port: Port) {
        let what = if port == Port::Licensed {
            "client"
        } else {
            "bypass"
        };
        let tls = crate::config::TlsPort::Client;
        self.accept_with(
            listener,
            (what, tls),
            false,
            move |hub, stream, caller| async move {
                session::serve(hub, stream, caller, port).await;
            },
        );
    }

    fn accept_monitors(&self, listener: Box<dyn Listener>, port: MonitorPort) {
        use crate::config::TlsPort;
        let what = match port {
            MonitorPort::SwitchMessages => ("switch-message monitor", TlsPort::Monitor),
            MonitorPort::SmdrUcd => ("SMDR/UCD monitor", TlsPort::Monitor),
            MonitorPort::Export => ("export", TlsPort::Export),
        };
        self.accept_with(
            listener,
            what,
            true,
            move |hub, stream, caller| async move {
                let peer = caller.addr;
                match port {
                    MonitorPort::Export => crate::ports::export::serve(hub, stream, peer).await,
                    _ => crate::ports::monitor::serve(hub, stream, peer, port).await,
                }
            },
        );
    }

    /// Where a monitor or export port listens, when it is on.
    pub fn monitor_addr(&self, port: MonitorPort) -> Option<SocketAddr> {
        self.monitor_addrs[match port {
            MonitorPort::SwitchMessages => 0,
            MonitorPort::SmdrUcd => 1,
            MonitorPort::Export => 2,
        }]
    }

    /// Completes when the relay begins to stop (for streams that must end with it).
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    /// With a bus: connects to it (in the background, retrying while the server is away),
    /// publishes and serves the local switches; the reconciler serves the remote ones from
    /// then on.
    fn start_bus(&self) {
        let config = self.hub.config.load_full();
        let url = config.bus.nats.clone();
        let given = self.given_bus.clone();
        if url.is_none() && given.is_none() {
            return;
        }
        let hub = self.hub.clone();
        let stop = self.stop.clone();
        let tasks = self.tasks.clone();
        let switches = self.switches.clone();
        let hand_over = self.hand_over.clone();
        crate::task::spawn_tracked(&self.tasks, async move {
            let site = config.bus.site.clone();
            let connected = crate::bus::connect(url.as_deref(), given, &site, stop.clone()).await;
            let (client, outbox) = match connected {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(?url, error = %e, "bus: cannot start the NATS client");
                    return;
                }
            };
            hub.bus.store(Some(outbox.clone()));
            let local = {
                let mut switches = switches.lock().unwrap_or_else(|e| e.into_inner());
                switches.bus_connected(client.clone());
                switches.local()
            };
            let bus = bus_links::BusLinks {
                hub: hub.clone(),
                client,
                outbox,
                site,
            };
            if config.bus.shared {
                // Both relays of a site log the same messages: each says which it is.
                let span = tracing::info_span!("site", node = %config.bus.node);
                crate::task::spawn_tracked(
                    &tasks,
                    crate::bus::sessions::share_sessions(
                        hub.clone(),
                        bus.client.clone(),
                        bus.site.clone(),
                        config.bus.node.clone(),
                        stop.clone(),
                    )
                    .instrument(span.clone()),
                );
                crate::task::spawn_tracked(
                    &tasks,
                    bus_links::share_links(
                        bus,
                        config.bus.node.clone(),
                        switches,
                        local,
                        hand_over,
                        stop,
                    )
                    .instrument(span),
                );
            } else {
                bus_links::export_links(bus, local, stop).await;
            }
        });
    }

    /// Hands the lease on the site's links over to the other relay of a shared site: this
    /// relay closes its links and releases the lease, the other takes it at once; this one
    /// may take it again after 3 s if no other relay has. Refused when this relay does not
    /// hold the lease.
    pub fn hand_over_lease(&self) -> Result<(), HandOverRefused> {
        let config = self.hub.config.load();
        if !config.bus.shared {
            return Err(HandOverRefused::NotShared);
        }
        let held = self
            .hub
            .bus
            .load()
            .as_ref()
            .is_some_and(|b| b.lease_held.load(std::sync::atomic::Ordering::Relaxed));
        if !held {
            return Err(HandOverRefused::NotHeld);
        }
        self.hand_over.notify_one();
        Ok(())
    }

    /// Makes each switch's tasks match the configuration in force.
    fn reconcile(&self, dial: Dial) {
        let config = self.hub.config.load_full();
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reconcile(&config, dial);
    }

    fn command(&self, no: u8, command: SwitchCommand) -> bool {
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .command(no, command)
    }

    /// Connects switch `no` now (also after automatic recovery gave up). False when no such
    /// enabled switch is configured.
    pub fn connect_switch(&self, no: u8) -> bool {
        self.command(no, SwitchCommand::Connect)
    }

    /// Disconnects switch `no` (or stops trying) until it is connected again. The link is
    /// down when this returns (an identify that comes after is refused, not admitted and
    /// then closed); its supervisor closes the socket after.
    pub fn disconnect_switch(&self, no: u8) -> bool {
        let known = self.command(no, SwitchCommand::Disconnect);
        if known {
            self.hub.link_lost(no, crate::notify::LossCause::Operator);
        }
        known
    }

    /// Aborts the attempt in progress on switch `no`; the recovery schedule goes on.
    pub fn abort_attempt(&self, no: u8) -> bool {
        self.command(no, SwitchCommand::Abort)
    }

    /// What runs for each switch now: the configuration in force decides it (enabled
    /// switches only; a remote one once the bus is connected).
    pub fn switch_tasks(&self) -> std::collections::BTreeMap<u8, SwitchTasks> {
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running()
    }

    /// The switches that have a supervisor.
    fn supervised(&self) -> Vec<u8> {
        self.switches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .supervised()
    }

    /// Closes a session as the operator (`X` reason 7). False when there is no such session.
    pub fn close_session(&self, id: u64) -> bool {
        let Some(session) = self.hub.session(id) else {
            return false;
        };
        session.close(
            wire::CloseReason::Administrator,
            "closed by the administrator",
        );
        true
    }

    /// Connects every enabled switch.
    pub fn connect_all(&self) {
        for no in self.supervised() {
            self.connect_switch(no);
        }
    }

    /// Disconnects every switch and closes every session (`X` reason 2).
    pub fn disconnect_all(&self) {
        self.hub
            .close_all_sessions("all switches disconnected by the operator");
        for no in self.supervised() {
            self.disconnect_switch(no);
        }
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn bypass_addr(&self) -> SocketAddr {
        self.bypass_addr
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Registers (or replaces) the licence: the key must verify against the configured issuers,
    /// be unexpired and be bound to a MAC present now; then it is written to `state_dir` and
    /// governs identifies from now on. A refused key changes nothing.
    pub fn register_licence(
        &self,
        text: &str,
    ) -> Result<crate::licensing::key::Payload, crate::licensing::LicenceError> {
        crate::ports::licence_watch::register(&self.hub, text)
    }

    /// Tasks still running (listeners, switch supervisors, connections).
    pub fn tasks_alive(&self) -> usize {
        self.tasks.len()
    }

    pub fn status(&self) -> Status {
        Status::of(&self.hub)
    }

    /// Stops: every session gets `X` reason 2 first, then the links and listeners close.
    /// Returns when every task has finished.
    pub async fn shutdown(&self) {
        self.hub.notices.emit(Notice::RelayStopping);
        self.hub.close_all_sessions("the relay is shutting down");
        // Sessions finish writing on their own; links and listeners stop now.
        self.stop.cancel();
        self.tasks.close();
        let grace = self.hub.tuning.close_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("some connections did not finish within the grace period");
        }
    }
}

/// Ends, every second, the waits of resumable sessions whose window has passed.
async fn expire_parked(hub: Arc<Hub>, stop: CancellationToken) {
    crate::clock::every(std::time::Duration::from_secs(1), stop, || {
        hub.expire_parked()
    })
    .await
}
