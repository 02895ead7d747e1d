//! One switch's numbered events: every event gets the next sequence number, and while any
//! resumable session is connected or waiting to come back, the events themselves are kept, for
//! `resume.window_seconds` and at most `resume.max_mib`, so a session that comes back can be
//! given what it missed.
//!
//! The switch reader holds the journal's lock while it numbers a run and delivers it, and an
//! admission holds it while it replays and subscribes; so a session gets every event exactly
//! once, replayed or live, in the switch's order.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use wire::frame::Run;

/// How long and how much to keep.
#[derive(Clone, Copy, Debug)]
pub struct Keep {
    pub window: Duration,
    pub max_bytes: usize,
}

#[derive(Debug)]
pub struct EventJournal {
    /// The number the next event gets; the first event of a relay's run is 1.
    next_seq: u64,
    /// Kept events, oldest first; the front is numbered `next_seq - frames.len()`.
    frames: VecDeque<(Instant, Bytes)>,
    bytes: usize,
}

/// What a returning session is owed on one switch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Owed {
    /// Events after the session's last that are no longer kept (or beyond the replay budget).
    pub lost: u64,
    /// The kept events after the session's last, oldest first, with their numbers.
    pub frames: Vec<(u64, Bytes)>,
}

impl Default for EventJournal {
    fn default() -> EventJournal {
        EventJournal {
            next_seq: 1,
            frames: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl EventJournal {
    /// The last number issued (0 before the first event).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    fn first_kept(&self) -> u64 {
        self.next_seq - self.frames.len() as u64
    }

    /// Numbers `count` events and returns the first one's number.
    pub fn number(&mut self, count: u64) -> u64 {
        let first = self.next_seq;
        self.next_seq += count;
        first
    }

    /// Keeps the `events` just numbered, which are the consecutive frames of `run`, copied once
    /// so the kept events never hold a connection's read buffer.
    pub fn keep(&mut self, now: Instant, run: &[u8], events: u64, keep: Keep) {
        // Cannot fail: a copy of frames the reader checked whole.
        let copy = Run::whole(Bytes::copy_from_slice(run)).expect("a run of checked frames");
        let before = self.frames.len();
        for f in copy.frames() {
            self.frames.push_back((now, copy.frame(&f).into_bytes()));
            self.bytes += f.len;
        }
        debug_assert_eq!(
            (self.frames.len() - before) as u64,
            events,
            "a run holds exactly its events"
        );
        self.trim(now, keep);
    }

    /// Drops what is older than the window or beyond the byte bound, oldest first.
    pub fn trim(&mut self, now: Instant, keep: Keep) {
        while let Some((at, frame)) = self.frames.front() {
            let stale = now.saturating_duration_since(*at) > keep.window;
            if !stale && self.bytes <= keep.max_bytes {
                break;
            }
            self.bytes -= frame.len();
            self.frames.pop_front();
        }
    }

    /// Forgets every kept event (nobody can come back for them); numbering goes on.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    pub fn kept_bytes(&self) -> usize {
        self.bytes
    }

    /// What a session whose last event here was `last` is owed: the kept events after it that
    /// `wanted` accepts, at most `budget` bytes of them (the newest). Lost are the events after
    /// `last` no longer kept, whatever their device, and the wanted ones over the budget. A
    /// `last` at or beyond the last number issued is owed nothing.
    pub fn owed(&self, last: u64, budget: usize, wanted: impl Fn(&[u8]) -> bool) -> Owed {
        if last >= self.last_seq() {
            return Owed::default();
        }
        let first_kept = self.first_kept();
        let mut lost = first_kept.saturating_sub(last + 1);
        let skip = (last + 1).saturating_sub(first_kept) as usize;
        let mut frames: Vec<(u64, Bytes)> = self
            .frames
            .iter()
            .enumerate()
            .skip(skip)
            .filter(|(_, (_, f))| wanted(f))
            .map(|(i, (_, f))| (first_kept + i as u64, f.clone()))
            .collect();
        let mut total: usize = frames.iter().map(|(_, f)| f.len()).sum();
        let mut drop = 0;
        while total > budget && drop < frames.len() {
            total -= frames[drop].1.len();
            drop += 1;
        }
        // Events no longer kept count whatever their device (nobody can tell any more); those
        // over the budget are known to be wanted.
        lost += drop as u64;
        frames.drain(..drop);
        Owed { lost, frames }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use wire::call::CallMsg;
    use wire::Kind;

    fn event(device: &str) -> Bytes {
        let mut body = BytesMut::new();
        body.extend_from_slice(&[device.len() as u8]);
        body.extend_from_slice(device.as_bytes());
        CallMsg {
            kind: Kind::Event,
            code: b'n',
            invoke: wire::NO_INVOKE,
            switch: None,
            body: body.freeze(),
        }
        .encode()
        .unwrap()
    }

    fn run(devices: &[&str]) -> Vec<u8> {
        devices.iter().flat_map(|d| event(d).to_vec()).collect()
    }

    const KEEP: Keep = Keep {
        window: Duration::from_secs(60),
        max_bytes: 1 << 20,
    };

    fn numbers(owed: &Owed) -> Vec<u64> {
        owed.frames.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn a_returning_session_is_owed_what_came_after_its_last_in_order() {
        let now = Instant::now();
        let mut j = EventJournal::default();
        assert_eq!(j.last_seq(), 0);
        assert_eq!(j.number(3), 1);
        j.keep(now, &run(&["2201", "2202", "2201"]), 3, KEEP);
        assert_eq!(j.last_seq(), 3);
        let owed = j.owed(1, usize::MAX, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (0, vec![2, 3]));
        assert_eq!(owed.frames[0].1, event("2202"));
        // Up to date, or claiming more than was issued: nothing.
        assert_eq!(j.owed(3, usize::MAX, |_| true), Owed::default());
        assert_eq!(j.owed(9, usize::MAX, |_| true), Owed::default());
        // Filtered: only its device, and nothing counted lost.
        let owed = j.owed(0, usize::MAX, |f| {
            wire::call::event_device(f) == Some(b"2201")
        });
        assert_eq!((owed.lost, numbers(&owed)), (0, vec![1, 3]));
    }

    #[test]
    fn what_is_no_longer_kept_is_counted_lost() {
        let start = Instant::now();
        let mut j = EventJournal::default();
        j.number(2);
        j.keep(start, &run(&["2201", "2202"]), 2, KEEP);
        let later = start + Duration::from_secs(61);
        j.number(1);
        j.keep(later, &run(&["2203"]), 1, KEEP);
        // The first two are past the window.
        let owed = j.owed(0, usize::MAX, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (2, vec![3]));
        // A byte bound of one event keeps only the newest.
        let one = event("2204").len();
        j.number(1);
        j.keep(
            later,
            &run(&["2204"]),
            1,
            Keep {
                window: KEEP.window,
                max_bytes: one,
            },
        );
        assert_eq!(j.kept_bytes(), one);
        let owed = j.owed(1, usize::MAX, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (2, vec![4]));
        // Numbers are never reused after a clear.
        j.clear();
        assert_eq!(j.owed(2, usize::MAX, |_| true).lost, 2);
        assert_eq!(j.number(1), 5);
    }

    #[test]
    fn a_replay_over_budget_gives_the_newest_and_counts_the_rest() {
        let now = Instant::now();
        let mut j = EventJournal::default();
        j.number(4);
        j.keep(now, &run(&["2201", "2202", "2201", "2202"]), 4, KEEP);
        let one = event("2201").len();
        let owed = j.owed(0, 2 * one, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (2, vec![3, 4]));
        // Filtered: events 1 and 3 are its own; dropping event 1 counts one lost.
        let owed = j.owed(0, one, |f| wire::call::event_device(f) == Some(b"2201"));
        assert_eq!((owed.lost, numbers(&owed)), (1, vec![3]));
    }
}
