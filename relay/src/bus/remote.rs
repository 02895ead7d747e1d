//! The link of a switch another site's relay holds: up while that site says it is (its state
//! arrives each second), lost when it says otherwise or falls silent for [`SILENCE`]. Events,
//! records and answers come in from the bus and go through the same paths as a local link's;
//! requests leave through the link's queue, each as one bus request whose reply is its answer.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::subject;
use crate::config::RemoteSwitch;
use crate::connection::outqueue::{run_writer, Ending, OutQueue};
use crate::hub::invoke::InvokeMap;
use crate::hub::{Hub, LinkHandle, LinkInfo, LinkPhase};
use crate::link::{answer_expired, route_answer, take_record};
use crate::notify::LossCause;
use crate::session::fanout::{deliver_events, Scratch};
use wire::{Frame, FrameReader, Kind, LinkMsg};

/// A remote switch whose site has said nothing for this long is down.
pub const SILENCE: Duration = Duration::from_millis(3_500);

/// The link as long as it is up, with the tasks that carry its requests.
struct Up {
    link: Arc<LinkHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Serves local switch `no` from switch `remote.no` of site `remote.site`, until `stop`.
pub async fn run(
    hub: Arc<Hub>,
    client: async_nats::Client,
    no: u8,
    remote: RemoteSwitch,
    stop: CancellationToken,
) {
    let slot = hub.slot(no).expect("switch numbers are 1..=8");
    let subscribe = |kind: &'static str| {
        let client = client.clone();
        let subject = subject(&remote.site, remote.no, kind);
        async move { client.subscribe(subject).await }
    };
    let (mut states, mut events, mut records) = match (
        subscribe("state").await,
        subscribe("events").await,
        subscribe("records").await,
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            warn!(site = %remote.site, remote = remote.no, "bus: cannot subscribe to the remote switch");
            return;
        }
    };
    slot.set_phase(LinkPhase::Connecting);
    let (answers_tx, mut answers_rx) = mpsc::unbounded_channel::<Bytes>();
    let mut up: Option<Up> = None;
    let mut heard = Instant::now();
    let mut scratch = Scratch::default();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let lose = |up: &mut Option<Up>, cause: LossCause| {
        if let Some(gone) = up.take() {
            gone.link.out.end(Ending::Discard { last: None });
            for t in gone.tasks {
                t.abort();
            }
            hub.link_lost(no, cause);
            slot.set_phase(LinkPhase::Connecting);
        }
    };
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                lose(&mut up, LossCause::Stopping);
                return;
            }
            Some(msg) = states.next() => {
                heard = Instant::now();
                match Frame::new(msg.payload).ok().and_then(|f| LinkMsg::decode(&f).ok()) {
                    Some(LinkMsg::OpenResult { result: 0, model, software, mac, caps }) => {
                        if up.is_none() {
                            let info = LinkInfo { model, software, mac, caps, stations: HashSet::new() };
                            info!(site = %remote.site, remote = remote.no, "remote switch up");
                            up = Some(bring_up(&hub, &client, no, &remote, info, answers_tx.clone()));
                        }
                    }
                    Some(LinkMsg::OpenResult { .. }) => lose(&mut up, LossCause::SiteDown),
                    _ => debug!("bus: a state that is not an open result; ignored"),
                }
            }
            Some(msg) = events.next() => {
                if up.is_none() { continue };
                heard = Instant::now();
                let payload = msg.payload;
                let Some(count) = whole_frames(&payload, Kind::Event) else {
                    warn!("bus: events that are not whole event frames; dropped");
                    continue;
                };
                if hub.monitors.watching_links() {
                    let now = hub.clock.now_ms();
                    for_each_frame(&payload, |f| hub.monitors.link_frame(now, no, false, f));
                }
                slot.counters.frames_in.fetch_add(count, Ordering::Relaxed);
                deliver_events(&hub, slot, &payload, 0..payload.len(), count, &mut scratch);
            }
            Some(msg) = records.next() => {
                if up.is_none() { continue };
                for_each_frame(&msg.payload, |f| {
                    if let Ok(frame) = Frame::new(Bytes::copy_from_slice(f)) {
                        if matches!(frame.kind(), Kind::Smdr | Kind::Ucd) {
                            take_record(&hub, no, &frame);
                        }
                    }
                });
            }
            Some(answer) = answers_rx.recv() => {
                let Some(u) = &up else { continue };
                match Frame::new(answer) {
                    Ok(frame) if frame.kind() == Kind::Answer => {
                        if hub.monitors.watching_links() {
                            hub.monitors.link_frame(hub.clock.now_ms(), no, false, frame.as_bytes());
                        }
                        slot.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                        route_answer(&hub, &u.link, &frame);
                    }
                    _ => debug!("bus: a reply that is not an answer; ignored"),
                }
            }
            _ = tick.tick() => {
                if let Some(u) = &up {
                    answer_expired(&hub, &u.link);
                }
                if up.is_some() && heard.elapsed() > SILENCE {
                    lose(&mut up, LossCause::SiteSilent);
                }
            }
        }
    }
}

/// Makes the link of a remote switch that came up: its requests, written to its queue as to a
/// local switch, leave as bus requests, and their replies come back on `answers`.
fn bring_up(
    hub: &Arc<Hub>,
    client: &async_nats::Client,
    no: u8,
    remote: &RemoteSwitch,
    info: LinkInfo,
    answers: mpsc::UnboundedSender<Bytes>,
) -> Up {
    let link = Arc::new(LinkHandle {
        no,
        info,
        out: OutQueue::new(hub.tuning.switch_queue_bytes),
        invokes: Mutex::new(InvokeMap::default()),
        via_bus: true,
    });
    let (mut rd, mut wr) = tokio::io::duplex(64 << 10);
    let writer_link = link.clone();
    let grace = hub.tuning.close_grace;
    let writer = tokio::spawn(async move {
        run_writer(&writer_link.out, &mut wr, grace).await;
    });
    let client = client.clone();
    let subject = subject(&remote.site, remote.no, "request");
    let timeout = hub.tuning.answer_timeout + Duration::from_secs(5);
    let sender = tokio::spawn(async move {
        let mut reader = FrameReader::with_capacity(4096);
        loop {
            while let Ok(Some(frame)) = reader.next_frame() {
                if frame.kind() != Kind::Request {
                    continue;
                }
                let client = client.clone();
                let subject = subject.clone();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let request = async_nats::Request::new()
                        .payload(frame.bytes().clone())
                        .timeout(Some(timeout));
                    // No reply: the request's 30 s deadline answers it.
                    if let Ok(reply) = client.send_request(subject, request).await {
                        let _ = answers.send(reply.payload);
                    }
                });
            }
            match rd.read_buf(reader.buffer_mut()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    hub.link_up(link.clone());
    Up {
        link,
        tasks: vec![writer, sender],
    }
}

/// The number of frames in `payload` when it is whole frames of `kind`, one after another.
fn whole_frames(payload: &[u8], kind: Kind) -> Option<u64> {
    let mut at = 0;
    let mut count = 0;
    while at < payload.len() {
        let len = wire::frame::check(&payload[at..]).ok()??;
        if Kind::from_byte(payload[at + 2]) != Some(kind) {
            return None;
        }
        at += len;
        count += 1;
    }
    (count > 0).then_some(count)
}

fn for_each_frame(payload: &[u8], mut f: impl FnMut(&[u8])) {
    let mut at = 0;
    while let Ok(Some(len)) = wire::frame::check(&payload[at..]) {
        f(&payload[at..at + len]);
        at += len;
    }
}
