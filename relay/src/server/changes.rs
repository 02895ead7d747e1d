//! Changing the running relay's configuration: a reload (SIGHUP), or an operator's edit
//! through the admin interface, planned by [`crate::reconfigure::plan`] and applied here.

use std::sync::Arc;

use super::Relay;
use crate::bus::shared_config::SiteConfig;
use crate::config::{Config, InForce};
use crate::notify::Notice;
use crate::reconfigure::{self, Origin};

/// Why an operator's edit of the configuration was not applied.
#[derive(Debug)]
pub enum EditRefused<E> {
    /// The edit itself could not be made (say, no such entry).
    Edit(E),
    /// The result breaks a rule, cannot change while running, or could not be saved.
    Config(Vec<crate::config::ConfigError>),
}

impl Relay {
    /// Replaces the configuration of the running relay. What can change live (users, access,
    /// options, bypass limits, licence settings, default switch, and switches added) applies
    /// from now on: added switches are dialled (when enabled), identifies follow the new rules,
    /// sessions already admitted keep what they were given. A configuration that breaks a rule,
    /// or that changes what cannot change while running, is refused whole and the old one
    /// stays. Returns the switches added.
    pub fn reconfigure(&self, new: Config) -> Result<Vec<u8>, Vec<crate::config::ConfigError>> {
        let _one_at_a_time = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        self.change(new, None, Origin::Reload)
    }

    /// An operator's change (admin interface): `edit` is applied to the configuration in
    /// force, then as [`Relay::reconfigure`], except that switches that are down may also be
    /// changed or deleted (a connected one is refused until it is disconnected), and the result
    /// is first written to `path` atomically; if that write fails, the change is refused and
    /// the old file and configuration stay. Edits run one at a time, so none is lost.
    pub fn edit_config<E>(
        &self,
        path: Option<&std::path::Path>,
        edit: impl FnOnce(&mut Config) -> Result<(), E>,
    ) -> Result<Vec<u8>, EditRefused<E>> {
        let _one_at_a_time = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (**self.hub.config.load()).clone();
        edit(&mut next).map_err(EditRefused::Edit)?;
        let shared = next.bus.shared.then(|| SiteConfig::of(&next));
        let added = self
            .change(next, path, Origin::Operator)
            .map_err(EditRefused::Config)?;
        if shared.is_some() {
            self.site_config.send_replace(shared);
        }
        Ok(added)
    }

    /// Applies the switches and users the other relay of a shared site changed, as an
    /// operator's edit made here (saved to `path`), and says so in a notification. Returns
    /// whether anything changed.
    pub(super) fn apply_site_config(
        &self,
        site: &SiteConfig,
        path: Option<&std::path::Path>,
    ) -> bool {
        let _one_at_a_time = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(next) = site.applied_to(&self.hub.config.load()) else {
            return false;
        };
        let node = site.node.clone();
        match self.change(next, path, Origin::Operator) {
            Ok(_) => {
                self.hub.notices.emit(Notice::PeerConfigApplied { node });
                true
            }
            Err(errors) => {
                let reason = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                self.hub
                    .notices
                    .emit(Notice::PeerConfigRefused { node, reason });
                false
            }
        }
    }

    fn change(
        &self,
        new: Config,
        path: Option<&std::path::Path>,
        origin: Origin,
    ) -> Result<Vec<u8>, Vec<crate::config::ConfigError>> {
        use crate::config::ConfigError;
        let old = self.hub.config.load_full();
        let plan = reconfigure::plan(&old, &new, origin, |no| {
            self.hub.slot_of(no).is_some_and(|s| s.is_up())
        })?;
        let new = InForce::new(new)?;
        // The TLS files are read again on every change, so that a reload puts renewed
        // certificates in force; connections already made keep theirs.
        let tls = crate::tls::server_config(&new.tls).map_err(|e| vec![e.to_config_error()])?;
        if let Some(path) = path {
            new.save_atomic(path).map_err(|e| {
                vec![ConfigError {
                    field: "configuration file".into(),
                    message: format!(
                        "cannot write {}: {e}; the change is refused and the file is unchanged",
                        path.display()
                    ),
                }]
            })?;
        }
        self.hub
            .notices
            .set_capacity(new.options.notification_lines as usize);
        self.hub.tls.set(tls);
        self.hub.config.store(Arc::new(new));
        // Switches added or enabled are dialled now (on a shared site by the lease holder,
        // when it sees them); those disabled, deleted or turned remote stop.
        self.reconcile(super::Dial::Now);
        Ok(plan.added)
    }

    /// Re-reads the configuration file and applies it as [`Relay::reconfigure`] does, telling
    /// the operator what happened in a notification. Returns why it was refused, if it was.
    pub fn reload(&self, path: &std::path::Path) -> Result<(), String> {
        let outcome = Config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                self.reconfigure(config).map_err(|errors| {
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            });
        match outcome {
            Ok(added_switches) => {
                self.hub
                    .notices
                    .emit(Notice::ConfigReloaded { added_switches });
                Ok(())
            }
            Err(reason) => {
                self.hub.notices.emit(Notice::ConfigReloadRefused {
                    reason: reason.clone(),
                });
                Err(reason)
            }
        }
    }
}
