//! The export spool's journal read back from any bytes, as after a crash or a bad disk: opening
//! never panics, keeps exactly the whole entries before the first damaged one, and appending
//! goes on after them, so the next start reads old and new records in order.
//! (The check itself is `relay_fuzz::spool_journal::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::spool_journal::check(data));
