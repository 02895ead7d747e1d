//! docs/behaviour.md §9 and docs/protocol.md §1: malformed input closes one connection, never the relay, and no
//! other session sees anything of it.

use std::time::Duration;

use client_sim::SimApp;
use testkit::*;
use wire::{Kind, LinkMsg};

/// Sends `bytes` on a fresh connection and returns everything the relay sent before closing.
async fn send_and_collect(site: &Site, bytes: &[u8]) -> Vec<u8> {
    let mut app = SimApp::connect(site.client(), Some(loopback(90)))
        .await
        .unwrap();
    app.send_raw(bytes).await.unwrap();
    let mut stream = app.into_stream();
    let mut got = Vec::new();
    let _ = within(
        "the relay closes the connection",
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut got),
    )
    .await;
    got
}

/// A live session that must see nothing of the bad input, then the next event.
async fn assert_untouched(site: &Site, live: &mut SimApp) {
    site.switch(1).emit_event(b'n', "2201", b"probe");
    let f = live.next_non_heartbeat().await.unwrap().unwrap();
    assert_eq!((f.kind(), &f.body()[6..]), (Kind::Event, &b"probe"[..]));
}

#[tokio::test]
async fn framing_errors_before_identify_close_only_that_connection_without_an_answer() {
    let site = SiteSpec::switches(1).start().await;
    let mut live = site.admitted(51, 3, CALL, &[]).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("LEN 0", vec![0, 0]),
        ("LEN 1", vec![0, 1, b'L']),
        ("LEN 2", vec![0, 2, b'L', b'I']),
        ("LEN 3", vec![0, 3, b'L', b'I', 0xFF]),
        ("LEN 4095", vec![0x0F, 0xFF, b'L']),
        ("LEN 65535", vec![0xFF, 0xFF]),
        ("unknown KIND", vec![0, 4, b'Q', b'I', 0xFF, 0xFF]),
        ("text garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
    ];
    for (what, bytes) in cases {
        assert_eq!(
            send_and_collect(&site, &bytes).await,
            Vec::<u8>::new(),
            "{what}"
        );
    }
    assert_untouched(&site, &mut live).await;
    site.wait_sessions(1).await;
    assert!(site.is_up(1));
}

#[tokio::test]
async fn a_first_frame_that_is_not_a_valid_identify_is_result_8() {
    let site = SiteSpec::switches(1).start().await;
    let mut live = site.admitted(51, 3, CALL, &[]).await;
    let identify = LinkMsg::Identify {
        protocol: 3,
        product: CALL,
        app_name: "Call".into(),
        devices: vec![],
        resume: None,
    }
    .encode()
    .unwrap();
    // Truncated: the body stops inside app_name (LEN says so, so framing is intact).
    let mut truncated = identify[..identify.len() - 3].to_vec();
    truncated[1] -= 3;
    let heartbeat = LinkMsg::Heartbeat.encode().unwrap();
    let request = [0, 5, b'R', b'K', 0, 1, 1];
    let refused = LinkMsg::IdentifyResult {
        result: 8,
        switches: vec![],
        resume: None,
    }
    .encode()
    .unwrap();
    for (what, bytes) in [
        ("truncated identify", truncated),
        ("heartbeat first", heartbeat.to_vec()),
        ("request first", request.to_vec()),
    ] {
        assert_eq!(
            send_and_collect(&site, &bytes).await,
            refused.to_vec(),
            "{what}"
        );
    }
    assert_untouched(&site, &mut live).await;
}

#[tokio::test]
async fn framing_errors_after_identify_get_x_reason_4() {
    let site = SiteSpec::switches(1).start().await;
    let mut live = site.admitted(51, 3, CALL, &[]).await;
    for (what, bytes, text) in [
        (
            "LEN 2",
            vec![0u8, 2, b'R', b'K'],
            "frame length 2 is out of range (LEN must be 4..=4094)",
        ),
        (
            "LEN 4095",
            vec![0x0F, 0xFF, b'R'],
            "frame length 4095 is out of range (LEN must be 4..=4094)",
        ),
        (
            "unknown KIND",
            vec![0, 4, b'Z', b'K', 0, 0],
            "unknown frame kind 0x5A",
        ),
        (
            "an event",
            vec![0, 5, b'E', b'n', 0xFF, 0xFF, 1],
            "an application must not send Event frames",
        ),
        (
            "INVOKE 0xFFFF",
            vec![0, 5, b'R', b'K', 0xFF, 0xFF, 1],
            "a request must not use INVOKE 0xFFFF",
        ),
        (
            "no SWITCH byte",
            vec![0, 4, b'R', b'K', 0, 1],
            "a protocol-3 Request frame must carry a SWITCH byte",
        ),
    ] {
        let mut app = site.admitted(52, 3, CALL, &[]).await;
        app.send_raw(&bytes).await.unwrap();
        let frames = within(what, app.read_to_end()).await.unwrap();
        assert_eq!(
            LinkMsg::decode(frames.last().unwrap()).unwrap(),
            LinkMsg::Close {
                reason: 4,
                text: text.into()
            },
            "{what}"
        );
    }
    assert_untouched(&site, &mut live).await;
    site.wait_sessions(1).await;
    assert_eq!(
        site.relay
            .stats()
            .protocol_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        6
    );
}

#[tokio::test]
async fn no_identify_within_10_s_closes_the_connection() {
    let site = SiteSpec::switches(1).start().await;
    let mut silent = SimApp::connect(site.client(), None).await.unwrap();
    // A frame begun but never finished is no identify either.
    let mut partial = SimApp::connect(site.client(), None).await.unwrap();
    partial.send_raw(&[0, 20, b'L', b'I', 0xFF]).await.unwrap();
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    for app in [&mut silent, &mut partial] {
        let frames = within("identify deadline", app.read_to_end())
            .await
            .unwrap();
        assert_eq!(
            frames
                .iter()
                .map(|f| LinkMsg::decode(f).unwrap())
                .collect::<Vec<_>>(),
            vec![LinkMsg::Close {
                reason: 6,
                text: "identify not received in time".into()
            }]
        );
    }
    let waited = start.elapsed();
    assert!(
        (Duration::from_millis(9_900)..=Duration::from_millis(10_100)).contains(&waited),
        "closed after {waited:?}"
    );
}
