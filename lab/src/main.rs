//! `ferrolb-lab`: a FerroLB site on one machine, in network namespaces.
//!
//! `up` builds a LAN (a bridge in `flb-lan`), nodes (`flb-node1`…), a router running a
//! real BGP daemon (`flb-router`) and a client (`flb-client`); starts the controller in
//! standalone mode on example pools and a Service, a responder per node (kube-proxy's
//! part) and, once it is built, a speaker per node; and prints who got which address and
//! who announces it. The other subcommands inspect the lab, change its inputs, fail
//! nodes in the ways that matter for failover, and remove it all (`down`).
//!
//! Needs root and Debian's `iproute2`, `bird2`, `arping`, `ndisc6` (`up --install`).
//! See `lab/README.md`.

mod bench;
mod cluster;
mod commands;
mod exec;
mod observe;
mod packages;
mod plan;
mod procs;
mod responder;
mod router;
mod state;
mod status;
mod topology;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::router::RouterKind;
use crate::state::StateDir;

#[derive(Debug, Parser)]
#[command(
    name = "ferrolb-lab",
    version,
    about = "A FerroLB site on one machine: nodes, a router and a client in network namespaces"
)]
struct Cli {
    /// Where the lab keeps its files (controller directory, pids, logs).
    #[arg(long, global = true, env = "FERROLB_LAB_STATE", default_value = state::DEFAULT_DIR)]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LinkState {
    Up,
    Down,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the lab and start everything; print what got which address.
    Up {
        /// Number of nodes (1-50).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// The BGP daemon in the router namespace.
        #[arg(long, value_enum, default_value = "bird")]
        router: RouterKind,
        /// Install missing Debian packages with apt-get.
        #[arg(long)]
        install: bool,
        /// Print the network commands instead of running them (no root needed).
        #[arg(long)]
        dry_run: bool,
    },
    /// Processes, links, BGP sessions, and per Service: addresses, mode, announcer(s).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Copy manifests into the controller's directory.
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Remove manifests (by file name) from the controller's directory.
    Delete {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// SIGKILL a node's speaker.
    Kill { node: String },
    /// SIGTERM a node's speaker (graceful hand-off).
    Stop { node: String },
    /// Node failure: kill every process of the node and take its link down at once.
    Crash { node: String },
    /// Bring a node back: link up, responder and speaker running.
    Start { node: String },
    /// Take a node's LAN link down or up (its processes keep running).
    Link {
        node: String,
        #[arg(value_enum, value_name = "up|down")]
        to: LinkState,
    },
    /// Remove everything the lab created (idempotent).
    Down,
    /// Measurements on the lab.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// (internal) kube-proxy's part on a node: VIPs on lo, a TCP server naming the node.
    Responder {
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = procs::RESPONDER_PORT)]
        port: u16,
        /// Keep the VIPs of this controller directory's assignments on `lo`.
        #[arg(long)]
        vips_from: Option<PathBuf>,
        /// Written once listening and the VIPs are on `lo`.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Client-visible failover gap of the Layer2 VIP, FerroLB then keepalived (VRRP).
    Failover(bench::FailoverArgs),
}

/// Exits with one line unless running as root.
pub fn require_root() {
    if !exec::is_root() {
        eprintln!("ferrolb-lab needs root (network namespaces)");
        std::process::exit(1);
    }
}

fn main() {
    // Die quietly on a closed pipe (`ferrolb-lab status | head`), like other tools.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let state = StateDir::new(&cli.state);
    let needs_root = !matches!(
        cli.command,
        Command::Up { dry_run: true, .. } | Command::Responder { .. }
    );
    if needs_root {
        require_root();
    }
    let result = match &cli.command {
        Command::Up {
            nodes,
            router,
            install,
            dry_run,
        } => commands::up(
            &state,
            &commands::UpOptions {
                nodes: *nodes,
                router: *router,
                install: *install,
                dry_run: *dry_run,
            },
        ),
        Command::Status { json } => commands::status(&state, *json),
        Command::Apply { files } => commands::apply(&state, files),
        Command::Delete { files } => commands::delete(&state, files),
        Command::Kill { node } => commands::signal_speaker(&state, node, libc::SIGKILL),
        Command::Stop { node } => commands::signal_speaker(&state, node, libc::SIGTERM),
        Command::Crash { node } => commands::crash(&state, node),
        Command::Start { node } => commands::start(&state, node),
        Command::Link { node, to } => commands::link(&state, node, *to == LinkState::Up),
        Command::Down => commands::down(&state, false),
        Command::Bench(BenchCommand::Failover(args)) => bench::failover(&state, args),
        Command::Responder {
            name,
            port,
            vips_from,
            ready_file,
        } => responder::run(name, *port, vips_from.clone(), ready_file.clone()),
    };
    if let Err(e) = result {
        let line = format!("{e:#}");
        eprintln!("ferrolb-lab: {line}");
        std::process::exit(1);
    }
}
