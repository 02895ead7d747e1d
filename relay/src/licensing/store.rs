//! The registered licence key, kept as text in `state_dir`, replaced atomically (temporary
//! file, fsync, rename) so a reader sees the old key or the new one, never a mix.

use std::io::Write;
use std::path::Path;

pub const FILE: &str = "license.key";

pub fn read(state_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(state_dir.join(FILE)) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn write(state_dir: &Path, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let temp = state_dir.join(format!(".{FILE}.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&temp)?;
        writeln!(f, "{}", text.trim())?;
        f.sync_all()?;
    }
    std::fs::rename(&temp, state_dir.join(FILE))?;
    if let Ok(dir) = std::fs::File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
