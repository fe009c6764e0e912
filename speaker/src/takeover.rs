//! Failovers: which addresses this node has just taken over from a node that failed.
//!
//! An address counts as taken over when, between two consecutive decisions of this
//! speaker,
//! 1. this node starts announcing it (Layer2), and
//! 2. at the earlier decision a Service behind it was announced by another node, and
//! 3. that node has failed: with gossip, it was declared down by failure detection
//!    (suspected, and not refuted in time), not because it announced its leave; without
//!    gossip, its Node is no longer Ready.
//!
//! A graceful hand-off (the other speaker shut down cleanly and left the membership), a
//! move caused by configuration (selectors, pools, endpoints) and the first decision
//! after start are not failovers.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::election::{Announcements, NotAnnounced};
use crate::world::World;

/// The addresses of `now` taken over from a failed node (see the module doc), given the
/// previous decision `before`. `failed` says whether a node has failed.
pub fn taken_over(
    before: &Announcements,
    now: &Announcements,
    failed: impl Fn(&str) -> bool,
) -> BTreeSet<IpAddr> {
    now.l2
        .iter()
        .filter(|(ip, _)| !before.l2.contains_key(ip))
        .filter(|(_, a)| {
            a.services.iter().any(|svc| {
                matches!(
                    before.reasons.get(svc),
                    Some(NotAnnounced::NotLeader(previous)) if failed(previous)
                )
            })
        })
        .map(|(ip, _)| *ip)
        .collect()
}

/// Whether `node` has failed. With gossip, `gossip_failed` is the set of members
/// declared down by failure detection ([`crate::membership::Membership::failed`]);
/// without gossip (`None`), a node has failed when its Node is not Ready. A Node
/// deleted from the API has not failed: it was removed on purpose.
pub fn has_failed(node: &str, gossip_failed: Option<&BTreeSet<String>>, world: &World) -> bool {
    match gossip_failed {
        Some(failed) => failed.contains(node),
        None => world.nodes.get(node).is_some_and(|n| !n.ready),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::L2Announcement;
    use crate::world::ServiceKey;

    fn svc(name: &str) -> ServiceKey {
        ServiceKey::new("default", name)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn announcing(entries: &[(&str, &str)]) -> Announcements {
        let mut a = Announcements::default();
        for (addr, name) in entries {
            a.l2.insert(
                ip(addr),
                L2Announcement {
                    services: [svc(name)].into(),
                    interfaces: None,
                },
            );
        }
        a
    }

    fn led_by(mut a: Announcements, name: &str, node: &str) -> Announcements {
        a.reasons
            .insert(svc(name), NotAnnounced::NotLeader(node.into()));
        a
    }

    #[test]
    fn an_address_of_a_failed_leader_is_a_failover() {
        let before = led_by(Announcements::default(), "web", "node-b");
        let now = announcing(&[("198.51.100.10", "web")]);
        let taken = taken_over(&before, &now, |n| n == "node-b");
        assert_eq!(taken, [ip("198.51.100.10")].into());
    }

    #[test]
    fn a_leader_that_did_not_fail_is_not_a_failover() {
        // node-b left gracefully, or lost eligibility: the address moves, nobody failed.
        let before = led_by(Announcements::default(), "web", "node-b");
        let now = announcing(&[("198.51.100.10", "web")]);
        assert!(taken_over(&before, &now, |_| false).is_empty());
        // Another node failed, not the one that announced the address.
        assert!(taken_over(&before, &now, |n| n == "node-c").is_empty());
    }

    #[test]
    fn already_announced_or_unannounced_before_is_not_a_failover() {
        let now = announcing(&[("198.51.100.10", "web"), ("2001:db8::10", "db")]);
        // Announced here already.
        let before = led_by(announcing(&[("198.51.100.10", "web")]), "db", "node-a");
        assert_eq!(
            taken_over(&before, &now, |n| n == "node-a"),
            [ip("2001:db8::10")].into()
        );
        // The first decision (nothing known before), or a new Service.
        assert!(taken_over(&Announcements::default(), &now, |_| true).is_empty());
        let before = Announcements {
            reasons: [(svc("web"), NotAnnounced::NoEligibleNode)].into(),
            ..Announcements::default()
        };
        assert!(taken_over(&before, &now, |_| true).is_empty());
    }
}
