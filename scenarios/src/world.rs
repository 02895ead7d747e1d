//! Random worlds for the explorer: a seed makes a whole scenario (switches, configuration,
//! applications, and a timeline of traffic, faults, operator actions, reconfigurations and
//! licence changes). The timeline depends on the seed alone, never on what the relay does,
//! so the same seed is the same history on every run and the scenario file replays it.

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_yaml::{Mapping, Value};

use crate::schema::{
    AppSpec, Fault, FaultEntry, LicenceSpec, MonitorSpec, OperatorAction, Scenario, Step,
    StepEntry, SwitchEdit, SwitchSpec, TuningSpec,
};

/// Virtual time each step takes to settle in the runner.
const SETTLE: Duration = Duration::from_millis(10);

/// Products by name, as scenario files write them.
const PRODUCTS: [&str; 13] = [
    "call",
    "callplus",
    "operator",
    "opentsp",
    "easyset",
    "dataview",
    "news",
    "acd",
    "messenger",
    "bypass-dataview",
    "callpro",
    "callsim",
    "other",
];

/// Request codes the switch simulator implements, and one it does not.
const CODES: [&str; 10] = ["K", "N", "D", "H", "G", "T", "F", "Y", "+", "Q"];

/// One switch of the world, as the generator knows it.
struct SwitchPlan {
    no: u8,
    keysets: Vec<String>,
    configured: bool,
    enabled: bool,
    mac: String,
}

/// A user entry of the configuration.
#[derive(Clone)]
struct UserPlan {
    ip: String,
    switches: Vec<u8>,
    default_switch: Option<u8>,
    filtering: bool,
}

/// An application, and what the generator knows of it.
struct AppPlan {
    name: String,
    protocol: u8,
    connected: bool,
    reads: bool,
    /// Asks for a resumable session and comes back with its token.
    resumable: bool,
    next_invoke: u16,
}

/// Makes the world of `seed`, with a timeline of about `minutes` virtual minutes.
pub fn world(seed: u64, minutes: u64) -> Scenario {
    Gen::new(seed).scenario(Duration::from_secs(minutes * 60), seed)
}

struct Gen {
    rng: ChaCha8Rng,
    /// Draws about session resume, apart, so the rest of a seed's world is what it was before
    /// resume existed.
    resume_rng: ChaCha8Rng,
    switches: Vec<SwitchPlan>,
    users: Vec<UserPlan>,
    apps: Vec<AppPlan>,
    default_switch: u8,
    allow_unregistered: bool,
    call_plus: bool,
    /// Bytes a session's queue holds (bursts stay well under it).
    queue_bytes: usize,
    expired: bool,
    /// Switches given a fault and not healed since.
    faulty: BTreeSet<u8>,
    /// Steps the timeline owes: the connect half of a reconnect, an operator's reconnection
    /// after a disconnection.
    owed: VecDeque<Step>,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            resume_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5E55_1011),
            switches: Vec::new(),
            users: Vec::new(),
            apps: Vec::new(),
            default_switch: 1,
            allow_unregistered: true,
            call_plus: false,
            queue_bytes: 4 << 20,
            expired: false,
            faulty: BTreeSet::new(),
            owed: VecDeque::new(),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn scenario(mut self, length: Duration, seed: u64) -> Scenario {
        let switches = self.make_switches();
        self.make_users();
        let apps = self.make_apps();
        let mut tuning = TuningSpec {
            session_queue_bytes: self.chance(0.2).then(|| {
                self.queue_bytes = self.rng.random_range(32..=256) << 10;
                self.queue_bytes
            }),
            max_in_flight: self.chance(0.2).then(|| self.rng.random_range(1..=16)),
            monitor_queue_bytes: None,
        };
        let config = self.config_value();
        let monitors = self.make_monitors();
        if monitors.iter().any(|m| !m.reads) && self.chance(0.7) {
            // Small enough that a monitor which stops reading loses frames.
            tuning.monitor_queue_bytes = Some(self.rng.random_range(1..=16) << 10);
        }
        let mut steps: Vec<StepEntry> = monitors
            .iter()
            .map(|m| StepEntry(Step::ConnectMonitor(m.name.clone())))
            .collect();
        let mut elapsed = Duration::ZERO;
        while elapsed < length {
            let (step, took) = self.step();
            elapsed += took + SETTLE;
            steps.push(StepEntry(step));
        }
        // A monitor that does not read for a while, then catches up.
        for m in monitors.iter().filter(|m| !m.reads) {
            let at = self.rng.random_range(monitors.len()..=steps.len());
            steps.insert(at, StepEntry(Step::Resume(m.name.clone())));
        }
        Scenario {
            description: format!(
                "Explorer world of seed {seed}: {} switches, {} applications, {} steps.",
                self.switches.len(),
                self.apps.len(),
                steps.len()
            ),
            config: Some(config),
            tuning,
            switches,
            apps,
            monitors,
            steps,
            invariants: true,
        }
    }

    /// Switch-message monitors: often one that reads, sometimes one that falls behind.
    fn make_monitors(&mut self) -> Vec<MonitorSpec> {
        let monitor = |name: &str, reads| MonitorSpec {
            name: name.into(),
            port: "sw".into(),
            password: Some(String::new()),
            reads,
        };
        let mut monitors = Vec::new();
        if self.chance(0.5) {
            monitors.push(monitor("trace", true));
        }
        if self.chance(0.2) {
            monitors.push(monitor("lagging", false));
        }
        monitors
    }

    fn make_switches(&mut self) -> Vec<SwitchSpec> {
        let n = self.rng.random_range(1..=8u8);
        let mut specs = Vec::new();
        for no in 1..=n {
            let first = 2000 + 100 * u32::from(no) + 1;
            let count = self.rng.random_range(4..=32u32);
            let keysets: Vec<String> = (first..first + count).map(|k| k.to_string()).collect();
            // Switch 1 is always configured, so that a default switch exists.
            let configured = no == 1 || self.chance(0.9);
            let enabled = self.chance(0.9);
            let mac = format!(
                "02:00:5A:{:02X}:{:02X}:{:02X}",
                no,
                self.rng.random::<u8>(),
                self.rng.random::<u8>()
            );
            specs.push(SwitchSpec {
                no,
                answering: None,
                caps: Some(self.rng.random_range(0..=7)),
                password: None,
                relay_password: self.chance(0.04).then(|| "9999".to_owned()),
                cti_server: self.chance(0.03).then(|| IpAddr::from([10, 0, 0, 99])),
                enabled: Some(enabled),
                keysets: Some(format!("{first}-{}", first + count - 1)),
                configured,
                mac: Some(mac.clone()),
            });
            self.switches.push(SwitchPlan {
                no,
                keysets,
                configured,
                enabled,
                mac,
            });
        }
        let configured: Vec<u8> = self.configured();
        self.default_switch = *configured.choose(&mut self.rng).expect("switch 1");
        specs
    }

    fn configured(&self) -> Vec<u8> {
        self.switches
            .iter()
            .filter(|s| s.configured)
            .map(|s| s.no)
            .collect()
    }

    fn random_user(&mut self, ip: String) -> UserPlan {
        let configured = self.configured();
        let switches: Vec<u8> = if self.chance(0.5) {
            configured
                .iter()
                .copied()
                .filter(|_| self.rng.random_bool(0.5))
                .collect()
        } else {
            Vec::new()
        };
        let default_switch = if self.chance(0.6) {
            let from = if switches.is_empty() {
                &configured
            } else {
                &switches
            };
            from.choose(&mut self.rng).copied()
        } else {
            None
        };
        UserPlan {
            ip,
            switches,
            default_switch,
            filtering: self.chance(0.5),
        }
    }

    fn make_users(&mut self) {
        let n = self.rng.random_range(0..=10);
        for i in 0..n {
            let user = self.random_user(format!("10.0.0.{}", 10 + i));
            self.users.push(user);
        }
        self.allow_unregistered = self.chance(0.9);
        self.call_plus = self.chance(0.5);
    }

    fn make_apps(&mut self) -> Vec<AppSpec> {
        let n = match self.rng.random_range(0..100) {
            0..50 => self.rng.random_range(1..=20),
            50..85 => self.rng.random_range(21..=80),
            _ => self.rng.random_range(81..=300),
        };
        let mut specs = Vec::new();
        for i in 0..n {
            let address: IpAddr = if !self.users.is_empty() && self.chance(0.3) {
                let u = self.users.choose(&mut self.rng).expect("not empty");
                u.ip.parse().expect("a user address")
            } else {
                IpAddr::from([10, 0, 2 + (i / 250) as u8, (i % 250) as u8 + 1])
            };
            let product = *PRODUCTS.choose(&mut self.rng).expect("products");
            let protocol = if self.chance(0.5) { 2 } else { 3 };
            let devices = (0..self.rng.random_range(0..=3))
                .map(|_| {
                    let sw = self.switch_byte(protocol);
                    format!("{sw}:{}", self.keyset(sw))
                })
                .collect();
            let reads = self.chance(0.95);
            let port = self.chance(0.03).then(|| {
                if self.chance(0.5) {
                    "licensed".to_owned()
                } else {
                    "bypass".to_owned()
                }
            });
            let name = format!("app{i:03}");
            let resumable = reads && self.resume_rng.random_bool(0.25);
            specs.push(AppSpec {
                name: name.clone(),
                address,
                protocol,
                product: product.to_owned(),
                devices,
                port,
                reads,
                resumable,
                copies: 1,
            });
            self.apps.push(AppPlan {
                name,
                protocol,
                connected: false,
                reads,
                resumable,
                next_invoke: 1,
            });
        }
        specs
    }

    /// A switch number as an application names it: 0 (its default) or a configured one.
    fn switch_byte(&mut self, protocol: u8) -> u8 {
        if protocol == 2 || self.chance(0.3) {
            0
        } else {
            self.rng.random_range(1..=self.switches.len() as u8)
        }
    }

    /// A keyset of switch `sw` (of switch 1 for 0 or a switch that does not exist), now and
    /// then one that does not exist.
    fn keyset(&mut self, sw: u8) -> String {
        let plan = self
            .switches
            .get(usize::from(sw).wrapping_sub(1))
            .unwrap_or(&self.switches[0]);
        if self.rng.random_bool(0.05) {
            return "9999".into();
        }
        plan.keysets.choose(&mut self.rng).expect("keysets").clone()
    }

    fn config_value(&self) -> Value {
        let mut map = Mapping::new();
        map.insert("default_switch".into(), Value::from(self.default_switch));
        map.insert("users".into(), self.users_value());
        map.insert("access".into(), self.access_value());
        map.insert("options".into(), self.options_value());
        map.insert("bypass_limits".into(), {
            let mut b = Mapping::new();
            for (k, v) in [
                ("acd", 2),
                ("messenger", 8),
                ("dataview", 1),
                ("callpro", 4),
                ("callsim", 4),
                ("other", 8),
            ] {
                b.insert(k.into(), Value::from(v));
            }
            Value::Mapping(b)
        });
        Value::Mapping(map)
    }

    fn users_value(&self) -> Value {
        Value::Sequence(
            self.users
                .iter()
                .map(|u| {
                    let mut m = Mapping::new();
                    m.insert("ip".into(), u.ip.clone().into());
                    m.insert(
                        "switches".into(),
                        Value::Sequence(u.switches.iter().map(|s| Value::from(*s)).collect()),
                    );
                    if let Some(d) = u.default_switch {
                        m.insert("default_switch".into(), Value::from(d));
                    }
                    m.insert("filtering".into(), Value::from(u.filtering));
                    Value::Mapping(m)
                })
                .collect(),
        )
    }

    fn access_value(&self) -> Value {
        let mut m = Mapping::new();
        m.insert(
            "allow_unregistered".into(),
            Value::from(self.allow_unregistered),
        );
        Value::Mapping(m)
    }

    fn options_value(&self) -> Value {
        let mut m = Mapping::new();
        m.insert("call_plus".into(), Value::from(self.call_plus));
        let mut r = Mapping::new();
        r.insert("attempts".into(), Value::from(5));
        r.insert("cycle_minutes".into(), Value::from(1));
        m.insert("recovery".into(), Value::Mapping(r));
        Value::Mapping(m)
    }

    fn app_index(&mut self, connected: bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.apps.len())
            .filter(|i| self.apps[*i].connected == connected)
            .collect();
        candidates.choose(&mut self.rng).copied()
    }

    fn any_switch(&mut self) -> u8 {
        self.rng.random_range(1..=self.switches.len() as u8)
    }

    /// The next step, and the virtual time it lets pass.
    fn step(&mut self) -> (Step, Duration) {
        if let Some(step) = self.owed.pop_front() {
            let took = match &step {
                Step::Advance(d) => humantime::parse_duration(d).unwrap_or_default(),
                _ => Duration::ZERO,
            };
            return (step, took);
        }
        loop {
            let roll = self.rng.random_range(0..1000);
            let step = match roll {
                0..120 => self.connect(),
                120..150 => self.disconnect(),
                150..190 => self.reconnect(),
                190..420 => self.request(),
                420..470 => self.device(),
                470..480 => self.resume(),
                480..620 => Some(self.phone()),
                620..660 => Some(self.incoming()),
                660..680 => Some(self.burst()),
                680..720 => Some(self.fault()),
                720..750 => Some(self.operator()),
                750..760 => Some(if self.chance(0.5) {
                    Step::ConnectAll
                } else {
                    // An operator who disconnects everything connects again after a while.
                    self.owe_later(Step::ConnectAll);
                    Step::DisconnectAll
                }),
                760..770 => self
                    .app_index(true)
                    .map(|i| Step::CloseSession(self.apps[i].name.clone())),
                770..785 => Some(self.reconfigure()),
                785..790 => Some(self.edit()),
                790..800 => Some(self.licence()),
                800..802 if !self.expired => {
                    self.expired = true;
                    Some(Step::SkipDays(31))
                }
                _ => {
                    let d = match self.rng.random_range(0..100) {
                        0..3 => Duration::from_millis(self.rng.random_range(31_000..=90_000)),
                        3..15 => Duration::from_millis(self.rng.random_range(3_000..=20_000)),
                        _ => Duration::from_millis(self.rng.random_range(50..=3_000)),
                    };
                    return (Step::Advance(format!("{}ms", d.as_millis())), d);
                }
            };
            if let Some(step) = step {
                return (step, Duration::ZERO);
            }
        }
    }

    fn connect(&mut self) -> Option<Step> {
        let i = self.app_index(false)?;
        self.apps[i].connected = true;
        Some(Step::Connect(self.apps[i].name.clone()))
    }

    fn disconnect(&mut self) -> Option<Step> {
        let i = self.app_index(true)?;
        self.apps[i].connected = false;
        Some(Step::Disconnect(self.apps[i].name.clone()))
    }

    /// An application that goes away and comes back at once, as one whose connection the
    /// relay closed does.
    /// A resumable one may instead find its connection half-open (it stops reading and
    /// answering) and come back after a while, within the relay's 30 s or beyond.
    fn reconnect(&mut self) -> Option<Step> {
        let i = self.app_index(true)?;
        let name = self.apps[i].name.clone();
        if self.apps[i].resumable && self.resume_rng.random_bool(0.4) {
            let away = self.resume_rng.random_range(100..=45_000);
            self.owed.push_back(Step::Advance(format!("{away}ms")));
            self.owed.push_back(Step::Connect(name.clone()));
            return Some(Step::Hang(name));
        }
        self.owed.push_back(Step::Connect(name.clone()));
        Some(Step::Disconnect(name))
    }

    fn resume(&mut self) -> Option<Step> {
        let i = (0..self.apps.len()).find(|i| self.apps[*i].connected && !self.apps[*i].reads)?;
        self.apps[i].reads = true;
        Some(Step::Resume(self.apps[i].name.clone()))
    }

    fn request(&mut self) -> Option<Step> {
        let i = self.app_index(true)?;
        let protocol = self.apps[i].protocol;
        let switch = (protocol == 3).then(|| match self.rng.random_range(0..20) {
            0 => 0,
            1 => 9,
            _ => self.any_switch(),
        });
        let code = *CODES.choose(&mut self.rng).expect("codes");
        let sw = switch.unwrap_or(0);
        let fields = match code {
            "K" | "T" | "F" => vec![self.keyset(sw), self.keyset(sw)],
            "+" => vec![self.keyset(sw), "Hello".into()],
            _ => vec![self.keyset(sw)],
        };
        let app = &mut self.apps[i];
        let invoke = app.next_invoke;
        // Unique per application, never 0xFFFF.
        app.next_invoke = if invoke >= 0xFFFE { 1 } else { invoke + 1 };
        Some(Step::Request {
            app: app.name.clone(),
            switch,
            code: code.into(),
            invoke,
            fields,
        })
    }

    fn device(&mut self) -> Option<Step> {
        let i = self.app_index(true)?;
        let protocol = self.apps[i].protocol;
        let switch = self.switch_byte(protocol);
        let device = self.keyset(switch);
        Some(Step::Device {
            app: self.apps[i].name.clone(),
            add: self.chance(0.6),
            switch,
            device,
        })
    }

    fn phone(&mut self) -> Step {
        let switch = self.any_switch();
        let code = ["K", "K", "N", "N", "D", "D", "H", "G", "T", "F"]
            .choose(&mut self.rng)
            .expect("codes");
        let device = self.keyset(switch);
        let to = matches!(*code, "K" | "T" | "F").then(|| self.keyset(switch));
        Step::Phone {
            switch,
            code: (*code).into(),
            device,
            to,
        }
    }

    fn incoming(&mut self) -> Step {
        let switch = self.any_switch();
        Step::Incoming {
            switch,
            trunk: format!("70{}", self.rng.random_range(1..=8)),
            device: self.keyset(switch),
        }
    }

    fn burst(&mut self) -> Step {
        let switch = self.any_switch();
        // Far below a session's queue, so a session that reads keeps up.
        let most = (self.queue_bytes / 4 / 24).clamp(1, 200);
        let device = if self.chance(0.2) {
            String::new()
        } else {
            self.keyset(switch)
        };
        Step::Burst {
            switch,
            device,
            count: self.rng.random_range(1..=most),
        }
    }

    fn fault(&mut self) -> Step {
        if !self.faulty.is_empty() && self.chance(0.5) {
            let sick: Vec<u8> = self.faulty.iter().copied().collect();
            let switch = *sick.choose(&mut self.rng).expect("not empty");
            self.faulty.remove(&switch);
            return Step::Fault {
                switch,
                fault: FaultEntry(Fault::Heal),
            };
        }
        let switch = self.any_switch();
        self.faulty.insert(switch);
        let fault = match self.rng.random_range(0..12) {
            0 => Fault::Drop,
            1 => Fault::HalfOpen,
            2 => Fault::Garbage,
            3 => Fault::Oversize,
            4 => Fault::RefuseOpens(self.rng.random_range(1..=3)),
            5 => Fault::Silent,
            6 => Fault::NoHeartbeats,
            7 => Fault::MuteOpens,
            8 => Fault::SlowAnswers(format!("{}ms", self.rng.random_range(100..=40_000))),
            9 => Fault::Stall(format!("{}ms", self.rng.random_range(100..=20_000))),
            _ => Fault::Heal,
        };
        Step::Fault {
            switch,
            fault: FaultEntry(fault),
        }
    }

    /// Owes `step` after a pause of up to 20 s.
    fn owe_later(&mut self, step: Step) {
        let pause = self.rng.random_range(100..=20_000);
        self.owed.push_back(Step::Advance(format!("{pause}ms")));
        self.owed.push_back(step);
    }

    fn operator(&mut self) -> Step {
        let n = self.any_switch();
        let connect = |n| OperatorAction {
            connect: Some(n),
            disconnect: None,
            abort: None,
        };
        let action = match self.rng.random_range(0..3) {
            0 => connect(n),
            1 => {
                if self.chance(0.7) {
                    self.owe_later(Step::Operator(connect(n)));
                }
                OperatorAction {
                    connect: None,
                    disconnect: Some(n),
                    abort: None,
                }
            }
            _ => OperatorAction {
                connect: None,
                disconnect: None,
                abort: Some(n),
            },
        };
        Step::Operator(action)
    }

    /// A change of the configuration: reloaded from the file, or (for the users, half the
    /// time) made by an operator through the admin interface.
    fn reconfigure(&mut self) -> Step {
        let mut map = Mapping::new();
        match self.rng.random_range(0..10) {
            0..4 if !self.users.is_empty() => {
                let i = self.rng.random_range(0..self.users.len());
                let ip = self.users[i].ip.clone();
                self.users[i] = self.random_user(ip);
                map.insert("users".into(), self.users_value());
                if self.chance(0.5) {
                    return Step::Edit(Value::Mapping(map));
                }
            }
            4 => {
                self.allow_unregistered = !self.allow_unregistered;
                map.insert("access".into(), self.access_value());
            }
            5..7 => {
                self.call_plus = !self.call_plus;
                map.insert("options".into(), self.options_value());
            }
            _ => {
                // Add a switch that is on the network but not yet configured, if any.
                if let Some(plan) = self.switches.iter_mut().find(|s| !s.configured) {
                    plan.configured = true;
                }
                map.insert("switches".into(), self.switches_value());
            }
        }
        Step::Reconfigure(Value::Mapping(map))
    }

    /// An operator's edit of one switch, as the admin interface makes it: enabled or
    /// disabled, deleted or added back, its address changed. Usually the operator disconnects it first (an edit of
    /// a connected switch is refused), and often connects it again later. Switch 1 is never
    /// deleted, so that a default switch exists.
    fn edit(&mut self) -> Step {
        let no = self.any_switch();
        let change = match self.rng.random_range(0..7) {
            0 if no != 1 => SwitchEdit::Delete,
            1 => SwitchEdit::Add,
            2 | 3 => SwitchEdit::Disable,
            4 => SwitchEdit::Readdress,
            _ => SwitchEdit::Enable,
        };
        let edit = Step::EditSwitch { switch: no, change };
        if !self.chance(0.8) {
            return edit;
        }
        self.owed.push_back(edit);
        if self.chance(0.5) {
            self.owe_later(Step::Operator(OperatorAction {
                connect: Some(no),
                disconnect: None,
                abort: None,
            }));
        }
        Step::Operator(OperatorAction {
            connect: None,
            disconnect: Some(no),
            abort: None,
        })
    }

    fn switches_value(&self) -> Value {
        Value::Sequence(
            self.switches
                .iter()
                .filter(|s| s.configured)
                .map(|s| {
                    let mut m = Mapping::new();
                    m.insert("no".into(), Value::from(s.no));
                    m.insert("address".into(), format!("10.0.1.{}", s.no).into());
                    m.insert("port".into(), Value::from(5002));
                    m.insert("easyset_password".into(), "1234".into());
                    m.insert("enabled".into(), Value::from(s.enabled));
                    Value::Mapping(m)
                })
                .collect(),
        )
    }

    fn licence(&mut self) -> Step {
        let switch_bound = self.chance(0.3);
        let mac = switch_bound.then(|| {
            let i = self.rng.random_range(0..self.switches.len());
            self.switches[i].mac.clone()
        });
        Step::Licence(LicenceSpec {
            serial: self.rng.random_range(1..=99_999),
            mac_type: switch_bound.then(|| "switch".to_owned()),
            mac,
            call: self.rng.random_range(0..=40),
            opentsp: self.rng.random_range(0..=4),
            operator: self.rng.random_range(0..=4),
            easyset: self.chance(0.7),
            news: self.chance(0.7),
            dataview: self.chance(0.7),
            expires: None,
            forge: self.chance(0.1),
        })
    }
}

/// The applications a scenario's steps name.
pub fn named_apps(steps: &[StepEntry]) -> BTreeSet<String> {
    steps
        .iter()
        .filter_map(|s| match &s.0 {
            Step::Connect(n)
            | Step::Disconnect(n)
            | Step::Hang(n)
            | Step::Resume(n)
            | Step::CloseSession(n)
            | Step::Request { app: n, .. }
            | Step::Device { app: n, .. }
            | Step::Send { app: n, .. }
            | Step::ConnectRaw { app: n, .. } => Some(n.clone()),
            _ => None,
        })
        .collect()
}
