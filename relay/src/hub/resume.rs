//! Resumable sessions (docs/protocol.md §3, resume): the tokens issued, the session connected with
//! each, and the sessions waiting to come back, each holding its licence use until its window
//! ends.
//!
//! A token is the relay run's epoch (8 bytes) then 8 random bytes: a token of this run that is
//! no longer known has expired (the relay can still count what its holder lost), one of
//! another run is unknown (it cannot), unless the session it names moved here from another
//! relay of the site: on a shared site each relay keeps its connected resumable sessions on the
//! bus ([`MovedSession`], through [`SiteSessions`]), and a relay that is shown a token it does
//! not know looks it up there, so an application whose relay died resumes on the other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use tokio::time::Instant;
use wire::{Product, Token};

use crate::hub::session_handle::SessionHandle;

/// What a token names.
#[derive(Debug)]
pub enum Found {
    /// A session still connected (its connection may be half-open): the newcomer replaces it.
    Live(Arc<SessionHandle>),
    /// A session waiting to come back.
    Parked(Arc<SessionHandle>),
    /// A token of this run that is no longer kept (or not the caller's).
    Expired,
    /// A token of another run of the relay.
    Unknown,
}

/// A resumable session as the relay it is connected to keeps it on the bus for the other relay
/// of its site: enough to admit it there as it was, and to translate its event numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedSession {
    /// The relay that wrote it (its `bus.node`).
    pub node: String,
    pub ip: IpAddr,
    pub product: u8,
    pub protocol: u8,
    pub served: Vec<u8>,
    pub default_switch: u8,
    pub filtering: bool,
    /// The devices it watches: switch and device bytes.
    pub devices: Vec<(u8, Vec<u8>)>,
    /// For each served switch, that relay's event numbers less the site's (see
    /// [`crate::hub::event_journal`]): a number the application holds, less this, is the site's.
    pub offsets: Vec<(u8, u64)>,
    /// The store's revision of the entry it was read from (not written: the store numbers it).
    #[serde(skip)]
    pub revision: u64,
}

impl MovedSession {
    /// Whether an application at `ip` identifying as `product` with `protocol` may take it.
    pub fn fits(&self, ip: IpAddr, product: Product, protocol: u8) -> bool {
        self.ip == ip.to_canonical() && self.product == product.byte() && self.protocol == protocol
    }

    /// The site's number of event `last` of switch `no` as the application numbered it; `None`
    /// when it cannot be one (the switch is not in the record, or the number is below its
    /// offset).
    pub fn site_number(&self, no: u8, last: u64) -> Option<u64> {
        let offset = self.offsets.iter().find(|(n, _)| *n == no)?.1;
        last.checked_sub(offset)
    }
}

/// Where the resumable sessions of a site's relays are kept for each other (the bus).
pub trait SiteSessions: Send + Sync + std::fmt::Debug {
    /// The session `token` names, when another relay of the site keeps it; `None` when none
    /// does or the store cannot be read in time.
    fn fetch(&self, token: Token) -> BoxFuture<'static, Option<MovedSession>>;
}

#[derive(Debug)]
pub struct ResumeBook {
    epoch: [u8; 8],
    rng: ChaCha12Rng,
    // Ordered by token: what is done for each (shared on the bus, expired) is done in the
    // same order on every run of a simulated world.
    live: BTreeMap<Token, Arc<SessionHandle>>,
    parked: BTreeMap<Token, (Arc<SessionHandle>, Instant)>,
    /// For a token in the book, the newest revision of its entry on the bus that describes
    /// this relay's copy (written by this relay, or read when the session moved here): an
    /// entry of the other relay at or below it is older than this copy.
    revisions: BTreeMap<Token, u64>,
    /// Sessions that moved here and whose entry this relay has not written yet: until it has,
    /// the other relay's entry is the newest and its copy the one that counts.
    unclaimed: BTreeSet<Token>,
}

impl ResumeBook {
    /// A book whose tokens come from `seed` (fixed in simulations, random in production).
    pub fn new(seed: u64) -> ResumeBook {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let mut epoch = [0; 8];
        rng.fill_bytes(&mut epoch);
        ResumeBook {
            epoch,
            rng,
            live: BTreeMap::new(),
            parked: BTreeMap::new(),
            revisions: BTreeMap::new(),
            unclaimed: BTreeSet::new(),
        }
    }

    /// A new token of this run.
    pub fn issue(&mut self) -> Token {
        let mut token = [0; 16];
        token[..8].copy_from_slice(&self.epoch);
        loop {
            self.rng.fill_bytes(&mut token[8..]);
            if !self.live.contains_key(&token) && !self.parked.contains_key(&token) {
                return token;
            }
        }
    }

    /// What `token` names for an application at `ip` identifying as `product` with
    /// `protocol`: a session of another address, product or protocol is not its to take.
    pub fn find(&self, token: &Token, ip: IpAddr, product: Product, protocol: u8) -> Found {
        let fits = |s: &Arc<SessionHandle>| {
            s.peer.ip() == ip && s.product == product && s.protocol == protocol
        };
        // A token of another relay's run is known here once its session moved here.
        if let Some(s) = self.live.get(token).filter(|s| fits(s)) {
            return Found::Live(s.clone());
        }
        if let Some((s, _)) = self.parked.get(token).filter(|(s, _)| fits(s)) {
            return Found::Parked(s.clone());
        }
        if !self.issued_here(token) {
            return Found::Unknown;
        }
        Found::Expired
    }

    /// Whether `token` is of this run of the relay (it may be unknown here all the same).
    pub fn issued_here(&self, token: &Token) -> bool {
        token[..8] == self.epoch
    }

    /// Whether `token` is in the book (connected or waiting to come back).
    pub fn knows(&self, token: &Token) -> bool {
        self.live.contains_key(token) || self.parked.contains_key(token)
    }

    /// Takes `token`'s session out of the book: `Live` or `Parked`, or `None` when unknown.
    pub fn take(&mut self, token: &Token) -> Option<Found> {
        self.revisions.remove(token);
        self.unclaimed.remove(token);
        if let Some(s) = self.live.remove(token) {
            return Some(Found::Live(s));
        }
        self.parked.remove(token).map(|(s, _)| Found::Parked(s))
    }

    /// The entry of `token` on the bus at `revision` describes this relay's copy.
    pub fn note_revision(&mut self, token: Token, revision: u64) {
        if self.knows(&token) {
            let known = self.revisions.entry(token).or_default();
            *known = (*known).max(revision);
        }
    }

    /// `token`'s session moved here, admitted from the other relay's entry at `revision`; it
    /// is this relay's to share once this relay has written its entry ([`Self::written`]).
    pub fn moved_here(&mut self, token: Token, revision: u64) {
        self.note_revision(token, revision);
        self.unclaimed.insert(token);
    }

    /// This relay wrote `token`'s entry at `revision`: the session is known on the site to be
    /// here.
    pub fn written(&mut self, token: Token, revision: u64) {
        self.note_revision(token, revision);
        self.unclaimed.remove(&token);
    }

    /// The newest revision of `token`'s entry known to describe this relay's copy (0: none).
    pub fn known_revision(&self, token: &Token) -> u64 {
        self.revisions.get(token).copied().unwrap_or(0)
    }

    /// The tokens of the sessions waiting to come back.
    pub fn parked_tokens(&self) -> Vec<Token> {
        self.parked.keys().copied().collect()
    }

    /// The sessions connected with a token.
    pub fn live(&self) -> Vec<(Token, Arc<SessionHandle>)> {
        self.live.iter().map(|(t, s)| (*t, s.clone())).collect()
    }

    /// `session` is now the one connected with `token` (it may replace a live or parked one).
    pub fn connect(&mut self, token: Token, session: Arc<SessionHandle>) {
        self.parked.remove(&token);
        self.live.insert(token, session);
    }

    /// `session` ended; it waits until `until` when given. Returns whether it was the one
    /// connected with its token (a replaced session is no longer) and stays this relay's (one
    /// that moved here and was never shared from here does not).
    pub fn ended(&mut self, session: &Arc<SessionHandle>, until: Option<Instant>) -> bool {
        let Some(token) = session.resume else {
            return false;
        };
        match self.live.get(&token) {
            Some(s) if Arc::ptr_eq(s, session) => {}
            _ => return false,
        }
        self.live.remove(&token);
        // A session that moved here and ended before this relay wrote its entry (a connection
        // that was gone on arrival: its application had gone back) waits where the site's
        // entry says it is, on the other relay, not here too.
        if self.unclaimed.remove(&token) {
            self.revisions.remove(&token);
            return false;
        }
        if let Some(until) = until {
            self.parked.insert(token, (session.clone(), until));
        }
        true
    }

    /// Takes the parked sessions whose window has ended at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<SessionHandle>> {
        let gone: Vec<Token> = self
            .parked
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in &gone {
            self.revisions.remove(token);
        }
        gone.iter()
            .filter_map(|t| self.parked.remove(t).map(|(s, _)| s))
            .collect()
    }

    /// Sessions connected with a token or waiting to come back.
    pub fn count(&self) -> usize {
        self.live.len() + self.parked.len()
    }

    pub fn parked(&self) -> Vec<Arc<SessionHandle>> {
        self.parked.values().map(|(s, _)| s.clone()).collect()
    }
}

impl super::Hub {
    /// The session an identify's token names on another relay of the site: looked up only
    /// for a token this relay neither knows nor issued, on a site that keeps its sessions on
    /// the bus.
    pub async fn moved_session(&self, identify: &wire::LinkMsg) -> Option<MovedSession> {
        let wire::LinkMsg::Identify {
            resume: Some(ask), ..
        } = identify
        else {
            return None;
        };
        if ask.token == [0; 16] {
            return None;
        }
        {
            let book = self.resume_book();
            if book.knows(&ask.token) || book.issued_here(&ask.token) {
                return None;
            }
        }
        let store = self.site_sessions.load_full()?;
        store.fetch(ask.token).await
    }

    /// The session `token` names was resumed on another relay of the site: this relay lets its
    /// own go. One waiting to come back gives its licence use back at once; one still
    /// connected (its connection half-open, or its application connected twice) is closed and
    /// gives its licence use back as it ends. So the site counts each session once.
    ///
    /// `revision` is the bus entry's that says so: an entry no newer than the one this relay
    /// last wrote or read for its own copy was written before the session came here (a late
    /// message, or a catch-up after the bus came back), and changes nothing.
    pub fn moved_away(&self, token: &Token, revision: u64) {
        let _membership = self.lock_membership();
        let mut book = self.resume_book();
        if revision <= book.known_revision(token) {
            return;
        }
        match book.take(token) {
            Some(Found::Parked(s)) => self.licensing.usage().release(&s.grant),
            Some(Found::Live(s)) => s.replace(),
            _ => return,
        }
        self.count_resumables(&book);
    }

    /// This relay wrote `token`'s entry on the bus at `revision`.
    pub fn shared(&self, token: Token, revision: u64) {
        self.resume_book().written(token, revision);
    }

    /// The tokens of the sessions waiting here to come back.
    pub fn parked_tokens(&self) -> Vec<Token> {
        self.resume_book().parked_tokens()
    }

    /// This relay's connected resumable sessions, as the other relay of the site is to admit
    /// them if they come to it; written by relay `node`. Each record's `revision` is the
    /// newest known to describe this relay's copy: one newer than this relay last wrote means
    /// the entry is another relay's now, and must be written again even if nothing changed.
    pub fn sessions_to_share(&self, node: &str) -> Vec<(Token, MovedSession)> {
        let live: Vec<_> = {
            let book = self.resume_book();
            book.live()
                .into_iter()
                .map(|(token, s)| (token, s, book.known_revision(&token)))
                .collect()
        };
        live.into_iter()
            .map(|(token, s, revision)| {
                let offsets = s
                    .served
                    .iter()
                    .filter_map(|no| Some((*no, self.slot_of(*no)?.journal().offset())))
                    .collect();
                let devices = s
                    .devices
                    .load()
                    .iter()
                    .map(|(sw, d)| (*sw, d.as_bytes().to_vec()))
                    .collect();
                let record = MovedSession {
                    node: node.to_owned(),
                    ip: s.peer.ip().to_canonical(),
                    product: s.product.byte(),
                    protocol: s.protocol,
                    served: s.served.clone(),
                    default_switch: s.default_switch,
                    filtering: s.filtering,
                    devices,
                    offsets,
                    revision,
                };
                (token, record)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::session_handle::NewSession;

    fn session(token: Token) -> Arc<SessionHandle> {
        SessionHandle::new(NewSession {
            resume: Some(token),
            ..NewSession::for_test(1)
        })
        .shared()
    }

    #[test]
    fn a_revision_is_kept_only_for_a_token_in_the_book_and_only_grows() {
        let mut book = ResumeBook::new(7);
        let token = book.issue();
        book.note_revision(token, 9);
        assert_eq!(book.known_revision(&token), 0, "not in the book yet");

        let s = session(token);
        book.connect(token, s.clone());
        book.note_revision(token, 12);
        book.note_revision(token, 10);
        assert_eq!(book.known_revision(&token), 12);

        // Parked, it keeps what was known of it, and its token is listed for the catch-up.
        let until = Instant::now() + std::time::Duration::from_secs(60);
        assert!(book.ended(&s, Some(until)));
        assert_eq!(book.known_revision(&token), 12);
        assert_eq!(book.parked_tokens(), vec![token]);

        // Taken out (moved away), nothing of it stays.
        assert!(matches!(book.take(&token), Some(Found::Parked(_))));
        assert_eq!(book.known_revision(&token), 0);
        assert!(book.parked_tokens().is_empty());
    }

    /// A session that moved here waits here when it ends only once this relay has written its
    /// entry; before that, the other relay's copy is the site's (found by the site explorer: a
    /// relay woken from a pause admitted a connection its application had left already).
    #[test]
    fn a_moved_session_ended_before_it_was_shared_from_here_does_not_wait_here() {
        let mut book = ResumeBook::new(7);
        let until = Instant::now() + std::time::Duration::from_secs(60);
        let token = [9; 16];
        let gone_at_once = session(token);
        book.connect(token, gone_at_once.clone());
        book.moved_here(token, 22);
        assert_eq!(book.known_revision(&token), 22);
        assert!(!book.ended(&gone_at_once, Some(until)));
        assert!(!book.knows(&token));
        assert_eq!(book.known_revision(&token), 0);

        let shared = session(token);
        book.connect(token, shared.clone());
        book.moved_here(token, 30);
        book.written(token, 31);
        assert!(book.ended(&shared, Some(until)));
        assert_eq!(book.parked_tokens(), vec![token]);
        assert_eq!(book.known_revision(&token), 31);
    }

    #[test]
    fn an_expired_session_forgets_its_revision() {
        let mut book = ResumeBook::new(7);
        let token = book.issue();
        let s = session(token);
        book.connect(token, s.clone());
        book.note_revision(token, 3);
        let now = Instant::now();
        assert!(book.ended(&s, Some(now)));
        assert_eq!(book.expire(now).len(), 1);
        book.connect(token, session(token));
        assert_eq!(book.known_revision(&token), 0);
    }
}
