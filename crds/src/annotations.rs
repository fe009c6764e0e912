//! Service annotations FerroLB reads and writes, with MetalLB's keys as aliases.

/// Allocate from this pool.
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// Comma-separated requested IPs (one, or one per family).
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";
/// Sharing key: services with equal keys may share an IP.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
/// Written by the controller: the pool the Service's IPs came from.
pub const IP_ALLOCATED_FROM_POOL: &str = "ferrolb.io/ip-allocated-from-pool";

/// Prefixes of MetalLB's keys, newest first; `<prefix>/<suffix>` is an alias of
/// `ferrolb.io/<suffix>`.
pub const METALLB_PREFIXES: [&str; 2] = ["metallb.io", "metallb.universe.tf"];

/// Where a value was found: FerroLB's own key, or a MetalLB alias (which earns a hint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    pub value: &'a str,
    /// The key the value came from.
    pub key: String,
    /// True when `key` is a MetalLB alias rather than FerroLB's key.
    pub alias: bool,
}

/// Looks `key` (one of the `ferrolb.io/…` constants) up in `annotations`, falling back
/// to MetalLB's keys. FerroLB's key wins when both are present.
pub fn lookup<'a>(
    annotations: &'a std::collections::BTreeMap<String, String>,
    key: &str,
) -> Option<Found<'a>> {
    if let Some(v) = annotations.get(key) {
        return Some(Found {
            value: v,
            key: key.to_string(),
            alias: false,
        });
    }
    let suffix = key.strip_prefix("ferrolb.io/")?;
    METALLB_PREFIXES.iter().find_map(|p| {
        let k = format!("{p}/{suffix}");
        annotations.get(&k).map(|v| Found {
            value: v,
            key: k,
            alias: true,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ferrolb_key_wins_and_aliases_are_flagged() {
        let mut a = BTreeMap::new();
        a.insert(
            "metallb.universe.tf/address-pool".to_string(),
            "old".to_string(),
        );
        let f = lookup(&a, ADDRESS_POOL).unwrap();
        assert_eq!((f.value, f.alias), ("old", true));
        a.insert("metallb.io/address-pool".to_string(), "mid".to_string());
        assert_eq!(lookup(&a, ADDRESS_POOL).unwrap().value, "mid");
        a.insert(ADDRESS_POOL.to_string(), "new".to_string());
        let f = lookup(&a, ADDRESS_POOL).unwrap();
        assert_eq!((f.value, f.alias), ("new", false));
        assert!(lookup(&a, ALLOW_SHARED_IP).is_none());
    }
}
