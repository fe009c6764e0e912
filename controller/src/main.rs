//! `ferrolb-controller`: assigns external IPs to LoadBalancer Services.
//!
//! - `ferrolb-controller plan -f FILE …`: the dry run (exit code from the planner).
//! - `ferrolb-controller [--source kube]`: the controller against the cluster.
//! - `ferrolb-controller --source dir:PATH`: the standalone controller on a directory.
//!
//! Logs go to stderr, as text or JSON (`--log-format`), filtered by `RUST_LOG`
//! (default `info`). A fatal error is printed as one line and exits 1.

use clap::Parser;
use ferrolb_controller::cli::{Cli, Command, LogFormat, Source};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.run.log_format);
    if let Some(Command::Plan(args)) = &cli.command {
        std::process::exit(ferrolb_controller::plan::run(args));
    }
    if let Err(e) = run(&cli) {
        eprintln!("ferrolb-controller: {}", one_line(&e));
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match &cli.run.source {
            Source::Kube => ferrolb_controller::source::kube::run(&cli.run).await,
            Source::Dir(_) => ferrolb_controller::source::dir::run(&cli.run).await,
        }
    })
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; logs collected from a pipe stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The error and its causes on one line. Causes whose text the previous messages
/// already contain are left out (kube's errors repeat their sources).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if line.contains(&msg) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&msg);
    }
    line.replace(['\n', '\r'], " ")
}
