//! Announce/withdraw latency on the wire: how long after a Service is assigned an
//! address the first UPDATE carrying its prefix leaves the speaker, and how long after
//! the Service is deleted the UPDATE withdrawing it does.
//!
//! Set-up: one pair of namespaces (router and node), BIRD 2 in the router, a real
//! `ferrolb-speaker` in the node reading a standalone directory (`--source dir:`), one
//! eBGP session over IPv4. tcpdump (`--immediate-mode`, kernel timestamps) captures the
//! node's BGP segments on the router's bridge; each segment's BGP messages are decoded
//! here (IPv4 UPDATE: withdrawn routes and NLRI), so the time is the packet's, not a
//! daemon's.
//!
//! Each trial uses its own /32 in 203.0.113.0/24:
//! - assign: the Service and its EndpointSlice are already in the directory (a Service
//!   without an assignment is not announced); the clock starts when the controller's
//!   record (`.ferrolb/assignments.yaml`) naming it is written, and stops at the first
//!   UPDATE carrying the prefix.
//! - delete: the clock starts when `services.yaml` is written without the Service, and
//!   stops at the UPDATE withdrawing the prefix.
//!
//! The standalone source reads the directory again when inotify reports a change (it
//! polls every 100 ms only where inotify is unavailable), so "from write" is the whole
//! path a change takes. Each interval is also split at the speaker's own
//! `announcements changed` log line (JSON log, wall-clock timestamp), written once it
//! has read the change and decided: "from decision" is the speaker's BGP path alone
//! (decide → UPDATE on the wire). The writes are spread over a 100 ms cycle (see
//! [`pause`]) so that a polling source would show its spread too.
//!
//! Run as root: `cargo bench -p ferrolb-tests --bench bgp_latency [-- --trials 20]`.
//! Prints p50/p99/max; asserts nothing about speed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrolb_tests::bgp::bird::Bird;
use ferrolb_tests::bgp::capture::{self, Capture};
use ferrolb_tests::bgp::site::{self, NODE_AS, Node, ROUTER_AS, Service};
use ferrolb_tests::bgp::speaker::{self, Speaker};
use ferrolb_tests::bgp::{self, Neighbor, Net, RouterConfig, have, is_root};
use serde_json::json;

/// Longest wait for one UPDATE; a trial past it is reported as failed.
const LIMIT: Duration = Duration::from_secs(10);
/// Time for the speaker to read a change that has no effect on the wire (two polls of
/// its directory), so that the next write is the only change it sees.
const SETTLE: Duration = Duration::from_millis(250);

/// A pause before a timed write of trial `i`: [`SETTLE`] plus a phase spread evenly over
/// the speaker's 100 ms poll (golden-ratio steps; `offset` keeps the two writes of a
/// trial apart). Fixed pauses would lock every write to the same point of the poll
/// cycle and report that one point instead of the spread.
fn pause(i: usize, offset: f64) -> Duration {
    let phase = (i as f64 * 0.618_034 + offset).fract();
    SETTLE + Duration::from_secs_f64(0.1 * phase)
}

fn trials() -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.windows(2)
        .find(|w| w[0] == "--trials")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(20)
}

/// Seconds since the epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One trial's intervals, seconds: (write → wire, decision → wire).
type Sample = (f64, Option<f64>);

fn sample(start: f64, wire: f64, log: &Path) -> Sample {
    let decided = capture::log_times(log, "announcements changed")
        .into_iter()
        .find(|t| *t >= start && *t <= wire);
    (wire - start, decided.map(|d| wire - d))
}

fn run(bin: &Path, n: usize) -> bgp::Result<(Vec<Sample>, Vec<Sample>)> {
    let net = Net::new("lat", 1)?;
    let h = net.host(1).clone();
    let cfg = RouterConfig::new(ROUTER_AS, net.router.ipv4, net.router.ipv4)
        .neighbor(Neighbor::new(h.ipv4, NODE_AS));
    let bird = Bird::start(&net.router.ns, net.subdir("bird")?, cfg, false)?;
    let dir = net.subdir("site")?;
    let nodes = [Node {
        name: "node1".into(),
        addresses: vec![h.ipv4.into()],
    }];
    let objects = [
        site::peer("router", net.router.ipv4.into(), ROUTER_AS, json!({})),
        site::advertisement("bgp", json!({})),
    ];
    site::write(
        &dir,
        "site.yaml",
        &site::site_yaml(&nodes, &["203.0.113.0/24"], &objects),
    )?;
    let node_addr = |_: &str, _: bool| -> IpAddr { h.ipv4.into() };
    site::write_services(&dir, &[], &node_addr)?;
    let log = net.dir().join("speaker.log");
    let _speaker = Speaker::start(bin, &h.ns, "node1", &dir, &["--log-format=json"], &log)?;
    bird.wait_established(h.ipv4.into(), Duration::from_secs(30))?;
    let capture = Capture::start(&net.router.ns, "br0", h.ipv4, net.dir().join("capture.txt"))?;

    let (mut assign, mut delete) = (Vec::new(), Vec::new());
    for i in 0..n {
        let ip = Ipv4Addr::new(203, 0, 113, 10 + (i % 200) as u8);
        let prefix = (ip, 32u8);
        let svc = Service::new(&format!("svc{i}"), &[ip.into()], &["node1"]);
        // The Service exists, unassigned: nothing to announce yet.
        site::write(
            &dir,
            "services.yaml",
            &site::services_yaml(std::slice::from_ref(&svc), &node_addr),
        )?;
        std::thread::sleep(pause(i, 0.0));

        let start = now();
        site::write(
            &dir,
            ".ferrolb/assignments.yaml",
            &site::assignments_yaml(std::slice::from_ref(&svc)),
        )?;
        let wire = capture
            .wait(start, LIMIT, &|u| u.announced.contains(&prefix))
            .ok_or_else(|| bgp::Error::Timeout {
                what: format!("an UPDATE announcing {ip}/32 (trial {i})"),
                limit: LIMIT,
            })?;
        assign.push(sample(start, wire, &log));
        std::thread::sleep(pause(i, 0.5));

        let start = now();
        site::write(&dir, "services.yaml", &site::services_yaml(&[], &node_addr))?;
        let wire = capture
            .wait(start, LIMIT, &|u| u.withdrawn.contains(&prefix))
            .ok_or_else(|| bgp::Error::Timeout {
                what: format!("an UPDATE withdrawing {ip}/32 (trial {i})"),
                limit: LIMIT,
            })?;
        delete.push(sample(start, wire, &log));
        // The record's stale entry is dropped with no effect on the wire.
        site::write(
            &dir,
            ".ferrolb/assignments.yaml",
            &site::assignments_yaml(&[]),
        )?;
        std::thread::sleep(SETTLE);
    }
    Ok((assign, delete))
}

/// Nearest-rank percentile of sorted `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn line(what: &str, mut v: Vec<f64>) {
    if v.is_empty() {
        println!("{what:<34} no samples");
        return;
    }
    v.sort_by(f64::total_cmp);
    println!(
        "{what:<34} {:>3} {:>9.2} {:>9.2} {:>9.2}",
        v.len(),
        pct(&v, 0.5) * 1e3,
        pct(&v, 0.99) * 1e3,
        v[v.len() - 1] * 1e3
    );
}

fn main() {
    if !is_root() {
        eprintln!("SKIP bgp_latency: needs root (network namespaces, BIRD, tcpdump)");
        return;
    }
    for program in ["bird", "birdc", "tcpdump"] {
        if !have(program) {
            eprintln!("SKIP bgp_latency: {program} is not installed");
            return;
        }
    }
    let bin = match speaker::binary() {
        Ok(b) => b,
        Err(e) => {
            println!("ferrolb-speaker not measured: {e}");
            return;
        }
    };
    let n = trials().max(1);
    match run(&bin, n) {
        Ok((assign, delete)) => {
            println!(
                "BGP announce/withdraw latency, ferrolb-speaker → BIRD 2 (eBGP, IPv4), on the wire (tcpdump on the router's bridge), {n} trials, ms:"
            );
            println!(
                "{:<34} {:>3} {:>9} {:>9} {:>9}",
                "interval", "n", "p50", "p99", "max"
            );
            let from_write = |s: &[Sample]| s.iter().map(|x| x.0).collect::<Vec<_>>();
            let from_decision = |s: &[Sample]| s.iter().filter_map(|x| x.1).collect::<Vec<_>>();
            line("assigned → UPDATE (from write)", from_write(&assign));
            line("assigned → UPDATE (from decision)", from_decision(&assign));
            line("deleted → WITHDRAW (from write)", from_write(&delete));
            line("deleted → WITHDRAW (from decision)", from_decision(&delete));
            println!(
                "(from write: the directory source wakes on inotify; from decision starts at the speaker's `announcements changed` log line)"
            );
        }
        Err(e) => println!("bgp_latency failed: {e}"),
    }
}
