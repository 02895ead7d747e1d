//! The monitors attached now, which the switch readers feed: one bounded queue per monitor
//! that drops and counts when full (a slow monitor loses frames, never slows the relay) and
//! reports the count as `M 'G'` before the next frame it can take. The ports that accept
//! monitors are [`crate::ports`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

/// Which port a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorPort {
    SwitchMessages,
    SmdrUcd,
    Export,
}

/// A monitor's outgoing frames: bounded, dropping and counting when full.
pub struct MonitorQueue {
    state: Mutex<GapState>,
    wake: Notify,
    limit: usize,
    /// Frames dropped over the monitor's life.
    pub dropped_total: AtomicU64,
}

#[derive(Default)]
struct GapState {
    frames: VecDeque<Bytes>,
    bytes: usize,
    /// Dropped since the last gap report.
    dropped: u32,
    closed: bool,
}

impl MonitorQueue {
    pub fn new(limit: usize) -> MonitorQueue {
        MonitorQueue {
            state: Mutex::new(GapState::default()),
            wake: Notify::new(),
            limit,
            dropped_total: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame, or drops and counts it when the monitor is behind.
    pub fn push(&self, frame: Bytes) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let gap = (st.dropped > 0).then(|| wire::monitor::encode_gap(st.dropped));
        let need = frame.len() + gap.as_ref().map_or(0, Bytes::len);
        if st.bytes + need > self.limit {
            st.dropped = st.dropped.saturating_add(1);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = st.frames.is_empty();
        if let Some(g) = gap {
            st.dropped = 0;
            st.bytes += g.len();
            st.frames.push_back(g);
        }
        st.bytes += frame.len();
        st.frames.push_back(frame);
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Counts a frame that cannot be sent at all (too large to wrap in an `M` frame).
    pub fn skip(&self) {
        self.lock().dropped += 1;
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Writes queued frames until the socket fails or the queue is closed.
    pub(crate) async fn run_writer<W: tokio::io::AsyncWrite + Unpin>(&self, writer: &mut W) {
        loop {
            let batch: Vec<Bytes> = {
                let mut st = self.lock();
                if st.closed {
                    return;
                }
                st.bytes = 0;
                let mut batch: Vec<Bytes> = st.frames.drain(..).collect();
                // Caught up: report what was missed now rather than before the next frame.
                if st.dropped > 0 {
                    batch.push(wire::monitor::encode_gap(st.dropped));
                    st.dropped = 0;
                }
                batch
            };
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            for b in batch {
                if writer.write_all(&b).await.is_err() {
                    return;
                }
            }
            if writer.flush().await.is_err() {
                return;
            }
        }
    }
}

/// The monitors attached now, per port; replaced whole when one comes or goes.
#[derive(Default)]
pub struct Monitors {
    pub switch_messages: ArcSwap<Vec<Arc<MonitorQueue>>>,
    pub smdr_ucd: ArcSwap<Vec<Arc<MonitorQueue>>>,
    /// Collectors connected to the export port.
    pub collectors: AtomicUsize,
    pub gaps: AtomicU64,
}

impl Monitors {
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

    /// Monitors attached, per port: (switch messages, SMDR/UCD, export).
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

    #[test]
    fn a_full_queue_drops_counts_and_reports_the_gap_first() {
        let q = MonitorQueue::new(30);
        q.push(Bytes::from(vec![1u8; 20]));
        q.push(Bytes::from(vec![2u8; 20]));
        q.push(Bytes::from(vec![3u8; 20]));
        assert_eq!(q.dropped_total.load(Ordering::Relaxed), 2);
        {
            let mut st = q.lock();
            st.frames.clear();
            st.bytes = 0;
        }
        q.push(Bytes::from_static(b"next"));
        let st = q.lock();
        let frames: Vec<&[u8]> = st.frames.iter().map(|b| b.as_ref()).collect();
        assert_eq!(
            frames,
            [&[0, 8, b'M', b'G', 0xFF, 0xFF, 0, 0, 0, 2][..], b"next"]
        );
    }
}
