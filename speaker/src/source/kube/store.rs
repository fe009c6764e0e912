//! The watched objects, between the watchers and the [`Snapshot`]: one store per kind,
//! each filled by its initial list before anything is decided. No I/O.
//!
//! Objects are trimmed on the way in to what the speaker reads (a Node's images and
//! heartbeat times, an EndpointSlice's target references, every object's managedFields
//! and resourceVersion), which keeps memory small and makes an update that changes
//! nothing the speaker reads no change at all: no new snapshot, no new election.

use std::collections::BTreeMap;

use ferrolb_crds::documents::Inputs;
use ferrolb_crds::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use k8s_openapi::api::core::v1::{Node, NodeStatus, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::api::ObjectMeta;
use kube::runtime::watcher::Event;

use crate::bgp::config::slim_secret;
use crate::source::{Bulk, Snapshot, handles, snapshot_with};
use crate::world::{SERVICE_NAME_LABEL, ServiceKey};

/// One watch event from one of the watchers.
// Moved once from the stream into `handle`: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    Service(Event<Service>),
    EndpointSlice(Event<EndpointSlice>),
    Node(Event<Node>),
    Pool(Event<IPAddressPool>),
    L2Advertisement(Event<L2Advertisement>),
    BgpAdvertisement(Event<BGPAdvertisement>),
    BgpPeer(Event<BGPPeer>),
    Community(Event<Community>),
    BfdProfile(Event<BFDProfile>),
    Secret(Event<Secret>),
}

impl Input {
    /// The watch it came from, for logs.
    pub fn what(&self) -> &'static str {
        match self {
            Input::Service(_) => "services",
            Input::EndpointSlice(_) => "endpointslices",
            Input::Node(_) => "nodes",
            Input::Pool(_) => "ipaddresspools",
            Input::L2Advertisement(_) => "l2advertisements",
            Input::BgpAdvertisement(_) => "bgpadvertisements",
            Input::BgpPeer(_) => "bgppeers",
            Input::Community(_) => "communities",
            Input::BfdProfile(_) => "bfdprofiles",
            Input::Secret(_) => "secrets",
        }
    }
}

/// The objects of one kind, by namespace/name.
#[derive(Debug)]
struct Kind<K> {
    objects: BTreeMap<(String, String), K>,
    /// Objects of a (re)list in progress, swapped in at `InitDone`.
    relist: Option<BTreeMap<(String, String), K>>,
    listed: bool,
}

impl<K> Default for Kind<K> {
    fn default() -> Self {
        Kind {
            objects: BTreeMap::new(),
            relist: None,
            listed: false,
        }
    }
}

fn id<K: Resource>(obj: &K) -> (String, String) {
    let m = obj.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// Equality of two objects of a kind (custom resource types do not derive it; their
/// metadata and spec do).
type Same<K> = fn(&K, &K) -> bool;

macro_rules! same_crd {
    () => {
        |a, b| a.metadata == b.metadata && a.spec == b.spec
    };
}

impl<K: Resource> Kind<K> {
    /// Applies one event; `keep` trims an object, or drops it (`None`) when the speaker
    /// has no use for it. Returns whether the stored objects changed.
    fn handle(&mut self, ev: Event<K>, same: Same<K>, keep: impl Fn(K) -> Option<K>) -> bool {
        match ev {
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(obj) => {
                let key = id(&obj);
                if let Some(obj) = keep(obj) {
                    self.relist
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key, obj);
                }
                false
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let changed = !self.listed
                    || listed.len() != self.objects.len()
                    || listed
                        .iter()
                        .zip(&self.objects)
                        .any(|((ka, a), (kb, b))| ka != kb || !same(a, b));
                self.objects = listed;
                self.listed = true;
                changed
            }
            Event::Apply(obj) => {
                let key = id(&obj);
                match keep(obj) {
                    Some(obj) => {
                        if self.objects.get(&key).is_some_and(|old| same(old, &obj)) {
                            false
                        } else {
                            self.objects.insert(key, obj);
                            true
                        }
                    }
                    None => self.objects.remove(&key).is_some(),
                }
            }
            Event::Delete(obj) => self.objects.remove(&id(&obj)).is_some(),
        }
    }

    fn all(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.objects.values().cloned().collect()
    }

    fn refs(&self) -> Vec<&K> {
        self.objects.values().collect()
    }
}

/// Every watched kind.
#[derive(Debug, Default)]
pub struct Store {
    lb_class: Option<String>,
    services: Kind<Service>,
    slices: Kind<EndpointSlice>,
    nodes: Kind<Node>,
    pools: Kind<IPAddressPool>,
    l2_ads: Kind<L2Advertisement>,
    bgp_ads: Kind<BGPAdvertisement>,
    peers: Kind<BGPPeer>,
    communities: Kind<Community>,
    bfd_profiles: Kind<BFDProfile>,
    /// Reduced to their `password` key ([`slim_secret`]).
    secrets: Kind<Secret>,
}

/// What the speaker reads of any object's metadata (plus what `keep_meta` callers add).
fn slim_meta(m: ObjectMeta, labels: bool, annotations: bool) -> ObjectMeta {
    ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        labels: if labels { m.labels } else { None },
        annotations: if annotations {
            m.annotations.map(|mut a| {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
                a
            })
        } else {
            None
        },
        ..Default::default()
    }
}

/// A Node: name, labels, condition types and statuses, addresses.
pub fn slim_node(n: Node) -> Node {
    let status = n.status.map(|s| NodeStatus {
        conditions: s.conditions.map(|cs| {
            cs.into_iter()
                .map(|c| k8s_openapi::api::core::v1::NodeCondition {
                    type_: c.type_,
                    status: c.status,
                    ..Default::default()
                })
                .collect()
        }),
        addresses: s.addresses,
        ..Default::default()
    });
    Node {
        metadata: slim_meta(n.metadata, true, false),
        spec: None,
        status,
    }
}

/// An EndpointSlice: its Service label, and each endpoint's addresses, node and
/// conditions.
pub fn slim_slice(s: EndpointSlice) -> EndpointSlice {
    let mut metadata = slim_meta(s.metadata, true, false);
    metadata.labels = metadata.labels.map(|mut l| {
        l.retain(|k, _| k == SERVICE_NAME_LABEL);
        l
    });
    EndpointSlice {
        metadata,
        address_type: s.address_type,
        endpoints: s
            .endpoints
            .into_iter()
            .map(|e| k8s_openapi::api::discovery::v1::Endpoint {
                addresses: e.addresses,
                conditions: e.conditions,
                node_name: e.node_name,
                ..Default::default()
            })
            .collect(),
        ports: None,
    }
}

impl Store {
    /// `lb_class`: the Services handled (see [`handles`]).
    pub fn new(lb_class: Option<String>) -> Store {
        Store {
            lb_class,
            ..Default::default()
        }
    }

    /// Applies one event; returns whether anything the speaker reads changed.
    pub fn handle(&mut self, input: Input) -> bool {
        fn own<K: Resource>(mut obj: K) -> Option<K> {
            let m = obj.meta_mut();
            m.managed_fields = None;
            m.resource_version = None;
            m.generation = None;
            m.creation_timestamp = None;
            Some(obj)
        }
        let class = self.lb_class.clone();
        match input {
            Input::Service(ev) => self.services.handle(ev, PartialEq::eq, |svc| {
                handles(&svc, class.as_deref()).then(|| Service {
                    metadata: slim_meta(svc.metadata, true, true),
                    spec: svc.spec,
                    status: svc.status,
                })
            }),
            Input::EndpointSlice(ev) => self
                .slices
                .handle(ev, PartialEq::eq, |s| Some(slim_slice(s))),
            Input::Node(ev) => self.nodes.handle(ev, PartialEq::eq, |n| Some(slim_node(n))),
            Input::Pool(ev) => self.pools.handle(ev, same_crd!(), |mut p| {
                // Its status is the controller's; the speaker reads the spec.
                p.status = None;
                own(p)
            }),
            Input::L2Advertisement(ev) => self.l2_ads.handle(ev, same_crd!(), own),
            Input::BgpAdvertisement(ev) => self.bgp_ads.handle(ev, same_crd!(), own),
            Input::BgpPeer(ev) => self.peers.handle(ev, same_crd!(), own),
            Input::Community(ev) => self.communities.handle(ev, same_crd!(), own),
            Input::BfdProfile(ev) => self.bfd_profiles.handle(ev, same_crd!(), own),
            Input::Secret(ev) => self
                .secrets
                .handle(ev, PartialEq::eq, |s| Some(slim_secret(s))),
        }
    }

    /// Every initial list is in.
    pub fn listed(&self) -> bool {
        self.services.listed
            && self.slices.listed
            && self.nodes.listed
            && self.pools.listed
            && self.l2_ads.listed
            && self.bgp_ads.listed
            && self.peers.listed
            && self.communities.listed
            && self.bfd_profiles.listed
            && self.secrets.listed
    }

    /// The objects, as the standalone source would have read them.
    pub fn inputs(&self) -> Inputs {
        Inputs {
            services: self.services.all(),
            nodes: self.nodes.all(),
            endpoint_slices: self.slices.all(),
            ..self.config()
        }
    }

    /// The configuration objects: few, unlike Services, EndpointSlices and Nodes.
    fn config(&self) -> Inputs {
        Inputs {
            pools: self.pools.all(),
            l2_advertisements: self.l2_ads.all(),
            bgp_advertisements: self.bgp_ads.all(),
            bgp_peers: self.peers.all(),
            communities: self.communities.all(),
            bfd_profiles: self.bfd_profiles.all(),
            secrets: self.secrets.all(),
            ..Default::default()
        }
    }

    /// The world as the stores hold it. Only the few configuration objects are copied;
    /// Services, EndpointSlices and Nodes are read where they are.
    pub fn snapshot(&self) -> Snapshot {
        let config = self.config();
        let bulk = Bulk {
            services: self.services.refs(),
            endpoint_slices: self.slices.refs(),
            nodes: self.nodes.refs(),
        };
        snapshot_with(&config, &bulk, self.lb_class.as_deref(), Vec::new())
    }

    /// The uid of every BGPPeer and BGPAdvertisement, by (kind, name) (for Events about
    /// them).
    pub fn object_uids(&self) -> BTreeMap<(&'static str, String), String> {
        let peers = self.peers.objects.iter().filter_map(|((_, name), p)| {
            Some((("BGPPeer", name.clone()), p.metadata.uid.clone()?))
        });
        let ads = self.bgp_ads.objects.iter().filter_map(|((_, name), a)| {
            Some((("BGPAdvertisement", name.clone()), a.metadata.uid.clone()?))
        });
        peers.chain(ads).collect()
    }

    /// The uid of every handled Service (for Events about it).
    pub fn service_uids(&self) -> BTreeMap<ServiceKey, String> {
        self.services
            .objects
            .iter()
            .filter_map(|((ns, name), svc)| {
                Some((ServiceKey::new(ns, name), svc.metadata.uid.clone()?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    fn node(rv: &str, heartbeat: &str, ready: &str) -> Node {
        from(json!({
            "metadata": {"name": "n1", "resourceVersion": rv, "labels": {"zone": "a"},
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {
                "conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat,
                                "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": "198.51.100.11"}],
                "images": [{"names": ["registry.example/app:1"], "sizeBytes": 1000}],
            }
        }))
    }

    fn service(name: &str, class: Option<&str>, ingress: &str) -> Service {
        from(json!({
            "metadata": {"namespace": "app", "name": name, "uid": format!("uid-{name}"), "resourceVersion": "3",
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                         "ferrolb.io/allow-shared-ip": "k"}},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": class, "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ingress}]}}
        }))
    }

    fn list<K>(items: Vec<K>) -> Vec<Event<K>> {
        let mut v = vec![Event::Init];
        v.extend(items.into_iter().map(Event::InitApply));
        v.push(Event::InitDone);
        v
    }

    #[test]
    fn nothing_counts_before_every_list_and_noise_is_no_change() {
        let mut st = Store::new(None);
        for ev in list(vec![node("1", "2024-01-01T00:00:00Z", "True")]) {
            st.handle(Input::Node(ev));
        }
        assert!(!st.listed());
        let stored = &st.nodes.objects[&(String::new(), "n1".into())];
        assert!(stored.metadata.annotations.is_none() && stored.spec.is_none());
        assert_eq!(
            stored.status.as_ref().unwrap().conditions.as_ref().unwrap()[0],
            k8s_openapi::api::core::v1::NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }
        );
        assert!(stored.status.as_ref().unwrap().images.is_none());
        // A heartbeat changes nothing the speaker reads; readiness does.
        assert!(!st.handle(Input::Node(Event::Apply(node(
            "2",
            "2024-01-01T00:00:10Z",
            "True"
        )))));
        assert!(st.handle(Input::Node(Event::Apply(node(
            "3",
            "2024-01-01T00:00:20Z",
            "False"
        )))));
    }

    #[test]
    fn services_of_other_classes_are_not_kept() {
        let mut st = Store::new(None);
        for ev in list(vec![
            service("web", None, "192.0.2.1"),
            service("other", Some("x"), "192.0.2.2"),
        ]) {
            st.handle(Input::Service(ev));
        }
        assert_eq!(st.services.objects.len(), 1);
        let web = st.services.objects.values().next().unwrap();
        let notes = web.metadata.annotations.as_ref().unwrap();
        assert!(!notes.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert!(notes.contains_key("ferrolb.io/allow-shared-ip"));
        assert_eq!(
            st.service_uids(),
            [(ServiceKey::new("app", "web"), "uid-web".to_string())].into()
        );
        // A Service that moves to another class leaves.
        assert!(st.handle(Input::Service(Event::Apply(service(
            "web",
            Some("x"),
            "192.0.2.1"
        )))));
        assert!(st.services.objects.is_empty());
    }

    #[test]
    fn relist_replaces_what_vanished() {
        let mut st = Store::new(None);
        for ev in list(vec![
            service("a", None, "192.0.2.1"),
            service("b", None, "192.0.2.2"),
        ]) {
            st.handle(Input::Service(ev));
        }
        let mut changed = false;
        for ev in list(vec![service("a", None, "192.0.2.1")]) {
            changed |= st.handle(Input::Service(ev));
        }
        assert!(changed);
        assert_eq!(st.services.objects.len(), 1);
        // The same list again: no change.
        let mut changed = false;
        for ev in list(vec![service("a", None, "192.0.2.1")]) {
            changed |= st.handle(Input::Service(ev));
        }
        assert!(!changed);
    }

    #[test]
    fn slices_keep_what_the_election_reads() {
        let s: EndpointSlice = from(json!({
            "metadata": {"namespace": "app", "name": "web-x", "labels": {"kubernetes.io/service-name": "web", "other": "y"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "n1", "conditions": {"ready": true},
                           "targetRef": {"kind": "Pod", "name": "web-1", "resourceVersion": "77"}, "zone": "a"}],
            "ports": [{"port": 80}]
        }));
        let slim = slim_slice(s);
        assert_eq!(
            slim.metadata.labels,
            Some([("kubernetes.io/service-name".to_string(), "web".to_string())].into())
        );
        assert_eq!(slim.endpoints[0].node_name.as_deref(), Some("n1"));
        assert!(slim.endpoints[0].target_ref.is_none() && slim.endpoints[0].zone.is_none());
        assert!(slim.ports.is_none());
    }

    #[test]
    fn secrets_keep_only_their_password() {
        let mut st = Store::new(None);
        let s: Secret = from(json!({
            "metadata": {"namespace": "ferrolb-system", "name": "md5", "resourceVersion": "9",
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "type": "kubernetes.io/basic-auth",
            "data": {"password": "czNjcmV0", "username": "dXNlcg=="}
        }));
        for ev in list(vec![s]) {
            st.handle(Input::Secret(ev));
        }
        let kept = &st.secrets.objects[&("ferrolb-system".to_string(), "md5".to_string())];
        let keys: Vec<&String> = kept.data.iter().flat_map(|d| d.keys()).collect();
        assert_eq!(keys, ["password"]);
        assert!(kept.metadata.annotations.is_none());
        assert_eq!(st.inputs().secrets.len(), 1);
    }
}
