//! The INVOKE map of one switch link: each request forwarded gets an INVOKE unique on that
//! link; the answer is routed back through it to the one session that asked, with the
//! session's own INVOKE restored. Entries expire after the answer timeout (result 0xE4).

use std::collections::{HashMap, VecDeque};
use std::sync::Weak;

use tokio::time::Instant;

use crate::hub::session_handle::SessionHandle;
use wire::NO_INVOKE;

/// A request waiting for its answer.
#[derive(Debug)]
pub struct Pending {
    pub session: Weak<SessionHandle>,
    pub app_invoke: u16,
    pub code: u8,
}

#[derive(Debug)]
struct Slot {
    seq: u64,
    pending: Pending,
}

/// INVOKE values in use on one link.
#[derive(Debug, Default)]
pub struct InvokeMap {
    entries: HashMap<u16, Slot>,
    /// (deadline, invoke, seq) in insertion order; deadlines only grow, so expiry pops the front.
    /// Answered entries leave the front as answers come, so under load this holds what was
    /// sent since the oldest request still unanswered, not everything of the last 30 s.
    deadlines: VecDeque<(Instant, u16, u64)>,
    next: u16,
    seq: u64,
}

impl InvokeMap {
    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Allocates an INVOKE for `pending`, expiring at `deadline`. `None` when all 65 535
    /// values are in flight.
    pub fn insert(&mut self, pending: Pending, deadline: Instant) -> Option<u16> {
        if self.entries.len() >= usize::from(NO_INVOKE) {
            return None;
        }
        let invoke = loop {
            let candidate = self.next;
            self.next = if self.next == NO_INVOKE - 1 {
                0
            } else {
                self.next + 1
            };
            if !self.entries.contains_key(&candidate) {
                break candidate;
            }
        };
        self.seq += 1;
        self.entries.insert(
            invoke,
            Slot {
                seq: self.seq,
                pending,
            },
        );
        self.deadlines.push_back((deadline, invoke, self.seq));
        Some(invoke)
    }

    /// The request an answer with `invoke` belongs to.
    pub fn take(&mut self, invoke: u16) -> Option<Pending> {
        let slot = self.entries.remove(&invoke)?;
        while let Some(&(_, front, seq)) = self.deadlines.front() {
            if self.entries.get(&front).is_some_and(|s| s.seq == seq) {
                break;
            }
            self.deadlines.pop_front();
        }
        Some(slot.pending)
    }

    /// Removes and returns every request whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Pending> {
        let mut expired = Vec::new();
        while let Some(&(deadline, invoke, seq)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            // The entry may have been answered, and its INVOKE reused by a later request.
            if self.entries.get(&invoke).is_some_and(|s| s.seq == seq) {
                // Cannot fail: `invoke` was read from this map's own deadline queue under the same lock.
                expired.push(self.entries.remove(&invoke).expect("present").pending);
            }
        }
        expired
    }

    /// Removes and returns every request in flight (the link is gone).
    pub fn drain(&mut self) -> Vec<Pending> {
        self.deadlines.clear();
        let mut all: Vec<(u64, Pending)> = self
            .entries
            .drain()
            .map(|(_, s)| (s.seq, s.pending))
            .collect();
        // Answer in the order the requests were made.
        all.sort_unstable_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pending(app_invoke: u16) -> Pending {
        Pending {
            session: Weak::new(),
            app_invoke,
            code: b'K',
        }
    }

    #[tokio::test(start_paused = true)]
    async fn invokes_are_unique_and_answers_find_their_request() {
        let mut m = InvokeMap::default();
        let t = Instant::now() + Duration::from_secs(30);
        // Two sessions using the same INVOKE value get different link INVOKEs.
        let a = m.insert(pending(7), t).unwrap();
        let b = m.insert(pending(7), t).unwrap();
        assert_ne!(a, b);
        assert_eq!(m.take(b).unwrap().app_invoke, 7);
        assert!(m.take(b).is_none(), "an answer is routed once");
        assert_eq!(m.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_skips_answered_entries_whose_invoke_was_reused() {
        let mut m = InvokeMap::default();
        let t0 = Instant::now();
        let a = m.insert(pending(1), t0 + Duration::from_secs(30)).unwrap();
        m.take(a).unwrap();
        m.insert(pending(2), t0 + Duration::from_secs(40)).unwrap();
        assert!(m.expire(t0 + Duration::from_secs(35)).is_empty());
        let gone = m.expire(t0 + Duration::from_secs(40));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].app_invoke, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn answered_requests_leave_the_deadline_queue_up_to_the_oldest_unanswered() {
        let mut m = InvokeMap::default();
        let t = Instant::now() + Duration::from_secs(30);
        // A steady load of 8 in flight, answered in order: the queue stays at 8.
        let mut in_flight: VecDeque<u16> =
            (0..8).map(|_| m.insert(pending(0), t).unwrap()).collect();
        for _ in 0..100_000 {
            m.take(in_flight.pop_front().unwrap()).unwrap();
            in_flight.push_back(m.insert(pending(0), t).unwrap());
        }
        assert_eq!(m.deadlines.len(), 8);
        // One request left unanswered holds the queue from itself on, until it is answered.
        let stuck = in_flight.pop_front().unwrap();
        for _ in 0..100 {
            m.take(in_flight.pop_front().unwrap()).unwrap();
            in_flight.push_back(m.insert(pending(0), t).unwrap());
        }
        assert_eq!(m.deadlines.len(), 108);
        m.take(stuck).unwrap();
        assert_eq!(m.deadlines.len(), 7);
        assert_eq!(m.len(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn never_hands_out_the_event_invoke_and_refuses_when_full() {
        let mut m = InvokeMap::default();
        let t = Instant::now();
        for _ in 0..NO_INVOKE {
            let i = m.insert(pending(0), t).unwrap();
            assert_ne!(i, NO_INVOKE);
        }
        assert!(m.insert(pending(0), t).is_none());
        assert_eq!(m.drain().len(), usize::from(NO_INVOKE));
    }
}
