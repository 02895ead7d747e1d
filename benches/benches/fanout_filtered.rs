//! Fan-out as a site with softphones sees it: 8 switches, 1 000 filtering Call sessions (with
//! a licence for them), each watching one of 1 000 stations, and 100 Operator consoles that are
//! not filtered, each served one switch (an attendant per switch: 13 on switches 1–4, 12 on
//! 5–8). The switches send one event per write, spread over their stations round-robin.
//!
//! One iteration is 1 000 events from each switch (8 000 events), written one event per write
//! (`one_event_per_write`) or in one write per switch (`1000_events_per_write`, what a busy
//! link's TCP stream looks like to the relay). Every delivery is checked:
//! a Call session fails the bench if it receives an event of another device or switch. The
//! throughput reported is events read from the switches; deliveries per iteration are
//! 8 000 to Call sessions plus 1 000 × 100 to operators (108 000).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{receive, Progress};
use bytes::{Bytes, BytesMut};
use client_sim::SimApp;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use relay::config::User;
use testkit::{Site, SiteSpec};
use wire::Product;

const SWITCHES: u8 = 8;
const STATIONS: usize = 1000;
const OPERATORS: usize = 100;
/// Events each switch sends per iteration.
const PER_SWITCH: u64 = 1000;
/// Iterations the switches may be ahead of the slowest receiver.
const WINDOW: u64 = 4;
/// Bytes of each event body: device str8 and opaque bytes, as in the unfiltered bench.
const BODY: usize = 64;

/// Station `i` (0-based) is on switch `i % 8 + 1` and named `1000 + i`.
fn station(i: usize) -> (u8, String) {
    ((i % SWITCHES as usize) as u8 + 1, format!("{}", 1000 + i))
}

/// The address an operator of switch `no` connects from.
fn operator_addr(no: u8) -> IpAddr {
    IpAddr::from([127, 0, 2, no])
}

fn operators_on(no: u8) -> usize {
    (0..OPERATORS)
        .filter(|k| (k % SWITCHES as usize) as u8 + 1 == no)
        .count()
}

struct Setup {
    site: Site,
    progress: Arc<Progress>,
    /// Per switch, its events in the order it sends them (one per write).
    events: Vec<Vec<Bytes>>,
    /// Per switch, the same events as one buffer.
    batches: Vec<Bytes>,
    sent: AtomicU64,
}

fn deliveries_per_iteration() -> u64 {
    PER_SWITCH * SWITCHES as u64 + PER_SWITCH * OPERATORS as u64
}

fn events_of(no: u8) -> Vec<Bytes> {
    let mut extra = [0u8; BODY - 5];
    for (i, b) in extra.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    let mine: Vec<String> = (0..STATIONS)
        .map(station)
        .filter(|(sw, _)| *sw == no)
        .map(|(_, d)| d)
        .collect();
    (0..PER_SWITCH as usize)
        .map(|k| {
            let frame = switch_sim::switch::event_frame(b'n', &mine[k % mine.len()], &extra);
            assert_eq!(frame.len(), 6 + BODY);
            frame
        })
        .collect()
}

async fn setup() -> Setup {
    let site = SiteSpec::officeserv(SWITCHES)
        .trusting_test_issuer()
        .configure(|c| {
            c.users.push(User {
                ip: "127.0.0.1".into(),
                name: "softphones".into(),
                info: String::new(),
                switches: (1..=SWITCHES).collect(),
                default_switch: None,
                filtering: true,
                certificate: None,
            });
            for no in 1..=SWITCHES {
                c.users.push(User {
                    ip: operator_addr(no).to_string(),
                    name: format!("attendant {no}"),
                    switches: vec![no],
                    default_switch: Some(no),
                    info: String::new(),
                    filtering: false,
                    certificate: None,
                });
            }
        })
        .start()
        .await;
    let licence = relay::licensing::key::Payload {
        call: STATIONS as u16,
        operator: OPERATORS as u16,
        ..testkit::licence(1)
    }
    .sign(&testkit::issuer());
    site.relay.register_licence(&licence).unwrap();
    let client = site.relay.client_addr();
    let progress = Arc::new(Progress::default());
    for i in 0..STATIONS {
        let (sw, device) = station(i);
        let (app, id) = SimApp::identify_as(client, None, 3, Product::Call as u8, &[(sw, &device)])
            .await
            .unwrap();
        assert_eq!(id.result, 0, "Call session {i} refused");
        let device = device.into_bytes();
        tokio::spawn(receive(
            app.into_stream(),
            Some(progress.clone()),
            move |f: &[u8], _: &mut BytesMut| {
                // LEN KIND CODE INVOKE SWITCH, then the device str8.
                let name = &f[8..8 + f[7] as usize];
                assert!(
                    f[6] == sw && name == device.as_slice(),
                    "a filtering session watching {sw}:{} got an event of {}:{}",
                    String::from_utf8_lossy(&device),
                    f[6],
                    String::from_utf8_lossy(name)
                );
                1
            },
        ));
    }
    for k in 0..OPERATORS {
        let no = (k % SWITCHES as usize) as u8 + 1;
        let (app, id) = SimApp::identify_as(
            client,
            Some(operator_addr(no)),
            3,
            Product::Operator as u8,
            &[],
        )
        .await
        .unwrap();
        assert_eq!(id.result, 0, "operator {k} refused");
        tokio::spawn(receive(
            app.into_stream(),
            Some(progress.clone()),
            move |f: &[u8], _: &mut BytesMut| {
                assert_eq!(
                    f[6], no,
                    "an operator of switch {no} got another switch's event"
                );
                1
            },
        ));
    }
    site.wait_sessions(STATIONS + OPERATORS).await;
    let events: Vec<Vec<Bytes>> = (1..=SWITCHES).map(events_of).collect();
    Setup {
        batches: events.iter().map(|e| e.concat().into()).collect(),
        events,
        site,
        progress,
        sent: AtomicU64::new(0),
    }
}

/// How the switches write their events.
#[derive(Clone, Copy)]
enum Writes {
    /// One event per write, as a switch does when it is not busy.
    OneEvent,
    /// An iteration's events of a switch in one write, as TCP coalesces them from a busy one.
    Batched,
}

/// Sends `iters` iterations, at most WINDOW ahead of the receivers, and waits for every
/// delivery of the last one.
async fn run(s: &Setup, writes: Writes, iters: u64) -> Duration {
    let per = deliveries_per_iteration();
    let first = s.sent.load(Ordering::Relaxed);
    let start = Instant::now();
    for i in first..first + iters {
        if i >= WINDOW {
            s.progress.wait_for((i - WINDOW + 1) * per).await;
        }
        match writes {
            // The switches interleaved, event by event.
            Writes::OneEvent => {
                for k in 0..PER_SWITCH as usize {
                    for (no, events) in (1..=SWITCHES).zip(&s.events) {
                        assert!(s.site.switch(no).send_raw(events[k].clone()));
                    }
                }
            }
            Writes::Batched => {
                for (no, batch) in (1..=SWITCHES).zip(&s.batches) {
                    assert!(s.site.switch(no).send_raw(batch.clone()));
                }
            }
        }
    }
    let target = (first + iters) * per;
    let waited = tokio::time::timeout(Duration::from_secs(30), s.progress.wait_for(target)).await;
    assert!(
        waited.is_ok(),
        "deliveries stalled: {} of {target} after 30 s",
        s.progress.delivered()
    );
    s.sent.store(first + iters, Ordering::Relaxed);
    start.elapsed()
}

fn fanout_filtered(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        (1..=SWITCHES).map(operators_on).collect::<Vec<_>>(),
        [13, 13, 13, 13, 12, 12, 12, 12]
    );
    let s = rt.block_on(setup());
    let mut group = c.benchmark_group("fanout_filtered");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(PER_SWITCH * SWITCHES as u64));
    for (name, writes) in [
        ("one_event_per_write", Writes::OneEvent),
        ("1000_events_per_write", Writes::Batched),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| run(&s, writes, iters));
        });
    }
    group.finish();
    let relay_deliveries = s.site.relay.stats().deliveries.load(Ordering::Relaxed);
    eprintln!(
        "fanout_filtered: {} deliveries per iteration of {} events ({} per event); relay counted {} deliveries",
        deliveries_per_iteration(),
        PER_SWITCH * SWITCHES as u64,
        deliveries_per_iteration() as f64 / (PER_SWITCH * SWITCHES as u64) as f64,
        relay_deliveries
    );
    rt.block_on(async move { s.site.relay.shutdown().await });
}

criterion_group!(benches, fanout_filtered);
criterion_main!(benches);
