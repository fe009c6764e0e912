//! The network as a plan: the `ip` and `sysctl` commands that build, change and remove
//! the lab, as plain data.
//!
//! Nothing here runs anything; [`crate::exec`] does. So the plan is tested without root,
//! and `ferrolb-lab up --dry-run` prints it.
//!
//! Facts the plan relies on (see the lab notes): every veth is created inside the bridge
//! namespace with its peer placed straight into the host namespace, so no interface ever
//! appears in the host's own namespace; DAD is off before `eth0` exists and IPv6
//! addresses are added `nodad`, so nothing stays tentative.

use std::fmt;

use crate::topology::{BRIDGE, HOST_IF, Host, LAN_NS, LAN4_LEN, LAN6_LEN, Role, Topology};

/// One command: a program, its arguments, and optional standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<String>,
    pub stdin: Option<String>,
}

impl Cmd {
    pub fn new<I, S>(argv: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// `ip ARGS…`.
    pub fn ip(args: &str) -> Cmd {
        Cmd::new(std::iter::once("ip").chain(args.split_whitespace()))
    }

    /// `ip -n NS -batch -` with these lines on standard input: one process for many
    /// changes to one namespace.
    pub fn ip_batch(ns: &str, lines: &[String]) -> Cmd {
        let mut stdin = lines.join("\n");
        stdin.push('\n');
        Cmd {
            argv: vec![
                "ip".into(),
                "-n".into(),
                ns.into(),
                "-batch".into(),
                "-".into(),
            ],
            stdin: Some(stdin),
        }
    }

    /// `ip netns exec NS sysctl -qw K=V…`.
    pub fn sysctl(ns: &str, settings: &[(&str, &str)]) -> Cmd {
        let mut argv: Vec<String> = ["ip", "netns", "exec", ns, "sysctl", "-qw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(settings.iter().map(|(k, v)| format!("{k}={v}")));
        Cmd { argv, stdin: None }
    }
}

impl fmt::Display for Cmd {
    /// As a shell line; batch input as a here-document.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.argv.join(" "))?;
        if let Some(input) = &self.stdin {
            write!(f, " <<EOF\n{input}EOF")?;
        }
        Ok(())
    }
}

/// Sysctls set in a host namespace before its `eth0` exists (so `default` values reach
/// it too).
fn host_sysctls(role: Role) -> Vec<(&'static str, &'static str)> {
    let mut s = vec![
        ("net.ipv6.conf.all.accept_dad", "0"),
        ("net.ipv6.conf.default.accept_dad", "0"),
    ];
    match role {
        // kube-proxy's VIPs live on `lo`: the kernel must never answer ARP for them
        // (only the speaker does), nor use them as the source of its own requests.
        Role::Node(_) => s.extend([
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.default.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
            ("net.ipv4.conf.default.arp_announce", "2"),
        ]),
        // Forward, spread ECMP flows by ports too, and never redirect the client to a
        // node (it is on the same LAN).
        Role::Router => s.extend([
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv6.fib_multipath_hash_policy", "1"),
            ("net.ipv4.conf.all.send_redirects", "0"),
            ("net.ipv4.conf.default.send_redirects", "0"),
        ]),
        Role::Client => {}
    }
    s
}

/// The commands that give one host its namespace, `eth0` on the bridge, and addresses.
/// The namespace itself is added by [`network`] first.
fn host(host: &Host, router: &Host) -> Vec<Cmd> {
    let ns = host.ns();
    let mut cmds = vec![
        Cmd::sysctl(&ns, &host_sysctls(host.role)),
        Cmd::ip(&format!(
            "-n {LAN_NS} link add {port} type veth peer name {HOST_IF} address {mac} netns {ns}",
            port = host.port(),
            mac = host.mac,
        )),
        Cmd::ip(&format!(
            "-n {LAN_NS} link set {port} master {BRIDGE} up",
            port = host.port()
        )),
    ];
    let mut lines = vec![
        "link set lo up".to_string(),
        format!("addr add {}/{LAN4_LEN} dev {HOST_IF}", host.ipv4),
        format!("addr add {}/{LAN6_LEN} dev {HOST_IF} nodad", host.ipv6),
        format!("link set {HOST_IF} up"),
    ];
    if host.role != Role::Router {
        lines.push(format!("route add default via {}", router.ipv4));
        lines.push(format!("route add default via {}", router.ipv6));
    }
    cmds.push(Cmd::ip_batch(&ns, &lines));
    cmds
}

/// Everything that builds the lab's network, in order.
pub fn network(topology: &Topology) -> Vec<Cmd> {
    let mut cmds: Vec<Cmd> = topology
        .namespaces()
        .iter()
        .map(|ns| Cmd::ip(&format!("netns add {ns}")))
        .collect();
    // The bridge namespace never speaks IPv6 itself (no router solicitations, no MLD
    // reports in captures); it only forwards frames.
    cmds.push(Cmd::sysctl(
        LAN_NS,
        &[
            ("net.ipv6.conf.all.disable_ipv6", "1"),
            ("net.ipv6.conf.default.disable_ipv6", "1"),
        ],
    ));
    cmds.push(Cmd::ip(&format!(
        "-n {LAN_NS} link add {BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
    )));
    cmds.push(Cmd::ip(&format!("-n {LAN_NS} link set {BRIDGE} up")));
    for h in topology.hosts() {
        cmds.extend(host(h, &topology.router));
    }
    cmds
}

/// Sets a host's bridge port down or up: for the host, its link loses or regains
/// carrier, as when a cable is pulled.
pub fn link(host: &Host, up: bool) -> Cmd {
    let state = if up { "up" } else { "down" };
    Cmd::ip(&format!("-n {LAN_NS} link set {} {state}", host.port()))
}

/// Removes one namespace (its processes must be gone first: `ip netns del` kills none).
pub fn delete_ns(ns: &str) -> Cmd {
    Cmd::ip(&format!("netns del {ns}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(cmds: &[Cmd]) -> String {
        cmds.iter().map(|c| format!("{c}\n")).collect()
    }

    #[test]
    fn namespaces_first_then_the_bridge_then_hosts() {
        let t = Topology::new(2);
        let cmds = network(&t);
        let text = shell(&cmds);
        let adds: Vec<_> = cmds
            .iter()
            .take_while(|c| c.argv[1..3] == ["netns".to_string(), "add".into()])
            .map(|c| c.argv[3].clone())
            .collect();
        assert_eq!(adds, t.namespaces());
        let bridge = text
            .find("link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0")
            .unwrap();
        let first_veth = text.find("type veth").unwrap();
        assert!(bridge < first_veth, "{text}");
    }

    #[test]
    fn dad_is_off_before_eth0_exists() {
        let cmds = network(&Topology::new(1));
        for ns in ["flb-router", "flb-node1", "flb-client"] {
            let sysctl = cmds
                .iter()
                .position(|c| c.argv.contains(&ns.to_string()) && c.argv.contains(&"sysctl".into()))
                .unwrap();
            let veth = cmds
                .iter()
                .position(|c| c.argv.contains(&"veth".into()) && c.argv.contains(&ns.to_string()))
                .unwrap();
            assert!(sysctl < veth, "{ns}");
            assert!(
                cmds[sysctl]
                    .argv
                    .contains(&"net.ipv6.conf.default.accept_dad=0".into())
            );
        }
    }

    #[test]
    fn every_veth_is_born_in_the_bridge_namespace() {
        let cmds = network(&Topology::new(3));
        let veths: Vec<_> = cmds
            .iter()
            .filter(|c| c.argv.contains(&"veth".into()))
            .collect();
        assert_eq!(veths.len(), 5);
        for c in veths {
            assert_eq!(c.argv[1..3], ["-n".to_string(), "flb-lan".into()], "{c}");
            let netns = c.argv.iter().position(|a| a == "netns").unwrap();
            assert!(c.argv[netns + 1].starts_with("flb-"), "{c}");
        }
    }

    #[test]
    fn a_node_gets_its_addresses_and_arp_settings() {
        let text = shell(&network(&Topology::new(2)));
        assert!(text.contains(
            "ip -n flb-lan link add p-node2 type veth peer name eth0 address 02:66:6c:62:00:0c netns flb-node2"
        ));
        assert!(text.contains("ip -n flb-node2 -batch - <<EOF\nlink set lo up\naddr add 198.51.100.12/24 dev eth0\naddr add 2001:db8:51::12/64 dev eth0 nodad\nlink set eth0 up\nroute add default via 198.51.100.1\nroute add default via 2001:db8:51::1\nEOF"), "{text}");
        assert!(text.contains("ip netns exec flb-node1 sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 net.ipv4.conf.all.arp_ignore=1"));
        assert!(text.contains("net.ipv4.conf.all.arp_announce=2"));
    }

    #[test]
    fn the_router_forwards_and_hashes_by_ports() {
        let text = shell(&network(&Topology::new(1)));
        let line = text
            .lines()
            .find(|l| l.starts_with("ip netns exec flb-router sysctl"))
            .unwrap();
        for want in [
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.send_redirects=0",
        ] {
            assert!(line.contains(want), "{line}");
        }
        assert!(!text.contains("ip -n flb-router -batch - <<EOF\nlink set lo up\naddr add 198.51.100.1/24 dev eth0\naddr add 2001:db8:51::1/64 dev eth0 nodad\nlink set eth0 up\nroute"));
    }

    #[test]
    fn link_and_delete() {
        let t = Topology::new(2);
        assert_eq!(
            link(&t.nodes[1], false).to_string(),
            "ip -n flb-lan link set p-node2 down"
        );
        assert_eq!(
            link(&t.nodes[0], true).to_string(),
            "ip -n flb-lan link set p-node1 up"
        );
        assert_eq!(delete_ns("flb-lan").to_string(), "ip netns del flb-lan");
    }
}
