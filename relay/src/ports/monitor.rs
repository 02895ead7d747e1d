//! Monitor ports and the SMDR/UCD export port (docs/protocol.md §5–6, docs/behaviour.md §6).
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

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use crate::hub::monitors::MonitorPort;
use crate::hub::monitors::MonitorQueue;
use crate::hub::Hub;
use netseam::BoxStream;
use wire::{FrameReader, LinkMsg};

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
    let writer = queue.run_writer(&mut wr, hub.tuning.close_grace);
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
    // Cannot fail: one result byte.
    LinkMsg::PasswordResult {
        result: u8::from(!accepted),
    }
    .encode()
    .expect("fits")
}
