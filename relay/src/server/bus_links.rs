//! This relay's switches on the bus: published and served to other sites, and, for a site
//! two relays share, dialled by the lease holder and followed from the bus by the other.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info_span, Instrument};

use super::reconciler::Reconciler;
use crate::config::SwitchNo;
use crate::hub::Hub;
use crate::link::recovery::SwitchCommand;

/// What the bus tasks of this relay's switches need.
pub(super) struct BusLinks {
    pub hub: Arc<Hub>,
    pub client: busseam::Bus,
    pub outbox: Arc<crate::outbox::Outbox>,
    pub site: String,
}

type Tasks = Vec<tokio::task::JoinHandle<()>>;

impl BusLinks {
    /// Publishes and serves `local` switches on the bus until the token returned is
    /// cancelled (or `stop`).
    fn export(&self, local: &[u8], stop: &CancellationToken) -> (CancellationToken, Tasks) {
        let token = stop.child_token();
        let mut tasks = vec![
            crate::task::spawn(crate::bus::publish::publish_states(
                self.hub.clone(),
                self.outbox.clone(),
                token.clone(),
            )),
            crate::task::spawn(crate::bus::publish::publish_notices(
                self.hub.clone(),
                self.outbox.clone(),
                token.clone(),
            )),
        ];
        for &no in local {
            tasks.push(crate::task::spawn(crate::bus::publish::serve_requests(
                self.hub.clone(),
                self.client.clone(),
                self.site.clone(),
                no,
                token.clone(),
            )));
        }
        (token, tasks)
    }

    /// Serves `local` switches from the bus, as the other relay of the site publishes them,
    /// until the token returned is cancelled (or `stop`).
    fn follow(&self, local: &[u8], stop: &CancellationToken) -> (CancellationToken, Tasks) {
        let token = stop.child_token();
        let tasks = local
            .iter()
            .filter_map(|&no| Some((no, SwitchNo::new(no)?)))
            .map(|(no, switch)| {
                let remote = crate::config::RemoteSwitch {
                    site: self.site.clone(),
                    no,
                };
                crate::task::spawn(
                    crate::bus::remote::run(
                        self.hub.clone(),
                        self.client.clone(),
                        switch,
                        remote,
                        token.clone(),
                    )
                    .instrument(info_span!("shared switch", no)),
                )
            })
            .collect();
        (token, tasks)
    }
}

async fn end_tasks(part: Option<(CancellationToken, Tasks)>) {
    if let Some((token, tasks)) = part {
        token.cancel();
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Publishes and serves the local switches on the bus, those the reconciler runs (`local`
/// changes with the configuration in force), until `stop`.
pub(super) async fn export_links(
    bus: BusLinks,
    mut local: watch::Receiver<Vec<u8>>,
    stop: CancellationToken,
) {
    loop {
        let numbers = local.borrow_and_update().clone();
        let exporting = bus.export(&numbers, &stop);
        let changed = tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            changed = local.changed() => changed.is_ok(),
        };
        end_tasks(Some(exporting)).await;
        if !changed {
            return;
        }
    }
}

/// For how long after taking the lease a switch not up yet is tried again every second.
const TAKEOVER_RETRIES: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a relay that handed its lease over waits before it may take it again (when no
/// other relay took it).
const HANDED_OVER: std::time::Duration = std::time::Duration::from_secs(3);
/// Longest wait for this relay's links to close before its lease is released.
const LINKS_CLOSE: std::time::Duration = std::time::Duration::from_secs(1);

/// What woke the lease's loop.
enum Wake {
    Stop,
    /// Time to renew (or take); also when the lease runs out or the other relay frees it.
    Step,
    /// The switches the reconciler runs changed.
    Switches,
    /// An operator asked this relay to hand the lease over (`relay ctl lease release`).
    HandOver,
    /// The holder's switch reader read events it has no numbers for yet.
    NumbersLow,
}

/// Shares the site's local switch links with another relay through the lease: while this
/// relay holds it, it dials them and publishes and serves them; while it does not, it serves
/// them from the bus as the holder publishes them. The switches are those the reconciler runs
/// (`local`): one added or enabled is dialled by the holder, served by the other, at once.
///
/// The hub's fence follows the lease, so no supervisor dials outside it. At `stop` (and when
/// `hand_over` is notified) a holder closes its links and releases the lease, so the other
/// relay takes the links at once instead of after the lease expires.
pub(super) async fn share_links(
    bus: BusLinks,
    node: String,
    switches: Arc<std::sync::Mutex<Reconciler>>,
    mut local_watch: watch::Receiver<Vec<u8>>,
    hand_over: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    use crate::bus::lease::{Lease, RENEW_EVERY};
    use tokio::time::{sleep_until, Instant};
    let mut lease = loop {
        match Lease::open(bus.client.clone(), &bus.site, &node).await {
            Ok(lease) => break lease,
            Err(e) => {
                tracing::warn!(error = %e, "bus: the lease store is not available yet");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
            }
        }
    };
    let mut marks = crate::bus::marks::Marks::new(bus.client.clone(), &bus.site);
    let command = |numbers: &[u8], c: SwitchCommand| {
        let switches = switches.lock().unwrap_or_else(|e| e.into_inner());
        for &no in numbers {
            switches.command(no, c);
        }
    };
    let any_up = |numbers: &[u8]| {
        numbers
            .iter()
            .any(|no| bus.hub.slot_of(*no).is_some_and(|s| s.is_up()))
    };
    let mut local = local_watch.borrow_and_update().clone();
    let mut exporting: Option<(CancellationToken, Tasks)> = None;
    let mut following: Option<(CancellationToken, Tasks)> = None;
    let mut taken: Option<Instant> = None;
    let mut tick = tokio::time::interval(RENEW_EVERY);
    let mut holding = false;
    // After a hand-over: not before this is the lease taken again.
    let mut resting_until: Option<Instant> = None;
    loop {
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        let runs_out = lease.valid_until().unwrap_or(far);
        let wake = tokio::select! {
            biased;
            _ = stop.cancelled() => Wake::Stop,
            _ = sleep_until(runs_out), if holding => Wake::Step,
            _ = tick.tick() => Wake::Step,
            _ = lease.freed(), if !holding => Wake::Step,
            _ = hand_over.notified(), if holding => Wake::HandOver,
            _ = bus.outbox.numbers_low.notified(), if exporting.is_some() => Wake::NumbersLow,
            changed = local_watch.changed() => match changed {
                Ok(()) => Wake::Switches,
                Err(_) => Wake::Stop,
            },
        };
        match wake {
            Wake::Stop => break,
            Wake::Step => {
                if resting_until.is_some_and(|t| Instant::now() < t) {
                    continue;
                }
                resting_until = None;
                holding = lease.step().await;
                if holding && exporting.is_some() {
                    reserve_needed(&mut marks, &bus.hub, &local).await;
                }
            }
            Wake::NumbersLow => {
                if holding {
                    reserve_needed(&mut marks, &bus.hub, &local).await;
                }
            }
            Wake::HandOver => {
                command(&local, SwitchCommand::Disconnect);
                bus.hub.fence.shut_now();
                if wait_closed(&any_up, &local, LINKS_CLOSE).await {
                    marks.settle(&bus.hub, &local).await;
                }
                bus.outbox.flushed(LINKS_CLOSE).await;
                lease.release().await;
                holding = false;
                resting_until = Some(Instant::now() + HANDED_OVER);
            }
            Wake::Switches => {}
        }
        match lease.valid_until() {
            Some(until) => bus.hub.fence.open_until(until),
            None => bus.hub.fence.shut_now(),
        }
        bus.outbox
            .lease_held
            .store(holding, std::sync::atomic::Ordering::Relaxed);
        let now = local_watch.borrow_and_update().clone();
        if now != local {
            let added: Vec<u8> = now
                .iter()
                .filter(|no| !local.contains(no))
                .copied()
                .collect();
            local = now;
            if exporting.is_some() {
                end_tasks(exporting.take()).await;
                marks.added(&bus.hub, &added);
                command(&added, SwitchCommand::Connect);
                exporting = Some(bus.export(&local, &stop));
            }
            if following.is_some() {
                end_tasks(following.take()).await;
                following = Some(bus.follow(&local, &stop));
            }
        }
        if holding && exporting.is_none() {
            end_tasks(following.take()).await;
            // Numbers run on from every number the last holder may have given before the
            // first event is read; until then no link is dialled.
            match marks.take_over(&bus.hub, &local).await {
                Ok(()) => {
                    command(&local, SwitchCommand::Connect);
                    exporting = Some(bus.export(&local, &stop));
                    taken = Some(Instant::now());
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "bus: holding the lease, but the site's numbers could not be reserved; \
                     the links are dialled once they are"
                ),
            }
        } else if holding && taken.is_some_and(|at| at.elapsed() < TAKEOVER_RETRIES) {
            // The floating address a switch is dialled from may reach this host just after
            // the lease: a switch not up yet is tried again each second for a while, instead
            // of at the recovery schedule's pace.
            let down: Vec<u8> = local
                .iter()
                .copied()
                .filter(|no| bus.hub.slot_of(*no).is_some_and(|s| !s.is_up()))
                .collect();
            command(&down, SwitchCommand::Connect);
        } else if !holding && following.is_none() {
            let held = exporting.is_some();
            end_tasks(exporting.take()).await;
            if held {
                command(&local, SwitchCommand::Disconnect);
                wait_closed(&any_up, &local, std::time::Duration::from_secs(3)).await;
            }
            following = Some(bus.follow(&local, &stop));
        }
    }
    // A planned stop: the links close with the relay; once they have, the lease is released
    // so that the other relay dials at once.
    bus.hub.fence.shut_now();
    if lease.held() {
        if wait_closed(&any_up, &local, LINKS_CLOSE).await {
            marks.settle(&bus.hub, &local).await;
        }
        bus.outbox.flushed(LINKS_CLOSE).await;
        lease.release().await;
        bus.outbox
            .lease_held
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
    end_tasks(exporting).await;
    end_tasks(following).await;
}

/// Waits until none of `numbers` is up, for at most `limit`; says whether they all closed.
async fn wait_closed(
    any_up: &impl Fn(&[u8]) -> bool,
    numbers: &[u8],
    limit: std::time::Duration,
) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while any_up(numbers) && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    !any_up(numbers)
}

/// The numbers the holder's switch readers wait for, reserved, and the readers woken when
/// any were. A reservation that fails is tried again at the reader's next ask (it asks again
/// every 50 ms while it waits) or the next renewal; the reader waits meanwhile, and lets the
/// link go if the lease runs out first.
async fn reserve_needed(marks: &mut crate::bus::marks::Marks, hub: &Hub, local: &[u8]) {
    match marks.reserve_needed(hub, local).await {
        Ok(false) => {}
        Ok(true) => {
            if let Some(outbox) = hub.bus.load().as_ref() {
                outbox.numbers_reserved.notify_waiters();
            }
        }
        Err(e) => tracing::debug!(error = %e, "bus: numbers not reserved this time"),
    }
}
