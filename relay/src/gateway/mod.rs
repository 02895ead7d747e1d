//! The WebSocket/JSON gateway (`/ws` on the admin port): browser and CRM applications speak
//! JSON ([`messages`]) and are sessions like any other. Each gateway connection is bridged to
//! an ordinary session over an in-memory pipe: the session does admission (licences, users,
//! bypass limits), fan-out, filtering, INVOKE routing, heartbeats and the bounded queue that
//! closes a session too slow to read; the bridge only translates. The relay's heartbeat
//! becomes a WebSocket ping, and the pong its reply, so a tab that stops answering is closed
//! after 30 s like any silent application. A tab that reads too slowly stops the bridge
//! reading the pipe, the session's queue fills, and the session is closed as too slow.
//!
//! Every message is bounded before it is buffered (`admin.max_message_kib`, enforced by the
//! WebSocket layer frame by frame), every field is checked before a frame is made (a request
//! too large for one frame is an error naming `fields` or `body`), and the connection ends with
//! a close code that says why ([`close`]).

pub mod close;
pub mod messages;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tracing::debug;

use crate::hub::{Caller, Hub};
use close::Closing;
use messages::{DeviceChange, EventFields, FromRelay, Identify, Request, SwitchState, ToRelay};
use wire::call::MAX_BODY;
use wire::{CallMsg, Frame, FrameReader, IdentifyResult, Kind, LinkMsg, Product, Str8, NO_INVOKE};

/// Bytes the pipe between the bridge and its session holds each way.
const PIPE: usize = 64 << 10;

/// Serves one gateway connection until either side ends it, then closes it with the code
/// that says why.
pub async fn serve(hub: Arc<Hub>, mut ws: WebSocket, caller: Caller) {
    let closing = run(&hub, &mut ws, caller).await;
    closing.send(&mut ws, hub.tuning.close_grace).await;
}

async fn run(hub: &Arc<Hub>, ws: &mut WebSocket, caller: Caller) -> Closing {
    let limit = hub.tuning.identify_timeout;
    let identify = match tokio::time::timeout(limit, first_identify(ws)).await {
        Ok(Ok(identify)) => identify,
        Ok(Err(closing)) => return closing,
        Err(_) => {
            let reason = wire::CloseReason::IdleTimeout;
            let text = "identify not received in time";
            let _ = send(
                ws,
                &FromRelay::Close {
                    reason: reason.byte(),
                    text: text.into(),
                },
            )
            .await;
            return Closing::for_reason(reason.byte(), text);
        }
    };
    let (port, protocol, frame) = identify;
    let default_switch = hub.default_switch_for(&caller, protocol);
    let (relay_end, mut pipe) = tokio::io::duplex(PIPE);
    let session = tokio::spawn(crate::session::serve(
        hub.clone(),
        Box::new(relay_end),
        caller,
        port,
    ));
    if pipe.write_all(&frame).await.is_err() {
        return Closing::internal("the session ended before it read identify");
    }
    let mut bridge = Bridge::new(protocol, default_switch);
    let closing = bridge.run(ws, &mut pipe).await;
    drop(pipe);
    match session.await {
        Ok(crate::session::Ended::TooSlow) => Closing::for_reason(
            wire::CloseReason::TooSlow.byte(),
            "too slow: the relay's queue for this session overflowed",
        ),
        Ok(crate::session::Ended::Otherwise) => closing,
        Err(e) => {
            debug!(error = %e, "gateway: the session task failed");
            Closing::internal("the session failed")
        }
    }
}

/// Reads messages until a valid `identify`; answers every other one with an error naming
/// what is wrong. `Err` when the connection is to end (with how).
async fn first_identify(ws: &mut WebSocket) -> Result<(wire::Port, u8, Bytes), Closing> {
    loop {
        let text = match ws.recv().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                send_mistake(ws, binary_mistake()).await?;
                continue;
            }
            Some(Ok(Message::Close(_))) | None => return Err(Closing::normal()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(Closing::after_read_error(e)),
        };
        match parse(&text).and_then(|m| identify_frame(&m)) {
            Ok(ready) => return Ok(ready),
            Err(mistake) => send_mistake(ws, mistake).await?,
        }
    }
}

async fn send_mistake(ws: &mut WebSocket, mistake: Mistake) -> Result<(), Closing> {
    send(ws, &mistake.message())
        .await
        .map_err(|_| Closing::gone())
}

fn binary_mistake() -> Mistake {
    Mistake {
        error: "send JSON in text messages, not binary ones".into(),
        field: None,
    }
}

/// A message, or the error that names what is wrong with it and in which field.
pub fn parse(text: &str) -> Result<ToRelay, Mistake> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Mistake {
        error: format!("the message is not JSON: {e}"),
        field: None,
    })?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(Mistake {
            error: "a message is a JSON object with a \"type\": identify, request or device".into(),
            field: None,
        });
    };
    let kind = match object.remove("type") {
        Some(serde_json::Value::String(kind)) => kind,
        Some(other) => {
            return Err(error(
                format!("{other} is not a message type: identify, request or device"),
                "type",
            ))
        }
        None => {
            return Err(error(
                "missing: every message has a \"type\" (identify, request or device)",
                "type",
            ))
        }
    };
    let rest = serde_json::Value::Object(object);
    match kind.as_str() {
        "identify" => fields(rest).map(ToRelay::Identify),
        "request" => fields(rest).map(ToRelay::Request),
        "device" => fields(rest).map(ToRelay::Device),
        other => Err(error(
            format!("{other:?} is not a message type: identify, request or device"),
            "type",
        )),
    }
}

/// The fields of one kind of message, or the error naming the first that is wrong.
fn fields<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Mistake> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let text = e.inner().to_string();
        let path = e.path().to_string();
        let field = if path != "." {
            Some(path)
        } else {
            // A field missing, repeated or not known is named only in serde's text.
            ["unknown field `", "missing field `", "duplicate field `"]
                .iter()
                .find_map(|p| text.strip_prefix(p))
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        // A key may be the empty string: name it as JSON writes it.
        let field = field.map(|f| if f.is_empty() { "\"\"".to_owned() } else { f });
        // Say the range an operator can use rather than the Rust type.
        let leaf = field
            .as_deref()
            .and_then(|f| f.rsplit('.').next())
            .unwrap_or_default();
        let range = match leaf {
            "switch" => "a switch number (1..=8, or 0 for the default switch)",
            "protocol" => "2 or 3",
            _ => "a number in 0..=255",
        };
        let text = text.replace("expected u8", &format!("expected {range}"));
        Mistake { error: text, field }
    })
}

/// A message the gateway cannot take: what is wrong, and in which field.
#[derive(Debug)]
pub struct Mistake {
    pub error: String,
    pub field: Option<String>,
}

impl Mistake {
    pub fn message(self) -> FromRelay {
        FromRelay::Error {
            error: self.error,
            field: self.field,
        }
    }
}

fn error(error: impl Into<String>, field: &str) -> Mistake {
    Mistake {
        error: error.into(),
        field: Some(field.into()),
    }
}

/// A switch number a message may carry: 1..=8, or 0 for the default.
fn switch_number(switch: u8, field: &str) -> Result<u8, Mistake> {
    if switch <= 8 {
        Ok(switch)
    } else {
        Err(error(
            format!("{switch} is not a switch number (1..=8, or 0 for the default switch)"),
            field,
        ))
    }
}

/// `text` as a `str8` field, or the error naming `field`.
fn str8(text: &str, field: &str) -> Result<Str8, Mistake> {
    Str8::new(text.as_bytes().to_vec())
        .map_err(|_| error(format!("{} bytes; at most 255 fit", text.len()), field))
}

/// The `I` frame of an `identify`, with the port its product belongs to and its protocol.
fn identify_frame(m: &ToRelay) -> Result<(wire::Port, u8, Bytes), Mistake> {
    let ToRelay::Identify(Identify {
        product,
        protocol,
        name,
        devices,
    }) = m
    else {
        return Err(error(
            format!("identify first (this is a {})", m.type_name()),
            "type",
        ));
    };
    let product = Product::parse(product)
        .ok_or_else(|| error(format!("{product:?} is not a product"), "product"))?;
    if !matches!(protocol, 2 | 3) {
        return Err(error(format!("{protocol} is not 2 or 3"), "protocol"));
    }
    if devices.len() > 255 {
        return Err(error(
            format!("{} devices; at most 255 in one identify", devices.len()),
            "devices",
        ));
    }
    let devices = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Ok(wire::DeviceRef {
                switch: switch_number(d.switch, &format!("devices[{i}].switch"))?,
                device: str8(&d.device, &format!("devices[{i}].device"))?,
            })
        })
        .collect::<Result<_, Mistake>>()?;
    let frame = LinkMsg::Identify {
        protocol: *protocol,
        product: product.byte(),
        app_name: str8(name, "name")?,
        devices,
        resume: None,
    }
    .encode()
    .map_err(|_| {
        error(
            "the devices do not fit in one identify: watch fewer, or add them with device messages",
            "devices",
        )
    })?;
    Ok((product.port(), *protocol, frame))
}

async fn send(ws: &mut WebSocket, message: &FromRelay) -> Result<(), axum::Error> {
    ws.send(text_message(message)).await
}

fn text_message(message: &FromRelay) -> Message {
    // Every field of a message is a string, a number, a bool or a JSON value already parsed:
    // serializing cannot fail.
    let text = serde_json::to_string(message).unwrap_or_default();
    Message::Text(text.into())
}

/// The translation state of one connection: the requests in flight, by the INVOKE given
/// here, with the application's own id; and where switch 0 goes.
pub struct Bridge {
    /// 2 or 3: whether frames carry a SWITCH byte.
    protocol: u8,
    /// The session's default switch (protocol 2: its one switch).
    default_switch: u8,
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
            next_invoke: 0,
            asked: HashMap::new(),
            closed: None,
        }
    }

    async fn run(&mut self, ws: &mut WebSocket, pipe: &mut DuplexStream) -> Closing {
        let mut reader = FrameReader::with_capacity(PIPE);
        loop {
            // Everything one read brought is queued, then written at once.
            let mut queued = false;
            while let Ok(Some(frame)) = reader.next_frame() {
                let message = match self.message_for(&frame) {
                    Relayed::Send(m) => text_message(&m),
                    Relayed::Ping => Message::Ping(Bytes::new()),
                    Relayed::Nothing => continue,
                };
                if ws.feed(message).await.is_err() {
                    return Closing::gone();
                }
                queued = true;
            }
            if queued && ws.flush().await.is_err() {
                return Closing::gone();
            }
            tokio::select! {
                read = pipe.read_buf(reader.buffer_mut()) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return self.closed.take().unwrap_or_else(Closing::normal);
                    }
                }
                msg = ws.recv() => {
                    let reply = match msg {
                        Some(Ok(Message::Text(text))) => self.frame_for(&text),
                        Some(Ok(Message::Pong(_))) => Ok(heartbeat_reply()),
                        Some(Ok(Message::Binary(_))) => Err(binary_mistake()),
                        Some(Ok(Message::Ping(_))) => continue,
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
                Relayed::Send(FromRelay::Event {
                    switch,
                    code,
                    device,
                    time_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    body,
                    fields,
                })
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

    /// Found by fuzzing: a key that is the empty string is named as JSON writes it.
    #[test]
    fn an_unknown_empty_key_is_named() {
        let mistake = parse(r#"{"type":"request","id":1,"code":"K","":2}"#).unwrap_err();
        assert_eq!(mistake.field.as_deref(), Some("\"\""));
        assert!(
            mistake.error.starts_with("unknown field ``"),
            "{}",
            mistake.error
        );
    }
}
