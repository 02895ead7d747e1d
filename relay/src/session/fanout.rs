//! Who receives what: a run of consecutive events read from one switch is delivered to every
//! session served that switch, encoded once per form and shared.
//!
//! The protocol-2 form of a run is the switch's own bytes (a slice of the read buffer, no
//! copy). The protocol-3 form is built once per run with the SWITCH byte inserted. A session
//! without filtering gets the whole run as one queue entry; a filtering session gets slices of
//! the same buffers, one per event it wants, found through the switch's device index (an
//! event costs the sessions that want it). Nothing is encoded per session.

use std::ops::Range;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use crate::hub::{Hub, Subscribers, SwitchSlot};
use wire::call::{event_device, put_with_switch};

/// Where one event sits in both forms.
#[derive(Clone, Debug)]
struct Span {
    p2: Range<usize>,
    /// `None` when the event is too large to carry the SWITCH byte.
    p3: Option<Range<usize>>,
    /// The device bytes, as a range of the protocol-2 run.
    device: Range<usize>,
}

/// Reusable working memory of one switch reader.
#[derive(Default)]
pub struct Scratch {
    spans: Vec<Span>,
}

/// Delivers the `events` consecutive events `run[range]`, exactly as the switch sent them.
pub fn deliver_events(
    hub: &Hub,
    slot: &SwitchSlot,
    run: &Bytes,
    range: Range<usize>,
    events: u64,
    scratch: &mut Scratch,
) {
    let subs = slot.subscribers.load();
    if subs.list.is_empty() {
        return;
    }
    let p2 = run.slice(range.clone());
    let want_spans = !subs.filtering.is_empty();
    scratch.spans.clear();

    let mut p3_buf = BytesMut::new();
    if subs.any_p3() || want_spans {
        if subs.any_p3() {
            p3_buf.reserve(p2.len() + p2.len() / 16 + 8);
        }
        let mut at = 0;
        while at < p2.len() {
            let len = u16::from_be_bytes([p2[at], p2[at + 1]]) as usize + 2;
            let frame = &p2[at..at + len];
            let p3 = if subs.any_p3() {
                let start = p3_buf.len();
                match put_with_switch(&mut p3_buf, frame, slot.no, None) {
                    Ok(()) => Some(start..p3_buf.len()),
                    Err(_) => {
                        hub.stats.oversize_events.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            } else {
                None
            };
            if want_spans {
                let device = match event_device(frame) {
                    Some(d) => {
                        let offset = d.as_ptr() as usize - p2.as_ptr() as usize;
                        offset..offset + d.len()
                    }
                    // A body too short to name a device: treat as switch-wide.
                    None => at..at,
                };
                scratch.spans.push(Span {
                    p2: at..at + len,
                    p3,
                    device,
                });
            }
            at += len;
        }
    }
    let p3 = p3_buf.freeze();
    deliver(hub, &subs, &p2, &p3, events, &scratch.spans);
}

fn deliver(hub: &Hub, subs: &Subscribers, p2: &Bytes, p3: &Bytes, events: u64, spans: &[Span]) {
    let mut delivered = 0u64;
    for session in subs.whole.values() {
        let form = if session.is_p3() { p3 } else { p2 };
        if !form.is_empty() && session.send(form.clone()).is_ok() {
            delivered += events;
        }
    }
    for span in spans {
        let Some(watchers) = subs.watching(&p2[span.device.clone()]) else {
            continue;
        };
        for session in watchers.values() {
            let piece = if session.is_p3() {
                match &span.p3 {
                    Some(r) => p3.slice(r.clone()),
                    None => continue,
                }
            } else {
                p2.slice(span.p2.clone())
            };
            if session.send(piece).is_ok() {
                delivered += 1;
            }
        }
    }
    hub.stats.deliveries.fetch_add(delivered, Ordering::Relaxed);
}
