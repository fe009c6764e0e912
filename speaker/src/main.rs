//! `ferrolb-speaker`: announces the service IPs assigned by `ferrolb-controller`.

use std::sync::Arc;

use clap::Parser;
use ferrolb_speaker::cli::{Cli, LogFormat};
use ferrolb_speaker::metrics::Metrics;
use ferrolb_speaker::plane::Announcers;
use tracing_subscriber::EnvFilter;

fn main() {
    ferrolb_speaker::memory::configure();
    let cli = Cli::parse();
    // A bad gossip tuning is a bad flag: say so before starting anything.
    if let Err(e) = cli.gossip_tuning().to_foca() {
        eprintln!("error: --gossip-probe-interval/--gossip-suspicion: {e}");
        std::process::exit(2);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let metrics = Arc::new(Metrics::new());
    let mut plane = Announcers::new(cli.garp_refresh).with_metrics(Arc::clone(&metrics));
    if let Err(e) = runtime.block_on(serve_and_run(cli, &mut plane, metrics)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` while the speaker runs.
async fn serve_and_run(
    cli: Cli,
    plane: &mut Announcers,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let servers = ferrolb_observe::start(
        cli.metrics_addr,
        cli.health_addr,
        Arc::clone(&metrics) as Arc<dyn ferrolb_observe::Exposition>,
        metrics.readiness(),
    )
    .await?;
    let result = ferrolb_speaker::run::run(cli, plane, &metrics).await;
    for s in servers {
        s.abort();
    }
    result
}
