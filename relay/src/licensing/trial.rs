//! The trial period's start: recorded in `state_dir` at the first start, created atomically
//! (written aside, then linked into place only if absent), never rewritten afterwards.

use std::io::Write;
use std::path::Path;

pub const FILE: &str = "trial-start";

/// The trial start (Unix ms), recording `now_ms` if this is the first start.
pub fn start(state_dir: &Path, now_ms: u64) -> std::io::Result<u64> {
    std::fs::create_dir_all(state_dir)?;
    let path = state_dir.join(FILE);
    if let Some(ms) = read(&path)? {
        return Ok(ms);
    }
    let temp = state_dir.join(format!(".{FILE}.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&temp)?;
        writeln!(f, "{now_ms}")?;
        f.sync_all()?;
    }
    // hard_link fails if the file appeared meanwhile; then the other writer's start stands.
    let linked = std::fs::hard_link(&temp, &path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(now_ms),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| std::io::Error::other("the trial start file is empty"))
        }
        Err(e) => Err(e),
    }
}

fn read(path: &Path) -> std::io::Result<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold a start time: {:?}",
                    path.display(),
                    text.trim()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
