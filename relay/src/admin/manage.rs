//! Switch and user management (the rules and live effects of docs/configuration.md): every change is validated
//! whole, written to the configuration file atomically, then applied.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::body::{JsonBody, Named};
use super::contract::{Changed, ErrorReply, FieldError};
use super::{AdminState, ApiError};
use crate::config::{Config, ConfigError, SwitchConfig, User};
use crate::server::EditRefused;

/// The configuration in force, with the admin token and the monitor password masked (neither
/// can be changed here, and a console left open should not show them).
pub async fn config(State(s): State<AdminState>) -> Response {
    let mut config = (**s.relay.hub().config.load()).clone();
    let mask = |secret: &mut Option<String>| {
        if secret.is_some() {
            *secret = Some("********".into());
        }
    };
    mask(&mut config.admin.token);
    mask(&mut config.monitor.password);
    Json(config).into_response()
}

/// Applies `edit` to the configuration and, if every rule holds, saves and applies it.
fn change(s: &AdminState, edit: impl FnOnce(&mut Config) -> Result<(), ApiError>) -> Response {
    match s.relay.edit_config(s.config_path.as_deref(), edit) {
        Ok(added) => Json(Changed {
            applied: true,
            saved: s.config_path.is_some(),
            switches_added: added,
        })
        .into_response(),
        Err(EditRefused::Edit(e)) => e.into_response(),
        Err(EditRefused::Config(errors)) => refused(errors),
    }
}

fn refused(errors: Vec<ConfigError>) -> Response {
    let first = &errors[0];
    let reply = ErrorReply {
        error: first.message.clone(),
        field: Some(first.field.clone()),
        value: None,
        errors: errors
            .iter()
            .map(|e| FieldError {
                field: e.field.clone(),
                message: e.message.clone(),
            })
            .collect(),
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(reply)).into_response()
}

fn not_found(what: &str, field: &str, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no {what} {key} is configured"),
    )
    .on(field, json!(key))
}

/// An entry of a configuration list the API manages (switches by number, users by address).
pub trait Entry: Named + Send + 'static {
    const KEY: &'static str;
    fn key(&self) -> String;
    fn list(config: &mut Config) -> &mut Vec<Self>;
}

impl Named for SwitchConfig {
    const WHAT: &'static str = "switch";
}

impl Entry for SwitchConfig {
    const KEY: &'static str = "no";
    fn key(&self) -> String {
        self.no.to_string()
    }
    fn list(config: &mut Config) -> &mut Vec<Self> {
        &mut config.switches
    }
}

impl Named for User {
    const WHAT: &'static str = "user";
}

impl Entry for User {
    const KEY: &'static str = "ip";
    /// The address; for a user named only by its certificate, that name.
    fn key(&self) -> String {
        match (&self.certificate, self.ip.trim().is_empty()) {
            (Some(name), true) => name.clone(),
            _ => self.ip.clone(),
        }
    }
    fn list(config: &mut Config) -> &mut Vec<Self> {
        &mut config.users
    }
}

/// `POST`: adds an entry (a taken number or address is refused by the configuration rules,
/// which name the field).
pub async fn add<T: Entry>(State(s): State<AdminState>, JsonBody(item): JsonBody<T>) -> Response {
    change(&s, |c| {
        T::list(c).push(item);
        Ok(())
    })
}

/// `PUT`: replaces the entry with this key.
pub async fn put<T: Entry>(
    State(s): State<AdminState>,
    Path(key): Path<String>,
    JsonBody(item): JsonBody<T>,
) -> Response {
    change(&s, |c| {
        let slot = T::list(c)
            .iter_mut()
            .find(|x| x.key() == key)
            .ok_or_else(|| not_found(T::WHAT, T::KEY, &key))?;
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
            return Err(not_found(T::WHAT, T::KEY, &key));
        }
        Ok(())
    })
}
