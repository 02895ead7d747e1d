//! The wall clock the relay is handed. Timers use tokio's clock; only timestamps shown to
//! people (notifications, connect times, monitor records) come from here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait WallClock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's real time.
#[derive(Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that reads tokio's (possibly paused) clock from a fixed start: deterministic time
/// for tests and scenarios.
#[derive(Debug)]
pub struct FixedStartClock {
    start_ms: u64,
    origin: tokio::time::Instant,
    offset_ms: AtomicU64,
}

impl FixedStartClock {
    pub fn new(start_ms: u64) -> FixedStartClock {
        FixedStartClock {
            start_ms,
            origin: tokio::time::Instant::now(),
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Moves wall time forward without moving timers (e.g. to simulate days passing).
    pub fn skip_ms(&self, ms: u64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl WallClock for FixedStartClock {
    fn now_ms(&self) -> u64 {
        self.start_ms
            + self.origin.elapsed().as_millis() as u64
            + self.offset_ms.load(Ordering::Relaxed)
    }
}

/// Runs `f` now and then every `period` (tokio's clock) until `stop`.
pub async fn every(
    period: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
    mut f: impl FnMut(),
) {
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => f(),
        }
    }
}
