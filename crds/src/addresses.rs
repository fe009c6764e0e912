//! Parsing of pool address entries: CIDRs (`198.51.100.0/24`) and inclusive ranges
//! (`198.51.100.10-198.51.100.20`), IPv4 and IPv6, into one shape: an inclusive range.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// An inclusive range of addresses of one family. A CIDR becomes the range of all its
/// addresses, network and broadcast included, as in MetalLB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRange {
    pub family: Family,
    /// First address, as an integer (IPv4 in the low 32 bits).
    pub first: u128,
    /// Last address, inclusive.
    pub last: u128,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("{0:?} is neither a CIDR (198.51.100.0/24) nor a range (198.51.100.10-198.51.100.20)")]
    Malformed(String),
    #[error("range {0:?}: start is after end")]
    Reversed(String),
    #[error("range {0:?}: start and end are of different IP families")]
    MixedFamilies(String),
}

impl AddrRange {
    /// Parses one entry of `IPAddressPool.spec.addresses`.
    pub fn parse(entry: &str) -> Result<AddrRange, AddressError> {
        let s = entry.trim();
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (a.trim(), b.trim());
            let start: IpAddr = a
                .parse()
                .map_err(|_| AddressError::Malformed(entry.into()))?;
            let end: IpAddr = b
                .parse()
                .map_err(|_| AddressError::Malformed(entry.into()))?;
            if Family::of(&start) != Family::of(&end) {
                return Err(AddressError::MixedFamilies(entry.into()));
            }
            let (first, last) = (ip_to_u128(start), ip_to_u128(end));
            if first > last {
                return Err(AddressError::Reversed(entry.into()));
            }
            return Ok(AddrRange {
                family: Family::of(&start),
                first,
                last,
            });
        }
        let net: IpNet = s
            .parse()
            .map_err(|_| AddressError::Malformed(entry.into()))?;
        let net = net.trunc();
        Ok(AddrRange {
            family: Family::of(&net.network()),
            first: ip_to_u128(net.network()),
            last: ip_to_u128(net.broadcast()),
        })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == self.family && (self.first..=self.last).contains(&ip_to_u128(*ip))
    }

    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }

    /// Number of addresses, saturating at `u128::MAX` for a whole IPv6 space.
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    /// The shortest prefix length of the CIDRs that cover this range exactly; used to
    /// check `aggregationLength`, which must not be longer than any CIDR of a pool.
    pub fn shortest_prefix(&self) -> u8 {
        let bits: u32 = match self.family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        // The largest aligned block starting inside the range bounds the prefix.
        let mut best = bits as u8;
        let mut cur = self.first;
        loop {
            let align = if cur == 0 {
                bits
            } else {
                cur.trailing_zeros().min(bits)
            };
            let span = self.last - cur;
            // largest k with 2^k - 1 <= span and k <= align
            let fit = if span == u128::MAX {
                128
            } else {
                127 - (span + 1).leading_zeros()
            };
            let k = align.min(fit).min(bits);
            best = best.min((bits - k) as u8);
            let step = if k >= 128 { break } else { 1u128 << k };
            match cur.checked_add(step) {
                Some(next) if next <= self.last && next > cur => cur = next,
                _ => break,
            }
        }
        best
    }

    pub fn first_ip(&self) -> IpAddr {
        u128_to_ip(self.family, self.first)
    }

    pub fn last_ip(&self) -> IpAddr {
        u128_to_ip(self.family, self.last)
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first_ip(), self.last_ip())
    }
}

pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn u128_to_ip(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4((n as u32).into()),
        Family::V6 => IpAddr::V6(n.into()),
    }
}

/// IPv4 addresses ending in .0 or .255, which some old clients mistake for network or
/// broadcast addresses; pools with `avoidBuggyIPs` never hand them out.
pub fn is_buggy(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs_masking_host_bits() {
        let r = AddrRange::parse("198.51.100.7/24").unwrap();
        assert_eq!(r.first_ip().to_string(), "198.51.100.0");
        assert_eq!(r.last_ip().to_string(), "198.51.100.255");
        assert_eq!(r.size(), 256);
        let r = AddrRange::parse("2001:db8::1/127").unwrap();
        assert_eq!(r.first_ip().to_string(), "2001:db8::");
        assert_eq!(r.size(), 2);
    }

    #[test]
    fn parses_ranges_with_spaces() {
        let r = AddrRange::parse(" 198.51.100.10 - 198.51.100.20 ").unwrap();
        assert_eq!(r.size(), 11);
        assert!(r.contains(&"198.51.100.20".parse().unwrap()));
        assert!(!r.contains(&"198.51.100.21".parse().unwrap()));
        assert!(!r.contains(&"2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(matches!(
            AddrRange::parse("198.51.100.20-198.51.100.10"),
            Err(AddressError::Reversed(_))
        ));
        assert!(matches!(
            AddrRange::parse("198.51.100.1-2001:db8::1"),
            Err(AddressError::MixedFamilies(_))
        ));
        assert!(matches!(
            AddrRange::parse("198.51.100.1"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            AddrRange::parse("198.51.100.0/33"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            AddrRange::parse("pool"),
            Err(AddressError::Malformed(_))
        ));
    }

    #[test]
    fn shortest_prefix_of_ranges() {
        assert_eq!(
            AddrRange::parse("198.51.100.0/24")
                .unwrap()
                .shortest_prefix(),
            24
        );
        assert_eq!(
            AddrRange::parse("198.51.100.1-198.51.100.1")
                .unwrap()
                .shortest_prefix(),
            32
        );
        // .0-.5 = /30 + /31
        assert_eq!(
            AddrRange::parse("198.51.100.0-198.51.100.5")
                .unwrap()
                .shortest_prefix(),
            30
        );
        assert_eq!(
            AddrRange::parse("2001:db8::/64").unwrap().shortest_prefix(),
            64
        );
        assert_eq!(AddrRange::parse("0.0.0.0/0").unwrap().shortest_prefix(), 0);
        assert_eq!(AddrRange::parse("::/0").unwrap().shortest_prefix(), 0);
    }

    #[test]
    fn buggy_ips() {
        assert!(is_buggy(&"198.51.100.0".parse().unwrap()));
        assert!(is_buggy(&"198.51.100.255".parse().unwrap()));
        assert!(!is_buggy(&"198.51.100.1".parse().unwrap()));
        assert!(!is_buggy(&"2001:db8::ff".parse().unwrap()));
    }
}
