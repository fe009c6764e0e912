//! The whole BGP receive path: framing and decoding of a byte stream, for a 2-octet
//! IPv4-only session and a 4-octet dual-stack one, with the codec's invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferrolb_speaker::bgp::codec::fuzz_message(data));
