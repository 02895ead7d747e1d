//! Frames as one readable line each.

use wire::{CallMsg, Frame, Kind, LinkMsg};

/// Renders a frame received on an application link (`p3`: protocol 3).
pub fn describe(frame: &Frame, p3: bool) -> String {
    match frame.kind() {
        Kind::Link => match LinkMsg::decode(frame) {
            Ok(msg) => format!("{msg:?}"),
            Err(e) => format!("bad link-control: {e}"),
        },
        _ => match CallMsg::decode(frame, p3) {
            Ok(m) => {
                let sw = m.switch.map(|s| format!(" sw={s}")).unwrap_or_default();
                let inv = if m.invoke == 0xFFFF {
                    String::new()
                } else {
                    format!(" invoke={}", m.invoke)
                };
                format!(
                    "{:?} '{}'{inv}{sw} body={}",
                    m.kind,
                    m.code.escape_ascii(),
                    m.body.escape_ascii()
                )
            }
            Err(e) => format!("bad frame: {e}"),
        },
    }
}
