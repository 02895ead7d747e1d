//! The admin API's OpenAPI document (`docs/openapi.json`, served at `/api/openapi.json`)
//! against the routes the relay really serves.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use relay::admin::{router, AdminState, PeerAddr};
use testkit::SiteSpec;
use tower::ServiceExt;

const TOKEN: &str = "openapi-test-token";

/// The console's page and assets: served beside the API, not part of it.
const CONSOLE: [&str; 6] = [
    "/",
    "/console.js",
    "/console.css",
    "/examples/softphone.html",
    "/examples/softphone.js",
    "/examples/softphone.css",
];

fn committed() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `(METHOD, path)` of every operation the document describes.
fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            found.insert((method.to_uppercase(), path.clone()));
        }
    }
    found
}

/// `(METHOD, path)` of every route the admin router declares, read from its source.
fn routed() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../relay/src/admin/mod.rs"),
    )
    .unwrap();
    let start = source.find("pub fn router(").unwrap();
    let body = &source[start..start + source[start..].find("\n}\n").unwrap()];
    let mut found = BTreeSet::new();
    // `.route("/path", get(h).post(h))`, possibly over several lines.
    for piece in body.split(".route(").skip(1) {
        let path = piece.split('"').nth(1).unwrap().to_owned();
        let handlers = &piece[..piece.find("\n        .").unwrap_or(piece.len())];
        for (word, method) in [
            ("get(", "GET"),
            ("post(", "POST"),
            ("put(", "PUT"),
            ("delete(", "DELETE"),
        ] {
            let called = handlers.match_indices(word).any(|(at, _)| {
                !handlers[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if called {
                found.insert((method.to_owned(), path.clone()));
            }
        }
    }
    found
}

#[test]
fn every_route_is_documented_and_every_operation_routed() {
    let doc = committed();
    let documented = documented(&doc);
    let routed = routed();
    assert_eq!(routed.len(), 25, "routes read from the router: {routed:?}");
    assert_eq!(
        routed, documented,
        "the router and docs/openapi.json name different routes"
    );
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["token"],
        serde_json::json!({"type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["token"]["description"]})
    );
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{no}/{action}", "1/abort")
        .replace("{no}", "7")
        .replace("{ip}", "192.0.2.99")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_a_status_it_documents_with_the_content_it_documents() {
    let site = SiteSpec::officeserv(1).start().await;
    let api = router(AdminState::new(
        site.relay.clone(),
        Some(TOKEN.into()),
        None,
    ));
    let doc = committed();
    for (method, path) in documented(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let mut request = Request::builder()
            .method(method.as_str())
            .uri(concrete(&path))
            .header("authorization", format!("Bearer {TOKEN}"));
        let body = match operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
        {
            Some(r) if r.ends_with("/LicenceKey") => r#"{"key":"not-a-key"}"#,
            Some(r) if r.ends_with("/SwitchConfig") => r#"{"no":7,"address":"192.0.2.7"}"#,
            Some(r) if r.ends_with("/User") => r#"{"ip":"192.0.2.99"}"#,
            Some(r) => panic!("no sample body for {r}"),
            None => "",
        };
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        // What the server adds to every connection: who called, and where.
        let peer: std::net::SocketAddr = "127.0.0.1:50000".parse().unwrap();
        request = request.extension(axum::extract::ConnectInfo(PeerAddr {
            caller: relay::hub::Caller::at(peer),
            local: Some("127.0.0.1:8080".parse().unwrap()),
        }));
        let response = api
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
        let answer = &operation["responses"][status.as_str()];
        assert!(
            answer.is_object(),
            "{method} {path} answered {status}, which the document does not list"
        );
        match (content_type, answer.get("content")) {
            (None, None) => {}
            (Some(given), Some(content)) => assert!(
                content.get(&given).is_some(),
                "{method} {path} answered {status} as {given}, not as documented: {content}"
            ),
            (given, listed) => {
                panic!("{method} {path} answered {status} as {given:?}; documented {listed:?}")
            }
        }
        // The event stream never ends; every other body is read whole and, as JSON, parses.
        if path != "/api/notifications/live" {
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            if operation["responses"][status.as_str()]["content"]
                .get("application/json")
                .is_some()
            {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{method} {path}: {status} is not JSON ({e})"));
            }
        }
    }
    drop(site);
}

#[tokio::test]
async fn the_document_is_served_without_the_token_and_is_the_committed_one() {
    let site = SiteSpec::officeserv(1).start().await;
    let api = router(AdminState::new(
        site.relay.clone(),
        Some(TOKEN.into()),
        None,
    ));
    let response = api
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let served: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, committed());
    // Every other route still asks for it.
    let refused = api
        .oneshot(
            Request::builder()
                .uri("/api/status")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    for asset in CONSOLE {
        assert!(
            !served["paths"].as_object().unwrap().contains_key(asset),
            "{asset} is the console's, not the API's"
        );
    }
    drop(site);
}

/// Sends `method uri` (with a JSON `body` when not empty) with the token; the status and body.
async fn send(api: &axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let peer: std::net::SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let request = request
        .extension(axum::extract::ConnectInfo(PeerAddr {
            caller: relay::hub::Caller::at(peer),
            local: Some("127.0.0.1:8080".parse().unwrap()),
        }))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = api.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// What the contract test (Schemathesis against docs/openapi.json) found, each kept fixed.
#[tokio::test]
async fn what_the_contract_test_found_stays_fixed() {
    let site = SiteSpec::officeserv(1).start().await;
    let api = router(AdminState::new(
        site.relay.clone(),
        Some(TOKEN.into()),
        None,
    ));
    // 41.0 is an integer to JSON Schema: an integer field takes it.
    let (status, body) = send(
        &api,
        "POST",
        "/api/users",
        r#"{"ip":"192.0.2.41","default_switch":1.0,"switches":[1.0]}"#,
    )
    .await;
    assert_eq!(
        (status, body.contains(r#""applied":true"#)),
        (StatusCode::OK, true),
        "{body}"
    );
    let (status, body) = send(
        &api,
        "POST",
        "/api/users",
        r#"{"ip":"192.0.2.42","default_switch":1.5}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"error":"invalid type: floating point `1.5`, expected a number in 0..=255","field":"default_switch"}"#
    );
    // An empty filter is no filter (a form's blank field); a limit past a page's size gives a
    // full page; only 0 and more than a CSV download holds are refused.
    for uri in [
        "/api/calls?from=&to=&extension=&flag=&call_id=&format=",
        "/api/calls?limit=20000",
        "/api/calls?limit=1000000&format=csv",
    ] {
        let (status, body) = send(&api, "GET", uri, "").await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    for (uri, field) in [
        ("/api/calls?limit=0", "limit"),
        ("/api/calls?limit=1000001", "limit"),
        ("/api/calls?from=2021-02-30", "from"),
        ("/api/calls?from=%202021-02-03", "from"),
    ] {
        let (status, body) = send(&api, "GET", uri, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let reply: relay::admin::contract::ErrorReply = serde_json::from_str(&body).unwrap();
        assert_eq!(reply.field.as_deref(), Some(field), "{uri}: {body}");
    }
    // Refusals that came from the framework as plain text are JSON like every other.
    for (uri, status) in [
        ("/api/audit?limit=many", StatusCode::BAD_REQUEST),
        ("/ws", StatusCode::BAD_REQUEST),
    ] {
        let (given, body) = send(&api, "GET", uri, "").await;
        assert_eq!(given, status, "{uri}: {body}");
        serde_json::from_str::<relay::admin::contract::ErrorReply>(&body)
            .unwrap_or_else(|e| panic!("{uri}: {body:?} is not an ErrorReply ({e})"));
    }
    // An address field says it is an address, which the relay refuses otherwise.
    let doc = committed();
    assert_eq!(
        doc["components"]["schemas"]["SwitchConfig"]["properties"]["source_address"]["oneOf"][0]
            ["format"],
        "ipv4"
    );
    let (status, body) = send(
        &api,
        "POST",
        "/api/switches",
        r#"{"no":5,"address":"192.0.2.5","source_address":""}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""field":"source_address""#), "{body}");
    drop(site);
}
