//! "Service assigned → first gratuitous ARP on the wire", with a real `ferrolb-speaker`
//! in network namespaces (see `tests/support/site.rs`).
//!
//! `cargo bench -p ferrolb-speaker --bench garp_latency [-- --trials N] [--idle-secs S]`
//!
//! Each trial assigns one more Service an address by rewriting the controller's record
//! (`.ferrolb/assignments.yaml`, a new file renamed over the old, as the controller
//! writes it) and times, from just before the rename, the first gratuitous ARP for that
//! address seen by a packet socket in the client's namespace on the same bridge. Trials
//! are spaced by an uneven pause so that they fall at every phase of the speaker's
//! directory polling. Prints p50/p99/max. Then measures the CPU time the idle speaker
//! uses (utime + stime from `/proc/PID/stat`) over `--idle-secs` (default 10), the
//! standing cost of watching the directory. Needs root.

#[path = "../tests/support/site.rs"]
mod site;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb_speaker::l2::arp;
use site::{Site, Svc};

/// `--name VALUE` from the command line.
fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, u8::try_from(10 + i).unwrap_or(u8::MAX))
}

/// A blocking packet socket for ARP on `ifname` in the calling thread's namespace,
/// waking at least every 100 ms.
fn arp_socket(ifname: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let eth_p_arp = u16::try_from(libc::ETH_P_ARP).unwrap_or(0x0806).to_be();
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(eth_p_arp)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(ifname).map_err(std::io::Error::other)?;
    // SAFETY: name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap_or(17);
    addr.sll_protocol = eth_p_arp;
    addr.sll_ifindex = i32::try_from(index).unwrap_or(0);
    // SAFETY: addr is a valid sockaddr_ll and the length matches it.
    let rc = unsafe {
        libc::bind(
            fd,
            (&raw const addr).cast(),
            u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap_or(0),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: timeout is a valid timeval and the length matches it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            u32::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(0),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(owned)
}

/// Reports (time seen, address) of every gratuitous ARP until `stop` says so.
fn listen(
    fd: &std::os::fd::OwnedFd,
    seen: &mpsc::Sender<(Instant, Ipv4Addr)>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 1600];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let now = Instant::now();
        let Ok(n) = usize::try_from(n) else {
            continue; // timeout (EAGAIN) or EINTR
        };
        if let Ok(parsed) = arp::parse(&buf[..n])
            && parsed.packet.is_gratuitous()
            && seen.send((now, parsed.packet.target_ip)).is_err()
        {
            return;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn main() {
    if !site::is_root() {
        eprintln!("SKIP garp_latency bench: needs root (network namespaces, raw sockets)");
        return;
    }
    let trials = arg("--trials").unwrap_or(25usize).clamp(1, 200);
    let idle_secs = arg("--idle-secs").unwrap_or(10u64);
    let mut site = Site::build("garp");
    let svcs: Vec<Svc> = (0..trials)
        .map(|i| Svc {
            name: format!("svc-{i}"),
            ips: vec![IpAddr::V4(vip(i))],
        })
        .collect();
    site.write_inputs(&svcs);
    site.write_assignments(&[]);
    let pid = match site.start_ready_speaker() {
        Ok(pid) => pid,
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(1);
        }
    };

    // The listener runs in the client's namespace for the whole run.
    let client = format!("/run/netns/{}", site.ns("client"));
    let (tx, rx) = mpsc::channel();
    let (up_tx, up_rx) = mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_listener = std::sync::Arc::clone(&stop);
    let listener = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(&client).expect("client namespace");
        // SAFETY: setns on a valid namespace descriptor, for this thread only.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let fd = arp_socket("eth0").expect("packet socket");
        let _ = up_tx.send(());
        listen(&fd, &tx, &stop_listener);
    });
    if up_rx.recv_timeout(Duration::from_secs(5)).is_err() {
        eprintln!("the packet socket did not open");
        std::process::exit(1);
    }

    let mut took = Vec::with_capacity(trials);
    for i in 0..trials {
        // Uneven spacing: 150..=290 ms, so trials land at every phase of any polling.
        std::thread::sleep(Duration::from_millis(150 + (i as u64 * 37) % 141));
        while rx.try_recv().is_ok() {} // earlier addresses' later rounds
        let t0 = Instant::now();
        site.write_assignments(&svcs[..=i]);
        let want = vip(i);
        let deadline = t0 + Duration::from_secs(5);
        let mut seen = None;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok((at, ip)) if ip == want => {
                    seen = Some(at.saturating_duration_since(t0));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        match seen {
            Some(d) => took.push(d),
            None => println!("trial {i}: no gratuitous ARP for {want} within 5 s"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = listener.join();

    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "assigned -> first gratuitous ARP, {} of {trials} trials: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms",
        took.len(),
        ms(percentile(&took, 0.50)),
        ms(percentile(&took, 0.99)),
        ms(took.last().copied().unwrap_or_default()),
        ms(took.first().copied().unwrap_or_default()),
    );

    // The standing cost: CPU time of the idle speaker.
    std::thread::sleep(Duration::from_secs(5)); // the last burst ends
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (c1, wall) = (cpu_ticks(pid), t0.elapsed());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    if let (Some(c0), Some(c1)) = (c0, c1) {
        let cpu = (c1.saturating_sub(c0)) as f64 / hz;
        println!(
            "idle speaker CPU: {:.3} s over {:.1} s = {:.2} % of one core",
            cpu,
            wall.as_secs_f64(),
            100.0 * cpu / wall.as_secs_f64()
        );
    }
    if !site.speaker_running() {
        eprintln!("the speaker exited");
        std::process::exit(1);
    }
}
