//! The lease on a site's switch links, for two relays sharing them (`bus.shared`): a key named
//! by the site in the bus's key-value bucket `cti_leases`, whose value is the holder's node
//! name. Entries expire [`TTL`] after their last write.
//!
//! The holder renews every [`RENEW_EVERY`]; a holder that has not renewed for [`GIVE_UP`] lets
//! its links go, which is before the entry can expire and another relay can take it (the
//! bus cannot tell a dead holder from one cut off from it, so the holder's own clock decides).
//! Never two holders: the key is only created where it does not exist, and only updated at
//! the revision last written.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, info};

pub const TTL: Duration = Duration::from_secs(6);
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
pub const GIVE_UP: Duration = Duration::from_secs(4);
/// Longest wait for one write, so that a holder cut off from the bus still gives up in time.
const WRITE_LIMIT: Duration = Duration::from_millis(800);
const BUCKET: &str = "cti_leases";

pub struct Lease {
    store: kv::Store,
    key: String,
    node: Bytes,
    /// While held: the revision last written, and when.
    held: Option<(u64, Instant)>,
}

impl Lease {
    /// The lease of `site`, for relay `node`; the bucket is made when missing.
    pub async fn open(
        client: async_nats::Client,
        site: &str,
        node: &str,
    ) -> Result<Lease, async_nats::Error> {
        let js = async_nats::jetstream::new(client);
        let store = match js.get_key_value(BUCKET).await {
            Ok(store) => store,
            Err(_) => {
                js.create_key_value(kv::Config {
                    bucket: BUCKET.into(),
                    history: 1,
                    max_age: TTL,
                    ..Default::default()
                })
                .await?
            }
        };
        Ok(Lease {
            store,
            key: site.to_owned(),
            node: Bytes::copy_from_slice(node.as_bytes()),
            held: None,
        })
    }

    pub fn held(&self) -> bool {
        self.held.is_some()
    }

    /// One step, every [`RENEW_EVERY`]: takes the lease when free, renews it when held, and
    /// says whether this relay holds it now.
    pub async fn step(&mut self) -> bool {
        match self.held {
            None => {
                let write = self.store.create(&self.key, self.node.clone());
                if let Ok(Ok(revision)) = tokio::time::timeout(WRITE_LIMIT, write).await {
                    info!(site = %self.key, "lease taken");
                    self.held = Some((revision, Instant::now()));
                }
            }
            Some((revision, since)) => {
                let write = self.store.update(&self.key, self.node.clone(), revision);
                match tokio::time::timeout(WRITE_LIMIT, write).await {
                    Ok(Ok(revision)) => self.held = Some((revision, Instant::now())),
                    // Refused: not at the revision last written (the entry expired, or another
                    // relay has it). Letting go at once is always safe.
                    Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::Other => {
                        info!(site = %self.key, error = %e, "lease lost");
                        self.held = None;
                    }
                    other => {
                        debug!(outcome = ?other.map(|r| r.map(|_| ())), "lease not renewed");
                        if since.elapsed() >= GIVE_UP {
                            info!(site = %self.key, "lease given up: not renewed for 4 s");
                            self.held = None;
                        }
                    }
                }
            }
        }
        self.held()
    }
}
