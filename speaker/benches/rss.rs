//! Memory of a real `ferrolb-speaker` process announcing 1,000 addresses (500 IPv4 from
//! 198.51.100.0/24 and 203.0.113.0/24, 500 IPv6 from 2001:db8::/32, as 500 dual-stack
//! Services) on one interface, in network namespaces (see `tests/support/site.rs`).
//!
//! `cargo bench -p ferrolb-speaker --bench rss [-- --services N]`
//!
//! Prints VmRSS, VmHWM (peak), RssAnon and Threads from `/proc/PID/status`: once with no
//! Service, then once all addresses are announced and their gratuitous bursts are over,
//! after a `/metrics` scrape. Goal: VmRSS under 15 MiB. Needs root.

#[path = "../tests/support/site.rs"]
mod site;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_speaker::metrics::{key, sample};
use site::{Site, Svc, wait_for};

/// `--name VALUE` from the command line.
fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

/// Service `i`'s addresses: the i-th of 198.51.100.0/24 then 203.0.113.0/24, and
/// 2001:db8::1:i.
fn addresses(i: usize) -> Vec<IpAddr> {
    let i16 = u16::try_from(i).unwrap_or(u16::MAX);
    let v4 = match u8::try_from(i) {
        Ok(low) => Ipv4Addr::new(198, 51, 100, low),
        Err(_) => Ipv4Addr::new(203, 0, 113, u8::try_from(i - 256).unwrap_or(u8::MAX)),
    };
    vec![
        IpAddr::V4(v4),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i16)),
    ]
}

/// `Field:  value kB` lines of /proc/PID/status, in KiB.
fn status(pid: u32) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    ["VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"]
        .iter()
        .filter_map(|field| {
            let line = text.lines().find(|l| l.starts_with(&format!("{field}:")))?;
            Some((
                field.to_string(),
                line.split_once(':')?.1.trim().to_string(),
            ))
        })
        .collect()
}

fn print(stage: &str, pid: u32) {
    let fields: Vec<String> = status(pid)
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("{stage:<28} {}", fields.join(", "));
}

fn main() {
    if !site::is_root() {
        eprintln!("SKIP rss bench: needs root (network namespaces, raw sockets)");
        return;
    }
    let services = arg("--services").unwrap_or(500usize).min(500);
    let mut site = Site::build("rss");
    let svcs: Vec<Svc> = (0..services)
        .map(|i| Svc {
            name: format!("svc-{i}"),
            ips: addresses(i),
        })
        .collect();
    site.write_inputs(&svcs);
    site.write_assignments(&[]);
    let metrics: SocketAddr = "127.0.0.1:7472".parse().expect("address");
    let pid = match site.start_ready_speaker() {
        Ok(pid) => pid,
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(1);
        }
    };
    std::thread::sleep(Duration::from_secs(1));
    print("no Service:", pid);

    let t0 = Instant::now();
    site.write_assignments(&svcs);
    let want = services as f64;
    let announced = wait_for(Duration::from_secs(30), || {
        site.http_get(metrics, "/metrics").is_some_and(|(_, t)| {
            ["ipv4", "ipv6"].iter().all(|f| {
                sample(
                    &t,
                    &key(
                        "ferrolb_speaker_announced_ips",
                        &[("mode", "layer2"), ("family", f)],
                    ),
                ) == Some(want)
            })
        })
    });
    if !announced {
        eprintln!("not every address was announced within 30 s");
        std::process::exit(1);
    }
    println!(
        "{} addresses announced after {:?}",
        2 * services,
        t0.elapsed()
    );
    // Past the last burst offset (4.4 s), so every gratuitous round has gone out.
    std::thread::sleep(Duration::from_secs(6));
    let scrape = site.http_get(metrics, "/metrics").map(|(_, t)| t);
    let garp = scrape.as_deref().and_then(|t| {
        sample(
            t,
            &key(
                "ferrolb_layer2_gratuitous_sent_total",
                &[("interface", "eth0")],
            ),
        )
    });
    println!("gratuitous frames sent: {}", garp.unwrap_or(f64::NAN));
    print(&format!("{} addresses:", 2 * services), pid);
    if !site.speaker_running() {
        eprintln!("the speaker exited");
        std::process::exit(1);
    }
}
