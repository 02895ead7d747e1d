//! The admin API (docs/behaviour.md §8) against a running relay with a simulated switch.

use std::time::Duration;
use switch_sim::{Settings, SimSwitch};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use client_sim::SimApp;
use http_body_util::BodyExt;
use relay::admin::{router, AdminState};
use relay::Config;
use testkit::{Site, SiteSpec};
use tower::ServiceExt;
use wire::LinkMsg;

async fn site() -> Site {
    SiteSpec::officeserv(1).start().await
}

/// The API over `s`, writing changes back to a configuration file of its own.
fn api_with_file(
    s: &Site,
    token: Option<&str>,
) -> (axum::Router, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.yaml");
    (*s.relay.config()).save_atomic(&path).unwrap();
    let api = router(AdminState::new(
        s.relay.clone(),
        token.map(str::to_owned),
        Some(path.clone()),
    ));
    (api, path, dir)
}

/// Disconnects switch 1 through the API and waits until its link is down.
async fn disconnect_switch_1(api: &axum::Router, s: &Site) {
    let (code, _) = call(api, "POST", "/api/switches/1/disconnect", None, "").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    for _ in 0..500 {
        if !s.relay.switch_up(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("switch 1 still up 2.5 s after its disconnect");
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn status_sessions_and_closing_one_with_x_reason_7() {
    let s = site().await;
    let api = router(AdminState::new(s.relay.clone(), None, None));
    let (mut app, id) = SimApp::identify_as(s.relay.client_addr(), None, 3, 1, &[(1, "2201")])
        .await
        .unwrap();
    assert_eq!(id.result, 0);

    let (code, body) = call(&api, "GET", "/api/status", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let reply: relay::admin::contract::StatusReply = serde_json::from_str(&body).unwrap();
    let status = &reply.status;
    assert_eq!(status.switches_connected, 1);
    assert_eq!(status.sessions[0].state, "[Call: 2201 - SW(1)]");
    assert_eq!(status.licence.standing, "trial");
    // Licence use is named fields, not tuples.
    let call_use = &status.licence.products[0];
    assert_eq!(
        (
            call_use.name.as_str(),
            call_use.limit.as_str(),
            call_use.in_use.as_str()
        ),
        ("Call (CallPlus counts as Call)", "20", "1")
    );
    assert!(
        body.contains(r#""bypass":[{"name":"ACD","limit":"#),
        "{body}"
    );

    let (code, body) = call(&api, "GET", "/api/sessions", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let sessions: serde_json::Value = serde_json::from_str(&body).unwrap();
    let session_id = sessions[0]["id"].as_u64().unwrap();

    let (code, _) = call(
        &api,
        "DELETE",
        &format!("/api/sessions/{session_id}"),
        None,
        "",
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let frames = app.read_to_end().await.unwrap();
    assert_eq!(
        LinkMsg::decode(frames.last().unwrap()).unwrap(),
        LinkMsg::Close {
            reason: 7,
            text: "closed by the administrator".into()
        }
    );
    let (code, body) = call(&api, "DELETE", "/api/sessions/999", None, "").await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::NOT_FOUND,
            r#"{"error":"no session 999","field":"id","value":999}"#
        )
    );
    s.relay.shutdown().await;
}

#[tokio::test]
async fn switch_operations_notifications_and_metrics() {
    let s = site().await;
    let api = router(AdminState::new(s.relay.clone(), None, None));
    let (code, body) = call(&api, "POST", "/api/switches/9/connect", None, "").await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"a switch number is 1..=8","field":"no","value":"9"}"#
        )
    );
    disconnect_switch_1(&api, &s).await;
    let (_, metrics) = call(&api, "GET", "/metrics", None, "").await;
    assert!(
        metrics.contains("cti_switch_link_up{switch=\"1\"} 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE cti_deliveries_total counter\n"),
        "{metrics}"
    );
    let (code, _) = call(&api, "POST", "/api/switches/1/connect", None, "").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    // A relay with a site of its own holds no lease to hand over.
    let (code, body) = call(&api, "POST", "/api/bus/lease/release", None, "").await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::CONFLICT,
            r#"{"error":"this relay shares no site with another (bus.shared is off): it holds no lease"}"#
        )
    );
    let (_, body) = call(&api, "GET", "/api/notifications", None, "").await;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let texts: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"Switch 1 disconnected (disconnected by the operator)"),
        "{texts:?}"
    );
    s.relay.shutdown().await;
}

/// The sample of `name` with these labels in the exposition text.
fn sample(metrics: &str, name_and_labels: &str) -> u64 {
    let line = metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name_and_labels} ")))
        .unwrap_or_else(|| panic!("no {name_and_labels} in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_count_link_frames_recoveries_and_licence_use() {
    let s = SiteSpec::officeserv(1)
        .tuning(|t| t.recovery_cycle = Some(Duration::from_millis(50)))
        .start()
        .await;
    let api = router(AdminState::new(s.relay.clone(), None, None));
    let (_, before) = call(&api, "GET", "/metrics", None, "").await;
    let opened_in = sample(&before, "cti_switch_frames_in_total{switch=\"1\"}");
    let opened_out = sample(&before, "cti_switch_frames_out_total{switch=\"1\"}");

    // One request and its answer: one frame each way.
    let (mut app, id) = SimApp::identify_as(s.relay.client_addr(), None, 2, 1, &[])
        .await
        .unwrap();
    assert_eq!(id.result, 0);
    app.request(None, b'K', 1, b"2201").await.unwrap();
    let answer = app.next_non_heartbeat().await.unwrap().unwrap();
    assert_eq!(answer.kind(), wire::Kind::Answer);
    let (_, after) = call(&api, "GET", "/metrics", None, "").await;
    assert_eq!(
        sample(&after, "cti_switch_frames_out_total{switch=\"1\"}"),
        opened_out + 1
    );
    assert_eq!(
        sample(&after, "cti_switch_frames_in_total{switch=\"1\"}"),
        opened_in + 1
    );
    assert_eq!(
        sample(
            &after,
            "cti_licence_products{product=\"Call\",kind=\"in_use\"}"
        ),
        1
    );
    assert_eq!(
        sample(&after, "cti_sessions{product=\"Call\",protocol=\"2\"}"),
        1
    );
    assert_eq!(
        sample(&after, "cti_switch_recoveries_total{switch=\"1\"}"),
        0
    );
    drop(app);

    // The switch drops the link; the schedule brings it back.
    assert!(s.switch(1).drop_link());
    s.switch(1).wait_opened(2).await;
    let mut metrics = String::new();
    for _ in 0..500 {
        (_, metrics) = call(&api, "GET", "/metrics", None, "").await;
        if sample(&metrics, "cti_switch_recoveries_total{switch=\"1\"}") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        sample(&metrics, "cti_switch_link_losses_total{switch=\"1\"}"),
        1
    );
    assert_eq!(
        sample(&metrics, "cti_switch_recoveries_total{switch=\"1\"}"),
        1
    );
    assert_eq!(sample(&metrics, "cti_switch_link_up{switch=\"1\"}"), 1);
    s.relay.shutdown().await;
}

#[tokio::test]
async fn a_token_is_required_when_configured_and_licence_errors_name_the_key() {
    let s = SiteSpec::officeserv(1)
        .configure(|c| {
            c.admin.token = Some("t0ken".into());
            c.monitor.password = Some("m0nitor".into());
        })
        .start()
        .await;
    let api = router(AdminState::new(s.relay.clone(), Some("t0ken".into()), None));
    let (code, body) = call(&api, "GET", "/api/status", None, "").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        r#"{"error":"a valid admin token is required: send Authorization: Bearer <admin.token>"}"#
    );
    let (code, _) = call(&api, "GET", "/api/status", Some("wrong"), "").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = call(&api, "GET", "/api/status", Some("t0ken"), "").await;
    assert_eq!(code, StatusCode::OK);
    let (_, config) = call(&api, "GET", "/api/config", Some("t0ken"), "").await;
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["admin"]["token"], "********", "never shown");
    assert_eq!(config["monitor"]["password"], "********", "never shown");
    for path in ["/metrics", "/api/notifications/live", "/api/config"] {
        let (code, _) = call(&api, "GET", path, None, "").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path}");
    }

    // The console's page and assets hold no data: served without the token, same-origin only.
    let res = api
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'; script-src 'self';"));
    let page = res.into_body().collect().await.unwrap().to_bytes();
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(page.contains(r#"<script src="/console.js" defer></script>"#));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );
    for (path, kind) in [
        ("/console.js", "text/javascript; charset=utf-8"),
        ("/console.css", "text/css; charset=utf-8"),
    ] {
        let res = api
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            (
                res.status(),
                res.headers()["content-type"].to_str().unwrap()
            ),
            (StatusCode::OK, kind)
        );
    }
    let (code, body) = call(
        &api,
        "POST",
        "/api/licence",
        Some("t0ken"),
        r#"{"key":"NOT-A-KEY"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        r#"{"error":"a key is 18 groups of 8 characters joined by '-'; this one has 3 group(s)","field":"key","value":"NOT-A-KEY"}"#
    );
    s.relay.shutdown().await;
}

#[tokio::test]
async fn users_and_switches_are_changed_under_the_rules_and_written_back() {
    let s = site().await;
    let (api, path, _dir) = api_with_file(&s, None);
    let user =
        r#"{"ip":"10.1.1.5","name":"Alex","switches":[1],"default_switch":1,"filtering":true}"#;
    let (code, body) = call(&api, "POST", "/api/users", None, user).await;
    assert_eq!(
        (code, body.as_str()),
        (
            StatusCode::OK,
            r#"{"applied":true,"saved":true,"switches_added":[]}"#
        )
    );
    let saved = Config::load(&path).unwrap();
    assert_eq!(saved.users[0].name, "Alex", "written back to the file");
    assert_eq!(s.relay.config().users.len(), 1, "in force");

    // The same address again: refused with the rule's message, naming the field.
    let (code, body) = call(&api, "POST", "/api/users", None, user).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "users[1].ip");
    assert_eq!(v["error"], "10.1.1.5 is already registered by users[0]");

    // A connected switch cannot be re-addressed until it is disconnected.
    let moved = r#"{"no":1,"address":"127.0.1.62","port":5002,"easyset_password":"1234"}"#;
    let (code, body) = call(&api, "PUT", "/api/switches/1", None, moved).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["error"],
        "switch 1 is connected: disconnect it before changing or deleting it"
    );

    // A failed write refuses the change and leaves the file as it was.
    let before = std::fs::read_to_string(&path).unwrap();
    std::fs::create_dir(path.with_file_name(".relay.yaml.tmp")).unwrap();
    let (code, body) = call(&api, "DELETE", "/api/users/10.1.1.5", None, "").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.contains("the change is refused and the file is unchanged"),
        "{body}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert_eq!(s.relay.config().users.len(), 1, "nothing applied");
    s.relay.shutdown().await;
}

/// Each rule of docs/configuration.md, through the API: the status, the message, and the field it names.
#[tokio::test]
async fn every_switch_and_user_rule_is_enforced_through_the_api() {
    let s = site().await;
    let (api, path, _dir) = api_with_file(&s, None);
    let original = std::fs::read_to_string(&path).unwrap();
    let refused = |field: &str, message: &str| {
        format!(
            r#"{{"error":"{message}","errors":[{{"field":"{field}","message":"{message}"}}],"field":"{field}"}}"#
        )
    };
    let cases: Vec<(&str, &str, &str, StatusCode, String)> = vec![
        (
            "POST",
            "/api/switches",
            r#"{"no":0,"address":"10.0.0.2"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused("switches[1].no", "0 is out of range: use 1..=8"),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":9,"address":"10.0.0.2"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused("switches[1].no", "9 is out of range: use 1..=8"),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":1,"address":"10.0.0.2"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                "switches[1].no",
                "switch number 1 is already used by switches[0]",
            ),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":2,"address":"127.0.1.1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                "switches[1].address",
                "127.0.1.1: address already assigned to switch 1",
            ),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":2,"address":" "}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                "switches[1].address",
                "is empty: give the switch's IP address or host name",
            ),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":2,"address":"10.0.0.2","port":0}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused("switches[1].port", "0 is out of range: use 1..=65535"),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":2,"address":"10.0.0.2","port":70000}"#,
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid value: integer `70000`, expected a number in 0..=65535","field":"port"}"#.into(),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":2,"address":"10.0.0.2","type":"pbx"}"#,
            StatusCode::BAD_REQUEST,
            r#"{"error":"unknown variant `pbx`, expected `officeserv` or `general`","field":"type"}"#.into(),
        ),
        (
            "POST",
            "/api/switches",
            r#"{"no":2,"address":"10.0.0.2","colour":"red"}"#,
            StatusCode::BAD_REQUEST,
            r#"{"error":"unknown field `colour`, expected one of `no`, `address`, `port`, `name`, `type`, `easyset_password`, `enabled`, `remote`, `source_address`, `tls_ca`","field":"colour"}"#.into(),
        ),
        (
            "POST",
            "/api/users",
            r#"{"ip":"10.1.1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused("users[0].ip", r#"\"10.1.1\" is not a valid IP address"#),
        ),
        (
            "POST",
            "/api/users",
            r#"{"ip":"10.1.1.5","switches":[5]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused("users[0].switches", "switch 5 is not configured"),
        ),
        (
            "POST",
            "/api/users",
            r#"{"ip":"10.1.1.5","default_switch":3}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            refused("users[0].default_switch", "switch 3 is not configured"),
        ),
        (
            "PUT",
            "/api/users/10.9.9.9",
            r#"{"ip":"10.9.9.9"}"#,
            StatusCode::NOT_FOUND,
            r#"{"error":"no user 10.9.9.9 is configured","field":"ip","value":"10.9.9.9"}"#.into(),
        ),
        (
            "DELETE",
            "/api/switches/7",
            "",
            StatusCode::NOT_FOUND,
            r#"{"error":"no switch 7 is configured","field":"no","value":"7"}"#.into(),
        ),
        (
            "DELETE",
            "/api/switches/1",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                "switches[0]",
                "switch 1 is connected: disconnect it before changing or deleting it",
            ),
        ),
    ];
    for (method, uri, body, code, expected) in &cases {
        let answer = call(&api, method, uri, None, body).await;
        assert_eq!(answer, (*code, expected.clone()), "{method} {uri} {body}");
    }
    let (code, answer) = call(&api, "POST", "/api/users", None, "ip=10.1.1.5").await;
    assert_eq!(
        (code, answer.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"the request body is not a JSON user: expected value"}"#
        )
    );
    let form = Request::post("/api/users")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("ip=10.1.1.5"))
        .unwrap();
    let res = api.clone().oneshot(form).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        original,
        "nothing refused was written"
    );

    // Live effects: a new enabled switch is dialled at once; a user's default switch must be
    // among its switches; the global default switch cannot be deleted.
    let second = SimSwitch::start("127.0.1.62:0".parse().unwrap(), Settings::officeserv(2))
        .await
        .unwrap();
    let added = format!(
        r#"{{"no":2,"address":"127.0.1.62","port":{},"easyset_password":"1234"}}"#,
        second.addr().port()
    );
    let (code, answer) = call(&api, "POST", "/api/switches", None, &added).await;
    assert_eq!(
        (code, answer.as_str()),
        (
            StatusCode::OK,
            r#"{"applied":true,"saved":true,"switches_added":[2]}"#
        )
    );
    second.wait_opened(1).await;
    assert_eq!(Config::load(&path).unwrap().switches.len(), 2);
    let (code, answer) = call(
        &api,
        "POST",
        "/api/users",
        None,
        r#"{"ip":"10.1.1.5","switches":[2],"default_switch":1}"#,
    )
    .await;
    assert_eq!(
        (code, answer),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                "users[0].default_switch",
                "default switch 1 is not among the user's switches"
            )
        )
    );
    disconnect_switch_1(&api, &s).await;
    let (code, answer) = call(&api, "DELETE", "/api/switches/1", None, "").await;
    assert_eq!(
        (code, answer),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            refused("default_switch", "1 is not a configured switch")
        )
    );
    s.relay.shutdown().await;
}

/// The live notification stream over real HTTP, and an attempt aborted by the operator: a
/// switch that accepts the connection but never answers the open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_stream_live_and_an_attempt_in_progress_can_be_aborted() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = site().await;
    let silent = tokio::net::TcpListener::bind("127.0.1.63:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let admin = relay::admin::serve(
        AdminState::new(s.relay.clone(), None, None),
        netseam::Network::bind(&netseam::TcpNetwork, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();

    let stream = tokio::net::TcpStream::connect(admin.addr).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    wr.write_all(
        b"GET /api/notifications/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let mut lines = BufReader::new(rd).lines();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "HTTP/1.1 200 OK");

    let api = router(AdminState::new(s.relay.clone(), None, None));
    let body = format!(r#"{{"no":2,"address":"127.0.1.63","port":{silent_port}}}"#);
    let (code, _) = call(&api, "POST", "/api/switches", None, &body).await;
    assert_eq!(code, StatusCode::OK);
    // Give the attempt time to reach the silent switch, then abort it.
    let mut texts = Vec::new();
    let mut aborted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !texts
        .iter()
        .any(|t: &String| t.starts_with("Switch 2 link will be reactivated"))
    {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("notifications within 10 s")
            .unwrap()
            .unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            texts.push(v["text"].as_str().unwrap().to_owned());
            if !aborted
                && v["text"]
                    == "Connecting to switch 2 [127.0.1.63, ".to_owned()
                        + &silent_port.to_string()
                        + "]"
            {
                assert_eq!(link_of_switch_2(&api).await, ("connecting".into(), 1, 30));
                let (code, _) = call(&api, "POST", "/api/switches/2/abort", None, "").await;
                assert_eq!(code, StatusCode::ACCEPTED);
                aborted = true;
            }
        }
    }
    assert_eq!(
        texts,
        [
            format!("Connecting to switch 2 [127.0.1.63, {silent_port}]"),
            "Link attempt to switch 2 aborted by the operator".to_owned(),
            "Switch 2 link will be reactivated after 1 minute(s)".to_owned(),
        ]
    );
    // The schedule goes on after an abort; a disconnect stops it.
    assert_eq!(link_of_switch_2(&api).await, ("waiting".into(), 1, 30));
    let (code, _) = call(&api, "POST", "/api/switches/2/disconnect", None, "").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    for _ in 0..500 {
        if link_of_switch_2(&api).await.0 == "idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(link_of_switch_2(&api).await, ("idle".into(), 1, 30));
    held.abort();
    s.relay.shutdown().await;
    admin.stop().await;
}

/// Switch 2's link state in `/api/status`: what its supervisor does, attempt, attempts.
async fn link_of_switch_2(api: &axum::Router) -> (String, u64, u64) {
    let (_, body) = call(api, "GET", "/api/status", None, "").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sw = &v["status"]["switches"][1];
    (
        sw["link"].as_str().unwrap().to_owned(),
        sw["attempt"].as_u64().unwrap(),
        sw["attempts"].as_u64().unwrap(),
    )
}

/// Changes made at the same moment are applied one after another: none is lost, in force or
/// in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_are_all_kept() {
    let s = site().await;
    let (api, path, _dir) = api_with_file(&s, None);
    let mut adds = tokio::task::JoinSet::new();
    for i in 1..=40 {
        let api = api.clone();
        adds.spawn(async move {
            let user = format!(r#"{{"ip":"10.2.0.{i}","name":"User {i}"}}"#);
            call(&api, "POST", "/api/users", None, &user).await.0
        });
    }
    while let Some(code) = adds.join_next().await {
        assert_eq!(code.unwrap(), StatusCode::OK);
    }
    assert_eq!(s.relay.config().users.len(), 40);
    assert_eq!(Config::load(&path).unwrap().users.len(), 40);
    s.relay.shutdown().await;
}

#[tokio::test]
async fn call_records_are_paged_filtered_and_downloaded_as_csv_by_the_api_and_relay_ctl() {
    use relay::calls::CallPage;
    let s = site().await;
    let api = router(AdminState::new(s.relay.clone(), None, None));
    let mut lines = Vec::new();
    for (i, (call, ext, flag)) in [("1", "2501", "O"), ("2", "2502", "IC"), ("3", "2501", "IA")]
        .into_iter()
        .enumerate()
    {
        let (line, frame) = testkit::smdr_frame(call, ext, flag, 8 * 3600 + i as u64);
        assert!(s.switch(1).send_raw(frame));
        lines.push(line);
    }
    let mut stored = 0;
    for _ in 0..1000 {
        let (_, body) = call(&api, "GET", "/api/calls", None, "").await;
        stored = serde_json::from_str::<CallPage>(&body).unwrap().calls.len();
        if stored == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(stored, 3);

    // No collector has them: they wait in the export spool.
    let (_, body) = call(&api, "GET", "/api/status", None, "").await;
    let reply: relay::admin::contract::StatusReply = serde_json::from_str(&body).unwrap();
    let spool = reply.export_spool;
    assert_eq!((spool.pending, spool.spooled, spool.exported), (3, 3, 0));

    // Pages: one record each, `next` to go on.
    let (code, body) = call(&api, "GET", "/api/calls?extension=2501&limit=1", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let page: CallPage = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (page.calls.len(), page.calls[0].call_id.as_str(), page.next),
        (1, "1", Some(1))
    );
    let (_, body) = call(
        &api,
        "GET",
        "/api/calls?extension=2501&limit=1&after=1",
        None,
        "",
    )
    .await;
    let page: CallPage = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            page.calls[0].call_id.as_str(),
            page.calls[0].flag.as_str(),
            page.next
        ),
        ("3", "IA", None)
    );

    // CSV: a header, then the records as the switch sent them.
    let (code, csv) = call(&api, "GET", "/api/calls?format=csv&flag=IC", None, "").await;
    assert_eq!(code, StatusCode::OK);
    let year = &page.calls[0].start.as_ref().unwrap()[..4];
    let received_ms = {
        let (_, body) = call(&api, "GET", "/api/calls?flag=IC", None, "").await;
        serde_json::from_str::<CallPage>(&body).unwrap().calls[0].received_ms
    };
    assert_eq!(
        csv,
        format!(
            "id,switch,received_ms,layout,start,call_id,extension,trunk,duration_s,flag,digits,account,cost,caller_id,caller_name,group,ring_s,raw\n\
             2,1,{received_ms},short,{year}-12-23 08:00:01,2,2502,8503,278,IC,0712345600,,0.0,0498765478,,,,{}\n",
            lines[1]
        )
    );

    // Bad filters are refused, naming the field.
    let (code, body) = call(&api, "GET", "/api/calls?from=yesterday", None, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "from");
    let (code, body) = call(&api, "GET", "/api/calls?colour=red", None, "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown field `colour`"), "{body}");

    s.relay.shutdown().await;
}

/// The Grafana dashboard (deploy/grafana) asks only for metrics a relay exports, and selects
/// only label values they carry: each query is checked against a live `/metrics`.
#[tokio::test]
async fn the_dashboard_queries_only_what_the_relay_exports() {
    let s = site().await;
    let api = router(AdminState::new(s.relay.clone(), None, None));
    let (_, metrics) = call(&api, "GET", "/metrics", None, "").await;
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/grafana/cti-relay.dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert_eq!(exprs.len(), 37, "{exprs:#?}");
    // Exported only with a bus (tests/bus.rs reads them) or TLS (tests/tls.rs).
    let elsewhere = [
        "cti_bus_lease_held",
        "cti_bus_messages_total",
        "cti_tls_handshakes_total",
    ];
    for expr in exprs {
        let mut rest = expr;
        while let Some(at) = rest.find("cti_") {
            let tail = &rest[at..];
            let name_len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..name_len];
            rest = &tail[name_len..];
            if elsewhere.contains(&name) {
                continue;
            }
            assert!(
                metrics.contains(&format!("# TYPE {name} ")),
                "{expr}: {name} is not exported"
            );
            // Exact matchers other than the instance select values some sample carries.
            let Some(selector) = rest.strip_prefix('{') else {
                continue;
            };
            let selector = &selector[..selector.find('}').unwrap()];
            for matcher in selector.split(',').filter(|m| !m.contains("=~")) {
                let (key, value) = matcher.split_once('=').unwrap();
                let sample = format!("{key}={value}");
                assert!(
                    metrics
                        .lines()
                        .any(|l| l.starts_with(&format!("{name}{{")) && l.contains(&sample)),
                    "{expr}: no {name} sample has {sample}\n{metrics}"
                );
            }
        }
    }
    s.relay.shutdown().await;
}

/// Every metric the alert rules in deploy/prometheus read is one the relay exports, with the
/// labels the rules select on. Two are exported only where they mean something, and checked
/// there: the lease's on a shared site (tests/bus.rs), TLS handshakes with TLS on
/// (tests/tls.rs).
#[tokio::test]
async fn the_alert_rules_read_only_metrics_the_relay_exports() {
    let s = site().await;
    let api = router(AdminState::new(s.relay.clone(), None, None));
    let (_, metrics) = call(&api, "GET", "/metrics", None, "").await;
    let exported: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/prometheus/cti-relay.rules.yml"),
    )
    .unwrap();
    let mut read = std::collections::BTreeSet::new();
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("cti_") {
            read.insert(word);
        }
    }
    assert_eq!(read.len(), 11, "{read:?}");
    let missing: Vec<_> = read
        .iter()
        .filter(|m| {
            !["cti_bus_lease_held", "cti_tls_handshakes_total"].contains(*m)
                && !exported.contains(**m)
        })
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{metrics}");
    // The label values the rules select on.
    for sample in [
        "cti_switch_link_up{switch=\"1\"} 1\n",
        "cti_switch_link_state{switch=\"1\",state=\"up\"} 1\n",
        "cti_switch_link_state{switch=\"1\",state=\"idle\"} 0\n",
        "cti_switch_link_state{switch=\"1\",state=\"disabled\"} 0\n",
        "cti_licence_days_left{standing=\"trial\"} 30\n",
        "cti_licensed_sessions{kind=\"in_use\"} 0\n",
        "cti_licensed_sessions{kind=\"limit\"} 23\n",
    ] {
        assert!(metrics.contains(sample), "no {sample}in\n{metrics}");
    }
    s.relay.shutdown().await;
}
