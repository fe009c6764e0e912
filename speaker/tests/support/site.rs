//! A one-node Layer2 site in network namespaces, for the tests and benches that run the
//! real `ferrolb-speaker` binary on a standalone directory.
//!
//! Namespaces `<prefix>-lan` (a bridge), `<prefix>-node` (the speaker, `eth0`
//! 192.0.2.11/24 and 2001:db8:ff::11/64) and `<prefix>-client` (`eth0` 192.0.2.100/24
//! and 2001:db8:ff::100/64). The directory holds one Node (`node1`, Ready), an
//! IPAddressPool `lan` (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), an
//! L2Advertisement, and the Services given, each with an EndpointSlice on `node1`; the
//! controller's record (`.ferrolb/assignments.yaml`) is written separately, as the
//! controller would. Dropping the [`Site`] stops the speaker, kills whatever runs in the
//! namespaces, deletes them and removes the directory, also when a test panics.
//!
//! Only documentation addresses (RFC 5737, RFC 3849) are used.

#![allow(dead_code)] // each test or bench uses part of it

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const NODE_IP4: &str = "192.0.2.11";
pub const NODE_IP6: &str = "2001:db8:ff::11";
pub const CLIENT_IP4: &str = "192.0.2.100";
pub const CLIENT_IP6: &str = "2001:db8:ff::100";

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command given as one line; arguments never contain spaces here.
pub fn run(line: &str) -> Output {
    let mut words = line.split_whitespace();
    let program = words.next().unwrap_or_default();
    Command::new(program)
        .args(words)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(line: &str) -> String {
    let out = run(line);
    assert!(
        out.status.success(),
        "`{line}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 5 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    for _ in 0..100_000 {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// One Service of the site: its name and the addresses the controller assigned it.
pub struct Svc {
    pub name: String,
    pub ips: Vec<IpAddr>,
}

pub struct Site {
    prefix: String,
    created: Vec<String>,
    pub dir: PathBuf,
    speaker: Option<Child>,
}

impl Site {
    /// Builds the namespaces and an empty directory. `tag` keeps names unique per test.
    pub fn build(tag: &str) -> Site {
        let prefix = format!("flb-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".ferrolb")).expect("creating the site directory");
        let mut site = Site {
            prefix,
            created: Vec::new(),
            dir,
            speaker: None,
        };
        let lan = site.add_namespace("lan");
        ok(&format!(
            "ip -n {lan} link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
        ));
        ok(&format!("ip -n {lan} link set br0 up"));
        for (suffix, ip4, ip6) in [
            ("node", NODE_IP4, NODE_IP6),
            ("client", CLIENT_IP4, CLIENT_IP6),
        ] {
            let ns = site.add_namespace(suffix);
            let port = format!("p-{suffix}");
            ok(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 \
                 net.ipv6.conf.default.accept_dad=0"
            ));
            ok(&format!(
                "ip -n {lan} link add {port} type veth peer name eth0 netns {ns}"
            ));
            ok(&format!("ip -n {lan} link set {port} master br0 up"));
            ok(&format!("ip -n {ns} link set lo up"));
            ok(&format!("ip -n {ns} link set eth0 up"));
            ok(&format!("ip -n {ns} addr add {ip4}/24 dev eth0"));
            ok(&format!("ip -n {ns} addr add {ip6}/64 dev eth0 nodad"));
        }
        // The node's link-local address must be usable before the speaker starts.
        let node = site.ns("node");
        let ll = wait_for(Duration::from_secs(5), || {
            let out = run(&format!("ip -n {node} -6 -o addr show dev eth0 scope link"));
            let text = String::from_utf8_lossy(&out.stdout);
            text.contains("inet6") && !text.contains("tentative")
        });
        assert!(ll, "{node}: eth0 has no usable link-local address");
        site
    }

    fn add_namespace(&mut self, suffix: &str) -> String {
        let name = self.ns(suffix);
        ok(&format!("ip netns add {name}"));
        self.created.push(name.clone());
        name
    }

    pub fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// `cmd` run inside namespace `suffix`.
    pub fn exec(&self, suffix: &str, cmd: &str) -> Output {
        run(&format!("ip netns exec {} {cmd}", self.ns(suffix)))
    }

    /// Writes the cluster objects: the node, the pool, the advertisement and `services`.
    pub fn write_inputs(&self, services: &[Svc]) {
        let mut y = format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: node1}}\nstatus:\n  \
             conditions: [{{type: Ready, status: \"True\"}}]\n  \
             addresses: [{{type: InternalIP, address: {NODE_IP4}}}]\n---\n\
             apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\n\
             metadata: {{name: lan, namespace: ferrolb-system}}\n\
             spec: {{addresses: [198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32]}}\n---\n\
             apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\n\
             metadata: {{name: lan, namespace: ferrolb-system}}\nspec: {{ipAddressPools: [lan]}}\n"
        );
        for s in services {
            let families: Vec<&str> = s
                .ips
                .iter()
                .map(|ip| if ip.is_ipv4() { "IPv4" } else { "IPv6" })
                .collect();
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {n}, namespace: default}}\n\
                 spec: {{type: LoadBalancer, ipFamilies: [{f}], ipFamilyPolicy: {p}, ports: [{{port: 80}}]}}\n\
                 ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                 metadata: {{name: {n}-1, namespace: default, labels: {{kubernetes.io/service-name: {n}}}}}\n\
                 addressType: IPv4\n\
                 endpoints: [{{addresses: [10.244.1.5], nodeName: node1, conditions: {{ready: true}}}}]\n",
                n = s.name,
                f = families.join(", "),
                p = if families.len() > 1 {
                    "RequireDualStack"
                } else {
                    "SingleStack"
                },
            );
        }
        write_atomically(&self.dir.join("cluster.yaml"), &y);
    }

    /// Writes the controller's record: which Service holds which addresses. Written as
    /// the controller does (a new file renamed over the old), so a reader never sees
    /// half of it.
    pub fn write_assignments(&self, services: &[Svc]) {
        let mut y = String::from("apiVersion: ferrolb.io/v1beta1\nkind: AssignmentList\n");
        y.push_str(if services.is_empty() {
            "items: []\n"
        } else {
            "items:\n"
        });
        for s in services {
            let ips: Vec<String> = s.ips.iter().map(|ip| format!("\"{ip}\"")).collect();
            let _ = writeln!(
                y,
                "- {{namespace: default, name: {}, ips: [{}], pool: lan}}",
                s.name,
                ips.join(", ")
            );
        }
        write_atomically(&ferrolb_crds::standalone::assignments_path(&self.dir), &y);
    }

    /// Starts `ferrolb-speaker` in the node namespace (no gossip) with `extra` flags.
    pub fn start_speaker(&mut self, extra: &[&str]) {
        let bin = env!("CARGO_BIN_EXE_ferrolb-speaker");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns("node"), bin])
            .args(["--node-name", "node1"])
            .arg("--source")
            .arg(format!("dir:{}", self.dir.display()))
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null());
        let child = cmd.spawn().expect("starting ferrolb-speaker");
        self.speaker = Some(child);
    }

    /// Starts the speaker with metrics on 127.0.0.1:7472 and health on :7473 (in the
    /// node namespace) and waits, bounded, until it reports ready. Its pid, or why not.
    pub fn start_ready_speaker(&mut self) -> Result<u32, &'static str> {
        self.start_speaker(&[
            "--metrics-addr",
            "127.0.0.1:7472",
            "--health-addr",
            "127.0.0.1:7473",
        ]);
        let pid = self.speaker_pid().ok_or("the speaker did not start")?;
        let health: SocketAddr = ([127, 0, 0, 1], 7473).into();
        let ready = wait_for(Duration::from_secs(10), || {
            self.http_get(health, "/readyz").map(|r| r.0) == Some(200)
        });
        if ready {
            Ok(pid)
        } else {
            Err("the speaker never became ready")
        }
    }

    /// The speaker's pid (`ip netns exec` replaces itself with the program).
    pub fn speaker_pid(&self) -> Option<u32> {
        self.speaker.as_ref().map(Child::id)
    }

    /// Whether the speaker still runs.
    pub fn speaker_running(&mut self) -> bool {
        self.speaker
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then waits (bounded) for the speaker to exit; its exit status, if it
    /// exited in time.
    pub fn stop_speaker(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.speaker.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Runs `f` on a thread inside namespace `suffix` and returns its result.
    pub fn in_namespace<T: Send + 'static>(
        &self,
        suffix: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.ns(suffix));
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a valid namespace descriptor; it changes the namespace of
            // this thread only, which exists for this purpose.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// `GET path` from inside the node namespace: (status, body), or `None` when nothing
    /// answers.
    pub fn http_get(&self, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
        let path = path.to_string();
        self.in_namespace("node", move || http_get(addr, &path))
    }
}

/// A plain HTTP/1.1 GET with a 2 s limit on each step.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let limit = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn write_atomically(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.stop_speaker();
        let me = std::process::id().to_string();
        for ns in self.created.iter().rev() {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if pid != me {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
