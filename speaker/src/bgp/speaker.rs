//! BGP in the speaker's main loop: each recomputation (the world, what the election
//! gives this node to announce over BGP, the node's interfaces) becomes the set of
//! sessions this node holds and each peer's Adj-RIB-Out, which the [`Manager`] runs.
//! Which sessions and with what settings is decided here, purely ([`specs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tokio::sync::watch;
use tracing::warn;

use super::rib;
use super::session::{Manager, SessionSpec, SessionStatus};
use crate::election::BgpAnnouncement;
use crate::interfaces::Interface;
use crate::world::World;

/// One session in the speaker's report: what people need to see, without the message
/// counters (which change with every keepalive).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub peer: String,
    pub address: String,
    pub state: String,
    pub advertised: rib::Prefixes,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsendable: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_down: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The BFD session's state; `None`: no BFD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
    /// Times BFD went from Up to Down (each closed the session).
    #[serde(skip_serializing_if = "is_zero")]
    pub bfd_downs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<SessionStatus> for SessionSummary {
    fn from(s: SessionStatus) -> SessionSummary {
        SessionSummary {
            peer: s.peer,
            address: s.address,
            state: s.state,
            advertised: s.advertised,
            unsendable: s.unsendable,
            last_down: s.last_down,
            last_error: s.last_error,
            bfd: s.bfd,
            bfd_downs: s.bfd_downs,
        }
    }
}

/// The node's own addresses for router IDs and next hops: the first IPv4 and the first
/// global IPv6 address of its Ethernet interfaces (loopback and tunnels left out), the
/// node's known address (`InternalIP`) first when it is one of them.
pub fn node_addresses(
    table: &[Interface],
    known: Option<IpAddr>,
) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let ether = || table.iter().filter(|i| i.mac.is_some() && i.up);
    let v4s: Vec<Ipv4Addr> = ether().flat_map(|i| i.ipv4.iter().copied()).collect();
    let v6s: Vec<Ipv6Addr> = ether()
        .flat_map(|i| i.ipv6.iter().map(|(a, _)| *a))
        .filter(|a| !a.is_unicast_link_local() && !a.is_loopback())
        .collect();
    let v4 = match known {
        Some(IpAddr::V4(ip)) if v4s.contains(&ip) || v4s.is_empty() => Some(ip),
        _ => v4s.first().copied(),
    };
    let v6 = match known {
        Some(IpAddr::V6(ip)) if v6s.contains(&ip) || v6s.is_empty() => Some(ip),
        _ => v6s.first().copied(),
    };
    (v4, v6)
}

/// The sessions this node holds: one per BGPPeer selecting it, by name. A session
/// keeps the node's addresses only where it needs them (a router ID, the next hop of the
/// other family on a dual-stack session), so that an unrelated address change does not
/// restart it.
pub fn specs(
    world: &World,
    my_node: &str,
    node_v4: Option<Ipv4Addr>,
    node_v6: Option<Ipv6Addr>,
) -> BTreeMap<String, SessionSpec> {
    rib::node_peers(world, my_node)
        .into_iter()
        .map(|p| {
            let c = &p.session;
            let router_id_from_node =
                c.router_id.is_none() && !matches!(c.source_address, Some(IpAddr::V4(_)));
            let v4_over_v6 = c.dual_stack && c.address.is_ipv6();
            let v6_over_v4 = c.dual_stack && c.address.is_ipv4();
            (
                p.name.clone(),
                SessionSpec {
                    name: p.name.clone(),
                    config: c.clone(),
                    node_v4: node_v4.filter(|_| router_id_from_node || v4_over_v6),
                    node_v6: node_v6.filter(|_| v6_over_v4),
                },
            )
        })
        .collect()
}

/// This node's BGP half.
pub struct Bgp {
    manager: Manager,
    /// Problems already logged, so each is said once.
    said: BTreeSet<String>,
    /// The last plan: what each peer is meant to hold, and the problems.
    plan: rib::Plan,
}

impl Bgp {
    /// Starts with no sessions, listening for peers on `listen_port` (none: dial only).
    pub fn start(listen_port: Option<u16>) -> Bgp {
        let (manager, error) = Manager::new(listen_port);
        if let Some(e) = error {
            warn!("BGP: {e}; sessions will only dial (passive peers cannot connect)");
        }
        Bgp {
            manager,
            said: BTreeSet::new(),
            plan: rib::Plan::default(),
        }
    }

    /// Brings the sessions in line with the world. `announced` is `None` until the
    /// speaker has settled: no session starts before it knows what to send, so a router
    /// never sees an empty table followed by the real one.
    pub fn update(
        &mut self,
        world: &World,
        my_node: &str,
        known_address: Option<IpAddr>,
        announced: Option<&BTreeMap<IpAddr, BgpAnnouncement>>,
        table: &[Interface],
    ) {
        let Some(announced) = announced else { return };
        let (v4, v6) = node_addresses(table, known_address);
        let wanted = specs(world, my_node, v4, v6);
        let plan = rib::plan(world, my_node, announced);
        for p in &plan.problems {
            let text = p.to_string();
            if self.said.insert(text.clone()) {
                warn!("BGP: {text}");
            }
        }
        self.manager.reconcile(&wanted, &plan.peers);
        self.plan = plan;
    }

    /// The last plan ([`Bgp::update`]): empty until the speaker has settled.
    pub fn plan(&self) -> &rib::Plan {
        &self.plan
    }

    /// Reads every session's status when called, from any thread: for the metrics,
    /// which read it on each scrape.
    pub fn status_source(&self) -> impl Fn() -> Vec<SessionStatus> + Send + Sync + 'static {
        self.manager.status_source()
    }

    /// Changes whenever a session's state, prefixes or errors change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.manager.changes()
    }

    pub fn statuses(&self) -> Vec<SessionStatus> {
        self.manager.statuses()
    }

    pub fn summaries(&self) -> Vec<SessionSummary> {
        self.statuses().into_iter().map(Into::into).collect()
    }

    /// Cease to every peer (or, with graceful restart, just close), then return.
    pub async fn shutdown(self) {
        self.manager.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, mac: bool, v4: &[&str], v6: &[&str]) -> Interface {
        Interface {
            index: 1,
            name: name.into(),
            mac: mac.then_some([2, 0, 0, 0, 0, 1]),
            up: true,
            carrier: true,
            noarp: false,
            broadcast: mac,
            master: None,
            ipv4: v4.iter().map(|a| a.parse().unwrap()).collect(),
            ipv6: v6.iter().map(|a| (a.parse().unwrap(), 64)).collect(),
            link_local: None,
        }
    }

    #[test]
    fn node_addresses_prefer_the_known_one_and_skip_loopback_and_link_local() {
        let table = [
            iface("lo", false, &["127.0.0.1", "203.0.113.10"], &["::1"]),
            iface(
                "eth0",
                true,
                &["198.51.100.11", "198.51.100.12"],
                &["fe80::1", "2001:db8:51::11"],
            ),
        ];
        assert_eq!(
            node_addresses(&table, Some("198.51.100.12".parse().unwrap())),
            (
                Some("198.51.100.12".parse().unwrap()),
                Some("2001:db8:51::11".parse().unwrap())
            )
        );
        assert_eq!(
            node_addresses(&table, None).0,
            Some("198.51.100.11".parse().unwrap())
        );
        assert_eq!(node_addresses(&table[..1], None), (None, None));
    }

    #[test]
    fn sessions_keep_only_the_node_addresses_they_use() {
        use crate::bgp::config::{Peer, PeerAsn, SessionConfig};
        use crate::world::Node;
        use std::time::Duration;

        let session = |address: &str, dual_stack: bool, router_id: Option<&str>| SessionConfig {
            my_asn: 64512,
            peer_asn: PeerAsn::Fixed(64500),
            address: address.parse().unwrap(),
            port: 179,
            source_address: None,
            router_id: router_id.map(|r| r.parse().unwrap()),
            hold_time: Duration::from_secs(90),
            keepalive_time: Duration::from_secs(30),
            connect_time: Duration::from_secs(120),
            ebgp_multihop: false,
            password: None,
            password_secret: None,
            graceful_restart: false,
            passive: false,
            dual_stack,
            bfd: None,
        };
        let mut w = World::default();
        w.insert_node(Node {
            name: "node1".into(),
            labels: Default::default(),
            ready: true,
            network_unavailable: false,
        });
        for (name, c) in [
            ("v4", session("198.51.100.1", false, None)),
            (
                "v4-with-id",
                session("198.51.100.1", false, Some("192.0.2.9")),
            ),
            ("v4-dual", session("198.51.100.1", true, Some("192.0.2.9"))),
            ("v6", session("2001:db8:51::1", false, None)),
            (
                "v6-dual",
                session("2001:db8:51::1", true, Some("192.0.2.9")),
            ),
        ] {
            let peer = Peer {
                name: name.into(),
                node_selectors: Default::default(),
                session: c,
                bfd_profile: None,
            };
            w.bgp_peers.insert(name.into(), peer);
        }
        let v4: Ipv4Addr = "198.51.100.11".parse().unwrap();
        let v6: Ipv6Addr = "2001:db8:51::11".parse().unwrap();
        let specs = specs(&w, "node1", Some(v4), Some(v6));
        let kept = |name: &str| (specs[name].node_v4, specs[name].node_v6);
        // The router ID comes from the node unless configured.
        assert_eq!(kept("v4"), (Some(v4), None));
        assert_eq!(kept("v4-with-id"), (None, None));
        // IPv6 routes over an IPv4 session need an IPv6 next hop, and vice versa.
        assert_eq!(kept("v4-dual"), (None, Some(v6)));
        assert_eq!(kept("v6"), (Some(v4), None));
        assert_eq!(kept("v6-dual"), (Some(v4), None));
        assert!(super::specs(&w, "node2", Some(v4), None).is_empty());
    }
}
