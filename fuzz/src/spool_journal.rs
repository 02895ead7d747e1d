//! The export spool's journal read back from any bytes, as after a crash or a bad disk: opening
//! never panics, keeps exactly the whole entries before the first damaged one, and appending
//! goes on after them, so the next start reads old and new records in order.

use bytes::Bytes;
use relay::spool::journal::{Entry, Journal, JournalReader};

pub fn check(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join(format!("{:020}.log", 1)), data).expect("written");
    let Ok((mut journal, recovered)) = Journal::open(dir.path()) else {
        return;
    };
    let read = |j: &Journal| {
        JournalReader::default()
            .read(&j.segments(), 0, u64::MAX, usize::MAX)
            .expect("readable")
    };
    let before = read(&journal);
    assert_eq!(before.len() as u64, recovered.pending);
    assert!(before.windows(2).all(|w| w[0].seq < w[1].seq));
    let next = Entry {
        seq: recovered.next_seq,
        time_ms: 1,
        switch: 1,
        frame: Bytes::from_static(b"\x00\x0bSS\xff\xffhello\r\n"),
    };
    journal
        .append(std::slice::from_ref(&next))
        .expect("appended");
    journal.sync().expect("synced");
    drop(journal);
    let (journal, again) = Journal::open(dir.path()).expect("reopened");
    let after = read(&journal);
    assert!(again.damaged.is_empty(), "{:?}", again.damaged);
    assert_eq!(after.last(), Some(&next));
    assert_eq!(&after[..after.len() - 1], &before[..]);
}
