//! This relay's switches on the bus: their state every second, and requests from other sites
//! answered as an application's are (INVOKE made unique on the link, exactly one answer, to
//! the asker).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{subject, Outbox};
use crate::config::SwitchSource;
use crate::connection::outqueue::run_writer;
use crate::hub::session_handle::{NewSession, SessionHandle};
use crate::hub::Hub;
use crate::licensing::usage::Grant;
use wire::call::{put_rewritten, relay_answer};
use wire::{relay_result, Frame, FrameReader, Kind, LinkMsg, Product, Str8, NO_INVOKE};

/// Publishes the state of every enabled local switch each second, until `stop`.
pub async fn publish_states(hub: Arc<Hub>, outbox: Arc<Outbox>, stop: CancellationToken) {
    crate::clock::every(Duration::from_secs(1), stop, || {
        let config = hub.config.load();
        for sw in config
            .switches
            .iter()
            .filter(|s| s.enabled && matches!(s.source(), SwitchSource::Dial { .. }))
        {
            let state = state_frame(hub.slot_of(sw.no).and_then(|s| s.link_handle()).as_deref());
            outbox.publish(sw.no, "state", state);
        }
    })
    .await
}

/// Publishes the notices of the local switches (as JSON, see [`crate::notify::Notice`]) as
/// they are emitted, until `stop`. Notices this relay shows of other relays' switches are not
/// published again.
pub async fn publish_notices(hub: Arc<Hub>, outbox: Arc<Outbox>, stop: CancellationToken) {
    let mut notices = hub.notices.subscribe();
    loop {
        let entry = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            next = notices.recv() => match next {
                Ok(entry) => entry,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                    warn!(skipped, "bus: notices came faster than they could be published");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        let Some(no) = entry.notice.switch() else {
            continue;
        };
        let local = hub
            .config
            .load()
            .switches
            .iter()
            .any(|s| s.no == no && matches!(s.source(), SwitchSource::Dial { .. }));
        if !local || matches!(entry.notice, crate::notify::Notice::AtSite { .. }) {
            continue;
        }
        match serde_json::to_vec(&entry.notice) {
            Ok(json) => outbox.publish(no, "notices", Bytes::from(json)),
            Err(e) => debug!(error = %e, "bus: a notice that cannot be published"),
        }
    }
}

/// The state of a switch as an `o` frame: result 0 with what the switch said of itself while
/// its link is up, 1 while it is not.
pub fn state_frame(link: Option<&crate::hub::LinkHandle>) -> Bytes {
    let msg = match link {
        Some(l) => LinkMsg::OpenResult {
            result: 0,
            model: l.info.model.clone(),
            software: l.info.software.clone(),
            mac: l.info.mac,
            caps: l.info.caps,
        },
        None => LinkMsg::OpenResult {
            result: 1,
            model: Str8::default(),
            software: Str8::default(),
            mac: [0; 6],
            caps: 0,
        },
    };
    // Cannot fail: two str8 fields (255 bytes at most each) and 8 bytes, far below one frame.
    msg.encode().expect("an open result fits")
}

/// Answers other sites' requests for local switch `no`, until `stop`.
pub async fn serve_requests(
    hub: Arc<Hub>,
    client: busseam::Bus,
    site: String,
    no: u8,
    stop: CancellationToken,
) {
    let subject = subject(&site, no, "request");
    let mut requests = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            warn!(%subject, error = %e, "bus: cannot take requests");
            return;
        }
    };
    // The asker of every request in flight is this one session, whose answers are written to
    // a pipe read here and published to each request's reply subject.
    let session = bus_session(&hub, no);
    let (mut answers_rd, mut answers_wr) = tokio::io::duplex(64 << 10);
    let writer_session = session.clone();
    let grace = hub.tuning.close_grace;
    let writer =
        crate::task::spawn(
            async move { run_writer(&writer_session.out, &mut answers_wr, grace).await },
        );
    let mut reader = FrameReader::with_capacity(4096);
    let mut asked = Asked::default();
    loop {
        while let Ok(Some(answer)) = reader.next_frame() {
            if let Some((reply, bytes)) = asked.answered(&answer) {
                if let Err(e) = client.publish(reply, None, bytes).await {
                    debug!(error = %e, "bus: an answer could not be published");
                }
            }
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            read = answers_rd.read_buf(reader.buffer_mut()) => {
                if matches!(read, Ok(0) | Err(_)) {
                    break;
                }
            }
            msg = requests.next() => {
                let Some(msg) = msg else { break };
                let Some(reply) = msg.reply else { continue };
                handle_request(&hub, &session, &mut asked, &client, reply, msg.payload).await;
            }
        }
    }
    writer.abort();
}

/// The session other sites' requests are made as: served switch `no` only, never admitted
/// (it holds no licence and receives no events).
fn bus_session(hub: &Hub, no: u8) -> Arc<SessionHandle> {
    SessionHandle::new(NewSession {
        id: 0,
        peer: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        product: Product::OtherServer,
        protocol: 2,
        app_name: Str8::lossy("bus"),
        served: vec![no],
        default_switch: no,
        filtering: false,
        connected_ms: hub.clock.now_ms(),
        devices: Default::default(),
        queue_limit: hub.tuning.session_queue_bytes,
        grant: Grant::Bypass(Product::OtherServer),
        resume: None,
    })
    .shared()
}

async fn handle_request(
    hub: &Hub,
    session: &Arc<SessionHandle>,
    asked: &mut Asked,
    client: &busseam::Bus,
    reply: String,
    payload: Bytes,
) {
    let frame = match Frame::new(payload) {
        Ok(f) if f.kind() == Kind::Request && f.invoke() != NO_INVOKE => f,
        Ok(f) => {
            debug!(kind = ?f.kind(), "bus: not a request; ignored");
            return;
        }
        Err(e) => {
            debug!(error = %e, "bus: a request that is not a frame; ignored");
            return;
        }
    };
    let Some(invoke) = asked.ask(reply.clone(), frame.invoke()) else {
        let answer = relay_answer(
            frame.code(),
            frame.invoke(),
            None,
            relay_result::TOO_MANY_IN_FLIGHT,
        );
        let _ = client.publish(reply, None, answer).await;
        return;
    };
    let mut ours = BytesMut::with_capacity(frame.as_bytes().len());
    put_rewritten(&mut ours, &frame, invoke, false);
    // Cannot fail: put_rewritten keeps the checked frame's length and kind, replacing INVOKE only.
    let ours = Frame::new(ours.freeze()).expect("same length");
    if let Err(e) = crate::session::request(hub, session, &ours) {
        debug!(error = %e, "bus: request refused");
    }
}

/// The requests in flight from other sites: the INVOKE each was given here, and where its
/// answer goes with the asker's own INVOKE.
#[derive(Default)]
struct Asked {
    next: u16,
    by_invoke: HashMap<u16, (String, u16)>,
}

impl Asked {
    /// An INVOKE of this relay for the asker's `invoke`; `None` when 65 535 are in flight.
    fn ask(&mut self, reply: String, invoke: u16) -> Option<u16> {
        if self.by_invoke.len() >= usize::from(NO_INVOKE) {
            return None;
        }
        loop {
            let candidate = self.next;
            self.next = self.next.wrapping_add(1);
            if candidate != NO_INVOKE && !self.by_invoke.contains_key(&candidate) {
                self.by_invoke.insert(candidate, (reply, invoke));
                return Some(candidate);
            }
        }
    }

    /// Where `answer` goes, with the asker's INVOKE restored.
    fn answered(&mut self, answer: &Frame) -> Option<(String, Bytes)> {
        let (reply, invoke) = self.by_invoke.remove(&answer.invoke())?;
        let mut out = BytesMut::with_capacity(answer.as_bytes().len());
        put_rewritten(&mut out, answer, invoke, false);
        Some((reply, out.freeze()))
    }
}
