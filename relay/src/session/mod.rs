//! One application connection: identify within the deadline, admission, then requests in and
//! everything else out through the session's queue, until either side ends it.

pub mod fanout;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use tokio::time::Instant;
use tracing::{debug, info, info_span, Instrument};

use crate::connection::outqueue::{run_handoff, run_lending_writer, WriterEnd};
use crate::connection::{end_writer, Due, Keepalive};
use crate::hub::invoke::Pending;
use crate::hub::session_handle::{close_frame, SessionHandle};
use crate::hub::Caller;
use crate::hub::{Hub, SwitchSlot};
use crate::notify::Notice;
use netseam::BoxStream;
use wire::call::{put_rewritten, switch_byte, CALL_PLUS_CODE};
use wire::link::caps;
use wire::{relay_result, CloseReason, Frame, FrameReader, Kind, LinkMsg, Port, NO_INVOKE};

/// How a session ended, for a front that must tell its application in its own terms (the
/// gateway's WebSocket close code): the `X` of a session too slow to read may never reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Closed for reading too slowly (its output queue overflowed).
    TooSlow,
    /// Anything else: the application left, or the relay said why with `X` or `i`.
    Otherwise,
}

/// Where an admitted session's output goes: written to its connection, or handed over as the
/// queue's entries to a front that translates them (the gateway's bridge; its connection then
/// carries only what is written before admission).
pub enum Output {
    Stream,
    Handoff(tokio::sync::mpsc::Sender<std::collections::VecDeque<bytes::Bytes>>),
}

/// Serves one accepted connection to its end.
pub async fn serve(hub: Arc<Hub>, stream: BoxStream, caller: Caller, port: Port) -> Ended {
    serve_with(hub, stream, caller, port, Output::Stream).await
}

/// Serves one connection to its end, its output once admitted going to `output`.
pub async fn serve_with(
    hub: Arc<Hub>,
    mut stream: BoxStream,
    caller: Caller,
    port: Port,
    output: Output,
) -> Ended {
    let peer = caller.addr;
    let mut reader = FrameReader::with_capacity(4096);
    let identify = match read_identify(&hub, &mut stream, &mut reader).await {
        Ok(msg) => msg,
        Err(Unidentified::Malformed(why)) => {
            debug!(%peer, why, "identify refused as malformed");
            refuse(&hub, stream, wire::IdentifyResult::Malformed, Vec::new()).await;
            return Ended::Otherwise;
        }
        Err(Unidentified::Timeout) => {
            debug!(%peer, "no identify within the deadline");
            let frame = close_frame(CloseReason::IdleTimeout, "identify not received in time");
            let _ = tokio::time::timeout(hub.tuning.close_grace, stream.write_all(&frame)).await;
            return Ended::Otherwise;
        }
        Err(Unidentified::Gone) => return Ended::Otherwise,
    };
    // A token of another relay of the site: its session is looked up on the bus first.
    let moved = hub.moved_session(&identify).await;
    let session = match hub.admit(&caller, port, &identify, moved) {
        Ok(session) => session,
        Err((result, switches)) => {
            debug!(%peer, ?result, "identify refused");
            refuse(&hub, stream, result, switches).await;
            return Ended::Otherwise;
        }
    };
    let span = info_span!("session", id = session.id, %peer, product = %session.product);
    run(hub, session, stream, reader, output)
        .instrument(span)
        .await
}

enum Unidentified {
    Malformed(String),
    Timeout,
    Gone,
}

async fn read_identify(
    hub: &Hub,
    stream: &mut BoxStream,
    reader: &mut FrameReader,
) -> Result<LinkMsg, Unidentified> {
    let deadline = Instant::now() + hub.tuning.identify_timeout;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                if frame.kind() != Kind::Link || frame.code() != b'I' {
                    return Err(Unidentified::Malformed(format!(
                        "first frame is {frame:?}, not identify"
                    )));
                }
                return LinkMsg::decode(&frame).map_err(|e| Unidentified::Malformed(e.to_string()));
            }
            Ok(None) => {}
            // Not a frame at all: the stream cannot be trusted with an answer.
            Err(e) => {
                hub.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                debug!(error = %e, "protocol error before identify");
                return Err(Unidentified::Gone);
            }
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(reader.buffer_mut())).await {
            Err(_) => return Err(Unidentified::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Unidentified::Gone),
            Ok(Ok(_)) => {}
        }
    }
}

async fn refuse(
    hub: &Hub,
    mut stream: BoxStream,
    result: wire::IdentifyResult,
    switches: Vec<(u8, bool)>,
) {
    hub.stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
    // Cannot fail: a result byte and at most 8 served switches of 2 bytes.
    let frame = LinkMsg::IdentifyResult {
        result: result as u8,
        switches,
        resume: None,
    }
    .encode()
    .expect("at most 8 switches");
    let _ = tokio::time::timeout(hub.tuning.close_grace, async {
        stream.write_all(&frame).await?;
        stream.shutdown().await
    })
    .await;
}

/// Why the reading side of a session stopped.
enum Stop {
    /// The peer closed or the socket failed.
    PeerGone,
    /// The relay ended the session (its queue ended and the writer finished).
    WriterDone,
}

async fn run(
    hub: Arc<Hub>,
    session: Arc<SessionHandle>,
    stream: BoxStream,
    mut reader: FrameReader,
    output: Output,
) -> Ended {
    info!(
        switches = ?session.served,
        protocol = session.protocol,
        app = %session.app_name,
        "session admitted"
    );
    let (mut rd, wr) = tokio::io::split(stream);
    let writer_session = session.clone();
    let grace = hub.tuning.close_grace;
    let mut writer = crate::task::spawn(
        async move {
            match output {
                Output::Stream => {
                    run_lending_writer(&writer_session.out, Box::new(wr), grace).await
                }
                Output::Handoff(to) => run_handoff(&writer_session.out, &to, grace).await,
            }
        }
        .in_current_span(),
    );

    let stop = read_loop(&hub, &session, &mut rd, &mut reader, &mut writer).await;
    match stop {
        // Nobody to write to; stop the writer now rather than after the grace period.
        Stop::PeerGone => writer.abort(),
        Stop::WriterDone => end_writer(&mut writer, grace).await,
    }
    let slow = session.out.overflowed() && !session.was_replaced();
    if slow {
        hub.stats.slow_closes.fetch_add(1, Ordering::Relaxed);
        hub.notices.emit(Notice::SessionTooSlow {
            peer: session.peer,
            product: session.product,
        });
    }
    hub.remove_session(&session);
    if session.was_replaced() {
        info!("session replaced by its resumed connection");
    } else {
        info!("session ended");
    }
    if slow {
        Ended::TooSlow
    } else {
        Ended::Otherwise
    }
}

async fn read_loop(
    hub: &Hub,
    session: &Arc<SessionHandle>,
    rd: &mut ReadHalf<BoxStream>,
    reader: &mut FrameReader,
    writer: &mut tokio::task::JoinHandle<WriterEnd>,
) -> Stop {
    // Cannot fail: an empty body.
    let heartbeat = LinkMsg::Heartbeat.encode().expect("fits");
    let mut keepalive = Keepalive::new(hub.tuning.heartbeat_interval, hub.tuning.silence_limit);
    loop {
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    keepalive.received();
                    if let Err(why) = handle_frame(hub, session, &frame) {
                        protocol_error(hub, session, &why);
                        return wait_writer(writer).await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    protocol_error(hub, session, &e.into());
                    return wait_writer(writer).await;
                }
            }
        }
        // Biased, in this order, so an application that never stops sending cannot starve
        // the writer's end or the heartbeat and silence checks.
        tokio::select! {
            biased;
            _ = &mut *writer => return Stop::WriterDone,
            due = keepalive.tick() => match due {
                Due::Silent => {
                    session.close(CloseReason::IdleTimeout, "nothing received for 30 s");
                    return wait_writer(writer).await;
                }
                Due::Heartbeat => {
                    let _ = session.send(heartbeat.clone());
                }
                Due::Nothing => {}
            },
            read = rd.read_buf(reader.buffer_mut()) => match read {
                Ok(0) | Err(_) => return Stop::PeerGone,
                Ok(_) => {}
            },
        }
    }
}

async fn wait_writer(writer: &mut tokio::task::JoinHandle<WriterEnd>) -> Stop {
    let _ = (&mut *writer).await;
    Stop::WriterDone
}

/// What an application did that the protocol does not allow; it ends the session.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Violation {
    #[error(transparent)]
    Frame(#[from] wire::FrameError),
    #[error(transparent)]
    Link(#[from] wire::link::LinkError),
    #[error(transparent)]
    Call(#[from] wire::call::CallError),
    #[error("unexpected link-control '{}' from an application", .0.escape_ascii())]
    UnexpectedLink(u8),
    #[error("an application must not send {0:?} frames")]
    UnexpectedKind(Kind),
    #[error("a request must not use INVOKE 0xFFFF")]
    NoInvoke,
}

fn protocol_error(hub: &Hub, session: &SessionHandle, why: &Violation) {
    hub.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
    debug!(%why, "protocol error");
    session.close(CloseReason::ProtocolError, &why.to_string());
}

/// Handles one frame from the application; `Err` is a protocol error that ends the session.
fn handle_frame(hub: &Hub, session: &Arc<SessionHandle>, frame: &Frame) -> Result<(), Violation> {
    match frame.kind() {
        Kind::Request => request(hub, session, frame),
        Kind::Link => match LinkMsg::decode(frame)? {
            LinkMsg::Heartbeat => {
                session.send_link(&LinkMsg::HeartbeatReply);
                Ok(())
            }
            LinkMsg::HeartbeatReply => Ok(()),
            LinkMsg::Device {
                add,
                switch,
                device,
            } => {
                let ok = change_device(hub, session, add, switch, device);
                session.send_link(&LinkMsg::DeviceResult {
                    result: u8::from(!ok),
                });
                Ok(())
            }
            other => Err(Violation::UnexpectedLink(other.code())),
        },
        other => Err(Violation::UnexpectedKind(other)),
    }
}

fn change_device(
    hub: &Hub,
    session: &Arc<SessionHandle>,
    add: bool,
    switch: u8,
    device: wire::Str8,
) -> bool {
    let switch = if switch == 0 {
        session.default_switch
    } else {
        switch
    };
    if !session.serves(switch) || device.is_empty() {
        return false;
    }
    let current = session.devices.load();
    let key = (switch, device);
    if add {
        if current.contains(&key) {
            return true;
        }
        if current.len() >= hub.tuning.max_devices {
            return false;
        }
        // A device the switch does not have is refused while its station table is known.
        if let Some(link) = hub.slot_of(switch).and_then(|s| s.link.load_full()) {
            if !link.info.stations.is_empty() && !link.info.stations.contains(&key.1) {
                return false;
            }
        }
        let mut next: BTreeSet<_> = (**current).clone();
        next.insert(key);
        hub.set_devices(session, switch, next);
        true
    } else {
        if !current.contains(&key) {
            return false;
        }
        let mut next: BTreeSet<_> = (**current).clone();
        next.remove(&key);
        hub.set_devices(session, switch, next);
        true
    }
}

/// Forwards a request to its switch with a link-unique INVOKE, or answers it here.
pub(crate) fn request(
    hub: &Hub,
    session: &Arc<SessionHandle>,
    frame: &Frame,
) -> Result<(), Violation> {
    let app_invoke = frame.invoke();
    if app_invoke == NO_INVOKE {
        return Err(Violation::NoInvoke);
    }
    let code = frame.code();
    let switch = if session.is_p3() {
        switch_byte(frame)?
    } else {
        session.default_switch
    };
    let answer_here = |result: u8| {
        hub.stats.relay_answers.fetch_add(1, Ordering::Relaxed);
        session.answer(code, app_invoke, switch, result);
        Ok(())
    };
    if !session.serves(switch) {
        return answer_here(relay_result::NOT_SERVED);
    }
    let Some(link) = hub.slot_of(switch).and_then(SwitchSlot::link_handle) else {
        return answer_here(relay_result::NOT_CONNECTED);
    };
    if code == CALL_PLUS_CODE
        && !(hub.config.load().options.call_plus && link.info.caps & caps::CALL_PLUS != 0)
    {
        return answer_here(relay_result::CALL_PLUS_DISABLED);
    }
    if !session.start_request(hub.tuning.max_in_flight) {
        return answer_here(relay_result::TOO_MANY_IN_FLIGHT);
    }
    let deadline = Instant::now() + hub.tuning.answer_timeout;
    let pending = Pending {
        session: Arc::downgrade(session),
        app_invoke,
        code,
    };
    let Some(link_invoke) = link.invokes().insert(pending, deadline) else {
        session.finish_request();
        return answer_here(relay_result::TOO_MANY_IN_FLIGHT);
    };
    let mut out = BytesMut::with_capacity(frame.as_bytes().len());
    put_rewritten(&mut out, frame, link_invoke, session.is_p3());
    if !hub.send_to_switch(&link, out.freeze()) {
        // Either the link is going away (its loss answers what it holds, so answer here only
        // if the request is still ours to answer), or the switch is not taking requests as
        // fast as they come.
        let result = if link.out.is_ending() {
            relay_result::NOT_CONNECTED
        } else {
            relay_result::TOO_MANY_IN_FLIGHT
        };
        if link.invokes().take(link_invoke).is_some() {
            session.finish_request();
            return answer_here(result);
        }
        return Ok(());
    }
    hub.stats.requests_forwarded.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
