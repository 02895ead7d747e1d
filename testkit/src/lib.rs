//! The test kit: a site of simulated switches and a relay, over loopback TCP or an in-memory
//! network, for the integration tests, the command-line front-ends' tests, the benches and
//! `relay demo`.
//!
//! - [`SiteSpec`] says what a site is made of; [`SiteSpec::start`] starts it as a [`Site`].
//! - [`Site`] holds the relay, its switches and its state directory, and connects simulated
//!   applications ([`Site::app`], [`Site::admitted`]).
//! - [`wait_until`], [`within`]: waiting with a limit and a message instead of hanging.
//! - [`process`]: the relay as its own process, and free loopback ports.

pub mod nats;
pub mod pki;
pub mod process;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use client_sim::{Identified, SimApp};
use netseam::{Network, TcpNetwork};
use relay::config::SwitchConfig;
use relay::{Config, Listeners, Relay, RelayParts, Tuning};
use switch_sim::{Settings, SimSwitch};

pub const CALL: u8 = 1;
pub const CALL_PLUS: u8 = 2;
pub const OPERATOR: u8 = 3;
pub const EASYSET: u8 = 5;
pub const ACD: u8 = 0x41;

/// The relay and its simulated switches.
pub struct Site {
    /// The relay, as [`Site::daemon`] runs it.
    pub relay: Arc<Relay>,
    /// The relay started as `relay run` starts it (the admin interface served only on the
    /// configured ports, see [`SiteSpec::configured_ports`]).
    pub daemon: relay::Daemon,
    /// The configuration file, with [`SiteSpec::with_config_file`].
    pub config_file: Option<std::path::PathBuf>,
    /// The simulated switches, by number.
    pub switches: std::collections::BTreeMap<u8, SimSwitch>,
    /// The relay's state directory (trial start, licence), removed with the site.
    pub state_dir: tempfile::TempDir,
}

/// What a site is made of.
pub struct SiteSpec {
    /// Settings of each simulated switch; `switches[i]` is switch `numbers[i]`.
    pub switches: Vec<Settings>,
    /// The switches' numbers (1..=n unless set with [`SiteSpec::numbered`]).
    pub numbers: Vec<u8>,
    /// The address switch N listens at (127.0.1.N by default).
    pub switch_host: fn(u8) -> IpAddr,
    /// The relay's wall clock (the system's by default).
    pub clock: Arc<dyn relay::clock::WallClock>,
    /// Adjusts the configuration after the switch table is filled in.
    pub configure: Box<dyn FnOnce(&mut Config)>,
    pub tuning: Tuning,
    /// Wait for these switches' links before returning.
    pub wait_up: Vec<u8>,
    /// Where the switches, the relay and the applications meet (loopback TCP by default).
    pub net: Arc<dyn Network>,
    /// The port every simulated switch listens on (at 127.0.1.N); 0: any free port.
    pub switch_port: u16,
    /// Listen on the configuration's ports (`listen`, `monitor`, `export`) instead of free
    /// loopback ports.
    pub configured_ports: bool,
    /// Whether the relay reads its configuration from a file (`state_dir/relay.yaml`), where
    /// changes are saved, as `relay run` does.
    pub config_file: bool,
}

/// Why a site could not start.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("cannot start simulated switch {no} on {addr}")]
    Switch {
        no: u8,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make a state directory for the relay")]
    StateDir(#[source] std::io::Error),
    #[error("cannot write the relay's configuration file")]
    ConfigFile(#[source] std::io::Error),
    #[error(transparent)]
    Bind(#[from] relay::server::BindError),
    #[error("cannot listen on loopback")]
    Loopback(#[source] std::io::Error),
    #[error("cannot start the relay")]
    Start(#[from] relay::DaemonError),
    #[error("switch {0}'s link did not come up within 10 s")]
    SwitchDown(u8),
}

impl SiteSpec {
    /// `n` switches that echo each request's body back with result 0, so tests can check
    /// exactly which bytes reached the switch and came back.
    pub fn switches(n: u8) -> SiteSpec {
        SiteSpec {
            switches: (1..=n)
                .map(|no| Settings {
                    answering: switch_sim::Answering::Echo,
                    ..Settings::officeserv(no)
                })
                .collect(),
            numbers: (1..=n).collect(),
            switch_host: |no| IpAddr::from([127, 0, 1, no]),
            clock: Arc::new(relay::clock::SystemClock),
            configure: Box::new(|_| {}),
            tuning: Tuning::default(),
            wait_up: (1..=n).collect(),
            net: Arc::new(TcpNetwork),
            switch_port: 0,
            configured_ports: false,
            config_file: false,
        }
    }

    /// `n` switches that answer requests as a switch does (`Settings::officeserv`).
    pub fn officeserv(n: u8) -> SiteSpec {
        SiteSpec {
            switches: (1..=n).map(Settings::officeserv).collect(),
            ..SiteSpec::switches(n)
        }
    }

    /// The site on `net` instead of loopback TCP (an in-memory network for paused-clock tests).
    pub fn on_network(mut self, net: Arc<dyn Network>) -> SiteSpec {
        self.net = net;
        self
    }

    /// Adjusts the configuration, after any earlier adjustment.
    pub fn configure(mut self, f: impl FnOnce(&mut Config) + 'static) -> SiteSpec {
        let earlier = self.configure;
        self.configure = Box::new(move |c| {
            earlier(c);
            f(c)
        });
        self
    }

    /// The relay trusts licences signed by [`issuer`] and takes [`HOST_MAC`] as its host's
    /// MAC, so [`licence`] keys bound to it are valid.
    pub fn trusting_test_issuer(self) -> SiteSpec {
        self.configure(|c| {
            c.license.issuer_keys =
                vec![data_encoding::HEXLOWER.encode(issuer().verifying_key().as_bytes())];
            c.license.host_macs = Some(vec![relay::licensing::key::mac_text(&HOST_MAC)]);
        })
    }

    pub fn tuning(mut self, f: impl FnOnce(&mut Tuning)) -> SiteSpec {
        f(&mut self.tuning);
        self
    }

    pub fn wait_up(mut self, switches: &[u8]) -> SiteSpec {
        self.wait_up = switches.to_vec();
        self
    }

    pub fn switch_settings(mut self, no: u8, f: impl FnOnce(&mut Settings)) -> SiteSpec {
        let i = self
            .numbers
            .iter()
            .position(|n| *n == no)
            .expect("a switch of the site");
        f(&mut self.switches[i]);
        self
    }

    /// Switches numbered as given, with these settings, instead of 1..=n; none waited for.
    pub fn numbered(mut self, switches: Vec<(u8, Settings)>) -> SiteSpec {
        (self.numbers, self.switches) = switches.into_iter().unzip();
        self.wait_up.clear();
        self
    }

    /// Switch N listens at `host(N)` instead of 127.0.1.N.
    pub fn switch_host(mut self, host: fn(u8) -> IpAddr) -> SiteSpec {
        self.switch_host = host;
        self
    }

    /// The relay reads the time from `clock`.
    pub fn clock(mut self, clock: Arc<dyn relay::clock::WallClock>) -> SiteSpec {
        self.clock = clock;
        self
    }

    /// Every simulated switch listens on `port` (at 127.0.1.N) instead of a free port.
    pub fn switch_port(mut self, port: u16) -> SiteSpec {
        self.switch_port = port;
        self
    }

    /// The relay listens on the ports of its configuration instead of free loopback ports.
    pub fn configured_ports(mut self) -> SiteSpec {
        self.configured_ports = true;
        self
    }

    /// The relay's configuration is written to `state_dir/relay.yaml` and read from there
    /// ([`Site::config_file`]): admin edits and a shared site's changes are saved to it.
    pub fn with_config_file(mut self) -> SiteSpec {
        self.config_file = true;
        self
    }

    /// Starts the site; panics with the reason if it cannot (tests).
    pub async fn start(self) -> Site {
        match self.try_start().await {
            Ok(site) => site,
            Err(e) => panic!(
                "the site did not start: {e}: {:?}",
                std::error::Error::source(&e)
            ),
        }
    }

    /// Starts the switches, then the relay, and waits for the links in `wait_up` (10 s each).
    pub async fn try_start(self) -> Result<Site, SiteError> {
        let mut switches = std::collections::BTreeMap::new();
        for (&no, settings) in self.numbers.iter().zip(self.switches) {
            let addr = SocketAddr::new((self.switch_host)(no), self.switch_port);
            let sim = SimSwitch::start_on(self.net.as_ref(), addr, settings)
                .await
                .map_err(|source| SiteError::Switch { no, addr, source })?;
            switches.insert(no, sim);
        }
        let mut config = Config::default();
        for (&no, sw) in &switches {
            config.switches.push(SwitchConfig::new(
                no,
                &sw.addr().ip().to_string(),
                sw.addr().port(),
                "1234",
            ));
        }
        let state_dir = tempfile::tempdir().map_err(SiteError::StateDir)?;
        config.state_dir = state_dir.path().to_owned();
        config.log_dir = state_dir.path().join("log");
        (self.configure)(&mut config);
        let listeners = if self.configured_ports {
            Listeners::bind(self.net.as_ref(), &config).await?
        } else {
            Listeners::loopback(self.net.as_ref())
                .await
                .map_err(SiteError::Loopback)?
        };
        let config_file = match self.config_file {
            true => {
                let path = state_dir.path().join("relay.yaml");
                config.save_atomic(&path).map_err(SiteError::ConfigFile)?;
                Some(path)
            }
            false => None,
        };
        let parts = RelayParts {
            net: self.net.clone(),
            clock: self.clock.clone(),
            config_file: config_file.clone(),
            ..RelayParts::new(config).with_tuning(self.tuning)
        };
        let daemon = relay::Daemon::start(parts, listeners)?;
        let site = Site {
            relay: daemon.relay().clone(),
            daemon,
            config_file,
            switches,
            state_dir,
        };
        for no in self.wait_up {
            if !site.switch_up_within(no, Duration::from_secs(10)).await {
                return Err(SiteError::SwitchDown(no));
            }
        }
        Ok(site)
    }
}

impl Site {
    pub fn switch(&self, no: u8) -> &SimSwitch {
        &self.switches[&no]
    }

    pub fn is_up(&self, no: u8) -> bool {
        self.relay.switch_up(no)
    }

    pub async fn wait_switch_up(&self, no: u8) {
        assert!(
            self.switch_up_within(no, Duration::from_secs(10)).await,
            "timed out waiting for switch {no} up"
        );
    }

    /// Whether switch `no`'s link is up within `limit` (of tokio time).
    pub async fn switch_up_within(&self, no: u8, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            while !self.is_up(no) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .is_ok()
    }

    pub async fn wait_switch_down(&self, no: u8) {
        wait_until(&format!("switch {no} down"), || !self.is_up(no)).await;
    }

    pub async fn wait_sessions(&self, n: usize) {
        wait_until(&format!("{n} session(s)"), || {
            self.relay.session_count() == n
        })
        .await;
    }

    pub fn client(&self) -> SocketAddr {
        self.relay.client_addr()
    }

    pub fn bypass(&self) -> SocketAddr {
        self.relay.bypass_addr()
    }

    /// Connects from 127.0.0.`host` and identifies.
    pub async fn app(
        &self,
        host: u8,
        protocol: u8,
        product: u8,
        devices: &[(u8, &str)],
    ) -> (SimApp, Identified) {
        let port = if product >= 0x40 {
            self.bypass()
        } else {
            self.client()
        };
        SimApp::identify_as(port, Some(loopback(host)), protocol, product, devices)
            .await
            .expect("connect and identify")
    }

    /// Connects, identifies and asserts acceptance.
    pub async fn admitted(
        &self,
        host: u8,
        protocol: u8,
        product: u8,
        devices: &[(u8, &str)],
    ) -> SimApp {
        let (app, id) = self.app(host, protocol, product, devices).await;
        assert_eq!(id.result, 0, "identify from 127.0.0.{host} refused: {id:?}");
        app
    }

    /// Notification texts so far.
    pub fn notices(&self) -> Vec<String> {
        self.relay
            .notices()
            .list()
            .into_iter()
            .map(|e| e.notice.to_string())
            .collect()
    }

    pub async fn wait_notice(&self, text: &str) {
        wait_until(&format!("notification containing {text:?}"), || {
            self.notices().iter().any(|n| n.contains(text))
        })
        .await;
    }
}

/// The host MAC of a site [`SiteSpec::trusting_test_issuer`].
pub const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];

/// The licence issuer of tests and benches (a fixed key pair).
/// A resumable Operator ("console", protocol 3) from 127.0.0.52 on the relay whose client
/// port is `client`: new with an all-zero token, or coming back with `token` and `last`. Tried
/// again every 100 ms while identify is refused (no switch up yet), as an application would.
pub async fn resumable_operator(
    client: SocketAddr,
    token: wire::Token,
    last: Vec<(u8, u64)>,
) -> (SimApp, wire::ResumeGrant) {
    loop {
        let mut app = SimApp::connect(client, Some(loopback(52)))
            .await
            .expect("connect");
        let ask = wire::ResumeAsk {
            token,
            last: last.clone(),
        };
        let id = app
            .identify_with(3, OPERATOR, "console", &[], Some(ask))
            .await
            .expect("identify");
        if id.result != 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return (app, id.resume.expect("resume is on"));
    }
}

pub fn issuer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[3; 32])
}

/// A computer licence for [`HOST_MAC`] that grants nothing and never expires; set the counts
/// a test needs, then sign it with [`issuer`].
pub fn licence(serial: u32) -> relay::licensing::key::Payload {
    relay::licensing::key::Payload {
        serial,
        mac_type: relay::licensing::key::MacType::Computer,
        mac: HOST_MAC,
        call: 0,
        opentsp: 0,
        operator: 0,
        easyset: false,
        news: false,
        dataview: false,
        expires: 0,
    }
}

pub fn loopback(host: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, host])
}

/// Polls `cond` every 2 ms for up to 10 s (of tokio time).
pub async fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_for(what, Duration::from_secs(10), cond).await;
}

/// Polls `cond` every 2 ms for up to `limit` (of tokio time).
pub async fn wait_until_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Runs `f` with a 60 s limit (of tokio time, which may be paused) so a hung test fails with a message instead of hanging CI.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 60 s"))
}

/// Sets up a log subscriber once for tests that want logs (RUST_LOG).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

impl Site {
    /// Waits until `su` SMDR/UCD monitors and `export` export connections are attached.
    pub async fn wait_until_monitors(&self, su: usize, export: usize) {
        wait_until("monitors attached", || {
            let (_, s, e) = self.relay.monitors().counts();
            s == su && e == export
        })
        .await;
    }
}

/// A site's admin interface, served over loopback TCP, writing changes back to a
/// configuration file of its own.
pub struct Admin {
    pub server: relay::admin::AdminServer,
    /// The configuration file the API rewrites (the site's configuration at the start).
    pub config_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Admin {
    /// `HOST:PORT`, as `relay ctl --admin` takes it.
    pub fn addr(&self) -> String {
        self.server.addr.to_string()
    }
}

impl Site {
    /// Writes the relay's configuration to a file of its own and serves the admin interface
    /// on a free loopback port, with `token` required when given.
    pub async fn serve_admin(&self, token: Option<&str>) -> Admin {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = dir.path().join("relay.yaml");
        self.relay
            .config()
            .save_atomic(&config_path)
            .expect("the configuration file is written");
        let listener = TcpNetwork
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("a free admin port");
        let server = relay::admin::serve(
            relay::admin::AdminState::new(
                self.relay.clone(),
                token.map(str::to_owned),
                Some(config_path.clone()),
            ),
            listener,
        )
        .expect("the admin interface is served");
        Admin {
            server,
            config_path,
            _dir: dir,
        }
    }
}

/// An SMDR record in the switch's 121-byte layout, as its text (without the line end) and
/// as the `S` frame the switch sends.
pub fn smdr_frame(call: &str, ext: &str, flag: &str, secs: u64) -> (String, bytes::Bytes) {
    use wire::smdr::{Hms, SmdrRecord};
    let line = SmdrRecord {
        call_id: call.into(),
        extension: ext.into(),
        trunk: "8503".into(),
        month: 12,
        day: 23,
        start: Hms::from_secs(secs),
        duration: Hms::from_secs(278),
        flag: flag.into(),
        digits: "0712345600".into(),
        cost: "0.0".into(),
        caller_id: "0498765478".into(),
        ..SmdrRecord::default()
    }
    .to_line();
    let frame = wire::frame::Frame::build(wire::frame::Kind::Smdr, b'S', 0xFFFF, &line);
    (
        String::from_utf8(line)
            .expect("an SMDR line is ASCII")
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        frame.into_bytes(),
    )
}
