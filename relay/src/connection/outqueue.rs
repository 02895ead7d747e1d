//! A bounded output queue and the task that drains it into a socket; every connection the
//! relay writes to (switch links, sessions, monitors) has one.
//!
//! Producers (the switch reader, a session's own reader) push shared [`Bytes`] and never wait:
//! a push that would take the queue past its byte bound fails, the queue is marked overflowed,
//! and its writer closes the connection. A queue made with [`OutQueue::dropping`] (monitors)
//! instead drops what does not fit, counts it, and reports the count with a frame of its own
//! before the next frame it takes, or as soon as the writer has caught up. The writer takes everything queued at once and hands
//! it to the socket with vectored writes, so a burst of frames costs one syscall, not one each.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::lent::{Attempt, Lent, Sink};

/// Slices handed to one vectored write.
const MAX_IOVECS: usize = 256;

/// The largest frame a producer writes itself to an idle connection whose writer lent it its
/// socket (a few events); a larger run goes to the writer, so that a producer feeding many
/// connections at full rate leaves the copying to their writers, which run in parallel.
const DIRECT_MAX: usize = 2048;

/// How the queue ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Write what is queued, then `last`, then close.
    Drain { last: Option<Bytes> },
    /// Drop what is queued (the peer is too slow for it), write `last`, then close.
    Discard { last: Option<Bytes> },
}

/// A push refused because the queue is over its bound or already ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// This push overflowed the queue: it is now ending and the caller should report why.
    Overflowed,
    /// The queue had already ended; the frame was dropped.
    Closed,
}

/// What became of a frame offered to a dropping queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// It did not fit: dropped and counted for the next gap report.
    Dropped,
    /// The queue had ended; nothing was queued or counted.
    Closed,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    bytes: usize,
    ending: Option<Ending>,
    /// Dropped since the last gap report (queues made with [`OutQueue::dropping`]).
    dropped: u32,
    /// The writer holds entries taken and not yet written: a producer may not write itself.
    busy: bool,
    /// A producer wrote a frame itself whose flush must wait: the writer is to finish it.
    unflushed: bool,
}

pub struct OutQueue {
    state: Mutex<State>,
    wake: Notify,
    /// Woken when the queue ends by discarding, to interrupt a write blocked on a slow peer.
    discard: Notify,
    limit: usize,
    /// Written (after the backlog is dropped) when a push overflows the queue.
    overflow_frame: Option<Bytes>,
    /// The frame reporting `n` dropped frames, for queues that drop instead of ending.
    gap_frame: Option<fn(u32) -> Bytes>,
    /// The socket, while a writer run by [`run_lending_writer`] lends it.
    lent: Lent,
}

impl OutQueue {
    /// A queue holding at most `limit` bytes not yet written.
    pub fn new(limit: usize) -> OutQueue {
        OutQueue {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            discard: Notify::new(),
            limit,
            overflow_frame: None,
            gap_frame: None,
            lent: Lent::default(),
        }
    }

    /// A queue holding at most `limit` bytes that never ends by overflowing: what does not fit
    /// is dropped and counted (see [`OutQueue::push_or_drop`]), and the count goes out as
    /// `gap_frame(count)`.
    pub fn dropping(limit: usize, gap_frame: fn(u32) -> Bytes) -> OutQueue {
        OutQueue {
            gap_frame: Some(gap_frame),
            ..OutQueue::new(limit)
        }
    }

    /// Queues `frame` behind the report of any frames dropped before it, if both fit; else
    /// drops it and counts it for the next report (a queue that has ended queues nothing and
    /// counts nothing).
    pub fn push_or_drop(&self, frame: Bytes) -> Offered {
        let mut st = self.lock();
        if st.ending.is_some() {
            return Offered::Closed;
        }
        let gap = self.gap_report(&st);
        let need = frame.len() + gap.as_ref().map_or(0, Bytes::len);
        if st.bytes + need > self.limit {
            st.dropped = st.dropped.saturating_add(1);
            return Offered::Dropped;
        }
        let was_empty = st.frames.is_empty();
        if let Some(g) = gap {
            st.dropped = 0;
            st.bytes += g.len();
            st.frames.push_back(g);
        }
        st.bytes += frame.len();
        st.frames.push_back(frame);
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
        Offered::Queued
    }

    /// Counts a frame that could not be offered at all (for the next gap report).
    pub fn count_dropped(&self) {
        let mut st = self.lock();
        st.dropped = st.dropped.saturating_add(1);
    }

    /// The report of the frames dropped since the last one, if any were.
    fn gap_report(&self, st: &State) -> Option<Bytes> {
        let gap = self.gap_frame?;
        (st.dropped > 0).then(|| gap(st.dropped))
    }

    /// Sets the frame written when the queue overflows (e.g. `X` reason 3).
    pub fn with_overflow_frame(mut self, frame: Bytes) -> OutQueue {
        self.overflow_frame = Some(frame);
        self
    }

    /// Queues `frame` only if it fits, without ending the queue when it does not.
    pub fn offer(&self, frame: Bytes) -> bool {
        self.offer_then(frame, |_| {})
    }

    /// As [`OutQueue::offer`], calling `accepted` with the frame once it is known to fit and
    /// before the writer can take it: whatever `accepted` records comes before anything the
    /// frame causes at the other end.
    pub fn offer_then(&self, frame: Bytes, accepted: impl FnOnce(&Bytes)) -> bool {
        let st = self.lock();
        if st.ending.is_some() || st.bytes + frame.len() > self.limit {
            return false;
        }
        accepted(&frame);
        self.enqueue(st, frame);
        true
    }

    /// Appends under the lock, waking the writer when the queue was empty; or, when the writer
    /// has lent its socket and holds nothing, writes a small frame at once and queues only what
    /// the socket did not take.
    fn enqueue(&self, mut st: std::sync::MutexGuard<'_, State>, mut frame: Bytes) {
        let was_empty = st.frames.is_empty();
        if was_empty && !st.busy && !st.unflushed && frame.len() <= DIRECT_MAX {
            match self.lent.try_write(&frame) {
                Attempt::Whole => return,
                Attempt::Unflushed => {
                    st.unflushed = true;
                    drop(st);
                    self.wake.notify_one();
                    return;
                }
                Attempt::Part(n) => frame.advance(n),
                Attempt::Not => {}
            }
        }
        st.bytes += frame.len();
        st.frames.push_back(frame);
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (every update is
        // a single push or take), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `frame` (one or more whole frames).
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.ending.is_some() {
            return Err(PushError::Closed);
        }
        if st.bytes + frame.len() > self.limit {
            st.frames.clear();
            st.bytes = 0;
            st.ending = Some(Ending::Discard {
                last: self.overflow_frame.clone(),
            });
            drop(st);
            self.wake.notify_one();
            self.discard.notify_waiters();
            return Err(PushError::Overflowed);
        }
        self.enqueue(st, frame);
        Ok(())
    }

    /// Ends the queue; the first ending wins. Returns whether this call ended it.
    pub fn end(&self, ending: Ending) -> bool {
        let mut st = self.lock();
        if st.ending.is_some() {
            return false;
        }
        let discard = matches!(ending, Ending::Discard { .. });
        if discard {
            st.frames.clear();
            st.bytes = 0;
        }
        st.ending = Some(ending);
        drop(st);
        self.wake.notify_one();
        if discard {
            self.discard.notify_waiters();
        }
        true
    }

    /// Whether the queue has been told to end (or overflowed).
    pub fn is_ending(&self) -> bool {
        self.lock().ending.is_some()
    }

    /// Whether the queue ended by overflowing.
    pub fn overflowed(&self) -> bool {
        matches!(self.lock().ending, Some(Ending::Discard { .. }))
    }

    /// Resolves once the queue ends by discarding.
    async fn discarded(&self) {
        let notified = self.discard.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.overflowed() {
            return;
        }
        notified.await;
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Moves everything queued into `into`; returns the final frame once ending with nothing
    /// left to write.
    fn take(&self, into: &mut VecDeque<Bytes>) -> Taken {
        let mut st = self.lock();
        // Caught up: a dropping queue reports what was missed now rather than before the next
        // frame.
        let gap = match st.ending {
            None => self.gap_report(&st),
            Some(_) => None,
        };
        let flush = std::mem::take(&mut st.unflushed) && st.ending.is_none();
        if !st.frames.is_empty() || gap.is_some() || flush {
            std::mem::swap(&mut st.frames, into);
            st.bytes = 0;
            st.busy = true;
            if let Some(g) = gap {
                st.dropped = 0;
                into.push_back(g);
            }
            return Taken::Frames;
        }
        st.busy = false;
        match &mut st.ending {
            None => Taken::Nothing,
            Some(Ending::Drain { last } | Ending::Discard { last }) => Taken::End(last.take()),
        }
    }
}

enum Taken {
    Frames,
    Nothing,
    End(Option<Bytes>),
}

/// Why a writer stopped.
#[derive(Debug)]
pub enum WriterEnd {
    /// The queue ended and its last frame was written (or there was none).
    Ended,
    /// The socket failed or the final frame could not be written in time.
    Io(io::Error),
}

/// Drains `queue` into `writer` until the queue ends or the socket fails. The final frame of
/// an ending is given `last_frame_timeout` to be written, since the peer may not be reading.
///
/// A write blocked on a peer that does not read is abandoned as soon as the queue discards,
/// but never in the middle of a queue entry: entries are whole frames or runs of whole frames,
/// so the peer's stream stays well-formed up to the final frame.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    queue: &OutQueue,
    writer: &mut W,
    last_frame_timeout: Duration,
) -> WriterEnd {
    let mut out = Pending::default();
    loop {
        match queue.take(&mut out.batch) {
            Taken::Frames => {
                out.partial = false;
                tokio::select! {
                    biased;
                    written = out.write_all(writer) => {
                        if let Err(e) = written {
                            return WriterEnd::Io(e);
                        }
                        out.release_excess();
                    }
                    _ = queue.discarded() => out.keep_partial_only(),
                }
            }
            Taken::Nothing => queue.wake.notified().await,
            Taken::End(last) => {
                let finish = async {
                    out.write_all(writer).await?;
                    if let Some(last) = last {
                        writer.write_all(&last).await?;
                    }
                    writer.flush().await?;
                    writer.shutdown().await
                };
                return match tokio::time::timeout(last_frame_timeout, finish).await {
                    Ok(Ok(())) => WriterEnd::Ended,
                    Ok(Err(e)) => WriterEnd::Io(e),
                    Err(_) => WriterEnd::Io(io::ErrorKind::TimedOut.into()),
                };
            }
        }
    }
}

/// Drains `queue` into `sink` as [`run_writer`] does, lending the socket to the queue's
/// producers whenever the writer holds nothing (see [`super::lent`]); the socket is dropped,
/// closing it, when the writer ends or is aborted.
pub async fn run_lending_writer(
    queue: &OutQueue,
    sink: Sink,
    last_frame_timeout: Duration,
) -> WriterEnd {
    struct TakeBack<'a>(&'a Lent);
    impl Drop for TakeBack<'_> {
        fn drop(&mut self) {
            drop(self.0.take_back());
        }
    }
    queue.lent.lend(sink);
    let _back = TakeBack(&queue.lent);
    run_writer(queue, &mut queue.lent.shared(), last_frame_timeout).await
}

/// Drains `queue` as [`run_writer`] does, handing each batch of entries taken to `to` (the
/// gateway's bridge, which translates them) instead of writing them to a socket. The entries
/// stay the shared buffers they were queued as. A receiver that takes no more makes the queue
/// fill, as a peer that does not read does; a batch waiting for it is dropped as soon as the
/// queue discards. The final frame of an ending is given `last_frame_timeout` to be taken.
pub async fn run_handoff(
    queue: &OutQueue,
    to: &tokio::sync::mpsc::Sender<VecDeque<Bytes>>,
    last_frame_timeout: Duration,
) -> WriterEnd {
    let gone = || WriterEnd::Io(io::ErrorKind::BrokenPipe.into());
    let mut batch = VecDeque::new();
    loop {
        match queue.take(&mut batch) {
            Taken::Frames => {
                let taken = std::mem::replace(&mut batch, VecDeque::with_capacity(ENTRIES_KEPT));
                tokio::select! {
                    // A queue that overflowed drops the batch in hand, even if it could go now.
                    biased;
                    _ = queue.discarded() => {}
                    sent = to.send(taken) => {
                        if sent.is_err() {
                            return gone();
                        }
                    }
                }
            }
            Taken::Nothing => queue.wake.notified().await,
            Taken::End(last) => {
                let Some(last) = last else {
                    return WriterEnd::Ended;
                };
                return match tokio::time::timeout(last_frame_timeout, to.send([last].into())).await
                {
                    Ok(Ok(())) => WriterEnd::Ended,
                    Ok(Err(_)) => gone(),
                    Err(_) => WriterEnd::Io(io::ErrorKind::TimedOut.into()),
                };
            }
        }
    }
}

/// What the writer holds: entries taken from the queue and not yet fully written.
#[derive(Default)]
struct Pending {
    batch: VecDeque<Bytes>,
    /// The front entry has been partly written.
    partial: bool,
}

/// Entries a drained batch keeps room for; a burst's larger room is given back, so that a
/// connection's memory after a burst returns to that of a quiet one.
const ENTRIES_KEPT: usize = 64;

impl Pending {
    /// Gives back the room a burst needed once it is written (the batch and the queue swap
    /// these, so both stay small between bursts).
    fn release_excess(&mut self) {
        if self.batch.is_empty() && self.batch.capacity() > 4 * ENTRIES_KEPT {
            self.batch.shrink_to(ENTRIES_KEPT);
        }
    }

    /// Drops every entry not yet started, keeping the rest of a partly written one.
    fn keep_partial_only(&mut self) {
        let keep = usize::from(self.partial);
        self.batch.truncate(keep);
    }

    async fn write_all<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        write_entries(writer, &mut self.batch, &mut self.partial).await
    }
}

/// Writes `entries` into `writer` with vectored writes, taking each off as it is written, then
/// flushes. `partial` says, wherever the writing stops (an error, or the future dropped),
/// whether the front entry has been partly written.
pub(crate) async fn write_entries<W: AsyncWrite + Unpin>(
    writer: &mut W,
    entries: &mut VecDeque<Bytes>,
    partial: &mut bool,
) -> io::Result<()> {
    while !entries.is_empty() {
        let n = {
            let slices: Vec<IoSlice<'_>> = entries
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            writer.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let front = entries.front_mut().expect("wrote no more than was queued");
            if front.len() <= left {
                left -= front.len();
                entries.pop_front();
                *partial = false;
            } else {
                front.advance(left);
                *partial = true;
                left = 0;
            }
        }
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_burst_gives_its_room_back() {
        let mut out = Pending {
            batch: VecDeque::with_capacity(10_000),
            partial: false,
        };
        out.batch.push_back(Bytes::from_static(b"ab"));
        out.release_excess();
        assert!(
            out.batch.capacity() >= 10_000,
            "a batch not yet written keeps its room"
        );
        out.batch.clear();
        out.release_excess();
        assert!(
            out.batch.capacity() < 4 * ENTRIES_KEPT,
            "{}",
            out.batch.capacity()
        );
    }

    #[tokio::test]
    async fn writes_everything_queued_in_order_then_the_last_frame() {
        let q = OutQueue::new(1024);
        q.push(Bytes::from_static(b"ab")).unwrap();
        q.push(Bytes::from_static(b"cd")).unwrap();
        q.end(Ending::Drain {
            last: Some(Bytes::from_static(b"X")),
        });
        let mut out = Vec::new();
        let end = run_writer(&q, &mut out, Duration::from_secs(1)).await;
        assert!(matches!(end, WriterEnd::Ended));
        assert_eq!(out, b"abcdX");
    }

    /// Handed over, entries stay the buffers queued (shared, not copied), in order, then the
    /// last frame; a batch the receiver does not take is dropped once the queue overflows, and
    /// the overflow's frame follows.
    #[tokio::test]
    async fn handing_off_gives_the_entries_themselves_and_gives_up_on_a_receiver_that_stops() {
        let q = OutQueue::new(1024);
        let run = Bytes::from(vec![7u8; 10]);
        q.push(run.clone()).unwrap();
        q.push(Bytes::from_static(b"cd")).unwrap();
        q.end(Ending::Drain {
            last: Some(Bytes::from_static(b"X")),
        });
        let (to, mut from) = tokio::sync::mpsc::channel(4);
        let end = run_handoff(&q, &to, Duration::from_secs(1)).await;
        assert!(matches!(end, WriterEnd::Ended));
        let first = from.recv().await.unwrap();
        assert_eq!(first, [run.clone(), Bytes::from_static(b"cd")]);
        assert_eq!(first[0].as_ptr(), run.as_ptr(), "the same buffer");
        assert_eq!(from.recv().await.unwrap(), [Bytes::from_static(b"X")]);

        let q =
            std::sync::Arc::new(OutQueue::new(8).with_overflow_frame(Bytes::from_static(b"X3")));
        let (to, mut from) = tokio::sync::mpsc::channel(1);
        let handing = crate::task::spawn({
            let q = q.clone();
            async move { run_handoff(&q, &to, Duration::from_millis(100)).await }
        });
        q.push(Bytes::from_static(b"a")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.push(Bytes::from_static(b"b")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // "a" fills the channel; "b" waits to be taken; this overflows.
        assert_eq!(
            q.push(Bytes::from(vec![0u8; 9])),
            Err(PushError::Overflowed)
        );
        assert_eq!(from.recv().await.unwrap(), [Bytes::from_static(b"a")]);
        assert_eq!(from.recv().await.unwrap(), [Bytes::from_static(b"X3")]);
        assert!(matches!(handing.await.unwrap(), WriterEnd::Ended));
        assert!(from.recv().await.is_none());
    }

    #[tokio::test]
    async fn overflow_discards_the_backlog_and_refuses_later_pushes() {
        let q = OutQueue::new(4).with_overflow_frame(Bytes::from_static(b"X3"));
        q.push(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(
            q.push(Bytes::from_static(b"de")),
            Err(PushError::Overflowed)
        );
        assert_eq!(q.push(Bytes::from_static(b"f")), Err(PushError::Closed));
        assert!(q.overflowed());
        assert!(
            !q.end(Ending::Drain { last: None }),
            "the overflow already ended it"
        );
        let mut out = Vec::new();
        run_writer(&q, &mut out, Duration::from_secs(1)).await;
        assert_eq!(out, b"X3");
    }

    #[tokio::test]
    async fn a_write_blocked_on_a_slow_peer_is_abandoned_between_entries() {
        // A peer that takes 5 bytes and then stops reading.
        let (mut near, mut far) = tokio::io::duplex(5);
        let q =
            std::sync::Arc::new(OutQueue::new(64).with_overflow_frame(Bytes::from_static(b"X")));
        q.push(Bytes::from_static(b"aaaa")).unwrap();
        q.push(Bytes::from_static(b"bbbb")).unwrap();
        q.push(Bytes::from_static(b"cccc")).unwrap();
        let wq = q.clone();
        let writer =
            crate::task::spawn(
                async move { run_writer(&wq, &mut near, Duration::from_secs(5)).await },
            );
        // The writer is now blocked one byte into "bbbb".
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            q.push(Bytes::from(vec![0u8; 100])),
            Err(PushError::Overflowed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got)
            .await
            .unwrap();
        assert!(matches!(writer.await.unwrap(), WriterEnd::Ended));
        // "bbbb" is finished so no frame is cut, "cccc" is dropped, then the final frame.
        assert_eq!(got, b"aaaabbbbX");
    }

    /// With its writer idle, a producer writes a small frame itself (nothing is queued for the
    /// writer); what the socket does not take is queued, and later frames queue behind it, so
    /// the peer reads every byte in order.
    #[tokio::test]
    async fn a_lent_socket_takes_a_producers_frame_and_the_writer_the_rest_in_order() {
        let (near, mut far) = tokio::io::duplex(4);
        let q = std::sync::Arc::new(OutQueue::new(64));
        let wq = q.clone();
        let writer = crate::task::spawn(async move {
            run_lending_writer(&wq, Box::new(near), Duration::from_secs(1)).await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.push(Bytes::from_static(b"ab")).unwrap();
        assert_eq!(q.queued_bytes(), 0, "written by the producer, not queued");
        q.push(Bytes::from_static(b"cdefgh")).unwrap();
        assert_eq!(q.queued_bytes(), 4, "the socket took two bytes of six");
        q.push(Bytes::from_static(b"ij")).unwrap();
        assert_eq!(q.queued_bytes(), 6, "queued behind the rest");
        q.end(Ending::Drain { last: None });
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got)
            .await
            .unwrap();
        assert_eq!(got, b"abcdefghij");
        assert!(matches!(writer.await.unwrap(), WriterEnd::Ended));
    }

    #[tokio::test]
    async fn the_first_ending_wins() {
        let q = OutQueue::new(16);
        assert!(q.end(Ending::Drain {
            last: Some(Bytes::from_static(b"1"))
        }));
        assert!(!q.end(Ending::Drain {
            last: Some(Bytes::from_static(b"2"))
        }));
        let mut out = Vec::new();
        run_writer(&q, &mut out, Duration::from_secs(1)).await;
        assert_eq!(out, b"1");
    }
}
