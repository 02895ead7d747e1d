//! The explorers' watch on worlds that never end: a world is played on a paused clock, so a
//! task that never waits (a loop that wakes itself) stops its virtual time and plays forever.
//! Each world is timed in real time while it plays; one that is still playing after its limit
//! is reported with its seed, and the explorer ends with a failure instead of stalling.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Real time a world may play before it is reported: worlds take well under a second in a
/// release build and a few seconds in a debug one.
pub const WORLD_LIMIT: Duration = Duration::from_secs(120);

/// The seeds being played, with when each began.
#[derive(Default)]
pub struct Playing {
    started: Mutex<BTreeMap<u64, Instant>>,
}

impl Playing {
    /// Times `play` as seed `seed`'s world.
    pub fn play<T>(&self, seed: u64, play: impl FnOnce() -> T) -> T {
        self.lock().insert(seed, Instant::now());
        let outcome = play();
        self.lock().remove(&seed);
        outcome
    }

    /// The seed that has played longest, if longer than `limit`, and for how long.
    pub fn overdue(&self, limit: Duration) -> Option<(u64, Duration)> {
        self.lock()
            .iter()
            .map(|(&seed, at)| (seed, at.elapsed()))
            .filter(|&(_, played)| played > limit)
            .max_by_key(|&(_, played)| played)
    }

    /// The next outcome from `rx`, or `Err` with the message naming a world that has played
    /// longer than `limit`; `Ok(None)` once every sender is gone.
    pub fn next<T>(&self, rx: &Receiver<T>, limit: Duration) -> Result<Option<T>, String> {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(outcome) => return Ok(Some(outcome)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {
                    if let Some((seed, played)) = self.overdue(limit) {
                        return Err(format!(
                            "seed {seed}: still playing after {:.0} s of real time: a task that \
                             never waits keeps its virtual clock from advancing (replay it alone \
                             with --seeds {seed}..{} and RUST_LOG=relay=debug to see where)",
                            played.as_secs_f64(),
                            seed + 1
                        ));
                    }
                }
            }
        }
    }

    /// The outcomes from `rx` until every sender is gone; a world playing longer than
    /// [`WORLD_LIMIT`] is reported and ends the process with exit code 1 (its thread cannot be
    /// stopped).
    pub fn outcomes<'a, T>(&'a self, rx: &'a Receiver<T>) -> impl Iterator<Item = T> + 'a {
        std::iter::from_fn(move || match self.next(rx, WORLD_LIMIT) {
            Ok(outcome) => outcome,
            Err(stalled) => {
                println!("{stalled}");
                std::process::exit(1);
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Instant>> {
        self.started.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_playing_past_its_limit_is_named_and_one_that_ended_is_not() {
        let playing = Playing::default();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        assert_eq!(playing.play(3, || 7), 7);
        assert_eq!(playing.overdue(Duration::ZERO), None);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                playing.play(5, || std::thread::sleep(Duration::from_millis(1500)));
                drop(tx);
            });
            let stalled = playing.next(&rx, Duration::from_millis(200));
            assert!(
                stalled
                    .as_ref()
                    .is_err_and(|e| e.starts_with("seed 5: still playing after")),
                "{stalled:?}"
            );
            assert_eq!(playing.next(&rx, Duration::from_secs(60)), Ok(None));
        });
    }
}
