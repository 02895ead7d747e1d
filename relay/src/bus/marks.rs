//! The site's numbering reservations, for two relays sharing a site: key-value bucket
//! `cti_numbers`, key `S.N` (site `S`, switch `N`), value in decimal the site's highest number
//! the link holder may have given switch `N`'s events.
//!
//! The holder gives its own link's events only numbers it reserved there first: before it dials
//! it reads the value, raises its journal past it
//! ([`crate::hub::event_journal::EventJournal::raise_to`]) and writes a block of numbers ahead
//! of its own; while it holds the lease it writes the next block whenever half of the last one
//! is used (the switch reader wakes it) and at each renewal. So whatever happens to it (killed
//! between two renewals, cut off from the bus while it still has its link), the next holder
//! starts above every number it could have given: one number is one event, site-wide. Numbers
//! reserved and never used are a gap the sessions that come back from before it are told of
//! with `G`; a planned stop (or hand-over) with its links closed writes its last number instead,
//! so the next holder runs on exactly.
//!
//! Every write is conditional on the revision this relay last read or wrote, and a value is
//! never lowered except by the holder that wrote it, at a planned stop: a relay that lost the
//! lease without knowing it cannot undo the next holder's reservation.

use std::collections::BTreeMap;
use std::time::Duration;

use busseam::{BucketConfig, Bus, BusError, Kv};
use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::hub::Hub;

const BUCKET: &str = "cti_numbers";
/// Longest wait for the reservations, read or written, so the lease's steps keep their pace.
const LIMIT: Duration = Duration::from_millis(800);
/// The fewest numbers reserved at once: at a quiet site, one write every few seconds, and
/// after a holder fails, at most this many numbers told lost that were never given.
pub const MIN_BLOCK: u64 = 32;
/// The most: four seconds of a million events a second.
const MAX_BLOCK: u64 = 1 << 22;
/// A block lasts this long at the rate the numbers were last used.
const BLOCK_LASTS: Duration = Duration::from_secs(4);
/// The highest value read as a reservation (beyond it, a damaged or forged entry: ignored).
const MAX_CEILING: u64 = 1 << 62;

/// One switch's reservation as this relay last read or wrote it.
#[derive(Clone, Copy, Debug)]
struct Reserved {
    /// The entry's revision (0: there is none).
    revision: u64,
    ceiling: u64,
    /// The site's last number and the time when it was written, for the rate.
    at_last: u64,
    at: Instant,
}

pub struct Marks {
    client: Bus,
    site: String,
    /// The bucket, once it could be opened.
    store: Option<Kv>,
    reserved: BTreeMap<u8, Reserved>,
}

/// Why a reservation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NotReserved {
    #[error("the bus did not answer within {LIMIT:?}")]
    Late,
    #[error("the bus refused: {0}")]
    Bus(#[from] BusError),
    #[error("another relay wrote switch {0}'s reservation since this one read it")]
    Overtaken(u8),
}

impl Marks {
    pub fn new(client: Bus, site: &str) -> Marks {
        Marks {
            client,
            site: site.to_owned(),
            store: None,
            reserved: BTreeMap::new(),
        }
    }

    fn key(&self, no: u8) -> String {
        format!("{}.{no}", self.site)
    }

    async fn store(&mut self) -> Result<Kv, NotReserved> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let open = self.client.kv(BUCKET, BucketConfig { max_age: None });
        let store = tokio::time::timeout(LIMIT, open)
            .await
            .map_err(|_| NotReserved::Late)??;
        self.store = Some(store.clone());
        Ok(store)
    }

    /// Before this relay dials as the new holder: each of `switches`' journals raised past the
    /// site's reservation, and a first block reserved after it. Until this succeeds the
    /// relay must not dial (its numbers could be ones the last holder gave).
    pub async fn take_over(&mut self, hub: &Hub, switches: &[u8]) -> Result<(), NotReserved> {
        let store = self.store().await?;
        self.reserved.clear();
        for &no in switches {
            let key = self.key(no);
            let entry = tokio::time::timeout(LIMIT, store.entry(&key))
                .await
                .map_err(|_| NotReserved::Late)??;
            let (revision, ceiling) = match entry {
                Some(e) if e.deleted => (e.revision, 0),
                Some(e) => (e.revision, self.read_ceiling(&key, &e.value)),
                None => (0, 0),
            };
            if let Some(slot) = hub.slot_of(no) {
                let (from, skipped) = {
                    let mut journal = slot.journal();
                    let from = journal.last_seq() + 1;
                    (from, journal.raise_to(ceiling))
                };
                if skipped > 0 {
                    // The sessions here never get those numbers: told before the next event.
                    crate::session::fanout::tell_gap(slot, from, skipped);
                    info!(
                        site = %self.site,
                        switch = no,
                        ceiling,
                        skipped,
                        "numbers run on from the site's reservation"
                    );
                }
            }
            self.reserved.insert(
                no,
                Reserved {
                    revision,
                    ceiling,
                    at_last: site_last(hub, no),
                    at: Instant::now(),
                },
            );
        }
        self.keep_ahead(hub, switches, true).await
    }

    fn read_ceiling(&self, key: &str, value: &[u8]) -> u64 {
        match std::str::from_utf8(value)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
        {
            Some(c) if c <= MAX_CEILING => c,
            Some(_) | None => {
                warn!(site = %self.site, key, "bus: a numbering reservation that is not a number of the site; written over");
                0
            }
        }
    }

    /// While this relay holds the lease: a new block for every switch whose numbers reached
    /// half of the last one (every switch when `all`).
    pub async fn keep_ahead(
        &mut self,
        hub: &Hub,
        switches: &[u8],
        all: bool,
    ) -> Result<(), NotReserved> {
        let due: Vec<(u8, Reserved, u64, u64)> = switches
            .iter()
            .filter_map(|&no| {
                let slot = hub.slot_of(no)?;
                let (wants, needed) = {
                    let journal = slot.journal();
                    (journal.wants_reservation(), journal.needed())
                };
                let r = *self.reserved.get(&no)?;
                (all || wants).then_some((no, r, site_last(hub, no), needed))
            })
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let store = self.store().await?;
        for (no, was, last, needed) in due {
            // At least what the switch reader is waiting to number, and a block more.
            let block = block_for(last.saturating_sub(was.at_last), was.at.elapsed())
                .max(needed.saturating_add(MIN_BLOCK).min(MAX_BLOCK));
            let ceiling = last + block;
            if ceiling <= was.ceiling {
                // Still more than a block ahead (the rate fell): asked again nearer the end.
                if let Some(slot) = hub.slot_of(no) {
                    let refill_at = (was.ceiling - block / 2).max(last + 1);
                    slot.journal().reserve(was.ceiling, refill_at);
                }
                continue;
            }
            let key = self.key(no);
            let write = store.update(&key, Bytes::from(ceiling.to_string()), was.revision);
            let revision = match tokio::time::timeout(LIMIT, write).await {
                Err(_) => return Err(NotReserved::Late),
                Ok(Err(BusError::Refused(_))) => {
                    // Written by another relay since: it holds the lease by now, or held it.
                    self.reserved.remove(&no);
                    return Err(NotReserved::Overtaken(no));
                }
                Ok(r) => r?,
            };
            self.reserved.insert(
                no,
                Reserved {
                    revision,
                    ceiling,
                    at_last: last,
                    at: Instant::now(),
                },
            );
            if let Some(slot) = hub.slot_of(no) {
                slot.journal().reserve(ceiling, ceiling - block / 2);
            }
            debug!(site = %self.site, switch = no, ceiling, block, "numbers reserved");
        }
        Ok(())
    }

    /// A planned stop or hand-over, once this relay's links of `switches` have closed: each
    /// reservation lowered to the last number given, so the next holder runs on from it with
    /// no gap. Where the write fails the reservation stands (the gap is only told, not lost).
    pub async fn settle(&mut self, hub: &Hub, switches: &[u8]) {
        let Ok(store) = self.store().await else {
            return;
        };
        for &no in switches {
            let Some(r) = self.reserved.remove(&no) else {
                continue;
            };
            let last = site_last(hub, no);
            if last >= r.ceiling {
                continue;
            }
            let key = self.key(no);
            let write = store.update(&key, Bytes::from(last.to_string()), r.revision);
            match tokio::time::timeout(LIMIT, write).await {
                Ok(Ok(_)) => debug!(site = %self.site, switch = no, last, "reservation settled"),
                outcome => debug!(
                    site = %self.site,
                    switch = no,
                    outcome = ?outcome.map(|r| r.map(|_| ())),
                    "reservation not settled: the next holder starts after it"
                ),
            }
        }
    }
}

/// The numbers to reserve after `used` were given in `elapsed`: [`BLOCK_LASTS`] at that rate,
/// within [`MIN_BLOCK`]..=[`MAX_BLOCK`].
fn block_for(used: u64, elapsed: Duration) -> u64 {
    let millis = elapsed.as_millis().max(100) as u64;
    let per_block = used.saturating_mul(BLOCK_LASTS.as_millis() as u64) / millis;
    per_block.clamp(MIN_BLOCK, MAX_BLOCK)
}

/// The site's last number of switch `no` here (0 before any).
fn site_last(hub: &Hub, no: u8) -> u64 {
    hub.slot_of(no).map_or(0, |s| s.journal().site_last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_lasts_four_seconds_at_the_last_rate_within_its_bounds() {
        assert_eq!(block_for(0, Duration::from_secs(1)), MIN_BLOCK);
        assert_eq!(block_for(1_000, Duration::from_secs(1)), 4_000);
        // A burst measured over less than 100 ms counts as 100 ms.
        assert_eq!(block_for(500, Duration::from_millis(5)), 20_000);
        assert_eq!(block_for(u64::MAX, Duration::from_secs(1)), MAX_BLOCK);
    }
}
