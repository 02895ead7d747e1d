//! The resumable sessions of a site two relays share, kept on the bus for each other: each relay
//! writes its connected resumable sessions ([`MovedSession`]) to the key-value bucket
//! `cti_sessions`, key `SITE.TOKEN` (the token in hex), when they change and at least every
//! third of the bucket's age; an entry not written again expires. A relay shown a token it does
//! not know reads the entry ([`crate::hub::Hub::moved_session`]) and admits the session as it
//! was, with what it missed from its own journal: an application whose relay died resumes on
//! the other.
//!
//! The relay a session moved to writes its entry at once; the one it left lets its copy go
//! when it sees that entry, newer than any it wrote or read for its own copy
//! ([`crate::hub::Hub::moved_away`]): from a watch on the bucket, and for the sessions waiting
//! to come back also by reading their entries at every pass, which catches up what a watch
//! misses while the bus is down or slow.
//!
//! A session that moved here is this relay's to keep waiting only once this relay has written
//! its entry: one whose connection ends before (gone on arrival, as a relay woken from a stop
//! finds the connections its applications left meanwhile) is let go here, and the other
//! relay's copy stays the site's. A session that moved away and back is written again even
//! when its record is unchanged, since the other relay's entry came in between.
//!
//! Nothing is deleted: an entry is the state of the session where it was last connected, and
//! lives on for at least the resume window after the session ended (its application has that
//! long to come back, to either relay).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use busseam::{BucketConfig, Bus, Entry, Kv, Watch};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use wire::Token;

use crate::hub::resume::{MovedSession, SiteSessions};
use crate::hub::Hub;

pub const BUCKET: &str = "cti_sessions";
/// How often the sessions are looked at for changes to write.
pub const EVERY: Duration = Duration::from_secs(2);
/// An entry lives this long after its last write beyond the resume window.
const LINGER: Duration = Duration::from_secs(60);
/// Longest wait for an entry when an application comes back with a token: its admission waits
/// this long at most.
const FETCH_LIMIT: Duration = Duration::from_millis(800);
const WRITE_LIMIT: Duration = Duration::from_secs(1);

fn key(site: &str, token: &Token) -> String {
    let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
    format!("{site}.{hex}")
}

/// The bucket as the hub reads it.
#[derive(Debug)]
struct KvSessions {
    store: Kv,
    site: String,
}

impl SiteSessions for KvSessions {
    fn fetch(&self, token: Token) -> BoxFuture<'static, Option<MovedSession>> {
        let store = self.store.clone();
        let key = key(&self.site, &token);
        Box::pin(async move {
            let entry = match tokio::time::timeout(FETCH_LIMIT, store.entry(&key)).await {
                Ok(Ok(entry)) => entry.filter(|e| !e.deleted)?,
                Ok(Err(e)) => {
                    debug!(error = %e, "bus: a moved session could not be read");
                    return None;
                }
                Err(_) => {
                    debug!("bus: a moved session was not read in time");
                    return None;
                }
            };
            match serde_json::from_slice::<MovedSession>(&entry.value) {
                Ok(session) => Some(MovedSession {
                    revision: entry.revision,
                    ..session
                }),
                Err(e) => {
                    warn!(%key, error = %e, "bus: a session entry that is not one; ignored");
                    None
                }
            }
        })
    }
}

/// Watches the entries the site's relays write from now on; `None` when the store does not
/// answer in time.
async fn watch_moves(store: &Kv, site: &str) -> Option<Watch> {
    match tokio::time::timeout(WRITE_LIMIT, store.watch(&format!("{site}.>"))).await {
        Ok(Ok(watch)) => Some(watch),
        _ => None,
    }
}

/// The next entry written; pending forever without a watch, `None` when the watch ended.
async fn next_entry(watch: &mut Option<Watch>) -> Option<Entry> {
    use futures_util::StreamExt;
    match watch {
        Some(w) => w.next().await.and_then(Result::ok),
        None => std::future::pending().await,
    }
}

/// An entry the other relay wrote is a session it now has: this relay lets its own copy go.
fn moved(hub: &Hub, node: &str, site: &str, entry: &Entry) {
    if entry.deleted {
        return;
    }
    let Some(token) = entry
        .key
        .strip_prefix(site)
        .and_then(|k| k.strip_prefix('.'))
        .and_then(token_of)
    else {
        return;
    };
    match serde_json::from_slice::<MovedSession>(&entry.value) {
        Ok(session) if session.node != node => hub.moved_away(&token, entry.revision),
        Ok(_) => {}
        Err(e) => {
            debug!(key = %entry.key, error = %e, "bus: a session entry that is not one; ignored")
        }
    }
}

/// The entries of the sessions waiting here to come back, as the bucket has them now: one the
/// other relay wrote since says the session went there. Read all at once, within one write's
/// time limit; none when the store does not answer.
async fn parked_entries(hub: &Hub, store: &Kv, site: &str) -> Vec<Entry> {
    let tokens = hub.parked_tokens();
    if tokens.is_empty() {
        return Vec::new();
    }
    let reads = tokens.iter().map(|token| {
        let key = key(site, token);
        async move { store.entry(&key).await.ok().flatten() }
    });
    tokio::time::timeout(WRITE_LIMIT, futures_util::future::join_all(reads))
        .await
        .map(|entries| entries.into_iter().flatten().collect())
        .unwrap_or_default()
}

/// The token a key's hex names.
fn token_of(hex: &str) -> Option<Token> {
    if hex.len() != 32 {
        return None;
    }
    let mut token = [0; 16];
    for (i, byte) in token.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(token)
}

/// Keeps this relay's (`node`'s) resumable sessions in the site's bucket, and lets the hub read
/// the other relay's, until `stop`.
pub async fn share_sessions(
    hub: Arc<Hub>,
    client: Bus,
    site: String,
    node: String,
    stop: CancellationToken,
) {
    let max_age = hub.config.load().resume.window() + LINGER;
    let store = loop {
        let opened = client
            .kv(
                BUCKET,
                BucketConfig {
                    max_age: Some(max_age),
                },
            )
            .await;
        match opened {
            Ok(store) => break store,
            Err(e) => {
                warn!(error = %e, "bus: the sessions store is not available yet");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(EVERY) => {}
                }
            }
        }
    };
    hub.site_sessions.store(Some(Arc::new(Box::new(KvSessions {
        store: store.clone(),
        site: site.clone(),
    }))));
    let rewrite = max_age / 3;
    // What this relay last wrote of each session, when, and the revision it was given.
    let mut written: HashMap<Token, (Bytes, Instant, u64)> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    let mut moves = watch_moves(&store, &site).await;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            entry = next_entry(&mut moves) => {
                match entry {
                    Some(entry) => moved(&hub, &node, &site, &entry),
                    // Watched again at the next tick.
                    None => moves = None,
                }
                continue;
            }
            _ = tick.tick() => {}
            _ = hub.session_moved_here.notified() => {}
        }
        if moves.is_none() {
            moves = watch_moves(&store, &site).await;
        }
        // What the watch cannot say: entries written while it was down or late.
        for entry in parked_entries(&hub, &store, &site).await {
            moved(&hub, &node, &site, &entry);
        }
        let now = Instant::now();
        let sessions = hub.sessions_to_share(&node);
        written.retain(|token, _| sessions.iter().any(|(t, _)| t == token));
        for (token, session) in sessions {
            // Cannot fail: numbers, strings and byte arrays, which JSON always takes.
            let json = Bytes::from(serde_json::to_vec(&session).expect("a session serializes"));
            // Unchanged, recent, and still the newest entry known of it (a session that moved
            // away and back has the other relay's entry in between: written again).
            let current = written.get(&token).is_some_and(|(was, at, revision)| {
                *was == json && now.duration_since(*at) < rewrite && *revision == session.revision
            });
            if current {
                continue;
            }
            let key = key(&site, &token);
            let put = store.put(&key, json.clone());
            match tokio::time::timeout(WRITE_LIMIT, put).await {
                Ok(Ok(revision)) => {
                    hub.shared(token, revision);
                    written.insert(token, (json, now, revision));
                }
                _ => {
                    debug!("bus: a session entry could not be written; tried again shortly");
                    break;
                }
            }
        }
    }
    hub.site_sessions.store(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_token_and_nothing_else_does() {
        let token: Token = *b"\x00\x01relay-run\xfe\xff..!";
        let key = key("hq", &token);
        assert_eq!(key, "hq.000172656c61792d72756efeff2e2e21");
        assert_eq!(token_of(key.strip_prefix("hq.").unwrap()), Some(token));
        for bad in [
            "",
            "00",
            "zz0172656c61792d72756efeff2e2e21",
            "000172656c61792d72756efeff2e2e2",
        ] {
            assert_eq!(token_of(bad), None, "{bad:?}");
        }
    }
}
