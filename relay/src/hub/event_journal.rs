//! One switch's numbered events: every event gets the next sequence number, and while any
//! resumable session is connected or waiting to come back, the events themselves are kept, for
//! `resume.window_seconds` and at most `resume.max_mib`, so a session that comes back can be
//! given what it missed.
//!
//! On a site with a bus, the relay holding a switch's link numbers its events for the whole site
//! and puts the numbers on the bus with them ([`SiteSeq`]); the other relays, and branch relays
//! serving the switch from afar, follow those numbers instead of making their own. A follower
//! that sees numbers skipped knows exactly how many events it missed and says so (`G`). The
//! numbers come in terms: a term is one relay's holding of the link, and starts where the
//! numbers it had seen end, so numbers run on across a failover; a relay that had seen more of
//! the old term than the new holder had (numbers the new term reuses) keeps its own numbers
//! rising by an offset, and never tells a session one number twice.
//!
//! The switch reader holds the journal's lock while it numbers a run and delivers it, and an
//! admission holds it while it replays and subscribes; so a session gets every event exactly
//! once, replayed or live, in the switch's order.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use wire::frame::Run;

pub use crate::outbox::SiteSeq;

/// The term a journal is on after [`EventJournal::raise_to`]: no relay's (term ids are drawn
/// from a relay's seed, and a run numbered by any relay is a new term to it).
const RAISED: u64 = 0;
/// The highest number a mark may raise a journal to.
const MAX_SEQ: u64 = 1 << 62;

/// How long and how much to keep.
#[derive(Clone, Copy, Debug)]
pub struct Keep {
    pub window: Duration,
    pub max_bytes: usize,
}

/// The term whose numbers the journal is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Term {
    id: u64,
    /// Its first number (the site's).
    start: u64,
    /// Whether this relay's own link numbers it.
    own: bool,
}

#[derive(Debug)]
pub struct EventJournal {
    /// The number the next event gets here; the first event of a relay's run is 1.
    next_seq: u64,
    /// This relay's numbers less the site's (rises only when a new term reuses numbers).
    offset: u64,
    term: Option<Term>,
    /// Where this relay's own terms' ids come from.
    term_seed: u64,
    terms_begun: u64,
    /// Kept events with their numbers, oldest first (numbers rise; a gap is events missed).
    frames: VecDeque<(u64, Instant, Bytes)>,
    bytes: usize,
    /// The site's highest number this relay's own link may be given, as reserved on the bus
    /// (`u64::MAX` where nothing is reserved: a relay not sharing its site).
    reserved: u64,
    /// Numbers the link's reader needs for the events it has read, beyond what is reserved.
    needed: u64,
}

/// What a returning session is owed on one switch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Owed {
    /// Events after the session's last that are no longer kept (or beyond the replay budget,
    /// or never reached this relay).
    pub lost: u64,
    /// The kept events after the session's last, oldest first, with their numbers.
    pub frames: Vec<(u64, Bytes)>,
    /// For each of `frames`, how many of `lost` come just before it (after the frame before
    /// it, or the session's last); the rest come after the last frame.
    pub gaps: Vec<u64>,
}

impl Owed {
    /// The events lost after the last frame given (all of them when none is given).
    pub fn lost_after(&self) -> u64 {
        self.lost - self.gaps.iter().sum::<u64>()
    }
}

/// How a run numbered by another relay fits this journal.
#[derive(Debug, PartialEq, Eq)]
pub struct Followed {
    /// Events of the site this relay never got, just before the run.
    pub lost: u64,
    /// The run's first events this relay already had (a message seen twice): not delivered.
    pub repeated: u64,
    /// This relay's number of the first event delivered.
    pub first: u64,
}

impl Default for EventJournal {
    fn default() -> EventJournal {
        EventJournal::new(0)
    }
}

impl EventJournal {
    /// A journal whose own terms' ids are made from `term_seed`.
    pub fn new(term_seed: u64) -> EventJournal {
        EventJournal {
            next_seq: 1,
            offset: 0,
            term: None,
            term_seed,
            terms_begun: 0,
            frames: VecDeque::new(),
            bytes: 0,
            reserved: u64::MAX,
            needed: 0,
        }
    }

    /// The site's last number issued or followed here (0 before any).
    pub fn site_last(&self) -> u64 {
        self.last_seq().saturating_sub(self.offset)
    }

    /// The site's numbers up to `ceiling` are this relay's to give its own link's events (a
    /// reservation on the bus, [`crate::bus::marks`]), written for events already read.
    pub fn reserve(&mut self, ceiling: u64) {
        self.reserved = ceiling;
        self.needed = 0;
    }

    /// Whether more numbers should be reserved: the link's reader needs more than are left.
    pub fn wants_reservation(&self) -> bool {
        self.site_last().saturating_add(self.needed) > self.reserved
    }

    /// The reserved numbers not given yet (`u64::MAX` where nothing is reserved).
    pub fn numbers_left(&self) -> u64 {
        match self.reserved {
            u64::MAX => u64::MAX,
            reserved => reserved.saturating_sub(self.site_last()),
        }
    }

    /// Whether fewer than `count` reserved numbers are left; if so, `count` are asked for.
    pub fn reservation_short(&mut self, count: u64) -> bool {
        let short = self.site_last().saturating_add(count) > self.reserved;
        if short {
            self.needed = self.needed.max(count);
        }
        short
    }

    /// The numbers the link's reader asked for beyond what is reserved.
    pub fn needed(&self) -> u64 {
        self.needed
    }

    /// How many of the numbers given so far lie beyond the reservation.
    pub fn beyond_reservation(&self) -> u64 {
        self.site_last().saturating_sub(self.reserved)
    }

    /// This relay's numbers less the site's.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The last number issued (0 before the first event).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Numbers `count` events read from this relay's own link and returns the first one's
    /// number here, and what the bus is told of it.
    pub fn number(&mut self, count: u64) -> (u64, SiteSeq) {
        let site_next = self.next_seq - self.offset;
        let term = match self.term {
            Some(t) if t.own => t,
            _ => {
                self.terms_begun += 1;
                let term = Term {
                    id: self
                        .term_seed
                        .wrapping_add(self.terms_begun.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                    start: site_next,
                    own: true,
                };
                self.term = Some(term);
                term
            }
        };
        let first = self.next_seq;
        self.next_seq += count;
        let site = SiteSeq {
            term: term.id,
            start: term.start,
            first: site_next,
        };
        (first, site)
    }

    /// Numbers `count` events another relay numbered `site`: how many this relay missed before
    /// them, how many of them it already had, and its own number of the first new one. Nothing
    /// is numbered when every one was already had (`repeated == count`).
    pub fn follow(&mut self, site: SiteSeq, count: u64) -> Followed {
        let term = Term {
            id: site.term,
            start: site.start,
            own: false,
        };
        let Some(current) = self.term else {
            // Nothing numbered here yet: the site's numbers are taken as they are (what came
            // before is owed to nobody here).
            self.term = Some(term);
            self.next_seq = site.first.max(1);
            return self.take(count, 0, 0);
        };
        // The site's number this relay expects next.
        let expected = self.next_seq - self.offset;
        // The same term whoever numbers it: this relay's own events, published while it held
        // the link, come back to it from the bus once it follows (late, after a stall).
        let (lost, repeated) = if (current.id, current.start) == (term.id, term.start) {
            // Within a term the numbers are the events: a skip is events missed.
            match site.first.checked_sub(expected) {
                Some(skipped) => (skipped, 0),
                None => (0, (expected - site.first).min(count)),
            }
        } else if site.start < current.start && site.first.saturating_add(count) <= expected {
            // A late message of an earlier term (a new term starts above every number the
            // site reserved before it): its numbers were had here, or told lost when this
            // relay moved on to the later term. Nothing of it is delivered now.
            return self.take(count, 0, count);
        } else {
            // A new term starts where its holder's numbers of the last one ended. Numbers of the
            // old term it had and this relay did not are events missed; numbers it reuses that
            // this relay had are moved past by the offset. Events of the new term before this
            // run were missed too.
            self.term = Some(term);
            let missed_of_old = site.start.saturating_sub(expected);
            self.offset += expected.saturating_sub(site.start);
            (missed_of_old + site.first.saturating_sub(site.start), 0)
        };
        self.next_seq += lost;
        self.take(count, lost, repeated)
    }

    /// This relay takes the lease, and the site's numbers are known to have reached
    /// `site_last` (the last holder's mark on the bus): the next term this relay begins starts
    /// after it, so no number of the site is given to two events. Numbers skipped here are
    /// events of the site this relay never had: a gap, counted lost to a session that comes
    /// back from before it. Says how many were skipped. A mark so high that numbering past it
    /// would overflow (a damaged or forged entry on the bus) is ignored: nothing is skipped.
    ///
    /// Whatever term this relay was on ends here even when nothing is skipped: another relay
    /// may have held the lease since, and followers that moved on to its numbers must see the
    /// next event begin a term of its own, not the old one resumed.
    pub fn raise_to(&mut self, site_last: u64) -> u64 {
        let site_next = self.next_seq - self.offset;
        let skipped = site_last
            .checked_add(1)
            .map_or(0, |start| start.saturating_sub(site_next));
        // Room left for the numbers to come (2^62 events would outlast any site).
        let skipped = match self.next_seq.checked_add(skipped) {
            Some(n) if n <= MAX_SEQ => skipped,
            _ => 0,
        };
        if skipped == 0 && self.term.is_none() {
            // Nothing numbered or followed here yet, and nothing to skip.
            return 0;
        }
        self.next_seq += skipped;
        // Its own link's next event begins a new term, and a late message of any term is a new
        // term to a follower.
        self.term = Some(Term {
            id: RAISED,
            start: self.next_seq - self.offset,
            own: false,
        });
        skipped
    }

    fn take(&mut self, count: u64, lost: u64, repeated: u64) -> Followed {
        let first = self.next_seq;
        self.next_seq += count - repeated;
        Followed {
            lost,
            repeated,
            first,
        }
    }

    /// Keeps the `events` just numbered from `first`, which are the consecutive frames of
    /// `run`, copied once so the kept events never hold a connection's read buffer.
    pub fn keep(&mut self, now: Instant, first: u64, run: &[u8], events: u64, keep: Keep) {
        // Cannot fail: a copy of frames the reader checked whole.
        let copy = Run::whole(Bytes::copy_from_slice(run)).expect("a run of checked frames");
        let mut seq = first;
        for f in copy.frames() {
            self.frames
                .push_back((seq, now, copy.frame(&f).into_bytes()));
            self.bytes += f.len;
            seq += 1;
        }
        debug_assert_eq!(seq - first, events, "a run holds exactly its events");
        self.trim(now, keep);
    }

    /// Drops what is older than the window or beyond the byte bound, oldest first.
    pub fn trim(&mut self, now: Instant, keep: Keep) {
        while let Some((_, at, frame)) = self.frames.front() {
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
    /// `last` no longer kept or never had, whatever their device, and the wanted ones over the
    /// budget; each gap is placed where it is, before the first event given after it, so the
    /// numbers a session is told run on exactly. A `last` at or beyond the last number issued is
    /// owed nothing.
    pub fn owed(&self, last: u64, budget: usize, wanted: impl Fn(&[u8]) -> bool) -> Owed {
        if last >= self.last_seq() {
            return Owed::default();
        }
        let after = self.frames.partition_point(|(seq, _, _)| *seq <= last);
        let mut frames: Vec<(u64, Bytes)> = Vec::new();
        let mut gaps: Vec<u64> = Vec::new();
        // Numbers after the last one given (or `last`) that this journal does not hold.
        let mut missing = 0;
        let mut previous = last;
        for (seq, _, f) in self.frames.iter().skip(after) {
            missing += seq - previous - 1;
            previous = *seq;
            if wanted(f) {
                frames.push((*seq, f.clone()));
                gaps.push(std::mem::take(&mut missing));
            }
        }
        let lost_after = missing + (self.last_seq() - previous);
        let mut total: usize = frames.iter().map(|(_, f)| f.len()).sum();
        let mut drop = 0;
        while total > budget && drop < frames.len() {
            total -= frames[drop].1.len();
            drop += 1;
        }
        // Events no longer kept count whatever their device (nobody can tell any more); those
        // over the budget are known to be wanted, and are lost before the first one given.
        let dropped: u64 = gaps.drain(..drop).sum::<u64>() + drop as u64;
        frames.drain(..drop);
        // With every frame dropped, they are lost after the session's last, with the rest.
        let lost_after = match gaps.first_mut() {
            Some(first) => {
                *first += dropped;
                lost_after
            }
            None => lost_after + dropped,
        };
        let lost = gaps.iter().sum::<u64>() + lost_after;
        Owed { lost, frames, gaps }
    }
}

#[cfg(test)]
mod tests;
