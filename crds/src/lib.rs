//! FerroLB's API: the `ferrolb.io/v1beta1` kinds, their defaults, and the validation
//! both programs share.
//!
//! The kinds mirror MetalLB's `metallb.io` API field for field, so a MetalLB user's
//! manifests work after renaming the group. Everything the API server can check lives in
//! the CRD schema (OpenAPI bounds and CEL rules); what needs several objects at once lives
//! in [`validate`].

pub mod addresses;
pub mod annotations;
pub mod bfd;
pub mod bgp;
pub mod community;
pub mod condition;
pub mod l2;
pub mod pool;
pub mod selector;
pub mod validate;

pub use bfd::{BFDProfile, BFDProfileSpec};
pub use bgp::{BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec};
pub use community::{Community, CommunitySpec};
pub use l2::{L2Advertisement, L2AdvertisementSpec};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};

/// The API group of every FerroLB kind.
pub const GROUP: &str = "ferrolb.io";
/// MetalLB's API group, accepted where FerroLB reads MetalLB manifests (the planner).
pub const METALLB_GROUP: &str = "metallb.io";

/// Every CustomResourceDefinition FerroLB installs, in a stable order.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        BGPAdvertisement::crd(),
        BGPPeer::crd(),
        Community::crd(),
        BFDProfile::crd(),
    ]
}
