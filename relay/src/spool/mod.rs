//! The export spool: every SMDR/UCD record is written to a journal in `state_dir/spool/` and
//! made durable (group commit: whatever arrived while the last write was on its way goes in the
//! next one, then fsync) before any collector is sent it. A record stays pending until a
//! collector's TCP has acknowledged every byte of it; then it is delivered. Pending records
//! go, in order, to whichever collector connects next, across restarts and crashes.
//!
//! - [`journal`]: the files.
//! - [`Spool`]: numbers, counters, and the newest records in memory (at most 64 KiB); read
//!   by export connections (from the journal when they are further behind), fed by switch links.
//!   Memory stays the same however many records wait for a collector.
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

use crate::config::SpoolLimits;
pub use journal::{Entry, JournalReader};
use journal::{Journal, Segment};

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
    /// The last record made durable and visible.
    committed: u64,
    /// Every record through this number was delivered or dropped.
    released: u64,
    /// The newest committed records not yet released, at most `TAIL_BYTES`.
    tail: VecDeque<Arc<Entry>>,
    tail_bytes: usize,
    /// The journal's segments after the last commit.
    segments: Vec<Segment>,
}

/// Bytes of the newest records kept in memory, for collectors that keep up (a collector reads
/// a record within milliseconds of its commit; one further behind reads the journal).
const TAIL_BYTES: usize = 64 << 10;

/// The records kept for collectors.
pub struct Spool {
    state: Mutex<State>,
    committed: watch::Sender<u64>,
    arrivals: mpsc::UnboundedSender<Arrival>,
    pub counters: SpoolCounters,
    /// Disk work on the runtime's own thread instead of a blocking thread (simulations: a
    /// blocking thread's real timing would make two plays of a world part ways).
    disk_inline: bool,
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
    /// Where SMDR records are stored, when they are (the call-record store).
    pub store: Option<Box<dyn RecordSink>>,
}

/// Where durable records go next, in order, each batch once it is synced.
pub trait RecordSink: Send {
    fn insert(&mut self, entries: &[Entry]);
}

/// The task that makes records durable.
pub struct Committer {
    journal: Journal,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
}

impl Spool {
    /// Does the spool's disk work on the runtime's thread (see `Tuning::disk_work_inline`).
    pub fn with_disk_work_inline(mut self, inline: bool) -> Spool {
        self.disk_inline = inline;
        self
    }

    /// Runs `work` on a blocking thread, or here when the spool does its disk work inline.
    async fn on_disk<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, tokio::task::JoinError> {
        match self.disk_inline {
            true => Ok(work()),
            false => tokio::task::spawn_blocking(work).await,
        }
    }

    /// Opens the journal in `dir`; records found there undelivered are pending again.
    /// Damaged entries found (and cut off) are returned as text for the operator.
    /// Numbers go on from `min_next_seq` at least (the call store's numbers stay unique).
    pub fn open(dir: &Path, min_next_seq: u64) -> io::Result<(Spool, Committer, Vec<String>)> {
        let (journal, recovered) = Journal::open(dir)?;
        let next_seq = recovered.next_seq.max(min_next_seq);
        let (tx, rx) = mpsc::unbounded_channel();
        let last = next_seq - 1;
        // Numbers skipped to stay after the store's were never journalled: nothing pending.
        let released = match recovered.pending {
            0 => last,
            _ => recovered.delivered,
        };
        let spool = Spool {
            state: Mutex::new(State {
                next_seq,
                committed: last,
                released,
                tail: VecDeque::new(),
                tail_bytes: 0,
                segments: journal.segments(),
            }),
            committed: watch::Sender::new(last),
            arrivals: tx,
            counters: SpoolCounters::default(),
            disk_inline: false,
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
    pub fn append(&self, time_ms: u64, switch: u8, frame: &[u8], spool: bool) {
        // Numbered and sent under one lock, so the committer gets records in number order.
        // Records not kept for collectors (the export port is off) have no number (0).
        // A copy of its own: the record is kept long, and a slice of the switch reader's
        // buffer would keep the whole buffer alive with it.
        let frame = Bytes::copy_from_slice(frame);
        let mut st = self.lock();
        let entry = Entry {
            seq: if spool { st.next_seq } else { 0 },
            time_ms,
            switch,
            frame,
        };
        st.next_seq += u64::from(spool);
        // The committer lives as long as the relay; after it, nothing is kept.
        let _ = self.arrivals.send(Arrival { entry, spool });
    }

    /// The number of the first record not yet delivered (or the next to come).
    pub fn first_pending(&self) -> u64 {
        self.lock().released + 1
    }

    /// Committed pending records from `seq` on (or from the first pending one, if later), at
    /// most `max`, when memory still has them; `None` when they must be read from the journal.
    pub fn read_memory(&self, seq: u64, max: usize) -> Option<Vec<Arc<Entry>>> {
        let st = self.lock();
        let from = seq.max(st.released + 1);
        if from > st.committed {
            return Some(Vec::new());
        }
        let front = st.tail.front()?.seq;
        if from < front {
            return None;
        }
        let skip = (from - front) as usize;
        Some(st.tail.iter().skip(skip).take(max).cloned().collect())
    }

    /// Committed pending records from `seq` on, at most `max`: from memory, or through
    /// `reader` from the journal.
    pub async fn read(
        &self,
        reader: &mut Option<JournalReader>,
        seq: u64,
        max: usize,
    ) -> io::Result<Vec<Arc<Entry>>> {
        if let Some(batch) = self.read_memory(seq, max) {
            return Ok(batch);
        }
        let (segments, from, through) = {
            let st = self.lock();
            (st.segments.clone(), seq.max(st.released + 1), st.committed)
        };
        let mut r = reader.take().unwrap_or_default();
        let (r, read) = self
            .on_disk(move || {
                let read = r.read(&segments, from, through, max);
                (r, read)
            })
            .await
            .map_err(io::Error::other)?;
        *reader = Some(r);
        Ok(read?.into_iter().map(Arc::new).collect())
    }

    /// Hands every journalled record from number `from` on to `f`, in batches, straight from
    /// the files (at start: records the call store may have missed).
    pub fn replay(&self, from: u64, mut f: impl FnMut(&[Entry])) -> io::Result<()> {
        let (segments, through) = {
            let st = self.lock();
            (st.segments.clone(), st.committed)
        };
        let mut reader = JournalReader::default();
        let mut next = from;
        loop {
            let batch = reader.read(&segments, next, through, 4096)?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            next = last.seq + 1;
            f(&batch);
        }
    }

    /// Follows the number of the last committed record.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// A collector acknowledged every record through `seq`.
    pub fn acknowledge(&self, seq: u64) {
        let mut st = self.lock();
        if seq <= st.released {
            return;
        }
        let n = seq - st.released;
        st.release_through(seq);
        self.counters.exported.fetch_add(n, Ordering::Relaxed);
    }

    /// Records pending, and the bytes of the segments that hold them.
    pub fn pending(&self) -> (u64, u64) {
        let st = self.lock();
        (st.committed - st.released, st.pending_bytes())
    }

    /// Makes committed records visible, then applies retention; returns what was dropped.
    fn commit(
        &self,
        entries: Vec<Entry>,
        segments: Vec<Segment>,
        limits: SpoolLimits,
        now_ms: u64,
    ) -> [u64; 2] {
        let mut st = self.lock();
        st.segments = segments;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return [0, 0];
        };
        for e in entries {
            st.tail_bytes += e.stored_len();
            st.tail.push_back(Arc::new(e));
        }
        while st.tail_bytes > TAIL_BYTES {
            let e = st.tail.pop_front().expect("front");
            st.tail_bytes -= e.stored_len();
        }
        st.committed = last;
        // Retention removes whole segments, oldest first; the one being written only by age.
        let max_bytes = u64::from(limits.max_mb) << 20;
        let oldest_kept = now_ms.saturating_sub(u64::from(limits.max_days) * 86_400_000);
        let mut dropped = [0u64; 2];
        loop {
            let released = st.released;
            let pending: Vec<&Segment> = st
                .segments
                .iter()
                .filter(|s| s.last_seq > released)
                .collect();
            let Some(oldest) = pending.first() else { break };
            let reason = if oldest.newest_ms < oldest_kept {
                DropReason::Age
            } else if pending.len() > 1 && st.pending_bytes() > max_bytes {
                DropReason::Size
            } else {
                break;
            };
            let through = oldest.last_seq.min(st.committed);
            dropped[reason as usize] += through - released;
            st.release_through(through);
        }
        drop(st);
        self.counters
            .dropped
            .fetch_add(dropped[0] + dropped[1], Ordering::Relaxed);
        self.committed.send_replace(last);
        dropped
    }
}

impl State {
    fn release_through(&mut self, seq: u64) {
        self.released = self.released.max(seq);
        while self.tail.front().is_some_and(|e| e.seq <= seq) {
            let e = self.tail.pop_front().expect("front");
            self.tail_bytes -= e.stored_len();
        }
    }

    fn pending_bytes(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.last_seq > self.released)
            .map(|s| s.bytes)
            .sum()
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
            let work = spool.on_disk(move || {
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
            let segments = self.journal.segments();
            let dropped = spool.commit(entries, segments, (parts.limits)(), (parts.now_ms)());
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
        let _ = spool
            .on_disk(move || journal.release_through(released))
            .await;
    }
}

#[cfg(test)]
mod tests;
