//! The imperative shell: running the plan's commands, starting and signalling the lab's
//! processes, listing namespaces. Every wait here is bounded in time.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::plan::Cmd;
use crate::procs::Daemon;
use crate::state::StateDir;
use crate::topology::is_lab_namespace;

/// Runs `cmd` to completion; its standard output on success, otherwise an error naming
/// the command and quoting its standard error.
pub fn run(cmd: &Cmd) -> anyhow::Result<String> {
    let (program, args) = cmd.argv.split_first().context("empty command")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run `{}`", cmd.argv.join(" ")))?;
    if let Some(input) = &cmd.stdin {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs each command in order, stopping at the first failure.
pub fn run_all(cmds: &[Cmd]) -> anyhow::Result<()> {
    for cmd in cmds {
        run(cmd)?;
    }
    Ok(())
}

/// Starts `daemon` in the background: its own process group (a terminal's Ctrl-C does
/// not reach it), output appended to its log, pid recorded. The child is returned so the
/// caller may watch it; dropping it leaves the process running.
pub fn spawn(state: &StateDir, daemon: &Daemon) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let log_path = state.log(&daemon.key);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let argv = daemon.command_line();
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    for (k, v) in &daemon.env {
        command.env(k, v);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
    let pid = child.id();
    crate::state::write(&state.pid_file(&daemon.key), &format!("{pid}\n"), 0o644)?;
    Ok(child)
}

/// Whether `pid` is a live process (zombies count as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// The program name (basename of `argv[0]`) of a live process.
pub fn program(pid: i32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let argv0 = String::from_utf8_lossy(argv0);
    Some(argv0.rsplit('/').next().unwrap_or(&argv0).to_string())
}

/// The pid recorded for `daemon`, if that process is alive and still runs the same
/// program (so a recycled pid is never signalled).
pub fn running(state: &StateDir, daemon: &Daemon) -> Option<i32> {
    let pid = state.pid(&daemon.key)?;
    (alive(pid) && program(pid).as_deref() == Some(daemon.program_name())).then_some(pid)
}

/// Sends `signal` to `pid`; a process already gone is not an error.
pub fn signal(pid: i32, signal: i32) -> anyhow::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(err).with_context(|| format!("cannot signal process {pid}"))
}

/// Polls `ready` every `every` until it holds or `limit` has passed; whether it held.
pub fn wait_until(limit: Duration, every: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// SIGTERM, then SIGKILL if `pid` is still alive after `grace`.
pub fn terminate(pid: i32, grace: Duration) -> anyhow::Result<()> {
    signal(pid, libc::SIGTERM)?;
    if !wait_until(grace, Duration::from_millis(10), || !alive(pid)) {
        signal(pid, libc::SIGKILL)?;
    }
    Ok(())
}

/// The lab's namespaces that exist now, whatever `lab.json` says (other `flb-*`
/// namespaces are left alone: see [`is_lab_namespace`]).
pub fn lab_namespaces() -> anyhow::Result<Vec<String>> {
    let out = run(&Cmd::ip("netns list"))?;
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| is_lab_namespace(n))
        .map(String::from)
        .collect();
    names.sort();
    Ok(names)
}

/// The pids of every process in namespace `ns`.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    run(&Cmd::new(["ip", "netns", "pids", ns]))
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The last `lines` lines of a log, to quote in an error.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}
