//! Load mode: many identical sessions that read everything the relay sends (answering its
//! heartbeats), reporting events per second and the switch-to-application latency of load
//! events each second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use netseam::Network;
use wire::{CallMsg, Kind, LinkMsg};

use crate::app::{AppIdentity, SimApp};

/// What a load run is.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// What every session identifies as.
    pub app: AppIdentity,
    pub sessions: usize,
    /// Stop after this long; until a session is closed when absent.
    pub duration: Option<Duration>,
}

/// How a load run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSummary {
    pub seconds: u64,
    pub events: u64,
    /// Sessions the relay closed (or lost) before the end.
    pub closed: u64,
    /// The last `X` a closed session received: reason and text.
    pub last_close: Option<(u8, String)>,
}

/// Latency histogram bounds: 1 ns to 60 s, 3 significant figures.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

#[derive(Default)]
struct Shared {
    events: AtomicU64,
    ended: AtomicU64,
    last_close: Mutex<Option<(u8, String)>>,
}

/// Identifies `opts.sessions` sessions on `net`, then reports a line each second through
/// `report` until the duration has passed or the relay closes a session.
pub async fn run(
    net: Arc<dyn Network>,
    opts: &LoadOptions,
    mut report: impl FnMut(String),
) -> anyhow::Result<LoadSummary> {
    let shared = Arc::new(Shared::default());
    let latency = Arc::new(Mutex::new(histogram()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..opts.sessions {
        let app = SimApp::admitted_on(net.as_ref(), &opts.app).await?;
        let (shared, latency, p3) = (shared.clone(), latency.clone(), opts.app.protocol == 3);
        tasks.spawn(async move {
            let (mut rd, _wr) = app.into_split();
            let mut local = histogram();
            let mut count = 0u64;
            while let Ok(Some(f)) = rd.next_frame().await {
                match f.kind() {
                    Kind::Event => {}
                    Kind::Link => {
                        if let Ok(LinkMsg::Close { reason, text }) = LinkMsg::decode(&f) {
                            *shared.last_close.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some((reason, text.to_string()));
                        }
                        continue;
                    }
                    _ => continue,
                }
                count += 1;
                if let Ok(m) = CallMsg::decode(&f, p3) {
                    if let Some(sent) = switch_sim::load::sent_ns(m.code, &m.body) {
                        let _ =
                            local.record(switch_sim::load::unix_ns().saturating_sub(sent).max(1));
                    }
                }
                if count.is_multiple_of(1024) {
                    shared.events.fetch_add(count, Ordering::Relaxed);
                    count = 0;
                    let _ = latency
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .add(&local);
                    local.reset();
                }
            }
            shared.events.fetch_add(count, Ordering::Relaxed);
            shared.ended.fetch_add(1, Ordering::Relaxed);
        });
    }
    report(format!(
        "{} sessions identified; reporting each second",
        opts.sessions
    ));
    let mut total = histogram();
    let mut all_events = 0u64;
    let mut second = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let closed = loop {
        tick.tick().await;
        second += 1;
        let e = shared.events.swap(0, Ordering::Relaxed);
        all_events += e;
        let h = std::mem::replace(
            &mut *latency.lock().unwrap_or_else(|e| e.into_inner()),
            histogram(),
        );
        total.add(&h)?;
        report(format!(
            "t={second}s events/s={e} latency p50={} p99={} p999={}",
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999))
        ));
        let gone = shared.ended.load(Ordering::Relaxed);
        if gone > 0 {
            let why = shared
                .last_close
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .map_or(String::new(), |(r, t)| format!(" (X {r} {t})"));
            report(format!(
                "{gone} session(s) closed by the relay{why}; stopping"
            ));
            break gone;
        }
        if opts
            .duration
            .is_some_and(|d| Duration::from_secs(second + 1) > d)
        {
            break 0;
        }
    };
    tasks.abort_all();
    report(format!(
        "total: {all_events} events over {second} s = {}/s; latency p50={} p99={} p999={}",
        all_events / second.max(1),
        us(total.value_at_quantile(0.5)),
        us(total.value_at_quantile(0.99)),
        us(total.value_at_quantile(0.999))
    ));
    let last_close = shared
        .last_close
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(LoadSummary {
        seconds: second,
        events: all_events,
        closed,
        last_close,
    })
}

/// Nanoseconds as microseconds with one decimal.
pub fn us(ns: u64) -> String {
    format!("{:.1}µs", ns as f64 / 1000.0)
}
