//! Reading a configuration file (parse, then validate: nothing partial is returned) and
//! writing one back atomically, keeping the operator's comments where it can.

use std::path::{Path, PathBuf};

use super::{file_edit, Config, ConfigError};

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("the configuration file {path} breaks {} rule(s):\n{}", .errors.len(), render(.errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<ConfigError>,
    },
}

fn render(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads, parses and validates a file; nothing partial is ever returned.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Config::parse(&text).map_err(|source| LoadError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.validate().map_err(|errors| LoadError::Invalid {
            path: path.to_owned(),
            errors,
        })?;
        Ok(config)
    }

    /// Parses YAML text (an empty document is the all-defaults configuration), unvalidated.
    pub fn parse(text: &str) -> Result<Config, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text)
    }

    /// Writes the configuration to `path` atomically: a temporary file beside it, fsynced,
    /// then renamed over it (and the directory fsynced). A failure leaves the old file whole.
    /// The operator's file is edited in place ([`file_edit`]): only the sections and list
    /// entries that changed are rewritten, every comment and the rest of the layout stay. Where
    /// that cannot be done safely (a layout it does not follow), the file is rewritten from the
    /// configuration without comments, and says so in its first lines. Either way the file it
    /// replaces is kept whole as `<path>.bak`.
    pub fn save_atomic(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let backup = backup_path(path);
        let edited = std::fs::read_to_string(path)
            .ok()
            .and_then(|original| file_edit::edited_text(&original, self));
        let text = match edited {
            Some(text) => text,
            None => format!(
                "# Written by the relay's admin interface, which rewrote this file without comments\n\
                 # (its layout could not be kept). The file it replaced, comments and all, is {}.\n{}",
                backup.display(),
                serde_yaml::to_string(self).map_err(std::io::Error::other)?
            ),
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("the configuration path has no file name"))?;
        let temp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        let written = (|| {
            if path.exists() {
                std::fs::copy(path, &backup)?;
            }
            let mut f = std::fs::File::create(&temp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&temp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Where [`Config::save_atomic`] keeps the file it replaces: `relay.yaml` → `relay.yaml.bak`.
pub fn backup_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    name.into()
}
