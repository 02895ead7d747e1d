//! Licensing (docs/behaviour.md §5): who may identify on the licensed port, and how many at once.
//!
//! - [`key`]: the licence key format, signatures, dates.
//! - [`trial`]: the trial period's start, recorded once in `state_dir`.
//! - [`usage`]: entitlements, current use, and the admission decision.
//! - [`store`]: the registered licence in `state_dir`, written atomically.
//!
//! The licence in force is re-read from `state_dir` every second, so a key registered by the
//! command line takes effect in a running relay within 2 s; MAC bindings and expiry are
//! checked at every identify, so a switch-MAC licence holds only while that switch is up.

pub mod key;
pub mod store;
pub mod trial;
pub mod usage;

use std::path::Path;
use std::sync::Mutex;

use arc_swap::ArcSwapOption;

use crate::config::Config;
use key::{KeyError, MacType, Payload};
use usage::{Entitlements, Usage};

/// Days of the trial period.
pub const TRIAL_DAYS: u64 = 30;
pub(crate) const DAY_MS: u64 = 86_400_000;

/// A registered licence: its text and what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub text: String,
    pub payload: Payload,
}

/// What governs admission right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A registered licence, valid now.
    Licensed(Payload),
    /// No valid licence; the trial runs.
    Trial { days_used: u64, days_left: u64 },
    /// No valid licence and the trial is over.
    Expired,
}

impl Standing {
    /// The standing's one-word name, for tests and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Standing::Licensed(_) => "licensed",
            Standing::Trial { .. } => "trial",
            Standing::Expired => "expired",
        }
    }

    pub fn entitlements(&self) -> Option<Entitlements> {
        match self {
            Standing::Licensed(p) => Some(Entitlements::of_licence(p)),
            Standing::Trial { .. } => Some(Entitlements::TRIAL),
            Standing::Expired => None,
        }
    }
}

/// The relay's licensing state.
pub struct Licensing {
    pub trial_start_ms: u64,
    pub registered: ArcSwapOption<Registered>,
    pub usage: Mutex<Usage>,
    /// The last licence text refused from the state file (so it is reported once).
    pub refused_text: Mutex<Option<String>>,
    /// A valid licence text in the state file that waits for its switch to connect before it
    /// replaces the one in force (so the wait is reported once).
    pub waiting_text: Mutex<Option<String>>,
}

impl Licensing {
    /// Reads (or, at the first start, records) the trial start and any registered licence.
    pub fn open(state_dir: &Path, now_ms: u64) -> std::io::Result<Licensing> {
        let trial_start_ms = trial::start(state_dir, now_ms)?;
        let read = |text: String| {
            // A key that no longer verifies (e.g. its issuer was removed) is ignored here and
            // reported by the watcher.
            Some(Registered {
                payload: key::Payload::decode(
                    &key::parse_text(&text).ok()?[..key::PAYLOAD_LEN]
                        .try_into()
                        .ok()?,
                )
                .ok()?,
                text,
            })
        };
        // A key registered while no relay ran that is bound to a switch waits for that
        // switch: the key it replaced stays in force until then (see the watcher).
        let registered = match (
            store::read(state_dir)?.and_then(read),
            store::read_previous(state_dir).and_then(read),
        ) {
            (Some(new), Some(previous)) if new.payload.mac_type == key::MacType::Switch => {
                Some(previous)
            }
            (new, _) => new,
        };
        Ok(Licensing {
            trial_start_ms,
            registered: ArcSwapOption::from_pointee(registered),
            usage: Mutex::new(Usage::default()),
            refused_text: Mutex::new(None),
            waiting_text: Mutex::new(None),
        })
    }

    pub fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The standing at `now_ms`, given this host's MACs and the connected switches' MACs.
    pub fn standing(
        &self,
        now_ms: u64,
        host_macs: &[[u8; 6]],
        switch_macs: &[[u8; 6]],
    ) -> Standing {
        if let Some(r) = self.registered.load().as_ref() {
            if valid_now(&r.payload, now_ms, host_macs, switch_macs).is_ok() {
                return Standing::Licensed(r.payload.clone());
            }
        }
        let elapsed = now_ms.saturating_sub(self.trial_start_ms);
        if elapsed < TRIAL_DAYS * DAY_MS {
            let days_used = elapsed / DAY_MS;
            Standing::Trial {
                days_used,
                days_left: TRIAL_DAYS - days_used,
            }
        } else {
            Standing::Expired
        }
    }
}

/// Whether a licence holds at `now_ms`: not expired, and bound to a MAC that is here.
pub fn valid_now(
    p: &Payload,
    now_ms: u64,
    host_macs: &[[u8; 6]],
    switch_macs: &[[u8; 6]],
) -> Result<(), KeyError> {
    let today = (now_ms / DAY_MS) as u32;
    if p.expires != 0 && today > p.expires {
        return Err(KeyError::Expired(key::day_text(p.expires)));
    }
    match p.mac_type {
        MacType::Computer if !host_macs.contains(&p.mac) => {
            Err(KeyError::NotThisHost(key::mac_text(&p.mac)))
        }
        MacType::Switch if !switch_macs.contains(&p.mac) => {
            Err(KeyError::SwitchNotConnected(key::mac_text(&p.mac)))
        }
        _ => Ok(()),
    }
}

/// This host's MAC addresses: `license.host_macs` when set, else every interface's.
pub fn host_macs(config: &Config) -> Vec<[u8; 6]> {
    if let Some(list) = &config.license.host_macs {
        return list
            .iter()
            .filter_map(|m| crate::config::parse_mac(m))
            .collect();
    }
    let mut macs = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for entry in dir.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path().join("address")) {
                if let Some(mac) = crate::config::parse_mac(text.trim()) {
                    if mac != [0; 6] && !macs.contains(&mac) {
                        macs.push(mac);
                    }
                }
            }
        }
    }
    macs.sort_unstable();
    macs
}

/// Why a licence could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum LicenceError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the configured issuer keys are unusable: {0}")]
    Issuers(#[from] key::IssuerKeyError),
    #[error("cannot write the licence to the state directory: {0}")]
    Store(#[from] std::io::Error),
}

/// A licence's grants in a line: `Call 50, OpenTSP 5, Operator 3, EasySet, News`.
pub fn grants_text(p: &Payload) -> String {
    let mut parts = vec![
        format!("Call {}", p.call),
        format!("OpenTSP {}", p.opentsp),
        format!("Operator {}", p.operator),
    ];
    for (on, name) in [
        (p.easyset, "EasySet"),
        (p.news, "News"),
        (p.dataview, "DataView"),
    ] {
        if on {
            parts.push(name.into());
        }
    }
    parts.join(", ")
}

/// The licence status as operators see it, published by a running relay to
/// `state_dir/usage.yaml` every second and shown by `relay license show`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LicenceStatus {
    /// Unix ms when this was taken.
    pub at_ms: u64,
    /// `licensed`, `trial` or `expired`.
    pub standing: String,
    pub serial: Option<u32>,
    pub mac_type: Option<String>,
    pub allowed_mac: Option<String>,
    pub expires: Option<String>,
    pub trial_started: String,
    pub trial_days_used: u64,
    pub trial_days_left: u64,
    /// Licensed-port products: counted ones (a number as limit) and flag products (limit
    /// `yes`/`no`, use the switches they are active on).
    pub products: Vec<ProductUse>,
    pub access_limit: u32,
    pub licensed_in_use: u32,
    /// Bypass products against their limits.
    pub bypass: Vec<BypassUse>,
    /// MACs of the switches connected now.
    pub switch_macs: Vec<String>,
}

/// A licensed-port product's limit and use, as text: a count (`20`, `3`) or, for flag
/// products, `yes`/`no` and the switches it is active on (`1, 2` or `none`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProductUse {
    pub name: String,
    pub limit: String,
    pub in_use: String,
}

/// A bypass product's sessions against its limit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BypassUse {
    pub name: String,
    pub limit: u32,
    pub in_use: u32,
}

/// A product's display name without its remark: "Call (CallPlus counts as Call)" is "Call".
pub fn product_label(name: &str) -> &str {
    name.split(" (").next().unwrap_or(name)
}

impl LicenceStatus {
    /// The counted products (their limit is a number): short name, use (`None` when no relay
    /// reported it) and limit.
    pub fn counted(&self) -> impl Iterator<Item = (&str, Option<u32>, u32)> {
        self.products.iter().filter_map(|p| {
            Some((
                product_label(&p.name),
                p.in_use.parse().ok(),
                p.limit.parse().ok()?,
            ))
        })
    }

    /// One line for status views: the standing, counted use, licensed sessions against the
    /// access limit, and bypass products in use.
    pub fn summary(&self) -> String {
        let standing = match (self.standing.as_str(), self.expires.as_deref()) {
            ("trial", _) => format!("trial, day {} of 30", self.trial_days_used + 1),
            ("licensed", Some(date)) if date != "never" => {
                format!("licence {} (expires {date})", self.serial.unwrap_or(0))
            }
            ("licensed", _) => format!("licence {}", self.serial.unwrap_or(0)),
            _ => "none in force (the trial has ended)".into(),
        };
        let counted: Vec<String> = self
            .counted()
            .map(|(name, used, limit)| {
                let used = used.map_or("-".into(), |u| u.to_string());
                format!("{name} {used}/{limit}")
            })
            .collect();
        let mut line = format!(
            "{standing}; {}; licensed sessions {}/{}",
            counted.join(", "),
            self.licensed_in_use,
            self.access_limit
        );
        let bypass: Vec<String> = self
            .bypass
            .iter()
            .filter(|b| b.in_use > 0)
            .map(|b| format!("{} {}/{}", b.name, b.in_use, b.limit))
            .collect();
        line.push_str("; bypass ");
        if bypass.is_empty() {
            line.push_str("none");
        } else {
            line.push_str(&bypass.join(", "));
        }
        line
    }
}

pub const STATUS_FILE: &str = "usage.yaml";

impl LicenceStatus {
    /// The status of `licensing` now; `usage` is `None` when no relay is running.
    pub fn of(
        licensing: &Licensing,
        standing: &Standing,
        config: &Config,
        usage: Option<&Usage>,
        switch_macs: &[[u8; 6]],
        now_ms: u64,
    ) -> LicenceStatus {
        use wire::Product;
        let registered = licensing.registered.load_full();
        let payload = registered.as_ref().map(|r| &r.payload);
        let ent = standing.entitlements();
        let used = |p: Product| usage.map_or("-".to_string(), |u| u.counted(p).to_string());
        let flag_use = |p: Product| {
            usage.map_or("-".to_string(), |u| {
                let s = u.flag_switches(p);
                if s.is_empty() {
                    "none".into()
                } else {
                    let list: Vec<String> = s.iter().map(|n| format!("switch {n}")).collect();
                    list.join(", ")
                }
            })
        };
        let count = |n: Option<u32>| n.map_or("0".to_string(), |n| n.to_string());
        let flag = |b: Option<bool>| if b.unwrap_or(false) { "yes" } else { "no" }.to_string();
        let elapsed = now_ms.saturating_sub(licensing.trial_start_ms);
        let days_used = (elapsed / DAY_MS).min(TRIAL_DAYS);
        LicenceStatus {
            at_ms: now_ms,
            standing: standing.name().into(),
            serial: payload.map(|p| p.serial),
            mac_type: payload.map(|p| match p.mac_type {
                MacType::Computer => "computer".into(),
                MacType::Switch => "switch".into(),
            }),
            allowed_mac: payload.map(|p| key::mac_text(&p.mac)),
            expires: payload.map(|p| {
                if p.expires == 0 {
                    "never".into()
                } else {
                    key::day_text(p.expires)
                }
            }),
            trial_started: key::day_text((licensing.trial_start_ms / DAY_MS) as u32),
            trial_days_used: days_used,
            trial_days_left: TRIAL_DAYS - days_used,
            products: vec![
                ProductUse {
                    name: "Call (CallPlus counts as Call)".into(),
                    limit: count(ent.map(|e| e.call)),
                    in_use: used(Product::Call),
                },
                ProductUse {
                    name: "OpenTSP".into(),
                    limit: count(ent.map(|e| e.opentsp)),
                    in_use: used(Product::OpenTsp),
                },
                ProductUse {
                    name: "Operator".into(),
                    limit: count(ent.map(|e| e.operator)),
                    in_use: used(Product::Operator),
                },
                ProductUse {
                    name: "EasySet".into(),
                    limit: flag(ent.map(|e| e.easyset)),
                    in_use: flag_use(Product::EasySet),
                },
                ProductUse {
                    name: "News".into(),
                    limit: flag(ent.map(|e| e.news)),
                    in_use: flag_use(Product::News),
                },
                ProductUse {
                    name: "DataView".into(),
                    limit: flag(ent.map(|e| e.dataview)),
                    in_use: flag_use(Product::DataView),
                },
            ],
            access_limit: ent.map_or(0, |e| e.access_limit()),
            licensed_in_use: usage.map_or(0, Usage::licensed_total),
            bypass: Product::ALL
                .iter()
                .copied()
                .filter(|p| p.port() == wire::Port::Bypass)
                .map(|p| BypassUse {
                    name: p.name().to_string(),
                    limit: usage::bypass_limit(&config.bypass_limits, p),
                    in_use: usage.map_or(0, |u| u.bypass(p)),
                })
                .collect(),
            switch_macs: switch_macs.iter().map(key::mac_text).collect(),
        }
    }
}
