//! `GET /metrics`: Prometheus text exposition of link state, traffic, sessions, licence use
//! monitors and the export spool.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AdminState;
use crate::hub::LinkCounters;
use crate::licensing::product_label;
use crate::status::SwitchStatus;

pub async fn render(State(s): State<AdminState>) -> impl IntoResponse {
    let hub = s.relay.hub();
    let status = s.relay.status();
    let stats = &hub.stats;
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    // Per switch, from its status and its link's counters.
    type PerSwitch = fn(&SwitchStatus, &LinkCounters) -> u64;
    let per_switch: [(&str, &str, &str, PerSwitch); 6] = [
        (
            "cti_switch_link_up",
            "Whether the switch link is up (1) or not (0).",
            "gauge",
            |sw, _| u64::from(sw.up),
        ),
        (
            "cti_switch_requests_in_flight",
            "Requests waiting for the switch's answer.",
            "gauge",
            |sw, _| sw.requests_in_flight as u64,
        ),
        (
            "cti_switch_frames_in_total",
            "Frames read from the switch, link set-up included.",
            "counter",
            |_, c| load(&c.frames_in),
        ),
        (
            "cti_switch_frames_out_total",
            "Frames sent to the switch, link set-up included.",
            "counter",
            |_, c| load(&c.frames_out),
        ),
        (
            "cti_switch_link_losses_total",
            "Links lost other than by an operator's disconnect.",
            "counter",
            |_, c| load(&c.losses),
        ),
        (
            "cti_switch_recoveries_total",
            "Links brought back up by the recovery schedule after a loss.",
            "counter",
            |_, c| load(&c.recoveries),
        ),
    ];
    for (name, help, kind, value) in per_switch {
        let samples = status
            .switches
            .iter()
            .filter_map(|sw| Some((sw, hub.slot_of(sw.no)?)))
            .map(|(sw, slot)| {
                (
                    format!("{{switch=\"{}\"}}", sw.no),
                    value(sw, &slot.counters),
                )
            })
            .collect();
        metric(name, help, kind, samples);
    }
    const LINK_STATES: [&str; 5] = ["disabled", "idle", "connecting", "up", "waiting"];
    metric(
        "cti_switch_link_state",
        "The switch link's state (1 for the state it is in): disabled, idle (not tried until an operator connects it: recovery gave up, or an operator disconnected it), connecting, up, waiting (for the next attempt).",
        "gauge",
        status
            .switches
            .iter()
            .flat_map(|sw| {
                LINK_STATES.iter().map(move |state| {
                    (
                        format!("{{switch=\"{}\",state=\"{state}\"}}", sw.no),
                        u64::from(sw.link == *state),
                    )
                })
            })
            .collect(),
    );
    let mut per_product: std::collections::BTreeMap<(String, u8), u64> = Default::default();
    for session in &status.sessions {
        *per_product
            .entry((session.product.clone(), session.protocol))
            .or_default() += 1;
    }
    metric(
        "cti_sessions",
        "Admitted application sessions by product and protocol.",
        "gauge",
        per_product
            .into_iter()
            .map(|((product, protocol), n)| {
                (
                    format!("{{product=\"{product}\",protocol=\"{protocol}\"}}"),
                    n,
                )
            })
            .collect(),
    );
    for (name, help, value) in [
        (
            "cti_deliveries_total",
            "Events handed to sessions (events x receiving sessions).",
            load(&stats.deliveries),
        ),
        (
            "cti_requests_forwarded_total",
            "Requests forwarded to switches.",
            load(&stats.requests_forwarded),
        ),
        (
            "cti_relay_answers_total",
            "Requests answered by the relay itself (0xE0-0xE4).",
            load(&stats.relay_answers),
        ),
        (
            "cti_slow_session_closes_total",
            "Sessions closed for reading too slowly (X reason 3).",
            load(&stats.slow_closes),
        ),
        (
            "cti_bus_events_missed_total",
            "Events numbered by the site's link holder that never reached this relay over the bus (each told to resumable sessions as G).",
            load(&stats.site_events_missed),
        ),
        (
            "cti_bus_numbered_unreserved_total",
            "Events this relay numbered as the site's link holder beyond the numbers it had reserved on the bus (the next holder could give such numbers again).",
            load(&stats.numbered_unreserved),
        ),
        (
            "cti_protocol_errors_total",
            "Connections closed for a protocol error.",
            load(&stats.protocol_errors),
        ),
        (
            "cti_connections_accepted_total",
            "Connections accepted on every port.",
            load(&stats.connections_accepted),
        ),
        (
            "cti_smdr_records_total",
            "SMDR records received from switches.",
            load(&stats.smdr_records),
        ),
        (
            "cti_ucd_records_total",
            "UCD records received from switches.",
            load(&stats.ucd_records),
        ),
        (
            "cti_monitor_gaps_total",
            "Frames monitors missed by reading too slowly (ended monitors).",
            load(&hub.monitors.gaps),
        ),
    ] {
        metric(name, help, "counter", vec![(String::new(), value)]);
    }
    metric(
        "cti_sessions_parked",
        "Resumable sessions whose connection ended, kept (with their licence use) for their resume window.",
        "gauge",
        vec![(String::new(), hub.parked().len() as u64)],
    );
    if !hub.config.load().tls.ports.is_empty() {
        metric(
            "cti_tls_handshakes_total",
            "TLS handshakes on the ports that speak TLS: completed, and failed (refused certificate, wrong protocol, too slow).",
            "counter",
            vec![
                (
                    "{outcome=\"completed\"}".into(),
                    hub.tls.handshakes.load(Ordering::Relaxed),
                ),
                (
                    "{outcome=\"failed\"}".into(),
                    hub.tls.handshakes_failed.load(Ordering::Relaxed),
                ),
            ],
        );
    }
    if let Some(bus) = hub.bus.load().as_deref() {
        if hub.config.load().bus.shared {
            metric(
                "cti_bus_lease_held",
                "1 while this relay holds its shared site's lease (and dials its switches), 0 while the other relay does.",
                "gauge",
                vec![(String::new(), u64::from(bus.lease_held.load(Ordering::Relaxed)))],
            );
        }
        metric(
            "cti_bus_messages_total",
            "Messages this relay's switches put on the bus, and those dropped because the bus was behind.",
            "counter",
            vec![
                (
                    "{outcome=\"published\"}".into(),
                    bus.published.load(Ordering::Relaxed),
                ),
                (
                    "{outcome=\"dropped\"}".into(),
                    bus.dropped.load(Ordering::Relaxed),
                ),
            ],
        );
    }
    let licence = &status.licence;
    // Days until the trial or the licence ends (none for a licence that never expires).
    let today = licence.at_ms / crate::licensing::DAY_MS;
    let days_left = match licence.standing.as_str() {
        "trial" => Some(licence.trial_days_left),
        "licensed" => licence
            .expires
            .as_deref()
            .and_then(crate::licensing::key::parse_day)
            .map(|day| u64::from(day).saturating_sub(today)),
        _ => Some(0),
    };
    metric(
        "cti_licence_days_left",
        "Days until the trial or the licence ends (absent for a licence that never expires).",
        "gauge",
        days_left
            .map(|d| (format!("{{standing=\"{}\"}}", licence.standing), d))
            .into_iter()
            .collect(),
    );
    metric(
        "cti_licensed_sessions",
        "Licensed-port sessions in use and the simultaneous access limit.",
        "gauge",
        vec![
            (
                "{kind=\"in_use\"}".into(),
                u64::from(licence.licensed_in_use),
            ),
            ("{kind=\"limit\"}".into(), u64::from(licence.access_limit)),
        ],
    );
    let products = licence
        .counted()
        .flat_map(|(name, used, limit)| use_and_limit(name, used.unwrap_or(0), limit))
        .collect();
    metric(
        "cti_licence_products",
        "Sessions of each counted licensed product in use, and the licence's limit.",
        "gauge",
        products,
    );
    metric(
        "cti_bypass_sessions",
        "Bypass-port sessions of each product in use, and the configured limit.",
        "gauge",
        licence
            .bypass
            .iter()
            .flat_map(|b| use_and_limit(product_label(&b.name), b.in_use, b.limit))
            .collect(),
    );
    let (sw, su, export) = hub.monitors.counts();
    metric(
        "cti_monitors",
        "Attached monitor and export connections.",
        "gauge",
        vec![
            ("{port=\"switch_messages\"}".into(), sw as u64),
            ("{port=\"smdr_ucd\"}".into(), su as u64),
            ("{port=\"export\"}".into(), export as u64),
        ],
    );
    let spool = &hub.spool.counters;
    let (pending, pending_bytes) = hub.spool.pending();
    for (name, help, kind, v) in [
        (
            "cti_export_records_spooled_total",
            "SMDR/UCD records written to the export spool.",
            "counter",
            load(&spool.spooled),
        ),
        (
            "cti_export_records_exported_total",
            "Spooled records delivered to a collector (acknowledged and settled).",
            "counter",
            load(&spool.exported),
        ),
        (
            "cti_export_records_pending",
            "Spooled records no collector has yet.",
            "gauge",
            pending,
        ),
        (
            "cti_export_spool_bytes",
            "Bytes of the pending records on disk.",
            "gauge",
            pending_bytes,
        ),
        (
            "cti_export_records_dropped_total",
            "Undelivered records removed by retention (export.spool).",
            "counter",
            load(&spool.dropped),
        ),
        (
            "cti_export_spool_write_errors_total",
            "Journal writes or syncs of the export spool that failed.",
            "counter",
            load(&spool.write_errors),
        ),
    ] {
        metric(name, help, kind, vec![(String::new(), v)]);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The two samples of a product: `{product="…",kind="in_use"}` and `kind="limit"`.
fn use_and_limit(product: &str, used: u32, limit: u32) -> [(String, u64); 2] {
    [("in_use", used), ("limit", limit)].map(|(kind, v)| {
        (
            format!("{{product=\"{product}\",kind=\"{kind}\"}}"),
            u64::from(v),
        )
    })
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
