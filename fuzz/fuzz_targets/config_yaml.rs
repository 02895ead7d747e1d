//! The configuration loader (YAML, then every rule of docs/configuration.md) on any text: never a panic; a
//! configuration it accepts is saved and read back the same.
//! (The check itself is `relay_fuzz::config_yaml::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::config_yaml::check(data));
