//! `ferrolb-lab responder`: what kube-proxy and a pod do on a real node, in one small
//! process per node namespace.
//!
//! - Every assigned VIP is made local to the node by putting it on `lo` (as kube-proxy's
//!   IPVS mode does on `kube-ipvs0`), following `assignments.yaml`. The node's `eth0` has
//!   `arp_ignore=1` / `arp_announce=2`, so the kernel never answers ARP for these
//!   addresses (nor does it answer NDP for addresses on another interface): only the
//!   speaker does.
//! - A TCP server on port 80 (IPv4 and IPv6) answers every connection with the node's
//!   name: an HTTP/1.0 response when the client speaks HTTP (`curl`), the bare name when
//!   it sends nothing for 100 ms (`nc`). So the client sees which node got its packets.
//!
//! The server is std::net, one thread per connection: this is a test fixture.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use ferrolb_controller::source::dir::{AssignmentList, assignments_path};

use crate::exec;
use crate::plan::Cmd;

/// How often the assignments file is checked, and how often `lo` is re-read regardless.
const POLL: Duration = Duration::from_millis(200);
const RESYNC: Duration = Duration::from_secs(5);
/// How long a client may stay silent before it gets the bare name.
const SILENCE: Duration = Duration::from_millis(100);

/// The reply to a request that starts with `request` (possibly empty).
pub fn reply(name: &str, request: &[u8]) -> Vec<u8> {
    let methods: [&[u8]; 4] = [b"GET ", b"HEAD ", b"POST ", b"PUT "];
    let body = format!("{name}\n");
    if !methods.iter().any(|m| request.starts_with(m)) {
        return body.into_bytes();
    }
    let head = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if request.starts_with(b"HEAD ") {
        head.into_bytes()
    } else {
        format!("{head}{body}").into_bytes()
    }
}

fn serve(name: &str, mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(SILENCE));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(2);
    // Read until the end of an HTTP header, silence, EOF, or 8 KiB.
    while !request.windows(4).any(|w| w == b"\r\n\r\n")
        && request.len() < 8192
        && Instant::now() < deadline
    {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = conn.write_all(&reply(name, &request));
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

/// The `ip -batch` lines that turn the VIPs now on `lo` into `want`.
pub fn lo_changes(have: &BTreeSet<IpAddr>, want: &BTreeSet<IpAddr>) -> Vec<String> {
    let len = |ip: &IpAddr| if ip.is_ipv4() { 32 } else { 128 };
    let mut lines: Vec<String> = have
        .difference(want)
        .map(|ip| format!("addr del {ip}/{} dev lo", len(ip)))
        .collect();
    lines.extend(
        want.difference(have)
            .map(|ip| format!("addr add {ip}/{} dev lo", len(ip))),
    );
    lines
}

/// The addresses on `lo` other than the loopback ones, from `ip -j addr show dev lo`.
pub fn parse_lo(json: &str) -> BTreeSet<IpAddr> {
    let Ok(links) = serde_json::from_str::<serde_json::Value>(json) else {
        return BTreeSet::new();
    };
    links
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().into_iter().flatten())
        .filter_map(|a| a["local"].as_str()?.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

fn read_lo() -> anyhow::Result<BTreeSet<IpAddr>> {
    Ok(parse_lo(&exec::run(&Cmd::ip("-j addr show dev lo"))?))
}

fn sync_lo(want: &BTreeSet<IpAddr>) -> anyhow::Result<()> {
    let lines = lo_changes(&read_lo()?, want);
    if lines.is_empty() {
        return Ok(());
    }
    let mut stdin = lines.join("\n");
    stdin.push('\n');
    exec::run(&Cmd {
        argv: vec!["ip".into(), "-force".into(), "-batch".into(), "-".into()],
        stdin: Some(stdin),
    })?;
    eprintln!("lo: {}", lines.join("; "));
    Ok(())
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Keeps `lo` in step with the assignments in `dir`, forever. An unreadable file keeps
/// the addresses as they are.
fn follow(dir: &Path, name: &str, ready: Option<PathBuf>) {
    let file = assignments_path(dir);
    let mut last = None;
    let mut synced_at: Option<Instant> = None;
    let mut ready = ready;
    loop {
        let now = stamp(&file);
        if now != last || synced_at.is_none_or(|t| t.elapsed() >= RESYNC) {
            match AssignmentList::read(dir) {
                Ok(list) => {
                    let want = list
                        .map(|l| crate::cluster::all_ips(&l))
                        .unwrap_or_default();
                    match sync_lo(&want) {
                        Ok(()) => {
                            last = now;
                            synced_at = Some(Instant::now());
                            if let Some(path) = ready.take() {
                                let _ = std::fs::write(&path, format!("{name}\n"));
                            }
                        }
                        Err(e) => eprintln!("{name}: cannot set VIPs on lo: {e:#}"),
                    }
                }
                Err(e) => {
                    eprintln!("{name}: {e}; keeping the VIPs on lo as they are");
                    last = now;
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Runs the responder until killed.
pub fn run(
    name: &str,
    port: u16,
    vips_from: Option<PathBuf>,
    ready: Option<PathBuf>,
) -> anyhow::Result<()> {
    // `[::]` takes IPv4 too (bindv6only is 0 in a fresh namespace).
    let listener = TcpListener::bind(SocketAddr::from(([0u16; 8], port)))
        .or_else(|_| TcpListener::bind(SocketAddr::from(([0u8; 4], port))))
        .with_context(|| format!("cannot listen on port {port}"))?;
    eprintln!("{name}: answering on port {port}");
    match vips_from {
        Some(dir) => {
            let name = name.to_string();
            std::thread::spawn(move || follow(&dir, &name, ready));
        }
        None => {
            if let Some(path) = ready {
                std::fs::write(&path, format!("{name}\n"))?;
            }
        }
    }
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                let name = name.to_string();
                std::thread::spawn(move || serve(&name, conn));
            }
            Err(e) => eprintln!("{name}: accept: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn http_or_bare_name() {
        let http = String::from_utf8(reply("node2", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap();
        assert!(http.starts_with("HTTP/1.0 200 OK\r\n"), "{http}");
        assert!(http.ends_with("\r\n\r\nnode2\n"), "{http}");
        assert!(http.contains("Content-Length: 6\r\n"));
        let head = String::from_utf8(reply("node2", b"HEAD / HTTP/1.1\r\n\r\n")).unwrap();
        assert!(head.ends_with("\r\n\r\n"));
        assert_eq!(reply("node2", b""), b"node2\n");
        assert_eq!(reply("node2", b"hello\n"), b"node2\n");
    }

    #[test]
    fn lo_follows_the_assignments() {
        let have = ips(&["198.51.100.200", "2001:db8:51::200"]);
        let want = ips(&["198.51.100.201", "2001:db8:51::200"]);
        assert_eq!(
            lo_changes(&have, &want),
            [
                "addr del 198.51.100.200/32 dev lo",
                "addr add 198.51.100.201/32 dev lo"
            ]
        );
        assert!(lo_changes(&want, &want).is_empty());
        assert_eq!(
            lo_changes(&BTreeSet::new(), &ips(&["2001:db8:113::1"])),
            ["addr add 2001:db8:113::1/128 dev lo"]
        );
    }

    #[test]
    fn loopback_addresses_are_not_vips() {
        let json = r#"[{"ifindex":1,"ifname":"lo","addr_info":[
            {"family":"inet","local":"127.0.0.1","prefixlen":8},
            {"family":"inet","local":"198.51.100.200","prefixlen":32},
            {"family":"inet6","local":"::1","prefixlen":128},
            {"family":"inet6","local":"2001:db8:51::200","prefixlen":128}]}]"#;
        assert_eq!(parse_lo(json), ips(&["198.51.100.200", "2001:db8:51::200"]));
        assert!(parse_lo("").is_empty());
    }

    #[test]
    fn serves_a_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (c, _) = listener.accept().unwrap();
            serve("node9", c);
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.ends_with("node9\n"), "{out}");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (c, _) = listener.accept().unwrap();
            serve("node9", c);
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "node9\n");
    }
}
