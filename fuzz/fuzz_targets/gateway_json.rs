//! The WebSocket gateway's translation, both ways. Any text an application sends becomes a
//! frame that decodes as the protocol says, or an error naming what is wrong; any frame of
//! its session becomes a message or nothing. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::gateway::{Bridge, Relayed};
use wire::{CallMsg, FrameReader, Kind, LinkMsg};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let protocol = if first & 1 == 0 { 2 } else { 3 };
    let mut bridge = Bridge::new(protocol);
    // The input is split at the first NUL: JSON text before, session frames after.
    let cut = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (text, frames) = rest.split_at(cut);
    for line in String::from_utf8_lossy(text).lines() {
        if let Ok(bytes) = bridge.frame_for(line) {
            let frame = wire::Frame::new(bytes).expect("the gateway makes whole frames");
            match frame.kind() {
                Kind::Request => {
                    CallMsg::decode(&frame, protocol == 3).expect("a request decodes");
                }
                Kind::Link => {
                    LinkMsg::decode(&frame).expect("a link message decodes");
                }
                other => panic!("the gateway made a {other:?} frame"),
            }
        }
    }
    let mut reader = FrameReader::new();
    reader.buffer_mut().extend_from_slice(frames.get(1..).unwrap_or_default());
    while let Ok(Some(frame)) = reader.next_frame() {
        if let Relayed::Send(message) = bridge.message_for(&frame) {
            serde_json::to_string(&message).expect("a message serializes");
        }
    }
});
