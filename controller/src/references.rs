//! Cross-object problems of the advertisement, peer and community objects (names of
//! pools, peers or community aliases that do not exist, aggregation lengths a pool does
//! not allow), as Events on the object at fault. Pure: the Kubernetes shell feeds it
//! every object and writes the Events it returns.
//!
//! The rules are [`ferrolb_crds::validate::check_references`], shared with the directory
//! source and the speaker. The checker remembers what it reported, so a problem earns one
//! `Warning` Event when it appears or its message changes, not one per pass, and one
//! `Normal` Event ([`RESOLVED`]) when it goes away while the object remains.

use std::collections::BTreeMap;

use ferrolb_crds::validate::{check_pools, check_references};
use ferrolb_crds::{BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};

use crate::engine::{Action, EventType, Kind, event};

/// Reason of the Event saying that a reported problem is gone.
pub const RESOLVED: &str = "Resolved";

/// Every object the cross-object rules read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Objects<'a> {
    pub pools: &'a [IPAddressPool],
    pub l2_advertisements: &'a [L2Advertisement],
    pub bgp_advertisements: &'a [BGPAdvertisement],
    pub bgp_peers: &'a [BGPPeer],
    pub communities: &'a [Community],
}

/// One object the Events are about.
type ObjectKey = (Kind, String, String);

/// What was last reported (see the module documentation).
#[derive(Debug, Default)]
pub struct References {
    /// Per object (kind, namespace, name): per reason, the message last reported.
    reported: BTreeMap<ObjectKey, BTreeMap<&'static str, String>>,
}

impl References {
    pub fn new() -> References {
        References::default()
    }

    /// Checks every object and returns the Events for what changed since the last call.
    pub fn check(&mut self, objects: Objects<'_>) -> Vec<Action> {
        // Problems name objects by kind and name only; all of them sit in the FerroLB
        // namespace, but the Event must carry the object's own.
        let mut namespaces: BTreeMap<(Kind, String), String> = BTreeMap::new();
        let mut note = |kind: Kind, meta: &kube::api::ObjectMeta| {
            namespaces.insert(
                (kind, meta.name.clone().unwrap_or_default()),
                meta.namespace.clone().unwrap_or_default(),
            );
        };
        for o in objects.l2_advertisements {
            note(Kind::L2Advertisement, &o.metadata);
        }
        for o in objects.bgp_advertisements {
            note(Kind::BGPAdvertisement, &o.metadata);
        }
        for o in objects.bgp_peers {
            note(Kind::BGPPeer, &o.metadata);
        }
        for o in objects.communities {
            note(Kind::Community, &o.metadata);
        }

        let pools = check_pools(objects.pools);
        let problems = check_references(
            &pools,
            objects.l2_advertisements,
            objects.bgp_advertisements,
            objects.bgp_peers,
            objects.communities,
        );
        // One Event per object and reason: an advertisement naming three missing pools
        // gets one Warning listing the three, not three Events.
        let mut now: BTreeMap<ObjectKey, BTreeMap<&'static str, String>> = BTreeMap::new();
        for p in problems {
            let Some(kind) = Kind::from_api_kind(p.kind) else {
                continue;
            };
            let namespace = namespaces
                .get(&(kind, p.name.clone()))
                .cloned()
                .unwrap_or_default();
            let message = now
                .entry((kind, namespace, p.name))
                .or_default()
                .entry(p.reason)
                .or_default();
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(&p.message);
        }

        let mut actions = Vec::new();
        for ((kind, namespace, name), reasons) in &now {
            let before = self.reported.get(&(*kind, namespace.clone(), name.clone()));
            for (reason, message) in reasons {
                if before.and_then(|b| b.get(reason)) != Some(message) {
                    actions.push(event(
                        *kind,
                        namespace,
                        name,
                        EventType::Warning,
                        reason,
                        message.clone(),
                    ));
                }
            }
        }
        for ((kind, namespace, name), reasons) in &self.reported {
            // A deleted object has nobody to tell.
            if !namespaces.contains_key(&(*kind, name.clone())) {
                continue;
            }
            let after = now.get(&(*kind, namespace.clone(), name.clone()));
            for (reason, message) in reasons {
                if after.is_none_or(|a| !a.contains_key(reason)) {
                    actions.push(event(
                        *kind,
                        namespace,
                        name,
                        EventType::Normal,
                        RESOLVED,
                        format!("resolved: {message}"),
                    ));
                }
            }
        }
        self.reported = now;
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_crds::{BGPAdvertisementSpec, IPAddressPoolSpec, L2AdvertisementSpec};

    const NS: &str = "ferrolb-system";

    /// A pool of its own addresses (pools that overlap would be set aside).
    fn pool(name: &str) -> IPAddressPool {
        let net = match name {
            "p" => "192.0.2.0/26",
            "ghost" => "192.0.2.64/26",
            _ => "192.0.2.128/26",
        };
        let mut p = IPAddressPool::new(name, IPAddressPoolSpec::new(&[net]));
        p.metadata.namespace = Some(NS.into());
        p
    }

    fn l2(name: &str, pools: &[&str]) -> L2Advertisement {
        let mut a = L2Advertisement::new(
            name,
            L2AdvertisementSpec {
                ip_address_pools: pools.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            },
        );
        a.metadata.namespace = Some(NS.into());
        a
    }

    /// (type, kind, name, reason, message) of every Event.
    fn events(actions: &[Action]) -> Vec<(EventType, Kind, String, String, String)> {
        actions
            .iter()
            .map(|a| match a {
                Action::Event {
                    kind,
                    namespace,
                    name,
                    type_,
                    reason,
                    message,
                } => {
                    assert_eq!(namespace, NS, "{a:?}");
                    (*type_, *kind, name.clone(), reason.clone(), message.clone())
                }
                other => panic!("not an Event: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn missing_pool_is_reported_once_then_resolved() {
        let mut refs = References::new();
        let pools = [pool("p")];
        let ads = [l2("lan", &["p", "ghost", "gone"])];
        let objects = Objects {
            pools: &pools,
            l2_advertisements: &ads,
            ..Default::default()
        };
        assert_eq!(
            events(&refs.check(objects)),
            [(
                EventType::Warning,
                Kind::L2Advertisement,
                "lan".into(),
                "UnknownReference".into(),
                r#"pool "ghost" does not exist; pool "gone" does not exist"#.into()
            )]
        );
        assert!(refs.check(objects).is_empty(), "not repeated on every pass");

        // The message changes (one pool appeared): a new Warning with the new message.
        let pools = [pool("p"), pool("ghost")];
        let objects = Objects {
            pools: &pools,
            ..objects
        };
        assert_eq!(
            events(&refs.check(objects)),
            [(
                EventType::Warning,
                Kind::L2Advertisement,
                "lan".into(),
                "UnknownReference".into(),
                r#"pool "gone" does not exist"#.into()
            )]
        );

        let pools = [pool("p"), pool("ghost"), pool("gone")];
        let objects = Objects {
            pools: &pools,
            ..objects
        };
        assert_eq!(
            events(&refs.check(objects)),
            [(
                EventType::Normal,
                Kind::L2Advertisement,
                "lan".into(),
                RESOLVED.into(),
                r#"resolved: pool "gone" does not exist"#.into()
            )]
        );
        assert!(refs.check(objects).is_empty());
    }

    #[test]
    fn deleted_objects_are_forgotten_silently() {
        let mut refs = References::new();
        let ads = [l2("lan", &["ghost"])];
        let objects = Objects {
            l2_advertisements: &ads,
            ..Default::default()
        };
        assert_eq!(refs.check(objects).len(), 1);
        assert!(refs.check(Objects::default()).is_empty());
        // Created again with the same problem: it is news again.
        assert_eq!(refs.check(objects).len(), 1);
    }

    #[test]
    fn each_kind_is_reported_on_its_own_object() {
        let mut refs = References::new();
        let pools = [pool("p")];
        let mut ad = BGPAdvertisement::new(
            "bgp",
            BGPAdvertisementSpec {
                peers: vec!["r1".into()],
                communities: vec!["no-such-alias".into()],
                ..Default::default()
            },
        );
        ad.metadata.namespace = Some(NS.into());
        let ads = [ad];
        let got = events(&refs.check(Objects {
            pools: &pools,
            bgp_advertisements: &ads,
            ..Default::default()
        }));
        assert_eq!(
            got,
            [(
                EventType::Warning,
                Kind::BGPAdvertisement,
                "bgp".into(),
                "UnknownReference".into(),
                r#"BGPPeer "r1" does not exist; community alias "no-such-alias" does not exist"#
                    .into()
            )]
        );
    }
}
