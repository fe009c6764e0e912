//! Command-line interface of `ferrolb-speaker`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

pub use ferrolb_crds::standalone::Source;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    s.parse::<kube_duration::Duration>()
        .map(Into::into)
        .map_err(|e| format!("{s:?}: {e}"))
}

mod kube_duration {
    pub use kube::core::Duration;
}

#[derive(Debug, Parser)]
#[command(
    name = "ferrolb-speaker",
    version,
    about = "Announces service IPs assigned by ferrolb-controller"
)]
pub struct Cli {
    /// This node's name, as in its Node object.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// `kube` (default) or `dir:PATH`.
    #[arg(long, default_value = "kube")]
    pub source: Source,
    /// The FerroLB namespace (`--source kube`): where the pools and advertisements are
    /// read and the ServiceL2Status objects written.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    pub namespace: String,
    /// This speaker's pod (`--source kube`): the owner of its ServiceL2Status objects,
    /// so that they go with it, and the reporting instance of its Events.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The pod's uid (needed with --pod-name for the owner reference).
    #[arg(long, env = "POD_UID")]
    pub pod_uid: Option<String>,
    /// Handle only Services with this spec.loadBalancerClass (default: Services without a class).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// UDP address for gossip between speakers.
    #[arg(long, default_value = "0.0.0.0:7946")]
    pub gossip_bind: SocketAddr,
    /// File holding the shared gossip secret. Without it gossip is off and Node readiness
    /// alone decides who is alive (slower failover).
    #[arg(long, env = "FERROLB_GOSSIP_SECRET_FILE")]
    pub gossip_secret_file: Option<PathBuf>,
    /// How often each speaker probes one other speaker. With --gossip-suspicion it sets
    /// how fast a crashed node is declared dead (about 2-4 periods + suspicion) and what
    /// gossip costs (about 2 datagrams of ~130 bytes per period and node).
    #[arg(long, value_parser = duration, default_value = "10ms")]
    pub gossip_probe_interval: Duration,
    /// How long a speaker that stopped answering probes has to refute before it is
    /// declared dead. Raise it (with --gossip-probe-interval) on nodes where the speaker
    /// can be starved of CPU for tens of milliseconds.
    #[arg(long, value_parser = duration, default_value = "20ms")]
    pub gossip_suspicion: Duration,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Interface name patterns never announced on (regular expressions; replaces the
    /// default list when given).
    #[arg(long = "exclude-interface")]
    pub exclude_interfaces: Vec<String>,
    /// Re-send gratuitous ARP / unsolicited NA for owned IPs this often (e.g. 30s), so
    /// switch tables never age out. Off by default.
    #[arg(long, value_parser = duration)]
    pub garp_refresh: Option<Duration>,
    /// TCP port on which BGP peers may connect to this speaker (passive peers, and
    /// routers that dial): connections from addresses that are not configured peers are
    /// closed at once. 0: never listen, sessions only dial.
    #[arg(long, default_value_t = 179)]
    pub bgp_listen_port: u16,
    /// Prometheus metrics listen address (`/metrics`), MetalLB's speaker port. The same
    /// address as --health-addr serves both on one port; port 0 picks a free one.
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub metrics_addr: SocketAddr,
    /// `/healthz` and `/readyz` listen address.
    #[arg(long, default_value = "0.0.0.0:7473")]
    pub health_addr: SocketAddr,
}

impl Cli {
    /// The gossip timers these flags ask for.
    pub fn gossip_tuning(&self) -> crate::membership::Tuning {
        crate::membership::Tuning::with_probe(self.gossip_probe_interval, self.gossip_suspicion)
    }
}
