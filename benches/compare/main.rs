//! `compare`: the relay against Redis pub/sub and NATS on this machine, measured in one run
//! with one publisher and one receiving loop for all three.
//!
//! Each system runs as its own process on loopback: `relay run` (its switch is a simulated
//! switch in this process, which publishes), `redis-server` and `nats-server`. Every
//! publisher writes from the task that stamps the send time, so no system's figures include
//! a hand-off inside this process. Subscribers are
//! TCP connections read by the same loop; only the framing (where a message starts, where its
//! payload is, what to answer a ping) differs per system. Payloads are 64 bytes.
//!
//! - Throughput: the publisher writes 1 024 messages per write, at most 8 writes ahead of the
//!   slowest subscriber; deliveries/s = messages × subscribers / time, median of 3 runs, at
//!   1, 100 and 1 000 subscribers.
//! - Latency (`--latency`): a fixed rate, the send time in the payload; p50/p99/p999 of
//!   send→receive over every delivery, corrected for coordinated omission (hdrhistogram's
//!   expected-interval correction, the interval being one message's share of a subscriber's
//!   stream: a delivery late by k intervals also counts the k deliveries that would have
//!   waited behind it).
//! - Busy site (`--busy-site`): the latency mode at 1 000 messages/s to 100 and to 1 000
//!   subscribers, every system in the same run, a rate where no system is saturated, so the
//!   figures show each one's own path.
//! - `--repeat N` (latency modes): N runs of each system, in turn, and the median of each
//!   quantile with its range: on a shared machine one run's p99.9 varies by ×2 or more.
//!
//! Run: `cargo build --release -p relay-cli -p benches && target/release/compare`.

mod framing;
mod servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use benches::{LatencyLog, Progress, Quantiles};
use framing::{Parsed, System};
use servers::Server;

#[derive(Parser)]
#[command(about = "The relay against Redis pub/sub and NATS: throughput and latency")]
struct Args {
    /// Measure latency at a fixed rate instead of throughput.
    #[arg(long)]
    latency: bool,
    /// Measure latency at a busy site's rate: 1 000 messages/s to 100 and to 1 000
    /// subscribers, for --seconds each.
    #[arg(long, conflicts_with = "latency")]
    busy_site: bool,
    /// Subscriber counts for throughput.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    subscribers: Vec<usize>,
    /// Deliveries per throughput run (messages = deliveries / subscribers).
    #[arg(long, default_value_t = 20_000_000)]
    deliveries: u64,
    /// Latency mode: subscribers.
    #[arg(long, default_value_t = 100)]
    latency_subscribers: usize,
    /// Latency mode: messages per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Latency mode: seconds of sending.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Latency modes: runs of each system, taken in turn (relay, redis, nats, relay, …) so
    /// that what the machine does meanwhile falls on all of them; each quantile is the
    /// median of the runs, with the lowest and highest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    repeat: u32,
    /// Which systems to measure.
    #[arg(long, value_delimiter = ',', default_value = "relay,redis,nats")]
    systems: Vec<System>,
}

const PAYLOAD: usize = 64;
const BATCH: u64 = 1024;
const WINDOW: u64 = 8;

/// Reads one subscriber's connection: counts messages, answers pings, records latencies.
async fn receive(
    system: System,
    stream: TcpStream,
    mut pending: BytesMut,
    progress: Arc<Progress>,
    base: Instant,
    latencies: Option<Arc<LatencyLog>>,
    interval_us: u64,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut local = Histogram::<u64>::new(3).unwrap();
    loop {
        let mut messages = 0;
        let now_ns = base.elapsed().as_nanos() as u64;
        loop {
            match system.parse(&pending) {
                Parsed::Need => break,
                Parsed::Message { len, payload } => {
                    if latencies.is_some() {
                        let sent =
                            u64::from_be_bytes(pending[payload.start..][..8].try_into().unwrap());
                        let _ =
                            local.record_correct(now_ns.saturating_sub(sent) / 1000, interval_us);
                    }
                    messages += 1;
                    let _ = pending.split_to(len);
                }
                Parsed::Other { len, reply } => {
                    if let Some(reply) = reply {
                        let _ = wr.write_all(reply).await;
                    }
                    let _ = pending.split_to(len);
                }
            }
        }
        if let Some(all) = latencies.as_ref().filter(|_| !local.is_empty()) {
            all.record_all(&local);
            local.reset();
        }
        if messages > 0 {
            progress.add(messages);
        }
        pending.reserve(256 * 1024);
        match rd.read_buf(&mut pending).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// The payload of message `seq` sent at `sent_ns`: both as big-endian u64s, then filler.
fn payload(sent_ns: u64, seq: u64) -> [u8; PAYLOAD] {
    let mut p = [b'x'; PAYLOAD];
    p[..8].copy_from_slice(&sent_ns.to_be_bytes());
    p[8..16].copy_from_slice(&seq.to_be_bytes());
    p
}

struct Subscribed {
    progress: Arc<Progress>,
    latencies: Option<Arc<LatencyLog>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn subscribe(
    server: &Server,
    n: usize,
    base: Instant,
    latency_interval_us: Option<u64>,
) -> anyhow::Result<Subscribed> {
    let progress = Arc::new(Progress::default());
    let latencies = latency_interval_us.map(|_| Arc::new(LatencyLog::default()));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (stream, pending) = server.subscriber().await?;
        tasks.push(tokio::spawn(receive(
            server.system,
            stream,
            pending,
            progress.clone(),
            base,
            latencies.clone(),
            latency_interval_us.unwrap_or(1),
        )));
    }
    Ok(Subscribed {
        progress,
        latencies,
        tasks,
    })
}

/// Publishes `messages` as fast as the window allows; returns deliveries per second.
async fn throughput(server: &mut Server, subscribers: usize, messages: u64) -> anyhow::Result<f64> {
    let base = Instant::now();
    let subs = subscribe(server, subscribers, base, None).await?;
    let n = subscribers as u64;
    let start = Instant::now();
    let mut sent = 0;
    let mut batch = BytesMut::new();
    while sent < messages {
        let count = BATCH.min(messages - sent);
        if sent >= WINDOW * BATCH {
            wait(&subs.progress, (sent - WINDOW * BATCH) * n).await?;
        }
        batch.clear();
        for seq in sent..sent + count {
            server.system.publish(&mut batch, &payload(0, seq));
        }
        server.publish(batch.split().freeze()).await?;
        sent += count;
    }
    wait(&subs.progress, messages * n).await?;
    let secs = start.elapsed().as_secs_f64();
    for t in subs.tasks {
        t.abort();
    }
    Ok((messages * n) as f64 / secs)
}

/// Publishes at `rate` for `seconds`; returns (p50, p99, p999) in µs and the deliveries.
async fn latency(
    server: &mut Server,
    subscribers: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<Quantiles> {
    let base = Instant::now();
    let interval_us = (1_000_000 / rate.max(1)).max(1);
    let subs = subscribe(server, subscribers, base, Some(interval_us)).await?;
    let per_ms = (rate / 1000).max(1);
    let total = per_ms * 1000 * seconds;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    let mut batch = BytesMut::new();
    while sent < total {
        tick.tick().await;
        batch.clear();
        let now = base.elapsed().as_nanos() as u64;
        for seq in sent..sent + per_ms {
            server.system.publish(&mut batch, &payload(now, seq));
        }
        server.publish(batch.split().freeze()).await?;
        sent += per_ms;
    }
    wait(&subs.progress, total * subscribers as u64).await?;
    for t in subs.tasks {
        t.abort();
    }
    Ok(subs.latencies.expect("latency mode").quantiles())
}

async fn wait(progress: &Progress, target: u64) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(60), progress.wait_for(target))
        .await
        .with_context(|| {
            format!(
                "deliveries stalled at {} of {target} for 60 s",
                progress.delivered()
            )
        })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut servers = Vec::new();
    for system in &args.systems {
        servers.push(
            Server::start(*system)
                .await
                .with_context(|| format!("starting {system}"))?,
        );
    }
    let latency_runs: Vec<(usize, u64)> = if args.busy_site {
        vec![(100, 1_000), (1_000, 1_000)]
    } else if args.latency {
        vec![(args.latency_subscribers, args.rate)]
    } else {
        Vec::new()
    };
    if !latency_runs.is_empty() {
        for (subscribers, rate) in latency_runs {
            println!(
                "latency: {subscribers} subscribers, {rate} messages/s for {} s, {PAYLOAD}-byte payloads, \
                 corrected for coordinated omission (µs)",
                args.seconds
            );
            println!(
                "{:<8} {:>8} {:>8} {:>8} {:>12}{}",
                "system",
                "p50",
                "p99",
                "p999",
                "samples",
                if args.repeat > 1 {
                    "   (median of runs; p99 and p999 lowest..highest)"
                } else {
                    ""
                }
            );
            let mut runs: Vec<Vec<Quantiles>> = vec![Vec::new(); servers.len()];
            for _ in 0..args.repeat {
                for (server, runs) in servers.iter_mut().zip(&mut runs) {
                    runs.push(latency(server, subscribers, rate, args.seconds).await?);
                }
            }
            for (server, runs) in servers.iter().zip(&runs) {
                let median = |f: fn(&Quantiles) -> u64| {
                    let mut v: Vec<u64> = runs.iter().map(f).collect();
                    v.sort_unstable();
                    (v[v.len() / 2], v[0], v[v.len() - 1])
                };
                let (p50, ..) = median(|q| q.p50);
                let (p99, p99_low, p99_high) = median(|q| q.p99);
                let (p999, p999_low, p999_high) = median(|q| q.p999);
                let (samples, ..) = median(|q| q.samples);
                let spread = if runs.len() > 1 {
                    format!("   {p99_low}..{p99_high}  {p999_low}..{p999_high}")
                } else {
                    String::new()
                };
                println!(
                    "{:<8} {:>8} {:>8} {:>8} {:>12}{spread}",
                    server.system.to_string(),
                    p50,
                    p99,
                    p999,
                    samples
                );
            }
        }
    } else {
        println!("throughput: deliveries/s (messages × subscribers), median of 3 runs, {PAYLOAD}-byte payloads");
        let mut header = format!("{:<12}", "subscribers");
        for s in &servers {
            header += &format!(" {:>12}", s.system.to_string());
        }
        header += "   relay ÷ best peer";
        println!("{header}");
        for &n in &args.subscribers {
            let messages = (args.deliveries / n as u64).max(BATCH);
            let mut row = format!("{n:<12}");
            let mut medians = Vec::new();
            for server in &mut servers {
                let mut runs = Vec::new();
                for _ in 0..3 {
                    runs.push(throughput(server, n, messages).await?);
                }
                runs.sort_by(f64::total_cmp);
                medians.push((server.system, runs[1]));
                row += &format!(" {:>10.2} M", runs[1] / 1e6);
            }
            let relay = medians
                .iter()
                .find(|(s, _)| *s == System::Relay)
                .map(|m| m.1);
            let best_peer = medians
                .iter()
                .filter(|(s, _)| *s != System::Relay)
                .map(|m| m.1)
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
            if let (Some(r), Some(p)) = (relay, best_peer) {
                row += &format!("   ×{:.1}", r / p);
            }
            println!("{row}");
        }
    }
    for server in servers {
        server.stop();
    }
    Ok(())
}
