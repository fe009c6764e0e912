//! Ethernet II framing shared by the ARP and NDP codecs: MAC addresses, the 14-byte
//! header, and [`fuzz_frame`], the one entry point a fuzz target calls to drive every
//! Layer2 parser.
//!
//! Only untagged frames are handled. The speaker opens its packet sockets on the
//! interface that carries the address (a VLAN sub-interface when there is one), and
//! Linux strips the 802.1Q tag before such a socket sees the frame (on the parent
//! interface the tag travels in `PACKET_AUXDATA`, not in the bytes). A tagged frame in
//! the bytes would also need a tagged reply, so it is refused as a foreign ethertype
//! rather than half-supported.

// Frames come from any host on the LAN: make every possible panic a compile error here.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::fmt;

use thiserror::Error;

use super::{arp, ndp};

/// Length of an untagged Ethernet II header: destination, source, ethertype.
pub const HEADER_LEN: usize = 14;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv4 (also ARP's protocol type).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00, what an ARP request puts in the target hardware field.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six bytes, first on the wire first.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// The group bit (least significant bit of the first byte) is set; true for broadcast.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// An address a single station can own, i.e. one worth sending a reply to.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != Self::ZERO
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a frame is not an Ethernet II frame of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EtherError {
    #[error("frame of {len} bytes is shorter than an Ethernet header ({HEADER_LEN})")]
    Truncated { len: usize },
    #[error("ethertype {found:#06x} is not the expected {expected:#06x}")]
    EtherType { expected: u16, found: u16 },
}

/// The untagged Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Splits a frame into its header and payload. Trailing bytes (padding to the
    /// 60-byte minimum) stay in the payload; the protocol codecs ignore them.
    pub fn parse(frame: &[u8]) -> Result<(Self, &[u8]), EtherError> {
        let truncated = EtherError::Truncated { len: frame.len() };
        let (&head, payload) = frame.split_first_chunk::<HEADER_LEN>().ok_or(truncated)?;
        let [d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, t0, t1] = head;
        let header = EthernetHeader {
            dst: MacAddr([d0, d1, d2, d3, d4, d5]),
            src: MacAddr([s0, s1, s2, s3, s4, s5]),
            ethertype: u16::from_be_bytes([t0, t1]),
        };
        Ok((header, payload))
    }

    /// [`parse`](Self::parse), refusing any ethertype but `ethertype`.
    pub fn parse_expecting(frame: &[u8], ethertype: u16) -> Result<(Self, &[u8]), EtherError> {
        let (header, payload) = Self::parse(frame)?;
        if header.ethertype != ethertype {
            return Err(EtherError::EtherType {
                expected: ethertype,
                found: header.ethertype,
            });
        }
        Ok((header, payload))
    }

    /// Appends the 14 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.0);
        out.extend_from_slice(&self.src.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }
}

/// Runs every Layer2 parser, and the responders behind them, on arbitrary bytes.
///
/// This is the body of a `cargo fuzz` target (`fuzz_target!(|d: &[u8]| fuzz_frame(d))`),
/// kept here so such a target needs no change to the codecs. It must never panic on
/// any input; the assertions below check codec invariants (every reply we build parses
/// back as what we meant to send), so a panic means a bug in the codecs, not bad input.
pub fn fuzz_frame(data: &[u8]) {
    // Whoever the frame is addressed to is "us", and we own every address, so that
    // as many frames as possible that parse also reach the reply builders.
    let us = match EthernetHeader::parse(data) {
        Ok((eth, _)) if eth.dst.is_unicast() => eth.dst,
        _ => MacAddr([0x02, 0, 0, 0, 0, 0x01]),
    };
    let link_local = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

    let _ = arp::ArpPacket::parse(data);
    if let Ok(frame) = arp::parse(data) {
        // The ARP codec is exact: what parses rebuilds to the same bytes.
        let rebuilt = arp::build(&frame);
        assert_eq!(data.get(..rebuilt.len()), Some(rebuilt.as_slice()));
        let _ = arp::conflict(&frame, us, |_| true);
        if let Some(reply) = arp::reply_for(&frame, us, |_| true) {
            let back = arp::parse(&reply).ok().map(|r| r.packet);
            assert_eq!(
                back.map(|p| (p.op, p.sender_mac)),
                Some((arp::Op::Reply, us))
            );
            assert_eq!(back.map(|p| p.sender_ip), Some(frame.packet.target_ip));
        }
    }

    for option in ndp::options(data) {
        if option.is_err() {
            break;
        }
    }
    match ndp::parse(data) {
        Ok(ndp::Message::Solicitation(ns)) => {
            let rebuilt = ndp::build_solicitation(&ns);
            assert_eq!(
                ndp::parse(&rebuilt).ok(),
                Some(ndp::Message::Solicitation(ns))
            );
            if let Some(reply) = ndp::reply_for(&ns, us, link_local, |_| true) {
                let na = match ndp::parse(&reply) {
                    Ok(ndp::Message::Advertisement(na)) => Some((na.target, na.target_lla)),
                    _ => None,
                };
                assert_eq!(na, Some((ns.target, Some(us))));
            }
        }
        Ok(ndp::Message::Advertisement(na)) => {
            let rebuilt = ndp::build_advertisement(&na);
            assert_eq!(
                ndp::parse(&rebuilt).ok(),
                Some(ndp::Message::Advertisement(na))
            );
            let _ = ndp::conflict(&na, us, |_| true);
        }
        Err(_) => {}
    }
}
