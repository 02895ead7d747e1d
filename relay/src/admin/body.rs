//! Request bodies: JSON only, and a body that does not fit is refused naming the field at
//! fault, in words an operator reads (ranges, not Rust types).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};

use super::ApiError;

/// What a body is, for messages ("the request body is not a JSON user: …").
pub trait Named: serde::de::DeserializeOwned {
    const WHAT: &'static str;
}

/// A request body parsed as a `T`.
pub struct JsonBody<T>(pub T);

impl<T: Named, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "send the {} as JSON, with Content-Type: application/json",
                    T::WHAT
                ),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large (admin.max_message_kib)",
                ),
                _ => ApiError::new(StatusCode::BAD_REQUEST, e.body_text()),
            })?;
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            let text = e.to_string();
            let text = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(t, _)| t);
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body is not a JSON {}: {text}", T::WHAT),
            )
        })?;
        whole_numbers_as_integers(&mut value);
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| {
                let field = e.path().to_string();
                let text = e.inner().to_string();
                // The field is named on its own; say the range rather than the Rust type.
                let text = text
                    .rsplit_once(" at line ")
                    .map_or(text.as_str(), |(t, _)| t);
                let text = text
                    .replace("expected u16", "expected a number in 0..=65535")
                    .replace("expected u8", "expected a number in 0..=255");
                if field == "." {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("the request body is not a JSON {}: {text}", T::WHAT),
                    )
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, text).at(&field)
                }
            })
    }
}

/// `41.0` is the number 41 in JSON (and an `integer` to JSON Schema): a whole number written
/// with a fraction is read as the integer, so that an integer field takes it.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // Exactly representable and in range: the cast is then exact.
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_written_with_a_fraction_are_integers() {
        let mut v = serde_json::json!({"a": 41.0, "b": [2.0, 2.5, -3.0], "c": 1e300, "d": "7.0"});
        whole_numbers_as_integers(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": 41, "b": [2, 2.5, -3], "c": 1e300, "d": "7.0"})
        );
    }
}
