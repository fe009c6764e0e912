//! Which Debian packages the lab needs, and which of them are missing.
//!
//! `up` checks before touching anything and names the exact `apt-get install` line, or
//! runs it with `--install`.

use std::path::Path;

use crate::router::RouterKind;

/// A program the lab runs, and the Debian package that ships it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool {
    /// A command looked up on the PATH, or an absolute path.
    pub program: &'static str,
    pub package: &'static str,
    pub why: &'static str,
}

const IP: Tool = Tool {
    program: "ip",
    package: "iproute2",
    why: "namespaces, veths, the bridge",
};
const SYSCTL: Tool = Tool {
    program: "sysctl",
    package: "procps",
    why: "per-namespace settings",
};
const ARPING: Tool = Tool {
    program: "arping",
    package: "arping",
    why: "status: who answers ARP for a VIP",
};
const NDISC6: Tool = Tool {
    program: "ndisc6",
    package: "ndisc6",
    why: "status: who answers NDP for a VIP",
};
const BIRD: Tool = Tool {
    program: "bird",
    package: "bird2",
    why: "the router (--router bird)",
};
const BIRDC: Tool = Tool {
    program: "birdc",
    package: "bird2",
    why: "the router (--router bird)",
};
const BGPD: Tool = Tool {
    program: "/usr/lib/frr/bgpd", // router::FRR_DIR
    package: "frr",
    why: "the router (--router frr)",
};
const VTYSH: Tool = Tool {
    program: "vtysh",
    package: "frr",
    why: "the router (--router frr)",
};

const PING: Tool = Tool {
    program: "ping",
    package: "iputils-ping",
    why: "bench failover: the client's pings (-D timestamps)",
};
const KEEPALIVED: Tool = Tool {
    program: "keepalived",
    package: "keepalived",
    why: "bench failover: the VRRP baseline",
};

/// The tools `bench failover` needs besides the lab's: keepalived only when it is
/// measured.
pub fn bench_needed(keepalived: bool) -> Vec<Tool> {
    let mut tools = vec![PING];
    if keepalived {
        tools.push(KEEPALIVED);
    }
    tools
}

/// The tools `up` needs with this router.
pub fn needed(router: RouterKind) -> Vec<Tool> {
    let mut tools = vec![IP, SYSCTL, ARPING, NDISC6];
    match router {
        RouterKind::Bird => tools.extend([BIRD, BIRDC]),
        RouterKind::Frr => tools.extend([BGPD, VTYSH]),
        RouterKind::None => {}
    }
    tools
}

/// The packages (each once, in order) of the tools that `present` says are missing.
pub fn missing(tools: &[Tool], present: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Vec::new();
    for t in tools {
        if !present(t.program) && !packages.contains(&t.package) {
            packages.push(t.package);
        }
    }
    packages
}

/// The command that installs `packages`.
pub fn apt_line(packages: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["apt-get", "install", "-y", "--no-install-recommends"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(packages.iter().map(|p| p.to_string()));
    argv
}

/// Whether `program` exists: an absolute path as is, otherwise on the PATH or in the
/// usual system directories (root's tools live in `sbin`, which a user's PATH may lack).
pub fn on_path(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain([
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ])
        .filter(|d| !d.is_empty())
        .any(|d| Path::new(d).join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_package_once() {
        let tools = needed(RouterKind::Bird);
        assert_eq!(
            missing(&tools, |p| p == "ip" || p == "sysctl"),
            ["arping", "ndisc6", "bird2"]
        );
        assert!(missing(&tools, |_| true).is_empty());
        assert_eq!(missing(&needed(RouterKind::Frr), |p| p != "vtysh"), ["frr"]);
        assert!(
            !needed(RouterKind::None)
                .iter()
                .any(|t| t.package == "bird2" || t.package == "frr")
        );
    }

    #[test]
    fn the_bench_needs_keepalived_only_to_measure_it() {
        assert_eq!(
            missing(&bench_needed(true), |_| false),
            ["iputils-ping", "keepalived"]
        );
        assert_eq!(missing(&bench_needed(false), |_| false), ["iputils-ping"]);
    }

    #[test]
    fn the_install_line() {
        assert_eq!(
            apt_line(&["bird2", "ndisc6"]).join(" "),
            "apt-get install -y --no-install-recommends bird2 ndisc6"
        );
    }
}
