//! ARP (RFC 826) over Ethernet for IPv4: parse what arrives, answer requests for the
//! addresses this node announces, and build the gratuitous frames sent on takeover.
//!
//! Pure and sans-IO: bytes in, bytes out. The socket that moves them lives in the shell.
//! Built frames are 42 bytes, as Linux builds them; the NIC driver pads them to the
//! 60-byte Ethernet minimum.

// Frames come from any host on the LAN: make every possible panic a compile error here.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::net::Ipv4Addr;

use thiserror::Error;

use super::ether::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, EtherError, EthernetHeader, MacAddr};

/// Length of an Ethernet/IPv4 ARP packet (after the Ethernet header).
pub const PACKET_LEN: usize = 28;
/// Length of the frames this module builds.
pub const FRAME_LEN: usize = ether::HEADER_LEN + PACKET_LEN;

/// ARP hardware type of Ethernet.
const HTYPE_ETHERNET: u16 = 1;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;

/// Why bytes are not an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArpError {
    #[error(transparent)]
    Ether(#[from] EtherError),
    #[error("ARP packet of {len} bytes is shorter than {PACKET_LEN}")]
    Truncated { len: usize },
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    HardwareType(u16),
    #[error("ARP protocol type {0:#06x} is not IPv4 (0x0800)")]
    ProtocolType(u16),
    #[error("ARP address lengths {hardware}/{protocol} are not Ethernet/IPv4 (6/4)")]
    AddressLengths { hardware: u8, protocol: u8 },
    #[error("ARP operation {0} is neither request (1) nor reply (2)")]
    Operation(u16),
}

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Request,
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub op: Op,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// An ARP packet with the Ethernet addresses it travelled with. The destination
/// tells a request meant for us from one we overheard; the source, our own frames
/// looped back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub packet: ArpPacket,
}

impl ArpPacket {
    /// Parses an ARP packet (the Ethernet payload). Bytes after the 28 of the packet
    /// are padding and ignored.
    pub fn parse(body: &[u8]) -> Result<Self, ArpError> {
        let truncated = ArpError::Truncated { len: body.len() };
        let (&fixed, _padding) = body.split_first_chunk::<PACKET_LEN>().ok_or(truncated)?;
        #[rustfmt::skip]
        let [
            ht0, ht1, pt0, pt1, hlen, plen, op0, op1,
            s0, s1, s2, s3, s4, s5, si0, si1, si2, si3,
            t0, t1, t2, t3, t4, t5, ti0, ti1, ti2, ti3,
        ] = fixed;
        let htype = u16::from_be_bytes([ht0, ht1]);
        if htype != HTYPE_ETHERNET {
            return Err(ArpError::HardwareType(htype));
        }
        let ptype = u16::from_be_bytes([pt0, pt1]);
        if ptype != ETHERTYPE_IPV4 {
            return Err(ArpError::ProtocolType(ptype));
        }
        if (hlen, plen) != (6, 4) {
            return Err(ArpError::AddressLengths {
                hardware: hlen,
                protocol: plen,
            });
        }
        let op = match u16::from_be_bytes([op0, op1]) {
            OP_REQUEST => Op::Request,
            OP_REPLY => Op::Reply,
            other => return Err(ArpError::Operation(other)),
        };
        Ok(ArpPacket {
            op,
            sender_mac: MacAddr([s0, s1, s2, s3, s4, s5]),
            sender_ip: Ipv4Addr::new(si0, si1, si2, si3),
            target_mac: MacAddr([t0, t1, t2, t3, t4, t5]),
            target_ip: Ipv4Addr::new(ti0, ti1, ti2, ti3),
        })
    }

    /// Appends the 28 packet bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let op = match self.op {
            Op::Request => OP_REQUEST,
            Op::Reply => OP_REPLY,
        };
        out.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        out.extend_from_slice(&op.to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
    }

    /// An ARP probe (RFC 5227 §2.1.1): a request from a host that has no address yet
    /// and is checking whether `target_ip` is free.
    pub fn is_probe(&self) -> bool {
        self.op == Op::Request && self.sender_ip.is_unspecified()
    }

    /// A gratuitous packet (announcement): the sender states its own mapping, so sender
    /// and target IP are the same and nobody is asked anything.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Parses an untagged Ethernet frame carrying ARP.
pub fn parse(frame: &[u8]) -> Result<ArpFrame, ArpError> {
    let (eth, body) = EthernetHeader::parse_expecting(frame, ETHERTYPE_ARP)?;
    Ok(ArpFrame {
        eth_dst: eth.dst,
        eth_src: eth.src,
        packet: ArpPacket::parse(body)?,
    })
}

/// Builds the 42-byte frame for `frame`.
pub fn build(frame: &ArpFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_LEN);
    EthernetHeader {
        dst: frame.eth_dst,
        src: frame.eth_src,
        ethertype: ETHERTYPE_ARP,
    }
    .write(&mut out);
    frame.packet.write(&mut out);
    out
}

/// The reply this node sends to `request`, if any: our MAC for a target IP we own,
/// unicast to the requester (as Linux does: Ethernet destination = the ARP sender
/// hardware address).
///
/// Not answered:
/// - replies, and other hosts' gratuitous packets (sender IP = target IP): there is no
///   question in them. If such a packet claims one of our IPs, [`conflict`] says so;
/// - requests whose Ethernet destination is neither broadcast nor our MAC: they are
///   meant for another host and reached us only through flooding or a promiscuous
///   port (MetalLB drops these too);
/// - our own frames looped back, and requests from a group or zero MAC, which no
///   single host owns, so a "unicast" reply to it would be flooded;
/// - requests for IPs `owned` says we do not announce.
///
/// An ARP probe (sender IP 0.0.0.0, RFC 5227) for an IP we own is answered: that
/// defends the address against a host about to configure it. The reply's target IP is
/// then 0.0.0.0, exactly as Linux answers probes.
pub fn reply_for(
    request: &ArpFrame,
    our_mac: MacAddr,
    owned: impl Fn(Ipv4Addr) -> bool,
) -> Option<Vec<u8>> {
    let asked = &request.packet;
    let for_us = request.eth_dst.is_broadcast() || request.eth_dst == our_mac;
    let from_us = request.eth_src == our_mac || asked.sender_mac == our_mac;
    if asked.op != Op::Request
        || asked.is_gratuitous()
        || !for_us
        || from_us
        || !asked.sender_mac.is_unicast()
        || !owned(asked.target_ip)
    {
        return None;
    }
    Some(build(&ArpFrame {
        eth_dst: asked.sender_mac,
        eth_src: our_mac,
        packet: ArpPacket {
            op: Op::Reply,
            sender_mac: our_mac,
            sender_ip: asked.target_ip,
            target_mac: asked.sender_mac,
            target_ip: asked.sender_ip,
        },
    }))
}

/// An IP we own that another station claims: any ARP packet, request or reply, whose
/// sender IP is ours and whose sender MAC is not. This is how a second announcer
/// shows itself (split brain, or kube-proxy in IPVS mode answering without strictARP),
/// worth a log line and a metric. Probes (sender 0.0.0.0) claim nothing.
pub fn conflict(
    frame: &ArpFrame,
    our_mac: MacAddr,
    owned: impl Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    let packet = &frame.packet;
    let theirs = packet.sender_mac != our_mac && frame.eth_src != our_mac;
    (theirs && !packet.sender_ip.is_unspecified() && owned(packet.sender_ip))
        .then_some(packet.sender_ip)
}

/// A gratuitous ARP request announcing `ip` at `mac`: broadcast, sender IP = target
/// IP = `ip`, target MAC 00:00:00:00:00:00 (RFC 5227 §2.3 ARP Announcement; the same
/// bytes Linux sends with `arp_notify`). Hosts that only learn from requests update on
/// this one.
pub fn gratuitous_request(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    gratuitous(Op::Request, MacAddr::ZERO, mac, ip)
}

/// A gratuitous ARP reply announcing `ip` at `mac`: broadcast, sender IP = target IP =
/// `ip`, target MAC = `mac` (RFC 5944 §4.6). Sent with the request, as MetalLB does,
/// because some hosts and switches update only on replies.
///
/// MetalLB puts ff:ff:ff:ff:ff:ff in the target MAC of both packets; receivers ignore
/// that field in gratuitous packets, so the RFC values are used here.
pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    gratuitous(Op::Reply, mac, mac, ip)
}

fn gratuitous(op: Op, target_mac: MacAddr, mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    build(&ArpFrame {
        eth_dst: MacAddr::BROADCAST,
        eth_src: mac,
        packet: ArpPacket {
            op,
            sender_mac: mac,
            sender_ip: ip,
            target_mac,
            target_ip: ip,
        },
    })
}
