//! Federation over a real `nats-server` on loopback: a switch of site `hq` served to
//! applications of site `branch` as its switch 3 (requests, answers, events, filtering), and
//! the site's loss seen there as `W`.
//!
//! Needs `nats-server` (`.ci/run` installs Debian's). Without it the tests fail under CI (`CI`
//! set); elsewhere they are reported as ignored, and the reason is printed.

use std::time::Duration;

use client_sim::SimApp;
use relay::config::{RemoteSwitch, SwitchConfig, User};
use testkit::nats::NatsServer;
use testkit::*;
use wire::{CallMsg, Frame, Kind, LinkMsg};

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let missing = testkit::nats::binary().err();
    let ignored = missing.is_some() && std::env::var_os("CI").is_none();
    let tests: [(&str, fn() -> _); 2] = [
        ("a_remote_switch_is_served_like_a_local_one", || {
            run(a_remote_switch_is_served_like_a_local_one())
        }),
        (
            "the_loss_of_a_site_is_seen_as_w_and_its_return_as_w_up",
            || run(the_loss_of_a_site_is_seen_as_w_and_its_return_as_w_up()),
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            if let (true, Some(why)) = (ignored, &missing) {
                println!("note: {name} is ignored here: {why}");
            }
            libtest_mimic::Trial::test(name, move || {
                testkit::nats::binary()?;
                test();
                Ok(())
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn run(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

/// Site `hq`: one simulated switch (answering as a switch does, with a call's events),
/// published on the bus.
async fn hq(nats: &NatsServer) -> Site {
    let url = nats.url();
    SiteSpec::officeserv(1)
        .configure(move |c| {
            c.bus.nats = Some(url);
            c.bus.site = "hq".into();
        })
        .start()
        .await
}

/// Site `branch`: its own switch 1, and hq's switch 1 as its switch 3. 127.0.0.51 is a
/// filtering user served both.
async fn branch(nats: &NatsServer) -> Site {
    let url = nats.url();
    let site = SiteSpec::switches(1)
        .configure(move |c| {
            c.bus.nats = Some(url);
            c.bus.site = "branch".into();
            c.switches.push(SwitchConfig {
                remote: Some(RemoteSwitch {
                    site: "hq".into(),
                    no: 1,
                }),
                ..SwitchConfig::new(3, "", 5002, "")
            });
            c.users.push(User {
                ip: "127.0.0.51".into(),
                name: "Filtered".into(),
                info: String::new(),
                switches: vec![1, 3],
                default_switch: Some(3),
                filtering: true,
            });
        })
        .start()
        .await;
    site.wait_switch_up(3).await;
    site
}

async fn next_non_heartbeat(app: &mut SimApp) -> Frame {
    within("a frame", app.next_non_heartbeat())
        .await
        .expect("read")
        .expect("the relay closed the connection")
}

/// The next event or answer, decoded as protocol 3.
async fn next_call(app: &mut SimApp) -> CallMsg {
    loop {
        let f = next_non_heartbeat(app).await;
        if matches!(f.kind(), Kind::Event | Kind::Answer) {
            return CallMsg::decode(&f, true).expect("decodes");
        }
    }
}

fn device(m: &CallMsg) -> String {
    let n = m.body[0] as usize;
    String::from_utf8_lossy(&m.body[1..1 + n]).into_owned()
}

async fn a_remote_switch_is_served_like_a_local_one() {
    let nats = NatsServer::start();
    let hq = hq(&nats).await;
    let branch = branch(&nats).await;

    let mut operator = branch.admitted(52, 3, OPERATOR, &[]).await;
    let (mut filtered, id) = branch.app(51, 3, CALL, &[(3, "2202")]).await;
    assert_eq!(id.switches, vec![(1, true), (3, true)]);

    // A request to switch 3 reaches hq's switch 1 and its one answer comes back with the
    // asker's INVOKE and SWITCH byte.
    operator
        .request(Some(3), b'K', 4242, &wire::str8_body(&["2201", "2202"]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let answer = loop {
        let m = next_call(&mut operator).await;
        if m.kind == Kind::Answer {
            break m;
        }
        seen.push(m);
    };
    assert_eq!(
        (answer.code, answer.invoke, answer.switch, answer.body[0]),
        (b'K', 4242, Some(3), 0)
    );
    assert!(hq
        .switch(1)
        .received()
        .iter()
        .any(|f| f.kind() == Kind::Request && f.code() == b'K'));

    // The call's events: dialling at 2201, ringing at 2202, as switch 3.
    while seen.len() < 2 {
        seen.push(next_call(&mut operator).await);
    }
    let events: Vec<(u8, Option<u8>, String)> =
        seen.iter().map(|m| (m.code, m.switch, device(m))).collect();
    assert_eq!(
        events,
        vec![
            (b'd', Some(3), "2201".to_owned()),
            (b'n', Some(3), "2202".to_owned())
        ]
    );
    // The filtering Call watching 2202 on switch 3 gets only that device's event.
    let m = next_call(&mut filtered).await;
    assert_eq!(
        (m.code, m.switch, device(&m)),
        (b'n', Some(3), "2202".into())
    );

    // An event that only concerns 2203 never reaches the filtering session; the next one
    // about 2202 does, in order.
    hq.switch(1).emit_event(b's', "2203", &[]);
    hq.switch(1).emit_event(b's', "2202", &[]);
    let m = next_call(&mut filtered).await;
    assert_eq!((m.code, device(&m)), (b's', "2202".into()));
    let m = next_call(&mut operator).await;
    assert_eq!((m.code, device(&m)), (b's', "2203".into()));

    // An SMDR record of hq's switch is branch's too (its monitors, collectors and call store).
    let (_, record) = smdr_frame("0012", "2201", "O", 42);
    assert!(hq.switch(1).send_raw(record));
    let smdr = || {
        branch
            .relay
            .hub()
            .stats
            .smdr_records
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_until("the record at branch", || smdr() == 1).await;

    // Operators see where the switch is.
    let status = branch.relay.status();
    let sw3 = status.switches.iter().find(|s| s.no == 3).unwrap();
    assert_eq!(
        (sw3.address.as_str(), sw3.port, sw3.up),
        ("bus: hq/1", 0, true)
    );
}

async fn the_loss_of_a_site_is_seen_as_w_and_its_return_as_w_up() {
    let nats = NatsServer::start();
    let hq = hq(&nats).await;
    let branch = branch(&nats).await;
    let mut operator = branch.admitted(52, 3, OPERATOR, &[]).await;

    // hq's relay stops: its state stops coming, and within the silence limit switch 3 is
    // down for branch's sessions (which stay, served switch 1).
    let lost_at = tokio::time::Instant::now();
    hq.relay.shutdown().await;
    let w = loop {
        let f = next_non_heartbeat(&mut operator).await;
        if f.kind() == Kind::Link {
            break LinkMsg::decode(&f).unwrap();
        }
    };
    assert_eq!(
        w,
        LinkMsg::SwitchState {
            switch: 3,
            up: false
        }
    );
    let took = lost_at.elapsed();
    assert!(
        took <= relay::bus::remote::SILENCE + Duration::from_secs(2),
        "site loss seen after {took:?}"
    );
    // A request to the lost switch is answered by the relay: not connected.
    operator.request(Some(3), b'Y', 7, &[]).await.unwrap();
    let answer = next_call(&mut operator).await;
    assert_eq!(
        (answer.invoke, answer.body[0]),
        (7, wire::relay_result::NOT_CONNECTED)
    );

    // Another hq relay comes back for the same switch: W up.
    drop(hq);
    let _hq = self::hq(&nats).await;
    let w = loop {
        let f = next_non_heartbeat(&mut operator).await;
        if f.kind() == Kind::Link {
            break LinkMsg::decode(&f).unwrap();
        }
    };
    assert_eq!(
        w,
        LinkMsg::SwitchState {
            switch: 3,
            up: true
        }
    );
}
