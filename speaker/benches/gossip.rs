//! Gossip membership on loopback: how long until every survivor drops a crashed
//! member, how long for one that leaves, and what gossip costs per node per second.
//!
//! `cargo bench -p ferrolb-speaker --bench gossip [-- --trials N] [--no-traffic]
//! [--probe-ms MS] [--rtt-ms MS] [--suspect-ms MS] [--gossip-ms MS]`
//!
//! Each trial starts a fresh 5-member cluster (so the victim's place in everyone's
//! probe order is random), waits a random fraction of a second, then drops one member's
//! task and socket without a word (crash) or calls `leave` (graceful). The figure is the
//! time until the last survivor's live set no longer has it. Loopback has no network
//! delay worth counting, so this is the protocol's own time: it adds to whatever a real
//! LAN's round trips add (well under a millisecond).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_speaker::membership::{GossipKey, Membership, MembershipConfig, Tuning};

// The virtual-time simulation is shared with its test.
#[path = "../tests/membership_sim.rs"]
mod sim;

const SECRET: &[u8] = b"bench-secret-0123456789abcdef";
const N: usize = 5;

/// `--name VALUE` from the command line.
fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

/// The tuning under test: the LAN defaults, or what `--probe-ms`, `--rtt-ms`,
/// `--suspect-ms`, `--gossip-ms` say.
fn tuning() -> Tuning {
    let ms = |name, default: Duration| arg(name).map_or(default, Duration::from_millis);
    let t = Tuning::lan();
    Tuning {
        probe_period: ms("--probe-ms", t.probe_period),
        probe_rtt: ms("--rtt-ms", t.probe_rtt),
        suspect_to_down_after: ms("--suspect-ms", t.suspect_to_down_after),
        gossip_period: ms("--gossip-ms", t.gossip_period),
        ..t
    }
}

fn main() {
    let trials = arg("--trials").unwrap_or(20usize);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async {
        let t = tuning();
        println!(
            "tuning: probe {:?}, rtt {:?}, indirect {}, suspect→down {:?}, gossip {:?}×{}",
            t.probe_period,
            t.probe_rtt,
            t.num_indirect_probes,
            t.suspect_to_down_after,
            t.gossip_period,
            t.gossip_fanout
        );
        let sim_trials = arg("--sim-trials").unwrap_or(1000usize);
        let mut sim = sim::crash_detection(&t, N, sim_trials);
        println!(
            "simulated (virtual time, 0.1 ms one-way latency, no load), crash of 1 in {N}, {} trials: every survivor {}",
            sim.len(),
            summary(&mut sim)
        );
        for graceful in [false, true] {
            let mut all = Vec::new();
            let mut first = Vec::new();
            for trial in 0..trials {
                match detection_trial(trial, graceful).await {
                    Some((f, a)) => {
                        first.push(f);
                        all.push(a);
                    }
                    None => println!("trial {trial}: did not converge, skipped"),
                }
            }
            let what = if graceful { "graceful leave" } else { "crash" };
            println!(
                "{what} of 1 in {N}, {} trials: every survivor {}; first survivor {}",
                all.len(),
                summary(&mut all),
                summary(&mut first)
            );
        }
        println!(
            "steady-state traffic per node (UDP payload; on the wire add 28 B/datagram for IPv4):"
        );
        let sizes = if std::env::args().any(|a| a == "--no-traffic") {
            0..=0
        } else {
            3..=10
        };
        for n in sizes.filter(|&n| n > 0) {
            traffic(n).await;
        }
    });
}

async fn start(i: usize) -> Option<Membership> {
    let key = GossipKey::from_secret(SECRET).ok()?;
    Membership::start(MembershipConfig {
        node_name: format!("node-{i}"),
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        advertise: None,
        key,
        tuning: tuning(),
    })
    .await
    .ok()
}

async fn cluster(n: usize) -> Option<Vec<Membership>> {
    let mut members = Vec::new();
    for i in 0..n {
        members.push(start(i).await?);
    }
    let addrs: Vec<SocketAddr> = members.iter().map(Membership::local_addr).collect();
    for m in &members {
        m.join(addrs.iter().copied()).ok()?;
    }
    let want: BTreeSet<String> = (0..n).map(|i| format!("node-{i}")).collect();
    wait_all(&members, &want, Duration::from_secs(5)).await?;
    Some(members)
}

/// Waits until every member sees `want`; returns when the first and the last did.
async fn wait_all(
    members: &[Membership],
    want: &BTreeSet<String>,
    limit: Duration,
) -> Option<(Duration, Duration)> {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for m in members {
        let mut live = m.live();
        let want = want.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout(limit, live.wait_for(|s| *s == want))
                .await
                .ok()?
                .ok()?;
            Some(t0.elapsed())
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.push(t.await.ok()??);
    }
    Some((*times.iter().min()?, *times.iter().max()?))
}

async fn detection_trial(trial: usize, graceful: bool) -> Option<(Duration, Duration)> {
    let mut members = cluster(N).await?;
    // A pseudo-random settle time, so the kill lands anywhere in the probe cycle.
    let jitter = (trial as u64 * 7919) % 1000;
    tokio::time::sleep(Duration::from_millis(500 + jitter)).await;
    let victim = members.remove(trial % N);
    let want: BTreeSet<String> = members.iter().map(|m| m.identity().name.clone()).collect();
    let watch = wait_all(&members, &want, Duration::from_secs(10));
    let kill = async {
        if graceful {
            victim.leave().await.ok();
        } else {
            drop(victim);
        }
    };
    let (times, ()) = tokio::join!(watch, kill);
    times
}

async fn traffic(n: usize) {
    let Some(members) = cluster(n).await else {
        println!("  N={n}: did not converge");
        return;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: Vec<_> = members.iter().map(Membership::counters).collect();
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let after: Vec<_> = members.iter().map(Membership::counters).collect();
    let secs = window.as_secs_f64();
    let (mut bytes, mut dgrams) = (0u64, 0u64);
    for (b, a) in before.iter().zip(&after) {
        bytes += a.sent_bytes - b.sent_bytes;
        dgrams += a.sent - b.sent;
    }
    let per_node_bytes = bytes as f64 / n as f64 / secs;
    let per_node_dgrams = dgrams as f64 / n as f64 / secs;
    println!(
        "  N={n:>2}: sent {per_node_bytes:>6.0} B/s in {per_node_dgrams:>5.1} datagrams/s ({:>3.0} B each), {:>6.0} B/s on the wire; received about the same",
        per_node_bytes / per_node_dgrams.max(1e-9),
        per_node_bytes + 28.0 * per_node_dgrams,
    );
}

fn summary(d: &mut [Duration]) -> String {
    if d.is_empty() {
        return "no data".into();
    }
    d.sort();
    format!(
        "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(sim::quantile(d, 0.5)),
        ms(sim::quantile(d, 0.99)),
        ms(sim::quantile(d, 1.0))
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
