//! Monitor ports and the SMDR/UCD export port (PROTOCOL §5–6, SPEC §6).
//!
//! - Switch-message monitors get every frame on every switch link, both directions, as
//!   `M '>'` (to the switch) and `M '<'` (from it), with time and switch number.
//! - SMDR/UCD monitors get every `S`/`U` record as `M 'S'`/`M 'U'`.
//! - The export port is served from the spool by [`crate::ports::export`]; it shares the password
//!   checks here.
//!
//! A monitor that reads too slowly loses frames, never slows the relay: its queue drops and
//! counts, and the count goes out as `M 'G'` before the next frame it can take. With no
//! monitor attached, the switch reader pays one snapshot load per read run.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::hub::Hub;
use netseam::BoxStream;
use wire::{FrameReader, LinkMsg};

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

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Writes queued frames until the socket fails or the queue is closed.
    async fn run_writer<W: tokio::io::AsyncWrite + Unpin>(&self, writer: &mut W) {
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

    fn attach(&self, port: MonitorPort, q: Arc<MonitorQueue>) {
        self.list(port).rcu(|l| {
            let mut l = (**l).clone();
            l.push(q.clone());
            l
        });
    }

    fn detach(&self, port: MonitorPort, q: &Arc<MonitorQueue>) {
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

/// Serves one monitor connection to its end (the export port is [`crate::ports::export::serve`]).
pub async fn serve(hub: Arc<Hub>, mut stream: BoxStream, peer: SocketAddr, port: MonitorPort) {
    let config = hub.config.load_full();
    let password = config.monitor.password.clone().unwrap_or_default();
    let mut reader = FrameReader::with_capacity(512);
    let queue = Arc::new(MonitorQueue::new(hub.tuning.monitor_queue_bytes));
    match check_password(&hub, &mut stream, &mut reader, &password).await {
        // The acceptance goes out first, and every frame the monitor is owed after it: a
        // monitor that read `p` has missed nothing since.
        Ok(true) => queue.push(password_result(true)),
        Ok(false) => {
            tracing::info!(%peer, ?port, "monitor password refused");
            return;
        }
        Err(()) => return,
    }
    hub.monitors.attach(port, queue.clone());
    tracing::info!(%peer, ?port, "monitor attached");
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = queue.run_writer(&mut wr);
    // Monitors only read; anything they send is discarded, and their closing ends the session.
    let reading = async {
        let mut sink = [0u8; 512];
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reading => {}
    }
    queue.close();
    hub.monitors.detach(port, &queue);
    hub.monitors.gaps.fetch_add(
        queue.dropped_total.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    tracing::info!(%peer, ?port, "monitor detached");
}

/// Reads `P`. A wrong password costs the peer a second, then `p` refused and the close; an
/// accepted one is answered by the caller, in order with the frames that follow.
pub(crate) async fn check_password(
    hub: &Hub,
    stream: &mut BoxStream,
    reader: &mut FrameReader,
    password: &str,
) -> Result<bool, ()> {
    let deadline = tokio::time::Instant::now() + hub.tuning.identify_timeout;
    let frame = loop {
        match reader.next_frame() {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(_) => return Err(()),
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(reader.buffer_mut())).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Err(()),
        }
    };
    let ok = matches!(LinkMsg::decode(&frame), Ok(LinkMsg::Password { password: p }) if p.as_bytes() == password.as_bytes());
    if ok {
        return Ok(true);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = tokio::time::timeout(
        hub.tuning.close_grace,
        stream.write_all(&password_result(false)),
    )
    .await;
    let _ = stream.shutdown().await;
    Ok(false)
}

/// Longest password line a collector may send, CR LF included.
const PASSWORD_LINE_MAX: usize = 258;

/// Reads a collector's password line (ending in CR LF). A wrong or missing one costs the peer
/// a second, then the close.
pub(crate) async fn password_line(hub: &Hub, stream: &mut BoxStream, password: &str) -> bool {
    let deadline = tokio::time::Instant::now() + hub.tuning.identify_timeout;
    let mut line = Vec::with_capacity(64);
    let ok = loop {
        if let Some(end) = line.windows(2).position(|w| w == b"\r\n") {
            // Bytes after the line are not expected; a collector only reads.
            break &line[..end] == password.as_bytes();
        }
        if line.len() >= PASSWORD_LINE_MAX {
            break false;
        }
        let mut byte = [0u8; 64];
        let room = (PASSWORD_LINE_MAX - line.len()).min(byte.len());
        match tokio::time::timeout_at(deadline, stream.read(&mut byte[..room])).await {
            Ok(Ok(n)) if n > 0 => line.extend_from_slice(&byte[..n]),
            _ => break false,
        }
    };
    if !ok {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = stream.shutdown().await;
    }
    ok
}

pub(crate) fn password_result(accepted: bool) -> Bytes {
    LinkMsg::PasswordResult {
        result: u8::from(!accepted),
    }
    .encode()
    .expect("fits")
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
