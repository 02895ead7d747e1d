use super::*;
use bytes::Bytes;
use wire::smdr::Hms;

fn smdr_entry(seq: u64, ext: &str, flag: &str, received_ms: u64) -> Entry {
    let rec = SmdrRecord {
        call_id: format!("{}", 100 + seq),
        extension: ext.into(),
        trunk: "701".into(),
        month: 12,
        day: 31,
        start: Hms {
            hours: 23,
            minutes: 59,
            seconds: 10,
        },
        duration: Hms::from_secs(75),
        flag: flag.into(),
        digits: "0712345600".into(),
        account: String::new(),
        cost: "0.0".into(),
        caller_id: "0498765478".into(),
        caller: None,
    };
    let line = rec.to_line();
    let mut frame = bytes::BytesMut::new();
    wire::frame::put_header(
        &mut frame,
        wire::frame::Kind::Smdr,
        b'S',
        0xFFFF,
        line.len(),
    );
    frame.extend_from_slice(&line);
    Entry {
        seq,
        time_ms: received_ms,
        switch: 1,
        frame: frame.freeze(),
    }
}

#[test]
fn records_are_stored_once_filtered_paged_and_written_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = CallStore::open(dir.path(), 400).unwrap();
    // 2027-01-01 00:00:05 UTC: the records are dated 31 December, so 2026.
    let new_year = wire::date::days_from_civil(2027, 1, 1) as u64 * 86_400_000 + 5_000;
    let entries = vec![
        smdr_entry(1, "2501", "O", new_year),
        smdr_entry(2, "2502", "IC", new_year),
        smdr_entry(3, "2501", "IC", new_year),
    ];
    store.insert(&entries);
    // Sent again after a crash: not stored twice.
    store.insert(&entries[2..]);
    assert_eq!(store.last_seq().unwrap(), 3);
    let all = query(dir.path(), &CallQuery::default(), PAGE_MAX).unwrap();
    assert_eq!(all.calls.len(), 3);
    assert_eq!(all.next, None);
    let first = &all.calls[0];
    assert_eq!(first.start.as_deref(), Some("2026-12-31 23:59:10"));
    assert_eq!(
        (
            first.layout.as_str(),
            first.extension.as_str(),
            first.flag.as_str()
        ),
        ("short", "2501", "O")
    );
    assert_eq!(first.duration_s, Some(75));
    assert_eq!(first.raw.len(), 119);

    let q = CallQuery {
        extension: Some("2501".into()),
        limit: Some(1),
        ..CallQuery::default()
    };
    let page = query(dir.path(), &q, PAGE_MAX).unwrap();
    assert_eq!(page.calls.iter().map(|c| c.seq).collect::<Vec<_>>(), [1]);
    let q = CallQuery {
        after: page.next,
        ..q
    };
    let page = query(dir.path(), &q, PAGE_MAX).unwrap();
    assert_eq!(page.calls.iter().map(|c| c.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(page.next, None);

    let q = CallQuery {
        from: Some("2026-12-31T23:59:10".into()),
        to: Some("2027-01-01".into()),
        flag: Some("IC".into()),
        ..CallQuery::default()
    };
    let ic = query(dir.path(), &q, PAGE_MAX).unwrap();
    assert_eq!(ic.calls.len(), 2);
    let csv = to_csv(&ic.calls);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], CSV_HEADER.join(","));
    assert!(lines[1].starts_with("2,1,"), "{}", lines[1]);
    assert!(
        lines[1].contains(",2026-12-31 23:59:10,102,2502,701,75,IC,0712345600,,0.0,0498765478,,,,")
    );
}

#[test]
fn a_bad_time_filter_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let q = CallQuery {
        to: Some("31/12/2026".into()),
        ..CallQuery::default()
    };
    let e = query(dir.path(), &q, PAGE_MAX).unwrap_err();
    assert_eq!(
        e.to_string(),
        "to: \"31/12/2026\" is not a time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
    );
}

#[test]
fn text_in_no_known_layout_is_kept_raw() {
    let e = Entry {
        seq: 9,
        time_ms: 0,
        switch: 2,
        frame: Bytes::from_static(b"\x00\x0bSS\xff\xffhello\r\n"),
    };
    let r = record_of(&e);
    assert_eq!(
        (r.layout.as_str(), r.raw.as_str(), r.start),
        ("unknown", "hello", None)
    );
}
