//! Command-line interface of `ferrolb-controller`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ferrolb-controller",
    version,
    about = "Assigns external IPs to LoadBalancer Services"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what the controller would assign, without a cluster.
    Plan(PlanArgs),
}

pub use ferrolb_crds::standalone::Source;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// `kube` (default) or `dir:PATH`.
    #[arg(long, default_value = "kube")]
    pub source: Source,
    /// Handle only Services with this spec.loadBalancerClass (default: Services without a class).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Namespace holding FerroLB's objects (pools, lease).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    pub namespace: String,
    /// Name of the Lease used to elect the active replica.
    #[arg(long, default_value = "ferrolb-controller")]
    pub lease_name: String,
    /// Identity in the Lease (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Prometheus metrics listen address.
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub metrics_addr: SocketAddr,
    /// /healthz and /readyz listen address.
    #[arg(long, default_value = "0.0.0.0:7473")]
    pub health_addr: SocketAddr,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Standalone mode: process the directory once, print the assignments, and exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Multi-document YAML with IPAddressPools, Services and Namespaces (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Output,
    /// Handle only Services with this spec.loadBalancerClass.
    #[arg(long)]
    pub lb_class: Option<String>,
}
