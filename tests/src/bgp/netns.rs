//! A small network of namespaces for one test: a router namespace holding a bridge
//! (`br0`) and N host namespaces whose `eth0` is plugged into it.
//!
//! ```text
//!   <name>-r: br0 198.51.100.1/24 2001:db8:e::1/64   (bridge ports p1 … pN)
//!   <name>-hK: eth0 198.51.100.(10+K)/24 2001:db8:e::(10+K)/64
//! ```
//! Names are `flbt-<tag>-<pid>-…`, so parallel tests and test binaries never collide.
//! Documentation addresses only. Dropping a [`Net`] kills every process left in its
//! namespaces, deletes them and (unless the thread is panicking, so logs stay for a
//! post-mortem) removes its scratch directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Result, io, run};

/// Prefix of every namespace this harness creates.
pub const NS_PREFIX: &str = "flbt-";

/// One namespace of a [`Net`] with its LAN addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub ns: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

impl Host {
    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 {
            self.ipv6.into()
        } else {
            self.ipv4.into()
        }
    }
}

/// The router namespace and its hosts; see the module documentation.
#[derive(Debug)]
pub struct Net {
    pub router: Host,
    pub hosts: Vec<Host>,
    /// Scratch directory for configurations, sockets and logs.
    pub dir: PathBuf,
    created: Vec<String>,
}

/// The address of host `k` (1-based), or of the router for `k == 0`.
pub fn address(k: usize) -> (Ipv4Addr, Ipv6Addr) {
    let last = if k == 0 { 1 } else { 10 + k as u8 };
    (
        Ipv4Addr::new(198, 51, 100, last),
        Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, u16::from(last)),
    )
}

fn prefix_for(tag: &str) -> String {
    format!("{NS_PREFIX}{tag}-{}", std::process::id())
}

impl Net {
    /// Builds the router namespace and `hosts` host namespaces (1 ≤ hosts ≤ 200).
    pub fn new(tag: &str, hosts: usize) -> Result<Net> {
        assert!((1..=200).contains(&hosts), "1 to 200 hosts");
        let base = prefix_for(tag);
        let dir = std::env::temp_dir().join(&base);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let (r4, r6) = address(0);
        let mut net = Net {
            router: Host {
                ns: format!("{base}-r"),
                ipv4: r4,
                ipv6: r6,
            },
            hosts: (1..=hosts)
                .map(|k| {
                    let (v4, v6) = address(k);
                    Host {
                        ns: format!("{base}-h{k}"),
                        ipv4: v4,
                        ipv6: v6,
                    }
                })
                .collect(),
            dir,
            created: Vec::new(),
        };
        // A leftover from a killed run of the same pid would make `netns add` fail.
        for ns in net.namespaces() {
            delete_namespace(&ns);
        }
        net.build()?;
        Ok(net)
    }

    fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.router.ns.clone())
            .chain(self.hosts.iter().map(|h| h.ns.clone()))
            .collect()
    }

    fn add_namespace(&mut self, ns: &str) -> Result<()> {
        run(&["ip", "netns", "add", ns])?;
        self.created.push(ns.to_string());
        // Addresses must be usable at once: no duplicate address detection.
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn build(&mut self) -> Result<()> {
        let r = self.router.clone();
        self.add_namespace(&r.ns)?;
        run(&["ip", "-n", &r.ns, "link", "add", "br0", "type", "bridge"])?;
        run(&[
            "ip",
            "-n",
            &r.ns,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        add_addresses(&r, "br0")?;
        for (i, h) in self.hosts.clone().iter().enumerate() {
            self.add_namespace(&h.ns)?;
            let port = format!("p{}", i + 1);
            run(&[
                "ip", "-n", &r.ns, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &h.ns,
            ])?;
            run(&[
                "ip", "-n", &r.ns, "link", "set", &port, "master", "br0", "up",
            ])?;
            add_addresses(h, "eth0")?;
        }
        Ok(())
    }

    /// Host `k` (1-based).
    pub fn host(&self, k: usize) -> &Host {
        &self.hosts[k - 1]
    }

    /// A scratch subdirectory (created).
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d).map_err(io(format!("cannot create {}", d.display())))?;
        Ok(d)
    }

    /// Runs `argv` inside namespace `ns`.
    pub fn exec<S: AsRef<str>>(&self, ns: &str, argv: &[S]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend(argv.iter().map(AsRef::as_ref));
        run(&full)
    }

    /// Brings a host's `eth0` down or up (a cut link, processes alive).
    pub fn set_link(&self, k: usize, up: bool) -> Result<()> {
        let port = format!("p{k}");
        let state = if up { "up" } else { "down" };
        run(&["ip", "-n", &self.router.ns, "link", "set", &port, state])?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn add_addresses(h: &Host, dev: &str) -> Result<()> {
    run(&[
        "ip",
        "-n",
        &h.ns,
        "addr",
        "add",
        &format!("{}/24", h.ipv4),
        "dev",
        dev,
    ])?;
    run(&[
        "ip",
        "-n",
        &h.ns,
        "addr",
        "add",
        &format!("{}/64", h.ipv6),
        "dev",
        dev,
        "nodad",
    ])?;
    run(&["ip", "-n", &h.ns, "link", "set", dev, "up"])?;
    Ok(())
}

/// The pids of every process in namespace `ns`.
pub fn pids(ns: &str) -> Vec<i32> {
    run(&["ip", "netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills whatever runs in `ns` (bounded wait), then deletes it.
pub fn delete_namespace(ns: &str) {
    if !Path::new("/run/netns").join(ns).exists() {
        return;
    }
    for _ in 0..50 {
        let left = pids(ns);
        if left.is_empty() {
            break;
        }
        for pid in left {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = run(&["ip", "netns", "del", ns]);
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            delete_namespace(ns);
        }
        if std::thread::panicking() {
            eprintln!("bgp harness: logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A namespace `far` two hops from the speaker: host 1 → router namespace (forwarding)
/// → far, on 203.0.113.252/30 (outside the Service addresses used here). Deleted on
/// drop.
pub struct Far {
    pub ns: String,
    pub addr: Ipv4Addr,
}

impl Far {
    pub fn new(net: &Net) -> Result<Far> {
        let ns = format!("{}-far", net.router.ns.trim_end_matches("-r"));
        delete_namespace(&ns);
        run(&["ip", "netns", "add", &ns])?;
        let far = Far {
            ns,
            addr: Ipv4Addr::new(203, 0, 113, 254),
        };
        let r = &net.router.ns;
        let f = far.ns.as_str();
        for argv in [
            vec!["ip", "-n", f, "link", "set", "lo", "up"],
            vec![
                "ip", "-n", r, "link", "add", "xfar", "type", "veth", "peer", "name", "eth0",
                "netns", f,
            ],
            vec![
                "ip",
                "-n",
                r,
                "addr",
                "add",
                "203.0.113.253/30",
                "dev",
                "xfar",
            ],
            vec!["ip", "-n", r, "link", "set", "xfar", "up"],
            vec![
                "ip",
                "-n",
                f,
                "addr",
                "add",
                "203.0.113.254/30",
                "dev",
                "eth0",
            ],
            vec!["ip", "-n", f, "link", "set", "eth0", "up"],
            vec![
                "ip",
                "-n",
                f,
                "route",
                "add",
                "default",
                "via",
                "203.0.113.253",
            ],
            vec![
                "ip",
                "-n",
                &net.host(1).ns,
                "route",
                "add",
                "203.0.113.252/30",
                "via",
                "198.51.100.1",
            ],
            vec![
                "ip",
                "netns",
                "exec",
                r,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        ] {
            run(&argv)?;
        }
        Ok(far)
    }
}

impl Drop for Far {
    fn drop(&mut self) {
        delete_namespace(&self.ns);
    }
}
