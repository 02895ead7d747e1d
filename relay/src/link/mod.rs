//! One switch link (the schedule of attempts is in `recovery`): dial, open (`O`/`o`), station download (`C`/`c` pages), MAC (`Q`/`q`),
//! then read until the link is lost: events fanned out, answers routed back through the
//! INVOKE map, heartbeats, the 30 s silence rule and the answer timeout.

mod numbers;
pub mod recovery;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};

use crate::config::{SwitchConfig, SwitchNo};
use crate::connection::outqueue::{run_writer, Ending, OutQueue};
use crate::connection::{end_writer, Due, Keepalive};
use crate::hub::event_journal::SiteSeq;
use crate::hub::invoke::InvokeMap;
use crate::hub::{Hub, LinkHandle, LinkInfo};
use crate::notify::{LinkFailure, LossCause, Notice};
use crate::session::fanout::{deliver_events, Scratch};
use netseam::BoxStream;
use wire::frame::Run;
use wire::{relay_result, Frame, FrameReader, Kind, LinkMsg, Str8};

/// Version byte of `O`.
const LINK_VERSION: u8 = 3;
/// Name the relay gives itself in `O`.
const RELAY_NAME: &str = "cti-relay";

/// A link that has finished opening, with whatever the switch sent after the last step.
pub struct Open {
    stream: BoxStream,
    reader: FrameReader,
    info: LinkInfo,
}

/// Dials and opens the link of `sw` (without the 60 s limit, which the caller applies).
pub async fn establish(hub: &Hub, sw: &SwitchConfig) -> Result<Open, LinkFailure> {
    let mut stream = hub
        .net
        .connect_from(sw.source_address, &sw.address, sw.port)
        .await
        .map_err(|e| {
            LinkFailure::Dial(match sw.source_address {
                Some(source) => format!("from {source} (source_address): {e}"),
                None => e.to_string(),
            })
        })?;
    if let Some(ca) = &sw.tls_ca {
        // Read at each attempt, so that a renewed authority file is taken without a restart.
        let tls = netseam::tls::client_config(ca, None)
            .map_err(|e| LinkFailure::Dial(format!("tls_ca: {e}")))?;
        stream = netseam::tls::TlsNetwork::new(tls)
            .handshake(stream, &sw.address)
            .await
            .map_err(|e| LinkFailure::Dial(format!("TLS: {e}")))?;
    }
    let mut reader = FrameReader::new();
    send(
        hub,
        sw.no,
        &mut stream,
        &LinkMsg::Open {
            version: LINK_VERSION,
            name: Str8::lossy(RELAY_NAME),
        },
    )
    .await?;
    let (model, software, mac, caps) = loop {
        match next_link_msg(hub, sw.no, &mut stream, &mut reader).await? {
            LinkMsg::OpenResult {
                result: 0,
                model,
                software,
                mac,
                caps,
            } => break (model, software, mac, caps),
            LinkMsg::OpenResult { result: 2, .. } => return Err(LinkFailure::AddressMismatch),
            LinkMsg::OpenResult { .. } => return Err(LinkFailure::Refused),
            other => debug!(?other, "ignored while opening"),
        }
    };
    hub.notices.emit(Notice::SwitchConnected {
        switch: sw.no,
        address: sw.address.clone(),
        port: sw.port,
    });
    hub.notices.emit(Notice::Downloading { switch: sw.no });
    send(
        hub,
        sw.no,
        &mut stream,
        &LinkMsg::ConfigDownload {
            password: Str8::lossy(&sw.easyset_password),
        },
    )
    .await?;
    let mut stations = HashSet::new();
    loop {
        match next_link_msg(hub, sw.no, &mut stream, &mut reader).await? {
            LinkMsg::ConfigPage { result: 1, .. } => return Err(LinkFailure::WrongPassword),
            LinkMsg::ConfigPage {
                result: 0,
                last,
                stations: page,
            } => {
                stations.extend(page.into_iter().map(|s| s.station));
                if last {
                    break;
                }
            }
            LinkMsg::ConfigPage { result, .. } => {
                return Err(LinkFailure::Protocol(format!(
                    "station table page with result {result}"
                )))
            }
            other => debug!(?other, "ignored while downloading"),
        }
    }
    send(hub, sw.no, &mut stream, &LinkMsg::MacQuery).await?;
    let mac = loop {
        match next_link_msg(hub, sw.no, &mut stream, &mut reader).await? {
            LinkMsg::MacReply { mac: reported } => {
                if reported != mac {
                    warn!(
                        switch = sw.no,
                        "the MAC in q differs from the one in o; using q"
                    );
                }
                break reported;
            }
            other => debug!(?other, "ignored while reading the MAC"),
        }
    };
    Ok(Open {
        stream,
        reader,
        info: LinkInfo {
            model,
            software,
            mac,
            caps,
            stations,
        },
    })
}

async fn send(hub: &Hub, no: u8, stream: &mut BoxStream, msg: &LinkMsg) -> Result<(), LinkFailure> {
    let frame = msg
        .encode()
        .map_err(|e| LinkFailure::Protocol(e.to_string()))?;
    hub.monitors
        .link_frame(hub.clock.now_ms(), no, true, &frame);
    count(hub, no, |c| &c.frames_out);
    stream
        .write_all(&frame)
        .await
        .map_err(|e| LinkFailure::Broken(e.to_string()))
}

fn count(hub: &Hub, no: u8, which: impl Fn(&crate::hub::LinkCounters) -> &AtomicU64) {
    if let Some(slot) = hub.slot_of(no) {
        which(&slot.counters).fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads the next link-control message during set-up, answering heartbeats and skipping any
/// call-processing frame the switch sends early.
async fn next_link_msg(
    hub: &Hub,
    no: u8,
    stream: &mut BoxStream,
    reader: &mut FrameReader,
) -> Result<LinkMsg, LinkFailure> {
    loop {
        let next = reader.next_frame();
        if let Ok(Some(frame)) = &next {
            hub.monitors
                .link_frame(hub.clock.now_ms(), no, false, frame.as_bytes());
            count(hub, no, |c| &c.frames_in);
        }
        match next {
            Ok(Some(frame)) if frame.kind() == Kind::Link => {
                let msg =
                    LinkMsg::decode(&frame).map_err(|e| LinkFailure::Protocol(e.to_string()))?;
                if msg == LinkMsg::Heartbeat {
                    send(hub, no, stream, &LinkMsg::HeartbeatReply).await?;
                    continue;
                }
                return Ok(msg);
            }
            Ok(Some(frame)) => debug!(?frame, "call-processing frame before the link is up"),
            Ok(None) => {
                let n = stream
                    .read_buf(reader.buffer_mut())
                    .await
                    .map_err(|e| LinkFailure::Broken(e.to_string()))?;
                if n == 0 {
                    return Err(LinkFailure::Broken(
                        "the switch closed the connection".into(),
                    ));
                }
            }
            Err(e) => return Err(LinkFailure::Protocol(e.to_string())),
        }
    }
}

/// Runs an open link until it is lost or `stop` is cancelled, and says why it ended.
pub async fn run(
    hub: &Arc<Hub>,
    switch: SwitchNo,
    open: Open,
    stop: &CancellationToken,
) -> LossCause {
    let no = switch.get();
    let Open {
        stream,
        mut reader,
        info,
    } = open;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let link = Arc::new(LinkHandle {
        no,
        info,
        out: OutQueue::new(hub.tuning.switch_queue_bytes),
        invokes: Mutex::new(InvokeMap::default()),
        via_bus: false,
    });
    let writer_link = link.clone();
    let grace = hub.tuning.close_grace;
    let mut writer = crate::task::spawn(
        async move { run_writer(&writer_link.out, &mut wr, grace).await }
            .instrument(info_span!("switch_writer", switch = no)),
    );
    hub.link_up(link.clone());

    // Cannot fail: an empty body.
    let heartbeat = LinkMsg::Heartbeat.encode().expect("fits");
    let slot = hub.slot(switch);
    let mut scratch = Scratch::default();
    let mut keepalive = Keepalive::new(hub.tuning.heartbeat_interval, hub.tuning.silence_limit);
    // Requests unanswered for 30 s are looked for once a second.
    let mut sweep = tokio::time::interval(std::time::Duration::from_secs(1));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let cause = loop {
        // A site's holder numbers events only within its reservation, which covers exactly
        // the events it has read: what is beyond it waits while its numbers are asked for,
        // and reading goes on meanwhile, so the next ask covers all that came in between.
        let outbox = hub.bus.load_full();
        let mut reserved = std::pin::pin!(outbox.as_ref().map(|o| o.numbers_reserved.notified()));
        if let Some(notified) = reserved.as_mut().as_pin_mut() {
            // Listening before looking, so a reservation written in between is not missed.
            notified.enable();
        }
        // Everything buffered that has its numbers (including what arrived with the last
        // set-up step).
        match dispatch_buffered(hub, slot, &link, &mut reader, &mut scratch) {
            Ok(Dispatched::Nothing) => {}
            Ok(Dispatched::All) => keepalive.received(),
            Err(cause) => return finish(hub, &link, &mut writer, cause).await,
        }
        let waiting = numbers::wanted(slot, &mut reader) > 0;
        if waiting {
            keepalive.received();
            if !numbers::may_wait(hub, slot, outbox.as_deref()) {
                // What is buffered could be given numbers the next holder gives too: it is
                // left unread, as what the switch sends while no relay holds the link is.
                let cause = LossCause::Error(
                    "the site's numbers could not be reserved on the bus while the lease lasted"
                        .into(),
                );
                return finish(hub, &link, &mut writer, cause).await;
            }
            if outbox.is_none() {
                continue;
            }
        }
        // Biased, in this order: stopping first; then the writer and the timers, so that a
        // switch that never stops sending cannot starve the silence and answer-timeout checks.
        tokio::select! {
            biased;
            _ = stop.cancelled() => break LossCause::Stopping,
            result = &mut writer => {
                let cause = LossCause::Error(match result {
                    Ok(crate::connection::outqueue::WriterEnd::Io(e)) => e.to_string(),
                    _ => "the link writer stopped".into(),
                });
                // The switch closed or reset the connection, which a write found first: what
                // it sent before is still readable and must not be lost.
                let drained = drain_after_writer_end(&mut rd, &mut reader, |reader| {
                    dispatch_buffered(hub, slot, &link, reader, &mut scratch)
                        .map(|d| d != Dispatched::Nothing)
                })
                .await;
                break drained.err().unwrap_or(cause);
            }
            due = keepalive.tick() => match due {
                Due::Silent => break LossCause::Silent,
                Due::Heartbeat => {
                    let _ = hub.send_to_switch(&link, heartbeat.clone());
                }
                Due::Nothing => {}
            },
            _ = sweep.tick() => answer_expired(hub, &link),
            Some(()) = numbers::reserved(reserved.as_mut()), if waiting => {}
            _ = tokio::time::sleep(numbers::POLL), if waiting => {}
            read = rd.read_buf(reader.buffer_mut()), if numbers::may_read(&reader, waiting) => match read {
                Ok(0) => break LossCause::Closed,
                Ok(_) => {}
                Err(e) => break LossCause::Error(e.to_string()),
            },
        }
    };
    finish(hub, &link, &mut writer, cause).await
}

/// What [`dispatch_buffered`] did with the buffered frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dispatched {
    /// No whole frame was dispatched.
    Nothing,
    /// Every whole frame that has its numbers was dispatched.
    All,
}

/// Dispatches every whole frame already buffered, in runs, and says what it did. A site's
/// holder numbers no run past its reservation: the events beyond it, and whatever follows
/// them, stay buffered until their numbers are reserved.
fn dispatch_buffered(
    hub: &Hub,
    slot: &crate::hub::SwitchSlot,
    link: &LinkHandle,
    reader: &mut FrameReader,
    scratch: &mut Scratch,
) -> Result<Dispatched, LossCause> {
    let mut any = false;
    // `u64::MAX` (nothing reserved: a relay not sharing its site) stays so, and is read once.
    let mut left = slot.journal().numbers_left();
    loop {
        match reader.next_run_within(left) {
            Ok(Some(run)) => {
                any = true;
                dispatch(hub, slot, link, &run, None, scratch)?;
                if left != u64::MAX {
                    left = slot.journal().numbers_left();
                }
            }
            Ok(None) if any => return Ok(Dispatched::All),
            Ok(None) => return Ok(Dispatched::Nothing),
            Err(e) => return Err(LossCause::Protocol(e.to_string())),
        }
    }
}

/// How long a link whose writer failed is still read for what the switch sent before.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// After the writer failed: reads what is left on the connection (up to its end, an error or
/// [`DRAIN_LIMIT`] without data) and hands each read to `dispatch`, so that frames the switch
/// sent before it closed or reset reach the sessions. A protocol error found on the way is
/// returned.
async fn drain_after_writer_end<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    reader: &mut FrameReader,
    mut dispatch: impl FnMut(&mut FrameReader) -> Result<bool, LossCause>,
) -> Result<(), LossCause> {
    loop {
        dispatch(reader)?;
        match tokio::time::timeout(DRAIN_LIMIT, rd.read_buf(reader.buffer_mut())).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Ok(()),
        }
    }
}

async fn finish(
    hub: &Hub,
    link: &LinkHandle,
    writer: &mut tokio::task::JoinHandle<crate::connection::outqueue::WriterEnd>,
    cause: LossCause,
) -> LossCause {
    link.out.end(Ending::Discard { last: None });
    end_writer(writer, hub.tuning.close_grace).await;
    cause
}

/// Handles one run of frames from the switch, in order. Consecutive events are delivered as
/// one run; anything else flushes the events before it so every session sees switch order.
/// A remote switch's frames, from the bus, come through here too, with the numbers the site
/// gave their events (`site`, numbering the run's events on from its first).
pub(crate) fn dispatch(
    hub: &Hub,
    slot: &crate::hub::SwitchSlot,
    link: &LinkHandle,
    run: &Run,
    mut site: Option<SiteSeq>,
    scratch: &mut Scratch,
) -> Result<(), LossCause> {
    // An operator disconnected the link (marked down before the socket closes): nothing
    // more of it reaches anyone.
    if !slot.holds(link) {
        return Err(LossCause::Operator);
    }
    // Consecutive events, and how many.
    let mut events: Option<(std::ops::Range<usize>, u64)> = None;
    // Link monitors see every frame; checked once per run.
    let watched = hub.monitors.watching_links().then(|| hub.clock.now_ms());
    let mut frames = 0;
    for f in run.frames() {
        frames += 1;
        if let Some(now) = watched {
            hub.monitors
                .link_frame(now, link.no, false, &run.bytes()[f.at..f.end()]);
        }
        if f.kind == Kind::Event {
            events = Some(match events {
                Some((r, n)) => (r.start..f.end(), n + 1),
                None => (f.at..f.end(), 1),
            });
            continue;
        }
        if let Some((r, n)) = events.take() {
            events_of_run(hub, slot, link, run, r, n, &mut site, scratch);
        }
        let frame = run.frame(&f);
        match f.kind {
            Kind::Answer => route_answer(hub, link, &frame),
            Kind::Link => match LinkMsg::decode(&frame) {
                Ok(LinkMsg::Heartbeat) => {
                    // Cannot fail: an empty body.
                    let _ =
                        hub.send_to_switch(link, LinkMsg::HeartbeatReply.encode().expect("fits"));
                }
                Ok(LinkMsg::HeartbeatReply | LinkMsg::MacReply { .. }) => {}
                Ok(other) => debug!(?other, "link-control frame ignored on an open link"),
                Err(e) => return Err(LossCause::Protocol(e.to_string())),
            },
            // SMDR and UCD never go to application sessions (monitor and export ports only).
            Kind::Smdr | Kind::Ucd => {
                take_record(hub, link.no, &frame);
                publish(hub, link, "records", frame.bytes());
            }
            Kind::Request | Kind::Monitor | Kind::Event => {
                return Err(LossCause::Protocol(format!(
                    "a switch must not send {:?} frames",
                    f.kind
                )))
            }
        }
    }
    if let Some((r, n)) = events {
        events_of_run(hub, slot, link, run, r, n, &mut site, scratch);
    }
    slot.counters.frames_in.fetch_add(frames, Ordering::Relaxed);
    Ok(())
}

/// Delivers the `n` consecutive events `run[r]` and, read from this relay's own link, puts them
/// on the bus with the numbers they were given.
#[allow(clippy::too_many_arguments)]
fn events_of_run(
    hub: &Hub,
    slot: &crate::hub::SwitchSlot,
    link: &LinkHandle,
    run: &Run,
    r: std::ops::Range<usize>,
    n: u64,
    site: &mut Option<SiteSeq>,
    scratch: &mut Scratch,
) {
    let told = deliver_events(hub, slot, run.bytes(), r.clone(), n, *site, scratch);
    // Events after these in the same message are numbered on from them.
    if let Some(s) = site.as_mut() {
        s.first += n;
    }
    if link.via_bus {
        return;
    }
    if let (Some(bus), Some(told)) = (hub.bus.load().as_deref(), told) {
        bus.publish_events(link.no, told, run.bytes().slice(r));
    }
}

/// With a bus, puts what this relay's own link of a switch read on the site's subject `kind`
/// (a remote switch's link does not: its site publishes it).
fn publish(hub: &Hub, link: &LinkHandle, kind: &str, frames: &bytes::Bytes) {
    if link.via_bus {
        return;
    }
    if let Some(bus) = hub.bus.load().as_deref() {
        bus.publish(link.no, kind, frames.clone());
    }
}

/// An SMDR or UCD record of switch `no`: counted, shown to monitors, kept for collectors.
fn take_record(hub: &Hub, no: u8, frame: &Frame) {
    let counter = if frame.kind() == Kind::Smdr {
        &hub.stats.smdr_records
    } else {
        &hub.stats.ucd_records
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let now = hub.clock.now_ms();
    let bytes = frame.bytes();
    hub.monitors.record(now, no, bytes);
    let for_collectors = hub.config.load().export.port.is_some();
    hub.spool.append(now, no, bytes, for_collectors);
}

/// Answers 0xE4 the requests of `link` whose 30 s have passed.
pub(crate) fn answer_expired(hub: &Hub, link: &LinkHandle) {
    let expired = link.invokes().expire(Instant::now());
    for pending in expired {
        if let Some(session) = pending.session.upgrade() {
            session.answer_pending(
                pending.code,
                pending.app_invoke,
                link.no,
                relay_result::TIMED_OUT,
            );
            hub.stats.relay_answers.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn route_answer(hub: &Hub, link: &LinkHandle, frame: &Frame) {
    let pending = link.invokes().take(frame.invoke());
    match pending.and_then(|p| Some((p.session.upgrade()?, p.app_invoke))) {
        Some((session, app_invoke)) => session.deliver_answer(link.no, frame, app_invoke),
        None => {
            hub.stats.late_answers.fetch_add(1, Ordering::Relaxed);
            debug!(
                invoke = frame.invoke(),
                "answer for no waiting request (late or unsolicited)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` event frames, each numbered by its one-byte body.
    fn events(count: u8) -> Vec<u8> {
        (0..count)
            .flat_map(|i| {
                Frame::build(Kind::Event, b'A', wire::NO_INVOKE, &[i])
                    .as_bytes()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn what_a_switch_sent_before_it_reset_is_read_after_the_writer_failed() {
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        far.write_all(&events(200)).await.unwrap();
        drop(far);
        let mut reader = FrameReader::new();
        let mut seen = Vec::new();
        let ended = drain_after_writer_end(&mut near, &mut reader, |reader| {
            let mut any = false;
            while let Some(f) = reader.next_frame().unwrap() {
                seen.push(f.body()[0]);
                any = true;
            }
            Ok(any)
        })
        .await;
        assert!(ended.is_ok());
        assert_eq!(seen, (0..200).collect::<Vec<u8>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stays_open_and_silent_ends_the_drain_after_its_limit() {
        let (mut near, mut far) = tokio::io::duplex(1024);
        far.write_all(&events(3)).await.unwrap();
        let mut reader = FrameReader::new();
        let mut count = 0;
        let started = Instant::now();
        drain_after_writer_end(&mut near, &mut reader, |reader| {
            while reader.next_frame().unwrap().is_some() {
                count += 1;
            }
            Ok(true)
        })
        .await
        .unwrap();
        assert_eq!(count, 3);
        assert_eq!(started.elapsed(), DRAIN_LIMIT);
        drop(far);
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_frame_in_the_drain_is_the_cause() {
        let (mut near, mut far) = tokio::io::duplex(1024);
        far.write_all(&[0x0F, 0xFF, b'E', b'n']).await.unwrap();
        drop(far);
        let mut reader = FrameReader::new();
        let ended = drain_after_writer_end(&mut near, &mut reader, |reader| {
            reader
                .next_frame()
                .map(|f| f.is_some())
                .map_err(|e| LossCause::Protocol(e.to_string()))
        })
        .await;
        assert!(matches!(ended, Err(LossCause::Protocol(_))), "{ended:?}");
    }
}
