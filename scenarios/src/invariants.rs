//! The invariants every history must keep, checked after every step of a scenario that asks
//! for them (and of every world the explorer makes). Expectations come from docs/behaviour.md and
//! docs/protocol.md, computed here independently of the relay's own code:
//! - every request gets exactly one answer, with the asker's own INVOKE, and no connection
//!   receives an answer it did not ask for;
//! - per connection and switch, events arrive in the order the switch sent them, only from
//!   served switches, only for watched devices under filtering, and with no gap unless the
//!   connection was closed (a gap before the close is allowed, none before the last event);
//! - a resumed session goes on from the last event its application saw on its earlier
//!   connection: none missing (replayed or live) unless `G` said they were lost, none twice;
//! - a healthy application (one that reads, and so answers `H`) is closed only for a reason
//!   the spec allows it (link loss, shutdown or disconnect, licence change, operator), and
//!   never without an `X`;
//! - served switches follow docs/behaviour.md §4 for the configuration in force at identify;
//! - licence and bypass use equal the sessions admitted (and those waiting to be resumed), and
//!   admission keeps the access limit;
//! - a switch-message monitor sees each switch link's frames in the link's order: a request
//!   before its answer, events in the switch's order, and no event of a link missing before
//!   one received unless a `G` counted frames missed;
//! - after every application has gone, sessions, licence use, requests in flight and the
//!   relay's tasks return to their baseline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use relay::config::Config;
use switch_sim::switch::SentLog;
use wire::{CallMsg, Kind, LinkMsg, MonitorMsg, Port, Product};

use crate::observe::{Conn, End, MonitorConn, SiteView};
use crate::schema::AppSpec;

/// A broken invariant: which one, and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

fn violation(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// What a connection should be, by docs/behaviour.md §4, for the configuration in force when it connects.
pub fn expect_conn(
    config: &Config,
    spec: &AppSpec,
    product: u8,
    bypass: bool,
    devices: &[(u8, String)],
) -> Conn {
    let user = config
        .users
        .iter()
        .find(|u| u.ip.parse::<IpAddr>().is_ok_and(|ip| ip == spec.address));
    let global = config.default_switch;
    let user_default = user.and_then(|u| u.default_switch);
    let (served, default_switch) = if spec.protocol == 2 {
        let d = user_default.unwrap_or(global);
        (vec![d], d)
    } else {
        let mut served: Vec<u8> = match user {
            Some(u) if !u.switches.is_empty() => u.switches.clone(),
            Some(_) => vec![user_default.unwrap_or(global)],
            None => config
                .switches
                .iter()
                .filter(|s| s.enabled)
                .map(|s| s.no)
                .collect(),
        };
        served.sort_unstable();
        served.dedup();
        let wanted = user_default.unwrap_or(global);
        let d = if served.contains(&wanted) {
            wanted
        } else {
            served.first().copied().unwrap_or(wanted)
        };
        (served, d)
    };
    let filterable = matches!(
        Product::from_byte(product),
        Some(Product::Call | Product::CallPlus)
    );
    let watched = devices
        .iter()
        .map(|(sw, d)| (if *sw == 0 { default_switch } else { *sw }, d.clone()))
        .filter(|(sw, _)| served.contains(sw))
        .collect();
    Conn {
        app: spec.name.clone(),
        address: spec.address,
        protocol: spec.protocol,
        product,
        bypass_port: bypass,
        reads: spec.reads,
        stalled: !spec.reads,
        raw: false,
        identify: None,
        expected_served: served,
        default_switch,
        filtering: filterable && user.is_some_and(|u| u.filtering),
        watched,
        touched: BTreeSet::new(),
        admitted_at_seq: BTreeMap::new(),
        licensed_after_admit: None,
        requests: Vec::new(),
        resumed_from: None,
        frames: Vec::new(),
        end: None,
    }
}

/// Where the checker has got to in one connection.
#[derive(Default)]
struct Cursor {
    /// Frames checked so far.
    seen: usize,
    identify_checked: bool,
    answers: BTreeMap<u16, u32>,
    /// Per switch, the sequence number of the last event received (for a resumed session,
    /// by the connection it took over from, until it receives one of its own).
    last_seq: BTreeMap<u8, u32>,
    /// Switches whose `G` said events were lost and no event has come since.
    after_lost: BTreeSet<u8>,
    /// The `X` received, if any.
    close: Option<u8>,
}

/// Where the checker has got to in one monitor connection.
#[derive(Default)]
struct MonitorCursor {
    seen: usize,
    /// Frames reported missed (`G`) so far.
    missed: u64,
    /// Per switch: the last event received, and `missed` then.
    last_event: BTreeMap<u8, (u32, u64)>,
    /// Per switch and INVOKE: `None` while a request is out, `Some(missed)` once answered.
    invokes: BTreeMap<(u8, u16), Option<u64>>,
}

/// The reconciler's invariant: what runs for each switch is what the configuration in force
/// asks for: a supervisor for each enabled local switch, a bus task for each enabled remote
/// one (the simulated site has no bus), nothing for the others.
fn check_switch_tasks(site: &SiteView<'_>) -> Result<(), Violation> {
    use relay::server::SwitchTasks;
    let config = site.relay.config();
    let wanted: BTreeMap<u8, SwitchTasks> = config
        .switches
        .iter()
        .filter(|s| s.enabled && s.remote.is_none())
        .map(|s| (s.no, SwitchTasks::Dial))
        .collect();
    let running = site.relay.switch_tasks();
    if running != wanted {
        return violation(
            "each switch runs what the configuration in force asks",
            format!("the configuration asks for {wanted:?}; running: {running:?}"),
        );
    }
    Ok(())
}

/// Checks a site's invariants step by step.
pub(crate) struct Checker {
    cursors: Vec<Cursor>,
    monitor_cursors: Vec<MonitorCursor>,
    /// The relay's tasks with no application connected, less one for each switch task.
    baseline_tasks: usize,
}

impl Checker {
    /// A checker for `site`, taking its baseline now (before any application connects).
    pub(crate) fn new(site: &SiteView<'_>) -> Checker {
        Checker {
            cursors: Vec::new(),
            monitor_cursors: Vec::new(),
            baseline_tasks: site.relay.tasks_alive() - site.relay.switch_tasks().len(),
        }
    }

    /// After every application has gone: no session, no licence or bypass use, no request in
    /// flight, and the relay's tasks back to the baseline (with one task for each switch the
    /// configuration in force runs).
    pub(crate) fn baseline(&self, site: &SiteView<'_>) -> Result<(), Violation> {
        let relay = &site.relay;
        let sessions = relay.sessions();
        if !sessions.is_empty() {
            return violation(
                "everything returns to its baseline",
                format!(
                    "{} sessions remain after every application left",
                    sessions.len()
                ),
            );
        }
        // Sessions waiting to be resumed keep their licence use until their window ends.
        let parked = relay.parked();
        let parked_licensed = parked
            .iter()
            .filter(|s| s.product.port() == Port::Licensed)
            .count() as u32;
        let parked_bypass = parked.len() as u32 - parked_licensed;
        let usage = relay.licensing().usage();
        let bypass: u32 = Product::ALL.iter().copied().map(|p| usage.bypass(p)).sum();
        if usage.licensed_total() != parked_licensed || bypass != parked_bypass {
            return violation(
                "everything returns to its baseline",
                format!(
                    "licence use {} and bypass use {bypass} remain after every application left",
                    usage.licensed_total()
                ),
            );
        }
        drop(usage);
        for no in 1..=8 {
            let in_flight = relay
                .switch(no)
                .and_then(|s| s.link_handle())
                .map_or(0, |l| l.invokes().len());
            if in_flight != 0 {
                return violation(
                    "everything returns to its baseline",
                    format!("{in_flight} requests remain in flight on switch {no}"),
                );
            }
        }
        let expected = self.baseline_tasks + site.relay.switch_tasks().len();
        if site.relay.tasks_alive() != expected {
            return violation(
                "everything returns to its baseline",
                format!(
                    "{} relay tasks remain; {expected} with no application",
                    site.relay.tasks_alive()
                ),
            );
        }
        Ok(())
    }

    /// Checks everything that has happened since the last call.
    pub(crate) fn after_step(&mut self, site: &SiteView<'_>) -> Result<(), Violation> {
        let logs: BTreeMap<u8, SentLog> = site
            .switches
            .iter()
            .map(|(no, sw)| (*no, sw.sent()))
            .collect();
        let conns = site.obs.lock();
        self.cursors.resize_with(conns.len(), Cursor::default);
        for (i, conn) in conns.iter().enumerate() {
            if !self.cursors[i].identify_checked {
                // A resumed session goes on from where the connection it replaced stopped.
                if let Some(prev) = conn.resumed_from.filter(|p| *p < i) {
                    self.cursors[i].last_seq = self.cursors[prev].last_seq.clone();
                }
            }
            check_conn(conn, &mut self.cursors[i], &logs)?;
        }
        // Checked in place: the frames only grow, and copying them every step would cost the
        // whole history each time.
        let monitors = site.obs.monitors();
        self.monitor_cursors
            .resize_with(monitors.len(), MonitorCursor::default);
        for (monitor, cursor) in monitors.iter().zip(self.monitor_cursors.iter_mut()) {
            check_monitor(monitor, cursor, &logs)?;
        }
        self.check_accounting(site, &conns)?;
        check_switch_tasks(site)
    }

    /// At the end, with time enough passed for every answer (including the relay's own after
    /// 30 s): every request of a connection still open was answered, and every event due to
    /// it arrived.
    pub(crate) fn at_end(&mut self, site: &SiteView<'_>) -> Result<(), Violation> {
        self.after_step(site)?;

        let logs: BTreeMap<u8, SentLog> = site
            .switches
            .iter()
            .map(|(no, sw)| (*no, sw.sent()))
            .collect();
        let conns = site.obs.lock();
        for (conn, cursor) in conns.iter().zip(self.cursors.iter()) {
            if !healthy_and_open(conn, cursor) {
                continue;
            }
            for r in &conn.requests {
                let n = cursor.answers.get(&r.invoke).copied().unwrap_or(0);
                if n != 1 {
                    return violation(
                        "every request gets exactly one answer",
                        format!(
                            "{} sent request '{}' INVOKE {} and received {n} answers",
                            conn.app,
                            r.code.escape_ascii(),
                            r.invoke
                        ),
                    );
                }
            }
            for &sw in &conn.expected_served {
                let Some(log) = logs.get(&sw) else { continue };
                let from = from_seq(conn, cursor, sw);
                if let Some(missed) = due(conn, log, sw, from, log.next_seq).next() {
                    return violation(
                        "events arrive without gaps",
                        format!(
                            "{} never received event #{} ('{}' about {:?}) of switch {sw}",
                            conn.app,
                            missed.seq,
                            missed.code.escape_ascii(),
                            missed.device
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Licence and bypass use against the sessions admitted.
    fn check_accounting(&self, site: &SiteView<'_>, conns: &[Conn]) -> Result<(), Violation> {
        let relay = &site.relay;
        let live = relay.sessions();
        // Sessions waiting to be resumed keep their licence use.
        let sessions: Vec<_> = live.iter().cloned().chain(relay.parked()).collect();
        let usage = relay.licensing().usage();
        let licensed: Vec<_> = sessions
            .iter()
            .filter(|s| s.product.port() == Port::Licensed)
            .collect();
        for p in [Product::Call, Product::OpenTsp, Product::Operator] {
            let admitted = licensed
                .iter()
                .filter(|s| {
                    s.product == p || (p == Product::Call && s.product == Product::CallPlus)
                })
                .count() as u32;
            if usage.counted(p) != admitted {
                return violation(
                    "licence use equals the sessions admitted",
                    format!("{p} use is {} with {admitted} sessions", usage.counted(p)),
                );
            }
        }
        if usage.licensed_total() != licensed.len() as u32 {
            return violation(
                "licence use equals the sessions admitted",
                format!(
                    "licensed use is {} with {} licensed-port sessions",
                    usage.licensed_total(),
                    licensed.len()
                ),
            );
        }
        for p in Product::ALL
            .iter()
            .copied()
            .filter(|p| p.port() == Port::Bypass)
        {
            let admitted = sessions.iter().filter(|s| s.product == p).count() as u32;
            if usage.bypass(p) != admitted {
                return violation(
                    "bypass use equals the sessions admitted",
                    format!("{p} use is {} with {admitted} sessions", usage.bypass(p)),
                );
            }
        }
        drop(usage);
        for c in conns {
            if let Some((used, limit)) = c.licensed_after_admit {
                if used > limit {
                    return violation(
                        "admission keeps the access limit",
                        format!("{} admitted as licensed session {used} of {limit}", c.app),
                    );
                }
            }
        }
        // The relay's sessions against the connections the applications hold: every healthy
        // open one is a session, and no session is without a connection.
        let mut held: BTreeMap<(IpAddr, u8), (usize, usize)> = BTreeMap::new();
        for (c, cursor) in conns.iter().zip(self.cursors.iter()) {
            if !c.admitted() || c.end.is_some() || cursor.close.is_some() {
                continue;
            }
            let e = held.entry((c.address, c.product)).or_default();
            if c.stalled {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
        let mut relay_side: BTreeMap<(IpAddr, u8), usize> = BTreeMap::new();
        for s in &live {
            *relay_side
                .entry((s.peer.ip(), s.product.byte()))
                .or_default() += 1;
        }
        for (key, n) in &relay_side {
            let (healthy, stalled) = held.get(key).copied().unwrap_or_default();
            if *n < healthy || *n > healthy + stalled {
                return violation(
                    "the relay's sessions are the applications' connections",
                    format!(
                        "{} sessions of product {} from {}; the applications hold {healthy} (and {stalled} that do not read)",
                        n, key.1, key.0
                    ),
                );
            }
        }
        for (key, (healthy, _)) in &held {
            if *healthy > 0 && !relay_side.contains_key(key) {
                return violation(
                    "the relay's sessions are the applications' connections",
                    format!(
                        "no session of product {} from {} though {healthy} application(s) hold one",
                        key.1, key.0
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Admitted, still open, never closed by the relay, and reading.
fn healthy_and_open(conn: &Conn, cursor: &Cursor) -> bool {
    conn.admitted() && conn.end.is_none() && cursor.close.is_none() && conn.reads
}

/// The first sequence number due to a connection on a switch: from admission, after the last
/// event received.
fn from_seq(conn: &Conn, cursor: &Cursor, sw: u8) -> u32 {
    let admitted = conn.admitted_at_seq.get(&sw).copied().unwrap_or(0);
    if cursor.after_lost.contains(&sw) {
        return admitted;
    }
    // A resumed session owes everything after the last event its application saw, on any
    // of its connections, admitted since or not.
    if conn.resumed_from.is_some() {
        if let Some(last) = cursor.last_seq.get(&sw) {
            return last + 1;
        }
    }
    cursor
        .last_seq
        .get(&sw)
        .map_or(admitted, |last| (last + 1).max(admitted))
}

/// Events of `sw` with sequence numbers in `from..to` that the connection must receive.
fn due<'a>(
    conn: &'a Conn,
    log: &'a SentLog,
    sw: u8,
    from: u32,
    to: u32,
) -> impl Iterator<Item = &'a switch_sim::switch::SentEvent> + 'a {
    let start = log.events.partition_point(|e| e.seq < from);
    log.events[start..]
        .iter()
        .take_while(move |e| e.seq < to)
        .filter(move |e| !log.spoiled(e) && passes(conn, sw, &e.device) == Some(true))
}

/// Whether filtering lets an event about `device` through: `None` when the device's watch
/// changed during the session (either answer is right).
fn passes(conn: &Conn, sw: u8, device: &str) -> Option<bool> {
    if !conn.filtering || device.is_empty() {
        return Some(true);
    }
    let key = (sw, device.to_owned());
    if conn.touched.contains(&key) {
        return None;
    }
    Some(conn.watched.contains(&key))
}

fn check_conn(
    conn: &Conn,
    cursor: &mut Cursor,
    logs: &BTreeMap<u8, SentLog>,
) -> Result<(), Violation> {
    if !cursor.identify_checked {
        cursor.identify_checked = true;
        if let Some((0, served)) = &conn.identify {
            let got: Vec<u8> = served.iter().map(|(no, _)| *no).collect();
            if got != conn.expected_served {
                return violation(
                    "served switches follow docs/behaviour.md §4",
                    format!(
                        "{} (protocol {} from {}) is served {got:?}; docs/behaviour.md §4 says {:?}",
                        conn.app, conn.protocol, conn.address, conn.expected_served
                    ),
                );
            }
        }
    }
    let p3 = conn.protocol == 3;
    for (at, frame) in &conn.frames[cursor.seen..] {
        let at = format!("{:.3} s", at.as_secs_f64());
        if cursor.close.is_some() && frame.kind() != Kind::Link {
            return violation(
                "nothing follows X",
                format!("{} received {:?} at {at} after X", conn.app, frame.kind()),
            );
        }
        match frame.kind() {
            Kind::Answer => {
                let Ok(m) = CallMsg::decode(frame, p3) else {
                    return violation("frames decode", format!("{} at {at}: {frame:?}", conn.app));
                };
                let Some(req) = conn.requests.iter().find(|r| r.invoke == m.invoke) else {
                    return violation(
                        "answers go only to the asker",
                        format!(
                            "{} received an answer with INVOKE {} at {at} and sent no such request",
                            conn.app, m.invoke
                        ),
                    );
                };
                if p3 && m.switch != req.switch {
                    return violation(
                        "answers go only to the asker",
                        format!(
                            "{} asked switch {:?} with INVOKE {} and the answer names switch {:?}",
                            conn.app, req.switch, m.invoke, m.switch
                        ),
                    );
                }
                let n = cursor.answers.entry(m.invoke).or_default();
                *n += 1;
                if *n > 1 {
                    return violation(
                        "every request gets exactly one answer",
                        format!(
                            "{} received answer number {n} to INVOKE {} at {at}",
                            conn.app, m.invoke
                        ),
                    );
                }
            }
            Kind::Event => {
                let Ok(m) = CallMsg::decode(frame, p3) else {
                    return violation("frames decode", format!("{} at {at}: {frame:?}", conn.app));
                };
                let sw = if p3 { m.switch } else { conn.single_switch() };
                let Some(sw) = sw.filter(|s| conn.expected_served.contains(s)) else {
                    return violation(
                        "events come only from served switches",
                        format!("{} received an event of switch {sw:?} at {at}", conn.app),
                    );
                };
                let body = &m.body;
                let device = body
                    .first()
                    .and_then(|&n| body.get(1..1 + n as usize))
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .unwrap_or_default();
                let Some(seq) = switch_sim::switch::event_seq(body) else {
                    continue;
                };
                if passes(conn, sw, &device) == Some(false) {
                    return violation(
                        "filtering passes only watched devices",
                        format!(
                            "{} (filtering on {:?}) received event #{seq} about {device:?} of switch {sw}",
                            conn.app, conn.watched
                        ),
                    );
                }
                if let Some(last) = cursor.last_seq.get(&sw) {
                    if seq <= *last {
                        return violation(
                            "events arrive in the order the switch sent them",
                            format!(
                                "{} received event #{seq} of switch {sw} at {at} after #{last}",
                                conn.app
                            ),
                        );
                    }
                }
                // After `G` the relay said events were lost: the next may follow a gap.
                if let Some(log) = logs.get(&sw).filter(|_| !cursor.after_lost.remove(&sw)) {
                    let from = from_seq(conn, cursor, sw);
                    if let Some(missed) = due(conn, log, sw, from, seq).next() {
                        return violation(
                            "events arrive without gaps",
                            format!(
                                "{} received event #{seq} of switch {sw} at {at} but not #{} ('{}' about {:?})",
                                conn.app,
                                missed.seq,
                                missed.code.escape_ascii(),
                                missed.device
                            ),
                        );
                    }
                }
                cursor.last_seq.insert(sw, seq);
            }
            Kind::Link => {
                if let Ok(LinkMsg::Lost { switch, .. }) = LinkMsg::decode(frame) {
                    cursor.after_lost.insert(switch);
                }
                if let Ok(LinkMsg::Close { reason, text }) = LinkMsg::decode(frame) {
                    cursor.close = Some(reason);
                    let allowed = match reason {
                        1 | 2 | 5 | 7 => true,
                        3 | 6 => conn.stalled,
                        4 => conn.raw,
                        _ => false,
                    };
                    if !allowed {
                        return violation(
                            "a healthy application is closed only for a reason the spec allows",
                            format!("{} received X {reason} {text:?} at {at}", conn.app),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    cursor.seen = conn.frames.len();
    if conn.end == Some(End::Closed)
        && conn.admitted()
        && cursor.close.is_none()
        && !conn.raw
        && !conn.stalled
    {
        return violation(
            "the relay says why it closes",
            format!("{} was disconnected without X", conn.app),
        );
    }
    Ok(())
}

/// A switch-message monitor against what the switches sent.
fn check_monitor(
    monitor: &MonitorConn,
    cursor: &mut MonitorCursor,
    logs: &BTreeMap<u8, SentLog>,
) -> Result<(), Violation> {
    const ORDER: &str = "a monitor sees each link's frames in the link's order";
    for (at, frame) in &monitor.frames[cursor.seen..] {
        let at = format!("{:.3} s", at.as_secs_f64());
        if frame.kind() != Kind::Monitor {
            continue;
        }
        let (code, sw, inner) = match MonitorMsg::decode(frame) {
            Ok(MonitorMsg::Gap { dropped }) => {
                cursor.missed += u64::from(dropped);
                continue;
            }
            Ok(MonitorMsg::Link {
                code,
                switch,
                frame,
                ..
            }) => (code, switch, frame),
            Err(e) => return violation("frames decode", format!("{} at {at}: {e}", monitor.name)),
        };
        match (code, inner.kind()) {
            (b'>', Kind::Request) => {
                cursor.invokes.insert((sw, inner.invoke()), None);
            }
            (b'<', Kind::Answer) => {
                let invoke = inner.invoke();
                let excused = match cursor.invokes.get(&(sw, invoke)) {
                    Some(None) => true,
                    // Answered before, or never seen: the request may be among frames missed
                    // since.
                    Some(Some(missed_then)) => cursor.missed > *missed_then,
                    None => cursor.missed > 0,
                };
                if !excused {
                    return violation(
                        ORDER,
                        format!(
                            "{} saw switch {sw}'s answer '{}' INVOKE {invoke} at {at} before the request",
                            monitor.name,
                            inner.code().escape_ascii()
                        ),
                    );
                }
                cursor.invokes.insert((sw, invoke), Some(cursor.missed));
            }
            (b'<', Kind::Event) => {
                let Ok(m) = CallMsg::decode(&inner, false) else {
                    return violation(
                        "frames decode",
                        format!("{} at {at}: {inner:?}", monitor.name),
                    );
                };
                let Some(seq) = switch_sim::switch::event_seq(&m.body) else {
                    continue;
                };
                let Some(log) = logs.get(&sw) else { continue };
                let from = match cursor.last_event.get(&sw) {
                    Some((last, _)) if seq <= *last => {
                        return violation(
                            ORDER,
                            format!(
                                "{} saw event #{seq} of switch {sw} at {at} after #{last}",
                                monitor.name
                            ),
                        );
                    }
                    Some((last, _)) => last + 1,
                    None => monitor.accepted_at_seq.get(&sw).copied().unwrap_or(seq),
                };
                let missed_before = cursor.last_event.get(&sw).map_or(0, |(_, m)| *m);
                let reported = cursor.missed - missed_before;
                // The relay reads a link in order: an event of this link sent before this one
                // and not seen was lost on the way, which only a `G` may explain.
                if let Ok(i) = log.events.binary_search_by_key(&seq, |e| e.seq) {
                    let link = log.events[i].link;
                    let start = log.events.partition_point(|e| e.seq < from);
                    let lost = log.events[start.min(i)..i]
                        .iter()
                        .filter(|e| e.link == link && !log.spoiled(e))
                        .count() as u64;
                    if lost > reported {
                        return violation(
                            ORDER,
                            format!(
                                "{} saw event #{seq} of switch {sw} at {at} but not {lost} earlier event(s) of its link; {reported} frame(s) were reported missed",
                                monitor.name
                            ),
                        );
                    }
                }
                cursor.last_event.insert(sw, (seq, cursor.missed));
            }
            _ => {}
        }
    }
    cursor.seen = monitor.frames.len();
    if monitor.end == Some(End::Closed) {
        return violation(
            "a monitor is closed only by its own side",
            format!("{} was closed by the relay", monitor.name),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use switch_sim::switch::SentEvent;
    use wire::{CallMsg, Frame, Str8};

    use super::*;
    use crate::observe::Request;

    /// An admitted protocol-3 Call session served switch 1, filtering on 2201.
    fn conn() -> Conn {
        Conn {
            app: "alex".into(),
            address: IpAddr::from([10, 0, 0, 51]),
            protocol: 3,
            product: Product::Call.byte(),
            bypass_port: false,
            reads: true,
            stalled: false,
            raw: false,
            identify: Some((0, vec![(1, true)])),
            expected_served: vec![1],
            default_switch: 1,
            filtering: true,
            watched: [(1, "2201".to_owned())].into(),
            touched: BTreeSet::new(),
            admitted_at_seq: [(1, 10)].into(),
            licensed_after_admit: Some((1, 23)),
            resumed_from: None,
            requests: vec![Request {
                switch: Some(1),
                invoke: 7,
                code: b'K',
            }],
            frames: Vec::new(),
            end: None,
        }
    }

    /// Switch 1 sent events #10..#14 on link 1: about 2201, 2202, 2201, "", 2201.
    fn logs() -> BTreeMap<u8, SentLog> {
        let events = ["2201", "2202", "2201", "", "2201"]
            .iter()
            .enumerate()
            .map(|(i, d)| SentEvent {
                seq: 10 + i as u32,
                link: 1,
                code: b'n',
                device: (*d).to_owned(),
            })
            .collect();
        let log = SentLog {
            next_seq: 15,
            events,
            spoiled: Vec::new(),
        };
        [(1, log)].into()
    }

    fn event(seq: u32, device: &str) -> (Duration, Frame) {
        let mut body = vec![device.len() as u8];
        body.extend_from_slice(device.as_bytes());
        body.extend_from_slice(&seq.to_be_bytes());
        let bytes = CallMsg {
            kind: Kind::Event,
            code: b'n',
            invoke: 0xFFFF,
            switch: Some(1),
            body: Bytes::from(body),
        }
        .encode()
        .unwrap();
        (Duration::ZERO, Frame::new(bytes).unwrap())
    }

    fn answer(invoke: u16) -> (Duration, Frame) {
        let bytes = CallMsg {
            kind: Kind::Answer,
            code: b'K',
            invoke,
            switch: Some(1),
            body: Bytes::from_static(&[0]),
        }
        .encode()
        .unwrap();
        (Duration::ZERO, Frame::new(bytes).unwrap())
    }

    fn close(reason: u8) -> (Duration, Frame) {
        let bytes = LinkMsg::Close {
            reason,
            text: Str8::lossy("why"),
        }
        .encode()
        .unwrap();
        (Duration::ZERO, Frame::new(bytes).unwrap())
    }

    fn check(c: &Conn) -> Result<(), Violation> {
        check_conn(c, &mut Cursor::default(), &logs())
    }

    fn broken(c: &Conn) -> &'static str {
        check(c).expect_err("a violation").invariant
    }

    #[test]
    fn a_resumed_session_owes_what_came_after_its_last_unless_g_said_it_was_lost() {
        // The earlier connection saw #10; this one was admitted at #14.
        let resumed = |frames: Vec<(Duration, Frame)>| {
            let mut c = conn();
            c.admitted_at_seq = [(1, 14)].into();
            c.resumed_from = Some(0);
            c.frames = frames;
            let mut cursor = Cursor {
                last_seq: [(1, 10)].into(),
                ..Cursor::default()
            };
            check_conn(&c, &mut cursor, &logs())
        };
        // Replayed #12 and #13, then live #14: nothing missing.
        assert_eq!(
            resumed(vec![event(12, "2201"), event(13, ""), event(14, "2201")]),
            Ok(())
        );
        // Live #14 without the replay: #12 is missing, though it came before admission.
        assert_eq!(
            resumed(vec![event(14, "2201")]).unwrap_err().invariant,
            "events arrive without gaps"
        );
        // #10 again: a duplicate across connections.
        assert_eq!(
            resumed(vec![event(10, "2201")]).unwrap_err().invariant,
            "events arrive in the order the switch sent them"
        );
        // G excuses the gap before the next event.
        let lost = LinkMsg::Lost { switch: 1, lost: 3 }.encode().unwrap();
        let lost = (Duration::ZERO, Frame::new(lost).unwrap());
        assert_eq!(resumed(vec![lost, event(14, "2201")]), Ok(()));
    }

    #[test]
    fn a_history_that_keeps_every_rule_passes() {
        let mut c = conn();
        c.frames = vec![
            answer(7),
            event(10, "2201"),
            event(12, "2201"),
            event(13, ""),
            event(14, "2201"),
        ];
        assert_eq!(check(&c), Ok(()));
    }

    #[test]
    fn an_answer_nobody_asked_for_or_a_second_one_is_caught() {
        let mut c = conn();
        c.frames = vec![answer(8)];
        assert_eq!(broken(&c), "answers go only to the asker");
        c.frames = vec![answer(7), answer(7)];
        assert_eq!(broken(&c), "every request gets exactly one answer");
    }

    #[test]
    fn a_missing_event_before_one_received_is_a_gap() {
        let mut c = conn();
        c.frames = vec![event(10, "2201"), event(14, "2201")];
        let v = check(&c).unwrap_err();
        assert_eq!(v.invariant, "events arrive without gaps");
        assert_eq!(
            v.detail,
            "alex received event #14 of switch 1 at 0.000 s but not #12 ('n' about \"2201\")"
        );
    }

    #[test]
    fn events_out_of_order_are_caught() {
        let mut c = conn();
        c.frames = vec![event(12, "2201"), event(10, "2201")];
        // #10 was due before #12: a gap first.
        assert_eq!(broken(&c), "events arrive without gaps");
        c.admitted_at_seq = [(1, 12)].into();
        assert_eq!(
            broken(&c),
            "events arrive in the order the switch sent them"
        );
    }

    #[test]
    fn filtering_passes_only_watched_devices_unless_the_watch_changed() {
        let mut c = conn();
        c.frames = vec![event(10, "2201"), event(11, "2202")];
        assert_eq!(broken(&c), "filtering passes only watched devices");
        c.touched.insert((1, "2202".into()));
        assert_eq!(check(&c), Ok(()));
    }

    #[test]
    fn a_spoiled_link_excuses_what_it_lost() {
        let mut c = conn();
        c.frames = vec![event(10, "2201"), event(14, "2201")];
        let mut logs = logs();
        logs.get_mut(&1).unwrap().spoiled.push((1, 11));
        assert_eq!(check_conn(&c, &mut Cursor::default(), &logs), Ok(()));
    }

    #[test]
    fn a_reading_application_closed_as_silent_or_slow_is_a_violation() {
        for reason in [3, 6] {
            let mut c = conn();
            c.frames = vec![close(reason)];
            assert_eq!(
                broken(&c),
                "a healthy application is closed only for a reason the spec allows"
            );
            c.stalled = true;
            assert_eq!(check(&c), Ok(()));
        }
        for reason in [1, 2, 5, 7] {
            let mut c = conn();
            c.frames = vec![close(reason)];
            assert_eq!(check(&c), Ok(()), "reason {reason}");
        }
    }

    #[test]
    fn a_close_without_x_or_an_event_after_x_is_caught() {
        let mut c = conn();
        c.end = Some(End::Closed);
        assert_eq!(broken(&c), "the relay says why it closes");
        let mut c = conn();
        c.frames = vec![close(7), event(10, "2201")];
        assert_eq!(broken(&c), "nothing follows X");
    }

    #[test]
    fn served_switches_are_checked_against_spec_section_4() {
        let mut c = conn();
        c.identify = Some((0, vec![(1, true), (2, true)]));
        assert_eq!(broken(&c), "served switches follow docs/behaviour.md §4");
    }

    #[test]
    fn spec_section_4_expectations() {
        let config = Config::parse(
            r#"
switches:
  - { no: 1, address: 10.0.1.1 }
  - { no: 2, address: 10.0.1.2 }
  - { no: 3, address: 10.0.1.3, enabled: false }
default_switch: 2
users:
  - { ip: 10.0.0.51, switches: [1, 3], default_switch: 3, filtering: true }
  - { ip: 10.0.0.52, default_switch: 1 }
"#,
        )
        .unwrap();
        let app = |ip: [u8; 4], protocol| AppSpec {
            name: "a".into(),
            address: IpAddr::from(ip),
            protocol,
            product: "call".into(),
            devices: Vec::new(),
            port: None,
            reads: true,
            resumable: false,
            copies: 1,
        };
        let devices = [(0, "2201".to_owned())];
        let expect = |ip, protocol| {
            let c = expect_conn(&config, &app(ip, protocol), 1, false, &devices);
            (c.expected_served, c.default_switch, c.filtering, c.watched)
        };
        let watched = |sw: u8| BTreeSet::from([(sw, "2201".to_owned())]);
        assert_eq!(expect([10, 0, 0, 51], 2), (vec![3], 3, true, watched(3)));
        assert_eq!(expect([10, 0, 0, 51], 3), (vec![1, 3], 3, true, watched(3)));
        assert_eq!(expect([10, 0, 0, 52], 3), (vec![1], 1, false, watched(1)));
        assert_eq!(expect([10, 0, 0, 99], 2), (vec![2], 2, false, watched(2)));
        assert_eq!(
            expect([10, 0, 0, 99], 3),
            (vec![1, 2], 2, false, watched(2))
        );
    }

    /// An `M` frame of switch 1's link.
    fn seen(code: u8, inner: &(Duration, Frame)) -> (Duration, Frame) {
        let bytes = wire::monitor::encode_link(code, 0, 1, inner.1.as_bytes()).unwrap();
        (Duration::ZERO, Frame::new(bytes).unwrap())
    }

    /// An event or answer as the switch sends it (no SWITCH byte).
    fn on_link(kind: Kind, code: u8, invoke: u16, body: Vec<u8>) -> (Duration, Frame) {
        let bytes = CallMsg {
            kind,
            code,
            invoke,
            switch: None,
            body: Bytes::from(body),
        }
        .encode()
        .unwrap();
        (Duration::ZERO, Frame::new(bytes).unwrap())
    }

    fn switch_event(seq: u32) -> (Duration, Frame) {
        let mut body = vec![4];
        body.extend_from_slice(b"2201");
        body.extend_from_slice(&seq.to_be_bytes());
        seen(b'<', &on_link(Kind::Event, b'n', 0xFFFF, body))
    }

    fn request(invoke: u16) -> (Duration, Frame) {
        seen(
            b'>',
            &on_link(Kind::Request, b'K', invoke, b"2201".to_vec()),
        )
    }

    fn switch_answer(invoke: u16) -> (Duration, Frame) {
        seen(b'<', &on_link(Kind::Answer, b'K', invoke, vec![0]))
    }

    fn gap(dropped: u32) -> (Duration, Frame) {
        let bytes = wire::monitor::encode_gap(dropped);
        (Duration::ZERO, Frame::new(bytes).unwrap())
    }

    fn monitor(frames: Vec<(Duration, Frame)>) -> MonitorConn {
        MonitorConn {
            name: "trace".into(),
            accepted_at_seq: [(1, 10)].into(),
            frames,
            end: None,
        }
    }

    fn check_mon(m: &MonitorConn, logs: &BTreeMap<u8, SentLog>) -> Result<(), Violation> {
        check_monitor(m, &mut MonitorCursor::default(), logs)
    }

    #[test]
    fn a_monitor_that_saw_every_frame_in_order_passes() {
        let m = monitor(vec![
            switch_event(10),
            request(3),
            switch_event(11),
            switch_answer(3),
            request(3),
            switch_answer(3),
            switch_event(12),
            switch_event(13),
            switch_event(14),
        ]);
        assert_eq!(check_mon(&m, &logs()), Ok(()));
    }

    #[test]
    fn an_answer_before_its_request_is_caught_unless_frames_were_missed() {
        let m = monitor(vec![switch_answer(3), request(3)]);
        let v = check_mon(&m, &logs()).expect_err("a violation");
        assert_eq!(
            v.detail,
            "trace saw switch 1's answer 'K' INVOKE 3 at 0.000 s before the request"
        );
        // A second answer to one request is as wrong.
        let m = monitor(vec![request(3), switch_answer(3), switch_answer(3)]);
        assert!(check_mon(&m, &logs()).is_err());
        let m = monitor(vec![gap(1), switch_answer(3), request(3)]);
        assert_eq!(check_mon(&m, &logs()), Ok(()));
    }

    #[test]
    fn a_missed_event_needs_a_gap_report_that_counts_it() {
        let m = monitor(vec![switch_event(10), switch_event(13)]);
        let v = check_mon(&m, &logs()).expect_err("a violation");
        assert_eq!(
            v.detail,
            "trace saw event #13 of switch 1 at 0.000 s but not 2 earlier event(s) of its link; 0 frame(s) were reported missed"
        );
        let m = monitor(vec![switch_event(10), gap(1), switch_event(13)]);
        assert!(check_mon(&m, &logs()).is_err());
        let m = monitor(vec![switch_event(10), gap(2), switch_event(13)]);
        assert_eq!(check_mon(&m, &logs()), Ok(()));
        // The first event due is the switch's next one when the password was accepted.
        let m = monitor(vec![switch_event(11)]);
        assert!(check_mon(&m, &logs()).is_err());
    }

    #[test]
    fn events_lost_with_an_earlier_link_or_out_of_order_are_judged_apart() {
        let mut logs = logs();
        let log = logs.get_mut(&1).unwrap();
        for e in &mut log.events[..3] {
            e.link = 1;
        }
        for e in &mut log.events[3..] {
            e.link = 2;
        }
        // #11 and #12 went with link 1; #13 came on link 2.
        let m = monitor(vec![switch_event(10), switch_event(13)]);
        assert_eq!(check_mon(&m, &logs), Ok(()));
        let m = monitor(vec![
            switch_event(10),
            gap(1),
            switch_event(12),
            switch_event(11),
        ]);
        assert_eq!(
            check_mon(&m, &logs).expect_err("a violation").detail,
            "trace saw event #11 of switch 1 at 0.000 s after #12"
        );
    }

    #[test]
    fn a_monitor_closed_by_the_relay_is_caught() {
        let mut m = monitor(vec![switch_event(10)]);
        m.end = Some(End::Closed);
        assert_eq!(
            check_mon(&m, &logs()).expect_err("a violation").invariant,
            "a monitor is closed only by its own side"
        );
        m.end = Some(End::Left);
        assert_eq!(check_mon(&m, &logs()), Ok(()));
    }
}
