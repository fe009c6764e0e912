//! Bounded, deterministic fuzzing of the BGP receive path: messages mutated from valid
//! ones (our own encodings of every message kind) go through `codec::fuzz_message`,
//! which frames and decodes them as a TCP stream for a 2-octet IPv4-only session and a
//! 4-octet dual-stack one, and checks the codec's invariants (what decodes re-encodes
//! to itself; every session-resetting error has a NOTIFICATION that fits). A panic
//! anywhere fails the test. Most mutations keep the header's length field consistent,
//! so they reach the OPEN/UPDATE decoders instead of dying at framing.
//!
//! The generator is a seeded xorshift, so a failure reproduces; the seed and the
//! iteration are in the panic message. The real fuzzer (`speaker/fuzz`, docs/fuzzing.md)
//! runs the same function without these bounds.

use std::net::Ipv4Addr;

use ferrolb_speaker::bgp::codec::{self, Context, DecodeError};
use ferrolb_speaker::bgp::message::*;

const SEED: u64 = 0x5eed_b9b0_0000_0001;
const ITERATIONS: usize = 200_000;

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
    /// Mostly boundary values, which is where length bugs hide.
    fn interesting(&mut self) -> u8 {
        const VALUES: [u8; 14] = [0, 1, 2, 3, 4, 5, 15, 16, 31, 32, 33, 128, 254, 255];
        if self.below(2) == 0 {
            VALUES[self.below(VALUES.len())]
        } else {
            self.next() as u8
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let four = Context {
        four_octet_as: true,
        ipv4_unicast: true,
        ipv6_unicast: true,
    };
    let open = Open {
        version: BGP_VERSION,
        asn: 4_200_000_001,
        hold_time: 90,
        router_id: Ipv4Addr::new(192, 0, 2, 10),
        capabilities: vec![
            Capability::Multiprotocol {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            },
            Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    forwarding_preserved: true,
                }],
            }),
        ],
    };
    let v4 = Update {
        withdrawn: vec!["203.0.113.0/25".parse().unwrap()],
        attributes: Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(vec![
                AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![64512, 65001],
                },
                AsSegment {
                    kind: AsSegmentKind::Set,
                    asns: vec![65002],
                },
            ]),
            next_hop: Some(Ipv4Addr::new(198, 51, 100, 1)),
            med: Some(10),
            local_pref: Some(200),
            atomic_aggregate: true,
            aggregator: Some((64512, Ipv4Addr::new(192, 0, 2, 1))),
            communities: vec![Community::new(64512, 100)],
            large_communities: vec![LargeCommunity {
                global_admin: 64512,
                local_data1: 1,
                local_data2: 2,
            }],
            other: vec![RawAttribute {
                flags: 0xc0,
                type_code: 99,
                value: vec![1, 2, 3],
            }],
            ..Attributes::default()
        },
        nlri: vec![
            "198.51.100.0/24".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap(),
        ],
    };
    let v6 = Update {
        attributes: Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: vec![4_200_000_001],
            }]),
            mp_reach: Some(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local_next_hop: Some("fe80::1".parse().unwrap()),
                nlri: vec![
                    "2001:db8:1::/48".parse().unwrap(),
                    "2001:db8::5/128".parse().unwrap(),
                ],
            }),
            mp_unreach: Some(MpUnreach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                withdrawn: vec!["2001:db8:2::/64".parse().unwrap()],
            }),
            ..Attributes::default()
        },
        ..Update::default()
    };
    let messages = [
        (Message::Open(open), four),
        (Message::Update(v4.clone()), four),
        (Message::Update(v4), Context::default()),
        (Message::Update(v6), four),
        (
            Message::Update(Update::end_of_rib(Afi::IPV6, Safi::UNICAST)),
            four,
        ),
        (
            Message::Notification(Notification::new(2, 2, vec![0xfd, 0xe8])),
            four,
        ),
        (
            Message::RouteRefresh {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            },
            four,
        ),
        (Message::Keepalive, four),
    ];
    messages
        .iter()
        .map(|(m, ctx)| codec::encode(m, ctx).unwrap())
        .collect()
}

/// One or two random edits (mostly one); the length field is made to match afterwards, usually.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut m = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(3) / 2 {
        match rng.below(6) {
            // Overwrite a body byte (the header is mostly left alone).
            0 | 1 if m.len() > 19 => {
                let i = 19 + rng.below(m.len() - 19);
                m[i] = rng.interesting();
            }
            // Truncate.
            2 if m.len() > 19 => {
                let keep = 19 + rng.below(m.len() - 19);
                m.truncate(keep);
            }
            // Insert bytes.
            3 => {
                let i = 19.min(m.len()) + rng.below(m.len().saturating_sub(18).max(1));
                let i = i.min(m.len());
                for _ in 0..1 + rng.below(4) {
                    m.insert(i, rng.interesting());
                }
            }
            // Splice in a piece of another seed.
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                let at = rng.below(m.len() + 1);
                m.splice(at..at, other[from..to].iter().copied());
            }
            // Any byte, the header included.
            _ => {
                let i = rng.below(m.len());
                m[i] = rng.interesting();
            }
        }
    }
    if rng.below(8) != 0 && m.len() >= 19 {
        let len = (m.len().min(4096) as u16).to_be_bytes();
        m[16..18].copy_from_slice(&len);
    }
    m
}

#[test]
fn mutated_messages_never_panic_and_keep_the_codec_invariants() {
    let seeds = seeds();
    let mut rng = Rng(SEED);
    let (mut decoded, mut withdrawn, mut reset) = (0usize, 0usize, 0usize);
    for i in 0..ITERATIONS {
        let mut input = mutate(&mut rng, &seeds);
        // Sometimes a stream of two messages, to exercise the framing loop.
        if rng.below(4) == 0 {
            input.extend_from_slice(&mutate(&mut rng, &seeds));
        }
        let result = std::panic::catch_unwind(|| codec::fuzz_message(&input));
        assert!(
            result.is_ok(),
            "seed {SEED:#x} iteration {i}: input {input:02x?}"
        );
        let ctx = Context {
            four_octet_as: true,
            ipv4_unicast: true,
            ipv6_unicast: true,
        };
        match codec::decode(&input, &ctx) {
            Ok(Some(_)) => decoded += 1,
            Err(DecodeError::TreatAsWithdraw(_)) => withdrawn += 1,
            Err(_) => reset += 1,
            Ok(None) => {}
        }
    }
    println!(
        "{ITERATIONS} inputs: {decoded} decoded, {withdrawn} treated as withdraw, {reset} reset"
    );
    // The generator must reach every outcome, or it is not testing the decoders.
    assert!(decoded > ITERATIONS / 20, "{decoded}");
    assert!(withdrawn > ITERATIONS / 200, "{withdrawn}");
    assert!(reset > ITERATIONS / 20, "{reset}");
}

#[test]
fn every_truncation_of_a_valid_message_is_refused_or_incomplete() {
    let ctx = Context {
        four_octet_as: true,
        ipv4_unicast: true,
        ipv6_unicast: true,
    };
    for seed in seeds() {
        for cut in 0..seed.len() {
            // As a stream: wait for more.
            assert_eq!(codec::decode(&seed[..cut], &ctx), Ok(None));
            // As a message whose header length matches the cut: never decoded as the
            // original, and never a panic.
            if cut >= 19 {
                let mut m = seed[..cut].to_vec();
                m[16..18].copy_from_slice(&(cut as u16).to_be_bytes());
                let full = codec::decode_message(&seed, &ctx).unwrap();
                assert_ne!(codec::decode_message(&m, &ctx).ok(), Some(full));
            }
        }
    }
}
