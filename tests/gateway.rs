//! The WebSocket/JSON gateway (`/ws` on the admin port) from a Rust client: identify,
//! events, a request and its one answer, malformed messages answered without harm to any
//! session, the admin token, and heartbeats as ping/pong.

use std::time::Duration;

use futures_util::StreamExt;
use relay::gateway::messages::{Event, EventFields, FromRelay, Request, SwitchState, ToRelay};
use serde_json::json;
use testkit::*;
use tokio_tungstenite::tungstenite::Message;
use ws_client::{connect, next, say, Ws};

mod ws_client;

async fn send(ws: &mut Ws, m: &ToRelay) {
    say(ws, &serde_json::to_string(m).unwrap()).await;
}

async fn identified(ws: &mut Ws, devices: serde_json::Value) -> FromRelay {
    say(
        ws,
        &json!({"type": "identify", "product": "call", "name": "crm", "devices": devices})
            .to_string(),
    )
    .await;
    next(ws).await
}

#[tokio::test]
async fn a_browser_application_identifies_gets_events_and_one_answer_per_request() {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(None).await;
    let mut ws = connect(&admin, "").await.unwrap();
    assert_eq!(
        identified(&mut ws, json!([{"switch": 1, "device": "2201"}])).await,
        FromRelay::Identified {
            result: 0,
            reason: "accepted".into(),
            switches: vec![SwitchState {
                switch: 1,
                up: true
            }],
        }
    );
    let sessions = site.relay.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].product, wire::Product::Call);

    // A call from 2201 to 2202: its answer, with the application's own id, and the events.
    send(
        &mut ws,
        &ToRelay::Request(Request {
            id: json!("call-1"),
            switch: 1,
            code: "K".into(),
            fields: vec!["2201".into(), "2202".into()],
            body: None,
        }),
    )
    .await;
    let mut answers = Vec::new();
    let mut events = Vec::new();
    while answers.is_empty() || events.is_empty() {
        match next(&mut ws).await {
            FromRelay::Answer {
                id,
                switch,
                code,
                result,
                ..
            } => answers.push((id, switch, code, result)),
            FromRelay::Event(Event {
                switch,
                code,
                device,
                fields,
                ..
            }) => events.push((switch, code, device, fields)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(answers, vec![(json!("call-1"), 1, "K".to_owned(), 0)]);
    let (switch, code, device, fields) = &events[0];
    assert_eq!((*switch, code.as_str(), device.as_str()), (1, "d", "2201"));
    let fields = fields.clone().expect("decoded");
    assert_eq!(
        (fields.name.as_str(), fields.other.as_str()),
        ("dialling", "2202")
    );
    assert!(matches!(fields, EventFields { state: None, .. }));
}

#[tokio::test]
async fn a_malformed_message_is_answered_naming_the_field_and_harms_no_session() {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(None).await;
    let mut other = site.admitted(52, 3, OPERATOR, &[]).await;
    let mut ws = connect(&admin, "").await.unwrap();

    // Before identify: a message that is not JSON, and one of an unknown product.
    say(&mut ws, "not json").await;
    assert!(matches!(
        next(&mut ws).await,
        FromRelay::Error { field: None, .. }
    ));
    say(&mut ws, r#"{"type":"identify","product":"fax"}"#).await;
    assert_eq!(
        next(&mut ws).await,
        FromRelay::Error {
            error: "\"fax\" is not a product".into(),
            field: Some("product".into())
        }
    );
    assert!(matches!(
        identified(&mut ws, json!([])).await,
        FromRelay::Identified { result: 0, .. }
    ));

    // After: a misspelt field, a code of two characters, a body that is not hex.
    say(&mut ws, r#"{"type":"request","id":1,"swtch":1,"code":"K"}"#).await;
    match next(&mut ws).await {
        FromRelay::Error { error, field } => {
            assert_eq!(field.as_deref(), Some("swtch"), "{error}");
            assert!(error.starts_with("unknown field `swtch`"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    say(
        &mut ws,
        r#"{"type":"request","id":2,"switch":1,"code":"KK"}"#,
    )
    .await;
    assert_eq!(
        next(&mut ws).await,
        FromRelay::Error {
            error: "\"KK\" is not one character".into(),
            field: Some("code".into())
        }
    );
    say(
        &mut ws,
        r#"{"type":"request","id":3,"switch":1,"code":"Y","body":"zz"}"#,
    )
    .await;
    assert!(matches!(
        next(&mut ws).await,
        FromRelay::Error { field: Some(f), .. } if f == "body"
    ));

    // Both sessions go on: a request on each is answered.
    send(
        &mut ws,
        &ToRelay::Request(Request {
            id: json!(4),
            switch: 1,
            code: "Y".into(),
            fields: vec!["2201".into()],
            body: None,
        }),
    )
    .await;
    loop {
        if let FromRelay::Answer { id, .. } = next(&mut ws).await {
            assert_eq!(id, json!(4));
            break;
        }
    }
    other
        .request(Some(1), b'Y', 9, &wire::str8_body(&["2201"]))
        .await
        .unwrap();
    loop {
        let f = within("the operator's answer", other.next_non_heartbeat())
            .await
            .unwrap()
            .unwrap();
        if f.kind() == wire::Kind::Answer {
            assert_eq!(f.invoke(), 9);
            break;
        }
    }
    assert_eq!(site.relay.session_count(), 2);
}

#[tokio::test]
async fn the_admin_token_guards_the_gateway_and_may_come_in_the_query() {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(Some("s3cret")).await;
    let refused = connect(&admin, "").await.err().map(|e| e.to_string());
    assert!(
        refused.as_deref().is_some_and(|e| e.contains("401")),
        "{refused:?}"
    );
    assert!(connect(&admin, "?token=wrong").await.is_err());
    let mut ws = connect(&admin, "?token=s3cret").await.unwrap();
    assert!(matches!(
        identified(&mut ws, json!([])).await,
        FromRelay::Identified { result: 0, .. }
    ));
}

#[tokio::test]
async fn heartbeats_are_pings_and_a_tab_that_answers_them_stays() {
    let site = SiteSpec::officeserv(1)
        .tuning(|t| {
            // Checked each second: a heartbeat after 1 s of quiet, closed after 3 s of silence.
            t.heartbeat_interval = Duration::from_secs(1);
            t.silence_limit = Duration::from_secs(3);
        })
        .start()
        .await;
    let admin = site.serve_admin(None).await;
    let mut ws = connect(&admin, "").await.unwrap();
    assert!(matches!(
        identified(&mut ws, json!([])).await,
        FromRelay::Identified { result: 0, .. }
    ));
    // Reading answers each ping with a pong: after twice the silence limit, still served.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < until {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        {
            pings += 1;
        }
    }
    assert!(pings >= 2, "{pings} pings in 6 s");
    assert_eq!(site.relay.session_count(), 1);

    // A tab that stops reading stops answering: closed as silent.
    wait_until_for("the silent tab closed", Duration::from_secs(6), || {
        site.relay.session_count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_tab_too_slow_to_read_is_closed_like_any_slow_session() {
    let site = SiteSpec::officeserv(1)
        .tuning(|t| t.session_queue_bytes = 256 << 10)
        .start()
        .await;
    let admin = site.serve_admin(None).await;
    let mut slow = connect(&admin, "").await.unwrap();
    assert!(matches!(
        identified(&mut slow, json!([])).await,
        FromRelay::Identified { result: 0, .. }
    ));
    let mut reader = site.admitted(52, 3, OPERATOR, &[]).await;

    // 40 MB of events the tab never reads: the socket, the bridge's pipe and then the
    // session's queue fill, and the relay closes that session only.
    let chunk = benches_chunk();
    for _ in 0..400 {
        assert!(site.switch(1).send_raw(chunk.clone()));
        tokio::task::yield_now().await;
    }
    site.wait_notice("closed: it did not read its messages fast enough")
        .await;
    wait_until("the slow tab's session gone", || {
        site.relay.session_count() == 1
    })
    .await;
    // The other session read on and is still served.
    let f = within("a frame", reader.next_non_heartbeat())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.kind(), wire::Kind::Event);
    drop(slow);
}

/// 1 024 events of 100-byte bodies, as one write of the switch.
fn benches_chunk() -> bytes::Bytes {
    let one = switch_sim::switch::event_frame(b'n', "2201", &[b'x'; 95]);
    let mut out = bytes::BytesMut::new();
    for _ in 0..1024 {
        out.extend_from_slice(&one);
    }
    out.freeze()
}

/// A tab that asks for `batch` gets the same events as one that does not, in the same order,
/// in `events` messages whose `count` says how many each holds.
#[tokio::test]
async fn a_batching_tab_gets_the_events_another_tab_gets() {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(None).await;
    let mut plain = connect(&admin, "").await.unwrap();
    assert!(matches!(
        identified(&mut plain, json!([])).await,
        FromRelay::Identified { result: 0, .. }
    ));
    let mut batching = connect(&admin, "").await.unwrap();
    say(
        &mut batching,
        r#"{"type":"identify","product":"call","name":"busy","batch":true}"#,
    )
    .await;
    assert!(matches!(
        next(&mut batching).await,
        FromRelay::Identified { result: 0, .. }
    ));
    for (id, from, to) in [(1, "2201", "2202"), (2, "2203", "2204")] {
        send(
            &mut batching,
            &ToRelay::Request(Request {
                id: json!(id),
                switch: 1,
                code: "K".into(),
                fields: vec![from.into(), to.into()],
                body: None,
            }),
        )
        .await;
    }
    // Two calls: dialling and ringing for each.
    let without_time = |e: Event| Event { time_ms: 0, ..e };
    let mut one_by_one = Vec::new();
    while one_by_one.len() < 4 {
        match next(&mut plain).await {
            FromRelay::Event(e) => one_by_one.push(without_time(e)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let (mut together, mut answers) = (Vec::new(), 0);
    while together.len() < 4 || answers < 2 {
        match next(&mut batching).await {
            FromRelay::Events { events, count } => {
                assert_eq!(count, events.len());
                together.extend(events.into_iter().map(without_time));
            }
            FromRelay::Answer { result: 0, .. } => answers += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(together, one_by_one);
    let devices: Vec<&str> = together.iter().map(|e| e.device.as_str()).collect();
    assert_eq!(devices, ["2201", "2202", "2203", "2204"]);
}

/// A tab refused at identify (the trial's one OpenTSP is taken) is told why, in an
/// `identified` message and in the close that follows (1008), and the tab that holds the
/// licence keeps its session.
#[tokio::test]
async fn a_tab_refused_at_identify_is_told_why_and_closed() {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(None).await;
    let identify = json!({"type": "identify", "product": "opentsp", "name": "tsp"}).to_string();
    let mut first = connect(&admin, "").await.unwrap();
    say(&mut first, &identify).await;
    let FromRelay::Identified { result: 0, .. } = next(&mut first).await else {
        panic!("the first OpenTSP is admitted");
    };
    let mut second = connect(&admin, "").await.unwrap();
    say(&mut second, &identify).await;
    let FromRelay::Identified { result, reason, .. } = next(&mut second).await else {
        panic!("the second is answered with its result");
    };
    let expected = wire::IdentifyResult::from_byte(result).map(|r| r.describe());
    assert!(
        result != 0 && expected == Some(reason.as_str()),
        "{result}: {reason}"
    );
    let close = loop {
        match within("the close", second.next()).await {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), format!("identify refused: {reason}"));
    assert_eq!(site.relay.sessions().len(), 1);
}

/// An operator closes a tab's session: the relay's last frame (`X` reason 7) reaches the tab
/// as a `close` message, then the connection closes with 1008 and the relay's text.
#[tokio::test]
async fn a_tab_closed_by_the_operator_is_told_why() {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(None).await;
    let mut ws = connect(&admin, "").await.unwrap();
    let FromRelay::Identified { result: 0, .. } = identified(&mut ws, json!([])).await else {
        panic!("admitted");
    };
    let id = site.relay.sessions()[0].id;
    assert!(site.relay.close_session(id));
    let (reason, text) = loop {
        if let FromRelay::Close { reason, text } = next(&mut ws).await {
            break (reason, text);
        }
    };
    assert_eq!(reason, wire::CloseReason::Administrator.byte());
    let close = loop {
        match within("the close", ws.next()).await {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1008, text.as_str())
    );
    within("the session to go", async {
        while !site.relay.sessions().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
