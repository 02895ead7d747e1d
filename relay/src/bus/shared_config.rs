//! The switches and users of a site two relays share (`bus.shared`), kept alike through the
//! bus: a change made through either relay's admin interface is written to the key named by
//! the site in the key-value bucket `cti_config`, and each relay applies every newer entry.
//!
//! The newest entry wins: a relay applies an entry written after its own last write (so two
//! changes made at once on both relays end, on both, as the later one), and a relay that
//! starts takes the entry only when it is newer than its configuration file (a relay that
//! was down while the other changed catches up; a file edited since is not overwritten).
//! The rest of each relay's configuration (ports, directories, admin, licence, bus) is its
//! own.

use std::time::{Duration, SystemTime};

use busseam::{BucketConfig, Bus, BusError, Entry, Kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{Config, SwitchConfig, User};

pub const BUCKET: &str = "cti_config";
/// Longest wait for one write; a change not written is retried every second.
pub const WRITE_LIMIT: Duration = Duration::from_secs(2);

/// What the two relays of a site keep alike, with the relay that wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteConfig {
    pub node: String,
    pub switches: Vec<SwitchConfig>,
    pub users: Vec<User>,
}

impl SiteConfig {
    /// The shared part of `config`, as written by its relay.
    pub fn of(config: &Config) -> SiteConfig {
        SiteConfig {
            node: config.bus.node.clone(),
            switches: config.switches.clone(),
            users: config.users.clone(),
        }
    }

    /// `config` with this shared part; `None` when it has it already.
    pub fn applied_to(&self, config: &Config) -> Option<Config> {
        if config.switches == self.switches && config.users == self.users {
            return None;
        }
        let mut next = config.clone();
        next.switches = self.switches.clone();
        next.users = self.users.clone();
        Some(next)
    }

    pub fn to_json(&self) -> Bytes {
        // Cannot fail: structs, strings and numbers only, which JSON always takes.
        Bytes::from(serde_json::to_vec(self).expect("a configuration serializes"))
    }
}

/// An entry of the bucket, as a relay decides on it.
#[derive(Debug)]
pub struct Written {
    pub revision: u64,
    pub created: SystemTime,
    pub config: SiteConfig,
}

impl Written {
    /// `entry` when it holds a configuration (not a delete, not something else).
    pub fn read(entry: &Entry) -> Option<Written> {
        if entry.deleted {
            return None;
        }
        let config = serde_json::from_slice(&entry.value).ok()?;
        Some(Written {
            revision: entry.revision,
            created: entry.created,
            config,
        })
    }
}

/// The bucket, made when missing (every entry kept until replaced).
pub async fn open(client: Bus) -> Result<Kv, BusError> {
    client.kv(BUCKET, BucketConfig { max_age: None }).await
}

/// Whether a relay applies `entry`, which it reads `first` since it started: every entry at
/// or after revision `floor` (past what it has read, not older than its own last write), but
/// the first only when newer than its configuration file, written at `file_written`. An entry
/// the same as the configuration in force changes nothing (see [`SiteConfig::applied_to`]).
pub fn take(entry: &Written, first: bool, file_written: Option<SystemTime>, floor: u64) -> bool {
    entry.revision >= floor && (!first || file_written.is_none_or(|file| entry.created > file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(revision: u64, at_s: u64) -> Written {
        Written {
            revision,
            created: SystemTime::UNIX_EPOCH + Duration::from_secs(at_s),
            config: SiteConfig {
                node: "b".into(),
                switches: Vec::new(),
                users: Vec::new(),
            },
        }
    }

    #[test]
    fn the_newest_change_wins() {
        let file = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        // At start: an entry older than the file is not taken, a newer one is.
        assert!(!take(&written(5, 99), true, file, 0));
        assert!(take(&written(5, 101), true, file, 0));
        assert!(take(&written(5, 1), true, None, 0));
        // Live: every entry from the floor on, whatever its time.
        assert!(take(&written(7, 1), false, file, 7));
        assert!(take(&written(8, 1), false, file, 7));
        assert!(!take(&written(6, 1_000), false, file, 7));
    }

    #[test]
    fn a_relay_keeps_its_own_ports_and_takes_the_sites_switches_and_users() {
        let mut mine = Config::default();
        mine.listen.client_port = 6001;
        mine.bus.node = "a".into();
        let mut theirs = Config::default();
        theirs.listen.client_port = 7001;
        theirs.bus.node = "b".into();
        theirs
            .switches
            .push(SwitchConfig::new(1, "10.0.0.1", 5000, "pw"));
        let shared = SiteConfig::of(&theirs);
        assert_eq!(shared.node, "b");
        let next = shared.applied_to(&mine).expect("it differs");
        assert_eq!(next.switches, theirs.switches);
        assert_eq!(
            (next.listen.client_port, next.bus.node.as_str()),
            (6001, "a")
        );
        assert_eq!(shared.applied_to(&next), None);
    }
}
