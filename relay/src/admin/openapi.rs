//! The admin API's OpenAPI 3.1 document, made from the contract types ([`super::contract`])
//! and the operations declared here; served at `GET /api/openapi.json` (without the token: it
//! holds nothing secret) and committed as `docs/openapi.json`.
//!
//! Each operation below is a declaration only: its handler lives beside the route in
//! [`super::router`], and a test walks both to show they name the same routes. The refusals
//! every route shares (no valid token, a `Host` or `Origin` refused, a body too large or not
//! JSON) are added to each operation by [`SharedRefusals`] rather than repeated.

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::contract::{
    AuditEntry, CallPage, CallQuery, Changed, ErrorReply, LicenceKey, LicenceRegistered,
    LicenceStatus, Notification, SessionStatus, StatusReply,
};
use crate::config::{Config, SwitchConfig, User};

/// The document as the relay serves it.
pub fn document() -> serde_json::Value {
    let mut document = serde_json::to_value(Document::openapi()).unwrap_or_default();
    bound_unsigned(&mut document);
    document
}

/// The document as `docs/openapi.json` holds it: pretty JSON and a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// Gives every unsigned integer its type's maximum (the derive gives only the minimum, 0), so
/// that a client knows 256 is not a `uint8` before the relay refuses it; and names the format
/// as usual (`uint8`, where the derive writes `u-int8`).
fn bound_unsigned(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let unsigned: Option<(&str, u64)> = match map.get("format").and_then(|f| f.as_str()) {
                Some("u-int8") => Some(("uint8", u8::MAX.into())),
                Some("u-int16") => Some(("uint16", u16::MAX.into())),
                Some("u-int32") => Some(("uint32", u32::MAX.into())),
                Some("u-int64") => Some(("uint64", u64::MAX)),
                _ => None,
            };
            if let Some((format, maximum)) = unsigned {
                map.insert("format".into(), format.into());
                map.entry("maximum").or_insert(maximum.into());
            }
            map.values_mut().for_each(bound_unsigned);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_unsigned),
        _ => {}
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CTI relay admin API",
        description = "Status, sessions, switch links, licence, configuration, notifications, \
                       call records, audit log and metrics of one relay. Every route but this \
                       document asks for the admin token as `Authorization: Bearer <admin.token>` \
                       (or a client certificate, when the admin port speaks TLS with `client_ca`). \
                       Every refusal is an `ErrorReply`. The WebSocket gateway's messages are \
                       described by `docs/gateway.schema.json`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        get_status,
        list_sessions,
        close_session,
        switch_action,
        connect_all,
        disconnect_all,
        release_lease,
        get_licence,
        register_licence,
        get_licence_alias,
        register_licence_alias,
        get_config,
        add_switch,
        replace_switch,
        remove_switch,
        add_user,
        replace_user,
        remove_user,
        list_calls,
        list_notifications,
        live_notifications,
        get_metrics,
        list_audit,
        gateway,
        get_openapi,
    ),
    components(schemas(ErrorReply)),
    modifiers(&SharedRefusals, &Links),
    security(("token" = [])),
    tags(
        (name = "status", description = "What the relay is doing now"),
        (name = "switches", description = "Switch links: connect, disconnect, configure"),
        (name = "sessions", description = "Application sessions"),
        (name = "licence", description = "The licence in force and its use"),
        (name = "configuration", description = "The configuration in force, and edits that are validated, saved and applied"),
        (name = "records", description = "Notifications, call records and the audit log"),
    )
)]
struct Document;

/// Adds the bearer scheme, and to every operation the refusals that come before any route.
struct SharedRefusals;

impl Modify for SharedRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (`admin.token`); the relay makes one at first start \
                         and writes it to `state_dir/admin.token` when none is configured.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = path == "/api/openapi.json";
            for method in [
                HttpMethod::Get,
                HttpMethod::Post,
                HttpMethod::Put,
                HttpMethod::Delete,
            ] {
                let Some(operation) = operation_mut(item, &method) else {
                    continue;
                };
                let changes = !matches!(method, HttpMethod::Get);
                add(
                    operation,
                    "400",
                    "The `Host` header is not text, or the request is malformed",
                );
                if !public {
                    add(operation, "401", "No valid admin token");
                }
                add(
                    operation,
                    "403",
                    "The `Host` header does not name this relay, or a page of another origin \
                     asked for a change or the gateway",
                );
                add(
                    operation,
                    "413",
                    "The body is larger than `admin.max_message_kib`",
                );
                if changes {
                    add(
                        operation,
                        "415",
                        "A request that changes something carries JSON or no body",
                    );
                }
            }
        }
    }
}

/// Which answer names the entry another operation acts on: an added switch or user is the
/// one to replace or remove, a listed session the one to close. (Clients and stateful
/// testers follow these.)
struct Links;

type Targets = &'static [(&'static str, &'static str)];

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // (path, method, answer, [(operation it leads to, the parameter it fills)])
        let links: [(&str, HttpMethod, &str, Targets); 3] = [
            (
                "/api/switches",
                HttpMethod::Post,
                "200",
                &[("replace_switch", "no"), ("remove_switch", "no")],
            ),
            (
                "/api/users",
                HttpMethod::Post,
                "200",
                &[("replace_user", "ip"), ("remove_user", "ip")],
            ),
            (
                "/api/sessions",
                HttpMethod::Get,
                "200",
                &[("close_session", "id")],
            ),
        ];
        for (path, method, status, targets) in links {
            let Some(RefOr::T(response)) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| operation_mut(item, &method))
                .and_then(|operation| operation.responses.responses.get_mut(status))
            else {
                continue;
            };
            for (operation_id, parameter) in targets {
                let value = if *parameter == "id" {
                    "$response.body#/0/id".to_owned()
                } else {
                    format!("$request.body#/{parameter}")
                };
                response.links.insert(
                    (*operation_id).to_owned(),
                    RefOr::T(
                        LinkBuilder::new()
                            .operation_id(*operation_id)
                            .parameter(*parameter, value)
                            .build(),
                    ),
                );
            }
        }
    }
}

fn operation_mut<'a>(
    item: &'a mut utoipa::openapi::PathItem,
    method: &HttpMethod,
) -> Option<&'a mut Operation> {
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        _ => None,
    }
}

/// Adds the refusal `status` (an [`ErrorReply`]) unless the operation describes it itself.
fn add(operation: &mut Operation, status: &str, description: &str) {
    let responses = &mut operation.responses.responses;
    if responses.contains_key(status) {
        return;
    }
    responses.insert(status.to_owned(), RefOr::T(refusal(description)));
}

fn refusal(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorReply")))
                .build(),
        )
        .build()
}

#[utoipa::path(
    get, path = "/api/status", tag = "status",
    summary = "Switches, sessions, licence, monitors and the export spool",
    responses((status = 200, description = "The relay now", body = StatusReply)),
)]
#[allow(dead_code)]
fn get_status() {}

#[utoipa::path(
    get, path = "/api/sessions", tag = "sessions",
    summary = "The application sessions open now",
    responses((status = 200, description = "Oldest first", body = Vec<SessionStatus>)),
)]
#[allow(dead_code)]
fn list_sessions() {}

#[utoipa::path(
    delete, path = "/api/sessions/{id}", tag = "sessions",
    summary = "Closes a session (the application is told `X` with reason 7)",
    params(("id" = u64, Path, description = "The session's id, as `GET /api/sessions` lists it")),
    responses(
        (status = 204, description = "Closed"),
        (status = 400, description = "The id is not a number", body = ErrorReply),
        (status = 404, description = "No session has this id", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn close_session() {}

#[utoipa::path(
    post, path = "/api/switches/{no}/{action}", tag = "switches",
    summary = "Connects, disconnects, or aborts the recovery attempt of one switch link",
    params(
        ("no" = u8, Path, minimum = 1, maximum = 8, description = "The switch number"),
        ("action" = String, Path, pattern = "^(connect|disconnect|abort)$",
         description = "`connect`, `disconnect` or `abort`"),
    ),
    responses(
        (status = 202, description = "Asked of the link; `GET /api/status` shows the outcome"),
        (status = 400, description = "The switch number is not 1..=8", body = ErrorReply),
        (status = 404, description = "No such action, or the switch is not configured and enabled", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn switch_action() {}

#[utoipa::path(
    post, path = "/api/connect-all", tag = "switches",
    summary = "Connects every enabled switch",
    responses((status = 202, description = "Asked of every link")),
)]
#[allow(dead_code)]
fn connect_all() {}

#[utoipa::path(
    post, path = "/api/disconnect-all", tag = "switches",
    summary = "Disconnects every switch",
    responses((status = 202, description = "Asked of every link")),
)]
#[allow(dead_code)]
fn disconnect_all() {}

#[utoipa::path(
    post, path = "/api/bus/lease/release", tag = "switches",
    summary = "A shared site's lease holder hands its switch links to the other relay",
    responses(
        (status = 202, description = "Released; the other relay takes the links"),
        (status = 409, description = "This relay holds no lease", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn release_lease() {}

#[utoipa::path(
    get, path = "/api/license", tag = "licence",
    summary = "The licence in force, its limits and their use",
    responses((status = 200, description = "The licence now", body = LicenceStatus)),
)]
#[allow(dead_code)]
fn get_licence() {}

#[utoipa::path(
    post, path = "/api/license", tag = "licence",
    summary = "Registers a licence key (or changes the one in force)",
    request_body = LicenceKey,
    responses(
        (status = 200, description = "In force", body = LicenceRegistered),
        (status = 400, description = "The body is not `{\"key\": \"…\"}`", body = ErrorReply),
        (status = 422, description = "The key is refused (signature, host, expiry); the old licence stays", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn register_licence() {}

#[utoipa::path(
    get, path = "/api/licence", tag = "licence",
    summary = "As `GET /api/license`",
    responses((status = 200, description = "The licence now", body = LicenceStatus)),
)]
#[allow(dead_code)]
fn get_licence_alias() {}

#[utoipa::path(
    post, path = "/api/licence", tag = "licence",
    summary = "As `POST /api/license`",
    request_body = LicenceKey,
    responses(
        (status = 200, description = "In force", body = LicenceRegistered),
        (status = 400, description = "The body is not `{\"key\": \"…\"}`", body = ErrorReply),
        (status = 422, description = "The key is refused; the old licence stays", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn register_licence_alias() {}

#[utoipa::path(
    get, path = "/api/config", tag = "configuration",
    summary = "The configuration in force (the admin token and monitor password masked)",
    responses((status = 200, description = "As `relay.yaml` holds it, every default filled in", body = Config)),
)]
#[allow(dead_code)]
fn get_config() {}

#[utoipa::path(
    post, path = "/api/switches", tag = "configuration",
    summary = "Adds a switch: validated with the whole configuration, saved, and dialled",
    request_body = SwitchConfig,
    responses(
        (status = 200, description = "Applied", body = Changed),
        (status = 400, description = "The body is not a switch; `field` names what is wrong", body = ErrorReply),
        (status = 422, description = "The configuration rules refuse it (a number taken, no address…); `errors` lists each", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn add_switch() {}

#[utoipa::path(
    put, path = "/api/switches/{no}", tag = "configuration",
    summary = "Replaces a switch (a connected switch must be disconnected first)",
    params(("no" = String, Path, description = "The switch number")),
    request_body = SwitchConfig,
    responses(
        (status = 200, description = "Applied", body = Changed),
        (status = 400, description = "The body is not a switch", body = ErrorReply),
        (status = 404, description = "No switch has this number", body = ErrorReply),
        (status = 422, description = "The configuration rules refuse it (the switch is connected: disconnect it first…)", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn replace_switch() {}

#[utoipa::path(
    delete, path = "/api/switches/{no}", tag = "configuration",
    summary = "Removes a switch (a connected switch must be disconnected first)",
    params(("no" = String, Path, description = "The switch number")),
    responses(
        (status = 200, description = "Applied", body = Changed),
        (status = 404, description = "No switch has this number", body = ErrorReply),
        (status = 422, description = "The configuration rules refuse the result (the switch is connected: disconnect it first…)", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn remove_switch() {}

#[utoipa::path(
    post, path = "/api/users", tag = "configuration",
    summary = "Adds a user (an application's address or certificate name)",
    request_body = User,
    responses(
        (status = 200, description = "Applied", body = Changed),
        (status = 400, description = "The body is not a user", body = ErrorReply),
        (status = 422, description = "The configuration rules refuse it", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn add_user() {}

#[utoipa::path(
    put, path = "/api/users/{ip}", tag = "configuration",
    summary = "Replaces a user",
    params(("ip" = String, Path, description = "The user's address (or, for a user named only by its certificate, that name)")),
    request_body = User,
    responses(
        (status = 200, description = "Applied", body = Changed),
        (status = 400, description = "The body is not a user", body = ErrorReply),
        (status = 404, description = "No user has this address", body = ErrorReply),
        (status = 422, description = "The configuration rules refuse it", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn replace_user() {}

#[utoipa::path(
    delete, path = "/api/users/{ip}", tag = "configuration",
    summary = "Removes a user",
    params(("ip" = String, Path, description = "The user's address or certificate name")),
    responses(
        (status = 200, description = "Applied", body = Changed),
        (status = 404, description = "No user has this address", body = ErrorReply),
        (status = 422, description = "The configuration rules refuse the result", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn remove_user() {}

#[utoipa::path(
    get, path = "/api/calls", tag = "records",
    summary = "Stored call records (SMDR), filtered and paged; JSON, or CSV with `format=csv` or `Accept: text/csv`",
    params(CallQuery),
    responses(
        (status = 200, description = "A page of records",
         content(
            (CallPage = "application/json"),
            (String = "text/csv", example = "id,seq,switch,received_ms,layout,start,call_id,extension,…"),
         )),
        (status = 400, description = "A filter is not valid; `field` names it", body = ErrorReply),
        (status = 500, description = "The call-record store cannot be read", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn list_calls() {}

#[utoipa::path(
    get, path = "/api/notifications", tag = "records",
    summary = "The notifications kept (`options.notification_lines`), in the configured language",
    responses((status = 200, description = "Oldest first", body = Vec<Notification>)),
)]
#[allow(dead_code)]
fn list_notifications() {}

#[utoipa::path(
    get, path = "/api/notifications/live", tag = "records",
    summary = "Notifications as they happen, as Server-Sent Events",
    description = "Each event is named `notification`; its `data` is one `Notification` as JSON. \
                   The stream stays open until the client or the relay ends it.",
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String)),
)]
#[allow(dead_code)]
fn live_notifications() {}

#[utoipa::path(
    get, path = "/metrics", tag = "status",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    responses((status = 200, description = "The metrics", content_type = "text/plain", body = String)),
)]
#[allow(dead_code)]
fn get_metrics() {}

#[utoipa::path(
    get, path = "/api/audit", tag = "records",
    summary = "The newest entries of the audit log, oldest first",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "How many (100 when absent)")),
    responses(
        (status = 200, description = "The entries", body = Vec<AuditEntry>),
        (status = 400, description = "`limit` is not 1..=10000", body = ErrorReply),
        (status = 500, description = "The audit log cannot be read", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn list_audit() {}

#[utoipa::path(
    get, path = "/ws", tag = "sessions",
    summary = "The WebSocket/JSON gateway (messages: `docs/gateway.schema.json`)",
    description = "A browser cannot set headers on a WebSocket, so the token may come as \
                   `?token=` here. Messages and frames are bounded by `admin.max_message_kib`.",
    params(("token" = Option<String>, Query, description = "The admin token, for a browser")),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorReply),
        (status = 426, description = "The WebSocket version is not 13", body = ErrorReply),
    ),
)]
#[allow(dead_code)]
fn gateway() {}

#[utoipa::path(
    get, path = "/api/openapi.json", tag = "status",
    summary = "This document",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)),
)]
#[allow(dead_code)]
fn get_openapi() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is this document: `UPDATE_SCHEMA=1 cargo test -p relay --lib
    /// openapi` writes it again after a change.
    #[test]
    fn the_committed_document_is_the_one_served() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let made = document_text();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &made).unwrap();
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            kept == made,
            "{} is not the document the relay serves: run UPDATE_SCHEMA=1 cargo test -p relay --lib openapi",
            path.display()
        );
    }
}
