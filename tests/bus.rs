//! Federation over a real `nats-server` on loopback: a switch of site `hq` served to
//! applications of site `branch` as its switch 3 (requests, answers, events, filtering), and
//! the site's loss seen there as `W`, and its notices shown there. Two relays sharing a site's links: the standby takes
//! them when the active one dies, and a holder cut off from the bus lets them go before the
//! standby dials (never two holders); a change of switches and users made on one reaches the
//! other, and the new switch is dialled by the holder only.
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
    let tests: [(&str, fn() -> _); 13] = [
        ("a_remote_switch_is_served_like_a_local_one", || {
            run(a_remote_switch_is_served_like_a_local_one())
        }),
        (
            "a_local_switch_edited_into_a_remote_one_is_served_from_the_bus_at_once",
            || run(a_local_switch_edited_into_a_remote_one_is_served_from_the_bus_at_once()),
        ),
        ("a_remote_switchs_notices_are_shown_here", || {
            run(a_remote_switchs_notices_are_shown_here())
        }),
        (
            "a_change_made_on_one_relay_of_a_shared_site_reaches_the_other",
            || run(a_change_made_on_one_relay_of_a_shared_site_reaches_the_other()),
        ),
        (
            "the_loss_of_a_site_is_seen_as_w_and_its_return_as_w_up",
            || run(the_loss_of_a_site_is_seen_as_w_and_its_return_as_w_up()),
        ),
        (
            "the_standby_takes_the_links_when_the_active_relay_dies",
            || run(the_standby_takes_the_links_when_the_active_relay_dies()),
        ),
        (
            "a_holder_cut_off_from_the_bus_lets_go_before_the_standby_dials",
            || run(a_holder_cut_off_from_the_bus_lets_go_before_the_standby_dials()),
        ),
        (
            "a_holder_stopped_past_its_lease_does_not_dial_when_it_wakes",
            || run(a_holder_stopped_past_its_lease_does_not_dial_when_it_wakes()),
        ),
        ("a_planned_stop_hands_the_links_over_at_once", || {
            run(a_planned_stop_hands_the_links_over_at_once())
        }),
        ("an_operator_hands_the_lease_over", || {
            run(an_operator_hands_the_lease_over())
        }),
        (
            "an_application_of_a_killed_relay_resumes_on_the_other_with_what_it_missed",
            || run(an_application_of_a_killed_relay_resumes_on_the_other_with_what_it_missed()),
        ),
        (
            "a_session_resumed_on_the_other_relay_is_counted_once",
            || run(a_session_resumed_on_the_other_relay_is_counted_once()),
        ),
        (
            "a_relay_cut_off_the_bus_for_a_moment_says_exactly_what_it_missed",
            || run(a_relay_cut_off_the_bus_for_a_moment_says_exactly_what_it_missed()),
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
                certificate: None,
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

/// The next link-control message (heartbeats answered and left out).
async fn next_link(app: &mut SimApp) -> LinkMsg {
    loop {
        let f = next_non_heartbeat(app).await;
        if f.kind() == Kind::Link {
            return LinkMsg::decode(&f).unwrap();
        }
    }
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
            .stats()
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

async fn a_local_switch_edited_into_a_remote_one_is_served_from_the_bus_at_once() {
    let nats = NatsServer::start();
    let hq = hq(&nats).await;
    let url = nats.url();
    // Switch 3 is local at first, at an address where nothing listens: down, recovering.
    let branch = SiteSpec::switches(1)
        .configure(move |c| {
            c.bus.nats = Some(url);
            c.bus.site = "branch".into();
            c.switches
                .push(SwitchConfig::new(3, "127.0.0.1", 1, "1234"));
        })
        .start()
        .await;
    wait_until("branch's bus", || branch.relay.bus_started()).await;
    let sw3 = |site: &Site| {
        let status = site.relay.status();
        let sw = status.switches.iter().find(|s| s.no == 3).cloned();
        sw.map(|s| (s.address, s.up))
    };
    assert_eq!(sw3(&branch), Some(("127.0.0.1".to_owned(), false)));

    // Turned remote while down: its supervisor stops and the bus serves it.
    let edited = branch.relay.edit_config(None, |c| {
        let sw = c.switches.iter_mut().find(|s| s.no == 3).unwrap();
        *sw = SwitchConfig {
            remote: Some(RemoteSwitch {
                site: "hq".into(),
                no: 1,
            }),
            ..SwitchConfig::new(3, "", 5002, "")
        };
        Ok::<(), ()>(())
    });
    assert!(edited.is_ok(), "{edited:?}");
    branch.wait_switch_up(3).await;
    assert_eq!(sw3(&branch), Some(("bus: hq/1".to_owned(), true)));
    assert!(
        !branch.relay.connect_switch(3),
        "a remote switch has no supervisor to dial it"
    );

    // A remote switch added while the relay runs is served as well.
    let added = branch.relay.edit_config(None, |c| {
        c.switches.push(SwitchConfig {
            remote: Some(RemoteSwitch {
                site: "hq".into(),
                no: 1,
            }),
            ..SwitchConfig::new(4, "", 5002, "")
        });
        Ok::<(), ()>(())
    });
    assert_eq!(added.map_err(|_| "refused"), Ok(vec![4]));
    branch.wait_switch_up(4).await;

    // Back to local, while it is down at hq: hq's switch is disconnected, so switch 3 and 4
    // go down; switch 3 then dials its own address again.
    hq.relay.disconnect_switch(1);
    wait_until("switch 3 down", || sw3(&branch).is_some_and(|(_, up)| !up)).await;
    let edited = branch.relay.edit_config(None, |c| {
        let sw = c.switches.iter_mut().find(|s| s.no == 3).unwrap();
        *sw = SwitchConfig::new(3, "127.0.0.1", 1, "1234");
        Ok::<(), ()>(())
    });
    assert!(edited.is_ok(), "{edited:?}");
    assert_eq!(sw3(&branch), Some(("127.0.0.1".to_owned(), false)));
    assert!(
        branch.relay.connect_switch(3),
        "a local switch is supervised"
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
    assert_eq!(
        next_link(&mut operator).await,
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
    assert_eq!(
        next_link(&mut operator).await,
        LinkMsg::SwitchState {
            switch: 3,
            up: true
        }
    );
}

async fn a_remote_switchs_notices_are_shown_here() {
    use relay::config::Language;
    use relay::notify::{LossCause, Notice};
    let nats = NatsServer::start();
    let hq = hq(&nats).await;
    let branch = branch(&nats).await;

    // hq's switch drops its link: hq tells its operator, and branch's, about its switch 3.
    assert!(hq.switch(1).drop_link());
    let shown = || {
        branch
            .relay
            .notices()
            .list()
            .into_iter()
            .find(|e| matches!(e.notice, Notice::AtSite { .. }))
    };
    wait_until_for("hq's notice at branch", Duration::from_secs(10), || {
        shown().is_some()
    })
    .await;
    let entry = shown().unwrap();
    assert_eq!(
        entry.notice,
        Notice::AtSite {
            site: "hq".into(),
            remote: 1,
            notice: Box::new(Notice::SwitchDisconnected {
                switch: 3,
                cause: LossCause::Closed
            }),
        }
    );
    assert_eq!(entry.notice.switch(), Some(3));
    assert_eq!(
        entry.text(Language::En),
        "Switch 3 disconnected (the switch closed the link) [site hq, its switch 1]"
    );
    assert_eq!(
        entry.text(Language::De),
        "Anlage 3 getrennt (die Anlage hat die Verbindung geschlossen) [Standort hq, dortige Anlage 1]"
    );
    // Branch's own notices are not sent back to hq.
    assert!(!hq
        .relay
        .notices()
        .list()
        .iter()
        .any(|e| matches!(e.notice, Notice::AtSite { .. })));
}

async fn a_change_made_on_one_relay_of_a_shared_site_reaches_the_other() {
    use relay::config::Config;
    let nats = NatsServer::start_jetstream();
    // Two switches the shared relays dial, at 127.0.1.1 and 127.0.1.2; the second is added
    // while they run.
    let switches = SiteSpec::officeserv(2)
        .configure(|c| c.switches.iter_mut().for_each(|s| s.enabled = false))
        .wait_up(&[])
        .start()
        .await;
    let a = shared("a", nats.url(), switches.switch(1).addr()).await;
    wait_until_for("a holds the link", Duration::from_secs(15), || holds(&a)).await;
    let b = shared("b", nats.url(), switches.switch(1).addr()).await;
    wait_until_for("b follows through the bus", Duration::from_secs(15), || {
        b.is_up(1) && !holds(&b)
    })
    .await;
    // Operators see which relay dials.
    assert_eq!(a.relay.status().bus.unwrap().lease_held, Some(true));
    assert_eq!(
        b.relay.status().bus.unwrap().summary(),
        "site hq, node b: standby (the other relay holds the lease), connected"
    );
    // Each relay reads its configuration from a file, as `relay run` does, and saves the
    // other's changes to it.
    let files = [&a, &b].map(|site| site.config_file.clone().expect("a configuration file"));

    // a's operator adds a user and a second switch.
    let second = switches.switch(2);
    let addr = second.addr();
    let user = User {
        ip: "127.0.0.77".into(),
        name: "Reception".into(),
        info: String::new(),
        switches: vec![1, 2],
        default_switch: Some(2),
        filtering: false,
        certificate: None,
    };
    let added = a
        .relay
        .edit_config(Some(&files[0]), |c: &mut Config| {
            c.users.push(user.clone());
            c.switches.push(SwitchConfig::new(
                2,
                &addr.ip().to_string(),
                addr.port(),
                "1234",
            ));
            Ok::<(), ()>(())
        })
        .unwrap();
    assert_eq!(added, vec![2]);

    // b applies it and saves it; its own ports and node stay its own.
    wait_until_for("b has the change", Duration::from_secs(10), || {
        b.relay.config().users.contains(&user)
    })
    .await;
    let saved = Config::load(&files[1]).unwrap();
    assert_eq!(saved.users, a.relay.config().users);
    assert_eq!(saved.switches, a.relay.config().switches);
    assert_eq!(saved.bus.node, "b");
    assert_eq!(
        saved.listen.client_port,
        b.relay.config().listen.client_port
    );
    assert!(b
        .relay
        .notices()
        .list()
        .iter()
        .any(|e| e.notice == relay::notify::Notice::PeerConfigApplied { node: "a".into() }));

    // The holder dials the new switch, once; b serves it through the bus.
    wait_until_for("a dials switch 2", Duration::from_secs(10), || {
        second.opened() == 1
    })
    .await;
    wait_until_for("b serves switch 2", Duration::from_secs(10), || b.is_up(2)).await;
    let b_link = b.relay.switch(2).and_then(|s| s.link_handle()).unwrap();
    assert!(b_link.via_bus);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(second.opened(), 1, "only the holder dials");
    // The added switch's events are numbered within a reservation the holder read and wrote
    // on the bus, as the first switch's are: one event, one number, none reserved beyond it
    // (a journal with no reservation would have u64::MAX numbers left).
    second.emit_event(b's', "2201", &[]);
    wait_until_for(
        "a numbers switch 2's event",
        Duration::from_secs(10),
        || {
            a.relay
                .switch(2)
                .is_some_and(|s| s.journal().site_last() == 1)
        },
    )
    .await;
    assert_eq!(a.relay.switch(2).unwrap().journal().numbers_left(), 0);

    // A change on b comes back to a (the newest change wins on both).
    b.relay
        .edit_config(Some(&files[1]), |c: &mut Config| {
            c.users.retain(|u| u.ip != "127.0.0.77");
            Ok::<(), ()>(())
        })
        .unwrap();
    wait_until_for("a has b's change", Duration::from_secs(10), || {
        !a.relay.config().users.contains(&user)
    })
    .await;
    assert!(!Config::load(&files[0]).unwrap().users.contains(&user));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.relay.config().users, b.relay.config().users);
}

/// A relay of site `hq` sharing its links as `node`, with the switch at `switch`; the bus at
/// `url`.
async fn shared(node: &'static str, url: String, switch: std::net::SocketAddr) -> Site {
    SiteSpec::switches(0)
        .configure(move |c| {
            c.bus.nats = Some(url);
            c.bus.site = "hq".into();
            c.bus.shared = true;
            c.bus.node = node.into();
            c.switches = vec![SwitchConfig::new(
                1,
                &switch.ip().to_string(),
                switch.port(),
                "1234",
            )];
        })
        .with_config_file()
        .start()
        .await
}

/// Whether `site` holds switch 1's real link (not one through the bus).
fn holds(site: &Site) -> bool {
    site.relay
        .switch(1)
        .and_then(|s| s.link_handle())
        .is_some_and(|l| !l.via_bus)
}

/// The switch the shared relays dial, on a site of its own (its relay dials nothing).
async fn lone_switch() -> Site {
    SiteSpec::officeserv(1)
        .configure(|c| c.switches[0].enabled = false)
        .wait_up(&[])
        .start()
        .await
}

async fn the_standby_takes_the_links_when_the_active_relay_dies() {
    let nats = NatsServer::start_jetstream();
    // The active relay is a process of its own, so it can die by SIGKILL.
    let (switch, a, b) = process_holder_and_standby(&nats).await;
    let (mut app, token) = resumable(&b, [0; 16], Vec::new()).await;
    switch.switch(1).emit_event(b's', "2201", &[]);
    let (seq, m) = numbered_event(&mut app).await.expect("an event");
    assert_eq!(
        (m.code, m.switch, device(&m)),
        (b's', Some(1), "2201".into())
    );

    // SIGKILL of the active relay: b takes the lease and the link within 10 s.
    let killed = tokio::time::Instant::now();
    drop(a);
    wait_until_for("b holds the link", Duration::from_secs(10), || holds(&b)).await;
    let took = killed.elapsed();
    assert_eq!(switch.switch(1).opened(), 2);
    // The application lost its only switch for a while (X 1) and resumes on b, where it is
    // given the switch's events again.
    assert!(numbered_event(&mut app).await.is_none());
    let (mut app, again) = resumable(&b, token, vec![(1, seq)]).await;
    assert_eq!(again, token);
    switch.switch(1).emit_event(b's', "2202", &[]);
    let (told, next, m) = numbered_event_after_gap(&mut app).await.expect("an event");
    assert_eq!((m.code, device(&m)), (b's', "2202".into()));
    // b's numbers start after the last event a read: a reserved no number for an event it
    // did not read, so no G, and no number is given twice.
    assert_eq!((told, next), (0, seq + 1), "the numbers run on with no gap");
    println!("failover: the standby held the link {took:?} after the active relay was killed; the numbers ran on from {seq} to {next} with no G");
}

/// A resumable Operator on `site` (from 127.0.0.52), new with an all-zero token or coming back
/// with `token` and `last`; returns it with its token.
async fn resumable(site: &Site, token: wire::Token, last: Vec<(u8, u64)>) -> (SimApp, wire::Token) {
    resumable_at(site.client(), token, last).await
}

/// As [`resumable`], on the relay whose client port is `client`.
async fn resumable_at(
    client: std::net::SocketAddr,
    token: wire::Token,
    last: Vec<(u8, u64)>,
) -> (SimApp, wire::Token) {
    let resumed = token != [0; 16];
    let (app, grant) = resumable_operator(client, token, last).await;
    assert_eq!(grant.resumed, resumed);
    (app, grant.token)
}

/// The next event with its number; `None` once the relay closes the connection.
async fn numbered_event(app: &mut SimApp) -> Option<(u64, CallMsg)> {
    let (seq, f) = within("an event", app.next_numbered_event()).await.ok()??;
    Some((seq, CallMsg::decode(&f, true).unwrap()))
}

/// The next numbered event, with the count of the `G` frames before it.
async fn numbered_event_after_gap(app: &mut SimApp) -> Option<(u64, u64, CallMsg)> {
    let (told, seq, f) = within("an event", app.next_numbered_event_after_gap())
        .await
        .ok()??;
    Some((told, seq, CallMsg::decode(&f, true).unwrap()))
}

async fn a_holder_cut_off_from_the_bus_lets_go_before_the_standby_dials() {
    let nats = NatsServer::start_jetstream();
    let proxy = Proxy::start(nats.port).await;
    let switch = lone_switch().await;
    let addr = switch.switch(1).addr();
    let a = shared("a", proxy.url(), addr).await;
    wait_until_for("a holds the link", Duration::from_secs(15), || holds(&a)).await;
    let b = shared("b", nats.url(), addr).await;
    wait_until_for("b follows through the bus", Duration::from_secs(15), || {
        b.is_up(1) && !holds(&b)
    })
    .await;

    // a's bus connection is cut, a itself runs on: it must let its link go before b takes it.
    proxy.cut();
    let cut = tokio::time::Instant::now();
    let mut a_let_go = None;
    loop {
        let (a_holds, b_holds) = (holds(&a), holds(&b));
        assert!(
            !(a_holds && b_holds),
            "two holders {:?} after the cut",
            cut.elapsed()
        );
        if !a_holds && a_let_go.is_none() {
            a_let_go = Some(cut.elapsed());
        }
        if b_holds {
            break;
        }
        assert!(
            cut.elapsed() < Duration::from_secs(20),
            "b never took the link"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a_let_go = a_let_go.expect("a let go first");
    // Its last renewal was sent at most 1 s before the cut, and its lease ends 4 s after that:
    // a write waiting on the cut connection must not keep the link past it.
    assert!(
        a_let_go < Duration::from_millis(4300),
        "a let go {a_let_go:?} after the cut"
    );
    let b_took = cut.elapsed();
    assert!(
        a_let_go < b_took,
        "a let go at {a_let_go:?}, b took it at {b_took:?}"
    );
    println!("partition: a let go {a_let_go:?} after the cut, b took the link at {b_took:?}");
}

/// `site`'s `/metrics` text, as Prometheus reads it.
async fn metrics(site: &Site) -> String {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let api = relay::admin::router(relay::admin::AdminState::new(
        site.relay.clone(),
        None,
        None,
    ));
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = api.oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// `kill -SIG pid`.
fn signal(pid: u32, sig: &str) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig} {pid}");
}

/// Site hq shared by two relays: `a`, a process of its own (so it can be stopped, killed or
/// signalled), holding the lease and the link to the lone switch; `b`, in this process,
/// following it through the bus.
async fn process_holder_and_standby(
    nats: &NatsServer,
) -> (Site, testkit::process::RelayProcess, Site) {
    let switch = lone_switch().await;
    let addr = switch.switch(1).addr();
    let bus = format!(
        "bus: {{ nats: \"{}\", site: hq, shared: true, node: a }}\n",
        nats.url()
    );
    let a = testkit::process::RelayProcess::start_with(
        &testkit::process::relay_binary(),
        addr,
        0,
        &bus,
    )
    .unwrap();
    wait_until_for("a holds the link", Duration::from_secs(20), || {
        switch.switch(1).opened() == 1
    })
    .await;
    let b = shared("b", nats.url(), addr).await;
    wait_until_for("b follows through the bus", Duration::from_secs(15), || {
        b.is_up(1) && !holds(&b)
    })
    .await;
    (switch, a, b)
}

/// A holder stopped (SIGSTOP: a VM paused, a container frozen) past its lease wakes to find its
/// link taken over: it looks at its lease before it dials again, so the switch keeps the new
/// holder's link.
async fn a_holder_stopped_past_its_lease_does_not_dial_when_it_wakes() {
    let nats = NatsServer::start_jetstream();
    let (switch, a, b) = process_holder_and_standby(&nats).await;

    signal(a.pid(), "STOP");
    wait_until_for("b holds the link", Duration::from_secs(15), || holds(&b)).await;
    // The switch took b's link in place of a's, which a sees when it wakes.
    assert_eq!(switch.switch(1).opened(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(a.pid(), "CONT");
    let woke = tokio::time::Instant::now();
    while woke.elapsed() < Duration::from_secs(4) {
        assert_eq!(
            switch.switch(1).opened(),
            2,
            "a dialled {:?} after it woke:\n{}",
            woke.elapsed(),
            a.output()
        );
        assert!(
            holds(&b),
            "b lost the link {:?} after a woke",
            woke.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = a.output();
    assert!(
        log.contains("lease given up") || log.contains("lease lost"),
        "a says why it let go:\n{log}"
    );
}

/// SIGTERM of the holder: it closes its link and releases the lease, and the standby dials at
/// once instead of waiting for the lease to expire.
async fn a_planned_stop_hands_the_links_over_at_once() {
    let nats = NatsServer::start_jetstream();
    let (switch, a, b) = process_holder_and_standby(&nats).await;

    let stopped = tokio::time::Instant::now();
    signal(a.pid(), "TERM");
    wait_until_for("b holds the link", Duration::from_secs(10), || holds(&b)).await;
    let took = stopped.elapsed();
    assert_eq!(switch.switch(1).opened(), 2);
    assert!(
        took < Duration::from_millis(1500),
        "the standby held the link {took:?} after SIGTERM of the holder:\n{}",
        a.output()
    );
    assert!(a.output().contains("lease released"), "{}", a.output());
    println!("hand-over: the standby held the link {took:?} after SIGTERM of the holder");
}

/// `relay ctl lease release` (the admin interface's POST /api/bus/lease/release) on the holder:
/// the other relay holds the link at once; asked of the relay that does not hold it, it is
/// refused with the reason.
async fn an_operator_hands_the_lease_over() {
    let nats = NatsServer::start_jetstream();
    let switch = lone_switch().await;
    let addr = switch.switch(1).addr();
    let a = shared("a", nats.url(), addr).await;
    wait_until_for("a holds the link", Duration::from_secs(15), || holds(&a)).await;
    let b = shared("b", nats.url(), addr).await;
    wait_until_for("b follows through the bus", Duration::from_secs(15), || {
        b.is_up(1) && !holds(&b)
    })
    .await;
    assert_eq!(
        b.relay.hand_over_lease(),
        Err(relay::server::HandOverRefused::NotHeld)
    );

    let asked = tokio::time::Instant::now();
    a.relay.hand_over_lease().unwrap();
    wait_until_for("b holds the link", Duration::from_secs(10), || holds(&b)).await;
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "b held the link {took:?} after the hand-over"
    );
    assert_eq!(switch.switch(1).opened(), 2);
    // a follows b through the bus and does not take the lease back while b holds it.
    wait_until_for("a follows through the bus", Duration::from_secs(10), || {
        a.is_up(1) && !holds(&a)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(holds(&b) && !holds(&a));
    assert_eq!(switch.switch(1).opened(), 2);
    // What the alert rules add up (deploy/prometheus): one holder on the site.
    assert!(metrics(&a).await.contains("\ncti_bus_lease_held 0\n"));
    assert!(metrics(&b).await.contains("\ncti_bus_lease_held 1\n"));
    // What the dashboard reads (deploy/grafana).
    assert!(metrics(&a)
        .await
        .contains("\ncti_bus_messages_total{outcome=\"published\"} "));
    println!("hand-over: b held the link {took:?} after a was asked to release the lease");
}

/// An application of the relay that died comes to the other relay of the site with its token:
/// it is resumed there (`resumed 1`) and given the events it had not read, with the numbers
/// it would have had, then the live ones: nothing lost, nothing repeated.
async fn an_application_of_a_killed_relay_resumes_on_the_other_with_what_it_missed() {
    let nats = NatsServer::start_jetstream();
    let (switch, a, b) = process_holder_and_standby(&nats).await;
    let (mut app, token) = resumable_at(a.client, [0; 16], Vec::new()).await;
    switch.switch(1).emit_event(b's', "0", &[]);
    let (seq, m) = numbered_event(&mut app).await.expect("an event");
    assert_eq!(device(&m), "0");
    // Two more the application will not have read when its relay dies; b has them from the
    // bus, and a has written the session to the bus (every 2 s).
    switch.switch(1).emit_event(b's', "1", &[]);
    switch.switch(1).emit_event(b's', "2", &[]);
    tokio::time::sleep(relay::bus::sessions::EVERY + Duration::from_secs(1)).await;
    drop(app);
    drop(a);
    wait_until_for("b holds the link", Duration::from_secs(10), || holds(&b)).await;

    let (mut app, again) = resumable(&b, token, vec![(1, seq)]).await;
    assert_eq!(again, token, "the same token goes on");
    let mut read = Vec::new();
    for _ in 0..2 {
        let (n, m) = numbered_event(&mut app).await.expect("a replayed event");
        read.push((n, device(&m)));
    }
    switch.switch(1).emit_event(b's', "3", &[]);
    let (told, n, m) = numbered_event_after_gap(&mut app)
        .await
        .expect("a live event");
    read.push((n, device(&m)));
    // The live event is b's: its number follows the last event a read, with no G (a
    // reserved no number it did not give).
    assert_eq!(told, 0, "no G: nothing was missed");
    assert_eq!(
        read,
        vec![
            (seq + 1, "1".to_string()),
            (seq + 2, "2".to_string()),
            (seq + 3, "3".to_string())
        ],
        "what it missed, then the live event, numbered on with no gap"
    );
    println!("moved application: resumed on the survivor with events {read:?} after {seq}");
}

/// Both relays alive: an application that leaves one and resumes on the other is counted once
/// for the site: the relay it left lets its waiting session (and its licence use) go at once
/// instead of at the end of the resume window.
async fn a_session_resumed_on_the_other_relay_is_counted_once() {
    let nats = NatsServer::start_jetstream();
    let switch = lone_switch().await;
    let addr = switch.switch(1).addr();
    let a = shared("a", nats.url(), addr).await;
    wait_until_for("a holds the link", Duration::from_secs(15), || holds(&a)).await;
    let b = shared("b", nats.url(), addr).await;
    wait_until_for("b follows through the bus", Duration::from_secs(15), || {
        b.is_up(1) && !holds(&b)
    })
    .await;
    let licensed = |site: &Site| site.relay.licensing().usage().licensed_total();

    let (app, token) = resumable(&a, [0; 16], Vec::new()).await;
    tokio::time::sleep(relay::bus::sessions::EVERY + Duration::from_secs(1)).await;
    drop(app);
    wait_until_for("a keeps the session for it", Duration::from_secs(5), || {
        a.relay.parked().len() == 1
    })
    .await;
    assert_eq!((licensed(&a), licensed(&b)), (1, 0));

    let (_app, again) = resumable(&b, token, vec![(1, 0)]).await;
    assert_eq!(again, token);
    let moved = tokio::time::Instant::now();
    wait_until_for("a lets its copy go", Duration::from_secs(5), || {
        a.relay.parked().is_empty()
    })
    .await;
    assert_eq!((licensed(&a), licensed(&b)), (0, 1));
    assert_eq!(b.relay.session_count(), 1);
    println!(
        "moved session: a let its copy go {:?} after b resumed it",
        moved.elapsed()
    );
}

/// What a resumable application read of switch 1: an event (its number and the index the
/// switch gave it as its device) or a `G`.
#[derive(Debug)]
enum Read {
    Event(u64, u64),
    Lost(u64),
}

async fn a_relay_cut_off_the_bus_for_a_moment_says_exactly_what_it_missed() {
    let nats = NatsServer::start_jetstream();
    let proxy = Proxy::start(nats.port).await;
    let switch = lone_switch().await;
    let addr = switch.switch(1).addr();
    let a = shared("a", nats.url(), addr).await;
    wait_until_for("a holds the link", Duration::from_secs(15), || holds(&a)).await;
    let b = shared("b", proxy.url(), addr).await;
    wait_until_for("b follows through the bus", Duration::from_secs(15), || {
        b.is_up(1) && !holds(&b)
    })
    .await;
    let (mut app, _) = resumable(&b, [0; 16], Vec::new()).await;
    const EVENTS: u64 = 800;
    let reader = tokio::spawn(async move {
        let mut read = Vec::new();
        let mut seq = None;
        while let Ok(Ok(Some(f))) =
            tokio::time::timeout(Duration::from_secs(8), app.next_frame()).await
        {
            match f.kind() {
                Kind::Link => match LinkMsg::decode(&f) {
                    Ok(LinkMsg::Sequence { seq: n, .. }) => seq = Some(n),
                    Ok(LinkMsg::Lost { switch: 1, lost }) => read.push(Read::Lost(lost)),
                    _ => {}
                },
                Kind::Event => {
                    let index: u64 = device(&CallMsg::decode(&f, true).unwrap()).parse().unwrap();
                    read.push(Read::Event(
                        seq.take().expect("an N before each event"),
                        index,
                    ));
                    if index == EVENTS - 1 {
                        break;
                    }
                }
                _ => {}
            }
        }
        read
    });

    // An event every 5 ms for 4 s; b's bus connection is cut from 1 s to 2.5 s.
    let start = tokio::time::Instant::now();
    let mut cut = false;
    for i in 0..EVENTS {
        let at = start.elapsed();
        if !cut && at >= Duration::from_secs(1) && at < Duration::from_millis(2500) {
            proxy.cut();
            cut = true;
        }
        if cut && at >= Duration::from_millis(2500) {
            proxy.restore();
            cut = false;
        }
        switch.switch(1).emit_event(b's', &i.to_string(), &[]);
        tokio::time::sleep_until(start + Duration::from_millis(5 * (i + 1))).await;
    }
    let read = reader.await.unwrap();

    // Every number skipped is a G of exactly that many, sent before the event after the skip,
    // and numbers follow the switch's order one for one.
    let mut lost_total = 0;
    let mut events = 0;
    let mut last: Option<(u64, u64)> = None;
    let mut lost_since = 0;
    for r in &read {
        match *r {
            Read::Lost(n) => lost_since += n,
            Read::Event(seq, index) => {
                if let Some((last_seq, last_index)) = last {
                    assert_eq!(
                        seq - last_seq - 1,
                        lost_since,
                        "G before {seq} after {last_seq}"
                    );
                    assert_eq!(
                        seq - last_seq,
                        index - last_index,
                        "numbers follow the switch"
                    );
                }
                lost_total += lost_since;
                lost_since = 0;
                events += 1;
                last = Some((seq, index));
            }
        }
    }
    let Some(Read::Event(_, first_index)) = read.iter().find(|r| matches!(r, Read::Event(..)))
    else {
        panic!("no event read: {read:?}")
    };
    assert_eq!(last.map(|l| l.1), Some(EVENTS - 1), "the last event came");
    assert!(
        lost_total > 0,
        "the cut lost nothing: the test proves nothing"
    );
    assert_eq!(events + lost_total, EVENTS - first_index);
    assert!(metrics(&b)
        .await
        .contains(&format!("\ncti_bus_events_missed_total {lost_total}\n")));
    println!(
        "bus cut of 1.5 s: {events} events read, {lost_total} told lost with G, none silently"
    );
}

/// A TCP relay between a relay and the NATS server, whose connections can be cut at once.
struct Proxy {
    port: u16,
    cut: tokio_util_cancel::Cut,
}

mod tokio_util_cancel {
    use std::sync::Arc;

    /// A one-way switch every proxied connection watches.
    #[derive(Clone, Default)]
    pub struct Cut(Arc<tokio::sync::Notify>, Arc<std::sync::atomic::AtomicBool>);

    impl Cut {
        pub fn fire(&self) {
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
            self.0.notify_waiters();
        }
        /// Lets connections through again (those cut stay cut).
        pub fn restore(&self) {
            self.1.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        pub fn fired(&self) -> bool {
            self.1.load(std::sync::atomic::Ordering::SeqCst)
        }
        pub async fn wait(&self) {
            let notified = self.0.notified();
            if self.fired() {
                return;
            }
            notified.await;
        }
    }
}

impl Proxy {
    async fn start(to: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = tokio_util_cancel::Cut::default();
        let watch = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if watch.fired() {
                    continue;
                }
                let watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        // Cut: nothing more either way (the sockets are dropped).
                        _ = watch.wait() => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.cut.fire();
    }

    fn restore(&self) {
        self.cut.restore();
    }
}
