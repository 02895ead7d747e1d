//! Call-processing frames (`R`, `A`, `E`, `S`, `U`): opaque to the relay except for the few
//! fields it routes by, and the protocol-3 SWITCH byte that it inserts and strips.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{put_header, Frame, Kind, HEADER_LEN, MAX_LEN};

/// Answer results made by the relay itself.
pub mod relay_result {
    /// The switch is not connected.
    pub const NOT_CONNECTED: u8 = 0xE0;
    /// The switch is not served to this session (SWITCH 0 or above 8 included).
    pub const NOT_SERVED: u8 = 0xE1;
    /// Call+ is not enabled for this switch.
    pub const CALL_PLUS_DISABLED: u8 = 0xE2;
    /// Too many requests in flight.
    pub const TOO_MANY_IN_FLIGHT: u8 = 0xE3;
    /// The switch did not answer within 30 s.
    pub const TIMED_OUT: u8 = 0xE4;
}

/// Request CODE of an OfficeServ Call+ display message.
pub const CALL_PLUS_CODE: u8 = b'+';

/// Why a call-processing frame cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("a protocol-3 {0:?} frame must carry a SWITCH byte")]
    MissingSwitch(Kind),
    #[error("{0:?} frame of {1} bytes leaves no room for the SWITCH byte")]
    NoRoomForSwitch(Kind, usize),
    #[error(
        "a body of {body} bytes does not fit in one frame (at most {} bytes)",
        MAX_BODY
    )]
    TooLarge { kind: Kind, body: usize },
}

/// Largest body of one frame (LEN less KIND, CODE and INVOKE).
pub const MAX_BODY: usize = MAX_LEN as usize - 4;

/// A call-processing frame with its parts named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallMsg {
    pub kind: Kind,
    pub code: u8,
    pub invoke: u16,
    /// Present on protocol-3 application links for `R`, `A` and `E`.
    pub switch: Option<u8>,
    pub body: Bytes,
}

impl CallMsg {
    /// The whole frame; refused when the body (with the SWITCH byte) exceeds one frame.
    pub fn encode(&self) -> Result<Bytes, CallError> {
        let extra = usize::from(self.switch.is_some());
        if extra + self.body.len() > MAX_BODY {
            return Err(CallError::TooLarge {
                kind: self.kind,
                body: extra + self.body.len(),
            });
        }
        let mut out = BytesMut::with_capacity(HEADER_LEN + extra + self.body.len());
        put_header(
            &mut out,
            self.kind,
            self.code,
            self.invoke,
            extra + self.body.len(),
        );
        if let Some(sw) = self.switch {
            out.put_u8(sw);
        }
        out.put_slice(&self.body);
        Ok(out.freeze())
    }

    /// Splits a frame into its parts; `p3` says whether it came over a protocol-3 application
    /// link, where `R`, `A` and `E` frames carry SWITCH.
    pub fn decode(frame: &Frame, p3: bool) -> Result<CallMsg, CallError> {
        let kind = frame.kind();
        let bytes = frame.bytes();
        let (switch, body_at) = if p3 && kind.carries_switch_byte() {
            let sw = *frame.body().first().ok_or(CallError::MissingSwitch(kind))?;
            (Some(sw), HEADER_LEN + 1)
        } else {
            (None, HEADER_LEN)
        };
        Ok(CallMsg {
            kind,
            code: frame.code(),
            invoke: frame.invoke(),
            switch,
            body: bytes.slice(body_at..),
        })
    }
}

/// The SWITCH byte of a protocol-3 frame.
pub fn switch_byte(frame: &Frame) -> Result<u8, CallError> {
    frame
        .body()
        .first()
        .copied()
        .ok_or(CallError::MissingSwitch(frame.kind()))
}

/// Appends `frame` (as the switch sent it) to `out` with the SWITCH byte inserted and,
/// when given, INVOKE replaced.
pub fn put_with_switch(
    out: &mut BytesMut,
    frame: &[u8],
    switch: u8,
    invoke: Option<u16>,
) -> Result<(), CallError> {
    let len = u16::from_be_bytes([frame[0], frame[1]]);
    if len >= MAX_LEN {
        let kind = Kind::from_byte(frame[2]).unwrap_or(Kind::Event);
        return Err(CallError::NoRoomForSwitch(kind, frame.len()));
    }
    out.reserve(frame.len() + 1);
    out.put_u16(len + 1);
    out.put_slice(&frame[2..4]);
    match invoke {
        Some(i) => out.put_u16(i),
        None => out.put_slice(&frame[4..6]),
    }
    out.put_u8(switch);
    out.put_slice(&frame[HEADER_LEN..]);
    Ok(())
}

/// Appends `frame` to `out` with INVOKE replaced, and the SWITCH byte removed when
/// `strip_switch` (a protocol-3 request on its way to the switch).
pub fn put_rewritten(out: &mut BytesMut, frame: &Frame, invoke: u16, strip_switch: bool) {
    let b = frame.as_bytes();
    let skip = usize::from(strip_switch);
    let len = u16::from_be_bytes([b[0], b[1]]) - skip as u16;
    out.reserve(b.len());
    out.put_u16(len);
    out.put_slice(&b[2..4]);
    out.put_u16(invoke);
    out.put_slice(&b[HEADER_LEN + skip..]);
}

/// A relay-made answer carrying only `result`.
pub fn relay_answer(code: u8, invoke: u16, switch: Option<u8>, result: u8) -> Bytes {
    CallMsg {
        kind: Kind::Answer,
        code,
        invoke,
        switch,
        body: Bytes::copy_from_slice(&[result]),
    }
    .encode()
    .expect("a one-byte body fits")
}

/// The `device` an event (as the switch sends it) concerns: empty means switch-wide.
/// `None` when the body is too short to hold it.
pub fn event_device(frame: &[u8]) -> Option<&[u8]> {
    let body = frame.get(HEADER_LEN..)?;
    let n = *body.first()? as usize;
    body.get(1..1 + n)
}

/// The result byte of an answer as the switch sends it.
pub fn answer_result(frame: &Frame) -> Option<u8> {
    frame.body().first().copied()
}
