//! The monitor and export ports' password exchange on any bytes: the relay answers `p` or
//! closes, never panics, and only the exact password is accepted. Each input runs on its own
//! in-memory relay with a paused clock (a wrong password costs a virtual second).
//! (The check itself is `relay_fuzz::monitor_password::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::monitor_password::check(data));
