//! One `ferrolb-speaker` against real routing daemons, for the integration tests: a
//! [`Site`] (namespaces, the site directory, node1's speaker in host 1's namespace, BIRD
//! as the router), the check that a test can run here ([`ready`]), the Service most
//! tests announce ([`web`]) and a bounded wait for an exact set of routes
//! ([`wait_routes`]). Failures panic: this is test code.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use super::bird::Bird;
use super::route::{Route, sorted};
use super::site::{self, NODE_AS, Node, ROUTER_AS, Service};
use super::speaker::{self, Speaker};
use super::{Neighbor, Net, RouterConfig, have, is_root, wait_for};

/// Longest wait for a session or a route (timers are seconds; most take milliseconds).
pub const LIMIT: Duration = Duration::from_secs(20);
pub const POLL: Duration = Duration::from_millis(50);
/// The address of [`web`].
pub const VIP: &str = "203.0.113.10";
/// [`web`]'s route as the router holds it.
pub const WEB_ROUTE: &str = "203.0.113.10/32";

/// Whether test `test` can run: false (with a loud SKIP) when not root; panics naming
/// the packages when a daemon or tool is missing.
pub fn ready(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: needs root (network namespaces); CI runs it as root");
        return false;
    }
    for tool in [
        "bird", "birdc", "gobgpd", "gobgp", "exabgp", "vtysh", "nstat", "ss",
    ] {
        assert!(
            have(tool),
            "`{tool}` is missing: apt-get install -y bird2 frr gobgpd exabgp iproute2"
        );
    }
    true
}

/// A test address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Service `web` on [`VIP`], its endpoint on node1.
pub fn web() -> Service {
    Service::new("web", &[ip(VIP)], &["node1"])
}

/// A site whose node1 runs a speaker in host 1's namespace; further hosts of `net` are
/// free for other peers.
pub struct Site {
    pub net: Net,
    pub dir: PathBuf,
    speaker: Option<Speaker>,
    starts: usize,
}

impl Site {
    /// Namespaces `flbt-<tag>-…` with `hosts` hosts, and an empty site directory.
    pub fn new(tag: &str, hosts: usize) -> Site {
        let net = Net::new(tag, hosts).unwrap();
        let dir = net.subdir("site").unwrap();
        Site {
            net,
            dir,
            speaker: None,
            starts: 0,
        }
    }

    /// One host, the router as node1's one peer ([`ROUTER_AS`], `peer_extra` added to
    /// the BGPPeer), one advertisement (`adv` added) and [`web`] written; the speaker
    /// not started yet.
    pub fn with_router(tag: &str, peer_extra: Value, adv: Value) -> Site {
        let s = Site::new(tag, 1);
        s.configure(&[
            site::peer("router", s.router(), ROUTER_AS, peer_extra),
            site::advertisement("bgp", adv),
        ]);
        s.services(&[web()]);
        s
    }

    /// Writes `site.yaml`: node1 (host 1) and the given BGP objects.
    pub fn configure<S: AsRef<str>>(&self, bgp: &[(&str, S, Value)]) {
        let nodes = [Node {
            name: "node1".into(),
            addresses: vec![self.net.host(1).ipv4.into(), self.net.host(1).ipv6.into()],
        }];
        let text = site::site_yaml(&nodes, &["203.0.113.0/24", "2001:db8:113::/120"], bgp);
        site::write(&self.dir, "site.yaml", &text).unwrap();
    }

    /// Writes the Services (endpoints on node1) and their assignment record.
    pub fn services(&self, services: &[Service]) {
        let h = self.net.host(1).clone();
        site::write_services(&self.dir, services, &|_, v6| h.addr(v6)).unwrap();
    }

    /// Starts node1's speaker (a previous one must have been stopped).
    pub fn start(&mut self) {
        assert!(self.speaker.is_none(), "one speaker at a time");
        self.starts += 1;
        let bin = speaker::binary().unwrap();
        let log = self.net.dir().join(format!("speaker-{}.log", self.starts));
        let s = Speaker::start(&bin, &self.net.host(1).ns, "node1", &self.dir, &[], &log).unwrap();
        self.speaker = Some(s);
    }

    /// SIGTERM (SIGKILL after 5 s): the speaker's own orderly shutdown.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.speaker.take() {
            s.daemon.stop(Duration::from_secs(5));
        }
    }

    /// Sends `signal` to node1's speaker (SIGSTOP freezes it; stopping it, also when a
    /// test fails, thaws it first).
    pub fn signal(&self, signal: i32) {
        if let Some(s) = &self.speaker {
            s.daemon.signal(signal);
        }
    }

    /// Node1's speaker's Prometheus metrics (scraped in host 1's namespace, at most 2 s);
    /// empty when it does not answer.
    pub fn metrics(&self) -> String {
        super::run(&[
            "ip",
            "netns",
            "exec",
            &self.net.host(1).ns,
            "curl",
            "-s",
            "--max-time",
            "2",
            "http://127.0.0.1:7472/metrics",
        ])
        .unwrap_or_default()
    }

    /// One sample of [`Site::metrics`]: `series` as written in the exposition, e.g.
    /// `ferrolb_bgp_session_up{peer="router"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.metrics(), series)
    }

    /// The running speaker's log so far.
    pub fn log(&self) -> String {
        self.speaker
            .as_ref()
            .map(|s| std::fs::read_to_string(&s.daemon.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Node1's address (host 1, IPv4): the speaker's end of its sessions.
    pub fn node(&self) -> IpAddr {
        self.net.host(1).ipv4.into()
    }

    /// The router namespace's address (IPv4).
    pub fn router(&self) -> IpAddr {
        self.net.router.ipv4.into()
    }

    /// Node1 as the router's neighbour, eBGP from [`NODE_AS`].
    pub fn neighbor(&self) -> Neighbor {
        Neighbor::new(self.net.host(1).ipv4, NODE_AS)
    }

    /// The router's configuration: [`ROUTER_AS`], router ID and address its IPv4, `n` its
    /// one neighbour.
    pub fn router_config(&self, n: Neighbor) -> RouterConfig {
        RouterConfig::new(ROUTER_AS, self.net.router.ipv4, self.net.router.ipv4).neighbor(n)
    }

    /// BIRD in the router namespace with `n` as its only neighbour, [`Site::router_config`]
    /// changed by `edit`.
    pub fn bird(&self, n: Neighbor, edit: impl FnOnce(&mut RouterConfig)) -> Bird {
        let mut cfg = self.router_config(n);
        edit(&mut cfg);
        Bird::start(
            &self.net.router.ns,
            self.net.subdir("bird").unwrap(),
            cfg,
            false,
        )
        .unwrap()
    }

    /// Waits for `bird`'s session with node1, then for BIRD to hold exactly [`web`]'s
    /// route from node1; returns BIRD's routes.
    pub fn wait_web(&self, bird: &Bird) -> Vec<Route> {
        bird.wait_established(self.node(), LIMIT).unwrap();
        wait_routes("BIRD", &[(WEB_ROUTE, self.node())], || {
            bird.routes().unwrap()
        })
    }
}

/// The (prefix, next hop) pairs of `routes`, sorted.
pub fn pairs(routes: &[Route]) -> Vec<(IpNet, IpAddr)> {
    let mut have: Vec<(IpNet, IpAddr)> = routes
        .iter()
        .filter_map(|r| Some((r.prefix?, r.next_hop?)))
        .collect();
    have.sort();
    have
}

/// `want` as [`pairs`] gives them: parsed and sorted.
pub fn want(want: &[(&str, IpAddr)]) -> Vec<(IpNet, IpAddr)> {
    let mut want: Vec<(IpNet, IpAddr)> = want
        .iter()
        .map(|(p, nh)| (p.parse().expect("test prefix"), *nh))
        .collect();
    want.sort();
    want
}

/// Waits (at most [`LIMIT`]) until `routes()` holds exactly the (prefix, next hop) pairs
/// `want`; returns those routes, sorted.
pub fn wait_routes(
    what: &str,
    want: &[(&str, IpAddr)],
    routes: impl Fn() -> Vec<Route>,
) -> Vec<Route> {
    let want = self::want(want);
    let got = wait_for(LIMIT, POLL, || {
        let r = sorted(routes());
        (pairs(&r) == want).then_some(r)
    });
    got.unwrap_or_else(|| panic!("{what}: want {want:?}, router has {:#?}", routes()))
}

/// The value of `series` (name and labels as written) in a Prometheus exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}
