//! The admin HTTP API (docs/behaviour.md §8), served on `admin.address:port`.
//!
//! - `GET /api/status`: switches, sessions, licence, monitors, counters.
//! - `GET /api/sessions`; `DELETE /api/sessions/{id}`: close one (`X` reason 7).
//! - `POST /api/switches/{no}/connect|disconnect|abort`; `POST /api/connect-all|disconnect-all`.
//! - `POST /api/bus/lease/release`: a shared site's holder hands its links to the other relay
//!   (409 when this relay holds no lease).
//! - `GET /api/license`; `POST /api/license` with `{"key": "…"}`: register or change
//!   (`/api/licence` is accepted too).
//! - `GET /api/config`; `POST /api/switches`, `PUT|DELETE /api/switches/{no}`;
//!   `POST /api/users`, `PUT|DELETE /api/users/{ip}`: validated, written back atomically,
//!   applied live (a connected switch must be disconnected before it is changed).
//! - `GET /api/notifications`; `GET /api/notifications/live`: Server-Sent Events.
//! - `GET /api/calls`: stored call records (filters, pages; JSON or CSV).
//! - `GET /metrics`: Prometheus text.
//! - `GET /ws`: the WebSocket/JSON gateway ([`crate::gateway`]); the token may come as
//!   `?token=` there, since a browser cannot set headers on a WebSocket.
//! - `GET /api/audit`: the newest entries of the audit log ([`audit`]).
//! - `GET /api/openapi.json`: the API's OpenAPI 3.1 document ([`openapi`]), without the token.
//! - `GET /`: the web console (`console.rs`), which uses the routes above.
//!
//! Every request first passes [`guard`] (the `Host` and `Origin` a browser sends, JSON bodies
//! only, the size of a body), then the token ([`token`]: on by default, `Authorization:
//! Bearer …`, compared in constant time), and each change is written to the audit log.
//! Errors are JSON naming what is wrong.

pub mod audit;
mod body;
mod calls;
mod console;
pub mod contract;
pub mod guard;
mod manage;
mod metrics;
pub mod openapi;
pub mod token;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::config::{SwitchConfig, User};
use crate::Relay;
use contract::{
    ErrorReply, LicenceKey, LicenceRegistered, MonitorPorts, Monitors, Notification, SpoolStatus,
    StatusReply,
};

/// What every handler shares.
#[derive(Clone)]
pub struct AdminState {
    pub relay: Arc<Relay>,
    /// `Some` when requests must carry this bearer token.
    pub token: Option<String>,
    /// The configuration file changes are written back to (`None`: changes are not saved).
    pub config_path: Option<std::path::PathBuf>,
    /// Where changes are recorded (`log_dir/audit.log`).
    pub audit: audit::AuditLog,
    /// The JSON text of recent events, shared by the gateway's tabs.
    pub gateway_texts: Arc<crate::gateway::texts::EventTexts>,
}

impl AdminState {
    /// The admin interface of `relay`, asking for `token` when given, saving changes to
    /// `config_path`, auditing them in the relay's `log_dir`.
    pub fn new(
        relay: Arc<Relay>,
        token: Option<String>,
        config_path: Option<std::path::PathBuf>,
    ) -> AdminState {
        let audit = audit::AuditLog::new(&relay.hub().config.load().log_dir);
        AdminState {
            relay,
            token,
            config_path,
            audit,
            gateway_texts: Arc::default(),
        }
    }
}

/// A refusal: its HTTP status and its JSON body ([`ErrorReply`]).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reply: ErrorReply,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reply: ErrorReply {
                error: error.into(),
                errors: Vec::new(),
                field: None,
                value: None,
            },
        }
    }

    fn at(mut self, field: &str) -> ApiError {
        self.reply.field = Some(field.into());
        self
    }

    fn on(mut self, field: &str, value: serde_json::Value) -> ApiError {
        self.reply.field = Some(field.into());
        self.reply.value = Some(value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self.reply)).into_response()
    }
}

/// A running admin interface.
pub struct AdminServer {
    pub addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Serves the API, the metrics, the web console and the gateway on `listener` (bound with
/// the relay's other ports, see [`crate::server::Listeners`]); over TLS when the configuration
/// in force at start puts the admin port under TLS.
pub fn serve(
    state: AdminState,
    listener: Box<dyn netseam::Listener>,
) -> std::io::Result<AdminServer> {
    let addr = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let hub = state.relay.hub().clone();
    let tls = hub.config.load().tls.on(crate::config::TlsPort::Admin);
    let incoming = AdminListener::start(listener, hub, tls, stop.clone());
    let task = crate::task::spawn({
        let stop = stop.clone();
        let app = router(state);
        async move {
            let shutdown = async move { stop.cancelled().await };
            let app = app.into_make_service_with_connect_info::<PeerAddr>();
            let served = axum::serve(incoming, app)
                .with_graceful_shutdown(shutdown)
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "the admin interface stopped");
            }
        }
    });
    Ok(AdminServer { addr, stop, task })
}

/// The admin port's connections as the HTTP server takes them: accepted from the network
/// (TCP, or the in-memory network of the simulations) and, when the port speaks TLS, handed
/// over once their handshake is done (each in its own task, with the certificate in force
/// then), so that a slow handshake holds up no one else.
struct AdminListener {
    addr: std::net::SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(netseam::BoxStream, PeerAddr)>,
}

impl AdminListener {
    fn start(
        mut listener: Box<dyn netseam::Listener>,
        hub: Arc<crate::hub::Hub>,
        tls: bool,
        stop: tokio_util::sync::CancellationToken,
    ) -> AdminListener {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        crate::task::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                // The address the client dialled (the Host check compares it), when the
                // transport can tell; else the one bound.
                let local = stream
                    .as_any()
                    .downcast_ref::<tokio::net::TcpStream>()
                    .and_then(|s| s.local_addr().ok())
                    .or(Some(addr));
                if !tls {
                    let caller = crate::hub::Caller::at(peer);
                    let _ = tx.send((stream, PeerAddr { caller, local })).await;
                    continue;
                }
                let Some(config) = hub
                    .tls
                    .on(&hub.config.load().tls, crate::config::TlsPort::Admin)
                else {
                    continue;
                };
                let (hub, tx) = (hub.clone(), tx.clone());
                crate::task::spawn(async move {
                    match hub.tls.accept(config, stream).await {
                        Ok((stream, names)) => {
                            let caller = crate::hub::Caller { addr: peer, names };
                            let _ = tx.send((stream, PeerAddr { caller, local })).await;
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "admin: TLS handshake failed"),
                    }
                });
            }
        });
        AdminListener { addr, ready }
    }
}

/// The client of a request, over TCP or TLS alike: its address and the names of the client
/// certificate it presented (TLS with `client_ca`); and the address it dialled.
#[derive(Clone, Debug)]
pub struct PeerAddr {
    pub caller: crate::hub::Caller,
    pub local: Option<std::net::SocketAddr>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, AdminListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, AdminListener>) -> PeerAddr {
        stream.remote_addr().clone()
    }
}

impl axum::serve::Listener for AdminListener {
    type Io = netseam::BoxStream;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(PeerAddr {
            caller: crate::hub::Caller::at(self.addr),
            local: Some(self.addr),
        })
    }
}

impl AdminServer {
    /// Stops serving; live streams (notifications) are cut after 2 s.
    pub async fn stop(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// The API's routes over `state`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", delete(close_session))
        .route("/api/switches/{no}/{action}", post(switch_action))
        .route("/api/connect-all", post(connect_all))
        .route("/api/disconnect-all", post(disconnect_all))
        .route("/api/bus/lease/release", post(release_lease))
        .route("/api/license", get(licence).post(register_licence))
        .route("/api/licence", get(licence).post(register_licence))
        .route("/api/config", get(manage::config))
        .route("/api/switches", post(manage::add::<SwitchConfig>))
        .route(
            "/api/switches/{no}",
            axum::routing::put(manage::put::<SwitchConfig>).delete(manage::remove::<SwitchConfig>),
        )
        .route("/api/users", post(manage::add::<User>))
        .route(
            "/api/users/{ip}",
            axum::routing::put(manage::put::<User>).delete(manage::remove::<User>),
        )
        .route("/api/calls", get(calls::list))
        .route("/api/notifications", get(notifications))
        .route("/api/notifications/live", get(live_notifications))
        .route("/metrics", get(metrics::render))
        .route("/api/audit", get(audit::list))
        .route("/ws", get(gateway))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .merge(console::routes())
        .route("/api/openapi.json", get(openapi_document))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
        .with_state(state)
}

/// How a request proved it may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// No token is asked on this port (`admin.require_token: false`).
    NoneAsked,
    /// A client certificate the configured authority issued (TLS with `client_ca`).
    Certificate,
    /// The admin token.
    Token,
    /// Nothing valid: the request is refused.
    Missing,
}

impl Credential {
    /// The audit log's word for it.
    pub fn word(self) -> &'static str {
        match self {
            Credential::NoneAsked => "none",
            Credential::Certificate => "certificate",
            Credential::Token => "token",
            Credential::Missing => "no valid token",
        }
    }
}

/// What `request` presents, under the configuration in force.
pub fn credential(state: &AdminState, request: &axum::extract::Request) -> Credential {
    // With TLS and client certificates on this port, every connection has presented a
    // certificate the configured authority issued: that stands for the token.
    let tls = &state.relay.hub().config.load().tls;
    if tls.on(crate::config::TlsPort::Admin) && tls.client_ca.is_some() {
        return Credential::Certificate;
    }
    let Some(token) = &state.token else {
        return Credential::NoneAsked;
    };
    use subtle::ConstantTimeEq;
    // A browser cannot set headers on a WebSocket: `/ws?token=…` is accepted there.
    let from_query = (request.uri().path() == "/ws")
        .then(|| request.uri().query())
        .flatten()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "token"))
        .map(|(_, v)| v);
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or(from_query)
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        Credential::Token
    } else {
        Credential::Missing
    }
}

async fn authorize(
    State(state): State<AdminState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if credential(&state, &request) == Credential::Missing {
        let how = if request.uri().path() == "/ws" {
            "a valid admin token is required: send Authorization: Bearer <admin.token>, or open /ws?token=<admin.token>"
        } else {
            "a valid admin token is required: send Authorization: Bearer <admin.token>"
        };
        return ApiError::new(StatusCode::UNAUTHORIZED, how).into_response();
    }
    next.run(request).await
}

async fn openapi_document() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::document_text(),
    )
        .into_response()
}

/// `GET /ws`: the WebSocket/JSON gateway ([`crate::gateway`]). A message (and a frame) is
/// bounded by `admin.max_message_kib` as it arrives, never buffered whole beyond it.
async fn gateway(
    State(s): State<AdminState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<PeerAddr>,
    mut request: axum::extract::Request,
) -> Response {
    // Refused as every other route refuses: JSON naming what is wrong.
    let upgrade = match crate::gateway::socket::Upgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(e) => return ApiError::new(e.status, e.text).into_response(),
    };
    let hub = s.relay.hub().clone();
    let texts = s.gateway_texts.clone();
    let limit = hub.config.load().admin.max_message_bytes();
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        // What one read of a tab's messages takes (a larger message takes several). The
        // WebSocket layer zeroes this much before each read, and the bridge reads whenever it
        // has written: the default 128 KiB made that cost more than the events themselves.
        .read_buffer_size(crate::gateway::READ_CHUNK);
    upgrade.open(config, move |socket| {
        crate::gateway::serve(hub, socket, peer.caller, texts)
    })
}

async fn status(State(s): State<AdminState>) -> Response {
    let status = s.relay.status();
    let (sw, su, export) = s.relay.hub().monitors.counts();
    let port = |p| s.relay.monitor_addr(p).map(|a| a.port());
    use crate::ports::monitor::MonitorPort;
    Json(StatusReply {
        status,
        monitors: Monitors {
            switch_messages: sw,
            smdr_ucd: su,
            export,
            ports: MonitorPorts {
                switch_messages: port(MonitorPort::SwitchMessages),
                smdr_ucd: port(MonitorPort::SmdrUcd),
                export: port(MonitorPort::Export),
            },
            password: s.relay.hub().config.load().monitor.password.is_some(),
        },
        export_spool: spool_status(s.relay.hub()),
    })
    .into_response()
}

fn spool_status(hub: &crate::hub::Hub) -> SpoolStatus {
    use std::sync::atomic::Ordering::Relaxed;
    let (pending, pending_bytes) = hub.spool.pending();
    let c = &hub.spool.counters;
    SpoolStatus {
        pending,
        pending_bytes,
        spooled: c.spooled.load(Relaxed),
        exported: c.exported.load(Relaxed),
        dropped: c.dropped.load(Relaxed),
    }
}

async fn sessions(State(s): State<AdminState>) -> Response {
    Json(s.relay.status().sessions).into_response()
}

async fn close_session(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return ApiError::new(StatusCode::BAD_REQUEST, "a session id is a number")
            .on("id", json!(id))
            .into_response();
    };
    if s.relay.close_session(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::new(StatusCode::NOT_FOUND, format!("no session {id}"))
            .on("id", json!(id))
            .into_response()
    }
}

async fn switch_action(
    State(s): State<AdminState>,
    Path((no, action)): Path<(String, String)>,
) -> Response {
    let Some(no) = no.parse::<u8>().ok().filter(|n| (1..=8).contains(n)) else {
        return ApiError::new(StatusCode::BAD_REQUEST, "a switch number is 1..=8")
            .on("no", json!(no))
            .into_response();
    };
    let done = match action.as_str() {
        "connect" => s.relay.connect_switch(no),
        "disconnect" => s.relay.disconnect_switch(no),
        "abort" => s.relay.abort_attempt(no),
        other => {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "actions are connect, disconnect and abort",
            )
            .on("action", json!(other))
            .into_response()
        }
    };
    if done {
        StatusCode::ACCEPTED.into_response()
    } else {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("switch {no} is not a configured, enabled switch"),
        )
        .on("no", json!(no))
        .into_response()
    }
}

async fn connect_all(State(s): State<AdminState>) -> StatusCode {
    s.relay.connect_all();
    StatusCode::ACCEPTED
}

async fn disconnect_all(State(s): State<AdminState>) -> StatusCode {
    s.relay.disconnect_all();
    StatusCode::ACCEPTED
}

/// Hands the lease on a shared site's links over to the other relay (`relay ctl lease release`).
async fn release_lease(State(s): State<AdminState>) -> Response {
    match s.relay.hand_over_lease() {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(refused) => ApiError::new(StatusCode::CONFLICT, refused.to_string()).into_response(),
    }
}

async fn licence(State(s): State<AdminState>) -> Response {
    Json(s.relay.status().licence).into_response()
}

impl body::Named for LicenceKey {
    const WHAT: &'static str = "licence key (as {\"key\": \"…\"})";
}

async fn register_licence(
    State(s): State<AdminState>,
    body::JsonBody(req): body::JsonBody<LicenceKey>,
) -> Response {
    match s.relay.register_licence(&req.key) {
        Ok(p) => Json(LicenceRegistered {
            serial: p.serial,
            grants: crate::licensing::grants_text(&p),
        })
        .into_response(),
        Err(e) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            .on("key", json!(req.key))
            .into_response(),
    }
}

fn view(s: &AdminState, e: &crate::notify::Entry) -> Notification {
    Notification {
        seq: e.seq,
        time_ms: e.time_ms,
        level: e.level(),
        switch: e.notice.switch(),
        text: e.text(s.relay.hub().config.load().options.language),
    }
}

async fn notifications(State(s): State<AdminState>) -> Response {
    let list: Vec<Notification> = s
        .relay
        .hub()
        .notices
        .list()
        .iter()
        .map(|e| view(&s, e))
        .collect();
    Json(list).into_response()
}

async fn live_notifications(
    State(s): State<AdminState>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let receiver = s.relay.hub().notices.subscribe();
    let stopping = s.relay.stopping();
    let stream = tokio_stream::wrappers::BroadcastStream::new(receiver).filter_map(move |item| {
        let entry = item.ok()?;
        let data = serde_json::to_string(&view(&s, &entry)).ok()?;
        Some(Ok(Event::default().event("notification").data(data)))
    });
    // The stream ends when the relay stops, so that stopping never waits for a browser.
    let stream = futures_util::StreamExt::take_until(stream, stopping);
    Sse::new(stream).keep_alive(KeepAlive::default())
}
