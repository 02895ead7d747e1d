//! The licence key text parser and verifier on any text: never a panic; a key that verifies
//! prints back, from its payload, to a key that verifies to the same payload.
//! (The check itself is `relay_fuzz::licence_key::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::licence_key::check(data));
