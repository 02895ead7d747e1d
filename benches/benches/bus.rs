//! Events through the bus: site `hq` holds the switch, site `branch` serves it as its switch 3
//! over a real `nats-server` on loopback. Both relays, the server, the switch and every
//! application share this machine's cores.
//!
//! - `bus_fanout/remote/100`: 100 protocol-3 sessions on `branch`; one iteration is a chunk of
//!   1 024 events (64-byte bodies) sent by the switch; throughput counts deliveries. At most 8
//!   chunks are in flight.
//! - `bus_fanout/local/100`: the same 100 sessions on `hq` itself, in the same run.
//! - `bus_fanout/holder/100`: the same on `pair`, a relay sharing its site (`shared: true`)
//!   that holds the lease: before it numbers and delivers what it read it reserves exactly
//!   that many numbers on the bus (one write per read).
//! - `bus_latency/remote`, `bus_latency/local` and `bus_latency/holder`: one event at a time,
//!   from the switch's write to a session's read; each iteration is one event. The quantiles
//!   of every event are printed at the end.
//!
//! Needs `nats-server` (`apt-get install nats-server`, or `RELAY_NATS_SERVER`), with JetStream
//! (the lease and the reservations are key-value buckets).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use client_sim::SimApp;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use relay::config::{RemoteSwitch, SwitchConfig};
use testkit::nats::NatsServer;
use testkit::{Site, SiteSpec};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use benches::{event_chunk, receive, send_chunks, LatencyLog, Progress, Quantiles};

const CHUNK: u64 = 1024;
const WINDOW: u64 = 8;
const BODY: usize = 64;
const SESSIONS: usize = 100;

struct Sites {
    _nats: NatsServer,
    hq: Site,
    branch: Site,
    holder: Site,
}

impl Sites {
    /// Each case: its name, the relay whose sessions read, the relay whose switch sends.
    fn cases(&self) -> [(&'static str, &Site, &Site); 3] {
        [
            ("local", &self.hq, &self.hq),
            ("remote", &self.branch, &self.hq),
            ("holder", &self.holder, &self.holder),
        ]
    }
}

/// `spec` on the bus at `url` as site `site`, shared by relays as `node` when given.
async fn on_bus(spec: SiteSpec, url: String, site: &str, node: Option<&str>) -> Site {
    let site = site.to_owned();
    let node = node.map(str::to_owned);
    spec.trusting_test_issuer()
        .configure(move |c| {
            c.bus.nats = Some(url);
            c.bus.site = site;
            if let Some(node) = node {
                c.bus.shared = true;
                c.bus.node = node;
            }
        })
        .start()
        .await
}

async fn sites() -> Sites {
    let nats = NatsServer::start_jetstream();
    let hq = on_bus(SiteSpec::officeserv(1), nats.url(), "hq", None).await;
    let branch = SiteSpec::switches(0).configure(|c| {
        c.default_switch = 3;
        c.switches.push(SwitchConfig {
            remote: Some(RemoteSwitch {
                site: "hq".into(),
                no: 1,
            }),
            ..SwitchConfig::new(3, "", 5002, "")
        });
    });
    let branch = on_bus(branch, nats.url(), "branch", None).await;
    branch.wait_switch_up(3).await;
    let holder = on_bus(SiteSpec::officeserv(1), nats.url(), "pair", Some("a")).await;
    holder.wait_switch_up(1).await;
    for site in [&hq, &branch, &holder] {
        let licence = relay::licensing::key::Payload {
            call: 1000,
            ..testkit::licence(1)
        }
        .sign(&testkit::issuer());
        site.relay.register_licence(&licence).unwrap();
    }
    Sites {
        _nats: nats,
        hq,
        branch,
        holder,
    }
}

fn event(extra_len: usize) -> Bytes {
    let extra = vec![b'x'; extra_len];
    switch_sim::switch::event_frame(b'n', "2201", &extra)
}

/// `n` protocol-3 Call sessions on `site`, counting events into `progress`; abort the tasks
/// returned to close them.
async fn sessions(
    site: &Site,
    n: usize,
    progress: &Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let before = site.relay.session_count();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (app, id) = SimApp::identify_as(site.client(), None, 3, 1, &[])
            .await
            .unwrap();
        assert_eq!(id.result, 0);
        let count = |_: &[u8], _: &mut BytesMut| 1;
        tasks.push(tokio::spawn(receive(
            app.into_stream(),
            Some(progress.clone()),
            count,
        )));
    }
    while site.relay.session_count() < before + n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tasks
}

fn bus(c: &mut Criterion) {
    if let Err(why) = testkit::nats::binary() {
        eprintln!("bus benches skipped: {why}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(sites());
    fanout(c, &rt, &s);
    latency(c, &rt, &s);
    rt.block_on(async {
        s.branch.relay.shutdown().await;
        s.hq.relay.shutdown().await;
        s.holder.relay.shutdown().await;
    });
}

fn fanout(c: &mut Criterion, rt: &Runtime, s: &Sites) {
    let mut group = c.benchmark_group("bus_fanout");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(CHUNK * SESSIONS as u64));
    let chunk = event_chunk(CHUNK, BODY);
    for (name, site, sender) in s.cases() {
        let progress = Arc::new(Progress::default());
        let tasks = rt.block_on(sessions(site, SESSIONS, &progress));
        let per_chunk = CHUNK * SESSIONS as u64;
        group.bench_with_input(BenchmarkId::new(name, SESSIONS), &SESSIONS, |b, _| {
            b.to_async(rt).iter_custom(|iters| {
                let send = |c| sender.switch(1).send_raw(c);
                send_chunks(send, &chunk, &progress, per_chunk, WINDOW, iters)
            });
        });
        // Closed before the next case, which would otherwise carry their load too.
        rt.block_on(async {
            for t in tasks {
                t.abort();
            }
            while site.relay.session_count() != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    group.finish();
}

fn latency(c: &mut Criterion, rt: &Runtime, s: &Sites) {
    let mut group = c.benchmark_group("bus_latency");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    let mut table = Vec::new();
    for (name, site, sender) in s.cases() {
        // One listening session; each event it reads is reported on `arrived`.
        let (arrived, mut arrivals) = mpsc::unbounded_channel::<Instant>();
        rt.block_on(async {
            let (app, id) = SimApp::identify_as(site.client(), None, 3, 1, &[])
                .await
                .unwrap();
            assert_eq!(id.result, 0);
            tokio::spawn(receive(
                app.into_stream(),
                None,
                move |_: &[u8], _: &mut BytesMut| {
                    let _ = arrived.send(Instant::now());
                    0
                },
            ));
        });
        let log = Arc::new(LatencyLog::default());
        let one = event(BODY - 5);
        group.bench_function(BenchmarkId::new(name, 1), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                rt.block_on(async {
                    for _ in 0..iters {
                        let sent = Instant::now();
                        assert!(sender.switch(1).send_raw(one.clone()));
                        // Every session of the site reads it; this one reports it.
                        let at = loop {
                            let at = arrivals.recv().await.expect("the session reads");
                            if at >= sent {
                                break at;
                            }
                        };
                        let took = at - sent;
                        total += took;
                        h.record(took.as_micros() as u64).unwrap();
                    }
                });
                log.record_all(&h);
                total
            });
        });
        table.push((name, log.quantiles()));
    }
    group.finish();
    print_latencies(&table);
}

fn print_latencies(table: &[(&str, Quantiles)]) {
    eprintln!("\nswitch write → session read, one event at a time (µs), every event of the run:");
    eprintln!(
        "{:<8} {:>8} {:>8} {:>8} {:>9}",
        "path", "p50", "p99", "p99.9", "events"
    );
    for (name, q) in table {
        eprintln!(
            "{:<8} {:>8} {:>8} {:>8} {:>9}",
            name, q.p50, q.p99, q.p999, q.samples
        );
    }
}

criterion_group!(benches, bus);
criterion_main!(benches);
