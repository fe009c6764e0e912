//! Every Layer2 parser and responder on one Ethernet frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferrolb_speaker::l2::ether::fuzz_frame(data));
