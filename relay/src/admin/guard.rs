//! What a browser may do on the admin port, checked before any route runs:
//! - the `Host` header must name this relay: `localhost`, a loopback address, the address the
//!   client dialled, or a name in `admin.allowed_hosts`, so that a name rebound to this host by
//!   a foreign page (DNS rebinding) reads nothing;
//! - a request that changes anything, and `/ws`, must come from the console's own origin or
//!   one in `admin.allowed_origins` when it names one (`Origin`), so that no page elsewhere can
//!   drive the relay through the operator's browser; programs that send no `Origin` (`relay
//!   ctl`, curl, back-ends) are governed by the token alone;
//! - a request that changes anything carries JSON or no body at all, never the form or text
//!   bodies a page may send without asking the browser first;
//! - no body is longer than `admin.max_message_kib`, checked before it is read (413).
//!
//! A request with no `Host` at all cannot come from a browser, and is let through.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AdminState, ApiError, PeerAddr};
use crate::config::web_origin::{split_host, WebOrigin};
use crate::config::{Admin, TlsPort};

/// Whether `host` (the `Host` header's host part) names this relay for a client that dialled
/// `local`.
fn host_allowed(host: &str, local: Option<SocketAddr>, admin: &Admin) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        // An address cannot be rebound: it is this host's when the client dialled it.
        return ip.is_loopback()
            || ip == admin.address
            || local.is_some_and(|l| l.ip() == ip || l.ip().to_canonical() == ip);
    }
    admin
        .allowed_hosts
        .iter()
        .any(|h| h.trim_end_matches('.').eq_ignore_ascii_case(&host))
}

fn refused(status: StatusCode, error: String, field: &str, value: &str) -> Response {
    ApiError::new(status, error)
        .on(field, json!(value))
        .into_response()
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware: refuses what a browser must not do, before any route runs.
pub async fn guard(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let config = state.relay.hub().config.load_full();
    let admin = &config.admin;
    let local = request
        .extensions()
        .get::<axum::extract::ConnectInfo<PeerAddr>>()
        .and_then(|c| c.0.local);
    let headers = request.headers();
    let host = match headers.get(header::HOST) {
        Some(value) => match value.to_str() {
            Ok(text) => Some(text.to_owned()),
            Err(_) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "the Host header is not text".into(),
                    "Host",
                    "",
                )
            }
        },
        None => request.uri().authority().map(|a| a.to_string()),
    };
    if let Some(host) = &host {
        let allowed = split_host(host).is_some_and(|(name, _)| host_allowed(name, local, admin));
        if !allowed {
            return refused(
                StatusCode::FORBIDDEN,
                format!(
                    "the Host header names {host}, which is not this relay: reach it by an address, \
                     or add the name to admin.allowed_hosts"
                ),
                "Host",
                host,
            );
        }
    }

    let path = request.uri().path();
    let method = request.method();
    if changes_something(method) || path == "/ws" {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("(not text)");
            if !origin_allowed(text, host.as_deref(), &config) {
                return refused(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requests from pages of {text} are refused: only the console's own origin \
                         and those in admin.allowed_origins may change anything or open /ws"
                    ),
                    "Origin",
                    text,
                );
            }
        }
    }
    if changes_something(method) {
        if let Some(refusal) = not_json(headers) {
            return refusal;
        }
    }
    let limit = admin.max_message_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    // A body without a length (chunked) is cut off at the limit as it is read.
    let (parts, body) = request.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, limit));
    next.run(Request::from_parts(parts, body)).await
}

/// The refusal of a body over `limit` bytes.
pub fn too_large(limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than {} KiB (admin.max_message_kib)",
            limit / 1024
        ),
    )
    .into_response()
}

fn origin_allowed(text: &str, host: Option<&str>, config: &crate::Config) -> bool {
    let Some(origin) = WebOrigin::parse(text) else {
        return false;
    };
    let scheme = if config.tls.on(TlsPort::Admin) {
        "https"
    } else {
        "http"
    };
    if let Some(own) = host.and_then(|h| WebOrigin::parse(&format!("{scheme}://{h}"))) {
        if origin == own {
            return true;
        }
    }
    config
        .admin
        .allowed_origins
        .iter()
        .filter_map(|o| WebOrigin::parse(o))
        .any(|o| o == origin)
}

/// A body other than JSON on a request that changes something, refused naming the header.
fn not_json(headers: &HeaderMap) -> Option<Response> {
    let content_type = headers.get(header::CONTENT_TYPE);
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    let json = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json || (content_type.is_none() && !has_body) {
        return None;
    }
    let given = content_type
        .map(|v| v.to_str().unwrap_or("(not text)"))
        .unwrap_or("(none)");
    Some(refused(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "a request that changes something carries JSON (Content-Type: application/json) or no body; {given} is refused"
        ),
        "Content-Type",
        given,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_name_this_relay() {
        let admin = Admin {
            allowed_hosts: vec!["relay.site.example".into()],
            ..Admin::default()
        };
        let local: Option<SocketAddr> = Some("192.0.2.7:8080".parse().unwrap());
        let ok = |h: &str| split_host(h).is_some_and(|(name, _)| host_allowed(name, local, &admin));
        assert!(ok("localhost:8080"));
        assert!(ok("127.0.0.1:8080"));
        assert!(ok("[::1]:8080"));
        assert!(ok("192.0.2.7:8080"));
        assert!(ok("RELAY.site.example"));
        assert!(!ok("evil.example:8080"));
        assert!(!ok("192.0.2.8:8080"));
        assert!(!ok("localhost.evil.example"));
        assert!(!ok("127.0.0.1:80x"));
    }
}
