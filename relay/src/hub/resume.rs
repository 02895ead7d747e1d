//! Resumable sessions (docs/protocol.md §3, resume): the tokens issued, the session connected with
//! each, and the sessions waiting to come back, each holding its licence use until its window
//! ends.
//!
//! A token is the relay run's epoch (8 bytes) then 8 random bytes: a token of this run that is
//! no longer known has expired (the relay can still count what its holder lost), one of
//! another run is unknown (it cannot).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

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

#[derive(Debug)]
pub struct ResumeBook {
    epoch: [u8; 8],
    rng: ChaCha12Rng,
    live: HashMap<Token, Arc<SessionHandle>>,
    parked: HashMap<Token, (Arc<SessionHandle>, Instant)>,
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
            live: HashMap::new(),
            parked: HashMap::new(),
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
        if token[..8] != self.epoch {
            return Found::Unknown;
        }
        let fits = |s: &Arc<SessionHandle>| {
            s.peer.ip() == ip && s.product == product && s.protocol == protocol
        };
        if let Some(s) = self.live.get(token).filter(|s| fits(s)) {
            return Found::Live(s.clone());
        }
        if let Some((s, _)) = self.parked.get(token).filter(|(s, _)| fits(s)) {
            return Found::Parked(s.clone());
        }
        Found::Expired
    }

    /// `session` is now the one connected with `token` (it may replace a live or parked one).
    pub fn connect(&mut self, token: Token, session: Arc<SessionHandle>) {
        self.parked.remove(&token);
        self.live.insert(token, session);
    }

    /// `session` ended; it waits until `until` when given. Returns whether it was the one
    /// connected with its token (a replaced session is no longer).
    pub fn ended(&mut self, session: &Arc<SessionHandle>, until: Option<Instant>) -> bool {
        let Some(token) = session.resume else {
            return false;
        };
        match self.live.get(&token) {
            Some(s) if Arc::ptr_eq(s, session) => {}
            _ => return false,
        }
        self.live.remove(&token);
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
