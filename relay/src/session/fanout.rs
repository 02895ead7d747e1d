//! Who receives what: a run of consecutive events read from one switch is delivered to every
//! session served that switch, encoded once per form and shared.
//!
//! The protocol-2 form of a run is the switch's own bytes (a slice of the read buffer, no
//! copy). The protocol-3 form is built once per run with the SWITCH byte inserted. A session
//! without filtering gets the whole run as one queue entry; a filtering session gets slices of
//! the same buffers, one per event it wants, found through the switch's device index (an
//! event costs the sessions that want it). Nothing is encoded per session.
//!
//! Every event is numbered in the switch's journal, which keeps it while a resumable session
//! may come back for it; events from the bus keep the numbers the site's link holder gave them,
//! and a number skipped there is told to numbered sessions as `G`. Resumable sessions get numbered forms of the run, each event preceded
//! by its `N` frame, built only when such a session is served.

use std::ops::Range;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use crate::hub::event_journal::SiteSeq;
use crate::hub::session_handle::SessionHandle;
use crate::hub::{Hub, Subscribers, SwitchSlot};
use wire::call::{event_device, put_with_switch};
use wire::link::{put_sequence, sequence_at};
use wire::LinkMsg;

/// Where one event sits in each form.
#[derive(Clone, Debug)]
struct Span {
    p2: Range<usize>,
    /// `None` when the event is too large to carry the SWITCH byte.
    p3: Option<Range<usize>>,
    /// The numbered forms (`N` then the event), when built.
    p2n: Range<usize>,
    p3n: Option<Range<usize>>,
    /// The device bytes, as a range of the protocol-2 run.
    device: Range<usize>,
    /// The event's number here.
    seq: u64,
}

/// Reusable working memory of one switch reader.
#[derive(Default)]
pub struct Scratch {
    spans: Vec<Span>,
}

/// Delivers the `events` consecutive events `run[range]`, exactly as the switch sent them,
/// numbered here (`site` is `None`: what the bus is to be told of them is returned) or
/// following the numbers another relay of the site gave them on the bus (`site`).
pub fn deliver_events(
    hub: &Hub,
    slot: &SwitchSlot,
    run: &Bytes,
    range: Range<usize>,
    events: u64,
    site: Option<SiteSeq>,
    scratch: &mut Scratch,
) -> Option<SiteSeq> {
    // Held until the run is delivered: an admission replaying this journal waits, so a
    // resumed session gets each event once, replayed or live.
    let mut journal = slot.journal();
    let (first_seq, range, events, told) = match site {
        None => {
            let (first, told) = journal.number(events);
            if journal.wants_reservation() {
                reservation_low(hub, &journal, events);
            }
            (first, range, events, Some(told))
        }
        Some(site) => {
            let had_none = journal.last_seq() == 0;
            let followed = journal.follow(site, events);
            if followed.lost > 0 {
                missed(hub, slot, followed.first - followed.lost, followed.lost);
            } else if had_none && followed.first > 1 {
                // The first numbers this relay has: the site's before them are a gap to the
                // sessions already here (told `last` 0, or come back from further on).
                tell_gap(slot, 1, followed.first - 1);
            }
            if followed.repeated == events {
                return None;
            }
            let skip = skip_frames(&run[range.clone()], followed.repeated);
            (
                followed.first,
                range.start + skip..range.end,
                events - followed.repeated,
                None,
            )
        }
    };
    if hub.keeping_events() {
        journal.keep(
            tokio::time::Instant::now(),
            first_seq,
            &run[range.clone()],
            events,
            hub.journal_keep(),
        );
    }
    let subs = slot.subscribers.load();
    if subs.list.is_empty() {
        return told;
    }
    let p2 = run.slice(range.clone());
    let want_spans = !subs.filtering.is_empty();
    let numbered = subs.any_resumable();
    scratch.spans.clear();

    let mut p3_buf = BytesMut::new();
    let mut p2n_buf = BytesMut::new();
    let mut p3n_buf = BytesMut::new();
    if subs.any_p3() || want_spans || numbered {
        if subs.any_p3() {
            p3_buf.reserve(p2.len() + p2.len() / 16 + 8);
        }
        let mut at = 0;
        let mut seq = first_seq;
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
            let (p2n, p3n) = if numbered {
                let start = p2n_buf.len();
                put_sequence(&mut p2n_buf, slot.no, seq);
                p2n_buf.extend_from_slice(frame);
                let p3n = p3.as_ref().map(|r| {
                    let start = p3n_buf.len();
                    put_sequence(&mut p3n_buf, slot.no, seq);
                    p3n_buf.extend_from_slice(&p3_buf[r.clone()]);
                    start..p3n_buf.len()
                });
                (start..p2n_buf.len(), p3n)
            } else {
                (0..0, None)
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
                    p2n,
                    p3n,
                    device,
                    seq,
                });
            }
            seq += 1;
            at += len;
        }
    }
    let forms = Forms {
        p2,
        p3: p3_buf.freeze(),
        p2n: p2n_buf.freeze(),
        p3n: p3n_buf.freeze(),
    };
    let numbers = Numbers {
        no: slot.no,
        first: first_seq,
        events,
    };
    deliver(hub, &subs, &forms, numbers, &scratch.spans);
    drop(journal);
    told
}

/// Events were numbered beyond the numbers reserved for this relay's link (the reader waits
/// for its numbers, so this should never be): counted, and the lease holder is woken to
/// reserve.
#[cold]
fn reservation_low(hub: &Hub, journal: &crate::hub::event_journal::EventJournal, events: u64) {
    let beyond = journal.beyond_reservation().min(events);
    if beyond > 0 {
        hub.stats
            .numbered_unreserved
            .fetch_add(beyond, Ordering::Relaxed);
    }
    if let Some(outbox) = hub.bus.load().as_ref() {
        outbox.numbers_low.notify_one();
    }
}

/// Events of the site that never reached this relay, numbered `from..from + lost` here:
/// counted, and told to the sessions ([`tell_gap`]).
fn missed(hub: &Hub, slot: &SwitchSlot, from: u64, lost: u64) {
    hub.stats
        .site_events_missed
        .fetch_add(lost, Ordering::Relaxed);
    tell_gap(slot, from, lost);
}

/// Numbers `from..from + lost` of `slot` that this relay never gives: every numbered session
/// of the switch is told how many (`G`) before the events that follow them, less those it
/// already had (it came back from a relay ahead of this one).
pub(crate) fn tell_gap(slot: &SwitchSlot, from: u64, lost: u64) {
    let subs = slot.subscribers.load();
    if !subs.any_resumable() {
        return;
    }
    let end = from + lost;
    for session in subs.list.values().filter(|s| s.is_resumable()) {
        let had = session.floor(slot.no).saturating_add(1).clamp(from, end) - from;
        if had < lost {
            session.send_link(&LinkMsg::Lost {
                switch: slot.no,
                lost: lost - had,
            });
        }
    }
}

/// The length of the first `count` frames of `run`, a run of whole frames.
fn skip_frames(run: &[u8], count: u64) -> usize {
    let mut at = 0;
    for _ in 0..count {
        at += u16::from_be_bytes([run[at], run[at + 1]]) as usize + 2;
    }
    at
}

/// A run in each form a session may take.
struct Forms {
    p2: Bytes,
    p3: Bytes,
    /// Numbered: each event preceded by its `N` frame.
    p2n: Bytes,
    p3n: Bytes,
}

impl Forms {
    fn whole(&self, session: &SessionHandle) -> &Bytes {
        match (session.is_p3(), session.is_resumable()) {
            (false, false) => &self.p2,
            (true, false) => &self.p3,
            (false, true) => &self.p2n,
            (true, true) => &self.p3n,
        }
    }

    fn piece(&self, session: &SessionHandle, span: &Span) -> Option<Bytes> {
        Some(match (session.is_p3(), session.is_resumable()) {
            (false, false) => self.p2.slice(span.p2.clone()),
            (true, false) => self.p3.slice(span.p3.clone()?),
            (false, true) => self.p2n.slice(span.p2n.clone()),
            (true, true) => self.p3n.slice(span.p3n.clone()?),
        })
    }
}

/// The switch of a run and its events' numbers here.
#[derive(Clone, Copy)]
struct Numbers {
    no: u8,
    first: u64,
    events: u64,
}

fn deliver(hub: &Hub, subs: &Subscribers, forms: &Forms, run: Numbers, spans: &[Span]) {
    let mut delivered = 0u64;
    let last = run.first + run.events - 1;
    for session in subs.whole.values() {
        let form = forms.whole(session);
        if form.is_empty() {
            continue;
        }
        // A session that came back from a relay ahead of this one has some of these already.
        let floor = session.floor(run.no);
        let (form, events) = if floor < run.first {
            (form.clone(), run.events)
        } else if floor >= last {
            continue;
        } else {
            (form.slice(after_number(form, floor)..), last - floor)
        };
        if session.send(form).is_ok() {
            delivered += events;
        }
    }
    for span in spans {
        let Some(watchers) = subs.watching(&forms.p2[span.device.clone()]) else {
            continue;
        };
        for session in watchers.values() {
            if span.seq <= session.floor(run.no) {
                continue;
            }
            let Some(piece) = forms.piece(session, span) else {
                continue;
            };
            if session.send(piece).is_ok() {
                delivered += 1;
            }
        }
    }
    hub.stats.deliveries.fetch_add(delivered, Ordering::Relaxed);
}

/// Where, in a numbered run (each event after its `N` frame), the first event numbered above
/// `floor` begins: at its `N` frame.
fn after_number(numbered: &[u8], floor: u64) -> usize {
    let mut at = 0;
    while at + 2 <= numbered.len() {
        if sequence_at(&numbered[at..]).is_some_and(|seq| seq > floor) {
            return at;
        }
        at += usize::from(u16::from_be_bytes([numbered[at], numbered[at + 1]])) + 2;
    }
    numbered.len()
}
