//! The export spool's group commit: SMDR records appended, written to the journal, fsynced and
//! stored in the call-record store (SQLite) before they are visible to collectors. `one` is
//! the latency of a single record (one fsync each); `burst_1024` the throughput of a burst,
//! whose records share fsyncs. Set-up (journal, store, committer) is outside the timed part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use relay::calls::CallStore;
use relay::config::SpoolLimits;
use relay::spool::{CommitterParts, Spool};
use switch_sim::smdr::{Leg, LegRecord, Printer, SmdrOptions};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

fn record(printer: &mut Printer, i: u32) -> bytes::Bytes {
    let started_ms = 1_796_083_200_000 + u64::from(i) * 1_000;
    printer.print(&LegRecord {
        call_id: i,
        leg: Leg::Incoming,
        extension: "2201",
        trunk: "701",
        digits: "0712345600",
        caller_id: "0498765478",
        started_ms,
        answered_ms: Some(started_ms + 4_000),
        ended_ms: started_ms + 64_000,
        group: "",
    })
}

fn spool(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (spool, committer, _) = Spool::open(&dir.path().join("spool"), 1).expect("spool");
    let spool = Arc::new(spool);
    let store = CallStore::open(dir.path(), 400).expect("store");
    let stop = CancellationToken::new();
    runtime.spawn(committer.run(
        spool.clone(),
        CommitterParts {
            limits: Box::new(SpoolLimits::default),
            now_ms: Box::new(|| 1_796_083_200_000),
            dropped: Box::new(|_, _| {}),
            write_failed: Box::new(|e| panic!("the journal cannot be written: {e}")),
            store: Some(Box::new(store)),
        },
        stop.clone(),
    ));
    let mut printer = Printer::new(SmdrOptions::default());
    let records: Vec<bytes::Bytes> = (0..1024).map(|i| record(&mut printer, i)).collect();
    let mut committed = spool.subscribe();
    let mut last = 0u64;
    let mut wait_for = |n: u64, last: &mut u64| {
        *last += n;
        let target = *last;
        runtime.block_on(async {
            committed
                .wait_for(|s| *s >= target)
                .await
                .expect("the committer runs");
        });
    };

    let mut group = c.benchmark_group("spool");
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    group.bench_function("one", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for i in 0..iters {
                spool.append(1, 1, &records[i as usize % records.len()], true);
                wait_for(1, &mut last);
            }
            started.elapsed()
        })
    });
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("burst_1024", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                for r in &records {
                    spool.append(1, 1, r, true);
                }
                wait_for(records.len() as u64, &mut last);
            }
            started.elapsed()
        })
    });
    group.finish();
    // Delivered, so the journal does not keep growing between runs.
    spool.acknowledge(last);
    stop.cancel();
}

criterion_group!(benches, spool);
criterion_main!(benches);
