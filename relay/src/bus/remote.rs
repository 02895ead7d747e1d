//! The link of a switch another site's relay holds: up while that site says it is (its state
//! arrives each second), lost when it says otherwise or falls silent for [`SILENCE`]. Events,
//! records and answers come in from the bus and go through the same paths as a local link's;
//! requests leave through the link's queue, each as one bus request whose reply is its answer.

use std::collections::HashSet;
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
use crate::config::{RemoteSwitch, SwitchNo};
use crate::connection::outqueue::{run_writer, Ending, OutQueue};
use crate::hub::invoke::InvokeMap;
use crate::hub::{Hub, LinkHandle, LinkInfo, LinkPhase};
use crate::link::{answer_expired, dispatch};
use crate::notify::{LossCause, Notice};
use crate::outbox::{SiteSeq, SEQ_HEADER};
use crate::session::fanout::Scratch;
use wire::frame::Run;
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
    client: busseam::Bus,
    switch: SwitchNo,
    remote: RemoteSwitch,
    stop: CancellationToken,
) {
    let no = switch.get();
    let slot = hub.slot(switch);
    let subscribe = |kind: &'static str| {
        let client = client.clone();
        let subject = subject(&remote.site, remote.no, kind);
        async move { client.subscribe(subject).await }
    };
    let (mut states, mut events, mut records, mut notices) = match (
        subscribe("state").await,
        subscribe("events").await,
        subscribe("records").await,
        subscribe("notices").await,
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
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
            hub.link_lost_if(no, |l| std::ptr::eq(l, &*gone.link), cause);
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
                        // Not while this relay's own link to the switch has not closed yet.
                        if up.is_none() && slot.link_handle().is_none() {
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
                heard = Instant::now();
                let site = site_numbers(msg.header(SEQ_HEADER));
                take(&hub, slot, &up, msg.payload, &[Kind::Event], site, &mut scratch);
            }
            Some(msg) = records.next() => {
                take(&hub, slot, &up, msg.payload, &[Kind::Smdr, Kind::Ucd], None, &mut scratch);
            }
            Some(msg) = notices.next() => {
                match serde_json::from_slice::<Notice>(&msg.payload) {
                    Ok(notice) if notice.switch() == Some(remote.no) => {
                        hub.notices.emit(Notice::AtSite {
                            site: remote.site.clone(),
                            remote: remote.no,
                            notice: Box::new(notice.renumbered(no)),
                        });
                    }
                    Ok(_) => debug!("bus: a notice of another switch; ignored"),
                    Err(e) => debug!(error = %e, "bus: a notice that is not one; ignored"),
                }
            }
            Some(answer) = answers_rx.recv() => {
                take(&hub, slot, &up, answer, &[Kind::Answer], None, &mut scratch);
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
    client: &busseam::Bus,
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
    let writer = crate::task::spawn(async move {
        run_writer(&writer_link.out, &mut wr, grace).await;
    });
    let client = client.clone();
    let subject = subject(&remote.site, remote.no, "request");
    let timeout = hub.tuning.answer_timeout + Duration::from_secs(5);
    let sender = crate::task::spawn(async move {
        let mut reader = FrameReader::with_capacity(4096);
        loop {
            while let Ok(Some(frame)) = reader.next_frame() {
                if frame.kind() != Kind::Request {
                    continue;
                }
                let client = client.clone();
                let subject = subject.clone();
                let answers = answers.clone();
                crate::task::spawn(async move {
                    let request = client.request(subject, frame.bytes().clone(), timeout);
                    // No reply: the request's 30 s deadline answers it.
                    if let Ok(reply) = request.await {
                        let _ = answers.send(reply);
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

/// The site's numbers of a run of events from the bus; `None` when its header is absent (a
/// relay that does not number for the site: this relay numbers them itself) or malformed.
fn site_numbers(header: Option<&str>) -> Option<SiteSeq> {
    let value = header?;
    let seq = SiteSeq::parse(value);
    if seq.is_none() {
        debug!(
            value,
            "bus: an events message with a malformed {SEQ_HEADER} header; numbered here"
        );
    }
    seq
}

/// Frames from the bus, as a local link's frames from its socket are handled, when the link
/// is up and `payload` is whole frames of the `allowed` kinds.
fn take(
    hub: &Hub,
    slot: &crate::hub::SwitchSlot,
    up: &Option<Up>,
    payload: Bytes,
    allowed: &[Kind],
    site: Option<SiteSeq>,
    scratch: &mut Scratch,
) {
    let Some(up) = up else { return };
    let Some(run) = Run::whole(payload).filter(|r| r.frames().all(|f| allowed.contains(&f.kind)))
    else {
        warn!(
            ?allowed,
            "bus: a message that is not whole frames of its kind; dropped"
        );
        return;
    };
    if let Err(cause) = dispatch(hub, slot, &up.link, &run, site, scratch) {
        debug!(%cause, "bus: frames of a link no longer up; dropped");
    }
}
