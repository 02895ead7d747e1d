//! Counters of what the relay has done, read by status views and tests.

use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted on the client and bypass ports.
    pub connections_accepted: AtomicU64,
    pub sessions_admitted: AtomicU64,
    pub sessions_refused: AtomicU64,
    pub slow_closes: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// Events handed to session queues (events × receiving sessions).
    pub deliveries: AtomicU64,
    /// Events a protocol-3 session could not be given because the SWITCH byte did not fit.
    pub oversize_events: AtomicU64,
    pub requests_forwarded: AtomicU64,
    pub relay_answers: AtomicU64,
    /// Answers whose request had already timed out or whose session had gone.
    pub late_answers: AtomicU64,
    /// SMDR records received from switches.
    pub smdr_records: AtomicU64,
    /// UCD records received from switches.
    pub ucd_records: AtomicU64,
    /// Events the site's link holder numbered on the bus that never reached this relay (each
    /// told to numbered sessions as `G`).
    pub site_events_missed: AtomicU64,
    /// Events this relay numbered beyond the numbers it had reserved on the bus (none should
    /// be: the switch reader waits for its numbers; such numbers could be given again by the
    /// next holder if this relay failed before its next reservation).
    pub numbered_unreserved: AtomicU64,
}
