//! IPv6 Neighbor Discovery (RFC 4861) over Ethernet: parse Neighbor Solicitations and
//! Advertisements, answer solicitations for the addresses this node announces, and
//! build the unsolicited advertisements sent on takeover.
//!
//! Pure and sans-IO: bytes in, bytes out. Every check of RFC 4861 §7.1.1 (NS) and
//! §7.1.2 (NA) is applied on receive, and options are walked with explicit bounds
//! checks (pnet's option-length helper multiplies in `u8` and overflows for lengths
//! ≥ 32, i.e. options of 256 bytes or more; nothing here computes lengths in `u8`).
//!
//! Where this goes beyond MetalLB:
//! - solicitations without a Source Link-Layer Address option (unicast NUD probes,
//!   metallb#2920) are answered, to the frame's Ethernet source;
//! - DAD solicitations (unspecified source) for our addresses are answered to
//!   all-nodes, which defends the address;
//! - solicited answers carry Override=1 (see [`reply_for`] for why).
//!
//! IPv6 extension headers between the IPv6 header and ICMPv6 are not walked: ND
//! messages never need them, and a packet that has them is refused as not ICMPv6.

// Frames come from any host on the LAN: make every possible panic a compile error here.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::net::Ipv6Addr;

use thiserror::Error;

use super::ether::{ETHERTYPE_IPV6, EtherError, EthernetHeader, MacAddr};

/// ff02::1, the all-nodes multicast group.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// 33:33:00:00:00:01, the Ethernet group of [`ALL_NODES`] (RFC 2464 §7).
pub const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
/// The only hop limit ND accepts and sends: a packet that crossed a router arrives
/// with less, so 255 proves it came from the link (RFC 4861 §3.1).
pub const HOP_LIMIT: u8 = 255;
/// Length of an NS or NA before its options: type, code, checksum, flags/reserved,
/// target.
pub const MESSAGE_MIN_LEN: usize = 24;

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const TYPE_SOLICITATION: u8 = 135;
const TYPE_ADVERTISEMENT: u8 = 136;
const OPTION_SOURCE_LLA: u8 = 1;
const OPTION_TARGET_LLA: u8 = 2;
/// Option lengths count units of 8 bytes, header included.
const OPTION_UNIT: usize = 8;
const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// Why a frame is not a valid Neighbor Solicitation or Advertisement. Each variant is
/// one reason RFC 4861 §7.1 (or plain framing) says to drop the packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NdpError {
    #[error(transparent)]
    Ether(#[from] EtherError),
    #[error("IPv6 packet of {len} bytes is shorter than its {IPV6_HEADER_LEN}-byte header")]
    Ipv6Truncated { len: usize },
    #[error("IP version {0} is not 6")]
    IpVersion(u8),
    #[error("IPv6 payload length {claimed} exceeds the {available} bytes received")]
    PayloadLength { claimed: usize, available: usize },
    #[error("next header {0} is not ICMPv6 (58)")]
    NextHeader(u8),
    #[error("source address {0} is multicast")]
    MulticastSource(Ipv6Addr),
    #[error("ICMPv6 type {0} is not a Neighbor Solicitation (135) or Advertisement (136)")]
    NotNeighborDiscovery(u8),
    #[error("hop limit {0} is not 255: the packet did not originate on this link")]
    HopLimit(u8),
    #[error("ICMPv6 code {0} is not 0")]
    Code(u8),
    #[error("ICMPv6 message of {len} bytes is shorter than {MESSAGE_MIN_LEN}")]
    MessageTooShort { len: usize },
    #[error("ICMPv6 checksum {found:#06x} is wrong (expected {expected:#06x})")]
    Checksum { found: u16, expected: u16 },
    #[error("target address {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    #[error("option at offset {offset}: {remaining} byte(s) left, less than an option header")]
    OptionTruncated { offset: usize, remaining: usize },
    #[error("option type {kind} at offset {offset} has length 0")]
    OptionLengthZero { offset: usize, kind: u8 },
    #[error(
        "option type {kind} at offset {offset} claims {claimed} bytes, only {remaining} remain"
    )]
    OptionOverflow {
        offset: usize,
        kind: u8,
        claimed: usize,
        remaining: usize,
    },
    #[error("link-layer address option of {len} bytes is not the 8 bytes of an Ethernet one")]
    LinkLayerOptionLength { len: usize },
    #[error("DAD solicitation (unspecified source) sent to {0}, not a solicited-node group")]
    DadDestination(Ipv6Addr),
    #[error("DAD solicitation (unspecified source) carries a source link-layer address")]
    DadWithLinkLayerAddress,
    #[error("advertisement to multicast {0} has the Solicited flag set")]
    SolicitedToMulticast(Ipv6Addr),
}

/// A Neighbor Solicitation with the addresses it travelled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    /// `::` for Duplicate Address Detection.
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The address whose link-layer address is asked for.
    pub target: Ipv6Addr,
    /// The Source Link-Layer Address option: present in multicast solicitations,
    /// optional in unicast ones (NUD probes), absent in DAD.
    pub source_lla: Option<MacAddr>,
}

/// A Neighbor Advertisement with the addresses it travelled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation (confirms reachability).
    pub solicited: bool,
    /// O: replace a cached link-layer address with the one given.
    pub override_flag: bool,
    pub target: Ipv6Addr,
    /// The Target Link-Layer Address option.
    pub target_lla: Option<MacAddr>,
}

/// A Neighbor Discovery message this codec understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Solicitation(NeighborSolicitation),
    Advertisement(NeighborAdvertisement),
}

/// One ND option: its type and its body (the bytes after the type and length bytes;
/// 6 for an Ethernet link-layer address option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpOption<'a> {
    pub kind: u8,
    pub body: &'a [u8],
}

/// Walks the options area of an ND message; see [`options`].
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

/// The options in `area` (the bytes after an ND message's fixed part). Yields each
/// option, or one error and then stops. An option must have a length other than 0 and
/// fit in what is left; a trailing fragment shorter than an option header is an error,
/// as in Linux's `ndisc_parse_options`.
pub fn options(area: &[u8]) -> Options<'_> {
    Options {
        rest: area,
        offset: 0,
        failed: false,
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<NdpOption<'a>, NdpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let result = self.take();
        self.failed = result.is_err();
        Some(result)
    }
}

impl<'a> Options<'a> {
    fn take(&mut self) -> Result<NdpOption<'a>, NdpError> {
        let offset = self.offset;
        let remaining = self.rest.len();
        let &[kind, units, ..] = self.rest else {
            return Err(NdpError::OptionTruncated { offset, remaining });
        };
        if units == 0 {
            return Err(NdpError::OptionLengthZero { offset, kind });
        }
        // In usize: up to 255 × 8 = 2040 bytes, where a u8 product would wrap.
        let claimed = usize::from(units).saturating_mul(OPTION_UNIT);
        let Some((option, rest)) = self.rest.split_at_checked(claimed) else {
            return Err(NdpError::OptionOverflow {
                offset,
                kind,
                claimed,
                remaining,
            });
        };
        self.rest = rest;
        self.offset = offset.saturating_add(claimed);
        Ok(NdpOption {
            kind,
            body: option.get(2..).unwrap_or_default(),
        })
    }
}

/// Parses an untagged Ethernet frame carrying an IPv6 Neighbor Solicitation or
/// Advertisement, applying every validity check of RFC 4861 §7.1.
pub fn parse(frame: &[u8]) -> Result<Message, NdpError> {
    let (eth, packet) = EthernetHeader::parse_expecting(frame, ETHERTYPE_IPV6)?;
    let ip = Ipv6Packet::parse(packet)?;
    let icmp = ip.payload;

    let &ty = icmp
        .first()
        .ok_or(NdpError::MessageTooShort { len: icmp.len() })?;
    if ty != TYPE_SOLICITATION && ty != TYPE_ADVERTISEMENT {
        return Err(NdpError::NotNeighborDiscovery(ty));
    }
    if ip.hop_limit != HOP_LIMIT {
        return Err(NdpError::HopLimit(ip.hop_limit));
    }
    let too_short = NdpError::MessageTooShort { len: icmp.len() };
    let (&[_, code, c0, c1, flags, _, _, _], rest) =
        icmp.split_first_chunk::<8>().ok_or(too_short.clone())?;
    let (&target, option_area) = rest.split_first_chunk::<16>().ok_or(too_short)?;
    if code != 0 {
        return Err(NdpError::Code(code));
    }
    if !checksum_is_valid(ip.src, ip.dst, icmp) {
        return Err(NdpError::Checksum {
            found: u16::from_be_bytes([c0, c1]),
            expected: checksum(ip.src, ip.dst, icmp),
        });
    }
    let target = Ipv6Addr::from(target);
    if target.is_multicast() {
        return Err(NdpError::MulticastTarget(target));
    }

    // The link-layer address option this message type carries; others are ignored
    // (RFC 4861 §4.6), and of duplicates the first counts, as in Linux.
    let wanted = if ty == TYPE_SOLICITATION {
        OPTION_SOURCE_LLA
    } else {
        OPTION_TARGET_LLA
    };
    let mut lla = None;
    for option in options(option_area) {
        let option = option?;
        if option.kind == wanted && lla.is_none() {
            lla = Some(ethernet_lla(option.body)?);
        }
    }

    if ty == TYPE_SOLICITATION {
        if ip.src.is_unspecified() {
            if !is_solicited_node_multicast(ip.dst) {
                return Err(NdpError::DadDestination(ip.dst));
            }
            if lla.is_some() {
                return Err(NdpError::DadWithLinkLayerAddress);
            }
        }
        Ok(Message::Solicitation(NeighborSolicitation {
            eth_dst: eth.dst,
            eth_src: eth.src,
            src: ip.src,
            dst: ip.dst,
            target,
            source_lla: lla,
        }))
    } else {
        let solicited = flags & FLAG_SOLICITED != 0;
        if solicited && ip.dst.is_multicast() {
            return Err(NdpError::SolicitedToMulticast(ip.dst));
        }
        Ok(Message::Advertisement(NeighborAdvertisement {
            eth_dst: eth.dst,
            eth_src: eth.src,
            src: ip.src,
            dst: ip.dst,
            router: flags & FLAG_ROUTER != 0,
            solicited,
            override_flag: flags & FLAG_OVERRIDE != 0,
            target,
            target_lla: lla,
        }))
    }
}

/// The MAC in a link-layer address option body. On Ethernet the option is exactly one
/// unit (RFC 2464 §8); Linux drops solicitations whose option has another length.
fn ethernet_lla(body: &[u8]) -> Result<MacAddr, NdpError> {
    let mac: [u8; 6] = body
        .try_into()
        .map_err(|_| NdpError::LinkLayerOptionLength {
            len: body.len().saturating_add(2),
        })?;
    Ok(MacAddr(mac))
}

/// The parts of the IPv6 header ND needs, and the payload it delimits.
struct Ipv6Packet<'a> {
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    payload: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    fn parse(packet: &'a [u8]) -> Result<Self, NdpError> {
        let truncated = NdpError::Ipv6Truncated { len: packet.len() };
        let (&[vtc, _, _, _, l0, l1, next_header, hop_limit], rest) =
            packet.split_first_chunk::<8>().ok_or(truncated.clone())?;
        let (&src, rest) = rest.split_first_chunk::<16>().ok_or(truncated.clone())?;
        let (&dst, rest) = rest.split_first_chunk::<16>().ok_or(truncated)?;
        let version = vtc >> 4;
        if version != 6 {
            return Err(NdpError::IpVersion(version));
        }
        // The payload length delimits the packet: bytes after it are link padding.
        let claimed = usize::from(u16::from_be_bytes([l0, l1]));
        let payload = rest.get(..claimed).ok_or(NdpError::PayloadLength {
            claimed,
            available: rest.len(),
        })?;
        if next_header != NEXT_HEADER_ICMPV6 {
            return Err(NdpError::NextHeader(next_header));
        }
        let src = Ipv6Addr::from(src);
        if src.is_multicast() {
            return Err(NdpError::MulticastSource(src));
        }
        Ok(Ipv6Packet {
            hop_limit,
            src,
            dst: Ipv6Addr::from(dst),
            payload,
        })
    }
}

/// The ICMPv6 checksum for `message` sent from `src` to `dst` (RFC 4443 §2.3: the
/// one's complement sum over the IPv6 pseudo-header and the message). The message's
/// own checksum field (bytes 2 and 3) is read as zero, so this gives the value to
/// write there.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum = pseudo_header_sum(src, dst, message.len());
    // Bytes 0..2 and 4.. : the checksum field is skipped. Only the last piece may be
    // odd-sized, which the summing requires.
    sum.add(message.get(..2).unwrap_or(message));
    sum.add(message.get(4..).unwrap_or_default());
    !sum.fold()
}

/// Whether `message`, checksum field included, sums to all ones (RFC 1071): the
/// receiver's check, which accepts either encoding of a zero checksum.
pub fn checksum_is_valid(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> bool {
    let mut sum = pseudo_header_sum(src, dst, message.len());
    sum.add(message);
    sum.fold() == 0xffff
}

fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> OnesComplementSum {
    let mut sum = OnesComplementSum::default();
    sum.add(&src.octets());
    sum.add(&dst.octets());
    // An ICMPv6 message fits a 16-bit payload length; saturate rather than wrap.
    sum.add(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    sum.add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    sum
}

/// RFC 1071 Internet checksum accumulator, 16-bit big-endian words. A u64 cannot
/// overflow: it would take 2^48 words.
#[derive(Default)]
struct OnesComplementSum(u64);

impl OnesComplementSum {
    fn add(&mut self, bytes: &[u8]) {
        let words = bytes.chunks_exact(2);
        // A trailing odd byte is padded with a zero byte on the right.
        if let &[last] = words.remainder() {
            self.0 = self
                .0
                .wrapping_add(u64::from(u16::from_be_bytes([last, 0])));
        }
        for word in words {
            if let &[hi, lo] = word {
                self.0 = self.0.wrapping_add(u64::from(u16::from_be_bytes([hi, lo])));
            }
        }
    }

    fn fold(&self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff).wrapping_add(sum.wrapping_shr(16));
        }
        u16::try_from(sum).unwrap_or(u16::MAX)
    }
}

/// Builds the frame for `na`: hop limit 255, traffic class and flow label 0 (as Linux
/// sends ND), a Target Link-Layer Address option when `target_lla` is set, and the
/// correct checksum.
pub fn build_advertisement(na: &NeighborAdvertisement) -> Vec<u8> {
    let mut flags = 0;
    for (set, bit) in [
        (na.router, FLAG_ROUTER),
        (na.solicited, FLAG_SOLICITED),
        (na.override_flag, FLAG_OVERRIDE),
    ] {
        if set {
            flags |= bit;
        }
    }
    let option = na.target_lla.map(|mac| (OPTION_TARGET_LLA, mac));
    let message = nd_message(TYPE_ADVERTISEMENT, flags, na.target, option);
    frame(na.eth_dst, na.eth_src, na.src, na.dst, message)
}

/// Builds the frame for `ns` (with a Source Link-Layer Address option when
/// `source_lla` is set). The speaker does not need to solicit; this exists for tests,
/// fuzzing and the lab's probes.
pub fn build_solicitation(ns: &NeighborSolicitation) -> Vec<u8> {
    let option = ns.source_lla.map(|mac| (OPTION_SOURCE_LLA, mac));
    let message = nd_message(TYPE_SOLICITATION, 0, ns.target, option);
    frame(ns.eth_dst, ns.eth_src, ns.src, ns.dst, message)
}

/// An NS or NA message with a zero checksum: the checksum needs the addresses.
fn nd_message(ty: u8, flags: u8, target: Ipv6Addr, lla: Option<(u8, MacAddr)>) -> Vec<u8> {
    let mut message = Vec::with_capacity(MESSAGE_MIN_LEN.saturating_add(OPTION_UNIT));
    message.extend_from_slice(&[ty, 0, 0, 0, flags, 0, 0, 0]);
    message.extend_from_slice(&target.octets());
    if let Some((kind, mac)) = lla {
        message.extend_from_slice(&[kind, 1]);
        message.extend_from_slice(&mac.0);
    }
    message
}

fn frame(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mut message: Vec<u8>,
) -> Vec<u8> {
    let sum = checksum(src, dst, &message);
    if let Some(field) = message.get_mut(2..4) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
    let payload_len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(
        super::ether::HEADER_LEN
            .saturating_add(IPV6_HEADER_LEN)
            .saturating_add(message.len()),
    );
    EthernetHeader {
        dst: eth_dst,
        src: eth_src,
        ethertype: ETHERTYPE_IPV6,
    }
    .write(&mut out);
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&payload_len.to_be_bytes());
    out.extend_from_slice(&[NEXT_HEADER_ICMPV6, HOP_LIMIT]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&message);
    out
}

/// The Neighbor Advertisement this node sends in answer to `ns`, if any.
///
/// `source` is the IPv6 source of the answer: pass the link-local address of the
/// interface the solicitation arrived on. RFC 4861 §4.4 requires an address assigned
/// to the sending interface; the service IP usually lives on `lo` (kube-proxy style),
/// not on that interface, while a link-local address is always assigned to every IPv6
/// interface. (Linux answers from the target itself; passing the target as `source`
/// reproduces its bytes exactly.)
///
/// Answered, when `owned(target)` and the solicitation is for us (IPv6 destination
/// = the target or its solicited-node group; Ethernet destination = a group or our
/// MAC; not our own frame looped back):
/// - DAD (source `::`): to all-nodes ff02::1 / 33:33:00:00:00:01, Solicited=0
///   (RFC 4861 §7.2.4), which tells the prober the address is taken;
/// - otherwise unicast to the solicitation's source, Solicited=1, at the MAC in its
///   Source Link-Layer Address option, or, when the option is absent (unicast NUD
///   probes, which MetalLB leaves unanswered), at the frame's Ethernet source.
///
/// Every answer carries Router=0, our MAC as Target Link-Layer Address, and
/// Override=1. §7.2.4 asks for Override=1 for a unicast address the node answers for
/// itself (as opposed to anycast or proxied addresses) when the TLLA is included, and
/// a service IP moved between nodes needs it: under §7.2.5 a solicited NA with
/// Override=0 whose MAC differs from a cached one does not replace it, so after a
/// failover a client would keep the dead node's MAC until NUD fails. (MetalLB sends
/// Override=0 here; Linux sends Override=0 without a TLLA to unicast solicitations.)
pub fn reply_for(
    ns: &NeighborSolicitation,
    our_mac: MacAddr,
    source: Ipv6Addr,
    owned: impl Fn(Ipv6Addr) -> bool,
) -> Option<Vec<u8>> {
    let for_us_on_link = ns.eth_dst.is_multicast() || ns.eth_dst == our_mac;
    let for_us_in_ip = if ns.dst.is_multicast() {
        ns.dst == solicited_node_multicast(ns.target)
    } else {
        ns.dst == ns.target
    };
    let from_us = ns.eth_src == our_mac || ns.source_lla == Some(our_mac);
    if !for_us_on_link || !for_us_in_ip || from_us || !owned(ns.target) {
        return None;
    }
    let (eth_dst, dst, solicited) = if ns.src.is_unspecified() {
        (ALL_NODES_MAC, ALL_NODES, false)
    } else {
        let requester = ns.source_lla.unwrap_or(ns.eth_src);
        // No single host owns a group or zero MAC: a "unicast" answer would flood.
        if !requester.is_unicast() {
            return None;
        }
        (requester, ns.src, true)
    };
    Some(build_advertisement(&NeighborAdvertisement {
        eth_dst,
        eth_src: our_mac,
        src: source,
        dst,
        router: false,
        solicited,
        override_flag: true,
        target: ns.target,
        target_lla: Some(our_mac),
    }))
}

/// The unsolicited Neighbor Advertisement announcing `target` at `our_mac`, sent on
/// takeover: to all-nodes ff02::1 (33:33:00:00:00:01), Solicited=0, Override=1 so
/// neighbours replace a cached MAC (RFC 4861 §7.2.6), Router=0, Target Link-Layer
/// Address = `our_mac`. `source` as in [`reply_for`]: the interface's link-local address.
pub fn unsolicited_advertisement(our_mac: MacAddr, source: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    build_advertisement(&NeighborAdvertisement {
        eth_dst: ALL_NODES_MAC,
        eth_src: our_mac,
        src: source,
        dst: ALL_NODES,
        router: false,
        solicited: false,
        override_flag: true,
        target,
        target_lla: Some(our_mac),
    })
}

/// An IP we own that another station advertises: an NA for an owned target whose
/// link-layer address (the TLLA, else the Ethernet source) is not ours. This is how a
/// second announcer shows itself, worth a log line and a metric.
pub fn conflict(
    na: &NeighborAdvertisement,
    our_mac: MacAddr,
    owned: impl Fn(Ipv6Addr) -> bool,
) -> Option<Ipv6Addr> {
    let theirs = na.target_lla.unwrap_or(na.eth_src) != our_mac && na.eth_src != our_mac;
    (theirs && owned(na.target)).then_some(na.target)
}

/// The solicited-node multicast group of `ip`: ff02::1:ff00:0/104 followed by the low
/// 24 bits of `ip` (RFC 4291 §2.7.1). Solicitations for `ip` are sent there, so the
/// speaker joins it for every IPv6 address it announces.
pub fn solicited_node_multicast(ip: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = ip.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, a, b, c])
}

/// Whether `ip` is in ff02::1:ff00:0/104.
pub fn is_solicited_node_multicast(ip: Ipv6Addr) -> bool {
    matches!(
        ip.octets(),
        [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, _, _, _]
    )
}

/// The Ethernet group address of IPv6 multicast `group`: 33:33 followed by its low 32
/// bits (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let [.., a, b, c, d] = group.octets();
    MacAddr([0x33, 0x33, a, b, c, d])
}

/// The Ethernet group of `ip`'s solicited-node group: 33:33:ff followed by the low 24
/// bits of `ip`.
pub fn solicited_node_mac(ip: Ipv6Addr) -> MacAddr {
    multicast_mac(solicited_node_multicast(ip))
}
