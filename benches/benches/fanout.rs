//! Fan-out throughput: one switch, N protocol-3 sessions over loopback TCP, 64-byte event
//! bodies. One iteration is a chunk of 1 024 events; throughput counts deliveries (events ×
//! sessions). Sessions are set up outside the timed part; the sender keeps a window of chunks
//! in flight so the measurement is sustained throughput, not one burst.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use client_sim::SimApp;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use testkit::{Site, SiteSpec};
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use wire::LinkMsg;

/// Events per iteration.
const CHUNK: u64 = 1024;
/// Chunks the sender may be ahead of the slowest session.
const WINDOW: u64 = 8;
/// Checkpoint counters kept (more than WINDOW).
const RING: usize = 64;
/// Bytes of each event body: device str8 ("2201") and 59 opaque bytes.
const BODY: usize = 64;

/// Sessions that have received each chunk, by chunk number modulo RING.
struct Progress {
    sessions: usize,
    reached: Vec<AtomicUsize>,
    notify: Notify,
}

impl Progress {
    fn chunk_received(&self, chunk: u64) {
        let slot = &self.reached[(chunk % RING as u64) as usize];
        if slot.fetch_add(1, Ordering::AcqRel) + 1 == self.sessions {
            self.notify.notify_one();
        }
    }

    /// Waits until every session has received `chunk` (1-based), then frees its counter.
    async fn wait_chunk(&self, chunk: u64) {
        let slot = &self.reached[(chunk % RING as u64) as usize];
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if slot.load(Ordering::Acquire) >= self.sessions {
                slot.store(0, Ordering::Release);
                return;
            }
            notified.await;
        }
    }
}

struct Setup {
    /// The relay and its switch (which sends the events).
    site: Site,
    progress: Arc<Progress>,
    chunk: Bytes,
    /// Chunks sent so far (across iterations).
    sent: AtomicU64,
}

fn event_chunk() -> Bytes {
    let mut extra = [0u8; BODY - 5];
    for (i, b) in extra.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    let one = switch_sim::switch::event_frame(b'n', "2201", &extra);
    assert_eq!(one.len(), 6 + BODY);
    let mut out = BytesMut::with_capacity(one.len() * CHUNK as usize);
    for _ in 0..CHUNK {
        out.extend_from_slice(&one);
    }
    out.freeze()
}

/// Counts events, and tells `progress` each chunk this session has received.
async fn count_events(app: SimApp, progress: Arc<Progress>) {
    let mut events = 0u64;
    let on_event = move |_: &[u8], _: &mut BytesMut| {
        events += 1;
        if events.is_multiple_of(CHUNK) {
            progress.chunk_received(events / CHUNK);
        }
        0
    };
    benches::receive(app.into_stream(), None, on_event).await;
}

/// Reads a monitor connection to its end, answering nothing (monitors only read).
async fn drain_monitor(app: SimApp) {
    let (mut rd, _wr) = tokio::io::split(app.into_stream());
    let mut buf = vec![0u8; 256 * 1024];
    while let Ok(n) = rd.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

async fn setup(sessions: usize, monitor: bool) -> Setup {
    // The site holds a licence for the 1 000 Call sessions (the trial allows 20).
    let site = SiteSpec::officeserv(1).trusting_test_issuer().start().await;
    let licence = relay::licensing::key::Payload {
        call: 1000,
        ..testkit::licence(1)
    }
    .sign(&testkit::issuer());
    site.relay.register_licence(&licence).unwrap();
    let relay = &site.relay;
    let progress = Arc::new(Progress {
        sessions,
        reached: (0..RING).map(|_| AtomicUsize::new(0)).collect(),
        notify: Notify::new(),
    });
    for _ in 0..sessions {
        let (app, id) = SimApp::identify_as(relay.client_addr(), None, 3, 1, &[])
            .await
            .unwrap();
        assert_eq!(id.result, 0);
        tokio::spawn(count_events(app, progress.clone()));
    }
    while relay.session_count() < sessions {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if monitor {
        let addr = relay
            .monitor_addr(relay::ports::monitor::MonitorPort::SwitchMessages)
            .expect("monitor port on");
        let mut m = SimApp::connect(addr, None).await.unwrap();
        m.send_link(&LinkMsg::Password {
            password: "".into(),
        })
        .await
        .unwrap();
        assert_eq!(
            m.next_link().await.unwrap(),
            Some(LinkMsg::PasswordResult { result: 0 })
        );
        tokio::spawn(drain_monitor(m));
        while !relay.monitors().watching_links() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Setup {
        site,
        progress,
        chunk: event_chunk(),
        sent: AtomicU64::new(0),
    }
}

/// Sends `iters` chunks with at most WINDOW unconfirmed, and waits until every session has
/// every chunk. Each chunk is waited for exactly once (its counter is then reused).
async fn run_chunks(s: &Setup, iters: u64) -> Duration {
    let first = s.sent.load(Ordering::Relaxed) + 1;
    let last = first + iters - 1;
    let start = Instant::now();
    for chunk in first..=last {
        if chunk >= first + WINDOW {
            s.progress.wait_chunk(chunk - WINDOW).await;
        }
        assert!(s.site.switch(1).send_raw(s.chunk.clone()));
    }
    for chunk in first.max((last + 1).saturating_sub(WINDOW))..=last {
        s.progress.wait_chunk(chunk).await;
    }
    let elapsed = start.elapsed();
    s.sent.store(last, Ordering::Relaxed);
    elapsed
}

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    group(c, &rt, "fanout", &[1, 100, 1000], false);
    // The same traffic with one switch-message monitor attached (it sees every frame).
    group(c, &rt, "fanout_with_monitor", &[100], true);
}

fn group(c: &mut Criterion, rt: &Runtime, name: &str, sizes: &[usize], monitor: bool) {
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for &sessions in sizes {
        let s = rt.block_on(setup(sessions, monitor));
        group.throughput(Throughput::Elements(CHUNK * sessions as u64));
        group.bench_with_input(
            BenchmarkId::new("p3_sessions", sessions),
            &sessions,
            |b, _| {
                b.to_async(rt).iter_custom(|iters| run_chunks(&s, iters));
            },
        );
        drop_setup(rt, s);
    }
    group.finish();
}

fn drop_setup(rt: &Runtime, s: Setup) {
    rt.block_on(async move {
        s.site.relay.shutdown().await;
    });
}

criterion_group!(benches, fanout);
criterion_main!(benches);
