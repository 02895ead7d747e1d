//! `GET /api/calls`: the call-record store, filtered and paged, as JSON or CSV
//! (`?format=csv` or `Accept: text/csv`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{AdminState, ApiError};
use crate::calls::{self, CallQuery, QueryError};

pub async fn list(
    State(s): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<CallQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; filters: from, to, extension, flag, call_id, switch, after, limit, format",
                    e.body_text()
                ),
            )
            .into_response()
        }
    };
    let accepts_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    let csv = match q.format.as_deref().filter(|f| !f.is_empty()) {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{other:?} is not a format: use csv or json"),
            )
            .on("format", other.into())
            .into_response()
        }
        None => accepts_csv,
    };
    let state_dir = s.relay.hub().config.load().state_dir.clone();
    let max = if csv {
        calls::CSV_MAX
    } else {
        calls::PAGE_DEFAULT
    };
    let found = tokio::task::spawn_blocking(move || calls::query(&state_dir, &q, max)).await;
    let page = match found {
        Ok(Ok(page)) => page,
        Ok(Err(e @ QueryError::Time { field, .. })) => {
            return ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
                .at(field)
                .into_response()
        }
        Ok(Err(e @ QueryError::Limit(_))) => {
            return ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
                .at("limit")
                .into_response()
        }
        Ok(Err(e)) => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
        Err(e) => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    };
    if csv {
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"calls.csv\"",
                ),
            ],
            calls::to_csv(&page.calls),
        )
            .into_response()
    } else {
        Json(page).into_response()
    }
}
