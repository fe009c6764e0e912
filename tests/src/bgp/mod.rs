//! A harness for BGP tests against real routing daemons (Debian's BIRD 2, FRR 8,
//! GoBGP 3, ExaBGP 4), each in a network namespace the test creates.
//!
//! - [`netns`]: a router namespace holding a bridge and N host namespaces plugged into
//!   it (documentation addresses only); everything in them is killed and the namespaces
//!   deleted on drop, also when a test panics.
//! - [`process`]: a daemon started inside a namespace, its log kept, stopped on drop.
//! - [`bird`], [`frr`], [`gobgp`], [`exabgp`]: configuration text from one
//!   [`config::RouterConfig`] (pure, unit-tested), start-up, session state and the routes
//!   the daemon received, with their attributes, as [`route::Route`]s.
//! - [`capture`]: UPDATEs on the wire, timestamped by the kernel (tcpdump), decoded.
//! - [`mrt`]: an MRT (RFC 6396) RIB dump writer, to load many routes into GoBGP at once.
//! - [`site`]: the site directory `ferrolb-speaker --source dir:` reads, and the BGP
//!   objects in it; [`speaker`]: the speaker binary, built once, run in a namespace.
//! - [`testbed`]: one speaker against BIRD (or another daemon) for the integration
//!   tests: namespaces, site directory and speaker together, bounded route waits.
//!
//! Every wait is bounded in time ([`wait_for`]).

pub mod bird;
pub mod capture;
pub mod config;
pub mod exabgp;
pub mod frr;
pub mod gobgp;
pub mod mrt;
pub mod netns;
pub mod process;
pub mod procfs;
pub mod route;
pub mod site;
pub mod speaker;
pub mod testbed;

use std::process::Command;
use std::time::{Duration, Instant};

pub use config::{Neighbor, RouterConfig};
pub use netns::Net;
pub use route::Route;

/// What went wrong while driving a namespace or a daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{what} did not happen within {limit:?}")]
    Timeout { what: String, limit: Duration },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Whether this process runs as root (namespaces and daemons need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `program` is on the PATH (or is an existing absolute path).
pub fn have(program: &str) -> bool {
    if program.starts_with('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Runs `argv` to completion: its standard output, or an error quoting its standard
/// error.
pub fn run<S: AsRef<str>>(argv: &[S]) -> Result<String> {
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    let command = argv.join(" ");
    let (program, args) = argv.split_first().ok_or_else(|| Error::Command {
        command: command.clone(),
        detail: "empty command".into(),
    })?;
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(io(format!("cannot run `{command}`")))?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `check` every `every` until it returns `Some`, at most `limit` long.
pub fn wait_for<T>(
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Like [`wait_for`], an error naming `what` when time runs out.
pub fn wait_until<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    check: impl FnMut() -> Option<T>,
) -> Result<T> {
    wait_for(limit, every, check).ok_or_else(|| Error::Timeout {
        what: what.into(),
        limit,
    })
}
