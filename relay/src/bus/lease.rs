//! The lease on a site's switch links, for two relays sharing them (`bus.shared`): a key named
//! by the site in the bus's key-value bucket `cti_leases`, whose value is the holder's node
//! name. Entries expire [`TTL`] after their last write.
//!
//! Timing (docs/behaviour.md, "Two relays of one site"): the holder renews every
//! [`RENEW_EVERY`]. Its lease is valid by its own monotonic clock for [`GIVE_UP`] from when the
//! renewal that last succeeded was *sent*; the entry on the bus lives [`TTL`] from when that
//! write reached it, which is later. The difference (2 s) is the margin: the holder has let
//! its links go before another relay can take the entry. A holder that finds its lease run out
//! when it looks (a late tick: the process was stopped) gives it up before doing anything else.
//!
//! Never two holders: the key is created only where it does not exist (or was deleted, and
//! then only at the deletion's revision), and updated only at the revision last written. A
//! planned stop deletes the key at that revision ([`Lease::release`]); the other relay watches
//! the key and takes it at once ([`Lease::freed`]).

use std::time::Duration;

use busseam::{BucketConfig, Bus, BusError, Kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub const TTL: Duration = Duration::from_secs(6);
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
pub const GIVE_UP: Duration = Duration::from_secs(4);
/// Longest wait for one write, so that a holder cut off from the bus still looks at its
/// lease in time.
const WRITE_LIMIT: Duration = Duration::from_millis(800);
const BUCKET: &str = "cti_leases";

/// The lease as this relay holds it.
#[derive(Clone, Copy, Debug)]
struct Held {
    /// The revision last written.
    revision: u64,
    /// When the write that made it was sent.
    sent: Instant,
}

pub struct Lease {
    store: Kv,
    key: String,
    node: Bytes,
    held: Option<Held>,
    /// The key's changes, to see a holder's release at once; `None` until it could be made.
    watch: Option<busseam::Watch>,
}

impl Lease {
    /// The lease of `site`, for relay `node`; the bucket is made when missing.
    pub async fn open(client: Bus, site: &str, node: &str) -> Result<Lease, BusError> {
        let store = client
            .kv(BUCKET, BucketConfig { max_age: Some(TTL) })
            .await?;
        let watch = tokio::time::timeout(WRITE_LIMIT, store.watch(site))
            .await
            .ok()
            .and_then(Result::ok);
        Ok(Lease {
            store,
            key: site.to_owned(),
            node: Bytes::copy_from_slice(node.as_bytes()),
            held: None,
            watch,
        })
    }

    pub fn held(&self) -> bool {
        self.held.is_some()
    }

    /// Until when this relay may dial and keep its links (`None`: it holds no lease).
    pub fn valid_until(&self) -> Option<Instant> {
        self.held.map(|h| h.sent + GIVE_UP)
    }

    /// One step, every [`RENEW_EVERY`] (and when the lease runs out or is freed): takes the
    /// lease when free, renews it when held, and says whether this relay holds it now.
    pub async fn step(&mut self) -> bool {
        // Given up now: not taken again in the same step, so the caller sees the lease go (and
        // lets the links go) before it may come back.
        if self.give_up_if_run_out() {
            return false;
        }
        let sent = Instant::now();
        match self.held {
            None => {
                if let Ok(Ok(revision)) =
                    tokio::time::timeout(WRITE_LIMIT, take(&self.store, &self.key, &self.node))
                        .await
                {
                    info!(site = %self.key, "lease taken");
                    self.held = Some(Held { revision, sent });
                }
            }
            Some(h) => {
                let write = self.store.update(&self.key, self.node.clone(), h.revision);
                // Never waits past the lease's end: the holder lets go on time.
                let limit = (sent + WRITE_LIMIT).min(h.sent + GIVE_UP);
                match tokio::time::timeout_at(limit, write).await {
                    Ok(Ok(revision)) => self.held = Some(Held { revision, sent }),
                    // Refused: not at the revision last written (the entry expired, or another
                    // relay has it). Letting go at once is always safe.
                    Ok(Err(e @ BusError::Refused(_))) => {
                        info!(site = %self.key, error = %e, "lease lost");
                        self.held = None;
                    }
                    other => debug!(outcome = ?other.map(|r| r.map(|_| ())), "lease not renewed"),
                }
            }
        }
        // A write that failed may have outlasted the lease.
        if self.give_up_if_run_out() {
            return false;
        }
        // The watch only serves a relay waiting for the lease; a holder never waits for it.
        if self.held.is_none() && self.watch.is_none() {
            let watch = tokio::time::timeout(WRITE_LIMIT, self.store.watch(&self.key));
            self.watch = watch.await.ok().and_then(Result::ok);
        }
        self.held()
    }

    /// Look before acting: a lease that ran out (the bus was unreachable, or this process was
    /// stopped) is given up, since the other relay may hold it by now.
    /// Says whether it gave the lease up.
    fn give_up_if_run_out(&mut self) -> bool {
        let now = Instant::now();
        let Some(h) = self.held.filter(|h| now >= h.sent + GIVE_UP) else {
            return false;
        };
        info!(
            site = %self.key,
            late_ms = (now - h.sent - GIVE_UP).as_millis() as u64,
            "lease given up: not renewed within 4 s of the last renewal sent"
        );
        self.held = None;
        true
    }

    /// Gives the lease up now (a planned stop or hand-over): the key is deleted at the revision
    /// last written, so the other relay, watching it, takes it at once. The caller has closed
    /// the links first.
    pub async fn release(&mut self) {
        let Some(h) = self.held.take() else {
            return;
        };
        let delete = self.store.delete_at(&self.key, h.revision);
        match tokio::time::timeout(WRITE_LIMIT, delete).await {
            Ok(Ok(())) => info!(site = %self.key, "lease released"),
            outcome => warn!(
                site = %self.key,
                outcome = ?outcome.map(|r| r.map_err(|e| e.to_string())),
                "lease not released: the other relay takes it when it expires"
            ),
        }
    }

    /// Returns when the key is deleted (a holder released it); never while no watch could be
    /// made (the next [`Lease::step`] tries again).
    pub async fn freed(&mut self) {
        loop {
            let Some(watch) = self.watch.as_mut() else {
                return std::future::pending().await;
            };
            match watch.next().await {
                Some(Ok(e)) if e.deleted => return,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => self.watch = None,
            }
        }
    }
}

/// Creates the key where it does not exist, or where the last holder deleted it (at the
/// deletion's revision, so that of two relays seeing the deletion only one wins).
async fn take(store: &Kv, key: &str, node: &Bytes) -> Result<u64, BusError> {
    let refused = match store.update(key, node.clone(), 0).await {
        Ok(revision) => return Ok(revision),
        Err(e) => e,
    };
    match store.entry(key).await? {
        Some(e) if e.deleted => store.update(key, node.clone(), e.revision).await,
        _ => Err(refused),
    }
}
