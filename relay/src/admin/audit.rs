//! The audit log: every change asked of the admin interface (switches, users, licence,
//! connect/disconnect/abort, session closes), refused or not, and every reload of the
//! configuration file, one JSON object a line ([`AuditEntry`]) in `log_dir/audit.log`. When
//! the file would pass 5 MiB it becomes `audit.log.1` (the older ones move up, `audit.log.9`
//! is dropped). `GET /api/audit` and `relay ctl audit` show the newest entries.
//!
//! A line the disk cannot take is reported in the relay's log and dropped: auditing never
//! stops a change nor the relay.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::contract::{AuditEntry, AuditWho};
use super::{AdminState, PeerAddr};

/// The current file's name in `log_dir`.
pub const FILE: &str = "audit.log";
/// Bytes a file may hold before it is rotated.
const MAX_BYTES: u64 = 5 << 20;
/// Rotated files kept (`audit.log.1` … `audit.log.9`).
const KEEP: usize = 9;
/// Most entries one `GET /api/audit` returns.
pub const MAX_LIMIT: usize = 10_000;

/// The audit log of one relay, appended to by its admin interface and its reloads.
#[derive(Clone)]
pub struct AuditLog {
    dir: PathBuf,
    file: Arc<Mutex<Option<File>>>,
}

impl AuditLog {
    /// The log in `dir` (made at the first entry).
    pub fn new(dir: &Path) -> AuditLog {
        AuditLog {
            dir: dir.to_owned(),
            file: Arc::new(Mutex::new(None)),
        }
    }

    fn path(&self, generation: usize) -> PathBuf {
        match generation {
            0 => self.dir.join(FILE),
            n => self.dir.join(format!("{FILE}.{n}")),
        }
    }

    /// Appends one entry.
    pub fn append(&self, entry: &AuditEntry) {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.write(&mut file, &line) {
            *file = None;
            tracing::warn!(dir = %self.dir.display(), error = %e, "the audit log cannot be written");
        }
    }

    fn write(&self, file: &mut Option<File>, line: &[u8]) -> std::io::Result<()> {
        if file.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            *file = Some(open(&self.path(0))?);
        }
        let size = file
            .as_ref()
            .map_or(Ok(0), |f| f.metadata().map(|m| m.len()))?;
        if size > 0 && size + line.len() as u64 > MAX_BYTES {
            for n in (1..KEEP).rev() {
                let _ = std::fs::rename(self.path(n), self.path(n + 1));
            }
            std::fs::rename(self.path(0), self.path(1))?;
            *file = Some(open(&self.path(0))?);
        }
        match file {
            Some(f) => f.write_all(line),
            None => Ok(()),
        }
    }

    /// The newest `limit` entries, oldest first (lines that are not entries are skipped).
    pub fn newest(&self, limit: usize) -> Vec<AuditEntry> {
        let mut entries = std::collections::VecDeque::with_capacity(limit.min(1024));
        for generation in (0..=KEEP).rev() {
            let Ok(file) = File::open(self.path(generation)) else {
                continue;
            };
            for line in std::io::BufReader::new(file).lines() {
                let Ok(line) = line else { break };
                if let Ok(entry) = serde_json::from_str::<AuditEntry>(&line) {
                    if entries.len() == limit {
                        entries.pop_front();
                    }
                    entries.push_back(entry);
                }
            }
        }
        entries.into_iter().collect()
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path)
}

/// An entry made now.
pub fn entry(
    now_ms: u64,
    who: AuditWho,
    what: String,
    body: Option<Value>,
    status: u16,
    error: Option<String>,
) -> AuditEntry {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms);
    AuditEntry {
        time_ms: now_ms,
        time: humantime::format_rfc3339_millis(time).to_string(),
        who,
        what,
        body,
        status,
        error,
    }
}

/// Passwords, keys and tokens in a body, masked (a licence key keeps its last 4 characters,
/// to tell keys apart).
fn masked(mut body: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match (k.as_str(), &*v) {
                        ("key", Value::String(key)) => {
                            let tail: String = key
                                .chars()
                                .rev()
                                .take(4)
                                .collect::<Vec<_>>()
                                .into_iter()
                                .rev()
                                .collect();
                            *v = Value::String(format!("…{tail}"));
                        }
                        ("easyset_password" | "password" | "token", Value::String(_)) => {
                            *v = Value::String("***".into());
                        }
                        _ => walk(v),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut body);
    body
}

/// The middleware: each request that changes something is written to the audit log with its
/// outcome, refused ones included.
pub async fn record(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let caller = request
        .extensions()
        .get::<axum::extract::ConnectInfo<PeerAddr>>()
        .map(|c| c.0.caller.clone());
    let certificate = caller.as_ref().and_then(|c| c.names.first().cloned());
    let by = super::credential(&state, &request).word();
    let who = AuditWho {
        by: by.into(),
        address: caller.map(|c| c.addr.to_string()),
        certificate,
    };
    let what = format!("{} {}", request.method(), request.uri().path());
    let limit = state.relay.hub().config.load().admin.max_message_bytes();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        let now = state.relay.hub().clock.now_ms();
        let refusal = super::guard::too_large(limit);
        state.audit.append(&entry(
            now,
            who,
            what,
            None,
            refusal.status().as_u16(),
            Some("the request body is too large".into()),
        ));
        return refusal;
    };
    let json = (!bytes.is_empty())
        .then(|| serde_json::from_slice::<Value>(&bytes).ok().map(masked))
        .flatten();
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    let status = response.status();
    let (response, error) = if status.is_client_error() || status.is_server_error() {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 << 10)
            .await
            .unwrap_or_default();
        let error = serde_json::from_slice::<super::contract::ErrorReply>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        (
            Response::from_parts(parts, axum::body::Body::from(bytes)),
            Some(error),
        )
    } else {
        (response, None)
    };
    let now = state.relay.hub().clock.now_ms();
    state
        .audit
        .append(&entry(now, who, what, json, status.as_u16(), error));
    response
}

#[derive(serde::Deserialize)]
pub(super) struct AuditQuery {
    limit: Option<usize>,
}

/// `GET /api/audit?limit=N`: the newest N entries (100 unless asked), oldest first.
pub(super) async fn list(
    State(state): State<AdminState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return super::ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; the one filter is limit (1..={MAX_LIMIT})",
                    e.body_text()
                ),
            )
            .at("limit")
            .into_response()
        }
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return super::ApiError::new(StatusCode::BAD_REQUEST, format!("limit is 1..={MAX_LIMIT}"))
            .on("limit", serde_json::json!(limit))
            .into_response();
    }
    let audit = state.audit.clone();
    match tokio::task::spawn_blocking(move || audit.newest(limit)).await {
        Ok(entries) => ([(header::CACHE_CONTROL, "no-store")], Json(entries)).into_response(),
        Err(_) => super::ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the audit log could not be read",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(what: &str) -> AuditEntry {
        entry(
            1_796_230_136_448,
            AuditWho {
                by: "token".into(),
                address: Some("127.0.0.1:50000".into()),
                certificate: None,
            },
            what.into(),
            None,
            202,
            None,
        )
    }

    #[test]
    fn entries_are_lines_read_back_newest_last_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        for i in 0..5 {
            log.append(&sample(&format!("POST /api/switches/{i}/connect")));
        }
        let newest = log.newest(2);
        assert_eq!(
            newest.iter().map(|e| e.what.as_str()).collect::<Vec<_>>(),
            [
                "POST /api/switches/3/connect",
                "POST /api/switches/4/connect"
            ]
        );
        assert_eq!(newest[0].time, "2026-12-02T16:48:56.448Z");
        // A full file moves to audit.log.1; reading goes on across both.
        std::fs::write(dir.path().join(FILE), vec![b'x'; MAX_BYTES as usize]).unwrap();
        let log = AuditLog::new(dir.path());
        log.append(&sample("POST /api/connect-all"));
        assert!(dir.path().join("audit.log.1").exists());
        assert_eq!(log.newest(10).len(), 1);
    }

    #[test]
    fn secrets_are_masked() {
        let body = serde_json::json!({
            "no": 2, "easyset_password": "1234", "key": "AEAAAA7J-XYZW-1234",
            "nested": [{"password": "p"}]
        });
        assert_eq!(
            masked(body),
            serde_json::json!({
                "no": 2, "easyset_password": "***", "key": "…1234",
                "nested": [{"password": "***"}]
            })
        );
    }
}
