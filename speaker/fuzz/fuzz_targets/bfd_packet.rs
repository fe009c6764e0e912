//! BFD Control packets as received: decoding and its checks, and the round trip of what
//! decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferrolb_speaker::bfd::packet::fuzz_control(data));
