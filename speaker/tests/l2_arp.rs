//! ARP codec: byte-exact vectors, the answering rules, and every rejection path.
//!
//! The `LINUX_*` frames were captured from Linux 6.18 (two network namespaces joined
//! by a veth pair, read with an AF_PACKET socket): host A = 02:00:00:00:00:0a /
//! 198.51.100.10, host B = 02:00:00:00:00:0b / 198.51.100.11. Where FerroLB answers
//! like the kernel would, it must produce the kernel's bytes.

use std::net::Ipv4Addr;

use ferrolb_speaker::l2::arp::{self, ArpError, ArpFrame, ArpPacket, Op};
use ferrolb_speaker::l2::ether::{EtherError, EthernetHeader, MacAddr};

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const IP_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);

/// A asks who has .11 (broadcast, target MAC zero).
const LINUX_REQUEST: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000ac633640a000000000000c633640b";
/// B's kernel answers it.
const LINUX_REPLY: &str =
    "02000000000a02000000000b0806000108000604000202000000000bc633640b02000000000ac633640a";
/// A's kernel announcing .10 (`arp_notify=1`, link bounced).
const LINUX_GRATUITOUS: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000ac633640a000000000000c633640a";
/// An RFC 5227 probe for .11 from A (sender IP 0.0.0.0), written to the wire by hand.
const PROBE: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000a00000000000000000000c633640b";
/// B's kernel defending .11 against that probe: unicast, target IP 0.0.0.0.
const LINUX_PROBE_REPLY: &str =
    "02000000000a02000000000b0806000108000604000202000000000bc633640b02000000000a00000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn owns_b(ip: Ipv4Addr) -> bool {
    ip == IP_B
}

fn request(eth_dst: MacAddr, sender: (MacAddr, Ipv4Addr), target_ip: Ipv4Addr) -> ArpFrame {
    ArpFrame {
        eth_dst,
        eth_src: sender.0,
        packet: ArpPacket {
            op: Op::Request,
            sender_mac: sender.0,
            sender_ip: sender.1,
            target_mac: MacAddr::ZERO,
            target_ip,
        },
    }
}

#[test]
fn parses_a_linux_request() {
    let frame = arp::parse(&hex(LINUX_REQUEST)).unwrap();
    assert_eq!(frame, request(MacAddr::BROADCAST, (MAC_A, IP_A), IP_B));
    assert!(!frame.packet.is_probe());
    assert!(!frame.packet.is_gratuitous());
}

#[test]
fn parses_a_linux_reply() {
    let frame = arp::parse(&hex(LINUX_REPLY)).unwrap();
    assert_eq!(frame.eth_dst, MAC_A);
    assert_eq!(frame.eth_src, MAC_B);
    assert_eq!(
        frame.packet,
        ArpPacket {
            op: Op::Reply,
            sender_mac: MAC_B,
            sender_ip: IP_B,
            target_mac: MAC_A,
            target_ip: IP_A,
        }
    );
}

#[test]
fn answers_a_request_with_the_kernels_bytes() {
    let asked = arp::parse(&hex(LINUX_REQUEST)).unwrap();
    assert_eq!(
        arp::reply_for(&asked, MAC_B, owns_b),
        Some(hex(LINUX_REPLY))
    );
}

#[test]
fn answers_a_probe_for_an_owned_ip_like_the_kernel() {
    let probe = arp::parse(&hex(PROBE)).unwrap();
    assert!(probe.packet.is_probe());
    assert_eq!(
        arp::reply_for(&probe, MAC_B, owns_b),
        Some(hex(LINUX_PROBE_REPLY))
    );
    // A probe for an address we do not own is none of our business.
    assert_eq!(arp::reply_for(&probe, MAC_B, |_| false), None);
}

#[test]
fn answers_a_unicast_request_sent_to_our_mac() {
    // Linux refreshes entries with unicast requests (NUD probes for IPv4).
    let asked = request(MAC_B, (MAC_A, IP_A), IP_B);
    assert_eq!(
        arp::reply_for(&asked, MAC_B, owns_b),
        Some(hex(LINUX_REPLY))
    );
}

#[test]
fn replies_to_the_arp_sender_hardware_address() {
    // Ethernet source and ARP sender differ (e.g. a bridge rewrote the frame): the
    // answer goes where the requester asked to be answered, as in Linux.
    let mut asked = request(MacAddr::BROADCAST, (MAC_A, IP_A), IP_B);
    asked.eth_src = MacAddr([2, 0, 0, 0, 0, 0x77]);
    let reply = arp::parse(&arp::reply_for(&asked, MAC_B, owns_b).unwrap()).unwrap();
    assert_eq!(reply.eth_dst, MAC_A);
    assert_eq!(reply.packet.target_mac, MAC_A);
}

#[test]
fn does_not_answer_what_it_must_not() {
    let good = request(MacAddr::BROADCAST, (MAC_A, IP_A), IP_B);
    assert!(arp::reply_for(&good, MAC_B, owns_b).is_some());

    let cases: Vec<(&str, ArpFrame)> = vec![
        (
            "not owned",
            request(MacAddr::BROADCAST, (MAC_A, IP_A), IP_A),
        ),
        ("a reply", arp::parse(&hex(LINUX_REPLY)).unwrap()),
        (
            "someone else's gratuitous request for our IP",
            request(MacAddr::BROADCAST, (MAC_A, IP_B), IP_B),
        ),
        (
            "sent to another host's MAC",
            request(MacAddr([2, 0, 0, 0, 0, 0x0c]), (MAC_A, IP_A), IP_B),
        ),
        (
            "sent to a multicast MAC",
            request(MacAddr([1, 0, 0x5e, 0, 0, 1]), (MAC_A, IP_A), IP_B),
        ),
        (
            "our own frame looped back",
            request(MacAddr::BROADCAST, (MAC_B, IP_A), IP_B),
        ),
        (
            "requester MAC is a group address",
            request(
                MacAddr::BROADCAST,
                (MacAddr([3, 0, 0, 0, 0, 1]), IP_A),
                IP_B,
            ),
        ),
        (
            "requester MAC is zero",
            request(MacAddr::BROADCAST, (MacAddr::ZERO, IP_A), IP_B),
        ),
    ];
    for (why, frame) in cases {
        assert_eq!(arp::reply_for(&frame, MAC_B, owns_b), None, "{why}");
    }

    // Gratuitous replies for our IP from elsewhere are not answered either.
    let garp = arp::parse(&arp::gratuitous_reply(MAC_A, IP_B)).unwrap();
    assert_eq!(arp::reply_for(&garp, MAC_B, owns_b), None);
}

#[test]
fn gratuitous_request_matches_the_kernels_announcement() {
    assert_eq!(arp::gratuitous_request(MAC_A, IP_A), hex(LINUX_GRATUITOUS));
}

#[test]
fn gratuitous_reply_is_byte_exact() {
    // Broadcast, op 2, sender = target = (MAC, IP) (RFC 5944 §4.6).
    let expected = hex(concat!(
        "ffffffffffff", // broadcast
        "02000000000b", // our MAC
        "0806",         // ARP
        "0001",         // Ethernet
        "0800",         // IPv4
        "06",
        "04",
        "0002",         // reply
        "02000000000b", // sender MAC
        "c63364c8",     // sender IP 198.51.100.200
        "02000000000b", // target MAC
        "c63364c8",     // target IP
    ));
    let vip = Ipv4Addr::new(198, 51, 100, 200);
    assert_eq!(arp::gratuitous_reply(MAC_B, vip), expected);
    assert_eq!(expected.len(), arp::FRAME_LEN);
}

#[test]
fn gratuitous_frames_round_trip() {
    let vip = Ipv4Addr::new(198, 51, 100, 200);
    for (bytes, op, target_mac) in [
        (
            arp::gratuitous_request(MAC_B, vip),
            Op::Request,
            MacAddr::ZERO,
        ),
        (arp::gratuitous_reply(MAC_B, vip), Op::Reply, MAC_B),
    ] {
        let frame = arp::parse(&bytes).unwrap();
        assert_eq!(frame.eth_dst, MacAddr::BROADCAST);
        assert_eq!(frame.eth_src, MAC_B);
        assert_eq!(
            frame.packet,
            ArpPacket {
                op,
                sender_mac: MAC_B,
                sender_ip: vip,
                target_mac,
                target_ip: vip,
            }
        );
        assert!(frame.packet.is_gratuitous());
        assert_eq!(arp::build(&frame), bytes);
    }
}

#[test]
fn parse_and_build_are_inverse() {
    for vector in [
        LINUX_REQUEST,
        LINUX_REPLY,
        LINUX_GRATUITOUS,
        PROBE,
        LINUX_PROBE_REPLY,
    ] {
        let bytes = hex(vector);
        assert_eq!(arp::build(&arp::parse(&bytes).unwrap()), bytes, "{vector}");
    }
}

#[test]
fn ignores_ethernet_padding() {
    // On a real NIC the 42-byte frame arrives padded to 60 bytes.
    let mut padded = hex(LINUX_REQUEST);
    padded.resize(60, 0);
    assert_eq!(
        arp::parse(&padded).unwrap(),
        arp::parse(&hex(LINUX_REQUEST)).unwrap()
    );
}

#[test]
fn reports_conflicts_with_other_stations() {
    let vip = Ipv4Addr::new(198, 51, 100, 200);
    let owns_vip = |ip| ip == vip;
    // Another node announcing our VIP (split brain), or asking with it as source (an
    // IPVS node without strictARP).
    let other_garp = arp::parse(&arp::gratuitous_request(MAC_A, vip)).unwrap();
    assert_eq!(arp::conflict(&other_garp, MAC_B, owns_vip), Some(vip));
    let other_asks = request(MacAddr::BROADCAST, (MAC_A, vip), IP_B);
    assert_eq!(arp::conflict(&other_asks, MAC_B, owns_vip), Some(vip));

    let ours = arp::parse(&arp::gratuitous_reply(MAC_B, vip)).unwrap();
    assert_eq!(arp::conflict(&ours, MAC_B, owns_vip), None);
    let probe = request(MacAddr::BROADCAST, (MAC_A, Ipv4Addr::UNSPECIFIED), vip);
    assert_eq!(arp::conflict(&probe, MAC_B, owns_vip), None);
    assert_eq!(arp::conflict(&other_garp, MAC_B, |_| false), None);
}

#[test]
fn rejects_short_frames() {
    let full = hex(LINUX_REQUEST);
    for len in 0..14 {
        assert_eq!(
            arp::parse(&full[..len]),
            Err(ArpError::Ether(EtherError::Truncated { len })),
        );
    }
    for len in 14..arp::FRAME_LEN {
        assert_eq!(
            arp::parse(&full[..len]),
            Err(ArpError::Truncated { len: len - 14 }),
        );
    }
}

#[test]
fn rejects_other_ethertypes() {
    let mut frame = hex(LINUX_REQUEST);
    for ethertype in [0x86dd_u16, 0x0800, 0x8100, 0x8035] {
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        assert_eq!(
            arp::parse(&frame),
            Err(ArpError::Ether(EtherError::EtherType {
                expected: 0x0806,
                found: ethertype
            })),
        );
    }
}

#[test]
fn rejects_non_ethernet_ipv4_arp() {
    let base = hex(LINUX_REQUEST);
    let with = |at: usize, bytes: &[u8]| {
        let mut frame = base.clone();
        frame[at..at + bytes.len()].copy_from_slice(bytes);
        arp::parse(&frame)
    };
    assert_eq!(with(14, &[0, 6]), Err(ArpError::HardwareType(6)));
    assert_eq!(with(16, &[0x86, 0xdd]), Err(ArpError::ProtocolType(0x86dd)));
    assert_eq!(
        with(18, &[6, 16]),
        Err(ArpError::AddressLengths {
            hardware: 6,
            protocol: 16
        })
    );
    assert_eq!(
        with(18, &[8, 4]),
        Err(ArpError::AddressLengths {
            hardware: 8,
            protocol: 4
        })
    );
    for op in [0_u16, 3, 4, 0xffff] {
        assert_eq!(with(20, &op.to_be_bytes()), Err(ArpError::Operation(op)));
    }
}

#[test]
fn errors_read_well() {
    assert_eq!(
        ArpError::ProtocolType(0x86dd).to_string(),
        "ARP protocol type 0x86dd is not IPv4 (0x0800)"
    );
    assert_eq!(
        ArpError::Ether(EtherError::Truncated { len: 3 }).to_string(),
        "frame of 3 bytes is shorter than an Ethernet header (14)"
    );
}

#[test]
fn mac_addresses() {
    assert_eq!(MAC_A.to_string(), "02:00:00:00:00:0a");
    assert_eq!(format!("{:?}", MacAddr::BROADCAST), "ff:ff:ff:ff:ff:ff");
    assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
    assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
    assert!(MacAddr([1, 0, 0x5e, 0, 0, 1]).is_multicast());
    assert!(MAC_A.is_unicast() && !MAC_A.is_multicast());
    assert!(!MacAddr::ZERO.is_unicast());
    assert_eq!(
        MacAddr::from([1, 2, 3, 4, 5, 6]).octets(),
        [1, 2, 3, 4, 5, 6]
    );
}

#[test]
fn ethernet_header_round_trips() {
    let frame = hex(LINUX_REPLY);
    let (header, payload) = EthernetHeader::parse(&frame).unwrap();
    assert_eq!(
        (header.dst, header.src, header.ethertype),
        (MAC_A, MAC_B, 0x0806)
    );
    assert_eq!(payload.len(), arp::PACKET_LEN);
    let mut out = Vec::new();
    header.write(&mut out);
    assert_eq!(out, frame[..14]);
}
