//! Rules the CRD schema cannot express, shared by the controller and the speaker:
//! parsing each pool into address ranges, and rules across objects (pools that
//! overlap, advertisements naming pools, peers or communities that do not exist).
//!
//! Nothing here fails as a whole: every problem is attached to the object it concerns,
//! so the caller can report it there and keep using everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::addresses::{AddrRange, AddressError, Family};
use crate::selector::{SelectorError, Selectors};
use crate::{BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};
use kube::ResourceExt;

/// A problem with one object, for its status condition and an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `IPAddressPool`, `BGPAdvertisement`, …
    pub kind: &'static str,
    pub name: String,
    /// CamelCase reason, e.g. `InvalidAddress`, `Overlapping`.
    pub reason: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.kind, self.name, self.message)
    }
}

/// One pool, parsed.
#[derive(Clone, Debug)]
pub struct ParsedPool {
    pub name: String,
    /// In the order listed.
    pub ranges: Vec<AddrRange>,
}

impl ParsedPool {
    pub fn contains(&self, ip: &std::net::IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    pub fn families(&self) -> BTreeSet<Family> {
        self.ranges.iter().map(|r| r.family).collect()
    }
}

/// Parses one pool's addresses and selectors. Errors name the entry at fault.
pub fn parse_pool(pool: &IPAddressPool) -> Result<ParsedPool, Problem> {
    let name = pool.name_any();
    let problem = |reason, message: String| Problem {
        kind: "IPAddressPool",
        name: name.clone(),
        reason,
        message,
    };
    if pool.spec.addresses.is_empty() {
        return Err(problem("InvalidAddress", "spec.addresses is empty".into()));
    }
    let mut ranges = Vec::with_capacity(pool.spec.addresses.len());
    for entry in &pool.spec.addresses {
        let r = AddrRange::parse(entry)
            .map_err(|e: AddressError| problem("InvalidAddress", e.to_string()))?;
        if let Some(prev) = ranges.iter().find(|p: &&AddrRange| p.overlaps(&r)) {
            return Err(problem(
                "InvalidAddress",
                format!("{entry:?} overlaps {prev} in the same pool"),
            ));
        }
        ranges.push(r);
    }
    if let Some(sa) = &pool.spec.service_allocation {
        let sel = |l: &[_], field: &str| {
            Selectors::parse(l)
                .map_err(|e: SelectorError| problem("InvalidSelector", format!("{field}: {e}")))
        };
        sel(
            &sa.namespace_selectors,
            "serviceAllocation.namespaceSelectors",
        )?;
        sel(&sa.service_selectors, "serviceAllocation.serviceSelectors")?;
        if sa.priority.is_some_and(|p| p < 0) {
            return Err(problem(
                "InvalidPriority",
                "serviceAllocation.priority must not be negative".into(),
            ));
        }
    }
    Ok(ParsedPool { name, ranges })
}

/// The outcome of checking every pool together.
#[derive(Debug, Default)]
pub struct PoolCheck {
    /// Pools that can be used, by name.
    pub valid: BTreeMap<String, ParsedPool>,
    /// Pools that cannot, with why.
    pub problems: Vec<Problem>,
}

/// Parses every pool and sets aside those that are malformed or overlap another.
/// When two pools overlap, the one whose name sorts first keeps its addresses and the
/// other is reported `Overlapping`: the choice is deterministic, so every replica and
/// every restart agree.
pub fn check_pools<'a>(pools: impl IntoIterator<Item = &'a IPAddressPool>) -> PoolCheck {
    let mut by_name: BTreeMap<String, &IPAddressPool> = BTreeMap::new();
    for p in pools {
        by_name.insert(p.name_any(), p);
    }
    let mut out = PoolCheck::default();
    for pool in by_name.values() {
        let parsed = match parse_pool(pool) {
            Ok(p) => p,
            Err(e) => {
                out.problems.push(e);
                continue;
            }
        };
        let clash = out.valid.values().find_map(|other| {
            parsed.ranges.iter().find_map(|r| {
                other
                    .ranges
                    .iter()
                    .find(|o| o.overlaps(r))
                    .map(|o| (other.name.clone(), *r, *o))
            })
        });
        match clash {
            Some((other, mine, theirs)) => out.problems.push(Problem {
                kind: "IPAddressPool",
                name: parsed.name.clone(),
                reason: "Overlapping",
                message: format!("{mine} overlaps {theirs} of pool {other:?}; this pool is not used until the overlap is removed"),
            }),
            None => {
                out.valid.insert(parsed.name.clone(), parsed);
            }
        }
    }
    out
}

/// Cross-object checks of the advertisement, peer and community objects: names that
/// refer to nothing, and aggregation lengths shorter than a pool's CIDRs.
pub fn check_references(
    pools: &PoolCheck,
    l2: &[L2Advertisement],
    bgp: &[BGPAdvertisement],
    peers: &[BGPPeer],
    communities: &[Community],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let pool_names: BTreeSet<&str> = pools.valid.keys().map(String::as_str).collect();
    let peer_names: BTreeSet<String> = peers.iter().map(|p| p.name_any()).collect();
    let mut aliases: BTreeMap<&str, String> = BTreeMap::new();
    for c in communities {
        for a in &c.spec.communities {
            if let Some(first) = aliases.insert(&a.name, c.name_any()) {
                problems.push(Problem {
                    kind: "Community",
                    name: c.name_any(),
                    reason: "DuplicateAlias",
                    message: format!("alias {:?} is also defined in Community {first:?}", a.name),
                });
            }
        }
    }
    for ad in l2 {
        for p in &ad.spec.ip_address_pools {
            if !pool_names.contains(p.as_str()) {
                problems.push(unknown("L2Advertisement", ad.name_any(), "pool", p));
            }
        }
    }
    for ad in bgp {
        let name = ad.name_any();
        for p in &ad.spec.ip_address_pools {
            if !pool_names.contains(p.as_str()) {
                problems.push(unknown("BGPAdvertisement", name.clone(), "pool", p));
            }
        }
        for p in &ad.spec.peers {
            if !peer_names.contains(p) {
                problems.push(unknown("BGPAdvertisement", name.clone(), "BGPPeer", p));
            }
        }
        for c in &ad.spec.communities {
            if !c.contains(':') && !aliases.contains_key(c.as_str()) {
                problems.push(unknown(
                    "BGPAdvertisement",
                    name.clone(),
                    "community alias",
                    c,
                ));
            }
        }
        let selected: Vec<&ParsedPool> = if ad.spec.ip_address_pools.is_empty() {
            pools.valid.values().collect()
        } else {
            ad.spec
                .ip_address_pools
                .iter()
                .filter_map(|p| pools.valid.get(p))
                .collect()
        };
        for (family, len) in [
            (Family::V4, ad.spec.aggregation_length),
            (Family::V6, ad.spec.aggregation_length_v6),
        ] {
            let Some(len) = len else { continue };
            for pool in &selected {
                // As MetalLB: the aggregate may not be more specific than the pool's
                // widest block, or addresses of that block could not be covered.
                let widest = pool
                    .ranges
                    .iter()
                    .filter(|r| r.family == family)
                    .map(|r| r.shortest_prefix())
                    .min();
                if let Some(widest) = widest.filter(|w| len < i32::from(*w)) {
                    problems.push(Problem {
                        kind: "BGPAdvertisement",
                        name: name.clone(),
                        reason: "InvalidAggregationLength",
                        message: format!(
                            "aggregation length {len} is shorter than /{widest} of pool {:?}: the aggregate would cover addresses outside the pool",
                            pool.name
                        ),
                    });
                }
            }
        }
    }
    problems
}

fn unknown(kind: &'static str, name: String, what: &str, missing: &str) -> Problem {
    Problem {
        kind,
        name,
        reason: "UnknownReference",
        message: format!("{what} {missing:?} does not exist"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BGPAdvertisementSpec, IPAddressPoolSpec};

    fn pool(name: &str, addrs: &[&str]) -> IPAddressPool {
        IPAddressPool::new(name, IPAddressPoolSpec::new(addrs))
    }

    #[test]
    fn malformed_pool_is_reported_and_others_kept() {
        let pools = [
            pool("a", &["198.51.100.0/28"]),
            pool("b", &["198.51.100.300/28"]),
            pool("c", &["2001:db8::/64"]),
        ];
        let check = check_pools(&pools);
        assert_eq!(check.valid.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(check.problems.len(), 1);
        assert_eq!(check.problems[0].name, "b");
        assert_eq!(check.problems[0].reason, "InvalidAddress");
        assert!(
            check.problems[0].message.contains("198.51.100.300/28"),
            "{}",
            check.problems[0]
        );
    }

    #[test]
    fn overlap_keeps_first_by_name() {
        let pools = [
            pool("z", &["198.51.100.10-198.51.100.20"]),
            pool("a", &["198.51.100.0/28"]),
        ];
        let check = check_pools(&pools);
        assert!(check.valid.contains_key("a"));
        assert!(!check.valid.contains_key("z"));
        assert_eq!(check.problems[0].reason, "Overlapping");
        assert!(check.problems[0].message.contains("\"a\""));
    }

    #[test]
    fn overlap_within_a_pool() {
        let err = parse_pool(&pool(
            "a",
            &["198.51.100.0/28", "198.51.100.5-198.51.100.6"],
        ))
        .unwrap_err();
        assert!(err.message.contains("same pool"), "{err}");
    }

    #[test]
    fn references_and_aggregation() {
        let pools = [pool("p", &["198.51.100.0/24"])];
        let check = check_pools(&pools);
        let ad = BGPAdvertisement::new(
            "ad",
            BGPAdvertisementSpec {
                aggregation_length: Some(22),
                ip_address_pools: vec!["p".into(), "ghost".into()],
                peers: vec!["r1".into()],
                communities: vec!["65000:1".into(), "no-such-alias".into()],
                ..Default::default()
            },
        );
        let problems = check_references(&check, &[], &[ad], &[], &[]);
        let reasons: Vec<_> = problems
            .iter()
            .map(|p| (p.reason, p.message.as_str()))
            .collect();
        assert_eq!(problems.len(), 4, "{reasons:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.reason == "InvalidAggregationLength")
        );
        assert!(problems.iter().any(|p| p.message.contains("ghost")));
        assert!(problems.iter().any(|p| p.message.contains("r1")));
        assert!(problems.iter().any(|p| p.message.contains("no-such-alias")));
    }
}
