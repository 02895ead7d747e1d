//! The journal's numbering, following, reservations and replays.

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
fn a_holder_reserves_exactly_the_events_its_reader_holds_and_counts_any_beyond() {
    let mut j = EventJournal::new(1);
    // Nothing reserved (a relay of its own): never asks, every number is its own.
    j.number(1_000);
    assert!(!j.wants_reservation());
    assert_eq!(j.numbers_left(), u64::MAX);
    assert_eq!(j.beyond_reservation(), 0);
    // A new holder starts with none left after the site's last number.
    j.reserve(1_000);
    assert_eq!(j.numbers_left(), 0);
    // A reader with 3 events read asks for exactly 3.
    assert!(j.reservation_short(3));
    assert_eq!(j.needed(), 3);
    assert!(j.wants_reservation());
    j.reserve(1_003);
    assert_eq!((j.needed(), j.numbers_left()), (0, 3));
    assert!(!j.wants_reservation());
    assert!(!j.reservation_short(3));
    j.number(3);
    assert_eq!((j.numbers_left(), j.beyond_reservation()), (0, 0));
    // Numbered past the reservation (a defect): counted.
    j.number(2);
    assert_eq!(j.beyond_reservation(), 2);
}

#[test]
fn a_holders_own_events_coming_back_from_the_bus_after_it_lost_the_lease_are_had_already() {
    let now = Instant::now();
    let mut j = EventJournal::new(3);
    let (first, published) = j.number(2);
    assert_eq!(first, 1);
    j.number(1);
    // Stalled, it lost the lease; its own run comes back once it follows: nothing is new,
    // and the numbers stay the site's (no offset).
    let f = j.follow(published, 2);
    assert_eq!((f.lost, f.repeated), (0, 2));
    assert_eq!((j.last_seq(), j.offset()), (3, 0));
    // The next holder's term runs on from its last number, here as on the bus.
    let f = follow(&mut j, now, site(99, 4, 4), &["c"]);
    assert_eq!((f.lost, f.repeated, f.first), (0, 0, 4));
    assert_eq!(j.offset(), 0);
}
