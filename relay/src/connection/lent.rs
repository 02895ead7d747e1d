//! A connection's write half lent by its writer to the producers of its queue.
//!
//! A session's writer task wakes for every frame queued while it was idle: at a busy site's
//! rate, each event costs one wake-up per session, and on a machine whose cores are shared
//! the hundredth session's wake-up waits behind the other ninety-nine for a processor. So a
//! session's socket is held here, not in its writer: a producer that finds the queue empty and
//! the writer holding nothing writes a small frame itself, at once, if the socket takes it
//! without waiting ([`Lent::try_write`]); the writer is woken only for what the socket did
//! not take. The queue decides when a producer may write (under its lock, so the bytes keep
//! the queue's order); the writer writes through [`Shared`], which borrows the same socket.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

/// The write half of a connection.
pub type Sink = Box<dyn AsyncWrite + Send + Unpin>;

/// What became of a frame a producer tried to write itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Written whole and flushed.
    Whole,
    /// Written whole, but the flush must wait (a TLS record not yet on the socket): the
    /// writer is to finish it.
    Unflushed,
    /// The first `n` bytes (at least one) were written; the rest is for the writer.
    Part(usize),
    /// Nothing was written (the socket would wait, failed, or is not lent): the frame is for
    /// the writer, which waits for the socket or meets its error itself.
    Not,
}

/// The socket of one connection, once its writer lends it.
#[derive(Default)]
pub(crate) struct Lent {
    sink: Mutex<Option<Sink>>,
}

impl Lent {
    /// Lends `sink` (the writer starts).
    pub(crate) fn lend(&self, sink: Sink) {
        *self.lock() = Some(sink);
    }

    /// Takes the socket back (the writer ends): dropping it closes the write half.
    pub(crate) fn take_back(&self) -> Option<Sink> {
        self.lock().take()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Sink>> {
        // Every update is one assignment, so a poisoned lock still holds a whole value.
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `frame` if the socket takes it without waiting. The caller holds the queue's
    /// lock and has checked that the writer holds nothing, so no other bytes can come between.
    pub(crate) fn try_write(&self, frame: &[u8]) -> Attempt {
        // Never wait here: the socket is only ever busy when the writer holds something.
        let Ok(mut guard) = self.sink.try_lock() else {
            return Attempt::Not;
        };
        let Some(sink) = guard.as_mut() else {
            return Attempt::Not;
        };
        let written = match poll_once(|cx| Pin::new(&mut *sink).poll_write(cx, frame)) {
            Poll::Ready(Ok(n)) if n > 0 => n,
            // Would wait, failed, or wrote nothing: the writer meets it itself.
            _ => return Attempt::Not,
        };
        if written < frame.len() {
            return Attempt::Part(written);
        }
        match poll_once(|cx| Pin::new(&mut *sink).poll_flush(cx)) {
            Poll::Ready(Ok(())) => Attempt::Whole,
            _ => Attempt::Unflushed,
        }
    }

    /// The writer's handle on the socket.
    pub(crate) fn shared(&self) -> Shared<'_> {
        Shared(self)
    }
}

/// Polls `f` once, outside the calling task's cooperative budget (a producer writing to a
/// hundred sessions must not use up the budget of the task it runs in) and with a waker that
/// does nothing: a producer never waits on the socket, the writer does.
fn poll_once<T>(f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    let mut once = std::pin::pin!(tokio::task::unconstrained(std::future::poll_fn(f)));
    once.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// The writer's borrow of a lent socket: each poll locks it for the poll's length only.
pub(crate) struct Shared<'a>(&'a Lent);

impl Shared<'_> {
    fn with<T>(
        &self,
        f: impl FnOnce(Pin<&mut Sink>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.0.lock().as_mut() {
            Some(sink) => f(Pin::new(sink)),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
}

impl AsyncWrite for Shared<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.0
            .lock()
            .as_ref()
            .is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_shutdown(cx))
    }
}
