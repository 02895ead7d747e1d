//! Every committed fuzz seed (`fuzz/corpus/<target>/`) through its target's check, on the
//! stable toolchain: what the fuzzers found once stays fixed with every `cargo test`. The checks
//! are the fuzz targets' own (`fuzz/src/`); `.ci/fuzz` runs the targets themselves under
//! libFuzzer to find new inputs.

#[path = "../fuzz/src/admin_json.rs"]
mod admin_json;
#[path = "../fuzz/src/config_yaml.rs"]
mod config_yaml;
#[path = "../fuzz/src/frame_stream.rs"]
mod frame_stream;
#[path = "../fuzz/src/gateway_json.rs"]
mod gateway_json;
#[path = "../fuzz/src/licence_key.rs"]
mod licence_key;
#[path = "../fuzz/src/link_and_identify.rs"]
mod link_and_identify;
#[path = "../fuzz/src/monitor_password.rs"]
mod monitor_password;
#[path = "../fuzz/src/smdr_record.rs"]
mod smdr_record;
#[path = "../fuzz/src/spool_journal.rs"]
mod spool_journal;

use std::path::PathBuf;

/// Runs every seed of `target`'s corpus through `check`; fails naming each seed that panics.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    seeds.sort();
    assert!(
        !seeds.is_empty(),
        "{target} has no seeds in {}",
        dir.display()
    );
    let failed: Vec<String> = seeds
        .iter()
        .filter(|seed| {
            let data = std::fs::read(seed).unwrap();
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|seed| seed.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: these seeds fail: {failed:#?}");
    println!("{target}: {} seeds", seeds.len());
}

#[test]
fn frame_stream_seeds() {
    replay("frame_stream", frame_stream::check);
}

#[test]
fn link_and_identify_seeds() {
    replay("link_and_identify", link_and_identify::check);
}

#[test]
fn licence_key_seeds() {
    replay("licence_key", licence_key::check);
}

#[test]
fn config_yaml_seeds() {
    replay("config_yaml", config_yaml::check);
}

#[test]
fn admin_json_seeds() {
    replay("admin_json", admin_json::check);
}

#[test]
fn monitor_password_seeds() {
    replay("monitor_password", monitor_password::check);
}

#[test]
fn gateway_json_seeds() {
    replay("gateway_json", gateway_json::check);
}

#[test]
fn smdr_record_seeds() {
    replay("smdr_record", smdr_record::check);
}

#[test]
fn spool_journal_seeds() {
    replay("spool_journal", spool_journal::check);
}
