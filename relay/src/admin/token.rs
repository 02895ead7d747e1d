//! The admin token, on by default. `admin.token` when configured; otherwise the one the relay
//! made at its first start and keeps in `state_dir/admin.token` (mode 0600, so that only the
//! relay's user and root can read it), where `relay ctl` on the same host finds it. Only
//! `admin.require_token: false`, allowed on a loopback address alone, turns it off.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The file the made token is kept in, within `state_dir`.
pub const FILE: &str = "admin.token";

/// Why the token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the admin token from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot keep the admin token in {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no token: delete it and the relay makes a new one, or set admin.token")]
    Empty { path: PathBuf },
}

/// Where the made token of a relay with `state_dir` is kept.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The token requests must carry under `config` (`None`: none asked), made and kept at the
/// first start when none is configured.
pub fn resolve(config: &Config) -> Result<Option<String>, TokenError> {
    if !config.admin.require_token {
        return Ok(None);
    }
    if let Some(token) = &config.admin.token {
        return Ok(Some(token.clone()));
    }
    let path = path(&config.state_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim();
            if token.is_empty() {
                return Err(TokenError::Empty { path });
            }
            Ok(Some(token.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => make(&path).map(Some),
        Err(source) => Err(TokenError::Read { path, source }),
    }
}

/// Reads the token kept in `state_dir`, for a client on the same host.
pub fn read_kept(state_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path(state_dir)).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn make(path: &Path) -> Result<String, TokenError> {
    let write_error = |source| TokenError::Write {
        path: path.to_owned(),
        source,
    };
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| write_error(std::io::Error::other(e)))?;
    let token = data_encoding::BASE32_NOPAD
        .encode(&bytes)
        .to_ascii_lowercase();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().join("state"),
            ..Config::default()
        };
        let made = resolve(&config).unwrap().unwrap();
        assert_eq!(made.len(), 39, "{made}");
        assert_eq!(resolve(&config).unwrap().as_deref(), Some(made.as_str()));
        assert_eq!(read_kept(&config.state_dir).as_deref(), Some(made.as_str()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(&config.state_dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_token_or_none_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            state_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.admin.token = Some("s3cret".into());
        assert_eq!(resolve(&config).unwrap().as_deref(), Some("s3cret"));
        config.admin.require_token = false;
        assert_eq!(resolve(&config).unwrap(), None);
        assert!(!path(dir.path()).exists());
    }
}
