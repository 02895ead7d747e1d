//! The fault explorer: random worlds keep every invariant, a seed is replayed exactly, a
//! world survives being written as a scenario file, and a failure shrinks to what causes it.

use scenarios::explore::{reduce, run_seed};
use scenarios::schema::{Scenario, Step};
use scenarios::world::world;

const SEEDS: std::ops::Range<u64> = 0..12;
const MINUTES: u64 = 3;

#[test]
fn random_worlds_keep_every_invariant() {
    for seed in SEEDS {
        let run = run_seed(seed, MINUTES);
        assert_eq!(run.error, None, "seed {seed} could not be played");
        if let Some((step, v)) = &run.violation {
            panic!(
                "seed {seed} broke \"{}\" after step {}: {}",
                v.invariant,
                step + 1,
                v.detail
            );
        }
        assert!(
            run.virtual_time.as_secs() >= MINUTES * 60,
            "seed {seed} ran {:?} of virtual time",
            run.virtual_time
        );
    }
}

#[test]
fn a_seed_plays_the_same_history_every_time() {
    for seed in [3, 7] {
        let first = run_seed(seed, MINUTES);
        let second = run_seed(seed, MINUTES);
        assert_eq!(first.scenario.to_yaml(), second.scenario.to_yaml());
        assert!(!first.transcript.is_empty());
        assert_eq!(first.transcript, second.transcript, "seed {seed}");
    }
}

#[test]
fn seeds_make_different_worlds() {
    assert_ne!(world(1, MINUTES).to_yaml(), world(2, MINUTES).to_yaml());
}

#[test]
fn a_world_written_as_a_scenario_file_reads_back_the_same() {
    for seed in [0, 5, 11] {
        let yaml = world(seed, MINUTES).to_yaml();
        let parsed: Scenario =
            serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{yaml}"));
        assert_eq!(parsed.to_yaml(), yaml, "seed {seed}");
    }
}

#[test]
fn a_failure_shrinks_to_the_steps_that_cause_it() {
    let scenario = world(4, MINUTES);
    let is_disconnect = |s: &Step| matches!(s, Step::Disconnect(_));
    let is_wait = |s: &Step| matches!(s, Step::Advance(_));
    let first_disconnect = scenario
        .steps
        .iter()
        .position(|s| is_disconnect(&s.0))
        .expect("the world disconnects someone");
    // A stand-in failure: "some application was disconnected after some wait".
    let fails = |c: &Scenario| {
        let wait = c.steps.iter().position(|s| is_wait(&s.0));
        let disconnect = c.steps.iter().rposition(|s| is_disconnect(&s.0));
        matches!((wait, disconnect), (Some(w), Some(d)) if w < d)
    };
    assert!(fails(&scenario));
    let shrunk = reduce(&scenario, first_disconnect, fails);
    assert!(fails(&shrunk));
    assert_eq!(shrunk.steps.len(), 2, "{}", shrunk.to_yaml());
    let Step::Disconnect(app) = &shrunk.steps[1].0 else {
        panic!("the last step is the disconnect: {}", shrunk.to_yaml());
    };
    let names: Vec<&str> = shrunk.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, [app.as_str()], "only the named application is kept");
}
