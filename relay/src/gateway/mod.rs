//! The WebSocket/JSON gateway (`/ws` on the admin port): browser and CRM applications speak
//! JSON ([`messages`]) and are sessions like any other. Each gateway connection is bridged to
//! an ordinary session: the session does admission (licences, users, bypass limits), fan-out,
//! filtering, INVOKE routing, heartbeats and the bounded queue that closes a session too slow
//! to read; the bridge only translates. The bridge writes the application's frames to the
//! session over an in-memory pipe; once admitted, the session hands the bridge its queue's
//! entries as they are (the fanned-out runs every session shares), so that a run's text is
//! made once per view and shared by every tab, as the TCP path shares the run itself. The
//! relay's heartbeat becomes a WebSocket ping, and the pong its reply, so a tab that stops
//! answering is closed after 30 s like any silent application. A tab that reads too slowly
//! stops the bridge taking the session's output, the session's queue fills, and the session is
//! closed as too slow.
//!
//! Every message is bounded before it is buffered (`admin.max_message_kib`, enforced by the
//! WebSocket layer frame by frame), every field is checked before a frame is made (a request
//! too large for one frame is an error naming `fields` or `body`), and the connection ends with
//! a close code that says why ([`close`]).
//!
//! Module map: this file serves a connection and reads its `identify`; [`socket`] is the
//! WebSocket (the upgrade, reading, and the frames the relay sends, made once and shared);
//! [`bridge`] translates both ways; [`texts`] shares events' messages among tabs; [`messages`]
//! are the messages; [`close`] the close codes.

pub mod bridge;
pub mod close;
pub mod messages;
pub mod socket;
pub mod texts;

pub use bridge::{Bridge, Relayed};

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tracing::debug;

use crate::hub::{Caller, Hub};
use close::Closing;
use messages::{FromRelay, Identify, ToRelay};
use socket::{Message, Socket};
use wire::{LinkMsg, Product, Str8};

/// Bytes the pipe between the bridge and its session holds each way.
const PIPE: usize = 64 << 10;

/// Bytes one read of a tab's messages takes (its requests are small; a large one takes
/// several reads, up to `admin.max_message_kib`).
pub const READ_CHUNK: usize = 4 << 10;

/// Serves one gateway connection until either side ends it, then closes it with the code
/// that says why.
/// `texts` are the event texts the admin interface's tabs share.
pub async fn serve(hub: Arc<Hub>, mut ws: Socket, caller: Caller, texts: Arc<texts::EventTexts>) {
    let closing = run(&hub, &mut ws, caller, &texts).await;
    closing.send(&mut ws, hub.tuning.close_grace).await;
}

async fn run(
    hub: &Arc<Hub>,
    ws: &mut Socket,
    caller: Caller,
    texts: &texts::EventTexts,
) -> Closing {
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
    let Ready {
        port,
        protocol,
        batch,
        frame,
    } = identify;
    let default_switch = hub.default_switch_for(&caller, protocol);
    let (relay_end, mut pipe) = tokio::io::duplex(PIPE);
    // One batch of the session's output waits while the bridge writes the one before.
    let (output, mut handed) = tokio::sync::mpsc::channel(1);
    let session = crate::task::spawn(crate::session::serve_with(
        hub.clone(),
        Box::new(relay_end),
        caller,
        port,
        crate::session::Output::Handoff(output),
    ));
    if pipe.write_all(&frame).await.is_err() {
        return Closing::internal("the session ended before it read identify");
    }
    let mut bridge = Bridge::new(protocol, default_switch).batching(batch);
    let closing = bridge.run(ws, &mut pipe, &mut handed, texts).await;
    drop(pipe);
    drop(handed);
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
async fn first_identify(ws: &mut Socket) -> Result<Ready, Closing> {
    loop {
        let text = match ws.recv().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                send_mistake(ws, binary_mistake()).await?;
                continue;
            }
            Some(Ok(Message::Ping(payload))) => {
                ws.send_one(socket::pong_frame(&payload))
                    .await
                    .map_err(|_| Closing::gone())?;
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

async fn send_mistake(ws: &mut Socket, mistake: Mistake) -> Result<(), Closing> {
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

/// An `identify` made ready for the session.
#[derive(Debug)]
struct Ready {
    /// The port its product belongs to.
    port: wire::Port,
    protocol: u8,
    /// Whether events go in `events` messages.
    batch: bool,
    /// The `I` frame.
    frame: Bytes,
}

/// The `I` frame of an `identify`, and what the bridge needs to know of it.
fn identify_frame(m: &ToRelay) -> Result<Ready, Mistake> {
    let ToRelay::Identify(Identify {
        product,
        protocol,
        name,
        devices,
        batch,
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
    Ok(Ready {
        port: product.port(),
        protocol: *protocol,
        batch: *batch,
        frame,
    })
}

async fn send(ws: &mut Socket, message: &FromRelay) -> std::io::Result<()> {
    ws.send_one(text_message(message)).await
}

/// `message` as the WebSocket frame it is sent as.
fn text_message(message: &FromRelay) -> Bytes {
    socket::text_frame(&json(message))
}

fn json(message: &FromRelay) -> String {
    // Every field of a message is a string, a number, a bool or a JSON value already parsed:
    // serializing cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `batch` is a bool: anything else is refused naming it, and no session is made.
    #[test]
    fn a_batch_that_is_not_a_bool_is_named() {
        for wrong in [r#""yes""#, "1", "null", "[]"] {
            let text = format!(r#"{{"type":"identify","product":"call","batch":{wrong}}}"#);
            let mistake = parse(&text).and_then(|m| identify_frame(&m)).unwrap_err();
            assert_eq!(
                mistake.field.as_deref(),
                Some("batch"),
                "{wrong}: {mistake:?}"
            );
            assert!(
                mistake.error.contains("expected a boolean"),
                "{}",
                mistake.error
            );
        }
    }

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
