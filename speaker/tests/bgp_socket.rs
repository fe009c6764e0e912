//! BGP's TCP sockets against a real kernel, across a routed hop, in network namespaces:
//! the hop limit (a single-hop eBGP session cannot cross a router), TCP MD5 (a wrong key
//! never connects), the source address, and the passive listener closing connections
//! from anyone who is not a configured peer.
//!
//! Each test builds `flb-bgps-<pid>-<tag>-{a,r,b}`: host `a` (198.51.100.2,
//! 2001:db8:a::2) reaches host `b` (203.0.113.2, 2001:db8:b::2) through router `r`.
//! Sockets are created on threads that entered a namespace (a socket belongs to the
//! namespace it was created in). A guard deletes the namespaces, also on panic.
//!
//! Needs root (namespaces, `setns`): without it every test prints a SKIP line and passes.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ferrolb_speaker::bgp::socket::{self, Dial, Listener, Md5Key, SocketError};
use tokio::io::AsyncReadExt;

const A4: &str = "198.51.100.2";
const A4_OTHER: &str = "198.51.100.3";
const A6: &str = "2001:db8:a::2";
const B4: &str = "203.0.113.2";
const B6: &str = "2001:db8:b::2";
const PORT: u16 = 1179;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! require_root {
    ($test:literal) => {
        if !is_root() {
            eprintln!(
                "SKIP bgp_socket::{}: needs root (network namespaces); CI runs it as root",
                $test
            );
            return;
        }
    };
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three namespaces a — r — b, deleted on drop.
struct Net {
    prefix: String,
    created: Vec<String>,
}

impl Net {
    fn build(tag: &str) -> Net {
        let mut net = Net {
            prefix: format!("flb-bgps-{}-{tag}", std::process::id()),
            created: Vec::new(),
        };
        for h in ["a", "r", "b"] {
            let ns = net.ns(h);
            sh(&format!("ip netns add {ns}"));
            net.created.push(ns.clone());
            sh(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 \
                 net.ipv6.conf.default.accept_dad=0 net.ipv4.ip_forward=1 \
                 net.ipv6.conf.all.forwarding=1"
            ));
            sh(&format!("ip -n {ns} link set lo up"));
        }
        let (a, r, b) = (net.ns("a"), net.ns("r"), net.ns("b"));
        sh(&format!(
            "ip -n {r} link add ra type veth peer name eth0 netns {a}"
        ));
        sh(&format!(
            "ip -n {r} link add rb type veth peer name eth0 netns {b}"
        ));
        for (ns, dev, addrs) in [
            (&a, "eth0", ["198.51.100.2/24", "2001:db8:a::2/64"]),
            (&r, "ra", ["198.51.100.1/24", "2001:db8:a::1/64"]),
            (&r, "rb", ["203.0.113.1/24", "2001:db8:b::1/64"]),
            (&b, "eth0", ["203.0.113.2/24", "2001:db8:b::2/64"]),
        ] {
            for addr in addrs {
                sh(&format!("ip -n {ns} addr add {addr} dev {dev} nodad"));
            }
            sh(&format!("ip -n {ns} link set {dev} up"));
        }
        sh(&format!("ip -n {a} addr add {A4_OTHER}/24 dev eth0"));
        sh(&format!("ip -n {a} route add default via 198.51.100.1"));
        sh(&format!("ip -n {a} -6 route add default via 2001:db8:a::1"));
        sh(&format!("ip -n {b} route add default via 203.0.113.1"));
        sh(&format!("ip -n {b} -6 route add default via 2001:db8:b::1"));
        net
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `fut` on this thread after moving the thread into namespace `ns`: call it on a
/// thread of its own.
fn in_ns<T>(ns: &str, fut: impl std::future::Future<Output = T>) -> T {
    let f = File::open(format!("/var/run/netns/{ns}")).expect("namespace file");
    // SAFETY: a valid namespace descriptor; setns only affects this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(fut)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// What the listener saw before being told to stop (or 10 s passed).
#[derive(Debug, Default)]
struct Seen {
    accepted: Vec<IpAddr>,
    rejected: Vec<IpAddr>,
}

/// Listens in `ns` for configured `peers` until `stop` fires; the bound port is sent on
/// `ready` first.
fn listen_in(
    ns: String,
    peers: BTreeMap<IpAddr, Option<Md5Key>>,
    ready: mpsc::Sender<()>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> thread::JoinHandle<Seen> {
    thread::spawn(move || {
        in_ns(&ns, async move {
            let mut l = Listener::bind(PORT).expect("listen");
            l.set_peers(peers).expect("peers");
            ready.send(()).expect("ready");
            let mut seen = Seen::default();
            let mut kept = Vec::new();
            let mut stop = stop;
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            let mut rejected = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = &mut deadline => break,
                    r = l.accept(|from| rejected.push(from.ip())) => {
                        let (stream, from) = r.expect("accept");
                        seen.accepted.push(from.ip());
                        kept.push(stream);
                    }
                }
            }
            // A connection the dialer saw complete may still wait in the backlog: take
            // what is there (bounded) before answering.
            while let Ok(r) = tokio::time::timeout(
                Duration::from_millis(300),
                l.accept(|from| rejected.push(from.ip())),
            )
            .await
            {
                let (stream, from) = r.expect("accept");
                seen.accepted.push(from.ip());
                kept.push(stream);
            }
            seen.rejected = rejected;
            seen
        })
    })
}

fn dial(peer: &str, source: Option<&str>, hop_limit: u8, key: Option<&[u8]>) -> Dial {
    Dial {
        peer: SocketAddr::new(ip(peer), PORT),
        source: source.map(ip),
        hop_limit,
        key: key.map(|k| Md5Key::new(k).expect("key")),
    }
}

#[test]
fn single_hop_sessions_cannot_cross_a_router() {
    require_root!("single_hop_sessions_cannot_cross_a_router");
    let net = Net::build("ttl");
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let peers = [(ip(A4), None), (ip(A6), None)].into();
    let listener = listen_in(net.ns("b"), peers, ready_tx, stop_rx);
    ready
        .recv_timeout(Duration::from_secs(5))
        .expect("listening");
    let results = thread::scope(|s| {
        s.spawn(|| {
            in_ns(&net.ns("a"), async {
                let t = Duration::from_millis(1500);
                [
                    socket::connect(&dial(B4, None, 1, None), t).await.is_ok(),
                    socket::connect(&dial(B6, None, 1, None), t).await.is_ok(),
                    socket::connect(&dial(B4, None, 2, None), t).await.is_ok(),
                    socket::connect(&dial(B6, None, 2, None), t).await.is_ok(),
                ]
            })
        })
        .join()
        .expect("dialer")
    });
    let _ = stop.send(());
    let seen = listener.join().expect("listener");
    assert_eq!(
        results,
        [false, false, true, true],
        "hop limit 1 must not cross r, 2 must (v4, v6, v4, v6)"
    );
    // The two families dial concurrently: accepted in either order.
    let mut accepted = seen.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, [ip(A4), ip(A6)]);
}

#[test]
fn md5_source_address_and_unknown_peers() {
    require_root!("md5_source_address_and_unknown_peers");
    let net = Net::build("md5");
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let peers = [
        (ip(A4), Some(Md5Key::new(b"v4-secret").expect("key"))),
        (ip(A6), Some(Md5Key::new(b"v6-secret").expect("key"))),
    ]
    .into();
    let listener = listen_in(net.ns("b"), peers, ready_tx, stop_rx);
    ready
        .recv_timeout(Duration::from_secs(5))
        .expect("listening");
    let (right4, wrong4, unsigned4, right6, stranger_closed) = thread::scope(|s| {
        s.spawn(|| {
            in_ns(&net.ns("a"), async {
                let t = Duration::from_millis(1500);
                let right4 = socket::connect(&dial(B4, Some(A4), 255, Some(b"v4-secret")), t).await;
                let wrong4 = socket::connect(&dial(B4, Some(A4), 255, Some(b"v4-wrong")), t).await;
                let unsigned4 = socket::connect(&dial(B4, Some(A4), 255, None), t).await;
                let right6 = socket::connect(&dial(B6, None, 255, Some(b"v6-secret")), t).await;
                // Not a configured peer: the kernel completes the handshake, the
                // listener closes the connection at once.
                let stranger = socket::connect(&dial(B4, Some(A4_OTHER), 255, None), t).await;
                let closed = match stranger {
                    Ok(mut s) => {
                        let mut buf = [0u8; 16];
                        matches!(
                            tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await,
                            Ok(Ok(0)) | Ok(Err(_))
                        )
                    }
                    Err(e) => panic!("the stranger's handshake should complete: {e}"),
                };
                (
                    right4.map(|s| s.local_addr().ok()),
                    wrong4.err(),
                    unsigned4.err(),
                    right6.is_ok(),
                    closed,
                )
            })
        })
        .join()
        .expect("dialer")
    });
    let _ = stop.send(());
    let seen = listener.join().expect("listener");
    let local = right4
        .expect("the right key connects")
        .expect("local address");
    assert_eq!(local.ip(), ip(A4), "bound to the source address");
    assert!(
        matches!(wrong4, Some(SocketError::Timeout { .. })),
        "a wrong key is never answered: {wrong4:?}"
    );
    assert!(unsigned4.is_some(), "an unsigned SYN is never answered");
    assert!(right6, "the IPv6 key connects");
    assert!(stranger_closed, "an unknown peer is closed at once");
    // The two families dial concurrently: accepted in either order.
    let mut accepted = seen.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, [ip(A4), ip(A6)]);
    assert_eq!(seen.rejected, [ip(A4_OTHER)]);
}
