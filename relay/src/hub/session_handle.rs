//! What the rest of the relay sees of an admitted application session: who it is, which
//! switches it is served, the devices it watches, and its bounded output queue.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};

use crate::connection::outqueue::{Ending, OutQueue, PushError};
use crate::licensing::usage::Grant;
use wire::call::{put_rewritten, put_with_switch, relay_answer};
use wire::{CloseReason, Frame, LinkMsg, Product, Str8, Token};

/// A device a session watches: (switch, device).
pub type DeviceKey = (u8, Str8);

#[derive(Debug)]
pub struct SessionHandle {
    pub id: u64,
    pub peer: SocketAddr,
    pub product: Product,
    /// 2 or 3.
    pub protocol: u8,
    pub app_name: Str8,
    /// Served switches, ascending.
    pub served: Vec<u8>,
    /// What switch 0 means for this session.
    pub default_switch: u8,
    /// Filtering mode: only events of watched devices (and switch-wide ones).
    pub filtering: bool,
    pub connected_ms: u64,
    pub devices: ArcSwap<BTreeSet<DeviceKey>>,
    pub out: OutQueue,
    /// The licence use this session holds, given back when it ends (or when its resume
    /// window does).
    pub grant: Grant,
    /// Resumable sessions: the token that brings the session back, and whether its end may
    /// still be resumed (not when the relay ended it on purpose).
    pub resume: Option<Token>,
    resumable_end: AtomicBool,
    replaced: AtomicBool,
    in_flight: AtomicUsize,
    /// Per switch (index: its number less 1): the number up to which this session already has
    /// the events (it came back from a relay that was ahead of this one); live events up to it
    /// are not given again. 0: none. Read and written under the switch's journal lock.
    floors: [AtomicU64; 8],
}

impl std::fmt::Debug for OutQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutQueue({} bytes)", self.queued_bytes())
    }
}

/// What a session is made of at admission.
pub struct NewSession {
    pub id: u64,
    pub peer: SocketAddr,
    pub product: Product,
    pub protocol: u8,
    pub app_name: Str8,
    pub served: Vec<u8>,
    pub default_switch: u8,
    pub filtering: bool,
    pub connected_ms: u64,
    pub devices: BTreeSet<DeviceKey>,
    pub queue_limit: usize,
    pub grant: Grant,
    pub resume: Option<Token>,
}

#[cfg(test)]
impl NewSession {
    /// A licence-free Call session from 127.0.0.1 served switches 1 and 2, watching nothing,
    /// for unit tests to adjust.
    pub(crate) fn for_test(id: u64) -> NewSession {
        NewSession {
            id,
            peer: "127.0.0.1:1".parse().expect("an address"),
            product: Product::Call,
            protocol: 3,
            app_name: Str8::lossy("t"),
            served: vec![1, 2],
            default_switch: 1,
            filtering: false,
            connected_ms: 0,
            devices: BTreeSet::new(),
            queue_limit: 1 << 16,
            grant: Grant::Bypass(Product::Call),
            resume: None,
        }
    }
}

impl SessionHandle {
    pub fn new(n: NewSession) -> SessionHandle {
        let too_slow = close_frame(
            CloseReason::TooSlow,
            "output queue over its bound: the application reads too slowly",
        );
        SessionHandle {
            id: n.id,
            peer: n.peer,
            product: n.product,
            protocol: n.protocol,
            app_name: n.app_name,
            served: n.served,
            default_switch: n.default_switch,
            filtering: n.filtering,
            connected_ms: n.connected_ms,
            devices: ArcSwap::from_pointee(n.devices),
            out: OutQueue::new(n.queue_limit).with_overflow_frame(too_slow),
            grant: n.grant,
            resume: n.resume,
            resumable_end: AtomicBool::new(true),
            replaced: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            floors: Default::default(),
        }
    }

    /// The number of switch `no` up to which this session has the events already (0: none).
    pub fn floor(&self, no: u8) -> u64 {
        self.floors
            .get(usize::from(no).wrapping_sub(1))
            .map_or(0, |f| f.load(Ordering::Relaxed))
    }

    /// Live events of switch `no` up to `last` are not to be given to this session (0: every
    /// one is).
    pub fn set_floor(&self, no: u8, last: u64) {
        if let Some(f) = self.floors.get(usize::from(no).wrapping_sub(1)) {
            f.store(last, Ordering::Relaxed);
        }
    }

    /// Whether the session's events are numbered (`N` before each).
    pub fn is_resumable(&self) -> bool {
        self.resume.is_some()
    }

    /// Whether the session, now ended, may be resumed: its connection was lost, went silent
    /// or read too slowly, or its switches went down; not when the relay closed it on purpose
    /// (shutdown, protocol error, licence change, administrator) or it was replaced.
    pub fn end_resumable(&self) -> bool {
        self.resume.is_some() && self.resumable_end.load(Ordering::Acquire)
    }

    /// The session's connection is replaced by a resumed one: it ends without a trace.
    pub fn replace(&self) {
        self.resumable_end.store(false, Ordering::Release);
        self.replaced.store(true, Ordering::Release);
        self.out.end(Ending::Discard { last: None });
    }

    /// Whether a resumed connection took this session's place.
    pub fn was_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    pub fn is_p3(&self) -> bool {
        self.protocol == 3
    }

    pub fn serves(&self, switch: u8) -> bool {
        self.served.binary_search(&switch).is_ok()
    }

    /// Queues frames; an overflow ends the session (its writer sends `X` reason 3).
    pub fn send(&self, frames: Bytes) -> Result<(), PushError> {
        self.out.push(frames)
    }

    pub fn send_link(&self, msg: &LinkMsg) {
        if let Ok(frame) = msg.encode() {
            let _ = self.send(frame);
        }
    }

    /// Delivers the switch's answer `frame` with the session's INVOKE restored.
    pub fn deliver_answer(&self, switch: u8, frame: &Frame, app_invoke: u16) {
        self.finish_request();
        let mut out = BytesMut::with_capacity(frame.as_bytes().len() + 1);
        if self.is_p3() {
            if put_with_switch(&mut out, frame.as_bytes(), switch, Some(app_invoke)).is_err() {
                // A 4094-byte answer cannot grow by the SWITCH byte; the request still gets an
                // answer, made by the relay.
                self.answer(
                    b'A',
                    app_invoke,
                    switch,
                    frame.body().first().copied().unwrap_or(0),
                );
                return;
            }
        } else {
            put_rewritten(&mut out, frame, app_invoke, false);
        }
        let _ = self.send(out.freeze());
    }

    /// Sends a relay-made answer to a request with `code`.
    pub fn answer(&self, code: u8, app_invoke: u16, switch: u8, result: u8) {
        let switch = self.is_p3().then_some(switch);
        let _ = self.send(relay_answer(code, app_invoke, switch, result));
    }

    /// Sends a relay-made answer to a request that was counted in flight.
    pub fn answer_pending(&self, code: u8, app_invoke: u16, switch: u8, result: u8) {
        self.finish_request();
        self.answer(code, app_invoke, switch, result);
    }

    /// Counts a request in flight unless `max` already are.
    pub fn start_request(&self, max: usize) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub fn finish_request(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Closes the session: what is queued is written, then `X` with `reason`.
    pub fn close(&self, reason: CloseReason, text: &str) {
        if !matches!(
            reason,
            CloseReason::SwitchLost | CloseReason::TooSlow | CloseReason::IdleTimeout
        ) {
            self.resumable_end.store(false, Ordering::Release);
        }
        self.out.end(Ending::Drain {
            last: Some(close_frame(reason, text)),
        });
    }

    /// The device list as the status view shows it: `[Call: 2201 - SW(3)]`.
    pub fn describe_devices(&self) -> String {
        let devices = self.devices.load();
        if devices.is_empty() {
            return format!("[{}]", self.product);
        }
        let list: Vec<String> = devices
            .iter()
            .map(|(sw, d)| format!("{d} - SW({sw})"))
            .collect();
        format!("[{}: {}]", self.product, list.join(", "))
    }

    /// Session in the shared registry.
    pub fn shared(self) -> Arc<SessionHandle> {
        Arc::new(self)
    }
}

/// The `X` frame for `reason`.
pub fn close_frame(reason: CloseReason, text: &str) -> Bytes {
    // Cannot fail: a reason byte and one str8 (255 bytes at most).
    LinkMsg::Close {
        reason: reason as u8,
        text: Str8::lossy(text),
    }
    .encode()
    .expect("a close frame always fits")
}
