//! BGP mode in the lab, end to end (root only; skipped loudly otherwise), once with BIRD
//! and once with FRR as the router: `ferrolb-lab up --nodes 3 --router R`, then the
//! `web-bgp` example Service (the lab's `bgp` pool). Every node's speaker must hold an
//! Established session with the router over IPv4 and over IPv6 and advertise the
//! Service's /32 and /128; the router must install one ECMP route through all three
//! nodes; the client must reach the address through the router and be answered by more
//! than one node; deleting the Service must withdraw the route. The lab is taken down by
//! a drop guard whatever happens, one lab at a time (`ferrolb_tests::lab::LOCK`).
//!
//! Needs the Debian packages `iproute2 bird2 frr` (`.ci/run` installs them).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_controller::source::dir::AssignmentList;
use ferrolb_tests::lab::{Lab, binaries, run, text};

const NODES: usize = 3;
/// Longest wait for sessions and routes (BGP timers in the lab are 3 s / 9 s).
const SETTLE: Duration = Duration::from_secs(20);

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lab/examples/web-bgp.yaml")
}

/// The router's next hops for `ip` in its kernel table (`ip route show`).
fn router_next_hops(ip: IpAddr) -> Vec<String> {
    let family = if ip.is_ipv4() { "-4" } else { "-6" };
    let out = run(&[
        "ip",
        "-n",
        "flb-router",
        family,
        "route",
        "show",
        &ip.to_string(),
    ]);
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut hops: Vec<String> = t
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip_while(|w| *w != "via");
            w.nth(1).map(String::from)
        })
        .collect();
    hops.sort();
    hops
}

/// Waits (bounded) for `ok`, returning the last value seen.
fn wait_for<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        let v = probe();
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One node's sessions from its speaker report: peer → (state, advertised prefixes).
fn node_sessions(lab: &Lab, node: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let path = lab
        .cluster()
        .join(".ferrolb/speakers")
        .join(format!("{node}.yaml"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_default();
    v["bgpSessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let prefixes = s["advertised"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(String::from))
                .collect();
            (
                s["peer"].as_str().unwrap_or_default().to_string(),
                (
                    s["state"].as_str().unwrap_or_default().to_string(),
                    prefixes,
                ),
            )
        })
        .collect()
}

/// Node names answering TCP connections from the client to `ip`:80 (bash's /dev/tcp,
/// a fresh source port each time, so the router's L4 hash spreads them).
fn answers(ip: IpAddr, tries: usize) -> BTreeMap<String, usize> {
    let host = match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a.to_string(),
    };
    let script = format!(
        "for i in $(seq 1 {tries}); do (exec 3<>/dev/tcp/{host}/80 && timeout 2 cat <&3; echo); done"
    );
    let out = run(&[
        "ip",
        "netns",
        "exec",
        "flb-client",
        "timeout",
        "60",
        "bash",
        "-c",
        &script,
    ]);
    let mut seen = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.trim();
        if !name.is_empty() {
            *seen.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    seen
}

fn bgp_through(router: &str) {
    let test = format!("lab_bgp_{router}");
    let Some(lab) = Lab::prepare(&test) else {
        return;
    };
    assert!(
        binaries().speaker,
        "the speaker must build for the BGP lab test"
    );
    lab.ok(&["up", "--nodes", &NODES.to_string(), "--router", router]);
    let example = example();
    lab.ok(&["apply", "-f", &example.display().to_string()]);

    let list = wait_for(
        "the controller to assign default/web-bgp",
        || AssignmentList::read(&lab.cluster()).ok().flatten(),
        |l| {
            l.as_ref()
                .is_some_and(|l| l.get("default", "web-bgp").is_some())
        },
    )
    .expect("assignments");
    let svc = list.get("default", "web-bgp").expect("assigned");
    assert_eq!(svc.pool, "bgp");
    let v4 = *svc
        .ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .expect("an IPv4 address");
    let v6 = *svc
        .ips
        .iter()
        .find(|ip| ip.is_ipv6())
        .expect("an IPv6 address");

    // Every node: both sessions Established, each advertising its family's host route.
    for k in 1..=NODES {
        let node = format!("node{k}");
        let want = |s: &BTreeMap<String, (String, Vec<String>)>| {
            s.get("router")
                .is_some_and(|(st, p)| st == "Established" && *p == [format!("{v4}/32")])
                && s.get("router-v6")
                    .is_some_and(|(st, p)| st == "Established" && *p == [format!("{v6}/128")])
        };
        wait_for(
            &format!("{node}'s sessions"),
            || node_sessions(&lab, &node),
            want,
        );
    }
    let nodes4: Vec<String> = (1..=NODES)
        .map(|k| format!("198.51.100.{}", 10 + k))
        .collect();
    let nodes6: Vec<String> = (1..=NODES)
        .map(|k| format!("2001:db8:51::{}", 10 + k))
        .collect();
    wait_for(
        "the IPv4 ECMP route",
        || router_next_hops(v4),
        |h| *h == nodes4,
    );
    wait_for(
        "the IPv6 ECMP route",
        || router_next_hops(v6),
        |h| *h == nodes6,
    );

    let status = lab.ok(&["status"]);
    assert!(
        status.contains(&format!("BGP: router Established ({v4}/32)")),
        "{status}"
    );
    assert!(
        status.contains("routed to node1, node2, node3 (BGP)"),
        "{status}"
    );

    for ip in [v4, v6] {
        let seen = answers(ip, 24);
        let total: usize = seen.values().sum();
        assert!(
            total >= 20,
            "{ip}: only {total} of 24 connections answered: {seen:?}"
        );
        assert!(
            seen.len() >= 2,
            "{ip}: ECMP should spread 24 connections over several nodes: {seen:?}"
        );
    }

    // Deleting the Service withdraws it everywhere.
    let out = lab.cmd(&["delete", "-f", "web-bgp.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "the IPv4 withdrawal",
        || router_next_hops(v4),
        Vec::is_empty,
    );
    wait_for(
        "the IPv6 withdrawal",
        || router_next_hops(v6),
        Vec::is_empty,
    );
    let s = node_sessions(&lab, "node1");
    assert!(
        s.values()
            .all(|(st, p)| st == "Established" && p.is_empty()),
        "sessions stay up with nothing advertised: {s:?}"
    );
}

#[test]
fn bgp_through_bird() {
    bgp_through("bird");
}

#[test]
fn bgp_through_frr() {
    bgp_through("frr");
}
