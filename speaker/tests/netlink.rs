//! The netlink shell against the real kernel: a network namespace per test, holding a
//! veth pair (`eth0` and its peer `peer0`, both inside), addresses from 198.51.100.0/24
//! and 2001:db8::/32 only.
//!
//! Needs root (CI runs as root); without it each test says so loudly and passes. The
//! watcher runs on a thread that has entered the namespace (`setns`), with its own
//! current-thread runtime, so every netlink socket it opens belongs to the namespace.
//! Every wait is bounded in time and in count.

use std::collections::BTreeSet;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_speaker::interfaces::{Exclusions, Ineligible, Interface, check, eligible};
use ferrolb_speaker::netlink::{self, Interfaces, WatchOptions};
use tokio::sync::watch::Receiver;

const ETH0_MAC: [u8; 6] = [0x02, 0xf1, 0xb0, 0x00, 0x00, 0x11];
const PEER_MAC: [u8; 6] = [0x02, 0xf1, 0xb0, 0x00, 0x00, 0x01];

/// A network namespace that is deleted (its processes killed first) when dropped, also
/// when the test fails.
struct Netns {
    name: String,
}

impl Netns {
    /// `None` (with a loud message) when not root.
    fn new(tag: &str) -> Option<Netns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "\n*** SKIPPED netlink::{tag}: needs root to create network namespaces \
                 (CI runs these as root) ***\n"
            );
            return None;
        }
        let name = format!("flb-nl-{}-{tag}", std::process::id());
        // A namespace left by an earlier run that had the same pid and was killed.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        // Before any interface exists, so link-local addresses are usable at once.
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]);
        Some(ns)
    }

    /// `ip -n NS <args>`; panics with ip's message on failure.
    fn ip(&self, args: &str) {
        let mut all = vec!["-n", &self.name];
        all.extend(args.split_whitespace());
        run("ip", &all);
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// `eth0` (198.51.100.11/24, 2001:db8:51::11/64) and its peer `peer0`, both up.
    fn with_veth(self) -> Self {
        self.ip("link add eth0 type veth peer name peer0");
        self.ip("link set eth0 address 02:f1:b0:00:00:11");
        self.ip("link set peer0 address 02:f1:b0:00:00:01");
        self.ip("link set eth0 up");
        self.ip("link set peer0 up");
        self.ip("addr add 198.51.100.11/24 dev eth0");
        self.ip("addr add 2001:db8:51::11/64 dev eth0 nodad");
        self
    }

    /// Runs `make()`'s future to completion on a fresh thread inside the namespace.
    fn block_on<F, Fut>(&self, make: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(move || {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: a valid namespace descriptor; setns only affects this thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(make())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn by_name<'a>(table: &'a [Interface], name: &str) -> Option<&'a Interface> {
    table.iter().find(|i| i.name == name)
}

/// Waits until `pred` holds for the published table; returns it and how long it took.
async fn wait_for(
    rx: &mut Receiver<Interfaces>,
    what: &str,
    limit: Duration,
    pred: impl Fn(&[Interface]) -> bool,
) -> (Interfaces, Duration) {
    let start = Instant::now();
    // Bounded in count as well: each round consumes one published table.
    for _ in 0..100_000 {
        let table = rx.borrow_and_update().clone();
        if pred(&table) {
            return (table, start.elapsed());
        }
        let Some(left) = limit.checked_sub(start.elapsed()) else {
            break;
        };
        match tokio::time::timeout(left, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the watcher stopped while waiting for {what}"),
            Err(_) => break,
        }
    }
    panic!(
        "no table with {what} within {limit:?}; last one: {:#?}",
        rx.borrow()
    );
}

/// Polls `list()` until `pred` holds (the kernel finishes bringing a link up
/// asynchronously, so a dump right after `ip link set up` may predate it).
async fn list_until(what: &str, pred: impl Fn(&[Interface]) -> bool) -> Vec<Interface> {
    let start = Instant::now();
    let mut last = Vec::new();
    for _ in 0..200 {
        last = netlink::list().await.expect("list");
        if pred(&last) {
            return last;
        }
        if start.elapsed() > Duration::from_secs(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("list() never showed {what}; last: {last:#?}");
}

/// Brings a link up or down with SIOCSIFFLAGS from the calling thread's namespace: one
/// synchronous syscall, so a latency measured from just before it is the kernel's and the
/// watcher's, not a process start's.
fn set_link_up(name: &str, up: bool) {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("socket for ioctl");
    // SAFETY: ifreq is plain data; the name is NUL-terminated within IFNAMSIZ; the union
    // member read back is the one SIOCGIFFLAGS writes.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        assert!(name.len() < libc::IFNAMSIZ);
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        let fd = sock.as_raw_fd();
        assert_eq!(
            libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req),
            0,
            "SIOCGIFFLAGS {name}"
        );
        let up_flag = libc::IFF_UP as libc::c_short;
        if up {
            req.ifr_ifru.ifru_flags |= up_flag;
        } else {
            req.ifr_ifru.ifru_flags &= !up_flag;
        }
        assert_eq!(
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req),
            0,
            "SIOCSIFFLAGS {name}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn list_sees_the_veth_with_mac_addresses_and_carrier() {
    let Some(ns) = Netns::new("list") else { return };
    let ns = ns.with_veth();
    let table = ns.block_on(|| {
        list_until("eth0 with carrier and a link-local address", |t| {
            by_name(t, "eth0").is_some_and(|i| i.carrier && i.link_local.is_some())
                && by_name(t, "peer0").is_some_and(|i| i.carrier)
        })
    });
    let eth0 = by_name(&table, "eth0").expect("eth0 listed");
    assert_eq!(eth0.mac, Some(ETH0_MAC));
    assert!(eth0.up && eth0.carrier && eth0.broadcast && !eth0.noarp);
    assert_eq!(eth0.master, None);
    assert_eq!(
        eth0.ipv4,
        vec!["198.51.100.11".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert!(
        eth0.ipv6
            .contains(&("2001:db8:51::11".parse().unwrap(), 64)),
        "{eth0:?}"
    );
    // Derived from the MAC (EUI-64), the kernel's default.
    assert_eq!(
        eth0.link_local,
        Some("fe80::f1:b0ff:fe00:11".parse().unwrap())
    );
    assert!(eth0.arp_capable() && eth0.ndp_capable());
    assert_eq!(by_name(&table, "peer0").and_then(|i| i.mac), Some(PEER_MAC));

    // The namespace's loopback: no MAC, excluded by name, and down here anyway.
    let lo = by_name(&table, "lo").expect("lo listed");
    assert_eq!(lo.mac, None);
    assert!(!lo.up);

    // A veth's peer is created first, so it has the lower index.
    let names: BTreeSet<&str> = eligible(&table, &Exclusions::default(), None)
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["eth0", "peer0"]));
    let only_eth0: BTreeSet<String> = ["eth0".to_string()].into();
    assert_eq!(
        eligible(&table, &Exclusions::default(), Some(&only_eth0)).len(),
        1
    );
    // Sorted by index, as the kernel numbers them.
    assert!(table.windows(2).all(|w| w[0].index < w[1].index));
}

#[test]
fn carrier_loss_is_published_within_milliseconds() {
    let Some(ns) = Netns::new("carrier") else {
        return;
    };
    let ns = ns.with_veth();
    let name = ns.name.clone();
    let (first, trials) = ns.block_on(|| async move {
        let watch = netlink::watch(WatchOptions::default())
            .await
            .expect("watch");
        let mut rx = watch.subscribe();
        let carrier = |want: bool| {
            move |t: &[Interface]| by_name(t, "eth0").is_some_and(|i| i.carrier == want)
        };
        wait_for(
            &mut rx,
            "eth0 with carrier",
            Duration::from_secs(2),
            carrier(true),
        )
        .await;

        // As an operator would do it: `ip link set peer0 down`, timed from before the
        // command starts (so this includes starting `ip`).
        let start = Instant::now();
        let cmd = tokio::task::spawn_blocking(move || {
            run("ip", &["-n", &name, "link", "set", "peer0", "down"])
        });
        let (table, _) = wait_for(
            &mut rx,
            "eth0 without carrier",
            Duration::from_secs(2),
            carrier(false),
        )
        .await;
        let first = start.elapsed();
        cmd.await.expect("ip link set down");
        let eth0 = by_name(&table, "eth0").expect("eth0");
        assert!(eth0.up, "eth0 itself stays administratively up");
        assert_eq!(
            check(eth0, &Exclusions::default(), None),
            Err(Ineligible::NoCarrier)
        );

        // Then timed trials with a single syscall as the trigger, down and up again.
        let mut trials = Vec::new();
        for _ in 0..20 {
            set_link_up("peer0", true);
            wait_for(
                &mut rx,
                "carrier back",
                Duration::from_secs(2),
                carrier(true),
            )
            .await;
            let start = Instant::now();
            set_link_up("peer0", false);
            wait_for(
                &mut rx,
                "carrier lost",
                Duration::from_secs(2),
                carrier(false),
            )
            .await;
            trials.push(start.elapsed());
        }
        assert_eq!(watch.stats().overruns, 0);
        (first, trials)
    });
    let mut sorted = trials.clone();
    sorted.sort();
    eprintln!(
        "carrier loss -> published table: `ip link set peer0 down` {first:?} (from before \
         spawning ip); SIOCSIFFLAGS trials n={} min {:?} p50 {:?} max {:?}",
        sorted.len(),
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    assert!(first < Duration::from_secs(2), "{first:?}");
    assert!(
        sorted.iter().all(|d| *d < Duration::from_secs(2)),
        "{sorted:?}"
    );
}

#[test]
fn address_and_link_changes_are_published() {
    let Some(ns) = Netns::new("addr") else { return };
    let ns = ns.with_veth();
    let name = ns.name.clone();
    ns.block_on(|| async move {
        let ip = |args: &'static str| {
            let name = name.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut all = vec!["-n", name.as_str()];
                    all.extend(args.split_whitespace());
                    run("ip", &all)
                })
                .await
                .expect("ip")
            }
        };
        let watch = netlink::watch(WatchOptions::default())
            .await
            .expect("watch");
        let mut rx = watch.subscribe();
        let limit = Duration::from_secs(2);
        let v4: std::net::Ipv4Addr = "198.51.100.12".parse().unwrap();
        let v6: std::net::Ipv6Addr = "2001:db8:51::12".parse().unwrap();

        let start = Instant::now();
        ip("addr add 198.51.100.12/24 dev eth0").await;
        wait_for(&mut rx, "198.51.100.12 on eth0", limit, |t| {
            by_name(t, "eth0").is_some_and(|i| i.ipv4.contains(&v4))
        })
        .await;
        eprintln!(
            "IPv4 address added -> published {:?} after `ip addr add` was spawned",
            start.elapsed()
        );

        ip("addr add 2001:db8:51::12/64 dev peer0 nodad").await;
        wait_for(&mut rx, "2001:db8:51::12 on peer0", limit, |t| {
            by_name(t, "peer0").is_some_and(|i| i.ipv6.contains(&(v6, 64)))
        })
        .await;

        ip("addr del 198.51.100.12/24 dev eth0").await;
        ip("addr del 2001:db8:51::12/64 dev peer0").await;
        let (table, _) = wait_for(&mut rx, "both addresses gone", limit, |t| {
            by_name(t, "eth0").is_some_and(|i| !i.ipv4.contains(&v4))
                && by_name(t, "peer0").is_some_and(|i| !i.ipv6.iter().any(|(a, _)| *a == v6))
        })
        .await;
        let eth0 = by_name(&table, "eth0").expect("eth0");
        assert_eq!(
            eth0.ipv4,
            vec!["198.51.100.11".parse::<std::net::Ipv4Addr>().unwrap()]
        );

        // A new link appears with its MAC, a rename is followed, deletion removes both
        // ends of the pair.
        ip("link add eth1 type veth peer name peer1").await;
        ip("link set eth1 address 02:f1:b0:00:00:21").await;
        wait_for(&mut rx, "eth1 with its MAC", limit, |t| {
            by_name(t, "eth1").is_some_and(|i| i.mac == Some([2, 0xf1, 0xb0, 0, 0, 0x21]))
        })
        .await;
        ip("link set eth1 name uplink1").await;
        wait_for(&mut rx, "eth1 renamed", limit, |t| {
            by_name(t, "eth1").is_none() && by_name(t, "uplink1").is_some()
        })
        .await;
        ip("link del eth0").await;
        let (table, _) = wait_for(&mut rx, "the eth0 pair gone", limit, |t| {
            by_name(t, "eth0").is_none() && by_name(t, "peer0").is_none()
        })
        .await;
        assert!(by_name(&table, "uplink1").is_some());
        let stats = watch.stats();
        assert_eq!(
            (stats.overruns, stats.failures, stats.dumps),
            (0, 0, 1),
            "{stats:?}"
        );
    });
}

#[test]
fn noarp_and_enslaved_interfaces_are_published_and_not_eligible() {
    let Some(ns) = Netns::new("flags") else {
        return;
    };
    let ns = ns.with_veth();
    let name = ns.name.clone();
    ns.block_on(|| async move {
        let ip = |args: &'static str| {
            let name = name.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut all = vec!["-n", name.as_str()];
                    all.extend(args.split_whitespace());
                    run("ip", &all)
                })
                .await
                .expect("ip")
            }
        };
        let ex = Exclusions::default();
        let watch = netlink::watch(WatchOptions::default())
            .await
            .expect("watch");
        let mut rx = watch.subscribe();
        let limit = Duration::from_secs(2);
        wait_for(&mut rx, "eth0 and peer0 eligible", limit, |t| {
            eligible(t, &ex, None).len() == 2
        })
        .await;

        ip("link set eth0 arp off").await;
        let (table, _) = wait_for(&mut rx, "eth0 NOARP", limit, |t| {
            by_name(t, "eth0").is_some_and(|i| i.noarp)
        })
        .await;
        let eth0 = by_name(&table, "eth0").expect("eth0");
        assert_eq!(check(eth0, &ex, None), Err(Ineligible::NoArp));
        ip("link set eth0 arp on").await;
        wait_for(&mut rx, "eth0 ARP again", limit, |t| {
            by_name(t, "eth0").is_some_and(|i| !i.noarp && check(i, &ex, None).is_ok())
        })
        .await;

        ip("link add br0 type bridge").await;
        ip("link set peer0 master br0").await;
        let (table, _) = wait_for(&mut rx, "peer0 enslaved to br0", limit, |t| {
            let br0 = by_name(t, "br0").map(|b| b.index);
            br0.is_some() && by_name(t, "peer0").is_some_and(|p| p.master == br0)
        })
        .await;
        let br0 = by_name(&table, "br0").expect("br0").index;
        let peer0 = by_name(&table, "peer0").expect("peer0");
        // The bridge's own AF_BRIDGE notifications about its port did not replace the link.
        assert_eq!(peer0.mac, Some(PEER_MAC));
        assert_eq!(check(peer0, &ex, None), Err(Ineligible::Enslaved(br0)));
        let names: Vec<&str> = eligible(&table, &ex, None)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(names, ["eth0"], "br0 is down; peer0 is a port");

        ip("link set peer0 nomaster").await;
        let (table, _) = wait_for(&mut rx, "peer0 released", limit, |t| {
            by_name(t, "peer0").is_some_and(|p| p.master.is_none())
        })
        .await;
        // Leaving the bridge sends an AF_BRIDGE RTM_DELLINK for the port: peer0 must stay.
        assert!(by_name(&table, "peer0").is_some_and(|p| p.mac == Some(PEER_MAC)));
        ip("link set peer0 down").await;
        ip("link set peer0 up").await;
        wait_for(&mut rx, "peer0 eligible again", limit, |t| {
            by_name(t, "peer0").is_some_and(|p| check(p, &ex, None).is_ok())
        })
        .await;
    });
}

#[test]
fn an_overrun_relists_everything() {
    let Some(ns) = Netns::new("overrun") else {
        return;
    };
    let ns = ns.with_veth();
    let name = ns.name.clone();
    const N: u8 = 200;
    let batch = std::env::temp_dir().join(format!("{name}.batch"));
    {
        let mut f = File::create(&batch).expect("batch file");
        for i in 0..N {
            writeln!(f, "addr add 198.51.100.{}/24 dev eth0", 20 + u32::from(i)).expect("write");
        }
    }
    let batch_path = batch.to_string_lossy().into_owned();
    let stats = ns.block_on(|| async move {
        // The smallest queue the kernel allows: a few notifications fill it.
        let opts = WatchOptions {
            recv_buffer: 0,
            ..WatchOptions::default()
        };
        let watch = netlink::watch(opts).await.expect("watch");
        let mut rx = watch.subscribe();
        // Deliberately blocks the runtime's only thread: the watcher cannot read while
        // `ip` adds every address, so its queue overflows for certain.
        run("ip", &["-n", &name, "-batch", &batch_path]);
        let start = Instant::now();
        let (table, _) = wait_for(&mut rx, "all addresses", Duration::from_secs(5), |t| {
            by_name(t, "eth0").is_some_and(|i| i.ipv4.len() == 1 + usize::from(N))
        })
        .await;
        eprintln!(
            "overrun: {N} addresses visible {:?} after the burst; {:?}",
            start.elapsed(),
            watch.stats()
        );
        assert!(by_name(&table, "peer0").is_some());
        watch.stats()
    });
    let _ = std::fs::remove_file(&batch);
    assert!(stats.overruns >= 1, "{stats:?}");
    assert!(stats.dumps >= 2, "{stats:?}");
    assert_eq!(stats.failures, 0, "{stats:?}");
}
