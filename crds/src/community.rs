//! `Community`: named aliases for BGP community values.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

const VALUES_RULE: &str = concat!(
    "self.all(a, (a.value.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(a.value.split(':')[0]) <= 65535 && int(a.value.split(':')[1]) <= 65535)",
    " || (a.value.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && int(a.value.split(':')[1]) <= 4294967295",
    " && int(a.value.split(':')[2]) <= 4294967295 && int(a.value.split(':')[3]) <= 4294967295))"
);

/// Named community values, usable by name in `BGPAdvertisement.spec.communities`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "Community",
    doc = "Named BGP community values",
    namespaced,
    category = "ferrolb"
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    #[serde(default)]
    #[x_kube(
        validation = Rule::new("self.all(x, self.exists_one(y, x.name == y.name))").message("community alias names must not repeat"),
        validation = Rule::new(VALUES_RULE).message("a community value is A:B (each 0-65535) or large:A:B:C (each 0-4294967295)")
    )]
    #[schemars(length(max = 128))]
    pub communities: Vec<CommunityAlias>,
}

/// One alias: `name` stands for `value`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CommunityAlias {
    #[x_kube(validation = Rule::new("!self.contains(':')").message("an alias name cannot contain ':'"))]
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    #[schemars(length(min = 3, max = 40))]
    pub value: String,
}
