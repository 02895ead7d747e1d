//! Frames as transcript lines: names and fields, not bytes.

use wire::{CallMsg, FieldReader, Frame, IdentifyResult, Kind, LinkMsg, MonitorMsg};

/// A frame an application received.
pub fn app_frame(frame: &Frame, p3: bool) -> String {
    match frame.kind() {
        Kind::Link => match LinkMsg::decode(frame) {
            Ok(msg) => link(&msg),
            Err(e) => format!("malformed link-control: {e}"),
        },
        Kind::Answer | Kind::Event => match CallMsg::decode(frame, p3) {
            Ok(m) => call(&m),
            Err(e) => format!("malformed: {e}"),
        },
        other => format!("{other:?} frame {:02X?}", frame.as_bytes()),
    }
}

/// A link-control message.
pub fn link(msg: &LinkMsg) -> String {
    match msg {
        LinkMsg::IdentifyResult {
            result,
            switches,
            resume,
        } => {
            let desc = IdentifyResult::from_byte(*result).map_or("unknown", |r| r.describe());
            let sw: Vec<String> = switches
                .iter()
                .map(|(no, up)| format!("{no} {}", if *up { "up" } else { "down" }))
                .collect();
            let resume = resume.as_ref().map_or(String::new(), |g| {
                let last: Vec<String> = g
                    .last
                    .iter()
                    .map(|(no, seq)| format!("{no}#{seq}"))
                    .collect();
                format!(
                    "; {} token {} at [{}]",
                    if g.resumed { "resumed," } else { "resumable," },
                    data_encoding::HEXLOWER.encode(&g.token[8..]),
                    last.join(", ")
                )
            });
            format!(
                "identify result {result} ({desc}); switches [{}]{resume}",
                sw.join(", ")
            )
        }
        LinkMsg::Lost { switch, lost } if *lost == wire::link::LOST_UNKNOWN => {
            format!("G switch {switch}: an unknown number of events lost")
        }
        LinkMsg::Lost { switch, lost } => format!("G switch {switch}: {lost} event(s) lost"),
        LinkMsg::Sequence { switch, seq } => format!("N {switch}#{seq}"),
        LinkMsg::DeviceResult { result } => format!("device result {result}"),
        LinkMsg::SwitchState { switch, up } => {
            format!("W switch {switch} {}", if *up { "up" } else { "down" })
        }
        LinkMsg::Close { reason, text } => format!("X reason {reason}: {text}"),
        other => format!("{other:?}"),
    }
}

/// An answer or event, with the switch simulator's fields named.
pub fn call(m: &CallMsg) -> String {
    let sw = m.switch.map(|s| format!(" sw={s}")).unwrap_or_default();
    let code = m.code.escape_ascii();
    match m.kind {
        Kind::Answer => {
            let result = m
                .body
                .first()
                .map_or("none".into(), |r| format!("0x{r:02X}"));
            let extra = hex(m.body.get(1..).unwrap_or_default());
            format!("A '{code}' invoke={}{sw} result={result}{extra}", m.invoke)
        }
        Kind::Event => match event_fields(&m.body) {
            Some((device, call, other, rest)) => format!(
                "E '{code}'{sw} device={device} call={call} other={other}{}",
                hex(rest)
            ),
            None => format!("E '{code}'{sw} body={}", m.body.escape_ascii()),
        },
        _ => format!("{:?} '{code}' body={}", m.kind, m.body.escape_ascii()),
    }
}

/// A frame on a monitor or export connection.
pub fn monitor_frame(frame: &Frame) -> Option<String> {
    match frame.kind() {
        Kind::Monitor => match MonitorMsg::decode(frame) {
            Ok(MonitorMsg::Gap { dropped }) => Some(format!("G: {dropped} frame(s) missed")),
            Ok(MonitorMsg::Link {
                code,
                switch,
                frame: inner,
                ..
            }) => {
                // Heartbeats are left out, as for applications.
                if inner.kind() == Kind::Link && matches!(inner.code(), b'H' | b'h') {
                    return None;
                }
                let what = match inner.kind() {
                    Kind::Request => switch_frame(&inner),
                    Kind::Answer | Kind::Event => match CallMsg::decode(&inner, false) {
                        Ok(m) => call(&m),
                        Err(e) => format!("malformed: {e}"),
                    },
                    Kind::Link => match LinkMsg::decode(&inner) {
                        Ok(m) => format!("{m:?}"),
                        Err(e) => format!("malformed link-control: {e}"),
                    },
                    Kind::Smdr | Kind::Ucd => record(&inner),
                    Kind::Monitor => "M".into(),
                };
                Some(format!("{} sw={switch} {what}", code.escape_ascii()))
            }
            Err(e) => Some(format!("malformed monitor frame: {e}")),
        },
        Kind::Smdr | Kind::Ucd => Some(format!("export {}", record(frame))),
        Kind::Link => match LinkMsg::decode(frame) {
            Ok(LinkMsg::PasswordResult { result }) => Some(format!(
                "password {}",
                if result == 0 { "accepted" } else { "refused" }
            )),
            Ok(m) => Some(format!("{m:?}")),
            Err(e) => Some(format!("malformed link-control: {e}")),
        },
        other => Some(format!("unexpected {other:?} frame")),
    }
}

fn record(frame: &Frame) -> String {
    let label = if frame.kind() == Kind::Smdr {
        "SMDR"
    } else {
        "UCD"
    };
    format!("{label} {}", frame.body().escape_ascii())
}

/// One record of the export port's native stream (its bytes before the NUL).
pub fn native_record(text: &[u8]) -> String {
    format!("export native {}", text.escape_ascii())
}

/// A frame the switch received from the relay.
pub fn switch_frame(frame: &Frame) -> String {
    let fields =
        str8_fields(frame.body()).unwrap_or_else(|| vec![frame.body().escape_ascii().to_string()]);
    format!(
        "{:?} '{}' invoke={} {}",
        frame.kind(),
        frame.code().escape_ascii(),
        frame.invoke(),
        fields.join(" ")
    )
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return String::new();
    }
    let h: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(" +[{}]", h.join(" "))
}

fn event_fields(body: &[u8]) -> Option<(String, u16, String, &[u8])> {
    let mut r = FieldReader::new(body);
    let device = r.str8()?.escape_ascii().to_string();
    let call = r.u16()?;
    let other = r.str8()?.escape_ascii().to_string();
    Some((device, call, other, r.rest()))
}

fn str8_fields(body: &[u8]) -> Option<Vec<String>> {
    let mut r = FieldReader::new(body);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(r.str8()?.escape_ascii().to_string());
    }
    Some(out)
}
