//! The BGP harness itself against the real daemons (no FerroLB code involved): GoBGP
//! announces routes with communities, large communities and MED over IPv4 and IPv6, and
//! each receiver (BIRD, FRR, ExaBGP) is read back through the harness, then the routes are
//! withdrawn. This pins the harness's configs and parsers to what the Debian packages
//! really do, so the speaker's integration tests can trust them.
//!
//! Root only (namespaces); skipped with a loud message otherwise. Needs `bird2 frr
//! gobgpd exabgp` (`.ci/run` installs them).

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_tests::bgp::bird::Bird;
use ferrolb_tests::bgp::exabgp::Exabgp;
use ferrolb_tests::bgp::frr::Frr;
use ferrolb_tests::bgp::gobgp::Gobgp;
use ferrolb_tests::bgp::route::{Route, sorted};
use ferrolb_tests::bgp::{self, Neighbor, Net, RouterConfig, have, is_root, wait_for};

const ROUTER_AS: u32 = 64500;
const SENDER_AS: u32 = 64512;
const LIMIT: Duration = Duration::from_secs(15);

fn ready(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP bgp_daemons::{test}: needs root (network namespaces); CI runs it as root");
        return false;
    }
    for tool in [
        "bird",
        "birdc",
        "gobgpd",
        "gobgp",
        "exabgp",
        "vtysh",
        "/usr/lib/frr/bgpd",
    ] {
        assert!(
            have(tool),
            "`{tool}` is missing: apt-get install -y bird2 frr gobgpd exabgp"
        );
    }
    true
}

/// GoBGP in host 1, waiting for the router to dial it.
fn sender(net: &Net) -> Gobgp {
    let h = net.host(1);
    let cfg = RouterConfig::new(SENDER_AS, h.ipv4, h.ipv4)
        .neighbor(Neighbor::new(net.router.ipv4, ROUTER_AS).passive());
    Gobgp::start(&h.ns, net.subdir("gobgp").unwrap(), cfg).unwrap()
}

fn router_cfg(net: &Net) -> RouterConfig {
    RouterConfig::new(ROUTER_AS, net.router.ipv4, net.router.ipv4)
        .neighbor(Neighbor::new(net.host(1).ipv4, SENDER_AS))
}

fn announce(net: &Net, g: &Gobgp) {
    g.announce(
        "203.0.113.5/32",
        &[
            "community",
            "64512:100,no-export",
            "large-community",
            "64512:1:2",
            "med",
            "7",
        ],
    )
    .unwrap();
    // Over an IPv4 session GoBGP would send an IPv4-mapped IPv6 next hop.
    let nh = net.host(1).ipv6.to_string();
    g.announce(
        "2001:db8:100::1/128",
        &["nexthop", &nh, "community", "64512:200"],
    )
    .unwrap();
}

/// Checks the two announced routes as `routes` reads them from a receiver.
fn check(net: &Net, what: &str, mut routes: impl FnMut() -> Vec<Route>) {
    let got = wait_for(LIMIT, Duration::from_millis(50), || {
        let r = sorted(routes());
        (r.len() == 2).then_some(r)
    })
    .unwrap_or_else(|| panic!("{what}: two routes expected, has {:?}", routes()));
    let sender: IpAddr = net.host(1).ipv4.into();
    let v4 = &got[0];
    assert_eq!(v4.prefix(), "203.0.113.5/32".parse().unwrap(), "{what}");
    assert_eq!(v4.next_hop, Some(sender), "{what}");
    assert_eq!(v4.as_path, [SENDER_AS], "{what}");
    assert_eq!(v4.med, Some(7), "{what}");
    assert_eq!(v4.communities, ["64512:100", "65535:65281"], "{what}");
    assert_eq!(v4.large_communities, ["64512:1:2"], "{what}");
    assert_eq!(v4.peer.unwrap_or(sender), sender, "{what}");
    let v6 = &got[1];
    assert_eq!(
        v6.prefix(),
        "2001:db8:100::1/128".parse().unwrap(),
        "{what}"
    );
    assert_eq!(v6.communities, ["64512:200"], "{what}");
    assert_eq!(v6.next_hop, Some(net.host(1).ipv6.into()), "{what}");
}

fn withdrawn(what: &str, mut routes: impl FnMut() -> Vec<Route>) {
    wait_for(LIMIT, Duration::from_millis(50), || {
        routes().is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("{what}: routes left after withdrawal: {:?}", routes()));
}

#[test]
fn bird_receives_gobgp_routes_with_attributes() {
    if !ready("bird_receives_gobgp_routes_with_attributes") {
        return;
    }
    let net = Net::new("bd-bird", 1).unwrap();
    let g = sender(&net);
    let bird = Bird::start(
        &net.router.ns,
        net.subdir("bird").unwrap(),
        router_cfg(&net),
        false,
    )
    .unwrap();
    bird.wait_established(net.host(1).ipv4.into(), LIMIT)
        .unwrap();
    announce(&net, &g);
    check(&net, "BIRD", || bird.routes().unwrap());
    assert_eq!(bird.count().unwrap(), 2);
    g.withdraw("203.0.113.5/32").unwrap();
    g.withdraw("2001:db8:100::1/128").unwrap();
    withdrawn("BIRD", || bird.routes().unwrap());
}

#[test]
fn frr_receives_gobgp_routes_with_attributes() {
    if !ready("frr_receives_gobgp_routes_with_attributes") {
        return;
    }
    let net = Net::new("bd-frr", 1).unwrap();
    let g = sender(&net);
    let frr = Frr::start(&net.router.ns, net.subdir("frr").unwrap(), router_cfg(&net)).unwrap();
    frr.wait_established(net.host(1).ipv4.into(), LIMIT)
        .unwrap();
    announce(&net, &g);
    check(&net, "FRR", || frr.routes().unwrap());
    g.withdraw("203.0.113.5/32").unwrap();
    g.withdraw("2001:db8:100::1/128").unwrap();
    withdrawn("FRR", || frr.routes().unwrap());
}

#[test]
fn exabgp_reports_gobgp_routes_exactly() {
    if !ready("exabgp_reports_gobgp_routes_exactly") {
        return;
    }
    let net = Net::new("bd-exa", 1).unwrap();
    let g = sender(&net);
    let x = Exabgp::start(
        &net.router.ns,
        net.subdir("exabgp").unwrap(),
        router_cfg(&net),
    )
    .unwrap();
    x.wait_established(net.host(1).ipv4.into(), LIMIT).unwrap();
    announce(&net, &g);
    check(&net, "ExaBGP", || x.routes().unwrap());
    // Exact: an eBGP sender sends no LOCAL_PREF (BIRD and FRR show a default instead).
    assert!(x.routes().unwrap().iter().all(|r| r.local_pref.is_none()));
    g.withdraw("203.0.113.5/32").unwrap();
    g.withdraw("2001:db8:100::1/128").unwrap();
    withdrawn("ExaBGP", || x.routes().unwrap());
}

#[test]
fn gobgp_loads_an_mrt_dump_and_bird_gets_every_route() {
    if !ready("gobgp_loads_an_mrt_dump_and_bird_gets_every_route") {
        return;
    }
    let net = Net::new("bd-mrt", 1).unwrap();
    let g = sender(&net);
    let bird = Bird::start(
        &net.router.ns,
        net.subdir("bird").unwrap(),
        router_cfg(&net),
        false,
    )
    .unwrap();
    bird.wait_established(net.host(1).ipv4.into(), LIMIT)
        .unwrap();
    let h = net.host(1);
    let prefixes: Vec<ipnet::IpNet> = (1..=300u32)
        .map(|i| {
            let a = std::net::Ipv6Addr::from(
                0x2001_0db8_1000_0000_0000_0000_0000_0000u128 + u128::from(i),
            );
            ipnet::IpNet::new(a.into(), 128).unwrap()
        })
        .chain((0..20u8).map(|i| format!("203.0.113.{}/32", i + 100).parse().unwrap()))
        .collect();
    let dump = bgp::mrt::rib_dump(
        h.ipv4.into(),
        SENDER_AS,
        h.ipv4,
        &prefixes,
        &[SENDER_AS],
        h.ipv4,
        h.ipv6,
        4096,
    );
    let file = net.dir().join("routes.mrt");
    std::fs::write(&file, dump).unwrap();
    g.inject_mrt(&file).unwrap();
    let n = wait_for(LIMIT, Duration::from_millis(50), || {
        bird.count().ok().filter(|n| *n == prefixes.len())
    });
    assert_eq!(n, Some(prefixes.len()), "BIRD has {:?}", bird.count());
    let routes = bird.routes().unwrap();
    let r6 = routes
        .iter()
        .find(|r| r.prefix() == "2001:db8:1000::12c/128".parse().unwrap())
        .expect("the last IPv6 route");
    assert_eq!(r6.next_hop, Some(h.ipv6.into()));
    assert_eq!(r6.origin.as_deref(), Some("igp"));
}
