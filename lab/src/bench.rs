//! `bench failover`: the client pings a Layer2 VIP every 10 ms while the node that
//! answers for it fails; the client-visible gap (last reply before the failure → first
//! reply after it, from `ping -D` timestamps) is measured per trial. The same trials then
//! run against keepalived (VRRPv3, Debian's package) for the same VIP in the same lab, so
//! the ratio is measured in one run. FerroLB's speakers are restored at the end.
//!
//! Pure parts (ping output, gap and loss, percentiles, keepalived's configuration) are
//! unit-tested here; the rest drives the lab.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::commands;
use crate::exec::{self, wait_until};
use crate::observe;
use crate::packages;
use crate::plan::{self, Cmd};
use crate::procs::{self, Binaries, Daemon, SpeakerFlags};
use crate::router::RouterKind;
use crate::state::{self, StateDir};
use crate::topology::{Host, Topology};

const TICK: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every process of the node killed and its link down at once.
    Crash,
    /// SIGTERM to the speaker (keepalived: to keepalived).
    Graceful,
    /// The node's link down, processes alive.
    Link,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Systems {
    Both,
    Ferrolb,
    Keepalived,
}

#[derive(Clone, Debug, Args)]
pub struct FailoverArgs {
    /// Trials per system.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    #[arg(long, value_enum, default_value = "crash")]
    pub mode: Mode,
    /// The client's ping interval.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// The Layer2 VIP to ping (the example Service's IPv4 address).
    #[arg(long, default_value = "198.51.100.200")]
    pub vip: Ipv4Addr,
    /// Which systems to measure.
    #[arg(long, value_enum, default_value = "both")]
    pub systems: Systems,
    /// keepalived's VRRP advert interval, in milliseconds (VRRPv3 counts centiseconds:
    /// 10 at the least). A backup takes over after 3 missed adverts plus its skew.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=40950))]
    pub keepalived_advert_ms: u64,
    /// A trial that sees no reply this long after the failure fails.
    #[arg(long, default_value_t = 10)]
    pub trial_timeout_s: u64,
}

// ---------------------------------------------------------------------------------------
// pure parts
// ---------------------------------------------------------------------------------------

/// One echo reply as `ping -D` prints it: `[1763776312.123456] 64 bytes from …: icmp_seq=12 …`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reply {
    pub seq: u32,
    /// Seconds since the epoch, when the reply arrived.
    pub at: f64,
}

pub fn parse_reply(line: &str) -> Option<Reply> {
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once(']')?;
    if !rest.contains(" bytes from ") {
        return None;
    }
    let at: f64 = stamp.trim().parse().ok()?;
    let seq = rest.split_once("icmp_seq=")?.1;
    let seq: u32 = seq
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(Reply { seq, at })
}

/// What one trial saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// Last reply before the failure → first reply after the longest silence that
    /// follows it, in seconds.
    pub gap: f64,
    /// Echo requests never answered, between the last reply before the failure and the
    /// last reply seen.
    pub lost: u32,
    /// Failure → the client's neighbour entry names the new node, in seconds.
    pub moved: Option<f64>,
}

/// The client-visible gap around `t_fail`: the longest silence between consecutive
/// replies that ends after `t_fail` (the first one starts at the last reply before it).
/// `None` when there is no reply before or none after the failure.
pub fn measure(replies: &[Reply], t_fail: f64) -> Option<Gap> {
    let mut rs: Vec<Reply> = replies.to_vec();
    rs.sort_by(|a, b| a.at.total_cmp(&b.at));
    let first = rs.iter().rposition(|r| r.at <= t_fail)?;
    let window = &rs[first..];
    if window.len() < 2 {
        return None;
    }
    let gap = window
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .fold(0.0, f64::max);
    let mut seqs: Vec<u32> = window.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let span = seqs.last()? - seqs.first()? + 1;
    Some(Gap {
        gap,
        lost: span - seqs.len() as u32,
        moved: None,
    })
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// keepalived's configuration for node `k` (1-based): VRRPv3, adverts every `advert_s`, node1
/// has the highest priority (master), the VIP on `eth0`.
pub fn keepalived_conf(k: usize, vip: Ipv4Addr, advert_s: f64) -> String {
    let priority = 200usize.saturating_sub(10 * k).max(1);
    format!(
        "global_defs {{\n    router_id flb-node{k}\n    vrrp_version 3\n    \
         vrrp_garp_master_delay 1\n    vrrp_garp_master_repeat 3\n}}\n\
         vrrp_instance FLB {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
         priority {priority}\n    advert_int {advert_s}\n    \
         virtual_ipaddress {{\n        {vip}/32 dev eth0\n    }}\n}}\n"
    )
}

// ---------------------------------------------------------------------------------------
// the pinger
// ---------------------------------------------------------------------------------------

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Pinger {
    child: Child,
    replies: Arc<Mutex<Vec<Reply>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pinger {
    fn start(client: &Host, vip: Ipv4Addr, interval_ms: u64) -> anyhow::Result<Pinger> {
        let interval = format!("{}", interval_ms as f64 / 1000.0);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &client.ns(), "ping", "-n", "-D", "-W", "1"])
            .args(["-i", &interval, &vip.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start ping in the client")?;
        let out = child.stdout.take().expect("piped");
        let replies = Arc::new(Mutex::new(Vec::new()));
        let sink = replies.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(r) = parse_reply(&line) {
                    sink.lock().expect("not poisoned").push(r);
                }
            }
        });
        Ok(Pinger {
            child,
            replies,
            reader: Some(reader),
        })
    }

    fn snapshot(&self) -> Vec<Reply> {
        self.replies.lock().expect("not poisoned").clone()
    }

    fn count_after(&self, t: f64) -> usize {
        self.replies
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|r| r.at > t)
            .count()
    }

    fn stop(mut self) -> Vec<Reply> {
        let _ = exec::signal(self.child.id() as i32, libc::SIGINT);
        if !wait_until(Duration::from_secs(2), TICK, || {
            self.child.try_wait().ok().flatten().is_some()
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.snapshot()
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The MAC in `ip neigh show ADDR` output (`… lladdr 02:66:… REACHABLE`).
pub fn parse_lladdr(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_ascii_lowercase)
}

/// Watches the client's neighbour entry for the VIP (every ~5 ms, `ip neigh`): when it
/// first names another MAC than the failed leader's, i.e. when the client's traffic
/// moved to the new node (on a graceful hand-off the old node's kernel still answers
/// pings: this is the figure that shows the hand-off).
struct NeighWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    moved: Arc<Mutex<Option<f64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NeighWatch {
    fn start(client: &Host, vip: Ipv4Addr, old_mac: &str) -> NeighWatch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let moved = Arc::new(Mutex::new(None));
        let (s, m) = (stop.clone(), moved.clone());
        let (ns, vip, old) = (client.ns(), vip.to_string(), old_mac.to_ascii_lowercase());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let out = Command::new("ip")
                    .args(["-n", &ns, "neigh", "show", &vip])
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output();
                let t = now();
                if let Ok(o) = out
                    && let Some(mac) = parse_lladdr(&String::from_utf8_lossy(&o.stdout))
                    && mac != old
                {
                    *m.lock().expect("not poisoned") = Some(t);
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        NeighWatch {
            stop,
            moved,
            thread: Some(thread),
        }
    }

    /// When the entry moved, if it did.
    fn finish(mut self) -> Option<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *self.moved.lock().expect("not poisoned")
    }
}

// ---------------------------------------------------------------------------------------
// the lab
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Ferrolb,
    Keepalived,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Ferrolb => "FerroLB",
            System::Keepalived => "keepalived",
        }
    }
}

struct Lab {
    state: StateDir,
    topology: Topology,
    bins: Binaries,
    vip: Ipv4Addr,
}

impl Lab {
    /// The nodes answering ARP for the VIP, seen from the client.
    fn announcers(&self) -> Vec<Host> {
        let ip = IpAddr::V4(self.vip);
        observe::probe_lan(&self.topology, &[ip])
            .remove(&ip)
            .unwrap_or_default()
            .iter()
            .filter_map(|m| self.topology.host_by_mac(m).cloned())
            .collect()
    }

    /// Waits until one node answers for the VIP, the same in three probes in a row.
    fn stable_announcer(&self, limit: Duration) -> anyhow::Result<Host> {
        let start = Instant::now();
        let mut last: Option<String> = None;
        let mut same = 0;
        while start.elapsed() < limit {
            let a = self.announcers();
            if a.len() == 1 {
                if last.as_deref() == Some(a[0].name.as_str()) {
                    same += 1;
                } else {
                    same = 1;
                    last = Some(a[0].name.clone());
                }
                if same >= 3 {
                    return Ok(a[0].clone());
                }
            } else {
                same = 0;
                last = None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} is not answered by exactly one node after {} s (now: {:?})",
            self.vip,
            limit.as_secs(),
            self.announcers()
                .iter()
                .map(|h| &h.name)
                .collect::<Vec<_>>()
        )
    }

    fn speaker(&self, node: &Host) -> Daemon {
        procs::speaker(&self.state, &self.bins, node, SpeakerFlags::default())
    }

    fn keepalived(&self, node: &Host) -> Daemon {
        let dir = self.state.root.join("keepalived");
        let f = |ext: &str| {
            dir.join(format!("{}{ext}", node.name))
                .display()
                .to_string()
        };
        Daemon {
            key: format!("{}-keepalived", node.name),
            ns: Some(node.ns()),
            argv: vec![
                "keepalived".into(),
                "--dont-fork".into(),
                "--log-console".into(),
                "--log-detail".into(),
                "--vrrp".into(),
                "--use-file".into(),
                f(".conf"),
                "--pid".into(),
                f(".pid"),
                "--vrrp_pid".into(),
                f("-vrrp.pid"),
            ],
            env: vec![],
        }
    }

    fn node_daemon(&self, system: System, node: &Host) -> Daemon {
        match system {
            System::Ferrolb => self.speaker(node),
            System::Keepalived => self.keepalived(node),
        }
    }

    fn all_running(&self, system: System) -> bool {
        self.topology
            .nodes
            .iter()
            .all(|n| exec::running(&self.state, &self.node_daemon(system, n)).is_some())
    }

    fn ns_run(&self, ns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut argv = vec!["ip", "netns", "exec", ns];
        argv.extend_from_slice(args);
        exec::run(&Cmd::new(argv))
    }

    /// Fails `node` the way `mode` says.
    fn fail(&self, system: System, mode: Mode, node: &Host) -> anyhow::Result<()> {
        match mode {
            Mode::Crash => self.crash(node),
            Mode::Link => commands::link(&self.state, &node.name, false),
            Mode::Graceful => {
                let d = self.node_daemon(system, node);
                let pid = exec::running(&self.state, &d)
                    .with_context(|| format!("{}: {} not running", node.name, d.key))?;
                exec::signal(pid, libc::SIGTERM)
            }
        }
    }

    /// A node failure that sends nothing once it starts: every process of the node
    /// frozen (SIGSTOP: no last packet from a dying daemon, e.g. keepalived's vrrp child
    /// turning its parent's death into a priority-0 advert), the link down, then SIGKILL.
    fn crash(&self, node: &Host) -> anyhow::Result<()> {
        let pids = exec::netns_pids(&node.ns());
        for pid in &pids {
            exec::signal(*pid, libc::SIGSTOP)?;
        }
        let down = exec::run(&plan::link(node, false));
        for pid in &pids {
            exec::signal(*pid, libc::SIGKILL)?;
        }
        down?;
        Ok(())
    }

    /// Brings `node` back after `fail`.
    fn restore(&self, system: System, mode: Mode, node: &Host) -> anyhow::Result<()> {
        let d = self.node_daemon(system, node);
        // A graceful stop takes its time to exit: wait for it before starting anew.
        if let Some(pid) = self.state.pid(&d.key) {
            wait_until(Duration::from_secs(3), TICK, || {
                exec::running(&self.state, &d).is_none() || mode == Mode::Link
            });
            let _ = pid;
        }
        match (system, mode) {
            (_, Mode::Link) => commands::link(&self.state, &node.name, true),
            (System::Ferrolb, _) => commands::start(&self.state, &node.name),
            (System::Keepalived, _) => {
                if mode == Mode::Crash {
                    // keepalived was SIGKILLed: its VIP is still on eth0.
                    let _ = self.ns_run(
                        &node.ns(),
                        &[
                            "ip",
                            "addr",
                            "del",
                            &format!("{}/32", self.vip),
                            "dev",
                            "eth0",
                        ],
                    );
                    exec::run(&plan::link(node, true))?;
                    let r = procs::responder(&self.state, &self.bins, node);
                    if exec::running(&self.state, &r).is_none() {
                        let _ = std::fs::remove_file(procs::ready_file(&self.state, node));
                        exec::spawn(&self.state, &r)?;
                    }
                    let ready = procs::ready_file(&self.state, node);
                    wait_until(Duration::from_secs(5), TICK, || ready.is_file());
                }
                self.spawn_keepalived(node)
            }
        }
    }

    fn prime(&self) {
        let _ = self.ns_run(
            &self.topology.client.ns(),
            &[
                "ping",
                "-n",
                "-q",
                "-c",
                "3",
                "-i",
                "0.05",
                "-W",
                "1",
                &self.vip.to_string(),
            ],
        );
    }

    /// One trial: the gap, or why there is none.
    fn trial(&self, system: System, args: &FailoverArgs) -> anyhow::Result<(String, Gap)> {
        let leader = self.stable_announcer(Duration::from_secs(15))?;
        self.prime();
        let pinger = Pinger::start(&self.topology.client, self.vip, args.interval_ms)?;
        let t0 = now();
        if !wait_until(Duration::from_secs(3), Duration::from_millis(5), || {
            pinger.count_after(t0) >= 20
        }) {
            bail!("{} does not answer pings before the failure", self.vip);
        }
        let watch = NeighWatch::start(&self.topology.client, self.vip, &leader.mac);
        let t_fail = now();
        self.fail(system, args.mode, &leader)?;
        let limit = Duration::from_secs(args.trial_timeout_s);
        // Enough replies after the failure to see the stream steady again.
        let need = 30 + (300 / args.interval_ms.max(1)) as usize;
        let got = wait_until(limit, Duration::from_millis(10), || {
            pinger.count_after(t_fail) >= need
        });
        // The entry may move after the pings came back (a frozen old node still
        // answering): give it until the trial's limit.
        let moved_by = Instant::now();
        while watch.moved.lock().expect("not poisoned").is_none() && moved_by.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
        let moved = watch.finish().map(|t| t - t_fail);
        let replies = pinger.stop();
        let result = measure(&replies, t_fail).map(|g| Gap { moved, ..g });
        let restored = self.restore(system, args.mode, &leader);
        let gap = match (got, result) {
            (true, Some(g)) => g,
            _ => bail!(
                "no steady replies from {} within {} s of failing {} ({} replies after it)",
                self.vip,
                args.trial_timeout_s,
                leader.name,
                replies.iter().filter(|r| r.at > t_fail).count()
            ),
        };
        restored.with_context(|| format!("restoring {}", leader.name))?;
        Ok((leader.name, gap))
    }

    /// Waits until every node's daemon runs and one node answers for the VIP.
    fn settle(&self, system: System) -> anyhow::Result<Host> {
        if !wait_until(Duration::from_secs(10), TICK, || self.all_running(system)) {
            bail!("not every node's {} is running after 10 s", system.name());
        }
        // Gossip (or VRRP) converges on the returning node before the next trial.
        std::thread::sleep(Duration::from_millis(700));
        self.stable_announcer(Duration::from_secs(15))
    }

    fn run(&self, system: System, args: &FailoverArgs) -> Vec<Option<Gap>> {
        let mut out = Vec::new();
        println!(
            "\n{}: {} trials, mode {:?}, ping every {} ms",
            system.name(),
            args.trials,
            args.mode,
            args.interval_ms
        );
        for i in 1..=args.trials {
            if let Err(e) = self.settle(system) {
                println!("  trial {i:>2}: lab not stable: {e:#}");
                out.push(None);
                continue;
            }
            match self.trial(system, args) {
                Ok((leader, g)) => {
                    println!(
                        "  trial {i:>2}: leader {leader}: gap {:>7.1} ms, {:>2} lost, client's ARP entry moved after {}",
                        g.gap * 1000.0,
                        g.lost,
                        g.moved
                            .map(|m| format!("{:.1} ms", m * 1000.0))
                            .unwrap_or_else(|| "— (did not move)".into())
                    );
                    out.push(Some(g));
                }
                Err(e) => {
                    println!("  trial {i:>2}: FAILED: {e:#}");
                    out.push(None);
                }
            }
        }
        out
    }

    fn stop_speakers(&self) -> anyhow::Result<()> {
        for n in &self.topology.nodes {
            if let Some(pid) = exec::running(&self.state, &self.speaker(n)) {
                exec::terminate(pid, Duration::from_secs(3))?;
            }
        }
        Ok(())
    }

    fn start_keepalived(&self, args: &FailoverArgs) -> anyhow::Result<()> {
        let dir = self.state.root.join("keepalived");
        std::fs::create_dir_all(&dir)?;
        for (i, n) in self.topology.nodes.iter().enumerate() {
            state::write(
                &dir.join(format!("{}.conf", n.name)),
                &keepalived_conf(i + 1, self.vip, args.keepalived_advert_ms as f64 / 1000.0),
                0o644,
            )?;
            self.spawn_keepalived(n)?;
        }
        Ok(())
    }

    /// Starts keepalived on `node`, without the pid files a killed one left behind
    /// (keepalived refuses to start over them: "daemon is already running").
    fn spawn_keepalived(&self, node: &Host) -> anyhow::Result<()> {
        let dir = self.state.root.join("keepalived");
        for ext in [".pid", "-vrrp.pid"] {
            let _ = std::fs::remove_file(dir.join(format!("{}{ext}", node.name)));
        }
        exec::spawn(&self.state, &self.keepalived(node))?;
        Ok(())
    }

    /// keepalived stopped by its recorded pids (never by name), its VIPs gone.
    fn stop_keepalived(&self) {
        for n in &self.topology.nodes {
            // By the pid the lab recorded, alive whatever its program name: right after
            // the spawn it may still be `ip netns exec` about to exec keepalived.
            let key = self.keepalived(n).key;
            if let Some(pid) = self.state.pid(&key).filter(|p| exec::alive(*p)) {
                // Let a just-started keepalived install its signal handlers first.
                std::thread::sleep(Duration::from_millis(200));
                let _ = exec::terminate(pid, Duration::from_secs(3));
            }
            let _ = self.ns_run(
                &n.ns(),
                &[
                    "ip",
                    "addr",
                    "del",
                    &format!("{}/32", self.vip),
                    "dev",
                    "eth0",
                ],
            );
        }
    }

    fn restore_ferrolb(&self) -> anyhow::Result<()> {
        for n in &self.topology.nodes {
            commands::start(&self.state, &n.name)?;
        }
        Ok(())
    }

    fn speaker_rss(&self) -> Vec<(String, String)> {
        self.topology
            .nodes
            .iter()
            .filter_map(|n| {
                let pid = exec::running(&self.state, &self.speaker(n))?;
                let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let rss = s.lines().find(|l| l.starts_with("VmRSS:"))?;
                Some((n.name.clone(), rss["VmRSS:".len()..].trim().to_string()))
            })
            .collect()
    }
}

struct Summary {
    ok: usize,
    failed: usize,
    p50: f64,
    p99: f64,
    max: f64,
    lost: u32,
    lost_max: u32,
    /// p50, p99 of the neighbour-entry move, over the trials where it moved.
    moved: Option<(f64, f64, usize)>,
}

fn summarize(gaps: &[Option<Gap>]) -> Option<Summary> {
    let ok: Vec<Gap> = gaps.iter().flatten().copied().collect();
    let mut ms: Vec<f64> = ok.iter().map(|g| g.gap * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    Some(Summary {
        ok: ok.len(),
        failed: gaps.len() - ok.len(),
        p50: percentile(&ms, 50.0)?,
        p99: percentile(&ms, 99.0)?,
        max: *ms.last()?,
        lost: ok.iter().map(|g| g.lost).sum(),
        lost_max: ok.iter().map(|g| g.lost).max().unwrap_or(0),
        moved: {
            let mut m: Vec<f64> = ok
                .iter()
                .filter_map(|g| g.moved)
                .map(|x| x * 1000.0)
                .collect();
            m.sort_by(f64::total_cmp);
            percentile(&m, 50.0)
                .zip(percentile(&m, 99.0))
                .map(|(a, b)| (a, b, m.len()))
        },
    })
}

fn print_summary(system: System, mode: Mode, s: &Option<Summary>) {
    match s {
        Some(s) => println!(
            "{:<10} {:<8} {:>3} ok {:>2} failed   p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms   lost {:>4} total, {:>3} max/trial   ARP entry moved: {}",
            system.name(),
            format!("{mode:?}").to_lowercase(),
            s.ok,
            s.failed,
            s.p50,
            s.p99,
            s.max,
            s.lost,
            s.lost_max,
            s.moved
                .map(|(a, b, n)| format!("p50 {a:.1} ms, p99 {b:.1} ms ({n} trials)"))
                .unwrap_or_else(|| "never".into())
        ),
        None => println!(
            "{:<10} {:<8} no successful trial",
            system.name(),
            format!("{mode:?}").to_lowercase()
        ),
    }
}

pub fn failover(state: &StateDir, args: &FailoverArgs) -> anyhow::Result<()> {
    if args.trials == 0 || args.interval_ms == 0 {
        bail!("--trials and --interval-ms must be at least 1");
    }
    let missing = packages::missing(
        &packages::bench_needed(args.systems != Systems::Ferrolb),
        packages::on_path,
    );
    if !missing.is_empty() {
        bail!(
            "missing Debian packages: {} (run `{}`)",
            missing.join(" "),
            packages::apt_line(&missing).join(" ")
        );
    }
    if !state.is_lab() {
        println!("no lab up: bringing it up");
        commands::up(
            state,
            &commands::UpOptions {
                nodes: 3,
                router: RouterKind::Bird,
                install: false,
                dry_run: false,
            },
        )?;
    }
    let config = state.require()?;
    let topology = config.topology();
    if topology.nodes.len() < 2 {
        bail!("failover needs at least 2 nodes");
    }
    let lab = Lab {
        state: StateDir::new(&state.root),
        topology,
        bins: Binaries::current()?,
        vip: args.vip,
    };
    let mut results = Vec::new();
    if args.systems != Systems::Keepalived {
        if !lab.bins.speaker_built() {
            bail!("the speaker is not built: `cargo build -p ferrolb-speaker`");
        }
        let rss = lab.speaker_rss();
        let gaps = lab.run(System::Ferrolb, args);
        results.push((System::Ferrolb, summarize(&gaps)));
        println!(
            "speaker RSS before the trials: {}",
            rss.iter()
                .map(|(n, r)| format!("{n} {r}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if args.systems != Systems::Ferrolb {
        println!(
            "\nstopping FerroLB's speakers, starting keepalived (VRRPv3, advert_int {})",
            args.keepalived_advert_ms as f64 / 1000.0
        );
        lab.stop_speakers()?;
        let outcome = lab
            .start_keepalived(args)
            .map(|()| lab.run(System::Keepalived, args));
        lab.stop_keepalived();
        println!("keepalived stopped; restarting FerroLB's speakers");
        let restored = lab.restore_ferrolb();
        let gaps = outcome?;
        restored?;
        results.push((System::Keepalived, summarize(&gaps)));
        lab.settle(System::Ferrolb)
            .context("FerroLB did not come back after keepalived")?;
    }
    println!("\nclient-visible failover gap, mode {:?}:", args.mode);
    for (system, s) in &results {
        print_summary(*system, args.mode, s);
    }
    if let [(_, Some(f)), (_, Some(k))] = results.as_slice() {
        println!(
            "ratio FerroLB p99 / keepalived p99 = {:.3} (p50 ratio {:.3})",
            f.p99 / k.p99,
            f.p50 / k.p50
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_lines() {
        assert_eq!(
            parse_reply(
                "[1795312384.589075] 64 bytes from 198.51.100.200: icmp_seq=17 ttl=64 time=0.035 ms"
            ),
            Some(Reply {
                seq: 17,
                at: 1795312384.589075
            })
        );
        assert_eq!(
            parse_reply("PING 198.51.100.200 (198.51.100.200) 56(84) bytes of data."),
            None
        );
        assert_eq!(
            parse_reply(
                "[1795312384.5] From 198.51.100.100 icmp_seq=3 Destination Host Unreachable"
            ),
            None
        );
        assert_eq!(parse_reply("[x] 64 bytes from a: icmp_seq=1"), None);
    }

    fn stream(times: &[(u32, f64)]) -> Vec<Reply> {
        times.iter().map(|&(seq, at)| Reply { seq, at }).collect()
    }

    #[test]
    fn the_gap_spans_the_failure() {
        let rs = stream(&[
            (1, 10.00),
            (2, 10.01),
            (3, 10.02),
            (9, 10.31),
            (10, 10.32),
            (11, 10.33),
        ]);
        let g = measure(&rs, 10.025).unwrap();
        assert!((g.gap - 0.29).abs() < 1e-9);
        assert_eq!(g.lost, 5);
        // Replies still arriving just after the failure instant: the silence counts.
        let g = measure(&rs, 10.005).unwrap();
        assert!((g.gap - 0.29).abs() < 1e-9);
        // No silence at all: one interval.
        let rs = stream(&[(1, 1.00), (2, 1.01), (3, 1.02)]);
        let g = measure(&rs, 1.005).unwrap();
        assert!((g.gap - 0.01).abs() < 1e-9);
        assert_eq!(g.lost, 0);
        assert_eq!(measure(&rs, 0.5), None);
        assert_eq!(measure(&rs, 2.0), None);
    }

    #[test]
    fn neighbour_entries() {
        assert_eq!(
            parse_lladdr("198.51.100.200 dev eth0 lladdr 02:66:6C:62:00:0c REACHABLE\n").as_deref(),
            Some("02:66:6c:62:00:0c")
        );
        assert_eq!(parse_lladdr("198.51.100.200 dev eth0 FAILED\n"), None);
        assert_eq!(parse_lladdr(""), None);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 99.0), Some(20.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn keepalived_config() {
        let c = keepalived_conf(1, Ipv4Addr::new(198, 51, 100, 200), 0.1);
        assert!(c.contains("vrrp_version 3"));
        assert!(c.contains("priority 190"));
        assert!(c.contains("advert_int 0.1"));
        assert!(c.contains("198.51.100.200/32 dev eth0"));
        assert!(keepalived_conf(2, Ipv4Addr::new(198, 51, 100, 200), 0.1).contains("priority 180"));
    }
}
