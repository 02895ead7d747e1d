//! One simulated application connection, over real TCP or any other network of the seam.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use netseam::{BoxStream, Network, TcpNetwork};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use wire::{CallMsg, DeviceRef, Frame, FrameReader, Kind, LinkMsg, ResumeAsk, ResumeGrant, Str8};

/// The relay's answer to identify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identified {
    pub result: u8,
    pub switches: Vec<(u8, bool)>,
    /// For a resumable identify: the token and where numbering stands.
    pub resume: Option<ResumeGrant>,
}

/// What a resumable application remembers between its connections: its token, and the last
/// event number it saw on each switch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeMemory {
    pub token: Option<wire::Token>,
    pub last: std::collections::BTreeMap<u8, u64>,
}

impl ResumeMemory {
    /// The resume part of the next identify: a new session, or this one again.
    pub fn ask(&self) -> ResumeAsk {
        ResumeAsk {
            token: self.token.unwrap_or_default(),
            last: self.last.iter().map(|(no, seq)| (*no, *seq)).collect(),
        }
    }

    /// The relay's answer: a new session starts where numbering stands; a resumed one goes on
    /// from what it saw.
    pub fn admitted(&mut self, grant: &ResumeGrant) {
        self.token = Some(grant.token);
        for (no, seq) in &grant.last {
            if !grant.resumed || !self.last.contains_key(no) {
                self.last.insert(*no, *seq);
            }
        }
    }

    /// An event numbered `seq` of `switch` arrived.
    pub fn saw(&mut self, switch: u8, seq: u64) {
        self.last.insert(switch, seq);
    }
}

/// Who an application is: where it connects from and to, and what it identifies as.
#[derive(Clone, Debug)]
pub struct AppIdentity {
    /// The port the product belongs on (client or bypass port).
    pub relay: SocketAddr,
    pub source: Option<IpAddr>,
    /// 2 (single switch) or 3 (multi-switch).
    pub protocol: u8,
    pub product: u8,
    pub name: String,
    /// Devices watched from the start: (switch, device), switch 0 = the default switch.
    pub devices: Vec<(u8, String)>,
}

pub struct SimApp {
    stream: BoxStream,
    reader: FrameReader,
    /// 2 or 3, once identified.
    pub protocol: u8,
}

impl SimApp {
    /// Connects to `relay` over TCP, from `source` when given (e.g. 127.0.0.51 over loopback).
    pub async fn connect(relay: SocketAddr, source: Option<IpAddr>) -> io::Result<SimApp> {
        SimApp::connect_on(&TcpNetwork, relay, source).await
    }

    /// Connects to `relay` over `net`.
    pub async fn connect_on(
        net: &dyn Network,
        relay: SocketAddr,
        source: Option<IpAddr>,
    ) -> io::Result<SimApp> {
        let stream = net
            .connect_from(source, &relay.ip().to_string(), relay.port())
            .await?;
        Ok(SimApp {
            stream,
            reader: FrameReader::new(),
            protocol: 2,
        })
    }

    /// Connects over `net` and identifies as `who`; a refusal is an error naming the result.
    pub async fn admitted_on(net: &dyn Network, who: &AppIdentity) -> anyhow::Result<SimApp> {
        let mut app = SimApp::connect_on(net, who.relay, who.source).await?;
        let devices: Vec<(u8, &str)> = who.devices.iter().map(|(s, d)| (*s, d.as_str())).collect();
        let id = app
            .identify(who.protocol, who.product, &who.name, &devices)
            .await?;
        anyhow::ensure!(
            id.result == 0,
            "identify refused with result {} ({})",
            id.result,
            wire::IdentifyResult::from_byte(id.result).map_or("unknown", |r| r.describe())
        );
        Ok(app)
    }

    /// Connects and identifies as `product` with `protocol` and `devices` (switch, device).
    pub async fn identify_as(
        relay: SocketAddr,
        source: Option<IpAddr>,
        protocol: u8,
        product: u8,
        devices: &[(u8, &str)],
    ) -> io::Result<(SimApp, Identified)> {
        let mut app = SimApp::connect(relay, source).await?;
        let identified = app.identify(protocol, product, "sim", devices).await?;
        Ok((app, identified))
    }

    /// Sends identify and reads `i`.
    pub async fn identify(
        &mut self,
        protocol: u8,
        product: u8,
        app_name: &str,
        devices: &[(u8, &str)],
    ) -> io::Result<Identified> {
        self.identify_with(protocol, product, app_name, devices, None)
            .await
    }

    /// Sends identify, asking for a resumable session (`resume`: a token to come back with
    /// and the last sequence number seen per switch, or all zeros for a new one), and reads `i`.
    pub async fn identify_with(
        &mut self,
        protocol: u8,
        product: u8,
        app_name: &str,
        devices: &[(u8, &str)],
        resume: Option<ResumeAsk>,
    ) -> io::Result<Identified> {
        self.protocol = protocol;
        let msg = LinkMsg::Identify {
            protocol,
            product,
            app_name: Str8::lossy(app_name),
            devices: devices
                .iter()
                .map(|(switch, d)| DeviceRef {
                    switch: *switch,
                    device: Str8::lossy(d),
                })
                .collect(),
            resume,
        };
        self.send_link(&msg).await?;
        match self.next_link().await? {
            Some(LinkMsg::IdentifyResult {
                result,
                switches,
                resume,
            }) => Ok(Identified {
                result,
                switches,
                resume,
            }),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected identify result, got {other:?}"),
            )),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub async fn send_link(&mut self, msg: &LinkMsg) -> io::Result<()> {
        let bytes = msg
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.send_raw(&bytes).await
    }

    /// Sends a request; `switch` is the SWITCH byte (protocol 3 only).
    pub async fn request(
        &mut self,
        switch: Option<u8>,
        code: u8,
        invoke: u16,
        body: &[u8],
    ) -> io::Result<()> {
        let frame = request_frame(self.protocol, switch, code, invoke, body)?;
        self.send_raw(&frame).await
    }

    /// Adds or removes a watched device and returns the relay's result (0 ok, 1 refused).
    pub async fn device(&mut self, add: bool, switch: u8, device: &str) -> io::Result<u8> {
        self.send_link(&LinkMsg::Device {
            add,
            switch,
            device: Str8::lossy(device),
        })
        .await?;
        loop {
            match self.next_link().await? {
                Some(LinkMsg::DeviceResult { result }) => return Ok(result),
                Some(LinkMsg::Heartbeat) => self.send_link(&LinkMsg::HeartbeatReply).await?,
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("expected a device result, got {other:?}"),
                    ))
                }
            }
        }
    }

    /// The next frame; `None` once the relay has closed the connection.
    pub async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        read_frame(&mut self.stream, &mut self.reader).await
    }

    /// Splits into a reading half and a writing half, for applications that do both at once.
    /// The reading half answers the relay's heartbeats through the writing half, as a real
    /// application does, so a session that only listens is never closed as silent.
    pub fn into_split(self) -> (Reader, Writer) {
        let (rd, wr) = tokio::io::split(self.stream);
        let writer = Writer {
            wr: Arc::new(tokio::sync::Mutex::new(wr)),
            protocol: self.protocol,
        };
        (
            Reader {
                rd,
                reader: self.reader,
                heartbeats: writer.clone(),
            },
            writer,
        )
    }

    /// The next frame within `limit`; `Err(TimedOut)` when none came.
    pub async fn next_frame_within(&mut self, limit: Duration) -> io::Result<Option<Frame>> {
        tokio::time::timeout(limit, self.next_frame())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no frame in time"))?
    }

    /// The next frame, skipping heartbeats (answering them as an application would).
    pub async fn next_non_heartbeat(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let Some(f) = self.next_frame().await? else {
                return Ok(None);
            };
            if f.kind() == Kind::Link && f.code() == b'H' {
                self.send_link(&LinkMsg::HeartbeatReply).await?;
                continue;
            }
            return Ok(Some(f));
        }
    }

    /// The next event of a resumable session with its number (its `N`), answering heartbeats
    /// and passing over everything else; `None` once the relay has closed the connection.
    pub async fn next_numbered_event(&mut self) -> io::Result<Option<(u64, Frame)>> {
        Ok(self
            .next_numbered_event_after_gap()
            .await?
            .map(|(_, seq, f)| (seq, f)))
    }

    /// The next event with its number, and how many events `G` said were lost on its switch
    /// since the event before it.
    pub async fn next_numbered_event_after_gap(&mut self) -> io::Result<Option<(u64, u64, Frame)>> {
        let mut seq = None;
        let mut lost = 0u64;
        loop {
            let Some(f) = self.next_non_heartbeat().await? else {
                return Ok(None);
            };
            match f.kind() {
                Kind::Link => match LinkMsg::decode(&f) {
                    Ok(LinkMsg::Sequence { seq: n, .. }) => seq = Some(n),
                    Ok(LinkMsg::Lost { lost: n, .. }) => lost = lost.saturating_add(n),
                    _ => {}
                },
                Kind::Event => {
                    let n = seq.ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "an event without its N")
                    })?;
                    return Ok(Some((lost, n, f)));
                }
                _ => {}
            }
        }
    }

    /// The next link-control message.
    pub async fn next_link(&mut self) -> io::Result<Option<LinkMsg>> {
        let Some(f) = self.next_frame().await? else {
            return Ok(None);
        };
        LinkMsg::decode(&f)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Reads until the relay closes, returning everything received.
    pub async fn read_to_end(&mut self) -> io::Result<Vec<Frame>> {
        let mut all = Vec::new();
        while let Some(f) = self.next_frame().await? {
            all.push(f);
        }
        Ok(all)
    }

    /// Reads exactly `n` raw bytes (load tools count bytes, not frames).
    pub async fn read_exact_bytes(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let buffered = self.reader.take_raw();
        let n = buffered.len().min(buf.len());
        buf[..n].copy_from_slice(&buffered[..n]);
        if n < buffered.len() {
            self.reader.extend(&buffered[n..]);
            return Ok(());
        }
        self.stream.read_exact(&mut buf[n..]).await.map(|_| ())
    }

    /// Reads and discards exactly `n` bytes, in chunks of up to `scratch.len()`.
    pub async fn discard_bytes(&mut self, mut n: usize, scratch: &mut [u8]) -> io::Result<()> {
        let buffered = self.reader.take_raw();
        let k = buffered.len().min(n);
        n -= k;
        if k < buffered.len() {
            self.reader.extend(&buffered[k..]);
        }
        while n > 0 {
            let want = n.min(scratch.len());
            let got = self.stream.read(&mut scratch[..want]).await?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            n -= got;
        }
        Ok(())
    }

    pub fn into_stream(self) -> BoxStream {
        self.stream
    }
}

/// The reading half of an application connection.
pub struct Reader {
    rd: ReadHalf<BoxStream>,
    reader: FrameReader,
    /// Where heartbeat replies go.
    heartbeats: Writer,
}

impl Reader {
    /// The next frame; `None` once the relay has closed the connection. A heartbeat (`H`) is
    /// answered with `h` before it is returned; a reply that cannot be written means the
    /// connection is gone, and the frames still buffered are returned before `None`.
    pub async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let frame = read_frame(&mut self.rd, &mut self.reader).await?;
        if let Some(f) = &frame {
            if f.kind() == Kind::Link && f.code() == b'H' {
                let _ = self.heartbeats.send_link(&LinkMsg::HeartbeatReply).await;
            }
        }
        Ok(frame)
    }
}

/// The writing half of an application connection; clones write to the same connection, one
/// whole frame at a time.
#[derive(Clone)]
pub struct Writer {
    wr: Arc<tokio::sync::Mutex<WriteHalf<BoxStream>>>,
    pub protocol: u8,
}

impl Writer {
    /// Writes whole frames; frames from clones are never interleaved.
    pub async fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        self.wr.lock().await.write_all(bytes).await
    }

    pub async fn send_link(&self, msg: &LinkMsg) -> io::Result<()> {
        let bytes = msg
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.send_raw(&bytes).await
    }

    /// Sends a request; `switch` is the SWITCH byte (protocol 3 only).
    pub async fn request(
        &self,
        switch: Option<u8>,
        code: u8,
        invoke: u16,
        body: &[u8],
    ) -> io::Result<()> {
        let frame = request_frame(self.protocol, switch, code, invoke, body)?;
        self.send_raw(&frame).await
    }

    /// Closes the connection's sending direction (the relay then sees the application leave).
    pub async fn shutdown(&self) -> io::Result<()> {
        self.wr.lock().await.shutdown().await
    }
}

fn request_frame(
    protocol: u8,
    switch: Option<u8>,
    code: u8,
    invoke: u16,
    body: &[u8],
) -> io::Result<Bytes> {
    CallMsg {
        kind: Kind::Request,
        code,
        invoke,
        switch: if protocol == 3 {
            switch.or(Some(0))
        } else {
            None
        },
        body: Bytes::copy_from_slice(body),
    }
    .encode()
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    reader: &mut FrameReader,
) -> io::Result<Option<Frame>> {
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
        match stream.read_buf(reader.buffer_mut()).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}
