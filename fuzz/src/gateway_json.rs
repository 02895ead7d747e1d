//! The WebSocket gateway's translation, both ways. Any text an application sends, of any size
//! up to the message limit, becomes a frame that decodes as the protocol says, or an error
//! naming what is wrong; any frame of its session becomes a message or nothing. Never a panic.
//! (CI runs it with -max_len=131072, the default admin.max_message_kib.)

use relay::gateway::messages::FromRelay;
use relay::gateway::socket::unframe;
use relay::gateway::texts::EventTexts;
use relay::gateway::{Bridge, Relayed};
use wire::{CallMsg, FrameReader, Kind, LinkMsg};

fn check_text(bridge: &mut Bridge, protocol: u8, text: &str) {
    match bridge.frame_for(text) {
        Ok(bytes) => {
            let frame = wire::Frame::new(bytes).expect("the gateway makes whole frames");
            match frame.kind() {
                Kind::Request => {
                    let m = CallMsg::decode(&frame, protocol == 3).expect("a request decodes");
                    if let Some(switch) = m.switch {
                        assert!((1..=8).contains(&switch), "SWITCH {switch} sent");
                    }
                }
                Kind::Link => {
                    LinkMsg::decode(&frame).expect("a link message decodes");
                }
                other => panic!("the gateway made a {other:?} frame"),
            }
        }
        Err(mistake) => {
            assert!(!mistake.error.is_empty(), "an error says what is wrong");
            if let Some(field) = &mistake.field {
                assert!(
                    !field.is_empty() && field != "?",
                    "a field is named: {mistake:?}"
                );
            }
        }
    }
}

pub fn check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let protocol = if first & 1 == 0 { 2 } else { 3 };
    let mut bridge = Bridge::new(protocol, 1 + (first >> 1) % 8);
    // The input is split at the first NUL: JSON text before (one message whole, then each of
    // its lines), session frames after.
    let cut = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (text, frames) = rest.split_at(cut);
    let text = String::from_utf8_lossy(text);
    check_text(&mut bridge, protocol, &text);
    for line in text.lines() {
        check_text(&mut bridge, protocol, line);
    }
    let frames = frames.get(1..).unwrap_or_default();
    let mut reader = FrameReader::new();
    reader.buffer_mut().extend_from_slice(frames);
    while let Ok(Some(frame)) = reader.next_frame() {
        if let Relayed::Send(message) = bridge.message_for(&frame) {
            serde_json::to_string(&message).expect("a message serializes");
        }
    }
    // The same frames as they reach a tab together, one message each and batched: every
    // message is JSON the schema's types read back.
    for batch in [false, true] {
        let mut reader = FrameReader::new();
        reader.buffer_mut().extend_from_slice(frames);
        let Ok(Some(run)) = reader.next_run() else {
            return;
        };
        let texts = EventTexts::default();
        let mut out = std::collections::VecDeque::new();
        let mut bridge = Bridge::new(protocol, 1 + (first >> 1) % 8).batching(batch);
        bridge.outgoing(&run, &texts, &mut out);
        // Handed over as a queue entry, twice (the second tab shares what the first made):
        // the same messages.
        for _ in 0..2 {
            let mut handed = std::collections::VecDeque::new();
            let entries = std::collections::VecDeque::from([run.bytes().clone()]);
            Bridge::new(protocol, 1 + (first >> 1) % 8)
                .batching(batch)
                .outgoing_entries(&entries, &texts, &mut handed);
            assert_eq!(untimed(&handed), untimed(&out));
        }
        for (opcode, payload) in messages(&out) {
            if opcode == 1 {
                serde_json::from_slice::<FromRelay>(&payload).expect("a message reads back");
            }
        }
    }
}

/// The messages in what a tab is sent, as (opcode, payload); every byte is whole frames.
fn messages(sent: &std::collections::VecDeque<bytes::Bytes>) -> Vec<(u8, Vec<u8>)> {
    let all: Vec<u8> = sent.iter().flat_map(|b| b.to_vec()).collect();
    let messages = unframe(&all);
    let framed: usize = messages
        .iter()
        .map(|(_, p)| p.len() + relay::gateway::socket::header_len(p.len()))
        .sum();
    assert_eq!(framed, all.len(), "the gateway sends whole frames");
    messages
}

/// The messages as JSON without the events' `time_ms` (a text made again after 50 ms has a
/// time of its own).
fn untimed(sent: &std::collections::VecDeque<bytes::Bytes>) -> Vec<String> {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(o) => {
                o.remove("time_ms");
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    messages(sent)
        .into_iter()
        .map(|(opcode, payload)| match opcode {
            1 => {
                let mut value: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
                strip(&mut value);
                value.to_string()
            }
            other => format!("{other}: {payload:?}"),
        })
        .collect()
}
