//! The native SMDR record parser and the page-header split on any bytes: never a panic; a
//! record that parses writes back to a line of the same length that parses to the same record.
//! (The check itself is `relay_fuzz::smdr_record::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::smdr_record::check(data));
