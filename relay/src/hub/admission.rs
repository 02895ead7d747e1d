//! Admission (docs/behaviour.md §4): whether an application that identified may stay, which switches it
//! is served and which devices it watches; an accepted session is registered with `i` already
//! queued, before any event or `W` can reach it. A resumable session coming back is admitted
//! here too, with what it missed.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use wire::call::{event_device, put_with_switch};
use wire::link::{put_lost, put_sequence, LOST_UNKNOWN, SEQUENCE_FRAME_LEN};
use wire::{DeviceRef, IdentifyResult, LinkMsg, Port, Product, ResumeGrant};

use super::{Hub, Refusal, SwitchSlot};
use crate::hub::event_journal::EventJournal;
use crate::hub::resume::{Found, MovedSession};
use crate::hub::routing::{served_switches, Served};
use crate::hub::session_handle::{DeviceKey, NewSession, SessionHandle};
use crate::hub::Caller;

impl Hub {
    /// The default switch a session of `caller` identifying with `protocol` is given under
    /// the configuration in force: where SWITCH 0 goes (the gateway's requests).
    pub fn default_switch_for(&self, caller: &Caller, protocol: u8) -> u8 {
        let config = self.config.load();
        let user = config.user_for(caller.addr.ip(), &caller.names);
        served_switches(&config, user, protocol).default
    }

    /// Applies the identify rules (docs/behaviour.md §4) and, when accepted, registers the session with
    /// `i` already queued, before any event or `W` can reach it. A session resumed with its
    /// token is given its old devices, switches and licence use, and then, switch by switch,
    /// what it missed (`G` for what cannot be replayed), before any live event. `moved` is
    /// the session its token names on another relay of the site ([`Hub::moved_session`]): it
    /// is admitted as it was there, with a licence use of its own here.
    pub fn admit(
        &self,
        caller: &Caller,
        port: Port,
        identify: &LinkMsg,
        moved: Option<MovedSession>,
    ) -> Result<Arc<SessionHandle>, Refusal> {
        let peer = caller.addr;
        let refuse = |r: IdentifyResult| Err((r, Vec::new()));
        let LinkMsg::Identify {
            protocol,
            product,
            app_name,
            devices,
            resume: ask,
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
        let user = config.user_for(peer.ip(), &caller.names);
        if user.is_none() && !config.access.allow_unregistered {
            return refuse(IdentifyResult::AddressNotPermitted);
        }

        let _membership = self.lock_membership();
        if !self.any_switch_up() {
            return refuse(IdentifyResult::NotConnected);
        }
        let ask = ask.as_ref().filter(|_| config.resume.enabled());
        let found = match ask {
            Some(a) if a.token != [0; 16] => {
                self.resume_book()
                    .find(&a.token, peer.ip(), product, *protocol)
            }
            _ => Found::Expired,
        };
        let prior = match &found {
            Found::Live(s) | Found::Parked(s) => Some(s.clone()),
            Found::Expired | Found::Unknown => None,
        };
        let moved = moved
            .filter(|m| matches!(found, Found::Unknown) && m.fits(peer.ip(), product, *protocol));
        let served = match (&prior, &moved) {
            (Some(p), _) => Served {
                switches: p.served.clone(),
                default: p.default_switch,
            },
            (None, Some(m)) => Served {
                switches: m
                    .served
                    .iter()
                    .copied()
                    .filter(|no| self.slot_of(*no).is_some())
                    .collect(),
                default: m.default_switch,
            },
            (None, None) => served_switches(&config, user, *protocol),
        };
        let states: Vec<(u8, bool)> = served
            .switches
            .iter()
            .map(|no| (*no, self.slot_of(*no).is_some_and(SwitchSlot::is_up)))
            .collect();
        if !states.iter().any(|(_, up)| *up) {
            return Err((IdentifyResult::NoUsableSwitch, states));
        }
        let grant = match &prior {
            // The licence use kept for the token goes on with it.
            Some(p) => p.grant.clone(),
            None => {
                let entitlements = self.standing().entitlements();
                self.licensing
                    .usage()
                    .admit(
                        product,
                        &served.switches,
                        entitlements.as_ref(),
                        &config.bypass_limits,
                    )
                    .map_err(|r| (r, Vec::new()))?
            }
        };

        let devices: BTreeSet<DeviceKey> = match (&prior, &moved) {
            (Some(p), _) => (**p.devices.load()).clone(),
            (None, Some(m)) => m
                .devices
                .iter()
                .filter_map(|(sw, d)| Some((*sw, wire::Str8::new(d.clone()).ok()?)))
                .filter(|(sw, _)| served.switches.contains(sw))
                .take(self.tuning.max_devices)
                .collect(),
            (None, None) => devices
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
                .collect(),
        };
        let mut book = ask.map(|_| self.resume_book());
        let token = match (&prior, &moved, &mut book) {
            (Some(p), _, _) => p.resume,
            (None, Some(_), Some(_)) => ask.map(|a| a.token),
            (None, None, Some(book)) => Some(book.issue()),
            (None, _, None) => None,
        };
        let session = SessionHandle::new(NewSession {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            peer,
            product,
            protocol: *protocol,
            app_name: app_name.clone(),
            served: served.switches.clone(),
            default_switch: served.default,
            filtering: match (&prior, &moved) {
                (Some(p), _) => p.filtering,
                (None, Some(m)) => m.filtering,
                (None, None) => product.filterable() && user.is_some_and(|u| u.filtering),
            },
            connected_ms: self.clock.now_ms(),
            devices,
            queue_limit: self.tuning.session_queue_bytes,
            grant,
            resume: token,
        })
        .shared();
        if let Found::Live(old) = &found {
            // Its connection is half-open or about to be noticed gone: the newcomer takes over.
            self.unsubscribe(old);
            self.registry().remove(&old.id);
            old.replace();
        }
        if let (Some(book), Some(token)) = (&mut book, token) {
            book.connect(token, session.clone());
            if let Some(m) = &moved {
                book.moved_here(token, m.revision);
                self.session_moved_here.notify_one();
            }
            self.count_resumables(book);
        }
        drop(book);

        // Each served switch's journal is held from `i` to the subscription, so the numbers in
        // `i` and what is replayed meet the first live event exactly.
        let mut journals: Vec<_> = served
            .switches
            .iter()
            .filter_map(|no| self.slot_of(*no).map(|slot| (slot, slot.journal())))
            .collect();
        let grant = token.map(|token| ResumeGrant {
            token,
            resumed: prior.is_some() || moved.is_some(),
            last: journals
                .iter()
                .map(|(slot, j)| (slot.no, j.last_seq()))
                .collect(),
        });
        session.send_link(&LinkMsg::IdentifyResult {
            result: IdentifyResult::Accepted as u8,
            switches: states,
            resume: grant,
        });
        if let Some(ask) = ask {
            let budget = self.tuning.session_queue_bytes / 2 / served.switches.len().max(1);
            for (slot, journal) in &mut journals {
                let last = ask.last.iter().find(|(no, _)| *no == slot.no).map(|l| l.1);
                let Some(last) = last else { continue };
                match &found {
                    Found::Live(_) | Found::Parked(_) => {
                        journal.trim(tokio::time::Instant::now(), self.journal_keep());
                        replay(&session, slot.no, journal, last, budget);
                    }
                    Found::Expired => {
                        let lost = journal.last_seq().saturating_sub(last);
                        if lost > 0 {
                            session.send_link(&LinkMsg::Lost {
                                switch: slot.no,
                                lost,
                            });
                        }
                    }
                    // Moved from another relay of the site: its numbers are the site's, less
                    // that relay's offset, and this relay's are the site's plus its own.
                    Found::Unknown => {
                        match moved.as_ref().and_then(|m| m.site_number(slot.no, last)) {
                            Some(site) => {
                                journal.trim(tokio::time::Instant::now(), self.journal_keep());
                                let here = site + journal.offset();
                                replay(&session, slot.no, journal, here, budget);
                            }
                            None => session.send_link(&LinkMsg::Lost {
                                switch: slot.no,
                                lost: LOST_UNKNOWN,
                            }),
                        }
                    }
                }
            }
        }
        for (slot, _) in &journals {
            let next = slot.subscribers.load().with(&session);
            slot.subscribers.store(Arc::new(next));
        }
        drop(journals);
        self.registry().insert(session.id, session.clone());
        self.stats.sessions_admitted.fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }
}

/// Queues to a resumed `session` what it is owed on switch `no` after its `last` event: each
/// kept event it wants, numbered (`N`) as live ones are, within `budget` bytes, and `G` for
/// what cannot be replayed, where it is (before the first event after the gap, or after the
/// last event replayed).
fn replay(session: &SessionHandle, no: u8, journal: &EventJournal, last: u64, budget: usize) {
    // Back from a relay of the site that was ahead of this one: the live events it already
    // has are not given again.
    if last > journal.last_seq() {
        session.set_floor(no, last);
    }
    let devices = session.devices.load();
    let owed = journal.owed(last, budget, |frame| {
        !session.filtering
            || match event_device(frame) {
                Some(device) if !device.is_empty() => devices
                    .iter()
                    .any(|(sw, d)| *sw == no && d.as_bytes() == device),
                _ => true,
            }
    });
    let size: usize = owed.frames.iter().map(|(_, f)| f.len() + 32).sum();
    let mut out = BytesMut::with_capacity(size);
    for ((seq, frame), &gap) in owed.frames.iter().zip(&owed.gaps) {
        if gap > 0 {
            put_lost(&mut out, no, gap);
        }
        put_sequence(&mut out, no, *seq);
        if session.is_p3() {
            // An event too large for the SWITCH byte is not delivered live either.
            let mark = out.len();
            if put_with_switch(&mut out, frame, no, None).is_err() {
                out.truncate(mark - SEQUENCE_FRAME_LEN);
            }
        } else {
            out.extend_from_slice(frame);
        }
    }
    if owed.lost_after() > 0 {
        put_lost(&mut out, no, owed.lost_after());
    }
    if out.is_empty() {
        return;
    }
    let _ = session.send(out.freeze());
}
