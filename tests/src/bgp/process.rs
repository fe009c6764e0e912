//! A daemon running inside a namespace: started through `ip netns exec` (which execs
//! it, so the child's pid is the daemon's), output appended to a log file, stopped with
//! SIGTERM (then SIGKILL) when dropped.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Error, Result, io, wait_for};

#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `argv` in namespace `ns` with extra environment `env`; output goes to `log`.
    pub fn start(
        name: &str,
        ns: &str,
        argv: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Daemon> {
        use std::os::unix::process::CommandExt;
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("cannot open {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("cannot open {}", log.display())))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(io(format!("cannot start `{}`", argv.join(" "))))?;
        Ok(Daemon {
            name: name.into(),
            log: log.to_path_buf(),
            child,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether it is still running (reaps it if not).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error for a daemon that exited: its name and log tail.
    pub fn exited(&self) -> Error {
        Error::Command {
            command: self.name.clone(),
            detail: format!("exited; log:\n{}", self.log_tail(20)),
        }
    }

    /// Sends `signal` (e.g. SIGSTOP to freeze it, SIGCONT to thaw).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) has no memory-safety preconditions; the child is unreaped, so
        // its pid cannot have been recycled.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGTERM, SIGKILL after `grace`; reaped either way.
    pub fn stop(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        let gone = wait_for(grace, Duration::from_millis(10), || {
            (!self.running()).then_some(())
        });
        if gone.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// SIGKILL at once (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}
