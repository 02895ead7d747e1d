//! The fault explorer: for each seed, a random world ([`crate::world`]) played on the
//! in-memory network with virtual time, its invariants ([`crate::invariants`]) checked after
//! every step. A violation is shrunk to a short scenario that the ordinary runner replays.

use std::time::{Duration, Instant};

use crate::invariants::Violation;
use crate::runner::play_checked;
use crate::schema::Scenario;
use crate::world;

/// What one seed gave.
pub struct SeedRun {
    pub seed: u64,
    pub scenario: Scenario,
    /// The first invariant broken, after which step (0-based; `steps.len()` at the end).
    pub violation: Option<(usize, Violation)>,
    /// Why the world could not be played, if it could not (a defect of the explorer itself).
    pub error: Option<String>,
    pub virtual_time: Duration,
    pub wall: Duration,
    /// What every party saw (YAML), to compare two plays of one seed.
    pub transcript: String,
}

/// Plays the world of `seed`.
pub fn run_seed(seed: u64, minutes: u64) -> SeedRun {
    let started = Instant::now();
    let scenario = world::world(seed, minutes);
    let checked = play_checked(&scenario);
    SeedRun {
        seed,
        violation: checked.violation,
        transcript: serde_yaml::to_string(&checked.transcript).unwrap_or_default(),
        error: checked.transcript.error,
        virtual_time: checked.virtual_time,
        wall: started.elapsed(),
        scenario,
    }
}

/// How much shrinking may cost.
pub struct ShrinkBudget {
    pub plays: usize,
    pub wall: Duration,
}

/// The shortest scenario found that still breaks `invariant`: see [`reduce`]. Each candidate
/// is one ordinary play, within `budget`.
pub fn shrink(
    scenario: &Scenario,
    at_step: usize,
    invariant: &str,
    budget: &ShrinkBudget,
) -> Scenario {
    let started = Instant::now();
    let mut plays = 0;
    let mut best = reduce(scenario, at_step, |candidate| {
        if plays >= budget.plays || started.elapsed() >= budget.wall {
            return false;
        }
        plays += 1;
        play_checked(candidate)
            .violation
            .is_some_and(|(_, v)| v.invariant == invariant)
    });
    best.description = format!(
        "{} Shrunk from {} steps to {} that still break \"{invariant}\".",
        scenario.description.trim_end_matches('.'),
        scenario.steps.len(),
        best.steps.len()
    );
    best
}

/// The smallest scenario found for which `still_fails` holds (delta debugging): the steps
/// after `at_step` cut, then runs of steps removed (halving the run length) while it holds,
/// then the applications no step names. `scenario` itself is assumed to fail; once
/// `still_fails` starts refusing everything (a spent budget), the best so far is returned.
pub fn reduce(
    scenario: &Scenario,
    at_step: usize,
    mut still_fails: impl FnMut(&Scenario) -> bool,
) -> Scenario {
    let mut best = scenario.clone();
    best.steps.truncate(at_step + 1);
    if !still_fails(&best) {
        // The failure needs the steps after it (found at the end): keep them all.
        best = scenario.clone();
    }
    let mut chunk = best.steps.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < best.steps.len() {
            let mut candidate = best.clone();
            let end = (start + chunk).min(candidate.steps.len());
            candidate.steps.drain(start..end);
            if still_fails(&candidate) {
                best = candidate;
                removed_any = true;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        if !removed_any {
            chunk = chunk.div_ceil(2);
        }
    }
    let named = world::named_apps(&best.steps);
    let mut candidate = best.clone();
    candidate.apps.retain(|a| named.contains(&a.name));
    if still_fails(&candidate) {
        best = candidate;
    }
    best
}

/// The steps before `at` (the last `n` of them), one a line, for a report.
pub fn last_steps(scenario: &Scenario, at: usize, n: usize) -> Vec<String> {
    let end = (at + 1).min(scenario.steps.len());
    let start = end.saturating_sub(n);
    (start..end)
        .map(|i| format!("step {}: {:?}", i + 1, scenario.steps[i].0))
        .collect()
}
