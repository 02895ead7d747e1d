//! The configuration loader (YAML, then every rule of docs/configuration.md) on any text: never a panic; a
//! configuration it accepts is saved and read back the same, and an edit of it made in its own
//! text (as an admin edit is saved, keeping the comments) reads back as the edited configuration
//! or is refused, never a panic.

use relay::Config;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text) else {
        return;
    };
    if config.validate().is_ok() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("relay.yaml");
        config
            .save_atomic(&path)
            .expect("an accepted configuration saves");
        let saved = std::fs::read_to_string(&path).expect("saved");
        assert_eq!(Config::parse(&saved).ok().as_ref(), Some(&config));
    }
    let mut edited = config.clone();
    edited.default_switch = edited.default_switch % 8 + 1;
    edited.users.pop();
    if let Some(first) = edited.switches.first_mut() {
        first.enabled = !first.enabled;
    }
    if let Some(kept) = relay::config::file_edit::edited_text(text, &edited) {
        assert_eq!(Config::parse(&kept).ok().as_ref(), Some(&edited));
    }
}
