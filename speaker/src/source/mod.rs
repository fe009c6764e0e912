//! Where the speaker's inputs come from: the standalone directory ([`dir`]) or the
//! Kubernetes API ([`kube`]). Both end in the same [`Snapshot`], built by one pure
//! function ([`snapshot`]) from the same kinds of objects, so the main loop cannot tell
//! them apart.

pub mod dir;
pub mod dir_watch;
pub mod kube;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ::kube::ResourceExt;
use ferrolb_crds::documents::Inputs;
use ferrolb_crds::validate::{Problem, check_pools, check_references};

use crate::bgp::config::{
    aliases_from_crd, peers_from_crd, resolve_bfd_profiles, resolve_passwords,
};
use crate::world::{self, BgpAd, L2Ad, Node, ServiceInfo, World};
use k8s_openapi::api::core::v1::{Node as KubeNode, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Everything the speaker decides from, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub world: World,
    /// Gossip peers: every node's InternalIP, by node name.
    pub node_addresses: BTreeMap<String, IpAddr>,
    /// Inputs that could not be read (the dir source leaves out a file that does not parse),
    /// and objects that cannot be used.
    pub problems: Vec<String>,
}

/// The numerous kinds, by reference: the Kubernetes source keeps them in its store, and
/// copying tens of thousands of objects for every change cost more than the rest of a
/// snapshot.
pub struct Bulk<'a> {
    pub services: Vec<&'a Service>,
    pub endpoint_slices: Vec<&'a EndpointSlice>,
    pub nodes: Vec<&'a KubeNode>,
}

impl<'a> Bulk<'a> {
    /// Those of `inputs`.
    pub fn of(inputs: &'a Inputs) -> Bulk<'a> {
        Bulk {
            services: inputs.services.iter().collect(),
            endpoint_slices: inputs.endpoint_slices.iter().collect(),
            nodes: inputs.nodes.iter().collect(),
        }
    }
}

/// Builds the world from objects (pure). Services are taken as they are: their
/// addresses are those in `status.loadBalancer.ingress` (the dir source writes the
/// controller's record there first). Only `LoadBalancer` Services of `lb_class` (none:
/// Services without a class) count.
pub fn snapshot(inputs: &Inputs, lb_class: Option<&str>, problems: Vec<String>) -> Snapshot {
    snapshot_with(inputs, &Bulk::of(inputs), lb_class, problems)
}

/// [`snapshot`], with the Services, EndpointSlices and Nodes taken from `bulk` (those
/// in `config` are not read).
pub fn snapshot_with(
    config: &Inputs,
    bulk: &Bulk,
    lb_class: Option<&str>,
    mut problems: Vec<String>,
) -> Snapshot {
    let inputs = config;
    let pools = check_pools(&inputs.pools);
    problems.extend(pools.problems.iter().map(Problem::to_string));
    let mut endpoints = world::endpoints_by_service(bulk.endpoint_slices.iter().copied());
    let mut w = World::default();
    let mut node_addresses = BTreeMap::new();
    for n in bulk.nodes.iter().copied() {
        let Some(node) = Node::from_kube(n) else {
            continue;
        };
        let internal = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse().ok());
        if let Some(ip) = internal {
            node_addresses.insert(node.name.clone(), ip);
        }
        w.insert_node(node);
    }
    // In one go rather than one insert at a time, which would leave the map's nodes half
    // full: with tens of thousands of Services that is megabytes. Each Service takes its
    // endpoints, and the key they were filed under, out of the list; of two Services with
    // the same key the last wins, as with inserts, so the list is walked from the end
    // (the last one takes the endpoints) and the result put back in order.
    let pool_names = world::PoolNames::new(&pools);
    let mut path = String::new();
    let mut services: Vec<(world::ServiceKey, ServiceInfo)> = bulk
        .services
        .iter()
        .rev()
        .filter(|svc| handles(svc, lb_class))
        .map(|svc| {
            let path = world::service_path(
                &mut path,
                svc.metadata.namespace.as_deref().unwrap_or_default(),
                svc.metadata.name.as_deref().unwrap_or_default(),
            );
            let (key, eps) = match endpoints.binary_search_by(|(k, _)| k.as_str().cmp(path)) {
                Ok(i) => (endpoints[i].0.clone(), std::mem::take(&mut endpoints[i].1)),
                Err(_) => (world::ServiceKey::from(path), Vec::new()),
            };
            (
                key.clone(),
                ServiceInfo::from_service(key, svc, &pool_names, eps),
            )
        })
        .collect();
    drop(endpoints);
    services.reverse();
    w.services = services.into_iter().collect();
    let labels = world::pool_labels(&inputs.pools);
    for ad in &inputs.l2_advertisements {
        match L2Ad::from_crd(ad, &labels) {
            Ok(ad) => w.l2_ads.push(ad),
            Err(p) => problems.push(p.to_string()),
        }
    }
    // BGP: an advertisement whose aggregate would cover addresses outside its pools is
    // left out, as MetalLB rejects it; names that refer to nothing are only reported
    // (the object may appear later).
    let mut bgp_problems: Vec<Problem> = check_references(
        &pools,
        &[],
        &inputs.bgp_advertisements,
        &inputs.bgp_peers,
        &inputs.communities,
    )
    .into_iter()
    .filter(|p| p.kind == "BGPAdvertisement")
    .collect();
    for ad in &inputs.bgp_advertisements {
        let name = ad.name_any();
        if bgp_problems
            .iter()
            .any(|p| p.name == name && p.reason == "InvalidAggregationLength")
        {
            continue;
        }
        match BgpAd::from_crd(ad, &labels) {
            Ok(ad) => w.bgp_ads.push(ad),
            Err(p) => bgp_problems.push(p),
        }
    }
    w.bgp_peers = peers_from_crd(&inputs.bgp_peers, &mut bgp_problems);
    resolve_passwords(&mut w.bgp_peers, &inputs.secrets, &mut bgp_problems);
    resolve_bfd_profiles(&mut w.bgp_peers, &inputs.bfd_profiles, &mut bgp_problems);
    w.community_aliases = aliases_from_crd(&inputs.communities, &mut bgp_problems);
    problems.extend(bgp_problems.iter().map(Problem::to_string));
    Snapshot {
        world: w,
        node_addresses,
        problems,
    }
}

/// A `LoadBalancer` Service of this speaker's class (`None`: without a class).
pub fn handles(svc: &k8s_openapi::api::core::v1::Service, lb_class: Option<&str>) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_deref()) == lb_class
}

#[cfg(test)]
mod tests {
    use super::*;

    const BGP: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: ferrolb-system}
spec: {addresses: [203.0.113.0/24, "2001:db8:113::/120"]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, holdTime: 9s}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: in-vrf, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.2, vrf: red}
---
apiVersion: ferrolb.io/v1beta1
kind: Community
metadata: {name: c, namespace: ferrolb-system}
spec: {communities: [{name: vip, value: "64512:100"}]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: ok, namespace: ferrolb-system}
spec: {ipAddressPools: [bgp], communities: [vip], aggregationLength: 28}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: too-wide, namespace: ferrolb-system}
spec: {ipAddressPools: [bgp], aggregationLength: 16}
"#;

    #[test]
    fn bgp_objects_reach_the_world() {
        let mut inputs = Inputs::default();
        inputs.parse(BGP, "bgp.yaml").unwrap();
        let snap = snapshot(&inputs, None, Vec::new());
        let w = &snap.world;
        assert_eq!(w.bgp_peers.keys().collect::<Vec<_>>(), ["router"]);
        assert_eq!(w.bgp_peers["router"].session.hold_time.as_secs(), 9);
        assert_eq!(w.community_aliases.len(), 1);
        let ads: Vec<_> = w
            .bgp_ads
            .iter()
            .map(|a| (a.name.as_str(), a.aggregation_length))
            .collect();
        assert_eq!(ads, [("ok", 28)]);
        assert_eq!(snap.problems.len(), 2, "{:?}", snap.problems);
        assert!(snap.problems.iter().any(|p| p.contains("too-wide")));
        assert!(
            snap.problems
                .iter()
                .any(|p| p.contains("in-vrf") && p.contains("VRF"))
        );
    }

    const SERVICES: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.0/24]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 198.51.100.1}]}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a-b}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 198.51.100.3}]}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec: {type: LoadBalancer, externalTrafficPolicy: Local}
status: {loadBalancer: {ingress: [{ip: 198.51.100.2}]}}
---
apiVersion: v1
kind: Service
metadata: {name: lonely, namespace: a}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 198.51.100.4}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: a, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [192.0.2.1], nodeName: n1}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-2, namespace: a, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [192.0.2.2], nodeName: n1}]
"#;

    #[test]
    fn services_take_their_endpoints_and_the_last_copy_wins() {
        let mut inputs = Inputs::default();
        inputs.parse(SERVICES, "services.yaml").unwrap();
        let w = snapshot(&inputs, None, Vec::new()).world;
        let keys: Vec<_> = w.services.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["a-b/web", "a/lonely", "a/web"]);
        let web = &w.services["a/web"];
        assert_eq!(
            web.ips.as_slice(),
            ["198.51.100.2".parse::<IpAddr>().unwrap()]
        );
        assert!(web.external_traffic_policy_local, "the later copy");
        assert_eq!(
            web.endpoints.len(),
            2,
            "both slices, with the copy that stays"
        );
        assert!(std::sync::Arc::ptr_eq(
            web.endpoints[0].node.as_ref().unwrap(),
            web.endpoints[1].node.as_ref().unwrap()
        ));
        assert!(w.services["a/lonely"].endpoints.is_empty());
        assert!(w.services["a-b/web"].endpoints.is_empty());
        assert_eq!(&*web.pool, "lan");
        assert!(std::sync::Arc::ptr_eq(
            &web.pool,
            &w.services["a/lonely"].pool
        ));
        assert_eq!((web.key.namespace(), web.key.name()), ("a", "web"));
    }
}
