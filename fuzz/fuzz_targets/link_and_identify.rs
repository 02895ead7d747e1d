//! Link-control messages (identify, open, MAC, password, close …) and call-processing
//! messages decoded from any frame: never a panic; whatever decodes encodes back to a frame
//! that decodes to the same message.
//! (The check itself is `relay_fuzz::link_and_identify::check`.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_fuzz::link_and_identify::check(data));
