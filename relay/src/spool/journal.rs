//! The spool's files in `state_dir/spool/`:
//! - segments `<first seq, 20 digits>.log`, each a run of entries: the frame's length (u32 LE),
//!   the record's number (u64 LE), its arrival time in ms since the epoch (u64 LE), the switch
//!   number (u8), the `S`/`U` frame as the switch sent it, and a CRC-32 of all of that (u32 LE);
//! - `delivered`: the number of the last record a collector acknowledged, as text.
//!
//! Entries are only ever appended. A segment is removed once every record in it was delivered
//! or dropped. An entry cut short or damaged (a crash mid-write, a bad disk) ends its segment:
//! the last segment is cut back to its last whole entry, so appending can go on after it.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// A segment is closed and a new one begun past this size, or once its first record is a day
/// old: retention removes whole segments, so these are its steps.
const SEGMENT_BYTES: u64 = 1 << 20;
const SEGMENT_SPAN_MS: u64 = 86_400_000;
/// Bytes an entry adds to its frame: length, number, time, switch, CRC.
pub const ENTRY_OVERHEAD: usize = 4 + 8 + 8 + 1 + 4;
/// No frame is longer (docs/protocol.md §1); a longer length means a damaged entry.
const FRAME_MAX: usize = 4096;
const DELIVERED: &str = "delivered";

/// One SMDR or UCD record as spooled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub time_ms: u64,
    pub switch: u8,
    /// The `S` or `U` frame, header included.
    pub frame: Bytes,
}

impl Entry {
    /// Bytes the entry takes on disk.
    pub fn stored_len(&self) -> usize {
        self.frame.len() + ENTRY_OVERHEAD
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&(self.frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.time_ms.to_le_bytes());
        out.push(self.switch);
        out.extend_from_slice(&self.frame);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// Record numbers stay below this; a larger one is damage.
const SEQ_LIMIT: u64 = 1 << 62;

/// Reads the entries of one segment's bytes, numbered from `first` on: the whole ones, and
/// where they end. An entry numbered out of order is damage like a bad CRC.
fn decode_all(data: &[u8], first: u64) -> (Vec<Entry>, usize) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut at = 0;
    loop {
        let rest = &data[at..];
        if rest.len() < ENTRY_OVERHEAD {
            break;
        }
        // Cannot fail: `rest` holds at least ENTRY_OVERHEAD (25) bytes here, and the CRC and the 21-byte header follow from `len + ENTRY_OVERHEAD <= rest.len()`.
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if len > FRAME_MAX || rest.len() < len + ENTRY_OVERHEAD {
            break;
        }
        let body = &rest[..len + ENTRY_OVERHEAD - 4];
        let crc = u32::from_le_bytes(rest[body.len()..body.len() + 4].try_into().expect("4"));
        if crc32fast::hash(body) != crc {
            break;
        }
        let seq = u64::from_le_bytes(body[4..12].try_into().expect("8 bytes"));
        let after = entries.last().map_or(first, |e| e.seq + 1);
        if seq < after || seq >= SEQ_LIMIT {
            break;
        }
        entries.push(Entry {
            seq,
            time_ms: u64::from_le_bytes(body[12..20].try_into().expect("8 bytes")),
            switch: body[20],
            frame: Bytes::copy_from_slice(&body[21..]),
        });
        at += len + ENTRY_OVERHEAD;
    }
    (entries, at)
}

/// One segment file, as the spool sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub first_seq: u64,
    /// The last record number in it (or one below its first, while empty).
    pub last_seq: u64,
    pub bytes: u64,
    /// Arrival times of its oldest and newest records.
    pub oldest_ms: u64,
    pub newest_ms: u64,
}

/// What the files held at start.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Records not yet delivered.
    pub pending: u64,
    /// The last record delivered or dropped.
    pub delivered: u64,
    /// The number the next record gets.
    pub next_seq: u64,
    /// Damaged entries found (a segment was cut at each).
    pub damaged: Vec<String>,
}

/// The open spool files.
pub struct Journal {
    dir: PathBuf,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    active: Option<(BufWriter<File>, Segment)>,
    saved_delivered: u64,
}

impl Journal {
    /// Opens (creating) the spool directory and reads back what it holds.
    pub fn open(dir: &Path) -> io::Result<(Journal, Recovered)> {
        fs::create_dir_all(dir)?;
        let delivered = match fs::read_to_string(dir.join(DELIVERED)) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} does not hold a record number ({:?}); remove it to send every spooled record again",
                        dir.join(DELIVERED).display(),
                        text.trim()
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for item in fs::read_dir(dir)? {
            let path = item?.path();
            let first = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(first) = first {
                names.push((first, path));
            }
        }
        names.sort();
        let mut recovered = Recovered {
            delivered,
            next_seq: delivered + 1,
            ..Recovered::default()
        };
        let mut closed = VecDeque::new();
        let count = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let mut data = Vec::new();
            File::open(&path)?.read_to_end(&mut data)?;
            let (entries, whole) = decode_all(&data, first);
            if whole < data.len() {
                recovered.damaged.push(format!(
                    "{}: {} byte(s) after the last whole entry at {whole}",
                    path.display(),
                    data.len() - whole
                ));
                if i + 1 == count {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(whole as u64)?;
                }
            }
            let last_seq = entries.last().map_or(first.saturating_sub(1), |e| e.seq);
            let mut newest_ms = 0;
            let oldest_ms = entries.first().map_or(0, |e| e.time_ms);
            for e in &entries {
                recovered.next_seq = recovered.next_seq.max(e.seq + 1);
                recovered.pending += u64::from(e.seq > delivered);
                newest_ms = newest_ms.max(e.time_ms);
            }
            closed.push_back(Segment {
                path,
                first_seq: first,
                last_seq,
                bytes: whole as u64,
                oldest_ms,
                newest_ms,
            });
        }
        let mut journal = Journal {
            dir: dir.to_owned(),
            closed,
            active: None,
            saved_delivered: delivered,
        };
        journal.release_through(delivered)?;
        Ok((journal, recovered))
    }

    /// Appends entries (numbered in order, after every earlier one); call [`Journal::sync`]
    /// before telling anyone they are kept.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(entries.iter().map(Entry::stored_len).sum());
        for e in entries {
            let full = |a: &Segment| {
                a.bytes >= SEGMENT_BYTES || e.time_ms >= a.oldest_ms + SEGMENT_SPAN_MS
            };
            if self.active.as_ref().is_some_and(|a| full(&a.1)) {
                self.write_active(&mut bytes)?;
                self.sync()?;
                let (_, segment) = self.active.take().expect("active");
                self.closed.push_back(segment);
            }
            if self.active.is_none() {
                let path = self.dir.join(format!("{:020}.log", e.seq));
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                let segment = Segment {
                    path,
                    first_seq: e.seq,
                    last_seq: e.seq - 1,
                    bytes: 0,
                    oldest_ms: e.time_ms,
                    newest_ms: e.time_ms,
                };
                self.active = Some((BufWriter::new(file), segment));
                // The new name must survive a crash with the entries in it.
                File::open(&self.dir)?.sync_all()?;
            }
            let (_, segment) = self.active.as_mut().expect("active");
            e.encode(&mut bytes);
            segment.last_seq = e.seq;
            segment.bytes += e.stored_len() as u64;
            segment.newest_ms = segment.newest_ms.max(e.time_ms);
        }
        self.write_active(&mut bytes)
    }

    /// Every segment, oldest first, the one being written last.
    pub fn segments(&self) -> Vec<Segment> {
        let mut all: Vec<Segment> = self.closed.iter().cloned().collect();
        all.extend(self.active.as_ref().map(|a| a.1.clone()));
        all
    }

    fn write_active(&mut self, bytes: &mut Vec<u8>) -> io::Result<()> {
        if let Some((file, _)) = self.active.as_mut() {
            file.write_all(bytes)?;
            file.flush()?;
        }
        bytes.clear();
        Ok(())
    }

    /// Makes every appended entry durable.
    pub fn sync(&mut self) -> io::Result<()> {
        match self.active.as_mut() {
            Some((file, _)) => file.get_ref().sync_data(),
            None => Ok(()),
        }
    }

    /// Records through `seq` were delivered or dropped: remember it, and remove the segments
    /// that hold nothing else. The number is written without waiting for the disk; after a
    /// crash an older one only means records sent again, never lost.
    pub fn release_through(&mut self, seq: u64) -> io::Result<()> {
        if seq != self.saved_delivered {
            let tmp = self.dir.join("delivered.tmp");
            fs::write(&tmp, format!("{seq}\n"))?;
            fs::rename(&tmp, self.dir.join(DELIVERED))?;
            self.saved_delivered = seq;
        }
        while self.closed.front().is_some_and(|s| s.last_seq <= seq) {
            let segment = self.closed.pop_front().expect("front");
            fs::remove_file(&segment.path)?;
        }
        Ok(())
    }
}

/// Reads records back from the segments, in order, for a collector that is behind the
/// spool's memory. Keeps its place between reads.
#[derive(Default)]
pub struct JournalReader {
    open: Option<(PathBuf, std::io::BufReader<File>)>,
    /// The number of the entry the open file is positioned at.
    at_seq: u64,
}

impl JournalReader {
    /// Up to `max` records numbered `from..=through` (the committed ones), from `segments`.
    /// A record no segment holds any more (delivered or dropped meanwhile) is skipped.
    pub fn read(
        &mut self,
        segments: &[Segment],
        from: u64,
        through: u64,
        max: usize,
    ) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut next = from;
        while out.len() < max && next <= through {
            let Some(seg) = segments
                .iter()
                .find(|s| s.last_seq >= next && s.last_seq >= s.first_seq)
            else {
                break;
            };
            next = next.max(seg.first_seq);
            let positioned =
                matches!(&self.open, Some((p, _)) if *p == seg.path) && self.at_seq <= next;
            if !positioned {
                let file = File::open(&seg.path)?;
                self.open = Some((seg.path.clone(), std::io::BufReader::new(file)));
                self.at_seq = seg.first_seq;
            }
            let (_, file) = self.open.as_mut().expect("open");
            let mut ended = false;
            while out.len() < max && next <= through.min(seg.last_seq) {
                match read_entry(file)? {
                    Some(e) => {
                        self.at_seq = e.seq + 1;
                        if e.seq >= next {
                            next = e.seq + 1;
                            out.push(e);
                        }
                    }
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                // The segment ends short of what it should hold (damaged): go on after it.
                next = seg.last_seq + 1;
                self.open = None;
            }
        }
        Ok(out)
    }
}

/// The next whole entry of `file`, or `None` at its end or at a damaged entry.
fn read_entry(file: &mut impl Read) -> io::Result<Option<Entry>> {
    let mut len = [0u8; 4];
    match file.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > FRAME_MAX {
        return Ok(None);
    }
    let mut rest = vec![0u8; n + ENTRY_OVERHEAD - 4];
    match file.read_exact(&mut rest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut whole = Vec::with_capacity(n + ENTRY_OVERHEAD);
    whole.extend_from_slice(&len);
    whole.extend_from_slice(&rest);
    let (mut entries, _) = decode_all(&whole, 0);
    Ok(entries.pop())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            time_ms: 1_700_000_000_000 + seq,
            switch: 1,
            frame: Bytes::from(format!("\0\x0bSS\u{7f}\u{7f}rec{:04}", seq % 10_000)),
        }
    }

    fn read_all(j: &Journal, from: u64) -> Vec<Entry> {
        JournalReader::default()
            .read(&j.segments(), from, u64::MAX, usize::MAX)
            .unwrap()
    }

    #[test]
    fn entries_come_back_after_reopening_and_delivered_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, r) = Journal::open(dir.path()).unwrap();
        assert_eq!((r.next_seq, r.delivered, r.pending), (1, 0, 0));
        j.append(&(1..=5).map(entry).collect::<Vec<_>>()).unwrap();
        j.sync().unwrap();
        j.release_through(2).unwrap();
        drop(j);
        let (j, r) = Journal::open(dir.path()).unwrap();
        assert_eq!((r.delivered, r.next_seq, r.pending), (2, 6, 3));
        assert_eq!(read_all(&j, 3), (3..=5).map(entry).collect::<Vec<_>>());
        assert!(r.damaged.is_empty());
    }

    #[test]
    fn a_torn_last_entry_is_cut_off_and_appending_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.append(&(1..=3).map(entry).collect::<Vec<_>>()).unwrap();
        drop(j);
        let seg = dir.path().join(format!("{:020}.log", 1));
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut j, r) = Journal::open(dir.path()).unwrap();
        assert_eq!((r.pending, r.next_seq), (2, 3));
        assert_eq!(read_all(&j, 1), (1..=2).map(entry).collect::<Vec<_>>());
        assert_eq!(r.damaged.len(), 1, "{:?}", r.damaged);
        j.append(&[entry(3)]).unwrap();
        drop(j);
        let (j, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(read_all(&j, 1), (1..=3).map(entry).collect::<Vec<_>>());
        assert!(r.damaged.is_empty());
    }

    #[test]
    fn segments_roll_are_read_across_and_delivered_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let per_segment = SEGMENT_BYTES as usize / entry(1).stored_len() + 1;
        let all: Vec<Entry> = (1..=(3 * per_segment as u64)).map(entry).collect();
        j.append(&all).unwrap();
        let files = || fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files(), 3);
        // One reader, in small steps, across the segment boundaries.
        let mut reader = JournalReader::default();
        let mut got = Vec::new();
        while got.len() < all.len() {
            let from = got.len() as u64 + 1;
            let batch = reader.read(&j.segments(), from, u64::MAX, 1000).unwrap();
            assert!(!batch.is_empty());
            got.extend(batch);
        }
        assert_eq!(got, all);
        // Reading stops at what is committed.
        assert_eq!(reader.read(&j.segments(), 5, 7, 100).unwrap(), all[4..7]);
        j.release_through(per_segment as u64 + 1).unwrap();
        // The first segment is gone; the second still holds undelivered records.
        assert_eq!(files(), 3, "two segments and the delivered file");
        drop(j);
        let (j, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.pending, 2 * per_segment as u64 - 1);
        assert_eq!(
            read_all(&j, 0).first().map(|e| e.seq),
            Some(per_segment as u64 + 1)
        );
        assert_eq!(r.next_seq, 3 * per_segment as u64 + 1);
    }
}
