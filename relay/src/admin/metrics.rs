//! `GET /metrics`: Prometheus text exposition of link state, traffic, sessions, licence use
//! and monitors.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AdminState;

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
    metric(
        "cti_switch_link_up",
        "Whether the switch link is up (1) or not (0).",
        "gauge",
        status
            .switches
            .iter()
            .map(|sw| (format!("{{switch=\"{}\"}}", sw.no), u64::from(sw.up)))
            .collect(),
    );
    metric(
        "cti_switch_requests_in_flight",
        "Requests waiting for the switch's answer.",
        "gauge",
        status
            .switches
            .iter()
            .map(|sw| {
                (
                    format!("{{switch=\"{}\"}}", sw.no),
                    sw.requests_in_flight as u64,
                )
            })
            .collect(),
    );
    for (name, help, which) in [
        (
            "cti_switch_frames_in_total",
            "Frames read from the switch, link set-up included.",
            0,
        ),
        (
            "cti_switch_frames_out_total",
            "Frames sent to the switch, link set-up included.",
            1,
        ),
        (
            "cti_switch_link_losses_total",
            "Links lost other than by an operator's disconnect.",
            2,
        ),
        (
            "cti_switch_recoveries_total",
            "Links brought back up by the recovery schedule after a loss.",
            3,
        ),
    ] {
        metric(
            name,
            help,
            "counter",
            status
                .switches
                .iter()
                .filter_map(|sw| hub.slot(sw.no))
                .map(|slot| {
                    let c = &slot.counters;
                    let v = [&c.frames_in, &c.frames_out, &c.losses, &c.recoveries][which];
                    (
                        format!("{{switch=\"{}\"}}", slot.no),
                        v.load(Ordering::Relaxed),
                    )
                })
                .collect(),
        );
    }
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
    let counter = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    for (name, help, value) in [
        (
            "cti_deliveries_total",
            "Events handed to sessions (events x receiving sessions).",
            counter(&stats.deliveries),
        ),
        (
            "cti_requests_forwarded_total",
            "Requests forwarded to switches.",
            counter(&stats.requests_forwarded),
        ),
        (
            "cti_relay_answers_total",
            "Requests answered by the relay itself (0xE0-0xE4).",
            counter(&stats.relay_answers),
        ),
        (
            "cti_slow_session_closes_total",
            "Sessions closed for reading too slowly (X reason 3).",
            counter(&stats.slow_closes),
        ),
        (
            "cti_protocol_errors_total",
            "Connections closed for a protocol error.",
            counter(&stats.protocol_errors),
        ),
        (
            "cti_connections_accepted_total",
            "Connections accepted on every port.",
            counter(&stats.connections_accepted),
        ),
        (
            "cti_smdr_records_total",
            "SMDR records received from switches.",
            counter(&stats.smdr_records),
        ),
        (
            "cti_ucd_records_total",
            "UCD records received from switches.",
            counter(&stats.ucd_records),
        ),
        (
            "cti_monitor_gaps_total",
            "Frames monitors missed by reading too slowly (ended monitors).",
            counter(&hub.monitors.gaps),
        ),
    ] {
        metric(name, help, "counter", vec![(String::new(), value)]);
    }
    let licence = &status.licence;
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
    let mut products = Vec::new();
    for (name, limit, used) in &licence.products {
        // Counted products only; flag products (limit yes/no) are not a number.
        if let (Ok(limit), Ok(used)) = (limit.parse::<u64>(), used.parse::<u64>()) {
            let name = label(name);
            products.push((format!("{{product=\"{name}\",kind=\"in_use\"}}"), used));
            products.push((format!("{{product=\"{name}\",kind=\"limit\"}}"), limit));
        }
    }
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
            .flat_map(|(name, limit, used)| {
                let name = label(name);
                [
                    (
                        format!("{{product=\"{name}\",kind=\"in_use\"}}"),
                        u64::from(*used),
                    ),
                    (
                        format!("{{product=\"{name}\",kind=\"limit\"}}"),
                        u64::from(*limit),
                    ),
                ]
            })
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// A product's display name without its remark: "Call (CallPlus counts as Call)" is "Call".
fn label(name: &str) -> &str {
    name.split(" (").next().unwrap_or(name)
}
