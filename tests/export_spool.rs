//! The export port as call-accounting programs use it, over real TCP: a plain collector of the
//! switch's native SMDR stream, the spool keeping records for a collector that is not there,
//! retention, the call-record store's CSV, and the relay killed with SIGKILL mid-stream.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use relay::calls::{self, CallQuery};
use relay::ports::monitor::MonitorPort;
use switch_sim::smdr::{Layout, Leg, LegRecord, Printer, SmdrOptions};
use switch_sim::{Settings, SimSwitch};
use testkit::process::{free_port, free_ports};
use testkit::{wait_until, wait_until_for, SiteSpec};
use wire::frame::HEADER_LEN;

/// Unix ms of 2026-12-01 00:00:00.
const DAY_START_MS: u64 = 1_796_083_200_000;

/// A day of calls at one switch as it prints them: `n` records, spread over 24 hours, every
/// kind of leg, page headers every 40 records, in the 153-byte form when `long`.
fn simulated_day(n: u32, long: bool) -> Vec<Bytes> {
    let mut printer = Printer::new(SmdrOptions {
        layout: if long { Layout::Long } else { Layout::Short },
        page_every: 40,
    });
    let legs = [
        Leg::Outgoing,
        Leg::Incoming,
        Leg::Abandoned,
        Leg::Transferred,
        Leg::OutgoingTransferred,
        Leg::Forwarded,
    ];
    (0..n)
        .map(|i| {
            let started_ms = DAY_START_MS + u64::from(i) * (86_400_000 / u64::from(n));
            let leg = legs[i as usize % legs.len()];
            let extension = format!("{}", 2201 + i % 32);
            let digits = format!("07123{:05}", i);
            let answered = (leg != Leg::Abandoned).then_some(started_ms + 4_000);
            printer.print(&LegRecord {
                call_id: 1000 + i,
                leg,
                extension: &extension,
                trunk: "701",
                digits: &digits,
                caller_id: "0498765478",
                started_ms,
                answered_ms: answered,
                ended_ms: started_ms + 4_000 + u64::from(i % 600) * 1_000,
                group: if i % 3 == 0 { "5004" } else { "" },
            })
        })
        .collect()
}

/// The switch's text of a record frame (page header included, as the switch sent it).
fn text(frame: &Bytes) -> &[u8] {
    &frame[HEADER_LEN..]
}

/// A plain collector: connects, optionally sends the password line, and splits on NUL.
struct Collector {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Collector {
    fn connect(addr: SocketAddr) -> Collector {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Collector {
            stream,
            pending: Vec::new(),
        }
    }

    /// The next record's bytes (without the NUL), or `None` when the relay closed.
    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == 0) {
                let rest = self.pending.split_off(at + 1);
                let mut record = std::mem::replace(&mut self.pending, rest);
                record.pop();
                return Some(record);
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// The record line of a native record (after any page header), sliced at the columns the
/// switch documents, as a collector of its own would.
fn columns(record: &[u8]) -> BTreeMap<&'static str, String> {
    let line = match record.iter().rposition(|&b| b == b'\n') {
        // A page header ends in CR LF before the record's own line.
        Some(_) => {
            let body = &record[..record.len() - 2];
            let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            &record[start..]
        }
        None => record,
    };
    let field = |from: usize, width: usize| {
        String::from_utf8_lossy(&line[from..from + width])
            .trim()
            .to_owned()
    };
    let mut out = BTreeMap::from([
        ("call_id", field(2, 6)),
        ("extension", field(9, 6)),
        ("trunk", field(16, 9)),
        ("month", field(26, 2)),
        ("day_time", field(29, 11)),
        ("duration", field(41, 8)),
        ("flag", field(50, 2)),
        ("digits", field(53, 18)),
        ("caller_id", field(101, 16)),
    ]);
    if line.len() == 153 {
        out.insert("group", field(137, 6));
        out.insert("ring", field(143, 8));
    }
    assert!(
        line.ends_with(b"\r\n"),
        "{:?}",
        String::from_utf8_lossy(line)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_reaches_a_plain_collector_byte_exact_and_the_store_matches_it() {
    let site = SiteSpec::switches(1).start().await;
    let addr = site.relay.monitor_addr(MonitorPort::Export).unwrap();
    let day = simulated_day(480, true);
    let collecting = tokio::task::spawn_blocking(move || {
        let mut c = Collector::connect(addr);
        (0..480)
            .map(|_| c.next().expect("a record"))
            .collect::<Vec<_>>()
    });
    site.wait_until_monitors(0, 1).await;
    for frame in &day {
        assert!(site.switch(1).send_raw(frame.clone()));
    }
    let received = collecting.await.unwrap();
    for (i, (got, sent)) in received.iter().zip(&day).enumerate() {
        assert_eq!(got.as_slice(), text(sent), "record {i}");
    }
    // Sliced at the documented offsets: every kind of leg, the day's times, the long form.
    let first = columns(&received[0]);
    assert_eq!(
        (
            first["call_id"].as_str(),
            first["extension"].as_str(),
            first["flag"].as_str()
        ),
        ("1000", "2201", "O")
    );
    assert_eq!(first["month"], "12");
    assert_eq!(first["day_time"], "01 00:00:04");
    let flags: std::collections::BTreeSet<String> = received
        .iter()
        .map(|r| columns(r)["flag"].clone())
        .collect();
    assert_eq!(
        flags.into_iter().collect::<Vec<_>>(),
        ["FI", "IA", "IC", "IT", "O", "OT"]
    );
    assert_eq!(columns(&received[1])["group"], "");
    assert_eq!(columns(&received[3])["group"], "5004");
    assert_eq!(columns(&received[3])["digits"], "0712300003");

    // The store has the same records; its CSV equals them field for field.
    let state_dir = site.state_dir.path().to_owned();
    wait_until("480 records stored", || {
        calls::query(&state_dir, &CallQuery::default(), calls::CSV_MAX)
            .unwrap()
            .calls
            .len()
            == 480
    })
    .await;
    let page = calls::query(&state_dir, &CallQuery::default(), calls::CSV_MAX).unwrap();
    let csv = calls::to_csv(&page.calls);
    let mut rows = csv.lines();
    assert_eq!(rows.next().unwrap(), calls::CSV_HEADER.join(","));
    for (row, record) in rows.zip(&received) {
        let c = columns(record);
        let cells: Vec<&str> = row.split(',').collect();
        // start, call_id, extension, trunk, flag, digits, caller_id
        assert_eq!(
            cells[4],
            format!("2026-{}-{}", c["month"], c["day_time"]),
            "{row}"
        );
        assert_eq!(
            [cells[5], cells[6], cells[7], cells[9], cells[10], cells[13]],
            [
                c["call_id"].as_str(),
                c["extension"].as_str(),
                c["trunk"].as_str(),
                c["flag"].as_str(),
                c["digits"].as_str(),
                c["caller_id"].as_str()
            ],
            "{row}"
        );
    }
    site.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_wait_for_the_next_collector_and_retention_drops_are_notified() {
    let site = SiteSpec::switches(1)
        .configure(|c| c.export.spool.max_mb = 1)
        .start()
        .await;
    let addr = site.relay.monitor_addr(MonitorPort::Export).unwrap();
    // No collector: 8 000 records of about 160 bytes are more than the spool's 1 MiB.
    let day = simulated_day(8_000, false);
    for frame in &day {
        assert!(site.switch(1).send_raw(frame.clone()));
    }
    let spool = site.relay.spool().clone();
    wait_until("8 000 records spooled", || {
        spool
            .counters
            .spooled
            .load(std::sync::atomic::Ordering::Relaxed)
            == 8_000
    })
    .await;
    let dropped = spool
        .counters
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    let (pending, bytes) = spool.pending();
    assert_eq!(pending + dropped, 8_000);
    assert!(bytes <= 1 << 20, "{bytes}");
    assert!(dropped > 0);
    site.wait_notice("removed from the export spool (export.spool.max_mb)")
        .await;
    // The next collector gets what was kept: the newest records, in order, byte-exact.
    let received = tokio::task::spawn_blocking(move || {
        let mut c = Collector::connect(addr);
        (0..pending).map(|_| c.next().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (got, sent) in received.iter().zip(&day[dropped as usize..]) {
        assert_eq!(got.as_slice(), text(sent));
    }
    site.relay.shutdown().await;
}

// ---- The relay as a process, killed with SIGKILL -------------------------------------------

/// The relay process; killed (SIGKILL) when dropped.
struct RelayProcess(Child);

impl RelayProcess {
    /// Starts the relay and waits until its switch link is up.
    fn start(bin: &Path, config: &Path) -> RelayProcess {
        let mut child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut log = Vec::new();
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("the relay did not connect:\n{}", log.join("\n")));
            let up = line.contains("All services are running");
            log.push(line);
            if up {
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        RelayProcess(child)
    }

    fn kill(mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The relay's metric `name`, from its admin port, with the token the relay made and kept in
/// `state_dir` (as `relay ctl` on the same host finds it).
fn metric(admin: u16, state_dir: &std::path::Path, name: &str) -> u64 {
    let token = relay::admin::token::read_kept(state_dir).expect("the relay kept its token");
    let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_survives_sigkill_nothing_is_lost_and_repeats_are_only_the_last_unsettled() {
    let bin = testkit::process::relay_binary();
    let switch = SimSwitch::start("127.0.1.91:0".parse().unwrap(), Settings::officeserv(1))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = free_port("127.0.0.1", true);
    let [export, admin] = free_ports("127.0.0.1", 2, &[client, client + 500])[..] else {
        unreachable!("two ports asked for")
    };
    let config = dir.path().join("relay.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{ address: 127.0.0.1, client_port: {client} }}
switches:
  - {{ no: 1, address: 127.0.1.91, port: {port}, easyset_password: \"1234\" }}
monitor: {{ sw_port: null, su_port: null }}
export: {{ port: {export} }}
admin: {{ address: 127.0.0.1, port: {admin} }}
state_dir: {state}
log_dir: {log}
",
            port = switch.addr().port(),
            state = dir.path().join("state").display(),
            log = dir.path().join("log").display(),
        ),
    )
    .unwrap();
    let day = simulated_day(2_000, false);
    let (first, second) = day.split_at(1_000);
    let expected: Vec<&[u8]> = day.iter().map(text).collect();
    let position = |r: &Vec<u8>| expected.iter().position(|e| *e == r.as_slice()).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], export).into();

    // 1. No collector: 1 000 records are spooled, then the relay is killed.
    let relay = RelayProcess::start(&bin, &config);
    for f in first {
        assert!(switch.send_raw(f.clone()));
    }
    wait_until_for("1 000 records spooled", Duration::from_secs(30), || {
        metric(
            admin,
            &dir.path().join("state"),
            "cti_export_records_spooled_total",
        ) == 1_000
    })
    .await;
    relay.kill();

    // 2. Restarted: a collector gets the 1 000, which settle (5 s); then 1 000 more arrive and
    //    the relay is killed again while the collector is in the middle of them.
    let relay = RelayProcess::start(&bin, &config);
    let mut c = Collector::connect(addr);
    let mut received: Vec<Vec<u8>> = (0..1_000).map(|_| c.next().expect("spooled")).collect();
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        metric(
            admin,
            &dir.path().join("state"),
            "cti_export_records_exported_total"
        ),
        1_000
    );
    for f in second {
        assert!(switch.send_raw(f.clone()));
    }
    while received.len() < 1_500 {
        received.push(c.next().expect("records before the kill"));
    }
    relay.kill();
    // What the killed relay had written still arrives; then its socket closes.
    while let Some(r) = c.next() {
        received.push(r);
    }
    let before_restart = received.len();

    // 3. Restarted again: the next collector gets what was not settled, then nothing more.
    let relay = RelayProcess::start(&bin, &config);
    let mut c = Collector::connect(addr);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    while let Some(r) = c.next() {
        received.push(r);
    }
    let distinct: std::collections::BTreeSet<Vec<u8>> = received.iter().cloned().collect();
    let repeated = received.len() - distinct.len();
    println!(
        "spool across SIGKILL: {} records sent by the switch, {} received by collectors \
         ({} before the second kill's restart), {} distinct, {} repeated",
        expected.len(),
        received.len(),
        before_restart,
        distinct.len(),
        repeated
    );
    // Nothing lost, nothing invented.
    let all: std::collections::BTreeSet<Vec<u8>> = expected.iter().map(|r| r.to_vec()).collect();
    assert_eq!(distinct, all);
    // In the switch's order on each connection; the repeat starts at the first record that was
    // not settled when the relay was killed: the 1 000 settled ones never come again.
    let order: Vec<usize> = received.iter().map(position).collect();
    assert!(order[..before_restart].windows(2).all(|w| w[1] == w[0] + 1));
    assert!(order[before_restart..].windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(
        order[before_restart], 1_000,
        "resumed at the first unsettled record"
    );
    assert_eq!(repeated, before_restart - 1_000);
    drop(relay);
}
