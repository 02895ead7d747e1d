//! Licensing (SPEC §5): who may identify on the licensed port, and how many at once.
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
const DAY_MS: u64 = 86_400_000;

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
}

impl Licensing {
    /// Reads (or, at the first start, records) the trial start and any registered licence.
    pub fn open(state_dir: &Path, now_ms: u64) -> std::io::Result<Licensing> {
        let trial_start_ms = trial::start(state_dir, now_ms)?;
        let registered = store::read(state_dir)?.and_then(|text| {
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
        });
        Ok(Licensing {
            trial_start_ms,
            registered: ArcSwapOption::from_pointee(registered),
            usage: Mutex::new(Usage::default()),
            refused_text: Mutex::new(None),
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
    Issuers(String),
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
