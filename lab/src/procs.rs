//! The lab's processes as data: what runs where, with which arguments.
//!
//! | key | namespace | program |
//! |---|---|---|
//! | `controller` | host (it only reads and writes files) | `ferrolb-controller --source dir:STATE/cluster` |
//! | `router-bird` (or `router-zebra`, `router-bgpd`) | `flb-router` | the BGP daemon |
//! | `nodeK-responder` | `flb-nodeK` | `ferrolb-lab responder`: kube-proxy's part (VIPs on `lo`, port 80) |
//! | `nodeK-speaker` | `flb-nodeK` | `ferrolb-speaker`, when it is built |
//!
//! The binaries are found next to the lab's own (`target/debug/` under cargo).

use std::path::{Path, PathBuf};

use crate::router::{self, RouterKind};
use crate::state::StateDir;
use crate::topology::Host;

/// Gossip port of the speakers (MetalLB's memberlist port).
pub const GOSSIP_PORT: u16 = 7946;
/// Speaker metrics and health ports, on the node's LAN address (passed when the
/// speaker's `--help` lists the flags).
pub const METRICS_PORT: u16 = 7472;
pub const HEALTH_PORT: u16 = 7473;
/// The port the responders listen on.
pub const RESPONDER_PORT: u16 = 80;

/// One background process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// Names its pid file and log.
    pub key: String,
    /// `None`: the host namespace.
    pub ns: Option<String>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Daemon {
    /// The full command: `ip netns exec NS ARGV…` inside a namespace (`ip` execs the
    /// program, so the pid is the program's).
    pub fn command_line(&self) -> Vec<String> {
        match &self.ns {
            Some(ns) => ["ip", "netns", "exec", ns.as_str()]
                .iter()
                .map(|s| s.to_string())
                .chain(self.argv.iter().cloned())
                .collect(),
            None => self.argv.clone(),
        }
    }

    /// The program's file name, as `/proc/PID/cmdline` shows it.
    pub fn program_name(&self) -> &str {
        let argv0 = self.argv[0].as_str();
        argv0.rsplit('/').next().unwrap_or(argv0)
    }
}

/// The programs the lab starts, found next to its own binary.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub lab: PathBuf,
    pub controller: PathBuf,
    pub speaker: PathBuf,
}

impl Binaries {
    pub fn next_to(lab: PathBuf) -> Binaries {
        Binaries {
            controller: lab.with_file_name("ferrolb-controller"),
            speaker: lab.with_file_name("ferrolb-speaker"),
            lab,
        }
    }

    pub fn current() -> anyhow::Result<Binaries> {
        Ok(Binaries::next_to(std::env::current_exe()?))
    }

    pub fn speaker_built(&self) -> bool {
        self.speaker.is_file()
    }

    /// The optional flags this speaker binary accepts, from its `--help`.
    pub fn speaker_flags(&self) -> SpeakerFlags {
        let help = std::process::Command::new(&self.speaker)
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        SpeakerFlags::from_help(&help)
    }
}

/// Flags the lab passes to the speaker only if it has them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpeakerFlags {
    pub metrics_addr: bool,
    pub health_addr: bool,
}

impl SpeakerFlags {
    pub fn from_help(help: &str) -> SpeakerFlags {
        SpeakerFlags {
            metrics_addr: help.contains("--metrics-addr"),
            health_addr: help.contains("--health-addr"),
        }
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub fn controller(state: &StateDir, bins: &Binaries) -> Daemon {
    Daemon {
        key: "controller".into(),
        ns: None,
        argv: vec![
            path(&bins.controller),
            "--source".into(),
            format!("dir:{}", path(&state.cluster())),
        ],
        env: vec![],
    }
}

pub fn responder_key(node: &Host) -> String {
    format!("{}-responder", node.name)
}

pub fn speaker_key(node: &Host) -> String {
    format!("{}-speaker", node.name)
}

/// Where a responder says it is ready (listening, VIPs on `lo`).
pub fn ready_file(state: &StateDir, node: &Host) -> PathBuf {
    state.pid_file(&responder_key(node)).with_extension("ready")
}

pub fn responder(state: &StateDir, bins: &Binaries, node: &Host) -> Daemon {
    Daemon {
        key: responder_key(node),
        ns: Some(node.ns()),
        argv: vec![
            path(&bins.lab),
            "responder".into(),
            "--name".into(),
            node.name.clone(),
            "--vips-from".into(),
            path(&state.cluster()),
            "--ready-file".into(),
            path(&ready_file(state, node)),
        ],
        env: vec![],
    }
}

pub fn speaker(state: &StateDir, bins: &Binaries, node: &Host, flags: SpeakerFlags) -> Daemon {
    let mut argv = vec![
        path(&bins.speaker),
        "--node-name".into(),
        node.name.clone(),
        "--source".into(),
        format!("dir:{}", path(&state.cluster())),
        "--gossip-bind".into(),
        format!("{}:{GOSSIP_PORT}", node.ipv4),
        "--gossip-secret-file".into(),
        path(&state.secret()),
    ];
    if flags.metrics_addr {
        argv.push("--metrics-addr".into());
        argv.push(format!("{}:{METRICS_PORT}", node.ipv4));
    }
    if flags.health_addr {
        argv.push("--health-addr".into());
        argv.push(format!("{}:{HEALTH_PORT}", node.ipv4));
    }
    Daemon {
        key: speaker_key(node),
        ns: Some(node.ns()),
        argv,
        env: vec![("NODE_NAME".into(), node.name.clone())],
    }
}

/// The router's daemons, in start order.
pub fn router(state: &StateDir, kind: RouterKind) -> Vec<Daemon> {
    let dir = state.router();
    let ns = Some("flb-router".to_string());
    match kind {
        RouterKind::Bird => vec![Daemon {
            key: "router-bird".into(),
            ns,
            argv: router::bird_argv(&dir),
            env: vec![],
        }],
        RouterKind::Frr => ["zebra", "bgpd"]
            .iter()
            .map(|d| Daemon {
                key: format!("router-{d}"),
                ns: ns.clone(),
                argv: router::frr_argv(&dir, d),
                env: vec![],
            })
            .collect(),
        RouterKind::None => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    fn fixture() -> (StateDir, Binaries, Topology) {
        (
            StateDir::new("/run/ferrolb-lab"),
            Binaries::next_to("/src/target/debug/ferrolb-lab".into()),
            Topology::new(2),
        )
    }

    #[test]
    fn the_speaker_command_line() {
        let (s, b, t) = fixture();
        let d = speaker(&s, &b, &t.nodes[1], SpeakerFlags::default());
        assert_eq!(
            d.command_line().join(" "),
            "ip netns exec flb-node2 /src/target/debug/ferrolb-speaker --node-name node2 \
             --source dir:/run/ferrolb-lab/cluster --gossip-bind 198.51.100.12:7946 \
             --gossip-secret-file /run/ferrolb-lab/gossip.secret"
        );
        assert_eq!(d.key, "node2-speaker");
        assert_eq!(d.program_name(), "ferrolb-speaker");
        let all = SpeakerFlags::from_help("  --metrics-addr <ADDR>\n  --health-addr <ADDR>\n");
        assert!(
            speaker(&s, &b, &t.nodes[1], all)
                .command_line()
                .join(" ")
                .ends_with(" --metrics-addr 198.51.100.12:7472 --health-addr 198.51.100.12:7473")
        );
    }

    #[test]
    fn the_controller_runs_in_the_host_namespace() {
        let (s, b, _) = fixture();
        let d = controller(&s, &b);
        assert_eq!(
            d.command_line().join(" "),
            "/src/target/debug/ferrolb-controller --source dir:/run/ferrolb-lab/cluster"
        );
    }

    #[test]
    fn responders_follow_the_assignments() {
        let (s, b, t) = fixture();
        let d = responder(&s, &b, &t.nodes[0]);
        assert_eq!(
            d.command_line().join(" "),
            "ip netns exec flb-node1 /src/target/debug/ferrolb-lab responder --name node1 \
             --vips-from /run/ferrolb-lab/cluster --ready-file /run/ferrolb-lab/pids/node1-responder.ready"
        );
    }

    #[test]
    fn router_daemons() {
        let (s, _, _) = fixture();
        assert_eq!(router(&s, RouterKind::Bird)[0].program_name(), "bird");
        let frr: Vec<_> = router(&s, RouterKind::Frr)
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert_eq!(frr, ["router-zebra", "router-bgpd"]);
        assert!(router(&s, RouterKind::None).is_empty());
    }
}
