//! `L2Advertisement`: which pools are announced in Layer2 mode, from which nodes and
//! interfaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub(crate) const UNIQUE: &str = "self.all(x, self.exists_one(y, x == y))";

/// Announce the selected pools' addresses with ARP (IPv4) and NDP (IPv6).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    doc = "Announces pools in Layer2 mode (ARP/NDP)",
    namespaced,
    shortname = "l2adv",
    category = "ferrolb",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces")
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools by name. With `ipAddressPoolSelectors` also empty: every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new(UNIQUE).message("ipAddressPools must not repeat"))]
    #[schemars(length(max = 256), inner(length(max = 253)))]
    pub ip_address_pools: Vec<String>,
    /// Pools by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce. Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub node_selectors: Vec<LabelSelector>,
    /// Services this advertisement applies to. Empty: every Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub service_selectors: Vec<LabelSelector>,
    /// Interfaces to announce from. Empty: every eligible interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new(UNIQUE).message("interfaces must not repeat"))]
    #[schemars(length(max = 64), inner(length(min = 1, max = 15)))]
    pub interfaces: Vec<String>,
}
