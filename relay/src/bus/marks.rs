//! The site's numbering marks, for two relays sharing a site: key-value bucket `cti_numbers`,
//! key `S.N` (site `S`, switch `N`), value the last number of the site given to that switch's
//! events, in decimal. The holder writes each mark at every renewal of its lease when it has
//! moved, and once more before it releases the lease; a relay that takes the lease reads them
//! before it dials and begins its terms after them
//! ([`crate::hub::event_journal::EventJournal::raise_to`]). So a relay that restarted, or was
//! cut off while the other numbered, never gives the site's numbers to other events: what it
//! missed is a gap its returning sessions are told of with `G`.
//!
//! A mark is as fresh as the last renewal: events the holder numbered after it and never got
//! onto the bus (it was cut off) may still be numbered again by the next holder.

use std::collections::BTreeMap;
use std::time::Duration;

use busseam::{BucketConfig, Bus, Kv};
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::hub::Hub;

const BUCKET: &str = "cti_numbers";
/// Longest wait for the marks, read or written, so the lease's steps keep their pace.
const LIMIT: Duration = Duration::from_millis(800);

pub struct Marks {
    client: Bus,
    site: String,
    /// The bucket, once it could be opened.
    store: Option<Kv>,
    /// Each switch's mark as this relay last wrote it, or its journal's last number once it
    /// read the bus's mark: written again only when the journal moves past it.
    known: BTreeMap<u8, u64>,
}

impl Marks {
    pub fn new(client: Bus, site: &str) -> Marks {
        Marks {
            client,
            site: site.to_owned(),
            store: None,
            known: BTreeMap::new(),
        }
    }

    fn key(&self, no: u8) -> String {
        format!("{}.{no}", self.site)
    }

    async fn store(&mut self) -> Option<&Kv> {
        if self.store.is_none() {
            let open = self.client.kv(BUCKET, BucketConfig { max_age: None });
            self.store = tokio::time::timeout(LIMIT, open).await.ok()?.ok();
        }
        self.store.as_ref()
    }

    /// The holder's marks: the site's last number of each of `switches`, written where it
    /// moved past what was last read or written (never lower).
    pub async fn record(&mut self, hub: &Hub, switches: &[u8]) {
        let due: Vec<(u8, String, u64)> = switches
            .iter()
            .filter_map(|&no| {
                let last = site_last(hub, no)?;
                let moved = last > self.known.get(&no).copied().unwrap_or(0);
                moved.then(|| (no, self.key(no), last))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let Some(store) = self.store().await.cloned() else {
            return;
        };
        let writes = async {
            for (no, key, last) in due {
                if store
                    .put(&key, Bytes::from(last.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
                self.known.insert(no, last);
            }
        };
        if tokio::time::timeout(LIMIT, writes).await.is_err() {
            debug!(site = %self.site, "bus: the numbering marks were not all written in time");
        }
    }

    /// Before this relay dials as the new holder: each of `switches`' journals raised to the
    /// site's mark, so its numbers run on from the last holder's. A mark that cannot be read
    /// in time is done without (the numbers run on from what this relay had seen).
    pub async fn raise(&mut self, hub: &Hub, switches: &[u8]) {
        let keys: Vec<(u8, String)> = switches.iter().map(|&no| (no, self.key(no))).collect();
        let Some(store) = self.store().await.cloned() else {
            return;
        };
        let mut read = BTreeMap::new();
        let reads = async {
            for (no, key) in keys {
                match store.entry(&key).await {
                    Ok(Some(e)) if !e.deleted => {
                        match std::str::from_utf8(&e.value)
                            .ok()
                            .and_then(|t| t.parse::<u64>().ok())
                        {
                            Some(mark) => {
                                read.insert(no, mark);
                            }
                            None => warn!(
                                site = %self.site,
                                key,
                                "bus: a numbering mark that is not a number; ignored"
                            ),
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        };
        let complete = tokio::time::timeout(LIMIT, reads).await.is_ok();
        if !complete {
            debug!(site = %self.site, "bus: the numbering marks were not all read in time");
        }
        for (no, mark) in read {
            let Some(slot) = hub.slot_of(no) else {
                continue;
            };
            let skipped = slot.journal().raise_to(mark);
            // What the bus holds now is at most what this journal has (a mark it refused as
            // absurd is written over with the journal's at the next renewal).
            self.known.insert(no, site_last(hub, no).unwrap_or(0));
            if skipped > 0 {
                info!(
                    site = %self.site,
                    switch = no,
                    mark,
                    skipped,
                    "numbers run on from the site's mark"
                );
            }
        }
    }
}

/// The site's last number of switch `no` here (`None` before any).
fn site_last(hub: &Hub, no: u8) -> Option<u64> {
    let journal = hub.slot_of(no)?.journal();
    let last = journal.last_seq().checked_sub(journal.offset())?;
    (last > 0).then_some(last)
}
