//! BGP mode through the public API: who announces (the BGP half of the election), what
//! each peer is sent (`bgp::rib::plan`), and how a change travels (`diff`, `updates`).
//! One test per rule (`rules`), then seeded, bounded property runs over random worlds and
//! random tables (`properties`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_crds::bgp::DynamicAsn;
use ferrolb_crds::selector::Selectors;
use ferrolb_speaker::bgp::codec::{Context, encode};
use ferrolb_speaker::bgp::config::{CommunityValue, Peer, PeerAsn, SessionConfig};
use ferrolb_speaker::bgp::message::{Community, LargeCommunity, MAX_MESSAGE_LEN, Message};
use ferrolb_speaker::bgp::rib::{
    AdjRibOut, RibDiff, RouteAttrs, SessionParams, diff, node_peers, plan, update_len, updates,
};
use ferrolb_speaker::election::{Ineligible, NotAnnounced, announcements, bgp_election};
use ferrolb_speaker::world::{
    BgpAd, EXCLUDE_LB_LABEL, Endpoint, Node, ServiceInfo, ServiceKey, World,
};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

const MY_ASN: u32 = 64512;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
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

/// A Cluster-policy Service in pool `bgp`, with one serving endpoint on `node1`.
fn svc(name: &str, ips: &[&str]) -> ServiceInfo {
    ServiceInfo {
        key: ServiceKey::new("ns", name),
        ips: ips.iter().map(|s| ip(s)).collect(),
        pool: "bgp".into(),
        endpoints: vec![Endpoint {
            node: Some("node1".into()),
            serving: true,
        }],
        ..Default::default()
    }
}

fn ad(name: &str) -> BgpAd {
    BgpAd {
        name: name.into(),
        pools: ["bgp".to_string()].into(),
        aggregation_length: 32,
        aggregation_length_v6: 128,
        ..Default::default()
    }
}

fn session(address: &str, peer_asn: PeerAsn) -> SessionConfig {
    SessionConfig {
        my_asn: MY_ASN,
        peer_asn,
        address: ip(address),
        port: 179,
        source_address: None,
        router_id: None,
        hold_time: Duration::from_secs(90),
        keepalive_time: Duration::from_secs(30),
        connect_time: Duration::from_secs(120),
        ebgp_multihop: false,
        password: None,
        password_secret: None,
        graceful_restart: false,
        passive: false,
        dual_stack: false,
        bfd: None,
    }
}

/// An eBGP peer (AS 64500) at `address`.
fn peer(name: &str, address: &str) -> Peer {
    Peer {
        name: name.into(),
        node_selectors: Selectors::default(),
        session: session(address, PeerAsn::Fixed(64500)),
        bfd_profile: None,
    }
}

fn ibgp(name: &str, address: &str) -> Peer {
    Peer {
        name: name.into(),
        node_selectors: Selectors::default(),
        session: session(address, PeerAsn::Fixed(MY_ASN)),
        bfd_profile: None,
    }
}

fn world(nodes: Vec<Node>, services: Vec<ServiceInfo>, ads: Vec<BgpAd>, peers: Vec<Peer>) -> World {
    let mut w = World {
        bgp_ads: ads,
        ..Default::default()
    };
    nodes.into_iter().for_each(|n| w.insert_node(n));
    services.into_iter().for_each(|s| w.insert_service(s));
    w.bgp_peers = peers.into_iter().map(|p| (p.name.clone(), p)).collect();
    w
}

fn three_nodes() -> Vec<Node> {
    ["node1", "node2", "node3"]
        .iter()
        .map(|n| node(n, &[("rack", if *n == "node3" { "2" } else { "1" })]))
        .collect()
}

fn all_live(w: &World) -> BTreeSet<String> {
    w.nodes.keys().cloned().collect()
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("ns", name)
}

/// The Adj-RIB-Out of every peer of `node`, and the problems.
fn ribs(w: &World, node: &str) -> (BTreeMap<String, AdjRibOut>, Vec<String>) {
    let a = announcements(w, node, &all_live(w));
    let p = plan(w, node, &a.bgp);
    (
        p.peers
            .into_iter()
            .map(|(name, rib)| (name, (*rib).clone()))
            .collect(),
        p.problems
            .iter()
            .map(|p| format!("{} {}", p.reason, p))
            .collect(),
    )
}

fn prefixes(rib: &AdjRibOut) -> Vec<String> {
    rib.keys().map(|p| p.to_string()).collect()
}

mod rules {
    use super::*;

    #[test]
    fn cluster_policy_every_eligible_node_announces() {
        let w = world(
            three_nodes(),
            vec![svc("web", &["203.0.113.5", "2001:db8:113::5"])],
            vec![ad("all")],
            vec![
                peer("router", "198.51.100.1"),
                peer("router-v6", "2001:db8:51::1"),
            ],
        );
        let live = all_live(&w);
        let everyone: BTreeSet<String> = live.clone();
        assert_eq!(bgp_election(&w, &live)[&key("web")], Ok(everyone));
        for n in ["node1", "node2", "node3"] {
            let a = announcements(&w, n, &live);
            assert_eq!(a.bgp.len(), 2, "{n}");
            assert_eq!(a.bgp[&ip("203.0.113.5")].services.as_slice(), [key("web")]);
            assert!(a.bgp_reasons.is_empty());
            // Each family to the peer of that family.
            let (r, problems) = ribs(&w, n);
            assert!(problems.is_empty());
            assert_eq!(prefixes(&r["router"]), ["203.0.113.5/32"]);
            assert_eq!(prefixes(&r["router-v6"]), ["2001:db8:113::5/128"]);
        }
    }

    #[test]
    fn nodes_failing_a_check_do_not_announce() {
        let mut nodes = three_nodes();
        nodes[1].ready = false;
        nodes[2]
            .labels
            .insert(EXCLUDE_LB_LABEL.into(), String::new());
        nodes.push(node("node4", &[]));
        nodes.push(Node {
            network_unavailable: true,
            ..node("node5", &[])
        });
        let w = world(
            nodes,
            vec![svc("web", &["203.0.113.5"])],
            vec![ad("all")],
            vec![],
        );
        let mut live = all_live(&w);
        live.remove("node4");
        assert_eq!(
            bgp_election(&w, &live)[&key("web")],
            Ok(BTreeSet::from(["node1".to_string()]))
        );
        let why = |n: &str| announcements(&w, n, &live).bgp_reasons[&key("web")].clone();
        assert_eq!(
            why("node2"),
            NotAnnounced::NotEligible(Ineligible::NotReady)
        );
        assert_eq!(
            why("node3"),
            NotAnnounced::NotEligible(Ineligible::Excluded)
        );
        assert_eq!(
            why("node4"),
            NotAnnounced::NotEligible(Ineligible::NotAlive)
        );
        assert_eq!(
            why("node5"),
            NotAnnounced::NotEligible(Ineligible::NetworkUnavailable)
        );
        assert_eq!(
            why("ghost"),
            NotAnnounced::NotEligible(Ineligible::UnknownNode)
        );
    }

    #[test]
    fn local_policy_needs_an_endpoint_on_the_node() {
        let mut s = svc("web", &["203.0.113.5"]);
        s.external_traffic_policy_local = true;
        s.endpoints.push(Endpoint {
            node: Some("node2".into()),
            serving: false,
        });
        let w = world(three_nodes(), vec![s], vec![ad("all")], vec![]);
        let live = all_live(&w);
        assert_eq!(
            bgp_election(&w, &live)[&key("web")],
            Ok(BTreeSet::from(["node1".to_string()]))
        );
        assert_eq!(
            announcements(&w, "node2", &live).bgp_reasons[&key("web")],
            NotAnnounced::NotEligible(Ineligible::NoLocalEndpoint)
        );
    }

    #[test]
    fn nothing_without_endpoint_address_or_advertisement() {
        let mut quiet = svc("quiet", &["203.0.113.6"]);
        quiet.endpoints[0].serving = false;
        let bare = svc("bare", &[]);
        let mut other_pool = svc("lan", &["198.51.100.200"]);
        other_pool.pool = "lan".into();
        let mut unselected = svc("unselected", &["203.0.113.7"]);
        unselected.labels = labels(&[("app", "db")]);
        let mut a = ad("web-only");
        a.service_selectors = selectors(&[("app", "web")]);
        let w = world(
            three_nodes(),
            vec![quiet, bare, other_pool, unselected],
            vec![a],
            vec![],
        );
        let reasons = announcements(&w, "node1", &all_live(&w)).bgp_reasons;
        assert_eq!(reasons[&key("quiet")], NotAnnounced::NoServingEndpoints);
        assert_eq!(reasons[&key("bare")], NotAnnounced::NoAddresses);
        assert_eq!(reasons[&key("lan")], NotAnnounced::NoAdvertisement);
        assert_eq!(reasons[&key("unselected")], NotAnnounced::NoAdvertisement);
    }

    #[test]
    fn node_selectors_of_ads_and_of_peers() {
        let mut rack2 = ad("rack2");
        rack2.node_selectors = selectors(&[("rack", "2")]);
        let mut tor2 = peer("tor2", "198.51.100.2");
        tor2.node_selectors = selectors(&[("rack", "2")]);
        let w = world(
            three_nodes(),
            vec![svc("web", &["203.0.113.5"])],
            vec![rack2],
            vec![peer("router", "198.51.100.1"), tor2],
        );
        let live = all_live(&w);
        assert_eq!(
            announcements(&w, "node1", &live).bgp_reasons[&key("web")],
            NotAnnounced::NotEligible(Ineligible::NotSelected)
        );
        let names =
            |n: &str| -> Vec<String> { node_peers(&w, n).iter().map(|p| p.name.clone()).collect() };
        assert_eq!(names("node1"), ["router"]);
        assert_eq!(names("node3"), ["router", "tor2"]);
        assert!(names("ghost").is_empty());
        let (r, _) = ribs(&w, "node1");
        assert!(r["router"].is_empty(), "a session with nothing to send");
        let (r, _) = ribs(&w, "node3");
        assert_eq!(prefixes(&r["tor2"]), ["203.0.113.5/32"]);
    }

    #[test]
    fn peers_with_the_same_routes_share_one_table() {
        let w = world(
            three_nodes(),
            vec![svc("web", &["203.0.113.5"]), svc("api", &["203.0.113.6"])],
            vec![ad("all")],
            vec![peer("tor1", "198.51.100.1"), peer("tor2", "198.51.100.2")],
        );
        let a = announcements(&w, "node1", &all_live(&w));
        let p = plan(&w, "node1", &a.bgp);
        assert_eq!(
            prefixes(&p.peers["tor1"]),
            ["203.0.113.5/32", "203.0.113.6/32"]
        );
        assert!(std::sync::Arc::ptr_eq(&p.peers["tor1"], &p.peers["tor2"]));
    }

    #[test]
    fn peers_field_restricts_and_dual_stack_carries_both() {
        let mut only = ad("only-a");
        only.peers = ["a".to_string()].into();
        let mut b = peer("b", "198.51.100.2");
        b.session.dual_stack = true;
        let w = world(
            three_nodes(),
            vec![svc("web", &["203.0.113.5", "2001:db8:113::5"])],
            vec![only],
            vec![peer("a", "198.51.100.1"), b],
        );
        let (r, _) = ribs(&w, "node1");
        assert_eq!(prefixes(&r["a"]), ["203.0.113.5/32"]);
        assert!(r["b"].is_empty());

        let mut w = w;
        w.bgp_ads[0].peers.clear();
        let (r, _) = ribs(&w, "node1");
        assert_eq!(prefixes(&r["b"]), ["203.0.113.5/32", "2001:db8:113::5/128"]);
    }

    #[test]
    fn aggregation_dedups_and_merges_communities() {
        let mut agg = ad("agg");
        agg.aggregation_length = 24;
        agg.aggregation_length_v6 = 120;
        agg.communities = ["vip".to_string(), "large:64512:1:2".to_string()].into();
        let mut host = ad("host");
        host.communities = ["64512:200".to_string()].into();
        let mut w = world(
            three_nodes(),
            vec![
                svc("a", &["203.0.113.5", "2001:db8:113::5"]),
                svc("b", &["203.0.113.77"]),
            ],
            vec![agg, host],
            vec![peer("router", "198.51.100.1"), peer("v6", "2001:db8:51::1")],
        );
        w.community_aliases.insert(
            "vip".into(),
            CommunityValue::Standard(Community::new(64512, 100)),
        );
        let (r, problems) = ribs(&w, "node2");
        assert!(problems.is_empty(), "{problems:?}");
        let rib = &r["router"];
        assert_eq!(
            prefixes(rib),
            ["203.0.113.0/24", "203.0.113.5/32", "203.0.113.77/32"]
        );
        let agg_attrs = &rib[&net("203.0.113.0/24")];
        assert_eq!(
            agg_attrs.communities,
            BTreeSet::from([Community::new(64512, 100)])
        );
        assert_eq!(agg_attrs.large_communities.len(), 1);
        assert_eq!(agg_attrs.local_pref, None);
        assert_eq!(
            prefixes(&r["v6"]),
            ["2001:db8:113::/120", "2001:db8:113::5/128"]
        );

        // Two advertisements giving the same prefix: one route, communities merged.
        w.bgp_ads[1].aggregation_length = 24;
        let (r, _) = ribs(&w, "node2");
        assert_eq!(prefixes(&r["router"]), ["203.0.113.0/24"]);
        assert_eq!(
            r["router"][&net("203.0.113.0/24")].communities,
            BTreeSet::from([Community::new(64512, 100), Community::new(64512, 200)])
        );
    }

    #[test]
    fn local_pref_goes_to_ibgp_only_and_conflicts_are_not_sent() {
        let mut a = ad("a");
        a.local_pref = Some(100);
        let w = world(
            three_nodes(),
            vec![svc("web", &["203.0.113.5"])],
            vec![a.clone()],
            vec![peer("ext", "198.51.100.1"), ibgp("int", "198.51.100.2")],
        );
        let (r, _) = ribs(&w, "node1");
        assert_eq!(r["ext"][&net("203.0.113.5/32")].local_pref, None);
        assert_eq!(r["int"][&net("203.0.113.5/32")].local_pref, Some(100));

        let mut b = ad("b");
        b.local_pref = Some(200);
        let mut dynamic = ibgp("dyn", "198.51.100.3");
        dynamic.session.peer_asn = PeerAsn::Dynamic(DynamicAsn::Internal);
        let w = world(
            three_nodes(),
            vec![svc("web", &["203.0.113.5"]), svc("other", &["203.0.113.6"])],
            vec![a, b],
            vec![
                peer("ext", "198.51.100.1"),
                ibgp("int", "198.51.100.2"),
                dynamic,
            ],
        );
        let (r, problems) = ribs(&w, "node1");
        assert_eq!(prefixes(&r["ext"]), ["203.0.113.5/32", "203.0.113.6/32"]);
        assert!(r["int"].is_empty());
        assert!(r["dyn"].is_empty(), "dynamic internal counts as iBGP");
        assert_eq!(problems.len(), 2, "one per prefix: {problems:?}");
        assert!(problems[0].starts_with("ConflictingLocalPref"));
        assert!(problems[0].contains("dyn, int"), "{}", problems[0]);
        // Every advertisement concerned is named, for a Warning on each.
        let p = plan(&w, "node1", &announcements(&w, "node1", &all_live(&w)).bgp);
        assert_eq!(p.conflicts.len(), 2, "{:?}", p.conflicts);
        for c in &p.conflicts {
            assert_eq!(c.ads, ["a", "b"]);
            assert!(p.problems.iter().any(|x| x.message == c.message));
        }
    }

    #[test]
    fn unknown_alias_leaves_its_advertisement_out() {
        let mut tagged = ad("tagged");
        tagged.communities = ["no-such-alias".to_string()].into();
        tagged.aggregation_length = 24;
        let w = world(
            three_nodes(),
            vec![svc("web", &["203.0.113.5"])],
            vec![tagged, ad("plain")],
            vec![peer("router", "198.51.100.1")],
        );
        let (r, problems) = ribs(&w, "node1");
        assert_eq!(prefixes(&r["router"]), ["203.0.113.5/32"]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("no-such-alias"), "{problems:?}");
    }
}

mod properties {
    use super::*;

    /// SplitMix64: a seeded, dependency-free generator, so every run checks the same
    /// cases and a failure names its seed.
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

    const RUNS: u64 = 300;
    const NODE_NAMES: [&str; 6] = ["n0", "n1", "n2", "n3", "n4", "n5"];

    fn random_world(r: &mut Rng) -> (World, BTreeSet<String>) {
        let present: Vec<&str> = NODE_NAMES.into_iter().filter(|_| r.chance(80)).collect();
        let nodes: Vec<Node> = present
            .into_iter()
            .map(|n| {
                let mut l = vec![("rack", *r.pick(&["1", "2"]))];
                if r.chance(8) {
                    l.push((EXCLUDE_LB_LABEL, ""));
                }
                let mut x = node(n, &l);
                x.ready = r.chance(85);
                x.network_unavailable = r.chance(5);
                x
            })
            .collect();
        let services: Vec<ServiceInfo> = (0..r.below(8))
            .map(|i| {
                let mut s = svc(&format!("s{i}"), &[]);
                s.pool = (*r.pick(&["bgp", "other"])).into();
                if r.chance(90) {
                    s.ips
                        .push(IpAddr::V4(Ipv4Addr::new(203, 0, 113, r.below(256) as u8)));
                }
                if r.chance(50) {
                    s.ips.push(ip(&format!("2001:db8:113::{:x}", r.below(256))));
                }
                s.labels = labels(&[("app", *r.pick(&["x", "y"]))]);
                s.external_traffic_policy_local = r.chance(40);
                s.endpoints = (0..r.below(4))
                    .map(|_| Endpoint {
                        node: r.chance(90).then(|| (*r.pick(&NODE_NAMES)).into()),
                        serving: r.chance(80),
                    })
                    .collect();
                s
            })
            .collect();
        let ads: Vec<BgpAd> = (0..r.below(4))
            .map(|i| {
                let mut a = ad(&format!("ad{i}"));
                if r.chance(20) {
                    a.pools = ["other".to_string()].into();
                }
                if r.chance(40) {
                    a.node_selectors = selectors(&[("rack", *r.pick(&["1", "2"]))]);
                }
                if r.chance(25) {
                    a.service_selectors = selectors(&[("app", *r.pick(&["x", "y"]))]);
                }
                a.aggregation_length = *r.pick(&[32, 32, 28, 24]);
                a.aggregation_length_v6 = *r.pick(&[128, 128, 124, 120]);
                if r.chance(40) {
                    a.local_pref = Some(*r.pick(&[100, 200]));
                }
                for c in ["64512:1", "64512:2", "large:1:2:3", "alias"] {
                    if r.chance(25) {
                        a.communities.insert(c.into());
                    }
                }
                if r.chance(30) {
                    a.peers = [r.pick(&["p0", "p1", "p2"]).to_string()].into();
                }
                a
            })
            .collect();
        let peers: Vec<Peer> = (0..r.below(4))
            .map(|i| {
                let addr = if r.chance(50) {
                    "198.51.100.1"
                } else {
                    "2001:db8:51::1"
                };
                let mut p = if r.chance(50) {
                    ibgp(&format!("p{i}"), addr)
                } else {
                    peer(&format!("p{i}"), addr)
                };
                p.session.dual_stack = r.chance(25);
                if r.chance(30) {
                    p.node_selectors = selectors(&[("rack", *r.pick(&["1", "2"]))]);
                }
                p
            })
            .collect();
        let mut w = world(nodes, services, ads, peers);
        if r.chance(80) {
            w.community_aliases.insert(
                "alias".into(),
                CommunityValue::Large(LargeCommunity {
                    global_admin: 64512,
                    local_data1: 7,
                    local_data2: 7,
                }),
            );
        }
        let live = w.nodes.keys().filter(|_| r.chance(90)).cloned().collect();
        (w, live)
    }

    /// The rules of the module documentation, written again independently: whether
    /// `node` announces `s`.
    fn oracle(w: &World, s: &ServiceInfo, node: &str, live: &BTreeSet<String>) -> bool {
        let Some(n) = w.nodes.get(node) else {
            return false;
        };
        let alive = live.contains(node) && n.ready && !n.network_unavailable;
        let serving_here = s
            .endpoints
            .iter()
            .any(|e| e.serving && e.node.as_deref() == Some(node));
        let serving_anywhere = s.endpoints.iter().any(|e| e.serving);
        let selected = w.bgp_ads.iter().any(|a| {
            a.pools.contains(&*s.pool)
                && a.service_selectors.matches_or_empty(&s.labels)
                && a.node_selectors.matches_or_empty(&n.labels)
        });
        !s.ips.is_empty()
            && alive
            && !n.labels.contains_key(EXCLUDE_LB_LABEL)
            && selected
            && serving_anywhere
            && (!s.external_traffic_policy_local || serving_here)
    }

    #[test]
    fn every_speaker_agrees_with_the_rules() {
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let (w, live) = random_world(&mut r);
            let election = bgp_election(&w, &live);
            for name in w.nodes.keys() {
                let a = announcements(&w, name, &live);
                let mut expected: BTreeSet<IpAddr> = BTreeSet::new();
                for s in w.services.values() {
                    let mine = oracle(&w, s, name, &live);
                    let elected = election[&s.key]
                        .as_ref()
                        .is_ok_and(|nodes| nodes.contains(name));
                    assert_eq!(mine, elected, "seed {seed}: {name} for {}", s.key);
                    assert_eq!(
                        mine,
                        !a.bgp_reasons.contains_key(&s.key),
                        "seed {seed}: {name} for {}",
                        s.key
                    );
                    if mine {
                        expected.extend(s.ips.iter().copied());
                    }
                }
                let got: BTreeSet<IpAddr> = a.bgp.keys().copied().collect();
                assert_eq!(got, expected, "seed {seed}: {name}");
            }
        }
    }

    /// What `plan` must send: every announced address, masked by every advertisement
    /// behind it that targets the peer, on a session carrying its family; nothing else.
    #[test]
    fn plans_cover_exactly_the_announced_addresses() {
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let (w, live) = random_world(&mut r);
            for name in w.nodes.keys() {
                let a = announcements(&w, name, &live);
                let p = plan(&w, name, &a.bgp);
                let conflicted: BTreeSet<String> = p
                    .problems
                    .iter()
                    .filter(|x| x.reason == "ConflictingLocalPref")
                    .filter_map(|x| x.message.split(' ').next().map(String::from))
                    .collect();
                let alias_missing = !w.community_aliases.contains_key("alias");
                for peer in node_peers(&w, name) {
                    let rib = &p.peers[&peer.name];
                    let mut expected: BTreeMap<IpNet, BTreeSet<usize>> = BTreeMap::new();
                    for (addr, ann) in &a.bgp {
                        if !(peer.session.dual_stack
                            || addr.is_ipv4() == peer.session.address.is_ipv4())
                        {
                            continue;
                        }
                        for &i in ann.ads.iter() {
                            let ad = &w.bgp_ads[i];
                            if alias_missing && ad.communities.contains("alias") {
                                continue;
                            }
                            if !ad.peers.is_empty() && !ad.peers.contains(&peer.name) {
                                continue;
                            }
                            let len = if addr.is_ipv4() {
                                ad.aggregation_length
                            } else {
                                ad.aggregation_length_v6
                            };
                            expected
                                .entry(IpNet::new(*addr, len).unwrap().trunc())
                                .or_default()
                                .insert(i);
                        }
                    }
                    for (prefix, ads) in &expected {
                        let prefs: BTreeSet<Option<u32>> =
                            ads.iter().map(|&i| w.bgp_ads[i].local_pref).collect();
                        let conflict = peer.session.is_ibgp() && prefs.len() > 1;
                        match rib.get(prefix) {
                            None => assert!(
                                conflict && conflicted.contains(&prefix.to_string()),
                                "seed {seed}: {name} → {}: {prefix} missing",
                                peer.name
                            ),
                            Some(attrs) => {
                                assert!(!conflict, "seed {seed}: {prefix} sent despite a conflict");
                                let want = if peer.session.is_ibgp() {
                                    prefs.into_iter().next().flatten()
                                } else {
                                    None
                                };
                                assert_eq!(attrs.local_pref, want, "seed {seed}");
                                let n_std = ads
                                    .iter()
                                    .flat_map(|&i| &w.bgp_ads[i].communities)
                                    .filter(|c| c.starts_with("64512:"))
                                    .collect::<BTreeSet<_>>()
                                    .len();
                                assert_eq!(
                                    attrs.communities.len(),
                                    n_std,
                                    "seed {seed}: union of communities"
                                );
                            }
                        }
                    }
                    assert!(
                        rib.keys().all(|k| expected.contains_key(k)),
                        "seed {seed}: {name} → {}: unexpected prefixes",
                        peer.name
                    );
                }
            }
        }
    }

    fn random_attrs(r: &mut Rng) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs {
            local_pref: r.chance(50).then(|| *r.pick(&[100, 200])),
            communities: (0..r.below(3))
                .map(|_| Community::new(64512, r.below(4) as u16))
                .collect(),
            large_communities: (0..r.below(2))
                .map(|_| LargeCommunity {
                    global_admin: 1,
                    local_data1: r.below(3) as u32,
                    local_data2: 0,
                })
                .collect(),
        })
    }

    fn random_rib(r: &mut Rng, size: u64) -> AdjRibOut {
        (0..r.below(size + 1))
            .map(|_| {
                let p = if r.chance(60) {
                    let len = *r.pick(&[32, 32, 32, 28, 24, 9, 1]);
                    IpNet::new(IpAddr::V4(Ipv4Addr::from(r.next() as u32)), len).unwrap()
                } else {
                    let len = *r.pick(&[128, 128, 120, 64, 33, 1]);
                    let a = std::net::Ipv6Addr::from((r.next() as u128) << 64 | r.next() as u128);
                    IpNet::new(IpAddr::V6(a), len).unwrap()
                };
                (p.trunc(), random_attrs(r))
            })
            .collect()
    }

    #[test]
    fn applying_a_diff_gives_the_new_table() {
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let old = random_rib(&mut r, 40);
            // The new table: some of the old (some with changed attributes) and new ones.
            let mut new = AdjRibOut::new();
            for (p, a) in &old {
                if r.chance(60) {
                    let a = if r.chance(30) {
                        random_attrs(&mut r)
                    } else {
                        a.clone()
                    };
                    new.insert(*p, a);
                }
            }
            new.extend(random_rib(&mut r, 20));
            let d = diff(&old, &new);
            let mut applied = old.clone();
            d.apply(&mut applied);
            assert_eq!(applied, new, "seed {seed}");
            assert!(
                d.withdraw.iter().all(|p| !new.contains_key(p)),
                "seed {seed}"
            );
            assert!(
                d.announce.iter().all(|(p, a)| old.get(p) != Some(a)),
                "seed {seed}: nothing unchanged is re-sent"
            );
            assert!(diff(&new, &new).is_empty());
            let mut from_empty = AdjRibOut::new();
            RibDiff::full(&new).apply(&mut from_empty);
            assert_eq!(from_empty, new);
        }
    }

    fn params(r: &mut Rng) -> SessionParams {
        SessionParams {
            my_asn: *r.pick(&[64512, 4_200_000_000]),
            ibgp: r.chance(50),
            four_octet_as: r.chance(70),
            next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
            next_hop_v6: Some("2001:db8:51::11".parse().unwrap()),
        }
    }

    /// Checks UPDATEs against the difference they carry: each message fits, each
    /// prefix travels exactly once with its own attributes.
    fn check_updates(d: &RibDiff, s: &SessionParams, seed: u64) -> usize {
        let u = updates(d, s);
        assert!(u.unsendable.is_empty(), "seed {seed}");
        let mut withdrawn: Vec<IpNet> = Vec::new();
        let mut announced: Vec<(IpNet, RouteAttrs)> = Vec::new();
        for m in &u.messages {
            let len = update_len(m, s.four_octet_as);
            assert!(len <= MAX_MESSAGE_LEN, "seed {seed}: {len} bytes");
            // The codec agrees: it encodes the message in at most the bytes counted (the
            // count takes MP_REACH/MP_UNREACH headers as extended, one byte of slack).
            let ctx = Context {
                four_octet_as: s.four_octet_as,
                ipv4_unicast: true,
                ipv6_unicast: true,
            };
            let bytes = encode(&Message::Update(m.clone()), &ctx)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!(
                bytes.len() <= len && len - bytes.len() <= 1,
                "seed {seed}: encoded {} bytes, counted {len}",
                bytes.len()
            );
            let a = &m.attributes;
            withdrawn.extend(m.withdrawn.iter().map(|p| IpNet::V4(*p)));
            if let Some(un) = &a.mp_unreach {
                withdrawn.extend(un.withdrawn.iter().copied());
            }
            let attrs = RouteAttrs {
                local_pref: a.local_pref,
                communities: a.communities.iter().copied().collect(),
                large_communities: a.large_communities.iter().copied().collect(),
            };
            if !m.nlri.is_empty() {
                assert_eq!(a.next_hop, s.next_hop_v4, "seed {seed}");
            }
            announced.extend(m.nlri.iter().map(|p| (IpNet::V4(*p), attrs.clone())));
            if let Some(reach) = &a.mp_reach {
                assert_eq!(reach.next_hop, IpAddr::V6(s.next_hop_v6.unwrap()));
                announced.extend(reach.nlri.iter().map(|p| (*p, attrs.clone())));
            }
            let is_announcement = !m.nlri.is_empty() || a.mp_reach.is_some();
            assert_eq!(a.origin.is_some(), is_announcement, "seed {seed}");
            if is_announcement {
                assert_eq!(
                    a.as_path.as_ref().map(Vec::is_empty),
                    Some(s.ibgp),
                    "seed {seed}"
                );
            }
        }
        let w: BTreeSet<IpNet> = withdrawn.iter().copied().collect();
        assert_eq!(
            w.len(),
            withdrawn.len(),
            "seed {seed}: a withdrawal sent twice"
        );
        assert_eq!(w, d.withdraw, "seed {seed}");
        let ann: AdjRibOut = announced
            .iter()
            .map(|(p, a)| (*p, Arc::new(a.clone())))
            .collect();
        assert_eq!(
            ann.len(),
            announced.len(),
            "seed {seed}: an announcement sent twice"
        );
        assert_eq!(ann, d.announce, "seed {seed}");
        u.messages.len()
    }

    #[test]
    fn updates_fit_and_carry_every_prefix_once() {
        for seed in 0..RUNS {
            let mut r = Rng(seed);
            let old = random_rib(&mut r, 1500);
            let new = random_rib(&mut r, 1500);
            let s = params(&mut r);
            check_updates(&diff(&old, &new), &s, seed);
            check_updates(&RibDiff::full(&new), &s, seed);
        }
    }

    /// 50,000 host routes with the same attributes pack into as few UPDATEs as the
    /// limit allows (each /32 takes 5 bytes of NLRI).
    #[test]
    fn fifty_thousand_routes_pack_tightly() {
        let attrs = Arc::new(RouteAttrs {
            local_pref: Some(100),
            communities: [Community::new(64512, 100)].into(),
            ..RouteAttrs::default()
        });
        let rib: AdjRibOut = (0..50_000u32)
            .map(|i| {
                let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i);
                (IpNet::new(IpAddr::V4(a), 32).unwrap(), attrs.clone())
            })
            .collect();
        let s = SessionParams {
            my_asn: MY_ASN,
            ibgp: true,
            four_octet_as: true,
            next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
            next_hop_v6: None,
        };
        let n = check_updates(&RibDiff::full(&rib), &s, 0);
        // 4096 - 23 fixed - 28 attributes = 4045 bytes = 809 prefixes per message.
        assert_eq!(n, 50_000usize.div_ceil(809));
    }
}
