//! The real-time soak: simulated switches over real TCP (the relay's configuration lists
//! them), live call traffic on each, applications that read, answer heartbeats, send requests
//! at a steady total rate and reconnect when the relay closes them, and a link fault every
//! so often. The explorer's invariants are checked as frames arrive:
//! - every request is answered exactly once, with the asker's INVOKE, within the relay's
//!   answer timeout (30 s) and a margin; no answer arrives that was not asked for;
//! - per application and switch, events arrive in the order the switch sent them (each event
//!   carries the switch's sequence number) with no gap, except where the switch's own bytes
//!   spoiled the link;
//! - a healthy application is closed only for a reason the spec allows (a lost link of a
//!   switch it is served), never as silent or slow, and never without `X`.
//!
//! Once a minute it prints requests, answers, violations, events/s, request latency
//! (p50/p99/p999) and the relay's resident memory when it can read it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use netseam::Network;
use switch_sim::{Settings, SimSwitch};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use wire::{CallMsg, Kind, LinkMsg, Product};

use crate::app::{AppIdentity, SimApp};
use wire::str8_body;

/// How the soak runs.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// The relay's client port (the bypass port is 500 above).
    pub relay: SocketAddr,
    /// Where switch 1 listens; switch N listens on the same port at the address N-1 above.
    pub switch_base: SocketAddr,
    pub switches: u8,
    pub apps: usize,
    /// Requests per second, over all applications.
    pub rate: u64,
    pub duration: Duration,
    /// A link fault on a random switch this often (`None`: no faults).
    pub faults: Option<Duration>,
    /// Each switch takes a phone action this often.
    pub traffic: Duration,
    pub seed: u64,
    /// The relay's process, for its resident memory.
    pub relay_process: RelayProcess,
    /// How often a report line is printed.
    pub report_every: Duration,
}

/// Counters of the whole run.
#[derive(Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub answers: AtomicU64,
    /// Requests whose connection closed before the answer (not violations).
    pub lost_with_connection: AtomicU64,
    pub never_answered: AtomicU64,
    pub events: AtomicU64,
    pub reorderings: AtomicU64,
    pub gaps: AtomicU64,
    pub unexpected_closes: AtomicU64,
    /// Closes for the loss of a served switch's link (expected under faults).
    pub link_closes: AtomicU64,
    pub refused: AtomicU64,
    pub violations: AtomicU64,
    pub faults: AtomicU64,
}

/// What a run ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakSummary {
    pub requests: u64,
    pub answers: u64,
    pub never_answered: u64,
    pub events: u64,
    pub reorderings: u64,
    pub gaps: u64,
    pub unexpected_closes: u64,
    pub violations: u64,
    pub faults: u64,
    pub rss_first_kib: Option<u64>,
    pub rss_last_kib: Option<u64>,
}

/// The relay's answer timeout, and the margin the soak gives it.
const NEVER_ANSWERED: Duration = Duration::from_secs(35);
/// Violations printed in full; beyond that they are only counted.
const PRINTED: u64 = 50;

struct Shared {
    counts: Counts,
    latency: Mutex<Histogram<u64>>,
    switches: Vec<SimSwitch>,
    print: Mutex<Box<dyn FnMut(String) + Send>>,
}

impl Shared {
    fn say(&self, line: String) {
        (self.print.lock().unwrap_or_else(|e| e.into_inner()))(line);
    }

    fn violation(&self, what: &str, detail: String) {
        let n = self.counts.violations.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= PRINTED {
            self.say(format!("VIOLATION {what}: {detail}"));
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid bounds")
}

/// Runs the soak on `net`, printing through `print`.
pub async fn run(
    net: Arc<dyn Network>,
    opts: SoakOptions,
    print: impl FnMut(String) + Send + 'static,
) -> anyhow::Result<SoakSummary> {
    anyhow::ensure!((1..=8).contains(&opts.switches), "--switches must be 1..=8");
    anyhow::ensure!(opts.apps > 0, "--apps must be at least 1");
    let IpAddr::V4(base) = opts.switch_base.ip() else {
        anyhow::bail!("--switch-base must be an IPv4 address");
    };
    let mut switches = Vec::new();
    for i in 0..opts.switches {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(u32::from(base) + u32::from(i)));
        let addr = SocketAddr::new(ip, opts.switch_base.port());
        let settings = Settings {
            tag_events: true,
            ..Settings::officeserv(i + 1)
        };
        let sw = SimSwitch::start_on(net.as_ref(), addr, settings)
            .await
            .map_err(|e| anyhow::anyhow!("switch {} cannot listen on {addr}: {e}", i + 1))?;
        switches.push(sw);
    }
    let shared = Arc::new(Shared {
        counts: Counts::default(),
        latency: Mutex::new(histogram()),
        switches: switches.clone(),
        print: Mutex::new(Box::new(print)),
    });
    shared.say(format!(
        "soak: {} switches from {}, {} applications to {}, {} requests/s, faults {}, for {}",
        opts.switches,
        opts.switch_base,
        opts.apps,
        opts.relay,
        opts.rate,
        opts.faults.map_or("off".to_string(), |f| format!(
            "every {}",
            humantime::format_duration(f)
        )),
        humantime::format_duration(opts.duration)
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sw) in switches.iter().enumerate() {
        tasks.spawn(switch_sim::traffic::run(
            sw.clone(),
            opts.traffic,
            opts.seed.wrapping_add(i as u64 + 1),
        ));
    }
    // Wait for the relay to open every switch's link before the applications start.
    let started = Instant::now();
    for (i, sw) in switches.iter().enumerate() {
        let left = Duration::from_secs(90).saturating_sub(started.elapsed());
        if tokio::time::timeout(left, sw.wait_opened(1)).await.is_err() {
            anyhow::bail!(
                "the relay did not open switch {}'s link at {} within 90 s: is the relay running \
                 with these switches in its configuration?",
                i + 1,
                sw.addr()
            );
        }
    }
    let per_app = opts.rate as f64 / opts.apps as f64;
    for i in 0..opts.apps {
        tasks.spawn(app(net.clone(), shared.clone(), opts.clone(), i, per_app));
    }
    if let Some(every) = opts.faults {
        tasks.spawn(faults(shared.clone(), every, opts.seed));
    }
    let summary = report(&shared, &opts).await;
    tasks.abort_all();
    Ok(summary)
}

/// What the application `i` is: mostly multi-switch "other server" programs on the bypass
/// port (served every switch), some single-switch call simulators on the bypass port, and a
/// few Call softphones (licensed, within the trial's 20).
fn identity(opts: &SoakOptions, i: usize) -> AppIdentity {
    let source = IpAddr::from([127, 0, 2 + (i / 250) as u8, (i % 250) as u8 + 1]);
    let (product, protocol) = match i % 10 {
        0 if i / 10 < 15 => (Product::Call, 2),
        1 | 2 => (Product::CallSim, 2),
        _ => (Product::OtherServer, 3),
    };
    let mut relay = opts.relay;
    if product.port() == wire::Port::Bypass {
        relay.set_port(relay.port() + 500);
    }
    AppIdentity {
        relay,
        source: Some(source),
        protocol,
        product: product.byte(),
        name: format!("soak-{i}"),
        devices: Vec::new(),
    }
}

/// One application for the whole run: connect, identify, work, and reconnect when closed.
async fn app(net: Arc<dyn Network>, shared: Arc<Shared>, opts: SoakOptions, i: usize, rate: f64) {
    let who = identity(&opts, i);
    let mut invoke: u16 = 1;
    // Spread the applications' first requests over the first second.
    tokio::time::sleep(Duration::from_millis((i as u64 * 997) % 1000)).await;
    loop {
        let mut sim = match SimApp::connect_on(net.as_ref(), who.relay, who.source).await {
            Ok(sim) => sim,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let served = match sim
            .identify(who.protocol, who.product, &who.name, &[])
            .await
        {
            Ok(id) if id.result == 0 => id.switches.iter().map(|(no, _)| *no).collect(),
            Ok(_) | Err(_) => {
                // Refused (no usable switch while one recovers) or gone: try again shortly.
                shared.counts.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let session = Session::new(&shared, &who, served);
        let end = session.run(sim, &shared, rate, &mut invoke).await;
        if let Some(why) = end {
            shared
                .counts
                .unexpected_closes
                .fetch_add(1, Ordering::Relaxed);
            shared.violation(
                "healthy applications are closed only as the spec allows",
                why,
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One connection of an application, from identify to its end.
struct Session {
    name: String,
    p3: bool,
    served: Vec<u8>,
    /// Per switch: the next sequence number due (from admission on), and whether an event of
    /// it has arrived yet (before the first, events sent just before admission may still come).
    next_seq: Mutex<HashMap<u8, (u32, bool)>>,
    /// INVOKE → when it was sent and to which switch.
    pending: Mutex<HashMap<u16, (Instant, u8)>>,
}

impl Session {
    fn new(shared: &Shared, who: &AppIdentity, served: Vec<u8>) -> Arc<Session> {
        let next_seq = served
            .iter()
            .filter_map(|no| {
                let sw = shared.switches.get(usize::from(*no) - 1)?;
                Some((*no, (sw.with_sent(|log| log.next_seq), false)))
            })
            .collect();
        Arc::new(Session {
            name: who.name.clone(),
            p3: who.protocol == 3,
            served,
            next_seq: Mutex::new(next_seq),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Runs until the relay closes the connection; `Some(why)` when it did so for a reason
    /// a healthy application must never meet.
    async fn run(
        self: Arc<Session>,
        sim: SimApp,
        shared: &Arc<Shared>,
        rate: f64,
        invoke: &mut u16,
    ) -> Option<String> {
        let (mut rd, wr) = sim.into_split();
        let requester = {
            let (me, shared) = (self.clone(), shared.clone());
            let mut next = *invoke;
            let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
            // Aborted with this session, also when the soak ends while it runs.
            AbortOnDropHandle::new(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let sw = me.served[usize::from(next) % me.served.len()];
                    let device = format!("22{:02}", 1 + next % 32);
                    me.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(next, (Instant::now(), sw));
                    shared.counts.requests.fetch_add(1, Ordering::Relaxed);
                    let body = str8_body(&[&device]);
                    if wr.request(Some(sw), b'Y', next, &body).await.is_err() {
                        return next;
                    }
                    next = if next >= 0xFFFE { 1 } else { next + 1 };
                }
            }))
        };
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        let mut close: Option<(u8, String)> = None;
        let outcome = loop {
            tokio::select! {
                frame = rd.next_frame() => match frame {
                    Ok(Some(f)) => {
                        if let Some(c) = self.frame(&f, shared) {
                            close = Some(c);
                        }
                    }
                    Ok(None) | Err(_) => break close,
                },
                _ = sweep.tick() => self.sweep(shared),
            }
        };
        requester.abort();
        if let Ok(next) = requester.await {
            *invoke = next;
        }
        let lost = self.pending.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        shared
            .counts
            .lost_with_connection
            .fetch_add(lost, Ordering::Relaxed);
        match outcome {
            None => Some(format!("{} was disconnected without X", self.name)),
            // A link of a switch it is served was lost: it reconnects, as applications do.
            Some((1, _)) => {
                shared.counts.link_closes.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some((reason, text)) => Some(format!("{} received X {reason} {text:?}", self.name)),
        }
    }

    /// Checks one frame; returns the close reason and text of an `X`.
    fn frame(&self, f: &wire::Frame, shared: &Shared) -> Option<(u8, String)> {
        match f.kind() {
            Kind::Answer => {
                let Ok(m) = CallMsg::decode(f, self.p3) else {
                    shared.violation("frames decode", format!("{}: {f:?}", self.name));
                    return None;
                };
                let sent = self
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&m.invoke);
                match sent {
                    Some((at, _)) => {
                        shared.counts.answers.fetch_add(1, Ordering::Relaxed);
                        let ns = at.elapsed().as_nanos() as u64;
                        let _ = shared
                            .latency
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record(ns.max(1));
                    }
                    None => shared.violation(
                        "every request gets exactly one answer, to the asker",
                        format!(
                            "{} received an answer with INVOKE {} it is not waiting for",
                            self.name, m.invoke
                        ),
                    ),
                }
            }
            Kind::Event => {
                shared.counts.events.fetch_add(1, Ordering::Relaxed);
                let Ok(m) = CallMsg::decode(f, self.p3) else {
                    shared.violation("frames decode", format!("{}: {f:?}", self.name));
                    return None;
                };
                let sw = if self.p3 {
                    m.switch
                } else {
                    self.served.first().copied()
                };
                let (Some(sw), Some(seq)) = (sw, switch_sim::switch::event_seq(&m.body)) else {
                    return None;
                };
                self.event(sw, seq, shared);
            }
            Kind::Link => {
                if let Ok(LinkMsg::Close { reason, text }) = LinkMsg::decode(f) {
                    return Some((reason, text.to_string()));
                }
            }
            _ => {}
        }
        None
    }

    fn event(&self, sw: u8, seq: u32, shared: &Shared) {
        let mut next = self.next_seq.lock().unwrap_or_else(|e| e.into_inner());
        let Some((due, seen)) = next.get_mut(&sw) else {
            shared.violation(
                "events come only from served switches",
                format!("{} received event #{seq} of switch {sw}", self.name),
            );
            return;
        };
        if seq < *due {
            if *seen {
                shared.counts.reorderings.fetch_add(1, Ordering::Relaxed);
                shared.violation(
                    "events arrive in the order the switch sent them",
                    format!(
                        "{} received event #{seq} of switch {sw} after #{}",
                        self.name,
                        *due - 1
                    ),
                );
            }
            return;
        }
        *seen = true;
        if seq > *due {
            let spoiled = shared.switches[usize::from(sw) - 1].with_sent(|log| {
                log.spoiled
                    .iter()
                    .any(|&(_, from)| from >= *due && from <= seq)
            });
            if !spoiled {
                shared.counts.gaps.fetch_add(1, Ordering::Relaxed);
                shared.violation(
                    "events arrive without gaps",
                    format!(
                        "{} received event #{seq} of switch {sw} but not #{}..#{}",
                        self.name,
                        *due,
                        seq - 1
                    ),
                );
            }
        }
        *due = (*due).max(seq + 1);
    }

    /// Requests unanswered past the relay's answer timeout and a margin.
    fn sweep(&self, shared: &Shared) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let late: Vec<u16> = pending
            .iter()
            .filter(|(_, (at, _))| at.elapsed() > NEVER_ANSWERED)
            .map(|(invoke, _)| *invoke)
            .collect();
        for invoke in late {
            let (_, sw) = pending.remove(&invoke).expect("listed");
            shared.counts.never_answered.fetch_add(1, Ordering::Relaxed);
            shared.violation(
                "every request gets exactly one answer",
                format!(
                    "{}: request INVOKE {invoke} to switch {sw} unanswered after {} s",
                    self.name,
                    NEVER_ANSWERED.as_secs()
                ),
            );
        }
    }
}

/// A link fault on a random switch every `every`: the link dropped (half of them), the switch
/// stalled for 2 s, or bytes that are not a frame.
async fn faults(shared: Arc<Shared>, every: Duration, seed: u64) {
    let mut rng = switch_sim::traffic::Rng::new(seed ^ 0x5EED);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let sw = &shared.switches[rng.below(shared.switches.len())];
        let what = match rng.below(4) {
            0 => {
                sw.stall(Duration::from_secs(2));
                "stall 2 s"
            }
            1 => {
                sw.send_garbage(16);
                "garbage"
            }
            _ => {
                sw.drop_link();
                "drop"
            }
        };
        shared.counts.faults.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(switch = %sw.addr(), what, "fault");
    }
}

/// Which process the relay is, for its resident memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayProcess {
    /// Not measured.
    Unknown,
    Pid(u32),
    /// The one process of this name, looked for at each report until found: the relay may
    /// start after the soak.
    Named(String),
}

impl RelayProcess {
    fn resolve(&mut self) -> Option<u32> {
        match self {
            RelayProcess::Unknown => None,
            RelayProcess::Pid(pid) => Some(*pid),
            RelayProcess::Named(name) => {
                let pid = find_process(name)?;
                *self = RelayProcess::Pid(pid);
                Some(pid)
            }
        }
    }
}

/// The one process named `name`, if there is exactly one.
pub fn find_process(name: &str) -> Option<u32> {
    let mut found = std::fs::read_dir("/proc").ok()?.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == name).then_some(pid)
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// The relay's resident memory in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Prints a line every `report_every` until the duration has passed; returns the totals.
async fn report(shared: &Shared, opts: &SoakOptions) -> SoakSummary {
    let c = &shared.counts;
    let started = Instant::now();
    let mut tick = tokio::time::interval(opts.report_every);
    tick.tick().await;
    let (mut rss_first, mut rss_last) = (None, None);
    let mut process = opts.relay_process.clone();
    let mut events_before = 0;
    let mut total = histogram();
    loop {
        let left = opts.duration.saturating_sub(started.elapsed());
        let last = left <= opts.report_every;
        if last {
            tokio::time::sleep(left).await;
        } else {
            tick.tick().await;
        }
        for sw in &shared.switches {
            sw.forget_sent_events();
        }
        let h = std::mem::replace(
            &mut *shared.latency.lock().unwrap_or_else(|e| e.into_inner()),
            histogram(),
        );
        let _ = total.add(&h);
        let rss = process.resolve().and_then(rss_kib);
        if rss_first.is_none() {
            rss_first = rss;
        }
        rss_last = rss.or(rss_last);
        let events = c.events.load(Ordering::Relaxed);
        let secs = opts.report_every.as_secs_f64().max(0.001);
        shared.say(format!(
            "t={}s requests={} answers={} never_answered={} violations={} events/s={:.0} latency p50={} p99={} p999={} faults={} link_closes={} relay_rss={}",
            started.elapsed().as_secs(),
            c.requests.load(Ordering::Relaxed),
            c.answers.load(Ordering::Relaxed),
            c.never_answered.load(Ordering::Relaxed),
            c.violations.load(Ordering::Relaxed),
            (events - events_before) as f64 / secs,
            crate::load::us(h.value_at_quantile(0.5)),
            crate::load::us(h.value_at_quantile(0.99)),
            crate::load::us(h.value_at_quantile(0.999)),
            c.faults.load(Ordering::Relaxed),
            c.link_closes.load(Ordering::Relaxed),
            rss.map_or("-".to_string(), |k| format!("{:.1}MiB", k as f64 / 1024.0)),
        ));
        events_before = events;
        if last {
            break;
        }
    }
    let summary = SoakSummary {
        requests: c.requests.load(Ordering::Relaxed),
        answers: c.answers.load(Ordering::Relaxed),
        never_answered: c.never_answered.load(Ordering::Relaxed),
        events: c.events.load(Ordering::Relaxed),
        reorderings: c.reorderings.load(Ordering::Relaxed),
        gaps: c.gaps.load(Ordering::Relaxed),
        unexpected_closes: c.unexpected_closes.load(Ordering::Relaxed),
        violations: c.violations.load(Ordering::Relaxed),
        faults: c.faults.load(Ordering::Relaxed),
        rss_first_kib: rss_first,
        rss_last_kib: rss_last,
    };
    shared.say(format!(
        "soak done: {} requests, {} answered once, {} lost with their connection, {} never answered; {} events, {} reorderings, {} gaps; {} unexpected closes, {} link-loss closes, {} refused identifies; {} faults; {} violations; latency p50={} p99={} p999={}; relay RSS {} -> {}",
        summary.requests,
        summary.answers,
        c.lost_with_connection.load(Ordering::Relaxed),
        summary.never_answered,
        summary.events,
        summary.reorderings,
        summary.gaps,
        summary.unexpected_closes,
        c.link_closes.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed),
        summary.faults,
        summary.violations,
        crate::load::us(total.value_at_quantile(0.5)),
        crate::load::us(total.value_at_quantile(0.99)),
        crate::load::us(total.value_at_quantile(0.999)),
        rss_first.map_or("-".to_string(), |k| format!("{:.1}MiB", k as f64 / 1024.0)),
        rss_last.map_or("-".to_string(), |k| format!("{:.1}MiB", k as f64 / 1024.0)),
    ));
    summary
}
