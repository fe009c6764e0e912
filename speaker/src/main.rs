//! `ferrolb-speaker`: announces the service IPs assigned by `ferrolb-controller`.

use clap::Parser;
use ferrolb_speaker::cli::{Cli, LogFormat};
use ferrolb_speaker::plane::Announcers;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
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
    let mut plane = Announcers::new(cli.garp_refresh);
    if let Err(e) = runtime.block_on(ferrolb_speaker::run::run(cli, &mut plane)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
