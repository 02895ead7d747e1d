//! Random worlds of a site two relays share: a seed makes the switches, the resumable
//! applications and a timeline of faults (a relay killed, stalled, stopped, paused, cut off
//! the bus, the bus down or slow, the lease handed over; the branch relay's own faults) and of
//! the applications' moves and requests.
//! The timeline depends on the seed alone.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The relays of a world, by index: `a` and `b` share site `hq`; `branch` is a relay of
/// another site serving hq's switches from the bus.
pub const NODES: [&str; 3] = ["a", "b", "branch"];
/// The branch relay's index in [`NODES`].
pub const BRANCH: usize = 2;

/// Something that happens to the site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL: every connection of the relay reset, its bus client gone; it comes back
    /// later as a new process ([`Action::Start`]).
    Kill(usize),
    /// SIGTERM: a planned stop (links closed, lease released).
    Stop(usize),
    /// The relay, down, starts again with its state directory.
    Start(usize),
    /// The relay's host stalls: its connections and its bus held, for this long, while the
    /// relay's own clock and tasks run on (a partition of the host).
    Stall(usize, Duration),
    /// SIGSTOP for `.1`, then SIGCONT: none of the relay's tasks runs meanwhile, while its
    /// timers come due and its sockets fill; on waking, the tasks woken meanwhile run in an
    /// order drawn from `.2`, so that which looks first varies.
    Pause(usize, Duration, u64),
    /// The relay is cut off the bus (its messages lost both ways) for this long.
    CutOff(usize, Duration),
    /// The bus down for everyone for this long.
    BusDown(Duration),
    /// Every bus message and write takes `.0` to arrive, for `.1`.
    BusSlow(Duration, Duration),
    /// An operator hands the lease over from this relay (refused unless it holds it).
    HandOver(usize),
    /// The application moves to the other relay (closes and comes back there with its token).
    Move(usize),
    /// The application sends this many requests at once.
    Requests(usize, u8),
}

/// One world: what the site is made of, and what happens to it when.
#[derive(Clone, Debug)]
pub struct SiteWorld {
    pub seed: u64,
    pub switches: u8,
    /// Each application's first relay.
    pub apps: Vec<usize>,
    pub timeline: Vec<(Duration, Action)>,
    pub length: Duration,
}

/// The world of `seed`, with a timeline of about `minutes` virtual minutes.
pub fn world(seed: u64, minutes: u64) -> SiteWorld {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let switches = rng.random_range(1..=2u8);
    let apps = (0..rng.random_range(1..=5usize))
        .map(|_| rng.random_range(0..2usize))
        .collect::<Vec<_>>();
    let length = Duration::from_secs(minutes * 60);
    let mut timeline = Vec::new();
    // Virtual time at which each relay is back (it is down until then).
    let mut down_until: [Option<Duration>; 2] = [None, None];
    // The first seconds let the site settle: one relay takes the lease, the other follows.
    let mut at = Duration::from_secs(8);
    while at < length {
        for (relay, until) in down_until.iter_mut().enumerate() {
            if until.is_some_and(|u| u <= at) {
                timeline.push((until.take().unwrap_or(at), Action::Start(relay)));
            }
        }
        let relay = rng.random_range(0..2usize);
        let up = down_until[relay].is_none();
        let other_up = down_until[1 - relay].is_none();
        let ms = |rng: &mut ChaCha8Rng, lo: u64, hi: u64| {
            Duration::from_millis(rng.random_range(lo..=hi))
        };
        let action = match rng.random_range(0..100u32) {
            // One relay down at a time, so that the site always has one to serve it.
            0..8 if up && other_up => {
                down_until[relay] = Some(at + ms(&mut rng, 2_000, 20_000));
                Action::Kill(relay)
            }
            8..14 if up && other_up => {
                down_until[relay] = Some(at + ms(&mut rng, 1_000, 15_000));
                Action::Stop(relay)
            }
            14..26 if up => Action::Stall(relay, ms(&mut rng, 300, 12_000)),
            26..38 if up => Action::CutOff(relay, ms(&mut rng, 300, 8_000)),
            38..44 => Action::BusDown(ms(&mut rng, 500, 15_000)),
            44..52 => Action::BusSlow(ms(&mut rng, 20, 1_500), ms(&mut rng, 1_000, 10_000)),
            52..58 if up => Action::HandOver(relay),
            58..78 if !apps.is_empty() => Action::Move(rng.random_range(0..apps.len())),
            78..100 if !apps.is_empty() => {
                Action::Requests(rng.random_range(0..apps.len()), rng.random_range(1..=4u8))
            }
            _ => {
                at += ms(&mut rng, 200, 2_000);
                continue;
            }
        };
        timeline.push((at, action));
        at += ms(&mut rng, 300, 9_000);
    }
    for (relay, until) in down_until.iter().enumerate() {
        if until.is_some() {
            timeline.push((length, Action::Start(relay)));
        }
    }
    timeline.extend(branch_faults(seed, length));
    timeline.extend(pauses(seed, length));
    // Stable: what was drawn for one moment keeps its order.
    timeline.sort_by_key(|(at, _)| *at);
    SiteWorld {
        seed,
        switches,
        apps,
        timeline,
        length,
    }
}

/// The faults of the branch relay: drawn from a stream of their own, so that a seed's
/// timeline at hq is the same with them as without.
fn branch_faults(seed: u64, length: Duration) -> Vec<(Duration, Action)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6272_616e_6368);
    let ms =
        |rng: &mut ChaCha8Rng, lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..=hi));
    let mut faults = Vec::new();
    let mut at = Duration::from_secs(8) + ms(&mut rng, 0, 20_000);
    while at < length {
        let down = |faults: &mut Vec<_>, rng: &mut ChaCha8Rng, action, lo, hi| {
            let back = (at + ms(rng, lo, hi)).min(length);
            faults.push((at, action));
            faults.push((back, Action::Start(BRANCH)));
            back
        };
        let ends = match rng.random_range(0..100u32) {
            0..15 => down(&mut faults, &mut rng, Action::Kill(BRANCH), 2_000, 20_000),
            15..25 => down(&mut faults, &mut rng, Action::Stop(BRANCH), 1_000, 15_000),
            25..60 => {
                let d = ms(&mut rng, 300, 12_000);
                faults.push((at, Action::Stall(BRANCH, d)));
                at + d
            }
            _ => {
                let d = ms(&mut rng, 300, 8_000);
                faults.push((at, Action::CutOff(BRANCH, d)));
                at + d
            }
        };
        at = ends + ms(&mut rng, 2_000, 40_000);
    }
    faults
}

/// Stopped processes, any of the three relays: drawn from a stream of their own, so that the
/// other faults of a seed are the same with them as without. Some outlast the lease (about
/// 5 s), so that the other relay takes it while this one sleeps.
fn pauses(seed: u64, length: Duration) -> Vec<(Duration, Action)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7061_7573_6564);
    let mut pauses = Vec::new();
    let mut at = Duration::from_secs(8) + Duration::from_millis(rng.random_range(0..=30_000));
    while at < length {
        let relay = rng.random_range(0..NODES.len());
        let d = Duration::from_millis(rng.random_range(200..=12_000));
        pauses.push((at, Action::Pause(relay, d, rng.random())));
        at += d + Duration::from_millis(rng.random_range(5_000..=60_000));
    }
    pauses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_always_the_same_world_and_a_relay_down_comes_back() {
        let one = world(7, 3);
        assert_eq!(
            format!("{:?}", one.timeline),
            format!("{:?}", world(7, 3).timeline)
        );
        for relay in 0..NODES.len() {
            let downs = one
                .timeline
                .iter()
                .filter(|(_, a)| matches!(a, Action::Kill(r) | Action::Stop(r) if *r == relay))
                .count();
            let starts = one
                .timeline
                .iter()
                .filter(|(_, a)| matches!(a, Action::Start(r) if *r == relay))
                .count();
            assert_eq!(downs, starts, "relay {relay}");
        }
    }
}
