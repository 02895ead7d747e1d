//! The registered licence key, kept as text in `state_dir`, replaced atomically (temporary
//! file, fsync, rename) so a reader sees the old key or the new one, never a mix.

use std::io::Write;
use std::path::Path;

pub const FILE: &str = "license.key";
/// The key that was in force before `FILE` was replaced by a key that could not be checked
/// yet (bound to a switch that was not connected); it stays in force until the new one holds.
pub const PREVIOUS: &str = "license.previous.key";

pub fn read(state_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(state_dir.join(FILE)) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn read_previous(state_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_dir.join(PREVIOUS)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Writes `text` as the registered key, keeping the key it replaces as the previous one.
pub fn write_keeping_previous(state_dir: &Path, text: &str) -> std::io::Result<()> {
    if let Some(old) = read(state_dir)?.filter(|old| old != text.trim()) {
        write_file(state_dir, PREVIOUS, &old)?;
    }
    write(state_dir, text)
}

/// Forgets the previous key (the registered one now holds).
pub fn remove_previous(state_dir: &Path) {
    let _ = std::fs::remove_file(state_dir.join(PREVIOUS));
}

pub fn write(state_dir: &Path, text: &str) -> std::io::Result<()> {
    write_file(state_dir, FILE, text)
}

fn write_file(state_dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let temp = state_dir.join(format!(".{name}.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&temp)?;
        writeln!(f, "{}", text.trim())?;
        f.sync_all()?;
    }
    std::fs::rename(&temp, state_dir.join(name))?;
    if let Ok(dir) = std::fs::File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
