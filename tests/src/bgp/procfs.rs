//! Memory figures of a process, from `/proc/PID/status`.

/// Resident set size now and at its peak (`VmRSS`, `VmHWM`), in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

/// Parses `/proc/PID/status` text.
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        peak_kib: field("VmHWM:"),
    }
}

/// The memory of process `pid`, if it exists.
pub fn memory(pid: i32) -> Option<Memory> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .map(|t| parse_status(&t))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_and_peak() {
        let m = super::parse_status("Name:\tgobgpd\nVmHWM:\t   61234 kB\nVmRSS:\t   59000 kB\n");
        assert_eq!(m.rss_kib, 59000);
        assert_eq!(m.peak_kib, 61234);
        assert_eq!(super::parse_status("").rss_kib, 0);
    }
}
