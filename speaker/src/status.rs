//! Which `ServiceL2Status` objects this node should have, and what to create, update or
//! delete to get there (pure). The Kubernetes shell ([`crate::source::kube`]) applies
//! the [`Plan`].
//!
//! One object per Service this node announces, in the FerroLB namespace, named
//! `l2-` + a hash of node and Service (so a restarted speaker finds its own objects and a
//! create that raced with itself is a harmless conflict), labelled with
//! [`NODE_LABEL`], [`SERVICE_NAME_LABEL`] and [`SERVICE_NAMESPACE_LABEL`]. Objects of
//! this node for Services it no longer announces are deleted, as are duplicates.
//! Creating an object or changing its interfaces also records a `nodeAssigned` Event on
//! the Service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_crds::status::{
    InterfaceInfo, NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL, ServiceL2StatusStatus,
};
use sha2::{Digest, Sha256};

use crate::desired::Desired;
use crate::election::Announcements;
use crate::world::ServiceKey;

/// The Event reason, as MetalLB's.
pub const NODE_ASSIGNED: &str = "nodeAssigned";

/// Per Service this node announces: the interfaces that carry any of its addresses
/// (empty when it is elected here but no interface can carry them).
pub fn desired_l2(ann: &Announcements, want: &Desired) -> BTreeMap<ServiceKey, BTreeSet<String>> {
    let mut by_ip: BTreeMap<IpAddr, BTreeSet<&str>> = BTreeMap::new();
    for owned in want.values() {
        for ip in &owned.ips {
            by_ip.entry(*ip).or_default().insert(owned.name.as_str());
        }
    }
    let mut out: BTreeMap<ServiceKey, BTreeSet<String>> = BTreeMap::new();
    for (ip, a) in &ann.l2 {
        for svc in &a.services {
            let set = out.entry(svc.clone()).or_default();
            if let Some(names) = by_ip.get(ip) {
                set.extend(names.iter().map(|n| n.to_string()));
            }
        }
    }
    out
}

/// The object name for `service` announced by `node`: `l2-` and 20 hex digits of
/// SHA-256 of `"<node>/<namespace>/<name>"`.
pub fn object_name(node: &str, service: &ServiceKey) -> String {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"/");
    h.update(service.namespace.as_bytes());
    h.update(b"/");
    h.update(service.name.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("l2-{hex}")
}

/// The value of the [`NODE_LABEL`] label for `node`: the name itself, or, for a name
/// longer than a label value may be (63 characters; node names may have 253), its first
/// 52 characters, `-` and 10 hex digits of its SHA-256.
pub fn node_label_value(node: &str) -> String {
    if node.len() <= 63 {
        return node.to_string();
    }
    let digest = Sha256::digest(node.as_bytes());
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    // Node names are ASCII (DNS subdomains), so byte 52 is a character boundary; a
    // hand-written name that is not is cut at the boundary before it.
    let mut end = 52;
    while !node.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hex}", &node[..end])
}

/// The labels of a status object.
pub fn labels(node: &str, service: &ServiceKey) -> BTreeMap<String, String> {
    let node = node_label_value(node);
    [
        (NODE_LABEL, node.as_str()),
        (SERVICE_NAME_LABEL, service.name.as_str()),
        (SERVICE_NAMESPACE_LABEL, service.namespace.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The status a node announcing `service` on `interfaces` writes.
pub fn status_of(
    node: &str,
    service: &ServiceKey,
    interfaces: &BTreeSet<String>,
) -> ServiceL2StatusStatus {
    ServiceL2StatusStatus {
        node: node.into(),
        service_name: service.name.clone(),
        service_namespace: service.namespace.clone(),
        interfaces: interfaces
            .iter()
            .map(|n| InterfaceInfo { name: n.clone() })
            .collect(),
    }
}

/// An existing status object of this node, as read from the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub name: String,
    /// The Service it is about, from its status (else its labels); `None` when neither
    /// says.
    pub service: Option<ServiceKey>,
    pub status: Option<ServiceL2StatusStatus>,
}

impl Existing {
    pub fn from_object(obj: &ferrolb_crds::ServiceL2Status) -> Existing {
        let labels = obj.metadata.labels.clone().unwrap_or_default();
        let service = obj
            .status
            .as_ref()
            .filter(|s| !s.service_name.is_empty())
            .map(|s| ServiceKey::new(s.service_namespace.clone(), s.service_name.clone()))
            .or_else(|| {
                let name = labels.get(SERVICE_NAME_LABEL)?;
                let ns = labels.get(SERVICE_NAMESPACE_LABEL)?;
                Some(ServiceKey::new(ns.clone(), name.clone()))
            });
        Existing {
            name: obj.metadata.name.clone().unwrap_or_default(),
            service,
            status: obj.status.clone(),
        }
    }
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create the object (labels from [`labels`]), then write its status.
    Create {
        name: String,
        service: ServiceKey,
        status: ServiceL2StatusStatus,
    },
    /// Write the status of an existing object.
    Update {
        name: String,
        status: ServiceL2StatusStatus,
    },
    Delete {
        name: String,
    },
}

/// A `nodeAssigned` Event to record on a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub service: ServiceKey,
    pub message: String,
}

/// What to write: status objects, then Events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub events: Vec<Note>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.events.is_empty()
    }
}

/// The Event's message: `announcing from node N, interfaces eth0, eth1`.
pub fn message(node: &str, interfaces: &BTreeSet<String>) -> String {
    if interfaces.is_empty() {
        format!("announcing from node {node}, but no interface of it can carry the addresses")
    } else {
        let list: Vec<&str> = interfaces.iter().map(String::as_str).collect();
        format!(
            "announcing from node {node}, interfaces {}",
            list.join(", ")
        )
    }
}

/// What turns `existing` (this node's objects) into `desired` (Service → interfaces).
/// An existing object for a desired Service is kept whatever its name (preferring the
/// canonical [`object_name`] among duplicates) and updated only when its status
/// differs; every other object of this node is deleted.
pub fn plan(
    node: &str,
    desired: &BTreeMap<ServiceKey, BTreeSet<String>>,
    existing: &[Existing],
) -> Plan {
    let mut out = Plan::default();
    let mut keep: BTreeMap<&ServiceKey, &Existing> = BTreeMap::new();
    for e in existing {
        let Some(svc) = e.service.as_ref().filter(|s| desired.contains_key(*s)) else {
            continue;
        };
        let canonical = e.name == object_name(node, svc);
        match keep.get(svc) {
            Some(k) if k.name == object_name(node, svc) => {}
            Some(k) if !canonical && k.name <= e.name => {}
            _ => {
                keep.insert(svc, e);
            }
        }
    }
    for e in existing {
        let kept = e
            .service
            .as_ref()
            .and_then(|s| keep.get(s))
            .is_some_and(|k| k.name == e.name);
        if !kept {
            out.ops.push(Op::Delete {
                name: e.name.clone(),
            });
        }
    }
    for (svc, interfaces) in desired {
        let want = status_of(node, svc, interfaces);
        match keep.get(svc) {
            None => {
                out.ops.push(Op::Create {
                    name: object_name(node, svc),
                    service: svc.clone(),
                    status: want,
                });
                out.events.push(Note {
                    service: svc.clone(),
                    message: message(node, interfaces),
                });
            }
            Some(e) if e.status.as_ref() != Some(&want) => {
                let moved = e
                    .status
                    .as_ref()
                    .is_none_or(|s| s.interfaces != want.interfaces);
                out.ops.push(Op::Update {
                    name: e.name.clone(),
                    status: want,
                });
                if moved {
                    out.events.push(Note {
                        service: svc.clone(),
                        message: message(node, interfaces),
                    });
                }
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Owned;
    use crate::election::L2Announcement;

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("app", name)
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn existing(name: &str, svc: &str, interfaces: &[&str]) -> Existing {
        Existing {
            name: name.into(),
            service: Some(key(svc)),
            status: Some(status_of("n1", &key(svc), &set(interfaces))),
        }
    }

    #[test]
    fn names_are_stable_and_distinct() {
        let a = object_name("n1", &key("web"));
        assert_eq!(a, object_name("n1", &key("web")));
        assert_eq!(a.len(), 23);
        assert!(a.starts_with("l2-"));
        assert_ne!(a, object_name("n2", &key("web")));
        assert_ne!(a, object_name("n1", &key("db")));
        // The separator keeps "a/b" + "c" apart from "a" + "b/c".
        assert_ne!(
            object_name("n1", &ServiceKey::new("a", "bc")),
            object_name("n1", &ServiceKey::new("ab", "c"))
        );
    }

    #[test]
    fn node_label_fits_a_label_value() {
        assert_eq!(node_label_value("n1"), "n1");
        let max = "a".repeat(63);
        assert_eq!(node_label_value(&max), max);
        let long = format!("{}.example.com", "node-".repeat(20));
        let v = node_label_value(&long);
        assert_eq!(v.len(), 63);
        assert!(v.starts_with(&long[..52]));
        assert!(v.ends_with(|c: char| c.is_ascii_hexdigit()));
        assert_ne!(v, node_label_value(&format!("{long}x")));
        assert_eq!(labels(&long, &key("web"))[NODE_LABEL], v);
    }

    #[test]
    fn desired_follows_the_interfaces_carrying_each_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut ann = Announcements::default();
        ann.l2.insert(
            ip("192.0.2.1"),
            L2Announcement {
                services: [key("web"), key("web2")].into(),
                interfaces: None,
            },
        );
        ann.l2.insert(
            ip("2001:db8::1"),
            L2Announcement {
                services: [key("web")].into(),
                interfaces: None,
            },
        );
        ann.l2.insert(
            ip("192.0.2.9"),
            L2Announcement {
                services: [key("homeless")].into(),
                interfaces: None,
            },
        );
        let owned = |name: &str, ips: &[&str]| Owned {
            name: name.into(),
            mac: [2, 0, 0, 0, 0, 1],
            arp: true,
            link_local: None,
            ips: ips.iter().map(|s| ip(s)).collect(),
        };
        let want: Desired = [
            (1, owned("eth0", &["192.0.2.1", "2001:db8::1"])),
            (2, owned("eth1", &["2001:db8::1"])),
        ]
        .into();
        let d = desired_l2(&ann, &want);
        assert_eq!(d[&key("web")], set(&["eth0", "eth1"]));
        assert_eq!(d[&key("web2")], set(&["eth0"]));
        assert_eq!(d[&key("homeless")], set(&[]));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn creates_what_is_missing_with_an_event() {
        let desired = [(key("web"), set(&["eth0"]))].into();
        let p = plan("n1", &desired, &[]);
        assert_eq!(
            p.ops,
            vec![Op::Create {
                name: object_name("n1", &key("web")),
                service: key("web"),
                status: ServiceL2StatusStatus {
                    node: "n1".into(),
                    service_name: "web".into(),
                    service_namespace: "app".into(),
                    interfaces: vec![InterfaceInfo {
                        name: "eth0".into()
                    }],
                },
            }]
        );
        assert_eq!(
            p.events,
            vec![Note {
                service: key("web"),
                message: "announcing from node n1, interfaces eth0".into()
            }]
        );
    }

    #[test]
    fn nothing_to_do_when_existing_matches() {
        let desired = [(key("web"), set(&["eth0", "eth1"]))].into();
        let name = object_name("n1", &key("web"));
        let p = plan("n1", &desired, &[existing(&name, "web", &["eth0", "eth1"])]);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn interface_change_updates_with_an_event() {
        let desired = [(key("web"), set(&["eth1"]))].into();
        let name = object_name("n1", &key("web"));
        let p = plan("n1", &desired, &[existing(&name, "web", &["eth0"])]);
        assert_eq!(
            p.ops,
            vec![Op::Update {
                name: name.clone(),
                status: status_of("n1", &key("web"), &set(&["eth1"])),
            }]
        );
        assert_eq!(
            p.events[0].message,
            "announcing from node n1, interfaces eth1"
        );

        // An object created but whose status write failed: updated, with the Event the
        // create did not get to.
        let bare = Existing {
            name: name.clone(),
            service: Some(key("web")),
            status: None,
        };
        let p = plan("n1", &desired, &[bare]);
        assert!(matches!(p.ops[..], [Op::Update { .. }]), "{p:?}");
        assert_eq!(p.events.len(), 1);

        // No interface: still written, and said.
        let desired = [(key("web"), set(&[]))].into();
        let p = plan("n1", &desired, &[existing(&name, "web", &["eth0"])]);
        assert_eq!(
            p.events[0].message,
            "announcing from node n1, but no interface of it can carry the addresses"
        );
    }

    #[test]
    fn deletes_what_is_no_longer_announced_and_duplicates() {
        let desired = [(key("web"), set(&["eth0"]))].into();
        let canonical = object_name("n1", &key("web"));
        let p = plan(
            "n1",
            &desired,
            &[
                existing("l2-aaaa", "web", &["eth0"]),
                existing(&canonical, "web", &["eth0"]),
                existing("l2-zzzz", "web", &["eth0"]),
                existing(&object_name("n1", &key("gone")), "gone", &["eth0"]),
                Existing {
                    name: "l2-unreadable".into(),
                    service: None,
                    status: None,
                },
            ],
        );
        let mut deleted: Vec<&str> = p
            .ops
            .iter()
            .map(|op| match op {
                Op::Delete { name } => name.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        deleted.sort();
        let mut expect = vec![
            "l2-aaaa".to_string(),
            "l2-zzzz".into(),
            object_name("n1", &key("gone")),
            "l2-unreadable".into(),
        ];
        expect.sort();
        assert_eq!(deleted, expect);
        assert!(p.events.is_empty());

        // Without the canonical one, the first by name is kept.
        let p = plan(
            "n1",
            &desired,
            &[
                existing("l2-zzzz", "web", &["eth0"]),
                existing("l2-aaaa", "web", &["eth0"]),
            ],
        );
        assert_eq!(
            p.ops,
            vec![Op::Delete {
                name: "l2-zzzz".into()
            }]
        );
        // Nothing desired: everything goes, without Events.
        let p = plan("n1", &BTreeMap::new(), &[existing("l2-aaaa", "web", &[])]);
        assert_eq!(
            p,
            Plan {
                ops: vec![Op::Delete {
                    name: "l2-aaaa".into()
                }],
                events: vec![]
            }
        );
    }

    #[test]
    fn existing_reads_status_then_labels() {
        let mut obj = ferrolb_crds::ServiceL2Status::new("l2-x", Default::default());
        obj.metadata.labels = Some(labels("n1", &key("web")));
        assert_eq!(Existing::from_object(&obj).service, Some(key("web")));
        obj.status = Some(status_of("n1", &key("db"), &set(&[])));
        let e = Existing::from_object(&obj);
        assert_eq!(e.service, Some(key("db")));
        assert_eq!(e.name, "l2-x");
        obj.metadata.labels = None;
        obj.status = None;
        assert_eq!(Existing::from_object(&obj).service, None);
    }
}
