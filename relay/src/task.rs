//! How the relay starts its tasks: every one through [`spawn`] or [`spawn_tracked`],
//! so that all the tasks of one relay can be held at once, as a stopped process's are.
//!
//! A relay started inside [`starting`] with a [`Hold`] carries it to every task it spawns,
//! and each of those to theirs. While the hold is on, no task of that relay runs: its timers
//! fire and its sockets fill, but nothing is looked at until the hold is let go, and then every
//! task woken meanwhile runs, late, as after `SIGCONT`. The site explorer uses this to stop a
//! relay mid-flight on its virtual clock. A relay started without a hold (every real one)
//! pays one branch per poll.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// What holds one relay's tasks.
#[derive(Default)]
pub struct Hold {
    on: AtomicBool,
    /// Tasks woken while held, in the order they were woken (each once).
    woken: Mutex<Vec<Waker>>,
}

impl Hold {
    pub fn new() -> Arc<Hold> {
        Arc::new(Hold::default())
    }

    /// Holds every task of the relay from their next poll on.
    pub fn hold(&self) {
        self.on.store(true, Ordering::SeqCst);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// Lets the tasks run again: those woken while held are woken now, in an order drawn from
    /// `order` (as after `SIGCONT`, when every timer and socket is ready at once and which task
    /// looks first is anyone's guess). Returns how many were woken.
    pub fn release(&self, order: u64) -> usize {
        self.on.store(false, Ordering::SeqCst);
        let mut woken = std::mem::take(&mut *self.lock());
        woken.shuffle(&mut ChaCha8Rng::seed_from_u64(order));
        let n = woken.len();
        for w in woken {
            w.wake();
        }
        n
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        // A list of wakers is whole after any push, so a poisoned lock is still usable.
        self.woken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `waker` to wake on release, unless it is kept already.
    fn park(&self, waker: &Waker) {
        let mut woken = self.lock();
        if !woken.iter().any(|w| w.will_wake(waker)) {
            woken.push(waker.clone());
        }
    }
}

thread_local! {
    /// The hold of the task being polled on this thread (or of the relay being started).
    static CURRENT: RefCell<Option<Arc<Hold>>> = const { RefCell::new(None) };
}

fn current() -> Option<Arc<Hold>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with `hold` as the hold of whatever it spawns, then puts the previous one back.
fn with_current<R>(hold: Option<Arc<Hold>>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(hold));
    struct Restore(Option<Arc<Hold>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Starts a relay (a synchronous start that spawns its tasks) under `hold`.
pub fn starting<R>(hold: &Arc<Hold>, start: impl FnOnce() -> R) -> R {
    with_current(Some(hold.clone()), start)
}

pin_project_lite::pin_project! {
    /// A future that runs only while its relay's hold is off.
    pub struct Held<F> {
        hold: Option<Arc<Hold>>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Held<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(hold) = this.hold else {
            return this.inner.poll(cx);
        };
        if hold.is_on() {
            hold.park(cx.waker());
            return Poll::Pending;
        }
        let hold = Some(hold.clone());
        let inner = this.inner;
        with_current(hold, || inner.poll(cx))
    }
}

/// `fut`, held with the relay that spawns it.
pub fn held<F: Future>(fut: F) -> Held<F> {
    Held {
        hold: current(),
        inner: fut,
    }
}

/// Spawns a task of the relay (see the module's text).
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[allow(clippy::disallowed_methods)] // the one place the relay's tasks are spawned
    tokio::spawn(held(fut))
}

/// Spawns a task of the relay that `tasks` waits for at the relay's stop.
pub fn spawn_tracked<F>(tasks: &TaskTracker, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[allow(clippy::disallowed_methods)] // the hold goes with it
    tasks.spawn(held(fut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What the tasks have sent so far, sorted (tasks woken together run in any order).
    fn sent<T: Ord>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> Vec<T> {
        let mut seen = Vec::new();
        while let Ok(x) = rx.try_recv() {
            seen.push(x);
        }
        seen.sort();
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_relay_runs_nothing_and_its_tasks_and_theirs_run_late_on_release() {
        let hold = Hold::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let started = tokio::time::Instant::now();
        starting(&hold, || {
            let tx = tx.clone();
            spawn(async move {
                let inner = tx.clone();
                // A task spawned by a task of the relay is the relay's too.
                spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = inner.send(("child", started.elapsed().as_secs()));
                    }
                });
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = tx.send(("parent", started.elapsed().as_secs()));
                }
            })
        });
        // Not the relay's: runs on while it is held.
        let outside = spawn(async { tokio::time::sleep(Duration::from_secs(3)).await });
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        hold.hold();
        assert_eq!(sent(&mut rx), [("child", 1), ("parent", 1)]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            outside.is_finished(),
            "a task spawned outside the relay is not held"
        );
        assert!(
            rx.try_recv().is_err(),
            "nothing of the relay ran while held"
        );
        assert_eq!(hold.release(1), 2);
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Each woke once, late; then they tick on as before.
        assert_eq!(sent(&mut rx), [("child", 6), ("parent", 6)]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sent(&mut rx), [("child", 7), ("parent", 7)]);
    }

    /// The order eight tasks woken while held run in, released with `order`.
    async fn woken_order(order: u64) -> Vec<usize> {
        let hold = Hold::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        starting(&hold, || {
            for k in 0..8 {
                let tx = tx.clone();
                spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10 * (k as u64 + 1))).await;
                    let _ = tx.send(k);
                });
            }
        });
        tokio::task::yield_now().await;
        hold.hold();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(hold.release(order), 8);
        drop(tx);
        let mut seen = Vec::new();
        while let Some(k) = rx.recv().await {
            seen.push(k);
        }
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn the_order_of_waking_is_drawn_from_the_release_and_is_the_same_for_the_same_draw() {
        let one = woken_order(1).await;
        assert_eq!(one, woken_order(1).await);
        let mut sorted = one.clone();
        sorted.sort();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>());
        let mut orders = std::collections::BTreeSet::new();
        for order in 0..6 {
            orders.insert(woken_order(order).await);
        }
        assert!(
            orders.len() > 1,
            "every draw woke the tasks alike: {orders:?}"
        );
    }
}
