//! What `status` (and the end of `up`) shows: the lab's processes, links, BGP sessions,
//! and for every Service its addresses, pool, mode and who announces each address.
//!
//! "Who announces" is observed, not asked: for a LAN address, the MACs that answer the
//! client's ARP request or Neighbor Solicitation (mapped back to nodes by their fixed
//! MACs; two answers are a conflict); for a routed address, the next hops of the
//! router's kernel route. This module holds the model and its rendering (pure);
//! [`crate::observe`] fills it in.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::router::Session;

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub state_dir: String,
    pub nodes_count: usize,
    pub controller: Process,
    pub router: RouterStatus,
    pub speaker_built: bool,
    pub nodes: Vec<NodeStatus>,
    pub services: Vec<ServiceStatus>,
    /// Services the controller could not give an address, with its reason.
    pub unassigned: Vec<Unassigned>,
    /// Input files or objects the controller could not use.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Process {
    pub running: bool,
    pub pid: Option<i32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RouterStatus {
    pub kind: String,
    pub ipv4: String,
    pub ipv6: String,
    pub running: bool,
    pub sessions: Vec<Session>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub ipv4: String,
    pub ipv6: String,
    pub mac: String,
    /// `up`, `down`, or `missing` (no such port: the lab is broken).
    pub link: String,
    /// `running`, `stopped` or `not built`.
    pub speaker: String,
    pub responder: String,
    /// The speaker's BGP sessions, as its report says.
    pub bgp: Vec<NodeSession>,
}

/// One BGP session of a node's speaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSession {
    pub peer: String,
    pub state: String,
    #[serde(default)]
    pub advertised: Vec<String>,
}

/// The sessions in a speaker's report (`.ferrolb/speakers/NODE.yaml`); none when it
/// cannot be read.
pub fn speaker_sessions(report_yaml: &str) -> Vec<NodeSession> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Report {
        #[serde(default)]
        bgp_sessions: Vec<NodeSession>,
    }
    serde_saphyr::from_str::<Report>(report_yaml)
        .map(|r| r.bgp_sessions)
        .unwrap_or_default()
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceStatus {
    pub namespace: String,
    pub name: String,
    pub pool: String,
    /// `layer2`, `bgp`, `layer2+bgp` or `none`, from the advertisements.
    pub mode: String,
    pub ips: Vec<IpStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IpStatus {
    pub ip: IpAddr,
    pub announcement: Announcement,
}

/// What the network shows for one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Announcement {
    /// No speaker binary: nothing can announce.
    SpeakerNotBuilt,
    /// Nobody answers (LAN) / no route at the router.
    NotAnnounced,
    /// Answered on the LAN by these nodes (by MAC; an unknown MAC as is).
    Layer2 { nodes: Vec<String> },
    /// Routed by the router to these nodes.
    Bgp { nodes: Vec<String> },
}

impl Announcement {
    pub fn describe(&self) -> String {
        match self {
            Announcement::SpeakerNotBuilt => "not announced: speaker not built".into(),
            Announcement::NotAnnounced => "not announced".into(),
            Announcement::Layer2 { nodes } if nodes.len() > 1 => {
                format!("CONFLICT: answered by {}", nodes.join(", "))
            }
            Announcement::Layer2 { nodes } => {
                format!("announced by {} (ARP/NDP)", nodes.join(", "))
            }
            Announcement::Bgp { nodes } => format!("routed to {} (BGP)", nodes.join(", ")),
        }
    }

    /// Whether the address is reachable: one Layer 2 answer, or a route.
    pub fn is_announced(&self) -> bool {
        match self {
            Announcement::Layer2 { nodes } => nodes.len() == 1,
            Announcement::Bgp { nodes } => !nodes.is_empty(),
            _ => false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Unassigned {
    pub namespace: String,
    pub name: String,
    pub error: String,
}

/// The line printed when the speaker binary is missing.
pub const SPEAKER_NOT_BUILT: &str =
    "speaker binary not built yet: layer2 announcements are not running";

fn running(p: &Process) -> String {
    match (p.running, p.pid) {
        (true, Some(pid)) => format!("running (pid {pid})"),
        (true, None) => "running".into(),
        _ => "NOT RUNNING".into(),
    }
}

/// The text form.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "FerroLB lab in {} ({} nodes)",
        s.state_dir, s.nodes_count
    );
    let _ = writeln!(out, "  controller  {}", running(&s.controller));
    let router = if s.router.kind == "none" {
        "forwarding only (no BGP daemon)".to_string()
    } else {
        let sessions = if s.router.sessions.is_empty() {
            "none".to_string()
        } else {
            s.router
                .sessions
                .iter()
                .map(|x| format!("{} {}", x.name, x.state))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} {}; BGP sessions: {sessions}",
            s.router.kind,
            if s.router.running {
                "running"
            } else {
                "NOT RUNNING"
            }
        )
    };
    let _ = writeln!(
        out,
        "  router      {} {}  {router}",
        s.router.ipv4, s.router.ipv6
    );
    for n in &s.nodes {
        let _ = writeln!(
            out,
            "  {:<10}  {} {}  {}  link {:<4}  speaker {:<9}  responder {}",
            n.name, n.ipv4, n.ipv6, n.mac, n.link, n.speaker, n.responder
        );
        if !n.bgp.is_empty() {
            let sessions: Vec<String> = n
                .bgp
                .iter()
                .map(|b| {
                    let prefixes = if b.advertised.is_empty() {
                        "nothing".to_string()
                    } else {
                        b.advertised.join(" ")
                    };
                    format!("{} {} ({prefixes})", b.peer, b.state)
                })
                .collect();
            let _ = writeln!(out, "              BGP: {}", sessions.join(", "));
        }
    }
    let _ = writeln!(out, "\nServices:");
    if s.services.is_empty() && s.unassigned.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for svc in &s.services {
        let _ = writeln!(
            out,
            "  {}/{}  pool {} ({})",
            svc.namespace, svc.name, svc.pool, svc.mode
        );
        let width = svc
            .ips
            .iter()
            .map(|i| i.ip.to_string().len())
            .max()
            .unwrap_or(0);
        for ip in &svc.ips {
            let _ = writeln!(
                out,
                "    {:<width$}  {}",
                ip.ip.to_string(),
                ip.announcement.describe()
            );
        }
    }
    for u in &s.unassigned {
        let _ = writeln!(out, "  {}/{}  no address: {}", u.namespace, u.name, u.error);
    }
    if !s.problems.is_empty() {
        let _ = writeln!(out, "\nController problems:");
        for p in &s.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    if !s.speaker_built {
        let _ = writeln!(out, "\n{SPEAKER_NOT_BUILT}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(speaker_built: bool, announcement: Announcement) -> Status {
        Status {
            state_dir: "/run/ferrolb-lab".into(),
            nodes_count: 1,
            controller: Process {
                running: true,
                pid: Some(42),
            },
            router: RouterStatus {
                kind: "bird".into(),
                ipv4: "198.51.100.1".into(),
                ipv6: "2001:db8:51::1".into(),
                running: true,
                sessions: vec![],
            },
            speaker_built,
            nodes: vec![NodeStatus {
                name: "node1".into(),
                ipv4: "198.51.100.11".into(),
                ipv6: "2001:db8:51::11".into(),
                mac: "02:66:6c:62:00:0b".into(),
                link: "up".into(),
                speaker: if speaker_built {
                    "running"
                } else {
                    "not built"
                }
                .into(),
                responder: "running".into(),
                bgp: vec![NodeSession {
                    peer: "router".into(),
                    state: "Established".into(),
                    advertised: vec!["203.0.113.1/32".into()],
                }],
            }],
            services: vec![ServiceStatus {
                namespace: "default".into(),
                name: "web".into(),
                pool: "lan".into(),
                mode: "layer2".into(),
                ips: vec![
                    IpStatus {
                        ip: "198.51.100.200".parse().unwrap(),
                        announcement: announcement.clone(),
                    },
                    IpStatus {
                        ip: "2001:db8:51::200".parse().unwrap(),
                        announcement,
                    },
                ],
            }],
            unassigned: vec![Unassigned {
                namespace: "default".into(),
                name: "big".into(),
                error: "pool lan is full".into(),
            }],
            problems: vec![],
        }
    }

    #[test]
    fn without_a_speaker_says_so() {
        let text = render(&sample(false, Announcement::SpeakerNotBuilt));
        assert!(text.contains("controller  running (pid 42)"), "{text}");
        assert!(text.contains("bird running; BGP sessions: none"), "{text}");
        assert!(
            text.contains("  default/web  pool lan (layer2)\n"),
            "{text}"
        );
        assert!(
            text.contains("    198.51.100.200    not announced: speaker not built\n"),
            "{text}"
        );
        assert!(text.contains("default/big  no address: pool lan is full"));
        assert!(
            text.ends_with(&format!("\n{SPEAKER_NOT_BUILT}\n")),
            "{text}"
        );
    }

    #[test]
    fn announcers_and_conflicts() {
        let one = Announcement::Layer2 {
            nodes: vec!["node2".into()],
        };
        assert_eq!(one.describe(), "announced by node2 (ARP/NDP)");
        assert!(one.is_announced());
        let two = Announcement::Layer2 {
            nodes: vec!["node1".into(), "node2".into()],
        };
        assert_eq!(two.describe(), "CONFLICT: answered by node1, node2");
        assert!(!two.is_announced());
        let bgp = Announcement::Bgp {
            nodes: vec!["node1".into(), "node2".into()],
        };
        assert_eq!(bgp.describe(), "routed to node1, node2 (BGP)");
        let text = render(&sample(true, one));
        assert!(!text.contains(SPEAKER_NOT_BUILT));
        assert!(
            text.contains("BGP: router Established (203.0.113.1/32)"),
            "{text}"
        );
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(sample(
            true,
            Announcement::Layer2 {
                nodes: vec!["node1".into()],
            },
        ))
        .unwrap();
        assert_eq!(v["services"][0]["ips"][0]["ip"], "198.51.100.200");
        assert_eq!(
            v["services"][0]["ips"][0]["announcement"],
            serde_json::json!({"state": "layer2", "nodes": ["node1"]})
        );
        assert_eq!(v["nodes"][0]["link"], "up");
        assert_eq!(v["controller"]["pid"], 42);
    }

    #[test]
    fn speaker_sessions_from_its_report() {
        let yaml = "node: node1\nliveMembers: [node1]\nbgpSessions:\n- peer: router\n  address: 198.51.100.1:179\n  state: Established\n  advertised:\n  - 203.0.113.1/32\n- peer: router-v6\n  address: '[2001:db8:51::1]:179'\n  state: Active\n  advertised: []\n  lastError: connection refused\n";
        let s = speaker_sessions(yaml);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].advertised, ["203.0.113.1/32"]);
        assert_eq!(s[1].state, "Active");
        assert!(speaker_sessions("node: node1\n").is_empty());
        assert!(speaker_sessions(": not yaml [").is_empty());
    }
}
