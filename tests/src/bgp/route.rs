//! A route as a router received it, in one shape whatever the daemon: so a test can
//! assert on the exact attributes the speaker sent.

use std::net::IpAddr;

use ipnet::IpNet;

/// One path to a prefix, as a daemon holds it (ECMP: one per sending peer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub prefix: Option<IpNet>,
    /// The neighbour it came from, when the daemon says.
    pub peer: Option<IpAddr>,
    pub next_hop: Option<IpAddr>,
    /// AS numbers in order (sets flattened).
    pub as_path: Vec<u32>,
    /// `igp`, `egp` or `incomplete`.
    pub origin: Option<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    /// `A:B`, sorted.
    pub communities: Vec<String>,
    /// `A:B:C`, sorted.
    pub large_communities: Vec<String>,
}

impl Route {
    pub fn prefix(&self) -> IpNet {
        self.prefix.expect("parsed routes have a prefix")
    }

    pub(crate) fn normalize(&mut self) {
        if let Some(o) = &self.origin {
            self.origin = Some(o.to_ascii_lowercase());
        }
        self.communities.sort_by_key(|c| community_key(c));
        self.communities.dedup();
        self.large_communities.sort();
        self.large_communities.dedup();
    }
}

fn community_key(c: &str) -> (u32, u32) {
    let mut it = c.split(':').map(|p| p.parse::<u32>().unwrap_or(u32::MAX));
    (it.next().unwrap_or(u32::MAX), it.next().unwrap_or(u32::MAX))
}

/// `A:B` for a community carried as one 32-bit number.
pub fn community_from_u32(v: u32) -> String {
    format!("{}:{}", v >> 16, v & 0xffff)
}

/// FRR's names for well-known communities (RFC 1997, 7999, 8326, 9494) as `A:B`.
pub fn well_known(name: &str) -> Option<&'static str> {
    Some(match name {
        "gracefulShutdown" => "65535:0",
        "acceptown" | "acceptOwn" => "65535:1",
        "llgrStale" => "65535:6",
        "noLlgr" => "65535:7",
        "blackhole" => "65535:666",
        "noExport" => "65535:65281",
        "noAdvertise" => "65535:65282",
        "localAs" => "65535:65283",
        "noPeer" => "65535:65284",
        _ => return None,
    })
}

/// Routes sorted by prefix then peer, so comparisons do not depend on daemon order.
pub fn sorted(mut routes: Vec<Route>) -> Vec<Route> {
    routes.sort_by_key(|r| (r.prefix, r.peer));
    routes
}
