//! Which `ServiceL2Status` and `ServiceBGPStatus` objects this node should have, and
//! what to create, update or delete to get there (pure). The Kubernetes shell
//! ([`crate::source::kube`]) applies the [`Plan`].
//!
//! One object per Service this node announces, per mode, in the FerroLB namespace,
//! named `l2-` or `bgp-` + a hash of node and Service (so a restarted speaker finds its
//! own objects and a create that raced with itself is a harmless conflict), labelled
//! with [`NODE_LABEL`], [`SERVICE_NAME_LABEL`] and [`SERVICE_NAMESPACE_LABEL`]. Objects
//! of this node for Services it no longer announces are deleted, as are duplicates.
//! Creating an object or changing its interfaces (Layer2) or peers (BGP) also records a
//! `nodeAssigned` Event on the Service.
//!
//! Both kinds are planned by the same code: what differs ([`Kind`]) is the status type,
//! the name prefix, and the Event's wording. BGP mode also reports, once per distinct
//! problem, the prefixes not sent because BGPAdvertisements disagree on LOCAL_PREF
//! ([`warnings`], [`fresh`]), and records each BGP session going up or down as an
//! Event on its BGPPeer ([`session_events`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_crds::status::{
    InterfaceInfo, NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL, ServiceBGPStatusStatus,
    ServiceL2StatusStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::bgp::rib::{self, AdjRibOut, Conflict};
use crate::bgp::speaker::SessionSummary;
use crate::desired::Desired;
use crate::election::Announcements;
use crate::world::ServiceKey;

/// The Event reason, as MetalLB's.
pub const NODE_ASSIGNED: &str = "nodeAssigned";
/// The Warning Event reason on a BGPAdvertisement whose prefix is not sent.
pub const CONFLICTING_LOCAL_PREF: &str = "ConflictingLocalPref";

/// What differs between the status kinds. `items` are the interfaces (Layer2) or the
/// BGPPeers (BGP) a Service is announced on or to.
pub trait Kind {
    type Status: Clone + Debug + PartialEq + Eq + Send + Sync + 'static;
    /// The object name's prefix.
    const PREFIX: &'static str;
    /// The kind's name, for logs.
    const KIND: &'static str;
    fn status(node: &str, service: &ServiceKey, items: &BTreeSet<String>) -> Self::Status;
    /// The Service a status is about, when it says.
    fn service(status: &Self::Status) -> Option<ServiceKey>;
    /// The items of a status, to tell an Event-worthy change from a rewrite.
    fn items(status: &Self::Status) -> BTreeSet<String>;
    /// The `nodeAssigned` Event's message.
    fn message(node: &str, items: &BTreeSet<String>) -> String;
}

/// `ServiceL2Status`.
#[derive(Debug)]
pub struct L2;
/// `ServiceBGPStatus`.
#[derive(Debug)]
pub struct Bgp;

impl Kind for L2 {
    type Status = ServiceL2StatusStatus;
    const PREFIX: &'static str = "l2";
    const KIND: &'static str = "ServiceL2Status";

    fn status(node: &str, service: &ServiceKey, items: &BTreeSet<String>) -> Self::Status {
        status_of(node, service, items)
    }

    fn service(s: &Self::Status) -> Option<ServiceKey> {
        (!s.service_name.is_empty())
            .then(|| ServiceKey::new(s.service_namespace.clone(), s.service_name.clone()))
    }

    fn items(s: &Self::Status) -> BTreeSet<String> {
        s.interfaces.iter().map(|i| i.name.clone()).collect()
    }

    fn message(node: &str, items: &BTreeSet<String>) -> String {
        message(node, items)
    }
}

impl Kind for Bgp {
    type Status = ServiceBGPStatusStatus;
    const PREFIX: &'static str = "bgp";
    const KIND: &'static str = "ServiceBGPStatus";

    fn status(node: &str, service: &ServiceKey, items: &BTreeSet<String>) -> Self::Status {
        ServiceBGPStatusStatus {
            node: node.into(),
            service_name: service.name().to_string(),
            service_namespace: service.namespace().to_string(),
            peers: items.iter().cloned().collect(),
        }
    }

    fn service(s: &Self::Status) -> Option<ServiceKey> {
        (!s.service_name.is_empty())
            .then(|| ServiceKey::new(s.service_namespace.clone(), s.service_name.clone()))
    }

    fn items(s: &Self::Status) -> BTreeSet<String> {
        s.peers.iter().cloned().collect()
    }

    fn message(node: &str, peers: &BTreeSet<String>) -> String {
        if peers.is_empty() {
            format!(
                "announcing from node {node} over BGP, but to no peer (none of this node's carries the addresses)"
            )
        } else {
            let list: Vec<&str> = peers.iter().map(String::as_str).collect();
            format!(
                "announcing from node {node} over BGP to peers {}",
                list.join(", ")
            )
        }
    }
}

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

/// Per Service this node announces over BGP: the BGPPeers (by name) whose Adj-RIB-Out
/// (`peers`, [`rib::Plan::peers`]) holds a prefix covering one of its addresses; empty
/// when it is elected here but reaches no peer. What the node means to send, not what
/// the sessions have sent: a session going down does not rewrite the objects (the
/// sessions' state is in the metrics and the report).
pub fn desired_bgp(
    ann: &Announcements,
    peers: &BTreeMap<String, Arc<AdjRibOut>>,
) -> BTreeMap<ServiceKey, BTreeSet<String>> {
    let to = rib::peers_by_ip(&ann.bgp, peers);
    let mut out: BTreeMap<ServiceKey, BTreeSet<String>> = BTreeMap::new();
    for (ip, a) in &ann.bgp {
        for svc in &a.services {
            let set = out.entry(svc.clone()).or_default();
            if let Some(names) = to.get(ip) {
                set.extend(names.iter().cloned());
            }
        }
    }
    out
}

/// The object name of kind `K` for `service` announced by `node`: the kind's prefix,
/// `-` and 20 hex digits of SHA-256 of `"<node>/<namespace>/<name>"`.
pub fn object_name_of<K: Kind>(node: &str, service: &ServiceKey) -> String {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"/");
    h.update(service.namespace().as_bytes());
    h.update(b"/");
    h.update(service.name().as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", K::PREFIX)
}

/// The `ServiceL2Status` name for `service` announced by `node` (`l2-…`).
pub fn object_name(node: &str, service: &ServiceKey) -> String {
    object_name_of::<L2>(node, service)
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
        (SERVICE_NAME_LABEL, service.name()),
        (SERVICE_NAMESPACE_LABEL, service.namespace()),
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
        service_name: service.name().to_string(),
        service_namespace: service.namespace().to_string(),
        interfaces: interfaces
            .iter()
            .map(|n| InterfaceInfo { name: n.clone() })
            .collect(),
    }
}

/// An existing status object of this node, as read from the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing<S = ServiceL2StatusStatus> {
    pub name: String,
    /// The Service it is about, from its status (else its labels); `None` when neither
    /// says.
    pub service: Option<ServiceKey>,
    pub status: Option<S>,
}

impl<S: Clone> Existing<S> {
    /// From an object's metadata and status, `K` saying how to read the status.
    pub fn from_parts<K: Kind<Status = S>>(meta: &ObjectMeta, status: Option<&S>) -> Existing<S> {
        let service = status.and_then(K::service).or_else(|| {
            let labels = meta.labels.as_ref()?;
            let name = labels.get(SERVICE_NAME_LABEL)?;
            let ns = labels.get(SERVICE_NAMESPACE_LABEL)?;
            Some(ServiceKey::new(ns.clone(), name.clone()))
        });
        Existing {
            name: meta.name.clone().unwrap_or_default(),
            service,
            status: status.cloned(),
        }
    }
}

impl Existing<ServiceL2StatusStatus> {
    pub fn from_object(obj: &ferrolb_crds::ServiceL2Status) -> Existing {
        Existing::from_parts::<L2>(&obj.metadata, obj.status.as_ref())
    }
}

impl Existing<ServiceBGPStatusStatus> {
    pub fn from_bgp_object(obj: &ferrolb_crds::ServiceBGPStatus) -> Self {
        Existing::from_parts::<Bgp>(&obj.metadata, obj.status.as_ref())
    }
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<S = ServiceL2StatusStatus> {
    /// Create the object (labels from [`labels`]), then write its status.
    Create {
        name: String,
        service: ServiceKey,
        status: S,
    },
    /// Write the status of an existing object.
    Update {
        name: String,
        status: S,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<S = ServiceL2StatusStatus> {
    pub ops: Vec<Op<S>>,
    pub events: Vec<Note>,
}

impl<S> Default for Plan<S> {
    fn default() -> Self {
        Plan {
            ops: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl<S> Plan<S> {
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

/// What turns `existing` (this node's `ServiceL2Status` objects) into `desired`
/// (Service → interfaces); see [`plan_kind`].
pub fn plan(
    node: &str,
    desired: &BTreeMap<ServiceKey, BTreeSet<String>>,
    existing: &[Existing],
) -> Plan {
    plan_kind::<L2>(node, desired, existing)
}

/// What turns `existing` (this node's objects of kind `K`) into `desired` (Service →
/// interfaces or peers). An existing object for a desired Service is kept whatever its
/// name (preferring the canonical [`object_name_of`] among duplicates) and updated only
/// when its status differs; every other object of this node is deleted.
pub fn plan_kind<K: Kind>(
    node: &str,
    desired: &BTreeMap<ServiceKey, BTreeSet<String>>,
    existing: &[Existing<K::Status>],
) -> Plan<K::Status> {
    let mut out = Plan::default();
    let mut keep: BTreeMap<&ServiceKey, &Existing<K::Status>> = BTreeMap::new();
    for e in existing {
        let Some(svc) = e.service.as_ref().filter(|s| desired.contains_key(*s)) else {
            continue;
        };
        let canonical = e.name == object_name_of::<K>(node, svc);
        match keep.get(svc) {
            Some(k) if k.name == object_name_of::<K>(node, svc) => {}
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
    for (svc, items) in desired {
        let want = K::status(node, svc, items);
        match keep.get(svc) {
            None => {
                out.ops.push(Op::Create {
                    name: object_name_of::<K>(node, svc),
                    service: svc.clone(),
                    status: want,
                });
                out.events.push(Note {
                    service: svc.clone(),
                    message: K::message(node, items),
                });
            }
            Some(e) if e.status.as_ref() != Some(&want) => {
                let moved = e.status.as_ref().is_none_or(|s| K::items(s) != *items);
                out.ops.push(Op::Update {
                    name: e.name.clone(),
                    status: want,
                });
                if moved {
                    out.events.push(Note {
                        service: svc.clone(),
                        message: K::message(node, items),
                    });
                }
            }
            Some(_) => {}
        }
    }
    out
}

/// A Warning Event to record on a BGPAdvertisement.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    /// The BGPAdvertisement's name (in the FerroLB namespace).
    pub advertisement: String,
    pub reason: &'static str,
    pub message: String,
}

/// The Warnings the conflicts call for: one per advertisement concerned and conflict.
pub fn warnings(conflicts: &[Conflict]) -> BTreeSet<Warning> {
    conflicts
        .iter()
        .flat_map(|c| {
            c.ads.iter().map(|ad| Warning {
                advertisement: ad.clone(),
                reason: CONFLICTING_LOCAL_PREF,
                message: c.message.clone(),
            })
        })
        .collect()
}

/// The Warnings of `now` not already in `said` (those recorded by an earlier pass).
/// The caller then keeps `now` as `said`: a problem that went away and comes back is
/// reported again, one that stays is reported once.
pub fn fresh(said: &BTreeSet<Warning>, now: &BTreeSet<Warning>) -> Vec<Warning> {
    now.difference(said).cloned().collect()
}

/// Reason of the Normal Event recorded on a BGPPeer when its session comes up.
pub const SESSION_UP: &str = "BGPSessionUp";
/// Reason of the Warning Event recorded on a BGPPeer when its session goes down.
pub const SESSION_DOWN: &str = "BGPSessionDown";
const ESTABLISHED: &str = "Established";

/// An Event to record on a BGPPeer (in the FerroLB namespace) about this node's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEvent {
    pub peer: String,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The Events between two reports of this node's sessions: up when a session reaches
/// Established, down (with why) when it leaves it or goes away. Only changes count, so a
/// report that repeats the states says nothing. A session that went down and came back
/// between two reports shows only as a new `last_down` while Established: it gets both.
pub fn session_events(
    node: &str,
    before: &[SessionSummary],
    now: &[SessionSummary],
) -> Vec<SessionEvent> {
    let up = |s: &SessionSummary| SessionEvent {
        peer: s.peer.clone(),
        warning: false,
        reason: SESSION_UP,
        message: format!("BGP session from node {node} to {} established", s.address),
    };
    let down = |s: &SessionSummary, why: Option<&str>| SessionEvent {
        peer: s.peer.clone(),
        warning: true,
        reason: SESSION_DOWN,
        message: format!(
            "BGP session from node {node} to {} down: {}",
            s.address,
            why.unwrap_or("left Established")
        ),
    };
    let mut out = Vec::new();
    for s in now {
        let prev = before.iter().find(|p| p.peer == s.peer);
        let was_up = prev.is_some_and(|p| p.state == ESTABLISHED);
        let is_up = s.state == ESTABLISHED;
        let flapped = prev.is_some_and(|p| p.last_down != s.last_down) && s.last_down.is_some();
        if was_up && (!is_up || flapped) {
            out.push(down(s, s.last_down.as_deref()));
        }
        if is_up && (!was_up || flapped) {
            out.push(up(s));
        }
    }
    // Sessions no longer held (the BGPPeer was removed or no longer selects this node).
    for p in before {
        if p.state == ESTABLISHED && !now.iter().any(|s| s.peer == p.peer) {
            out.push(down(p, Some("the BGPPeer no longer applies to this node")));
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

    fn bgp_status(svc: &str, peers: &[&str]) -> ServiceBGPStatusStatus {
        Bgp::status("n1", &key(svc), &set(peers))
    }

    #[test]
    fn desired_bgp_names_the_peers_whose_tables_cover_each_address() {
        use crate::bgp::rib::RouteAttrs;
        use crate::election::BgpAnnouncement;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
        let mut ann = Announcements::default();
        let mut announce = |addr: &str, services: &[&str]| {
            ann.bgp.insert(
                ip(addr),
                BgpAnnouncement {
                    services: services.iter().map(|s| key(s)).collect(),
                    ads: [0].into(),
                },
            );
        };
        announce("203.0.113.5", &["web", "shared"]);
        announce("203.0.113.130", &["shared"]);
        announce("2001:db8::5", &["web6"]);
        announce("198.51.100.7", &["lonely"]);
        let table = |prefixes: &[&str]| -> Arc<AdjRibOut> {
            Arc::new(
                prefixes
                    .iter()
                    .map(|p| (net(p), Arc::new(RouteAttrs::default())))
                    .collect(),
            )
        };
        let peers: BTreeMap<String, Arc<AdjRibOut>> = [
            // An aggregate covering .5 but not .130, and a host route.
            (
                "agg".to_string(),
                table(&["203.0.113.0/25", "2001:db8::5/128"]),
            ),
            ("hosts".to_string(), table(&["203.0.113.130/32"])),
            ("empty".to_string(), table(&[])),
        ]
        .into();
        let d = desired_bgp(&ann, &peers);
        assert_eq!(d[&key("web")], set(&["agg"]));
        assert_eq!(d[&key("shared")], set(&["agg", "hosts"]));
        assert_eq!(d[&key("web6")], set(&["agg"]));
        // Elected here, but no peer takes it (say, a conflicting localPref): still an
        // object, with no peers.
        assert_eq!(d[&key("lonely")], set(&[]));
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn bgp_statuses_are_planned_like_layer2_ones() {
        let desired = [(key("web"), set(&["router", "backup"]))].into();
        let name = object_name_of::<Bgp>("n1", &key("web"));
        assert!(name.starts_with("bgp-") && name.len() == 24, "{name}");
        assert_ne!(name, object_name("n1", &key("web")));
        let p = plan_kind::<Bgp>("n1", &desired, &[]);
        assert_eq!(
            p.ops,
            vec![Op::Create {
                name: name.clone(),
                service: key("web"),
                status: ServiceBGPStatusStatus {
                    node: "n1".into(),
                    service_name: "web".into(),
                    service_namespace: "app".into(),
                    peers: vec!["backup".into(), "router".into()],
                },
            }]
        );
        assert_eq!(
            p.events,
            vec![Note {
                service: key("web"),
                message: "announcing from node n1 over BGP to peers backup, router".into()
            }]
        );

        let have = |peers: &[&str]| Existing {
            name: name.clone(),
            service: Some(key("web")),
            status: Some(bgp_status("web", peers)),
        };
        assert!(plan_kind::<Bgp>("n1", &desired, &[have(&["backup", "router"])]).is_empty());

        // A peer less: updated, and said.
        let p = plan_kind::<Bgp>("n1", &desired, &[have(&["router"])]);
        assert_eq!(
            p.ops,
            vec![Op::Update {
                name: name.clone(),
                status: bgp_status("web", &["backup", "router"]),
            }]
        );
        assert_eq!(p.events.len(), 1);

        // No peer: written, and said.
        let none = [(key("web"), set(&[]))].into();
        let p = plan_kind::<Bgp>("n1", &none, &[have(&["router"])]);
        assert_eq!(
            p.events[0].message,
            "announcing from node n1 over BGP, but to no peer (none of this node's carries the addresses)"
        );

        // No longer announced over BGP: deleted, without an Event.
        let p = plan_kind::<Bgp>("n1", &BTreeMap::new(), &[have(&["router"])]);
        assert_eq!(p.ops, vec![Op::Delete { name }]);
        assert!(p.events.is_empty());
    }

    #[test]
    fn bgp_existing_reads_status_then_labels() {
        let mut obj = ferrolb_crds::ServiceBGPStatus::new("bgp-x", Default::default());
        obj.metadata.labels = Some(labels("n1", &key("web")));
        assert_eq!(Existing::from_bgp_object(&obj).service, Some(key("web")));
        obj.status = Some(bgp_status("db", &["router"]));
        let e = Existing::from_bgp_object(&obj);
        assert_eq!(e.service, Some(key("db")));
        assert_eq!(e.status, Some(bgp_status("db", &["router"])));
    }

    #[test]
    fn each_conflict_warns_every_advertisement_once() {
        let conflict = |prefix: &str, ads: &[&str]| Conflict {
            ads: ads.iter().map(|s| s.to_string()).collect(),
            message: format!("{prefix} is advertised with different localPref"),
        };
        let now = warnings(&[
            conflict("203.0.113.5/32", &["a", "b"]),
            conflict("203.0.113.6/32", &["a", "b"]),
        ]);
        assert_eq!(now.len(), 4);
        assert!(now.iter().all(|w| w.reason == CONFLICTING_LOCAL_PREF));
        let on_b: Vec<&str> = now
            .iter()
            .filter(|w| w.advertisement == "b")
            .map(|w| w.message.as_str())
            .collect();
        assert_eq!(
            on_b,
            [
                "203.0.113.5/32 is advertised with different localPref",
                "203.0.113.6/32 is advertised with different localPref"
            ]
        );

        // The first pass says everything; the same problems again say nothing.
        let mut said = BTreeSet::new();
        assert_eq!(fresh(&said, &now).len(), 4);
        said = now.clone();
        assert!(fresh(&said, &now).is_empty());
        // One solved, one new: only the new one is said.
        let next = warnings(&[
            conflict("203.0.113.5/32", &["a", "b"]),
            conflict("203.0.113.7/32", &["a", "c"]),
        ]);
        let out = fresh(&said, &next);
        let mut got: Vec<(&str, &str)> = out
            .iter()
            .map(|w| (w.advertisement.as_str(), w.message.as_str()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a", "203.0.113.7/32 is advertised with different localPref"),
                ("c", "203.0.113.7/32 is advertised with different localPref")
            ]
        );
        // Solved, then back: said again.
        said = next;
        let back = warnings(&[conflict("203.0.113.6/32", &["a", "b"])]);
        assert_eq!(fresh(&said, &back).len(), 2);
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

    fn session(peer: &str, state: &str, last_down: Option<&str>) -> SessionSummary {
        SessionSummary {
            peer: peer.into(),
            address: "198.51.100.1:179".into(),
            state: state.into(),
            last_down: last_down.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn session_events_on_state_change_only() {
        let idle = [session("r", "Active", None)];
        let up = [session("r", "Established", None)];
        let ev = session_events("n1", &idle, &up);
        assert_eq!(
            ev,
            [SessionEvent {
                peer: "r".into(),
                warning: false,
                reason: SESSION_UP,
                message: "BGP session from node n1 to 198.51.100.1:179 established".into(),
            }]
        );
        // From nothing (a starting speaker) too; the same states again: nothing.
        assert_eq!(session_events("n1", &[], &up).len(), 1);
        assert!(session_events("n1", &up, &up).is_empty());
        assert!(session_events("n1", &idle, &idle).is_empty());
        assert!(session_events("n1", &[], &idle).is_empty());

        let why = "hold timer expired";
        let down = [session("r", "Idle", Some(why))];
        let ev = session_events("n1", &up, &down);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(ev[0].warning);
        assert_eq!(ev[0].reason, SESSION_DOWN);
        assert_eq!(
            ev[0].message,
            "BGP session from node n1 to 198.51.100.1:179 down: hold timer expired"
        );
        // Down and up again between two reports: both, in order.
        let back = [session(
            "r",
            "Established",
            Some("NOTIFICATION received: Cease"),
        )];
        let reasons: Vec<_> = session_events("n1", &up, &back)
            .iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, [SESSION_DOWN, SESSION_UP]);
        // A session that goes away while up is down; one that was not up says nothing.
        let ev = session_events("n1", &up, &[]);
        assert_eq!((ev.len(), ev[0].reason), (1, SESSION_DOWN));
        assert!(session_events("n1", &idle, &[]).is_empty());
    }
}
