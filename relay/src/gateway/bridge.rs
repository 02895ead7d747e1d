//! The translation of one gateway connection: an application's JSON messages into frames of
//! its session, and the session's frames into messages (events' texts shared among tabs, and
//! batched for a tab that asks).

use std::collections::{HashMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tracing::debug;
use wire::call::MAX_BODY;
use wire::frame::Run;
use wire::{CallMsg, Frame, FrameReader, IdentifyResult, Kind, LinkMsg, NO_INVOKE};

use super::close::Closing;
use super::messages::{self, DeviceChange, EventFields, FromRelay, Request, SwitchState, ToRelay};
use super::socket::{self, Message, Socket};
use super::{
    binary_mistake, error, json, parse, send, str8, switch_number, text_message, texts, Mistake,
    PIPE,
};

/// The translation state of one connection: the requests in flight, by the INVOKE given
/// here, with the application's own id; and where switch 0 goes.
pub struct Bridge {
    /// 2 or 3: whether frames carry a SWITCH byte.
    protocol: u8,
    /// The session's default switch (protocol 2: its one switch).
    default_switch: u8,
    /// Events that come together go in one `events` message.
    batch: bool,
    next_invoke: u16,
    asked: HashMap<u16, serde_json::Value>,
    /// The `X` the session sent, once it has.
    closed: Option<Closing>,
}

impl Bridge {
    /// The translation of a session identified with `protocol` (2 or 3), whose default
    /// switch (protocol 2: the one switch) is `default_switch`.
    pub fn new(protocol: u8, default_switch: u8) -> Bridge {
        Bridge {
            protocol,
            default_switch,
            batch: false,
            next_invoke: 0,
            asked: HashMap::new(),
            closed: None,
        }
    }

    /// The same, sending events that come together as one `events` message when `batch`.
    pub fn batching(self, batch: bool) -> Bridge {
        Bridge { batch, ..self }
    }

    /// Bridges until either side ends: the application's messages to `pipe`; the session's
    /// output from `pipe` (what it writes before it is admitted) and from `handed` (its queue's
    /// entries, once admitted) to the application.
    pub(super) async fn run(
        &mut self,
        ws: &mut Socket,
        pipe: &mut DuplexStream,
        handed: &mut mpsc::Receiver<VecDeque<Bytes>>,
        texts: &texts::EventTexts,
    ) -> Closing {
        let mut reader = FrameReader::with_capacity(PIPE);
        let mut messages = VecDeque::new();
        let (mut pipe_open, mut handed_open) = (true, true);
        loop {
            // Everything one read brought is translated together, then written at once. (The
            // session's frames are the relay's own: they are valid.)
            if let Ok(Some(run)) = reader.next_run() {
                self.outgoing(&run, texts, &mut messages);
            }
            if !messages.is_empty() && ws.send(&mut messages).await.is_err() {
                return Closing::gone();
            }
            if !pipe_open && !handed_open {
                return self.closed.take().unwrap_or_else(Closing::normal);
            }
            tokio::select! {
                read = pipe.read_buf(reader.buffer_mut()), if pipe_open => {
                    pipe_open = matches!(read, Ok(n) if n > 0);
                }
                entries = handed.recv(), if handed_open => match entries {
                    Some(entries) => self.outgoing_entries(&entries, texts, &mut messages),
                    None => handed_open = false,
                },
                msg = ws.recv() => {
                    let reply = match msg {
                        Some(Ok(Message::Text(text))) => self.frame_for(text.as_str()),
                        Some(Ok(Message::Pong(_))) => Ok(heartbeat_reply()),
                        Some(Ok(Message::Binary(_))) => Err(binary_mistake()),
                        Some(Ok(Message::Ping(payload))) => {
                            if ws.send_one(socket::pong_frame(&payload)).await.is_err() {
                                return Closing::gone();
                            }
                            continue;
                        }
                        Some(Ok(Message::Frame(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => return Closing::normal(),
                        Some(Err(e)) => return Closing::after_read_error(e),
                    };
                    match reply {
                        Ok(frame) => {
                            if pipe.write_all(&frame).await.is_err() {
                                return self.closed.take().unwrap_or_else(Closing::normal);
                            }
                        }
                        Err(mistake) => {
                            if send(ws, &mistake.message()).await.is_err() {
                                return Closing::gone();
                            }
                        }
                    }
                }
            }
        }
    }

    /// The frame an application's message becomes, or the error that answers it.
    pub fn frame_for(&mut self, text: &str) -> Result<Bytes, Mistake> {
        match parse(text)? {
            ToRelay::Identify(_) => Err(error("this session has identified already", "type")),
            ToRelay::Device(DeviceChange {
                add,
                switch,
                device,
            }) => {
                let switch = self.switch_for(switch)?;
                LinkMsg::Device {
                    add,
                    switch,
                    device: str8(&device, "device")?,
                }
                .encode()
                .map_err(|e| error(e.to_string(), "device"))
            }
            ToRelay::Request(Request {
                id,
                switch,
                code,
                fields,
                body,
            }) => {
                let switch = self.switch_for(switch)?;
                let code = match code.as_bytes() {
                    [c] if c.is_ascii_graphic() => *c,
                    _ => return Err(error(format!("{code:?} is not one character"), "code")),
                };
                let room = MAX_BODY - usize::from(self.protocol != 2);
                let body = match body {
                    Some(hex) => {
                        // Two hex digits a byte: anything longer cannot fit.
                        if hex.len() > 2 * room {
                            return Err(error(
                                format!(
                                    "{} bytes of body; a request's body is at most {room} bytes",
                                    hex.len() / 2
                                ),
                                "body",
                            ));
                        }
                        data_encoding::HEXLOWER_PERMISSIVE
                            .decode(hex.as_bytes())
                            .map_err(|e| error(format!("not hex: {e}"), "body"))?
                    }
                    None => {
                        let mut body = BytesMut::new();
                        for (i, f) in fields.iter().enumerate() {
                            str8(f, &format!("fields[{i}]"))?.put(&mut body);
                            if body.len() > room {
                                return Err(error(
                                    format!(
                                        "the fields take more than {room} bytes, a request's \
                                         largest body (each field is its length and its bytes)"
                                    ),
                                    "fields",
                                ));
                            }
                        }
                        body.to_vec()
                    }
                };
                if self.asked.len() >= usize::from(NO_INVOKE) {
                    return Err(error("65 535 requests are in flight already", "id"));
                }
                let invoke = self.next_free_invoke();
                let frame = CallMsg {
                    kind: Kind::Request,
                    code,
                    invoke,
                    switch: (self.protocol != 2).then_some(switch),
                    body: body.into(),
                }
                .encode()
                .map_err(|e| error(e.to_string(), "body"))?;
                self.asked.insert(invoke, id);
                Ok(frame)
            }
        }
    }

    /// The switch a message's `switch` names: 0 is the session's default; a protocol-2
    /// session has only that one.
    fn switch_for(&self, switch: u8) -> Result<u8, Mistake> {
        let switch = match switch_number(switch, "switch")? {
            0 => self.default_switch,
            n => n,
        };
        if self.protocol == 2 && switch != self.default_switch {
            return Err(error(
                format!(
                    "a protocol-2 session is served switch {} only",
                    self.default_switch
                ),
                "switch",
            ));
        }
        Ok(switch)
    }

    fn next_free_invoke(&mut self) -> u16 {
        loop {
            let candidate = self.next_invoke;
            self.next_invoke = self.next_invoke.wrapping_add(1);
            if candidate != NO_INVOKE && !self.asked.contains_key(&candidate) {
                return candidate;
            }
        }
    }

    /// The WebSocket messages a run of the session's frames becomes, framed, in order, into
    /// `out`. An event's message is shared with every tab that sees it the same way (made by
    /// the first).
    pub fn outgoing(&mut self, run: &Run, texts: &texts::EventTexts, out: &mut VecDeque<Bytes>) {
        let view = texts.view(self.protocol, self.default_switch);
        let mut batch = Batch::default();
        self.translate(run, &view, &mut batch, out);
        batch.flush(out);
    }

    /// The WebSocket messages the session's queue entries become, framed, in order, into
    /// `out`. An entry of several events (a run the session shares with others) becomes the
    /// one buffer of messages the first tab made of it; the others are translated frame by
    /// frame. Entries that are not whole frames (never queued) are skipped.
    pub fn outgoing_entries(
        &mut self,
        entries: &VecDeque<Bytes>,
        texts: &texts::EventTexts,
        out: &mut VecDeque<Bytes>,
    ) {
        let view = texts.view(self.protocol, self.default_switch);
        let mut batch = Batch::default();
        for entry in entries {
            // A single frame (a filtering tab's event, a link message) is never kept as a run:
            // not looked up either.
            let single = matches!(wire::frame::check(entry), Ok(Some(n)) if n == entry.len());
            let shared = |messages: &Bytes| {
                batch.flush(out);
                out.push_back(messages.clone());
            };
            if !single && view.with_run(entry, self.batch, shared) {
                continue;
            }
            let Some(run) = Run::whole(entry.clone()) else {
                debug!(
                    len = entry.len(),
                    "gateway: an entry of the session that is not whole frames"
                );
                continue;
            };
            let (frames, events) = run.frames().fold((0, 0), |(n, e), f| {
                (n + 1, e + usize::from(f.kind == Kind::Event))
            });
            // One event is not worth keeping (a filtering tab's entries are single events).
            if frames < 2 || events < frames {
                self.translate(&run, &view, &mut batch, out);
                continue;
            }
            batch.flush(out);
            let first = out.len();
            self.translate(&run, &view, &mut batch, out);
            batch.flush(out);
            // The run's messages in one buffer: every other tab writes it as one slice.
            let mut made = BytesMut::with_capacity(out.range(first..).map(Bytes::len).sum());
            for message in out.drain(first..) {
                made.extend_from_slice(&message);
            }
            let made = made.freeze();
            out.push_back(made.clone());
            view.keep_run(entry, self.batch, made);
        }
        batch.flush(out);
    }

    /// The messages `run` becomes, into `out`, events going to `batch` when batching (what
    /// `batch` holds is sent before any other message).
    fn translate(
        &mut self,
        run: &Run,
        view: &texts::ViewTexts<'_>,
        batch: &mut Batch,
        out: &mut VecDeque<Bytes>,
    ) {
        let batching = self.batch;
        for frame in run.frames() {
            if frame.kind == Kind::Event {
                let bytes = &run.bytes()[frame.at..frame.end()];
                let make = || match self.message_for(&run.frame(&frame)) {
                    Relayed::Send(m) => Some(json(&m)),
                    Relayed::Ping | Relayed::Nothing => None,
                };
                if batching {
                    view.with(bytes, make, |message| batch.push(message, out));
                } else if let Some(message) = view.with(bytes, make, Bytes::clone) {
                    out.push_back(message);
                }
                continue;
            }
            let message = match self.message_for(&run.frame(&frame)) {
                Relayed::Send(m) => text_message(&m),
                Relayed::Ping => socket::ping_frame(),
                Relayed::Nothing => continue,
            };
            // What came before it goes first.
            batch.flush(out);
            out.push_back(message);
        }
    }

    /// What a frame of the session becomes for the application.
    pub fn message_for(&mut self, frame: &Frame) -> Relayed {
        match frame.kind() {
            Kind::Link => match LinkMsg::decode(frame) {
                Ok(LinkMsg::Heartbeat) => Relayed::Ping,
                Ok(LinkMsg::IdentifyResult {
                    result, switches, ..
                }) => {
                    let reason =
                        IdentifyResult::from_byte(result).map_or("unknown", |r| r.describe());
                    if result != 0 {
                        self.closed = Some(Closing::refused(reason));
                    }
                    Relayed::Send(FromRelay::Identified {
                        result,
                        reason: reason.into(),
                        switches: switches
                            .into_iter()
                            .map(|(switch, up)| SwitchState { switch, up })
                            .collect(),
                    })
                }
                Ok(LinkMsg::SwitchState { switch, up }) => Relayed::Send(FromRelay::Switch {
                    switch: self.named(switch),
                    up,
                }),
                Ok(LinkMsg::DeviceResult { result }) => Relayed::Send(FromRelay::Device { result }),
                Ok(LinkMsg::Close { reason, text }) => {
                    let text = text.to_string();
                    self.closed = Some(Closing::for_reason(reason, &text));
                    Relayed::Send(FromRelay::Close { reason, text })
                }
                other => {
                    debug!(?other, "gateway: a link message not passed on");
                    Relayed::Nothing
                }
            },
            Kind::Event | Kind::Answer => {
                let Ok(m) = CallMsg::decode(frame, self.protocol != 2) else {
                    return Relayed::Nothing;
                };
                let switch = self.named(m.switch.unwrap_or(0));
                let code = char::from(m.code).to_string();
                let body = data_encoding::HEXLOWER.encode(&m.body);
                if m.kind == Kind::Answer {
                    let Some(id) = self.asked.remove(&m.invoke) else {
                        return Relayed::Nothing;
                    };
                    return Relayed::Send(FromRelay::Answer {
                        id,
                        switch,
                        code,
                        result: m.body.first().copied().unwrap_or(0),
                        body,
                    });
                }
                let device = wire::FieldReader::new(&m.body)
                    .str8()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .unwrap_or_default();
                let fields =
                    wire::events::EventFields::decode(m.code, &m.body).map(|f| EventFields {
                        name: f.name.into(),
                        call: f.call,
                        other: f.other,
                        state: f.state.map(str::to_owned),
                    });
                Relayed::Send(FromRelay::Event(messages::Event {
                    switch,
                    code,
                    device,
                    time_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    body,
                    fields,
                }))
            }
            _ => Relayed::Nothing,
        }
    }

    /// The switch a frame concerns, as the application is told: a protocol-2 session's
    /// frames carry no SWITCH byte (and its `W` says 0), but they are its one switch's.
    fn named(&self, switch: u8) -> u8 {
        if self.protocol == 2 || switch == 0 {
            self.default_switch
        } else {
            switch
        }
    }
}

fn heartbeat_reply() -> Bytes {
    // A link message with an empty body always fits in a frame.
    LinkMsg::HeartbeatReply
        .encode()
        .expect("an empty body fits")
}

/// The `events` message being filled: the events' texts, each written as the element it is,
/// after room for the frame's header.
#[derive(Default)]
struct Batch {
    text: BytesMut,
    count: usize,
}

impl Batch {
    /// What an `event` message's text starts with; an element of `events` is the rest after
    /// a `{`.
    const EVENT: &'static [u8] = br#"{"type":"event","#;

    /// Adds an `event` message (framed); sends the batch first when it is full.
    fn push(&mut self, event: &Bytes, out: &mut VecDeque<Bytes>) {
        let Some(fields) = socket::text_of(event).strip_prefix(Self::EVENT) else {
            // Every event's text starts so; one that did not would go as it is.
            self.flush(out);
            out.push_back(event.clone());
            return;
        };
        let written = self.text.len().saturating_sub(socket::MAX_HEADER);
        if self.count > 0 && written + fields.len() >= messages::BATCH_BYTES {
            self.flush(out);
        }
        if self.count == 0 {
            self.text = BytesMut::with_capacity(socket::MAX_HEADER + messages::BATCH_BYTES + 64);
            self.text.put_bytes(0, socket::MAX_HEADER);
            self.text.put_slice(br#"{"type":"events","events":[{"#);
        } else {
            self.text.put_slice(b",{");
        }
        self.text.put_slice(fields);
        self.count += 1;
    }

    /// Sends the events added since the last time, if any.
    fn flush(&mut self, out: &mut VecDeque<Bytes>) {
        if self.count == 0 {
            return;
        }
        use std::fmt::Write;
        // Writing to a buffer cannot fail.
        let _ = write!(self.text, r#"],"count":{}}}"#, self.count);
        out.push_back(socket::frame_text_in_place(std::mem::take(&mut self.text)));
        self.count = 0;
    }
}

/// What the bridge does with a frame of its session.
pub enum Relayed {
    Send(FromRelay),
    /// The relay's heartbeat: ping the application.
    Ping,
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::Str8;

    fn run(frames: &[Frame]) -> Run {
        let bytes: Vec<u8> = frames.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        Run::whole(bytes.into()).unwrap()
    }

    fn event(device: &str) -> Frame {
        let mut body = BytesMut::new();
        Str8::new(device.as_bytes().to_vec())
            .unwrap()
            .put(&mut body);
        let frame = CallMsg {
            kind: Kind::Event,
            code: b'n',
            invoke: NO_INVOKE,
            switch: Some(1),
            body: body.freeze(),
        };
        Frame::new(frame.encode().unwrap()).unwrap()
    }

    /// The text messages in what a tab is sent, each read as a message.
    fn texts_of(sent: &VecDeque<Bytes>) -> Vec<FromRelay> {
        sent.iter()
            .flat_map(|b| socket::unframe(b))
            .map(|(opcode, text)| {
                assert_eq!(opcode, 1, "not text: {text:?}");
                serde_json::from_slice(&text).unwrap()
            })
            .collect()
    }

    fn devices(events: &[messages::Event]) -> Vec<&str> {
        events.iter().map(|e| e.device.as_str()).collect()
    }

    /// The events of a batching tab's messages that must be exactly: an `events` of two, switch
    /// 1 down, an `events` of one.
    fn around_switch_down(got: &[FromRelay]) -> (&[messages::Event], &[messages::Event]) {
        let [FromRelay::Events {
            events: before,
            count: 2,
        }, FromRelay::Switch {
            switch: 1,
            up: false,
        }, FromRelay::Events {
            events: after,
            count: 1,
        }] = got
        else {
            panic!("{got:?}");
        };
        (before, after)
    }

    /// Events that come together go as one `events` message; a message of another kind goes
    /// in its place among them, and the events after it in a batch of their own.
    #[test]
    fn a_batching_tab_gets_events_together_in_order() {
        let texts = texts::EventTexts::default();
        let switch_down = LinkMsg::SwitchState {
            switch: 1,
            up: false,
        }
        .encode()
        .unwrap();
        let frames = [
            event("2201"),
            event("2202"),
            Frame::new(switch_down).unwrap(),
            event("2203"),
        ];
        let mut out = VecDeque::new();
        Bridge::new(3, 1)
            .batching(true)
            .outgoing(&run(&frames), &texts, &mut out);
        let got = texts_of(&out);
        let (first, second) = around_switch_down(&got);
        assert_eq!(
            (devices(first), devices(second)),
            (vec!["2201", "2202"], vec!["2203"])
        );
        // Each element is the `event` message another tab gets, field for field.
        out.clear();
        Bridge::new(3, 1).outgoing(&run(&frames[..1]), &texts, &mut out);
        assert_eq!(texts_of(&out), [FromRelay::Event(first[0].clone())]);
    }

    /// A run handed over whole is translated by the first tab of a view and shared by the
    /// next (the very same texts); single events handed one by one are batched together, and a
    /// link message goes in its place among them.
    #[test]
    fn a_shared_run_is_translated_once_per_view_and_single_events_are_batched() {
        let texts = texts::EventTexts::default();
        let bytes = |frames: &[Frame]| -> Bytes {
            frames
                .iter()
                .flat_map(|f| f.as_bytes().to_vec())
                .collect::<Vec<u8>>()
                .into()
        };
        let run = bytes(&[event("2201"), event("2202"), event("2203")]);
        let entries = VecDeque::from([run.clone()]);
        let (mut first, mut second, mut other_view) =
            (VecDeque::new(), VecDeque::new(), VecDeque::new());
        Bridge::new(3, 1).outgoing_entries(&entries, &texts, &mut first);
        Bridge::new(3, 1).outgoing_entries(&entries, &texts, &mut second);
        Bridge::new(2, 1).outgoing_entries(&entries, &texts, &mut other_view);
        // The run's three messages in one buffer, the very same for the second tab.
        assert_eq!((first.len(), second.len()), (1, 1));
        assert_eq!(first[0].as_ptr(), second[0].as_ptr(), "shared, not remade");
        let got = texts_of(&first);
        assert_eq!(got.len(), 3);
        let FromRelay::Event(e) = &got[2] else {
            panic!("{got:?}")
        };
        assert_eq!(e.device, "2203");
        // Another view makes its own messages (they may differ only in `switch`).
        assert_eq!(texts_of(&other_view).len(), 3);
        assert_ne!(first[0].as_ptr(), other_view[0].as_ptr());

        // A filtering tab's entries: one event each, with a switch going down among them.
        let down = LinkMsg::SwitchState {
            switch: 1,
            up: false,
        }
        .encode()
        .unwrap();
        let entries = VecDeque::from([
            run.slice(..event("2201").as_bytes().len()),
            bytes(&[event("2204")]),
            down,
            bytes(&[event("2205")]),
        ]);
        let mut out = VecDeque::new();
        Bridge::new(3, 1)
            .batching(true)
            .outgoing_entries(&entries, &texts, &mut out);
        let got = texts_of(&out);
        let (before, after) = around_switch_down(&got);
        assert_eq!(
            (devices(before), devices(after)),
            (vec!["2201", "2204"], vec!["2205"])
        );
    }

    #[test]
    fn a_batch_is_at_most_batch_bytes() {
        let texts = texts::EventTexts::default();
        let frames: Vec<Frame> = (0..2000).map(|i| event(&format!("{i:04}"))).collect();
        let mut out = VecDeque::new();
        Bridge::new(3, 1)
            .batching(true)
            .outgoing(&run(&frames), &texts, &mut out);
        let mut seen = Vec::new();
        for (message, framed) in texts_of(&out).into_iter().zip(&out) {
            let text = socket::text_of(framed);
            assert_eq!(socket::unframe(framed).len(), 1, "one message a buffer");
            assert!(text.len() <= messages::BATCH_BYTES + 32, "{}", text.len());
            let FromRelay::Events { events, count } = message else {
                panic!("{message:?}")
            };
            assert_eq!(count, events.len());
            seen.extend(events.into_iter().map(|e| e.device));
        }
        assert!(out.len() > 1, "{} messages", out.len());
        let sent: Vec<String> = (0..2000).map(|i| format!("{i:04}")).collect();
        assert_eq!(seen, sent);
    }
}
