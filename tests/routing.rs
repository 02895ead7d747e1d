//! docs/behaviour.md §4: which switches each session is served, identify results, events and filtering.

use relay::config::User;
use testkit::*;
use wire::{Frame, Kind, LinkMsg};

fn user(ip: &str, switches: &[u8], default_switch: Option<u8>, filtering: bool) -> User {
    User {
        ip: ip.into(),
        name: String::new(),
        info: String::new(),
        switches: switches.to_vec(),
        default_switch,
        filtering,
        certificate: None,
    }
}

fn served(id: &client_sim::Identified) -> Vec<(u8, bool)> {
    id.switches.clone()
}

#[tokio::test]
async fn protocol_2_registered_user_is_served_its_default_switch() {
    let site = SiteSpec::switches(3)
        .configure(|c| {
            c.default_switch = 1;
            c.users.push(user("127.0.0.51", &[], Some(3), false));
        })
        .start()
        .await;
    let (_app, id) = site.app(51, 2, CALL, &[]).await;
    assert_eq!((id.result, served(&id)), (0, vec![(3, true)]));
}

#[tokio::test]
async fn protocol_2_unregistered_or_without_default_gets_the_global_default() {
    let site = SiteSpec::switches(3)
        .configure(|c| {
            c.default_switch = 2;
            c.users.push(user("127.0.0.52", &[1, 3], None, false));
        })
        .start()
        .await;
    let (_a, unregistered) = site.app(60, 2, CALL, &[]).await;
    assert_eq!(served(&unregistered), vec![(2, true)]);
    let (_b, no_default) = site.app(52, 2, CALL, &[]).await;
    assert_eq!(served(&no_default), vec![(2, true)]);
}

#[tokio::test]
async fn protocol_3_registered_user_is_served_its_switches_then_default_then_global() {
    let site = SiteSpec::switches(4)
        .configure(|c| {
            c.default_switch = 4;
            c.users.push(user("127.0.0.51", &[3, 1], Some(1), false));
            c.users.push(user("127.0.0.52", &[], Some(2), false));
            c.users.push(user("127.0.0.53", &[], None, false));
        })
        .start()
        .await;
    let (_a, id) = site.app(51, 3, CALL, &[]).await;
    assert_eq!(served(&id), vec![(1, true), (3, true)]);
    let (_b, id) = site.app(52, 3, CALL, &[]).await;
    assert_eq!(served(&id), vec![(2, true)]);
    let (_c, id) = site.app(53, 3, CALL, &[]).await;
    assert_eq!(served(&id), vec![(4, true)]);
}

#[tokio::test]
async fn protocol_3_unregistered_is_served_every_enabled_switch_including_down_ones() {
    let site = SiteSpec::switches(4)
        .configure(|c| {
            c.switches[2].enabled = false;
            // Switch 4 points at an address where nothing listens: enabled but never up.
            c.switches[3].address = "127.0.2.4".into();
        })
        .wait_up(&[1, 2])
        .start()
        .await;
    let (_app, id) = site.app(70, 3, CALL, &[]).await;
    assert_eq!(
        (id.result, served(&id)),
        (0, vec![(1, true), (2, true), (4, false)])
    );
}

#[tokio::test]
async fn no_served_switch_up_is_result_6_and_no_switch_up_at_all_is_result_10() {
    let site = SiteSpec::switches(2)
        .configure(|c| {
            c.switches[1].address = "127.0.2.2".into();
            c.users.push(user("127.0.0.51", &[2], None, false));
        })
        .wait_up(&[1])
        .start()
        .await;
    let (_a, id) = site.app(51, 3, CALL, &[]).await;
    assert_eq!((id.result, served(&id)), (6, vec![(2, false)]));

    let site = SiteSpec::switches(1)
        .configure(|c| c.switches[0].address = "127.0.2.1".into())
        .wait_up(&[])
        .start()
        .await;
    let (mut app, id) = site.app(51, 3, CALL, &[]).await;
    assert_eq!((id.result, served(&id)), (10, vec![]));
    assert!(
        app.next_frame().await.unwrap().is_none(),
        "closed after a refusal"
    );
}

#[tokio::test]
async fn unregistered_addresses_are_refused_when_not_allowed() {
    let site = SiteSpec::switches(1)
        .configure(|c| {
            c.access.allow_unregistered = false;
            c.users.push(user("127.0.0.51", &[], None, false));
        })
        .start()
        .await;
    let (mut app, id) = site.app(60, 3, CALL, &[]).await;
    assert_eq!(id.result, 5);
    assert!(app.next_frame().await.unwrap().is_none());
    let (_ok, id) = site.app(51, 3, CALL, &[]).await;
    assert_eq!(id.result, 0);
}

#[tokio::test]
async fn a_product_on_the_wrong_port_is_result_7() {
    let site = SiteSpec::switches(1).start().await;
    // A licensed product on the bypass port, and a bypass product on the licensed port.
    let (mut a, _) = client_sim::SimApp::identify_as(site.bypass(), None, 3, CALL, &[])
        .await
        .map(|(a, id)| {
            assert_eq!(id.result, 7);
            (a, id)
        })
        .unwrap();
    assert!(a.next_frame().await.unwrap().is_none());
    let (_b, id) = client_sim::SimApp::identify_as(site.client(), None, 3, ACD, &[])
        .await
        .unwrap();
    assert_eq!(id.result, 7);
    let (_c, id) = site.app(1, 3, ACD, &[]).await;
    assert_eq!(id.result, 0, "bypass products belong on the bypass port");
}

#[tokio::test]
async fn a_malformed_identify_is_result_8() {
    let site = SiteSpec::switches(1).start().await;
    for (what, protocol, product) in [("protocol 4", 4u8, CALL), ("unknown product", 3, 0x30)] {
        let (mut app, id) =
            client_sim::SimApp::identify_as(site.client(), None, protocol, product, &[])
                .await
                .unwrap();
        assert_eq!(id.result, 8, "{what}");
        assert!(app.next_frame().await.unwrap().is_none(), "{what}: closed");
    }
}

/// Events as the switch sent them, for comparison with what a session got.
fn events(frames: &[Frame]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|f| f.kind() == Kind::Event)
        .map(|f| f.as_bytes().to_vec())
        .collect()
}

async fn read_events(app: &mut client_sim::SimApp, n: usize) -> Vec<Frame> {
    let mut got = Vec::new();
    while got.len() < n {
        let f = within("events", app.next_non_heartbeat())
            .await
            .unwrap()
            .expect("open");
        if f.kind() == Kind::Event {
            got.push(f);
        }
    }
    got
}

#[tokio::test]
async fn events_reach_every_served_session_in_order_in_its_own_form() {
    let site = SiteSpec::switches(2).start().await;
    let mut p2 = site.admitted(51, 2, CALL, &[]).await;
    let mut p3 = site.admitted(52, 3, OPERATOR, &[]).await;
    let sent: Vec<_> = (0..50u8)
        .map(|i| switch_sim::switch::event_frame(b'n', "2201", &[i]))
        .collect();
    for e in &sent {
        assert!(site.switch(1).emit_event(e[3], "2201", &e[e.len() - 1..]));
    }
    // Switch 2's events go only to the protocol-3 session (served every enabled switch).
    site.switch(2).emit_event(b's', "", b"wide");

    let got2 = read_events(&mut p2, 50).await;
    assert_eq!(
        events(&got2),
        sent.iter().map(|b| b.to_vec()).collect::<Vec<_>>(),
        "protocol 2 gets the switch's bytes"
    );
    // Order is per switch: switch 2's event may fall anywhere among switch 1's.
    let got3 = read_events(&mut p3, 51).await;
    let (from1, from2): (Vec<&Frame>, Vec<&Frame>) = got3.iter().partition(|f| f.body()[0] == 1);
    assert_eq!(from1.len(), 50);
    for (i, f) in from1.iter().enumerate() {
        let mut expected = sent[i].to_vec();
        expected.insert(6, 1);
        expected[1] += 1;
        assert_eq!(
            f.as_bytes(),
            &expected[..],
            "protocol 3 event {i} carries SWITCH 1"
        );
    }
    assert_eq!(from2.len(), 1);
    assert_eq!(
        &from2[0].body()[..2],
        &[2, 0],
        "switch 2's switch-wide event, SWITCH 2"
    );
    assert!(
        p2.next_frame_within(std::time::Duration::from_millis(100))
            .await
            .is_err(),
        "nothing from switch 2 on protocol 2"
    );
}

#[tokio::test]
async fn filtering_sessions_get_only_their_devices_and_switch_wide_events() {
    let site = SiteSpec::switches(1)
        .configure(|c| {
            c.users.push(user("127.0.0.51", &[], None, true));
            c.users.push(user("127.0.0.52", &[], None, true));
        })
        .start()
        .await;
    let mut call = site.admitted(51, 3, CALL, &[(0, "2201")]).await;
    // Filtering applies to Call and CallPlus only.
    let mut operator = site.admitted(52, 3, OPERATOR, &[(0, "2201")]).await;
    let sw = site.switch(1);
    sw.emit_event(b'n', "2201", b"a");
    sw.emit_event(b'n', "2202", b"b");
    sw.emit_event(b's', "", b"c");
    let got = read_events(&mut call, 2).await;
    let bodies: Vec<&[u8]> = got.iter().map(|f| &f.body()[1..]).collect();
    assert_eq!(bodies, vec![&b"\x042201a"[..], &b"\x00c"[..]]);
    assert_eq!(read_events(&mut operator, 3).await.len(), 3);

    // Watch 2202 as well; stop watching 2201.
    assert_eq!(call.device(true, 1, "2202").await.unwrap(), 0);
    assert_eq!(call.device(false, 0, "2201").await.unwrap(), 0);
    // An unknown station, an unserved switch, and removing what is not watched are refused.
    assert_eq!(call.device(true, 1, "9999").await.unwrap(), 1);
    assert_eq!(call.device(true, 5, "2201").await.unwrap(), 1);
    assert_eq!(call.device(false, 1, "2203").await.unwrap(), 1);

    sw.emit_event(b'n', "2201", b"d");
    sw.emit_event(b'n', "2202", b"e");
    let got = read_events(&mut call, 1).await;
    assert_eq!(&got[0].body()[1..], b"\x042202e");
    let status = site.relay.status();
    let states: Vec<&str> = status.sessions.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(
        states,
        vec!["[Call: 2202 - SW(1)]", "[Operator: 2201 - SW(1)]"]
    );
}

#[tokio::test]
async fn heartbeats_are_answered() {
    let site = SiteSpec::switches(1).start().await;
    let mut app = site.admitted(51, 2, CALL, &[]).await;
    app.send_link(&LinkMsg::Heartbeat).await.unwrap();
    assert_eq!(
        app.next_link().await.unwrap(),
        Some(LinkMsg::HeartbeatReply)
    );
}
