//! What every connection of the relay does alike, switch link, application session or
//! monitor: a bounded output queue and its writer ([`outqueue`]), the socket a session's writer
//! lends to the queue's producers while it is idle ([`lent`]), keeping the link alive (a
//! heartbeat after a quiet interval, the end after the silence limit) and giving its writer a
//! grace period to finish before it is aborted.

pub mod lent;
pub mod outqueue;

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// What a keepalive tick calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Send a heartbeat: nothing has crossed the link either way for the heartbeat interval.
    Heartbeat,
    /// End the connection: nothing has been received for the silence limit.
    Silent,
}

/// The heartbeat and silence rule of one connection, checked once a second.
pub struct Keepalive {
    heartbeat_interval: Duration,
    silence_limit: Duration,
    last_rx: Instant,
    last_heartbeat: Instant,
    tick: Interval,
}

impl Keepalive {
    pub fn new(heartbeat_interval: Duration, silence_limit: Duration) -> Keepalive {
        let now = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Keepalive {
            heartbeat_interval,
            silence_limit,
            last_rx: now,
            last_heartbeat: now,
            tick,
        }
    }

    /// Something was received from the other side.
    pub fn received(&mut self) {
        self.last_rx = Instant::now();
    }

    /// Waits for the next check and says what it calls for; cancel-safe (a check that is not
    /// awaited to the end is simply not made).
    pub async fn tick(&mut self) -> Due {
        self.tick.tick().await;
        let now = Instant::now();
        if now.duration_since(self.last_rx) >= self.silence_limit {
            return Due::Silent;
        }
        if now.duration_since(self.last_rx.max(self.last_heartbeat)) >= self.heartbeat_interval {
            self.last_heartbeat = now;
            return Due::Heartbeat;
        }
        Due::Nothing
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

    #[tokio::test(start_paused = true)]
    async fn a_quiet_link_gets_heartbeats_then_ends_at_the_silence_limit() {
        let mut k = Keepalive::new(Duration::from_secs(10), Duration::from_secs(30));
        let mut seen = Vec::new();
        for _ in 0..=30 {
            seen.push(k.tick().await);
        }
        // Ticks at 0..=30 s: heartbeats at 10 s and 20 s, the end at 30 s.
        let at = |d: Due| -> Vec<usize> {
            seen.iter()
                .enumerate()
                .filter(|(_, x)| **x == d)
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(at(Due::Heartbeat), vec![10, 20]);
        assert_eq!(at(Due::Silent), vec![30]);
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_received_puts_off_both_the_heartbeat_and_the_end() {
        let mut k = Keepalive::new(Duration::from_secs(10), Duration::from_secs(30));
        for _ in 0..9 {
            assert_eq!(k.tick().await, Due::Nothing);
        }
        k.received(); // at 8 s
        for second in 9..18 {
            assert_eq!(k.tick().await, Due::Nothing, "at {second} s");
        }
        assert_eq!(
            k.tick().await,
            Due::Heartbeat,
            "10 s after the last receipt"
        );
    }
}
