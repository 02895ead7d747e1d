//! A bus in memory, on tokio's clock (paused in the simulation), with the faults a real bus
//! has: a client cut off (what it publishes, and what is published to it meanwhile, is lost;
//! its bucket operations wait, then time out), a client paused (what it publishes and what is
//! published to it waits until it resumes, as in the socket buffers of a stopped process), the
//! whole bus down, and messages delayed.
//!
//! Semantics kept from NATS: core messages are delivered at most once, in the order published,
//! to every subscription whose pattern matches; a request with no subscriber fails at once; a
//! bucket keeps one write per key (a deletion is a write), numbered by one sequence per bucket;
//! an entry older than the bucket's maximum age is gone (no deletion is written for it); a
//! watch sees every write from when it was made, also those made while its client was away.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::subject::matches;
use crate::{BucketConfig, BusError, Entry, Message, Subscription, Watch};

/// Longest wait of a bucket operation for an unreachable server, as a NATS client's default
/// request timeout.
pub const OP_LIMIT: Duration = Duration::from_secs(5);

/// Where a client stands with the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    Connected,
    /// Cut off: its messages and those for it are lost; its bucket operations time out.
    Cut,
    /// Paused: its messages and those for it wait until it is connected again.
    Paused,
}

/// What went over the bus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    pub published: u64,
    pub delivered: u64,
    /// Messages not delivered to a subscription because either end was cut off or the bus
    /// was down.
    pub lost: u64,
    pub writes: u64,
}

/// The bus: clone it to hand it around; [`MemBus::client`] connects a client.
#[derive(Clone)]
pub struct MemBus {
    state: Arc<Mutex<State>>,
    changed: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for MemBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemBus").finish_non_exhaustive()
    }
}

struct State {
    epoch: SystemTime,
    start: Instant,
    down: bool,
    delay: Duration,
    clients: Vec<(String, Reach)>,
    next_inbox: u64,
    subs: Vec<Sub>,
    buckets: BTreeMap<String, Bucket>,
    stats: MemStats,
}

struct Sub {
    client: usize,
    pattern: String,
    tx: mpsc::UnboundedSender<(Instant, Message)>,
}

struct Bucket {
    max_age: Option<Duration>,
    sequence: u64,
    keys: BTreeMap<String, (Entry, Instant)>,
    watchers: Vec<(String, mpsc::UnboundedSender<Entry>)>,
}

impl Bucket {
    /// The last write of `key` unless it expired (then it is gone).
    fn live(&mut self, key: &str, now: Instant) -> Option<Entry> {
        let (entry, written) = self.keys.get(key)?;
        if self.max_age.is_some_and(|age| now >= *written + age) {
            self.keys.remove(key);
            return None;
        }
        Some(entry.clone())
    }
}

impl State {
    fn reach(&self, client: usize) -> Reach {
        match self.down {
            true => Reach::Cut,
            false => self.clients[client].1,
        }
    }

    fn now_as_wall(&self, now: Instant) -> SystemTime {
        self.epoch + now.duration_since(self.start)
    }

    /// Delivers `message` to every matching subscription whose client is not cut off.
    fn deliver(&mut self, message: Message) {
        self.stats.published += 1;
        let at = Instant::now() + self.delay;
        let mut lost = 0;
        let mut delivered = 0;
        let down = self.down;
        let clients = &self.clients;
        self.subs.retain(|s| {
            if !matches(&s.pattern, &message.subject) {
                return !s.tx.is_closed();
            }
            if down || clients[s.client].1 == Reach::Cut {
                lost += 1;
                return !s.tx.is_closed();
            }
            delivered += 1;
            s.tx.send((at, message.clone())).is_ok()
        });
        self.stats.lost += lost;
        self.stats.delivered += delivered;
    }
}

impl MemBus {
    /// An empty bus whose clock reads `epoch` now.
    pub fn new(epoch: SystemTime) -> MemBus {
        MemBus {
            state: Arc::new(Mutex::new(State {
                epoch,
                start: Instant::now(),
                down: false,
                delay: Duration::ZERO,
                clients: Vec::new(),
                next_inbox: 0,
                subs: Vec::new(),
                buckets: BTreeMap::new(),
                stats: MemStats::default(),
            })),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// A new client, connected, named `name` (faults name it).
    pub fn client(&self, name: &str) -> crate::Bus {
        let mut st = self.lock();
        st.clients.push((name.to_owned(), Reach::Connected));
        crate::Bus::Mem(MemClient {
            bus: self.clone(),
            id: st.clients.len() - 1,
        })
    }

    /// Sets where every client named `name` stands.
    pub fn set_reach(&self, name: &str, reach: Reach) {
        for c in self.lock().clients.iter_mut().filter(|c| c.0 == name) {
            c.1 = reach;
        }
        self.touch();
    }

    /// The whole bus down (every client cut off) or up again.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
        self.touch();
    }

    /// Every message and bucket write from now on takes `delay` to arrive.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
        self.touch();
    }

    pub fn stats(&self) -> MemStats {
        self.lock().stats
    }

    /// The live value of `key` in `bucket`, as an observer outside the bus sees it.
    pub fn peek(&self, bucket: &str, key: &str) -> Option<Entry> {
        let now = Instant::now();
        self.lock().buckets.get_mut(bucket)?.live(key, now)
    }
}

/// A client of a [`MemBus`].
#[derive(Clone)]
pub struct MemClient {
    bus: MemBus,
    id: usize,
}

impl std::fmt::Debug for MemClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemClient").field("id", &self.id).finish()
    }
}

impl MemClient {
    fn reach(&self) -> Reach {
        self.bus.lock().reach(self.id)
    }

    pub(crate) fn reachable(&self) -> bool {
        self.reach() == Reach::Connected
    }

    /// Waits until this client is connected, at most until `deadline`; says whether it is.
    async fn connected_by(&self, deadline: Option<Instant>) -> bool {
        let mut changed = self.bus.changed.subscribe();
        loop {
            if self.reachable() {
                return true;
            }
            match deadline {
                Some(d) => tokio::select! {
                    _ = changed.changed() => {}
                    _ = tokio::time::sleep_until(d) => return self.reachable(),
                },
                None => {
                    let _ = changed.changed().await;
                }
            }
        }
    }

    /// Waits while this client is paused.
    async fn not_paused(&self) {
        let mut changed = self.bus.changed.subscribe();
        while self.reach() == Reach::Paused {
            let _ = changed.changed().await;
        }
    }

    /// A bucket operation's wait for the server: [`BusError::TimedOut`] after [`OP_LIMIT`]
    /// unreachable; then the bus's delay.
    async fn server(&self) -> Result<(), BusError> {
        if !self.connected_by(Some(Instant::now() + OP_LIMIT)).await {
            return Err(BusError::TimedOut);
        }
        let delay = self.bus.lock().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    pub(crate) async fn publish(
        &self,
        subject: String,
        header: Option<(&'static str, String)>,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.not_paused().await;
        let mut st = self.bus.lock();
        if st.reach(self.id) == Reach::Cut {
            st.stats.published += 1;
            st.stats.lost += 1;
            return Ok(());
        }
        st.deliver(Message {
            subject,
            reply: None,
            headers: header.map(|(n, v)| (n.to_owned(), v)).into_iter().collect(),
            payload,
        });
        Ok(())
    }

    pub(crate) async fn subscribe(&self, subject: String) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.bus.lock().subs.push(Sub {
            client: self.id,
            pattern: subject,
            tx,
        });
        let me = self.clone();
        Ok(Box::pin(futures_util::stream::unfold(
            (rx, me),
            |(mut rx, me)| async move {
                let (at, message) = rx.recv().await?;
                tokio::time::sleep_until(at).await;
                me.not_paused().await;
                Some((message, (rx, me)))
            },
        )))
    }

    pub(crate) async fn request(
        &self,
        subject: String,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        let deadline = Instant::now() + timeout;
        if !self.connected_by(Some(deadline)).await {
            return Err(BusError::TimedOut);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut st = self.bus.lock();
            let responders = st
                .subs
                .iter()
                .any(|s| matches(&s.pattern, &subject) && !s.tx.is_closed());
            if !responders {
                return Err(BusError::NoResponders);
            }
            st.next_inbox += 1;
            let inbox = format!("_INBOX.{}.{}", self.id, st.next_inbox);
            st.subs.push(Sub {
                client: self.id,
                pattern: inbox.clone(),
                tx,
            });
            st.deliver(Message {
                subject,
                reply: Some(inbox),
                headers: Vec::new(),
                payload,
            });
        }
        let answer = async {
            let (at, message) = rx.recv().await?;
            tokio::time::sleep_until(at).await;
            Some(message.payload)
        };
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Some(payload)) => Ok(payload),
            _ => Err(BusError::TimedOut),
        }
    }

    pub(crate) async fn kv(&self, bucket: &str, config: BucketConfig) -> Result<MemKv, BusError> {
        self.server().await?;
        self.bus
            .lock()
            .buckets
            .entry(bucket.to_owned())
            .or_insert_with(|| Bucket {
                max_age: config.max_age,
                sequence: 0,
                keys: BTreeMap::new(),
                watchers: Vec::new(),
            });
        Ok(MemKv {
            client: self.clone(),
            bucket: bucket.to_owned(),
        })
    }
}

/// A bucket of a [`MemBus`], as one client reaches it.
#[derive(Clone, Debug)]
pub struct MemKv {
    client: MemClient,
    bucket: String,
}

impl MemKv {
    fn with<T>(&self, f: impl FnOnce(&mut State, &mut Bucket) -> T) -> T {
        let mut st = self.client.bus.lock();
        let mut bucket = st
            .buckets
            .remove(&self.bucket)
            .expect("a bucket is never removed");
        let out = f(&mut st, &mut bucket);
        st.buckets.insert(self.bucket.clone(), bucket);
        out
    }

    pub(crate) async fn entry(&self, key: &str) -> Result<Option<Entry>, BusError> {
        self.client.server().await?;
        let now = Instant::now();
        Ok(self.with(|_, b| b.live(key, now)))
    }

    /// Writes `key` when `expected` (the revision its last write must have, 0 for none)
    /// holds, or always when it is `None`.
    async fn write(
        &self,
        key: &str,
        value: Bytes,
        deleted: bool,
        expected: Option<u64>,
    ) -> Result<u64, BusError> {
        self.client.server().await?;
        let now = Instant::now();
        self.with(|st, b| {
            if let Some(expected) = expected {
                let last = b.live(key, now).map_or(0, |e| e.revision);
                if last != expected {
                    return Err(BusError::Refused(format!(
                        "wrong last sequence: {last} (expected {expected})"
                    )));
                }
            }
            b.sequence += 1;
            let entry = Entry {
                key: key.to_owned(),
                value,
                revision: b.sequence,
                created: st.now_as_wall(now),
                deleted,
            };
            b.keys.insert(key.to_owned(), (entry.clone(), now));
            b.watchers
                .retain(|(pattern, tx)| !matches(pattern, key) || tx.send(entry.clone()).is_ok());
            st.stats.writes += 1;
            Ok(entry.revision)
        })
    }

    pub(crate) async fn put(&self, key: &str, value: Bytes) -> Result<u64, BusError> {
        self.write(key, value, false, None).await
    }

    pub(crate) async fn update(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
    ) -> Result<u64, BusError> {
        self.write(key, value, false, Some(revision)).await
    }

    pub(crate) async fn delete_at(&self, key: &str, revision: u64) -> Result<(), BusError> {
        self.write(key, Bytes::new(), true, Some(revision))
            .await
            .map(|_| ())
    }

    pub(crate) async fn watch(&self, pattern: &str, history: bool) -> Result<Watch, BusError> {
        self.client.server().await?;
        let now = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        self.with(|_, b| {
            if history {
                let keys: Vec<String> = b
                    .keys
                    .keys()
                    .filter(|k| matches(pattern, k))
                    .cloned()
                    .collect();
                for key in keys {
                    if let Some(entry) = b.live(&key, now) {
                        let _ = tx.send(entry);
                    }
                }
            }
            b.watchers.push((pattern.to_owned(), tx));
        });
        let me = self.client.clone();
        Ok(Box::pin(futures_util::stream::unfold(
            (rx, me),
            |(mut rx, me)| async move {
                let entry = rx.recv().await?;
                me.connected_by(None).await;
                Some((Ok(entry), (rx, me)))
            },
        )))
    }
}

#[cfg(test)]
mod tests;
