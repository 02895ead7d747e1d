//! The SMDR/UCD export port (docs/protocol.md §6), served from the spool: a collector is sent every
//! pending record in order, then each new one once it is durable.
//!
//! - `native`: each record's text exactly as the switch sent it, then one NUL; a protected
//!   port first reads the collector's password line.
//! - `frames`: the `S`/`U` frames byte for byte; a protected port first takes `P` and answers `p`.
//!
//! A record is delivered (and never sent again) once the collector's TCP has acknowledged
//! every byte of it. What was written but not acknowledged when the connection ends (closed,
//! reset, timed out, the relay stopped or killed) goes again to the next collector: delivery is
//! at least once, and a collector tells a repeat by the call id and time in the record.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use wire::frame::HEADER_LEN;

use crate::config::ExportFormat;
use crate::hub::Hub;
use crate::ports::monitor::{check_password, password_line, password_result};
use crate::spool::Entry;
use netseam::{AckProbe, BoxStream};
use wire::FrameReader;

/// Records taken from the spool per write.
const BATCH: usize = 256;
/// How often acknowledgements are looked at while records are in flight.
const ACK_POLL: Duration = Duration::from_millis(100);
/// How long a record's acknowledgement must stand, the connection unbroken, before the record
/// counts as delivered: a collector killed with records unread in its socket resets the
/// connection, and what it was sent in this time goes again to the next collector.
pub const SETTLE: Duration = Duration::from_secs(5);

/// A record as the collector is sent it.
fn encode(format: ExportFormat, e: &Entry, out: &mut Vec<u8>) {
    match format {
        ExportFormat::Native => {
            out.extend_from_slice(e.frame.get(HEADER_LEN..).unwrap_or_default());
            out.push(0);
        }
        ExportFormat::Frames => out.extend_from_slice(&e.frame),
    }
}

/// Records written to a collector and not yet delivered.
#[derive(Default)]
struct InFlight {
    /// Bytes written on this connection.
    written: u64,
    /// (record number, the connection's byte count at its end, when its last byte was seen
    /// acknowledged), oldest first.
    records: VecDeque<(u64, u64, Option<Instant>)>,
}

impl InFlight {
    fn push(&mut self, seq: u64, end: u64) {
        self.records.push_back((seq, end, None));
    }

    /// Notes what the collector's TCP has acknowledged, `unacknowledged` bytes remaining.
    fn acknowledged(&mut self, unacknowledged: u64, now: Instant) {
        let acked = self.written.saturating_sub(unacknowledged);
        for r in self.records.iter_mut() {
            if r.1 > acked {
                break;
            }
            r.2.get_or_insert(now);
        }
    }

    /// Removes and returns the last record acknowledged at or before `settled`.
    fn settle(&mut self, settled: Instant) -> Option<u64> {
        let mut last = None;
        while self
            .records
            .front()
            .is_some_and(|r| r.2.is_some_and(|at| at <= settled))
        {
            last = self.records.pop_front().map(|r| r.0);
        }
        last
    }
}

/// How the collector's side of the connection ended.
enum End {
    /// It closed in order (FIN): it had read everything it was acknowledged.
    Closed,
    /// Reset, failed, or the relay stopped.
    Broken,
}

/// Serves one collector to its end.
pub async fn serve(hub: Arc<Hub>, mut stream: BoxStream, peer: SocketAddr) {
    let config = hub.config.load_full();
    let format = config.export.format;
    if config.export.password_protected {
        let password = config.monitor.password.clone().unwrap_or_default();
        let accepted = match format {
            ExportFormat::Native => password_line(&hub, &mut stream, &password).await,
            ExportFormat::Frames => {
                let mut reader = FrameReader::with_capacity(512);
                match check_password(&hub, &mut stream, &mut reader, &password).await {
                    Ok(true) => stream.write_all(&password_result(true)).await.is_ok(),
                    _ => false,
                }
            }
        };
        if !accepted {
            tracing::info!(%peer, "export password refused");
            return;
        }
    }
    let probe = AckProbe::of(&*stream);
    // Bytes still unacknowledged in the socket; `None` once the socket cannot say.
    let unacknowledged = |written: u64| match &probe {
        Some(p) => p.unacknowledged(written),
        None => Some(0),
    };
    hub.monitors.collectors.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, "collector connected");
    let (mut rd, mut wr) = tokio::io::split(stream);
    let spool = hub.spool.clone();
    let in_flight = Mutex::new(InFlight::default());
    let lock = || in_flight.lock().unwrap_or_else(|e| e.into_inner());
    let mut committed = spool.subscribe();
    let sending = async {
        let mut next = spool.first_pending();
        let mut out = Vec::new();
        let mut journal = None;
        loop {
            let batch = match spool.read(&mut journal, next, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(%peer, "cannot read the export spool: {e}");
                    return;
                }
            };
            if let Some(last) = batch.last() {
                next = last.seq + 1;
                // One write for the batch; each record's end noted for acknowledgement.
                out.clear();
                {
                    let mut f = lock();
                    for e in &batch {
                        encode(format, e, &mut out);
                        let end = f.written + out.len() as u64;
                        f.push(e.seq, end);
                    }
                    f.written += out.len() as u64;
                }
                if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
                    return;
                }
            }
            let now = Instant::now();
            let settled = {
                let mut f = lock();
                if let Some(n) = unacknowledged(f.written) {
                    f.acknowledged(n, now);
                }
                now.checked_sub(SETTLE).and_then(|at| f.settle(at))
            };
            if let Some(seq) = settled {
                spool.acknowledge(seq);
            }
            if batch.len() == BATCH {
                continue;
            }
            if lock().records.is_empty() {
                if committed.changed().await.is_err() {
                    return;
                }
            } else {
                let _ = tokio::time::timeout(ACK_POLL, committed.changed()).await;
            }
        }
    };
    // Collectors only read; anything they send is discarded, and their closing ends it.
    let reading = async {
        let mut sink = [0u8; 512];
        loop {
            match rd.read(&mut sink).await {
                Ok(0) => return End::Closed,
                Ok(_) => {}
                Err(_) => return End::Broken,
            }
        }
    };
    let end = tokio::select! {
        _ = sending => End::Broken,
        end = reading => end,
    };
    if let End::Closed = end {
        // An orderly close: whatever its TCP acknowledged, the collector has read.
        let mut f = lock();
        if let Some(n) = unacknowledged(f.written) {
            f.acknowledged(n, Instant::now());
        }
        if let Some(seq) = f.settle(Instant::now()) {
            spool.acknowledge(seq);
        }
    }
    hub.monitors.collectors.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(%peer, "collector disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_delivered_once_all_its_bytes_were_acknowledged_long_enough() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        for (seq, end) in [(7, 100), (8, 200), (9, 300)] {
            f.push(seq, end);
        }
        f.written = 300;
        f.acknowledged(150, t0);
        assert_eq!(f.settle(t0 - Duration::from_millis(1)), None);
        f.acknowledged(1, t0 + SETTLE);
        assert_eq!(f.settle(t0), Some(7));
        assert_eq!(f.settle(t0 + SETTLE), Some(8));
        assert_eq!(
            f.settle(t0 + SETTLE * 2),
            None,
            "record 9 is not acknowledged"
        );
        f.acknowledged(0, t0 + SETTLE * 2);
        assert_eq!(f.settle(t0 + SETTLE * 2), Some(9));
        assert!(f.records.is_empty());
    }
}
