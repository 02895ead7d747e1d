//! `explore`: plays random worlds, one per seed, checking the invariants after every step;
//! prints each violation with its seed and last steps, and writes a shrunk scenario that the
//! ordinary runner replays.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use scenarios::explore::{last_steps, run_seed, shrink, SeedRun, ShrinkBudget};
use scenarios::watchdog::Playing;

#[derive(Parser)]
#[command(
    name = "explore",
    about = "Random fault histories against the relay, with invariants"
)]
struct Args {
    /// Seeds to play, FIRST..END (END excluded), e.g. 0..1000.
    #[arg(long, value_parser = parse_range, default_value = "0..100")]
    seeds: Range<u64>,
    /// Virtual minutes of each world's timeline.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Worlds played at once (each on its own thread); default: the machine's cores.
    #[arg(long)]
    jobs: Option<usize>,
    /// Where shrunk scenarios of violations are written.
    #[arg(long, default_value = "explore-failures")]
    out: PathBuf,
    /// Plays each shrink may spend.
    #[arg(long, default_value_t = 400)]
    shrink_plays: usize,
    /// Also write every world's scenario here (seed-N.yaml), to replay with `scenario`.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Play every seed twice and require the same history, the same verdict and the same
    /// transcript.
    #[arg(long)]
    twice: bool,
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?}: use FIRST..END, e.g. 0..1000"))?;
    let a: u64 = a.parse().map_err(|_| format!("{a:?} is not a seed"))?;
    let b: u64 = b.parse().map_err(|_| format!("{b:?} is not a seed"))?;
    if b <= a {
        return Err(format!("{text:?}: END must be above FIRST"));
    }
    Ok(a..b)
}

/// A seed's outcome, as the main thread reports it.
struct Outcome {
    run: SeedRun,
    /// With --twice: what differed on the second play.
    differs: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let next = AtomicU64::new(args.seeds.start);
    let playing = Playing::default();
    let (tx, rx) = mpsc::channel::<Outcome>();
    let total = args.seeds.end - args.seeds.start;
    println!(
        "exploring seeds {}..{} ({total} worlds of {} virtual minutes) on {jobs} thread(s)",
        args.seeds.start, args.seeds.end, args.minutes
    );
    let (mut virtual_time, mut failures, mut done) = (Duration::ZERO, Vec::new(), 0u64);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, args, playing) = (&next, &args, &playing);
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= args.seeds.end {
                    return;
                }
                let run = playing.play(seed, || run_seed(seed, args.minutes));
                if let Some(dir) = &args.save {
                    let path = dir.join(format!("seed-{seed}.yaml"));
                    let saved = std::fs::create_dir_all(dir)
                        .and_then(|()| std::fs::write(&path, run.scenario.to_yaml()));
                    if let Err(e) = saved {
                        eprintln!("cannot write {}: {e}", path.display());
                    }
                }
                let differs = args
                    .twice
                    .then(|| compare(&run, &playing.play(seed, || run_seed(seed, args.minutes))));
                if tx
                    .send(Outcome {
                        run,
                        differs: differs.flatten(),
                    })
                    .is_err()
                {
                    return;
                }
            });
        }
        drop(tx);
        for outcome in playing.outcomes(&rx) {
            done += 1;
            let run = &outcome.run;
            virtual_time += run.virtual_time;
            if let Some(d) = &outcome.differs {
                println!("seed {}: NOT DETERMINISTIC: {d}", run.seed);
                failures.push(run.seed);
            }
            if let Some(e) = &run.error {
                println!("seed {}: the world could not be played: {e}", run.seed);
                failures.push(run.seed);
            }
            if let Some((at, v)) = &run.violation {
                failures.push(run.seed);
                report(run, *at, v, &args);
            }
            if done.is_multiple_of(100) {
                println!(
                    "{done}/{total} worlds, {} violation(s), {:.1} virtual hours, {:.0} s",
                    failures.len(),
                    virtual_time.as_secs_f64() / 3600.0,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    });
    let wall = started.elapsed().as_secs_f64();
    println!(
        "explored {done} seeds: {:.1} virtual hours in {wall:.1} s ({:.1} virtual minutes per wall second); {} violation(s)",
        virtual_time.as_secs_f64() / 3600.0,
        virtual_time.as_secs_f64() / 60.0 / wall.max(1e-9),
        failures.len()
    );
    if failures.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        failures.sort_unstable();
        println!("failing seeds: {failures:?}");
        std::process::ExitCode::FAILURE
    }
}

fn report(run: &SeedRun, at: usize, v: &scenarios::invariants::Violation, args: &Args) {
    println!("seed {}: VIOLATION of \"{}\"", run.seed, v.invariant);
    println!("  {}", v.detail);
    let when = if at < run.scenario.steps.len() {
        format!("after step {} of {}", at + 1, run.scenario.steps.len())
    } else {
        "at the end".to_owned()
    };
    println!("  found {when}; the last steps:");
    for line in last_steps(&run.scenario, at, 8) {
        println!("    {line}");
    }
    let budget = ShrinkBudget {
        plays: args.shrink_plays,
        wall: Duration::from_secs(300),
    };
    let small = shrink(&run.scenario, at, v.invariant, &budget);
    let path = args.out.join(format!("seed-{}.yaml", run.seed));
    let written =
        std::fs::create_dir_all(&args.out).and_then(|()| std::fs::write(&path, small.to_yaml()));
    match written {
        Ok(()) => println!(
            "  shrunk to {} steps and {} applications: {} (replays with the scenario runner)",
            small.steps.len(),
            small.apps.len(),
            path.display()
        ),
        Err(e) => println!("  cannot write {}: {e}", path.display()),
    }
}

/// What differs between two plays of one seed, if anything.
fn compare(a: &SeedRun, b: &SeedRun) -> Option<String> {
    if a.scenario.to_yaml() != b.scenario.to_yaml() {
        return Some("the histories differ".into());
    }
    let verdict = |r: &SeedRun| r.violation.as_ref().map(|(at, v)| (*at, v.clone()));
    if verdict(a) != verdict(b) {
        return Some(format!(
            "the verdicts differ: {:?} then {:?}",
            verdict(a),
            verdict(b)
        ));
    }
    if a.transcript != b.transcript {
        let line = a
            .transcript
            .lines()
            .zip(b.transcript.lines())
            .position(|(x, y)| x != y)
            .map_or(0, |i| i + 1);
        return Some(format!("the transcripts differ from line {line} on"));
    }
    None
}
