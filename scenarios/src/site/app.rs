//! A simulated resumable application of a shared site: it keeps coming back with its token,
//! to the relay it is told to, and checks every frame it gets (numbers, `G`, answers).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client_sim::app::{ResumeMemory, Writer};
use client_sim::SimApp;
use netseam::MemNetwork;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use wire::{str8_body, CallMsg, Kind, LinkMsg};

use super::check::Shared;
use super::world::NODES;

const OPERATOR: u8 = 3;

/// What an application saw, in summary.
#[derive(Debug, Default, serde::Serialize)]
pub struct AppSummary {
    pub connections: u32,
    pub resumed: u32,
    /// Came back with a token and was admitted as new (told `G` of an unknown count).
    pub not_resumed: u32,
    pub events: u64,
    /// Events `G` said were lost, with a count.
    pub told_lost: u64,
    pub unknown_gaps: u32,
    pub requests: u32,
    pub answers: u32,
    /// The last number seen on each switch.
    pub last: BTreeMap<u8, u64>,
}

/// A resumable Operator that keeps coming back, to the relay it is told to.
pub(super) struct App {
    pub k: usize,
    pub net: MemNetwork,
    pub addrs: watch::Receiver<[Option<SocketAddr>; 2]>,
    /// The relays (indices of [`NODES`]) the two addresses are: `[0, 1]` for an application
    /// of the site, `[2, 2]` for one of the branch.
    pub homes: [usize; 2],
    pub target: watch::Receiver<usize>,
    pub requests: mpsc::UnboundedReceiver<u8>,
    pub at: Arc<AtomicUsize>,
    pub check: Shared,
    pub stop: CancellationToken,
    pub switches: u8,
}

/// Why a connection ended.
enum End {
    Stopped,
    Moved,
    Closed,
}

/// What a connection expects of the numbers of each switch's events.
#[derive(Default)]
struct Expect {
    /// The number given by the last `N`, for the event that follows.
    number: Option<(u8, u64)>,
    /// Events `G` said were lost since the last event, per switch.
    lost: BTreeMap<u8, u64>,
    /// Switches whose next number cannot be known (`G` of an unknown count).
    unknown: BTreeSet<u8>,
    /// Switches of a session admitted as new with a token (it had expired), with the count the
    /// first `G` must have: the events from the application's own last to the `last` the relay
    /// granted, which the numbers run on from. A `G` after it counts as any other.
    expired: BTreeMap<u8, u64>,
}

impl App {
    pub async fn run(mut self) -> AppSummary {
        let mut summary = AppSummary::default();
        let mut memory = ResumeMemory::default();
        let mut last_id: BTreeMap<u8, u64> = BTreeMap::new();
        let mut next_invoke: u16 = 1;
        let source = IpAddr::from([10, 2, 0, 1 + self.k as u8]);
        let name = format!("app{}", self.k);
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let want = *self.target.borrow_and_update();
            let choice = {
                let addrs = self.addrs.borrow_and_update();
                addrs[want]
                    .map(|a| (want, a))
                    .or_else(|| addrs[1 - want].map(|a| (1 - want, a)))
            };
            let Some((at, addr)) = choice else {
                tokio::select! {
                    _ = self.stop.cancelled() => break,
                    _ = self.addrs.changed() => continue,
                }
            };
            let retry = Duration::from_millis(500);
            let Ok(mut app) = SimApp::connect_on(&self.net, addr, Some(source)).await else {
                tokio::time::sleep(retry).await;
                continue;
            };
            let identify = app.identify_with(3, OPERATOR, &name, &[], Some(memory.ask()));
            let identified = tokio::select! {
                _ = self.stop.cancelled() => break,
                id = tokio::time::timeout(Duration::from_secs(10), identify) => id,
            };
            let grant = match identified {
                Ok(Ok(id)) if id.result == 0 => match id.resume {
                    Some(grant) => grant,
                    None => {
                        self.check.broke(
                            "a resumable application gets a token",
                            format!("{name} was admitted without one"),
                        );
                        break;
                    }
                },
                // No switch up yet, or the relay went away: as an application would, later.
                _ => {
                    tokio::time::sleep(retry).await;
                    continue;
                }
            };
            self.at.store(at, Ordering::SeqCst);
            summary.connections += 1;
            let mut expect = Expect::default();
            let had_token = memory.token.is_some();
            let own_last = memory.last.clone();
            if had_token {
                if grant.resumed {
                    summary.resumed += 1;
                } else {
                    // Admitted as new: a stream of its own begins, which may repeat events the
                    // application had from the other relay (their numbers tell it so).
                    summary.not_resumed += 1;
                    memory.last.clear();
                    last_id.clear();
                }
            }
            tracing::debug!(target: "app", "{name} on {}: admitted, resumed {}, last {:?}", NODES[self.homes[at]], grant.resumed, grant.last);
            memory.admitted(&grant);
            // A relay that has not yet had a number of a switch (a follower whose link to it
            // just came up) admits a new session from the first number it gets: what came
            // before was owed to no session here.
            if !grant.resumed {
                for (no, last) in &grant.last {
                    if *last == 0 {
                        expect.unknown.insert(*no);
                    }
                    let missed = own_last.get(no).map_or(0, |own| last.saturating_sub(*own));
                    if had_token && missed > 0 {
                        expect.expired.insert(*no, missed);
                    }
                }
            }
            let (mut rd, wr) = app.into_split();
            let mut outstanding: BTreeSet<u16> = BTreeSet::new();
            let end = loop {
                tokio::select! {
                    _ = self.stop.cancelled() => break End::Stopped,
                    changed = self.target.changed() => {
                        if changed.is_ok() && *self.target.borrow_and_update() != at {
                            break End::Moved;
                        }
                    }
                    Some(n) = self.requests.recv() => {
                        for _ in 0..n {
                            let invoke = next_invoke;
                            next_invoke = if next_invoke >= 0xFFFE { 1 } else { next_invoke + 1 };
                            let switch = (invoke % u16::from(self.switches)) as u8 + 1;
                            if send_request(&wr, switch, invoke).await.is_ok() {
                                outstanding.insert(invoke);
                                summary.requests += 1;
                            }
                        }
                    }
                    frame = rd.next_frame() => {
                        let Ok(Some(frame)) = frame else { break End::Closed };
                        self.take(&name, self.homes[at], &frame, &mut expect, &mut memory, &mut last_id,
                            &mut outstanding, &mut summary);
                    }
                }
            };
            match end {
                End::Stopped => {
                    if !outstanding.is_empty() {
                        self.check.broke(
                            "every request gets exactly one answer",
                            format!(
                                "{name} on {}: {} request(s) unanswered 45 s after the last fault",
                                NODES[self.homes[at]],
                                outstanding.len()
                            ),
                        );
                    }
                    break;
                }
                End::Moved | End::Closed => {
                    let _ = wr.shutdown().await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        summary.last = memory.last;
        summary
    }

    /// One frame from the relay.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        name: &str,
        node: usize,
        frame: &wire::Frame,
        expect: &mut Expect,
        memory: &mut ResumeMemory,
        last_id: &mut BTreeMap<u8, u64>,
        outstanding: &mut BTreeSet<u16>,
        summary: &mut AppSummary,
    ) {
        match frame.kind() {
            Kind::Link => match LinkMsg::decode(frame) {
                Ok(LinkMsg::Sequence { switch, seq }) => expect.number = Some((switch, seq)),
                Ok(LinkMsg::Lost {
                    switch,
                    lost: u64::MAX,
                }) => {
                    expect.unknown.insert(switch);
                    summary.unknown_gaps += 1;
                }
                Ok(LinkMsg::Lost { switch, lost }) => {
                    tracing::debug!(target: "app", "{name} on {}: G {lost} for switch {switch}", NODES[node]);
                    if expect.expired.remove(&switch) != Some(lost) {
                        *expect.lost.entry(switch).or_default() += lost;
                    }
                    summary.told_lost += lost;
                }
                _ => {}
            },
            Kind::Answer => {
                summary.answers += 1;
                if !outstanding.remove(&frame.invoke()) {
                    self.check.broke(
                        "every request gets exactly one answer",
                        format!(
                            "{name} on {} got an answer with INVOKE {} it was not waiting for",
                            NODES[node],
                            frame.invoke()
                        ),
                    );
                }
            }
            Kind::Event => {
                let Ok(m) = CallMsg::decode(frame, true) else {
                    return;
                };
                let switch = m.switch.unwrap_or(1);
                let n = m.body.first().map_or(0, |n| usize::from(*n));
                let Some(id) = m
                    .body
                    .get(1..1 + n)
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .and_then(|d| d.parse::<u64>().ok())
                else {
                    return;
                };
                let Some((numbered, number)) = expect.number.take() else {
                    self.check.broke(
                        "every event of a resumable session is numbered",
                        format!(
                            "{name} on {}: event {id} of switch {switch} without N",
                            NODES[node]
                        ),
                    );
                    return;
                };
                if numbered != switch {
                    self.check.broke(
                        "every event of a resumable session is numbered",
                        format!(
                            "{name}: N for switch {numbered} before an event of switch {switch}"
                        ),
                    );
                }
                tracing::debug!(target: "app", "{name} on {}: event {id} of switch {switch} numbered {number}", NODES[node]);
                self.check.numbered(switch, number, id, name, node);
                expect.expired.remove(&switch);
                let lost = expect.lost.remove(&switch).unwrap_or(0);
                let known = !expect.unknown.remove(&switch);
                if let (Some(&last), true) = (memory.last.get(&switch), known) {
                    let expected = last + 1 + lost;
                    if number != expected {
                        let what = if number > expected {
                            format!("{} event(s) missing without G", number - expected)
                        } else {
                            "an event again or out of order".to_owned()
                        };
                        self.check.broke(
                            "a resumable application sees every event or a G that counts it",
                            format!(
                                "{name} on {}, switch {switch}: number {number} after {last} \
                                 (G told {lost} lost): {what}",
                                NODES[node]
                            ),
                        );
                    }
                }
                if last_id.get(&switch).is_some_and(|&was| id <= was) {
                    self.check.broke(
                        "events arrive in the switch's order",
                        format!(
                            "{name} on {}, switch {switch}: event {id} after event {}",
                            NODES[node], last_id[&switch]
                        ),
                    );
                }
                last_id.insert(switch, id);
                memory.saw(switch, number);
                summary.events += 1;
            }
            _ => {}
        }
    }
}

async fn send_request(wr: &Writer, switch: u8, invoke: u16) -> std::io::Result<()> {
    wr.request(Some(switch), b'K', invoke, &str8_body(&["2201"]))
        .await
}
