//! The life of one switch's link (docs/behaviour.md §3): the first connection, and after a loss one
//! immediate attempt then one every `cycle_minutes`, up to `attempts` in all; after the last
//! failure the switch stays down until an operator reconnects it. Operators can connect,
//! disconnect, and abort an attempt in progress (the schedule then goes on). Each switch has
//! its own supervisor, so one switch's attempts never delay another's.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use crate::config::SwitchNo;
use crate::hub::{Hub, LinkPhase};
use crate::link::{establish, run, Open};
use crate::notify::{LinkFailure, LossCause, Notice};

/// What an operator can ask of one switch's link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchCommand {
    /// Connect now (also after recovery gave up).
    Connect,
    /// Close the link (or stop trying) until told to connect.
    Disconnect,
    /// Give up the attempt in progress; the schedule goes on.
    Abort,
}

/// How an attempt ended.
enum Attempt {
    Open(Open),
    Failed,
    /// An operator asked to disconnect: stop trying.
    Disconnect,
}

/// What the supervisor does next.
enum Next {
    /// Start a series of attempts; `recovering` after a loss.
    Try { recovering: bool },
    /// Wait for an operator's Connect.
    Idle,
}

/// Keeps switch `no` as the schedule and the operator say, until `stop`.
pub async fn supervise(
    hub: Arc<Hub>,
    switch: SwitchNo,
    stop: CancellationToken,
    mut commands: mpsc::UnboundedReceiver<SwitchCommand>,
    connect_now: bool,
) {
    let mut next = if connect_now {
        Next::Try { recovering: false }
    } else {
        Next::Idle
    };
    let slot = hub.slot(switch);
    loop {
        next = match next {
            Next::Idle => loop {
                slot.set_phase(LinkPhase::Idle);
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    c = commands.recv() => match c {
                        Some(SwitchCommand::Connect) => break Next::Try { recovering: false },
                        Some(_) => {}
                        None => return,
                    },
                }
            },
            Next::Try { recovering } => {
                match attempts(&hub, switch, &stop, &mut commands, recovering).await {
                    Some(next) => next,
                    None => return,
                }
            }
        };
    }
}

/// Up to `attempts` attempts on the schedule; then runs the link while it lasts. `None`: stop.
async fn attempts(
    hub: &Arc<Hub>,
    switch: SwitchNo,
    stop: &CancellationToken,
    commands: &mut mpsc::UnboundedReceiver<SwitchCommand>,
    recovering: bool,
) -> Option<Next> {
    let no = switch.get();
    let recovery = hub.config.load().options.recovery.clone();
    let cycle = hub
        .tuning
        .recovery_cycle
        .unwrap_or(Duration::from_secs(u64::from(recovery.cycle_minutes) * 60));
    if recovering {
        hub.notices.emit(Notice::RecoveryStarted {
            switch: no,
            attempts: recovery.attempts,
            cycle_minutes: recovery.cycle_minutes,
        });
    }
    let slot = hub.slot(switch);
    let mut made = 0;
    loop {
        made += 1;
        slot.attempt.store(made, Ordering::Relaxed);
        slot.set_phase(LinkPhase::Connecting);
        match attempt(hub, no, stop, commands).await? {
            Attempt::Disconnect => return Some(Next::Idle),
            Attempt::Open(open) => {
                if recovering {
                    hub.notices.emit(Notice::RecoveryCompleted { switch: no });
                    slot.counters.recoveries.fetch_add(1, Ordering::Relaxed);
                }
                let link_stop = stop.child_token();
                let link = run(hub, switch, open, &link_stop);
                tokio::pin!(link);
                let mut operator = false;
                // An operator's connect that comes while the disconnected link winds down.
                let mut connect_again = false;
                let cause = loop {
                    tokio::select! {
                        cause = &mut link => break cause,
                        c = commands.recv() => match c {
                            Some(SwitchCommand::Disconnect) | None => {
                                operator = true;
                                connect_again = false;
                                link_stop.cancel();
                            }
                            Some(SwitchCommand::Connect) => connect_again = operator,
                            Some(SwitchCommand::Abort) => {}
                        },
                    }
                };
                // The operator's disconnect marks the link down at once; the link may see
                // that (and end) before this loop sees the command.
                let operator = operator || cause == LossCause::Operator;
                let cause = if operator { LossCause::Operator } else { cause };
                let stopping = cause == LossCause::Stopping;
                if !stopping && !operator {
                    slot.counters.losses.fetch_add(1, Ordering::Relaxed);
                }
                // Only this supervisor's own link: one the bus serves is not its to end.
                hub.link_lost_if(no, |l| !l.via_bus, cause);
                return if stopping {
                    None
                } else if operator && connect_again {
                    Some(Next::Try { recovering: false })
                } else if operator {
                    Some(Next::Idle)
                } else {
                    Some(Next::Try { recovering: true })
                };
            }
            Attempt::Failed => {
                if made >= recovery.attempts {
                    // At start-up, after an operator's connect or after a loss alike.
                    hub.notices.emit(Notice::RecoveryExhausted {
                        switch: no,
                        attempts: made,
                    });
                    return Some(Next::Idle);
                }
            }
        }
        slot.set_phase(LinkPhase::Waiting);
        hub.notices.emit(Notice::RecoveryWaiting {
            switch: no,
            minutes: recovery.cycle_minutes,
        });
        let wait = sleep(cycle);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return None,
                c = commands.recv() => match c {
                    Some(SwitchCommand::Connect) => break,
                    Some(SwitchCommand::Disconnect) | None => return Some(Next::Idle),
                    Some(SwitchCommand::Abort) => {}
                },
                _ = &mut wait => break,
            }
        }
    }
}

/// One attempt of at most 60 s, which an operator may abort or turn into a disconnect.
async fn attempt(
    hub: &Arc<Hub>,
    no: u8,
    stop: &CancellationToken,
    commands: &mut mpsc::UnboundedReceiver<SwitchCommand>,
) -> Option<Attempt> {
    let config = hub.config.load_full();
    let Some(sw) = config.switch(no).filter(|s| s.enabled).cloned() else {
        return Some(Attempt::Disconnect);
    };
    // On a site two relays share, only while this relay's lease is valid (look before acting:
    // the process may just have woken from a stop that outlasted the lease).
    if !hub.fence.open() {
        tracing::info!(
            switch = no,
            "not dialled: this relay holds no valid lease on the site's links"
        );
        return Some(Attempt::Disconnect);
    }
    hub.notices.emit(Notice::Connecting {
        switch: no,
        address: sw.address.clone(),
        port: sw.port,
    });
    let timed = tokio::time::timeout(hub.tuning.attempt_timeout, establish(hub, &sw));
    tokio::pin!(timed);
    let outcome = loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            c = commands.recv() => match c {
                Some(SwitchCommand::Abort) => {
                    hub.notices.emit(Notice::AttemptAborted { switch: no });
                    return Some(Attempt::Failed);
                }
                Some(SwitchCommand::Disconnect) | None => return Some(Attempt::Disconnect),
                Some(SwitchCommand::Connect) => {}
            },
            r = &mut timed => break r,
        }
    };
    match outcome {
        Ok(Ok(_)) if !hub.fence.open() => {
            tracing::info!(
                switch = no,
                "link closed unused: the lease ran out while it was opened"
            );
            Some(Attempt::Disconnect)
        }
        Ok(Ok(open)) => Some(Attempt::Open(open)),
        Ok(Err(failure)) => {
            hub.notices.emit(Notice::LinkAttemptFailed {
                switch: no,
                failure,
            });
            Some(Attempt::Failed)
        }
        Err(_) => {
            hub.notices.emit(Notice::LinkAttemptFailed {
                switch: no,
                failure: LinkFailure::AttemptTimeout,
            });
            Some(Attempt::Failed)
        }
    }
}
