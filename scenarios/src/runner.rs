//! Builds a site (relay, simulated switches, simulated applications) on an in-memory network
//! with a paused clock, plays a scenario's steps, and writes what every party saw.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use client_sim::app::{Reader, ResumeMemory, Writer};
use client_sim::SimApp;
use netseam::MemNetwork;
use relay::clock::FixedStartClock;
use relay::config::{Config, ExportFormat, SwitchConfig};
use relay::{Relay, Tuning};
use serde::Serialize;
use switch_sim::{Answering, Settings, SimSwitch};
use testkit::SiteSpec;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use wire::str8_body;
use wire::{Kind, LinkMsg, Port, Product, Str8};

use crate::invariants::{self, Checker, Violation};
use crate::observe::{self, End, MonitorConn, Observations};
use crate::render;
use crate::schema::{
    AppSpec, Fault, LicenceSpec, MonitorSpec, OperatorAction, Scenario, Step, SwitchEdit,
    SwitchSpec,
};
use relay::licensing::key::{self, MacType, Payload};

/// Wall time at the start of every scenario: 2026-01-05 09:00:00 UTC.
const EPOCH_MS: u64 = 1_767_603_600_000;
/// Virtual time each step is given to settle.
const SETTLE: Duration = Duration::from_millis(10);
const RELAY_IP: [u8; 4] = [10, 0, 0, 1];
/// The scenario host's MAC (license.host_macs), for computer-bound licences.
const HOST_MAC: &str = "02:00:00:00:00:01";

/// The scenarios' licence issuer: a key pair made here from a fixed seed.
fn test_issuer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// What every party saw.
#[derive(Debug, Serialize)]
pub struct Transcript {
    pub description: String,
    /// Per application: what it received, in order, with virtual seconds.
    pub apps: BTreeMap<String, Vec<String>>,
    /// Per monitor or export connection: what it received, in order.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub monitors: BTreeMap<String, Vec<String>>,
    /// Per switch: what happened on it and what the relay sent it.
    pub switches: BTreeMap<String, SwitchLog>,
    pub notifications: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<Checkpoint>,
    /// What became of each licence step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub licences: Vec<String>,
    /// What became of each `reconfigure` step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconfigurations: Vec<String>,
    /// Why the scenario could not be played to the end, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The first invariant broken (scenarios with `invariants: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
}

impl Transcript {
    fn new(description: String) -> Transcript {
        Transcript {
            description,
            apps: BTreeMap::new(),
            monitors: BTreeMap::new(),
            switches: BTreeMap::new(),
            notifications: Vec::new(),
            checkpoints: Vec::new(),
            licences: Vec::new(),
            reconfigurations: Vec::new(),
            error: None,
            violation: None,
        }
    }
}

/// A checked play: the transcript, the first invariant broken and after which step (0-based;
/// the number of steps when it was found at the end), and the virtual time it took.
pub struct Checked {
    pub transcript: Transcript,
    pub violation: Option<(usize, Violation)>,
    pub virtual_time: Duration,
}

#[derive(Debug, Default, Serialize)]
pub struct SwitchLog {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Frames from the relay after the link opened (heartbeats left out).
    pub received: Vec<String>,
    pub links_opened: u64,
}

#[derive(Debug, Serialize)]
pub struct Checkpoint {
    pub name: String,
    pub at: String,
    pub switches: Vec<String>,
    pub sessions: Vec<String>,
    /// SMDR and UCD records the relay has received from switches so far.
    pub records: String,
    /// What governs admission, and licensed products in use.
    pub licence: String,
}

/// Reads and plays a scenario file; a file that cannot be read or parsed gives a transcript
/// that says so.
pub fn run_file(path: &Path) -> Transcript {
    run_file_timed(path).0
}

/// [`run_file`], also returning how much virtual time the scenario took.
pub fn run_file_timed(path: &Path) -> (Transcript, Duration) {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| {
            serde_yaml::from_str::<Scenario>(&text).map_err(|e| format!("invalid scenario: {e}"))
        });
    match parsed {
        Ok(scenario) => run_scenario_timed(&scenario),
        Err(e) => (
            Transcript {
                error: Some(e),
                ..Transcript::new(String::new())
            },
            Duration::ZERO,
        ),
    }
}

/// Plays a scenario on its own paused-clock runtime.
pub fn run_scenario(scenario: &Scenario) -> Transcript {
    run_scenario_timed(scenario).0
}

/// [`run_scenario`], also returning how much virtual time the scenario took.
pub fn run_scenario_timed(scenario: &Scenario) -> (Transcript, Duration) {
    let c = play_checked(scenario);
    (c.transcript, c.virtual_time)
}

/// Plays a scenario on its own paused-clock runtime, checking invariants after every step
/// when the scenario asks for it.
pub fn play_checked(scenario: &Scenario) -> Checked {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let start = Instant::now();
        let (transcript, violation) = Site::play(scenario).await;
        Checked {
            transcript,
            violation,
            virtual_time: start.elapsed(),
        }
    })
}

type Log = Arc<Mutex<Vec<(Duration, String)>>>;

struct App {
    spec: AppSpec,
    log: Log,
    writer: Option<Writer>,
    idle_reader: Option<Reader>,
    recorder: Option<tokio::task::JoinHandle<()>>,
    /// Stops the recorder and leaves the connection open, unread (a half-open connection).
    hang: Option<tokio::sync::oneshot::Sender<()>>,
    /// Recorders of hung connections, holding them open.
    hung: Vec<tokio::task::JoinHandle<()>>,
    /// What a resumable application remembers between its connections.
    resume: Arc<Mutex<ResumeMemory>>,
    /// The current connection's index in the observations.
    conn: Option<usize>,
    /// The last connection admitted: the session a resumed identify restores (a refused
    /// identify in between restores nothing).
    admitted_conn: Option<usize>,
}

/// A monitor connection and what it received.
struct Monitor {
    spec: MonitorSpec,
    log: Log,
    idle: Option<SimApp>,
    recorder: Option<tokio::task::JoinHandle<()>>,
    /// The current connection's index in the observations (invariants checked).
    conn: Option<usize>,
    /// A collector of the export port's native stream (records and NULs, not frames).
    native: bool,
}

pub(crate) struct Site {
    start: Instant,
    /// Whether invariants are checked (switches tag their events).
    checked: bool,
    /// What every application did and received, for the invariant checker.
    pub(crate) obs: Observations,
    monitors: BTreeMap<String, Monitor>,
    _state_dir: tempfile::TempDir,
    net: MemNetwork,
    pub(crate) relay: Arc<Relay>,
    pub(crate) switches: BTreeMap<u8, SimSwitch>,
    switch_actions: BTreeMap<u8, Vec<String>>,
    apps: BTreeMap<String, App>,
    checkpoints: Vec<Checkpoint>,
    reconfigurations: Vec<String>,
    licences: Vec<String>,
    clock: Arc<FixedStartClock>,
}

fn push(log: &Log, at: Duration, line: String) {
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((at, line));
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

impl Site {
    async fn play(scenario: &Scenario) -> (Transcript, Option<(usize, Violation)>) {
        let start = Instant::now();
        let mut transcript = Transcript::new(scenario.description.trim().to_owned());
        let mut site = match Site::build(scenario, start).await {
            Ok(site) => site,
            Err(e) => {
                transcript.error = Some(e);
                return (transcript, None);
            }
        };
        tokio::time::sleep(SETTLE * 10).await;
        let mut checker = scenario.invariants.then(|| Checker::new(&site));
        let mut violation = None;
        for (i, step) in scenario.steps.iter().map(|e| &e.0).enumerate() {
            if let Err(e) = site.step(step).await {
                transcript.error = Some(format!("step {} ({step:?}): {e}", i + 1));
                break;
            }
            tokio::time::sleep(SETTLE).await;
            if let Some(Err(v)) = checker.as_mut().map(|c| c.after_step(&site)) {
                violation = Some((i, v));
                break;
            }
        }
        tokio::time::sleep(SETTLE * 10).await;
        if let (Some(c), None) = (checker.as_mut(), &violation) {
            // Time for every answer, the relay's own after 30 s included.
            tokio::time::sleep(Duration::from_secs(31)).await;
            let mut end = c.at_end(&site);
            if end.is_ok() {
                site.leave_all();
                tokio::time::sleep(Duration::from_secs(1)).await;
                end = c.baseline(&site);
            }
            violation = end.err().map(|v| (scenario.steps.len(), v));
        }
        if let Some((i, v)) = &violation {
            let after = match scenario.steps.get(*i) {
                Some(step) => format!("after step {} ({:?})", i + 1, step.0),
                None => "at the end".to_owned(),
            };
            transcript.violation = Some(format!("{after}: {v}"));
        }
        (site.finish(transcript).await, violation)
    }

    /// Every application and monitor closes its connection.
    fn leave_all(&mut self) {
        for app in self.apps.values_mut() {
            if let Some(r) = app.recorder.take() {
                r.abort();
            }
            for h in app.hung.drain(..) {
                h.abort();
            }
            app.writer = None;
            app.idle_reader = None;
            if let Some(c) = app.conn {
                self.obs.with(c, |c| {
                    c.end.get_or_insert(End::Left);
                });
            }
        }
        for m in self.monitors.values_mut() {
            if let Some(r) = m.recorder.take() {
                r.abort();
            }
            m.idle = None;
            if let Some(c) = m.conn {
                self.obs.with_monitor(c, |m| {
                    m.end.get_or_insert(End::Left);
                });
            }
        }
    }

    async fn build(scenario: &Scenario, start: Instant) -> Result<Site, String> {
        let net = MemNetwork::new();
        let mut switches = Vec::new();
        for spec in &scenario.switches {
            let mut settings = switch_settings(spec)?;
            settings.tag_events = scenario.invariants;
            switches.push((spec.no, settings));
        }
        // The switch table as the scenario gives it (order, passwords, enabled, and only the
        // configured ones), then the scenario's own configuration over it; a configuration
        // the scenario gets wrong is refused here, before anything starts.
        let table: Vec<SwitchConfig> = scenario
            .switches
            .iter()
            .filter(|spec| spec.configured)
            .map(|spec| {
                let mut sc = SwitchConfig::new(
                    spec.no,
                    &switch_host(spec.no).to_string(),
                    SWITCH_PORT,
                    spec.relay_password.as_deref().unwrap_or("1234"),
                );
                sc.enabled = spec.enabled.unwrap_or(true);
                sc
            })
            .collect();
        merge(Config::default(), scenario.config.as_ref())?;
        let over = scenario.config.clone();
        let mut tuning = Tuning {
            resume_seed: Some(1),
            ..Tuning::default()
        };
        if let Some(b) = scenario.tuning.session_queue_bytes {
            tuning.session_queue_bytes = b;
        }
        if let Some(n) = scenario.tuning.max_in_flight {
            tuning.max_in_flight = n;
        }
        if let Some(b) = scenario.tuning.monitor_queue_bytes {
            tuning.monitor_queue_bytes = b;
        }
        let clock = Arc::new(FixedStartClock::new(EPOCH_MS));
        let site = SiteSpec::switches(0)
            .numbered(switches)
            .switch_host(switch_host)
            .switch_port(SWITCH_PORT)
            .on_network(Arc::new(net.clone()))
            .clock(clock.clone())
            .tuning(|t| *t = tuning)
            .configured_ports()
            .configure(move |c| {
                c.switches = table;
                c.license.host_macs = Some(vec![HOST_MAC.into()]);
                c.license.issuer_keys =
                    vec![data_encoding::HEXLOWER.encode(test_issuer().verifying_key().as_bytes())];
                *c = merge(c.clone(), over.as_ref()).expect("checked before the start");
            })
            .try_start()
            .await
            .map_err(|e| error_chain(&e))?;
        let testkit::Site {
            relay,
            switches,
            state_dir,
        } = site;
        let mut apps = BTreeMap::new();
        for a in &scenario.apps {
            for spec in expand_copies(a)? {
                apps.insert(
                    spec.name.clone(),
                    App {
                        spec,
                        log: Arc::default(),
                        writer: None,
                        idle_reader: None,
                        recorder: None,
                        hang: None,
                        hung: Vec::new(),
                        resume: Arc::default(),
                        conn: None,
                        admitted_conn: None,
                    },
                );
            }
        }
        let monitors = scenario
            .monitors
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    Monitor {
                        spec: MonitorSpec {
                            name: m.name.clone(),
                            port: m.port.clone(),
                            password: m.password.clone(),
                            reads: m.reads,
                        },
                        log: Arc::default(),
                        idle: None,
                        recorder: None,
                        conn: None,
                        native: false,
                    },
                )
            })
            .collect();
        Ok(Site {
            start,
            checked: scenario.invariants,
            obs: Observations::default(),
            monitors,
            _state_dir: state_dir,
            net,
            relay,
            switches,
            switch_actions: BTreeMap::new(),
            apps,
            checkpoints: Vec::new(),
            reconfigurations: Vec::new(),
            licences: Vec::new(),
            clock,
        })
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn app(&mut self, name: &str) -> Result<&mut App, String> {
        self.apps
            .get_mut(name)
            .ok_or_else(|| format!("no application named {name:?}"))
    }

    fn switch(&self, no: u8) -> Result<&SimSwitch, String> {
        self.switches
            .get(&no)
            .ok_or_else(|| format!("no switch {no}"))
    }

    /// Records the outcome of an operator's edit in the transcript.
    fn edited(&mut self, outcome: Result<Vec<u8>, relay::server::EditRefused<String>>) {
        let at = secs(self.now());
        let line = match outcome {
            Ok(added) if added.is_empty() => format!("{at} edit applied"),
            Ok(added) => format!("{at} edit applied; switches added: {added:?}"),
            Err(relay::server::EditRefused::Edit(e)) => format!("{at} edit refused: {e}"),
            Err(relay::server::EditRefused::Config(errors)) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!("{at} edit refused: {}", list.join("; "))
            }
        };
        self.reconfigurations.push(line);
    }

    fn act(&mut self, no: u8, line: String) {
        let at = secs(self.now());
        self.switch_actions
            .entry(no)
            .or_default()
            .push(format!("{at} {line}"));
    }

    async fn writer(&mut self, name: &str) -> Result<Writer, String> {
        self.app(name)?
            .writer
            .clone()
            .ok_or_else(|| format!("{name} is not connected"))
    }

    /// A write on a connection the relay has closed is what a real application meets too:
    /// it goes in the application's record, and the scenario goes on.
    fn sent(&mut self, name: &str, result: std::io::Result<()>) -> Result<(), String> {
        if let Err(e) = result {
            let at = self.now();
            push(&self.app(name)?.log, at, format!("send failed: {e}"));
        }
        Ok(())
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Connect(name) => {
                let names = named(&self.apps, name);
                if names.is_empty() {
                    return Err(format!("no application named {name:?}"));
                }
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(SETTLE).await;
                    }
                    self.connect(n, None).await?;
                }
                Ok(())
            }
            Step::ConnectMonitor(name) => self.connect_monitor(name).await,
            Step::DisconnectMonitor(name) => {
                let at = self.now();
                let m = self
                    .monitors
                    .get_mut(name)
                    .ok_or_else(|| format!("no monitor named {name:?}"))?;
                if let Some(r) = m.recorder.take() {
                    r.abort();
                }
                m.idle = None;
                push(&m.log, at, "disconnected".into());
                if let Some(c) = m.conn.take() {
                    self.obs.with_monitor(c, |c| {
                        c.end.get_or_insert(End::Left);
                    });
                }
                Ok(())
            }
            Step::ConnectRaw { app, hex } => self.connect(app, Some(parse_hex(hex)?)).await,
            Step::Disconnect(name) => {
                let at = self.now();
                let app = self.app(name)?;
                if let Some(r) = app.recorder.take() {
                    r.abort();
                }
                app.writer = None;
                app.idle_reader = None;
                push(&app.log, at, "disconnected".into());
                if let Some(c) = app.conn {
                    self.obs.with(c, |c| {
                        c.end.get_or_insert(End::Left);
                    });
                }
                Ok(())
            }
            Step::Hang(name) => {
                let at = self.now();
                let app = self.app(name)?;
                let Some(hang) = app.hang.take() else {
                    push(&app.log, at, "hang: not reading".into());
                    return Ok(());
                };
                let _ = hang.send(());
                app.writer = None;
                if let Some(r) = app.recorder.take() {
                    app.hung.push(r);
                }
                if let Some(c) = app.conn {
                    // It no longer reads: the relay may close it as silent, or a resumed
                    // connection may replace it.
                    self.obs.with(c, |c| {
                        c.reads = false;
                        c.stalled = true;
                    });
                }
                Ok(())
            }
            Step::Resume(name) if self.monitors.contains_key(name) => {
                let start = self.start;
                let m = self.monitors.get_mut(name).expect("checked");
                let app = m
                    .idle
                    .take()
                    .ok_or_else(|| format!("{name} is not waiting to read"))?;
                let seen = self.monitor_seen(name);
                let m = self.monitors.get_mut(name).expect("checked");
                m.recorder = Some(if m.native {
                    record_native_export(app, m.log.clone(), start)
                } else {
                    record_monitor(app, m.log.clone(), start, seen)
                });
                Ok(())
            }
            Step::Resume(name) => {
                let start = self.start;
                let obs = self.obs.clone();
                let app = self.app(name)?;
                let reader = app
                    .idle_reader
                    .take()
                    .ok_or_else(|| format!("{name} is not waiting to read"))?;
                let conn = app.conn.map(|c| (obs, c));
                if let Some((obs, c)) = &conn {
                    obs.with(*c, |c| c.reads = true);
                }
                let (hang, hang_rx) = tokio::sync::oneshot::channel();
                app.hang = Some(hang);
                app.recorder = Some(record(
                    Recording {
                        reader,
                        log: app.log.clone(),
                        p3: app.spec.protocol == 3,
                        start,
                        conn,
                        resume: app.resume.clone(),
                    },
                    hang_rx,
                ));
                Ok(())
            }
            Step::Request {
                app,
                switch,
                code,
                invoke,
                fields,
            } => {
                let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                let w = self.writer(app).await?;
                let code = code_byte(code)?;
                if let Some(c) = self.app(app)?.conn {
                    self.obs.with(c, |c| {
                        c.requests.push(observe::Request {
                            switch: if c.protocol == 3 {
                                Some(switch.unwrap_or(0))
                            } else {
                                None
                            },
                            invoke: *invoke,
                            code,
                        })
                    });
                }
                let sent = w.request(*switch, code, *invoke, &str8_body(&fields)).await;
                self.sent(app, sent)
            }
            Step::Device {
                app,
                add,
                switch,
                device,
            } => {
                let frame = LinkMsg::Device {
                    add: *add,
                    switch: *switch,
                    device: Str8::lossy(device),
                }
                .encode()
                .map_err(|e| e.to_string())?;
                let w = self.writer(app).await?;
                if let Some(c) = self.app(app)?.conn {
                    self.obs.with(c, |c| {
                        let resolved = match (*switch, c.protocol) {
                            (0, _) | (_, 2) => c.default_switch,
                            (n, _) => n,
                        };
                        c.touched.insert((resolved, device.clone()));
                        c.touched.insert((*switch, device.clone()));
                    });
                }
                let sent = w.send_raw(&frame).await;
                self.sent(app, sent)
            }
            Step::Send { app, hex } => {
                let bytes = parse_hex(hex)?;
                let w = self.writer(app).await?;
                if let Some(c) = self.app(app)?.conn {
                    self.obs.with(c, |c| c.raw = true);
                }
                let sent = w.send_raw(&bytes).await;
                self.sent(app, sent)
            }
            Step::Phone {
                switch,
                code,
                device,
                to,
            } => {
                let result = self
                    .switch(*switch)?
                    .phone(code_byte(code)?, device, to.as_deref());
                let to = to.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
                self.act(
                    *switch,
                    format!("phone {code} {device}{to}: result {result}"),
                );
                Ok(())
            }
            Step::Incoming {
                switch,
                trunk,
                device,
            } => {
                let result = self.switch(*switch)?.incoming_call(trunk, device);
                self.act(
                    *switch,
                    format!("incoming call on {trunk} for {device}: result {result}"),
                );
                Ok(())
            }
            Step::Licence(spec) => {
                let at = secs(self.now());
                let text = licence_text(spec)?;
                let line = match self.relay.register_licence(&text) {
                    Ok(p) => format!("{at} licence {} registered", p.serial),
                    Err(e) => format!("{at} licence {} refused: {e}", spec.serial),
                };
                self.licences.push(line);
                Ok(())
            }
            Step::LicenceFile(spec) => {
                let at = secs(self.now());
                let text = licence_text(spec)?;
                relay::licensing::store::write(&self.relay.hub().config.load().state_dir, &text)
                    .map_err(|e| e.to_string())?;
                let forged = if spec.forge { " (forged)" } else { "" };
                self.licences.push(format!(
                    "{at} licence {}{forged} written to the state directory",
                    spec.serial
                ));
                Ok(())
            }
            Step::SkipDays(days) => {
                self.clock.skip_ms(days * 86_400_000);
                Ok(())
            }
            Step::ReportUcd(no) => {
                let n = self.switch(*no)?.report_ucd();
                self.act(*no, format!("UCD report: {n} record(s)"));
                Ok(())
            }
            Step::Reconfigure(changes) => {
                let current = (**self.relay.hub().config.load()).clone();
                let at = secs(self.now());
                let line = match merge(current, Some(changes)) {
                    Err(e) => format!("{at} refused: {e}"),
                    Ok(next) => match self.relay.reconfigure(next) {
                        Ok(added) if added.is_empty() => format!("{at} applied"),
                        Ok(added) => format!("{at} applied; switches added: {added:?}"),
                        Err(errors) => {
                            let list: Vec<String> =
                                errors.iter().map(ToString::to_string).collect();
                            format!("{at} refused: {}", list.join("; "))
                        }
                    },
                };
                self.reconfigurations.push(line);
                Ok(())
            }
            Step::Edit(changes) => {
                let outcome = self.relay.edit_config(None, |config: &mut Config| {
                    *config = merge(config.clone(), Some(changes))?;
                    Ok::<(), String>(())
                });
                self.edited(outcome);
                Ok(())
            }
            Step::EditSwitch { switch, change } => {
                let no = *switch;
                let outcome = self.relay.edit_config(None, |config: &mut Config| {
                    let at = config.switches.iter().position(|s| s.no == no);
                    match (change, at) {
                        (SwitchEdit::Add, None) => config.switches.push(SwitchConfig::new(
                            no,
                            &format!("10.0.1.{no}"),
                            5002,
                            "1234",
                        )),
                        (SwitchEdit::Add, Some(_)) => return Err(format!("switch {no} exists")),
                        (_, None) => return Err(format!("switch {no} is not configured")),
                        (SwitchEdit::Delete, Some(i)) => {
                            config.switches.remove(i);
                        }
                        (SwitchEdit::Enable | SwitchEdit::Disable, Some(i)) => {
                            config.switches[i].enabled = matches!(change, SwitchEdit::Enable);
                        }
                    }
                    Ok(())
                });
                self.edited(outcome);
                Ok(())
            }
            Step::Burst {
                switch,
                device,
                count,
            } => {
                // Identical events, so a transcript shows them as one line with a count.
                let one = switch_sim::switch::event_frame(b's', device, &[0, 0, 0]);
                let mut batch = BytesMut::with_capacity(one.len() * count);
                for _ in 0..*count {
                    batch.extend_from_slice(&one);
                }
                self.switch(*switch)?.send_raw(batch.freeze());
                self.act(*switch, format!("burst of {count} events about {device}"));
                Ok(())
            }
            Step::Fault { switch, fault } => {
                let sw = self.switch(*switch)?.clone();
                match &fault.0 {
                    Fault::Drop => sw.drop_link(),
                    Fault::HalfOpen => sw.half_open(),
                    Fault::Garbage => sw.send_garbage(16),
                    Fault::Oversize => sw.send_oversize(),
                    Fault::RefuseOpens(n) => {
                        sw.refuse_next_opens(*n);
                        true
                    }
                    Fault::Silent => {
                        sw.configure(|s| s.answering = Answering::Silent);
                        true
                    }
                    Fault::NoHeartbeats => {
                        sw.configure(|s| s.heartbeat_replies = false);
                        true
                    }
                    Fault::MuteOpens => {
                        sw.configure(|s| s.answer_opens = false);
                        true
                    }
                    Fault::AnswerOpens => {
                        sw.configure(|s| s.answer_opens = true);
                        true
                    }
                    Fault::SlowAnswers(d) => {
                        let d = duration(d)?;
                        sw.configure(|s| s.answer_delay = d);
                        true
                    }
                    Fault::Stall(d) => sw.stall(duration(d)?),
                    Fault::Heal => {
                        sw.heal();
                        true
                    }
                };
                self.act(*switch, format!("fault: {:?}", fault.0));
                Ok(())
            }
            Step::Operator(action) => {
                let (what, no, done) = match action {
                    OperatorAction {
                        connect: Some(n), ..
                    } => ("connect", *n, self.relay.connect_switch(*n)),
                    OperatorAction {
                        disconnect: Some(n),
                        ..
                    } => ("disconnect", *n, self.relay.disconnect_switch(*n)),
                    OperatorAction { abort: Some(n), .. } => {
                        ("abort the attempt on", *n, self.relay.abort_attempt(*n))
                    }
                    _ => {
                        return Err(
                            "operator: give connect, disconnect or abort with a switch number"
                                .into(),
                        )
                    }
                };
                let line = format!(
                    "operator: {what} switch {no}{}",
                    if done { "" } else { " (no such switch)" }
                );
                self.act(no, line);
                Ok(())
            }
            Step::ConnectAll => {
                self.relay.connect_all();
                for no in self.switches.keys().copied().collect::<Vec<_>>() {
                    self.act(no, "operator: connect all".into());
                }
                Ok(())
            }
            Step::DisconnectAll => {
                self.relay.disconnect_all();
                for no in self.switches.keys().copied().collect::<Vec<_>>() {
                    self.act(no, "operator: disconnect all".into());
                }
                Ok(())
            }
            Step::CloseSession(name) => {
                let at = self.now();
                let app = self.app(name)?;
                let (ip, product) = (app.spec.address, app.spec.product.clone());
                let log = app.log.clone();
                let product = Product::parse(&product);
                let session = self
                    .relay
                    .hub()
                    .sessions()
                    .into_iter()
                    .filter(|s| s.peer.ip() == ip && Some(s.product) == product)
                    .min_by_key(|s| s.id);
                let line = match session {
                    Some(s) => {
                        self.relay.close_session(s.id);
                        format!("operator closes session {}", s.id)
                    }
                    None => "operator finds no session to close".into(),
                };
                push(&log, at, line);
                Ok(())
            }
            Step::Advance(text) => {
                tokio::time::sleep(duration(text)?).await;
                Ok(())
            }
            Step::Checkpoint(name) => {
                let status = self.relay.status();
                let stats = &self.relay.hub().stats;
                let records = format!(
                    "smdr {}, ucd {}",
                    stats.smdr_records.load(Ordering::Relaxed),
                    stats.ucd_records.load(Ordering::Relaxed)
                );
                let licence = {
                    let hub = self.relay.hub();
                    let standing = hub.standing();
                    let usage = hub.licensing.usage();
                    let limits = standing
                        .entitlements()
                        .map(|e| {
                            format!(
                                "Call {}/{}, OpenTSP {}/{}, Operator {}/{}",
                                usage.counted(Product::Call),
                                e.call,
                                usage.counted(Product::OpenTsp),
                                e.opentsp,
                                usage.counted(Product::Operator),
                                e.operator
                            )
                        })
                        .unwrap_or_else(|| "no licensed product admitted".into());
                    format!("{}: {limits}", standing.name())
                };
                self.checkpoints.push(Checkpoint {
                    name: name.clone(),
                    at: secs(self.now()),
                    switches: status
                        .switches
                        .iter()
                        .map(|s| format!("{} {}", s.no, if s.up { "up" } else { "down" }))
                        .collect(),
                    sessions: status
                        .sessions
                        .iter()
                        .map(|s| {
                            let sw: Vec<String> = s.switches.iter().map(u8::to_string).collect();
                            format!(
                                "{} protocol {} switches [{}] {}",
                                s.address,
                                s.protocol,
                                sw.join(","),
                                s.state
                            )
                        })
                        .collect(),
                    records,
                    licence,
                });
                Ok(())
            }
        }
    }

    async fn connect_monitor(&mut self, name: &str) -> Result<(), String> {
        let start = self.start;
        let net = self.net.clone();
        let port = {
            let m = self
                .monitors
                .get(name)
                .ok_or_else(|| format!("no monitor named {name:?}"))?;
            let which = match m.spec.port.as_str() {
                "sw" => relay::ports::monitor::MonitorPort::SwitchMessages,
                "su" => relay::ports::monitor::MonitorPort::SmdrUcd,
                "export" => relay::ports::monitor::MonitorPort::Export,
                other => return Err(format!("monitor port {other:?}: use sw, su or export")),
            };
            self.relay
                .monitor_addr(which)
                .ok_or_else(|| format!("the {} port is off", m.spec.port))?
        };
        let native = self.relay.hub().config.load().export.format == ExportFormat::Native;
        let m = self.monitors.get_mut(name).expect("checked");
        let mut app = SimApp::connect_on(&net, port, Some(IpAddr::from([10, 0, 0, 200])))
            .await
            .map_err(|e| e.to_string())?;
        m.native = m.spec.port == "export" && native;
        if m.native {
            // A collector of the switch's own stream sends its password as one line.
            if let Some(p) = &m.spec.password {
                app.send_raw(format!("{p}\r\n").as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        } else if let Some(p) = &m.spec.password {
            let hello = LinkMsg::Password {
                password: Str8::lossy(p),
            }
            .encode()
            .map_err(|e| e.to_string())?;
            app.send_raw(&hello).await.map_err(|e| e.to_string())?;
        }
        if self.checked {
            let index = self.obs.add_monitor(MonitorConn {
                name: name.to_owned(),
                ..MonitorConn::default()
            });
            m.conn = Some(index);
        }
        let seen = self.monitor_seen(name);
        let m = self.monitors.get_mut(name).expect("checked");
        if m.spec.reads && m.native {
            m.recorder = Some(record_native_export(app, m.log.clone(), start));
        } else if m.spec.reads {
            m.recorder = Some(record_monitor(app, m.log.clone(), start, seen));
        } else {
            m.idle = Some(app);
        }
        Ok(())
    }

    async fn connect(&mut self, name: &str, raw: Option<Vec<u8>>) -> Result<(), String> {
        let at = self.now();
        let start = self.start;
        let client_port = self.relay.client_addr().port();
        let net = self.net.clone();
        let (spec, log) = {
            let app = self.app(name)?;
            (app.spec.clone(), app.log.clone())
        };
        let product = Product::parse(&spec.product)
            .map(|p| p.byte())
            .or_else(|| spec.product.parse::<u8>().ok())
            .ok_or_else(|| format!("unknown product {:?}", spec.product))?;
        let bypass = match spec.port.as_deref() {
            Some("bypass") => true,
            Some("licensed") => false,
            Some(other) => return Err(format!("port {other:?}: use licensed or bypass")),
            None => Product::from_byte(product).is_some_and(|p| p.port() == Port::Bypass),
        };
        let port = if bypass {
            client_port + 500
        } else {
            client_port
        };
        let relay_addr = SocketAddr::new(IpAddr::from(RELAY_IP), port);
        let devices: Vec<(u8, String)> = spec
            .devices
            .iter()
            .map(|d| {
                let (sw, dev) = d
                    .split_once(':')
                    .ok_or_else(|| format!("device {d:?}: use SWITCH:DEVICE"))?;
                Ok((
                    sw.parse()
                        .map_err(|_| format!("device {d:?}: bad switch"))?,
                    dev.to_owned(),
                ))
            })
            .collect::<Result<_, String>>()?;
        let config = self.relay.hub().config.load_full();
        let mut conn = invariants::expect_conn(&config, &spec, product, bypass, &devices);
        conn.raw = raw.is_some();
        let sim = match SimApp::connect_on(&net, relay_addr, Some(spec.address)).await {
            Ok(sim) => sim,
            Err(e) => {
                push(&log, at, format!("connect failed: {e}"));
                return Ok(());
            }
        };
        let mut sim = sim;
        if let Some(bytes) = raw {
            sim.send_raw(&bytes).await.map_err(|e| e.to_string())?;
            push(&log, at, format!("sent {} raw byte(s)", bytes.len()));
        } else {
            let devs: Vec<(u8, &str)> = devices.iter().map(|(s, d)| (*s, d.as_str())).collect();
            let memory = self.app(name)?.resume.clone();
            let ask = spec
                .resumable
                .then(|| memory.lock().unwrap_or_else(|e| e.into_inner()).ask());
            match sim
                .identify_with(spec.protocol, product, name, &devs, ask)
                .await
            {
                Ok(id) => {
                    if let Some(grant) = &id.resume {
                        memory
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .admitted(grant);
                    }
                    push(
                        &log,
                        start.elapsed(),
                        render::link(&LinkMsg::IdentifyResult {
                            result: id.result,
                            switches: id.switches.clone(),
                            resume: id.resume.clone(),
                        }),
                    );
                    let prev = self.app(name)?.admitted_conn;
                    if let (Some(prev), true) =
                        (prev, id.resume.as_ref().is_some_and(|g| g.resumed))
                    {
                        // The relay restored the earlier session: its switches and devices.
                        self.obs.with(prev, |p| {
                            conn.expected_served = p.expected_served.clone();
                            conn.default_switch = p.default_switch;
                            conn.filtering = p.filtering;
                            conn.watched = p.watched.clone();
                            conn.touched = p.touched.clone();
                        });
                        conn.resumed_from = Some(prev);
                    }
                    conn.identify = Some((id.result, id.switches));
                }
                Err(e) => push(&log, start.elapsed(), format!("no identify result: {e}")),
            }
        }
        if self.checked {
            // Every event a switch sends from now on is due to this connection.
            for (no, sw) in &self.switches {
                conn.admitted_at_seq
                    .insert(*no, sw.with_sent(|log| log.next_seq));
            }
            // A resumed session is not a new admission: it keeps the licence use it had.
            if conn.admitted() && !bypass && conn.resumed_from.is_none() {
                let hub = self.relay.hub();
                let limit = hub
                    .standing()
                    .entitlements()
                    .map_or(0, |e| e.access_limit());
                conn.licensed_after_admit = Some((hub.licensing.usage().licensed_total(), limit));
            }
        }
        let admitted = conn.admitted();
        let index = self.obs.add(conn);
        let obs = self.obs.clone();
        let app = self.app(name)?;
        app.conn = Some(index);
        if admitted {
            app.admitted_conn = Some(index);
        }
        let (reader, writer) = sim.into_split();
        app.writer = Some(writer);
        if app.spec.reads {
            let (hang, hang_rx) = tokio::sync::oneshot::channel();
            app.hang = Some(hang);
            app.recorder = Some(record(
                Recording {
                    reader,
                    log: app.log.clone(),
                    p3: app.spec.protocol == 3,
                    start,
                    conn: Some((obs, index)),
                    resume: app.resume.clone(),
                },
                hang_rx,
            ));
        } else {
            app.idle_reader = Some(reader);
        }
        Ok(())
    }

    async fn finish(self, mut t: Transcript) -> Transcript {
        for (name, app) in &self.apps {
            if let Some(r) = &app.recorder {
                r.abort();
            }
            for h in &app.hung {
                h.abort();
            }
            let log = app.log.lock().unwrap_or_else(|e| e.into_inner());
            t.apps.insert(name.clone(), collapse(&log));
        }
        for (name, m) in &self.monitors {
            if let Some(r) = &m.recorder {
                r.abort();
            }
            let log = m.log.lock().unwrap_or_else(|e| e.into_inner());
            t.monitors.insert(name.clone(), collapse(&log));
        }
        for (no, sw) in &self.switches {
            let received = sw
                .received()
                .iter()
                .filter(|f| !(f.kind() == Kind::Link && matches!(f.code(), b'H' | b'h')))
                .map(render::switch_frame)
                .collect();
            t.switches.insert(
                format!("switch {no}"),
                SwitchLog {
                    actions: self.switch_actions.get(no).cloned().unwrap_or_default(),
                    received,
                    links_opened: sw.opened(),
                },
            );
        }
        let lang = self.relay.hub().config.load().options.language;
        t.notifications = self
            .relay
            .hub()
            .notices
            .list()
            .iter()
            .map(|n| {
                let at = Duration::from_millis(n.time_ms.saturating_sub(EPOCH_MS));
                let level = match n.level() {
                    relay::notify::Level::Info => "info",
                    relay::notify::Level::Fault => "FAULT",
                };
                let switch = n
                    .notice
                    .switch()
                    .map(|no| format!(" SW{no}"))
                    .unwrap_or_default();
                format!("{} {level}{switch} {}", secs(at), n.text(lang))
            })
            .collect();
        t.checkpoints = self.checkpoints;
        t.reconfigurations = self.reconfigurations;
        t.licences = self.licences;
        self.relay.shutdown().await;
        t
    }
}

/// One application connection being recorded.
struct Recording {
    reader: Reader,
    log: Log,
    p3: bool,
    start: Instant,
    conn: Option<(Observations, usize)>,
    resume: Arc<Mutex<ResumeMemory>>,
}

/// Records every frame an application receives; the reader answers heartbeats as an
/// application would, and they are left out of the record. An event's number (`N`) is shown
/// on the event's line, and remembered for resuming. On `hang` the connection is left open
/// and nothing more is read or answered.
fn record(
    rec: Recording,
    mut hang: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let Recording {
        mut reader,
        log,
        p3,
        start,
        conn,
        resume,
    } = rec;
    tokio::spawn(async move {
        let observe = |end: End, line: String| {
            if let Some((obs, c)) = &conn {
                obs.with(*c, |c| {
                    c.end.get_or_insert(end);
                });
            }
            push(&log, start.elapsed(), line);
        };
        let mut numbered: Option<(u8, u64)> = None;
        let mut can_hang = true;
        loop {
            let next = tokio::select! {
                biased;
                hung = &mut hang, if can_hang => {
                    if hung.is_err() {
                        // Nobody will ask it to hang any more.
                        can_hang = false;
                        continue;
                    }
                    push(&log, start.elapsed(), "stops reading and answering; the connection stays open".into());
                    let _open = reader;
                    std::future::pending::<()>().await;
                    return;
                }
                next = reader.next_frame() => next,
            };
            match next {
                Ok(Some(f)) => {
                    if f.kind() == Kind::Link && f.code() == b'H' {
                        continue;
                    }
                    if f.kind() == Kind::Link && f.code() == b'N' {
                        if let Ok(LinkMsg::Sequence { switch, seq }) = LinkMsg::decode(&f) {
                            numbered = Some((switch, seq));
                        }
                        continue;
                    }
                    let mut line = render::app_frame(&f, p3);
                    if let (Kind::Event, Some((switch, seq))) = (f.kind(), numbered.take()) {
                        line.push_str(&format!(" #{seq}"));
                        resume
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .saw(switch, seq);
                    }
                    push(&log, start.elapsed(), line);
                    if let Some((obs, c)) = &conn {
                        obs.with(*c, |c| c.frames.push((start.elapsed(), f)));
                    }
                }
                Ok(None) => return observe(End::Closed, "closed by the relay".into()),
                Err(e) => return observe(End::Error(e.to_string()), format!("read error: {e}")),
            }
        }
    })
}

/// Where a checked monitor's frames go: its observation, and the switches whose next event
/// numbers are noted when its password is accepted.
struct MonitorSeen {
    obs: Observations,
    index: usize,
    switches: BTreeMap<u8, SimSwitch>,
}

impl Site {
    fn monitor_seen(&self, name: &str) -> Option<MonitorSeen> {
        let index = self.monitors.get(name)?.conn?;
        Some(MonitorSeen {
            obs: self.obs.clone(),
            index,
            switches: self.switches.clone(),
        })
    }
}

/// Records what a monitor connection receives.
fn record_monitor(
    mut app: SimApp,
    log: Log,
    start: Instant,
    seen: Option<MonitorSeen>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let end = |how: End| {
            if let Some(s) = &seen {
                s.obs.with_monitor(s.index, |m| {
                    m.end.get_or_insert(how);
                });
            }
        };
        loop {
            match app.next_frame().await {
                Ok(Some(f)) => {
                    if let Some(line) = render::monitor_frame(&f) {
                        push(&log, start.elapsed(), line);
                    }
                    if let Some(s) = &seen {
                        let accepted = f.kind() == Kind::Link
                            && matches!(
                                LinkMsg::decode(&f),
                                Ok(LinkMsg::PasswordResult { result: 0 })
                            );
                        let next: BTreeMap<u8, u32> = if accepted {
                            s.switches
                                .iter()
                                .map(|(no, sw)| (*no, sw.sent().next_seq))
                                .collect()
                        } else {
                            BTreeMap::new()
                        };
                        s.obs.with_monitor(s.index, |m| {
                            if accepted {
                                m.accepted_at_seq = next;
                            }
                            m.frames.push((start.elapsed(), f));
                        });
                    }
                }
                Ok(None) => {
                    end(End::Closed);
                    return push(&log, start.elapsed(), "closed by the relay".into());
                }
                Err(e) => {
                    end(End::Error(e.to_string()));
                    return push(&log, start.elapsed(), format!("read error: {e}"));
                }
            }
        }
    })
}

/// Records what a collector of the native export stream receives: one line per record (the
/// bytes up to each NUL).
fn record_native_export(app: SimApp, log: Log, start: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = app.into_stream();
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return push(&log, start.elapsed(), "closed by the relay".into()),
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.iter().position(|b| *b == 0) {
                        let record: Vec<u8> = pending.drain(..=end).collect();
                        push(&log, start.elapsed(), render::native_record(&record[..end]));
                    }
                }
                Err(e) => return push(&log, start.elapsed(), format!("read error: {e}")),
            }
        }
    })
}

/// Lines with their times; a run of identical lines becomes one line with a count.
fn collapse(log: &[(Duration, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < log.len() {
        let mut j = i + 1;
        while j < log.len() && log[j].1 == log[i].1 {
            j += 1;
        }
        let times = if j - i > 1 {
            format!(" (x{})", j - i)
        } else {
            String::new()
        };
        out.push(format!("{} {}{times}", secs(log[i].0), log[i].1));
        i = j;
    }
    out
}

fn switch_settings(spec: &SwitchSpec) -> Result<Settings, String> {
    let mut s = Settings::officeserv(spec.no);
    s.epoch_ms = Some(EPOCH_MS);
    if let Some(a) = &spec.answering {
        s.answering = match a.as_str() {
            "model" => Answering::CallModel,
            "echo" => Answering::Echo,
            "silent" => Answering::Silent,
            other => {
                return Err(format!(
                    "switch {}: answering {other:?}: use model, echo or silent",
                    spec.no
                ))
            }
        };
    }
    if let Some(c) = spec.caps {
        s.caps = c;
    }
    if let Some(p) = &spec.password {
        s.easyset_password = p.clone();
    }
    s.cti_server = spec.cti_server;
    if let Some(mac) = &spec.mac {
        s.mac = relay::config::parse_mac(mac)
            .ok_or_else(|| format!("switch {}: mac {mac:?}: use 02:00:00:00:00:01", spec.no))?;
    }
    if let Some(range) = &spec.keysets {
        let (a, b) = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(|| format!("switch {}: keysets {range:?}: use FIRST-LAST", spec.no))?;
        s.stations.retain(|st| st.kind != wire::StationKind::Keyset);
        for n in a..=b {
            s.stations.push(wire::Station {
                station: Str8::lossy(&n.to_string()),
                kind: wire::StationKind::Keyset,
            });
        }
    }
    Ok(s)
}

/// Where simulated switch `no` listens (on the scenario's in-memory network): 10.0.1.N.
fn switch_host(no: u8) -> IpAddr {
    IpAddr::from([10, 0, 1, no])
}

const SWITCH_PORT: u16 = 5002;

/// An error and its sources, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn merge(config: Config, over: Option<&serde_yaml::Value>) -> Result<Config, String> {
    let Some(over) = over else { return Ok(config) };
    let mut base = serde_yaml::to_value(&config).map_err(|e| e.to_string())?;
    let over = over
        .as_mapping()
        .ok_or("config must be a mapping of configuration fields")?;
    let map = base.as_mapping_mut().expect("a configuration is a mapping");
    for (k, v) in over {
        map.insert(k.clone(), v.clone());
    }
    serde_yaml::from_value(base).map_err(|e| format!("config: {e}"))
}

/// The applications an app entry stands for (more than one with `copies`).
fn expand_copies(a: &AppSpec) -> Result<Vec<AppSpec>, String> {
    let copy = |name: String, address: IpAddr| AppSpec {
        name,
        address,
        protocol: a.protocol,
        product: a.product.clone(),
        devices: a.devices.clone(),
        port: a.port.clone(),
        reads: a.reads,
        resumable: a.resumable,
        copies: 1,
    };
    if a.copies <= 1 {
        return Ok(vec![copy(a.name.clone(), a.address)]);
    }
    let IpAddr::V4(v4) = a.address else {
        return Err(format!("{}: copies need an IPv4 address", a.name));
    };
    (0..a.copies)
        .map(|i| {
            let last = v4.octets()[3]
                .checked_add(i)
                .ok_or_else(|| format!("{}: too many copies for {v4}", a.name))?;
            let [x, y, z, _] = v4.octets();
            Ok(copy(
                format!("{}#{:02}", a.name, i + 1),
                IpAddr::from([x, y, z, last]),
            ))
        })
        .collect()
}

/// The applications a step's name refers to: the one so named, or every copy of it.
fn named(apps: &BTreeMap<String, App>, name: &str) -> Vec<String> {
    if apps.contains_key(name) {
        return vec![name.to_owned()];
    }
    let prefix = format!("{name}#");
    apps.keys()
        .filter(|k| k.starts_with(&prefix))
        .cloned()
        .collect()
}

fn licence_text(spec: &LicenceSpec) -> Result<String, String> {
    let mac_type = match spec.mac_type.as_deref().unwrap_or("computer") {
        "computer" => MacType::Computer,
        "switch" => MacType::Switch,
        other => return Err(format!("mac_type {other:?}: use computer or switch")),
    };
    let mac_text = spec.mac.as_deref().unwrap_or(HOST_MAC);
    let mac = relay::config::parse_mac(mac_text).ok_or_else(|| format!("mac {mac_text:?}"))?;
    let expires = match &spec.expires {
        Some(d) => key::parse_day(d).ok_or_else(|| format!("expires {d:?}"))?,
        None => 0,
    };
    let text = Payload {
        serial: spec.serial,
        mac_type,
        mac,
        call: spec.call,
        opentsp: spec.opentsp,
        operator: spec.operator,
        easyset: spec.easyset,
        news: spec.news,
        dataview: spec.dataview,
        expires,
    }
    .sign(&test_issuer());
    if !spec.forge {
        return Ok(text);
    }
    // Flip the lowest bit of the payload's call count: a key someone edited.
    let mut bytes = key::parse_text(&text).map_err(|e| e.to_string())?;
    bytes[14] ^= 1;
    let encoded = data_encoding::BASE32_NOPAD.encode(&bytes);
    Ok(encoded
        .as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-"))
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("duration {text:?}: {e}"))
}

fn code_byte(code: &str) -> Result<u8, String> {
    match code.as_bytes() {
        [b] => Ok(*b),
        _ => Err(format!("code {code:?} must be one character")),
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("hex {text:?} has an odd number of digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| format!("hex {text:?} is not hexadecimal"))
        })
        .collect()
}
