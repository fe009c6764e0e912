//! Which of this node's network interfaces may carry Layer2 announcements.
//!
//! Pure: the kernel's view arrives as plain [`Interface`] values (built by
//! [`crate::netlink`]), and [`eligible`] / [`check`] decide from those alone, so every rule
//! is tested without sockets.
//!
//! The rules follow MetalLB's announcer (`internal/layer2/announcer.go`), tightened where
//! FerroLB promises more:
//! - the interface is administratively up (`IFF_UP`), as in MetalLB;
//! - it has carrier (`IFF_LOWER_UP`, operstate up or unknown): MetalLB does not look at
//!   carrier, FerroLB does, so that an IP moves away from a node whose link is dead
//!   ("link-aware ownership");
//! - it is not enslaved to a bridge, bond or VRF: frames for the IP must be answered on the
//!   master, never on a port;
//! - it does not have `IFF_NOARP`, and it has an Ethernet MAC to answer with;
//! - its name matches none of the exclusion patterns ([`Exclusions`], MetalLB's
//!   `announcedInterfacesToExclude`, regular expressions matched anywhere in the name);
//! - when an L2Advertisement lists `interfaces`, its name is in that list.
//!
//! An eligible interface answers ARP if it has the `IFF_BROADCAST` flag
//! ([`Interface::arp_capable`]) and NDP if it has an IPv6 link-local address
//! ([`Interface::ndp_capable`]), which NDP packets must come from.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use regex::Regex;

/// One network interface as the kernel reports it, reduced to what announcing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The kernel's interface index (stable while the interface exists; names can change).
    pub index: u32,
    pub name: String,
    /// The Ethernet address; `None` for links that are not Ethernet (loopback, tunnels,
    /// point-to-point) or whose address is all zeros: ARP and NDP replies need one.
    pub mac: Option<[u8; 6]>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The link has carrier and is operational: `IFF_LOWER_UP` and `IFF_RUNNING` (operstate
    /// up or unknown). False as soon as the cable, the switch port or a veth peer goes down.
    pub carrier: bool,
    /// `IFF_NOARP`: the interface does not do address resolution.
    pub noarp: bool,
    /// `IFF_BROADCAST`: the link can broadcast, so ARP works on it.
    pub broadcast: bool,
    /// The index of the bridge, bond or VRF this interface is enslaved to (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// IPv4 addresses, ascending, each once.
    pub ipv4: Vec<Ipv4Addr>,
    /// Usable IPv6 addresses with their prefix lengths, ascending. Tentative (still in
    /// duplicate address detection) and DAD-failed addresses are left out: the kernel
    /// cannot send from them yet.
    pub ipv6: Vec<(Ipv6Addr, u8)>,
    /// The first usable link-local (`fe80::/10`) address, the source of NDP packets.
    pub link_local: Option<Ipv6Addr>,
}

impl Interface {
    /// Can answer ARP: the link broadcasts (MetalLB creates an ARP responder on the same
    /// condition).
    pub fn arp_capable(&self) -> bool {
        self.broadcast
    }

    /// Can answer NDP: it has a usable link-local address to send from.
    pub fn ndp_capable(&self) -> bool {
        self.link_local.is_some()
    }
}

/// Why an interface may not carry announcements. The variants are checked in this order,
/// so the reason given is the first rule that fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ineligible {
    /// Not named in the L2Advertisement's `interfaces`.
    NotListed,
    /// The name matches this exclusion pattern.
    Excluded(String),
    /// Administratively down.
    Down,
    /// Up, but without carrier.
    NoCarrier,
    /// Enslaved to the interface with this index.
    Enslaved(u32),
    /// `IFF_NOARP` is set.
    NoArp,
    /// No Ethernet address to answer with.
    NoMac,
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::NotListed => f.write_str("not listed in the L2Advertisement's interfaces"),
            Ineligible::Excluded(pattern) => write!(f, "name matches exclusion {pattern:?}"),
            Ineligible::Down => f.write_str("administratively down"),
            Ineligible::NoCarrier => f.write_str("no carrier"),
            Ineligible::Enslaved(master) => write!(f, "enslaved to interface index {master}"),
            Ineligible::NoArp => f.write_str("NOARP is set"),
            Ineligible::NoMac => f.write_str("no Ethernet address"),
        }
    }
}

/// The interface-name patterns never announced on (MetalLB's `announcedInterfacesToExclude`).
/// A pattern is a regular expression matched anywhere in the name, as Go's
/// `regexp.MatchString` does, so anchor it (`^veth`) to match a prefix.
#[derive(Clone, Debug)]
pub struct Exclusions {
    patterns: Vec<Regex>,
}

/// A pattern in the exclusion list is not a valid regular expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interface exclusion {pattern:?} is not a valid regular expression: {reason}")]
pub struct ExclusionError {
    pub pattern: String,
    pub reason: String,
}

impl Exclusions {
    /// MetalLB's default list: container, virtual-machine and CNI plumbing, and loopback.
    pub const METALLB_DEFAULTS: [&'static str; 14] = [
        "^docker.*",
        "^cbr.*",
        "^dummy.*",
        "^virbr.*",
        "^lxcbr.*",
        "^veth.*",
        "^lo$",
        "^cali.*",
        "^tunl.*",
        "^flannel.*",
        "^kube-ipvs.*",
        "^cni.*",
        "^nodelocaldns.*",
        "^lxc.*",
    ];

    /// Builds the list from regular expressions; the first invalid one is an error.
    pub fn new<I, S>(patterns: I) -> Result<Self, ExclusionError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|p| {
                let p = p.as_ref();
                Regex::new(p).map_err(|e| ExclusionError {
                    pattern: p.to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Exclusions { patterns })
    }

    /// Excludes nothing.
    pub fn none() -> Self {
        Exclusions {
            patterns: Vec::new(),
        }
    }

    /// MetalLB's defaults ([`Self::METALLB_DEFAULTS`]).
    pub fn metallb_defaults() -> Self {
        let patterns = Self::METALLB_DEFAULTS
            .iter()
            .filter_map(|p| Regex::new(p).ok())
            .collect();
        Exclusions { patterns }
    }

    /// The first pattern that matches `name`, if any.
    pub fn matching(&self, name: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|re| re.is_match(name))
            .map(Regex::as_str)
    }

    /// The patterns, in the order given.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(Regex::as_str)
    }
}

impl Default for Exclusions {
    fn default() -> Self {
        Self::metallb_defaults()
    }
}

/// Whether `iface` may carry announcements, and if not, the first rule it fails.
/// `allowed` is the L2Advertisement's `interfaces` list; `None` means every interface.
pub fn check(
    iface: &Interface,
    exclude: &Exclusions,
    allowed: Option<&BTreeSet<String>>,
) -> Result<(), Ineligible> {
    if allowed.is_some_and(|names| !names.contains(&iface.name)) {
        return Err(Ineligible::NotListed);
    }
    if let Some(pattern) = exclude.matching(&iface.name) {
        return Err(Ineligible::Excluded(pattern.to_owned()));
    }
    if !iface.up {
        return Err(Ineligible::Down);
    }
    if !iface.carrier {
        return Err(Ineligible::NoCarrier);
    }
    if let Some(master) = iface.master {
        return Err(Ineligible::Enslaved(master));
    }
    if iface.noarp {
        return Err(Ineligible::NoArp);
    }
    if iface.mac.is_none() {
        return Err(Ineligible::NoMac);
    }
    Ok(())
}

/// The interfaces that may carry announcements, in the order given (the kernel's index
/// order when the table comes from [`crate::netlink`]).
pub fn eligible<'a>(
    ifaces: &'a [Interface],
    exclude: &Exclusions,
    allowed: Option<&BTreeSet<String>>,
) -> Vec<&'a Interface> {
    ifaces
        .iter()
        .filter(|iface| check(iface, exclude, allowed).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(index: u32, name: &str) -> Interface {
        Interface {
            index,
            name: name.to_owned(),
            mac: Some([0x02, 0, 0, 0, 0, index as u8]),
            up: true,
            carrier: true,
            noarp: false,
            broadcast: true,
            master: None,
            ipv4: vec![Ipv4Addr::new(198, 51, 100, index as u8)],
            ipv6: vec![("fe80::1".parse().unwrap(), 64)],
            link_local: Some("fe80::1".parse().unwrap()),
        }
    }

    fn names<'a>(ifaces: &[&'a Interface]) -> Vec<&'a str> {
        ifaces.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn an_ordinary_ethernet_interface_is_eligible() {
        let ifaces = [eth(2, "eth0")];
        assert_eq!(
            names(&eligible(&ifaces, &Exclusions::default(), None)),
            ["eth0"]
        );
        assert!(ifaces[0].arp_capable());
        assert!(ifaces[0].ndp_capable());
    }

    #[test]
    fn each_rule_excludes_and_names_itself() {
        let ex = Exclusions::default();
        let cases: Vec<(Interface, Ineligible)> = vec![
            (
                Interface {
                    up: false,
                    carrier: false,
                    ..eth(2, "eth0")
                },
                Ineligible::Down,
            ),
            (
                Interface {
                    carrier: false,
                    ..eth(2, "eth0")
                },
                Ineligible::NoCarrier,
            ),
            (
                Interface {
                    master: Some(7),
                    ..eth(2, "eth0")
                },
                Ineligible::Enslaved(7),
            ),
            (
                Interface {
                    noarp: true,
                    ..eth(2, "eth0")
                },
                Ineligible::NoArp,
            ),
            (
                Interface {
                    mac: None,
                    ..eth(2, "eth0")
                },
                Ineligible::NoMac,
            ),
            (eth(2, "veth1234"), Ineligible::Excluded("^veth.*".into())),
            (eth(1, "lo"), Ineligible::Excluded("^lo$".into())),
        ];
        for (iface, reason) in cases {
            assert_eq!(check(&iface, &ex, None), Err(reason.clone()), "{iface:?}");
            assert!(
                eligible(std::slice::from_ref(&iface), &ex, None).is_empty(),
                "{reason}"
            );
        }
    }

    #[test]
    fn metallb_default_exclusions() {
        let ex = Exclusions::metallb_defaults();
        assert_eq!(ex.patterns().count(), Exclusions::METALLB_DEFAULTS.len());
        for name in [
            "docker0",
            "cbr0",
            "dummy0",
            "virbr0",
            "lxcbr0",
            "veth9f2c",
            "lo",
            "cali12ab",
            "tunl0",
            "flannel.1",
            "kube-ipvs0",
            "cni0",
            "nodelocaldns",
            "lxc1234",
        ] {
            assert!(ex.matching(name).is_some(), "{name} should be excluded");
        }
        // `^lo$` is anchored both ends; the others only at the start.
        for name in [
            "eth0", "ens3", "bond0", "br0", "lo0", "loopback", "my-veth", "enp1s0",
        ] {
            assert_eq!(ex.matching(name), None, "{name} should be eligible");
        }
    }

    #[test]
    fn patterns_match_anywhere_unless_anchored_as_in_go() {
        let ex = Exclusions::new(["vlan", "^br-"]).unwrap();
        assert_eq!(ex.matching("eth0.vlan100"), Some("vlan"));
        assert_eq!(ex.matching("br-lan"), Some("^br-"));
        assert_eq!(ex.matching("xbr-lan"), None);
    }

    #[test]
    fn configurable_and_empty_exclusions() {
        let ifaces = [eth(1, "lo"), eth(2, "veth0"), eth(3, "eth0")];
        assert_eq!(
            names(&eligible(&ifaces, &Exclusions::none(), None)),
            ["lo", "veth0", "eth0"]
        );
        let ex = Exclusions::new(["^eth"]).unwrap();
        assert_eq!(names(&eligible(&ifaces, &ex, None)), ["lo", "veth0"]);
    }

    #[test]
    fn an_invalid_pattern_is_an_error_naming_it() {
        let err = Exclusions::new(["^ok", "(unclosed"]).unwrap_err();
        assert_eq!(err.pattern, "(unclosed");
        assert!(err.to_string().contains("(unclosed"));
    }

    #[test]
    fn the_advertisement_list_restricts_and_exclusions_still_apply() {
        let ifaces = [eth(2, "eth0"), eth(3, "eth1"), eth(4, "veth0")];
        let allowed: BTreeSet<String> = ["eth1", "veth0", "absent"]
            .into_iter()
            .map(String::from)
            .collect();
        let ex = Exclusions::default();
        assert_eq!(names(&eligible(&ifaces, &ex, Some(&allowed))), ["eth1"]);
        assert_eq!(
            check(&ifaces[0], &ex, Some(&allowed)),
            Err(Ineligible::NotListed)
        );
        // Listing an interface does not override the exclusion list (as in MetalLB).
        assert_eq!(
            check(&ifaces[2], &ex, Some(&allowed)),
            Err(Ineligible::Excluded("^veth.*".into()))
        );
        // An empty list admits nothing; `None` admits everything.
        assert!(eligible(&ifaces, &ex, Some(&BTreeSet::new())).is_empty());
    }

    #[test]
    fn capabilities() {
        let plain = eth(2, "eth0");
        let no_broadcast = Interface {
            broadcast: false,
            ..plain.clone()
        };
        assert!(!no_broadcast.arp_capable());
        assert!(no_broadcast.ndp_capable());
        let no_link_local = Interface {
            link_local: None,
            ipv6: vec![("2001:db8::1".parse().unwrap(), 64)],
            ..plain
        };
        assert!(no_link_local.arp_capable());
        assert!(!no_link_local.ndp_capable());
    }

    #[test]
    fn the_order_given_is_kept() {
        let ifaces = [eth(5, "eth2"), eth(2, "eth0"), eth(3, "eth1")];
        assert_eq!(
            names(&eligible(&ifaces, &Exclusions::default(), None)),
            ["eth2", "eth0", "eth1"]
        );
    }
}
