//! Switch and user management (SPEC §2 rules, §3 live effects): every change is validated
//! whole, written to the configuration file atomically, then applied.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{AdminState, ApiError};
use crate::config::{Config, ConfigError, SwitchConfig, User};

pub async fn config(State(s): State<AdminState>) -> Response {
    Json((**s.relay.hub().config.load()).clone()).into_response()
}

/// Applies `edit` to a copy of the configuration and, if every rule holds, saves and applies it.
fn change(s: &AdminState, edit: impl FnOnce(&mut Config) -> Result<(), ApiError>) -> Response {
    let mut next = (**s.relay.hub().config.load()).clone();
    if let Err(e) = edit(&mut next) {
        return e.into_response();
    }
    match s.relay.apply_change(next, s.config_path.as_deref()) {
        Ok(added) => Json(json!({ "applied": true, "switches_added": added })).into_response(),
        Err(errors) => refused(errors),
    }
}

fn refused(errors: Vec<ConfigError>) -> Response {
    let first = &errors[0];
    let list: Vec<_> = errors
        .iter()
        .map(|e| json!({ "field": e.field, "message": e.message }))
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": first.message, "field": first.field, "errors": list })),
    )
        .into_response()
}

fn body<T>(b: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid: {e}"),
        )
    })
}

fn not_found(what: &str, field: &str, value: serde_json::Value) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no {what} {value}")).on(field, value)
}

pub async fn add_switch(
    State(s): State<AdminState>,
    b: Result<Json<SwitchConfig>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let sw = match body(b) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    change(&s, |c| {
        if c.switch(sw.no).is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("switch {} already exists", sw.no),
            )
            .on("no", json!(sw.no)));
        }
        c.switches.push(sw);
        Ok(())
    })
}

pub async fn put_switch(
    State(s): State<AdminState>,
    Path(no): Path<u8>,
    b: Result<Json<SwitchConfig>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let sw = match body(b) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    change(&s, |c| {
        let slot = c
            .switches
            .iter_mut()
            .find(|x| x.no == no)
            .ok_or_else(|| not_found("switch", "no", json!(no)))?;
        *slot = sw;
        Ok(())
    })
}

pub async fn delete_switch(State(s): State<AdminState>, Path(no): Path<u8>) -> Response {
    change(&s, |c| {
        let before = c.switches.len();
        c.switches.retain(|x| x.no != no);
        if c.switches.len() == before {
            return Err(not_found("switch", "no", json!(no)));
        }
        Ok(())
    })
}

pub async fn add_user(
    State(s): State<AdminState>,
    b: Result<Json<User>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let user = match body(b) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    change(&s, |c| {
        c.users.push(user);
        Ok(())
    })
}

pub async fn put_user(
    State(s): State<AdminState>,
    Path(ip): Path<String>,
    b: Result<Json<User>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let user = match body(b) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    change(&s, |c| {
        let slot = c
            .users
            .iter_mut()
            .find(|u| u.ip == ip)
            .ok_or_else(|| not_found("user", "ip", json!(ip)))?;
        *slot = user;
        Ok(())
    })
}

pub async fn delete_user(State(s): State<AdminState>, Path(ip): Path<String>) -> Response {
    change(&s, |c| {
        let before = c.users.len();
        c.users.retain(|u| u.ip != ip);
        if c.users.len() == before {
            return Err(not_found("user", "ip", json!(ip)));
        }
        Ok(())
    })
}
