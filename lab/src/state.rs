//! The state directory (default `/run/ferrolb-lab`): what `up` created, so every later
//! subcommand (and `down`, even after a crash) finds it.
//!
//! ```text
//! lab.json           the lab's shape (nodes, router); also marks the directory as the lab's
//! cluster/           the controller's standalone directory (cluster/.ferrolb/assignments.yaml)
//! gossip.secret      the speakers' shared secret (0600)
//! router/            the BGP daemon's configuration, control socket, pid file
//! pids/NAME.pid      one per process the lab started
//! logs/NAME.log      their standard output and error
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::router::RouterKind;
use crate::topology::Topology;

pub const DEFAULT_DIR: &str = "/run/ferrolb-lab";
const CONFIG_FILE: &str = "lab.json";

/// What `up` was asked to build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabConfig {
    pub nodes: usize,
    pub router: RouterKind,
}

impl LabConfig {
    pub fn topology(&self) -> Topology {
        Topology::new(self.nodes)
    }
}

/// Paths inside the state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        let root = root.into();
        // Absolute, so the paths handed to processes in other namespaces (and to the
        // controller) do not depend on a working directory.
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map(|d| d.join(&root))
                .unwrap_or(root)
        };
        StateDir { root }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn cluster(&self) -> PathBuf {
        self.root.join("cluster")
    }
    pub fn secret(&self) -> PathBuf {
        self.root.join("gossip.secret")
    }
    pub fn router(&self) -> PathBuf {
        self.root.join("router")
    }
    pub fn pid_file(&self, key: &str) -> PathBuf {
        self.root.join("pids").join(format!("{key}.pid"))
    }
    pub fn log(&self, key: &str) -> PathBuf {
        self.root.join("logs").join(format!("{key}.log"))
    }

    /// Whether this directory is a lab's (holds `lab.json`): `down` removes only such a
    /// directory, so a mistyped `--state` never deletes anything else.
    pub fn is_lab(&self) -> bool {
        self.config_path().is_file()
    }

    /// The config written by `up`; `None` when there is no lab here.
    pub fn config(&self) -> anyhow::Result<Option<LabConfig>> {
        let path = self.config_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{}: not a lab config", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The config, or an error saying there is no lab.
    pub fn require(&self) -> anyhow::Result<LabConfig> {
        self.config()?.with_context(|| {
            format!(
                "no lab in {} (start one with `ferrolb-lab up`)",
                self.root.display()
            )
        })
    }

    /// Creates the directory tree and records `config`.
    pub fn create(&self, config: &LabConfig) -> anyhow::Result<()> {
        for dir in [
            self.root.clone(),
            self.cluster(),
            self.router(),
            self.root.join("pids"),
            self.root.join("logs"),
        ] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            set_mode(&dir, 0o755)?;
        }
        write(
            &self.config_path(),
            &serde_json::to_string_pretty(config)?,
            0o644,
        )
    }

    /// The pid recorded under `key`, if any.
    pub fn pid(&self, key: &str) -> Option<i32> {
        std::fs::read_to_string(self.pid_file(key))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Writes `text` to `path` with `mode`.
pub fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// A fresh gossip secret: 32 random bytes as hex.
pub fn new_secret() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let s = StateDir::new("/run/ferrolb-lab");
        assert_eq!(
            s.pid_file("node1-speaker"),
            Path::new("/run/ferrolb-lab/pids/node1-speaker.pid")
        );
        assert_eq!(
            s.log("controller"),
            Path::new("/run/ferrolb-lab/logs/controller.log")
        );
        assert_eq!(s.cluster(), Path::new("/run/ferrolb-lab/cluster"));
        assert!(StateDir::new("relative").root.is_absolute());
    }

    #[test]
    fn config_round_trip() {
        let c = LabConfig {
            nodes: 2,
            router: RouterKind::Bird,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"nodes":2,"router":"bird"}"#);
        assert_eq!(serde_json::from_str::<LabConfig>(&text).unwrap(), c);
    }

    #[test]
    fn secrets_differ() {
        let a = new_secret().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_secret().unwrap());
    }
}
