//! `ServiceL2Status` and `ServiceBGPStatus`: what a speaker announces, written by the
//! speaker itself, one object per (Service, announcing node), in the FerroLB namespace.
//! Status only: the (empty) spec exists because every custom resource has one.
//!
//! As MetalLB's kinds of the same names: `kubectl get servicel2statuses` answers "which
//! node answers ARP/NDP for this Service, on which interfaces", and
//! `kubectl get servicebgpstatuses` "which nodes announce it, to which peers".

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Label on status objects: the announcing node.
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label on status objects: the Service's name.
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label on status objects: the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";

const IMMUTABLE: &str = "self == oldSelf";

/// Empty: a status object has nothing to ask for.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    doc = "Which node announces a Service in Layer2 mode, and on which interfaces (written by the speakers)",
    namespaced,
    status = "ServiceL2StatusStatus",
    category = "ferrolb",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceL2StatusSpec {}

/// The node that answers ARP/NDP for a Service's addresses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The announcing node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new(IMMUTABLE).message("node is immutable"))]
    pub node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new(IMMUTABLE).message("serviceName is immutable"))]
    pub service_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new(IMMUTABLE).message("serviceNamespace is immutable"))]
    pub service_namespace: String,
    /// The interfaces the node answers on. Empty: the node is elected but none of its
    /// interfaces can carry the addresses (see the speaker's log).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub interfaces: Vec<InterfaceInfo>,
}

/// One interface.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord,
)]
pub struct InterfaceInfo {
    pub name: String,
}

/// Empty: a status object has nothing to ask for.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    doc = "Which node announces a Service over BGP, and to which peers (written by the speakers)",
    namespaced,
    status = "ServiceBGPStatusStatus",
    category = "ferrolb",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceBGPStatusSpec {}

/// A node announcing a Service over BGP.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusStatus {
    /// The announcing node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new(IMMUTABLE).message("node is immutable"))]
    pub node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new(IMMUTABLE).message("serviceName is immutable"))]
    pub service_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new(IMMUTABLE).message("serviceNamespace is immutable"))]
    pub service_namespace: String,
    /// The BGPPeers (by name) the node announces the Service's addresses to: what it
    /// intends, not the sessions' state.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(max = 253)))]
    pub peers: Vec<String>,
}
