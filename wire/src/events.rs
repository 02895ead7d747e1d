//! The fields of call events as the simulated switch sends them (its convention; a real
//! switch's bodies are opaque to the relay): `device str8`, `call u16`, `other str8`, then for
//! `s` a `state u8`. Codes: `n` ringing, `d` dialling, `e` established, `x` cleared, `h` held,
//! `g` retrieved, `t` transferred (other = the new partner), `f` forward changed (other = the
//! target), `s` device state.

use crate::FieldReader;

/// The decoded fields of one event body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFields {
    /// What the code means: `ringing`, `dialling`, …
    pub name: &'static str,
    pub device: String,
    pub call: u16,
    pub other: String,
    /// For `s`: `idle`, `dialling`, `ringing`, `connected` or `held`.
    pub state: Option<&'static str>,
}

/// The name of event `code` in the simulated switch's convention.
pub fn event_name(code: u8) -> Option<&'static str> {
    Some(match code {
        b'n' => "ringing",
        b'd' => "dialling",
        b'e' => "established",
        b'x' => "cleared",
        b'h' => "held",
        b'g' => "retrieved",
        b't' => "transferred",
        b'f' => "forward changed",
        b's' => "device state",
        _ => return None,
    })
}

impl EventFields {
    /// The fields of an event with `code` and `body`; `None` for another code, or a body that
    /// does not follow the convention.
    pub fn decode(code: u8, body: &[u8]) -> Option<EventFields> {
        let name = event_name(code)?;
        let mut r = FieldReader::new(body);
        let device = String::from_utf8_lossy(r.str8()?).into_owned();
        let call = r.u16()?;
        let other = String::from_utf8_lossy(r.str8()?).into_owned();
        let state = if code == b's' {
            Some(match r.u8()? {
                0 => "idle",
                1 => "dialling",
                2 => "ringing",
                3 => "connected",
                4 => "held",
                _ => return None,
            })
        } else {
            None
        };
        r.is_empty().then_some(EventFields {
            name,
            device,
            call,
            other,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_events_decode_and_others_do_not() {
        let mut body = crate::str8_body(&["2201"]);
        body.extend_from_slice(&[0, 7]);
        body.extend_from_slice(&crate::str8_body(&["2202"]));
        assert_eq!(
            EventFields::decode(b'd', &body),
            Some(EventFields {
                name: "dialling",
                device: "2201".into(),
                call: 7,
                other: "2202".into(),
                state: None
            })
        );
        assert_eq!(EventFields::decode(b'Z', &body), None);
        assert_eq!(EventFields::decode(b'd', &body[..4]), None);
        let mut state = crate::str8_body(&["2201"]);
        state.extend_from_slice(&[0, 0, 0, 3]);
        assert_eq!(
            EventFields::decode(b's', &state).and_then(|f| f.state),
            Some("connected")
        );
    }
}
