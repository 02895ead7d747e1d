//! Frames of the monitor ports (docs/protocol.md §5): a switch link's frame wrapped with its time and
//! switch, or a count of frames a slow monitor missed.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{put_header, Frame, FrameError, Kind, MAX_LEN, NO_INVOKE};

/// `M 'G'`: `dropped` frames missed.
pub fn encode_gap(dropped: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(10);
    put_header(&mut out, Kind::Monitor, b'G', NO_INVOKE, 4);
    out.put_u32(dropped);
    out.freeze()
}

/// `M code` wrapping `frame` exactly as it crossed a switch link. `None` if it cannot fit.
pub fn encode_link(code: u8, time_ms: u64, switch: u8, frame: &[u8]) -> Option<Bytes> {
    let body = 8 + 1 + frame.len();
    if body + 4 > MAX_LEN as usize {
        return None;
    }
    let mut out = BytesMut::with_capacity(6 + body);
    put_header(&mut out, Kind::Monitor, code, NO_INVOKE, body);
    out.put_u64(time_ms);
    out.put_u8(switch);
    out.put_slice(frame);
    Some(out.freeze())
}

/// One `M` frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitorMsg {
    /// `M '>'` (to the switch), `M '<'` (from it), `M 'S'` or `M 'U'` (a record): the switch
    /// link's frame exactly as it crossed the link.
    Link {
        code: u8,
        time_ms: u64,
        switch: u8,
        frame: Frame,
    },
    /// `M 'G'`: frames this monitor missed because it read too slowly.
    Gap { dropped: u32 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MonitorError {
    #[error("not a monitor frame (kind {0:?})")]
    NotMonitor(Kind),
    #[error("monitor frame '{}' is truncated", .0.escape_ascii())]
    Truncated(u8),
    #[error("monitor frame '{}' has an unknown code", .0.escape_ascii())]
    UnknownCode(u8),
    #[error("monitor frame '{code}' carries a malformed switch frame: {why}", code = .0.escape_ascii(), why = .1)]
    Inner(u8, FrameError),
    #[error("monitor frame '{code}' has {count} byte(s) after the switch frame", code = .0.escape_ascii(), count = .1)]
    Trailing(u8, usize),
}

impl MonitorMsg {
    pub fn decode(frame: &Frame) -> Result<MonitorMsg, MonitorError> {
        if frame.kind() != Kind::Monitor {
            return Err(MonitorError::NotMonitor(frame.kind()));
        }
        let code = frame.code();
        let body = frame.body();
        match code {
            b'G' => {
                let count: [u8; 4] = body
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(MonitorError::Truncated(code))?;
                if body.len() > 4 {
                    return Err(MonitorError::Trailing(code, body.len() - 4));
                }
                Ok(MonitorMsg::Gap {
                    dropped: u32::from_be_bytes(count),
                })
            }
            b'>' | b'<' | b'S' | b'U' => {
                if body.len() < 9 {
                    return Err(MonitorError::Truncated(code));
                }
                // Cannot fail: the body holds at least 9 bytes (checked above).
                let time_ms = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
                let switch = body[8];
                let inner = &body[9..];
                let len = crate::frame::check(inner)
                    .map_err(|e| MonitorError::Inner(code, e))?
                    .ok_or(MonitorError::Truncated(code))?;
                if len != inner.len() {
                    return Err(MonitorError::Trailing(code, inner.len() - len));
                }
                let frame = Frame::new(Bytes::copy_from_slice(inner))
                    .map_err(|e| MonitorError::Inner(code, e))?;
                Ok(MonitorMsg::Link {
                    code,
                    time_ms,
                    switch,
                    frame,
                })
            }
            other => Err(MonitorError::UnknownCode(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> Frame {
        Frame::new(Bytes::copy_from_slice(bytes)).unwrap()
    }

    #[test]
    fn a_link_frame_and_a_gap_decode_as_encoded() {
        let m = encode_link(b'<', 1_700_000_000_123, 3, &[0, 4, b'L', b'H', 0xFF, 0xFF]).unwrap();
        assert_eq!(
            &m[..],
            &[
                0, 19, b'M', b'<', 0xFF, 0xFF, 0, 0, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x7B, 3, 0, 4,
                b'L', b'H', 0xFF, 0xFF
            ][..]
        );
        assert_eq!(
            MonitorMsg::decode(&Frame::new(m).unwrap()),
            Ok(MonitorMsg::Link {
                code: b'<',
                time_ms: 1_700_000_000_123,
                switch: 3,
                frame: frame(&[0, 4, b'L', b'H', 0xFF, 0xFF]),
            })
        );
        assert_eq!(
            &encode_gap(258)[..],
            &[0, 8, b'M', b'G', 0xFF, 0xFF, 0, 0, 1, 2]
        );
        assert_eq!(
            MonitorMsg::decode(&frame(&[0, 8, b'M', b'G', 0xFF, 0xFF, 0, 0, 1, 2])),
            Ok(MonitorMsg::Gap { dropped: 258 })
        );
    }

    #[test]
    fn a_maximal_switch_frame_does_not_fit() {
        // LEN 4094 less KIND, CODE, INVOKE, time and switch leaves 4081 bytes.
        assert!(encode_link(b'<', 0, 1, &[0; 4081]).is_some());
        assert!(encode_link(b'<', 0, 1, &[0; 4082]).is_none());
    }

    #[test]
    fn a_short_or_overlong_body_is_refused() {
        assert_eq!(
            MonitorMsg::decode(&frame(&[0, 6, b'M', b'G', 0xFF, 0xFF, 0, 1])),
            Err(MonitorError::Truncated(b'G'))
        );
        let mut m = vec![0, 0, b'M', b'>', 0xFF, 0xFF];
        m.extend_from_slice(&[0; 8]);
        m.push(1);
        m.extend_from_slice(&[0, 4, b'L', b'H', 0xFF, 0xFF, 9]);
        let len = (m.len() - 2) as u16;
        m[..2].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            MonitorMsg::decode(&frame(&m)),
            Err(MonitorError::Trailing(b'>', 1))
        );
        assert_eq!(
            MonitorMsg::decode(&frame(&[0, 4, b'M', b'x', 0xFF, 0xFF])),
            Err(MonitorError::UnknownCode(b'x'))
        );
    }
}
