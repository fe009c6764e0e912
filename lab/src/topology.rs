//! The lab's fixed shape: which hosts exist, their namespaces, addresses and MACs.
//!
//! Pure data, derived from the number of nodes alone, so every subcommand (and every
//! test) computes the same names and addresses without reading anything.
//!
//! ```text
//!            flb-lan: bridge br0 (ports p-router, p-node1 … p-nodeN, p-client)
//!   flb-router .1 / ::1    flb-nodeK .(10+K) / ::(10+K)    flb-client .100 / ::100
//! ```
//! LAN 198.51.100.0/24 and 2001:db8:51::/64 (documentation ranges only).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Namespace holding the bridge.
pub const LAN_NS: &str = "flb-lan";
/// The bridge, inside [`LAN_NS`].
pub const BRIDGE: &str = "br0";
/// Every namespace of the lab starts with this.
pub const NS_PREFIX: &str = "flb-";
/// Each host's LAN interface, inside its namespace.
pub const HOST_IF: &str = "eth0";
/// The IPv4 LAN.
pub const LAN4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);
pub const LAN4_LEN: u8 = 24;
/// The IPv6 LAN.
pub const LAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0);
pub const LAN6_LEN: u8 = 64;
/// The router's AS; the nodes (speakers) use [`NODE_ASN`].
pub const ROUTER_ASN: u32 = 64500;
pub const NODE_ASN: u32 = 64512;
/// At most this many nodes: .11 … .60 stay clear of the client (.100) and the Layer2
/// pool (.200-.250).
pub const MAX_NODES: usize = 50;

/// What a host is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Router,
    /// Node number, from 1.
    Node(usize),
    Client,
}

/// One host on the LAN: a namespace with `eth0` plugged into the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub role: Role,
    /// Short name: `router`, `node1`, `client`.
    pub name: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    pub mac: String,
}

impl Host {
    fn new(role: Role) -> Host {
        let (name, last) = match role {
            Role::Router => ("router".to_string(), 1u8),
            Role::Node(k) => (format!("node{k}"), 10 + k as u8),
            Role::Client => ("client".to_string(), 100),
        };
        // "::11" for .11: the decimal digits read as hex, so the addresses look alike.
        let v6_last = u16::from_str_radix(&last.to_string(), 16).expect("decimal digits are hex");
        Host {
            role,
            ipv4: Ipv4Addr::new(198, 51, 100, last),
            ipv6: Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, v6_last),
            // Locally administered, "flb" in the middle, the IPv4 host part last.
            mac: format!("02:66:6c:62:00:{last:02x}"),
            name,
        }
    }

    /// `flb-NAME`.
    pub fn ns(&self) -> String {
        format!("{NS_PREFIX}{}", self.name)
    }

    /// The IPv6 link-local address of `eth0` (EUI-64 from the MAC): routers learn IPv6
    /// next hops as these.
    pub fn link_local(&self) -> Ipv6Addr {
        let m: Vec<u8> = self
            .mac
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).expect("MACs are built from hex bytes"))
            .collect();
        let w = |a: u8, b: u8| u16::from_be_bytes([a, b]);
        Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            w(m[0] ^ 0x02, m[1]),
            w(m[2], 0xff),
            w(0xfe, m[3]),
            w(m[4], m[5]),
        )
    }

    /// The bridge port in [`LAN_NS`]: `p-NAME`.
    pub fn port(&self) -> String {
        format!("p-{}", self.name)
    }
}

/// The hosts of a lab with `nodes` nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub router: Host,
    pub nodes: Vec<Host>,
    pub client: Host,
}

impl Topology {
    pub fn new(nodes: usize) -> Topology {
        Topology {
            router: Host::new(Role::Router),
            nodes: (1..=nodes).map(|k| Host::new(Role::Node(k))).collect(),
            client: Host::new(Role::Client),
        }
    }

    /// Router, nodes, client: the order they are built in.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        std::iter::once(&self.router)
            .chain(&self.nodes)
            .chain(std::iter::once(&self.client))
    }

    /// Every namespace, the LAN's first.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(LAN_NS.to_string())
            .chain(self.hosts().map(Host::ns))
            .collect()
    }

    /// The node called `name` (`node2` or `flb-node2`).
    pub fn node(&self, name: &str) -> Option<&Host> {
        let name = name.strip_prefix(NS_PREFIX).unwrap_or(name);
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The host whose MAC this is (any case).
    pub fn host_by_mac(&self, mac: &str) -> Option<&Host> {
        self.hosts().find(|h| h.mac.eq_ignore_ascii_case(mac))
    }

    /// The host with this LAN address (global or link-local).
    pub fn host_by_ip(&self, ip: std::net::IpAddr) -> Option<&Host> {
        self.hosts()
            .find(|h| ip == h.ipv4 || ip == h.ipv6 || ip == h.link_local())
    }
}

/// Whether a namespace is one the lab creates: `flb-lan`, `flb-router`, `flb-client` or
/// `flb-nodeK`. Other `flb-*` names (other tests' namespaces) are never the lab's.
pub fn is_lab_namespace(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(NS_PREFIX) else {
        return false;
    };
    matches!(rest, "lan" | "router" | "client")
        || rest
            .strip_prefix("node")
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `ip` lies on the lab's LAN (answered with ARP/NDP rather than routed).
pub fn on_lan(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.octets()[..3] == LAN4.octets()[..3],
        std::net::IpAddr::V6(v6) => v6.segments()[..4] == LAN6.segments()[..4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_plan() {
        let t = Topology::new(3);
        assert_eq!(t.router.ipv4.to_string(), "198.51.100.1");
        assert_eq!(t.router.ipv6.to_string(), "2001:db8:51::1");
        assert_eq!(t.nodes[0].ipv4.to_string(), "198.51.100.11");
        assert_eq!(t.nodes[0].ipv6.to_string(), "2001:db8:51::11");
        assert_eq!(t.nodes[2].name, "node3");
        assert_eq!(t.nodes[2].ns(), "flb-node3");
        assert_eq!(t.nodes[2].port(), "p-node3");
        assert_eq!(t.client.ipv4.to_string(), "198.51.100.100");
        assert_eq!(t.client.ipv6.to_string(), "2001:db8:51::100");
        assert_eq!(t.client.mac, "02:66:6c:62:00:64");
        assert_eq!(
            t.namespaces(),
            [
                "flb-lan",
                "flb-router",
                "flb-node1",
                "flb-node2",
                "flb-node3",
                "flb-client"
            ]
        );
    }

    #[test]
    fn the_largest_lab_stays_clear_of_client_and_pool() {
        let t = Topology::new(MAX_NODES);
        let last = t.nodes.last().unwrap();
        assert_eq!(last.ipv4.to_string(), "198.51.100.60");
        assert_eq!(last.ipv6.to_string(), "2001:db8:51::60");
        assert!(last.port().len() <= 15, "interface names fit IFNAMSIZ");
        let macs: std::collections::BTreeSet<_> = t.hosts().map(|h| h.mac.clone()).collect();
        assert_eq!(macs.len(), MAX_NODES + 2);
    }

    #[test]
    fn lookups() {
        let t = Topology::new(2);
        assert_eq!(t.node("flb-node2").unwrap().name, "node2");
        assert_eq!(t.node("node1").unwrap().name, "node1");
        assert!(t.node("node3").is_none());
        assert!(t.node("router").is_none());
        assert_eq!(t.host_by_mac("02:66:6C:62:00:0C").unwrap().name, "node2");
        assert_eq!(
            t.host_by_ip("2001:db8:51::12".parse().unwrap())
                .unwrap()
                .name,
            "node2"
        );
        assert_eq!(
            t.nodes[0].link_local().to_string(),
            "fe80::66:6cff:fe62:b",
            "as the kernel derives it"
        );
        assert_eq!(
            t.host_by_ip("fe80::66:6cff:fe62:c".parse().unwrap())
                .unwrap()
                .name,
            "node2"
        );
        assert!(on_lan("198.51.100.200".parse().unwrap()));
        assert!(on_lan("2001:db8:51::200".parse().unwrap()));
        assert!(!on_lan("203.0.113.5".parse().unwrap()));
        assert!(!on_lan("2001:db8:113::5".parse().unwrap()));
    }

    #[test]
    fn lab_namespaces_only() {
        for ns in Topology::new(12).namespaces() {
            assert!(is_lab_namespace(&ns), "{ns}");
        }
        for other in [
            "flb-nl-123-a",
            "flb-node",
            "flb-node1x",
            "flb-lan2",
            "lan",
            "node1",
        ] {
            assert!(!is_lab_namespace(other), "{other}");
        }
    }
}
