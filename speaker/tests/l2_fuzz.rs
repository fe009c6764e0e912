//! Bounded, deterministic fuzzing of the Layer2 parsers: 200k frames, random and
//! mutated from valid ones (Linux captures and our own builds), through
//! `ether::fuzz_frame`, which runs every parser and responder and checks that every
//! reply we build parses back. A panic anywhere fails the test. On top of "no
//! panic", two oracles:
//! - a single changed byte in the addresses or ICMPv6 part of a valid NDP frame is
//!   always rejected (the checksum covers it);
//! - for NDP options, an independent model of RFC 4861's option rules predicts
//!   exactly whether a solicitation parses, and with which link-layer address.
//!
//! The generator is a seeded xorshift, so a failure reproduces; the seed and the
//! iteration are in the panic message.

use std::net::Ipv6Addr;

use ferrolb_speaker::l2::arp;
use ferrolb_speaker::l2::ether::{MacAddr, fuzz_frame};
use ferrolb_speaker::l2::ndp::{self, Message, NdpError};

const SEED: u64 = 0x5eed_f3e0_1b00_0001;

/// xorshift64* (Vigna): small, fast, good enough to pick bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    /// Mostly boundary values, which is where length bugs hide.
    fn interesting(&mut self) -> u8 {
        const VALUES: [u8; 12] = [0, 1, 2, 3, 4, 31, 32, 33, 127, 128, 254, 255];
        if self.below(2) == 0 {
            VALUES[self.below(VALUES.len())]
        } else {
            self.byte()
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const GUA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0xa);
const GUA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0xb);
const LL_B: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xb);

/// Valid frames of every kind: captured from Linux (see l2_arp.rs / l2_ndp.rs) and
/// built by the codecs.
fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let vip4 = std::net::Ipv4Addr::new(198, 51, 100, 200);
    let vip6 = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x200);
    let arp = vec![
        hex("ffffffffffff02000000000a0806000108000604000102000000000ac633640a000000000000c633640b"),
        hex("02000000000a02000000000b0806000108000604000202000000000bc633640b02000000000ac633640a"),
        hex("ffffffffffff02000000000a0806000108000604000102000000000a00000000000000000000c633640b"),
        arp::gratuitous_request(MAC_B, vip4),
        arp::gratuitous_reply(MAC_B, vip4),
    ];
    let ndp = vec![
        hex(
            "3333ff00000b02000000000a86dd6000000000203aff20010db800510000000000000000000aff0200000000000000000001ff00000b87001b610000000020010db800510000000000000000000b010102000000000a",
        ),
        hex(
            "02000000000a02000000000b86dd6000000000203aff20010db800510000000000000000000b20010db800510000000000000000000a8800895a6000000020010db800510000000000000000000b020102000000000b",
        ),
        hex(
            "02000000000b02000000000a86dd6000000000203afffe80000000000000000000fffe00000a20010db800510000000000000000000b87001be50000000020010db800510000000000000000000b010102000000000a",
        ),
        hex(
            "02000000000a02000000000b86dd6000000000183aff20010db800510000000000000000000bfe80000000000000000000fffe00000a8800ddf74000000020010db800510000000000000000000b",
        ),
        hex(
            "3333ff00000b02000000000a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff00000b8700ea010000000020010db800510000000000000000000b0e01a274815a30ae",
        ),
        hex(
            "02000000000b02000000000a86dd6000000000183aff20010db800510000000000000000000a20010db800510000000000000000000b8700ee6e0000000020010db800510000000000000000000b",
        ),
        ndp::unsolicited_advertisement(MAC_B, LL_B, vip6),
    ];
    (arp, ndp)
}

/// A frame of random bytes; half the time with a plausible ARP or IPv6/ICMPv6
/// header in front, so the deeper checks are reached, not just the ethertype.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.below(8) == 0 {
        rng.below(2200)
    } else {
        rng.below(100)
    };
    let mut frame = rng.bytes(len);
    match rng.below(4) {
        0 if frame.len() >= 22 => {
            frame[12..22].copy_from_slice(&[
                0x08,
                0x06,
                0,
                1,
                8,
                0,
                6,
                4,
                0,
                1 + rng.below(2) as u8,
            ]);
        }
        1 if frame.len() >= 55 => {
            let payload = (frame.len() - 54) as u16;
            frame[12..14].copy_from_slice(&[0x86, 0xdd]);
            frame[14] = 0x60;
            frame[18..20].copy_from_slice(&payload.to_be_bytes());
            frame[20..22].copy_from_slice(&[58, 255]);
            frame[54] = 135 + rng.below(2) as u8;
        }
        _ => {}
    }
    frame
}

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !frame.is_empty() => {
                let at = rng.below(frame.len());
                frame[at] ^= 1 << rng.below(8);
            }
            1 | 2 if !frame.is_empty() => {
                let at = rng.below(frame.len());
                frame[at] = rng.interesting();
            }
            3 => frame.truncate(rng.below(frame.len() + 1)),
            4 => {
                let extra = rng.below(40);
                frame.extend(rng.bytes(extra));
            }
            5 if !frame.is_empty() => {
                let at = rng.below(frame.len());
                frame.insert(at, rng.interesting());
            }
            6 if !frame.is_empty() => {
                frame.remove(rng.below(frame.len()));
            }
            _ => {}
        }
    }
}

#[test]
fn random_frames_never_panic() {
    let mut rng = Rng(SEED);
    for i in 0..50_000 {
        let frame = random_frame(&mut rng);
        run_all(&frame, i);
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng(SEED ^ 1);
    let (arp_seeds, ndp_seeds) = seeds();
    let all: Vec<_> = arp_seeds.iter().chain(&ndp_seeds).collect();
    for seed in &all {
        run_all(seed, usize::MAX);
    }
    let mut outcomes = [0_usize; 2];
    let mut answered = 0;
    for i in 0..100_000 {
        let mut frame = all[rng.below(all.len())].clone();
        mutate(&mut rng, &mut frame);
        run_all(&frame, i);
        let parsed = arp::parse(&frame).is_ok() || ndp::parse(&frame).is_ok();
        outcomes[usize::from(parsed)] += 1;
        answered += usize::from(answers(&frame));
    }
    // Both outcomes occur: the mutations are neither all fatal nor all harmless, and
    // many mutated frames get as far as building an answer.
    assert!(outcomes.iter().all(|&n| n > 1_000), "{outcomes:?}");
    assert!(answered > 1_000, "{answered}");
}

#[test]
fn any_single_byte_change_under_the_checksum_is_rejected() {
    // Exhaustive over positions and values: bytes 22.. are the IPv6 addresses (in the
    // pseudo-header) and the ICMPv6 message. One changed byte always changes the
    // one's complement sum, so the frame must not parse, whatever else it breaks.
    let (_, ndp_seeds) = seeds();
    let mut checked = 0;
    for seed in &ndp_seeds {
        assert!(ndp::parse(seed).is_ok());
        for at in 22..seed.len() {
            for value in 0..=255_u8 {
                if value == seed[at] {
                    continue;
                }
                let mut frame = seed.clone();
                frame[at] = value;
                assert!(
                    ndp::parse(&frame).is_err(),
                    "byte {at} set to {value:#04x} in {seed:02x?} still parses"
                );
                fuzz_frame(&frame);
                checked += 1;
            }
        }
    }
    assert!(checked > 50_000);
}

/// What RFC 4861 says about an NS's option area, computed the obvious way.
#[derive(Debug, PartialEq)]
enum Expected {
    Valid(Option<MacAddr>),
    Truncated,
    ZeroLength,
    Overflow,
    LinkLayerLength,
}

fn model(area: &[u8]) -> Expected {
    let mut at = 0;
    let mut lla = None;
    while at < area.len() {
        if area.len() - at < 2 {
            return Expected::Truncated;
        }
        let len = area[at + 1] as usize * 8;
        if len == 0 {
            return Expected::ZeroLength;
        }
        if at + len > area.len() {
            return Expected::Overflow;
        }
        if area[at] == 1 && lla.is_none() {
            if len != 8 {
                return Expected::LinkLayerLength;
            }
            lla = Some(MacAddr(area[at + 2..at + 8].try_into().unwrap()));
        }
        at += len;
    }
    Expected::Valid(lla)
}

fn observed(frame: &[u8]) -> Expected {
    match ndp::parse(frame) {
        Ok(Message::Solicitation(ns)) => Expected::Valid(ns.source_lla),
        Ok(other) => panic!("an NS parsed as {other:?}"),
        Err(NdpError::OptionTruncated { .. }) => Expected::Truncated,
        Err(NdpError::OptionLengthZero { .. }) => Expected::ZeroLength,
        Err(NdpError::OptionOverflow { .. }) => Expected::Overflow,
        Err(NdpError::LinkLayerOptionLength { .. }) => Expected::LinkLayerLength,
        Err(other) => panic!("unexpected rejection {other}"),
    }
}

/// An NS from GUA_A for GUA_B with `area` as options and a correct checksum, so the
/// options are all that can be wrong.
fn ns_with_options(area: &[u8]) -> Vec<u8> {
    let ns = ndp::NeighborSolicitation {
        eth_dst: ndp::solicited_node_mac(GUA_B),
        eth_src: MAC_A,
        src: GUA_A,
        dst: ndp::solicited_node_multicast(GUA_B),
        target: GUA_B,
        source_lla: None,
    };
    let mut frame = ndp::build_solicitation(&ns);
    frame.extend_from_slice(area);
    let payload = (frame.len() - 54) as u16;
    frame[18..20].copy_from_slice(&payload.to_be_bytes());
    frame[56..58].copy_from_slice(&[0, 0]);
    let sum = ndp::checksum(ns.src, ns.dst, &frame[54..]);
    frame[56..58].copy_from_slice(&sum.to_be_bytes());
    frame
}

#[test]
fn options_agree_with_a_model_of_rfc_4861() {
    let mut rng = Rng(SEED ^ 2);
    let mut kinds = std::collections::HashMap::new();
    for i in 0..50_000 {
        // A few options with boundary lengths, then sometimes a ragged tail.
        let mut area = Vec::new();
        for _ in 0..rng.below(4) {
            let kind = [1, 2, 14, 99][rng.below(4)];
            // Mostly short options; long ones are covered exhaustively below and
            // cost checksum time in a debug build.
            let units = if rng.below(4) == 0 {
                rng.interesting()
            } else {
                rng.below(4) as u8
            };
            let body = if rng.below(4) == 0 {
                rng.below(300)
            } else {
                (usize::from(units) * 8).saturating_sub(2)
            };
            area.push(kind);
            area.push(units);
            // Random where a link-layer address would be, then cheap filler.
            area.extend(rng.bytes(body.min(6)));
            area.resize(area.len() + body.saturating_sub(6), rng.byte());
        }
        if rng.below(8) == 0 {
            let tail = rng.below(3);
            area.extend(rng.bytes(tail));
        }
        let frame = ns_with_options(&area);
        let expected = model(&area);
        assert_eq!(
            observed(&frame),
            expected,
            "iteration {i}, area {area:02x?}"
        );
        *kinds
            .entry(format!("{expected:?}").chars().take(5).collect::<String>())
            .or_insert(0) += 1;
        fuzz_frame(&frame);
    }
    // Every outcome of the model was exercised.
    assert_eq!(kinds.len(), 5, "{kinds:?}");
}

#[test]
fn every_option_length_byte_in_every_position() {
    // Exhaustive: each length value 0..=255 for an unknown option, in areas of the
    // sizes that matter (exact fit for small lengths, 8 bytes, 256 and 2040 bytes).
    for units in 0..=255_u8 {
        for size in [8, 16, 248, 256, 264, 2040] {
            let mut area = vec![0_u8; size];
            area[0] = 99;
            area[1] = units;
            let frame = ns_with_options(&area);
            assert_eq!(observed(&frame), model(&area), "units {units}, size {size}");
        }
    }
}

/// Whether we answer `frame` as the host it is addressed to, owning every address
/// (the identity `fuzz_frame` takes).
fn answers(frame: &[u8]) -> bool {
    let Some(dst) = frame.get(..6) else {
        return false;
    };
    let us = MacAddr(dst.try_into().unwrap());
    let us = if us.is_unicast() {
        us
    } else {
        MacAddr([2, 0, 0, 0, 0, 1])
    };
    let link_local = "fe80::1".parse().unwrap();
    match (arp::parse(frame), ndp::parse(frame)) {
        (Ok(asked), _) => arp::reply_for(&asked, us, |_| true).is_some(),
        (_, Ok(Message::Solicitation(ns))) => {
            ndp::reply_for(&ns, us, link_local, |_| true).is_some()
        }
        _ => false,
    }
}

/// Every parser and responder, on one input (`i` only names the input on failure).
fn run_all(frame: &[u8], i: usize) {
    let result = std::panic::catch_unwind(|| fuzz_frame(frame));
    assert!(result.is_ok(), "input {i} panicked: {frame:02x?}");
}
