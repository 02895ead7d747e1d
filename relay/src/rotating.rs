//! A series of files written in turn, for logs an operator keeps (the debug log, the files the
//! monitor programs save): when a write would take the current file past its size, the next
//! file is emptied and used, wrapping after the last.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How a series is named and sized.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    /// The name of file `i` (`OSL3.LOG`, `SMDR03.TXT`).
    pub name: fn(usize) -> String,
    pub files: usize,
    /// Bytes a file may hold before the next one is used.
    pub max_bytes: u64,
}

/// Whether the first file is continued or started afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Append to what the file holds.
    Append,
    /// Empty it first.
    Empty,
}

/// One series of rotating files being written.
pub struct RotatingFiles {
    dir: PathBuf,
    series: Series,
    index: usize,
    file: File,
    size: u64,
}

impl RotatingFiles {
    /// Opens file `index` of `series` in `dir` (created if missing).
    pub fn open(dir: &Path, series: Series, index: usize, start: Start) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join((series.name)(index));
        let file = match start {
            Start::Append => OpenOptions::new().create(true).append(true).open(&path)?,
            Start::Empty => empty(&path)?,
        };
        let size = file.metadata()?.len();
        Ok(RotatingFiles {
            dir: dir.to_owned(),
            series,
            index,
            file,
            size,
        })
    }

    /// Writes `bytes` whole into the current file, or into the next one (emptied first) when
    /// they would take the current one past its size. A file is never left empty for lack of
    /// room: bytes larger than a file go whole into the current one.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let len = bytes.len() as u64;
        if self.size > 0 && self.size + len > self.series.max_bytes {
            self.index = (self.index + 1) % self.series.files;
            self.file = empty(&self.current())?;
            self.size = 0;
        }
        self.file.write_all(bytes)?;
        self.size += len;
        Ok(())
    }

    /// The file being written.
    pub fn current(&self) -> PathBuf {
        self.dir.join((self.series.name)(self.index))
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn empty(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
}
