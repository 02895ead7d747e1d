//! The gateway's WebSocket connection, owned here rather than by the web framework, so that
//! what the relay sends is framed once and shared: a run of events becomes one buffer of
//! WebSocket frames, made by the first tab of a view and written by every other as it is,
//! beside the tab's other output in one vectored write (as the TCP path writes a run).
//!
//! - [`Upgrade`]: the HTTP/1.1 upgrade (RFC 6455 §4.2): what the request must say, and the
//!   `101` that answers it.
//! - [`Socket`]: tungstenite reads the tab's frames (masks, fragments, control frames, and the
//!   size limits, checked as each frame arrives); the relay writes its own frames, made by
//!   [`text_frame`], [`ping_frame`] and [`close_frame`]. Nothing tungstenite would write (its
//!   automatic replies) reaches the socket: the bridge answers a ping itself.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

pub use tungstenite::{Error, Message};

/// The longest header of a frame the relay sends (no mask: 2 + 8 bytes).
pub const MAX_HEADER: usize = 10;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// An upgrade request that says all RFC 6455 asks of it.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket upgrade: the status and what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct NotUpgrade {
    pub status: StatusCode,
    pub text: &'static str,
}

fn not(status: StatusCode, text: &'static str) -> NotUpgrade {
    NotUpgrade { status, text }
}

fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

impl Upgrade {
    /// The upgrade `request` asks for, taking its connection's upgrade from it.
    pub fn from_request<B>(request: &mut axum::http::Request<B>) -> Result<Upgrade, NotUpgrade> {
        if request.version() != Version::HTTP_11 {
            return Err(not(
                StatusCode::BAD_REQUEST,
                "a WebSocket is opened over HTTP/1.1: connect with HTTP/1.1",
            ));
        }
        if request.method() != Method::GET {
            return Err(not(
                StatusCode::BAD_REQUEST,
                "a WebSocket is opened with GET",
            ));
        }
        let headers = request.headers();
        if !header_has_token(headers, header::CONNECTION, "upgrade") {
            return Err(not(
                StatusCode::BAD_REQUEST,
                "not a WebSocket upgrade: the Connection header must include \"upgrade\"",
            ));
        }
        if !header_has_token(headers, header::UPGRADE, "websocket") {
            return Err(not(
                StatusCode::BAD_REQUEST,
                "not a WebSocket upgrade: the Upgrade header must be \"websocket\"",
            ));
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(not(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket version 13 only: send Sec-WebSocket-Version: 13",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(not(
                StatusCode::BAD_REQUEST,
                "not a WebSocket upgrade: the Sec-WebSocket-Key header is missing",
            ));
        };
        let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
            return Err(not(
                StatusCode::BAD_REQUEST,
                "this connection cannot be upgraded to a WebSocket",
            ));
        };
        Ok(Upgrade { key, on_upgrade })
    }

    /// The `101` that opens the WebSocket; `serve` is given it once the connection is handed
    /// over, in a task of its own (the relay's).
    pub fn open<F, Fut>(self, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        crate::task::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => serve(Socket::over(TokioIo::new(upgraded), config).await).await,
                Err(e) => tracing::debug!(error = %e, "gateway: the upgrade did not complete"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// The socket a connection was upgraded to.
pub type UpgradedIo = TokioIo<Upgraded>;

/// One WebSocket connection: tungstenite reads, the relay writes frames it made.
pub struct Socket<S = UpgradedIo> {
    reader: WebSocketStream<ReadSide<S>>,
    writer: WriteHalf<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    /// The server's side of an open WebSocket on `io`.
    pub async fn over(io: S, config: WebSocketConfig) -> Socket<S> {
        let (read, writer) = tokio::io::split(io);
        let reader =
            WebSocketStream::from_raw_socket(ReadSide(read), Role::Server, Some(config)).await;
        Socket { reader, writer }
    }

    /// The tab's next message; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.reader.next().await
    }

    /// Writes `frames` (whole frames made here, as many as each buffer holds), emptying it.
    pub async fn send(&mut self, frames: &mut VecDeque<Bytes>) -> io::Result<()> {
        // Where a failed write stopped does not matter: the connection is gone.
        let mut partial = false;
        crate::connection::outqueue::write_entries(&mut self.writer, frames, &mut partial).await
    }

    /// Writes one frame made here.
    pub async fn send_one(&mut self, frame: Bytes) -> io::Result<()> {
        self.send(&mut VecDeque::from([frame])).await
    }

    /// Ends the writing side (after a close frame).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.writer.shutdown().await
    }
}

/// The reading side as tungstenite sees it: what it would write (the replies it makes by
/// itself) goes nowhere, since the relay writes every frame it sends.
struct ReadSide<S>(ReadHalf<S>);

impl<S: AsyncRead> AsyncRead for ReadSide<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for ReadSide<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The header of an unmasked, final frame of `opcode` carrying `len` bytes.
fn put_header(out: &mut impl BufMut, opcode: u8, len: usize) {
    out.put_u8(FIN | opcode);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

/// The length of the header [`put_header`] writes for `len` bytes.
pub fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => MAX_HEADER,
    }
}

fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    put_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// A text message of `text`, as one frame.
pub fn text_frame(text: &str) -> Bytes {
    frame(OP_TEXT, text.as_bytes())
}

/// Frames, in place, a text message written into `buf` after [`MAX_HEADER`] bytes left for
/// its header: the frame is the returned part of `buf` (nothing is copied).
pub fn frame_text_in_place(mut buf: BytesMut) -> Bytes {
    let len = buf.len() - MAX_HEADER;
    let start = MAX_HEADER - header_len(len);
    put_header(&mut &mut buf[start..MAX_HEADER], OP_TEXT, len);
    buf.freeze().slice(start..)
}

/// A frame's opcode, payload length and header length, when its header is whole (frames made
/// here: unmasked).
fn header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let opcode = bytes.first()? & 0x0F;
    match bytes.get(1)? & 0x7F {
        126 => Some((
            opcode,
            usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        )),
        127 => {
            let n: [u8; 8] = bytes.get(2..MAX_HEADER)?.try_into().ok()?;
            Some((
                opcode,
                usize::try_from(u64::from_be_bytes(n)).ok()?,
                MAX_HEADER,
            ))
        }
        n => Some((opcode, usize::from(n), 2)),
    }
}

/// The payload of one frame made here (a text message's text).
pub fn text_of(frame: &[u8]) -> &[u8] {
    header(frame).map_or(&[], |(_, _, at)| &frame[at..])
}

/// The relay's ping (its heartbeat, with no payload).
pub fn ping_frame() -> Bytes {
    Bytes::from_static(&[FIN | OP_PING, 0])
}

/// The pong that answers a ping carrying `payload` (at most 125 bytes: tungstenite refuses a
/// longer control frame before it is a message).
pub fn pong_frame(payload: &[u8]) -> Bytes {
    frame(OP_PONG, &payload[..payload.len().min(125)])
}

/// A close frame with `code` and `reason` (a reason is cut to fit 123 bytes by its maker).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    frame(OP_CLOSE, &payload[..payload.len().min(125)])
}

/// The messages in `bytes` framed here, as (opcode, payload): for tests and tools that look
/// at what a tab is sent. Stops at the first frame that is not whole.
pub fn unframe(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((opcode, len, at)) = header(bytes) {
        let Some(payload) = at.checked_add(len).and_then(|end| bytes.get(at..end)) else {
            break;
        };
        out.push((opcode, payload.to_vec()));
        bytes = &bytes[at + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;

    /// Each thing RFC 6455 asks of the upgrade request is checked, and a request that lacks it
    /// is told which (`Connection` may list other tokens, and names are any case).
    #[test]
    fn an_upgrade_request_is_checked_header_by_header() {
        let request = |drop: Option<&str>, connection: &str| {
            let mut r = axum::http::Request::builder().uri("/ws");
            for (name, value) in [
                ("connection", connection),
                ("upgrade", "WebSocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ] {
                if drop != Some(name) {
                    r = r.header(name, value);
                }
            }
            // No connection to upgrade: a request that says everything is refused last.
            let mut r = r.body(()).unwrap();
            Upgrade::from_request(&mut r).map(|_| ())
        };
        let refused = |drop, connection| request(drop, connection).unwrap_err();
        assert!(refused(None, "keep-alive, Upgrade")
            .text
            .contains("this connection cannot be upgraded"));
        assert!(refused(None, "keep-alive").text.contains("Connection"));
        assert!(refused(Some("upgrade"), "upgrade")
            .text
            .contains("Upgrade header"));
        let version = refused(Some("sec-websocket-version"), "upgrade");
        assert_eq!(version.status, StatusCode::UPGRADE_REQUIRED);
        let key = refused(Some("sec-websocket-key"), "upgrade");
        assert_eq!(key.status, StatusCode::BAD_REQUEST);
        assert!(key.text.contains("Sec-WebSocket-Key"));
        // The accept key of RFC 6455's own example.
        assert_eq!(
            tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_have_the_shortest_header_for_their_length() {
        for len in [0, 1, 125, 126, 300, 0xFFFF, 0x1_0000, 70_000] {
            let text = "x".repeat(len);
            let framed = text_frame(&text);
            assert_eq!(framed.len(), header_len(len) + len, "{len}");
            assert_eq!(unframe(&framed), [(OP_TEXT, text.clone().into_bytes())]);
            let mut buf = BytesMut::zeroed(MAX_HEADER);
            buf.put_slice(text.as_bytes());
            assert_eq!(frame_text_in_place(buf), framed, "{len}");
        }
        assert_eq!(&text_frame("hi")[..], b"\x81\x02hi");
        // Bytes cut anywhere give the whole frames before the cut, and never a panic.
        let two = [text_frame("one"), text_frame(&"x".repeat(300))].concat();
        for cut in 0..two.len() {
            let whole = unframe(&two[..cut]).len();
            assert_eq!(whole, usize::from(cut >= 5), "cut at {cut}");
            let _ = text_of(&two[..cut]);
        }
        assert_eq!(unframe(b"\x81\x7f\xff\xff\xff\xff\xff\xff\xff\xffx"), []);
        assert_eq!(&close_frame(1008, "no")[..], b"\x88\x04\x03\xf0no");
        assert_eq!(&ping_frame()[..], b"\x89\x00");
    }

    /// What the relay frames, a WebSocket client reads as the messages they are (several in
    /// one buffer, or one), and what the client sends, the socket reads.
    #[tokio::test]
    async fn a_client_reads_the_frames_made_here_and_is_read() {
        let (server, client) = tokio::io::duplex(1 << 16);
        let (socket, client) = tokio::join!(
            Socket::over(server, WebSocketConfig::default()),
            WebSocketStream::from_raw_socket(client, Role::Client, None)
        );
        let (mut socket, mut client) = (socket, client);
        let mut run = BytesMut::new();
        run.extend_from_slice(&text_frame("one"));
        run.extend_from_slice(&text_frame(&"two".repeat(100)));
        let mut frames = VecDeque::from([run.freeze(), ping_frame(), text_frame("three")]);
        socket.send(&mut frames).await.unwrap();
        assert!(frames.is_empty());
        for expected in [
            Message::text("one"),
            Message::text("two".repeat(100)),
            Message::Ping(Bytes::new()),
            Message::text("three"),
        ] {
            assert_eq!(client.next().await.unwrap().unwrap(), expected);
        }
        client.send(Message::text("hello")).await.unwrap();
        client
            .send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        // The client answered the relay's ping by itself.
        assert_eq!(
            socket.recv().await.unwrap().unwrap(),
            Message::Pong(Bytes::new())
        );
        assert_eq!(
            socket.recv().await.unwrap().unwrap(),
            Message::text("hello")
        );
        assert_eq!(
            socket.recv().await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"p"))
        );
        socket.send_one(close_frame(1000, "")).await.unwrap();
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(close)) => assert_eq!(u16::from(close.code), 1000),
            other => panic!("not a close: {other:?}"),
        }
    }
}
