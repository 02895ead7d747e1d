//! Builds a site (relay, simulated switches, simulated applications) on an in-memory network
//! with a paused clock, plays a scenario's steps, and writes what every party saw.

mod build;
mod connect;
mod record;
mod steps;

use build::*;
use record::*;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

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
use crate::observe::{self, End, MonitorConn, Observations, SiteView};
use crate::render;
use crate::schema::{AppSpec, Fault, LicenceSpec, MonitorSpec, Scenario, SwitchSpec};
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
    let rt = crate::runtime::paused(1);
    rt.block_on(async {
        let start = Instant::now();
        let (transcript, violation) = Scene::play(scenario).await;
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

impl App {
    /// Starts recording what the application reads from `reader` (its connection `conn` in
    /// the observations); the recorder can be told to hang.
    fn start_recording(
        &mut self,
        reader: Reader,
        start: Instant,
        conn: Option<(Observations, usize)>,
    ) {
        let (hang, hang_rx) = tokio::sync::oneshot::channel();
        self.hang = Some(hang);
        self.recorder = Some(record(
            Recording {
                reader,
                log: self.log.clone(),
                p3: self.spec.protocol == 3,
                start,
                conn,
                resume: self.resume.clone(),
            },
            hang_rx,
        ));
    }
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

/// Why a step could not be played: the scenario names something its site does not have, or
/// asks what the site's state does not allow, or gives a value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("no application named {0:?}")]
    UnknownApp(String),
    #[error("no monitor named {0:?}")]
    UnknownMonitor(String),
    #[error("no switch {0}")]
    UnknownSwitch(u8),
    #[error("{0} is not connected")]
    NotConnected(String),
    #[error("{0} is not waiting to read")]
    NotWaiting(String),
    /// A value of the step (hex, a duration, a code, a licence, a configuration change…).
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for StepError {
    fn from(text: String) -> StepError {
        StepError::Invalid(text)
    }
}

/// A scenario being played: the relay, the simulated switches, applications and monitors on
/// one in-memory network, and what each has seen so far.
struct Scene {
    start: Instant,
    /// Whether invariants are checked (switches tag their events).
    checked: bool,
    /// What every application did and received, for the invariant checker.
    obs: Observations,
    monitors: BTreeMap<String, Monitor>,
    _state_dir: tempfile::TempDir,
    net: MemNetwork,
    relay: Arc<Relay>,
    switches: BTreeMap<u8, SimSwitch>,
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

impl Scene {
    /// What the invariant checker sees of the scene.
    fn view(&self) -> SiteView<'_> {
        SiteView {
            relay: &self.relay,
            switches: &self.switches,
            obs: &self.obs,
        }
    }

    async fn play(scenario: &Scenario) -> (Transcript, Option<(usize, Violation)>) {
        let start = Instant::now();
        let mut transcript = Transcript::new(scenario.description.trim().to_owned());
        let mut site = match Scene::build(scenario, start).await {
            Ok(site) => site,
            Err(e) => {
                transcript.error = Some(e);
                return (transcript, None);
            }
        };
        tokio::time::sleep(SETTLE * 10).await;
        let mut checker = scenario.invariants.then(|| Checker::new(&site.view()));
        let mut violation = None;
        for (i, step) in scenario.steps.iter().map(|e| &e.0).enumerate() {
            if let Err(e) = site.step(step).await {
                transcript.error = Some(format!("step {} ({step:?}): {e}", i + 1));
                break;
            }
            tokio::time::sleep(SETTLE).await;
            if let Some(Err(v)) = checker.as_mut().map(|c| c.after_step(&site.view())) {
                violation = Some((i, v));
                break;
            }
        }
        tokio::time::sleep(SETTLE * 10).await;
        if let (Some(c), None) = (checker.as_mut(), &violation) {
            // Time for every answer, the relay's own after 30 s included.
            tokio::time::sleep(Duration::from_secs(31)).await;
            let mut end = c.at_end(&site.view());
            if end.is_ok() {
                site.leave_all();
                tokio::time::sleep(Duration::from_secs(1)).await;
                end = c.baseline(&site.view());
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

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn app(&mut self, name: &str) -> Result<&mut App, StepError> {
        self.apps
            .get_mut(name)
            .ok_or_else(|| StepError::UnknownApp(name.to_owned()))
    }

    fn switch(&self, no: u8) -> Result<&SimSwitch, StepError> {
        self.switches.get(&no).ok_or(StepError::UnknownSwitch(no))
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

    async fn writer(&mut self, name: &str) -> Result<Writer, StepError> {
        self.app(name)?
            .writer
            .clone()
            .ok_or_else(|| StepError::NotConnected(name.to_owned()))
    }

    /// A write on a connection the relay has closed is what a real application meets too:
    /// it goes in the application's record, and the scenario goes on.
    fn sent(&mut self, name: &str, result: std::io::Result<()>) -> Result<(), StepError> {
        if let Err(e) = result {
            let at = self.now();
            push(&self.app(name)?.log, at, format!("send failed: {e}"));
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
        let lang = self.relay.config().options.language;
        t.notifications = self
            .relay
            .notices()
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
