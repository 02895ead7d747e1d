//! The WebSocket/JSON gateway (`/ws` on the admin port): browser and CRM applications speak
//! JSON ([`messages`]) and are sessions like any other. Each gateway connection is bridged to
//! an ordinary session over an in-memory pipe: the session does admission (licences, users,
//! bypass limits), fan-out, filtering, INVOKE routing, heartbeats and the bounded queue that
//! closes a session too slow to read; the bridge only translates. The relay's heartbeat
//! becomes a WebSocket ping, and the pong its reply, so a tab that stops answering is closed
//! after 30 s like any silent application. A tab that reads too slowly stops the bridge
//! reading the pipe, the session's queue fills, and the session is closed as too slow.

pub mod messages;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tracing::debug;

use crate::hub::{Caller, Hub};
use messages::{Device, EventFields, FromRelay, SwitchState, ToRelay};
use wire::{CallMsg, Frame, FrameReader, IdentifyResult, Kind, LinkMsg, Product, Str8, NO_INVOKE};

/// Bytes the pipe between the bridge and its session holds each way.
const PIPE: usize = 64 << 10;

/// Serves one gateway connection until either side ends it.
pub async fn serve(hub: Arc<Hub>, mut ws: WebSocket, caller: Caller) {
    let limit = hub.tuning.identify_timeout;
    let identify = match tokio::time::timeout(limit, first_identify(&mut ws)).await {
        Ok(Some(identify)) => identify,
        Ok(None) => return,
        Err(_) => {
            let _ = send(
                &mut ws,
                &FromRelay::Close {
                    reason: wire::CloseReason::IdleTimeout.byte(),
                    text: "identify not received in time".into(),
                },
            )
            .await;
            return;
        }
    };
    let (port, protocol, frame) = identify;
    let (relay_end, mut bridge) = tokio::io::duplex(PIPE);
    let session = tokio::spawn(crate::session::serve(
        hub.clone(),
        Box::new(relay_end),
        caller,
        port,
    ));
    if bridge.write_all(&frame).await.is_err() {
        return;
    }
    Bridge::new(protocol).run(&mut ws, &mut bridge).await;
    drop(bridge);
    let _ = session.await;
    let _ = ws.send(Message::Close(None)).await;
}

/// Reads messages until a valid `identify`; answers every other one with an error naming
/// what is wrong. `None` when the application went away.
async fn first_identify(ws: &mut WebSocket) -> Option<(wire::Port, u8, Bytes)> {
    loop {
        let text = match ws.recv().await? {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        };
        match parse(&text).and_then(|m| identify_frame(&m)) {
            Ok(ready) => return Some(ready),
            Err(mistake) => {
                if send(ws, &mistake.message()).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// A message, or the error that names what is wrong with it.
fn parse(text: &str) -> Result<ToRelay, Mistake> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let error = e.inner().to_string();
        let path = e.path().to_string();
        // Within a message (tagged by `type`), serde names the field only in its text.
        let field = if path != "." {
            Some(path)
        } else {
            ["unknown field `", "missing field `", "unknown variant `"]
                .iter()
                .find_map(|p| error.strip_prefix(p))
                .and_then(|rest| rest.split('`').next())
                .map(|name| {
                    if error.starts_with("unknown variant") {
                        "type".to_owned()
                    } else {
                        name.to_owned()
                    }
                })
        };
        Mistake { error, field }
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

/// The `I` frame of an `identify`, with the port its product belongs to and its protocol.
fn identify_frame(m: &ToRelay) -> Result<(wire::Port, u8, Bytes), Mistake> {
    let ToRelay::Identify {
        product,
        protocol,
        name,
        devices,
    } = m
    else {
        return Err(error("identify first", "type"));
    };
    let product = Product::parse(product)
        .ok_or_else(|| error(format!("{product:?} is not a product"), "product"))?;
    if !matches!(protocol, 2 | 3) {
        return Err(error(format!("{protocol} is not 2 or 3"), "protocol"));
    }
    let devices = devices
        .iter()
        .map(|d: &Device| wire::DeviceRef {
            switch: d.switch,
            device: Str8::lossy(&d.device),
        })
        .collect();
    let frame = LinkMsg::Identify {
        protocol: *protocol,
        product: product.byte(),
        app_name: Str8::lossy(name),
        devices,
        resume: None,
    }
    .encode()
    .map_err(|e| error(e.to_string(), "devices"))?;
    Ok((product.port(), *protocol, frame))
}

async fn send(ws: &mut WebSocket, message: &FromRelay) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).expect("a message serializes");
    ws.send(Message::Text(text.into())).await
}

/// The translation state of one connection: the requests in flight, by the INVOKE given
/// here, with the application's own id.
pub struct Bridge {
    /// 2 or 3: whether frames carry a SWITCH byte.
    protocol: u8,
    next_invoke: u16,
    asked: HashMap<u16, serde_json::Value>,
}

impl Bridge {
    /// The translation of a session identified with `protocol` (2 or 3).
    pub fn new(protocol: u8) -> Bridge {
        Bridge {
            protocol,
            next_invoke: 0,
            asked: HashMap::new(),
        }
    }

    async fn run(&mut self, ws: &mut WebSocket, pipe: &mut DuplexStream) {
        let mut reader = FrameReader::with_capacity(PIPE);
        loop {
            // Everything one read brought is queued, then written at once.
            let mut queued = false;
            while let Ok(Some(frame)) = reader.next_frame() {
                let message = match self.message_for(&frame) {
                    Relayed::Send(m) => Message::Text(
                        serde_json::to_string(&m)
                            .expect("a message serializes")
                            .into(),
                    ),
                    Relayed::Ping => Message::Ping(Bytes::new()),
                    Relayed::Nothing => continue,
                };
                if ws.feed(message).await.is_err() {
                    return;
                }
                queued = true;
            }
            if queued && ws.flush().await.is_err() {
                return;
            }
            tokio::select! {
                read = pipe.read_buf(reader.buffer_mut()) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return;
                    }
                }
                msg = ws.recv() => {
                    let reply = match msg {
                        Some(Ok(Message::Text(text))) => self.frame_for(&text),
                        Some(Ok(Message::Pong(_))) => Ok(LinkMsg::HeartbeatReply.encode().expect("fits")),
                        Some(Ok(Message::Binary(_))) => Err(Mistake {
                            error: "send JSON in text messages".into(),
                            field: None,
                        }),
                        Some(Ok(Message::Ping(_))) => continue,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    };
                    match reply {
                        Ok(frame) => {
                            if pipe.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                        Err(mistake) => {
                            if send(ws, &mistake.message()).await.is_err() {
                                return;
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
            ToRelay::Identify { .. } => Err(error("this session has identified already", "type")),
            ToRelay::Device {
                add,
                switch,
                device,
            } => LinkMsg::Device {
                add,
                switch,
                device: Str8::new(device.into_bytes())
                    .map_err(|e| error(e.to_string(), "device"))?,
            }
            .encode()
            .map_err(|e| error(e.to_string(), "device")),
            ToRelay::Request {
                id,
                switch,
                code,
                fields,
                body,
            } => {
                let code = match code.as_bytes() {
                    [c] if c.is_ascii_graphic() => *c,
                    _ => return Err(error(format!("{code:?} is not one character"), "code")),
                };
                let body = match body {
                    Some(hex) => data_encoding::HEXLOWER_PERMISSIVE
                        .decode(hex.as_bytes())
                        .map_err(|e| error(format!("not hex: {e}"), "body"))?,
                    None => {
                        let mut body = Vec::new();
                        for (i, f) in fields.iter().enumerate() {
                            Str8::new(f.clone().into_bytes())
                                .map_err(|e| error(e.to_string(), &format!("fields[{i}]")))?
                                .put(&mut body);
                        }
                        body
                    }
                };
                if self.asked.len() >= usize::from(NO_INVOKE) {
                    return Err(error("65 535 requests are in flight already", "id"));
                }
                let invoke = self.next_free_invoke();
                self.asked.insert(invoke, id);
                let msg = CallMsg {
                    kind: Kind::Request,
                    code,
                    invoke,
                    switch: (self.protocol != 2).then_some(switch),
                    body: body.into(),
                };
                Ok(msg.encode())
            }
        }
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
                }) => Relayed::Send(FromRelay::Identified {
                    result,
                    reason: IdentifyResult::from_byte(result)
                        .map_or("unknown", |r| r.describe())
                        .into(),
                    switches: switches
                        .into_iter()
                        .map(|(switch, up)| SwitchState { switch, up })
                        .collect(),
                }),
                Ok(LinkMsg::SwitchState { switch, up }) => {
                    Relayed::Send(FromRelay::Switch { switch, up })
                }
                Ok(LinkMsg::DeviceResult { result }) => Relayed::Send(FromRelay::Device { result }),
                Ok(LinkMsg::Close { reason, text }) => Relayed::Send(FromRelay::Close {
                    reason,
                    text: text.to_string(),
                }),
                other => {
                    debug!(?other, "gateway: a link message not passed on");
                    Relayed::Nothing
                }
            },
            Kind::Event | Kind::Answer => {
                let Ok(m) = CallMsg::decode(frame, self.protocol != 2) else {
                    return Relayed::Nothing;
                };
                let switch = m.switch.unwrap_or(0);
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
}

/// What the bridge does with a frame of its session.
pub enum Relayed {
    Send(FromRelay),
    /// The relay's heartbeat: ping the application.
    Ping,
    Nothing,
}
