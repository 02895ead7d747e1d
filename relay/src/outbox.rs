//! Where the relay's own switches are put on the bus from the paths that must not wait (a
//! link's reader, the notices): a bounded queue to the bus's publishing task. A leaf: the hub
//! holds it and [`crate::bus`] drains it, so neither needs the other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Messages waiting for the publisher before new ones are dropped (and counted).
const OUTBOX_MESSAGES: usize = 16_384;

/// The header that carries a run of events' numbers on the bus ([`SiteSeq`]).
pub const SEQ_HEADER: &str = "Cti-Seq";

/// The site's numbers of a run of events on the bus: the holding term they belong to (one
/// relay's holding of the switch's link), the term's first number, and the run's first number
/// (the run's events are numbered on from it). Written `term/start/first`, the term in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteSeq {
    pub term: u64,
    pub start: u64,
    pub first: u64,
}

impl SiteSeq {
    /// The header's value.
    pub fn header(&self) -> String {
        format!("{:016x}/{}/{}", self.term, self.start, self.first)
    }

    /// The numbers in a header's value; `None` unless it is exactly `term/start/first` with
    /// `0 < start <= first`.
    pub fn parse(value: &str) -> Option<SiteSeq> {
        let mut parts = value.split('/');
        let term = u64::from_str_radix(parts.next()?, 16).ok()?;
        let start: u64 = parts.next()?.parse().ok()?;
        let first: u64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || start == 0 || first < start {
            return None;
        }
        Some(SiteSeq { term, start, first })
    }
}

/// A message for the bus: its subject, the numbers of the events it carries, its payload.
pub type Outgoing = (String, Option<SiteSeq>, Bytes);

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
    pub client: busseam::Bus,
    tx: mpsc::Sender<Outgoing>,
    /// Messages dropped because the publisher was behind (the bus is slower than the switch).
    pub dropped: AtomicU64,
    pub published: AtomicU64,
    /// Messages the publishing task has handed to the client (published or failed).
    pub handed: AtomicU64,
    /// For a shared site: whether this relay holds the lease now.
    pub lease_held: AtomicBool,
    /// Woken when a switch reader of the holder has read events it has no numbers for
    /// ([`crate::bus::marks`]).
    pub numbers_low: tokio::sync::Notify,
    /// Woken when the holder has reserved more numbers (a switch reader may be waiting).
    pub numbers_reserved: tokio::sync::Notify,
}

impl Outbox {
    /// An outbox for `site` on `client`, and the queue its publisher drains.
    pub fn new(site: &str, client: busseam::Bus) -> (Arc<Outbox>, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(OUTBOX_MESSAGES);
        let outbox = Arc::new(Outbox {
            site: site.to_owned(),
            client,
            tx,
            dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            lease_held: AtomicBool::new(false),
            numbers_low: tokio::sync::Notify::new(),
            numbers_reserved: tokio::sync::Notify::new(),
        });
        (outbox, rx)
    }

    /// Queues `payload` on `kind` of switch `no`; never waits.
    pub fn publish(&self, no: u8, kind: &str, payload: Bytes) {
        self.queue((subject(&self.site, no, kind), None, payload));
    }

    /// Queues a run of events of switch `no` with the site's numbers; never waits.
    pub fn publish_events(&self, no: u8, seq: SiteSeq, payload: Bytes) {
        self.queue((subject(&self.site, no, "events"), Some(seq), payload));
    }

    /// Waits, at most `limit`, until every message queued so far is handed to the client and
    /// the client has written them to the server: a holder letting its lease go does so after
    /// its last events are on the bus, so the next holder's numbers run on from them.
    pub async fn flushed(&self, limit: std::time::Duration) {
        let queued = self.published.load(Ordering::Acquire);
        let written = async {
            while self.handed.load(Ordering::Acquire) < queued {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            self.client.flush().await;
        };
        let _ = tokio::time::timeout(limit, written).await;
    }

    fn queue(&self, message: Outgoing) {
        match self.tx.try_send(message) {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Release);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SiteSeq;

    #[test]
    fn the_numbers_header_reads_back_and_refuses_what_is_not_one() {
        let seq = SiteSeq {
            term: 0xdead_beef,
            start: 3,
            first: 40,
        };
        assert_eq!(seq.header(), "00000000deadbeef/3/40");
        assert_eq!(SiteSeq::parse(&seq.header()), Some(seq));
        for bad in [
            "", "x/1/2", "1/0/2", "1/3/2", "1/2", "1/2/3/4", "1/-2/3", "1/2/ 3",
        ] {
            assert_eq!(SiteSeq::parse(bad), None, "{bad:?}");
        }
    }
}
