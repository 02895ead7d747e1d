//! The configuration loader (YAML, then every rule of docs/configuration.md) on any text: never a panic; a
//! configuration it accepts is saved and read back the same.

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
}
