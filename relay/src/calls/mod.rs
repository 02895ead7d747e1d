//! The call-record store: every SMDR record the switches send, parsed into an SQLite database
//! (`state_dir/calls.sqlite`), queried by the admin API (`GET /api/calls`), `relay ctl calls`
//! and the console's "Call records" page.
//!
//! - [`year`]: the year a record does not print.
//! - [`CallStore`]: the writer, fed by the spool's committer after each journal sync.
//! - [`query`]: filters and pages, as JSON rows or CSV.
//!
//! A record in the switch's native layout (121 or 153 bytes) is stored field by field; any
//! other text is stored as it came, with `layout: unknown`. Each row carries the spool's record
//! number, so a record written again after a crash is stored once.

pub mod year;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::spool::Entry;
use wire::frame::HEADER_LEN;
use wire::smdr::{split_page_header, SmdrRecord};

/// The database file in `state_dir`.
pub const FILE: &str = "calls.sqlite";
/// Rows a JSON page holds unless asked otherwise, and at most.
pub const PAGE_DEFAULT: u32 = 100;
pub const PAGE_MAX: u32 = 10_000;
/// Rows a CSV download holds at most.
pub const CSV_MAX: u32 = 1_000_000;
const PURGE_EVERY_MS: u64 = 3_600_000;

/// One stored SMDR record, as the API, `relay ctl calls` and the console show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallRecord {
    /// The store's row number, in arrival order (pagination: `after`).
    pub id: i64,
    /// The spool's record number (0: not spooled, the export port was off).
    pub seq: u64,
    pub switch: u8,
    /// When the relay received it, ms since the epoch.
    pub received_ms: u64,
    /// `short` (121 bytes), `long` (153 bytes) or `unknown` (only `raw` is set).
    pub layout: String,
    /// The call's start, switch time, `YYYY-MM-DD HH:MM:SS` (the year inferred).
    pub start: Option<String>,
    pub call_id: String,
    pub extension: String,
    pub trunk: String,
    pub duration_s: Option<u32>,
    pub flag: String,
    pub digits: String,
    pub account: String,
    pub cost: String,
    pub caller_id: String,
    pub caller_name: Option<String>,
    pub group: Option<String>,
    pub ring_s: Option<u32>,
    /// The record's text as the switch sent it, without page header and line end.
    pub raw: String,
}

/// A page of records and where the next one starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallPage {
    pub calls: Vec<CallRecord>,
    /// Pass as `after` for the next page; null on the last one.
    pub next: Option<i64>,
}

/// Filters of `GET /api/calls` and `relay ctl calls`. An empty value is no filter (as a form
/// sends a field left blank).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Calls that started at or after, switch time: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or
    /// `YYYY-MM-DDTHH:MM:SS` (a space for the `T` will do); a date the calendar lacks is
    /// refused.
    #[param(
        pattern = "^([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?)?)?$"
    )]
    pub from: Option<String>,
    /// Calls that started before, same forms.
    #[param(
        pattern = "^([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?)?)?$"
    )]
    pub to: Option<String>,
    pub extension: Option<String>,
    pub flag: Option<String>,
    pub call_id: Option<String>,
    pub switch: Option<u8>,
    /// Rows after this id (the previous page's `next`).
    pub after: Option<i64>,
    /// Rows at most: a JSON page holds up to 10 000 (100 when not given; a larger limit
    /// gives 10 000 and `next`), a CSV download up to 1 000 000 (all of them when not given).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub limit: Option<u32>,
    /// `csv` for CSV, `json` (or empty) for JSON; without it, the `Accept` header decides.
    #[param(pattern = "^(csv|json)?$")]
    pub format: Option<String>,
}

/// A query the store cannot run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{field}: {value:?} is not a time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")]
    Time { field: &'static str, value: String },
    #[error(
        "limit: {0} is out of range: use 1..={CSV_MAX} (a JSON page holds {PAGE_MAX} at most)"
    )]
    Limit(u32),
    #[error("the call-record store cannot be read: {0}")]
    Store(#[from] rusqlite::Error),
}

/// The store's writer.
pub struct CallStore {
    db: Connection,
    keep_days: u32,
    last_purge_ms: u64,
}

/// Opens the database with a page cache of `cache_kib`: the writer only appends, so the pages
/// on the right edge of the table and its indexes are all it needs; its memory stays small and
/// flat. Queries use a connection of their own, with SQLite's default cache, for their life.
fn open_db(path: &Path, cache_kib: i64) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    // The spool is the durable copy; the store may lag it by a crash, never by more.
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "cache_size", -cache_kib)?;
    Ok(db)
}

impl CallStore {
    /// Opens (creating) the store in `state_dir`.
    pub fn open(state_dir: &Path, keep_days: u32) -> rusqlite::Result<CallStore> {
        let db = open_db(&state_dir.join(FILE), 128)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS calls (
                id INTEGER PRIMARY KEY,
                seq INTEGER UNIQUE,
                switch INTEGER NOT NULL,
                received_ms INTEGER NOT NULL,
                layout TEXT NOT NULL,
                start TEXT,
                call_id TEXT NOT NULL,
                extension TEXT NOT NULL,
                trunk TEXT NOT NULL,
                duration_s INTEGER,
                flag TEXT NOT NULL,
                digits TEXT NOT NULL,
                account TEXT NOT NULL,
                cost TEXT NOT NULL,
                caller_id TEXT NOT NULL,
                caller_name TEXT,
                grp TEXT,
                ring_s INTEGER,
                raw TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS calls_start ON calls(start);
            CREATE INDEX IF NOT EXISTS calls_extension ON calls(extension);
            CREATE INDEX IF NOT EXISTS calls_received ON calls(received_ms);",
        )?;
        Ok(CallStore {
            db,
            keep_days,
            last_purge_ms: 0,
        })
    }

    /// The highest spool number stored (0 when empty): numbering goes on after it.
    pub fn last_seq(&self) -> rusqlite::Result<u64> {
        let seq: Option<i64> = self
            .db
            .query_row("SELECT MAX(seq) FROM calls", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(seq.unwrap_or(0) as u64)
    }

    /// Stores the SMDR records among `entries` (UCD records are not calls); a record already
    /// stored is skipped. Errors are logged: the spool still has the records.
    pub fn insert(&mut self, entries: &[Entry]) {
        if let Err(e) = self.try_insert(entries) {
            tracing::error!("cannot store call records in {FILE}: {e}");
        }
    }

    fn try_insert(&mut self, entries: &[Entry]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO calls (seq, switch, received_ms, layout, start, call_id,
                    extension, trunk, duration_s, flag, digits, account, cost, caller_id,
                    caller_name, grp, ring_s, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18)",
            )?;
            for e in entries {
                if e.frame.get(2) != Some(&b'S') {
                    continue;
                }
                let r = record_of(e);
                // Records not spooled (the export port is off) have no spool number.
                let seq = (r.seq > 0).then_some(r.seq as i64);
                insert.execute(params![
                    seq,
                    r.switch,
                    r.received_ms as i64,
                    r.layout,
                    r.start,
                    r.call_id,
                    r.extension,
                    r.trunk,
                    r.duration_s,
                    r.flag,
                    r.digits,
                    r.account,
                    r.cost,
                    r.caller_id,
                    r.caller_name,
                    r.group,
                    r.ring_s,
                    r.raw,
                ])?;
            }
        }
        tx.commit()?;
        let now = entries.last().map_or(0, |e| e.time_ms);
        if now >= self.last_purge_ms + PURGE_EVERY_MS {
            self.last_purge_ms = now;
            let oldest = now.saturating_sub(u64::from(self.keep_days) * 86_400_000);
            self.db.execute(
                "DELETE FROM calls WHERE received_ms < ?1",
                params![oldest as i64],
            )?;
        }
        Ok(())
    }
}

impl crate::spool::RecordSink for CallStore {
    fn insert(&mut self, entries: &[Entry]) {
        CallStore::insert(self, entries);
    }
}

/// A spooled SMDR record as a row (`id` 0: the store numbers it).
pub fn record_of(e: &Entry) -> CallRecord {
    let body = e.frame.get(HEADER_LEN..).unwrap_or_default();
    let (_, line) = split_page_header(body);
    let text = String::from_utf8_lossy(line);
    let raw = text.trim_end_matches(['\r', '\n']).to_owned();
    let mut row = CallRecord {
        id: 0,
        seq: e.seq,
        switch: e.switch,
        received_ms: e.time_ms,
        layout: "unknown".into(),
        start: None,
        call_id: String::new(),
        extension: String::new(),
        trunk: String::new(),
        duration_s: None,
        flag: String::new(),
        digits: String::new(),
        account: String::new(),
        cost: String::new(),
        caller_id: String::new(),
        caller_name: None,
        group: None,
        ring_s: None,
        raw,
    };
    if let Ok(r) = SmdrRecord::parse(line) {
        let y = year::infer(r.month, r.day, e.time_ms);
        row.layout = if r.caller.is_some() { "long" } else { "short" }.into();
        row.start = Some(format!("{y:04}-{:02}-{:02} {}", r.month, r.day, r.start));
        row.call_id = r.call_id;
        row.extension = r.extension;
        row.trunk = r.trunk;
        row.duration_s = Some(r.duration.secs());
        row.flag = r.flag;
        row.digits = r.digits;
        row.account = r.account;
        row.cost = r.cost;
        row.caller_id = r.caller_id;
        if let Some(c) = r.caller {
            row.caller_name = Some(c.caller_name);
            row.group = Some(c.group);
            row.ring_s = Some(c.ring.secs());
        }
    }
    row
}

/// `from`/`to` as the store compares them: `YYYY-MM-DD HH:MM:SS`.
fn time_bound(field: &'static str, value: &str) -> Result<String, QueryError> {
    let bad = || QueryError::Time {
        field,
        value: value.to_owned(),
    };
    let (date, time) = match value.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (value, "00:00:00"),
    };
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    let num = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, mo, da) = match d.as_slice() {
        [y, m, d] => (num(y, 4), num(m, 2), num(d, 2)),
        _ => return Err(bad()),
    };
    let (h, mi, s) = match t.as_slice() {
        [h, m] => (num(h, 2), num(m, 2), Some(0)),
        [h, m, s] => (num(h, 2), num(m, 2), num(s, 2)),
        _ => return Err(bad()),
    };
    match (y, mo, da, h, mi, s) {
        (Some(y), Some(mo), Some(da), Some(h), Some(mi), Some(s))
            if year::valid(y, mo as u8, da as u8) && h < 24 && mi < 60 && s < 60 =>
        {
            Ok(format!("{y:04}-{mo:02}-{da:02} {h:02}:{mi:02}:{s:02}"))
        }
        _ => Err(bad()),
    }
}

/// Runs `q` against the store in `state_dir` (a connection of its own: the writer is never
/// held up). `max` caps the rows when `q.limit` is not given.
pub fn query(state_dir: &Path, q: &CallQuery, max: u32) -> Result<CallPage, QueryError> {
    let limit = match q.limit {
        None => max,
        Some(0) => return Err(QueryError::Limit(0)),
        // A page holds up to PAGE_MAX rows (a CSV download up to its `max`): more is
        // that many, and the page says where the next one starts.
        Some(n) if n > CSV_MAX => return Err(QueryError::Limit(n)),
        Some(n) => n.min(max.max(PAGE_MAX)),
    };
    let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    let q = &CallQuery {
        from: given(&q.from),
        to: given(&q.to),
        extension: given(&q.extension),
        flag: given(&q.flag),
        call_id: given(&q.call_id),
        format: given(&q.format),
        ..q.clone()
    };
    let from = q
        .from
        .as_deref()
        .map(|v| time_bound("from", v))
        .transpose()?;
    let to = q.to.as_deref().map(|v| time_bound("to", v)).transpose()?;
    let path: PathBuf = state_dir.join(FILE);
    if !path.exists() {
        return Ok(CallPage {
            calls: Vec::new(),
            next: None,
        });
    }
    let db = open_db(&path, 2048)?;
    let mut sql = String::from(
        "SELECT id, seq, switch, received_ms, layout, start, call_id, extension, trunk,
            duration_s, flag, digits, account, cost, caller_id, caller_name, grp, ring_s, raw
         FROM calls WHERE id > ?1",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![q.after.unwrap_or(0).into()];
    let mut filter = |clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(v) = from {
        filter("start >=", v.into());
    }
    if let Some(v) = to {
        filter("start <", v.into());
    }
    if let Some(v) = &q.extension {
        filter("extension =", v.clone().into());
    }
    if let Some(v) = &q.flag {
        filter("flag =", v.clone().into());
    }
    if let Some(v) = &q.call_id {
        filter("call_id =", v.clone().into());
    }
    if let Some(v) = q.switch {
        filter("switch =", i64::from(v).into());
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", u64::from(limit) + 1));
    let mut stmt = db.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(CallRecord {
            id: r.get(0)?,
            seq: r.get::<_, Option<i64>>(1)?.unwrap_or(0) as u64,
            switch: r.get(2)?,
            received_ms: r.get::<_, i64>(3)? as u64,
            layout: r.get(4)?,
            start: r.get(5)?,
            call_id: r.get(6)?,
            extension: r.get(7)?,
            trunk: r.get(8)?,
            duration_s: r.get(9)?,
            flag: r.get(10)?,
            digits: r.get(11)?,
            account: r.get(12)?,
            cost: r.get(13)?,
            caller_id: r.get(14)?,
            caller_name: r.get(15)?,
            group: r.get(16)?,
            ring_s: r.get(17)?,
            raw: r.get(18)?,
        })
    })?;
    let mut calls = rows.collect::<Result<Vec<_>, _>>()?;
    let next = (calls.len() > limit as usize).then(|| {
        calls.truncate(limit as usize);
        calls.last().map_or(0, |c| c.id)
    });
    Ok(CallPage { calls, next })
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 18] = [
    "id",
    "switch",
    "received_ms",
    "layout",
    "start",
    "call_id",
    "extension",
    "trunk",
    "duration_s",
    "flag",
    "digits",
    "account",
    "cost",
    "caller_id",
    "caller_name",
    "group",
    "ring_s",
    "raw",
];

/// Records as CSV (RFC 4180, a header line first).
pub fn to_csv(calls: &[CallRecord]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record(CSV_HEADER);
    let opt = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    for c in calls {
        let _ = out.write_record([
            c.id.to_string(),
            c.switch.to_string(),
            c.received_ms.to_string(),
            c.layout.clone(),
            c.start.clone().unwrap_or_default(),
            c.call_id.clone(),
            c.extension.clone(),
            c.trunk.clone(),
            opt(c.duration_s),
            c.flag.clone(),
            c.digits.clone(),
            c.account.clone(),
            c.cost.clone(),
            c.caller_id.clone(),
            c.caller_name.clone().unwrap_or_default(),
            c.group.clone().unwrap_or_default(),
            opt(c.ring_s),
            c.raw.clone(),
        ]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
