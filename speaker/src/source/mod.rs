//! Where the speaker's inputs come from: the standalone directory ([`dir`]) or the
//! Kubernetes API ([`kube`]). Both end in the same [`Snapshot`], built by one pure
//! function ([`snapshot`]) from the same kinds of objects, so the main loop cannot tell
//! them apart.

pub mod dir;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_crds::documents::Inputs;
use ferrolb_crds::validate::{Problem, check_pools};
use kube::ResourceExt;

use crate::world::{self, L2Ad, Node, ServiceInfo, World};

/// Everything the speaker decides from, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub world: World,
    /// Gossip peers: every node's InternalIP, by node name.
    pub node_addresses: BTreeMap<String, IpAddr>,
    /// Inputs that could not be read (the dir source uses a file's last good content),
    /// and objects that cannot be used.
    pub problems: Vec<String>,
}

/// Builds the world from objects (pure). Services are taken as they are: their
/// addresses are those in `status.loadBalancer.ingress` (the dir source writes the
/// controller's record there first). Only `LoadBalancer` Services of `lb_class` (none:
/// Services without a class) count.
pub fn snapshot(inputs: &Inputs, lb_class: Option<&str>, mut problems: Vec<String>) -> Snapshot {
    let pools = check_pools(&inputs.pools);
    problems.extend(pools.problems.iter().map(Problem::to_string));
    let endpoints = world::endpoints_by_service(&inputs.endpoint_slices);
    let mut w = World::default();
    let mut node_addresses = BTreeMap::new();
    for n in &inputs.nodes {
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
    for svc in &inputs.services {
        if !handles(svc, lb_class) {
            continue;
        }
        let key = world::ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any());
        let eps = endpoints.get(&key).cloned().unwrap_or_default();
        w.insert_service(ServiceInfo::from_service(svc, &pools, eps));
    }
    let labels = world::pool_labels(&inputs.pools);
    for ad in &inputs.l2_advertisements {
        match L2Ad::from_crd(ad, &labels) {
            Ok(ad) => w.l2_ads.push(ad),
            Err(p) => problems.push(p.to_string()),
        }
    }
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
