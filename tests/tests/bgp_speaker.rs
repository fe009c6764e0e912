//! `ferrolb-speaker` in BGP mode against real routers (BIRD 2, FRR 8, GoBGP 3, ExaBGP 4)
//! in network namespaces: sessions, the routes and attributes the router receives, ECMP
//! over several nodes, withdrawal, TCP MD5, passive mode, IPv6.
//!
//! Each test builds its own namespaces (`flbt-<tag>-<pid>-…`, see
//! `ferrolb_tests::bgp::netns`) and a site directory the speaker reads
//! (`--source dir:`, written by the test as the controller would). The speaker binary is
//! built by the first test that needs it. Root only (skipped loudly otherwise); needs
//! `bird2 frr gobgpd exabgp`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_tests::bgp::bird::Bird;
use ferrolb_tests::bgp::route::Route;
use ferrolb_tests::bgp::site::{self, Node, Service};
use ferrolb_tests::bgp::speaker::{self, Speaker};
use ferrolb_tests::bgp::{Neighbor, Net, RouterConfig, have, is_root, wait_for};
use serde_json::{Value, json};

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
/// Longest wait for a session or a route (timers are seconds; most take milliseconds).
const LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

fn ready(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP bgp_speaker::{test}: needs root (network namespaces); CI runs it as root");
        return false;
    }
    for tool in ["bird", "birdc", "gobgpd", "gobgp", "exabgp", "vtysh"] {
        assert!(
            have(tool),
            "`{tool}` is missing: apt-get install -y bird2 frr gobgpd exabgp"
        );
    }
    true
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A site of `nodes` speakers (hosts 1..=nodes of `net`) and its directory.
struct Site {
    net: Net,
    dir: PathBuf,
    speakers: Vec<Speaker>,
}

impl Site {
    fn new(tag: &str, hosts: usize) -> Site {
        let net = Net::new(tag, hosts).unwrap();
        let dir = net.subdir("site").unwrap();
        Site {
            net,
            dir,
            speakers: Vec::new(),
        }
    }

    fn node_name(k: usize) -> String {
        format!("node{k}")
    }

    /// Writes `site.yaml` for nodes 1..=n with `bgp` objects.
    fn configure(&self, n: usize, bgp: &[(&str, &str, Value)]) {
        let nodes: Vec<Node> = (1..=n)
            .map(|k| Node {
                name: Site::node_name(k),
                addresses: vec![self.net.host(k).ipv4.into(), self.net.host(k).ipv6.into()],
            })
            .collect();
        let text = site::site_yaml(&nodes, &["203.0.113.0/24", "2001:db8:113::/120"], bgp);
        site::write(&self.dir, "site.yaml", &text).unwrap();
    }

    fn services(&self, services: &[Service]) {
        let hosts = self.net.hosts.clone();
        site::write_services(&self.dir, services, &|node, v6| {
            let k: usize = node.trim_start_matches("node").parse().unwrap_or(1);
            hosts[k - 1].addr(v6)
        })
        .unwrap();
    }

    /// Starts the speaker of node `k` in host `k`'s namespace.
    fn start(&mut self, k: usize, extra: &[&str]) {
        let bin = speaker::binary().unwrap();
        let log = self.net.dir().join(format!("speaker{k}.log"));
        let s = Speaker::start(
            &bin,
            &self.net.host(k).ns,
            &Site::node_name(k),
            &self.dir,
            extra,
            &log,
        )
        .unwrap();
        self.speakers.push(s);
    }

    fn host(&self, k: usize) -> IpAddr {
        self.net.host(k).ipv4.into()
    }
}

/// A BGPPeer towards the router from every node.
fn peer(name: &str, address: IpAddr, peer_as: u32, extra: Value) -> (&'static str, String, Value) {
    let mut spec = json!({
        "myASN": NODE_AS,
        "peerASN": peer_as,
        "peerAddress": address.to_string(),
        "holdTime": "9s",
        "keepaliveTime": "3s",
        "connectTime": "1s",
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    ("BGPPeer", name.to_string(), spec)
}

fn advertisement(name: &str, spec: Value) -> (&'static str, String, Value) {
    let mut s = json!({"ipAddressPools": [site::POOL]});
    if let (Some(o), Some(e)) = (s.as_object_mut(), spec.as_object()) {
        o.extend(e.clone());
    }
    ("BGPAdvertisement", name.to_string(), s)
}

fn objects<'a>(list: &'a [(&'static str, String, Value)]) -> Vec<(&'static str, &'a str, Value)> {
    list.iter()
        .map(|(k, n, v)| (*k, n.as_str(), v.clone()))
        .collect()
}

fn router_cfg(net: &Net, nodes: usize) -> RouterConfig {
    let mut cfg = RouterConfig::new(ROUTER_AS, net.router.ipv4, net.router.ipv4);
    for k in 1..=nodes {
        cfg = cfg.neighbor(Neighbor::new(net.host(k).ipv4, NODE_AS));
    }
    cfg
}

/// Waits until `routes()` holds exactly the (prefix, next hop) pairs `want`.
fn wait_routes(what: &str, want: &[(&str, IpAddr)], routes: impl Fn() -> Vec<Route>) -> Vec<Route> {
    let mut want: Vec<(ipnet::IpNet, IpAddr)> = want
        .iter()
        .map(|(p, nh)| (p.parse().unwrap(), *nh))
        .collect();
    want.sort();
    let got = wait_for(LIMIT, POLL, || {
        let r = routes();
        let mut have: Vec<(ipnet::IpNet, IpAddr)> = r
            .iter()
            .filter_map(|r| Some((r.prefix?, r.next_hop?)))
            .collect();
        have.sort();
        (have == want).then_some(r)
    });
    got.unwrap_or_else(|| panic!("{what}: want {want:?}, router has {:#?}", routes()))
}

#[test]
fn bird_gets_the_service_route_and_loses_it_when_the_service_goes() {
    if !ready("bird_gets_the_service_route_and_loses_it_when_the_service_goes") {
        return;
    }
    let mut s = Site::new("sp-bird", 1);
    let router = s.net.router.ipv4.into();
    s.configure(
        1,
        &objects(&[
            peer("router", router, ROUTER_AS, json!({})),
            advertisement(
                "bgp",
                json!({"communities": ["64512:100", "large:64512:1:2"]}),
            ),
        ]),
    );
    s.services(&[Service::new("web", &[ip("203.0.113.10")], &["node1"])]);
    let bird = Bird::start(
        &s.net.router.ns,
        s.net.subdir("bird").unwrap(),
        router_cfg(&s.net, 1),
        false,
    )
    .unwrap();
    s.start(1, &[]);
    bird.wait_established(s.host(1), LIMIT).unwrap();
    let r = wait_routes("BIRD", &[("203.0.113.10/32", s.host(1))], || {
        bird.routes().unwrap()
    });
    assert_eq!(r[0].as_path, [NODE_AS]);
    assert_eq!(r[0].communities, ["64512:100"]);
    assert_eq!(r[0].large_communities, ["64512:1:2"]);
    assert_eq!(r[0].peer, Some(s.host(1)));

    s.services(&[]);
    wait_routes("BIRD after the Service is deleted", &[], || {
        bird.routes().unwrap()
    });
}
