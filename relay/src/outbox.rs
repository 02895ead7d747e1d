//! Where the relay's own switches are put on the bus from the paths that must not wait (a
//! link's reader, the notices): a bounded queue to the bus's publishing task. A leaf: the hub
//! holds it and [`crate::bus`] drains it, so neither needs the other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Messages waiting for the publisher before new ones are dropped (and counted).
const OUTBOX_MESSAGES: usize = 16_384;

/// The subject of `kind` (`state`, `events`, `records`, `request`, `notices`) of switch `no` at `site`.
pub fn subject(site: &str, no: u8, kind: &str) -> String {
    format!("cti.{site}.sw{no}.{kind}")
}

/// Where the relay's own switches are published from the paths that must not wait: a bounded
/// queue to the publishing task.
#[derive(Debug)]
pub struct Outbox {
    pub site: String,
    /// The client itself, for what is not published from the paths that must not wait.
    pub client: async_nats::Client,
    tx: mpsc::Sender<(String, Bytes)>,
    /// Messages dropped because the publisher was behind (the bus is slower than the switch).
    pub dropped: AtomicU64,
    pub published: AtomicU64,
    /// For a shared site: whether this relay holds the lease now.
    pub lease_held: AtomicBool,
}

impl Outbox {
    /// An outbox for `site` on `client`, and the queue its publisher drains.
    pub fn new(
        site: &str,
        client: async_nats::Client,
    ) -> (Arc<Outbox>, mpsc::Receiver<(String, Bytes)>) {
        let (tx, rx) = mpsc::channel(OUTBOX_MESSAGES);
        let outbox = Arc::new(Outbox {
            site: site.to_owned(),
            client,
            tx,
            dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
            lease_held: AtomicBool::new(false),
        });
        (outbox, rx)
    }

    /// Queues `payload` on `kind` of switch `no`; never waits.
    pub fn publish(&self, no: u8, kind: &str, payload: Bytes) {
        match self.tx.try_send((subject(&self.site, no, kind), payload)) {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
