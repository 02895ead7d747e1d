//! The admin API's JSON bodies (users, switches, the licence key) on a running relay: any
//! body gets an answer, never a panic or a server error.
//! (The check itself is `relay_fuzz::admin_json::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::admin_json::check(data));
