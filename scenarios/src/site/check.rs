//! The invariants of a site two relays share, checked as the world plays and once it has
//! settled:
//! - never two relays dialling one switch while both believe they hold the lease, and no relay
//!   dials without it (checked at every link the relays dial);
//! - every request gets exactly one answer (checked by each application);
//! - every resumable application, on whichever relay it lands, sees every event of its
//!   switches in order, or a `G` that accounts for exactly what it missed; a number means the
//!   same event on both relays (one numbering per site), and every number stands for an event
//!   a holder read from the switch (numbers never run ahead of the switch's events, so a `G`
//!   never counts numbers no event was given);
//! - licence use equals the sessions admitted, and each session is counted on one relay of the
//!   site only;
//! - once every fault has healed, one relay holds the lease and both serve every switch.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use busseam::mem::MemStats;
use relay::hub::session_handle::SessionHandle;
use relay::Relay;
use tokio::time::Instant;
use wire::Port;

use super::app::AppSummary;
use super::world::NODES;

/// How many of the last actions a violation is shown with.
const CONTEXT: usize = 6;

pub struct Check {
    started: Instant,
    violations: Vec<String>,
    recent: VecDeque<String>,
    /// Each switch's numbers, as the applications saw them: the event each stands for.
    numbers: BTreeMap<(u8, u64), u64>,
    dials: u64,
    /// Each break already reported, so that one seen again by another party adds nothing.
    broken: BTreeSet<String>,
}

impl Check {
    pub fn new(started: Instant) -> Check {
        Check {
            started,
            violations: Vec::new(),
            recent: VecDeque::new(),
            numbers: BTreeMap::new(),
            dials: 0,
            broken: BTreeSet::new(),
        }
    }

    fn now(&self) -> String {
        format!("{:.3}s", self.started.elapsed().as_secs_f64())
    }
}

/// Between number `number` of `switch` and the nearest numbers seen on either side, more
/// numbers than events the switch sent in between (it counts an event only when a relay had
/// its link): a number skipped over must be an event some relay read, never one reserved
/// ahead and not given.
fn numbers_ahead_of_events(
    numbers: &BTreeMap<(u8, u64), u64>,
    switch: u8,
    number: u64,
) -> Option<String> {
    let id = numbers[&(switch, number)];
    let before = numbers.range((switch, 0)..(switch, number)).next_back();
    let after = numbers
        .range((switch, number + 1)..=(switch, u64::MAX))
        .next();
    let pairs = [
        before.map(|(&(_, n), &i)| ((n, i), (number, id))),
        after.map(|(&(_, n), &i)| ((number, id), (n, i))),
    ];
    pairs
        .into_iter()
        .flatten()
        .find_map(|((n1, i1), (n2, i2))| {
            let events = i2.saturating_sub(i1);
            (n2 - n1 > events).then(|| {
                format!(
                    "switch {switch}: numbers {n1} to {n2} stand for events {i1} to {i2} \
                 ({} number(s) given to no event)",
                    n2 - n1 - events
                )
            })
        })
}

/// The check, shared by the world, the relays' hosts and the applications.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Check>>);

impl Shared {
    pub fn new(check: Check) -> Shared {
        Shared(Arc::new(Mutex::new(check)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Check> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An action of the timeline, kept to show with a violation.
    pub fn note(&self, action: String) {
        let mut c = self.lock();
        let line = format!("{} {action}", c.now());
        c.recent.push_back(line);
        if c.recent.len() > CONTEXT {
            c.recent.pop_front();
        }
    }

    pub fn broke(&self, invariant: &str, detail: String) {
        let mut c = self.lock();
        // The same break seen again adds nothing (an application sees one loss per event).
        if c.violations.len() >= 20 || !c.broken.insert(format!("{invariant}: {detail}")) {
            return;
        }
        let recent: Vec<&str> = c.recent.iter().map(String::as_str).collect();
        let line = format!(
            "{}: {invariant}: {detail} (last actions: {})",
            c.now(),
            recent.join("; ")
        );
        c.violations.push(line);
    }

    /// Relay `i` dialled switch `no`; `relays` are those running now.
    pub fn dialled(&self, i: usize, no: u8, relays: &[Option<Arc<Relay>>; 2]) {
        self.lock().dials += 1;
        if i >= relays.len() {
            self.broke(
                "a branch relay dials nothing",
                format!("{} dialled switch {no}", NODES[i]),
            );
            return;
        }
        let believes = |r: &Option<Arc<Relay>>| r.as_ref().is_some_and(|r| r.may_dial());
        if !believes(&relays[i]) {
            self.broke(
                "a relay dials only while its lease is valid",
                format!("{} dialled switch {no} without a valid lease", NODES[i]),
            );
        }
        if believes(&relays[1 - i]) {
            self.broke(
                "never two relays dialling one switch while both believe they hold the lease",
                format!(
                    "{} dialled switch {no} while {} held the lease by its own clock",
                    NODES[i],
                    NODES[1 - i]
                ),
            );
        }
    }

    /// An application saw event `id` of `switch` numbered `number`.
    pub fn numbered(&self, switch: u8, number: u64, id: u64, app: &str, at: usize) {
        let (was, ahead) = {
            let mut c = self.lock();
            let was = *c.numbers.entry((switch, number)).or_insert(id);
            (was, numbers_ahead_of_events(&c.numbers, switch, number))
        };
        if let Some(detail) = ahead {
            self.broke("every number stands for an event the switch sent", detail);
        }
        if was != id {
            self.broke(
                "one numbering per site",
                format!(
                    "{app} on {}: number {number} of switch {switch} is event {id}, elsewhere event {was}",
                    NODES[at]
                ),
            );
        }
    }

    /// The branch after every fault healed: it serves every switch of the site from the bus,
    /// and its licence use equals its sessions.
    pub fn branch_settled(&self, branch: &Relay, switches: u8) {
        for no in 1..=switches {
            if !branch.switch_up(no) {
                self.broke(
                    "once the faults heal, the branch serves every switch",
                    format!("switch {no} is down on {}", NODES[2]),
                );
            }
        }
        let sessions: Vec<_> = branch
            .sessions()
            .into_iter()
            .chain(branch.parked())
            .collect();
        self.licence_use_matches(branch, &sessions, 2);
    }

    /// Relay `NODES[node]` counts one licence use for each licensed session it holds,
    /// connected or waiting to come back (`sessions`).
    fn licence_use_matches(&self, relay: &Relay, sessions: &[Arc<SessionHandle>], node: usize) {
        let licensed = sessions
            .iter()
            .filter(|s| s.product.port() == Port::Licensed)
            .count() as u32;
        let used = relay.licensing().usage().licensed_total();
        if used != licensed {
            self.broke(
                "licence use equals the sessions admitted",
                format!(
                    "{} counts {used} with {licensed} licensed sessions",
                    NODES[node]
                ),
            );
        }
    }

    /// The site after every fault healed and it had time to settle.
    pub fn settled(&self, relays: &[Arc<Relay>], switches: u8) {
        if relays.len() != 2 {
            self.broke("both relays run again", format!("{} running", relays.len()));
            return;
        }
        let holders = relays.iter().filter(|r| r.may_dial()).count();
        if holders != 1 {
            self.broke(
                "once the faults heal, one relay holds the lease",
                format!("{holders} relays hold it"),
            );
        }
        for (i, relay) in relays.iter().enumerate() {
            for no in 1..=switches {
                if !relay.switch_up(no) {
                    self.broke(
                        "once the faults heal, both relays serve every switch",
                        format!("switch {no} is down on {}", NODES[i]),
                    );
                }
            }
        }
        let mut seen: BTreeMap<wire::Token, usize> = BTreeMap::new();
        for (i, relay) in relays.iter().enumerate() {
            let sessions: Vec<_> = relay.sessions().into_iter().chain(relay.parked()).collect();
            self.licence_use_matches(relay, &sessions, i);
            let tokens: BTreeMap<wire::Token, String> = sessions
                .iter()
                .filter_map(|s| Some((s.resume?, s.app_name.to_string())))
                .collect();
            for (token, app) in tokens {
                if let Some(other) = seen.insert(token, i) {
                    self.broke(
                        "each session is counted on one relay of the site",
                        format!(
                            "a session of {app} is held by both {} and {}",
                            NODES[other], NODES[i]
                        ),
                    );
                }
            }
        }
    }

    /// Every violation, and the transcript.
    pub fn finish(
        &self,
        apps: BTreeMap<String, AppSummary>,
        stats: MemStats,
    ) -> (Vec<String>, String) {
        let c = self.lock();
        #[derive(serde::Serialize)]
        struct Transcript<'a> {
            apps: BTreeMap<String, AppSummary>,
            dials: u64,
            numbered_events: usize,
            bus_published: u64,
            bus_delivered: u64,
            bus_lost: u64,
            bus_writes: u64,
            violations: &'a [String],
        }
        let transcript = Transcript {
            apps,
            dials: c.dials,
            numbered_events: c.numbers.len(),
            bus_published: stats.published,
            bus_delivered: stats.delivered,
            bus_lost: stats.lost,
            bus_writes: stats.writes,
            violations: &c.violations,
        };
        let text = serde_yaml::to_string(&transcript).unwrap_or_default();
        (c.violations.clone(), text)
    }
}
