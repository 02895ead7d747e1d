//! A point-in-time view of the relay for operators and tests (`GET /api/status` carries it;
//! [`crate::admin::contract`] lists every body of the admin API).

use crate::config::SwitchSource;
use crate::hub::Hub;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SwitchStatus {
    pub no: u8,
    pub name: String,
    /// The switch's address; `bus: SITE/N` for a remote switch (whose port is then 0).
    pub address: String,
    pub port: u16,
    pub enabled: bool,
    pub up: bool,
    /// `disabled`, `idle` (waiting for an operator), `connecting`, `up`, or `waiting` (for
    /// the next attempt on the recovery schedule).
    pub link: String,
    /// The attempt in progress or last made in the current series, and how many it allows.
    pub attempt: u32,
    pub attempts: u32,
    pub model: Option<String>,
    pub sessions: usize,
    pub requests_in_flight: usize,
}

/// The relay on the bus (`bus` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BusStatus {
    pub site: String,
    /// This relay's name among those sharing the site (empty when the site is not shared).
    pub node: String,
    /// Whether the NATS connection is up now.
    pub connected: bool,
    /// For a shared site: whether this relay holds the lease, and so dials the switches.
    pub lease_held: Option<bool>,
}

impl BusStatus {
    /// One line for operators: `site hq, node b: standby (the other relay holds the lease),
    /// connected`.
    pub fn summary(&self) -> String {
        let role = match self.lease_held {
            None => String::new(),
            Some(true) => format!(
                ", node {}: holds the lease and dials the switches",
                self.node
            ),
            Some(false) => format!(
                ", node {}: standby (the other relay holds the lease)",
                self.node
            ),
        };
        let connected = if self.connected {
            "connected"
        } else {
            "not connected to NATS"
        };
        format!("site {}{role}, {connected}", self.site)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SessionStatus {
    pub id: u64,
    pub address: String,
    pub port: u16,
    pub product: String,
    /// Whether the application came in on the bypass port.
    pub bypass: bool,
    pub protocol: u8,
    pub switches: Vec<u8>,
    /// As the status view shows it: `[Call: 2201 - SW(3)]`.
    pub state: String,
    pub connected_ms: u64,
    pub queued_bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Status {
    pub switches: Vec<SwitchStatus>,
    pub switches_configured: usize,
    pub switches_enabled: usize,
    pub switches_connected: usize,
    pub sessions: Vec<SessionStatus>,
    /// Licence in force, limits and use, trial days, bypass sessions against their limits.
    pub licence: crate::licensing::LicenceStatus,
    /// Without a bus: `None`.
    #[serde(default)]
    pub bus: Option<BusStatus>,
}

impl Status {
    pub fn of(hub: &Hub) -> Status {
        let config = hub.config.load();
        let switches: Vec<SwitchStatus> = config
            .switches
            .iter()
            .map(|sw| {
                let slot = hub.slot_of(sw.no);
                let link = slot.and_then(|s| s.link_handle());
                // A remote switch is reached through the bus: its site and number there.
                let (address, port) = match sw.source() {
                    SwitchSource::Dial { address, port } => (address.to_owned(), port),
                    SwitchSource::Remote(r) => (format!("bus: {}/{}", r.site, r.no), 0),
                };
                SwitchStatus {
                    no: sw.no,
                    name: sw.name.clone(),
                    address,
                    port,
                    enabled: sw.enabled,
                    up: link.is_some(),
                    link: if sw.enabled {
                        slot.map_or(crate::hub::LinkPhase::Idle, |s| s.phase())
                            .name()
                            .into()
                    } else {
                        "disabled".into()
                    },
                    attempt: slot
                        .map_or(0, |s| s.attempt.load(std::sync::atomic::Ordering::Relaxed)),
                    attempts: config.options.recovery.attempts,
                    model: link.as_ref().map(|l| l.info.model.to_string()),
                    sessions: slot.map_or(0, |s| s.subscribers.load().list.len()),
                    requests_in_flight: link.as_ref().map_or(0, |l| l.invokes().len()),
                }
            })
            .collect();
        let sessions = hub
            .sessions()
            .iter()
            .map(|s| SessionStatus {
                id: s.id,
                address: s.peer.ip().to_string(),
                port: s.peer.port(),
                product: s.product.to_string(),
                bypass: s.product.port() == wire::Port::Bypass,
                protocol: s.protocol,
                switches: s.served.clone(),
                state: s.describe_devices(),
                connected_ms: s.connected_ms,
                queued_bytes: s.out.queued_bytes(),
            })
            .collect();
        let licence = crate::licensing::LicenceStatus::of(
            &hub.licensing,
            &hub.standing(),
            &config,
            Some(&hub.licensing.usage()),
            &hub.switch_macs(),
            hub.clock.now_ms(),
        );
        Status {
            licence,
            switches_configured: config.switches.len(),
            switches_enabled: config.switches.iter().filter(|s| s.enabled).count(),
            switches_connected: switches.iter().filter(|s| s.up).count(),
            switches,
            sessions,
            bus: config.bus.enabled().then(|| {
                let outbox = hub.bus.load_full();
                BusStatus {
                    site: config.bus.site.clone(),
                    node: config.bus.node.clone(),
                    connected: outbox.as_ref().is_some_and(|o| o.client.connected()),
                    lease_held: config.bus.shared.then(|| {
                        outbox.is_some_and(|o| {
                            o.lease_held.load(std::sync::atomic::Ordering::Relaxed)
                        })
                    }),
                }
            }),
        }
    }
}
