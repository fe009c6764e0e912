//! Who announces what, in Layer2 mode: a pure function of the [`World`], this node's
//! name and the live gossip members.
//!
//! There is no lock and no lease. Every speaker runs the same computation on the same
//! inputs and so reaches the same answer; only the last step ([`announcements`]) looks at
//! which node is asking. For each Service:
//!
//! 1. without an address, or without a serving endpoint anywhere, it is not announced;
//! 2. the applicable advertisements are the L2Advertisements of its pool whose
//!    `serviceSelectors` are empty or match it; none → not announced;
//! 3. a Service with an allow-shared-ip key that one of them selects by
//!    `serviceSelectors` is not announced (as MetalLB: which of the sharers' selectors
//!    should rule the shared address is undefined);
//! 4. eligible nodes: alive in gossip, Ready, not NetworkUnavailable, not labelled
//!    `exclude-from-external-load-balancers`, selected by an applicable advertisement's
//!    `nodeSelectors`, and for `externalTrafficPolicy: Local` hosting a serving endpoint;
//! 5. the leader is the eligible node whose SHA-256 of `"<node>#<first IP>"` is the
//!    smallest, bytewise (rendezvous hashing, MetalLB's order). It announces every address
//!    of the Service, so a dual-stack Service has one node.
//!
//! Rendezvous hashing is what keeps failover cheap: removing a node that leads nothing
//! moves nothing, and a new node takes exactly the addresses it now hashes first for.
//!
//! Services sharing an address are announced once, by one node. When sharers would elect
//! different nodes (their first addresses differ, or their endpoints do), every Service
//! connected through shared addresses follows the leader of the first of them by
//! namespace/name: each address still has exactly one announcer and each Service stays
//! on one node. The controller only lets Services share when this cannot matter for
//! traffic (same pods for `Local`), so this is a tie-break, not a policy.
//!
//! BGP mode has no leader: every eligible node announces (the router spreads traffic by
//! ECMP). A node announces a Service's addresses when the Service has an address and a
//! serving endpoint, a BGPAdvertisement of its pool matches it (`serviceSelectors`) and
//! selects the node (`nodeSelectors`), the node passes the same checks as in Layer2
//! (alive, Ready, not NetworkUnavailable, not excluded), and, for
//! `externalTrafficPolicy: Local`, a serving endpoint runs on the node. What is sent to
//! which router is [`crate::bgp::rib`]'s business.
//!
//! `live` is the set of gossip members. Without gossip, the caller passes every node
//! name, and Node readiness alone decides (slower to notice a crash, still correct).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::world::{BgpAd, L2Ad, Node, ServiceInfo, ServiceKey, World};

/// A node's rank for an address: SHA-256 of `"<node>#<ip>"`. Lower ranks first.
///
/// The address is written as Go's `net.IP.String()` writes it, since MetalLB hashes that
/// string: RFC 5952 for IPv6 (as Rust's `Display`), and an IPv4-mapped IPv6 address as
/// plain IPv4.
pub fn rank(node: &str, first_ip: IpAddr) -> [u8; 32] {
    rank_text(node, &hash_text(first_ip))
}

fn hash_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// [`rank`] with the address already written, so an election writes it once per Service
/// rather than once per node.
fn rank_text(node: &str, ip: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.as_bytes());
    h.finalize().into()
}

/// Orders candidate nodes for a Service whose first address is `first_ip`: the first is
/// the leader, the second takes over if it goes, and so on.
pub fn l2_candidates_order<'a>(nodes: &[&'a str], first_ip: IpAddr) -> Vec<&'a str> {
    let ip = hash_text(first_ip);
    let mut out = nodes.to_vec();
    out.sort_by_cached_key(|n| rank_text(n, &ip));
    out
}

/// Why a Service's addresses are not announced (by this node, for [`NotAnnounced::NotLeader`];
/// by any node, for every other reason).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotAnnounced {
    /// The Service has no assigned address yet.
    NoAddresses,
    /// No endpoint anywhere can serve: announcing would attract traffic to nowhere.
    NoServingEndpoints,
    /// No L2Advertisement covers the Service's pool and matches the Service (or its
    /// addresses are in no known pool).
    NoAdvertisement,
    /// The Service has an allow-shared-ip key and an applicable L2Advertisement selects
    /// Services by label.
    SharedWithServiceSelector,
    /// No node passes every eligibility rule.
    NoEligibleNode,
    /// Another node announces it.
    NotLeader(String),
    /// BGP mode: this node may not announce it.
    NotEligible(Ineligible),
}

impl NotAnnounced {
    /// A CamelCase reason for Events and status conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            NotAnnounced::NoAddresses => "NoAddresses",
            NotAnnounced::NoServingEndpoints => "NoServingEndpoints",
            NotAnnounced::NoAdvertisement => "NoAdvertisement",
            NotAnnounced::SharedWithServiceSelector => "SharedWithServiceSelector",
            NotAnnounced::NoEligibleNode => "NoEligibleNode",
            NotAnnounced::NotLeader(_) => "NotLeader",
            NotAnnounced::NotEligible(_) => "NotEligible",
        }
    }
}

impl fmt::Display for NotAnnounced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAnnounced::NoAddresses => f.write_str("no address assigned"),
            NotAnnounced::NoServingEndpoints => f.write_str("no endpoint can serve"),
            NotAnnounced::NoAdvertisement => {
                f.write_str("no advertisement of this mode covers its pool and matches it")
            }
            NotAnnounced::SharedWithServiceSelector => f.write_str(
                "it shares its address (allow-shared-ip) and an L2Advertisement selects it by serviceSelectors",
            ),
            NotAnnounced::NoEligibleNode => f.write_str(
                "no node is alive, Ready, reachable, not excluded, selected by an L2Advertisement (and, for externalTrafficPolicy Local, hosting an endpoint)",
            ),
            NotAnnounced::NotLeader(n) => write!(f, "announced by node {n}"),
            NotAnnounced::NotEligible(why) => write!(f, "this node may not announce it: {why}"),
        }
    }
}

/// Why a node cannot announce a given Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ineligible {
    /// No Node object by that name.
    UnknownNode,
    /// Not a live gossip member.
    NotAlive,
    NotReady,
    NetworkUnavailable,
    /// Labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    Excluded,
    /// No applicable advertisement (of the mode in question) selects it.
    NotSelected,
    /// `externalTrafficPolicy: Local` and no serving endpoint on it.
    NoLocalEndpoint,
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ineligible::UnknownNode => "no such Node",
            Ineligible::NotAlive => "not alive in gossip",
            Ineligible::NotReady => "not Ready",
            Ineligible::NetworkUnavailable => "NetworkUnavailable",
            Ineligible::Excluded => "labelled exclude-from-external-load-balancers",
            Ineligible::NotSelected => "no applicable advertisement selects it",
            Ineligible::NoLocalEndpoint => {
                "no serving endpoint on it (externalTrafficPolicy Local)"
            }
        })
    }
}

/// The checks that do not depend on the Service.
fn node_fit(node: &Node, live: &BTreeSet<String>) -> Result<(), Ineligible> {
    if !live.contains(&node.name) {
        Err(Ineligible::NotAlive)
    } else if !node.ready {
        Err(Ineligible::NotReady)
    } else if node.network_unavailable {
        Err(Ineligible::NetworkUnavailable)
    } else if node.excluded() {
        Err(Ineligible::Excluded)
    } else {
        Ok(())
    }
}

fn has_local_endpoint(svc: &ServiceInfo, node: &str) -> bool {
    svc.endpoints
        .iter()
        .any(|e| e.serving && e.node.as_deref() == Some(node))
}

/// The L2Advertisements that apply to a Service, by index in `world.l2_ads`.
fn applicable_ads(world: &World, svc: &ServiceInfo) -> Vec<usize> {
    world
        .l2_ads
        .iter()
        .enumerate()
        .filter(|(_, ad)| {
            ad.pools.contains(&*svc.pool) && ad.service_selectors.matches_or_empty(&svc.labels)
        })
        .map(|(i, _)| i)
        .collect()
}

fn selects(ad: &L2Ad, node: &Node) -> bool {
    ad.node_selectors.matches_or_empty(&node.labels)
}

/// Whether `node` may announce `svc`, and if not, the first rule it fails.
pub fn eligibility(
    world: &World,
    svc: &ServiceInfo,
    node: &str,
    live: &BTreeSet<String>,
) -> Result<(), Ineligible> {
    let n = world.nodes.get(node).ok_or(Ineligible::UnknownNode)?;
    node_fit(n, live)?;
    if !applicable_ads(world, svc)
        .into_iter()
        .any(|i| selects(&world.l2_ads[i], n))
    {
        return Err(Ineligible::NotSelected);
    }
    if svc.external_traffic_policy_local && !has_local_endpoint(svc, node) {
        return Err(Ineligible::NoLocalEndpoint);
    }
    Ok(())
}

/// One Service's own election, before shared addresses are reconciled.
struct Decided<'w> {
    leader: &'w str,
    /// Applicable advertisements, by index.
    ads: Vec<usize>,
    /// The first Service (by index) of those tied to this one by shared addresses.
    group: usize,
}

/// Steps 1–5 of the module documentation for one Service. `fit` holds the nodes that
/// pass the Service-independent checks, and `selected[ad]` which of them each
/// advertisement selects, both computed once per world.
fn decide<'w>(
    world: &'w World,
    svc: &ServiceInfo,
    fit: &[&'w Node],
    selected: &[Vec<bool>],
) -> Result<Decided<'w>, NotAnnounced> {
    let Some(&first_ip) = svc.ips.first() else {
        return Err(NotAnnounced::NoAddresses);
    };
    if !svc.endpoints.iter().any(|e| e.serving) {
        return Err(NotAnnounced::NoServingEndpoints);
    }
    let ads = applicable_ads(world, svc);
    if ads.is_empty() {
        return Err(NotAnnounced::NoAdvertisement);
    }
    if svc.sharing
        && ads
            .iter()
            .any(|&i| !world.l2_ads[i].service_selectors.is_empty())
    {
        return Err(NotAnnounced::SharedWithServiceSelector);
    }
    let local: Option<BTreeSet<&str>> = svc.external_traffic_policy_local.then(|| {
        svc.endpoints
            .iter()
            .filter(|e| e.serving)
            .filter_map(|e| e.node.as_deref())
            .collect()
    });
    let ip = hash_text(first_ip);
    // Only the first candidate matters, so a minimum rather than a sort.
    let leader = fit
        .iter()
        .enumerate()
        .filter(|(i, _)| ads.iter().any(|&a| selected[a][*i]))
        .filter(|(_, n)| local.as_ref().is_none_or(|l| l.contains(n.name.as_str())))
        .map(|(_, n)| n.name.as_str())
        .min_by_key(|n| rank_text(n, &ip))
        .ok_or(NotAnnounced::NoEligibleNode)?;
    Ok(Decided {
        leader,
        ads,
        group: 0,
    })
}

/// Smallest-index root: the root of a group is its first Service by key.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// The whole cluster's election: each Service's outcome, with shared addresses
/// reconciled. The same on every node for the same inputs.
fn elect<'w>(
    world: &'w World,
    live: &BTreeSet<String>,
) -> Vec<(&'w ServiceInfo, Result<Decided<'w>, NotAnnounced>)> {
    let fit: Vec<&Node> = world
        .nodes
        .values()
        .filter(|n| node_fit(n, live).is_ok())
        .collect();
    let selected: Vec<Vec<bool>> = world
        .l2_ads
        .iter()
        .map(|ad| fit.iter().map(|n| selects(ad, n)).collect())
        .collect();
    let mut out: Vec<_> = world
        .services
        .values()
        .map(|svc| (svc, decide(world, svc, &fit, &selected)))
        .collect();

    // Join announced Services that share an address; each group follows its first
    // member's leader. Services are in key order, so the smallest index is the first.
    let mut parent: Vec<usize> = (0..out.len()).collect();
    let mut holder: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (i, (svc, d)) in out.iter().enumerate() {
        if d.is_err() {
            continue;
        }
        for ip in &svc.ips {
            let j = *holder.entry(*ip).or_insert(i);
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            parent[a.max(b)] = a.min(b);
        }
    }
    let leaders: Vec<Option<&str>> = out
        .iter()
        .map(|(_, d)| d.as_ref().ok().map(|d| d.leader))
        .collect();
    for (i, (_, d)) in out.iter_mut().enumerate() {
        let root = find(&mut parent, i);
        if let (Ok(d), Some(leader)) = (d, leaders[root]) {
            d.leader = leader;
            d.group = root;
        }
    }
    out
}

/// Every Service's Layer2 leader, or why it has none (never `NotLeader`). Every node
/// computes the same map from the same view.
pub fn l2_election(
    world: &World,
    live: &BTreeSet<String>,
) -> BTreeMap<ServiceKey, Result<String, NotAnnounced>> {
    elect(world, live)
        .into_iter()
        .map(|(svc, d)| (svc.key.clone(), d.map(|d| d.leader.to_string())))
        .collect()
}

/// The node that announces `service` in Layer2 mode, if any. It runs the whole election
/// (shared addresses tie Services together); for many Services use [`l2_election`].
pub fn leader(world: &World, service: &ServiceKey, live: &BTreeSet<String>) -> Option<String> {
    l2_election(world, live).remove(service)?.ok()
}

/// One address this node announces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Announcement {
    /// The Services behind it (several when they share it).
    pub services: BTreeSet<ServiceKey>,
    /// Interfaces to announce on: the union of the `interfaces` of the applicable
    /// advertisements that select this node. `None`: every eligible interface (some
    /// such advertisement lists none).
    pub interfaces: Option<BTreeSet<String>>,
}

/// What this node announces, and why it announces nothing for every other Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcements {
    pub l2: BTreeMap<IpAddr, L2Announcement>,
    /// Every Service of which this node announces no address in Layer2 mode.
    pub reasons: BTreeMap<ServiceKey, NotAnnounced>,
    /// The addresses this node announces over BGP.
    pub bgp: BTreeMap<IpAddr, BgpAnnouncement>,
    /// Every Service of which this node announces no address over BGP.
    pub bgp_reasons: BTreeMap<ServiceKey, NotAnnounced>,
}

/// One address this node announces over BGP. Sorted vectors rather than sets: there
/// is one per announced address, almost always with one Service and one advertisement,
/// and a set would allocate a whole tree node for each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpAnnouncement {
    /// The Services behind it (several when they share it), sorted, each once; one
    /// is kept inline.
    pub services: smallvec::SmallVec<[ServiceKey; 1]>,
    /// The BGPAdvertisements, by index in `world.bgp_ads`, that apply to one of those
    /// Services and select this node: they decide the prefixes, peers and attributes.
    /// Sorted, each once; shared by every address with the same list.
    pub ads: Arc<[usize]>,
}

/// The BGPAdvertisements that apply to a Service, by index in `world.bgp_ads`.
fn applicable_bgp_ads(world: &World, svc: &ServiceInfo) -> Vec<usize> {
    world
        .bgp_ads
        .iter()
        .enumerate()
        .filter(|(_, ad)| {
            ad.pools.contains(&*svc.pool) && ad.service_selectors.matches_or_empty(&svc.labels)
        })
        .map(|(i, _)| i)
        .collect()
}

fn bgp_selects(ad: &BgpAd, node: &Node) -> bool {
    ad.node_selectors.matches_or_empty(&node.labels)
}

/// Whether `node` announces `svc` over BGP: the advertisements (by index in
/// `world.bgp_ads`) it announces it under, or why it does not.
pub fn bgp_decision(
    world: &World,
    svc: &ServiceInfo,
    node: &str,
    live: &BTreeSet<String>,
) -> Result<BTreeSet<usize>, NotAnnounced> {
    if svc.ips.is_empty() {
        return Err(NotAnnounced::NoAddresses);
    }
    if !svc.endpoints.iter().any(|e| e.serving) {
        return Err(NotAnnounced::NoServingEndpoints);
    }
    let ads = applicable_bgp_ads(world, svc);
    if ads.is_empty() {
        return Err(NotAnnounced::NoAdvertisement);
    }
    let n = world
        .nodes
        .get(node)
        .ok_or(NotAnnounced::NotEligible(Ineligible::UnknownNode))?;
    node_fit(n, live).map_err(NotAnnounced::NotEligible)?;
    let selecting: BTreeSet<usize> = ads
        .into_iter()
        .filter(|&i| bgp_selects(&world.bgp_ads[i], n))
        .collect();
    if selecting.is_empty() {
        return Err(NotAnnounced::NotEligible(Ineligible::NotSelected));
    }
    if svc.external_traffic_policy_local && !has_local_endpoint(svc, node) {
        return Err(NotAnnounced::NotEligible(Ineligible::NoLocalEndpoint));
    }
    Ok(selecting)
}

/// Every Service's BGP announcers: the nodes that announce it, or why none does (the
/// reason of the first node by name, or `NoEligibleNode` when there is no node). The
/// same on every node for the same inputs; each node's own part is what
/// [`announcements`] returns in `bgp`.
pub fn bgp_election(
    world: &World,
    live: &BTreeSet<String>,
) -> BTreeMap<ServiceKey, Result<BTreeSet<String>, NotAnnounced>> {
    world
        .services
        .values()
        .map(|svc| {
            let mut nodes = BTreeSet::new();
            let mut first_reason = None;
            for name in world.nodes.keys() {
                match bgp_decision(world, svc, name, live) {
                    Ok(_) => {
                        nodes.insert(name.clone());
                    }
                    Err(why) => {
                        first_reason.get_or_insert(why);
                    }
                }
            }
            let outcome = if nodes.is_empty() {
                Err(first_reason.unwrap_or(NotAnnounced::NoEligibleNode))
            } else {
                Ok(nodes)
            };
            (svc.key.clone(), outcome)
        })
        .collect()
}

/// What `my_node` announces over BGP, and why it announces nothing for every other
/// Service.
fn bgp_announcements(
    world: &World,
    my_node: &str,
    live: &BTreeSet<String>,
    out: &mut Announcements,
) {
    // Collected as lists, sorted, and made maps in one go, which packs their nodes full
    // (tens of thousands of entries, filled one at a time, would leave them half empty).
    let mut by_ip: Vec<(IpAddr, &ServiceKey, Arc<[usize]>)> = Vec::new();
    let mut reasons = Vec::new();
    let mut lists: BTreeMap<BTreeSet<usize>, Arc<[usize]>> = BTreeMap::new();
    for svc in world.services.values() {
        match bgp_decision(world, svc, my_node, live) {
            Ok(ads) => {
                let ads = Arc::clone(
                    lists
                        .entry(ads)
                        .or_insert_with_key(|set| set.iter().copied().collect()),
                );
                by_ip.extend(svc.ips.iter().map(|ip| (*ip, &svc.key, Arc::clone(&ads))));
            }
            Err(why) => reasons.push((svc.key.clone(), why)),
        }
    }
    // Stable: the Services of one address stay in key order.
    by_ip.sort_by_key(|(ip, _, _)| *ip);
    let mut merged: Vec<(IpAddr, BgpAnnouncement)> = Vec::with_capacity(by_ip.len());
    for (ip, key, ads) in by_ip {
        match merged.last_mut() {
            Some((last, a)) if *last == ip => {
                if a.services.last() != Some(key) {
                    a.services.push(key.clone());
                }
                if a.ads != ads {
                    let union: BTreeSet<usize> = a.ads.iter().chain(ads.iter()).copied().collect();
                    a.ads = union.into_iter().collect();
                }
            }
            _ => merged.push((
                ip,
                BgpAnnouncement {
                    services: smallvec::smallvec![key.clone()],
                    ads,
                },
            )),
        }
    }
    out.bgp = merged.into_iter().collect();
    out.bgp_reasons = reasons.into_iter().collect();
}

/// What `my_node` announces, in Layer2 mode and over BGP.
pub fn announcements(world: &World, my_node: &str, live: &BTreeSet<String>) -> Announcements {
    let elected = elect(world, live);
    let mut out = Announcements::default();
    bgp_announcements(world, my_node, live, &mut out);
    // Interfaces are decided per group of Services tied by shared addresses, as the
    // leader is, so that every address of the group goes out the same way. The group's
    // first Service's advertisements select this node (that is how it was elected), so
    // the union is never empty.
    let mut interfaces: BTreeMap<usize, Option<BTreeSet<String>>> = BTreeMap::new();
    if let Some(me) = world.nodes.get(my_node) {
        for d in elected.iter().filter_map(|(_, d)| d.as_ref().ok()) {
            if d.leader != my_node {
                continue;
            }
            let acc = interfaces
                .entry(d.group)
                .or_insert_with(|| Some(BTreeSet::new()));
            for ad in d.ads.iter().map(|&i| &world.l2_ads[i]) {
                if !selects(ad, me) {
                    continue;
                }
                if ad.interfaces.is_empty() {
                    *acc = None;
                } else if let Some(set) = acc {
                    set.extend(ad.interfaces.iter().cloned());
                }
            }
        }
    }
    // Built as a sorted list, then made a map in one go: a map filled one key at a time
    // in key order leaves its nodes half empty, and this one has an entry for nearly
    // every Service where Layer2 is not used.
    let mut reasons = Vec::new();
    for (svc, decided) in &elected {
        let d = match decided {
            Ok(d) if d.leader == my_node => d,
            Ok(d) => {
                reasons.push((svc.key.clone(), NotAnnounced::NotLeader(d.leader.into())));
                continue;
            }
            Err(why) => {
                reasons.push((svc.key.clone(), why.clone()));
                continue;
            }
        };
        for ip in &svc.ips {
            let a = out.l2.entry(*ip).or_insert_with(|| L2Announcement {
                services: BTreeSet::new(),
                // Always present (see above); were it not, announcing on no interface
                // is the safe reading, not "every interface".
                interfaces: interfaces
                    .get(&d.group)
                    .cloned()
                    .unwrap_or(Some(BTreeSet::new())),
            });
            a.services.insert(svc.key.clone());
        }
    }
    out.reasons = reasons.into_iter().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // METALLB.md §4.1, MetalLB's TestSortL2Candidates (the hash-only cases).
    #[test]
    fn metallb_vectors() {
        let abc = ["node-a", "node-b", "node-c"];
        assert_eq!(
            l2_candidates_order(&abc, ip("10.0.0.1")),
            ["node-b", "node-a", "node-c"]
        );
        assert_eq!(
            l2_candidates_order(&abc, ip("10.0.0.2")),
            ["node-b", "node-c", "node-a"]
        );
        assert_eq!(
            l2_candidates_order(&["node-a", "node-b"], ip("10.20.30.1")),
            ["node-b", "node-a"]
        );
        // The vectors with preference scores: FerroLB has no scores, but within equal
        // scores MetalLB falls back to this hash order, which must agree.
        assert_eq!(
            l2_candidates_order(&["edge-a", "edge-b"], ip("10.20.30.1")),
            ["edge-b", "edge-a"]
        );
        assert_eq!(
            l2_candidates_order(&["worker-b", "edge-b", "worker-a"], ip("10.20.30.1")),
            ["edge-b", "worker-a", "worker-b"]
        );
    }

    // Orders computed independently (Python hashlib over the same strings).
    #[test]
    fn documentation_range_vectors() {
        let abcd = ["node-a", "node-b", "node-c", "node-d"];
        assert_eq!(
            l2_candidates_order(&abcd, ip("2001:db8:51:0:0:0:0:200")),
            ["node-a", "node-c", "node-b", "node-d"]
        );
        assert_eq!(
            l2_candidates_order(&abcd, ip("198.51.100.200")),
            ["node-b", "node-a", "node-d", "node-c"]
        );
        // Go writes an IPv4-mapped address as IPv4; so does the hash input.
        assert_eq!(
            rank("node-a", ip("::ffff:198.51.100.200")),
            rank("node-a", ip("198.51.100.200"))
        );
    }

    #[test]
    fn reasons_have_stable_names() {
        assert_eq!(NotAnnounced::NotLeader("n1".into()).reason(), "NotLeader");
        assert_eq!(
            NotAnnounced::NotLeader("n1".into()).to_string(),
            "announced by node n1"
        );
        assert_eq!(NotAnnounced::NoEligibleNode.reason(), "NoEligibleNode");
        assert_eq!(Ineligible::NotAlive.to_string(), "not alive in gossip");
    }
}
