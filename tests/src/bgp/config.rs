//! One description of a router's BGP set-up, rendered by each daemon module into its own
//! configuration language.

use std::net::{IpAddr, Ipv4Addr};

/// A configured neighbour of the daemon under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub asn: u32,
    /// The daemon waits for this neighbour to connect and never dials it.
    pub passive: bool,
    /// TCP MD5 signature key (RFC 2385).
    pub md5: Option<String>,
    /// eBGP multihop with this TTL; `None`: directly connected.
    pub multihop: Option<u8>,
    /// BFD with this neighbour (the daemon's BGP session follows it).
    pub bfd: Option<Bfd>,
}

/// BFD timers of a neighbour: the same interval both ways, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bfd {
    pub interval_ms: u32,
    pub multiplier: u32,
    /// BFD going down starts graceful restart instead of closing the session (BIRD's
    /// `bfd graceful`).
    pub graceful: bool,
}

impl Neighbor {
    pub fn new(address: impl Into<IpAddr>, asn: u32) -> Neighbor {
        Neighbor {
            address: address.into(),
            asn,
            passive: false,
            md5: None,
            multihop: None,
            bfd: None,
        }
    }

    pub fn passive(mut self) -> Neighbor {
        self.passive = true;
        self
    }

    pub fn md5(mut self, key: &str) -> Neighbor {
        self.md5 = Some(key.into());
        self
    }

    pub fn bfd(mut self, interval_ms: u32, multiplier: u32) -> Neighbor {
        self.bfd = Some(Bfd {
            interval_ms,
            multiplier,
            graceful: false,
        });
        self
    }

    /// With [`Neighbor::bfd`]: BFD down means graceful restart, not a closed session.
    pub fn bfd_graceful(mut self) -> Neighbor {
        if let Some(b) = &mut self.bfd {
            b.graceful = true;
        }
        self
    }

    pub fn multihop(mut self, ttl: u8) -> Neighbor {
        self.multihop = Some(ttl);
        self
    }
}

/// The daemon's own BGP identity and its neighbours. Every daemon imports everything
/// it receives (eBGP policy checks off) and exports nothing unless it is the sender in a
/// test or benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Where it listens and the source of its sessions.
    pub local_address: IpAddr,
    pub neighbors: Vec<Neighbor>,
    /// Hold time offered (keepalive a third of it). Short, so tests are fast.
    pub hold_time: u16,
    /// Advertise the graceful restart capability (helper mode), restart time 120 s.
    pub graceful_restart: bool,
}

impl RouterConfig {
    pub fn new(asn: u32, router_id: Ipv4Addr, local_address: impl Into<IpAddr>) -> RouterConfig {
        RouterConfig {
            asn,
            router_id,
            local_address: local_address.into(),
            neighbors: Vec::new(),
            hold_time: 9,
            graceful_restart: false,
        }
    }

    pub fn neighbor(mut self, n: Neighbor) -> RouterConfig {
        self.neighbors.push(n);
        self
    }

    pub fn keepalive(&self) -> u16 {
        self.hold_time / 3
    }
}
