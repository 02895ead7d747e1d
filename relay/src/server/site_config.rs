//! Keeping the switches and users of a shared site alike with its other relay (the rules are
//! in [`crate::bus::shared_config`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tracing::{info, warn};

use super::Relay;
use crate::bus::shared_config::{self, SiteConfig, Written};
use crate::notify::Notice;

const RETRY: Duration = Duration::from_secs(1);

impl Relay {
    /// For a relay of a shared site (`bus.shared`; otherwise returns at once): writes every
    /// change made through its admin interface to the bus, and applies those of the other
    /// relay, saving them to `path`, until the relay stops. Started by [`Relay::start`].
    pub(super) async fn share_site_config(self: Arc<Self>, path: Option<PathBuf>) {
        let site = {
            let config = self.hub.config.load();
            if !config.bus.shared {
                return;
            }
            config.bus.site.clone()
        };
        let stop = self.stop.clone();
        let file_written = path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        let client = loop {
            if let Some(outbox) = self.hub.bus.load_full() {
                break outbox.client.clone();
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        let mut changed_here = self.site_config.subscribe();
        let mut pending: Option<SiteConfig> = None;
        // Entries below the floor are read already, or older than this relay's last write.
        let mut floor = 0u64;
        let mut first = true;
        let mut told = false;
        loop {
            let opened = async {
                let store = shared_config::open(client.clone()).await?;
                let watch = store.watch_with_history(&site).await?;
                Ok::<_, busseam::BusError>((store, watch))
            };
            let (store, mut watch) = match opened.await {
                Ok(opened) => opened,
                Err(e) => {
                    warn!(error = %e, "bus: the site's configuration store is not available yet");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => continue,
                    }
                }
            };
            let mut tick = tokio::time::interval(RETRY);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    changed = changed_here.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        pending = changed_here.borrow_and_update().clone();
                    }
                    entry = watch.next() => {
                        let Some(Ok(entry)) = entry else {
                            warn!("bus: the site's configuration watch ended; opening it again");
                            break;
                        };
                        if let Some(written) = Written::read(&entry) {
                            if pending.is_none()
                                && shared_config::take(&written, first, file_written, floor)
                            {
                                self.apply_site_config(&written.config, path.as_deref());
                            }
                            floor = floor.max(written.revision + 1);
                            first = false;
                        }
                    }
                    _ = tick.tick() => {}
                }
                let Some(change) = pending.clone() else {
                    continue;
                };
                let write = store.put(&site, change.to_json());
                let error = match tokio::time::timeout(shared_config::WRITE_LIMIT, write).await {
                    Ok(Ok(revision)) => {
                        info!(site = %site, revision, "switches and users passed to the site's other relay");
                        pending = None;
                        told = false;
                        // This write's own entry is read next, and applied should a change of
                        // the other relay have come in between.
                        floor = floor.max(revision);
                        continue;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!(
                        "no answer within {} s",
                        shared_config::WRITE_LIMIT.as_secs()
                    ),
                };
                if !told {
                    told = true;
                    self.hub.notices.emit(Notice::PeerConfigNotPassed { error });
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}
