//! The request path: applications each keep requests in flight to a switch that answers at
//! once (the simulator's echo), and every answer is followed at once by the next request.
//! Throughput is answers per second; request→answer latencies (p50, p99, p999) are printed
//! for each case, through the relay and with the same client talking to the simulator
//! directly, with the relay's overhead as a ratio.
//!
//! Cases (the in-flight total is the same on each pair's two sides):
//! - `direct/1x8` and `relay/1x8`: one connection keeping 8 requests in flight;
//! - `direct/1x8000`: one switch link keeping 8 000 in flight, the load the relay's own link
//!   carries in `relay/1000x8`: 1 000 sessions each keeping 8 in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{receive, LatencyLog, Progress, Quantiles};
use bytes::{BufMut, Bytes, BytesMut};
use client_sim::SimApp;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use hdrhistogram::Histogram;
use netseam::{Network, TcpNetwork};
use switch_sim::{Answering, Settings, SimSwitch};
use testkit::SiteSpec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use wire::call::CallMsg;
use wire::{Kind, LinkMsg, Product, Str8};

/// Answers per iteration.
const CHUNK: u64 = 8192;

/// A request as the client sends it (`Y`, query device state of 2201).
fn put_request(out: &mut BytesMut, invoke: u16, switch: Option<u8>) {
    let msg = CallMsg {
        kind: Kind::Request,
        code: b'Y',
        invoke,
        switch,
        body: Bytes::from_static(b"\x042201"),
    };
    out.put_slice(&msg.encode().unwrap());
}

/// Keeps `in_flight` requests outstanding on `stream` for as long as it runs: each answer is
/// timed, counted and replaced by the next request (same INVOKE).
async fn closed_loop<S>(
    mut stream: S,
    in_flight: u16,
    switch: Option<u8>,
    progress: Arc<Progress>,
    latencies: Arc<LatencyLog>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut sent_at = vec![Instant::now(); in_flight as usize];
    let mut first = BytesMut::new();
    for invoke in 0..in_flight {
        put_request(&mut first, invoke, switch);
    }
    if stream.write_all(&first).await.is_err() {
        return;
    }
    let mut local = Histogram::<u64>::new(3).unwrap();
    let on_answer = move |frame: &[u8], next: &mut BytesMut| {
        let now = Instant::now();
        let invoke = u16::from_be_bytes([frame[4], frame[5]]);
        let slot = &mut sent_at[invoke as usize];
        let _ = local.record(now.duration_since(*slot).as_micros() as u64);
        *slot = now;
        put_request(next, invoke, switch);
        if local.len() >= 256 {
            latencies.record_all(&local);
            local.reset();
        }
        1
    };
    receive(stream, Some(progress), on_answer).await;
}

/// One running case: its clients and what they count.
struct Case {
    progress: Arc<Progress>,
    latencies: Arc<LatencyLog>,
    clients: Vec<JoinHandle<()>>,
    /// What answers: the relay (with its switch) or the simulator alone.
    server: Server,
}

enum Server {
    Switch(SimSwitch),
    Site(testkit::Site),
}

impl Case {
    async fn run(&self, iters: u64) -> Duration {
        let start = Instant::now();
        let base = self.progress.delivered();
        self.progress.wait_for(base + iters * CHUNK).await;
        start.elapsed()
    }

    async fn stop(self) {
        for c in &self.clients {
            c.abort();
        }
        match self.server {
            Server::Site(site) => site.relay.shutdown().await,
            Server::Switch(switch) => drop(switch),
        }
    }
}

fn echo_switch(mac_last: u8) -> Settings {
    Settings {
        answering: Answering::Echo,
        ..Settings::officeserv(mac_last)
    }
}

/// One link straight to a simulated switch keeping `in_flight` requests outstanding.
async fn direct(in_flight: u16) -> Case {
    let switch = SimSwitch::start("127.0.1.9:0".parse().unwrap(), echo_switch(9))
        .await
        .unwrap();
    let addr: SocketAddr = switch.addr();
    let mut stream = TcpNetwork
        .connect_from(None, &addr.ip().to_string(), addr.port())
        .await
        .unwrap();
    let open = LinkMsg::Open {
        version: 3,
        name: Str8::lossy("bench"),
    };
    stream.write_all(&open.encode().unwrap()).await.unwrap();
    // The open result: LEN, then `L` `o` INVOKE, result 0.
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    let mut rest = vec![0u8; u16::from_be_bytes(head) as usize];
    stream.read_exact(&mut rest).await.unwrap();
    assert_eq!(
        (rest[0], rest[1], rest[4]),
        (b'L', b'o', 0),
        "the switch refused the link"
    );
    let progress = Arc::new(Progress::default());
    let latencies = Arc::new(LatencyLog::default());
    let clients = vec![tokio::spawn(closed_loop(
        stream,
        in_flight,
        None,
        progress.clone(),
        latencies.clone(),
    ))];
    Case {
        progress,
        latencies,
        clients,
        server: Server::Switch(switch),
    }
}

/// `sessions` protocol-3 Call sessions through the relay, each keeping `in_flight` requests
/// outstanding to switch 1.
async fn through_relay(sessions: usize, in_flight: u16) -> Case {
    let site = SiteSpec::switches(1).trusting_test_issuer().start().await;
    let licence = relay::licensing::key::Payload {
        call: 1000,
        ..testkit::licence(1)
    }
    .sign(&testkit::issuer());
    site.relay.register_licence(&licence).unwrap();
    let progress = Arc::new(Progress::default());
    let latencies = Arc::new(LatencyLog::default());
    let mut apps = Vec::new();
    for _ in 0..sessions {
        let (app, id) =
            SimApp::identify_as(site.relay.client_addr(), None, 3, Product::Call as u8, &[])
                .await
                .unwrap();
        assert_eq!(id.result, 0);
        apps.push(app);
    }
    site.wait_sessions(sessions).await;
    let clients = apps
        .into_iter()
        .map(|app| {
            tokio::spawn(closed_loop(
                app.into_stream(),
                in_flight,
                Some(1),
                progress.clone(),
                latencies.clone(),
            ))
        })
        .collect();
    Case {
        progress,
        latencies,
        clients,
        server: Server::Site(site),
    }
}

fn requests(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("requests");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(CHUNK));
    let mut table = Vec::new();
    for (path, sessions, in_flight) in [
        ("direct", 1, 8),
        ("relay", 1, 8),
        ("direct", 1, 8000),
        ("relay", 1000, 8),
    ] {
        let case = rt.block_on(async {
            if path == "direct" {
                direct(in_flight).await
            } else {
                through_relay(sessions, in_flight).await
            }
        });
        let id = BenchmarkId::new(path, format!("{sessions}x{in_flight}"));
        group.bench_function(id.clone(), |b| {
            b.to_async(&rt).iter_custom(|iters| case.run(iters));
        });
        table.push((
            format!("{path}/{sessions}x{in_flight}"),
            case.latencies.quantiles(),
        ));
        rt.block_on(case.stop());
    }
    group.finish();
    print_latencies(&table);
}

fn print_latencies(table: &[(String, Quantiles)]) {
    eprintln!("\nrequest→answer latency (µs), every answer of the run:");
    eprintln!(
        "{:<18} {:>8} {:>8} {:>8} {:>12}",
        "case", "p50", "p99", "p999", "answers"
    );
    for (name, q) in table {
        eprintln!(
            "{name:<18} {:>8} {:>8} {:>8} {:>12}",
            q.p50, q.p99, q.p999, q.samples
        );
    }
    for pair in table.chunks(2) {
        if let [(direct, d), (relay, r)] = pair {
            eprintln!(
                "{relay} vs {direct}: p50 ×{:.2}, p99 ×{:.2}",
                r.p50 as f64 / d.p50.max(1) as f64,
                r.p99 as f64 / d.p99.max(1) as f64
            );
        }
    }
}

criterion_group!(benches, requests);
criterion_main!(benches);
