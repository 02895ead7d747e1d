//! The web console: one page, its script and its style sheet, compiled into the binary (no
//! CDN, nothing fetched from elsewhere); and the gateway's example softphone page, alike. The page calls the admin API of the same origin, so
//! these three are served without the token and the API asks for it.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");
const EXAMPLE_PAGE: &str = include_str!("examples/softphone.html");
const EXAMPLE_SCRIPT: &str = include_str!("examples/softphone.js");
const EXAMPLE_STYLE: &str = include_str!("examples/softphone.css");

/// Only this origin's script, style and API; never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
        ],
        body,
    )
}

/// `/`, `/console.js` and `/console.css`; the gateway's example page, `/examples/softphone.html`
/// with its script and style.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/examples/softphone.html",
            get(|| async { asset("text/html; charset=utf-8", EXAMPLE_PAGE) }),
        )
        .route(
            "/examples/softphone.js",
            get(|| async { asset("text/javascript; charset=utf-8", EXAMPLE_SCRIPT) }),
        )
        .route(
            "/examples/softphone.css",
            get(|| async { asset("text/css; charset=utf-8", EXAMPLE_STYLE) }),
        )
}
