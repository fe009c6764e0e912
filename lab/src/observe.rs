//! Fills in [`Status`] by looking at the running lab: pid files and `/proc`, the bridge's
//! ports, the router's sessions and kernel routes, and ARP/NDP probes from the client.
//! Parsers of the tools' output are pure and tested here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ferrolb_controller::source::dir::{AssignmentList, ControllerStatus, status_path};

use crate::cluster;
use crate::exec;
use crate::plan::Cmd;
use crate::procs::{self, Binaries};
use crate::router::{self, RouterKind};
use crate::state::{LabConfig, StateDir};
use crate::status::{
    Announcement, IpStatus, NodeStatus, Process, RouterStatus, ServiceStatus, Status, Unassigned,
};
use crate::topology::{HOST_IF, LAN_NS, Topology, on_lan};

/// How long one ARP/NDP probe waits for answers (all probes run at once).
const PROBE_MS: u64 = 300;

/// MAC addresses in a tool's output (one per line, as `arping -r` and `ndisc6 -q` print
/// them), lower case, each once.
pub fn parse_macs(text: &str) -> Vec<String> {
    let mut macs: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let is_mac = word.len() == 17
            && word
                .split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        let word = word.to_ascii_lowercase();
        if is_mac && !macs.contains(&word) {
            macs.push(word);
        }
    }
    macs
}

/// The gateways of the routes in `ip -j route show match ADDR` output that were learnt
/// from a routing daemon (connected and kernel routes are left out).
pub fn parse_route_gateways(json: &str) -> Vec<IpAddr> {
    let Ok(routes) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut gateways = Vec::new();
    for r in routes.as_array().into_iter().flatten() {
        if r["dst"] == "default" || matches!(r["protocol"].as_str(), Some("kernel" | "boot")) {
            continue;
        }
        let hops = r["nexthops"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![r.clone()]);
        for h in hops {
            if let Some(gw) = h["gateway"].as_str().and_then(|g| g.parse().ok())
                && !gateways.contains(&gw)
            {
                gateways.push(gw);
            }
        }
    }
    gateways
}

/// The admin state of each bridge port (`p-node1` → up), from `ip -j link show`.
pub fn parse_ports(json: &str) -> BTreeMap<String, bool> {
    let Ok(links) = serde_json::from_str::<serde_json::Value>(json) else {
        return BTreeMap::new();
    };
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let name = l["ifname"].as_str()?.to_string();
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            Some((name, up))
        })
        .collect()
}

/// The command that asks the LAN, from the client, who answers for `ip`.
fn probe_argv(topology: &Topology, ip: IpAddr) -> Vec<String> {
    let ns = topology.client.ns();
    let mut argv: Vec<String> = ["ip", "netns", "exec", ns.as_str()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match ip {
        // Habets arping: one request, every reply's MAC (-r), give up after the deadline.
        IpAddr::V4(_) => argv.extend(
            [
                "arping",
                "-r",
                "-c",
                "1",
                "-w",
                &format!("{}", PROBE_MS as f64 / 1000.0),
                "-i",
                HOST_IF,
                &ip.to_string(),
            ]
            .map(String::from),
        ),
        // ndisc6: one solicitation, every answer (-m), MACs only (-q).
        IpAddr::V6(_) => argv.extend(
            [
                "ndisc6",
                "-q",
                "-m",
                "-r",
                "1",
                "-w",
                &PROBE_MS.to_string(),
                &ip.to_string(),
                HOST_IF,
            ]
            .map(String::from),
        ),
    }
    argv
}

/// Asks the LAN who answers for each address, all at once; the MACs per address.
pub fn probe_lan(topology: &Topology, ips: &[IpAddr]) -> BTreeMap<IpAddr, Vec<String>> {
    let children: Vec<_> = ips
        .iter()
        .map(|ip| {
            let argv = probe_argv(topology, *ip);
            let child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            (*ip, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(ip, child)| {
            let macs = child
                .and_then(|c| c.wait_with_output())
                .map(|o| parse_macs(&String::from_utf8_lossy(&o.stdout)))
                .unwrap_or_default();
            (ip, macs)
        })
        .collect()
}

/// The router's next hops for `ip`, from its kernel table.
pub fn router_gateways(topology: &Topology, ip: IpAddr) -> Vec<IpAddr> {
    let family = if ip.is_ipv4() { "-4" } else { "-6" };
    let len = if ip.is_ipv4() { 32 } else { 128 };
    let cmd = Cmd::new([
        "ip".to_string(),
        "-j".into(),
        family.into(),
        "-n".into(),
        topology.router.ns(),
        "route".into(),
        "show".into(),
        "match".into(),
        format!("{ip}/{len}"),
    ]);
    exec::run(&cmd)
        .map(|out| parse_route_gateways(&out))
        .unwrap_or_default()
}

fn router_sessions(state: &StateDir, kind: RouterKind) -> Vec<router::Session> {
    let dir = state.router();
    let ns = "flb-router";
    let in_ns = |argv: Vec<String>| {
        let mut full: Vec<String> = ["ip", "netns", "exec", ns]
            .iter()
            .map(|s| s.to_string())
            .collect();
        full.extend(argv);
        Cmd::new(full)
    };
    let mut sessions = match kind {
        RouterKind::Bird => exec::run(&in_ns(router::birdc_argv(&dir, &["show", "protocols"])))
            .map(|t| router::parse_bird_protocols(&t))
            .unwrap_or_default(),
        RouterKind::Frr => exec::run(&in_ns(router::vtysh_argv(&dir, "show bgp summary json")))
            .map(|t| router::parse_frr_summary(&t))
            .unwrap_or_default(),
        RouterKind::None => vec![],
    };
    sessions.sort_by(|a, b| a.name.cmp(&b.name));
    sessions
}

fn process(pid: Option<i32>) -> Process {
    Process {
        running: pid.is_some(),
        pid,
    }
}

/// Maps MACs or gateway addresses to node names (anything unknown as is).
fn names_by_mac(topology: &Topology, macs: &[String]) -> Vec<String> {
    let mut names: Vec<String> = macs
        .iter()
        .map(|m| {
            topology
                .host_by_mac(m)
                .map(|h| h.name.clone())
                .unwrap_or_else(|| m.clone())
        })
        .collect();
    names.sort();
    names
}

/// The lab's status now. With `probe`, the LAN is asked who answers for each address
/// (when a speaker could be running at all).
pub fn gather(state: &StateDir, config: &LabConfig, bins: &Binaries, probe: bool) -> Status {
    let topology = config.topology();
    let speaker_built = bins.speaker_built();
    let ports = exec::run(&Cmd::ip(&format!("-j -n {LAN_NS} link show")))
        .map(|t| parse_ports(&t))
        .unwrap_or_default();

    let router_running = procs::router(state, config.router)
        .iter()
        .all(|d| exec::running(state, d).is_some());
    let router = RouterStatus {
        kind: config.router.name().into(),
        ipv4: topology.router.ipv4.to_string(),
        ipv6: topology.router.ipv6.to_string(),
        running: router_running,
        sessions: if router_running {
            router_sessions(state, config.router)
        } else {
            vec![]
        },
    };

    let nodes = topology
        .nodes
        .iter()
        .map(|n| {
            let speaker = if !speaker_built {
                "not built"
            } else if exec::running(state, &procs::speaker(state, bins, n, Default::default()))
                .is_some()
            {
                "running"
            } else {
                "stopped"
            };
            let responder = if exec::running(state, &procs::responder(state, bins, n)).is_some() {
                "running"
            } else {
                "stopped"
            };
            NodeStatus {
                name: n.name.clone(),
                ipv4: n.ipv4.to_string(),
                ipv6: n.ipv6.to_string(),
                mac: n.mac.clone(),
                link: match ports.get(&n.port()) {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "missing",
                }
                .into(),
                speaker: speaker.into(),
                responder: responder.into(),
                bgp: std::fs::read_to_string(
                    state
                        .cluster()
                        .join(".ferrolb")
                        .join("speakers")
                        .join(format!("{}.yaml", n.name)),
                )
                .map(|t| crate::status::speaker_sessions(&t))
                .unwrap_or_default(),
            }
        })
        .collect();

    let dir = state.cluster();
    let assignments = AssignmentList::read(&dir)
        .ok()
        .flatten()
        .unwrap_or_default();
    let modes = cluster::pool_modes(&cluster::read_docs(&dir));
    let lan_ips: Vec<IpAddr> = cluster::all_ips(&assignments)
        .into_iter()
        .filter(|ip| on_lan(*ip))
        .collect();
    let answers = if probe && speaker_built {
        probe_lan(&topology, &lan_ips)
    } else {
        BTreeMap::new()
    };
    let services = assignments
        .items
        .iter()
        .map(|a| ServiceStatus {
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            pool: a.pool.clone(),
            mode: modes
                .get(&a.pool)
                .copied()
                .unwrap_or_default()
                .label()
                .into(),
            ips: a
                .ips
                .iter()
                .map(|ip| IpStatus {
                    ip: *ip,
                    announcement: if !speaker_built {
                        Announcement::SpeakerNotBuilt
                    } else if on_lan(*ip) {
                        match answers.get(ip) {
                            Some(macs) if !macs.is_empty() => Announcement::Layer2 {
                                nodes: names_by_mac(&topology, macs),
                            },
                            _ => Announcement::NotAnnounced,
                        }
                    } else {
                        let gws = router_gateways(&topology, *ip);
                        if gws.is_empty() {
                            Announcement::NotAnnounced
                        } else {
                            Announcement::Bgp {
                                nodes: gws
                                    .iter()
                                    .map(|g| {
                                        topology
                                            .host_by_ip(*g)
                                            .map(|h| h.name.clone())
                                            .unwrap_or_else(|| g.to_string())
                                    })
                                    .collect(),
                            }
                        }
                    },
                })
                .collect(),
        })
        .collect();

    let controller_status = std::fs::read_to_string(status_path(&dir))
        .ok()
        .and_then(|t| ControllerStatus::parse(&t).ok());
    let (unassigned, problems) = match controller_status {
        Some(cs) => (
            cs.services
                .iter()
                .filter(|d| d.ips.is_empty())
                .map(|d| Unassigned {
                    namespace: d.namespace.clone(),
                    name: d.name.clone(),
                    error: d.error.clone().unwrap_or_else(|| "no address".into()),
                })
                .collect(),
            cs.files
                .iter()
                .map(ToString::to_string)
                .chain(cs.problems.iter().cloned())
                .collect(),
        ),
        None => (vec![], vec![]),
    };

    Status {
        state_dir: state.root.display().to_string(),
        nodes_count: config.nodes,
        controller: process(exec::running(state, &procs::controller(state, bins))),
        router,
        speaker_built,
        nodes,
        services,
        unassigned,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_from_arping_and_ndisc6() {
        assert_eq!(
            parse_macs("02:66:6c:62:00:0b\n02:66:6C:62:00:0C\n02:66:6c:62:00:0b\n"),
            ["02:66:6c:62:00:0b", "02:66:6c:62:00:0c"]
        );
        assert!(parse_macs("Timeout\n").is_empty());
        assert!(parse_macs("").is_empty());
    }

    #[test]
    fn gateways_of_learnt_routes() {
        let multipath = r#"[{"dst":"default","gateway":"198.51.100.254","dev":"eth0","flags":[]},
          {"dst":"203.0.113.0/24","protocol":"kernel","dev":"eth0","flags":[]},
          {"dst":"203.0.113.5","protocol":"bird","metric":32,"flags":[],
           "nexthops":[{"gateway":"198.51.100.11","dev":"eth0","weight":1,"flags":[]},
                       {"gateway":"198.51.100.12","dev":"eth0","weight":1,"flags":[]}]}]"#;
        assert_eq!(
            parse_route_gateways(multipath),
            [
                "198.51.100.11".parse::<IpAddr>().unwrap(),
                "198.51.100.12".parse().unwrap()
            ]
        );
        let single = r#"[{"dst":"2001:db8:113::1","gateway":"2001:db8:51::13","dev":"eth0","protocol":"bgp","metric":20,"flags":[],"pref":"medium"}]"#;
        assert_eq!(
            parse_route_gateways(single),
            ["2001:db8:51::13".parse::<IpAddr>().unwrap()]
        );
        assert!(parse_route_gateways("[]").is_empty());
    }

    #[test]
    fn port_states() {
        let json = r#"[{"ifindex":2,"ifname":"br0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"]},
            {"ifindex":3,"ifname":"p-node1","flags":["BROADCAST","MULTICAST"]},
            {"ifindex":4,"ifname":"p-node2","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"]}]"#;
        let ports = parse_ports(json);
        assert!(!ports["p-node1"]);
        assert!(ports["p-node2"]);
    }

    #[test]
    fn probes_run_in_the_client_namespace() {
        let t = Topology::new(1);
        assert_eq!(
            probe_argv(&t, "198.51.100.200".parse().unwrap()).join(" "),
            "ip netns exec flb-client arping -r -c 1 -w 0.3 -i eth0 198.51.100.200"
        );
        assert_eq!(
            probe_argv(&t, "2001:db8:51::200".parse().unwrap()).join(" "),
            "ip netns exec flb-client ndisc6 -q -m -r 1 -w 300 2001:db8:51::200 eth0"
        );
    }
}
