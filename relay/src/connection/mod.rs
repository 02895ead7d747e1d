//! What every connection of the relay does alike, switch link, application session or
//! monitor: a bounded output queue and its writer ([`outqueue`]), the socket a session's writer
//! lends to the queue's producers while it is idle ([`lent`]), keeping the link alive (a
//! heartbeat after a quiet interval, the end after the silence limit) and giving its writer a
//! grace period to finish before it is aborted.

pub mod lent;
pub mod outqueue;

use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

/// What a keepalive tick calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Send a heartbeat: nothing has crossed the link either way for the heartbeat interval.
    Heartbeat,
    /// End the connection: nothing has been received for the silence limit.
    Silent,
}

/// The heartbeat and silence rule of one connection, checked on a whole-second grid from
/// its start, and only at the checks where something can be due: a connection that is quiet
/// or busy costs one wake-up per heartbeat interval, not one a second (a hundred sessions
/// started together would otherwise all wake each second, in the middle of the events).
pub struct Keepalive {
    heartbeat_interval: Duration,
    silence_limit: Duration,
    last_rx: Instant,
    last_heartbeat: Instant,
    /// Where the grid of checks starts.
    origin: Instant,
    /// The next check at which something can be due (a receipt since only puts it off).
    check: Pin<Box<Sleep>>,
}

impl Keepalive {
    pub fn new(heartbeat_interval: Duration, silence_limit: Duration) -> Keepalive {
        let now = Instant::now();
        let mut keepalive = Keepalive {
            heartbeat_interval,
            silence_limit,
            last_rx: now,
            last_heartbeat: now,
            origin: now,
            check: Box::pin(tokio::time::sleep_until(now)),
        };
        let first = keepalive.next_check(now);
        keepalive.check.as_mut().reset(first);
        keepalive
    }

    /// Something was received from the other side.
    pub fn received(&mut self) {
        self.last_rx = Instant::now();
    }

    /// Waits until a check calls for something and says what; cancel-safe (the check's time
    /// is kept here, so a wait that is not awaited to the end loses nothing).
    pub async fn tick(&mut self) -> Due {
        loop {
            self.check.as_mut().await;
            let now = Instant::now();
            let due = if now.duration_since(self.last_rx) >= self.silence_limit {
                Due::Silent
            } else if now.duration_since(self.last_rx.max(self.last_heartbeat))
                >= self.heartbeat_interval
            {
                self.last_heartbeat = now;
                Due::Heartbeat
            } else {
                Due::Nothing
            };
            let next = self.next_check(now);
            self.check.as_mut().reset(next);
            if due != Due::Nothing {
                return due;
            }
        }
    }

    /// The first check after `now` at which the silence limit or the heartbeat interval can
    /// have run out, as things stand.
    fn next_check(&self, now: Instant) -> Instant {
        // A limit too long to add to an instant is never reached.
        let never = now + Duration::from_secs(365 * 86_400);
        let silent_at = self.last_rx.checked_add(self.silence_limit);
        let heartbeat_at =
            (self.last_rx.max(self.last_heartbeat)).checked_add(self.heartbeat_interval);
        let due_at = silent_at
            .unwrap_or(never)
            .min(heartbeat_at.unwrap_or(never))
            .max(now + Duration::from_nanos(1));
        let since = due_at.duration_since(self.origin);
        let seconds = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        self.origin + Duration::from_secs(seconds)
    }
}

/// Lets `writer` finish what it has for up to `grace`, then aborts it.
pub async fn end_writer<T>(writer: &mut JoinHandle<T>, grace: Duration) {
    if !writer.is_finished() && tokio::time::timeout(grace, &mut *writer).await.is_err() {
        writer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the next `n` checks that call for something call for, and when (whole seconds
    /// from the start).
    async fn next_dues(k: &mut Keepalive, start: Instant, n: usize) -> Vec<(u64, Due)> {
        let mut seen = Vec::new();
        for _ in 0..n {
            let due = k.tick().await;
            seen.push((start.elapsed().as_secs(), due));
        }
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_link_gets_heartbeats_then_ends_at_the_silence_limit() {
        let start = Instant::now();
        let mut k = Keepalive::new(Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(
            next_dues(&mut k, start, 3).await,
            vec![
                (10, Due::Heartbeat),
                (20, Due::Heartbeat),
                (30, Due::Silent)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_received_puts_off_both_the_heartbeat_and_the_end() {
        let start = Instant::now();
        let mut k = Keepalive::new(Duration::from_secs(10), Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(8_300)).await;
        k.received();
        // Due 10 s after the receipt, at the next whole-second check: 19 s.
        assert_eq!(
            next_dues(&mut k, start, 4).await,
            vec![
                (19, Due::Heartbeat),
                (29, Due::Heartbeat),
                (39, Due::Silent),
                (40, Due::Silent),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn limits_too_long_to_reach_are_never_due() {
        let mut k = Keepalive::new(Duration::MAX, Duration::MAX);
        assert!(
            tokio::time::timeout(Duration::from_secs(3 * 86_400), k.tick())
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_is_not_awaited_to_the_end_is_still_made() {
        let start = Instant::now();
        let mut k = Keepalive::new(Duration::from_secs(10), Duration::from_secs(30));
        assert!(tokio::time::timeout(Duration::from_secs(5), k.tick())
            .await
            .is_err());
        assert_eq!(
            next_dues(&mut k, start, 1).await,
            vec![(10, Due::Heartbeat)]
        );
    }
}
