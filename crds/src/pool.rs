//! `IPAddressPool`: the addresses FerroLB may hand out, and to whom.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// Every entry is a CIDR or a range of two addresses of one family; IPv4 ranges must
/// not run backwards (IPv6 order is checked by the programs, as CEL cannot compare
/// IPv6 addresses).
const ADDRESSES_RULE: &str = concat!(
    "self.all(a, isCIDR(a.trim()) || (a.split('-').size() == 2",
    " && isIP(a.split('-')[0].trim()) && isIP(a.split('-')[1].trim())",
    " && ip(a.split('-')[0].trim()).family() == ip(a.split('-')[1].trim()).family()))"
);
const V4_ORDER_RULE: &str = concat!(
    "self.all(a, a.split('-').size() != 2 || !isIP(a.split('-')[0].trim()) || ip(a.split('-')[0].trim()).family() != 4",
    " || !isIP(a.split('-')[1].trim()) || ip(a.split('-')[1].trim()).family() != 4 || ",
    "int(a.split('-')[0].trim().split('.')[0]) * 16777216 + int(a.split('-')[0].trim().split('.')[1]) * 65536",
    " + int(a.split('-')[0].trim().split('.')[2]) * 256 + int(a.split('-')[0].trim().split('.')[3])",
    " <= ",
    "int(a.split('-')[1].trim().split('.')[0]) * 16777216 + int(a.split('-')[1].trim().split('.')[1]) * 65536",
    " + int(a.split('-')[1].trim().split('.')[2]) * 256 + int(a.split('-')[1].trim().split('.')[3]))"
);

/// A set of addresses FerroLB may assign to LoadBalancer Services.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    doc = "A pool of addresses FerroLB assigns to LoadBalancer Services",
    namespaced,
    status = "IPAddressPoolStatus",
    shortname = "ipp",
    category = "ferrolb",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Assigned v4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Assigned v6",
        type_ = "integer",
        json_path = ".status.assignedIPv6"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// CIDRs (`198.51.100.0/24`, `2001:db8::/64`) and inclusive ranges
    /// (`198.51.100.10-198.51.100.20`). IPv4 and IPv6 may be mixed: a pool with both can
    /// serve dual-stack Services.
    #[schemars(length(min = 1, max = 256), inner(length(min = 1, max = 100)))]
    #[x_kube(
        validation = Rule::new(ADDRESSES_RULE).message("each address must be a CIDR (198.51.100.0/24) or a range of two addresses of one family (198.51.100.10-198.51.100.20)"),
        validation = Rule::new(V4_ORDER_RULE).message("an IPv4 range must not start after it ends")
    )]
    pub addresses: Vec<String>,
    /// Whether Services may get addresses from this pool without asking for it by
    /// name (annotation) or address. Default true.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in .0 or .255.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Restricts the pool to some namespaces or Services, and orders it among pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

fn default_true() -> bool {
    true
}

/// Which Services may use a pool, and the pool's rank among those that match.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower is tried first; 0 or unset is tried after every positive priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, x == y))").message("namespaces must not repeat"))]
    #[schemars(length(max = 256), inner(length(max = 253)))]
    pub namespaces: Vec<String>,
    /// Namespaces, by label, whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services, by label, that may use the pool (any selector matching suffices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub service_selectors: Vec<LabelSelector>,
}

/// What the controller observed about a pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses in use (distinct; a shared address counts once).
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// IPv4 addresses still free, saturating at 2^63-1 like MetalLB.
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: i64,
    #[serde(default, rename = "availableIPv6")]
    pub available_ipv6: i64,
    /// `Valid`, `Overlapping`, `AddressesInUseOutsidePool`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl IPAddressPoolSpec {
    pub fn new(addresses: &[&str]) -> Self {
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }
}
