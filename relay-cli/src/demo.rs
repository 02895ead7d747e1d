//! `relay demo`: the relay with two simulated switches carrying live calls and SMDR, and a few
//! simulated applications, all on loopback, with a terminal view refreshed every second.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use client_sim::SimApp;
use switch_sim::{Settings, SimSwitch};
use tokio::time::Instant;

use netseam::{Network, TcpNetwork};
use relay::config::{Config, SwitchConfig, User};
use relay::notify::Level;
use relay::server::Relay;
use relay::{Daemon, Listeners, RelayParts};
use wire::{Kind, LinkMsg};

/// What the demo is run with.
pub struct DemoOptions {
    /// Stop after this long; `None` runs until the stop signal.
    pub duration: Option<Duration>,
    pub client_port: u16,
    /// The port the simulated switches listen on (at 127.0.1.1 and 127.0.1.2).
    pub switch_port: u16,
    /// The admin interface and web console, on 127.0.0.1 (0: any free port).
    pub admin_port: u16,
    /// Clear the screen between views (on a terminal) or print views one after another.
    pub clear_screen: bool,
}

/// One simulated application and what it has received.
struct DemoApp {
    label: &'static str,
    frames: AtomicU64,
    events: AtomicU64,
    answers: AtomicU64,
    state: std::sync::Mutex<String>,
}

impl DemoApp {
    fn new(label: &'static str) -> Arc<DemoApp> {
        Arc::new(DemoApp {
            label,
            frames: AtomicU64::new(0),
            events: AtomicU64::new(0),
            answers: AtomicU64::new(0),
            state: std::sync::Mutex::new("connecting".into()),
        })
    }

    fn set_state(&self, s: impl Into<String>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s.into();
    }
}

/// Runs the demo on loopback TCP until `stop` resolves or the duration passes, printing the
/// view every second.
pub async fn run(
    opts: DemoOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let clear = opts.clear_screen;
    run_on(Arc::new(TcpNetwork), opts, stop, |view| {
        if clear {
            print!("\x1b[2J\x1b[H{view}");
        } else {
            println!("{view}");
        }
    })
    .await
}

/// Runs the demo on `net` (the switches, the relay, its admin interface and the
/// applications), handing each second's view to `show`.
pub async fn run_on(
    net: Arc<dyn Network>,
    opts: DemoOptions,
    stop: impl std::future::Future<Output = ()>,
    mut show: impl FnMut(&str),
) -> anyhow::Result<()> {
    let mut switches = BTreeMap::new();
    for no in 1..=2u8 {
        let addr = SocketAddr::new(IpAddr::from([127, 0, 1, no]), opts.switch_port);
        let sim = SimSwitch::start_on(net.as_ref(), addr, Settings::officeserv(no))
            .await
            .with_context(|| format!("cannot start the simulated switch {no} at {addr}"))?;
        switches.insert(no, sim);
    }
    // The demo keeps its state (the admin token among it) in a directory of its own.
    let state_dir = tempfile::tempdir().context("cannot make the demo's state directory")?;
    let mut config = Config::default();
    for (&no, sw) in &switches {
        config.switches.push(SwitchConfig::new(
            no,
            &sw.addr().ip().to_string(),
            sw.addr().port(),
            "1234",
        ));
    }
    config.state_dir = state_dir.path().to_owned();
    config.log_dir = state_dir.path().join("log");
    demo_config(&mut config, opts.client_port);
    let admin = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), opts.admin_port);
    let listeners = Listeners::bind_with_admin(net.as_ref(), &config, admin).await?;
    let parts = RelayParts {
        net: net.clone(),
        ..RelayParts::new(config)
    };
    let daemon = Daemon::start(parts, listeners)?;
    let relay = daemon.relay().clone();
    for &no in switches.keys() {
        let up = tokio::time::timeout(Duration::from_secs(10), async {
            while !relay.status().switches.iter().any(|s| s.no == no && s.up) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        if up.await.is_err() {
            daemon.shutdown().await;
            anyhow::bail!("the simulated switch {no} did not come up within 10 s");
        }
    }
    let admin_addr = daemon
        .admin_addr()
        .expect("the demo serves the admin interface");
    let token = daemon.token().unwrap_or_default().to_owned();
    let started = Instant::now();

    let mut background = tokio::task::JoinSet::new();
    for (i, sw) in switches.values().enumerate() {
        background.spawn(switch_sim::traffic::run(
            sw.clone(),
            Duration::from_millis(600 + 250 * i as u64),
            i as u64 + 1,
        ));
    }
    let client = relay.client_addr();
    let bypass = relay.bypass_addr();
    let call = DemoApp::new("Call     127.0.0.51 (protocol 2, filtering on 2201)");
    let operator = DemoApp::new("Operator 127.0.0.52 (protocol 3, switches 1 and 2)");
    let acd = DemoApp::new("ACD      127.0.0.53 (bypass port, protocol 3)");
    background.spawn(softphone(net.clone(), client, call.clone()));
    background.spawn(listener(
        net.clone(),
        client,
        52,
        3,
        3,
        &[(1, "2205"), (2, "2205")],
        operator.clone(),
    ));
    background.spawn(listener(net.clone(), bypass, 53, 3, 0x41, &[], acd.clone()));
    let apps = [call, operator, acd];

    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        show(&render(
            &relay,
            admin_addr,
            &token,
            &apps,
            started.elapsed(),
        ));
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    background.abort_all();
    daemon.shutdown().await;
    Ok(())
}

/// The demo's site: its ports, its switches' names, two users.
fn demo_config(config: &mut Config, client_port: u16) {
    config.listen.address = IpAddr::from([127, 0, 0, 1]);
    config.admin.address = IpAddr::from([127, 0, 0, 1]);
    config.listen.client_port = client_port;
    // Monitor and export ports follow the client port (6001, 6002, 6003 by default).
    config.monitor.sw_port = client_port.checked_add(1);
    config.monitor.su_port = client_port.checked_add(2);
    config.export.port = client_port.checked_add(3);
    for sw in &mut config.switches {
        sw.name = format!("Simulated OfficeServ {}", sw.no);
    }
    config.users = vec![
        User {
            ip: "127.0.0.51".into(),
            name: "Alex".into(),
            info: "Call user".into(),
            switches: vec![1],
            default_switch: Some(1),
            filtering: true,
            certificate: None,
        },
        User {
            ip: "127.0.0.52".into(),
            name: "Reception".into(),
            info: "Operator console".into(),
            switches: vec![1, 2],
            default_switch: Some(1),
            filtering: false,
            certificate: None,
        },
    ];
}

/// A Call softphone on 2201 that also places and ends calls through the relay.
async fn softphone(net: Arc<dyn Network>, relay: SocketAddr, app: Arc<DemoApp>) {
    let source = Some(IpAddr::from([127, 0, 0, 51]));
    let Ok(mut sim) = SimApp::connect_on(net.as_ref(), relay, source).await else {
        app.set_state("could not connect");
        return;
    };
    match sim.identify(2, 1, "Call", &[(0, "2201")]).await {
        Ok(id) if id.result == 0 => app.set_state("identified"),
        Ok(id) => return app.set_state(format!("refused: result {}", id.result)),
        Err(e) => return app.set_state(format!("failed: {e}")),
    }
    let (mut rd, wr) = sim.into_split();
    let counter = app.clone();
    let reader = tokio::spawn(async move { count_frames(&mut rd, &counter).await });
    let mut invoke = 0u16;
    let mut every = tokio::time::interval(Duration::from_secs(4));
    loop {
        every.tick().await;
        invoke = invoke.wrapping_add(1) % 0xFFFF;
        // Alternately call 2202 from 2201 and hang up.
        let sent = if invoke % 2 == 1 {
            wr.request(None, b'K', invoke, &wire::str8_body(&["2201", "2202"]))
                .await
        } else {
            wr.request(None, b'D', invoke, &wire::str8_body(&["2201"]))
                .await
        };
        if sent.is_err() || reader.is_finished() {
            app.set_state("closed");
            return;
        }
    }
}

/// An application that identifies and then only reads (answering heartbeats, as every
/// application does).
async fn listener(
    net: Arc<dyn Network>,
    relay: SocketAddr,
    host: u8,
    protocol: u8,
    product: u8,
    devices: &'static [(u8, &'static str)],
    app: Arc<DemoApp>,
) {
    let source = Some(IpAddr::from([127, 0, 0, host]));
    let Ok(mut sim) = SimApp::connect_on(net.as_ref(), relay, source).await else {
        app.set_state("could not connect");
        return;
    };
    match sim.identify(protocol, product, app.label, devices).await {
        Ok(id) if id.result == 0 => app.set_state("identified"),
        Ok(id) => return app.set_state(format!("refused: result {}", id.result)),
        Err(e) => return app.set_state(format!("failed: {e}")),
    }
    let (mut rd, _wr) = sim.into_split();
    count_frames(&mut rd, &app).await;
}

async fn count_frames(rd: &mut client_sim::app::Reader, app: &DemoApp) {
    loop {
        match rd.next_frame().await {
            Ok(Some(f)) => {
                app.frames.fetch_add(1, Ordering::Relaxed);
                match f.kind() {
                    Kind::Event => {
                        app.events.fetch_add(1, Ordering::Relaxed);
                    }
                    Kind::Answer => {
                        app.answers.fetch_add(1, Ordering::Relaxed);
                    }
                    Kind::Link => {
                        if let Ok(LinkMsg::Close { reason, text }) = LinkMsg::decode(&f) {
                            app.set_state(format!("closed by the relay: X {reason} {text}"));
                            return;
                        }
                    }
                    _ => {}
                }
            }
            _ => {
                app.set_state("connection closed");
                return;
            }
        }
    }
}

fn render(
    relay: &Relay,
    admin: SocketAddr,
    token: &str,
    apps: &[Arc<DemoApp>],
    elapsed: Duration,
) -> String {
    let status = relay.status();
    let stats = &relay.stats();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "CTI relay demo: {} s; applications connect to 127.0.0.1:{} (bypass {}). Ctrl-C stops.",
        elapsed.as_secs(),
        relay.client_addr().port(),
        relay.bypass_addr().port()
    );
    let _ = writeln!(
        out,
        "Web console: http://{admin}/#token={token}\n  (relay ctl --admin {admin} --token {token} status)"
    );
    let port = |p| {
        relay
            .monitor_addr(p)
            .map_or("off".to_string(), |a| a.port().to_string())
    };
    let (sw, su, ex) = relay.monitors().counts();
    let _ = writeln!(
        out,
        "Monitors: switch messages {} ({sw} attached), SMDR/UCD {} ({su}), export {} ({ex})\n",
        port(relay::ports::monitor::MonitorPort::SwitchMessages),
        port(relay::ports::monitor::MonitorPort::SmdrUcd),
        port(relay::ports::monitor::MonitorPort::Export),
    );
    let _ = writeln!(
        out,
        "Switches ({} configured, {} enabled, {} connected)",
        status.switches_configured, status.switches_enabled, status.switches_connected
    );
    let _ = writeln!(
        out,
        "  {:<3} {:<22} {:<5} {:<17} {:>8} {:>9}",
        "no", "address", "link", "model", "sessions", "in flight"
    );
    for s in &status.switches {
        let _ = writeln!(
            out,
            "  {:<3} {:<22} {:<5} {:<17} {:>8} {:>9}",
            s.no,
            format!("{}:{}", s.address, s.port),
            if s.up { "up" } else { "down" },
            s.model.as_deref().unwrap_or("-"),
            s.sessions,
            s.requests_in_flight
        );
    }
    let _ = writeln!(out, "\nSessions");
    let _ = writeln!(
        out,
        "  {:<3} {:<16} {:<6} {:<6} {:<9} state",
        "id", "address", "port", "proto", "switches"
    );
    for s in &status.sessions {
        let sw: Vec<String> = s.switches.iter().map(u8::to_string).collect();
        let _ = writeln!(
            out,
            "  {:<3} {:<16} {:<6} {:<6} {:<9} {}",
            s.id,
            s.address,
            s.port,
            s.protocol,
            sw.join(","),
            s.state
        );
    }
    let _ = writeln!(out, "\nLicence: {}", status.licence.summary());
    let _ = writeln!(out, "\nApplications (simulated)");
    for a in apps {
        let _ = writeln!(
            out,
            "  {:<52} frames {:>6}  events {:>6}  answers {:>4}  {}",
            a.label,
            a.frames.load(Ordering::Relaxed),
            a.events.load(Ordering::Relaxed),
            a.answers.load(Ordering::Relaxed),
            a.state.lock().unwrap_or_else(|e| e.into_inner())
        );
    }
    let _ = writeln!(
        out,
        "\nCounters: deliveries {}  requests forwarded {}  relay answers {}  slow closes {}  protocol errors {}",
        stats.deliveries.load(Ordering::Relaxed),
        stats.requests_forwarded.load(Ordering::Relaxed),
        stats.relay_answers.load(Ordering::Relaxed),
        stats.slow_closes.load(Ordering::Relaxed),
        stats.protocol_errors.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "\nNotifications (newest last)");
    let notices = relay.notices().list();
    let lang = relay.config().options.language;
    for n in notices.iter().skip(notices.len().saturating_sub(8)) {
        let secs = n.time_ms / 1000;
        let level = match n.level() {
            Level::Info => "info ",
            Level::Fault => "FAULT",
        };
        let switch = n
            .notice
            .switch()
            .map_or("     ".to_string(), |no| format!("SW {no} "));
        let _ = writeln!(
            out,
            "  {:02}:{:02}:{:02} {level} {switch}{}",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            n.text(lang)
        );
    }
    out
}
