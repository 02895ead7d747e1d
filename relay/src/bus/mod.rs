//! Federation over NATS (`bus` in the configuration): a relay publishes its switches to its
//! site's subjects and answers requests for them; a switch entry with `remote` is served from
//! another site's subjects as if its link were local.
//!
//! Subjects, for site `S` and switch `N` (its number at that site):
//! - `cti.S.swN.state`: every second, the switch's state as an `o` frame (result 0 with the
//!   switch's model, software, MAC and capabilities while the link is up; 1 while it is not);
//! - `cti.S.swN.events`: runs of `E` frames exactly as the switch sent them, with the site's
//!   numbers of the run in the header `Cti-Seq` (`term/start/first`, see
//!   [`crate::hub::event_journal`]);
//! - `cti.S.swN.records`: `S` and `U` frames exactly as the switch sent them;
//! - `cti.S.swN.request`: request/reply; the request is an `R` frame (no SWITCH byte) with the
//!   asker's INVOKE, the reply the one `A` frame that answers it, with the same INVOKE.
//!
//! - `cti.S.swN.notices`: the switch's notifications (link attempts, losses, recovery), each
//!   as JSON of a [`crate::notify::Notice`], shown by the relays that serve the switch in their
//!   own language;
//! - `cti.S.config` (key-value bucket `cti_config`, key `S`): for two relays sharing the site,
//!   its switches and users as last changed through either's admin interface ([`shared_config`]);
//! - key-value bucket `cti_numbers`, key `S.N`: for two relays sharing the site, the highest
//!   number of the site the holder may give switch `N`'s events (reserved before it gives
//!   them), so the next holder starts above it ([`marks`]);
//! - key-value bucket `cti_sessions`, key `S.TOKEN`: for two relays sharing the site, each one's
//!   resumable sessions, so that either can resume the other's ([`sessions`]).
//!
//! Payloads are the protocol's own frames, except the notices and the configuration (JSON).
//!
//! [`publish`] publishes and serves this relay's switches; [`remote`] is the link of a switch of
//! another site; [`lease`] decides which of two relays sharing a site holds its links, and
//! [`shared_config`] keeps their switches and users alike; [`sessions`] keeps their resumable
//! sessions for each other.

pub mod lease;
pub mod marks;
pub mod publish;
pub mod remote;
pub mod sessions;
pub mod shared_config;

use std::sync::Arc;

use busseam::Bus;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use crate::outbox::{subject, Outbox};

/// Connects to the NATS server at `url` (retrying in the background while it is away), or
/// takes the bus `given` (the simulation's), and starts the publisher.
pub async fn connect(
    url: Option<&str>,
    given: Option<Bus>,
    site: &str,
    stop: CancellationToken,
) -> Result<(Bus, Arc<Outbox>), busseam::BusError> {
    let client = match (given, url) {
        (Some(bus), _) => bus,
        (None, Some(url)) => {
            let bus = Bus::connect(url, &format!("cti-relay {site}")).await?;
            info!(url, site, "bus client started");
            bus
        }
        (None, None) => return Err(busseam::BusError::Failed("no bus configured".into())),
    };
    let (outbox, mut rx) = Outbox::new(site, client.clone());
    let publisher = client.clone();
    let handed = outbox.clone();
    crate::task::spawn(async move {
        loop {
            let (subject, seq, payload) = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                next = rx.recv() => match next {
                    Some(m) => m,
                    None => return,
                },
            };
            let header = seq.map(|seq| (crate::outbox::SEQ_HEADER, seq.header()));
            let sent = publisher.publish(subject, header, payload).await;
            handed
                .handed
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            if let Err(e) = sent {
                warn!(error = %e, "bus publish failed");
            }
        }
    });
    Ok((client, outbox))
}
