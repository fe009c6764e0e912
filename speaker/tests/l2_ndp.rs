//! NDP codec: byte-exact vectors, checksums, the answering rules, and every rejection
//! path of RFC 4861 §7.1.
//!
//! The `LINUX_*` frames were captured from Linux 6.18 (two network namespaces joined
//! by a veth pair, read with an AF_PACKET socket): host A = 02:00:00:00:00:0a,
//! 2001:db8:51::a, fe80::ff:fe00:a; host B = 02:00:00:00:00:0b, 2001:db8:51::b,
//! fe80::ff:fe00:b. The `EXPECTED_*` frames, where FerroLB deliberately answers
//! differently from the kernel, were computed by a separate implementation (Python,
//! RFC 1071 checksum) that reproduces the Linux checksums above.

use std::net::Ipv6Addr;

use ferrolb_speaker::l2::ether::{EtherError, MacAddr};
use ferrolb_speaker::l2::ndp::{
    self, Message, NdpError, NdpOption, NeighborAdvertisement, NeighborSolicitation,
};

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const GUA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0xa);
const GUA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0xb);
const LL_A: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xa);
const LL_B: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xb);
const SN_B: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0xb);

/// A resolves 2001:db8:51::b: multicast NS to ff02::1:ff00:b with A's SLLA.
const LINUX_NS: &str = "3333ff00000b02000000000a86dd6000000000203aff20010db800510000000000000000000aff0200000000000000000001ff00000b87001b610000000020010db800510000000000000000000b010102000000000a";
/// B's kernel answers from ::b: Solicited=1, Override=1, TLLA.
const LINUX_NA: &str = "02000000000a02000000000b86dd6000000000203aff20010db800510000000000000000000b20010db800510000000000000000000a8800895a6000000020010db800510000000000000000000b020102000000000b";
/// A's unicast NUD probe from its link-local address (Linux includes the SLLA).
const LINUX_NUD_NS: &str = "02000000000b02000000000a86dd6000000000203afffe80000000000000000000fffe00000a20010db800510000000000000000000b87001be50000000020010db800510000000000000000000b010102000000000a";
/// B's kernel answer: Solicited=1, Override=0, no TLLA.
const LINUX_NUD_NA: &str = "02000000000a02000000000b86dd6000000000183aff20010db800510000000000000000000bfe80000000000000000000fffe00000a8800ddf74000000020010db800510000000000000000000b";
/// A runs DAD for ::b (which B holds): source ::, Nonce option (type 14), no SLLA.
const LINUX_DAD_NS: &str = "3333ff00000b02000000000a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff00000b8700ea010000000020010db800510000000000000000000b0e01a274815a30ae";
/// B's kernel defends ::b: to ff02::1, Solicited=0, Override=1, TLLA.
const LINUX_DAD_NA: &str = "33330000000102000000000b86dd6000000000203aff20010db800510000000000000000000bff0200000000000000000000000000018800f86a2000000020010db800510000000000000000000b020102000000000b";
/// A's kernel announcing its link-local address (`ndisc_notify=1`, link bounced).
const LINUX_UNSOLICITED_NA: &str = "33330000000102000000000a86dd6000000000203afffe80000000000000000000fffe00000aff0200000000000000000000000000018800598020000000fe80000000000000000000fffe00000a020102000000000a";
/// A's Router Solicitation (ICMPv6 type 133).
const LINUX_RS: &str = "33330000000202000000000a86dd6000000000103afffe80000000000000000000fffe00000aff02000000000000000000000000000285007b1a00000000010102000000000a";
/// A's MLDv2 report: next header 0 (hop-by-hop options) before ICMPv6.
const LINUX_MLD: &str = "33330000001602000000000a86dd6000000000240001fe80000000000000000000fffe00000aff0200000000000000000000000000163a000502000001008f0071f50000000104000000ff0200000000000000000001ff00000a";
/// A UDP datagram from A to B.
const LINUX_UDP: &str = "02000000000b02000000000a86dd600615770009114020010db800510000000000000000000a20010db800510000000000000000000bcda5000900095c4378";

/// FerroLB's answer (as B, source LL_B) to LINUX_NUD_NS: Override=1 and the TLLA.
const EXPECTED_NUD_NA: &str = "02000000000a02000000000b86dd6000000000203afffe80000000000000000000fffe00000bfe80000000000000000000fffe00000a8800ea6c6000000020010db800510000000000000000000b020102000000000b";
/// A unicast NS without SLLA (as some stacks send NUD probes), A to B for ::b.
const NS_WITHOUT_SLLA: &str = "02000000000b02000000000a86dd6000000000183aff20010db800510000000000000000000a20010db800510000000000000000000b8700ee6e0000000020010db800510000000000000000000b";
/// FerroLB's answer to it: to the frame's Ethernet source.
const EXPECTED_ANSWER_WITHOUT_SLLA: &str = "02000000000a02000000000b86dd6000000000203afffe80000000000000000000fffe00000b20010db800510000000000000000000a8800b9e36000000020010db800510000000000000000000b020102000000000b";
/// B's unsolicited NA for service IP 2001:db8:51::200, from LL_B.
const EXPECTED_UNSOLICITED_VIP: &str = "33330000000102000000000b86dd6000000000203afffe80000000000000000000fffe00000bff020000000000000000000000000001880026ff2000000020010db8005100000000000000000200020102000000000b";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn owns_b(ip: Ipv6Addr) -> bool {
    ip == GUA_B
}

fn ns(frame: &[u8]) -> NeighborSolicitation {
    match ndp::parse(frame) {
        Ok(Message::Solicitation(ns)) => ns,
        other => panic!("not a solicitation: {other:?}"),
    }
}

fn na(frame: &[u8]) -> NeighborAdvertisement {
    match ndp::parse(frame) {
        Ok(Message::Advertisement(na)) => na,
        other => panic!("not an advertisement: {other:?}"),
    }
}

/// A frame around an arbitrary ICMPv6 `message`, with the checksum set (the checksum
/// function is itself checked against the kernel's frames below).
fn frame_with(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, mut message: Vec<u8>) -> Vec<u8> {
    if message.len() >= 4 {
        let sum = ndp::checksum(src, dst, &message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let mut frame = hex("3333ff00000b02000000000a86dd60000000");
    frame.extend_from_slice(&(message.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[58, hop_limit]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(&message);
    frame
}

/// An NS for GUA_B from GUA_A to its solicited-node group with `options` appended.
fn ns_with_options(options: &[u8]) -> Vec<u8> {
    let mut message = vec![135, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&GUA_B.octets());
    message.extend_from_slice(options);
    frame_with(GUA_A, SN_B, 255, message)
}

const SLLA_A: [u8; 8] = [1, 1, 2, 0, 0, 0, 0, 0x0a];

#[test]
fn parses_the_kernels_solicitations() {
    assert_eq!(
        ns(&hex(LINUX_NS)),
        NeighborSolicitation {
            eth_dst: MacAddr([0x33, 0x33, 0xff, 0, 0, 0x0b]),
            eth_src: MAC_A,
            src: GUA_A,
            dst: SN_B,
            target: GUA_B,
            source_lla: Some(MAC_A),
        }
    );
    let nud = ns(&hex(LINUX_NUD_NS));
    assert_eq!((nud.src, nud.dst, nud.eth_dst), (LL_A, GUA_B, MAC_B));
    assert_eq!(nud.source_lla, Some(MAC_A));
    // DAD: unspecified source, no SLLA, and the unknown Nonce option skipped.
    let dad = ns(&hex(LINUX_DAD_NS));
    assert_eq!((dad.src, dad.dst), (Ipv6Addr::UNSPECIFIED, SN_B));
    assert_eq!((dad.target, dad.source_lla), (GUA_B, None));
}

#[test]
fn parses_the_kernels_advertisements() {
    assert_eq!(
        na(&hex(LINUX_NA)),
        NeighborAdvertisement {
            eth_dst: MAC_A,
            eth_src: MAC_B,
            src: GUA_B,
            dst: GUA_A,
            router: false,
            solicited: true,
            override_flag: true,
            target: GUA_B,
            target_lla: Some(MAC_B),
        }
    );
    let nud = na(&hex(LINUX_NUD_NA));
    assert!(nud.solicited && !nud.override_flag && !nud.router);
    assert_eq!(nud.target_lla, None);
    let dad = na(&hex(LINUX_DAD_NA));
    assert!(!dad.solicited && dad.override_flag);
    assert_eq!((dad.dst, dad.eth_dst), (ndp::ALL_NODES, ndp::ALL_NODES_MAC));
    let unsolicited = na(&hex(LINUX_UNSOLICITED_NA));
    assert_eq!((unsolicited.src, unsolicited.target), (LL_A, LL_A));
}

#[test]
fn checksums_match_the_kernel() {
    for vector in [
        LINUX_NS,
        LINUX_NA,
        LINUX_NUD_NS,
        LINUX_NUD_NA,
        LINUX_DAD_NS,
        LINUX_DAD_NA,
        LINUX_UNSOLICITED_NA,
        LINUX_RS,
    ] {
        let frame = hex(vector);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
        let message = &frame[54..];
        let on_wire = u16::from_be_bytes([message[2], message[3]]);
        assert_eq!(ndp::checksum(src, dst, message), on_wire, "{vector}");
        assert!(ndp::checksum_is_valid(src, dst, message), "{vector}");
        let mut broken = message.to_vec();
        broken[8] ^= 0x40;
        assert!(!ndp::checksum_is_valid(src, dst, &broken), "{vector}");
    }
}

#[test]
fn checksum_of_an_odd_length_message() {
    // A trailing odd byte is summed as if padded with a zero byte (RFC 1071);
    // value from the independent implementation.
    let message: Vec<u8> = (1..=25).collect();
    let (src, dst) = ("fe80::1".parse().unwrap(), ndp::ALL_NODES);
    assert_eq!(ndp::checksum(src, dst, &message), 0x5b8e);
    let mut sealed = message.clone();
    sealed[2..4].copy_from_slice(&0x5b8e_u16.to_be_bytes());
    assert!(ndp::checksum_is_valid(src, dst, &sealed));
}

#[test]
fn checksum_accepts_both_encodings_of_zero() {
    // Search for a target that makes the checksum 0: a receiver must accept 0x0000
    // and its one's complement twin 0xffff alike.
    let mut found = false;
    for low in 0..=u16::MAX {
        let mut message = vec![136, 0, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, low).octets());
        if ndp::checksum(LL_A, ndp::ALL_NODES, &message) == 0 {
            assert!(ndp::checksum_is_valid(LL_A, ndp::ALL_NODES, &message));
            message[2..4].copy_from_slice(&[0xff, 0xff]);
            assert!(ndp::checksum_is_valid(LL_A, ndp::ALL_NODES, &message));
            found = true;
            break;
        }
    }
    assert!(found);
}

#[test]
fn answers_a_multicast_solicitation_with_the_kernels_bytes() {
    // With the target as source, FerroLB's answer is the kernel's, byte for byte.
    let asked = ns(&hex(LINUX_NS));
    assert_eq!(
        ndp::reply_for(&asked, MAC_B, GUA_B, owns_b),
        Some(hex(LINUX_NA))
    );
}

#[test]
fn answers_dad_for_an_owned_ip_with_the_kernels_bytes() {
    let probe = ns(&hex(LINUX_DAD_NS));
    assert_eq!(
        ndp::reply_for(&probe, MAC_B, GUA_B, owns_b),
        Some(hex(LINUX_DAD_NA))
    );
    assert_eq!(ndp::reply_for(&probe, MAC_B, GUA_B, |_| false), None);
}

#[test]
fn answers_a_nud_probe_with_override_and_tlla() {
    // The kernel answers unicast probes with Override=0 and no TLLA; FerroLB sets
    // both so a cache still holding a failed-over node's MAC takes ours.
    let probe = ns(&hex(LINUX_NUD_NS));
    let answer = ndp::reply_for(&probe, MAC_B, LL_B, owns_b).unwrap();
    assert_eq!(answer, hex(EXPECTED_NUD_NA));
    assert_ne!(answer, hex(LINUX_NUD_NA));
    let parsed = na(&answer);
    assert!(parsed.solicited && parsed.override_flag && !parsed.router);
    assert_eq!((parsed.src, parsed.dst), (LL_B, LL_A));
}

#[test]
fn answers_a_solicitation_without_source_lla_to_the_ethernet_source() {
    // MetalLB leaves these unanswered (metallb#2920).
    let probe = ns(&hex(NS_WITHOUT_SLLA));
    assert_eq!(probe.source_lla, None);
    assert_eq!(
        ndp::reply_for(&probe, MAC_B, LL_B, owns_b),
        Some(hex(EXPECTED_ANSWER_WITHOUT_SLLA))
    );
    // and the builder produces the same NS as the independent implementation
    assert_eq!(ndp::build_solicitation(&probe), hex(NS_WITHOUT_SLLA));
}

#[test]
fn source_lla_wins_over_the_ethernet_source() {
    let mut asked = ns(&hex(LINUX_NS));
    asked.eth_src = MacAddr([2, 0, 0, 0, 0, 0x77]);
    let answer = na(&ndp::reply_for(&asked, MAC_B, LL_B, owns_b).unwrap());
    assert_eq!(answer.eth_dst, MAC_A);
}

#[test]
fn does_not_answer_what_it_must_not() {
    let good = ns(&hex(LINUX_NS));
    assert!(ndp::reply_for(&good, MAC_B, LL_B, owns_b).is_some());
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0xc);
    let cases: Vec<(&str, NeighborSolicitation)> = vec![
        (
            "target not owned",
            NeighborSolicitation {
                target: other,
                dst: ndp::solicited_node_multicast(other),
                ..good
            },
        ),
        (
            "Ethernet destination is another host",
            NeighborSolicitation {
                eth_dst: MacAddr([2, 0, 0, 0, 0, 0x0c]),
                ..good
            },
        ),
        (
            "IP destination is another unicast address",
            NeighborSolicitation {
                dst: other,
                eth_dst: MAC_B,
                ..good
            },
        ),
        (
            "IP destination is another solicited-node group",
            NeighborSolicitation {
                dst: ndp::solicited_node_multicast(other),
                ..good
            },
        ),
        (
            "IP destination is all-nodes",
            NeighborSolicitation {
                dst: ndp::ALL_NODES,
                ..good
            },
        ),
        (
            "our own frame looped back",
            NeighborSolicitation {
                eth_src: MAC_B,
                ..good
            },
        ),
        (
            "our own MAC in the SLLA",
            NeighborSolicitation {
                source_lla: Some(MAC_B),
                ..good
            },
        ),
        (
            "requester is a group MAC (SLLA)",
            NeighborSolicitation {
                source_lla: Some(MacAddr([0x33, 0x33, 0, 0, 0, 1])),
                ..good
            },
        ),
        (
            "requester is a group MAC (no SLLA)",
            NeighborSolicitation {
                source_lla: None,
                eth_src: MacAddr::BROADCAST,
                ..good
            },
        ),
        (
            "requester MAC is zero",
            NeighborSolicitation {
                source_lla: Some(MacAddr::ZERO),
                ..good
            },
        ),
    ];
    for (why, asked) in cases {
        assert_eq!(ndp::reply_for(&asked, MAC_B, LL_B, owns_b), None, "{why}");
    }
}

#[test]
fn unsolicited_advertisement_matches_the_kernels() {
    assert_eq!(
        ndp::unsolicited_advertisement(MAC_A, LL_A, LL_A),
        hex(LINUX_UNSOLICITED_NA)
    );
}

#[test]
fn unsolicited_advertisement_for_a_service_ip() {
    let vip = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x200);
    let bytes = ndp::unsolicited_advertisement(MAC_B, LL_B, vip);
    assert_eq!(bytes, hex(EXPECTED_UNSOLICITED_VIP));
    assert_eq!(
        na(&bytes),
        NeighborAdvertisement {
            eth_dst: MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            eth_src: MAC_B,
            src: LL_B,
            dst: "ff02::1".parse().unwrap(),
            router: false,
            solicited: false,
            override_flag: true,
            target: vip,
            target_lla: Some(MAC_B),
        }
    );
}

#[test]
fn builders_and_parser_round_trip() {
    let vip = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x201);
    for bits in 0..16_u8 {
        let solicited = bits & 2 != 0;
        let advert = NeighborAdvertisement {
            eth_dst: MAC_A,
            eth_src: MAC_B,
            src: LL_B,
            dst: GUA_A,
            router: bits & 1 != 0,
            solicited,
            override_flag: bits & 4 != 0,
            target: vip,
            target_lla: (bits & 8 != 0).then_some(MAC_B),
        };
        let bytes = ndp::build_advertisement(&advert);
        assert_eq!(bytes.len(), 14 + 40 + if bits & 8 != 0 { 32 } else { 24 });
        assert_eq!(ndp::parse(&bytes), Ok(Message::Advertisement(advert)));
    }
    for source_lla in [None, Some(MAC_A)] {
        for (src, dst) in [(GUA_A, SN_B), (LL_A, GUA_B)] {
            let asked = NeighborSolicitation {
                eth_dst: ndp::solicited_node_mac(GUA_B),
                eth_src: MAC_A,
                src,
                dst,
                target: GUA_B,
                source_lla,
            };
            let bytes = ndp::build_solicitation(&asked);
            assert_eq!(ndp::parse(&bytes), Ok(Message::Solicitation(asked)));
        }
    }
}

#[test]
fn kernel_frames_rebuild_exactly() {
    // Without unknown options, parse then build gives back the kernel's bytes.
    for vector in [
        LINUX_NS,
        LINUX_NA,
        LINUX_NUD_NS,
        LINUX_NUD_NA,
        LINUX_DAD_NA,
        LINUX_UNSOLICITED_NA,
    ] {
        let bytes = hex(vector);
        let rebuilt = match ndp::parse(&bytes).unwrap() {
            Message::Solicitation(ns) => ndp::build_solicitation(&ns),
            Message::Advertisement(na) => ndp::build_advertisement(&na),
        };
        assert_eq!(rebuilt, bytes, "{vector}");
    }
}

#[test]
fn ignores_bytes_after_the_payload() {
    let mut padded = hex(LINUX_NS);
    padded.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(ndp::parse(&padded), ndp::parse(&hex(LINUX_NS)));
}

#[test]
fn solicited_node_groups() {
    assert_eq!(ndp::solicited_node_multicast(GUA_B), SN_B);
    let ip: Ipv6Addr = "2001:db8::aa12:3456:789a".parse().unwrap();
    assert_eq!(
        ndp::solicited_node_multicast(ip),
        "ff02::1:ff56:789a".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        ndp::solicited_node_mac(ip),
        MacAddr([0x33, 0x33, 0xff, 0x56, 0x78, 0x9a])
    );
    assert_eq!(ndp::multicast_mac(ndp::ALL_NODES), ndp::ALL_NODES_MAC);
    assert!(ndp::is_solicited_node_multicast(SN_B));
    assert!(ndp::is_solicited_node_multicast(
        ndp::solicited_node_multicast(ip)
    ));
    assert!(!ndp::is_solicited_node_multicast(ndp::ALL_NODES));
    assert!(!ndp::is_solicited_node_multicast(GUA_B));
    assert!(!ndp::is_solicited_node_multicast(
        "ff02::2:ff00:b".parse().unwrap()
    ));
}

#[test]
fn reports_conflicts_with_other_stations() {
    let other = na(&hex(LINUX_NA));
    assert_eq!(ndp::conflict(&other, MAC_A, owns_b), Some(GUA_B));
    assert_eq!(ndp::conflict(&other, MAC_B, owns_b), None);
    assert_eq!(ndp::conflict(&other, MAC_A, |_| false), None);
    // Without a TLLA the Ethernet source tells who sent it.
    let bare = na(&hex(LINUX_NUD_NA));
    assert_eq!(ndp::conflict(&bare, MAC_A, owns_b), Some(GUA_B));
}

#[test]
fn options_walk() {
    let area = [SLLA_A.as_slice(), &[14, 1, 1, 2, 3, 4, 5, 6]].concat();
    let walked: Vec<_> = ndp::options(&area).collect();
    assert_eq!(
        walked,
        vec![
            Ok(NdpOption {
                kind: 1,
                body: &SLLA_A[2..]
            }),
            Ok(NdpOption {
                kind: 14,
                body: &[1, 2, 3, 4, 5, 6]
            }),
        ]
    );
    assert_eq!(ndp::options(&[]).count(), 0);
    // After an error the walk stops.
    let broken = [SLLA_A.as_slice(), &[3, 0], &SLLA_A].concat();
    let walked: Vec<_> = ndp::options(&broken).collect();
    assert_eq!(walked.len(), 2);
    assert_eq!(
        walked[1],
        Err(NdpError::OptionLengthZero { offset: 8, kind: 3 })
    );
}

#[test]
fn long_options_are_not_miscounted() {
    // Length 32 is 256 bytes: a u8 product wraps to 0 (pnet's bug). Here it is an
    // ordinary large option, skipped, and the SLLA after it is found.
    let mut big = vec![99, 32];
    big.resize(256, 0xaa);
    let frame = ns_with_options(&[big.as_slice(), &SLLA_A].concat());
    assert_eq!(ns(&frame).source_lla, Some(MAC_A));
    let walked: Vec<_> = ndp::options(&[big.as_slice(), &SLLA_A].concat())
        .map(|o| o.map(|o| (o.kind, o.body.len())))
        .collect();
    assert_eq!(walked, vec![Ok((99, 254)), Ok((1, 6))]);

    // The largest length, 255 units = 2040 bytes, fits exactly.
    let mut largest = vec![99, 255];
    largest.resize(2040, 0);
    assert_eq!(ns(&ns_with_options(&largest)).source_lla, None);
}

fn parse_err(frame: &[u8]) -> NdpError {
    ndp::parse(frame).unwrap_err()
}

#[test]
fn rejects_short_frames() {
    let full = hex(LINUX_NS);
    for len in 0..14 {
        assert_eq!(
            parse_err(&full[..len]),
            NdpError::Ether(EtherError::Truncated { len })
        );
    }
    for len in 14..54 {
        assert_eq!(
            parse_err(&full[..len]),
            NdpError::Ipv6Truncated { len: len - 14 }
        );
    }
    // The header says 32 bytes of payload; fewer arrived.
    for len in 54..full.len() {
        assert_eq!(
            parse_err(&full[..len]),
            NdpError::PayloadLength {
                claimed: 32,
                available: len - 54
            }
        );
    }
}

#[test]
fn rejects_short_messages() {
    // An empty payload, and messages shorter than the 24-byte fixed part, with a
    // correct checksum so the length is what fails.
    assert_eq!(
        parse_err(&frame_with(GUA_A, SN_B, 255, vec![])),
        NdpError::MessageTooShort { len: 0 }
    );
    for len in [1, 4, 8, 20, 23] {
        let mut message = vec![135, 0, 0, 0];
        message.resize(len, 0);
        assert_eq!(
            parse_err(&frame_with(GUA_A, SN_B, 255, message)),
            NdpError::MessageTooShort { len },
            "{len}"
        );
    }
}

#[test]
fn rejects_other_ethertypes_and_packets() {
    assert_eq!(
        parse_err(&hex(
            "ffffffffffff02000000000a0806000108000604000102000000000ac633640a000000000000c633640b"
        )),
        NdpError::Ether(EtherError::EtherType {
            expected: 0x86dd,
            found: 0x0806
        })
    );
    let mut v4 = hex(LINUX_NS);
    v4[14] = 0x45;
    assert_eq!(parse_err(&v4), NdpError::IpVersion(4));
    assert_eq!(parse_err(&hex(LINUX_UDP)), NdpError::NextHeader(17));
    assert_eq!(parse_err(&hex(LINUX_MLD)), NdpError::NextHeader(0));
    assert_eq!(
        parse_err(&hex(LINUX_RS)),
        NdpError::NotNeighborDiscovery(133)
    );
}

#[test]
fn rejects_a_multicast_source() {
    let mut message = vec![135, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&GUA_B.octets());
    let frame = frame_with(ndp::ALL_NODES, SN_B, 255, message);
    assert_eq!(parse_err(&frame), NdpError::MulticastSource(ndp::ALL_NODES));
}

#[test]
fn rejects_a_hop_limit_other_than_255() {
    // The hop limit is not in the pseudo-header: the checksum stays valid.
    for hop_limit in [0, 1, 64, 254] {
        let mut frame = hex(LINUX_NS);
        frame[21] = hop_limit;
        assert_eq!(parse_err(&frame), NdpError::HopLimit(hop_limit));
        let mut frame = hex(LINUX_NA);
        frame[21] = hop_limit;
        assert_eq!(parse_err(&frame), NdpError::HopLimit(hop_limit));
    }
}

#[test]
fn rejects_a_nonzero_code() {
    let mut message = hex(LINUX_NS)[54..].to_vec();
    message[1] = 1;
    assert_eq!(
        parse_err(&frame_with(GUA_A, SN_B, 255, message)),
        NdpError::Code(1)
    );
}

#[test]
fn rejects_a_bad_checksum() {
    let mut frame = hex(LINUX_NS);
    frame[57] ^= 0x01; // the checksum itself (bytes 56 and 57)
    assert_eq!(
        parse_err(&frame),
        NdpError::Checksum {
            found: 0x1b60,
            expected: 0x1b61
        }
    );
    // A changed target, source, or destination address (pseudo-header).
    for at in [70, 30, 45] {
        let mut frame = hex(LINUX_NS);
        frame[at] ^= 0x10;
        assert!(
            matches!(parse_err(&frame), NdpError::Checksum { .. }),
            "{at}"
        );
    }
}

#[test]
fn rejects_a_multicast_target() {
    for ty in [135, 136] {
        let mut message = vec![ty, 0, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&SN_B.octets());
        assert_eq!(
            parse_err(&frame_with(GUA_A, GUA_B, 255, message)),
            NdpError::MulticastTarget(SN_B)
        );
    }
}

#[test]
fn rejects_a_zero_option_length() {
    assert_eq!(
        parse_err(&ns_with_options(&[1, 0, 2, 0, 0, 0, 0, 0x0a])),
        NdpError::OptionLengthZero { offset: 0, kind: 1 }
    );
    // also behind a valid option
    assert_eq!(
        parse_err(&ns_with_options(
            &[SLLA_A.as_slice(), &[14, 0, 0, 0, 0, 0, 0, 0]].concat()
        )),
        NdpError::OptionLengthZero {
            offset: 8,
            kind: 14
        }
    );
}

#[test]
fn rejects_an_option_overflowing_the_message() {
    assert_eq!(
        parse_err(&ns_with_options(&[1, 2, 2, 0, 0, 0, 0, 0x0a])),
        NdpError::OptionOverflow {
            offset: 0,
            kind: 1,
            claimed: 16,
            remaining: 8
        }
    );
}

#[test]
fn rejects_option_lengths_of_32_and_more_that_overflow() {
    // 32 units = 256 bytes claimed in an 8-byte area: must not wrap to 0.
    for (units, claimed) in [(32_u8, 256), (64, 512), (255, 2040)] {
        assert_eq!(
            parse_err(&ns_with_options(&[99, units, 0, 0, 0, 0, 0, 0])),
            NdpError::OptionOverflow {
                offset: 0,
                kind: 99,
                claimed,
                remaining: 8
            },
            "{units}"
        );
    }
}

#[test]
fn rejects_a_truncated_option_header() {
    // 25 bytes of message: one byte after the fixed part cannot hold an option header.
    assert_eq!(
        parse_err(&ns_with_options(&[1])),
        NdpError::OptionTruncated {
            offset: 0,
            remaining: 1
        }
    );
    assert_eq!(
        parse_err(&ns_with_options(&[SLLA_A.as_slice(), &[1]].concat())),
        NdpError::OptionTruncated {
            offset: 8,
            remaining: 1
        }
    );
}

#[test]
fn rejects_a_link_layer_option_of_the_wrong_size() {
    let mut long = vec![1, 2];
    long.resize(16, 0);
    assert_eq!(
        parse_err(&ns_with_options(&long)),
        NdpError::LinkLayerOptionLength { len: 16 }
    );
    // An oversized TLLA in an NS is not the option NS uses: ignored.
    long[0] = 2;
    assert_eq!(ns(&ns_with_options(&long)).source_lla, None);
}

#[test]
fn keeps_the_first_of_duplicate_link_layer_options() {
    let second = [1, 1, 2, 0, 0, 0, 0, 0x99];
    let frame = ns_with_options(&[SLLA_A.as_slice(), &second].concat());
    assert_eq!(ns(&frame).source_lla, Some(MAC_A));
}

#[test]
fn rejects_malformed_dad() {
    let mut message = vec![135, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&GUA_B.octets());
    // DAD sent to a unicast address, or to all-nodes
    for dst in [GUA_B, ndp::ALL_NODES] {
        assert_eq!(
            parse_err(&frame_with(
                Ipv6Addr::UNSPECIFIED,
                dst,
                255,
                message.clone()
            )),
            NdpError::DadDestination(dst)
        );
    }
    // DAD with a source link-layer address
    message.extend_from_slice(&SLLA_A);
    assert_eq!(
        parse_err(&frame_with(Ipv6Addr::UNSPECIFIED, SN_B, 255, message)),
        NdpError::DadWithLinkLayerAddress
    );
}

#[test]
fn rejects_a_solicited_advertisement_to_multicast() {
    let mut message = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
    message.extend_from_slice(&GUA_B.octets());
    assert_eq!(
        parse_err(&frame_with(GUA_B, ndp::ALL_NODES, 255, message)),
        NdpError::SolicitedToMulticast(ndp::ALL_NODES)
    );
}

#[test]
fn errors_read_well() {
    assert_eq!(
        NdpError::HopLimit(64).to_string(),
        "hop limit 64 is not 255: the packet did not originate on this link"
    );
    assert_eq!(
        NdpError::OptionOverflow {
            offset: 0,
            kind: 99,
            claimed: 256,
            remaining: 8
        }
        .to_string(),
        "option type 99 at offset 0 claims 256 bytes, only 8 remain"
    );
}
