//! docs/protocol.md §5–6 and docs/behaviour.md §6: monitor ports, the SMDR/UCD export port, passwords.

use std::time::{Duration, Instant};

use client_sim::SimApp;
use relay::config::ExportFormat;
use relay::ports::monitor::MonitorPort;
use testkit::*;
use wire::smdr::{Hms, SmdrRecord};
use wire::{Frame, Kind, LinkMsg};

/// Connects to a monitor port and sends the password; returns the app and the result byte.
async fn monitor(site: &Site, port: MonitorPort, password: &str) -> (SimApp, u8) {
    let addr = site.relay.monitor_addr(port).expect("port on");
    let mut app = SimApp::connect(addr, None).await.unwrap();
    app.send_link(&LinkMsg::Password {
        password: password.into(),
    })
    .await
    .unwrap();
    match app.next_link().await.unwrap() {
        Some(LinkMsg::PasswordResult { result }) => (app, result),
        other => panic!("expected p, got {other:?}"),
    }
}

/// (code, switch, inner frame) of the next `M` frame.
/// One switch; monitors and the export port (in `format`) need the password `s3cret`.
async fn protected_site(format: ExportFormat) -> Site {
    SiteSpec::switches(1)
        .configure(move |c| {
            c.monitor.password = Some("s3cret".into());
            c.export.password_protected = true;
            c.export.format = format;
        })
        .start()
        .await
}

/// An SMDR record in the switch's own layout, in an `S` frame.
fn native_smdr() -> (Vec<u8>, bytes::Bytes) {
    let record = SmdrRecord {
        call_id: "59369".into(),
        extension: "2501".into(),
        trunk: "8503".into(),
        month: 12,
        day: 23,
        start: Hms::from_secs(8 * 3600 + 45 * 60 + 42),
        duration: Hms::from_secs(278),
        flag: "IC".into(),
        digits: "0712345600".into(),
        cost: "0.0".into(),
        caller_id: "0498765478".into(),
        ..SmdrRecord::default()
    }
    .to_line();
    let frame = Frame::build(Kind::Smdr, b'S', 0xFFFF, &record).into_bytes();
    (record, frame)
}

async fn next_m(app: &mut SimApp) -> (u8, u8, Vec<u8>) {
    let f: Frame = within("monitor frame", app.next_frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.kind(), Kind::Monitor);
    (f.code(), f.body()[8], f.body()[9..].to_vec())
}

#[tokio::test]
async fn a_switch_message_monitor_sees_both_directions_in_order() {
    let site = SiteSpec::switches(1).start().await;
    let (mut mon, result) = monitor(&site, MonitorPort::SwitchMessages, "").await;
    assert_eq!(result, 0);
    let mut app = site.admitted(51, 2, CALL, &[]).await;
    app.request(None, b'K', 9, b"\x042201\x042202")
        .await
        .unwrap();
    let answer = within("answer", app.next_non_heartbeat())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.kind(), Kind::Answer);
    site.switch(1).emit_event(b'd', "2201", b"");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (code, switch, inner) = next_m(&mut mon).await;
        assert_eq!(switch, 1);
        // Heartbeats may pass by; the call's frames are what matter.
        if inner[2] != b'L' {
            seen.push((code, inner));
        }
    }
    let link_invoke = site.switch(1).requests()[0].invoke().to_be_bytes();
    let mut request = vec![0, 14, b'R', b'K', link_invoke[0], link_invoke[1]];
    request.extend_from_slice(b"\x042201\x042202");
    let mut answer = vec![0, 15, b'A', b'K', link_invoke[0], link_invoke[1], 0];
    answer.extend_from_slice(b"\x042201\x042202");
    assert_eq!(
        seen[0],
        (b'>', request),
        "the request as the switch got it (INVOKE rewritten)"
    );
    assert_eq!(seen[1], (b'<', answer));
    assert_eq!(
        seen[2],
        (
            b'<',
            vec![0, 9, b'E', b'd', 0xFF, 0xFF, 4, b'2', b'2', b'0', b'1']
        )
    );
}

/// The monitor's order is the link's order: a request is shown before its answer, also when
/// the switch answers faster than the relay's sending thread reaches the monitors.
#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn a_switch_message_monitor_never_shows_an_answer_before_its_request() {
    const REQUESTS: u16 = 3000;
    const APPS: u8 = 6;
    let site = SiteSpec::switches(1).start().await;
    let (mut mon, result) = monitor(&site, MonitorPort::SwitchMessages, "").await;
    assert_eq!(result, 0);
    // The monitor is read all along, so that it keeps up and misses nothing, until it has
    // been quiet for 2 s (heartbeats aside). Requests the relay answers itself (too many in
    // flight) never reach the switch: not every request has a switch answer.
    let watcher = tokio::spawn(async move {
        let mut requested = std::collections::HashSet::new();
        let mut answered = 0;
        let quiet = Duration::from_secs(2);
        while let Ok(Ok(Some(f))) = tokio::time::timeout(quiet, mon.next_non_heartbeat()).await {
            let (code, inner) = (f.code(), &f.body()[9..]);
            if inner[2] == b'L' {
                continue;
            }
            let invoke = u16::from_be_bytes([inner[4], inner[5]]);
            match (code, inner[2]) {
                (b'>', b'R') => assert!(requested.insert(invoke), "INVOKE {invoke} twice"),
                (b'<', b'A') => {
                    assert!(
                        requested.remove(&invoke),
                        "the answer with link INVOKE {invoke} was shown before its request"
                    );
                    answered += 1;
                }
                other => panic!("unexpected monitor frame {other:?}: {f:?}"),
            }
        }
        answered
    });
    // Several applications at once, on more threads than cores: the relay's sending thread
    // is preempted now and then between queueing a request and whatever comes next.
    let mut apps = Vec::new();
    for host in 51..51 + APPS {
        let app = site.admitted(host, 2, CALL, &[]).await;
        apps.push(tokio::spawn(async move {
            let (mut rd, wr) = app.into_split();
            let sender = tokio::spawn(async move {
                for invoke in 1..=REQUESTS {
                    wr.request(None, b'K', invoke, b"\x042201\x042202")
                        .await
                        .unwrap();
                }
                wr
            });
            let mut answers = 0;
            while answers < REQUESTS {
                let f = within("answer", rd.next_frame()).await.unwrap().unwrap();
                if f.kind() == Kind::Answer {
                    answers += 1;
                }
            }
            sender.await.unwrap()
        }));
    }
    for app in apps {
        app.await.unwrap();
    }
    let answered = within("the monitor's view", watcher).await.unwrap();
    assert!(answered >= 1000, "{answered} answers shown");
}

#[tokio::test]
async fn smdr_and_ucd_reach_the_su_monitor_and_the_export_port_as_the_switch_sent_them() {
    let site = SiteSpec::switches(1).start().await;
    let (mut mon, _) = monitor(&site, MonitorPort::SmdrUcd, "").await;
    // Export without protection: records flow from the moment the connection opens.
    let mut export = SimApp::connect(site.relay.monitor_addr(MonitorPort::Export).unwrap(), None)
        .await
        .unwrap();
    let mut app = site.admitted(51, 3, OPERATOR, &[]).await;
    site.wait_until_monitors(1, 1).await;
    let (record, smdr) = native_smdr();
    let ucd = Frame::build(Kind::Ucd, b'U', 0xFFFF, b"UCD GROUP 500 OFFERED 3").into_bytes();
    site.switch(1).send_raw(smdr.clone());
    site.switch(1).send_raw(ucd.clone());
    assert_eq!(next_m(&mut mon).await, (b'S', 1, smdr.to_vec()));
    assert_eq!(next_m(&mut mon).await, (b'U', 1, ucd.to_vec()));
    // The native export: each record's text, then one NUL; a collector slices the columns.
    let mut got = vec![0u8; 121 + 1 + 23 + 1];
    export.read_exact_bytes(&mut got).await.unwrap();
    let records: Vec<&[u8]> = got.split(|b| *b == 0).collect();
    assert_eq!(records, [&record[..], b"UCD GROUP 500 OFFERED 3", b""]);
    assert_eq!(&records[0][9..13], b"2501");
    assert_eq!(&records[0][50..52], b"IC");
    assert_eq!(&records[0][119..], b"\r\n");
    // Applications never see records.
    assert!(app
        .next_frame_within(Duration::from_millis(200))
        .await
        .is_err());
}

#[tokio::test]
async fn a_wrong_password_costs_a_second_and_a_hundred_of_them_slow_no_one() {
    let site = protected_site(ExportFormat::Frames).await;
    let started = Instant::now();
    let (mut refused, result) = monitor(&site, MonitorPort::SwitchMessages, "guess").await;
    assert_eq!(result, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "answered after {:?}",
        started.elapsed()
    );
    assert!(
        refused.next_frame().await.unwrap().is_none(),
        "closed after the refusal"
    );

    let wrong: Vec<_> = (0..100)
        .map(|i| {
            let addr = site.relay.monitor_addr(MonitorPort::SmdrUcd).unwrap();
            tokio::spawn(async move {
                let mut app = SimApp::connect(addr, Some(loopback(100 + (i % 50) as u8)))
                    .await
                    .unwrap();
                app.send_link(&LinkMsg::Password {
                    password: "no".into(),
                })
                .await
                .unwrap();
                app.next_link().await.unwrap()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let (_ok, result) = monitor(&site, MonitorPort::Export, "s3cret").await;
    assert_eq!(result, 0);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "the right password waited {:?}",
        t.elapsed()
    );
    let (_app, id) = site.app(51, 3, CALL, &[]).await;
    assert_eq!(id.result, 0);
    for w in wrong {
        assert_eq!(
            w.await.unwrap(),
            Some(LinkMsg::PasswordResult { result: 1 })
        );
    }
}

#[tokio::test]
async fn protected_export_needs_the_password_before_records_flow() {
    let site = protected_site(ExportFormat::Frames).await;
    let (mut export, result) = monitor(&site, MonitorPort::Export, "s3cret").await;
    assert_eq!(result, 0);
    site.wait_until_monitors(0, 1).await;
    let smdr = Frame::build(Kind::Smdr, b'S', 0xFFFF, b"abcd").into_bytes();
    site.switch(1).send_raw(smdr.clone());
    let mut got = vec![0u8; smdr.len()];
    export.read_exact_bytes(&mut got).await.unwrap();
    assert_eq!(got, smdr.to_vec());
}

#[tokio::test]
async fn a_native_collector_sends_its_password_as_a_line_and_a_wrong_one_is_closed() {
    let site = protected_site(ExportFormat::Native).await;
    let addr = site.relay.monitor_addr(MonitorPort::Export).unwrap();
    let started = Instant::now();
    let mut wrong = SimApp::connect(addr, None).await.unwrap();
    wrong.send_raw(b"guess\r\n").await.unwrap();
    let mut byte = [0u8; 1];
    assert!(
        wrong.read_exact_bytes(&mut byte).await.is_err(),
        "closed without a byte"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let mut collector = SimApp::connect(addr, None).await.unwrap();
    collector.send_raw(b"s3cret\r\n").await.unwrap();
    site.wait_until_monitors(0, 1).await;
    let (record, smdr) = native_smdr();
    site.switch(1).send_raw(smdr);
    let mut got = vec![0u8; record.len() + 1];
    collector.read_exact_bytes(&mut got).await.unwrap();
    assert_eq!(got, [&record[..], b"\0"].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_monitor_gets_a_gap_report_and_applications_miss_nothing() {
    let site = SiteSpec::switches(1).start().await;
    let (slow, _) = monitor(&site, MonitorPort::SwitchMessages, "").await;
    let mut app = site.admitted(51, 3, OPERATOR, &[]).await;
    const N: u32 = 60_000;
    let reader = tokio::spawn(async move {
        let mut n = 0u32;
        while n < N {
            let f = app.next_frame().await.unwrap().unwrap();
            if f.kind() == Kind::Event {
                n += 1;
            }
        }
        n
    });
    // 200-byte bodies: about 13 MB of monitor frames, far more than socket buffers and the
    // monitor's 1 MiB queue hold together.
    let mut batch = bytes::BytesMut::new();
    for i in 0..N {
        let mut body = [0u8; 200];
        body[..4].copy_from_slice(&i.to_be_bytes());
        batch.extend_from_slice(&switch_sim::switch::event_frame(b's', "2201", &body));
        if batch.len() > 32 * 1024 {
            site.switch(1).send_raw(batch.split().freeze());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    site.switch(1).send_raw(batch.freeze());
    assert_eq!(within("application reads all", reader).await.unwrap(), N);
    // The monitor, reading only now, finds a gap report among its frames.
    let mut slow = slow;
    let mut gap = None;
    while gap.is_none() {
        let f = within("gap report", slow.next_frame())
            .await
            .unwrap()
            .unwrap();
        if f.code() == b'G' {
            gap = Some(u32::from_be_bytes(f.body()[..4].try_into().unwrap()));
        }
    }
    assert!(gap.unwrap() > 0);
}
