//! What TLS and the WebSocket gateway cost: fan-out of one switch's events to 100 sessions over
//! TLS, and to 100 and 1 000 WebSocket/JSON sessions (`/ws`; one message an event, and events
//! batched), against 100 over clear TCP in the same run (relays alike but for that), and TLS
//! handshakes per second on the client port (connect, handshake, close; one at a time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use client_sim::SimApp;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use netseam::tls::TlsNetwork;
use netseam::{Network, TcpNetwork};
use relay::config::TlsPort;
use testkit::pki::Authority;
use testkit::{Site, SiteSpec};
use tokio::runtime::Runtime;

use benches::{event_chunk, receive, send_chunks, Progress};

const CHUNK: u64 = 1024;
const WINDOW: u64 = 8;
const BODY: usize = 64;
const SESSIONS: usize = 100;

/// A relay with a licence for 1 000 Calls, speaking TLS on its client port when given the
/// certificate files.
async fn site(tls: Option<testkit::pki::Issued>) -> Site {
    let site = SiteSpec::officeserv(1)
        .trusting_test_issuer()
        .configure(move |c| {
            if let Some(cert) = tls {
                c.tls.ports = vec![TlsPort::Client];
                c.tls.cert = Some(cert.cert);
                c.tls.key = Some(cert.key);
            }
        })
        .start()
        .await;
    let licence = relay::licensing::key::Payload {
        call: 1000,
        ..testkit::licence(1)
    }
    .sign(&testkit::issuer());
    site.relay.register_licence(&licence).unwrap();
    site
}

/// `n` Call sessions over `net`, each counting the events it reads into `progress`.
async fn sessions(site: &Site, net: &dyn Network, n: usize, progress: &Arc<Progress>) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], site.client().port()));
    for _ in 0..n {
        let mut app = SimApp::connect_on(net, addr, None).await.unwrap();
        let id = app.identify(3, 1, "bench", &[]).await.unwrap();
        assert_eq!(id.result, 0);
        let count = |_: &[u8], _: &mut BytesMut| 1;
        tokio::spawn(receive(app.into_stream(), Some(progress.clone()), count));
    }
    while site.relay.session_count() < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `n` gateway sessions (Call, unfiltered; events in `events` messages when `batch`) on
/// `site`'s admin port, each counting the events it reads into `progress`
/// ([`benches::receive_websocket`]); the admin interface serves them for as long as it is kept.
async fn websockets(
    site: &Site,
    n: usize,
    batch: bool,
    progress: &Arc<Progress>,
) -> testkit::Admin {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let admin = site.serve_admin(None).await;
    let url = format!("ws://{}/ws", admin.addr());
    for _ in 0..n {
        let tcp = tokio::net::TcpStream::connect(admin.addr()).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(&url, tcp).await.unwrap();
        let identify = match batch {
            true => r#"{"type":"identify","product":"call","name":"bench","batch":true}"#,
            false => r#"{"type":"identify","product":"call","name":"bench"}"#,
        };
        ws.send(Message::Text(identify.into())).await.unwrap();
        // Nothing has been read past the handshake: the relay answers only the identify.
        tokio::spawn(benches::receive_websocket(
            ws.into_inner(),
            progress.clone(),
        ));
    }
    while site.relay.session_count() < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    admin
}

/// How a case's sessions reach the relay.
#[derive(Clone, Copy)]
enum Clients<'a> {
    /// The binary protocol on the client port, over this network.
    Binary(&'a dyn Network),
    /// The WebSocket/JSON gateway on the admin port.
    WebSocket { batch: bool },
}

fn secure(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "bench-ca");
    let cert = ca.relay(dir.path(), "relay");
    let tls = TlsNetwork::new(netseam::tls::client_config(&ca.file, None).unwrap());
    fanout(c, &rt, &cert, &tls);
    handshakes(c, &rt, &cert, &tls);
}

fn fanout(c: &mut Criterion, rt: &Runtime, cert: &testkit::pki::Issued, tls: &TlsNetwork) {
    let mut group = c.benchmark_group("secure_fanout");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    let chunk = event_chunk(CHUNK, BODY);
    // The gateway's sessions: one message an event, or events that come together in one.
    let (single, batched) = (
        Clients::WebSocket { batch: false },
        Clients::WebSocket { batch: true },
    );
    let cases: [(&str, Option<&testkit::pki::Issued>, Clients, usize); 6] = [
        ("tcp", None, Clients::Binary(&TcpNetwork), SESSIONS),
        ("tls", Some(cert), Clients::Binary(tls), SESSIONS),
        ("websocket", None, single, SESSIONS),
        ("websocket", None, single, 10 * SESSIONS),
        ("websocket_batched", None, batched, SESSIONS),
        ("websocket_batched", None, batched, 10 * SESSIONS),
    ];
    for (name, files, clients, n) in cases {
        let per_chunk = CHUNK * n as u64;
        group.throughput(Throughput::Elements(per_chunk));
        let progress = Arc::new(Progress::default());
        let (s, _admin) = rt.block_on(async {
            let s = site(files.cloned()).await;
            let admin = match clients {
                Clients::Binary(net) => {
                    sessions(&s, net, n, &progress).await;
                    None
                }
                Clients::WebSocket { batch } => Some(websockets(&s, n, batch, &progress).await),
            };
            (s, admin)
        });
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
            b.to_async(rt).iter_custom(|iters| {
                let send = |c| s.switch(1).send_raw(c);
                send_chunks(send, &chunk, &progress, per_chunk, WINDOW, iters)
            });
        });
        rt.block_on(s.relay.shutdown());
    }
    group.finish();
}

fn handshakes(c: &mut Criterion, rt: &Runtime, cert: &testkit::pki::Issued, tls: &TlsNetwork) {
    let mut group = c.benchmark_group("tls_handshake");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(1));
    let s = rt.block_on(site(Some(cert.clone())));
    let port = s.client().port();
    group.bench_function("client_port", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                let stream = tls.connect("127.0.0.1", port).await.unwrap();
                drop(stream);
            }
            start.elapsed()
        });
    });
    let done = s
        .relay
        .tls()
        .handshakes
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("tls_handshake: the relay completed {done} handshakes");
    rt.block_on(s.relay.shutdown());
    group.finish();
}

criterion_group!(benches, secure);
criterion_main!(benches);
