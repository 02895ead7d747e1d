//! Registering a licence, in process or by writing `state_dir/license.key` (as the command
//! line does): the file is read every second and a new key takes effect in the running relay
//! once it verifies; a refused key is reported and the previous state stays.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::licensing::key::{self, MacType, Payload};
use crate::licensing::{grants_text, store, valid_now, LicenceError, Registered};
use crate::notify::Notice;

/// Checks a key against the configured issuers and the MACs present now.
pub fn check(hub: &Hub, text: &str) -> Result<Payload, LicenceError> {
    let issuers =
        key::issuer_keys(&hub.config.load().license.issuer_keys).map_err(LicenceError::from)?;
    let payload = key::verify(text, &issuers)?;
    valid_now(
        &payload,
        hub.clock.now_ms(),
        &hub.host_macs(),
        &hub.switch_macs(),
    )?;
    Ok(payload)
}

/// Registers `text`: verified, written to the state directory, then in force.
pub fn register(hub: &Hub, text: &str) -> Result<Payload, LicenceError> {
    let payload = check(hub, text)?;
    let text = text.trim().to_owned();
    let dir = hub.config.load().state_dir.clone();
    store::write(&dir, &text)?;
    store::remove_previous(&dir);
    apply(
        hub,
        Registered {
            text,
            payload: payload.clone(),
        },
    );
    Ok(payload)
}

fn apply(hub: &Hub, registered: Registered) {
    hub.notices.emit(Notice::LicenceApplied {
        serial: registered.payload.serial,
        grants: grants_text(&registered.payload),
    });
    hub.licensing.registered.store(Some(Arc::new(registered)));
}

/// Re-reads the state file every second until `stop`.
pub async fn run(hub: Arc<Hub>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let dir = hub.config.load().state_dir.clone();
        publish_status(&hub, &dir);
        let Ok(on_disk) = store::read(&dir) else {
            continue;
        };
        let current = hub.licensing.registered.load_full();
        match (on_disk, current) {
            (None, Some(_)) => {
                hub.licensing.registered.store(None);
                hub.notices.emit(Notice::LicenceRemoved);
            }
            (Some(text), current) if current.as_ref().is_none_or(|c| c.text != text) => {
                let mut refused = hub
                    .licensing
                    .refused_text
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if refused.as_deref() == Some(text.as_str()) {
                    continue;
                }
                // The MAC binding is checked at each identify (a switch may connect later);
                // here the key must verify and be unexpired.
                let issuers = key::issuer_keys(&hub.config.load().license.issuer_keys);
                let verdict = issuers
                    .map_err(LicenceError::from)
                    .and_then(|i| key::verify(&text, &i).map_err(LicenceError::from))
                    .and_then(
                        |p| match valid_now(&p, hub.clock.now_ms(), &[p.mac], &[p.mac]) {
                            Ok(()) => Ok(p),
                            Err(e) => Err(e.into()),
                        },
                    );
                match verdict {
                    // A licence in force is not given up for one whose switch is not here:
                    // the new key waits (checked again every second) until it is.
                    Ok(payload)
                        if current.is_some()
                            && payload.mac_type == MacType::Switch
                            && !hub.switch_macs().contains(&payload.mac) =>
                    {
                        drop(refused);
                        let mut waiting = hub
                            .licensing
                            .waiting_text
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        if waiting.as_deref() != Some(text.as_str()) {
                            *waiting = Some(text);
                            drop(waiting);
                            hub.notices.emit(Notice::LicenceWaiting {
                                serial: payload.serial,
                                mac: key::mac_text(&payload.mac),
                            });
                        }
                    }
                    Ok(payload) => {
                        *refused = None;
                        drop(refused);
                        *hub.licensing
                            .waiting_text
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = None;
                        store::remove_previous(&dir);
                        apply(&hub, Registered { text, payload });
                    }
                    Err(e) => {
                        *refused = Some(text);
                        drop(refused);
                        hub.notices.emit(Notice::LicenceRefused {
                            reason: e.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// Writes the licence status where `relay license show` finds it.
fn publish_status(hub: &Hub, dir: &std::path::Path) {
    let status = crate::licensing::LicenceStatus::of(
        &hub.licensing,
        &hub.standing(),
        &hub.config.load(),
        Some(&hub.licensing.usage()),
        &hub.switch_macs(),
        hub.clock.now_ms(),
    );
    if let Ok(text) = serde_yaml::to_string(&status) {
        let temp = dir.join(format!(
            ".{}.{}",
            crate::licensing::STATUS_FILE,
            std::process::id()
        ));
        if std::fs::write(&temp, text).is_ok() {
            let _ = std::fs::rename(&temp, dir.join(crate::licensing::STATUS_FILE));
        }
    }
}
