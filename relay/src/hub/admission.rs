//! Admission (SPEC §4): whether an application that identified may stay, which switches it
//! is served and which devices it watches; an accepted session is registered with `i` already
//! queued, before any event or `W` can reach it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use wire::{DeviceRef, IdentifyResult, LinkMsg, Port, Product};

use super::{Hub, Refusal, SwitchSlot};
use crate::hub::routing::served_switches;
use crate::hub::session::{DeviceKey, NewSession, SessionHandle};

impl Hub {
    /// Applies the identify rules (SPEC §4) and, when accepted, registers the session with
    /// `i` already queued, before any event or `W` can reach it.
    pub fn admit(
        &self,
        peer: SocketAddr,
        port: Port,
        identify: &LinkMsg,
    ) -> Result<Arc<SessionHandle>, Refusal> {
        let refuse = |r: IdentifyResult| Err((r, Vec::new()));
        let LinkMsg::Identify {
            protocol,
            product,
            app_name,
            devices,
        } = identify
        else {
            return refuse(IdentifyResult::Malformed);
        };
        if !matches!(protocol, 2 | 3) {
            return refuse(IdentifyResult::Malformed);
        }
        let Some(product) = Product::from_byte(*product) else {
            return refuse(IdentifyResult::Malformed);
        };
        if product.port() != port {
            return refuse(IdentifyResult::WrongPort);
        }
        let config = self.config.load();
        let user = config.user(peer.ip());
        if user.is_none() && !config.access.allow_unregistered {
            return refuse(IdentifyResult::AddressNotPermitted);
        }

        let _membership = self.lock_membership();
        if !self.any_switch_up() {
            return refuse(IdentifyResult::NotConnected);
        }
        let served = served_switches(&config, peer.ip(), *protocol);
        let states: Vec<(u8, bool)> = served
            .switches
            .iter()
            .map(|no| (*no, self.slot(*no).is_some_and(SwitchSlot::is_up)))
            .collect();
        if !states.iter().any(|(_, up)| *up) {
            return Err((IdentifyResult::NoUsableSwitch, states));
        }
        let entitlements = self.standing().entitlements();
        let grant = self
            .licensing
            .usage()
            .admit(
                product,
                &served.switches,
                entitlements.as_ref(),
                &config.bypass_limits,
            )
            .map_err(|r| (r, Vec::new()))?;

        let devices: BTreeSet<DeviceKey> = devices
            .iter()
            .filter_map(|DeviceRef { switch, device }| {
                let switch = if *switch == 0 {
                    served.default
                } else {
                    *switch
                };
                served
                    .switches
                    .contains(&switch)
                    .then(|| (switch, device.clone()))
            })
            .take(self.tuning.max_devices)
            .collect();
        let session = SessionHandle::new(NewSession {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            peer,
            product,
            protocol: *protocol,
            app_name: app_name.clone(),
            served: served.switches.clone(),
            default_switch: served.default,
            filtering: product.filterable() && user.is_some_and(|u| u.filtering),
            connected_ms: self.clock.now_ms(),
            devices,
            queue_limit: self.tuning.session_queue_bytes,
            grant,
        })
        .shared();
        session.send_link(&LinkMsg::IdentifyResult {
            result: IdentifyResult::Accepted as u8,
            switches: states,
        });
        for no in &served.switches {
            if let Some(slot) = self.slot(*no) {
                let next = slot.subscribers.load().with(&session);
                slot.subscribers.store(Arc::new(next));
            }
        }
        self.registry().insert(session.id, session.clone());
        self.stats.sessions_admitted.fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }
}
