//! The speaker's inputs as plain data: nodes, services with their endpoints, and the
//! advertisements, already parsed and resolved.
//!
//! The election ([`crate::election`]) reads only these types, never Kubernetes objects,
//! so it is a pure function that tests can feed by hand and that the Kubernetes source and
//! the standalone directory source feed alike. The small `from_*` functions here are the
//! only place Kubernetes shapes are read; each reads exactly the fields the decision
//! needs, so that two speakers holding the same objects build the same `World`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::bgp::config::{CommunityValue, Peer};
use ferrolb_crds::annotations;
use ferrolb_crds::selector::Selectors;
use ferrolb_crds::validate::{ParsedPool, PoolCheck, Problem};
use ferrolb_crds::{BGPAdvertisement, IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::{Node as KubeNode, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Label that takes a node out of every election (Kubernetes' own convention, honoured
/// by cloud load balancers and by MetalLB).
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

type Labels = BTreeMap<String, String>;

/// A Service's identity: `namespace/name`. One shared string: the key is copied into
/// every decision about the Service (announcements, reasons, status), and with tens of
/// thousands of Services those copies must not each allocate, nor cost two pointers each.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// `namespace/name`; the namespace ends at the first `/` (a Kubernetes namespace
    /// cannot hold one).
    full: Arc<str>,
}

impl ServiceKey {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> ServiceKey {
        let mut buf = String::new();
        ServiceKey::from(service_path(&mut buf, namespace.as_ref(), name.as_ref()))
    }

    fn split(&self) -> (&str, &str) {
        self.full.split_once('/').unwrap_or((&self.full, ""))
    }

    pub fn namespace(&self) -> &str {
        self.split().0
    }

    pub fn name(&self) -> &str {
        self.split().1
    }

    /// `namespace/name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl Default for ServiceKey {
    fn default() -> ServiceKey {
        ServiceKey::new("", "")
    }
}

/// Maps keyed by Service can be searched with a `namespace/name` string, which needs no
/// new shared string per search (keys sort, hash and compare as that string).
impl std::borrow::Borrow<str> for ServiceKey {
    fn borrow(&self) -> &str {
        &self.full
    }
}

impl From<&str> for ServiceKey {
    /// From `namespace/name`.
    fn from(full: &str) -> ServiceKey {
        ServiceKey { full: full.into() }
    }
}

/// Writes `namespace/name` into `buf`, to search a map keyed by [`ServiceKey`].
pub fn service_path<'b>(buf: &'b mut String, namespace: &str, name: &str) -> &'b str {
    buf.clear();
    buf.push_str(namespace);
    buf.push('/');
    buf.push_str(name);
    buf
}

/// Written as `namespace/name`, as people read it (the report's keys).
impl serde::Serialize for ServiceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.full, f)
    }
}

/// A node as the election sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
}

impl Node {
    /// Reads a Kubernetes Node. `None` for a Node without a name, which the API server
    /// never returns but a hand-written standalone file could.
    pub fn from_kube(node: &KubeNode) -> Option<Node> {
        let name = node.metadata.name.clone().filter(|n| !n.is_empty())?;
        let condition = |kind: &str| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
                // Only an explicit "True" counts: "Unknown" (a node that stopped
                // reporting) is not Ready, and is not taken as NetworkUnavailable either.
                .is_some_and(|c| c.status == "True")
        };
        Some(Node {
            name,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            ready: condition("Ready"),
            network_unavailable: condition("NetworkUnavailable"),
        })
    }

    /// Labelled `node.kubernetes.io/exclude-from-external-load-balancers` (any value).
    pub fn excluded(&self) -> bool {
        self.labels.contains_key(EXCLUDE_LB_LABEL)
    }
}

/// One endpoint of a Service: where it runs and whether it can take traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Shared by every endpoint on the node ([`Interner`]).
    pub node: Option<Arc<str>>,
    pub serving: bool,
}

/// Hands out one shared string per distinct value: tens of thousands of endpoints name
/// a handful of nodes, and Services a handful of pools.
#[derive(Debug, Default)]
pub struct Interner(std::collections::HashSet<Arc<str>>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = s.into();
        self.0.insert(shared.clone());
        shared
    }
}

/// The Service an EndpointSlice belongs to, from its namespace and its
/// `kubernetes.io/service-name` label.
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    (!name.is_empty()).then(|| ServiceKey::new(namespace, name))
}

/// The endpoints of one EndpointSlice, their node names taken from `nodes`.
pub fn slice_endpoints(slice: &EndpointSlice, nodes: &mut Interner) -> Vec<Endpoint> {
    slice
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.as_ref();
            // MetalLB's reading: ready unset or true, or explicitly serving. A terminating
            // pod that still serves keeps the IP announced while it drains. An unset
            // `serving` beside `ready: false` is not taken as serving: writers older than
            // the `serving` field set only `ready`, and there `false` means not ready.
            let can_serve =
                c.and_then(|c| c.ready) != Some(false) || c.and_then(|c| c.serving) == Some(true);
            Endpoint {
                node: e
                    .node_name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| nodes.get(n)),
                // An endpoint without an address cannot take traffic (the API requires
                // one; a standalone file might omit it).
                serving: can_serve && !e.addresses.is_empty(),
            }
        })
        .collect()
}

/// Every slice's endpoints, grouped by Service and sorted by key (search it with
/// [`service_path`]). Slices without a service label are skipped: nothing routes to them.
pub fn endpoints_by_service<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<(ServiceKey, Vec<Endpoint>)> {
    let mut nodes = Interner::default();
    let mut out: Vec<(ServiceKey, Vec<Endpoint>)> = slices
        .into_iter()
        .filter_map(|s| Some((slice_service(s)?, slice_endpoints(s, &mut nodes))))
        .collect();
    // A sorted list rather than a map filled one key at a time: fewer allocations,
    // and the snapshot takes each Service's list out of it.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|later, first| {
        if later.0 != first.0 {
            return false;
        }
        first.1.append(&mut later.1);
        true
    });
    for (_, eps) in &mut out {
        eps.shrink_to_fit();
    }
    out
}

/// Addresses of a Service: nearly always one, kept inline.
pub type Ips = smallvec::SmallVec<[IpAddr; 1]>;

/// A Service with assigned addresses, as the election sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub key: ServiceKey,
    /// In `status.loadBalancer.ingress` order: the first decides the leader.
    pub ips: Ips,
    /// The pool the addresses belong to (shared by its Services); empty: none.
    pub pool: Arc<str>,
    pub labels: Labels,
    /// `spec.externalTrafficPolicy: Local`: only nodes with a serving endpoint qualify.
    pub external_traffic_policy_local: bool,
    /// Has a (non-empty) allow-shared-ip key.
    pub sharing: bool,
    pub endpoints: Vec<Endpoint>,
}

/// The valid pools, each with its name as one shared string.
pub struct PoolNames<'a> {
    pools: Vec<(Arc<str>, &'a ParsedPool)>,
    /// For Services in no pool: shared too.
    none: Arc<str>,
}

impl<'a> PoolNames<'a> {
    pub fn new(check: &'a PoolCheck) -> PoolNames<'a> {
        PoolNames {
            pools: check
                .valid
                .values()
                .map(|p| (Arc::from(p.name.as_str()), p))
                .collect(),
            none: Arc::from(""),
        }
    }

    /// The name of the pool holding `ip`; empty when none does.
    fn holding(&self, ip: Option<&IpAddr>) -> Arc<str> {
        ip.and_then(|ip| self.pools.iter().find(|(_, p)| p.contains(ip)))
            .map_or_else(|| self.none.clone(), |(name, _)| name.clone())
    }
}

impl ServiceInfo {
    /// Reads a Kubernetes Service. The pool is the valid pool that contains the first
    /// address, whatever the `ip-allocated-from-pool` annotation says: an address no pool
    /// contains any more must not be announced, and an empty pool name matches no
    /// advertisement. Which Services the speaker handles at all (type, load balancer
    /// class) is the caller's choice. `key` is the Service's own.
    pub fn from_service(
        key: ServiceKey,
        svc: &Service,
        pools: &PoolNames,
        endpoints: Vec<Endpoint>,
    ) -> ServiceInfo {
        let meta = &svc.metadata;
        let ips: Ips = ferrolb_crds::service::ingress_ips(svc)
            .into_iter()
            .collect();
        let pool = pools.holding(ips.first());
        let empty = BTreeMap::new();
        let notes = meta.annotations.as_ref().unwrap_or(&empty);
        ServiceInfo {
            key,
            ips,
            pool,
            labels: meta.labels.clone().unwrap_or_default(),
            external_traffic_policy_local: svc
                .spec
                .as_ref()
                .and_then(|s| s.external_traffic_policy.as_deref())
                == Some("Local"),
            sharing: annotations::lookup(notes, annotations::ALLOW_SHARED_IP)
                .is_some_and(|f| !f.value.is_empty()),
            endpoints,
        }
    }
}

/// Every pool's labels by pool name, for resolving `ipAddressPoolSelectors`.
pub fn pool_labels<'a>(
    pools: impl IntoIterator<Item = &'a IPAddressPool>,
) -> BTreeMap<String, Labels> {
    pools
        .into_iter()
        .filter_map(|p| {
            let name = p.metadata.name.clone()?;
            Some((name, p.metadata.labels.clone().unwrap_or_default()))
        })
        .collect()
}

/// The pools an advertisement covers: those named, plus those whose labels match a
/// selector; with neither list given, every pool in `pools`. Names of pools that do not
/// exist are kept (they match nothing until the pool appears), as MetalLB ignores them.
pub fn resolve_pools(
    names: &[String],
    selectors: &[LabelSelector],
    pools: &BTreeMap<String, Labels>,
) -> Result<BTreeSet<String>, ferrolb_crds::selector::SelectorError> {
    if names.is_empty() && selectors.is_empty() {
        return Ok(pools.keys().cloned().collect());
    }
    let by_label = Selectors::parse(selectors)?;
    let mut out: BTreeSet<String> = names.iter().cloned().collect();
    out.extend(
        pools
            .iter()
            .filter(|(_, labels)| by_label.matches_any(labels))
            .map(|(name, _)| name.clone()),
    );
    Ok(out)
}

fn selector_problem(
    kind: &'static str,
    name: &str,
    field: &str,
) -> impl FnOnce(ferrolb_crds::selector::SelectorError) -> Problem {
    let (name, field) = (name.to_string(), field.to_string());
    move |e| Problem {
        kind,
        name,
        reason: "InvalidSelector",
        message: format!("{field}: {e}"),
    }
}

/// An L2Advertisement, resolved.
#[derive(Clone, Debug, Default)]
pub struct L2Ad {
    pub name: String,
    /// The pools it covers, by name.
    pub pools: BTreeSet<String>,
    /// Nodes that may announce; empty = every node.
    pub node_selectors: Selectors,
    /// Services it applies to; empty = every Service.
    pub service_selectors: Selectors,
    /// Interfaces to announce from; empty = every eligible interface.
    pub interfaces: BTreeSet<String>,
}

impl L2Ad {
    /// Resolves an L2Advertisement against the pools' labels ([`pool_labels`]). A
    /// selector that does not parse makes the whole advertisement unusable: ignoring just
    /// that selector would widen it to every node or Service.
    pub fn from_crd(
        ad: &L2Advertisement,
        pools: &BTreeMap<String, Labels>,
    ) -> Result<L2Ad, Problem> {
        const KIND: &str = "L2Advertisement";
        let name = ad.metadata.name.clone().unwrap_or_default();
        let s = &ad.spec;
        Ok(L2Ad {
            pools: resolve_pools(&s.ip_address_pools, &s.ip_address_pool_selectors, pools)
                .map_err(selector_problem(KIND, &name, "ipAddressPoolSelectors"))?,
            node_selectors: Selectors::parse(&s.node_selectors).map_err(selector_problem(
                KIND,
                &name,
                "nodeSelectors",
            ))?,
            service_selectors: Selectors::parse(&s.service_selectors).map_err(selector_problem(
                KIND,
                &name,
                "serviceSelectors",
            ))?,
            interfaces: s.interfaces.iter().cloned().collect(),
            name,
        })
    }
}

/// A BGPAdvertisement, resolved (used by BGP mode).
#[derive(Clone, Debug, Default)]
pub struct BgpAd {
    pub name: String,
    pub pools: BTreeSet<String>,
    /// IPv4 prefix length announced (default 32).
    pub aggregation_length: u8,
    /// IPv6 prefix length announced (default 128).
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP peers.
    pub local_pref: Option<u32>,
    /// As written: `A:B`, `large:A:B:C`, or a Community alias (resolved by BGP mode).
    pub communities: BTreeSet<String>,
    /// BGPPeer names to announce to; empty = every peer.
    pub peers: BTreeSet<String>,
    pub node_selectors: Selectors,
    pub service_selectors: Selectors,
}

impl BgpAd {
    /// Resolves a BGPAdvertisement against the pools' labels. The schema bounds the
    /// aggregation lengths; they are checked again because standalone files bypass it.
    pub fn from_crd(
        ad: &BGPAdvertisement,
        pools: &BTreeMap<String, Labels>,
    ) -> Result<BgpAd, Problem> {
        const KIND: &str = "BGPAdvertisement";
        let name = ad.metadata.name.clone().unwrap_or_default();
        let s = &ad.spec;
        let length = |value: Option<i32>, max: u8, field: &str| -> Result<u8, Problem> {
            match value {
                None => Ok(max),
                Some(v) => u8::try_from(v)
                    .ok()
                    .filter(|l| (1..=max).contains(l))
                    .ok_or_else(|| Problem {
                        kind: KIND,
                        name: name.clone(),
                        reason: "InvalidAggregationLength",
                        message: format!("{field} {v} is not between 1 and {max}"),
                    }),
            }
        };
        Ok(BgpAd {
            aggregation_length: length(s.aggregation_length, 32, "aggregationLength")?,
            aggregation_length_v6: length(s.aggregation_length_v6, 128, "aggregationLengthV6")?,
            local_pref: s.local_pref,
            communities: s.communities.iter().cloned().collect(),
            peers: s.peers.iter().cloned().collect(),
            pools: resolve_pools(&s.ip_address_pools, &s.ip_address_pool_selectors, pools)
                .map_err(selector_problem(KIND, &name, "ipAddressPoolSelectors"))?,
            node_selectors: Selectors::parse(&s.node_selectors).map_err(selector_problem(
                KIND,
                &name,
                "nodeSelectors",
            ))?,
            service_selectors: Selectors::parse(&s.service_selectors).map_err(selector_problem(
                KIND,
                &name,
                "serviceSelectors",
            ))?,
            name,
        })
    }
}

/// Everything a speaker decides from. Maps are keyed by node name and Service key, so
/// the same objects always make the same `World`, whatever order they arrived in.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub nodes: BTreeMap<String, Node>,
    pub services: BTreeMap<ServiceKey, ServiceInfo>,
    pub l2_ads: Vec<L2Ad>,
    pub bgp_ads: Vec<BgpAd>,
    /// BGPPeers that can be used, by name.
    pub bgp_peers: BTreeMap<String, Peer>,
    /// Community aliases (from every `Community` object), by alias name.
    pub community_aliases: BTreeMap<String, CommunityValue>,
}

impl World {
    /// Adds or replaces a node (by name).
    pub fn insert_node(&mut self, node: Node) {
        self.nodes.insert(node.name.clone(), node);
    }

    /// Adds or replaces a Service (by key).
    pub fn insert_service(&mut self, svc: ServiceInfo) {
        self.services.insert(svc.key.clone(), svc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_crds::validate::check_pools;
    use ferrolb_crds::{BGPAdvertisementSpec, IPAddressPoolSpec, L2AdvertisementSpec};
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeCondition, NodeStatus, ServiceSpec,
        ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint as KubeEndpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cond(kind: &str, status: &str) -> NodeCondition {
        NodeCondition {
            type_: kind.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn kube_node(name: Option<&str>, conds: Vec<NodeCondition>) -> KubeNode {
        KubeNode {
            metadata: ObjectMeta {
                name: name.map(Into::into),
                labels: Some(labels(&[(EXCLUDE_LB_LABEL, "")])),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(conds),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn node_conditions_need_an_explicit_true() {
        let n = Node::from_kube(&kube_node(
            Some("n1"),
            vec![cond("Ready", "True"), cond("NetworkUnavailable", "False")],
        ))
        .unwrap();
        assert_eq!(n.name, "n1");
        assert!(n.ready && !n.network_unavailable && n.excluded());

        let n = Node::from_kube(&kube_node(
            Some("n2"),
            vec![cond("Ready", "Unknown"), cond("NetworkUnavailable", "True")],
        ))
        .unwrap();
        assert!(!n.ready && n.network_unavailable);

        let n = Node::from_kube(&kube_node(Some("n3"), vec![])).unwrap();
        assert!(!n.ready && !n.network_unavailable);
        assert!(Node::from_kube(&kube_node(None, vec![])).is_none());
        assert!(Node::from_kube(&kube_node(Some(""), vec![])).is_none());
    }

    fn kube_ep(node: Option<&str>, ready: Option<bool>, serving: Option<bool>) -> KubeEndpoint {
        KubeEndpoint {
            addresses: vec!["192.0.2.10".into()],
            node_name: node.map(Into::into),
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating: None,
            }),
            ..Default::default()
        }
    }

    fn slice(ns: &str, svc: Option<&str>, eps: Vec<KubeEndpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                labels: svc.map(|s| labels(&[(SERVICE_NAME_LABEL, s)])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps,
            ports: None,
        }
    }

    #[test]
    fn endpoint_serving_follows_metallb() {
        let mut no_addr = kube_ep(Some("n5"), Some(true), None);
        no_addr.addresses.clear();
        let no_conditions = KubeEndpoint {
            addresses: vec!["192.0.2.11".into()],
            node_name: Some("n6".into()),
            ..Default::default()
        };
        let s = slice(
            "ns",
            Some("web"),
            vec![
                kube_ep(Some("n1"), None, None),
                kube_ep(Some("n2"), Some(true), None),
                kube_ep(Some("n3"), Some(false), Some(true)), // terminating, still serving
                kube_ep(Some("n4"), Some(false), None),
                no_addr,
                no_conditions,
                kube_ep(None, Some(true), None),
            ],
        );
        let mut nodes = Interner::default();
        let eps = slice_endpoints(&s, &mut nodes);
        let serving: Vec<_> = eps.iter().map(|e| e.serving).collect();
        assert_eq!(serving, [true, true, true, false, false, true, true]);
        assert_eq!(eps[0].node.as_deref(), Some("n1"));
        assert_eq!(eps[6].node, None);
        assert_eq!(slice_service(&s), Some(ServiceKey::new("ns", "web")));
    }

    #[test]
    fn endpoints_group_by_service_label() {
        let slices = [
            slice("a", Some("web"), vec![kube_ep(Some("n1"), None, None)]),
            slice("a", Some("web"), vec![kube_ep(Some("n1"), None, None)]),
            slice("b", Some("web"), vec![kube_ep(Some("n3"), None, None)]),
            slice("a", None, vec![kube_ep(Some("n4"), None, None)]),
            slice("a", Some(""), vec![kube_ep(Some("n4"), None, None)]),
        ];
        let by = endpoints_by_service(&slices);
        let keys: Vec<_> = by.iter().map(|(k, eps)| (k.as_str(), eps.len())).collect();
        assert_eq!(keys, [("a/web", 2), ("b/web", 1)]);
        assert!(
            Arc::ptr_eq(
                by[0].1[0].node.as_ref().unwrap(),
                by[0].1[1].node.as_ref().unwrap()
            ),
            "one string per node name"
        );
        assert_eq!(ServiceKey::new("a", "web").to_string(), "a/web");
    }

    fn pool(name: &str, addrs: &[&str], l: &[(&str, &str)]) -> IPAddressPool {
        let mut p = IPAddressPool::new(name, IPAddressPoolSpec::new(addrs));
        p.metadata.labels = Some(labels(l));
        p
    }

    #[test]
    fn service_reads_ingress_pool_sharing_and_policy() {
        let pools = [
            pool(
                "lan",
                &[
                    "198.51.100.200-198.51.100.250",
                    "2001:db8:51::200-2001:db8:51::250",
                ],
                &[],
            ),
            pool("other", &["203.0.113.0/24"], &[]),
        ];
        let check = check_pools(&pools);
        let ingress = |ip: &str| LoadBalancerIngress {
            ip: Some(ip.into()),
            ..Default::default()
        };
        let svc = Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("web".into()),
                labels: Some(labels(&[("app", "web")])),
                annotations: Some(labels(&[
                    ("metallb.io/allow-shared-ip", "k"),
                    (annotations::IP_ALLOCATED_FROM_POOL, "other"),
                ])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                external_traffic_policy: Some("Local".into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![
                        ingress("2001:db8:51::201"),
                        ingress("not an ip"),
                        ingress("198.51.100.201"),
                    ]),
                }),
                ..Default::default()
            }),
        };
        let eps = vec![Endpoint {
            node: Some("n1".into()),
            serving: true,
        }];
        let pool_names = PoolNames::new(&check);
        let info =
            ServiceInfo::from_service(ServiceKey::new("ns", "web"), &svc, &pool_names, eps.clone());
        assert_eq!(info.key, ServiceKey::new("ns", "web"));
        assert_eq!(
            info.ips.as_slice(),
            [
                "2001:db8:51::201".parse::<IpAddr>().unwrap(),
                "198.51.100.201".parse().unwrap()
            ]
        );
        // The pool that holds the address, not the annotation.
        assert_eq!(&*info.pool, "lan");
        assert!(info.sharing && info.external_traffic_policy_local);
        assert_eq!(info.labels, labels(&[("app", "web")]));
        assert_eq!(info.endpoints, eps);

        let bare = Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("bare".into()),
                annotations: Some(labels(&[(annotations::ALLOW_SHARED_IP, "")])),
                ..Default::default()
            },
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![ingress("192.0.2.1")]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let info =
            ServiceInfo::from_service(ServiceKey::new("ns", "bare"), &bare, &pool_names, vec![]);
        assert_eq!(&*info.pool, "", "an address outside every pool has no pool");
        assert!(!info.sharing && !info.external_traffic_policy_local);
    }

    fn sel(kv: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(kv)),
            ..Default::default()
        }
    }

    #[test]
    fn pools_resolve_by_name_label_or_all() {
        let pools = [
            pool("a", &["198.51.100.0/28"], &[("zone", "east")]),
            pool("b", &["198.51.100.16/28"], &[("zone", "west")]),
            pool("c", &["198.51.100.32/28"], &[]),
        ];
        let by = pool_labels(&pools);
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(resolve_pools(&[], &[], &by).unwrap(), set(&["a", "b", "c"]));
        assert_eq!(
            resolve_pools(
                &["c".into(), "ghost".into()],
                &[sel(&[("zone", "west")])],
                &by
            )
            .unwrap(),
            set(&["b", "c", "ghost"])
        );
        assert_eq!(
            resolve_pools(&[], &[sel(&[("zone", "north")])], &by).unwrap(),
            set(&[])
        );
    }

    fn bad_selector() -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Sometimes".into(),
                values: None,
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn l2_ad_converts_and_bad_selectors_reject_it() {
        let pools = pool_labels(&[pool("a", &["198.51.100.0/28"], &[("zone", "east")])]);
        let ad = L2Advertisement::new(
            "ad",
            L2AdvertisementSpec {
                ip_address_pool_selectors: vec![sel(&[("zone", "east")])],
                node_selectors: vec![sel(&[("rack", "1")])],
                service_selectors: vec![sel(&[("app", "web")])],
                interfaces: vec!["eth0".into(), "eth1".into()],
                ..Default::default()
            },
        );
        let l2 = L2Ad::from_crd(&ad, &pools).unwrap();
        assert_eq!(l2.name, "ad");
        assert_eq!(l2.pools.iter().collect::<Vec<_>>(), ["a"]);
        assert!(l2.node_selectors.matches_any(&labels(&[("rack", "1")])));
        assert!(!l2.node_selectors.matches_any(&labels(&[("rack", "2")])));
        assert!(l2.service_selectors.matches_any(&labels(&[("app", "web")])));
        assert_eq!(l2.interfaces.len(), 2);

        for field in [
            "nodeSelectors",
            "serviceSelectors",
            "ipAddressPoolSelectors",
        ] {
            let mut bad = ad.clone();
            match field {
                "nodeSelectors" => bad.spec.node_selectors = vec![bad_selector()],
                "serviceSelectors" => bad.spec.service_selectors = vec![bad_selector()],
                _ => bad.spec.ip_address_pool_selectors = vec![bad_selector()],
            }
            let p = L2Ad::from_crd(&bad, &pools).unwrap_err();
            assert_eq!(
                (p.kind, p.name.as_str(), p.reason),
                ("L2Advertisement", "ad", "InvalidSelector")
            );
            assert!(p.message.starts_with(field), "{p}");
        }
    }

    #[test]
    fn bgp_ad_defaults_and_bounds() {
        let pools = pool_labels(&[pool("a", &["198.51.100.0/28"], &[])]);
        let ad = BGPAdvertisement::new(
            "b",
            BGPAdvertisementSpec {
                local_pref: Some(100),
                communities: vec!["65000:1".into(), "large:1:2:3".into()],
                peers: vec!["r1".into()],
                node_selectors: vec![sel(&[("rack", "1")])],
                ..Default::default()
            },
        );
        let b = BgpAd::from_crd(&ad, &pools).unwrap();
        assert_eq!((b.aggregation_length, b.aggregation_length_v6), (32, 128));
        assert_eq!(b.local_pref, Some(100));
        assert_eq!(b.communities.len(), 2);
        assert_eq!(b.peers.iter().collect::<Vec<_>>(), ["r1"]);
        assert_eq!(b.pools.iter().collect::<Vec<_>>(), ["a"]);
        assert!(b.service_selectors.is_empty());

        let mut agg = ad.clone();
        agg.spec.aggregation_length = Some(24);
        agg.spec.aggregation_length_v6 = Some(64);
        let b = BgpAd::from_crd(&agg, &pools).unwrap();
        assert_eq!((b.aggregation_length, b.aggregation_length_v6), (24, 64));

        for (v4, v6) in [
            (Some(0), None),
            (Some(33), None),
            (None, Some(129)),
            (None, Some(-1)),
        ] {
            let mut bad = ad.clone();
            bad.spec.aggregation_length = v4;
            bad.spec.aggregation_length_v6 = v6;
            let p = BgpAd::from_crd(&bad, &pools).unwrap_err();
            assert_eq!(p.reason, "InvalidAggregationLength", "{p}");
        }
        let mut bad = ad;
        bad.spec.service_selectors = vec![bad_selector()];
        assert_eq!(
            BgpAd::from_crd(&bad, &pools).unwrap_err().reason,
            "InvalidSelector"
        );
    }

    #[test]
    fn world_keys_by_name() {
        let mut w = World::default();
        w.insert_node(Node {
            name: "n1".into(),
            ..Default::default()
        });
        w.insert_node(Node {
            name: "n1".into(),
            ready: true,
            ..Default::default()
        });
        assert_eq!(w.nodes.len(), 1);
        assert!(w.nodes["n1"].ready);
        w.insert_service(ServiceInfo {
            key: ServiceKey::new("ns", "a"),
            ..Default::default()
        });
        assert!(w.services.contains_key(&ServiceKey::new("ns", "a")));
    }
}
