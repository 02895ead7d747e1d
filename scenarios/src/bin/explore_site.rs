//! `explore-site`: plays random worlds of a site two relays share over a bus, one per seed,
//! with relay and bus faults; prints each violation with its seed and the actions before it.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use scenarios::site::{self, play::Totals, SiteRun};
use scenarios::watchdog::Playing;

#[derive(Parser)]
#[command(
    name = "explore-site",
    about = "Random fault histories against two relays sharing a site over a bus, with invariants"
)]
struct Args {
    /// Seeds to play, FIRST..END (END excluded), e.g. 0..10000.
    #[arg(long, value_parser = parse_range, default_value = "0..100")]
    seeds: Range<u64>,
    /// Virtual minutes of each world's timeline.
    #[arg(long, default_value_t = 2)]
    minutes: u64,
    /// Worlds played at once (each on its own thread); default: the machine's cores.
    #[arg(long)]
    jobs: Option<usize>,
    /// Play every seed twice and require the same transcript.
    #[arg(long)]
    twice: bool,
    /// Print each world's transcript.
    #[arg(long)]
    verbose: bool,
    /// Fail only when this invariant is broken (repeat for several; the name as printed, e.g.
    /// "every request gets exactly one answer"); the others are counted and printed. By
    /// default every invariant fails the run.
    #[arg(long = "gate", value_name = "INVARIANT")]
    gates: Vec<String>,
}

/// The invariant a violation names: "12.345s: NAME: what happened".
fn invariant(violation: &str) -> &str {
    violation.split(": ").nth(1).unwrap_or(violation)
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

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    site::log::from_env();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let total = args.seeds.end - args.seeds.start;
    println!(
        "exploring shared-site seeds {}..{} ({total} worlds of {} virtual minutes) on {jobs} thread(s)",
        args.seeds.start, args.seeds.end, args.minutes
    );
    let started = Instant::now();
    let next = AtomicU64::new(args.seeds.start);
    let playing = Playing::default();
    let (tx, rx) = mpsc::channel::<(SiteRun, Option<String>)>();
    let mut failed = 0u64;
    let mut gate_failed = 0u64;
    let mut differed: Vec<u64> = Vec::new();
    let mut broken: std::collections::BTreeMap<String, (u64, Vec<u64>)> =
        std::collections::BTreeMap::new();
    let mut done = 0u64;
    let mut virtual_time = Duration::ZERO;
    let mut totals = Totals::default();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            let args = &args;
            let playing = &playing;
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= args.seeds.end {
                    return;
                }
                let run = playing.play(seed, || site::run_seed(seed, args.minutes));
                let differs = args
                    .twice
                    .then(|| playing.play(seed, || site::run_seed(seed, args.minutes)))
                    .and_then(|again| {
                        (again.transcript != run.transcript).then(|| {
                            format!(
                                "seed {seed}: a second play differs:\n{}\n---\n{}",
                                run.transcript, again.transcript
                            )
                        })
                    });
                if tx.send((run, differs)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for (run, differs) in playing.outcomes(&rx) {
            done += 1;
            virtual_time += run.virtual_time;
            totals.add(&run.totals);
            if args.verbose {
                let world = site::world(run.seed, args.minutes);
                println!(
                    "seed {}: {} switch(es), applications on {:?}",
                    run.seed, world.switches, world.apps
                );
                for (at, action) in &world.timeline {
                    println!("  {:>8.3}s {action:?}", at.as_secs_f64());
                }
                println!("{}", run.transcript);
            }
            for v in &run.violations {
                let (lines, worlds) = broken.entry(invariant(v).to_owned()).or_default();
                *lines += 1;
                if worlds.last() != Some(&run.seed) {
                    worlds.push(run.seed);
                }
            }
            let gated = match args.gates.is_empty() {
                true => !run.violations.is_empty(),
                false => run
                    .violations
                    .iter()
                    .any(|v| args.gates.iter().any(|g| g == invariant(v))),
            };
            if gated || differs.is_some() {
                gate_failed += 1;
            }
            if differs.is_some() {
                differed.push(run.seed);
            }
            if !run.violations.is_empty() || differs.is_some() {
                failed += 1;
                println!("seed {}: {} violation(s)", run.seed, run.violations.len());
                for v in &run.violations {
                    println!("  {v}");
                }
                if let Some(d) = differs {
                    println!("  {d}");
                }
            }
            if done.is_multiple_of(500) {
                println!(
                    "  {done}/{total} worlds, {failed} failed, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    });
    println!(
        "{done} worlds, {failed} with violations; {:.1} virtual hours in {:.0} s; applications: \
         {} connections ({} resumed, {} admitted as new), {} events read, {} told lost by G, \
         {} G of unknown count, {} requests, {} answers",
        virtual_time.as_secs_f64() / 3600.0,
        started.elapsed().as_secs_f64(),
        totals.connections,
        totals.resumed,
        totals.not_resumed,
        totals.events,
        totals.told_lost,
        totals.unknown_gaps,
        totals.requests,
        totals.answers
    );
    for (name, (lines, worlds)) in &mut broken {
        worlds.sort_unstable();
        let gate = match args.gates.iter().any(|g| g == name) {
            true => " (gate)",
            false => "",
        };
        println!(
            "  {name}{gate}: {lines} line(s) in {} world(s), first seeds {:?}",
            worlds.len(),
            &worlds[..worlds.len().min(8)]
        );
    }
    if args.twice {
        differed.sort_unstable();
        println!("  worlds whose second play differed: {differed:?}");
    }
    for gate in &args.gates {
        if !broken.contains_key(gate) {
            println!("  {gate} (gate): held in every world");
        }
    }
    if gate_failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
