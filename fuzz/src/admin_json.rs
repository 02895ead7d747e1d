//! The admin API's JSON bodies (users, switches, the licence key) on a running relay: any
//! body gets an answer, never a panic or a server error.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use netseam::MemNetwork;
use relay::admin::{router, AdminState};
use relay::{Config, Daemon, Listeners, Relay, RelayParts};
use tower::ServiceExt;

struct Site {
    runtime: tokio::runtime::Runtime,
    relay: Arc<Relay>,
    _state: tempfile::TempDir,
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let state = tempfile::tempdir().expect("a temporary directory");
        let config = Config {
            state_dir: state.path().to_owned(),
            // The audit log of every change asked.
            log_dir: state.path().join("log"),
            ..Config::default()
        };
        let relay = runtime.block_on(async {
            let net = Arc::new(MemNetwork::new());
            let listeners = Listeners::loopback(net.as_ref()).await.expect("listeners");
            let parts = RelayParts {
                net,
                ..RelayParts::new(config)
            };
            Daemon::start(parts, listeners)
                .expect("the relay starts")
                .relay()
                .clone()
        });
        Site {
            runtime,
            relay,
            _state: state,
        }
    })
}

const ENDPOINTS: [(&str, &str); 6] = [
    ("POST", "/api/users"),
    ("PUT", "/api/users/10.0.0.51"),
    ("POST", "/api/switches"),
    ("PUT", "/api/switches/1"),
    ("POST", "/api/licence"),
    ("POST", "/api/switches/1/connect"),
];

pub fn check(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let (method, path) = ENDPOINTS[usize::from(which) % ENDPOINTS.len()];
    let site = site();
    let api = router(AdminState::new(site.relay.clone(), None, None));
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("a method"))
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let response = site
        .runtime
        .block_on(api.oneshot(request))
        .expect("the router always answers");
    assert!(
        !response.status().is_server_error(),
        "{method} {path} with {:?}: {}",
        String::from_utf8_lossy(body),
        response.status()
    );
}
