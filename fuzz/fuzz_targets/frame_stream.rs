//! The frame decoder fed an arbitrary byte stream split at arbitrary points: it never panics,
//! and the frames (and the error, if any) are the same however the stream is split, taken one
//! frame at a time or as runs.
//! (The check itself is `relay_fuzz::frame_stream::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::frame_stream::check(data));
