//! The lab end to end, in real network namespaces (root only; skipped loudly otherwise):
//! `ferrolb-lab up --nodes 2 --router bird` builds the LAN, the client reaches the
//! router and the nodes, the controller gives the example Service a Layer2 address, the
//! nodes' responders answer over TCP, BIRD runs; `crash` and `start` fail and restore a
//! node; `down` leaves no lab namespace behind, also when the test fails (a drop guard).
//!
//! The lab's namespace names are fixed, so lab tests cannot overlap: each holds
//! `ferrolb_tests::lab::LOCK` (an exclusive file lock) for its whole run, also across
//! test binaries.
//! Needs the Debian packages `iproute2 bird2 arping ndisc6` (`.ci/run` installs them).
//! The binaries are built by the test (`cargo build -p ferrolb-lab -p ferrolb-controller`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_controller::source::dir::AssignmentList;
use ferrolb_tests::lab::{Lab, lab_namespaces, namespaces, run, text};

const LAB_NAMESPACES: [&str; 5] = [
    "flb-lan",
    "flb-router",
    "flb-node1",
    "flb-node2",
    "flb-client",
];

fn ping(from: &str, to: &str) -> bool {
    run(&[
        "ip", "netns", "exec", from, "ping", "-c", "1", "-W", "1", to,
    ])
    .status
    .success()
}

/// What a TCP connection from the client to `addr` port 80 reads (bash's /dev/tcp: no
/// extra tool needed). Retried, bounded.
fn tcp_from_client(addr: &str) -> String {
    let script = format!("exec 3<>/dev/tcp/{addr}/80 && timeout 2 cat <&3");
    let mut last = String::new();
    for _ in 0..10 {
        let out = run(&[
            "ip",
            "netns",
            "exec",
            "flb-client",
            "timeout",
            "3",
            "bash",
            "-c",
            &script,
        ]);
        last = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !last.is_empty() {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

fn in_range(ip: &IpAddr, lo: &str, hi: &str) -> bool {
    let (lo, hi): (IpAddr, IpAddr) = (lo.parse().unwrap(), hi.parse().unwrap());
    *ip >= lo && *ip <= hi
}

#[test]
fn lab_up_status_crash_start_down() {
    let Some(lab) = Lab::prepare("lab_up_status_crash_start_down") else {
        return;
    };
    let state = lab.state.clone();

    let t = Instant::now();
    let up = lab.ok(&["up", "--nodes", "2", "--router", "bird"]);
    let up_time = t.elapsed();
    assert!(up.contains("default/web"), "{up}");

    let have = namespaces();
    for ns in LAB_NAMESPACES {
        assert!(
            have.iter().any(|n| n == ns),
            "namespace {ns} missing: {have:?}"
        );
    }

    for to in [
        "198.51.100.1",
        "198.51.100.11",
        "198.51.100.12",
        "2001:db8:51::1",
        "2001:db8:51::12",
    ] {
        assert!(ping("flb-client", to), "the client cannot ping {to}");
    }

    let list = AssignmentList::read(&state.join("cluster"))
        .expect("assignments.yaml parses")
        .expect("the controller wrote assignments.yaml");
    let web = list
        .get("default", "web")
        .unwrap_or_else(|| panic!("default/web has no address: {list:?}"));
    assert_eq!(web.pool, "lan");
    let v4 = web
        .ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .expect("an IPv4 address");
    let v6 = web
        .ips
        .iter()
        .find(|ip| ip.is_ipv6())
        .expect("an IPv6 address");
    assert!(in_range(v4, "198.51.100.200", "198.51.100.250"), "{v4}");
    assert!(in_range(v6, "2001:db8:51::200", "2001:db8:51::250"), "{v6}");

    // kube-proxy's part: the VIPs are local on every node, on lo.
    for node in ["flb-node1", "flb-node2"] {
        let lo = text(&run(&["ip", "-n", node, "addr", "show", "dev", "lo"]));
        assert!(lo.contains(&format!("{v4}/32")), "{node}: {lo}");
        assert!(lo.contains(&format!("{v6}/128")), "{node}: {lo}");
    }

    // The responders, from the client to each node's own LAN address.
    assert_eq!(tcp_from_client("198.51.100.11"), "node1");
    assert_eq!(tcp_from_client("198.51.100.12"), "node2");
    assert_eq!(tcp_from_client("2001:db8:51::12"), "node2");

    let ctl = state.join("router/bird.ctl");
    let bird = run(&[
        "ip",
        "netns",
        "exec",
        "flb-router",
        "birdc",
        "-s",
        ctl.to_str().unwrap(),
        "show",
        "status",
    ]);
    assert!(
        text(&bird).contains("Daemon is up and running"),
        "BIRD: {}",
        text(&bird)
    );

    let status: serde_json::Value =
        serde_json::from_str(&lab.ok(&["status", "--json"])).expect("status --json is JSON");
    assert_eq!(status["controller"]["running"], true, "{status}");
    assert_eq!(status["router"]["running"], true, "{status}");
    assert_eq!(status["nodes"][1]["responder"], "running", "{status}");
    assert_eq!(status["services"][0]["name"], "web", "{status}");
    if status["speaker_built"] == true {
        // The lab's contract with the speaker: it runs with the lab's flags, and exactly
        // one node answers for the VIP and gets the packets.
        for node in status["nodes"].as_array().unwrap() {
            let name = node["name"].as_str().unwrap();
            assert_eq!(
                node["speaker"],
                "running",
                "the speaker binary exists but does not run on {name}: {}",
                std::fs::read_to_string(state.join(format!("logs/{name}-speaker.log")))
                    .unwrap_or_default()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let announcer = loop {
            let s: serde_json::Value =
                serde_json::from_str(&lab.ok(&["status", "--json"])).unwrap();
            let a = &s["services"][0]["ips"][0]["announcement"];
            if a["state"] == "layer2" && a["nodes"].as_array().is_some_and(|n| n.len() == 1) {
                break a["nodes"][0].as_str().unwrap().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "nobody (or several) announce {v4}: {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(tcp_from_client(&v4.to_string()), announcer);
    } else {
        assert!(
            up.contains("speaker binary not built yet: layer2 announcements are not running"),
            "{up}"
        );
    }

    // A node failure, then the node back.
    lab.ok(&["crash", "node1"]);
    let pids = text(&run(&["ip", "netns", "pids", "flb-node1"]));
    assert!(
        pids.trim().is_empty(),
        "processes left in flb-node1: {pids}"
    );
    assert!(
        !ping("flb-client", "198.51.100.11"),
        "node1's link is still up"
    );
    lab.ok(&["start", "node1"]);
    assert_eq!(tcp_from_client("198.51.100.11"), "node1");

    let t = Instant::now();
    lab.ok(&["down"]);
    let down_time = t.elapsed();
    assert!(
        lab_namespaces().is_empty(),
        "lab namespaces left: {:?}",
        lab_namespaces()
    );
    assert!(!state.exists(), "{} is still there", state.display());
    // Idempotent.
    lab.ok(&["down"]);
    eprintln!(
        "lab: up {:.2} s, down {:.2} s",
        up_time.as_secs_f64(),
        down_time.as_secs_f64()
    );
}
