//! The soak (`client-sim soak`) against a relay run on the shipped `config/soak.yaml`, on an
//! in-memory network with a paused clock: two minutes of requests, events and link faults
//! without one violation.

use std::sync::Arc;
use std::time::Duration;

use client_sim::soak::{self, RelayProcess, SoakOptions};
use netseam::MemNetwork;
use relay::{Config, Daemon, Listeners, RelayParts};

#[tokio::test(start_paused = true)]
async fn two_minutes_of_faults_break_no_invariant() {
    let net = Arc::new(MemNetwork::new());
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/soak.yaml"))
        .expect("config/soak.yaml");
    let mut config = Config::parse(&text).expect("config/soak.yaml is valid");
    let state = tempfile::tempdir().unwrap();
    config.state_dir = state.path().to_owned();
    config.log_dir = state.path().join("log");
    let listeners = Listeners::bind(net.as_ref(), &config).await.unwrap();
    let relay_addr = relay_client(&config);
    let daemon = Daemon::start(
        RelayParts {
            net: net.clone(),
            ..RelayParts::new(config)
        },
        listeners,
    )
    .unwrap();
    let relay = daemon.relay().clone();
    let opts = SoakOptions {
        relay: relay_addr,
        switch_base: "127.0.1.1:5002".parse().unwrap(),
        switches: 2,
        apps: 20,
        rate: 200,
        duration: Duration::from_secs(120),
        faults: Some(Duration::from_secs(5)),
        traffic: Duration::from_millis(50),
        seed: 7,
        relay_process: RelayProcess::Unknown,
        report_every: Duration::from_secs(60),
    };
    let mut lines = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let summary = soak::run(net.clone(), opts, move |l| {
        let _ = tx.send(l);
    })
    .await
    .unwrap();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    let report = lines.join("\n");
    assert_eq!(summary.violations, 0, "{report}");
    assert_eq!(summary.never_answered, 0, "{report}");
    assert_eq!(summary.unexpected_closes, 0, "{report}");
    assert!(summary.faults >= 20, "{} faults\n{report}", summary.faults);
    assert!(summary.requests >= 10_000, "{summary:?}");
    assert!(summary.answers >= summary.requests * 9 / 10, "{summary:?}");
    assert!(summary.events > 1_000, "{summary:?}");
    // The soak's applications went with it: the relay keeps none of them.
    testkit::wait_until("every session gone", || relay.session_count() == 0).await;
}

fn relay_client(config: &Config) -> std::net::SocketAddr {
    std::net::SocketAddr::new(config.listen.address, config.listen.client_port)
}
