//! The simulated switch: accepts the relay's CTI link (one at a time; a new one replaces the
//! old), opens it as a real switch would, and takes commands to emit frames or misbehave.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use netseam::{BoxStream, Network, TcpNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use wire::frame::{put_header, NO_INVOKE};
use wire::{Frame, FrameReader, Kind, LinkMsg, Station, Str8};

use crate::calls::{CallModel, Outcome};
use crate::settings::{Answering, Settings};

enum Command {
    Send(Bytes),
    Drop,
    HalfOpen,
    Stall(Duration),
}

/// The link's sending side, shared by its task and [`SimSwitch::send_now`]; held by the task
/// while the switch stalls or is half open, so that nothing is sent meanwhile.
type Writer = Arc<tokio::sync::Mutex<WriteHalf<BoxStream>>>;

/// The open link's controls: its command channel, its writer, and whether it is open (set
/// up), since a switch sends nothing on a link before the relay has opened it.
struct LinkCtl {
    tx: mpsc::UnboundedSender<Command>,
    writer: Writer,
    link: Link,
}

/// One event as the switch sent it (with `tag_events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentEvent {
    /// Counts every event the switch has sent, over all its links.
    pub seq: u32,
    /// Which link carried it (the n-th accepted, from 1).
    pub link: u64,
    pub code: u8,
    /// The device the event concerns (empty: switch-wide).
    pub device: String,
}

/// What the switch sent (with `tag_events`).
#[derive(Clone, Debug, Default)]
pub struct SentLog {
    /// The sequence number the next event gets.
    pub next_seq: u32,
    pub events: Vec<SentEvent>,
    /// (link, seq): from this event on, that link may have lost what it carried (the switch
    /// sent bytes that are not a frame, or a write failed), so the relay may never see them.
    pub spoiled: Vec<(u64, u32)>,
}

impl SentLog {
    /// Whether the relay may legitimately never have read this event.
    pub fn spoiled(&self, e: &SentEvent) -> bool {
        self.spoiled
            .iter()
            .any(|&(link, seq)| link == e.link && e.seq >= seq)
    }
}

/// How many received frames a switch keeps for [`SimSwitch::received`].
pub const RECEIVED_KEPT: usize = 65_536;

struct Inner {
    /// Shared, so answering a frame takes a reference, not a copy of the station table.
    settings: Mutex<Arc<Settings>>,
    model: Mutex<CallModel>,
    /// Switch time: `epoch_ms` at `origin`.
    epoch_ms: u64,
    origin: tokio::time::Instant,
    /// The current link's controls.
    link: Mutex<Option<LinkCtl>>,
    /// Links accepted so far.
    accepted: Mutex<u64>,
    sent: Mutex<SentLog>,
    /// The newest [`RECEIVED_KEPT`] frames the relay sent on open links, after set-up (a load
    /// test of hours keeps a bounded log; `received_count` counts them all).
    received: Mutex<VecDeque<Frame>>,
    refuse_opens: Mutex<u32>,
    /// Links opened so far (station table downloaded).
    opened: watch::Sender<u64>,
    /// Links that have ended so far.
    closed: watch::Sender<u64>,
    received_count: watch::Sender<usize>,
}

/// A running simulated switch.
#[derive(Clone)]
pub struct SimSwitch {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl SimSwitch {
    /// Listens on `addr` over TCP (port 0 for any) and serves CTI links until the runtime ends.
    pub async fn start(addr: SocketAddr, settings: Settings) -> std::io::Result<SimSwitch> {
        SimSwitch::start_on(&TcpNetwork, addr, settings).await
    }

    /// Listens on `addr` of `net`.
    pub async fn start_on(
        net: &dyn Network,
        addr: SocketAddr,
        settings: Settings,
    ) -> std::io::Result<SimSwitch> {
        let mut listener = net.bind(addr).await?;
        let addr = listener.local_addr()?;
        let epoch_ms = settings.epoch_ms.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        });
        let inner = Arc::new(Inner {
            model: Mutex::new(
                CallModel::new(&settings.stations, settings.caps).with_smdr(settings.smdr.clone()),
            ),
            epoch_ms,
            origin: tokio::time::Instant::now(),
            settings: Mutex::new(Arc::new(settings)),
            link: Mutex::new(None),
            accepted: Mutex::new(0),
            sent: Mutex::new(SentLog::default()),
            received: Mutex::new(VecDeque::new()),
            refuse_opens: Mutex::new(0),
            opened: watch::channel(0).0,
            closed: watch::channel(0).0,
            received_count: watch::channel(0).0,
        });
        let accept_inner = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (tx, rx) = mpsc::unbounded_channel();
                let id = {
                    let mut n = lock(&accept_inner.accepted);
                    *n += 1;
                    *n
                };
                let link = Link {
                    id,
                    peer,
                    open: Arc::new(AtomicBool::new(false)),
                };
                let (rd, wr) = tokio::io::split(stream);
                let writer = Arc::new(tokio::sync::Mutex::new(wr));
                let ctl = LinkCtl {
                    tx,
                    writer: writer.clone(),
                    link: link.clone(),
                };
                if let Some(old) = lock(&accept_inner.link).replace(ctl) {
                    let _ = old.tx.send(Command::Drop);
                }
                tokio::spawn(serve_link(accept_inner.clone(), rd, writer, link, rx));
            }
        });
        Ok(SimSwitch { inner, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn settings(&self) -> Settings {
        Settings::clone(&lock(&self.inner.settings))
    }

    /// Changes the settings for what comes next (open checks, answering, heartbeats).
    pub fn configure(&self, f: impl FnOnce(&mut Settings)) {
        f(Arc::make_mut(&mut lock(&self.inner.settings)));
    }

    /// Refuses the next `n` opens with `o` result 1.
    pub fn refuse_next_opens(&self, n: u32) {
        *lock(&self.inner.refuse_opens) = n;
    }

    /// Sends raw bytes on the open link. Returns false when no link is open (connected and
    /// opened by the relay): a switch sends nothing before the link is open.
    pub fn send_raw(&self, bytes: Bytes) -> bool {
        let link = lock(&self.inner.link);
        link.as_ref().is_some_and(|l| {
            l.link.open.load(Ordering::Acquire) && l.tx.send(Command::Send(bytes)).is_ok()
        })
    }

    /// Writes raw bytes on the open link from the caller's task, as a switch's own sender
    /// would, with no hand-over to the link's task (a load generator that timestamps what it
    /// sends measures the relay, not a wake-up here). Ordered among `send_now` calls, not
    /// against [`SimSwitch::send_raw`]'s queue. Waits while the switch stalls or is half
    /// open. Returns false when no link is open or the write fails.
    pub async fn send_now(&self, bytes: Bytes) -> bool {
        let Some((writer, link)) = lock(&self.inner.link)
            .as_ref()
            .map(|l| (l.writer.clone(), l.link.clone()))
        else {
            return false;
        };
        if !link.open.load(Ordering::Acquire) {
            return false;
        }
        let mut writer = writer.lock().await;
        write_out(&self.inner, &link, &mut writer, bytes)
            .await
            .is_ok()
    }

    /// Restores healthy behaviour after faults: answers through the call model, promptly,
    /// answers opens and heartbeats, and refuses no opens.
    pub fn heal(&self) {
        self.configure(|s| {
            s.answering = Answering::CallModel;
            s.answer_delay = Duration::ZERO;
            s.answer_opens = true;
            s.heartbeat_replies = true;
        });
        self.refuse_next_opens(0);
    }

    /// What the switch has sent (events are logged with `tag_events` only).
    pub fn sent(&self) -> SentLog {
        lock(&self.inner.sent).clone()
    }

    /// Forgets the events logged so far (keeping the sequence count and the spoiled marks), so
    /// that a long run's log stays small.
    pub fn forget_sent_events(&self) {
        let mut log = lock(&self.inner.sent);
        log.events.clear();
        log.events.shrink_to(1024);
    }

    /// Reads the log of what the switch has sent without copying it.
    pub fn with_sent<T>(&self, f: impl FnOnce(&SentLog) -> T) -> T {
        f(&lock(&self.inner.sent))
    }

    /// Sends an event about `device` (empty: switch-wide) with `extra` after the device.
    pub fn emit_event(&self, code: u8, device: &str, extra: &[u8]) -> bool {
        self.send_raw(event_frame(code, device, extra))
    }

    /// Sends an answer.
    pub fn send_answer(&self, code: u8, invoke: u16, result: u8, extra: &[u8]) -> bool {
        let mut body = vec![result];
        body.extend_from_slice(extra);
        self.send_raw(Frame::build(Kind::Answer, code, invoke, &body).into_bytes())
    }

    /// Closes the link as a switch that went away would.
    pub fn drop_link(&self) -> bool {
        self.command(Command::Drop)
    }

    /// Stops reading and writing but keeps the TCP connection open.
    pub fn half_open(&self) -> bool {
        self.command(Command::HalfOpen)
    }

    /// Stops reading and writing for `d`, then carries on.
    pub fn stall(&self, d: Duration) -> bool {
        self.command(Command::Stall(d))
    }

    /// Sends `n` bytes that are not a frame.
    pub fn send_garbage(&self, n: usize) -> bool {
        let junk: Vec<u8> = (0..n).map(|i| 0xF0 | (i as u8 & 0x0F)).collect();
        self.send_raw(Bytes::from(junk))
    }

    /// Sends the header of a frame with LEN 4095, one over the limit.
    pub fn send_oversize(&self) -> bool {
        self.send_raw(Bytes::from_static(&[0x0F, 0xFF, b'E', b'n', 0xFF, 0xFF]))
    }

    /// Switch time, Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    /// A phone user acts (`code` as in a request: `K` dial, `N` answer, `D` hang up, …);
    /// the resulting events go to the relay. Returns the call model's result.
    pub fn phone(&self, code: u8, device: &str, second: Option<&str>) -> u8 {
        let mut body = vec![device.len() as u8];
        body.extend_from_slice(device.as_bytes());
        if let Some(s) = second {
            body.push(s.len() as u8);
            body.extend_from_slice(s.as_bytes());
        }
        let outcome = lock(&self.inner.model).request(code, &body, self.inner.now_ms());
        self.send_outcome_frames(&outcome);
        outcome.result
    }

    /// An outside call arrives on `trunk` for `device`.
    pub fn incoming_call(&self, trunk: &str, device: &str) -> u8 {
        let outcome = lock(&self.inner.model).incoming(trunk, device, self.inner.now_ms());
        self.send_outcome_frames(&outcome);
        outcome.result
    }

    /// Sends the UCD group statistics records (when caps bit2 allows them on the CTI link).
    pub fn report_ucd(&self) -> usize {
        if lock(&self.inner.settings).caps & 0b100 == 0 {
            return 0;
        }
        let records = lock(&self.inner.model).ucd_records();
        let n = records.len();
        for r in records {
            self.send_raw(r);
        }
        n
    }

    /// Reads the call model.
    pub fn with_model<T>(&self, f: impl FnOnce(&CallModel) -> T) -> T {
        f(&lock(&self.inner.model))
    }

    fn send_outcome_frames(&self, outcome: &Outcome) {
        for f in &outcome.frames {
            self.send_raw(f.clone());
        }
    }

    fn command(&self, c: Command) -> bool {
        lock(&self.inner.link)
            .as_ref()
            .is_some_and(|l| l.tx.send(c).is_ok())
    }

    /// Links opened so far.
    pub fn opened(&self) -> u64 {
        *self.inner.opened.borrow()
    }

    /// Waits until at least `n` links have been opened.
    pub async fn wait_opened(&self, n: u64) {
        let mut rx = self.inner.opened.subscribe();
        let _ = rx.wait_for(|v| *v >= n).await;
    }

    /// Waits until at least `n` links have ended.
    pub async fn wait_closed(&self, n: u64) {
        let mut rx = self.inner.closed.subscribe();
        let _ = rx.wait_for(|v| *v >= n).await;
    }

    /// Frames the relay sent after set-up (requests, heartbeats), in order: the newest
    /// [`RECEIVED_KEPT`].
    pub fn received(&self) -> Vec<Frame> {
        lock(&self.inner.received).iter().cloned().collect()
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Frame> {
        self.received()
            .into_iter()
            .filter(|f| f.kind() == Kind::Request)
            .collect()
    }

    /// Waits until at least `n` frames have been received after set-up.
    pub async fn wait_received(&self, n: usize) {
        let mut rx = self.inner.received_count.subscribe();
        let _ = rx.wait_for(|v| *v >= n).await;
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.origin.elapsed().as_millis() as u64
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An event frame as a switch sends it.
pub fn event_frame(code: u8, device: &str, extra: &[u8]) -> Bytes {
    let device = Str8::lossy(device);
    let mut out = BytesMut::new();
    put_header(
        &mut out,
        Kind::Event,
        code,
        NO_INVOKE,
        1 + device.len() + extra.len(),
    );
    out.put_u8(device.len() as u8);
    out.put_slice(device.as_bytes());
    out.put_slice(extra);
    out.freeze()
}

/// One accepted link.
#[derive(Clone)]
struct Link {
    id: u64,
    peer: SocketAddr,
    /// Set once the relay has opened the link (its MAC query, the last set-up step).
    open: Arc<AtomicBool>,
}

/// Writes `bytes` on the link, tagging and logging events first when the switch does that.
async fn write_out(
    inner: &Inner,
    link: &Link,
    stream: &mut WriteHalf<BoxStream>,
    bytes: Bytes,
) -> std::io::Result<()> {
    if !lock(&inner.settings).tag_events {
        return stream.write_all(&bytes).await;
    }
    let (tagged, first) = tag_events(inner, link.id, &bytes);
    let written = stream.write_all(&tagged).await;
    if written.is_err() {
        lock(&inner.sent).spoiled.push((link.id, first));
    }
    written
}

/// Appends each event's sequence number to its body and logs it. Returns the bytes to send
/// and the first sequence number they use.
fn tag_events(inner: &Inner, link: u64, bytes: &[u8]) -> (Bytes, u32) {
    let mut log = lock(&inner.sent);
    let first = log.next_seq;
    let mut out = BytesMut::with_capacity(bytes.len() + 64);
    let mut at = 0;
    while at < bytes.len() {
        let len = match wire::frame::check(&bytes[at..]) {
            Ok(Some(len)) => len,
            // Not a whole frame: the relay will drop the link on these bytes.
            _ => {
                let seq = log.next_seq;
                log.spoiled.push((link, seq));
                out.extend_from_slice(&bytes[at..]);
                break;
            }
        };
        let raw = &bytes[at..at + len];
        at += len;
        let frame = match Frame::new(Bytes::copy_from_slice(raw)) {
            Ok(f) if f.kind() == Kind::Event && f.body().len() + 4 <= MAX_BODY => f,
            _ => {
                out.extend_from_slice(raw);
                continue;
            }
        };
        let seq = log.next_seq;
        log.next_seq += 1;
        let mut body = frame.body().to_vec();
        body.extend_from_slice(&seq.to_be_bytes());
        let device = body
            .first()
            .and_then(|&n| body.get(1..1 + n as usize))
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default();
        log.events.push(SentEvent {
            seq,
            link,
            code: frame.code(),
            device,
        });
        out.extend_from_slice(Frame::build(Kind::Event, frame.code(), NO_INVOKE, &body).as_bytes());
    }
    (out.freeze(), first)
}

/// The sequence number a tagging switch appended to an event body (the body after any
/// SWITCH byte), if it is long enough to carry one.
pub fn event_seq(body: &[u8]) -> Option<u32> {
    let tail = body.get(body.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes(tail.try_into().ok()?))
}

/// The largest body a frame can carry (LEN 4094 less KIND, CODE and INVOKE).
const MAX_BODY: usize = 4094 - 4;

async fn serve_link(
    inner: Arc<Inner>,
    mut stream: ReadHalf<BoxStream>,
    writer: Writer,
    link: Link,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut reader = FrameReader::new();
    let mut open = false;
    'link: loop {
        loop {
            let frame = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                // A switch drops a link that sends garbage.
                Err(_) => break 'link,
            };
            let reply = respond(&inner, &frame, link.peer, &mut open);
            // Open as soon as the link is (before the reply that completes it is written), so
            // that whoever sees the relay take the link up can send on it; what is sent is
            // queued behind that reply.
            if open {
                link.open.store(true, Ordering::Release);
            }
            match reply {
                Reply::None => {}
                Reply::Later(delay, out) => {
                    let tx = lock(&inner.link).as_ref().map(|l| l.tx.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Some(tx) = tx {
                            let _ = tx.send(Command::Send(out));
                        }
                    });
                }
                Reply::Frames(out) => {
                    if write_out(&inner, &link, &mut *writer.lock().await, out)
                        .await
                        .is_err()
                    {
                        break 'link;
                    }
                }
                Reply::FramesThenClose(out) => {
                    let _ = write_out(&inner, &link, &mut *writer.lock().await, out).await;
                    break 'link;
                }
            }
        }
        tokio::select! {
            biased;
            read = stream.read_buf(reader.buffer_mut()) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            command = commands.recv() => match command {
                Some(Command::Send(bytes)) => {
                    if write_out(&inner, &link, &mut *writer.lock().await, bytes).await.is_err() {
                        break;
                    }
                }
                Some(Command::Stall(d)) => {
                    let _held = writer.lock().await;
                    tokio::time::sleep(d).await;
                }
                Some(Command::HalfOpen) => {
                    // Keep the socket open, read nothing, write nothing, until told to drop.
                    let _held = writer.lock().await;
                    loop {
                        match commands.recv().await {
                            Some(Command::Drop) | None => break 'link,
                            Some(_) => {}
                        }
                    }
                }
                Some(Command::Drop) | None => break,
            },
        }
    }
    link.open.store(false, Ordering::Release);
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        writer.lock().await.shutdown().await
    })
    .await;
    // Closing with unread bytes would reset the connection, and a reset throws away what is
    // still queued to send: read what the relay sent until it closes too (briefly), so that a
    // dropped link loses no event the switch wrote.
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    inner.closed.send_modify(|n| *n += 1);
}

enum Reply {
    None,
    Frames(Bytes),
    FramesThenClose(Bytes),
    /// Frames to send after a delay (a slow switch).
    Later(Duration, Bytes),
}

fn respond(inner: &Inner, frame: &Frame, peer: SocketAddr, open: &mut bool) -> Reply {
    let settings = lock(&inner.settings).clone();
    if *open {
        let mut received = lock(&inner.received);
        if received.len() == RECEIVED_KEPT {
            received.pop_front();
        }
        received.push_back(frame.clone());
        drop(received);
        inner.received_count.send_modify(|n| *n += 1);
    }
    match frame.kind() {
        Kind::Link => {
            let Ok(msg) = LinkMsg::decode(frame) else {
                return Reply::None;
            };
            match msg {
                LinkMsg::Open { .. } if !settings.answer_opens => Reply::None,
                LinkMsg::Open { .. } => {
                    let result = {
                        let mut refuse = lock(&inner.refuse_opens);
                        if *refuse > 0 {
                            *refuse -= 1;
                            1
                        } else if settings.cti_server.is_some_and(|ip| ip != peer.ip()) {
                            2
                        } else {
                            0
                        }
                    };
                    let reply = encode(&LinkMsg::OpenResult {
                        result,
                        model: Str8::lossy(&settings.model),
                        software: Str8::lossy(&settings.software),
                        mac: settings.mac,
                        caps: settings.caps,
                    });
                    if result == 0 {
                        Reply::Frames(reply)
                    } else {
                        Reply::FramesThenClose(reply)
                    }
                }
                LinkMsg::ConfigDownload { password } => {
                    if password.as_bytes() != settings.easyset_password.as_bytes() {
                        return Reply::Frames(encode(&LinkMsg::ConfigPage {
                            result: 1,
                            last: true,
                            stations: Vec::new(),
                        }));
                    }
                    Reply::Frames(station_pages(&settings.stations, settings.page_size))
                }
                LinkMsg::MacQuery => {
                    let was_open = std::mem::replace(open, true);
                    if !was_open {
                        inner.opened.send_modify(|n| *n += 1);
                    }
                    Reply::Frames(encode(&LinkMsg::MacReply { mac: settings.mac }))
                }
                LinkMsg::Heartbeat if settings.heartbeat_replies => {
                    Reply::Frames(encode(&LinkMsg::HeartbeatReply))
                }
                _ => Reply::None,
            }
        }
        Kind::Request => {
            let out = match settings.answering {
                Answering::Silent => return Reply::None,
                Answering::Echo => {
                    let mut body = vec![0u8];
                    body.extend_from_slice(frame.body());
                    Frame::build(Kind::Answer, frame.code(), frame.invoke(), &body).into_bytes()
                }
                Answering::CallModel => {
                    let outcome =
                        lock(&inner.model).request(frame.code(), frame.body(), inner.now_ms());
                    let mut body = vec![outcome.result];
                    body.extend_from_slice(&outcome.extra);
                    let mut out = BytesMut::new();
                    out.extend_from_slice(
                        Frame::build(Kind::Answer, frame.code(), frame.invoke(), &body).as_bytes(),
                    );
                    for f in &outcome.frames {
                        out.extend_from_slice(f);
                    }
                    out.freeze()
                }
            };
            if settings.answer_delay.is_zero() {
                Reply::Frames(out)
            } else {
                Reply::Later(settings.answer_delay, out)
            }
        }
        _ => Reply::None,
    }
}

fn encode(msg: &LinkMsg) -> Bytes {
    msg.encode().expect("simulator messages fit in a frame")
}

fn station_pages(stations: &[Station], page_size: usize) -> Bytes {
    let mut out = BytesMut::new();
    let pages: Vec<&[Station]> = if stations.is_empty() {
        vec![&[]]
    } else {
        stations.chunks(page_size.clamp(1, 255)).collect()
    };
    let count = pages.len();
    for (i, page) in pages.into_iter().enumerate() {
        out.extend_from_slice(&encode(&LinkMsg::ConfigPage {
            result: 0,
            last: i + 1 == count,
            stations: page.to_vec(),
        }));
    }
    out.freeze()
}
