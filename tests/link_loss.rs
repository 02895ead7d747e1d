//! docs/behaviour.md §3: opening a link, refusals with their cause, loss and its consequences for
//! sessions and requests, and the clean stop.

use std::time::Duration;

use switch_sim::Answering;
use testkit::*;
use wire::{CallMsg, Kind, LinkMsg};

fn fast_redial(t: &mut relay::Tuning) {
    t.recovery_cycle = Some(Duration::from_millis(50));
}

fn two_users(c: &mut relay::Config) {
    for (ip, switches) in [("127.0.0.51", vec![1u8]), ("127.0.0.52", vec![1, 2])] {
        c.users.push(relay::config::User {
            ip: ip.into(),
            name: String::new(),
            info: String::new(),
            switches,
            default_switch: None,
            filtering: false,
            certificate: None,
        });
    }
}

/// Two switches and the two users, with redials an hour apart (so a loss stays a loss).
fn two_users_no_redial() -> SiteSpec {
    SiteSpec::switches(2)
        .configure(two_users)
        .tuning(|t| t.recovery_cycle = Some(Duration::from_secs(3600)))
}

fn close(reason: u8, text: &str) -> Option<LinkMsg> {
    Some(LinkMsg::Close {
        reason,
        text: text.into(),
    })
}

#[tokio::test]
async fn opening_a_link_reports_each_step() {
    let site = SiteSpec::switches(2).start().await;
    site.wait_notice("All services are running").await;
    let port = site.switch(1).addr().port();
    let notices = site.notices();
    let of_switch_1: Vec<&String> = notices
        .iter()
        .filter(|n| !n.contains("switch 2") && !n.contains("Switch 2"))
        .collect();
    assert_eq!(
        of_switch_1[..4],
        [
            &"CTI relay 0.1.0 started".to_string(),
            &format!("Connecting to switch 1 [127.0.1.1, {port}]"),
            &format!("Switch connection success [switch 1, 127.0.1.1, {port}]"),
            &"Downloading the switch configuration information".to_string(),
        ]
    );
    let status = site.relay.status();
    assert_eq!(status.switches[0].model.as_deref(), Some("OfficeServ 7200"));
    assert_eq!(status.switches_connected, 2);
}

#[tokio::test]
async fn single_switch_sessions_are_closed_and_multi_switch_ones_get_w() {
    let site = SiteSpec::switches(2)
        .configure(two_users)
        .tuning(fast_redial)
        .start()
        .await;
    let mut single = site.admitted(51, 3, CALL, &[]).await;
    let mut multi = site.admitted(52, 3, CALL, &[]).await;
    let mut p2 = site.admitted(53, 2, CALL, &[]).await;
    site.switch(1).drop_link();

    assert_eq!(
        single.next_link().await.unwrap(),
        close(1, "switch 1 link lost")
    );
    assert!(single.next_frame().await.unwrap().is_none(), "then closed");
    assert_eq!(
        p2.next_link().await.unwrap(),
        close(1, "switch 1 link lost")
    );
    assert_eq!(
        multi.next_link().await.unwrap(),
        Some(LinkMsg::SwitchState {
            switch: 1,
            up: false
        })
    );
    site.wait_notice("Switch 1 disconnected (the switch closed the link)")
        .await;
    // The redial brings it back; the multi-switch session is told.
    assert_eq!(
        within("W up", multi.next_link()).await.unwrap(),
        Some(LinkMsg::SwitchState {
            switch: 1,
            up: true
        })
    );
    site.wait_sessions(1).await;
}

#[tokio::test]
async fn when_no_switch_is_left_up_every_session_is_closed() {
    let site = two_users_no_redial().start().await;
    let mut multi = site.admitted(52, 3, CALL, &[]).await;
    let mut everything = site.admitted(60, 3, OPERATOR, &[]).await;
    site.switch(2).drop_link();
    assert_eq!(
        multi.next_link().await.unwrap(),
        Some(LinkMsg::SwitchState {
            switch: 2,
            up: false
        })
    );
    site.switch(1).drop_link();
    assert_eq!(
        multi.next_link().await.unwrap(),
        close(1, "switch 1 link lost")
    );
    assert!(multi.next_frame().await.unwrap().is_none());
    assert_eq!(
        everything.next_link().await.unwrap(),
        Some(LinkMsg::SwitchState {
            switch: 2,
            up: false
        })
    );
    assert_eq!(
        everything.next_link().await.unwrap(),
        close(1, "switch 1 link lost")
    );
    site.wait_sessions(0).await;
    // New sessions now hear that no switch is connected.
    let (_app, id) = site.app(61, 3, CALL, &[]).await;
    assert_eq!(id.result, 10);
}

#[tokio::test]
async fn requests_in_flight_on_a_lost_link_are_answered_e0() {
    let site = SiteSpec::switches(2)
        .configure(two_users)
        .switch_settings(1, |s| s.answering = Answering::Silent)
        .tuning(|t| t.recovery_cycle = Some(Duration::from_secs(3600)))
        .start()
        .await;
    let mut multi = site.admitted(52, 3, CALL, &[]).await;
    multi.request(Some(1), b'K', 7, b"2201").await.unwrap();
    multi.request(Some(1), b'D', 8, b"2201").await.unwrap();
    site.switch(1).wait_received(2).await;
    site.switch(1).drop_link();
    let mut got = Vec::new();
    while got.len() < 3 {
        let f = multi.next_frame().await.unwrap().unwrap();
        got.push(if f.kind() == Kind::Answer {
            format!("{:?}", CallMsg::decode(&f, true).unwrap())
        } else {
            format!("{:?}", LinkMsg::decode(&f).unwrap())
        });
    }
    assert_eq!(
        got,
        [
            "CallMsg { kind: Answer, code: 75, invoke: 7, switch: Some(1), body: b\"\\xe0\" }",
            "CallMsg { kind: Answer, code: 68, invoke: 8, switch: Some(1), body: b\"\\xe0\" }",
            "SwitchState { switch: 1, up: false }",
        ]
    );
    // And a request to the switch while it is down is answered 0xE0 at once.
    multi.request(Some(1), b'K', 9, b"").await.unwrap();
    let f = multi.next_frame().await.unwrap().unwrap();
    assert_eq!(&CallMsg::decode(&f, true).unwrap().body[..], &[0xE0]);
}

#[tokio::test]
async fn a_refused_open_names_the_cause() {
    let site = SiteSpec::switches(2)
        .switch_settings(1, |s| s.cti_server = Some("127.0.0.99".parse().unwrap()))
        .switch_settings(2, |s| s.easyset_password = "9999".into())
        .wait_up(&[])
        .start()
        .await;
    site.wait_notice("Switch 1 link attempt failed: the switch refused the CTI link: its CTI server address (MMC 830) does not match this host").await;
    site.wait_notice("Switch 2 link attempt failed: the switch rejected the EasySet password (MMC 841): correct easyset_password").await;
    assert!(!site.is_up(1) && !site.is_up(2));
}

#[tokio::test]
async fn a_switch_is_dialled_from_its_source_address() {
    // The switch takes its CTI link only from 127.0.0.99 (MMC 830), the address the relay is
    // told to dial from.
    let site = SiteSpec::switches(1)
        .switch_settings(1, |s| s.cti_server = Some("127.0.0.99".parse().unwrap()))
        .configure(|c| c.switches[0].source_address = Some("127.0.0.99".parse().unwrap()))
        .start()
        .await;
    assert!(site.is_up(1));
    assert_eq!(site.switch(1).opened(), 1);
}

#[tokio::test]
async fn a_source_address_not_of_this_host_is_named_in_the_failure() {
    let site = SiteSpec::switches(1)
        .configure(|c| c.switches[0].source_address = Some("192.0.2.7".parse().unwrap()))
        .wait_up(&[])
        .start()
        .await;
    site.wait_notice("Switch 1 link attempt failed: cannot connect: from 192.0.2.7 (source_address): Cannot assign requested address (os error 99)").await;
    assert!(!site.is_up(1));
}

#[tokio::test]
async fn a_plain_refusal_is_retried_and_the_link_then_opens() {
    let spec = SiteSpec::switches(1).tuning(fast_redial).wait_up(&[]);
    let site = spec.start().await;
    site.wait_switch_up(1).await;
    site.switch(1).refuse_next_opens(2);
    site.switch(1).drop_link();
    site.wait_notice("Switch 1 link attempt failed: the switch refused the CTI link")
        .await;
    site.wait_switch_up(1).await;
    assert_eq!(site.switch(1).opened(), 2);
}

#[tokio::test]
async fn a_half_open_switch_is_detected_after_30_s_of_silence() {
    let site = two_users_no_redial().start().await;
    let mut multi = site.admitted(52, 3, CALL, &[]).await;
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    site.switch(1).half_open();
    let msg = within("W down", multi.next_non_heartbeat())
        .await
        .unwrap()
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(
        LinkMsg::decode(&msg).unwrap(),
        LinkMsg::SwitchState {
            switch: 1,
            up: false
        }
    );
    // Silence counts from the last frame received, a few virtual milliseconds before `start`.
    assert!(
        (Duration::from_secs(29)..=Duration::from_secs(32)).contains(&waited),
        "detected after {waited:?}"
    );
    assert!(site
        .notices()
        .contains(&"Switch 1 disconnected (no frame for 30 s)".to_string()));
    assert!(site.is_up(2), "the other switch is untouched");
}

#[tokio::test]
async fn garbage_from_a_switch_loses_that_link_only() {
    let site = two_users_no_redial().start().await;
    let mut multi = site.admitted(52, 3, CALL, &[]).await;
    site.switch(1)
        .send_raw(bytes::Bytes::from_static(&[0, 2, b'E', b'x']));
    assert_eq!(
        multi.next_link().await.unwrap(),
        Some(LinkMsg::SwitchState {
            switch: 1,
            up: false
        })
    );
    site.wait_notice("Switch 1 disconnected (protocol error: frame length 2 is out of range (LEN must be 4..=4094))").await;
    site.switch(2).emit_event(b'n', "2201", b"");
    let f = multi.next_frame().await.unwrap().unwrap();
    assert_eq!((f.kind(), f.body()[0]), (Kind::Event, 2));
}

#[tokio::test]
async fn stopping_the_relay_sends_x_reason_2_to_every_session_first() {
    let site = SiteSpec::switches(1).start().await;
    let mut a = site.admitted(51, 3, CALL, &[]).await;
    let mut b = site.admitted(52, 2, ACD, &[]).await;
    site.switch(1).emit_event(b'n', "2201", b"last");
    let Site {
        relay,
        switches,
        state_dir: _state_dir,
        ..
    } = site;
    within("shutdown", relay.shutdown()).await;
    for app in [&mut a, &mut b] {
        let frames = app.read_to_end().await.unwrap();
        let last = LinkMsg::decode(frames.last().unwrap()).unwrap();
        assert_eq!(
            last,
            LinkMsg::Close {
                reason: 2,
                text: "the relay is shutting down".into()
            }
        );
    }
    switches[&1].wait_closed(1).await;
}

/// The operator's disconnect marks the links down before it returns: an identify sent right
/// after it is refused (result 10, no switch up), never admitted and then closed with `X` 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identify_right_after_disconnect_all_is_refused_not_admitted_then_closed() {
    let site = SiteSpec::switches(2)
        .tuning(|t| t.recovery_cycle = Some(Duration::from_secs(3600)))
        .start()
        .await;
    for round in 0..20 {
        // Connected before the operator acts, identified right after.
        let mut app = client_sim::SimApp::connect(site.client(), Some(loopback(51)))
            .await
            .unwrap();
        site.relay.disconnect_all();
        let id = app.identify(3, OPERATOR, "operator", &[]).await.unwrap();
        assert_eq!(id.result, 10, "round {round}: {id:?}");
        assert!(!site.is_up(1) && !site.is_up(2), "round {round}");
        site.relay.connect_all();
        site.wait_switch_up(1).await;
        site.wait_switch_up(2).await;
    }
}

/// Every series of attempts that runs out says so: at start-up and after an operator's
/// connect as much as after a loss.
#[tokio::test]
async fn recovery_that_runs_out_says_so_at_start_up_and_after_an_operator_connect() {
    let gave_up = "Automatic link recovery of switch 1 gave up after 2 attempt(s)";
    let site = SiteSpec::switches(1)
        .switch_settings(1, |s| s.easyset_password = "9999".into())
        .configure(|c| c.options.recovery.attempts = 2)
        .tuning(fast_redial)
        .wait_up(&[])
        .start()
        .await;
    site.wait_notice(gave_up).await;
    let count = |site: &Site| {
        site.notices()
            .iter()
            .filter(|n| n.contains(gave_up))
            .count()
    };
    assert_eq!(count(&site), 1);
    assert!(site.relay.connect_switch(1));
    wait_until("a second give-up", || count(&site) == 2).await;
    assert!(!site.is_up(1));
}
