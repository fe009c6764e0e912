//! The interface table the watcher maintains: a full dump, then every change applied in
//! the order the kernel sent it.
//!
//! Pure. Addresses are kept apart from links because the kernel reports them in separate
//! messages, possibly before the link they belong to is known; [`Table::interfaces`]
//! joins them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decode::{Addr, Change};
use crate::interfaces::Interface;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Table {
    links: BTreeMap<u32, Interface>,
    /// IPv4 addresses are identified by address and prefix length: the kernel lets the
    /// same address exist twice on a link with different prefixes.
    v4: BTreeMap<u32, BTreeSet<(Ipv4Addr, u8)>>,
    /// IPv6 addresses are identified by address alone: a prefix change replaces it.
    v6: BTreeMap<u32, BTreeMap<Ipv6Addr, u8>>,
}

impl Table {
    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Link(link) => {
                self.links.insert(link.index, link);
            }
            Change::LinkGone(index) => {
                self.links.remove(&index);
                // The kernel withdraws the addresses first, but an index can be reused by
                // a new link, which must not inherit anything.
                self.v4.remove(&index);
                self.v6.remove(&index);
            }
            Change::Addr(a) if !a.usable => self.remove(&a),
            Change::Addr(Addr {
                index, ip, prefix, ..
            }) => match ip {
                IpAddr::V4(ip) => {
                    self.v4.entry(index).or_default().insert((ip, prefix));
                }
                IpAddr::V6(ip) => {
                    self.v6.entry(index).or_default().insert(ip, prefix);
                }
            },
            Change::AddrGone(a) => self.remove(&a),
        }
    }

    fn remove(&mut self, a: &Addr) {
        match a.ip {
            IpAddr::V4(ip) => {
                if let Some(set) = self.v4.get_mut(&a.index) {
                    set.remove(&(ip, a.prefix));
                    if set.is_empty() {
                        self.v4.remove(&a.index);
                    }
                }
            }
            IpAddr::V6(ip) => {
                if let Some(map) = self.v6.get_mut(&a.index) {
                    map.remove(&ip);
                    if map.is_empty() {
                        self.v6.remove(&a.index);
                    }
                }
            }
        }
    }

    /// Every known link with its addresses, by ascending index.
    pub(crate) fn interfaces(&self) -> Vec<Interface> {
        self.links
            .values()
            .map(|link| {
                let mut ipv4: Vec<Ipv4Addr> = self
                    .v4
                    .get(&link.index)
                    .map(|set| set.iter().map(|(ip, _)| *ip).collect())
                    .unwrap_or_default();
                // The set is ordered by (address, prefix), so equal addresses are adjacent.
                ipv4.dedup();
                let ipv6: Vec<(Ipv6Addr, u8)> = self
                    .v6
                    .get(&link.index)
                    .map(|map| map.iter().map(|(ip, p)| (*ip, *p)).collect())
                    .unwrap_or_default();
                let link_local = ipv6
                    .iter()
                    .map(|(ip, _)| *ip)
                    .find(Ipv6Addr::is_unicast_link_local);
                Interface {
                    ipv4,
                    ipv6,
                    link_local,
                    ..link.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str) -> Interface {
        Interface {
            index,
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            up: true,
            carrier: true,
            noarp: false,
            broadcast: true,
            master: None,
            ipv4: vec![],
            ipv6: vec![],
            link_local: None,
        }
    }

    fn addr(index: u32, ip: &str, prefix: u8) -> Addr {
        Addr {
            index,
            ip: ip.parse().unwrap(),
            prefix,
            usable: true,
        }
    }

    #[test]
    fn links_and_addresses_join_in_index_order() {
        let mut t = Table::default();
        // An address may arrive before its link.
        t.apply(Change::Addr(addr(3, "198.51.100.12", 24)));
        t.apply(Change::Link(link(3, "eth1")));
        t.apply(Change::Link(link(2, "eth0")));
        t.apply(Change::Addr(addr(2, "198.51.100.11", 24)));
        t.apply(Change::Addr(addr(2, "2001:db8::11", 64)));
        t.apply(Change::Addr(addr(2, "fe80::1", 64)));
        let ifs = t.interfaces();
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[0].name, "eth0");
        assert_eq!(
            ifs[0].ipv4,
            vec!["198.51.100.11".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            ifs[0].ipv6,
            vec![
                ("2001:db8::11".parse().unwrap(), 64),
                ("fe80::1".parse().unwrap(), 64)
            ]
        );
        assert_eq!(ifs[0].link_local, Some("fe80::1".parse().unwrap()));
        assert_eq!(
            ifs[1].ipv4,
            vec!["198.51.100.12".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(ifs[1].link_local, None);
    }

    #[test]
    fn a_link_change_keeps_its_addresses() {
        let mut t = Table::default();
        t.apply(Change::Link(link(2, "eth0")));
        t.apply(Change::Addr(addr(2, "198.51.100.11", 24)));
        t.apply(Change::Link(Interface {
            carrier: false,
            ..link(2, "eth0")
        }));
        let ifs = t.interfaces();
        assert!(!ifs[0].carrier);
        assert_eq!(ifs[0].ipv4.len(), 1);
    }

    #[test]
    fn ipv4_same_address_two_prefixes() {
        let mut t = Table::default();
        t.apply(Change::Link(link(2, "eth0")));
        t.apply(Change::Addr(addr(2, "198.51.100.11", 24)));
        t.apply(Change::Addr(addr(2, "198.51.100.11", 32)));
        assert_eq!(t.interfaces()[0].ipv4.len(), 1, "listed once");
        t.apply(Change::AddrGone(addr(2, "198.51.100.11", 32)));
        assert_eq!(t.interfaces()[0].ipv4.len(), 1, "the /24 remains");
        t.apply(Change::AddrGone(addr(2, "198.51.100.11", 24)));
        assert!(t.interfaces()[0].ipv4.is_empty());
    }

    #[test]
    fn ipv6_prefix_change_replaces_and_tentative_hides() {
        let mut t = Table::default();
        t.apply(Change::Link(link(2, "eth0")));
        t.apply(Change::Addr(addr(2, "2001:db8::11", 64)));
        t.apply(Change::Addr(addr(2, "2001:db8::11", 80)));
        assert_eq!(
            t.interfaces()[0].ipv6,
            vec![("2001:db8::11".parse().unwrap(), 80)]
        );
        // A link-local still in DAD is not usable; once DAD is done the kernel re-sends it.
        let tentative = Addr {
            usable: false,
            ..addr(2, "fe80::1", 64)
        };
        t.apply(Change::Addr(tentative.clone()));
        assert_eq!(t.interfaces()[0].link_local, None);
        t.apply(Change::Addr(addr(2, "fe80::1", 64)));
        assert!(t.interfaces()[0].ndp_capable());
        // DAD failure after the fact withdraws it again.
        t.apply(Change::Addr(tentative));
        assert!(!t.interfaces()[0].ndp_capable());
    }

    #[test]
    fn a_removed_link_forgets_its_addresses_even_if_the_index_returns() {
        let mut t = Table::default();
        t.apply(Change::Link(link(2, "eth0")));
        t.apply(Change::Addr(addr(2, "198.51.100.11", 24)));
        t.apply(Change::LinkGone(2));
        assert!(t.interfaces().is_empty());
        t.apply(Change::Link(link(2, "eth9")));
        assert!(t.interfaces()[0].ipv4.is_empty());
        // Removing what is not there is harmless.
        t.apply(Change::AddrGone(addr(7, "198.51.100.1", 24)));
        t.apply(Change::LinkGone(7));
        assert_eq!(t.interfaces().len(), 1);
    }
}
