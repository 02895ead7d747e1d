//! What each fuzz target checks, as a plain function of the input bytes (`check` in the
//! module named after the target): the `cargo fuzz` targets (`fuzz_targets/`) call it under
//! libFuzzer, and the workspace's `tests/fuzz_corpus.rs` replays every committed seed of
//! `corpus/` through it on the stable toolchain, so the corpus is checked by `cargo test` and
//! the long runs are `.ci/fuzz`'s.
//!
//! A structured input is made from the bytes as libFuzzer's `fuzz_target!` does
//! (`Arbitrary::arbitrary_take_rest`), so a seed means the same in both.

pub mod admin_json;
pub mod config_yaml;
pub mod frame_stream;
pub mod gateway_json;
pub mod licence_key;
pub mod link_and_identify;
pub mod monitor_password;
pub mod smdr_record;
pub mod spool_journal;
