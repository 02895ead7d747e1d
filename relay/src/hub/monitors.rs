//! The monitors attached now, which the switch readers feed: one bounded queue per monitor
//! that drops and counts when full (a slow monitor loses frames, never slows the relay) and
//! reports the count as `M 'G'` before the next frame it can take. The ports that accept
//! monitors are [`crate::ports`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::connection::outqueue::{run_writer, Ending, Offered, OutQueue};

/// Which port a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorPort {
    SwitchMessages,
    SmdrUcd,
    Export,
}

/// A monitor's outgoing frames: a dropping [`OutQueue`] (a slow monitor misses frames and is
/// told how many with `M 'G'`), and the count of frames it missed over its life.
pub struct MonitorQueue {
    out: OutQueue,
    /// Frames dropped over the monitor's life.
    pub dropped_total: AtomicU64,
}

impl MonitorQueue {
    pub fn new(limit: usize) -> MonitorQueue {
        MonitorQueue {
            out: OutQueue::dropping(limit, wire::monitor::encode_gap),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Queues a frame, or drops and counts it when the monitor is behind.
    pub fn push(&self, frame: Bytes) {
        if self.out.push_or_drop(frame) == Offered::Dropped {
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a frame that cannot be sent at all (too large to wrap in an `M` frame).
    pub fn skip(&self) {
        self.out.count_dropped();
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops the writer; what is still queued is not sent.
    pub(crate) fn close(&self) {
        self.out.end(Ending::Discard { last: None });
    }

    /// Writes queued frames until the socket fails or the queue is closed.
    pub(crate) async fn run_writer<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        writer: &mut W,
        grace: Duration,
    ) {
        let _ = run_writer(&self.out, writer, grace).await;
    }
}

/// The monitors attached now, per port; replaced whole when one comes or goes.
#[derive(Default)]
pub struct AttachedMonitors {
    pub switch_messages: ArcSwap<Vec<Arc<MonitorQueue>>>,
    pub smdr_ucd: ArcSwap<Vec<Arc<MonitorQueue>>>,
    /// Collectors connected to the export port.
    pub collectors: AtomicUsize,
    pub gaps: AtomicU64,
}

impl AttachedMonitors {
    fn list(&self, port: MonitorPort) -> &ArcSwap<Vec<Arc<MonitorQueue>>> {
        match port {
            MonitorPort::SwitchMessages => &self.switch_messages,
            MonitorPort::SmdrUcd => &self.smdr_ucd,
            MonitorPort::Export => unreachable!("the export port is served from the spool"),
        }
    }

    /// Whether any switch-message monitor is attached (checked once per read run).
    pub fn watching_links(&self) -> bool {
        !self.switch_messages.load().is_empty()
    }

    /// A frame on switch `switch`'s link: `to_switch` or from it.
    pub fn link_frame(&self, time_ms: u64, switch: u8, to_switch: bool, frame: &[u8]) {
        let list = self.switch_messages.load();
        if list.is_empty() {
            return;
        }
        let code = if to_switch { b'>' } else { b'<' };
        match wire::monitor::encode_link(code, time_ms, switch, frame) {
            Some(m) => list.iter().for_each(|q| q.push(m.clone())),
            None => list.iter().for_each(|q| q.skip()),
        }
    }

    /// An `S` or `U` record from switch `switch`, exactly as received.
    pub fn record(&self, time_ms: u64, switch: u8, frame: &Bytes) {
        let monitors = self.smdr_ucd.load();
        if !monitors.is_empty() {
            let code = frame[2];
            match wire::monitor::encode_link(code, time_ms, switch, frame) {
                Some(m) => monitors.iter().for_each(|q| q.push(m.clone())),
                None => monitors.iter().for_each(|q| q.skip()),
            }
        }
    }

    pub(crate) fn attach(&self, port: MonitorPort, q: Arc<MonitorQueue>) {
        self.list(port).rcu(|l| {
            let mut l = (**l).clone();
            l.push(q.clone());
            l
        });
    }

    pub(crate) fn detach(&self, port: MonitorPort, q: &Arc<MonitorQueue>) {
        self.list(port).rcu(|l| {
            l.iter()
                .filter(|x| !Arc::ptr_eq(x, q))
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// AttachedMonitors attached, per port: (switch messages, SMDR/UCD, export).
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.switch_messages.load().len(),
            self.smdr_ucd.load().len(),
            self.collectors.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const GAP_OF_2: [u8; 10] = [0, 8, b'M', b'G', 0xFF, 0xFF, 0, 0, 0, 2];

    #[tokio::test]
    async fn a_full_queue_drops_counts_and_reports_the_gap_when_caught_up_or_before_the_next() {
        let q = Arc::new(MonitorQueue::new(30));
        q.push(Bytes::from(vec![1u8; 20]));
        q.push(Bytes::from(vec![2u8; 20]));
        q.push(Bytes::from(vec![3u8; 20]));
        assert_eq!(q.dropped_total.load(Ordering::Relaxed), 2);
        let (mut monitor, mut socket) = tokio::io::duplex(1024);
        let writer = crate::task::spawn({
            let q = q.clone();
            async move { q.run_writer(&mut socket, Duration::from_secs(1)).await }
        });
        // The writer takes the first frame and, caught up, reports the two it could not.
        let mut got = [0u8; 30];
        monitor.read_exact(&mut got).await.unwrap();
        assert_eq!(got[..20], [1u8; 20]);
        assert_eq!(got[20..], GAP_OF_2);

        // Behind again: the report goes out before the next frame that fits.
        let blocked = Arc::new(MonitorQueue::new(30));
        blocked.push(Bytes::from(vec![1u8; 30]));
        blocked.push(Bytes::from_static(b"x"));
        blocked.push(Bytes::from_static(b"y"));
        assert_eq!(blocked.dropped_total.load(Ordering::Relaxed), 2);
        let (mut monitor2, mut socket2) = tokio::io::duplex(1024);
        crate::task::spawn({
            let blocked = blocked.clone();
            async move {
                blocked
                    .run_writer(&mut socket2, Duration::from_secs(1))
                    .await
            }
        });
        let mut first = [0u8; 40];
        monitor2.read_exact(&mut first).await.unwrap();
        assert_eq!(first[..30], [1u8; 30]);
        assert_eq!(first[30..], GAP_OF_2);

        q.push(Bytes::from_static(b"next"));
        let mut next = [0u8; 4];
        monitor.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"next");
        q.close();
        writer.await.unwrap();
    }
}
