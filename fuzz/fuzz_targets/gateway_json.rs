//! The WebSocket gateway's translation, both ways. Any text an application sends, of any size
//! up to the message limit, becomes a frame that decodes as the protocol says, or an error
//! naming what is wrong; any frame of its session becomes a message or nothing. Never a panic.
//! (CI runs it with -max_len=131072, the default admin.max_message_kib.)
//! (The check itself is `relay_fuzz::gateway_json::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::gateway_json::check(data));
