//! What a speaker put on the wire, and when: tcpdump (`-tt -x --immediate-mode`, kernel
//! timestamps) captures BGP segments in a namespace; their IPv4 UPDATEs are decoded
//! here (withdrawn routes and NLRI), so latencies are measured on packets rather than on
//! a daemon's report. Also reads the RFC 3339 timestamps of the speaker's JSON log.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::Daemon;
use super::{Result, wait_for, wait_until};

/// What one captured UPDATE says about IPv4 prefixes.
#[derive(Debug, Default, PartialEq)]
pub struct Update {
    pub withdrawn: Vec<(Ipv4Addr, u8)>,
    pub announced: Vec<(Ipv4Addr, u8)>,
}

/// IPv4 prefixes in BGP's (length, significant octets) encoding; `None` when malformed.
fn prefixes(mut b: &[u8]) -> Option<Vec<(Ipv4Addr, u8)>> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = b.split_first() {
        let n = usize::from(len).div_ceil(8);
        if len > 32 || rest.len() < n {
            return None;
        }
        let mut octets = [0u8; 4];
        octets[..n].copy_from_slice(&rest[..n]);
        out.push((Ipv4Addr::from(octets), len));
        b = &rest[n..];
    }
    Some(out)
}

/// The UPDATEs in one IPv4 packet's TCP payload (segments that do not start on a BGP
/// message, or hold a truncated one, yield what precedes the break).
pub fn updates(packet: &[u8]) -> Vec<Update> {
    let mut out = Vec::new();
    let Some(&first) = packet.first() else {
        return out;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || packet.len() < ihl + 20 || packet[9] != 6 {
        return out;
    }
    let tcp = &packet[ihl..];
    let data_off = usize::from(tcp[12] >> 4) * 4;
    let Some(mut payload) = tcp.get(data_off..) else {
        return out;
    };
    while payload.len() >= 19 && payload[..16].iter().all(|b| *b == 0xff) {
        let len = usize::from(u16::from_be_bytes([payload[16], payload[17]]));
        if !(19..=4096).contains(&len) || payload.len() < len {
            break;
        }
        let (msg, rest) = payload.split_at(len);
        payload = rest;
        if msg[18] != 2 {
            continue;
        }
        let body = &msg[19..];
        let Some(wlen) = body
            .get(..2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            break;
        };
        let Some(withdrawn) = body.get(2..2 + wlen).and_then(prefixes) else {
            break;
        };
        let Some(alen) = body
            .get(2 + wlen..4 + wlen)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            break;
        };
        let Some(announced) = body.get(4 + wlen + alen..).and_then(prefixes) else {
            break;
        };
        out.push(Update {
            withdrawn,
            announced,
        });
    }
    out
}

/// tcpdump `-tt -x` output: (timestamp, UPDATE) for every UPDATE captured.
pub fn captured(text: &str) -> Vec<(f64, Update)> {
    let mut out = Vec::new();
    let mut stamp: Option<f64> = None;
    let mut bytes: Vec<u8> = Vec::new();
    let mut flush = |stamp: Option<f64>, bytes: &mut Vec<u8>| {
        if let Some(t) = stamp {
            out.extend(updates(bytes).into_iter().map(|u| (t, u)));
        }
        bytes.clear();
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(hex) = trimmed.strip_prefix("0x") {
            // "0x0010:  4500 0034 ..." (the offset, then up to 8 groups of 4 digits).
            let groups = hex.split_once(':').map(|(_, h)| h).unwrap_or("");
            for g in groups.split_whitespace() {
                for pair in g.as_bytes().chunks(2) {
                    let byte = std::str::from_utf8(pair)
                        .ok()
                        .and_then(|p| u8::from_str_radix(p, 16).ok());
                    if let Some(b) = byte {
                        bytes.push(b);
                    }
                }
            }
        } else if line.starts_with(|c: char| c.is_ascii_digit()) {
            flush(stamp, &mut bytes);
            stamp = line.split_whitespace().next().and_then(|t| t.parse().ok());
        }
    }
    // A packet whose lines are not all written yet holds no complete message: its
    // UPDATEs show on a later read.
    flush(stamp, &mut bytes);
    out
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as tracing writes it
/// (`2026-12-05T16:38:02.123456Z`).
pub fn rfc3339(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3_600 + min * 60) as f64 + sec)
}

/// Timestamps of the lines of a JSON log (tracing's `--log-format=json`) whose message is
/// `message`.
pub fn log_times(log: &Path, message: &str) -> Vec<f64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .filter_map(|v| v["timestamp"].as_str().and_then(rfc3339))
        .collect()
}

pub struct Capture {
    pub daemon: Daemon,
}

impl Capture {
    /// Starts tcpdump in `ns` on `iface`, capturing TCP port 179 from `from` into `out`.
    pub fn start(ns: &str, iface: &str, from: Ipv4Addr, out: PathBuf) -> Result<Capture> {
        let argv: Vec<String> = [
            "tcpdump",
            "-i",
            iface,
            "-nn",
            "-l",
            "-tt",
            "-x",
            "--immediate-mode",
            "-s",
            "0",
            "tcp port 179 and src host",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // The filter's last word: the node's address.
        let mut argv = argv;
        if let Some(f) = argv.last_mut() {
            f.push_str(&format!(" {from}"));
        }
        let mut daemon = Daemon::start("tcpdump", ns, &argv, &[], &out)?;
        wait_until(
            "tcpdump listening",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                std::fs::read_to_string(&out)
                    .ok()
                    .filter(|t| t.contains("listening on"))
                    .map(drop)
            },
        )
        .map_err(|e| if daemon.running() { e } else { daemon.exited() })?;
        Ok(Capture { daemon })
    }

    /// The first UPDATE at or after `since` for which `want` holds: its timestamp.
    /// The first UPDATE at or after `since` (seconds since the epoch) for which `want`
    /// holds: its timestamp. Waits at most `limit`.
    pub fn wait(&self, since: f64, limit: Duration, want: &dyn Fn(&Update) -> bool) -> Option<f64> {
        wait_for(limit, Duration::from_millis(2), || {
            let text = std::fs::read_to_string(&self.daemon.log).ok()?;
            captured(&text)
                .into_iter()
                .find(|(t, u)| *t >= since && want(u))
                .map(|(t, _)| t)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_updates_decode() {
        assert_eq!(rfc3339("1970-01-02T00:00:01.5Z"), Some(86_401.5));
        assert_eq!(rfc3339("2024-03-01T00:00:00Z"), Some(1_709_251_200.0));
        // An UPDATE withdrawing 203.0.113.10/32 and announcing 203.0.113.11/32, with no
        // attributes (enough for the decoder).
        let mut bgp = vec![0xffu8; 16];
        let body = [0, 5, 32, 203, 0, 113, 10, 0, 0, 32, 203, 0, 113, 11];
        bgp.extend(((19 + body.len()) as u16).to_be_bytes());
        bgp.push(2);
        bgp.extend(body);
        let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
        packet.extend([198, 51, 100, 11, 198, 51, 100, 1]);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        packet.extend(tcp);
        packet.extend(&bgp);
        let hex: String = packet
            .chunks(16)
            .enumerate()
            .map(|(i, c)| {
                let groups: Vec<String> = c
                    .chunks(2)
                    .map(|g| g.iter().map(|b| format!("{b:02x}")).collect())
                    .collect();
                format!("\t0x{:04x}:  {}\n", i * 16, groups.join(" "))
            })
            .collect();
        let text = format!(
            "1700000000.250000 IP 198.51.100.11.179 > 198.51.100.1.40000: Flags [P.], length 33\n{hex}1700000001.000000 IP next\n"
        );
        // The packet's last line not written yet: no UPDATE (the message is incomplete).
        let cut = text.trim_end().rfind("\t0x").unwrap_or(0);
        assert!(captured(&text[..cut]).is_empty());
        let got = captured(&text);
        assert_eq!(
            got,
            vec![(
                1_700_000_000.25,
                Update {
                    withdrawn: vec![(Ipv4Addr::new(203, 0, 113, 10), 32)],
                    announced: vec![(Ipv4Addr::new(203, 0, 113, 11), 32)],
                }
            )]
        );
    }
}
