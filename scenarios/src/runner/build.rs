//! The site built from a scenario (switches, relay, applications, monitors on an in-memory
//! network), and the scenario's values parsed.

use super::*;

impl Scene {
    pub(super) async fn build(scenario: &Scenario, start: Instant) -> Result<Scene, String> {
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
        let mut tuning = Tuning::simulated(1);
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
            ..
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
        Ok(Scene {
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
}

pub(super) fn switch_settings(spec: &SwitchSpec) -> Result<Settings, String> {
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
pub(super) fn switch_host(no: u8) -> IpAddr {
    IpAddr::from([10, 0, 1, no])
}

pub(super) const SWITCH_PORT: u16 = 5002;

/// An error and its sources, as one line.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(super) fn merge(config: Config, over: Option<&serde_yaml::Value>) -> Result<Config, String> {
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
pub(super) fn expand_copies(a: &AppSpec) -> Result<Vec<AppSpec>, String> {
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
pub(super) fn named(apps: &BTreeMap<String, App>, name: &str) -> Vec<String> {
    if apps.contains_key(name) {
        return vec![name.to_owned()];
    }
    let prefix = format!("{name}#");
    apps.keys()
        .filter(|k| k.starts_with(&prefix))
        .cloned()
        .collect()
}

pub(super) fn licence_text(spec: &LicenceSpec) -> Result<String, String> {
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

pub(super) fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("duration {text:?}: {e}"))
}

pub(super) fn code_byte(code: &str) -> Result<u8, String> {
    match code.as_bytes() {
        [b] => Ok(*b),
        _ => Err(format!("code {code:?} must be one character")),
    }
}

pub(super) fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
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
