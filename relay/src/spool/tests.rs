use super::*;

fn frame(n: u64) -> Bytes {
    Bytes::from(format!("\0\x0cSS\u{7f}\u{7f}record{n:02}"))
}

async fn committed(spool: &Spool, seq: u64) {
    let mut rx = spool.subscribe();
    rx.wait_for(|s| *s >= seq).await.unwrap();
}

/// A spool in a directory of its own with its committer running, and what it dropped.
struct Running {
    dir: tempfile::TempDir,
    spool: Arc<Spool>,
    drops: Arc<Mutex<Vec<(u64, DropReason)>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(limits: SpoolLimits, now_ms: u64) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (spool, committer, damaged) = Spool::open(dir.path(), 1).unwrap();
    assert!(damaged.is_empty());
    let spool = Arc::new(spool);
    let drops = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let recorded = drops.clone();
    let parts = CommitterParts {
        limits: Box::new(move || limits),
        now_ms: Box::new(move || now_ms),
        dropped: Box::new(move |n, r| recorded.lock().unwrap().push((n, r))),
        write_failed: Box::new(|e| panic!("write failed: {e}")),
        store: None,
    };
    let task = crate::task::spawn(committer.run(spool.clone(), parts, stop.clone()));
    Running {
        dir,
        spool,
        drops,
        stop,
        task,
    }
}

async fn read(spool: &Spool, from: u64, max: usize) -> Vec<u64> {
    let batch = spool.read(&mut None, from, max).await.unwrap();
    batch.iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn records_are_read_in_order_and_acknowledged_ones_are_not_sent_again() {
    let Running {
        dir,
        spool,
        drops,
        stop,
        task,
    } = start(SpoolLimits::default(), 0);
    for n in 1..=4 {
        spool.append(1_000 + n, 1, &frame(n), true);
    }
    // Not kept for collectors: no number, nothing pending.
    spool.append(1_005, 1, &frame(5), false);
    committed(&spool, 4).await;
    assert_eq!(read(&spool, 1, 10).await, [1, 2, 3, 4]);
    assert_eq!(read(&spool, 3, 1).await, [3]);
    spool.acknowledge(2);
    assert_eq!(spool.first_pending(), 3);
    assert_eq!(read(&spool, 1, 10).await, [3, 4]);
    assert_eq!(spool.pending().0, 2);
    stop.cancel();
    task.await.unwrap();
    drop(spool);

    // After a restart, what was not acknowledged is pending again (read from the
    // journal), and numbering goes on.
    let (spool, _committer, _) = Spool::open(dir.path(), 1).unwrap();
    assert_eq!(read(&spool, 0, 10).await, [3, 4]);
    assert_eq!(
        spool.read(&mut None, 0, 10).await.unwrap()[0].frame,
        frame(3)
    );
    assert_eq!(spool.lock().next_seq, 5);
    assert_eq!(spool.pending().0, 2);
    assert!(drops.lock().unwrap().is_empty());
}

#[tokio::test]
async fn memory_holds_only_the_newest_records_and_older_ones_come_from_the_journal() {
    let Running {
        spool,
        stop,
        dir: _dir,
        ..
    } = start(SpoolLimits::default(), 0);
    let record = Bytes::from(vec![b'r'; 200]);
    for _ in 0..20_000 {
        spool.append(1, 1, &record, true);
    }
    committed(&spool, 20_000).await;
    assert!(spool.lock().tail_bytes <= TAIL_BYTES);
    assert!(
        spool.read_memory(1, 10).is_none(),
        "the oldest are on disk only"
    );
    // One collector's reader, from the first record to the last, in order.
    let mut reader = None;
    let mut next = 1;
    while next <= 20_000 {
        let batch = spool.read(&mut reader, next, 256).await.unwrap();
        assert_eq!(batch.first().map(|e| e.seq), Some(next));
        next = batch.last().unwrap().seq + 1;
    }
    assert_eq!(next, 20_001);
    stop.cancel();
}

#[tokio::test]
async fn retention_drops_the_oldest_undelivered_records_and_says_so() {
    let day = 86_400_000;
    let now = 100 * day;
    let limits = SpoolLimits {
        max_mb: 1,
        max_days: 2,
    };
    let Running {
        spool,
        drops,
        stop,
        dir: _dir,
        ..
    } = start(limits, now);
    // Two records three days old, one from yesterday (segments hold a day at most).
    spool.append(now - 3 * day, 1, &frame(1), true);
    spool.append(now - 3 * day, 1, &frame(2), true);
    spool.append(now - day, 1, &frame(3), true);
    committed(&spool, 3).await;
    assert_eq!(read(&spool, 0, 10).await, [3]);
    assert_eq!(spool.first_pending(), 3);
    assert_eq!(*drops.lock().unwrap(), [(2, DropReason::Age)]);
    assert_eq!(spool.counters.dropped.load(Ordering::Relaxed), 2);
    // Over a MiB of records: whole segments go, oldest first, until a MiB is left.
    let big = Bytes::from(vec![b'x'; 4000]);
    for _ in 0..300 {
        spool.append(now, 1, &big, true);
    }
    committed(&spool, 303).await;
    let entry = (4000 + journal::ENTRY_OVERHEAD) as u64;
    let per_segment = (1u64 << 20).div_ceil(entry);
    let (records, bytes) = spool.pending();
    assert_eq!(records, 300 - per_segment);
    assert_eq!(bytes, records * entry);
    let size_drops: u64 = drops
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.1 == DropReason::Size)
        .map(|d| d.0)
        .sum();
    assert_eq!(size_drops, 1 + per_segment);
    assert_eq!(read(&spool, 0, 1).await, [4 + per_segment]);
    stop.cancel();
}
