//! An MRT TABLE_DUMP_V2 writer (RFC 6396 §4.3): one peer, one path per prefix. This is
//! how the benchmark hands tens of thousands of routes to GoBGP in one step
//! (`gobgp mrt inject global FILE`) instead of one CLI call per route.
//!
//! Two things GoBGP 3.10 needs that the RFC alone does not say:
//! - it decodes MP_REACH_NLRI in RIB entries in the full UPDATE layout (AFI, SAFI, next
//!   hop, reserved byte, NLRI), not the abbreviated one of §4.3.4 (it fails with
//!   "unknown route family" on that), so the full layout is written;
//! - `gobgp mrt inject` exits without waiting for the daemon to take the end of its
//!   stream, losing the last few hundred records (300 of 5,000 here). The dump therefore
//!   ends with `repeat_last` copies of the last record: re-adding an identical path
//!   changes nothing, and every distinct prefix is taken before the tail is cut.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

const TABLE_DUMP_V2: u16 = 13;
const PEER_INDEX_TABLE: u16 = 1;
const RIB_IPV4_UNICAST: u16 = 2;
const RIB_IPV6_UNICAST: u16 = 4;

fn record(out: &mut Vec<u8>, subtype: u16, body: &[u8]) {
    out.extend_from_slice(&0u32.to_be_bytes()); // timestamp: not used by readers here
    out.extend_from_slice(&TABLE_DUMP_V2.to_be_bytes());
    out.extend_from_slice(&subtype.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

fn attribute(out: &mut Vec<u8>, flags: u8, kind: u8, value: &[u8]) {
    out.push(flags);
    out.push(kind);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// A RIB dump of `prefixes`, each with ORIGIN IGP, AS_PATH `as_path` (4-byte ASNs, as
/// TABLE_DUMP_V2 requires) and a next hop (NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6),
/// the last record repeated `repeat_last` more times (see the module documentation).
/// `peer` is the one peer the entries are learnt from.
#[allow(clippy::too_many_arguments)]
pub fn rib_dump(
    peer: IpAddr,
    peer_asn: u32,
    peer_id: Ipv4Addr,
    prefixes: &[IpNet],
    as_path: &[u32],
    next_hop4: Ipv4Addr,
    next_hop6: std::net::Ipv6Addr,
    repeat_last: usize,
) -> Vec<u8> {
    assert!(as_path.len() <= 60, "one AS_PATH segment");
    let mut out = Vec::with_capacity(64 + prefixes.len() * 64);

    let mut t = Vec::new();
    t.extend_from_slice(&peer_id.octets()); // collector id
    t.extend_from_slice(&0u16.to_be_bytes()); // no view name
    t.extend_from_slice(&1u16.to_be_bytes()); // one peer
    let v6 = peer.is_ipv6();
    t.push(0x02 | u8::from(v6)); // AS4, address family
    t.extend_from_slice(&peer_id.octets());
    match peer {
        IpAddr::V4(a) => t.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => t.extend_from_slice(&a.octets()),
    }
    t.extend_from_slice(&peer_asn.to_be_bytes());
    record(&mut out, PEER_INDEX_TABLE, &t);

    let mut common = Vec::new();
    attribute(&mut common, 0x40, 1, &[0]); // ORIGIN IGP
    let mut path = vec![2u8, as_path.len() as u8]; // AS_SEQUENCE
    for asn in as_path {
        path.extend_from_slice(&asn.to_be_bytes());
    }
    attribute(&mut common, 0x40, 2, &path);

    for (seq, prefix) in prefixes.iter().enumerate() {
        let mut attrs = common.clone();
        let subtype = match prefix {
            IpNet::V4(_) => {
                attribute(&mut attrs, 0x40, 3, &next_hop4.octets());
                RIB_IPV4_UNICAST
            }
            IpNet::V6(p) => {
                let mut mp = vec![0, 2, 1, 16]; // AFI IPv6, SAFI unicast, next hop length
                mp.extend_from_slice(&next_hop6.octets());
                mp.push(0); // reserved
                mp.push(p.prefix_len());
                mp.extend_from_slice(
                    &p.network().octets()[..usize::from(p.prefix_len()).div_ceil(8)],
                );
                attribute(&mut attrs, 0x80, 14, &mp);
                RIB_IPV6_UNICAST
            }
        };
        let len = prefix.prefix_len();
        let bytes = usize::from(len).div_ceil(8);
        let mut b = Vec::with_capacity(16 + attrs.len());
        b.extend_from_slice(&(seq as u32).to_be_bytes());
        b.push(len);
        match prefix.network() {
            IpAddr::V4(a) => b.extend_from_slice(&a.octets()[..bytes]),
            IpAddr::V6(a) => b.extend_from_slice(&a.octets()[..bytes]),
        }
        b.extend_from_slice(&1u16.to_be_bytes()); // one entry
        b.extend_from_slice(&0u16.to_be_bytes()); // peer index
        b.extend_from_slice(&0u32.to_be_bytes()); // originated time
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
        record(&mut out, subtype, &b);
        if seq + 1 == prefixes.len() {
            for _ in 0..repeat_last {
                record(&mut out, subtype, &b);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn layout_of_peer_table_and_entries() {
        let d = rib_dump(
            "198.51.100.11".parse().unwrap(),
            64512,
            Ipv4Addr::new(198, 51, 100, 11),
            &[
                "203.0.113.0/25".parse().unwrap(),
                "2001:db8:1000::5/128".parse().unwrap(),
            ],
            &[64512],
            Ipv4Addr::new(198, 51, 100, 11),
            Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, 0x11),
            2,
        );
        // Peer index table: header 12 + collector 4 + view 2 + count 2 + peer 1+4+4+4.
        assert_eq!(&d[4..8], &[0, 13, 0, 1]);
        assert_eq!(u32::from_be_bytes(d[8..12].try_into().unwrap()), 21);
        assert_eq!(d[20], 0x02);
        let first = 12 + 21;
        assert_eq!(&d[first + 4..first + 8], &[0, 13, 0, 2]);
        // seq 0, /25 → 4 prefix bytes.
        assert_eq!(
            &d[first + 12..first + 21],
            &[0, 0, 0, 0, 25, 203, 0, 113, 0]
        );
        // ORIGIN, AS_PATH (2+4), NEXT_HOP: 4 + 9 + 7 = 20 bytes of attributes.
        assert_eq!(&d[first + 29..first + 31], &[0, 20]);
        let len1 = u32::from_be_bytes(d[first + 8..first + 12].try_into().unwrap()) as usize;
        let second = first + 12 + len1;
        assert_eq!(&d[second + 4..second + 8], &[0, 13, 0, 4]);
        assert_eq!(d[second + 16], 128);
        // The last attribute is MP_REACH_NLRI, full layout: AFI 2, SAFI 1, 16-byte next
        // hop, reserved, the /128.
        let len2 = u32::from_be_bytes(d[second + 8..second + 12].try_into().unwrap()) as usize;
        let rec2 = &d[second..second + 12 + len2];
        let mp = &rec2[rec2.len() - 41..];
        assert_eq!(&mp[..7], &[0x80, 14, 38, 0, 2, 1, 16]);
        assert_eq!(mp[22], 0x11);
        assert_eq!(&mp[23..25], &[0, 128]);
        // Repeated twice more, byte for byte.
        assert_eq!(d.len(), second + 3 * rec2.len());
        assert_eq!(&d[d.len() - rec2.len()..], rec2);
    }
}
