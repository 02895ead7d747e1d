//! Failover: two relays share a site's switch link through the bus's lease; the active one is
//! a `relay run` process, killed with SIGKILL; the standby runs here. One iteration is one
//! failover, timed from the kill to the first event a resumable application on the standby
//! receives again (it is closed when its only switch goes, and comes back with its token as
//! soon as the standby admits it). Each iteration has its own site name (so its own lease) and
//! its own simulated switch; all of that is set up untimed.
//!
//! Needs `nats-server` with JetStream (Debian's `nats-server`; or `RELAY_NATS_SERVER`).

use std::path::Path;
use std::time::Duration;

use client_sim::SimApp;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use relay::config::SwitchConfig;
use testkit::nats::NatsServer;
use testkit::process::RelayProcess;
use testkit::{loopback, Site, SiteSpec};
use tokio::time::Instant;
use wire::{ResumeAsk, Token};

/// A resumable Operator from 127.0.0.52, identified with `token` and `last`, once admitted.
async fn resumable(site: &Site, token: Token, last: Vec<(u8, u64)>) -> (SimApp, Token) {
    loop {
        let mut app = SimApp::connect(site.client(), Some(loopback(52)))
            .await
            .unwrap();
        let ask = ResumeAsk {
            token,
            last: last.clone(),
        };
        let id = app
            .identify_with(3, 3, "console", &[], Some(ask))
            .await
            .unwrap();
        if id.result == 0 {
            return (app, id.resume.expect("resume is on").token);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number of the next event; `None` once the relay closes the connection.
async fn next_event(app: &mut SimApp) -> Option<u64> {
    app.next_numbered_event().await.ok()?.map(|(seq, _)| seq)
}

/// One failover on site `site`: set up, kill, and the time to the first event again.
async fn failover(nats: &NatsServer, site: &str) -> Duration {
    let switch = SiteSpec::officeserv(1)
        .configure(|c| c.switches[0].enabled = false)
        .wait_up(&[])
        .start()
        .await;
    let addr = switch.switch(1).addr();
    let bus = |node: &str| {
        format!(
            "bus: {{ nats: \"{}\", site: {site}, shared: true, node: {node} }}\n",
            nats.url()
        )
    };
    let active =
        RelayProcess::start_with(Path::new(env!("CARGO_BIN_EXE_relay")), addr, 0, &bus("a"))
            .unwrap();
    while switch.switch(1).opened() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (url, site_name) = (nats.url(), site.to_owned());
    let standby = SiteSpec::switches(0)
        .configure(move |c| {
            c.bus.nats = Some(url);
            c.bus.site = site_name;
            c.bus.shared = true;
            c.bus.node = "b".into();
            c.switches = vec![SwitchConfig::new(
                1,
                &addr.ip().to_string(),
                addr.port(),
                "1234",
            )];
        })
        .start()
        .await;
    standby.wait_switch_up(1).await;
    let (mut app, token) = resumable(&standby, [0; 16], Vec::new()).await;
    switch.switch(1).emit_event(b's', "2201", &[]);
    let seq = next_event(&mut app)
        .await
        .expect("an event through the bus");

    // The switch keeps producing events; none can reach anyone while no relay holds its link.
    let emitter = {
        let sw = switch.switch(1).clone();
        tokio::spawn(async move {
            loop {
                sw.emit_event(b's', "2202", &[]);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let killed = Instant::now();
    drop(active);
    while next_event(&mut app).await.is_some() {}
    let (mut app, _) = resumable(&standby, token, vec![(1, seq)]).await;
    next_event(&mut app)
        .await
        .expect("an event from the standby");
    let took = killed.elapsed();
    emitter.abort();
    standby.relay.shutdown().await;
    took
}

fn bench(c: &mut Criterion) {
    if let Err(why) = testkit::nats::binary() {
        eprintln!("failover bench skipped: {why}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nats = NatsServer::start_jetstream();
    let mut group = c.benchmark_group("failover");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(75));
    let mut n = 0u32;
    group.bench_function("kill_to_first_event_on_the_standby", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let took = rt.block_on(failover(&nats, &format!("site{n}")));
                eprintln!("failover {n}: {took:?}");
                total += took;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
