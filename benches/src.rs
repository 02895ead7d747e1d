//! What the criterion benches share: a delivery counter the sender waits on, and a receiving
//! loop that walks the frames an application reads (answering heartbeats, as a real one does).
//!
//! Module map: [`Progress`] (how many deliveries have arrived; wait for a target),
//! [`receive`] (one application's reading loop), [`receive_websocket`] (the same for a
//! WebSocket/JSON tab), [`event_chunk`] and [`send_chunks`] (a
//! switch's events in chunks, sent with a window in flight), [`LatencyLog`] (latencies from
//! every client) and its [`Quantiles`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use wire::LinkMsg;

/// Deliveries counted by every receiver together; the sender waits for a total.
#[derive(Default)]
pub struct Progress {
    delivered: AtomicU64,
    target: AtomicU64,
    notify: Notify,
}

impl Progress {
    /// Adds `n` deliveries; wakes the waiter once its target is reached.
    pub fn add(&self, n: u64) {
        let now = self.delivered.fetch_add(n, Ordering::AcqRel) + n;
        if now >= self.target.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Waits until at least `target` deliveries have arrived in all.
    pub async fn wait_for(&self, target: u64) {
        self.target.store(target, Ordering::Release);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.delivered() >= target {
                return;
            }
            notified.await;
        }
    }
}

/// What a receiver does with each call-processing frame it reads (`E`, `A`): the whole frame,
/// and a buffer for what to send back (written once per read).
pub trait OnFrame: Send + 'static {
    /// Returns the deliveries the frame counts for (0 or 1).
    fn frame(&mut self, frame: &[u8], reply: &mut BytesMut) -> u64;
}

impl<F: FnMut(&[u8], &mut BytesMut) -> u64 + Send + 'static> OnFrame for F {
    fn frame(&mut self, frame: &[u8], reply: &mut BytesMut) -> u64 {
        self(frame, reply)
    }
}

/// Reads an application connection until the relay stops, handing each `E` and `A` frame to
/// `on_frame` and adding what it counts to `progress` (when given) once per read. Answers
/// heartbeats. A close for any reason but the relay stopping (`X` reason 2) fails the bench.
pub async fn receive<S>(stream: S, progress: Option<Arc<Progress>>, mut on_frame: impl OnFrame)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let heartbeat_reply = LinkMsg::HeartbeatReply.encode().unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut reply = BytesMut::new();
    let mut carry = 0;
    loop {
        let n = match rd.read(&mut buf[carry..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let end = carry + n;
        let mut at = 0;
        let mut counted = 0;
        while at + 2 <= end {
            let len = u16::from_be_bytes([buf[at], buf[at + 1]]) as usize + 2;
            if at + len > end {
                break;
            }
            let frame = &buf[at..at + len];
            match (frame[2], frame[3]) {
                (b'E' | b'A', _) => counted += on_frame.frame(frame, &mut reply),
                (b'L', b'H') => reply.extend_from_slice(&heartbeat_reply),
                // Reason 2: the relay is stopping at the end of a benchmark.
                (b'L', b'X') if frame[6] == 2 => return,
                (b'L', b'X') => panic!("the relay closed a bench session: {frame:?}"),
                _ => {}
            }
            at += len;
        }
        if !reply.is_empty() {
            if wr.write_all(&reply).await.is_err() {
                return;
            }
            reply.clear();
        }
        if let Some(p) = progress.as_ref().filter(|_| counted > 0) {
            p.add(counted);
        }
        buf.copy_within(at..end, 0);
        carry = end - at;
    }
}

/// Reads a WebSocket/JSON gateway connection (the handshake and `identify` done) until it
/// ends, adding the events it reads (an `event` message, or an `events` message's `count`)
/// to `progress` once per read, as [`receive`] does for the binary protocol: each frame's
/// header is parsed, each text message's UTF-8 checked (as a browser does) and its type
/// read, and each ping answered with a pong.
pub async fn receive_websocket<S>(stream: S, progress: Arc<Progress>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    const EVENT: &[u8] = br#"{"type":"event","#;
    const EVENTS: &[u8] = br#"{"type":"events","#;
    let (mut rd, mut wr) = tokio::io::split(stream);
    // Larger than two of the largest messages the relay sends (an `events` of 64 KiB).
    const ROOM: usize = 160 * 1024;
    let mut buf = vec![0u8; 2 * ROOM];
    let mut reply = BytesMut::new();
    // What has been read lies at `at..end`: a message cut by a read waits there for the rest,
    // and is moved to the front only when less than `ROOM` is left behind it.
    let (mut at, mut end) = (0, 0);
    loop {
        if buf.len() - end < ROOM {
            buf.copy_within(at..end, 0);
            (at, end) = (0, end - at);
        }
        let n = match rd.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        end += n;
        let mut counted = 0;
        // A server's frames are unmasked: FIN|opcode, then a 7-bit length, or 126 and 16
        // bits, or 127 and 64 bits.
        while let Some((opcode, payload)) = websocket_frame(&buf[at..end]) {
            let header = payload.start;
            let frame = &buf[at..at + payload.end];
            let body = &frame[header..];
            match opcode {
                1 => {
                    assert!(std::str::from_utf8(body).is_ok(), "a text message is UTF-8");
                    if body.starts_with(EVENT) {
                        counted += 1;
                    } else if body.starts_with(EVENTS) {
                        counted += events_count(body);
                    }
                }
                // A ping: a masked pong with the same payload (a zero mask leaves it as is).
                9 => {
                    reply.extend_from_slice(&[0x8A, 0x80 | body.len() as u8, 0, 0, 0, 0]);
                    reply.extend_from_slice(body);
                }
                8 => return,
                _ => {}
            }
            at += payload.end;
        }
        if !reply.is_empty() {
            if wr.write_all(&reply).await.is_err() {
                return;
            }
            reply.clear();
        }
        if counted > 0 {
            progress.add(counted);
        }
        assert!(end - at < ROOM, "a message larger than the read buffer");
    }
}

/// The `count` an `events` message ends with (`…],"count":37}`).
fn events_count(message: &[u8]) -> u64 {
    let at = message.iter().rposition(|&b| b == b':').expect("a count");
    let digits = &message[at + 1..message.len() - 1];
    std::str::from_utf8(digits)
        .unwrap()
        .parse()
        .expect("a count")
}

/// The opcode of the whole unmasked frame at the start of `bytes`, and where its payload
/// lies; `None` until the frame has arrived whole.
fn websocket_frame(bytes: &[u8]) -> Option<(u8, std::ops::Range<usize>)> {
    let (&first, rest) = bytes.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let (header, len) = match second & 0x7F {
        126 => (
            4,
            usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
        ),
        127 => (
            10,
            u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) as usize,
        ),
        n => (2, usize::from(n)),
    };
    (bytes.len() >= header + len).then_some((first & 0x0F, header..header + len))
}

/// Latencies in microseconds, from every client.
pub struct LatencyLog(Mutex<Histogram<u64>>);

impl Default for LatencyLog {
    fn default() -> Self {
        LatencyLog(Mutex::new(Histogram::new(3).expect("3 significant digits")))
    }
}

impl LatencyLog {
    pub fn record_all(&self, micros: &Histogram<u64>) {
        self.0.lock().unwrap().add(micros).expect("same bounds");
    }

    pub fn reset(&self) {
        self.0.lock().unwrap().reset();
    }

    pub fn quantiles(&self) -> Quantiles {
        let h = self.0.lock().unwrap();
        Quantiles {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            samples: h.len(),
        }
    }
}

/// Latency quantiles in microseconds, and how many samples they summarize.
#[derive(Clone, Copy, Debug)]
pub struct Quantiles {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub samples: u64,
}

/// `events` copies of one `E` frame with a `body`-byte body (device `2201` and filler).
pub fn event_chunk(events: u64, body: usize) -> Bytes {
    let one = switch_sim::switch::event_frame(b'n', "2201", &vec![b'x'; body - 5]);
    assert_eq!(one.len(), 6 + body);
    let mut out = BytesMut::with_capacity(one.len() * events as usize);
    for _ in 0..events {
        out.extend_from_slice(&one);
    }
    out.freeze()
}

/// Sends `iters` chunks through `send` (a switch writing them), at most `window` ahead of
/// the deliveries `progress` counts (`per_chunk` each), and returns the time until all were
/// delivered.
pub async fn send_chunks(
    send: impl Fn(Bytes) -> bool,
    chunk: &Bytes,
    progress: &Progress,
    per_chunk: u64,
    window: u64,
    iters: u64,
) -> std::time::Duration {
    let base = progress.delivered();
    let start = std::time::Instant::now();
    for i in 0..iters {
        if i >= window {
            progress.wait_for(base + (i - window + 1) * per_chunk).await;
        }
        assert!(send(chunk.clone()), "the switch's link is down");
    }
    progress.wait_for(base + iters * per_chunk).await;
    start.elapsed()
}
