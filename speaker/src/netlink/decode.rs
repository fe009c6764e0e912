//! From rtnetlink messages to plain changes of the interface table.
//!
//! Only what [`Interface`] needs is read; everything else in a message is ignored. A
//! message this module cannot make sense of is an error, so that the watcher re-lists
//! rather than carry on with a table it can no longer vouch for.

use std::net::IpAddr;

use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::interfaces::Interface;

/// One address of one interface, as a message announces or withdraws it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
    /// False while the address is tentative (duplicate address detection running) or
    /// after DAD failed: the kernel will not send from it.
    pub usable: bool,
}

/// What a message changes in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A link appeared or changed: the message carries its whole state (addresses aside,
    /// which `link.ipv4` / `link.ipv6` leave empty).
    Link(Interface),
    /// The link with this index is gone (deleted or moved to another namespace).
    LinkGone(u32),
    Addr(Addr),
    AddrGone(Addr),
}

/// A message that claims to be about links or addresses but lacks what every such
/// message from the kernel carries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink message: {0}")]
pub struct Malformed(pub String);

/// The change a message makes; `None` for messages that change nothing the table holds.
pub(crate) fn decode(msg: &RouteNetlinkMessage) -> Result<Option<Change>, Malformed> {
    match msg {
        // Bridge ports also get AF_BRIDGE link messages (RTM_NEWLINK and RTM_DELLINK on
        // joining and leaving a bridge) that carry only bridge attributes: they describe
        // the port, not the link, and must not replace or delete it.
        RouteNetlinkMessage::NewLink(m) if m.header.interface_family == AddressFamily::Unspec => {
            link(m).map(|l| Some(Change::Link(l)))
        }
        RouteNetlinkMessage::DelLink(m) if m.header.interface_family == AddressFamily::Unspec => {
            Ok(Some(Change::LinkGone(m.header.index)))
        }
        RouteNetlinkMessage::NewAddress(m) => Ok(addr(m)?.map(Change::Addr)),
        RouteNetlinkMessage::DelAddress(m) => Ok(addr(m)?.map(Change::AddrGone)),
        _ => Ok(None),
    }
}

fn link(m: &LinkMessage) -> Result<Interface, Malformed> {
    let index = m.header.index;
    let mut name = None;
    let mut hw = None;
    let mut master = None;
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(a) => hw = Some(a.as_slice()),
            // Index 0 never names a device; treat it as "no master".
            LinkAttribute::Controller(i) if *i != 0 => master = Some(*i),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| Malformed(format!("link {index} has no name")))?;
    // Only Ethernet addresses can answer ARP and NDP; an all-zero one (loopback reports
    // one) cannot either.
    let mac = match (m.header.link_layer_type, hw) {
        (LinkLayerType::Ether, Some(a)) => <[u8; 6]>::try_from(a)
            .ok()
            .filter(|mac| mac.iter().any(|b| *b != 0)),
        _ => None,
    };
    let flags = m.header.flags;
    Ok(Interface {
        index,
        name,
        mac,
        up: flags.contains(LinkFlags::Up),
        // IFF_LOWER_UP is the carrier bit; IFF_RUNNING is set when operstate is up or
        // unknown, so together they also rule out "dormant" (carrier, but not usable yet).
        carrier: flags.contains(LinkFlags::LowerUp) && flags.contains(LinkFlags::Running),
        noarp: flags.contains(LinkFlags::Noarp),
        broadcast: flags.contains(LinkFlags::Broadcast),
        master,
        ipv4: Vec::new(),
        ipv6: Vec::new(),
        link_local: None,
    })
}

fn addr(m: &AddressMessage) -> Result<Option<Addr>, Malformed> {
    let family = m.header.family;
    if family != AddressFamily::Inet && family != AddressFamily::Inet6 {
        return Ok(None);
    }
    let mut local = None;
    let mut address = None;
    // The 8-bit header field holds only the low flags; IFA_FLAGS, when present, holds all.
    let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    let index = m.header.index;
    // On point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL ours; elsewhere the
    // kernel sends IFA_ADDRESS (and, for IPv4, an equal IFA_LOCAL).
    let ip = local
        .or(address)
        .ok_or_else(|| Malformed(format!("address message for link {index} has no address")))?;
    let family_matches = match ip {
        IpAddr::V4(_) => family == AddressFamily::Inet,
        IpAddr::V6(_) => family == AddressFamily::Inet6,
    };
    let max_prefix = if ip.is_ipv4() { 32 } else { 128 };
    if !family_matches || m.header.prefix_len > max_prefix {
        return Err(Malformed(format!(
            "address {ip}/{} on link {index} does not fit its family {family:?}",
            m.header.prefix_len
        )));
    }
    Ok(Some(Addr {
        index,
        ip,
        prefix: m.header.prefix_len,
        usable: !flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn link_msg(index: u32, name: &str, flags: LinkFlags) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.link_layer_type = LinkLayerType::Ether;
        m.header.flags = flags;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes
            .push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]));
        m
    }

    fn addr_msg(family: AddressFamily, index: u32, ip: IpAddr, prefix: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = family;
        m.header.index = index;
        m.header.prefix_len = prefix;
        m.attributes.push(AddressAttribute::Address(ip));
        m
    }

    fn up_flags() -> LinkFlags {
        LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running | LinkFlags::Broadcast
    }

    #[test]
    fn a_link_with_carrier() {
        let m = link_msg(3, "eth0", up_flags());
        let Some(Change::Link(l)) = decode(&RouteNetlinkMessage::NewLink(m)).unwrap() else {
            panic!("expected a link")
        };
        assert_eq!(l.index, 3);
        assert_eq!(l.name, "eth0");
        assert_eq!(l.mac, Some([2, 0, 0, 0, 0, 1]));
        assert!(l.up && l.carrier && l.broadcast && !l.noarp);
        assert_eq!(l.master, None);
    }

    #[test]
    fn carrier_needs_lower_up_and_running() {
        for flags in [
            LinkFlags::Up | LinkFlags::Broadcast,
            LinkFlags::Up | LinkFlags::LowerUp,
            // Dormant: carrier, but operstate not up, so the kernel clears IFF_RUNNING.
            LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Dormant,
            LinkFlags::Up | LinkFlags::Running,
        ] {
            let m = link_msg(3, "eth0", flags);
            let Some(Change::Link(l)) = decode(&RouteNetlinkMessage::NewLink(m)).unwrap() else {
                panic!("expected a link")
            };
            assert!(!l.carrier, "{flags:?}");
        }
    }

    #[test]
    fn master_noarp_and_mac_rules() {
        let mut m = link_msg(4, "eth1", up_flags() | LinkFlags::Noarp);
        m.attributes.push(LinkAttribute::Controller(9));
        let Some(Change::Link(l)) = decode(&RouteNetlinkMessage::NewLink(m)).unwrap() else {
            panic!("expected a link")
        };
        assert_eq!(l.master, Some(9));
        assert!(l.noarp);

        // Loopback: a six-byte all-zero address and a non-Ethernet link type.
        let mut lo = link_msg(1, "lo", up_flags());
        lo.header.link_layer_type = LinkLayerType::Loopback;
        lo.attributes = vec![
            LinkAttribute::IfName("lo".into()),
            LinkAttribute::Address(vec![0; 6]),
        ];
        let Some(Change::Link(l)) = decode(&RouteNetlinkMessage::NewLink(lo.clone())).unwrap()
        else {
            panic!("expected a link")
        };
        assert_eq!(l.mac, None);
        lo.header.link_layer_type = LinkLayerType::Ether;
        let Some(Change::Link(l)) = decode(&RouteNetlinkMessage::NewLink(lo)).unwrap() else {
            panic!("expected a link")
        };
        assert_eq!(l.mac, None, "an all-zero MAC cannot answer");

        // A tunnel with a four-byte "hardware" address.
        let mut tun = link_msg(5, "ipip0", up_flags());
        tun.attributes = vec![
            LinkAttribute::IfName("ipip0".into()),
            LinkAttribute::Address(vec![198, 51, 100, 1]),
        ];
        let Some(Change::Link(l)) = decode(&RouteNetlinkMessage::NewLink(tun)).unwrap() else {
            panic!("expected a link")
        };
        assert_eq!(l.mac, None);
    }

    #[test]
    fn bridge_port_messages_are_not_link_changes() {
        let mut m = link_msg(4, "eth1", up_flags());
        m.header.interface_family = AddressFamily::Bridge;
        assert_eq!(
            decode(&RouteNetlinkMessage::NewLink(m.clone())).unwrap(),
            None
        );
        assert_eq!(decode(&RouteNetlinkMessage::DelLink(m)).unwrap(), None);
        let m = link_msg(4, "eth1", up_flags());
        assert_eq!(
            decode(&RouteNetlinkMessage::DelLink(m)).unwrap(),
            Some(Change::LinkGone(4))
        );
    }

    #[test]
    fn a_link_without_name_is_malformed() {
        let mut m = link_msg(4, "eth1", up_flags());
        m.attributes
            .retain(|a| !matches!(a, LinkAttribute::IfName(_)));
        assert!(decode(&RouteNetlinkMessage::NewLink(m)).is_err());
    }

    #[test]
    fn addresses_local_first_and_tentative_unusable() {
        let v4: IpAddr = Ipv4Addr::new(198, 51, 100, 11).into();
        let peer: IpAddr = Ipv4Addr::new(198, 51, 100, 1).into();
        let mut m = addr_msg(AddressFamily::Inet, 3, peer, 32);
        m.attributes.push(AddressAttribute::Local(v4));
        assert_eq!(
            decode(&RouteNetlinkMessage::NewAddress(m)).unwrap(),
            Some(Change::Addr(Addr {
                index: 3,
                ip: v4,
                prefix: 32,
                usable: true
            }))
        );

        let v6: IpAddr = "2001:db8::11".parse::<Ipv6Addr>().unwrap().into();
        let mut m = addr_msg(AddressFamily::Inet6, 3, v6, 64);
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Tentative));
        let Some(Change::Addr(a)) = decode(&RouteNetlinkMessage::NewAddress(m.clone())).unwrap()
        else {
            panic!("expected an address")
        };
        assert!(!a.usable);
        m.attributes = vec![
            AddressAttribute::Address(v6),
            AddressAttribute::Flags(AddressFlags::Permanent | AddressFlags::Nodad),
        ];
        let Some(Change::AddrGone(a)) = decode(&RouteNetlinkMessage::DelAddress(m)).unwrap() else {
            panic!("expected a removal")
        };
        assert!(a.usable);
        assert_eq!(a.prefix, 64);
    }

    #[test]
    fn inconsistent_addresses_are_malformed() {
        let v6: IpAddr = "2001:db8::11".parse::<Ipv6Addr>().unwrap().into();
        let v4: IpAddr = Ipv4Addr::new(198, 51, 100, 11).into();
        for m in [
            addr_msg(AddressFamily::Inet, 3, v6, 64),
            addr_msg(AddressFamily::Inet, 3, v4, 33),
        ] {
            assert!(decode(&RouteNetlinkMessage::NewAddress(m)).is_err());
        }
        let mut none = addr_msg(AddressFamily::Inet, 3, v4, 24);
        none.attributes.clear();
        assert!(decode(&RouteNetlinkMessage::NewAddress(none)).is_err());
        // Other families (e.g. MPLS, DECnet) are none of our business.
        let other = addr_msg(AddressFamily::Mpls, 3, v4, 24);
        assert_eq!(
            decode(&RouteNetlinkMessage::NewAddress(other)).unwrap(),
            None
        );
    }
}
