//! Prefix-load benchmark: how long a speaker takes to get N prefixes into BIRD's table,
//! and how much memory the speaker holds doing it. GoBGP (`gobgpd`, Debian) is measured
//! in the same run as the reference.
//!
//! Set-up per measurement: a fresh pair of namespaces (router and node), BIRD 2 in the
//! router, the speaker in the node, one eBGP session over IPv6 (BIRD dials). The
//! prefixes are IPv6 /128s `2001:db8:1000::1`, `::2`, … inside the documentation prefix
//! 2001:db8::/32: the IPv4 documentation ranges hold only 3 × 256 addresses, too few
//! for 10,000 distinct host routes.
//!
//! Interval measured ("all-in-BIRD"): from handing the routes to the established speaker
//! until BIRD holds all N from it (`birdc show route protocol n1 count`, polled every
//! 10 ms). GoBGP: the routes go in with `gobgp mrt inject global` (one MRT dump, see
//! `ferrolb_tests::bgp::mrt`), the clock starting before the CLI runs. FerroLB: N
//! single-address IPv6 Services (with an endpoint on the node) are written into its
//! standalone directory (`--source dir:`, watched with inotify), the clock starting
//! before the files are written (their text is rendered before, as GoBGP's dump is). For FerroLB a cold start is measured too: the Services already in
//! the directory, the clock starting when the speaker process is started (session set-up
//! included). Memory: the speaker's VmRSS and VmHWM once BIRD has everything, and its
//! VmRSS one second later (freed heap is given back a moment after a decision).
//!
//! Run as root: `cargo bench -p ferrolb-tests --bench bgp_prefixes [-- --counts
//! 10000,50000 --trials 3]`. Prints figures; asserts nothing about speed.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_tests::bgp::bird::Bird;
use ferrolb_tests::bgp::gobgp::Gobgp;
use ferrolb_tests::bgp::site::{self, NODE_AS, Node, ROUTER_AS, Service};
use ferrolb_tests::bgp::speaker::{self, Speaker};
use ferrolb_tests::bgp::{self, Neighbor, Net, RouterConfig, is_root, procfs};
use ipnet::IpNet;
use serde_json::json;

const POLL: Duration = Duration::from_millis(10);
/// A run that has not delivered everything by then is reported as failed.
const RUN_LIMIT: Duration = Duration::from_secs(180);

struct Args {
    counts: Vec<usize>,
    trials: usize,
}

fn args() -> Args {
    let mut a = Args {
        counts: vec![10_000, 50_000],
        trials: 3,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--counts" => {
                if let Some(v) = it.next() {
                    a.counts = v.split(',').filter_map(|n| n.trim().parse().ok()).collect();
                }
            }
            "--trials" => {
                if let Some(v) = it.next().and_then(|v| v.parse().ok()) {
                    a.trials = v;
                }
            }
            // `cargo bench` passes `--bench`; anything else is ignored too.
            _ => {}
        }
    }
    a
}

/// The benchmark's prefixes: `2001:db8:1000::1` … as /128s.
fn prefixes(n: usize) -> Vec<IpNet> {
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x1000, 0, 0, 0, 0, 0));
    (1..=n as u128)
        .map(|i| IpNet::new(IpAddr::V6(Ipv6Addr::from(base + i)), 128).expect("valid length"))
        .collect()
}

/// How long after all-in-BIRD the memory is read again: the speaker gives freed heap
/// back a moment after a decision, so this is its steady state.
const SETTLE: Duration = Duration::from_secs(1);

struct Measure {
    /// Routes handed over → all in BIRD.
    all_in: Duration,
    /// How long the hand-over itself took (GoBGP: the CLI's run).
    handed: Duration,
    memory: procfs::Memory,
    /// VmRSS [`SETTLE`] later.
    settled_kib: u64,
}

impl Measure {
    /// The times given, and the memory of process `pid` now and [`SETTLE`] later.
    fn taken(all_in: Duration, handed: Duration, pid: i32) -> Measure {
        let memory = procfs::memory(pid).unwrap_or_default();
        std::thread::sleep(SETTLE);
        Measure {
            all_in,
            handed,
            memory,
            settled_kib: procfs::memory(pid).unwrap_or_default().rss_kib,
        }
    }
}

fn router(net: &Net) -> bgp::Result<Bird> {
    let h = net.host(1);
    let cfg = RouterConfig::new(ROUTER_AS, net.router.ipv4, net.router.ipv6)
        .neighbor(Neighbor::new(h.ipv6, NODE_AS));
    Bird::start(&net.router.ns, net.subdir("bird")?, cfg, false)
}

fn wait_all(bird: &Bird, from: IpAddr, n: usize) -> Option<()> {
    bgp::wait_for(RUN_LIMIT, POLL, || {
        bird.count_from(from).ok().filter(|c| *c >= n).map(drop)
    })
}

fn gobgpd(n: usize, trial: usize) -> bgp::Result<Measure> {
    let net = Net::new(&format!("bench-g{n}-{trial}"), 1)?;
    let h = net.host(1).clone();
    let bird = router(&net)?;
    let cfg = RouterConfig::new(NODE_AS, h.ipv4, h.ipv6)
        .neighbor(Neighbor::new(net.router.ipv6, ROUTER_AS).passive());
    let g = Gobgp::start(&h.ns, net.subdir("gobgp")?, cfg)?;
    bird.wait_established(h.ipv6.into(), Duration::from_secs(30))?;
    let dump = bgp::mrt::rib_dump(
        h.ipv6.into(),
        NODE_AS,
        h.ipv4,
        &prefixes(n),
        &[NODE_AS],
        h.ipv4,
        h.ipv6,
        4096,
    );
    let file = net.dir().join("routes.mrt");
    std::fs::write(&file, dump).map_err(|e| bgp::Error::Io {
        context: format!("cannot write {}", file.display()),
        source: e,
    })?;
    let start = Instant::now();
    g.inject_mrt(&file)?;
    let handed = start.elapsed();
    wait_all(&bird, h.ipv6.into(), n).ok_or_else(|| bgp::Error::Timeout {
        what: format!(
            "{n} routes from gobgpd in BIRD (has {:?})",
            bird.count_from(h.ipv6.into())
        ),
        limit: RUN_LIMIT,
    })?;
    Ok(Measure::taken(start.elapsed(), handed, g.daemon.pid()))
}

/// The site directory of the FerroLB runs: node1, pool 2001:db8:1000::/108, one eBGP
/// peer (the router over IPv6), one advertisement as /128s.
fn ferrolb_site(net: &Net, dir: &std::path::Path) -> bgp::Result<()> {
    let h = net.host(1);
    let nodes = [Node {
        name: "node1".into(),
        addresses: vec![h.ipv4.into(), h.ipv6.into()],
    }];
    let objects = [
        site::peer("router", net.router.ipv6.into(), ROUTER_AS, json!({})),
        site::advertisement("bgp", json!({"aggregationLengthV6": 128})),
    ];
    site::write(
        dir,
        "site.yaml",
        &site::site_yaml(&nodes, &["2001:db8:1000::/108"], &objects),
    )
}

fn services(n: usize) -> Vec<Service> {
    prefixes(n)
        .iter()
        .enumerate()
        .map(|(i, p)| Service::new(&format!("svc{i}"), &[p.addr()], &["node1"]))
        .collect()
}

/// The last lines of a log, to say why a run failed.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// FerroLB: (hand-over measure, cold-start measure).
fn ferrolb(bin: &std::path::Path, n: usize, trial: usize) -> bgp::Result<(Measure, Measure)> {
    let net = Net::new(&format!("bench-f{n}-{trial}"), 1)?;
    let h = net.host(1).clone();
    let from: IpAddr = h.ipv6.into();
    let node_addr = |_: &str, v6: bool| h.addr(v6);
    let bird = router(&net)?;
    let dir = net.subdir("site")?;
    ferrolb_site(&net, &dir)?;
    let all = services(n);

    // Hand-over: an established speaker with nothing to announce gets N Services.
    site::write_services(&dir, &[], &node_addr)?;
    let mut sp = Speaker::start(
        bin,
        &h.ns,
        "node1",
        &dir,
        &[],
        &net.dir().join("speaker.log"),
    )?;
    bird.wait_established(from, Duration::from_secs(30))?;
    // Rendered before the clock starts, as GoBGP's MRT dump is.
    let record = site::assignments_yaml(&all);
    let text = site::services_yaml(&all, &node_addr);
    let start = Instant::now();
    site::write(&dir, ".ferrolb/assignments.yaml", &record)?;
    site::write(&dir, "services.yaml", &text)?;
    let handed = start.elapsed();
    wait_all(&bird, from, n).ok_or_else(|| bgp::Error::Timeout {
        what: format!(
            "{n} routes from ferrolb-speaker in BIRD (has {:?}); the speaker's log ends:\n{}",
            bird.count_from(from),
            log_tail(&net.dir().join("speaker.log"))
        ),
        limit: RUN_LIMIT,
    })?;
    let hot = Measure::taken(start.elapsed(), handed, sp.daemon.pid());
    sp.daemon.stop(Duration::from_secs(5));
    bgp::wait_for(Duration::from_secs(10), POLL, || {
        bird.count_from(from).ok().filter(|c| *c == 0).map(drop)
    });

    // Cold start: the Services are there when the speaker starts.
    let start = Instant::now();
    let sp = Speaker::start(
        bin,
        &h.ns,
        "node1",
        &dir,
        &[],
        &net.dir().join("speaker2.log"),
    )?;
    wait_all(&bird, from, n).ok_or_else(|| bgp::Error::Timeout {
        what: format!(
            "{n} routes from a starting ferrolb-speaker in BIRD (has {:?})",
            bird.count_from(from)
        ),
        limit: RUN_LIMIT,
    })?;
    let cold = Measure::taken(start.elapsed(), Duration::ZERO, sp.daemon.pid());
    Ok((hot, cold))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(name: &str, n: usize, runs: &[Measure]) -> Option<Duration> {
    if runs.is_empty() {
        return None;
    }
    let all_in = median(runs.iter().map(|m| m.all_in).collect());
    let handed = median(runs.iter().map(|m| m.handed).collect());
    let rss = runs.iter().map(|m| m.memory.rss_kib).max().unwrap_or(0);
    let peak = runs.iter().map(|m| m.memory.peak_kib).max().unwrap_or(0);
    let settled = runs.iter().map(|m| m.settled_kib).max().unwrap_or(0);
    println!(
        "{:<16} {:>9} {:>11.3} s {:>9.3} s {:>6.1} MiB {:>6.1} MiB {:>6.1} MiB",
        name,
        n,
        all_in.as_secs_f64(),
        handed.as_secs_f64(),
        mib(rss),
        mib(settled),
        mib(peak)
    );
    Some(all_in)
}

fn main() {
    if !is_root() {
        eprintln!("SKIP bgp_prefixes: needs root (network namespaces, BIRD, gobgpd)");
        return;
    }
    let a = args();
    let bin = match speaker::binary() {
        Ok(b) => Some(b),
        Err(e) => {
            println!("ferrolb-speaker not measured: {e}");
            None
        }
    };
    println!(
        "BGP prefix load into BIRD 2 (eBGP over IPv6, /128s in 2001:db8:1000::/64), {} trial(s); median time, largest RSS:",
        a.trials
    );
    println!(
        "{:<16} {:>9} {:>13} {:>11} {:>10} {:>10} {:>10}",
        "speaker", "prefixes", "all-in-BIRD", "hand-over", "RSS", "RSS +1 s", "peak RSS"
    );
    for &n in &a.counts {
        let mut g = Vec::new();
        let (mut hot, mut cold) = (Vec::new(), Vec::new());
        for trial in 0..a.trials.max(1) {
            match gobgpd(n, trial) {
                Ok(m) => g.push(m),
                Err(e) => println!("gobgpd {n}: failed: {e}"),
            }
            if let Some(bin) = &bin {
                match ferrolb(bin, n, trial) {
                    Ok((h, c)) => {
                        hot.push(h);
                        cold.push(c);
                    }
                    Err(e) => println!("ferrolb-speaker {n}: failed: {e}"),
                }
            }
        }
        let gt = report("gobgpd", n, &g);
        let ft = report("ferrolb", n, &hot);
        report("ferrolb (cold)", n, &cold);
        if let (Some(gt), Some(ft)) = (gt, ft) {
            println!(
                "{:<16} {:>9} {:>11.2} x  (ferrolb / gobgpd, all-in-BIRD after hand-over)",
                "ratio",
                n,
                ft.as_secs_f64() / gt.as_secs_f64()
            );
        }
    }
}
