//! Layer2 election through the public API: one test per rule (`rules`), and seeded,
//! bounded property runs over random worlds (`properties`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_crds::selector::Selectors;
use ferrolb_speaker::election::{
    Ineligible, NotAnnounced, announcements, eligibility, l2_candidates_order, l2_election, leader,
};
use ferrolb_speaker::world::{
    EXCLUDE_LB_LABEL, Endpoint, L2Ad, Node, ServiceInfo, ServiceKey, World,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn selectors(kv: &[(&str, &str)]) -> Selectors {
    if kv.is_empty() {
        return Selectors::default();
    }
    Selectors::parse(&[LabelSelector {
        match_labels: Some(labels(kv)),
        ..Default::default()
    }])
    .unwrap()
}

fn node(name: &str, l: &[(&str, &str)]) -> Node {
    Node {
        name: name.into(),
        labels: labels(l),
        ready: true,
        network_unavailable: false,
    }
}

/// A Cluster-policy Service in pool `lan` with one serving endpoint (on no node).
fn svc(name: &str, ips: &[&str]) -> ServiceInfo {
    ServiceInfo {
        key: ServiceKey::new("ns", name),
        ips: ips.iter().map(|s| ip(s)).collect(),
        pool: "lan".into(),
        endpoints: vec![Endpoint {
            node: None,
            serving: true,
        }],
        ..Default::default()
    }
}

fn ad(name: &str, pools: &[&str]) -> L2Ad {
    L2Ad {
        name: name.into(),
        pools: pools.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn world(nodes: Vec<Node>, services: Vec<ServiceInfo>, ads: Vec<L2Ad>) -> World {
    let mut w = World {
        l2_ads: ads,
        ..Default::default()
    };
    nodes.into_iter().for_each(|n| w.insert_node(n));
    services.into_iter().for_each(|s| w.insert_service(s));
    w
}

fn all_live(w: &World) -> BTreeSet<String> {
    w.nodes.keys().cloned().collect()
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("ns", name)
}

/// Each announced address with its announcer, from the cluster-wide election (which
/// `every_speaker_agrees_and_each_ip_has_one_announcer` checks against what each node's
/// `announcements` say).
fn owners(w: &World, live: &BTreeSet<String>) -> BTreeMap<IpAddr, String> {
    let election = l2_election(w, live);
    let mut out = BTreeMap::new();
    for (k, outcome) in &election {
        if let Ok(l) = outcome {
            for ip in &w.services[k].ips {
                out.insert(*ip, l.clone());
            }
        }
    }
    out
}

const VIP: &str = "198.51.100.200";

mod rules {
    use super::*;

    fn abc() -> Vec<Node> {
        ["node-a", "node-b", "node-c"]
            .iter()
            .map(|n| node(n, &[]))
            .collect()
    }

    /// The hash order for VIP among node-a..node-d is b, a, d, c.
    fn expected_first(among: &[&str]) -> String {
        l2_candidates_order(among, ip(VIP))[0].to_string()
    }

    #[test]
    fn leader_is_first_in_hash_order_and_only_it_announces() {
        let w = world(abc(), vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        let live = all_live(&w);
        assert_eq!(expected_first(&["node-a", "node-b", "node-c"]), "node-b");
        assert_eq!(leader(&w, &key("web"), &live).as_deref(), Some("node-b"));
        let b = announcements(&w, "node-b", &live);
        assert_eq!(b.l2.len(), 1);
        assert_eq!(b.l2[&ip(VIP)].services, BTreeSet::from([key("web")]));
        assert_eq!(b.l2[&ip(VIP)].interfaces, None);
        assert!(b.reasons.is_empty());
        for other in ["node-a", "node-c"] {
            let a = announcements(&w, other, &live);
            assert!(a.l2.is_empty());
            assert_eq!(
                a.reasons[&key("web")],
                NotAnnounced::NotLeader("node-b".into())
            );
        }
    }

    /// Makes node-b (the hash winner) fail one rule; node-a, next in order, must lead.
    fn without_b(w: &World, live: &BTreeSet<String>, why: Ineligible) {
        assert_eq!(leader(w, &key("web"), live).as_deref(), Some("node-a"));
        assert_eq!(
            eligibility(w, &w.services[&key("web")], "node-b", live),
            Err(why)
        );
        assert!(announcements(w, "node-b", live).l2.is_empty());
        assert_eq!(announcements(w, "node-a", live).l2.len(), 1);
    }

    #[test]
    fn node_dead_in_gossip_is_skipped() {
        let w = world(abc(), vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        let mut live = all_live(&w);
        live.remove("node-b");
        without_b(&w, &live, Ineligible::NotAlive);
    }

    #[test]
    fn node_not_ready_is_skipped() {
        let mut nodes = abc();
        nodes[1].ready = false;
        let w = world(nodes, vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        without_b(&w, &all_live(&w), Ineligible::NotReady);
    }

    #[test]
    fn node_network_unavailable_is_skipped() {
        let mut nodes = abc();
        nodes[1].network_unavailable = true;
        let w = world(nodes, vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        without_b(&w, &all_live(&w), Ineligible::NetworkUnavailable);
    }

    #[test]
    fn excluded_node_is_skipped() {
        let mut nodes = abc();
        nodes[1]
            .labels
            .insert(EXCLUDE_LB_LABEL.into(), "true".into());
        let w = world(nodes, vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        without_b(&w, &all_live(&w), Ineligible::Excluded);
    }

    #[test]
    fn node_selectors_restrict_and_several_ads_unite() {
        let nodes = vec![
            node("node-a", &[("rack", "1")]),
            node("node-b", &[("rack", "2")]),
            node("node-c", &[("rack", "1")]),
        ];
        let mut rack1 = ad("rack1", &["lan"]);
        rack1.node_selectors = selectors(&[("rack", "1")]);
        let w = world(nodes.clone(), vec![svc("web", &[VIP])], vec![rack1.clone()]);
        without_b(&w, &all_live(&w), Ineligible::NotSelected);

        let mut rack2 = ad("rack2", &["lan"]);
        rack2.node_selectors = selectors(&[("rack", "2")]);
        let w = world(nodes, vec![svc("web", &[VIP])], vec![rack1, rack2]);
        assert_eq!(
            leader(&w, &key("web"), &all_live(&w)).as_deref(),
            Some("node-b")
        );
    }

    #[test]
    fn node_in_gossip_without_node_object_is_skipped() {
        let w = world(
            vec![node("node-a", &[]), node("node-c", &[])],
            vec![svc("web", &[VIP])],
            vec![ad("all", &["lan"])],
        );
        let mut live = all_live(&w);
        live.insert("node-b".into());
        assert_eq!(leader(&w, &key("web"), &live).as_deref(), Some("node-a"));
        assert_eq!(
            eligibility(&w, &w.services[&key("web")], "node-b", &live),
            Err(Ineligible::UnknownNode)
        );
        assert!(announcements(&w, "node-b", &live).l2.is_empty());
    }

    #[test]
    fn local_policy_needs_a_serving_endpoint_on_the_node() {
        let mut s = svc("web", &[VIP]);
        s.external_traffic_policy_local = true;
        s.endpoints = vec![
            Endpoint {
                node: Some("node-b".into()),
                serving: false,
            },
            Endpoint {
                node: Some("node-c".into()),
                serving: true,
            },
            Endpoint {
                node: Some("node-a".into()),
                serving: true,
            },
        ];
        let w = world(abc(), vec![s], vec![ad("all", &["lan"])]);
        without_b(&w, &all_live(&w), Ineligible::NoLocalEndpoint);

        // Endpoints only on a node that is down: nobody.
        let mut w = w;
        let s = w.services.get_mut(&key("web")).unwrap();
        s.endpoints = vec![Endpoint {
            node: Some("node-c".into()),
            serving: true,
        }];
        let mut live = all_live(&w);
        live.remove("node-c");
        assert_eq!(
            announcements(&w, "node-a", &live).reasons[&key("web")],
            NotAnnounced::NoEligibleNode
        );
    }

    #[test]
    fn no_serving_endpoint_anywhere_is_not_announced() {
        let mut s = svc("web", &[VIP]);
        s.endpoints = vec![Endpoint {
            node: Some("node-b".into()),
            serving: false,
        }];
        let w = world(abc(), vec![s], vec![ad("all", &["lan"])]);
        let live = all_live(&w);
        assert_eq!(leader(&w, &key("web"), &live), None);
        for n in ["node-a", "node-b", "node-c"] {
            let a = announcements(&w, n, &live);
            assert!(a.l2.is_empty());
            assert_eq!(a.reasons[&key("web")], NotAnnounced::NoServingEndpoints);
        }
    }

    #[test]
    fn no_address_is_a_reason() {
        let w = world(abc(), vec![svc("web", &[])], vec![ad("all", &["lan"])]);
        let a = announcements(&w, "node-b", &all_live(&w));
        assert_eq!(a.reasons[&key("web")], NotAnnounced::NoAddresses);
    }

    #[test]
    fn advertisement_must_cover_the_pool() {
        let w = world(abc(), vec![svc("web", &[VIP])], vec![ad("other", &["bgp"])]);
        let a = announcements(&w, "node-b", &all_live(&w));
        assert_eq!(a.reasons[&key("web")], NotAnnounced::NoAdvertisement);
        let w = world(abc(), vec![svc("web", &[VIP])], vec![]);
        let a = announcements(&w, "node-b", &all_live(&w));
        assert_eq!(a.reasons[&key("web")], NotAnnounced::NoAdvertisement);
    }

    #[test]
    fn service_selectors_limit_which_ads_apply() {
        let mut only_db = ad("db", &["lan"]);
        only_db.service_selectors = selectors(&[("app", "db")]);
        let mut web = svc("web", &[VIP]);
        web.labels = labels(&[("app", "web")]);
        let w = world(abc(), vec![web.clone()], vec![only_db.clone()]);
        let a = announcements(&w, "node-b", &all_live(&w));
        assert_eq!(a.reasons[&key("web")], NotAnnounced::NoAdvertisement);

        // A non-matching ad's nodeSelectors and interfaces do not count either.
        only_db.node_selectors = selectors(&[("rack", "1")]);
        only_db.interfaces = BTreeSet::from(["eth9".to_string()]);
        let mut general = ad("general", &["lan"]);
        general.node_selectors = selectors(&[("rack", "2")]);
        general.interfaces = BTreeSet::from(["eth0".to_string()]);
        let nodes = vec![
            node("node-a", &[("rack", "2")]),
            node("node-b", &[("rack", "1")]),
        ];
        let w = world(nodes, vec![web], vec![only_db, general]);
        let live = all_live(&w);
        assert_eq!(leader(&w, &key("web"), &live).as_deref(), Some("node-a"));
        assert_eq!(
            announcements(&w, "node-a", &live).l2[&ip(VIP)].interfaces,
            Some(BTreeSet::from(["eth0".to_string()]))
        );
    }

    #[test]
    fn sharing_service_selected_by_service_selectors_is_not_announced() {
        let mut sel = ad("sel", &["lan"]);
        sel.service_selectors = selectors(&[("app", "web")]);
        let mut web = svc("web", &[VIP]);
        web.labels = labels(&[("app", "web")]);
        web.sharing = true;
        let w = world(
            abc(),
            vec![web.clone()],
            vec![sel.clone(), ad("all", &["lan"])],
        );
        let live = all_live(&w);
        assert_eq!(leader(&w, &key("web"), &live), None);
        assert_eq!(
            announcements(&w, "node-b", &live).reasons[&key("web")],
            NotAnnounced::SharedWithServiceSelector
        );
        // A selector that does not match the Service does not apply, so it is no bar.
        web.labels = labels(&[("app", "other")]);
        let w = world(abc(), vec![web], vec![sel, ad("all", &["lan"])]);
        assert_eq!(leader(&w, &key("web"), &live).as_deref(), Some("node-b"));
    }

    #[test]
    fn interfaces_are_the_union_of_this_nodes_matching_ads() {
        let mut eth0 = ad("eth0", &["lan"]);
        eth0.interfaces = BTreeSet::from(["eth0".to_string()]);
        let mut eth1 = ad("eth1", &["lan"]);
        eth1.interfaces = BTreeSet::from(["eth1".to_string(), "eth2".to_string()]);
        let mut elsewhere = ad("elsewhere", &["lan"]);
        elsewhere.node_selectors = selectors(&[("rack", "9")]);
        let w = world(
            abc(),
            vec![svc("web", &[VIP])],
            vec![eth0.clone(), eth1.clone(), elsewhere.clone()],
        );
        let live = all_live(&w);
        assert_eq!(
            announcements(&w, "node-b", &live).l2[&ip(VIP)].interfaces,
            Some(BTreeSet::from([
                "eth0".to_string(),
                "eth1".to_string(),
                "eth2".to_string()
            ]))
        );
        // Any matching ad without interfaces: every interface.
        let w = world(
            abc(),
            vec![svc("web", &[VIP])],
            vec![eth0, ad("any", &["lan"]), eth1],
        );
        assert_eq!(
            announcements(&w, "node-b", &live).l2[&ip(VIP)].interfaces,
            None
        );
    }

    #[test]
    fn dual_stack_follows_the_first_address() {
        // Alone, 2001:db8:51::200 would go to node-a; as the second address of a
        // Service whose first is VIP, it goes with VIP to node-b.
        assert_eq!(
            l2_candidates_order(&["node-a", "node-b", "node-c"], ip("2001:db8:51::200"))[0],
            "node-a"
        );
        let w = world(
            abc(),
            vec![svc("web", &[VIP, "2001:db8:51::200"])],
            vec![ad("all", &["lan"])],
        );
        let live = all_live(&w);
        let b = announcements(&w, "node-b", &live);
        assert_eq!(
            b.l2.keys().copied().collect::<Vec<_>>(),
            [ip(VIP), ip("2001:db8:51::200")]
        );
        assert!(announcements(&w, "node-a", &live).l2.is_empty());

        // Reversed ingress order, reversed outcome.
        let w = world(
            abc(),
            vec![svc("web", &["2001:db8:51::200", VIP])],
            vec![ad("all", &["lan"])],
        );
        assert_eq!(announcements(&w, "node-a", &live).l2.len(), 2);
    }

    #[test]
    fn sharing_services_make_one_announcement() {
        let mut a = svc("a", &[VIP]);
        let mut b = svc("b", &[VIP]);
        a.sharing = true;
        b.sharing = true;
        let w = world(abc(), vec![a, b], vec![ad("all", &["lan"])]);
        let live = all_live(&w);
        let n = announcements(&w, "node-b", &live);
        assert_eq!(n.l2.len(), 1);
        assert_eq!(
            n.l2[&ip(VIP)].services,
            BTreeSet::from([key("a"), key("b")])
        );
    }

    #[test]
    fn sharers_that_disagree_follow_the_first_by_key() {
        // "a" is dual-stack with IPv6 first (node-a by hash); "b" has only the shared
        // IPv4 (node-b by hash). Both, and all three addresses, go to "a"'s leader.
        let a = svc("a", &["2001:db8:51::200", VIP]);
        let b = svc("b", &[VIP, "198.51.100.201"]);
        let w = world(abc(), vec![b, a], vec![ad("all", &["lan"])]);
        let live = all_live(&w);
        assert_eq!(leader(&w, &key("a"), &live).as_deref(), Some("node-a"));
        assert_eq!(leader(&w, &key("b"), &live).as_deref(), Some("node-a"));
        assert_eq!(announcements(&w, "node-a", &live).l2.len(), 3);
        assert_eq!(
            announcements(&w, "node-b", &live).reasons[&key("b")],
            NotAnnounced::NotLeader("node-a".into())
        );
        // A sharer that is not announced at all does not pull the others.
        let mut quiet = svc("0-quiet", &[VIP]);
        quiet.endpoints.clear();
        let mut w = w;
        w.insert_service(quiet);
        assert_eq!(leader(&w, &key("b"), &live).as_deref(), Some("node-a"));
    }

    #[test]
    fn no_eligible_node() {
        let mut nodes = abc();
        nodes.iter_mut().for_each(|n| n.ready = false);
        let w = world(nodes, vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        let live = all_live(&w);
        assert_eq!(leader(&w, &key("web"), &live), None);
        assert_eq!(
            l2_election(&w, &live)[&key("web")],
            Err(NotAnnounced::NoEligibleNode)
        );
        assert_eq!(
            announcements(&w, "node-a", &live).reasons[&key("web")],
            NotAnnounced::NoEligibleNode
        );
    }

    #[test]
    fn unknown_own_node_announces_nothing_and_explains() {
        let w = world(abc(), vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        let a = announcements(&w, "stranger", &all_live(&w));
        assert!(a.l2.is_empty());
        assert_eq!(
            a.reasons[&key("web")],
            NotAnnounced::NotLeader("node-b".into())
        );
    }

    #[test]
    fn eligibility_names_the_first_failing_rule() {
        let mut n = node("node-b", &[(EXCLUDE_LB_LABEL, "")]);
        n.ready = false;
        n.network_unavailable = true;
        let w = world(vec![n], vec![svc("web", &[VIP])], vec![ad("all", &["lan"])]);
        let s = &w.services[&key("web")];
        assert_eq!(
            eligibility(&w, s, "node-b", &BTreeSet::new()),
            Err(Ineligible::NotAlive)
        );
        assert_eq!(
            eligibility(&w, s, "node-b", &all_live(&w)),
            Err(Ineligible::NotReady)
        );
    }
}

mod properties {
    use super::*;

    /// SplitMix64: a seeded, dependency-free generator, so every run checks the same
    /// worlds and a failure names its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len() as u64) as usize]
        }
    }

    const RUNS: u64 = 400;
    const NODE_NAMES: [&str; 10] = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"];

    fn random_node(r: &mut Rng, name: &str) -> Node {
        let mut l = vec![("rack", *r.pick(&["1", "2"]))];
        if r.chance(8) {
            l.push((EXCLUDE_LB_LABEL, ""));
        }
        let mut n = node(name, &l);
        n.ready = r.chance(85);
        n.network_unavailable = r.chance(8);
        n
    }

    fn random_ads(r: &mut Rng) -> Vec<L2Ad> {
        (0..1 + r.below(3))
            .map(|i| {
                let mut a = ad(&format!("ad{i}"), &[*r.pick(&["p1", "p2"])]);
                if r.chance(50) {
                    a.pools.insert("p1".into());
                    a.pools.insert("p2".into());
                }
                if r.chance(50) {
                    a.node_selectors = selectors(&[("rack", *r.pick(&["1", "2"]))]);
                }
                if r.chance(25) {
                    a.service_selectors = selectors(&[("app", *r.pick(&["x", "y"]))]);
                }
                for i in ["eth0", "eth1"] {
                    if r.chance(30) {
                        a.interfaces.insert(i.into());
                    }
                }
                a
            })
            .collect()
    }

    fn random_endpoints(r: &mut Rng) -> Vec<Endpoint> {
        let count = if r.chance(10) { 0 } else { 1 + r.below(3) };
        (0..count)
            .map(|_| Endpoint {
                node: r.chance(90).then(|| (*r.pick(&NODE_NAMES[..])).into()),
                serving: r.chance(80),
            })
            .collect()
    }

    /// A world whose sharers agree, as the controller guarantees: Services sharing an
    /// address have the same first address, and the same policy and endpoints.
    fn consistent_world(r: &mut Rng) -> (World, BTreeSet<String>) {
        let mut names: Vec<&str> = NODE_NAMES.to_vec();
        names.retain(|_| r.chance(60));
        let nodes: Vec<Node> = names.iter().map(|n| random_node(r, n)).collect();
        let mut services = Vec::new();
        let mut own = 0u32;
        for g in 0..r.below(7) {
            // p3 has no advertisement.
            let pool = *r.pick(&["p1", "p1", "p1", "p2", "p2", "p3"]);
            let first = format!("198.51.100.{}", 10 + g);
            let local = r.chance(40);
            let endpoints = random_endpoints(r);
            let members = if r.chance(30) { 2 + r.below(2) } else { 1 };
            for m in 0..members {
                let mut ips = vec![first.clone()];
                if r.chance(50) {
                    own += 1;
                    ips.push(format!("2001:db8:51::{own:x}"));
                }
                let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
                let mut s = svc(&format!("s{g}-{m}"), &refs);
                s.pool = pool.into();
                s.sharing = members > 1;
                s.external_traffic_policy_local = local;
                s.endpoints = endpoints.clone();
                s.labels = labels(&[("app", *r.pick(&["x", "y", "z"]))]);
                services.push(s);
            }
        }
        let w = world(nodes, services, random_ads(r));
        let live = random_live(r, &w);
        (w, live)
    }

    /// Anything goes: Services pick addresses from a small set in any order, so sharers
    /// disagree on first addresses, policies and endpoints.
    fn arbitrary_world(r: &mut Rng) -> (World, BTreeSet<String>) {
        let (mut w, _) = consistent_world(r);
        w.services.clear();
        let addrs = [
            "198.51.100.10",
            "198.51.100.11",
            "198.51.100.12",
            "2001:db8:51::10",
            "2001:db8:51::11",
        ];
        for i in 0..r.below(8) {
            let ips: Vec<&str> = (0..1 + r.below(3)).map(|_| *r.pick(&addrs)).collect();
            let mut s = svc(&format!("s{i}"), &ips);
            s.pool = (*r.pick(&["p1", "p2"])).into();
            s.sharing = r.chance(70);
            s.external_traffic_policy_local = r.chance(40);
            s.endpoints = random_endpoints(r);
            s.labels = labels(&[("app", *r.pick(&["x", "y", "z"]))]);
            w.insert_service(s);
        }
        let live = random_live(r, &w);
        (w, live)
    }

    fn random_live(r: &mut Rng, w: &World) -> BTreeSet<String> {
        let mut live: BTreeSet<String> = w.nodes.keys().filter(|_| r.chance(85)).cloned().collect();
        if r.chance(20) {
            live.insert("ghost".into());
        }
        live
    }

    /// Runs `announcements` for every node (and a stranger) and checks that they agree
    /// with each other and with `l2_election`. `strict`: sharers agree, so the owner of an
    /// address must be eligible for, and the hash-order winner of, every Service on it.
    /// Returns how many addresses were announced, and how many of them by several Services.
    fn check_agreement(
        w: &World,
        live: &BTreeSet<String>,
        strict: bool,
        seed: u64,
    ) -> (usize, usize) {
        let mut counts = (0, 0);
        let election = l2_election(w, live);
        assert_eq!(election.len(), w.services.len());
        let mut claims: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        let mut asking: Vec<String> = w.nodes.keys().cloned().collect();
        asking.push("stranger".into());
        for me in &asking {
            let a = announcements(w, me, live);
            for (ip, ann) in &a.l2 {
                claims.entry(*ip).or_default().push(me.clone());
                counts.0 += 1;
                counts.1 += usize::from(ann.services.len() > 1);
                assert!(!ann.services.is_empty(), "seed {seed}");
                assert!(
                    ann.interfaces.as_ref().is_none_or(|i| !i.is_empty()),
                    "seed {seed}"
                );
                for k in &ann.services {
                    assert_eq!(election[k].as_deref(), Ok(me.as_str()), "seed {seed}");
                    assert!(w.services[k].ips.contains(ip), "seed {seed}");
                }
            }
            for (k, outcome) in &election {
                match outcome {
                    Ok(l) if l == me => {
                        assert!(!a.reasons.contains_key(k), "seed {seed}");
                        // Every address of the Service, on this one node.
                        for ip in &w.services[k].ips {
                            assert!(a.l2[ip].services.contains(k), "seed {seed} {k}");
                        }
                    }
                    Ok(l) => assert_eq!(
                        a.reasons[k],
                        NotAnnounced::NotLeader(l.clone()),
                        "seed {seed}"
                    ),
                    Err(why) => {
                        assert!(!matches!(why, NotAnnounced::NotLeader(_)), "seed {seed}");
                        assert_eq!(&a.reasons[k], why, "seed {seed}");
                    }
                }
            }
        }
        for (ip, who) in &claims {
            assert_eq!(who.len(), 1, "seed {seed}: {ip} claimed by {who:?}");
        }
        for (k, outcome) in &election {
            assert_eq!(leader(w, k, live), outcome.clone().ok(), "seed {seed}");
            let Ok(l) = outcome else { continue };
            if strict {
                // Cross-check against the rules as written: the leader is the first,
                // in hash order, of the nodes `eligibility` accepts.
                let s = &w.services[k];
                let eligible: Vec<&str> = w
                    .nodes
                    .keys()
                    .map(String::as_str)
                    .filter(|n| eligibility(w, s, n, live).is_ok())
                    .collect();
                assert_eq!(
                    l2_candidates_order(&eligible, s.ips[0])[0],
                    l,
                    "seed {seed} {k}"
                );
            } else {
                assert!(live.contains(l) && w.nodes[l].ready, "seed {seed}");
            }
        }
        counts
    }

    #[test]
    fn every_speaker_agrees_and_each_ip_has_one_announcer() {
        let (mut announced, mut shared) = ((0, 0), (0, 0));
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let (w, live) = consistent_world(&mut r);
            let (a, s) = check_agreement(&w, &live, true, seed);
            announced.0 += a;
            shared.0 += s;
            let (w, live) = arbitrary_world(&mut r);
            let (a, s) = check_agreement(&w, &live, false, seed);
            announced.1 += a;
            shared.1 += s;
        }
        // Not vacuous: many addresses announced, shared ones among them, in both kinds.
        assert!(
            announced.0 > RUNS as usize && announced.1 > RUNS as usize,
            "{announced:?}"
        );
        assert!(shared.0 > 20 && shared.1 > 20, "{shared:?}");
    }

    #[test]
    fn the_same_view_in_any_order_gives_the_same_answer() {
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let (w, live) = arbitrary_world(&mut r);
            let mut reordered = World {
                l2_ads: w.l2_ads.iter().rev().cloned().collect(),
                ..Default::default()
            };
            w.nodes
                .values()
                .rev()
                .for_each(|n| reordered.insert_node(n.clone()));
            w.services
                .values()
                .rev()
                .for_each(|s| reordered.insert_service(s.clone()));
            assert_eq!(
                l2_election(&w, &live),
                l2_election(&reordered, &live),
                "seed {seed}"
            );
            for me in w.nodes.keys() {
                assert_eq!(
                    announcements(&w, me, &live),
                    announcements(&reordered, me, &live),
                    "seed {seed}"
                );
            }
        }
    }

    #[test]
    fn removing_a_node_that_announces_nothing_moves_nothing() {
        let mut tried = 0;
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let (w, live) = consistent_world(&mut r);
            let before = owners(&w, &live);
            let idle: Vec<&String> = w
                .nodes
                .keys()
                .filter(|n| !before.values().any(|o| o == *n))
                .collect();
            for n in idle {
                tried += 1;
                // It dies in gossip ...
                let mut fewer = live.clone();
                fewer.remove(n);
                assert_eq!(owners(&w, &fewer), before, "seed {seed}: {n} left gossip");
                // ... or its Node object goes.
                let mut gone = w.clone();
                gone.nodes.remove(n);
                assert_eq!(owners(&gone, &live), before, "seed {seed}: {n} deleted");
            }
        }
        assert!(tried > RUNS, "too few idle nodes tried: {tried}");
    }

    #[test]
    fn a_new_node_takes_only_what_it_now_wins() {
        let mut moved = 0;
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let (w, live) = consistent_world(&mut r);
            let before = owners(&w, &live);
            // A brand-new node, healthy, with random labels.
            let mut newcomer = random_node(&mut r, "new");
            newcomer.ready = true;
            newcomer.network_unavailable = false;
            let mut grown = w.clone();
            grown.insert_node(newcomer);
            let mut more = live.clone();
            more.insert("new".into());
            let after = owners(&grown, &more);
            let ips: BTreeSet<&IpAddr> = before.keys().chain(after.keys()).collect();
            for ip in ips {
                let (b, a) = (before.get(ip), after.get(ip));
                assert!(
                    a == b || a.map(String::as_str) == Some("new"),
                    "seed {seed}: {ip} moved {b:?} -> {a:?}"
                );
                if a != b {
                    moved += 1;
                }
            }
            // A known node coming back to life in gossip: the same rule.
            for n in w.nodes.keys().filter(|n| !live.contains(*n)) {
                let mut back = live.clone();
                back.insert(n.clone());
                let after = owners(&w, &back);
                for (ip, a) in &after {
                    assert!(
                        before.get(ip) == Some(a) || a == n,
                        "seed {seed}: {ip} moved to {a} when {n} came back"
                    );
                }
                for (ip, b) in &before {
                    assert!(
                        after.contains_key(ip),
                        "seed {seed}: {ip} of {b} lost when {n} came back"
                    );
                }
            }
        }
        assert!(
            moved > 0,
            "the newcomer never won anything: the test is vacuous"
        );
    }
}
