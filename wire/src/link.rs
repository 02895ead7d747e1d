//! Typed link-control messages (KIND `L`) of every link: relay ↔ switch, relay ↔ application,
//! and the monitor/export password handshake.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{put_header, Frame, Kind, NO_INVOKE};
use crate::text::Str8;

/// Station kinds of the switch's station table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StationKind {
    Keyset = 1,
    SingleLine = 2,
    Trunk = 3,
    Group = 4,
}

impl StationKind {
    pub fn from_byte(b: u8) -> Option<StationKind> {
        Some(match b {
            1 => StationKind::Keyset,
            2 => StationKind::SingleLine,
            3 => StationKind::Trunk,
            4 => StationKind::Group,
            _ => return None,
        })
    }
}

/// One station of a `c` page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Station {
    pub station: Str8,
    pub kind: StationKind,
}

/// A device named by an application: `switch` 0 means "my default switch".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceRef {
    pub switch: u8,
    pub device: Str8,
}

/// A resume token: the relay's run (8 bytes) then a random part (8 bytes). All zeros in an
/// identify asks for a new resumable session.
pub type Token = [u8; 16];

/// The optional resume part of `I`: present when the application wants its events numbered
/// and its session kept for a while after its connection ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeAsk {
    /// The token of the session to resume; all zeros for a new one.
    pub token: Token,
    /// The last sequence number the application received on each switch.
    pub last: Vec<(u8, u64)>,
}

/// The optional resume part of `i`: present when the application asked for it and the relay
/// keeps sessions (`resume.window_seconds` > 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeGrant {
    /// What to send to resume this session.
    pub token: Token,
    /// The session's devices and served switches are those it had before, and the events it
    /// missed follow.
    pub resumed: bool,
    /// The last sequence number issued on each served switch before this session's first
    /// live event (replayed events are numbered at or below it).
    pub last: Vec<(u8, u64)>,
}

/// `lost` value of `G` when the relay cannot count what was lost (the token is from an earlier
/// run of the relay).
pub const LOST_UNKNOWN: u64 = u64::MAX;

/// Switch capability bits of the `o` message.
pub mod caps {
    pub const CALL_PLUS: u8 = 0b001;
    pub const SMDR: u8 = 0b010;
    pub const UCD: u8 = 0b100;
}

/// Every link-control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkMsg {
    /// `O` relay→switch: open the CTI link.
    Open { version: u8, name: Str8 },
    /// `o` switch→relay: open result (0 accepted, 1 refused, 2 MMC 830 address mismatch).
    OpenResult {
        result: u8,
        model: Str8,
        software: Str8,
        mac: [u8; 6],
        caps: u8,
    },
    /// `Q` relay→switch: MAC query.
    MacQuery,
    /// `q` switch→relay: MAC reply.
    MacReply { mac: [u8; 6] },
    /// `C` relay→switch: configuration download with the EasySet password.
    ConfigDownload { password: Str8 },
    /// `c` switch→relay: one page of the station table (result 1 = wrong password).
    ConfigPage {
        result: u8,
        last: bool,
        stations: Vec<Station>,
    },
    /// `H` either way.
    Heartbeat,
    /// `h` either way.
    HeartbeatReply,
    /// `I` app→relay: identify.
    Identify {
        protocol: u8,
        product: u8,
        app_name: Str8,
        devices: Vec<DeviceRef>,
        /// Optional trailing part; old applications never send it.
        resume: Option<ResumeAsk>,
    },
    /// `i` relay→app: identify result and the switches served, with their state.
    IdentifyResult {
        result: u8,
        switches: Vec<(u8, bool)>,
        /// Only for an application that sent [`ResumeAsk`].
        resume: Option<ResumeGrant>,
    },
    /// `N` relay→app, resumable sessions only: the sequence number of the event that follows.
    Sequence { switch: u8, seq: u64 },
    /// `G` relay→app, resumable sessions only: events of `switch` the session missed and that
    /// cannot be replayed ([`LOST_UNKNOWN`] when not even their number is known).
    Lost { switch: u8, lost: u64 },
    /// `D` app→relay: add (`add = true`) or remove a monitored device.
    Device { add: bool, switch: u8, device: Str8 },
    /// `d` relay→app: 0 ok, 1 refused.
    DeviceResult { result: u8 },
    /// `W` relay→app: a served switch went down or came back.
    SwitchState { switch: u8, up: bool },
    /// `X` relay→app: the relay is about to close this session.
    Close { reason: u8, text: Str8 },
    /// `P` monitor→relay: password.
    Password { password: Str8 },
    /// `p` relay→monitor: 0 accepted, 1 refused.
    PasswordResult { result: u8 },
}

/// Why a frame is not the link message it claims to be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("not a link-control frame (kind {0:?})")]
    NotLink(Kind),
    #[error("unknown link-control code '{}'", .0.escape_ascii())]
    UnknownCode(u8),
    #[error("link-control '{}' is truncated", .0.escape_ascii())]
    Truncated(u8),
    #[error("link-control '{code}' has {count} unexpected trailing byte(s)", code = .0.escape_ascii(), count = .1)]
    Trailing(u8, usize),
    #[error("link-control '{code}' has an invalid value: {why}", code = .0.escape_ascii(), why = .1)]
    Invalid(u8, &'static str),
    #[error("link-control '{}' does not fit in one frame", .0.escape_ascii())]
    TooLarge(u8),
}

impl LinkMsg {
    pub fn code(&self) -> u8 {
        match self {
            LinkMsg::Open { .. } => b'O',
            LinkMsg::OpenResult { .. } => b'o',
            LinkMsg::MacQuery => b'Q',
            LinkMsg::MacReply { .. } => b'q',
            LinkMsg::ConfigDownload { .. } => b'C',
            LinkMsg::ConfigPage { .. } => b'c',
            LinkMsg::Heartbeat => b'H',
            LinkMsg::HeartbeatReply => b'h',
            LinkMsg::Identify { .. } => b'I',
            LinkMsg::IdentifyResult { .. } => b'i',
            LinkMsg::Sequence { .. } => b'N',
            LinkMsg::Lost { .. } => b'G',
            LinkMsg::Device { .. } => b'D',
            LinkMsg::DeviceResult { .. } => b'd',
            LinkMsg::SwitchState { .. } => b'W',
            LinkMsg::Close { .. } => b'X',
            LinkMsg::Password { .. } => b'P',
            LinkMsg::PasswordResult { .. } => b'p',
        }
    }

    /// Encodes the whole frame. Fails only when a list is too long for its count byte or the
    /// body exceeds one frame.
    pub fn encode(&self) -> Result<Bytes, LinkError> {
        let code = self.code();
        let too_large = || LinkError::TooLarge(code);
        let mut body = BytesMut::new();
        match self {
            LinkMsg::Open { version, name } => {
                body.put_u8(*version);
                name.put(&mut body);
            }
            LinkMsg::OpenResult {
                result,
                model,
                software,
                mac,
                caps,
            } => {
                body.put_u8(*result);
                model.put(&mut body);
                software.put(&mut body);
                body.put_slice(mac);
                body.put_u8(*caps);
            }
            LinkMsg::MacQuery | LinkMsg::Heartbeat | LinkMsg::HeartbeatReply => {}
            LinkMsg::MacReply { mac } => body.put_slice(mac),
            LinkMsg::ConfigDownload { password } => password.put(&mut body),
            LinkMsg::ConfigPage {
                result,
                last,
                stations,
            } => {
                body.put_u8(*result);
                body.put_u8(u8::from(*last));
                body.put_u8(u8::try_from(stations.len()).map_err(|_| too_large())?);
                for s in stations {
                    s.station.put(&mut body);
                    body.put_u8(s.kind as u8);
                }
            }
            LinkMsg::Identify {
                protocol,
                product,
                app_name,
                devices,
                resume,
            } => {
                body.put_u8(*protocol);
                body.put_u8(*product);
                app_name.put(&mut body);
                body.put_u8(u8::try_from(devices.len()).map_err(|_| too_large())?);
                for d in devices {
                    body.put_u8(d.switch);
                    d.device.put(&mut body);
                }
                if let Some(ask) = resume {
                    body.put_slice(&ask.token);
                    put_sequences(&mut body, &ask.last).map_err(|_| too_large())?;
                }
            }
            LinkMsg::IdentifyResult {
                result,
                switches,
                resume,
            } => {
                body.put_u8(*result);
                body.put_u8(u8::try_from(switches.len()).map_err(|_| too_large())?);
                for (no, up) in switches {
                    body.put_u8(*no);
                    body.put_u8(u8::from(*up));
                }
                if let Some(grant) = resume {
                    body.put_slice(&grant.token);
                    body.put_u8(u8::from(grant.resumed));
                    put_sequences(&mut body, &grant.last).map_err(|_| too_large())?;
                }
            }
            LinkMsg::Sequence { switch, seq } => {
                body.put_u8(*switch);
                body.put_u64(*seq);
            }
            LinkMsg::Lost { switch, lost } => {
                body.put_u8(*switch);
                body.put_u64(*lost);
            }
            LinkMsg::Device {
                add,
                switch,
                device,
            } => {
                body.put_u8(u8::from(*add));
                body.put_u8(*switch);
                device.put(&mut body);
            }
            LinkMsg::DeviceResult { result } | LinkMsg::PasswordResult { result } => {
                body.put_u8(*result)
            }
            LinkMsg::SwitchState { switch, up } => {
                body.put_u8(*switch);
                body.put_u8(u8::from(*up));
            }
            LinkMsg::Close { reason, text } => {
                body.put_u8(*reason);
                text.put(&mut body);
            }
            LinkMsg::Password { password } => password.put(&mut body),
        }
        if body.len() > super::frame::MAX_LEN as usize - 4 {
            return Err(too_large());
        }
        let mut out = BytesMut::with_capacity(body.len() + 6);
        put_header(&mut out, Kind::Link, code, NO_INVOKE, body.len());
        out.extend_from_slice(&body);
        Ok(out.freeze())
    }

    /// Decodes a link-control frame, refusing truncation and trailing bytes.
    pub fn decode(frame: &Frame) -> Result<LinkMsg, LinkError> {
        if frame.kind() != Kind::Link {
            return Err(LinkError::NotLink(frame.kind()));
        }
        let code = frame.code();
        let mut r = Reader {
            buf: frame.body(),
            code,
        };
        let msg = match code {
            b'O' => LinkMsg::Open {
                version: r.u8()?,
                name: r.str8()?,
            },
            b'o' => LinkMsg::OpenResult {
                result: r.u8()?,
                model: r.str8()?,
                software: r.str8()?,
                mac: r.mac()?,
                caps: r.u8()?,
            },
            b'Q' => LinkMsg::MacQuery,
            b'q' => LinkMsg::MacReply { mac: r.mac()? },
            b'C' => LinkMsg::ConfigDownload {
                password: r.str8()?,
            },
            b'c' => {
                let result = r.u8()?;
                let last = r.flag()?;
                let count = r.u8()?;
                let mut stations = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let station = r.str8()?;
                    let kind = StationKind::from_byte(r.u8()?)
                        .ok_or(LinkError::Invalid(code, "station kind must be 1..=4"))?;
                    stations.push(Station { station, kind });
                }
                LinkMsg::ConfigPage {
                    result,
                    last,
                    stations,
                }
            }
            b'H' => LinkMsg::Heartbeat,
            b'h' => LinkMsg::HeartbeatReply,
            b'I' => {
                let protocol = r.u8()?;
                let product = r.u8()?;
                let app_name = r.str8()?;
                let count = r.u8()?;
                let mut devices = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    devices.push(DeviceRef {
                        switch: r.u8()?,
                        device: r.str8()?,
                    });
                }
                let resume = if r.buf.is_empty() {
                    None
                } else {
                    Some(ResumeAsk {
                        token: r.token()?,
                        last: r.sequences()?,
                    })
                };
                LinkMsg::Identify {
                    protocol,
                    product,
                    app_name,
                    devices,
                    resume,
                }
            }
            b'i' => {
                let result = r.u8()?;
                let count = r.u8()?;
                let mut switches = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    switches.push((r.u8()?, r.flag()?));
                }
                let resume = if r.buf.is_empty() {
                    None
                } else {
                    Some(ResumeGrant {
                        token: r.token()?,
                        resumed: r.flag()?,
                        last: r.sequences()?,
                    })
                };
                LinkMsg::IdentifyResult {
                    result,
                    switches,
                    resume,
                }
            }
            b'N' => LinkMsg::Sequence {
                switch: r.u8()?,
                seq: r.u64()?,
            },
            b'G' => LinkMsg::Lost {
                switch: r.u8()?,
                lost: r.u64()?,
            },
            b'D' => LinkMsg::Device {
                add: r.flag()?,
                switch: r.u8()?,
                device: r.str8()?,
            },
            b'd' => LinkMsg::DeviceResult { result: r.u8()? },
            b'W' => LinkMsg::SwitchState {
                switch: r.u8()?,
                up: r.flag()?,
            },
            b'X' => LinkMsg::Close {
                reason: r.u8()?,
                text: r.str8()?,
            },
            b'P' => LinkMsg::Password {
                password: r.str8()?,
            },
            b'p' => LinkMsg::PasswordResult { result: r.u8()? },
            other => return Err(LinkError::UnknownCode(other)),
        };
        if !r.buf.is_empty() {
            return Err(LinkError::Trailing(code, r.buf.len()));
        }
        Ok(msg)
    }
}

/// Appends the `N` frame (sequence number of the event that follows) without allocating; the
/// same bytes as `LinkMsg::Sequence { switch, seq }.encode()`.
pub fn put_sequence(out: &mut BytesMut, switch: u8, seq: u64) {
    put_header(out, Kind::Link, b'N', NO_INVOKE, 9);
    out.put_u8(switch);
    out.put_u64(seq);
}

/// Bytes of one `N` frame.
pub const SEQUENCE_FRAME_LEN: usize = 15;

/// Appends the `G` frame (`lost` events of `switch` the session will not be given) without
/// allocating; the same bytes as `LinkMsg::Lost { switch, lost }.encode()`.
pub fn put_lost(out: &mut BytesMut, switch: u8, lost: u64) {
    put_header(out, Kind::Link, b'G', NO_INVOKE, 9);
    out.put_u8(switch);
    out.put_u64(lost);
}

/// The number given by the `N` frame (of [`SEQUENCE_FRAME_LEN`] bytes) at the start of
/// `bytes`; `None` when `bytes` does not start with a whole `N` frame.
pub fn sequence_at(bytes: &[u8]) -> Option<u64> {
    let frame = bytes.get(..SEQUENCE_FRAME_LEN)?;
    let len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
    if len + 2 != SEQUENCE_FRAME_LEN || frame[2] != Kind::Link.byte() || frame[3] != b'N' {
        return None;
    }
    let seq: [u8; 8] = frame[7..15].try_into().ok()?;
    Some(u64::from_be_bytes(seq))
}

/// `n u8`, then `n × (switch u8, seq u64)`.
fn put_sequences(body: &mut BytesMut, list: &[(u8, u64)]) -> Result<(), ()> {
    body.put_u8(u8::try_from(list.len()).map_err(|_| ())?);
    for (switch, seq) in list {
        body.put_u8(*switch);
        body.put_u64(*seq);
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    code: u8,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LinkError> {
        if self.buf.len() < n {
            return Err(LinkError::Truncated(self.code));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, LinkError> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool, LinkError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LinkError::Invalid(self.code, "a flag byte must be 0 or 1")),
        }
    }
    fn u64(&mut self) -> Result<u64, LinkError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("eight bytes"),
        ))
    }
    fn token(&mut self) -> Result<Token, LinkError> {
        Ok(self.take(16)?.try_into().expect("sixteen bytes"))
    }
    fn sequences(&mut self) -> Result<Vec<(u8, u64)>, LinkError> {
        let count = self.u8()?;
        let mut list = Vec::with_capacity(count as usize);
        for _ in 0..count {
            list.push((self.u8()?, self.u64()?));
        }
        Ok(list)
    }
    fn mac(&mut self) -> Result<[u8; 6], LinkError> {
        Ok(self.take(6)?.try_into().expect("six bytes"))
    }
    fn str8(&mut self) -> Result<Str8, LinkError> {
        let n = self.u8()? as usize;
        Ok(Str8::from(self.take(n)?))
    }
}
