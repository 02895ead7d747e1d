//! Requests and answers: INVOKE rewriting and isolation, relay-made answers, Call+ gating.

use std::time::Duration;

use switch_sim::Answering;
use testkit::*;
use wire::{CallMsg, Frame, Kind};

async fn next_answer(app: &mut client_sim::SimApp) -> CallMsg {
    loop {
        let f: Frame = within("answer", app.next_non_heartbeat())
            .await
            .unwrap()
            .expect("session open");
        if f.kind() == Kind::Answer {
            return CallMsg::decode(&f, app.protocol == 3).unwrap();
        }
    }
}

#[tokio::test]
async fn two_sessions_using_the_same_invokes_each_get_only_their_own_answers() {
    let site = SiteSpec::switches(1).start().await;
    let mut a = site.admitted(51, 3, CALL, &[]).await;
    let mut b = site.admitted(52, 2, CALL, &[]).await;
    for invoke in [1u16, 2, 3] {
        a.request(Some(1), b'K', invoke, format!("a{invoke}").as_bytes())
            .await
            .unwrap();
        b.request(None, b'K', invoke, format!("b{invoke}").as_bytes())
            .await
            .unwrap();
    }
    for invoke in [1u16, 2, 3] {
        let ans = next_answer(&mut a).await;
        assert_eq!((ans.invoke, ans.switch), (invoke, Some(1)));
        assert_eq!(
            &ans.body[..],
            &[&[0u8][..], format!("a{invoke}").as_bytes()].concat()[..]
        );
        let ans = next_answer(&mut b).await;
        assert_eq!((ans.invoke, ans.switch), (invoke, None));
        assert_eq!(
            &ans.body[..],
            &[&[0u8][..], format!("b{invoke}").as_bytes()].concat()[..]
        );
    }
    // The switch saw six distinct INVOKE values, none of them 0xFFFF, and no SWITCH byte.
    let reqs = site.switch(1).requests();
    let mut invokes: Vec<u16> = reqs.iter().map(Frame::invoke).collect();
    invokes.sort_unstable();
    invokes.dedup();
    assert_eq!(invokes.len(), 6);
    assert!(!invokes.contains(&0xFFFF));
    assert_eq!(
        reqs[0].body(),
        b"a1",
        "SWITCH byte stripped before the switch"
    );
    assert!(
        a.next_frame_within(Duration::from_millis(100))
            .await
            .is_err(),
        "no stray answers"
    );
}

#[tokio::test]
async fn requests_to_a_switch_not_served_are_answered_e1() {
    let site = SiteSpec::switches(2)
        .configure(|c| {
            c.users.push(relay::config::User {
                ip: "127.0.0.51".into(),
                name: String::new(),
                info: String::new(),
                switches: vec![1],
                default_switch: None,
                filtering: false,
                certificate: None,
            })
        })
        .start()
        .await;
    let mut app = site.admitted(51, 3, CALL, &[]).await;
    for (invoke, sw) in [(10u16, 2u8), (11, 0), (12, 9)] {
        app.request(Some(sw), b'K', invoke, b"").await.unwrap();
        let ans = next_answer(&mut app).await;
        assert_eq!(
            (ans.invoke, ans.switch, &ans.body[..]),
            (invoke, Some(sw), &[0xE1u8][..])
        );
    }
    assert!(site.switch(2).requests().is_empty());
}

#[tokio::test]
async fn call_plus_is_forwarded_only_with_the_option_on_and_a_capable_switch() {
    // Option off: answered 0xE2 even though the switch is capable.
    let site = SiteSpec::switches(1).start().await;
    let mut app = site.admitted(51, 3, CALL_PLUS, &[]).await;
    app.request(Some(1), b'+', 5, b"hello").await.unwrap();
    assert_eq!(&next_answer(&mut app).await.body[..], &[0xE2]);
    assert!(site.switch(1).requests().is_empty());

    // Option on, switch without caps bit0: still 0xE2 for it; the capable switch gets it.
    let site = SiteSpec::switches(2)
        .switch_settings(2, |s| s.caps = 0b110)
        .configure(|c| c.options.call_plus = true)
        .start()
        .await;
    let mut app = site.admitted(51, 3, CALL_PLUS, &[]).await;
    app.request(Some(2), b'+', 6, b"hello").await.unwrap();
    let ans = next_answer(&mut app).await;
    assert_eq!(
        (ans.invoke, ans.switch, &ans.body[..]),
        (6, Some(2), &[0xE2u8][..])
    );
    app.request(Some(1), b'+', 7, b"hello").await.unwrap();
    let ans = next_answer(&mut app).await;
    assert_eq!(
        (ans.invoke, ans.switch, &ans.body[..]),
        (7, Some(1), &b"\x00hello"[..])
    );
    assert_eq!(site.switch(1).requests().len(), 1);
}

#[tokio::test]
async fn too_many_requests_in_flight_are_answered_e3() {
    let site = SiteSpec::switches(1)
        .switch_settings(1, |s| s.answering = Answering::Silent)
        .tuning(|t| t.max_in_flight = 4)
        .start()
        .await;
    let mut app = site.admitted(51, 2, CALL, &[]).await;
    for invoke in 0..5u16 {
        app.request(None, b'K', invoke, b"").await.unwrap();
    }
    let ans = next_answer(&mut app).await;
    assert_eq!((ans.invoke, &ans.body[..]), (4, &[0xE3u8][..]));
    site.switch(1).wait_received(4).await;
    assert_eq!(site.switch(1).requests().len(), 4);
}

#[tokio::test]
async fn a_request_the_switch_never_answers_gets_e4_after_30_s() {
    let site = SiteSpec::switches(1)
        .switch_settings(1, |s| s.answering = Answering::Silent)
        .start()
        .await;
    let mut app = site.admitted(51, 3, CALL, &[]).await;
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    app.request(Some(1), b'K', 42, b"2202").await.unwrap();
    let ans = next_answer(&mut app).await;
    let waited = start.elapsed();
    assert_eq!(
        (ans.invoke, ans.switch, &ans.body[..]),
        (42, Some(1), &[0xE4u8][..])
    );
    assert!(
        (Duration::from_secs(30)..=Duration::from_secs(32)).contains(&waited),
        "answered after {waited:?}"
    );
    // The link stayed up throughout (heartbeats kept it alive) and the session too.
    assert!(site.is_up(1));
    app.request(Some(1), b'Y', 43, b"").await.unwrap();
    let sw = site.switch(1);
    within("request 43 at the switch", async {
        while sw.requests().len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // A late answer to 42 is dropped, never delivered twice.
    let reqs = site.switch(1).requests();
    site.switch(1)
        .send_answer(b'K', reqs[0].invoke(), 0, b"late");
    site.switch(1)
        .send_answer(b'Y', reqs.last().unwrap().invoke(), 0, b"ok");
    let ans = next_answer(&mut app).await;
    assert_eq!((ans.invoke, &ans.body[..]), (43, &b"\x00ok"[..]));
}
