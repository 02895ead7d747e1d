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
        Ok(added) => Json(json!({
            "applied": true,
            "saved": s.config_path.is_some(),
            "switches_added": added,
        }))
        .into_response(),
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

/// An entry of a configuration list the API manages (switches by number, users by address).
pub trait Entry: serde::de::DeserializeOwned + Send + 'static {
    const WHAT: &'static str;
    const KEY: &'static str;
    fn key(&self) -> String;
    fn list(config: &mut Config) -> &mut Vec<Self>;
}

impl Entry for SwitchConfig {
    const WHAT: &'static str = "switch";
    const KEY: &'static str = "no";
    fn key(&self) -> String {
        self.no.to_string()
    }
    fn list(config: &mut Config) -> &mut Vec<Self> {
        &mut config.switches
    }
}

impl Entry for User {
    const WHAT: &'static str = "user";
    const KEY: &'static str = "ip";
    fn key(&self) -> String {
        self.ip.clone()
    }
    fn list(config: &mut Config) -> &mut Vec<Self> {
        &mut config.users
    }
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// `POST`: adds an entry (a taken number or address is refused by the configuration rules,
/// which name the field).
pub async fn add<T: Entry>(State(s): State<AdminState>, b: JsonBody<T>) -> Response {
    let item = match body(b) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    change(&s, |c| {
        T::list(c).push(item);
        Ok(())
    })
}

/// `PUT`: replaces the entry with this key.
pub async fn put<T: Entry>(
    State(s): State<AdminState>,
    Path(key): Path<String>,
    b: JsonBody<T>,
) -> Response {
    let item = match body(b) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    change(&s, |c| {
        let slot = T::list(c)
            .iter_mut()
            .find(|x| x.key() == key)
            .ok_or_else(|| not_found(T::WHAT, T::KEY, json!(key)))?;
        *slot = item;
        Ok(())
    })
}

/// `DELETE`: removes the entry with this key.
pub async fn remove<T: Entry>(State(s): State<AdminState>, Path(key): Path<String>) -> Response {
    change(&s, |c| {
        let list = T::list(c);
        let before = list.len();
        list.retain(|x| x.key() != key);
        if list.len() == before {
            return Err(not_found(T::WHAT, T::KEY, json!(key)));
        }
        Ok(())
    })
}
