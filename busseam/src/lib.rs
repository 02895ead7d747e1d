//! The one seam between the relay and its bus: the part of NATS the relay uses (publish with
//! an optional header, subscribe, request/reply, and key-value buckets with revisions, a
//! maximum age and watches). Production uses NATS through `async-nats` ([`Bus::connect`]);
//! [`mem::MemBus`] is a bus in memory on tokio's clock, with faults (a client cut off, paused,
//! the whole bus down, messages delayed), so that the explorer runs the relays of one site
//! deterministically on a paused clock.
//!
//! - [`Bus`], [`Kv`]: a client and a bucket, either kind;
//! - [`mem`]: the in-memory bus;
//! - [`subject`]: NATS subject patterns (`*`, `>`).

pub mod mem;
mod nats;
pub mod subject;

use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

/// What a bus operation can end in besides success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The server did not answer in time (unreachable, or slow).
    #[error("the bus did not answer in time")]
    TimedOut,
    /// A key-value write at a revision that is not the key's last one (another writer was
    /// first, or the entry expired).
    #[error("refused: {0}")]
    Refused(String),
    /// No one subscribes to a request's subject.
    #[error("no one answers on that subject")]
    NoResponders,
    #[error("{0}")]
    Failed(String),
}

/// A message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    /// Where an answer goes, for a request.
    pub reply: Option<String>,
    /// Its headers, in the order sent.
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

impl Message {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Messages of a subscription, until it ends.
pub type Subscription = Pin<Box<dyn Stream<Item = Message> + Send>>;

/// A key-value entry, as read or watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// Empty for a deletion.
    pub value: Bytes,
    /// The bucket's sequence number of this write.
    pub revision: u64,
    /// When it was written, by the server's clock.
    pub created: SystemTime,
    /// A deletion (or purge) rather than a value.
    pub deleted: bool,
}

/// The changes of a bucket's keys, until it ends.
pub type Watch = Pin<Box<dyn Stream<Item = Result<Entry, BusError>> + Send>>;

/// How a bucket is made when it does not exist yet: one value kept per key, each living
/// `max_age` after its write (`None`: until replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketConfig {
    pub max_age: Option<Duration>,
}

/// A connection to the bus.
#[derive(Clone, Debug)]
pub enum Bus {
    Nats(async_nats::Client),
    Mem(mem::MemClient),
}

impl Bus {
    /// Connects to the NATS server at `url` as `name`, retrying in the background while it is
    /// away; the client reconnects by itself.
    pub async fn connect(url: &str, name: &str) -> Result<Bus, BusError> {
        nats::connect(url, name).await.map(Bus::Nats)
    }

    /// Publishes `payload` on `subject`, with header `header` when given.
    pub async fn publish(
        &self,
        subject: String,
        header: Option<(&'static str, String)>,
        payload: Bytes,
    ) -> Result<(), BusError> {
        match self {
            Bus::Nats(c) => nats::publish(c, subject, header, payload).await,
            Bus::Mem(c) => c.publish(subject, header, payload).await,
        }
    }

    /// The messages published on `subject` (a pattern) from now on.
    pub async fn subscribe(&self, subject: String) -> Result<Subscription, BusError> {
        match self {
            Bus::Nats(c) => nats::subscribe(c, subject).await,
            Bus::Mem(c) => c.subscribe(subject).await,
        }
    }

    /// Publishes a request and waits, at most `timeout`, for its one answer's payload.
    pub async fn request(
        &self,
        subject: String,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        match self {
            Bus::Nats(c) => nats::request(c, subject, payload, timeout).await,
            Bus::Mem(c) => c.request(subject, payload, timeout).await,
        }
    }

    /// Waits until what was published so far has been written to the server.
    pub async fn flush(&self) {
        match self {
            Bus::Nats(c) => {
                let _ = c.flush().await;
            }
            Bus::Mem(_) => {}
        }
    }

    /// Whether the client is connected to the server now.
    pub fn connected(&self) -> bool {
        match self {
            Bus::Nats(c) => c.connection_state() == async_nats::connection::State::Connected,
            Bus::Mem(c) => c.reachable(),
        }
    }

    /// Bucket `bucket`, made with `config` when it does not exist.
    pub async fn kv(&self, bucket: &str, config: BucketConfig) -> Result<Kv, BusError> {
        match self {
            Bus::Nats(c) => nats::kv(c, bucket, config)
                .await
                .map(|s| Kv::Nats(Box::new(s))),
            Bus::Mem(c) => c.kv(bucket, config).await.map(Kv::Mem),
        }
    }
}

/// A key-value bucket.
#[derive(Clone, Debug)]
pub enum Kv {
    /// Boxed: a NATS store is a kilobyte, held by every task that uses a bucket.
    Nats(Box<async_nats::jetstream::kv::Store>),
    Mem(mem::MemKv),
}

impl Kv {
    /// The value of `key`; `None` when it has none (never written, deleted or expired).
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, BusError> {
        Ok(self
            .entry(key)
            .await?
            .filter(|e| !e.deleted)
            .map(|e| e.value))
    }

    /// The last write of `key`, a deletion included; `None` when there is none.
    pub async fn entry(&self, key: &str) -> Result<Option<Entry>, BusError> {
        match self {
            Kv::Nats(s) => nats::entry(s, key).await,
            Kv::Mem(s) => s.entry(key).await,
        }
    }

    /// Writes `value` to `key` whatever was there; the write's revision.
    pub async fn put(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        match self {
            Kv::Nats(s) => nats::put(s, key, value).await,
            Kv::Mem(s) => s.put(key, value).await,
        }
    }

    /// Writes `value` to `key` only if its last write is `revision` (0: it has none);
    /// [`BusError::Refused`] otherwise.
    pub async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, BusError> {
        match self {
            Kv::Nats(s) => nats::update(s, key, value, revision).await,
            Kv::Mem(s) => s.update(key, value, revision).await,
        }
    }

    /// Deletes `key` only if its last write is `revision`.
    pub async fn delete_at(&self, key: &str, revision: u64) -> Result<(), BusError> {
        match self {
            Kv::Nats(s) => nats::delete_at(s, key, revision).await,
            Kv::Mem(s) => s.delete_at(key, revision).await,
        }
    }

    /// The writes of keys matching `pattern` from now on.
    pub async fn watch(&self, pattern: &str) -> Result<Watch, BusError> {
        match self {
            Kv::Nats(s) => nats::watch(s, pattern, false).await,
            Kv::Mem(s) => s.watch(pattern, false).await,
        }
    }

    /// The last write of each key matching `pattern`, then its writes from now on.
    pub async fn watch_with_history(&self, pattern: &str) -> Result<Watch, BusError> {
        match self {
            Kv::Nats(s) => nats::watch(s, pattern, true).await,
            Kv::Mem(s) => s.watch(pattern, true).await,
        }
    }
}
