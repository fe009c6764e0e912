//! What each interface must answer for: the election's Layer2 announcements laid over
//! this node's interface table (pure). An address goes on every eligible interface its
//! advertisements allow; IPv4 needs an ARP-capable interface, IPv6 an NDP-capable one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::election::Announcements;
use crate::interfaces::{self, Exclusions, Interface};

/// One interface and the addresses it answers for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub name: String,
    pub mac: [u8; 6],
    /// The link broadcasts, so ARP works on it.
    pub arp: bool,
    pub link_local: Option<std::net::Ipv6Addr>,
    pub ips: BTreeSet<IpAddr>,
}

/// By interface index.
pub type Desired = BTreeMap<u32, Owned>;

/// Addresses this node should announce but has no usable interface for (to report).
pub fn desired(
    ann: &Announcements,
    table: &[Interface],
    exclude: &Exclusions,
) -> (Desired, BTreeSet<IpAddr>) {
    let mut out = Desired::new();
    let mut homeless = BTreeSet::new();
    for (ip, a) in &ann.l2 {
        let mut placed = false;
        for iface in interfaces::eligible(table, exclude, a.interfaces.as_ref()) {
            let capable = match ip {
                IpAddr::V4(_) => iface.arp_capable(),
                IpAddr::V6(_) => iface.ndp_capable(),
            };
            let Some(mac) = iface.mac.filter(|_| capable) else {
                continue;
            };
            out.entry(iface.index)
                .or_insert_with(|| Owned {
                    name: iface.name.clone(),
                    mac,
                    arp: iface.arp_capable(),
                    link_local: iface.link_local,
                    ips: BTreeSet::new(),
                })
                .ips
                .insert(*ip);
            placed = true;
        }
        if !placed {
            homeless.insert(*ip);
        }
    }
    (out, homeless)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::L2Announcement;

    fn iface(index: u32, name: &str, carrier: bool) -> Interface {
        Interface {
            index,
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            up: true,
            carrier,
            noarp: false,
            broadcast: true,
            master: None,
            ipv4: vec![],
            ipv6: vec![],
            link_local: Some(format!("fe80::{index}").parse().unwrap()),
        }
    }

    #[test]
    fn addresses_go_to_allowed_eligible_interfaces() {
        let mut ann = Announcements::default();
        ann.l2
            .insert("198.51.100.200".parse().unwrap(), L2Announcement::default());
        ann.l2.insert(
            "2001:db8::200".parse().unwrap(),
            L2Announcement {
                interfaces: Some(["eth1".to_string()].into()),
                ..Default::default()
            },
        );
        let table = [
            iface(1, "lo", true),
            iface(2, "eth0", true),
            iface(3, "eth1", true),
            iface(4, "eth2", false),
        ];
        let (d, homeless) = desired(&ann, &table, &Exclusions::metallb_defaults());
        assert!(homeless.is_empty());
        assert_eq!(d.keys().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(d[&2].ips.len(), 1, "eth0: the IPv4 only");
        assert_eq!(d[&3].ips.len(), 2, "eth1: both");
        // Carrier lost everywhere: nothing can be announced, and it is said.
        let down = [iface(2, "eth0", false)];
        let (d, homeless) = desired(&ann, &down, &Exclusions::metallb_defaults());
        assert!(d.is_empty());
        assert_eq!(homeless.len(), 2);
    }
}
