//! `ferrolb-speaker` as a process in a node namespace, reading a site directory
//! ([`super::site`]). The binary is built once per test process with the profile the
//! test itself was built with (`cargo build -p ferrolb-speaker`, bounded in time).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::process::Daemon;
use super::{Error, Result};

/// Longest a build of the speaker may take (cold, on 2 cores).
const BUILD_LIMIT: Duration = Duration::from_secs(1200);

/// `target/<profile>/`: tests and benches run from its `deps/`.
fn bin_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

fn build(dir: &Path) -> std::result::Result<PathBuf, String> {
    let release = dir.file_name().is_some_and(|n| n == "release");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?
        .to_path_buf();
    let mut cmd = crate::nested_cargo();
    cmd.current_dir(&workspace).args([
        "build",
        "--quiet",
        "-p",
        "ferrolb-speaker",
        "--bin",
        "ferrolb-speaker",
    ]);
    if release {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(status)) => return Err(format!("cargo build -p ferrolb-speaker: {status}")),
            Ok(None) if start.elapsed() > BUILD_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "cargo build -p ferrolb-speaker took over {BUILD_LIMIT:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("cannot wait for cargo: {e}")),
        }
    }
    let bin = dir.join("ferrolb-speaker");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} missing after the build", bin.display()))
    }
}

/// The speaker binary, built on first use; `FERROLB_SPEAKER_BIN` names another one
/// (a profiling build, or a wrapper running it under `perf`).
pub fn binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("FERROLB_SPEAKER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build(&bin_dir().ok_or("cannot locate target directory")?))
        .clone()
        .map_err(|detail| Error::Command {
            command: "cargo build -p ferrolb-speaker".into(),
            detail,
        })
}

/// A running speaker.
pub struct Speaker {
    pub daemon: Daemon,
    pub node: String,
}

impl Speaker {
    /// Starts `bin` as node `node` in namespace `ns` on site directory `site`;
    /// `extra` flags are appended. Log: `log`.
    pub fn start(
        bin: &Path,
        ns: &str,
        node: &str,
        site: &Path,
        extra: &[&str],
        log: &Path,
    ) -> Result<Speaker> {
        let mut argv = vec![
            bin.display().to_string(),
            "--node-name".into(),
            node.into(),
            "--source".into(),
            format!("dir:{}", site.display()),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let daemon = Daemon::start(
            &format!("ferrolb-speaker {node}"),
            ns,
            &argv,
            &[("RUST_LOG", "info")],
            log,
        )?;
        Ok(Speaker {
            daemon,
            node: node.into(),
        })
    }
}
