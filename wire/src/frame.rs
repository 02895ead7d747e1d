//! The frame: `LEN u16 | KIND | CODE | INVOKE u16 | BODY`, checked before it is parsed.
//!
//! [`check`] looks at a byte slice and says whether a whole, valid frame starts there, without
//! allocating. [`FrameReader`] owns the read buffer of one connection and hands out frames, or
//! whole runs of frames, as shared [`Bytes`] so the hot paths never copy a frame they forward.

use bytes::{Bytes, BytesMut};

use crate::byte_enum::byte_enum;

/// Bytes of the frame header: LEN, KIND, CODE, INVOKE.
pub const HEADER_LEN: usize = 6;
/// Smallest legal LEN (KIND, CODE, INVOKE).
pub const MIN_LEN: u16 = 4;
/// Largest legal LEN.
pub const MAX_LEN: u16 = 4094;
/// Largest whole frame, LEN field included.
pub const MAX_FRAME: usize = MAX_LEN as usize + 2;
/// INVOKE carried by events, records and link control.
pub const NO_INVOKE: u16 = 0xFFFF;

byte_enum! {
    /// The KIND byte.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Kind {
        Link = b'L',
        Request = b'R',
        Answer = b'A',
        Event = b'E',
        Smdr = b'S',
        Ucd = b'U',
        Monitor = b'M',
    }
}

impl Kind {
    /// Whether this kind carries the SWITCH byte on a protocol-3 application connection.
    pub const fn carries_switch_byte(self) -> bool {
        matches!(self, Kind::Request | Kind::Answer | Kind::Event)
    }
}

/// A protocol error met while framing: the connection that sent it must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is out of range (LEN must be 4..=4094)")]
    LenOutOfRange(u16),
    #[error("unknown frame kind 0x{0:02X}")]
    UnknownKind(u8),
}

/// Checks whether `buf` starts with a whole valid frame.
///
/// `Ok(Some(n))`: the first `n` bytes are one frame. `Ok(None)`: more bytes are needed.
/// A bad LEN or KIND is reported as soon as its byte is in `buf`, so the outcome for a byte
/// stream does not depend on how it was split.
pub fn check(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]);
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(FrameError::LenOutOfRange(len));
    }
    if buf.len() > 2 && Kind::from_byte(buf[2]).is_none() {
        return Err(FrameError::UnknownKind(buf[2]));
    }
    let total = len as usize + 2;
    Ok((buf.len() >= total).then_some(total))
}

/// One whole, valid frame, LEN included.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// Wraps bytes already known to be exactly one valid frame (see [`check`]).
    pub fn new(bytes: Bytes) -> Result<Frame, FrameError> {
        match check(&bytes)? {
            Some(n) if n == bytes.len() => Ok(Frame(bytes)),
            // A short or long buffer is a length mismatch: report it as a bad LEN.
            _ => Err(FrameError::LenOutOfRange(u16::from_be_bytes([
                bytes.first().copied().unwrap_or(0),
                bytes.get(1).copied().unwrap_or(0),
            ]))),
        }
    }

    /// Builds a frame from its parts. Panics if the body does not fit: for the simulators and
    /// tests, which build frames they chose; the relay builds frames only through the encoders
    /// that refuse a body beyond one frame (`CallMsg::encode`, `LinkMsg::encode`,
    /// `monitor::encode_link`).
    pub fn build(kind: Kind, code: u8, invoke: u16, body: &[u8]) -> Frame {
        let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
        put_header(&mut out, kind, code, invoke, body.len());
        out.extend_from_slice(body);
        Frame(out.freeze())
    }

    pub fn kind(&self) -> Kind {
        Kind::from_byte(self.0[2]).expect("checked on construction")
    }
    pub fn code(&self) -> u8 {
        self.0[3]
    }
    pub fn invoke(&self) -> u16 {
        u16::from_be_bytes([self.0[4], self.0[5]])
    }
    /// Everything after INVOKE (on protocol-3 application links, SWITCH comes first).
    pub fn body(&self) -> &[u8] {
        &self.0[HEADER_LEN..]
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({:?} '{}' invoke={:#06x} body={:02X?})",
            self.kind(),
            self.code().escape_ascii(),
            self.invoke(),
            self.body()
        )
    }
}

/// Writes a header for a body of `body_len` bytes. Panics if the frame would exceed 4096 bytes:
/// every encoder checks the body's length before it calls this.
pub fn put_header(out: &mut BytesMut, kind: Kind, code: u8, invoke: u16, body_len: usize) {
    let len = u16::try_from(body_len + 4)
        .ok()
        .filter(|l| *l <= MAX_LEN)
        .unwrap_or_else(|| panic!("frame body of {body_len} bytes exceeds the 4090-byte limit"));
    out.reserve(HEADER_LEN + body_len);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[kind.byte(), code]);
    out.extend_from_slice(&invoke.to_be_bytes());
}

/// A run of whole, valid frames taken from a reader in one piece.
#[derive(Clone, Debug)]
pub struct Run {
    bytes: Bytes,
}

/// Where one frame of a [`Run`] sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunFrame {
    pub at: usize,
    pub len: usize,
    pub kind: Kind,
}

impl RunFrame {
    pub fn end(&self) -> usize {
        self.at + self.len
    }
}

impl Run {
    /// `bytes` as a run, when they are whole, valid frames back to back (and at least one).
    pub fn whole(bytes: Bytes) -> Option<Run> {
        let mut at = 0;
        while at < bytes.len() {
            at += check(&bytes[at..]).ok()??;
        }
        (!bytes.is_empty()).then_some(Run { bytes })
    }

    /// The frames' bytes, back to back, exactly as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The frames' positions, in order.
    pub fn frames(&self) -> impl Iterator<Item = RunFrame> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let b = &self.bytes;
            if at >= b.len() {
                return None;
            }
            let len = u16::from_be_bytes([b[at], b[at + 1]]) as usize + 2;
            let f = RunFrame {
                at,
                len,
                kind: Kind::from_byte(b[at + 2]).expect("checked"),
            };
            at += len;
            Some(f)
        })
    }

    /// One frame of the run (shares the run's memory).
    pub fn frame(&self, f: &RunFrame) -> Frame {
        Frame(self.bytes.slice(f.at..f.end()))
    }
}

/// The read buffer of one connection.
#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
    /// Free space guaranteed before each read.
    chunk: usize,
    /// Bytes at the front of `buf` known to form whole valid frames.
    checked: usize,
    /// A protocol error found after the checked frames; reported once they are taken.
    error: Option<FrameError>,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::with_capacity(8 * 1024)
    }

    pub fn with_capacity(cap: usize) -> FrameReader {
        let chunk = cap.max(MAX_FRAME);
        FrameReader {
            buf: BytesMut::with_capacity(chunk),
            chunk,
            checked: 0,
            error: None,
        }
    }

    /// The buffer to read into (append only), with room for at least one read chunk.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < self.chunk / 4 {
            self.buf.reserve(self.chunk);
        }
        &mut self.buf
    }

    /// Appends bytes (for tests and in-memory use).
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn scan(&mut self) {
        while self.error.is_none() {
            match check(&self.buf[self.checked..]) {
                Ok(Some(n)) => self.checked += n,
                Ok(None) => break,
                Err(e) => self.error = Some(e),
            }
        }
    }

    /// The next frame, `Ok(None)` when more bytes are needed, or the protocol error met.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.checked == 0 {
            self.scan();
        }
        if self.checked > 0 {
            let len = u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize + 2;
            self.checked -= len;
            return Ok(Some(Frame(self.buf.split_to(len).freeze())));
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Every whole frame buffered, as one contiguous run (one allocation shared by all of
    /// them), or the protocol error met once no whole frame is left before it.
    pub fn next_run(&mut self) -> Result<Option<Run>, FrameError> {
        self.scan();
        if self.checked > 0 {
            let bytes = self.buf.split_to(self.checked).freeze();
            self.checked = 0;
            return Ok(Some(Run { bytes }));
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Like [`FrameReader::next_run`], but with at most `events` events: the frames from the
    /// first event beyond them stay buffered (`Ok(None)` when that is the first frame).
    pub fn next_run_within(&mut self, events: u64) -> Result<Option<Run>, FrameError> {
        if events == u64::MAX {
            return self.next_run();
        }
        self.scan();
        let mut at = 0;
        let mut counted = 0;
        while at < self.checked {
            let event = self.buf[at + 2] == Kind::Event.byte();
            if event && counted == events {
                let bytes = self.buf.split_to(at).freeze();
                self.checked -= at;
                return Ok((at > 0).then_some(Run { bytes }));
            }
            counted += u64::from(event);
            at += u16::from_be_bytes([self.buf[at], self.buf[at + 1]]) as usize + 2;
        }
        self.next_run()
    }

    /// How many events the whole frames buffered hold (those [`FrameReader::next_run`] would
    /// hand out now).
    pub fn events_buffered(&mut self) -> u64 {
        self.scan();
        let mut at = 0;
        let mut events = 0;
        while at < self.checked {
            if self.buf[at + 2] == Kind::Event.byte() {
                events += 1;
            }
            at += u16::from_be_bytes([self.buf[at], self.buf[at + 1]]) as usize + 2;
        }
        events
    }

    /// Takes every buffered byte, framed or not (for tools that count raw bytes).
    pub fn take_raw(&mut self) -> BytesMut {
        self.checked = 0;
        self.error = None;
        self.buf.split()
    }

    /// Bytes buffered but not yet handed out.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
