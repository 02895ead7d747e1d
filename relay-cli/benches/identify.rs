//! Admission: how fast the relay admits sessions, and what an idle session costs it.
//!
//! The relay runs as its own process (`relay run`), so its memory is its own and each side
//! has its own file descriptors. One iteration connects and identifies 10 000 sessions
//! (bypass product "other server", 64 connecting at a time) and is timed until the last `i`
//! arrives; the sessions are then reset (no TIME_WAIT left for the next batch) and the relay
//! is left to forget them, untimed. The
//! relay's resident memory is read from /proc before the first batch and with its 10 000
//! sessions idle, and printed per session.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use switch_sim::{Settings, SimSwitch};
use testkit::process::RelayProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::{LinkMsg, Product, Str8};

const SESSIONS: usize = 10_000;
const CONNECTING: usize = 64;

/// A kilobyte figure from /proc/PID/status (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Connects and identifies one session as a bypass "other server"; returns it open.
async fn admitted(relay: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(relay).await?;
    stream.set_nodelay(true)?;
    let identify = LinkMsg::Identify {
        protocol: 3,
        product: Product::OtherServer as u8,
        app_name: Str8::lossy("bench"),
        devices: Vec::new(),
        resume: None,
    };
    stream.write_all(&identify.encode().unwrap()).await?;
    // `i` comes first: LEN, `L` `i`, INVOKE, result.
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let mut rest = vec![0u8; u16::from_be_bytes(head) as usize];
    stream.read_exact(&mut rest).await?;
    if rest[..2] != *b"Li" || rest[4] != 0 {
        return Err(std::io::Error::other(format!("identify refused: {rest:?}")));
    }
    Ok(stream)
}

/// Identifies `SESSIONS` sessions, `CONNECTING` at a time; returns them open.
async fn admit_all(relay: SocketAddr) -> Vec<TcpStream> {
    let tasks: Vec<_> = (0..CONNECTING)
        .map(|t| {
            tokio::spawn(async move {
                let mut sessions = Vec::new();
                for _ in (t..SESSIONS).step_by(CONNECTING) {
                    sessions.push(admitted(relay).await.expect("connect and identify"));
                }
                sessions
            })
        })
        .collect();
    let mut all = Vec::with_capacity(SESSIONS);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Closes with a reset, so no port waits in TIME_WAIT for the next batch.
fn reset_all(sessions: Vec<TcpStream>) {
    for s in sessions {
        let _ = s.set_zero_linger();
    }
}

fn identify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let switch = rt
        .block_on(SimSwitch::start(
            "127.0.1.10:0".parse().unwrap(),
            Settings::officeserv(10),
        ))
        .unwrap();
    let relay = RelayProcess::start(
        Path::new(env!("CARGO_BIN_EXE_relay")),
        switch.addr(),
        SESSIONS as u32,
    )
    .expect("the relay binary starts");
    let pid = relay.pid();
    // Up once an identify is accepted (the link needs its open and station table first).
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if admitted(relay.bypass).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the relay did not serve switch 1 within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let idle_fds = open_fds(pid);
    let rss_before = rss_kib(pid);
    let mut rss_with: Option<u64> = None;

    let mut group = c.benchmark_group("identify");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(SESSIONS as u64));
    group.bench_function("sessions_10000", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let sessions = rt.block_on(admit_all(relay.bypass));
                timed += start.elapsed();
                if rss_with.is_none() {
                    std::thread::sleep(Duration::from_millis(500));
                    rss_with = Some(rss_kib(pid));
                }
                rt.block_on(async { reset_all(sessions) });
                let deadline = Instant::now() + Duration::from_secs(30);
                while open_fds(pid) > idle_fds + 8 {
                    assert!(
                        Instant::now() < deadline,
                        "the relay kept closed sessions 30 s"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            timed
        });
    });
    group.finish();
    let with = rss_with.expect("one batch ran");
    eprintln!(
        "identify: relay RSS {} KiB before, {} KiB with {SESSIONS} idle sessions: {:.1} KiB per idle session",
        rss_before,
        with,
        (with.saturating_sub(rss_before)) as f64 / SESSIONS as f64
    );
    drop(relay);
    drop(switch);
}

criterion_group!(benches, identify);
criterion_main!(benches);
