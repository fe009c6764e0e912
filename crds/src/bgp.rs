//! `BGPPeer` (a router a node holds a session with) and `BGPAdvertisement` (which pools
//! are announced over BGP, how and to whom).

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::l2::UNIQUE;

const COMMUNITIES_RULE: &str = concat!(
    "self.all(c, !c.contains(':') || (",
    "(c.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(c.split(':')[0]) <= 65535 && int(c.split(':')[1]) <= 65535)",
    " || (c.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && int(c.split(':')[1]) <= 4294967295",
    " && int(c.split(':')[2]) <= 4294967295 && int(c.split(':')[3]) <= 4294967295)))"
);
const SELECTORS_NEED_DEFAULT_AGGREGATION: &str = concat!(
    "!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || (",
    "(!has(self.aggregationLength) || self.aggregationLength == 32)",
    " && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))"
);

/// Announce the selected pools' addresses over BGP.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    doc = "Announces pools over BGP",
    namespaced,
    shortname = "bgpadv",
    category = "ferrolb",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers")
)]
#[x_kube(validation = Rule::new(SELECTORS_NEED_DEFAULT_AGGREGATION).message("serviceSelectors can only be used with the default aggregation lengths (32 and 128)"))]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Prefix length IPv4 addresses are announced with (default 32). Must not be shorter
    /// than any IPv4 CIDR of the selected pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub aggregation_length: Option<i32>,
    /// Prefix length IPv6 addresses are announced with (default 128).
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 128))]
    pub aggregation_length_v6: Option<i32>,
    /// LOCAL_PREF attribute, sent to iBGP peers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Communities: `A:B`, `large:A:B:C`, or the name of a `Community` alias.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(
        validation = Rule::new(UNIQUE).message("communities must not repeat"),
        validation = Rule::new(COMMUNITIES_RULE).message("a community is A:B (each 0-65535), large:A:B:C (each 0-4294967295), or an alias name without ':'")
    )]
    #[schemars(length(max = 63), inner(length(min = 1, max = 64)))]
    pub communities: Vec<String>,
    /// Pools by name. With `ipAddressPoolSelectors` also empty: every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new(UNIQUE).message("ipAddressPools must not repeat"))]
    #[schemars(length(max = 256), inner(length(max = 253)))]
    pub ip_address_pools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce (and so act as next hops). Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub node_selectors: Vec<LabelSelector>,
    /// BGPPeer names to announce to. Empty: every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new(UNIQUE).message("peers must not repeat"))]
    #[schemars(length(max = 256), inner(length(max = 253)))]
    pub peers: Vec<String>,
    /// Services this advertisement applies to. Empty: every Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub service_selectors: Vec<LabelSelector>,
}

/// `internal` (iBGP: the peer's AS is ours) or `external` (eBGP: any other AS).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsn {
    Internal,
    External,
}

const DURATION_FORMAT: &str = "self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$')";

/// A BGP router that nodes hold sessions with (MetalLB's `BGPPeer` v1beta2, plus
/// `passive`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    doc = "A BGP router nodes hold sessions with",
    namespaced,
    shortname = "bgpp",
    category = "ferrolb",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(name = "Passive", type_ = "boolean", json_path = ".spec.passive")
)]
#[x_kube(
    validation = Rule::new("has(self.peerASN) != has(self.dynamicASN)").message("exactly one of peerASN and dynamicASN must be set"),
    validation = Rule::new("!has(self.holdTime) || duration(self.holdTime) == duration('0s') || duration(self.holdTime) >= duration('3s')").message("holdTime must be 0 or at least 3s"),
    // An unset holdTime is the default 90s, which a keepalive can exceed as well. With
    // holdTime 0 (no keepalives) only keepaliveTime 0 is consistent.
    validation = Rule::new("!has(self.keepaliveTime) || duration(self.keepaliveTime) <= (has(self.holdTime) ? duration(self.holdTime) : duration('90s'))").message("keepaliveTime must not exceed holdTime (90s when unset)"),
    validation = Rule::new("!has(self.connectTime) || (duration(self.connectTime) >= duration('1s') && duration(self.connectTime) <= duration('65535s'))").message("connectTime must be between 1s and 65535s"),
    validation = Rule::new("!self.ebgpMultiHop || (has(self.peerASN) && self.peerASN != self.myASN) || (has(self.dynamicASN) && self.dynamicASN == 'external')").message("ebgpMultiHop cannot be set for an iBGP peer"),
    validation = Rule::new("!(has(self.password) && has(self.passwordSecret))").message("password and passwordSecret are mutually exclusive")
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// Our AS number on this session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 1))]
    pub my_asn: u32,
    /// The peer's AS number. Exactly one of peerASN and dynamicASN.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub peer_asn: Option<u32>,
    /// Accept whatever AS the peer announces, as long as it is (`internal`) or is not
    /// (`external`) our own.
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicAsn>,
    /// The router's address.
    #[x_kube(validation = Rule::new("isIP(self)").message("peerAddress must be an IP address"))]
    #[schemars(length(max = 45))]
    pub peer_address: String,
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 16384))]
    pub peer_port: u16,
    /// Local address to connect from (must be configured on the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("sourceAddress must be an IP address"))]
    #[schemars(length(max = 45))]
    pub source_address: Option<String>,
    /// BGP identifier. Default: the node's IPv4 address on the session.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4").message("routerID must be an IPv4 address"))]
    #[schemars(length(max = 15))]
    pub router_id: Option<String>,
    /// Hold time we propose (default 90s); 0 disables keepalives, else at least 3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DURATION_FORMAT).message("holdTime must be a duration such as 90s"))]
    #[schemars(length(max = 32))]
    pub hold_time: Option<String>,
    /// Keepalive interval (default holdTime/3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DURATION_FORMAT).message("keepaliveTime must be a duration such as 30s"))]
    #[schemars(length(max = 32))]
    pub keepalive_time: Option<String>,
    /// Initial delay between connection attempts, in whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DURATION_FORMAT).message("connectTime must be a duration such as 10s"))]
    #[schemars(length(max = 32))]
    pub connect_time: Option<String>,
    /// Allow an eBGP peer that is more than one hop away.
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    /// TCP MD5 key, in clear. Prefer passwordSecret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 80))]
    pub password: Option<String>,
    /// Secret (type kubernetes.io/basic-auth, key `password`) holding the TCP MD5 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,
    /// Nodes that open this session. Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub node_selectors: Vec<LabelSelector>,
    /// Advertise the graceful-restart capability.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("enableGracefulRestart cannot be changed"))]
    pub enable_graceful_restart: bool,
    /// Name of a BFDProfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub bfd_profile: Option<String>,
    /// Host VRF to peer from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub vrf: Option<String>,
    /// Open both IPv4 and IPv6 unicast on this session, whatever its address family.
    #[serde(default)]
    pub dual_stack_address_family: bool,
    /// Deprecated in MetalLB and ignored; accepted so existing manifests still apply.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
    /// Never connect: wait for the peer to connect (FerroLB addition).
    #[serde(default)]
    pub passive: bool,
}

fn default_port() -> u16 {
    179
}
