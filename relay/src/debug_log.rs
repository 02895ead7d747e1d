//! The debug log (docs/behaviour.md §7): OSL0.LOG…OSL29.LOG in `log_dir`, each up to 5 MiB, then the next
//! (emptied first), wrapping after 29. At start the relay continues in the file with the
//! oldest modification time (a file never written counts as oldest), emptied, so the log
//! from before a restart survives.
//!
//! Lines are handed to a writer thread through a bounded queue and never wait: when the
//! queue is full (a slow or full disk) the line is dropped and counted, and the count is
//! written as soon as a write succeeds again. Memory stays bounded by the queue.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use crate::rotating::{RotatingFiles, Series, Start};

/// How the log is laid out.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    /// Bytes a file may hold before the next one is used.
    pub max_bytes: u64,
    pub files: usize,
    /// Lines that may wait for the writer.
    pub queue: usize,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_owned(),
            max_bytes: 5 << 20,
            files: 30,
            queue: 8192,
        }
    }

    pub fn file(&self, index: usize) -> PathBuf {
        self.dir.join(osl_name(index))
    }

    fn series(&self) -> Series {
        Series {
            name: osl_name,
            files: self.files,
            max_bytes: self.max_bytes,
        }
    }

    /// The file to continue in: the one modified longest ago (never written counts as oldest).
    pub fn oldest(&self) -> usize {
        let mut best: Option<(SystemTime, usize)> = None;
        for i in 0..self.files {
            let modified = std::fs::metadata(self.file(i)).and_then(|m| m.modified());
            match modified {
                Err(_) => return i,
                Ok(t) => {
                    if best.is_none_or(|(b, _)| t < b) {
                        best = Some((t, i));
                    }
                }
            }
        }
        best.map_or(0, |(_, i)| i)
    }
}

/// The sending side of the debug log; cheap to clone.
#[derive(Clone)]
pub struct DebugLog {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl DebugLog {
    /// Opens the log (creating `dir`) and starts its writer thread.
    pub fn start(layout: Layout) -> io::Result<DebugLog> {
        std::fs::create_dir_all(&layout.dir)?;
        let files =
            RotatingFiles::open(&layout.dir, layout.series(), layout.oldest(), Start::Empty)?;
        let (tx, rx) = sync_channel(layout.queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            files,
            dropped: dropped.clone(),
        };
        std::thread::Builder::new()
            .name("debug-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(DebugLog { tx, dropped })
    }

    /// Queues one line (a newline is added if missing); never blocks.
    pub fn line(&self, mut line: Vec<u8>) {
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped and not yet reported in the log.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn osl_name(index: usize) -> String {
    format!("OSL{index}.LOG")
}

struct Writer {
    files: RotatingFiles,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Vec<u8>>) {
        while let Ok(line) = rx.recv() {
            let lost = self.dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                let note =
                    format!("[{lost} debug log line(s) dropped: the disk was slow or full]\n");
                if self.files.write(note.as_bytes()).is_err() {
                    self.dropped.fetch_add(lost, Ordering::Relaxed);
                }
            }
            if self.files.write(&line).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = self.files.flush();
    }
}

/// A `tracing` writer that sends each formatted event to the debug log as one line.
pub struct LineWriter {
    log: DebugLog,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.log.line(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DebugLog {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            log: self.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn layout(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_owned(),
            max_bytes: 100,
            files: 30,
            queue: 10_000,
        }
    }

    /// Waits up to 10 s: the writer thread may be slow to run on a loaded machine.
    fn wait_for(mut cond: impl FnMut() -> bool) {
        for _ in 0..5000 {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("timed out");
    }

    #[test]
    fn files_fill_in_turn_and_wrap_after_29_emptying_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let log = DebugLog::start(layout(dir.path())).unwrap();
        // 49-byte lines: two per 100-byte file; 31 files' worth wraps to OSL0, emptied first.
        for i in 0..62 {
            log.line(format!("{i:>48}\n").into_bytes());
        }
        let l = layout(dir.path());
        wait_for(|| std::fs::read_to_string(l.file(0)).is_ok_and(|s| s.contains("61")));
        let read = |i| std::fs::read_to_string(l.file(i)).unwrap();
        let words = |i| {
            read(i)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            words(0),
            ["60", "61"],
            "OSL0 emptied and reused after OSL29"
        );
        assert_eq!(words(1), ["2", "3"]);
        assert_eq!(words(29), ["58", "59"]);
        assert!(!l.file(30).exists());
    }

    #[test]
    fn a_restart_continues_in_the_oldest_file_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let l = layout(dir.path());
        let base = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..30 {
            std::fs::write(l.file(i), format!("before restart {i}\n")).unwrap();
            // OSL7 is the oldest; the others follow in index order after it.
            let age = if i == 7 { 0 } else { 10 + i as u64 };
            std::fs::File::options()
                .write(true)
                .open(l.file(i))
                .unwrap()
                .set_modified(base + Duration::from_secs(age))
                .unwrap();
        }
        assert_eq!(l.oldest(), 7);
        let log = DebugLog::start(l.clone()).unwrap();
        log.line(b"after restart".to_vec());
        wait_for(|| std::fs::read_to_string(l.file(7)).is_ok_and(|s| !s.is_empty()));
        assert_eq!(
            std::fs::read_to_string(l.file(7)).unwrap(),
            "after restart\n"
        );
        assert_eq!(
            std::fs::read_to_string(l.file(6)).unwrap(),
            "before restart 6\n"
        );
        assert_eq!(
            std::fs::read_to_string(l.file(8)).unwrap(),
            "before restart 8\n"
        );
        // A directory with gaps starts at the first file never written.
        let sparse = tempfile::tempdir().unwrap();
        let s = layout(sparse.path());
        std::fs::write(s.file(0), "x").unwrap();
        std::fs::write(s.file(2), "x").unwrap();
        assert_eq!(s.oldest(), 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts_lines_then_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = layout(dir.path());
        l.queue = 4;
        // Large enough for every line in file 0: 100 001 short lines are about 1.1 MB, and
        // when the writer keeps up few are dropped.
        l.max_bytes = 16 << 20;
        let log = DebugLog::start(l.clone()).unwrap();
        // Far more lines than the queue holds, faster than any disk: some must be dropped,
        // and none may block this thread.
        for i in 0..100_000 {
            log.line(format!("line {i}").into_bytes());
        }
        log.line(b"line last".to_vec());
        // Every one of the 100 001 lines ends up written, or dropped and counted (in a note in
        // the file, or still pending in the counter).
        let accounted = || {
            let text = std::fs::read_to_string(l.file(0)).unwrap_or_default();
            let written = text.lines().filter(|x| x.starts_with("line ")).count() as u64;
            let reported: u64 = text
                .lines()
                .filter_map(|x| x.strip_prefix('[')?.split(' ').next()?.parse::<u64>().ok())
                .sum();
            written + reported + log.dropped()
        };
        wait_for(|| accounted() == 100_001);
    }
}
