//! The fence on this relay's switch links for a site two relays share: a link may be dialled
//! only while this relay's lease is valid by its own monotonic clock. The lease sets how long
//! (from when the renewal that won or kept it was *sent*, less a margin); the supervisors look
//! before every dial and again before an opened link is used. A relay of a site of its own is
//! never fenced.
//!
//! The clock is the monotonic one, which goes on while the process is stopped (SIGSTOP, a VM
//! paused): a relay that wakes after its lease ran out finds the fence shut before it acts.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Nanoseconds after `base` until which dialling is allowed; [`OPEN`]: always.
#[derive(Debug)]
pub struct Fence {
    base: Instant,
    until: AtomicU64,
}

const OPEN: u64 = u64::MAX;
const SHUT: u64 = 0;

impl Fence {
    /// Never shut: a relay whose links are its own.
    pub fn unfenced() -> Fence {
        Fence {
            base: Instant::now(),
            until: AtomicU64::new(OPEN),
        }
    }

    /// Shut until a lease opens it.
    pub fn shut() -> Fence {
        Fence {
            base: Instant::now(),
            until: AtomicU64::new(SHUT),
        }
    }

    /// Whether a link may be dialled (or an opened one used) now.
    pub fn open(&self) -> bool {
        match self.until.load(Ordering::Acquire) {
            OPEN => true,
            SHUT => false,
            until => self.nanos(Instant::now()) < until,
        }
    }

    /// Open until `until` (a lease renewed); an unfenced relay stays open.
    pub fn open_until(&self, until: Instant) {
        let nanos = self.nanos(until).clamp(SHUT + 1, OPEN - 1);
        let _ = self
            .until
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now != OPEN).then_some(nanos)
            });
    }

    /// Shut now (the lease lost, given up or released); an unfenced relay stays open.
    pub fn shut_now(&self) {
        let _ = self
            .until
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now != OPEN).then_some(SHUT)
            });
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(OPEN - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_lease_opens_the_fence_until_its_time_runs_out() {
        let fence = Fence::shut();
        assert!(!fence.open());
        fence.open_until(Instant::now() + Duration::from_secs(4));
        assert!(fence.open());
        tokio::time::advance(Duration::from_millis(3_999)).await;
        assert!(fence.open());
        // A process stopped past its lease finds the fence shut when it wakes.
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!fence.open());
        fence.open_until(Instant::now() + Duration::from_secs(4));
        fence.shut_now();
        assert!(!fence.open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_relay_of_its_own_site_is_never_fenced() {
        let fence = Fence::unfenced();
        fence.shut_now();
        assert!(fence.open());
        fence.open_until(Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(fence.open());
    }
}
