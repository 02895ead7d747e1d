//! Files the monitor programs save (docs/behaviour.md §6): SWMSG0.LOG…SWMSG9.LOG, SMDR00.TXT…SMDR09.TXT,
//! UCD00.TXT…UCD09.TXT, each up to 10 MiB. Each run starts at file 0 and appends to it; when
//! a file is full the next one is emptied and used, wrapping after 9.

use std::io;
use std::path::{Path, PathBuf};

use relay::rotating::{Series, Start};

pub const FILES: usize = 10;
pub const MAX_BYTES: u64 = 10 << 20;

pub fn swmsg_name(i: usize) -> String {
    format!("SWMSG{i}.LOG")
}
pub fn smdr_name(i: usize) -> String {
    format!("SMDR{i:02}.TXT")
}
pub fn ucd_name(i: usize) -> String {
    format!("UCD{i:02}.TXT")
}

/// One series of saved files, written a line at a time.
pub struct RotatingFiles(relay::rotating::RotatingFiles);

impl RotatingFiles {
    /// Opens file 0 of the series in `dir` for appending.
    pub fn open(dir: &Path, name: fn(usize) -> String, max_bytes: u64) -> io::Result<Self> {
        let series = Series {
            name,
            files: FILES,
            max_bytes,
        };
        relay::rotating::RotatingFiles::open(dir, series, 0, Start::Append).map(RotatingFiles)
    }

    /// Appends one line (a newline is added).
    pub fn line(&mut self, line: &str) -> io::Result<()> {
        self.0.write(format!("{line}\n").as_bytes())
    }

    /// The file being written.
    pub fn current(&self) -> PathBuf {
        self.0.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: String) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_default()
    }

    #[test]
    fn a_run_appends_to_file_0_then_empties_each_next_file_and_wraps_after_9() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(smdr_name(0)), "from the last run\n").unwrap();
        std::fs::write(d.join(smdr_name(1)), "old file 1\n").unwrap();
        let mut files = RotatingFiles::open(d, smdr_name, 40).unwrap();
        // 19-byte lines (with the newline): file 0 holds its 18 old bytes and one more line,
        // every other file two lines.
        for i in 0..22 {
            files.line(&format!("record {i:>11}")).unwrap();
        }
        // File 0 took record 0 after the last run's line; records 1-18 filled files 1-9 two by
        // two; then file 0 was emptied for 19 and 20, and file 1 emptied again for 21.
        assert_eq!(
            read(d, smdr_name(2)),
            format!("record {:>11}\nrecord {:>11}\n", 3, 4)
        );
        assert_eq!(
            read(d, smdr_name(9)),
            format!("record {:>11}\nrecord {:>11}\n", 17, 18)
        );
        assert_eq!(
            read(d, smdr_name(0)),
            format!("record {:>11}\nrecord {:>11}\n", 19, 20)
        );
        assert_eq!(read(d, smdr_name(1)), format!("record {:>11}\n", 21));
        assert_eq!(files.current(), d.join("SMDR01.TXT"));
    }

    #[test]
    fn a_new_run_starts_at_file_0_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        {
            let mut f = RotatingFiles::open(d, swmsg_name, 1000).unwrap();
            f.line("first run").unwrap();
        }
        let mut f = RotatingFiles::open(d, swmsg_name, 1000).unwrap();
        f.line("second run").unwrap();
        assert_eq!(read(d, swmsg_name(0)), "first run\nsecond run\n");
        assert_eq!(ucd_name(3), "UCD03.TXT");
    }
}
