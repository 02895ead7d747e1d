//! The export spool: every SMDR/UCD record is written to a journal in `state_dir/spool/` and
//! made durable (group commit: whatever arrived while the last write was on its way goes in the
//! next one, then fsync) before any collector is sent it. A record stays pending until a
//! collector's TCP has acknowledged every byte of it; then it is delivered. Pending records
//! go, in order, to whichever collector connects next, across restarts and crashes.
//!
//! - [`journal`]: the files.
//! - [`Spool`]: the pending records in memory, their numbers, the counters; read by export
//!   connections, fed by switch links.
//! - [`Committer`]: the task that writes, syncs, hands records to the call-record store, and
//!   drops what retention (`export.spool`) no longer allows.

pub mod journal;

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::calls::CallStore;
use crate::config::SpoolLimits;
pub use journal::Entry;
use journal::Journal;

/// How often the number of the last delivered record is saved while it changes.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Counters of the spool's life (metrics).
#[derive(Debug, Default)]
pub struct SpoolCounters {
    /// Records written to the journal.
    pub spooled: AtomicU64,
    /// Records a collector acknowledged.
    pub exported: AtomicU64,
    /// Undelivered records removed for retention.
    pub dropped: AtomicU64,
    /// Journal writes that failed (the records then live in memory only).
    pub write_errors: AtomicU64,
}

/// A record on its way to the committer.
struct Arrival {
    entry: Entry,
    /// Whether the record is kept for collectors (false: the export port is off).
    spool: bool,
}

struct State {
    next_seq: u64,
    /// Committed and not yet delivered or dropped, in order.
    pending: VecDeque<Arc<Entry>>,
    pending_bytes: usize,
    /// Every record through this number was delivered or dropped.
    released: u64,
}

/// The records kept for collectors.
pub struct Spool {
    state: Mutex<State>,
    committed: watch::Sender<u64>,
    arrivals: mpsc::UnboundedSender<Arrival>,
    pub counters: SpoolCounters,
}

/// Why undelivered records were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Pending records exceeded `export.spool.max_mb`.
    Size,
    /// Records older than `export.spool.max_days`.
    Age,
}

/// What the committer needs from the relay around it.
pub struct CommitterParts {
    /// The retention limits in force (read for every batch: they change with the config).
    pub limits: Box<dyn Fn() -> SpoolLimits + Send>,
    /// The wall clock, ms since the epoch.
    pub now_ms: Box<dyn Fn() -> u64 + Send>,
    /// Told of records dropped for retention.
    pub dropped: Box<dyn Fn(u64, DropReason) + Send>,
    /// Told of a journal write that failed.
    pub write_failed: Box<dyn Fn(&io::Error) + Send>,
    /// Where SMDR records are stored, when they are.
    pub store: Option<CallStore>,
}

/// The task that makes records durable.
pub struct Committer {
    journal: Journal,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
}

impl Spool {
    /// Opens the journal in `dir`; records found there undelivered are pending again.
    /// Damaged entries found (and cut off) are returned as text for the operator.
    /// Numbers go on from `min_next_seq` at least (the call store's numbers stay unique).
    pub fn open(dir: &Path, min_next_seq: u64) -> io::Result<(Spool, Committer, Vec<String>)> {
        let (journal, mut recovered) = Journal::open(dir)?;
        recovered.next_seq = recovered.next_seq.max(min_next_seq);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut pending = VecDeque::with_capacity(recovered.pending.len());
        let mut pending_bytes = 0;
        for e in recovered.pending {
            pending_bytes += e.stored_len();
            pending.push_back(Arc::new(e));
        }
        let last = recovered.next_seq - 1;
        let spool = Spool {
            state: Mutex::new(State {
                next_seq: recovered.next_seq,
                pending,
                pending_bytes,
                released: recovered.delivered,
            }),
            committed: watch::Sender::new(last),
            arrivals: tx,
            counters: SpoolCounters::default(),
        };
        let committer = Committer {
            journal,
            arrivals: rx,
        };
        Ok((spool, committer, recovered.damaged))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record from switch `switch` (an `S` or `U` frame); kept for collectors when `spool`.
    pub fn append(&self, time_ms: u64, switch: u8, frame: Bytes, spool: bool) {
        // Numbered and sent under one lock, so the committer gets records in number order.
        let mut st = self.lock();
        let entry = Entry {
            seq: st.next_seq,
            time_ms,
            switch,
            frame,
        };
        st.next_seq += 1;
        // The committer lives as long as the relay; after it, nothing is kept.
        let _ = self.arrivals.send(Arrival { entry, spool });
    }

    /// The number of the first record not yet delivered (or the next to come).
    pub fn first_pending(&self) -> u64 {
        self.lock().released + 1
    }

    /// Committed pending records from `seq` on (or from the first pending one, if later), at
    /// most `max`.
    pub fn read_from(&self, seq: u64, max: usize) -> Vec<Arc<Entry>> {
        let st = self.lock();
        let Some(front) = st.pending.front().map(|e| e.seq) else {
            return Vec::new();
        };
        let skip = seq.saturating_sub(front) as usize;
        st.pending.iter().skip(skip).take(max).cloned().collect()
    }

    /// Follows the number of the last committed record.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// A collector acknowledged every record through `seq`.
    pub fn acknowledge(&self, seq: u64) {
        let mut st = self.lock();
        let mut n = 0;
        while st.pending.front().is_some_and(|e| e.seq <= seq) {
            let e = st.pending.pop_front().expect("front");
            st.pending_bytes -= e.stored_len();
            n += 1;
        }
        st.released = st.released.max(seq);
        self.counters.exported.fetch_add(n, Ordering::Relaxed);
    }

    /// Records pending, and their bytes on disk.
    pub fn pending(&self) -> (usize, usize) {
        let st = self.lock();
        (st.pending.len(), st.pending_bytes)
    }

    /// Makes committed records visible, then applies retention; returns what was dropped.
    fn commit(&self, entries: Vec<Entry>, limits: SpoolLimits, now_ms: u64) -> [u64; 2] {
        let mut st = self.lock();
        let Some(last) = entries.last().map(|e| e.seq) else {
            drop(st);
            return [0, 0];
        };
        for e in entries {
            st.pending_bytes += e.stored_len();
            st.pending.push_back(Arc::new(e));
        }
        let max_bytes = limits.max_mb as usize * (1 << 20);
        let oldest_kept = now_ms.saturating_sub(u64::from(limits.max_days) * 86_400_000);
        let mut dropped = [0u64; 2];
        while let Some(front) = st.pending.front() {
            let reason = if st.pending_bytes > max_bytes {
                DropReason::Size
            } else if front.time_ms < oldest_kept {
                DropReason::Age
            } else {
                break;
            };
            let e = st.pending.pop_front().expect("front");
            st.pending_bytes -= e.stored_len();
            st.released = st.released.max(e.seq);
            dropped[reason as usize] += 1;
        }
        drop(st);
        self.counters
            .dropped
            .fetch_add(dropped[0] + dropped[1], Ordering::Relaxed);
        self.committed.send_replace(last);
        dropped
    }
}

impl Committer {
    /// Writes, syncs and publishes records until `stop`, then saves what was delivered.
    pub async fn run(
        mut self,
        spool: Arc<Spool>,
        mut parts: CommitterParts,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(SAVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = false;
        while !last {
            let mut batch = Vec::new();
            tokio::select! {
                arrival = self.arrivals.recv() => match arrival {
                    Some(a) => batch.push(a),
                    None => last = true,
                },
                _ = tick.tick() => {}
                // What has arrived is still written before the end.
                _ = stop.cancelled() => last = true,
            }
            while let Ok(a) = self.arrivals.try_recv() {
                batch.push(a);
            }
            let mut entries = Vec::new();
            let mut records = Vec::new();
            for a in batch {
                if parts.store.is_some() {
                    records.push(a.entry.clone());
                }
                if a.spool {
                    entries.push(a.entry);
                }
            }
            let released = spool.lock().released;
            let mut journal = self.journal;
            let mut store = parts.store.take();
            let work = tokio::task::spawn_blocking(move || {
                let written = if entries.is_empty() {
                    Ok(())
                } else {
                    journal.append(&entries).and_then(|()| journal.sync())
                };
                if let Some(store) = store.as_mut() {
                    store.insert(&records);
                }
                let saved = journal.release_through(released);
                (journal, store, entries, written.and(saved))
            });
            let (journal, store, entries, result) = match work.await {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!("the spool's writer failed: {e}");
                    return;
                }
            };
            self.journal = journal;
            parts.store = store;
            if let Err(e) = &result {
                spool.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                (parts.write_failed)(e);
            }
            let written = entries.len() as u64;
            let dropped = spool.commit(entries, (parts.limits)(), (parts.now_ms)());
            spool.counters.spooled.fetch_add(written, Ordering::Relaxed);
            for (count, reason) in [
                (dropped[0], DropReason::Size),
                (dropped[1], DropReason::Age),
            ] {
                if count > 0 {
                    (parts.dropped)(count, reason);
                }
            }
        }
        let released = spool.lock().released;
        let mut journal = self.journal;
        let _ = tokio::task::spawn_blocking(move || journal.release_through(released)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Bytes {
        Bytes::from(format!("\0\x0cSS\u{7f}\u{7f}record{n:02}"))
    }

    async fn committed(spool: &Spool, seq: u64) {
        let mut rx = spool.subscribe();
        rx.wait_for(|s| *s >= seq).await.unwrap();
    }

    fn parts(
        limits: SpoolLimits,
        now_ms: u64,
        drops: Arc<Mutex<Vec<(u64, DropReason)>>>,
    ) -> CommitterParts {
        CommitterParts {
            limits: Box::new(move || limits),
            now_ms: Box::new(move || now_ms),
            dropped: Box::new(move |n, r| drops.lock().unwrap().push((n, r))),
            write_failed: Box::new(|e| panic!("write failed: {e}")),
            store: None,
        }
    }

    #[tokio::test]
    async fn records_are_read_in_order_and_acknowledged_ones_are_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, committer, damaged) = Spool::open(dir.path(), 1).unwrap();
        assert!(damaged.is_empty());
        let spool = Arc::new(spool);
        let stop = CancellationToken::new();
        let drops = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(committer.run(
            spool.clone(),
            parts(SpoolLimits::default(), 0, drops.clone()),
            stop.clone(),
        ));
        for n in 1..=4 {
            spool.append(1_000 + n, 1, frame(n), true);
        }
        committed(&spool, 4).await;
        let seqs = |v: Vec<Arc<Entry>>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(spool.read_from(1, 10)), [1, 2, 3, 4]);
        assert_eq!(seqs(spool.read_from(3, 1)), [3]);
        spool.acknowledge(2);
        assert_eq!(spool.first_pending(), 3);
        assert_eq!(seqs(spool.read_from(1, 10)), [3, 4]);
        stop.cancel();
        task.await.unwrap();
        drop(spool);

        // After a restart, what was not acknowledged is pending again, numbering goes on.
        let (spool, _committer, _) = Spool::open(dir.path(), 1).unwrap();
        assert_eq!(seqs(spool.read_from(0, 10)), [3, 4]);
        assert_eq!(spool.read_from(0, 10)[0].frame, frame(3));
        assert_eq!(spool.lock().next_seq, 5);
        assert!(drops.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn retention_drops_the_oldest_undelivered_records_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, committer, _) = Spool::open(dir.path(), 1).unwrap();
        let spool = Arc::new(spool);
        let stop = CancellationToken::new();
        let drops = Arc::new(Mutex::new(Vec::new()));
        let day = 86_400_000;
        let now = 100 * day;
        let limits = SpoolLimits {
            max_mb: 1,
            max_days: 2,
        };
        tokio::spawn(committer.run(
            spool.clone(),
            parts(limits, now, drops.clone()),
            stop.clone(),
        ));
        // Two records three days old, one from today.
        spool.append(now - 3 * day, 1, frame(1), true);
        spool.append(now - 3 * day, 1, frame(2), true);
        spool.append(now - day, 1, frame(3), true);
        committed(&spool, 3).await;
        assert_eq!(spool.read_from(0, 10).len(), 1);
        assert_eq!(spool.first_pending(), 3);
        assert_eq!(*drops.lock().unwrap(), [(2, DropReason::Age)]);
        assert_eq!(spool.counters.dropped.load(Ordering::Relaxed), 2);
        // Over a MiB of records: the oldest go.
        let big = Bytes::from(vec![b'x'; 4000]);
        for _ in 0..300 {
            spool.append(now, 1, big.clone(), true);
        }
        committed(&spool, 303).await;
        let (records, bytes) = spool.pending();
        assert!(bytes <= 1 << 20, "{bytes}");
        assert_eq!(records, (1 << 20) / (4000 + journal::ENTRY_OVERHEAD));
        let size_drops: u64 = drops
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.1 == DropReason::Size)
            .map(|d| d.0)
            .sum();
        assert_eq!(size_drops, 301 - records as u64);
        stop.cancel();
    }
}
