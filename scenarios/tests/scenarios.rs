//! Every scenario in `scenarios/*.yaml`: its transcript is snapshotted, and playing it five
//! times gives five identical transcripts.

use std::time::Instant;

#[test]
fn every_scenario_matches_its_snapshot() {
    insta::glob!("..", "*.yaml", |path| {
        let transcript = scenarios::run_file(path);
        assert!(
            transcript.error.is_none(),
            "{}: {:?}",
            path.display(),
            transcript.error
        );
        insta::assert_yaml_snapshot!(transcript);
    });
}

#[test]
fn every_scenario_gives_the_same_transcript_five_times() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "expected at least 12 scenarios, found {}",
        files.len()
    );
    let started = Instant::now();
    let mut virtual_time = std::time::Duration::ZERO;
    // Scenarios whose virtual time is mostly time passing (timeouts, redials), as opposed to
    // traffic: what one virtual minute costs is measured on these.
    let (mut timed_virtual, mut timed_wall) = (0.0f64, 0.0f64);
    for path in &files {
        let t0 = Instant::now();
        let (first, took) = scenarios::run_file_timed(path);
        if took.as_secs() >= 10 {
            timed_virtual += took.as_secs_f64();
            timed_wall += t0.elapsed().as_secs_f64();
        }
        if std::env::var("SCENARIO_TIMES").is_ok() {
            eprintln!(
                "{:>8.1} ms wall {:>6.1} s virtual {}",
                t0.elapsed().as_secs_f64() * 1000.0,
                took.as_secs_f64(),
                path.display()
            );
        }
        let first = serde_yaml::to_string(&first).unwrap();
        virtual_time += took * 5;
        for run in 2..=5 {
            let again = serde_yaml::to_string(&scenarios::run_file(path)).unwrap();
            assert_eq!(first, again, "{} differs on run {run}", path.display());
        }
    }
    let wall = started.elapsed();
    let per_virtual_minute = wall.as_secs_f64() / (virtual_time.as_secs_f64() / 60.0);
    eprintln!(
        "{} scenarios x 5 runs: {:.1} s of virtual time in {:.3} s of wall time ({:.1} ms per virtual minute overall)",
        files.len(),
        virtual_time.as_secs_f64(),
        wall.as_secs_f64(),
        per_virtual_minute * 1000.0
    );
    eprintln!(
        "time-driven scenarios (10 s of virtual time or more): {:.1} s virtual in {:.1} ms wall = {:.1} ms per virtual minute",
        timed_virtual,
        timed_wall * 1000.0,
        timed_wall * 1000.0 / (timed_virtual / 60.0)
    );
}

#[test]
fn every_snapshot_belongs_to_a_scenario_and_none_is_pending() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let prefix = "scenarios__every_scenario_matches_its_snapshot@";
    for entry in std::fs::read_dir(dir.join("tests/snapshots")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".snap.new"),
            "{name} is a snapshot change not yet reviewed"
        );
        let scenario = name
            .strip_prefix(prefix)
            .and_then(|n| n.strip_suffix(".snap"))
            .unwrap_or_else(|| panic!("{name} is not a scenario snapshot"));
        assert!(
            dir.join(scenario).is_file(),
            "{name} has no scenario {scenario}"
        );
    }
}

#[test]
fn the_documented_example_is_a_valid_scenario() {
    let readme = include_str!("../README.md");
    let start = readme.find("```yaml\n").expect("an example") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("the example ends");
    let scenario: scenarios::schema::Scenario = serde_yaml::from_str(&readme[start..end]).unwrap();
    assert_eq!(scenario.steps.len(), 22);
    assert!(scenario.invariants);
}
