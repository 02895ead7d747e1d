//! Every simulated application answers the relay's heartbeats as a real one does, so none is
//! closed as silent (`X` 6 after 30 s without a frame). Each runs on an in-memory network with
//! a paused clock for 95 s: three times the silence limit and more.

use std::sync::Arc;
use std::time::Duration;

use client_sim::interactive::RequestSpec;
use client_sim::load::LoadOptions;
use client_sim::AppIdentity;
use netseam::MemNetwork;
use testkit::{loopback, SiteSpec, ACD, OPERATOR};

/// Three silence limits and more.
const LONG: Duration = Duration::from_secs(95);

fn listener(relay: std::net::SocketAddr, host: u8, product: u8) -> AppIdentity {
    AppIdentity {
        relay,
        source: Some(loopback(host)),
        protocol: 3,
        product,
        name: "listener".into(),
        devices: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn load_sessions_that_only_listen_stay_admitted_past_the_silence_limit() {
    let net = Arc::new(MemNetwork::new());
    let site = SiteSpec::switches(1).on_network(net.clone()).start().await;
    let opts = LoadOptions {
        app: listener(site.bypass(), 60, ACD),
        sessions: 1,
        duration: Some(LONG),
    };
    let mut more = opts.clone();
    more.app = listener(site.client(), 61, OPERATOR);
    more.sessions = 2;
    let (bypass, licensed) = tokio::join!(
        client_sim::load::run(net.clone(), &opts, |_| {}),
        client_sim::load::run(net.clone(), &more, |_| {})
    );
    for summary in [bypass.unwrap(), licensed.unwrap()] {
        assert_eq!(summary.closed, 0, "{summary:?}");
        assert_eq!(summary.last_close, None);
        assert_eq!(summary.seconds, 95);
    }
}

#[tokio::test(start_paused = true)]
async fn an_interactive_session_stays_admitted_past_the_silence_limit() {
    let net = Arc::new(MemNetwork::new());
    let site = SiteSpec::switches(1).on_network(net.clone()).start().await;
    let who = listener(site.client(), 62, OPERATOR);
    let requests: [RequestSpec; 1] = ["1:K:2201,2202".parse().unwrap()];
    let mut lines = Vec::new();
    let session = client_sim::interactive::run(net.clone(), &who, &requests, |l| lines.push(l));
    assert!(
        tokio::time::timeout(LONG, session).await.is_err(),
        "the session ended before 95 s"
    );
    assert_eq!(site.relay.session_count(), 1);
    let heartbeats = lines.iter().filter(|l| *l == "Heartbeat").count();
    assert_eq!(heartbeats, 9, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Answer 'K' invoke=1 sw=1")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("Close")), "{lines:#?}");
}

#[tokio::test(start_paused = true)]
async fn the_demo_keeps_every_application_for_as_long_as_it_runs() {
    let opts = relay_cli::demo::DemoOptions {
        duration: Some(LONG),
        client_port: 6000,
        switch_port: 5002,
        admin_port: 0,
        clear_screen: false,
    };
    let mut views = Vec::new();
    relay_cli::demo::run_on(
        Arc::new(MemNetwork::new()),
        opts,
        std::future::pending(),
        |v| views.push(v.to_owned()),
    )
    .await
    .unwrap();
    let last = views.last().unwrap();
    assert!(last.starts_with("CTI relay demo: 95 s;"), "{last}");
    for expected in [
        "[Call: 2201 - SW(1)]",
        "[Operator: 2205 - SW(1), 2205 - SW(2)]",
        "[ACD]",
        "licensed sessions 2/23; bypass ACD 1/1",
    ] {
        assert!(last.contains(expected), "missing {expected:?}:\n{last}");
    }
    assert_eq!(last.matches("identified").count(), 3, "{last}");
    assert!(!last.contains("closed"), "{last}");
}
