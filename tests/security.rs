//! What a hostile web page, a rebound DNS name or an oversize message can do to the admin port
//! and the WebSocket gateway: one test per attack, over real loopback TCP, each with the exact
//! refusal. (The same attacks from a real browser are in `tests/console.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use relay::admin::contract::AuditEntry;
use relay::gateway::messages::{Event, FromRelay};
use serde_json::{json, Value};
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use ws_client::{connect, next, say, Ws};

mod ws_client;

const EVIL: &str = "http://evil.example";

/// An HTTP reply: its status and its body.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request written by hand, so that every header is exactly what a browser or
/// an attacker sends (`Host` included).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The relay may answer and close before reading a body it refused.
    let _ = stream.write_all(body).await;
    let mut reply = Vec::new();
    let _ = within("the admin reply", stream.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Reply { status, body }
}

/// A site of one switch and its admin interface without a token (a loopback admin port with
/// `require_token: false`): only the browser defences stand between a page and the relay.
async fn open_site(configure: impl FnOnce(&mut relay::Config) + 'static) -> (Site, Admin) {
    let site = SiteSpec::officeserv(1).configure(configure).start().await;
    let admin = site.serve_admin(None).await;
    (site, admin)
}

fn audit(site: &Site) -> Vec<AuditEntry> {
    relay::admin::audit::AuditLog::new(&site.relay.config().log_dir).newest(100)
}

/// Finding 1: a page elsewhere cannot cut the links (a "simple" POST, which browsers send
/// without asking first), nor send a form or text body; the console's own origin and the
/// configured ones still can. Each attempt is in the audit log.
#[tokio::test]
async fn a_foreign_page_cannot_change_anything() {
    let (site, admin) = open_site(|c| {
        c.admin.allowed_origins = vec!["https://crm.site.example".into()];
    })
    .await;
    let addr = admin.server.addr;
    let foreign = http(
        addr,
        "POST",
        "/api/disconnect-all",
        &[("Origin", EVIL), ("Content-Type", "text/plain")],
        b"x",
    )
    .await;
    assert_eq!(foreign.status, 403);
    assert_eq!(
        foreign.json(),
        json!({
            "error": "requests from pages of http://evil.example are refused: only the console's own origin and those in admin.allowed_origins may change anything or open /ws",
            "field": "Origin",
            "value": EVIL,
        })
    );
    for (method, path) in [
        ("POST", "/api/connect-all"),
        ("POST", "/api/switches/1/disconnect"),
        ("DELETE", "/api/switches/1"),
        ("POST", "/api/users"),
        ("POST", "/api/license"),
        ("DELETE", "/api/sessions/1"),
        ("POST", "/api/bus/lease/release"),
    ] {
        let r = http(addr, method, path, &[("Origin", "null")], b"").await;
        assert_eq!((method, path, r.status), (method, path, 403), "{}", r.body);
    }
    // No Origin (a program), but a body a page could send as a form: refused by its type.
    let form = http(
        addr,
        "POST",
        "/api/disconnect-all",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=b",
    )
    .await;
    assert_eq!(form.status, 415);
    assert_eq!(form.json()["field"], "Content-Type");
    assert_eq!(form.json()["value"], "application/x-www-form-urlencoded");
    assert!(site.is_up(1), "the link was not cut");

    // The console's own origin and a configured one may.
    let own = format!("http://{addr}");
    let r = http(addr, "POST", "/api/connect-all", &[("Origin", &own)], b"").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = http(
        addr,
        "POST",
        "/api/connect-all",
        &[("Origin", "https://CRM.site.example")],
        b"",
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Every attempt, refused or not, is audited with who and the outcome.
    let entries = audit(&site);
    let first = &entries[0];
    assert_eq!(
        (first.what.as_str(), first.status, first.who.by.as_str()),
        ("POST /api/disconnect-all", 403, "none")
    );
    assert!(first
        .who
        .address
        .as_deref()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(
        first.error.as_deref(),
        Some("requests from pages of http://evil.example are refused: only the console's own origin and those in admin.allowed_origins may change anything or open /ws")
    );
    assert_eq!(
        entries.iter().map(|e| e.status).collect::<Vec<_>>(),
        [403, 403, 403, 403, 403, 403, 403, 403, 415, 202, 202]
    );
}

/// A change asked without the token is refused, and audited as such; with it, as the token's.
#[tokio::test]
async fn changes_are_audited_with_how_they_were_authorized() {
    let site = SiteSpec::officeserv(1).start().await;
    let admin = site.serve_admin(Some("s3cret")).await;
    let addr = admin.server.addr;
    let r = http(addr, "POST", "/api/connect-all", &[], b"").await;
    assert_eq!(r.status, 401);
    let r = http(
        addr,
        "POST",
        "/api/connect-all",
        &[("Authorization", "Bearer s3cret")],
        b"",
    )
    .await;
    assert_eq!(r.status, 202);
    let entries = audit(&site);
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.who.by.as_str(), e.status))
            .collect::<Vec<_>>(),
        [("no valid token", 401), ("token", 202)]
    );
    assert_eq!(
        entries[0].error.as_deref(),
        Some("a valid admin token is required: send Authorization: Bearer <admin.token>")
    );
}

/// Finding 2: a page elsewhere cannot open the gateway (toll fraud, call data); the console's
/// own origin and programs that send no Origin can.
#[tokio::test]
async fn a_foreign_page_cannot_open_the_gateway() {
    let (site, admin) = open_site(|_| {}).await;
    let addr = admin.server.addr;
    let request = |origin: Option<&str>| {
        let mut r = format!("ws://{addr}/ws").into_client_request().unwrap();
        if let Some(o) = origin {
            r.headers_mut().insert("Origin", o.parse().unwrap());
        }
        r
    };
    match tokio_tungstenite::connect_async(request(Some(EVIL))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["field"], "Origin");
        }
        other => panic!("a foreign page's WebSocket was not refused: {other:?}"),
    }
    assert!(site.relay.session_count() == 0);
    for origin in [Some(format!("http://{addr}")), None] {
        let (mut ws, _) = tokio_tungstenite::connect_async(request(origin.as_deref()))
            .await
            .unwrap();
        send(&mut ws, &json!({"type": "identify", "product": "call"})).await;
        assert!(matches!(
            next(&mut ws).await,
            FromRelay::Identified { result: 0, .. }
        ));
    }
}

/// Finding 3: a name rebound to this host reads nothing; addresses, localhost and the
/// configured names do.
#[tokio::test]
async fn a_rebound_name_reads_nothing() {
    let (_site, admin) =
        open_site(|c| c.admin.allowed_hosts = vec!["relay.site.example".into()]).await;
    let addr = admin.server.addr;
    let port = addr.port();
    for path in ["/api/status", "/api/calls", "/api/config", "/", "/metrics"] {
        let r = http(
            addr,
            "GET",
            path,
            &[("Host", &format!("evil.example:{port}"))],
            b"",
        )
        .await;
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(
            r.json(),
            json!({
                "error": format!("the Host header names evil.example:{port}, which is not this relay: reach it by an address, or add the name to admin.allowed_hosts"),
                "field": "Host",
                "value": format!("evil.example:{port}"),
            })
        );
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("RELAY.site.example:{port}"),
        "[::1]".to_owned(),
    ] {
        let r = http(addr, "GET", "/api/status", &[("Host", &host)], b"").await;
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
}

/// Finding 4: a request too large for one frame is an error naming the field, never a panic;
/// the session goes on.
#[tokio::test]
async fn a_request_too_large_for_one_frame_names_its_field() {
    let (_site, admin) = open_site(|_| {}).await;
    let mut ws = gateway(&admin).await;
    identify(&mut ws, json!({"type": "identify", "product": "call"})).await;
    let long = "x".repeat(255);
    for _ in 0..20 {
        send(
            &mut ws,
            &json!({"type": "request", "id": 1, "switch": 1, "code": "K", "fields": vec![long.clone(); 20]}),
        )
        .await;
        assert_eq!(
            next(&mut ws).await,
            FromRelay::Error {
                error: "the fields take more than 4089 bytes, a request's largest body (each field is its length and its bytes)".into(),
                field: Some("fields".into()),
            }
        );
    }
    send(
        &mut ws,
        &json!({"type": "request", "id": 2, "switch": 1, "code": "K", "body": "ab".repeat(5000)}),
    )
    .await;
    assert_eq!(
        next(&mut ws).await,
        FromRelay::Error {
            error: "5000 bytes of body; a request's body is at most 4089 bytes".into(),
            field: Some("body".into()),
        }
    );
    // The largest body that fits goes through.
    send(
        &mut ws,
        &json!({"type": "request", "id": 3, "code": "Y", "body": "00".repeat(4089)}),
    )
    .await;
    assert!(matches!(next_answer(&mut ws).await, FromRelay::Answer { id, .. } if id == json!(3)));
}

/// Finding 5: a message over `admin.max_message_kib` is refused as it arrives (close 1009),
/// whole or in fragments, and so is an HTTP body (413).
#[tokio::test]
async fn oversize_messages_and_bodies_are_refused_as_they_arrive() {
    let (site, admin) = open_site(|c| c.admin.max_message_kib = 64).await;
    // Whole.
    let mut ws = gateway(&admin).await;
    ws.send(Message::Text("x".repeat(100 << 10).into()))
        .await
        .unwrap();
    assert_eq!(
        closed(&mut ws).await,
        (
            1009,
            "a message of 102400 bytes or more; at most 65536 (admin.max_message_kib)".into()
        )
    );
    // In fragments of 16 KiB, none too large alone.
    let mut ws = gateway(&admin).await;
    identify(&mut ws, json!({"type": "identify", "product": "call"})).await;
    let chunk = bytes::Bytes::from(vec![b' '; 16 << 10]);
    let mut sent = 0;
    let mut first = true;
    while sent < 1 << 20 {
        let opcode = if first {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        first = false;
        if ws
            .send(Message::Frame(Frame::message(chunk.clone(), opcode, false)))
            .await
            .is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = sent;
    // The relay stops at the fragment that takes the message past the limit.
    assert_eq!(
        closed(&mut ws).await,
        (
            1009,
            "a message of 81920 bytes or more; at most 65536 (admin.max_message_kib)".into()
        )
    );
    wait_until("the tab's session ends", || site.relay.session_count() == 0).await;

    // HTTP: a declared length over the limit, and a chunked body that grows past it.
    let addr = admin.server.addr;
    let big = vec![b' '; 65 << 10];
    let r = http(
        addr,
        "POST",
        "/api/users",
        &[("Content-Type", "application/json")],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.json()["error"],
        "the request body is larger than 64 KiB (admin.max_message_kib)"
    );
    let mut chunked = Vec::new();
    for _ in 0..80 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1024).as_bytes());
        chunked.extend_from_slice(&[b' '; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = http(
        addr,
        "POST",
        "/api/users",
        &[
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunked,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
}

/// Finding 6: `switch` 0 or absent is the session's default switch, as documented.
#[tokio::test]
async fn switch_0_or_absent_is_the_default_switch() {
    let (_site, admin) = open_site(|_| {}).await;
    let mut ws = gateway(&admin).await;
    identify(&mut ws, json!({"type": "identify", "product": "call"})).await;
    for (id, request) in [
        (
            1,
            json!({"type": "request", "id": 1, "code": "Y", "fields": ["2201"]}),
        ),
        (
            2,
            json!({"type": "request", "id": 2, "switch": 0, "code": "Y", "fields": ["2201"]}),
        ),
    ] {
        send(&mut ws, &request).await;
        match next_answer(&mut ws).await {
            FromRelay::Answer {
                id: got,
                switch,
                result,
                ..
            } => assert_eq!((got, switch, result), (json!(id), 1, 0)),
            other => panic!("{other:?}"),
        }
    }
    send(
        &mut ws,
        &json!({"type": "device", "add": true, "device": "2201"}),
    )
    .await;
    assert_eq!(next_answer(&mut ws).await, FromRelay::Device { result: 0 });
}

/// Finding 7: every wrong type or value is answered naming its field.
#[tokio::test]
async fn wrong_types_and_values_name_their_field() {
    let (_site, admin) = open_site(|_| {}).await;
    let mut ws = gateway(&admin).await;
    let cases = [
        (
            "{not json",
            None,
            "the message is not JSON: key must be a string at line 1 column 2",
        ),
        (
            "[1]",
            None,
            "a message is a JSON object with a \"type\": identify, request or device",
        ),
        (
            r#"{"product":"call"}"#,
            Some("type"),
            "missing: every message has a \"type\" (identify, request or device)",
        ),
        (
            r#"{"type":"identify","product":"call","protocol":9}"#,
            Some("protocol"),
            "9 is not 2 or 3",
        ),
        (
            r#"{"type":"identify","product":"call","protocol":300}"#,
            Some("protocol"),
            "invalid value: integer `300`, expected 2 or 3",
        ),
        (
            r#"{"type":"identify","product":"call","devices":[{"switch":9,"device":"2201"}]}"#,
            Some("devices[0].switch"),
            "9 is not a switch number (1..=8, or 0 for the default switch)",
        ),
        (
            r#"{"type":"identify","product":"call","devices":[{"device":5}]}"#,
            Some("devices[0].device"),
            "invalid type: integer `5`, expected a string",
        ),
    ];
    for (text, field, error) in cases {
        ws.send(Message::Text(text.into())).await.unwrap();
        assert_eq!(
            next(&mut ws).await,
            FromRelay::Error {
                error: error.into(),
                field: field.map(Into::into)
            },
            "{text}"
        );
    }
    identify(&mut ws, json!({"type": "identify", "product": "call"})).await;
    let cases = [
        (r#"{"type":"request","id":1,"code":5}"#, "code", "invalid type: integer `5`, expected a string"),
        (r#"{"type":"request","id":1,"code":"K","switch":300}"#, "switch", "invalid value: integer `300`, expected a switch number (1..=8, or 0 for the default switch)"),
        (r#"{"type":"request","id":1,"code":"K","switch":-1}"#, "switch", "invalid value: integer `-1`, expected a switch number (1..=8, or 0 for the default switch)"),
        (r#"{"type":"request","id":1,"code":"K","switch":"1"}"#, "switch", "invalid type: string \"1\", expected a switch number (1..=8, or 0 for the default switch)"),
        (r#"{"type":"request","id":1,"code":"K","switch":9}"#, "switch", "9 is not a switch number (1..=8, or 0 for the default switch)"),
        (r#"{"type":"request","id":1,"code":"K","fields":"2201"}"#, "fields", "invalid type: string \"2201\", expected a sequence"),
        (r#"{"type":"request","id":1,"code":"K","fields":["2201",2]}"#, "fields[1]", "invalid type: integer `2`, expected a string"),
        (r#"{"type":"request","code":"K"}"#, "id", "missing field `id`"),
        (r#"{"type":"device","add":"yes","device":"2201"}"#, "add", "invalid type: string \"yes\", expected a boolean"),
        (r#"{"type":"device","add":true,"device":2201}"#, "device", "invalid type: integer `2201`, expected a string"),
        (r#"{"type":"call"}"#, "type", "\"call\" is not a message type: identify, request or device"),
    ];
    for (text, field, error) in cases {
        ws.send(Message::Text(text.into())).await.unwrap();
        assert_eq!(
            next(&mut ws).await,
            FromRelay::Error {
                error: error.into(),
                field: Some(field.into())
            },
            "{text}"
        );
    }
}

/// Finding 8: a protocol-2 tab sees its switch's number, not 0.
#[tokio::test]
async fn a_protocol_2_tab_sees_its_switch_number() {
    let (_site, admin) = open_site(|_| {}).await;
    let mut ws = gateway(&admin).await;
    identify(
        &mut ws,
        json!({"type": "identify", "product": "call", "protocol": 2, "devices": [{"device": "2201"}]}),
    )
    .await;
    send(
        &mut ws,
        &json!({"type": "request", "id": "k", "code": "K", "fields": ["2201", "2202"]}),
    )
    .await;
    let mut answered = false;
    let mut event_switches = Vec::new();
    while !answered || event_switches.is_empty() {
        match next(&mut ws).await {
            FromRelay::Answer { switch, result, .. } => {
                assert_eq!((switch, result), (1, 0));
                answered = true;
            }
            FromRelay::Event(Event { switch, .. }) => event_switches.push(switch),
            other => panic!("{other:?}"),
        }
    }
    assert!(event_switches.iter().all(|s| *s == 1), "{event_switches:?}");
    send(
        &mut ws,
        &json!({"type": "request", "id": "x", "switch": 2, "code": "K"}),
    )
    .await;
    assert_eq!(
        next_answer(&mut ws).await,
        FromRelay::Error {
            error: "a protocol-2 session is served switch 1 only".into(),
            field: Some("switch".into())
        }
    );
}

/// Finding 8: the close frame says why, with its code: a refusal, an administrator, the
/// relay stopping.
#[tokio::test]
async fn the_close_frame_says_why() {
    let (site, admin) = open_site(|c| c.bypass_limits.acd = 1).await;
    let mut first = gateway(&admin).await;
    identify(&mut first, json!({"type": "identify", "product": "acd"})).await;
    let mut second = gateway(&admin).await;
    send(&mut second, &json!({"type": "identify", "product": "acd"})).await;
    assert!(matches!(
        next(&mut second).await,
        FromRelay::Identified { result, .. } if result != 0
    ));
    let (code, reason) = closed(&mut second).await;
    assert_eq!(code, 1008);
    assert!(reason.starts_with("identify refused: "), "{reason}");

    let id = site.relay.sessions()[0].id;
    assert!(site.relay.close_session(id));
    assert!(matches!(
        next(&mut first).await,
        FromRelay::Close { reason: 7, .. }
    ));
    assert_eq!(closed(&mut first).await.0, 1008);

    let mut third = gateway(&admin).await;
    identify(
        &mut third,
        json!({"type": "identify", "product": "operator"}),
    )
    .await;
    site.relay.shutdown().await;
    assert!(matches!(
        next(&mut third).await,
        FromRelay::Close { reason: 2, .. }
    ));
    assert_eq!(closed(&mut third).await.0, 1001);
}

/// Finding 8: a tab too slow to read is told why when it reads again (close 1008).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tab_learns_why_it_was_closed() {
    let site = SiteSpec::switches(1)
        .tuning(|t| t.session_queue_bytes = 256 * 1024)
        .start()
        .await;
    let admin = site.serve_admin(None).await;
    let mut ws = gateway(&admin).await;
    identify(&mut ws, json!({"type": "identify", "product": "operator"})).await;
    // The tab reads nothing more while the switch sends 15 MB of events.
    let mut batch = BytesMut::new();
    for i in 0..200_000u32 {
        batch.extend_from_slice(&switch_sim::switch::event_frame(
            b'n',
            "2201",
            &i.to_be_bytes(),
        ));
        if batch.len() > 64 * 1024 {
            assert!(site.switch(1).send_raw(batch.split().freeze()));
            if site.relay.session_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    wait_until("the slow tab's session is closed", || {
        site.relay.session_count() == 0
    })
    .await;
    let (code, reason) = closed(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (
            1008,
            "too slow: the relay's queue for this session overflowed"
        )
    );
}

/// Finding 10 and the token by default: `relay run` without `admin.token` makes one, keeps it
/// private in state_dir, prints the console's address with it (https with TLS on the admin
/// port), and asks for it.
#[tokio::test]
async fn relay_run_makes_a_token_and_prints_the_consoles_address_with_its_scheme() {
    let bin = testkit::process::relay_binary();
    let switch = switch_sim::SimSwitch::start(
        "127.0.1.97:0".parse().unwrap(),
        switch_sim::Settings::officeserv(1),
    )
    .await
    .unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = testkit::pki::Authority::new(certs.path(), "ca");
    let cert = ca.relay(certs.path(), "relay");
    let extra = format!(
        "tls: {{ ports: [admin], cert: {}, key: {} }}\n",
        cert.cert.display(),
        cert.key.display()
    );
    let relay = testkit::process::RelayProcess::start_with(&bin, switch.addr(), 0, &extra).unwrap();
    let token_file = relay.dir().join("state/admin.token");
    wait_until_for("the relay starts", Duration::from_secs(20), || {
        relay.output().contains("web console listening")
    })
    .await;
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(token.len(), 39);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let output = relay.output();
    assert!(
        output.contains(&format!("console=https://{}/#token={token}", relay.admin)),
        "{output}"
    );
    let tls = netseam::tls::TlsNetwork::new(netseam::tls::client_config(&ca.file, None).unwrap());
    let get = |auth: Option<String>| {
        let tls = tls.clone();
        let port = relay.admin.port();
        async move {
            use netseam::Network;
            let mut https = tls.connect("127.0.0.1", port).await.unwrap();
            let auth = auth
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            let request = format!(
                "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
            );
            https.write_all(request.as_bytes()).await.unwrap();
            let mut reply = Vec::new();
            let _ = https.read_to_end(&mut reply).await;
            String::from_utf8_lossy(&reply).into_owned()
        }
    };
    assert!(get(None).await.starts_with("HTTP/1.1 401"));
    assert!(get(Some(token)).await.starts_with("HTTP/1.1 200"));
}

// ---- The gateway from a Rust client -------------------------------------------------------

async fn send(ws: &mut Ws, message: &Value) {
    say(ws, &message.to_string()).await;
}

async fn gateway(admin: &Admin) -> Ws {
    connect(admin, "").await.unwrap()
}

/// The next answer, error or device result, past the events and switch states before it.
async fn next_answer(ws: &mut Ws) -> FromRelay {
    loop {
        match next(ws).await {
            FromRelay::Event(_) | FromRelay::Switch { .. } => {}
            m => return m,
        }
    }
}

async fn identify(ws: &mut Ws, identify: Value) {
    send(ws, &identify).await;
    match next(ws).await {
        FromRelay::Identified { result: 0, .. } => {}
        other => panic!("not admitted: {other:?}"),
    }
}

/// The close frame's code and reason, past whatever comes before it.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        match within("the close frame", ws.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => {}
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    }
}
