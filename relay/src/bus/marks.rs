//! The site's numbering reservations, for two relays sharing a site: key-value bucket
//! `cti_numbers`, key `S.N` (site `S`, switch `N`), value in decimal the site's highest number
//! the link holder may have given switch `N`'s events.
//!
//! The holder gives its own link's events only numbers it reserved there first, and reserves
//! exactly as many as it has read: before it dials it reads the value and raises its journal
//! past it ([`crate::hub::event_journal::EventJournal::raise_to`]); then, each time its switch
//! reader has read events, the reader waits until the value is raised by their count before it
//! numbers and delivers them (one write covers whatever was read meanwhile, so a busy link
//! writes about once per round trip to the bus). So whatever happens to the holder (killed,
//! cut off from the bus while it still has its link), the next holder starts above every
//! number it could have given, and every number below is an event it read: one number is one
//! event, site-wide, and a `G` told across a failover counts events, never numbers reserved
//! and not given. Numbers written for events read and then never delivered (the holder died
//! between the write and the delivery) are such events, lost with it. A planned stop (or
//! hand-over) with events reserved but not delivered writes its last number instead.
//!
//! Every write is conditional on the revision this relay last read or wrote, and a value is
//! never lowered except by the holder that wrote it, at a planned stop: a relay that lost the
//! lease without knowing it cannot undo the next holder's reservation.

use std::collections::BTreeMap;
use std::time::Duration;

use busseam::{BucketConfig, Bus, BusError, Kv};
use bytes::Bytes;
use tracing::{debug, info, trace, warn};

use crate::hub::Hub;

const BUCKET: &str = "cti_numbers";
/// Longest wait for the reservations, read or written, so the lease's steps keep their pace.
const LIMIT: Duration = Duration::from_millis(800);
/// The highest value read as a reservation (beyond it, a damaged or forged entry: ignored).
const MAX_CEILING: u64 = 1 << 62;

/// One switch's reservation as this relay last read or wrote it.
#[derive(Clone, Copy, Debug)]
struct Reserved {
    /// The entry's revision (0: there is none).
    revision: u64,
    ceiling: u64,
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
    /// site's reservation, with no number left to give until its reader asks. Until this
    /// succeeds the relay must not dial (its numbers could be ones the last holder gave).
    pub async fn take_over(&mut self, hub: &Hub, switches: &[u8]) -> Result<(), NotReserved> {
        let store = self.store().await?;
        self.reserved.clear();
        for &no in switches {
            self.adopt(hub, &store, no).await?;
        }
        Ok(())
    }

    /// Switches added to a holder's links: each journal gives no number until its reader asks,
    /// and the reservation is read then (see [`Marks::reserve_needed`]), so the lease's loop
    /// waits for nothing here. What this relay knew of them before is forgotten: another
    /// relay may have held them since.
    pub fn added(&mut self, hub: &Hub, switches: &[u8]) {
        for &no in switches {
            self.reserved.remove(&no);
            if let Some(slot) = hub.slot_of(no) {
                let mut journal = slot.journal();
                let last = journal.site_last();
                journal.reserve(last);
            }
        }
    }

    /// Reads switch `no`'s reservation and raises its journal past it, with no number left to
    /// give until its reader asks (the numbers skipped are told to the sessions here).
    async fn adopt(&mut self, hub: &Hub, store: &Kv, no: u8) -> Result<(), NotReserved> {
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
            slot.journal().reserve(ceiling);
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
        self.reserved.insert(no, Reserved { revision, ceiling });
        Ok(())
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

    /// While this relay holds the lease: for every switch whose reader waits for numbers, the
    /// reservation raised by exactly the events it has read. Says whether any was written (a
    /// reader is woken only then; one that waits on nothing written looks again at its own
    /// pace, so a bus that refuses at once is not asked again in a loop).
    ///
    /// A switch whose reservation this relay has not read as holder (added since it took the
    /// lease) or that another relay wrote since (a late holder's write, sent before it lost
    /// the lease and stored after this relay took it) is read again first, and its numbers
    /// run on from whatever the other relay reserved.
    pub async fn reserve_needed(
        &mut self,
        hub: &Hub,
        switches: &[u8],
    ) -> Result<bool, NotReserved> {
        let wanting: Vec<u8> = switches
            .iter()
            .copied()
            .filter(|&no| {
                hub.slot_of(no)
                    .is_some_and(|s| s.journal().wants_reservation())
            })
            .collect();
        if wanting.is_empty() {
            return Ok(false);
        }
        let store = self.store().await?;
        let mut written = false;
        for no in wanting {
            if !self.reserved.contains_key(&no) {
                self.adopt(hub, &store, no).await?;
            }
            let Some(slot) = hub.slot_of(no) else {
                continue;
            };
            let ceiling = {
                let journal = slot.journal();
                if !journal.wants_reservation() {
                    continue;
                }
                journal.site_last().saturating_add(journal.needed())
            };
            let Some(was) = self.reserved.get(&no).copied() else {
                continue;
            };
            if ceiling <= was.ceiling {
                continue;
            }
            let key = self.key(no);
            let write = store.update(&key, Bytes::from(ceiling.to_string()), was.revision);
            let revision = match tokio::time::timeout(LIMIT, write).await {
                Err(_) => return Err(NotReserved::Late),
                Ok(Err(BusError::Refused(_))) => {
                    // Written by another relay since: read again at the reader's next ask.
                    self.reserved.remove(&no);
                    return Err(NotReserved::Overtaken(no));
                }
                Ok(r) => r?,
            };
            self.reserved.insert(no, Reserved { revision, ceiling });
            slot.journal().reserve(ceiling);
            written = true;
            trace!(site = %self.site, switch = no, ceiling, "numbers reserved");
        }
        Ok(written)
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

/// The site's last number of switch `no` here (0 before any).
fn site_last(hub: &Hub, no: u8) -> u64 {
    hub.slot_of(no).map_or(0, |s| s.journal().site_last())
}
