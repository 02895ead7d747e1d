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
    /// The site's number at which more should be reserved.
    refill_at: u64,
    /// Numbers the link's reader needs for what it has buffered, beyond what is reserved.
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
            refill_at: u64::MAX,
            needed: 0,
        }
    }

    /// The site's last number issued or followed here (0 before any).
    pub fn site_last(&self) -> u64 {
        self.last_seq().saturating_sub(self.offset)
    }

    /// The site's numbers up to `ceiling` are this relay's to give its own link's events (a
    /// reservation on the bus, [`crate::bus::marks`]); more are wanted from `refill_at` on.
    pub fn reserve(&mut self, ceiling: u64, refill_at: u64) {
        self.reserved = ceiling;
        self.refill_at = refill_at.min(ceiling);
        self.needed = 0;
    }

    /// Whether more numbers should be reserved: the numbers given reached the refill point, or
    /// the link's reader needs more than are left.
    pub fn wants_reservation(&self) -> bool {
        self.site_last() >= self.refill_at
            || self.site_last().saturating_add(self.needed) > self.reserved
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
        let (lost, repeated) = if current == term {
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

    /// Numbers and keeps events of this relay's own link; returns the first one's number.
    fn own(j: &mut EventJournal, at: Instant, devices: &[&str], keep: Keep) -> u64 {
        let (first, _) = j.number(devices.len() as u64);
        j.keep(at, first, &run(devices), devices.len() as u64, keep);
        first
    }

    /// Follows events another relay numbered; returns what the journal made of them.
    fn follow(j: &mut EventJournal, at: Instant, site: SiteSeq, devices: &[&str]) -> Followed {
        let followed = j.follow(site, devices.len() as u64);
        let new = &devices[followed.repeated as usize..];
        j.keep(at, followed.first, &run(new), new.len() as u64, KEEP);
        followed
    }

    fn site(term: u64, start: u64, first: u64) -> SiteSeq {
        SiteSeq { term, start, first }
    }

    fn numbers(owed: &Owed) -> Vec<u64> {
        owed.frames.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn a_returning_session_is_owed_what_came_after_its_last_in_order() {
        let now = Instant::now();
        let mut j = EventJournal::default();
        assert_eq!(j.last_seq(), 0);
        assert_eq!(own(&mut j, now, &["2201", "2202", "2201"], KEEP), 1);
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
        own(&mut j, start, &["2201", "2202"], KEEP);
        let later = start + Duration::from_secs(61);
        own(&mut j, later, &["2203"], KEEP);
        // The first two are past the window.
        let owed = j.owed(0, usize::MAX, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (2, vec![3]));
        // A byte bound of one event keeps only the newest.
        let one = event("2204").len();
        let tight = Keep {
            window: KEEP.window,
            max_bytes: one,
        };
        own(&mut j, later, &["2204"], tight);
        assert_eq!(j.kept_bytes(), one);
        let owed = j.owed(1, usize::MAX, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (2, vec![4]));
        // Numbers are never reused after a clear.
        j.clear();
        assert_eq!(j.owed(2, usize::MAX, |_| true).lost, 2);
        assert_eq!(j.number(1).0, 5);
    }

    #[test]
    fn a_replay_over_budget_gives_the_newest_and_counts_the_rest() {
        let now = Instant::now();
        let mut j = EventJournal::default();
        own(&mut j, now, &["2201", "2202", "2201", "2202"], KEEP);
        let one = event("2201").len();
        let owed = j.owed(0, 2 * one, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (2, vec![3, 4]));
        // Filtered: events 1 and 3 are its own; dropping event 1 counts one lost.
        let owed = j.owed(0, one, |f| wire::call::event_device(f) == Some(b"2201"));
        assert_eq!((owed.lost, numbers(&owed)), (1, vec![3]));
    }

    #[test]
    fn a_holder_tells_the_bus_its_term_and_numbers() {
        let mut j = EventJournal::new(7);
        let (first, a) = j.number(3);
        assert_eq!((first, a.start, a.first), (1, 1, 1));
        let (first, b) = j.number(2);
        assert_eq!((first, b.term, b.start, b.first), (4, a.term, 1, 4));
    }

    #[test]
    fn a_follower_takes_the_sites_numbers_and_counts_what_it_missed() {
        let now = Instant::now();
        let mut j = EventJournal::new(1);
        // Joining late: the site's numbers as they are, nothing owed before them.
        let f = follow(&mut j, now, site(9, 1, 40), &["a", "b"]);
        assert_eq!(
            f,
            Followed {
                lost: 0,
                repeated: 0,
                first: 40
            }
        );
        // Numbers 42..=44 never came: three events missed, said as they are found.
        let f = follow(&mut j, now, site(9, 1, 45), &["c"]);
        assert_eq!(
            f,
            Followed {
                lost: 3,
                repeated: 0,
                first: 45
            }
        );
        // A message seen twice, in part: only what is new.
        let f = follow(&mut j, now, site(9, 1, 45), &["c", "d"]);
        assert_eq!(
            f,
            Followed {
                lost: 0,
                repeated: 1,
                first: 46
            }
        );
        assert_eq!(j.last_seq(), 46);
        // A session that had 41 is owed 45 and 46, and told of the three never had.
        let owed = j.owed(41, usize::MAX, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (3, vec![45, 46]));
    }

    #[test]
    fn a_new_term_runs_on_from_the_numbers_its_holder_had() {
        let now = Instant::now();
        let mut j = EventJournal::new(1);
        follow(&mut j, now, site(9, 1, 1), &["a", "b", "c"]);
        // The new holder had seen up to 2 only (3 was the old holder's last, seen here): its
        // term reuses 3, which this relay moves past, so it never says 3 twice.
        let f = follow(&mut j, now, site(10, 3, 3), &["d"]);
        assert_eq!(
            f,
            Followed {
                lost: 0,
                repeated: 0,
                first: 4
            }
        );
        // Its own link after that: the bus is told the site's numbers, not this relay's.
        let (first, told) = j.number(1);
        assert_eq!((first, told.start, told.first), (5, 4, 4));
        // A later term whose holder had events this relay missed: exactly those.
        let f = follow(&mut j, now, site(11, 8, 9), &["e"]);
        // Site 5..=7 were the old term's (missed), 8 the new term's first (missed).
        assert_eq!(
            f,
            Followed {
                lost: 4,
                repeated: 0,
                first: 10
            }
        );
        assert_eq!(j.owed(5, usize::MAX, |_| true).lost, 4);
    }

    #[test]
    fn a_new_holder_starts_after_the_sites_mark_and_owes_the_gap() {
        let now = Instant::now();
        // A relay that numbered nothing (restarted while the site went on): its term starts
        // after the mark, not at 1; a session that had 1 000 here is told of the 100 events
        // the site had that this relay never did.
        let mut fresh = EventJournal::new(1);
        assert_eq!(fresh.raise_to(1_100), 1_100);
        assert_eq!(fresh.owed(1_000, usize::MAX, |_| true).lost, 100);
        let (first, told) = fresh.number(1);
        assert_eq!((first, told.start, told.first), (1_101, 1_101, 1_101));
        // A relay that followed up to 3 and then lost sight of the site up to 9.
        let mut j = EventJournal::new(1);
        follow(&mut j, now, site(9, 1, 1), &["a", "b", "c"]);
        assert_eq!(j.raise_to(9), 6);
        assert_eq!(own(&mut j, now, &["d"], KEEP), 10);
        let owed = j.owed(2, usize::MAX, |_| true);
        assert_eq!((owed.lost, numbers(&owed)), (6, vec![3, 10]));
        // The gap is told where it falls: between 3 and 10.
        assert_eq!((owed.gaps.clone(), owed.lost_after()), (vec![0, 6], 0));
        // A mark it is already past changes nothing.
        assert_eq!(j.raise_to(5), 0);
        assert_eq!(own(&mut j, now, &["e"], KEEP), 11);
        // A mark no site could reach (a damaged or forged entry) is ignored, without overflow.
        for mark in [u64::MAX, u64::MAX - 1, 1 << 63] {
            assert_eq!(j.raise_to(mark), 0);
        }
        assert_eq!(own(&mut j, now, &["f"], KEEP), 12);
    }

    #[test]
    fn a_holder_taking_the_lease_back_begins_a_new_term_even_with_nothing_skipped() {
        let now = Instant::now();
        // b holds the lease and numbers 1..=3 up to its reservation's end.
        let mut b = EventJournal::new(2);
        let (_, first_term) = b.number(3);
        assert_eq!((first_term.start, first_term.first), (1, 1));
        // a takes the lease meanwhile, runs on from 3, numbers nothing and lets it go; a
        // follower (the branch) had b's term up to 3.
        let mut branch = EventJournal::new(3);
        follow(&mut branch, now, first_term, &["a", "b", "c"]);
        let mut a = EventJournal::new(1);
        follow(&mut a, now, first_term, &["a", "b", "c"]);
        assert_eq!(a.raise_to(3), 0);
        // b takes the lease back: the site's mark is its own last, nothing is skipped, but its
        // next event begins a term of its own starting at 4.
        assert_eq!(b.raise_to(3), 0);
        let (first, next_term) = b.number(1);
        assert_eq!((first, next_term.start, next_term.first), (4, 4, 4));
        assert_ne!(next_term.term, first_term.term);
        // Both followers number it 4, with no offset and nothing lost.
        for j in [&mut a, &mut branch] {
            let followed = follow(j, now, next_term, &["d"]);
            assert_eq!(
                (followed.first, followed.lost, followed.repeated),
                (4, 0, 0)
            );
            assert_eq!(j.site_last(), 4);
        }
    }

    #[test]
    fn each_gap_is_told_before_the_first_event_after_it() {
        let now = Instant::now();
        let mut j = EventJournal::new(1);
        follow(&mut j, now, site(9, 1, 1), &["2201", "2202"]);
        // Numbers 3..=7 never reached this relay (the bus), then 8 and 9 did; 10..=12 were
        // skipped by a reservation.
        follow(&mut j, now, site(9, 1, 8), &["2201", "2202"]);
        assert_eq!(j.raise_to(12), 3);
        let owed = j.owed(1, usize::MAX, |_| true);
        assert_eq!(numbers(&owed), vec![2, 8, 9]);
        assert_eq!(
            (owed.gaps.clone(), owed.lost_after(), owed.lost),
            (vec![0, 5, 0], 3, 8)
        );
        // Filtered to 2201: event 2 is not its, so the gap before 8 is told before 8 still;
        // event 9 is not its either.
        let owed = j.owed(0, usize::MAX, |f| {
            wire::call::event_device(f) == Some(b"2201")
        });
        assert_eq!(numbers(&owed), vec![1, 8]);
        assert_eq!((owed.gaps.clone(), owed.lost_after()), (vec![0, 5], 3));
        // Over the budget: the oldest wanted events are lost before the first one given.
        let one = event("2201").len();
        let owed = j.owed(1, one, |_| true);
        assert_eq!(numbers(&owed), vec![9]);
        assert_eq!(
            (owed.gaps.clone(), owed.lost_after(), owed.lost),
            (vec![7], 3, 10)
        );
        // Nothing fits: everything is lost after the session's last.
        let owed = j.owed(1, 0, |_| true);
        assert_eq!(
            (numbers(&owed), owed.lost_after(), owed.lost),
            (vec![], 11, 11)
        );
    }

    #[test]
    fn a_late_message_of_an_earlier_term_is_not_delivered_again() {
        let now = Instant::now();
        let mut j = EventJournal::new(1);
        follow(&mut j, now, site(9, 1, 1), &["a", "b", "c"]);
        // The next holder starts above the old one's reservation (200): 4..=199 are a gap.
        let f = follow(&mut j, now, site(10, 200, 200), &["d"]);
        assert_eq!((f.lost, f.repeated, f.first), (196, 0, 200));
        // The old holder's events 4 and 5 arrive late: counted lost already, not delivered.
        let f = j.follow(site(9, 1, 4), 2);
        assert_eq!((f.lost, f.repeated), (0, 2));
        assert_eq!((j.last_seq(), j.offset()), (200, 0));
        // The new term goes on.
        let f = follow(&mut j, now, site(10, 200, 201), &["e"]);
        assert_eq!((f.lost, f.repeated, f.first), (0, 0, 201));
    }

    #[test]
    fn a_holder_knows_when_to_reserve_more_and_what_it_numbered_beyond() {
        let mut j = EventJournal::new(1);
        // Nothing reserved (a relay of its own): never asks.
        j.number(1_000);
        assert!(!j.wants_reservation());
        assert_eq!(j.beyond_reservation(), 0);
        j.reserve(1_100, 1_050);
        j.number(49);
        assert!(!j.wants_reservation());
        j.number(1);
        assert!(j.wants_reservation());
        j.number(60);
        assert_eq!(j.beyond_reservation(), 10);
        // A reader with 30 events buffered and 20 numbers left asks for 30.
        j.reserve(1_130, 1_120);
        assert!(!j.wants_reservation());
        assert!(!j.reservation_short(20));
        assert!(j.reservation_short(30));
        assert_eq!(j.needed(), 30);
        assert!(j.wants_reservation());
        // A new reservation answers it.
        j.reserve(1_200, 1_180);
        assert_eq!(j.needed(), 0);
        assert!(!j.reservation_short(30));
    }
}
