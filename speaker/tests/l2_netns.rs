//! The Layer2 announcer against a real kernel, in network namespaces, checked with the
//! tools a network engineer would use: Habets `arping`, `ndisc6`, `ping` and the
//! client's neighbour cache (`ip neigh`).
//!
//! Each test builds its own LAN (LAB.md): a bridge namespace `flb-l2t-<pid>-<tag>-lan`
//! and host namespaces `-a`, `-b` (nodes) and `-c` (client), each with an `eth0` whose
//! peer sits on the bridge. Nodes hold the VIPs on `lo` with `arp_ignore=1` and
//! `arp_announce=2` on their LAN interface, like kube-proxy nodes, so the kernel never
//! answers for a VIP and every answer the client gets comes from an announcer. The
//! announcers run on threads that `setns` into a node namespace and run their own tokio
//! runtime. A [`Lab`] guard kills whatever runs in the namespaces and deletes them, also
//! when a test panics.
//!
//! Needs root (`CAP_NET_ADMIN`, `CAP_NET_RAW`, `CAP_SYS_ADMIN` for `setns`): without it
//! every test prints a SKIP line and passes. Needs the packages `arping` (Habets),
//! `ndisc6` and `iputils-ping`.
//!
//! Addresses: 198.51.100.0/24 and 2001:db8:51::/64 (documentation ranges) only.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ferrolb_speaker::l2::announcer::{Announcer, Config, Link, NdpSource};
use ferrolb_speaker::l2::ether::MacAddr;
use ferrolb_speaker::l2::io::{Kind, PacketSocket, Received};
use ferrolb_speaker::l2::{arp, ndp};

const MAC_A: MacAddr = MacAddr([0x02, 0xf1, 0x0b, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([0x02, 0xf1, 0x0b, 0, 0, 0x0b]);
const MAC_C: MacAddr = MacAddr([0x02, 0xf1, 0x0b, 0, 0, 0x0c]);

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
/// On the nodes' `lo` too, but never owned: must never be answered.
const VIP4_UNOWNED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 201);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x200);
const VIP6_UNOWNED: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x201);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x100);

/// Longest wait for anything that should take milliseconds.
const SETTLE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------
// Environment

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the test, loudly, when it cannot run here.
macro_rules! require_root {
    ($test:literal) => {
        if !is_root() {
            eprintln!(
                "SKIP l2_netns::{}: needs root (network namespaces, raw sockets); CI runs it as root",
                $test
            );
            return;
        }
    };
}

fn require_tools() {
    for (tool, package) in [
        ("arping", "arping"),
        ("ndisc6", "ndisc6"),
        ("ping", "iputils-ping"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "`{tool}` is missing: apt-get install -y {package}");
    }
}

/// Runs a command given as one line; arguments never contain spaces here.
fn run(line: &str) -> Output {
    let mut words = line.split_whitespace();
    let program = words.next().unwrap_or_default();
    Command::new(program)
        .args(words)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
fn ok(line: &str) -> String {
    let out = run(line);
    assert!(
        out.status.success(),
        "`{line}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 5 ms until it holds or `limit` passes; returns the time taken.
fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    for _ in 0..10_000 {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
    None
}

fn mac_of(text: &str) -> Option<MacAddr> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    Some(MacAddr(bytes.try_into().ok()?))
}

/// Every MAC address in `text` (arping's "60 bytes from MAC (IP)" lines), once each.
fn macs_in(text: &str) -> BTreeSet<MacAddr> {
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| w.len() == 17)
        .filter_map(mac_of)
        .collect()
}

// ---------------------------------------------------------------------------------
// The LAN

/// Namespaces of one test; dropping it removes them.
struct Lab {
    prefix: String,
    created: Vec<String>,
}

/// One host: namespace suffix, MAC, last address byte, holds the VIPs.
struct HostSpec {
    suffix: &'static str,
    mac: MacAddr,
    host: u8,
    node: bool,
}

const NODE_A: HostSpec = HostSpec {
    suffix: "a",
    mac: MAC_A,
    host: 11,
    node: true,
};
const NODE_B: HostSpec = HostSpec {
    suffix: "b",
    mac: MAC_B,
    host: 12,
    node: true,
};
const CLIENT: HostSpec = HostSpec {
    suffix: "c",
    mac: MAC_C,
    host: 100,
    node: false,
};

impl Lab {
    fn build(tag: &str, hosts: &[HostSpec]) -> Lab {
        let mut lab = Lab {
            prefix: format!("flb-l2t-{}-{tag}", std::process::id()),
            created: Vec::new(),
        };
        let lan = lab.add_namespace("lan");
        ok(&format!(
            "ip -n {lan} link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
        ));
        ok(&format!("ip -n {lan} link set br0 up"));
        for spec in hosts {
            let ns = lab.add_namespace(spec.suffix);
            let (port, mac, host) = (format!("p-{}", spec.suffix), spec.mac, spec.host);
            // Before eth0 exists, so that its addresses are never tentative.
            ok(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 \
                 net.ipv6.conf.default.accept_dad=0"
            ));
            ok(&format!(
                "ip -n {lan} link add {port} type veth peer name eth0 netns {ns}"
            ));
            ok(&format!("ip -n {lan} link set {port} master br0 up"));
            ok(&format!("ip -n {ns} link set eth0 address {mac}"));
            ok(&format!("ip -n {ns} link set lo up"));
            ok(&format!("ip -n {ns} link set eth0 up"));
            ok(&format!(
                "ip -n {ns} addr add 198.51.100.{host}/24 dev eth0"
            ));
            ok(&format!(
                "ip -n {ns} addr add 2001:db8:51::{host}/64 dev eth0 nodad"
            ));
            if spec.node {
                // kube-proxy style: the VIPs are local, the kernel must not answer for them.
                ok(&format!(
                    "ip netns exec {ns} sysctl -qw net.ipv4.conf.all.arp_ignore=1 \
                     net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_ignore=1 \
                     net.ipv4.conf.eth0.arp_announce=2"
                ));
                for vip in [
                    format!("{VIP4}/32"),
                    format!("{VIP4_UNOWNED}/32"),
                    format!("{VIP6}/128"),
                    format!("{VIP6_UNOWNED}/128"),
                ] {
                    ok(&format!("ip -n {ns} addr add {vip} dev lo"));
                }
            }
        }
        lab
    }

    fn add_namespace(&mut self, suffix: &str) -> String {
        let name = self.ns(suffix);
        ok(&format!("ip netns add {name}"));
        self.created.push(name.clone());
        name
    }

    fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// eth0 of a host, as an announcer sees it.
    fn link(&self, suffix: &str, mac: MacAddr) -> Link {
        let ns = self.ns(suffix);
        let line = ok(&format!("ip -n {ns} -o link show dev eth0"));
        let index = line
            .split(':')
            .next()
            .and_then(|i| i.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ifindex in {line:?}"));
        let addrs = ok(&format!("ip -n {ns} -6 -o addr show dev eth0 scope link"));
        let link_local = addrs
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok());
        assert!(
            link_local.is_some(),
            "{ns}: eth0 has no link-local address: {addrs:?}"
        );
        Link {
            index,
            name: "eth0".into(),
            mac,
            arp: true,
            link_local,
        }
    }

    /// `cmd` run inside host `suffix`'s namespace.
    fn exec(&self, suffix: &str, cmd: &str) -> Output {
        run(&format!("ip netns exec {} {cmd}", self.ns(suffix)))
    }

    /// The client's neighbour entry for `ip` on eth0, e.g. "... lladdr 02:.. REACHABLE".
    fn client_neigh(&self, ip: IpAddr) -> String {
        ok(&format!("ip -n {} neigh show {ip} dev eth0", self.ns("c")))
    }

    fn client_neigh_mac(&self, ip: IpAddr) -> Option<MacAddr> {
        let entry = self.client_neigh(ip);
        let mut words = entry.split_whitespace().skip_while(|w| *w != "lladdr");
        words.nth(1).and_then(mac_of)
    }

    /// The Ethernet multicast groups of a host's eth0 (`ip maddr`).
    fn multicast_groups(&self, suffix: &str) -> BTreeSet<MacAddr> {
        let out = ok(&format!("ip -n {} maddr show dev eth0", self.ns(suffix)));
        out.lines()
            .filter_map(|l| l.trim().strip_prefix("link "))
            .filter_map(|m| mac_of(m.trim()))
            .collect()
    }

    /// Habets arping from the client: whether it exited 0, and the answering MACs.
    fn arping(&self, ip: Ipv4Addr, options: &str) -> (bool, BTreeSet<MacAddr>) {
        let out = self.exec("c", &format!("arping -I eth0 {options} {ip}"));
        let text = String::from_utf8_lossy(&out.stdout);
        (out.status.success(), macs_in(&text))
    }

    /// `arping -r`: the single MAC printed, if any.
    fn arping_mac(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        let out = self.exec("c", &format!("arping -c 1 -w 2 -I eth0 -r {ip}"));
        let text = String::from_utf8_lossy(&out.stdout);
        out.status.success().then(|| mac_of(text.trim())).flatten()
    }

    /// `ndisc6 -q`: the MAC that answers a solicitation for `ip`, if any.
    fn ndisc6_mac(&self, ip: Ipv6Addr) -> Option<MacAddr> {
        let out = self.exec("c", &format!("ndisc6 -q -1 -r 2 -w 500 {ip} eth0"));
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        out.status.success().then(|| mac_of(text.trim())).flatten()
    }

    fn ping(&self, ip: IpAddr) -> bool {
        self.exec("c", &format!("ping -c 1 -W 2 {ip}"))
            .status
            .success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let me = std::process::id().to_string();
        for ns in self.created.iter().rev() {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    // This process's threads may still be inside; never kill ourselves.
                    if pid != me {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

// ---------------------------------------------------------------------------------
// Code running inside a namespace

/// A thread that entered a network namespace and runs a tokio runtime there until
/// dropped.
struct NsThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NsThread {
    /// Runs `setup` on a new thread inside namespace `ns`, within a current-thread
    /// runtime (so it may spawn tasks and open sockets), and returns what it returns.
    fn start<T, F>(ns: &str, setup: F) -> (NsThread, T)
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = format!("/run/netns/{ns}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, value) = mpsc::channel();
        let thread = thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a valid namespace descriptor; it changes the namespace of
            // this thread only, which is what this thread is for.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let _ = ready.send(setup());
                let _ = stopped.await;
            });
        });
        let value = value
            .recv_timeout(SETTLE)
            .expect("namespace thread did not start");
        (
            NsThread {
                stop: Some(stop),
                thread: Some(thread),
            },
            value,
        )
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An announcer running in a node's namespace. Field order = drop order: the handle
/// first, then the runtime.
struct Node {
    announcer: Announcer,
    _thread: NsThread,
}

impl Node {
    fn start(lab: &Lab, suffix: &str, mac: MacAddr, config: Config) -> Node {
        let link = lab.link(suffix, mac);
        let (thread, announcer) =
            NsThread::start(&lab.ns(suffix), move || Announcer::spawn(link, config));
        Node {
            announcer: announcer.expect("announcer starts"),
            _thread: thread,
        }
    }

    fn own(&self, ips: &[IpAddr]) {
        self.announcer.set_owned(ips.iter().copied().collect());
    }

    /// Sets the owned set and waits until the task has applied it.
    fn own_and_wait(&self, ips: &[IpAddr]) {
        let want: BTreeSet<IpAddr> = ips.iter().copied().collect();
        self.announcer.set_owned(want.clone());
        let applied = wait_for(SETTLE, || self.announcer.announced() == want);
        assert!(applied.is_some(), "announcer did not apply {want:?}");
    }
}

/// Frames of one kind seen on the client's eth0, each with the time it was read.
struct Capture {
    frames: mpsc::Receiver<(Instant, Vec<u8>)>,
    send: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    _thread: NsThread,
}

impl Capture {
    fn start(lab: &Lab, suffix: &str, kind: Kind) -> Capture {
        let index = lab.link(suffix, MAC_C).index;
        let (tx, frames) = mpsc::channel();
        let (send, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let (thread, opened) = NsThread::start(&lab.ns(suffix), move || {
            let socket = PacketSocket::open(index, kind)?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    tokio::select! {
                        received = socket.recv(&mut buf) => {
                            let at = Instant::now();
                            let Ok(Received::Frame(n)) = received else { continue };
                            if tx.send((at, buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                        frame = outgoing.recv() => {
                            let Some(frame) = frame else { break };
                            socket.send(&frame).await.expect("capture socket sends");
                        }
                    }
                }
            });
            Ok::<(), ferrolb_speaker::l2::io::IoError>(())
        });
        opened.expect("capture socket opens");
        Capture {
            frames,
            send,
            _thread: thread,
        }
    }

    /// The first frame for which `pick` gives Some within `limit`, with its time.
    fn next<T>(
        &self,
        limit: Duration,
        mut pick: impl FnMut(&[u8]) -> Option<T>,
    ) -> Option<(Instant, T)> {
        let deadline = Instant::now() + limit;
        for _ in 0..100_000 {
            let left = deadline.checked_duration_since(Instant::now())?;
            let (at, frame) = self.frames.recv_timeout(left).ok()?;
            if let Some(value) = pick(&frame) {
                return Some((at, value));
            }
        }
        None
    }

    /// Everything `pick` accepts until `limit` passes.
    fn all<T>(
        &self,
        limit: Duration,
        mut pick: impl FnMut(&[u8]) -> Option<T>,
    ) -> Vec<(Instant, T)> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + limit;
        for _ in 0..100_000 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.frames.recv_timeout(left) {
                Ok((at, frame)) => seen.extend(pick(&frame).map(|v| (at, v))),
                Err(_) => break,
            }
        }
        seen
    }

    fn drain(&self) {
        while self.frames.try_recv().is_ok() {}
    }
}

/// A gratuitous ARP (request or reply) announcing `ip` at `mac`.
fn garp(ip: Ipv4Addr, mac: MacAddr) -> impl FnMut(&[u8]) -> Option<arp::Op> {
    move |frame| {
        let f = arp::parse(frame).ok()?;
        let p = f.packet;
        (p.is_gratuitous() && p.sender_ip == ip && p.sender_mac == mac && f.eth_dst.is_broadcast())
            .then_some(p.op)
    }
}

/// An unsolicited NA with Override announcing `ip` at `mac`; gives its IPv6 source.
fn unsolicited_na(ip: Ipv6Addr, mac: MacAddr) -> impl FnMut(&[u8]) -> Option<Ipv6Addr> {
    move |frame| match ndp::parse(frame).ok()? {
        ndp::Message::Advertisement(na) => (na.target == ip
            && na.target_lla == Some(mac)
            && na.override_flag
            && !na.solicited
            && na.dst == ndp::ALL_NODES)
            .then_some(na.src),
        ndp::Message::Solicitation(_) => None,
    }
}

/// Times of `seen`, in ms after `t0`.
fn offsets<T>(t0: Instant, seen: &[(Instant, T)]) -> Vec<f64> {
    seen.iter().map(|(at, _)| ms(*at - t0)).collect()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len().saturating_sub(1) * p) / 100;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------
// Tests

#[test]
fn ipv4_answers_only_owned_ips_and_moves_the_client_on_takeover() {
    require_root!("ipv4_answers_only_owned_ips_and_moves_the_client_on_takeover");
    require_tools();
    let lab = Lab::build("v4", &[NODE_A, NODE_B, CLIENT]);
    let a = Node::start(&lab, "a", MAC_A, Config::default());
    let b = Node::start(&lab, "b", MAC_B, Config::default());
    let vip = IpAddr::V4(VIP4);

    // Nobody owns the VIP yet: no answer, although both nodes hold it on lo.
    assert_eq!(
        lab.arping_mac(VIP4),
        None,
        "the kernel or an announcer answered for an unowned VIP"
    );

    a.own_and_wait(&[vip]);
    assert_eq!(lab.arping_mac(VIP4), Some(MAC_A));
    let (no_duplicates, macs) = lab.arping(VIP4, "-d -c 3 -W 0.2 -w 3");
    assert!(no_duplicates, "arping -d saw duplicate answers: {macs:?}");
    assert_eq!(macs, BTreeSet::from([MAC_A]));
    assert_eq!(
        lab.arping_mac(VIP4_UNOWNED),
        None,
        "an unowned IP was answered"
    );

    let counted_a = a.announcer.counters().snapshot();
    let counted_b = b.announcer.counters().snapshot();
    assert!(counted_a.arp_requests_received >= 4, "{counted_a:?}");
    assert!(counted_a.arp_requests_answered >= 4, "{counted_a:?}");
    assert_eq!(
        counted_a.gratuitous_sent % 2,
        0,
        "IPv4 rounds are request + reply"
    );
    assert_eq!(counted_b.arp_requests_answered, 0, "{counted_b:?}");
    assert_eq!(
        counted_b.arp_requests_received, 0,
        "B counted requests for an IP it does not own"
    );

    // The client talks to the VIP through A: its cache holds A's MAC.
    assert!(lab.ping(vip), "ping {vip} through A");
    assert_eq!(
        lab.client_neigh_mac(vip),
        Some(MAC_A),
        "{}",
        lab.client_neigh(vip)
    );

    // Hand-off A -> B: only B's gratuitous burst can move the client's entry.
    let capture = Capture::start(&lab, "c", Kind::Arp);
    a.own_and_wait(&[]);
    capture.drain();
    let t0 = Instant::now();
    b.own(&[vip]);
    let (seen, _) = capture
        .next(SETTLE, garp(VIP4, MAC_B))
        .expect("B's gratuitous ARP reaches the client");
    let moved = wait_for(SETTLE, || lab.client_neigh_mac(vip) == Some(MAC_B)).map(|_| t0.elapsed());
    eprintln!(
        "FIGURE ipv4 takeover: set_owned -> first gratuitous ARP at the client {:.3} ms; client neighbour entry seen on B's MAC {:.1} ms after set_owned (`ip neigh` polling)",
        ms(seen - t0),
        moved.map_or(f64::NAN, ms)
    );
    assert!(
        moved.is_some(),
        "client entry did not move to B: {}",
        lab.client_neigh(vip)
    );
    assert_eq!(lab.arping_mac(VIP4), Some(MAC_B));
    assert!(lab.ping(vip), "ping {vip} through B");

    // Split brain (both own the VIP): arping -d must see it, and each announcer counts
    // the other's gratuitous packets as conflicts. This proves the single-MAC checks
    // above can fail.
    a.own_and_wait(&[vip]);
    let (no_duplicates, macs) = lab.arping(VIP4, "-d -c 3 -W 0.2 -w 3");
    assert!(
        !no_duplicates,
        "arping -d missed two answering MACs: {macs:?}"
    );
    assert_eq!(macs, BTreeSet::from([MAC_A, MAC_B]));
    assert!(a.announcer.counters().snapshot().conflicts > 0);
    a.own_and_wait(&[]);

    // Link down and up on B: the sockets survive (one ENETDOWN) and B answers again.
    ok(&format!("ip -n {} link set eth0 down", lab.ns("b")));
    thread::sleep(Duration::from_millis(50));
    ok(&format!("ip -n {} link set eth0 up", lab.ns("b")));
    let answered = wait_for(Duration::from_secs(5), || {
        lab.arping_mac(VIP4) == Some(MAC_B)
    });
    assert!(
        answered.is_some(),
        "B no longer answers after its link bounced"
    );
    eprintln!(
        "after link bounce on B: {:?}",
        b.announcer.counters().snapshot()
    );
}

#[test]
fn ipv6_answers_solicitations_and_nud_probes_and_moves_the_client_on_takeover() {
    require_root!("ipv6_answers_solicitations_and_nud_probes_and_moves_the_client_on_takeover");
    require_tools();
    let lab = Lab::build("v6", &[NODE_A, NODE_B, CLIENT]);
    let a = Node::start(&lab, "a", MAC_A, Config::default());
    let b = Node::start(&lab, "b", MAC_B, Config::default());
    let vip = IpAddr::V6(VIP6);
    let group = ndp::solicited_node_mac(VIP6);

    assert_eq!(
        lab.ndisc6_mac(VIP6),
        None,
        "the kernel or an announcer answered for an unowned VIP"
    );
    assert!(!lab.multicast_groups("a").contains(&group));

    a.own_and_wait(&[vip]);
    assert!(
        lab.multicast_groups("a").contains(&group),
        "A did not join {group}"
    );
    assert!(
        !lab.multicast_groups("b").contains(&group),
        "B joined {group} without owning {VIP6}"
    );
    // Refcounting: an address with the same low 24 bits shares the group; releasing it
    // must not leave the group while VIP6 still needs it.
    let twin6 = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 1, 0, 0, 0, 0x200);
    assert_eq!(ndp::solicited_node_mac(twin6), group);
    let twin = IpAddr::V6(twin6);
    a.own_and_wait(&[vip, twin]);
    a.own_and_wait(&[vip]);
    assert!(
        lab.multicast_groups("a").contains(&group),
        "releasing a twin address left the group VIP6 still needs"
    );
    assert_eq!(lab.ndisc6_mac(VIP6), Some(MAC_A));
    assert_eq!(
        lab.ndisc6_mac(VIP6_UNOWNED),
        None,
        "an unowned IP was answered"
    );

    // A unicast NUD probe without a Source Link-Layer Address option (no tool sends one,
    // and Linux always adds the option, so it is built here): MetalLB ignores these
    // (#2920), FerroLB answers at the frame's Ethernet source.
    let capture = Capture::start(&lab, "c", Kind::NeighborAdvertisement);
    let probe = ndp::build_solicitation(&ndp::NeighborSolicitation {
        eth_dst: MAC_A,
        eth_src: MAC_C,
        src: CLIENT6,
        dst: VIP6,
        target: VIP6,
        source_lla: None,
    });
    let answered_before = a.announcer.counters().snapshot().ns_answered;
    capture.send.send(probe).expect("capture thread alive");
    let (_, na) = capture
        .next(SETTLE, |frame| match ndp::parse(frame).ok()? {
            ndp::Message::Advertisement(na) if na.target == VIP6 && na.solicited => Some(na),
            _ => None,
        })
        .expect("the NUD probe is answered");
    assert_eq!(
        (na.eth_dst, na.dst),
        (MAC_C, CLIENT6),
        "answered to the prober"
    );
    assert_eq!((na.eth_src, na.target_lla), (MAC_A, Some(MAC_A)));
    assert_eq!(
        na.src, VIP6,
        "the answer comes from the target, as Linux's do"
    );
    assert!(na.override_flag && !na.router);
    // The counter moves just after the frame left, possibly after it arrived.
    let counted = wait_for(SETTLE, || {
        a.announcer.counters().snapshot().ns_answered > answered_before
    });
    assert!(counted.is_some(), "the answer was not counted");

    // The client talks to the VIP through A.
    assert!(lab.ping(vip), "ping {vip} through A");
    assert_eq!(
        lab.client_neigh_mac(vip),
        Some(MAC_A),
        "{}",
        lab.client_neigh(vip)
    );

    // Hand-off A -> B. An unsolicited NA only updates an existing entry: the ping above
    // made one.
    a.own_and_wait(&[]);
    assert!(
        !lab.multicast_groups("a").contains(&group),
        "A did not leave {group}"
    );
    capture.drain();
    let t0 = Instant::now();
    b.own(&[vip]);
    let (seen, _) = capture
        .next(SETTLE, unsolicited_na(VIP6, MAC_B))
        .expect("B's unsolicited NA reaches the client");
    let moved = wait_for(SETTLE, || lab.client_neigh_mac(vip) == Some(MAC_B)).map(|_| t0.elapsed());
    eprintln!(
        "FIGURE ipv6 takeover: set_owned -> first unsolicited NA at the client {:.3} ms; client neighbour entry seen on B's MAC {:.1} ms after set_owned (`ip neigh` polling)",
        ms(seen - t0),
        moved.map_or(f64::NAN, ms)
    );
    assert!(
        moved.is_some(),
        "client entry did not move to B: {}",
        lab.client_neigh(vip)
    );
    assert_eq!(lab.ndisc6_mac(VIP6), Some(MAC_B));
    assert!(lab.ping(vip), "ping {vip} through B");

    let counted_a = a.announcer.counters().snapshot();
    let counted_b = b.announcer.counters().snapshot();
    assert!(
        counted_a.ns_received >= 2 && counted_a.ns_answered >= 2,
        "{counted_a:?}"
    );
    assert!(
        counted_b.ns_answered >= 1 && counted_b.gratuitous_sent >= 1,
        "{counted_b:?}"
    );
    assert_eq!(counted_a.membership_errors + counted_b.membership_errors, 0);
}

#[test]
fn first_gratuitous_packet_is_on_the_wire_within_milliseconds() {
    require_root!("first_gratuitous_packet_is_on_the_wire_within_milliseconds");
    let lab = Lab::build("lat", &[NODE_A, CLIENT]);
    let a = Node::start(&lab, "a", MAC_A, Config::default());
    let arp_capture = Capture::start(&lab, "c", Kind::Arp);
    let na_capture = Capture::start(&lab, "c", Kind::NeighborAdvertisement);
    const TRIALS: usize = 30;
    let mut v4 = Vec::with_capacity(TRIALS);
    let mut v6 = Vec::with_capacity(TRIALS);
    for _ in 0..TRIALS {
        a.own_and_wait(&[]);
        arp_capture.drain();
        na_capture.drain();
        let t0 = Instant::now();
        a.own(&[IpAddr::V4(VIP4), IpAddr::V6(VIP6)]);
        let (at4, _) = arp_capture
            .next(SETTLE, garp(VIP4, MAC_A))
            .expect("gratuitous ARP");
        let (at6, _) = na_capture
            .next(SETTLE, unsolicited_na(VIP6, MAC_A))
            .expect("unsolicited NA");
        v4.push(at4 - t0);
        v6.push(at6 - t0);
    }
    v4.sort();
    v6.sort();
    for (family, sorted) in [("IPv4 gratuitous ARP", &v4), ("IPv6 unsolicited NA", &v6)] {
        eprintln!(
            "FIGURE set_owned -> first {family} read in the client namespace, {TRIALS} trials: min {:.3} ms, p50 {:.3} ms, p90 {:.3} ms, max {:.3} ms",
            ms(sorted[0]),
            ms(percentile(sorted, 50)),
            ms(percentile(sorted, 90)),
            ms(sorted[sorted.len() - 1]),
        );
        // Generous: the goal is < 100 ms from Service assignment, of which this is a part.
        assert!(
            percentile(sorted, 50) < Duration::from_millis(50),
            "{family}: {sorted:?}"
        );
        assert!(
            sorted[sorted.len() - 1] < Duration::from_millis(250),
            "{family}: {sorted:?}"
        );
    }
}

#[test]
fn gratuitous_burst_follows_its_schedule_refreshes_and_stops_on_release() {
    require_root!("gratuitous_burst_follows_its_schedule_refreshes_and_stops_on_release");
    let lab = Lab::build("burst", &[NODE_A, CLIENT]);
    let arp_capture = Capture::start(&lab, "c", Kind::Arp);
    let na_capture = Capture::start(&lab, "c", Kind::NeighborAdvertisement);

    // Default burst. VIP6 is released at 1.6 s: its rounds at 2.2 and 4.4 s must not go out.
    {
        let a = Node::start(&lab, "a", MAC_A, Config::default());
        let t0 = Instant::now();
        a.own(&[IpAddr::V4(VIP4), IpAddr::V6(VIP6)]);
        let na_early = na_capture.all(Duration::from_millis(1600), unsolicited_na(VIP6, MAC_A));
        assert!(
            na_early.iter().all(|(_, src)| *src == VIP6),
            "by default NDP comes from the announced address"
        );

        a.own(&[IpAddr::V4(VIP4)]);
        let arps = arp_capture.all(
            Duration::from_millis(5000).saturating_sub(t0.elapsed()),
            garp(VIP4, MAC_A),
        );
        let na_late = na_capture.all(Duration::from_millis(10), unsolicited_na(VIP6, MAC_A));

        let arp_offsets = offsets(t0, &arps);
        eprintln!("FIGURE default burst, IPv4 frames at (ms): {arp_offsets:.1?}");
        eprintln!(
            "FIGURE default burst, IPv6 frames at (ms): {:.1?}",
            offsets(t0, &na_early)
        );
        let expected = [0.0, 500.0, 1100.0, 2200.0, 4400.0];
        assert_eq!(
            arps.len(),
            2 * expected.len(),
            "two frames per IPv4 round: {arp_offsets:?}"
        );
        for (pair, want) in arps.chunks(2).zip(expected) {
            let ops: BTreeSet<_> = pair.iter().map(|(_, op)| format!("{op:?}")).collect();
            assert_eq!(ops.len(), 2, "a round is one request and one reply");
            let at = ms(pair[0].0 - t0);
            assert!(
                (at - want).abs() < 150.0,
                "round expected at {want} ms, seen at {at} ms"
            );
        }
        assert_eq!(
            na_early.len(),
            3,
            "IPv6 rounds at 0, 500, 1100 ms: {:?}",
            offsets(t0, &na_early)
        );
        assert!(
            na_late.is_empty(),
            "IPv6 rounds continued after the release: {:?}",
            offsets(t0, &na_late)
        );
    }

    // Refresh: after a one-round burst, a round every 250 ms while owned, none after.
    // Also the link-local NDP source.
    let config = Config {
        burst: vec![Duration::ZERO],
        garp_refresh: Some(Duration::from_millis(250)),
        ndp_source: NdpSource::LinkLocal,
    };
    let link_local = lab.link("a", MAC_A).link_local;
    let a = Node::start(&lab, "a", MAC_A, config);
    arp_capture.drain();
    na_capture.drain();
    a.own(&[IpAddr::V4(VIP4), IpAddr::V6(VIP6)]);
    let owned = arp_capture.all(Duration::from_millis(1100), garp(VIP4, MAC_A));
    a.own_and_wait(&[]);
    let owned6 = na_capture.all(Duration::from_millis(10), unsolicited_na(VIP6, MAC_A));
    arp_capture.drain();
    na_capture.drain();
    let after = arp_capture.all(Duration::from_millis(600), garp(VIP4, MAC_A));
    let after6 = na_capture.all(Duration::from_millis(10), unsolicited_na(VIP6, MAC_A));
    eprintln!(
        "refresh every 250 ms: {} IPv4 frames, {} IPv6 frames in 1.1 s",
        owned.len(),
        owned6.len()
    );
    assert!(
        (8..=10).contains(&owned.len()),
        "expected 4-5 rounds (0, 250, 500, 750, 1000 ms), got {} frames",
        owned.len()
    );
    assert!(
        (4..=5).contains(&owned6.len()),
        "{} IPv6 rounds",
        owned6.len()
    );
    assert!(
        owned6.iter().all(|(_, src)| Some(*src) == link_local),
        "NDP source is not the link-local address: {owned6:?}"
    );
    assert!(
        after.is_empty() && after6.is_empty(),
        "refresh continued after the release"
    );
}
