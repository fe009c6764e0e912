//! The subcommands: each one turns the pure pieces (topology, plan, cluster files,
//! process specs) into actions, and says what it did.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use ferrolb_controller::source::dir::{assignments_path, status_path};

use crate::cluster;
use crate::exec::{self, wait_until};
use crate::observe;
use crate::packages;
use crate::plan::{self, Cmd};
use crate::procs::{self, Binaries, SpeakerFlags};
use crate::router::{self, RouterKind};
use crate::state::{self, LabConfig, StateDir};
use crate::status::{self, SPEAKER_NOT_BUILT};
use crate::topology::{Host, MAX_NODES, Topology, on_lan};

const TICK: Duration = Duration::from_millis(20);

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// up
// ---------------------------------------------------------------------------------------

pub struct UpOptions {
    pub nodes: usize,
    pub router: RouterKind,
    pub install: bool,
    pub dry_run: bool,
}

/// Under `cargo run -p ferrolb-lab`, builds the programs the lab starts (same profile),
/// so the README's one command is enough. The speaker is built when it has a binary;
/// if it does not build, the lab runs without it and says so.
fn cargo_build(bins: &Binaries) {
    let (Ok(cargo), Ok(pkg)) = (std::env::var("CARGO"), std::env::var("CARGO_PKG_NAME")) else {
        return;
    };
    if pkg != "ferrolb-lab" {
        return;
    }
    let release = bins
        .lab
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "release");
    let build = |package: &str| {
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args(["build", "--bins", "-p", package]);
        if release {
            cmd.arg("--release");
        }
        if let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") {
            cmd.current_dir(dir);
        }
        cmd.status().is_ok_and(|s| s.success())
    };
    if !build("ferrolb-controller") {
        eprintln!("ferrolb-lab: building ferrolb-controller failed (see above)");
    }
    if !build("ferrolb-speaker") {
        eprintln!("ferrolb-lab: the speaker did not build (see above): starting without it");
    }
}

/// Installs or names the missing Debian packages.
fn check_packages(router: RouterKind, install: bool) -> anyhow::Result<()> {
    let missing = packages::missing(&packages::needed(router), packages::on_path);
    if missing.is_empty() {
        return Ok(());
    }
    let line = packages::apt_line(&missing);
    if !install {
        bail!(
            "missing Debian packages: {} (run `{}`, or `ferrolb-lab up --install`)",
            missing.join(" "),
            line.join(" ")
        );
    }
    eprintln!("installing {} …", missing.join(" "));
    exec::run(&Cmd::new(["apt-get", "update", "-q"]))?;
    let mut cmd = std::process::Command::new(&line[0]);
    cmd.args(&line[1..])
        .env("DEBIAN_FRONTEND", "noninteractive");
    if !cmd.status()?.success() {
        bail!("`{}` failed", line.join(" "));
    }
    Ok(())
}

pub fn up(state: &StateDir, opts: &UpOptions) -> anyhow::Result<()> {
    if opts.nodes == 0 || opts.nodes > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}");
    }
    let config = LabConfig {
        nodes: opts.nodes,
        router: opts.router,
    };
    let topology = config.topology();
    if opts.dry_run {
        for cmd in plan::network(&topology) {
            println!("{cmd}");
        }
        return Ok(());
    }
    check_packages(opts.router, opts.install)?;
    let existing = exec::lab_namespaces()?;
    if !existing.is_empty() || state.is_lab() {
        bail!(
            "a lab is already up (namespaces: {}; state: {}): see `ferrolb-lab status`, or remove it with `ferrolb-lab down`",
            if existing.is_empty() {
                "none".into()
            } else {
                existing.join(" ")
            },
            state.root.display()
        );
    }

    let bins = Binaries::current()?;
    cargo_build(&bins);
    if !bins.controller.is_file() {
        bail!(
            "{} not found: build it with `cargo build -p ferrolb-controller` (or run the lab with `cargo run -p ferrolb-lab -- up`)",
            bins.controller.display()
        );
    }
    let start = Instant::now();
    match build(state, &config, &topology, &bins) {
        Ok(timings) => {
            let status = settle(state, &config, &bins);
            print!("{}", status::render(&status));
            println!("\n{}", hints(&status));
            println!("lab up in {} ({timings})", secs(start.elapsed()));
            Ok(())
        }
        Err(e) => {
            eprintln!("ferrolb-lab: up failed, removing what was built: {e:#}");
            let _ = down(state, true);
            Err(e.context("up failed"))
        }
    }
}

/// Builds everything; on error the caller tears down. Returns per-phase timings.
fn build(
    state: &StateDir,
    config: &LabConfig,
    topology: &Topology,
    bins: &Binaries,
) -> anyhow::Result<String> {
    let t0 = Instant::now();
    state.create(config)?;
    write_cluster(state, topology)?;
    state::write(
        &state.secret(),
        &format!("{}\n", state::new_secret()?),
        0o600,
    )?;

    exec::run_all(&plan::network(topology))?;
    let t_net = t0.elapsed();

    start_router(state, config.router)?;
    let t_router = t0.elapsed();

    let controller = procs::controller(state, bins);
    let mut child = exec::spawn(state, &controller)?;
    let pid = child.id();
    let assignments = assignments_path(&state.cluster());
    let mut exited = None;
    wait_until(Duration::from_secs(10), TICK, || {
        exited = child.try_wait().ok().flatten();
        assignments.is_file() || exited.is_some()
    });
    if !assignments.is_file() {
        let what = match exited {
            Some(status) => format!("exited ({status})"),
            None => "wrote nothing in 10 s".into(),
        };
        bail!(
            "the controller (pid {pid}) {what}: no {} (log {}):\n{}",
            assignments.display(),
            state.log("controller").display(),
            exec::log_tail(&state.log("controller"), 10)
        );
    }
    let t_ctl = t0.elapsed();

    for node in &topology.nodes {
        start_responder(state, bins, node)?;
    }
    for node in &topology.nodes {
        wait_responder(state, node)?;
    }
    let t_resp = t0.elapsed();

    if bins.speaker_built() {
        let flags = bins.speaker_flags();
        for node in &topology.nodes {
            exec::spawn(state, &procs::speaker(state, bins, node, flags))?;
        }
        check_speakers(state, bins, topology.nodes.iter());
    }
    Ok(format!(
        "network {}, router {}, controller {}, responders {}",
        secs(t_net),
        secs(t_router - t_net),
        secs(t_ctl - t_router),
        secs(t_resp - t_ctl)
    ))
}

/// Warns about speakers that exited right after their start (a bad flag, a missing
/// file): the lab keeps running without them.
fn check_speakers<'a>(state: &StateDir, bins: &Binaries, nodes: impl Iterator<Item = &'a Host>) {
    let daemons: Vec<_> = nodes
        .map(|n| procs::speaker(state, bins, n, SpeakerFlags::default()))
        .collect();
    // Long enough for argument and configuration errors, short enough not to matter.
    std::thread::sleep(Duration::from_millis(200));
    for d in daemons {
        if exec::running(state, &d).is_none() {
            let log = state.log(&d.key);
            let tail = exec::log_tail(&log, 10);
            let why = tail
                .lines()
                .find(|l| l.to_ascii_lowercase().contains("error"))
                .or_else(|| tail.lines().rfind(|l| !l.trim().is_empty()))
                .unwrap_or("no output");
            eprintln!(
                "ferrolb-lab: {} exited at once: {} (log {})",
                d.key,
                why.trim(),
                log.display()
            );
        }
    }
}

/// The example files, the generated Nodes and EndpointSlices.
fn write_cluster(state: &StateDir, topology: &Topology) -> anyhow::Result<()> {
    let dir = state.cluster();
    for (name, text) in cluster::FILES {
        state::write(&dir.join(name), text, 0o644)?;
    }
    state::write(
        &dir.join(cluster::NODES_FILE),
        &cluster::nodes_yaml(topology),
        0o644,
    )?;
    refresh_endpoints(state, topology)
}

/// Rewrites the generated EndpointSlices if the Services changed (atomically: the
/// controller and speakers never see half a file).
fn refresh_endpoints(state: &StateDir, topology: &Topology) -> anyhow::Result<()> {
    let dir = state.cluster();
    let text = cluster::endpoints_yaml(topology, &cluster::read_docs(&dir));
    let path = dir.join(cluster::ENDPOINTS_FILE);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    write_atomic(&path, &text)
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path.file_name().context("no file name")?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    state::write(&tmp, text, 0o644)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn start_router(state: &StateDir, kind: RouterKind) -> anyhow::Result<()> {
    let dir = state.router();
    let topology = state.require()?.topology();
    match kind {
        RouterKind::None => return Ok(()),
        RouterKind::Bird => {
            state::write(&dir.join("bird.conf"), &router::bird_conf(&topology), 0o644)?;
        }
        RouterKind::Frr => {
            state::write(&dir.join("zebra.conf"), &router::zebra_conf(), 0o640)?;
            state::write(&dir.join("bgpd.conf"), &router::bgpd_conf(&topology), 0o640)?;
            // FRR's daemons drop to the `frr` user: the directory must be theirs.
            exec::run(&Cmd::new([
                "chown".to_string(),
                "-R".into(),
                "frr:frr".into(),
                dir.display().to_string(),
            ]))?;
        }
    }
    for daemon in procs::router(state, kind) {
        exec::spawn(state, &daemon)?;
        if daemon.key == "router-zebra" {
            let api = dir.join("zserv.api");
            if !wait_until(Duration::from_secs(5), TICK, || api.exists()) {
                bail!(
                    "zebra did not start (log {}):\n{}",
                    state.log(&daemon.key).display(),
                    exec::log_tail(&state.log(&daemon.key), 10)
                );
            }
        }
    }
    let (argv, key) = match kind {
        RouterKind::Bird => (router::birdc_argv(&dir, &["show", "status"]), "router-bird"),
        _ => (router::vtysh_argv(&dir, "show bgp summary"), "router-bgpd"),
    };
    let mut probe = vec![
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        "flb-router".into(),
    ];
    probe.extend(argv);
    let probe = Cmd::new(probe);
    if !wait_until(Duration::from_secs(5), TICK, || exec::run(&probe).is_ok()) {
        bail!(
            "the router ({}) does not answer `{probe}` (log {}):\n{}",
            kind.name(),
            state.log(key).display(),
            exec::log_tail(&state.log(key), 10)
        );
    }
    Ok(())
}

fn start_responder(state: &StateDir, bins: &Binaries, node: &Host) -> anyhow::Result<()> {
    let daemon = procs::responder(state, bins, node);
    if exec::running(state, &daemon).is_some() {
        return Ok(());
    }
    let _ = std::fs::remove_file(procs::ready_file(state, node));
    exec::spawn(state, &daemon)?;
    Ok(())
}

fn wait_responder(state: &StateDir, node: &Host) -> anyhow::Result<()> {
    let ready = procs::ready_file(state, node);
    if !wait_until(Duration::from_secs(5), TICK, || ready.is_file()) {
        let key = procs::responder_key(node);
        bail!(
            "{}'s responder is not ready (log {}):\n{}",
            node.name,
            state.log(&key).display(),
            exec::log_tail(&state.log(&key), 10)
        );
    }
    Ok(())
}

/// The status, after giving freshly started speakers a bounded moment to announce.
fn settle(state: &StateDir, config: &LabConfig, bins: &Binaries) -> status::Status {
    let start = Instant::now();
    loop {
        let status = observe::gather(state, config, bins, true);
        let pending = status
            .services
            .iter()
            .flat_map(|s| &s.ips)
            .any(|ip| on_lan(ip.ip) && !ip.announcement.is_announced());
        let speakers = status.nodes.iter().any(|n| n.speaker == "running");
        if !speakers || !pending || start.elapsed() > Duration::from_secs(3) {
            return status;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn hints(status: &status::Status) -> String {
    let mut out = String::from("Try:\n");
    let ips: Vec<IpAddr> = status
        .services
        .iter()
        .flat_map(|s| s.ips.iter().map(|i| i.ip))
        .collect();
    let v4 = ips.iter().find(|ip| ip.is_ipv4());
    let v6 = ips.iter().find(|ip| ip.is_ipv6());
    if let Some(ip) = v4 {
        out.push_str(&format!(
            "  ip netns exec flb-client curl -s http://{ip}/          # the node that got the packets\n"
        ));
    }
    if let Some(ip) = v6 {
        out.push_str(&format!(
            "  ip netns exec flb-client curl -s http://[{ip}]/\n"
        ));
    }
    if let Some(n) = status.nodes.first() {
        out.push_str(&format!(
            "  ip netns exec flb-client curl -s http://{}/             # a node directly\n",
            n.ipv4
        ));
    }
    out.push_str(
        "  ferrolb-lab status | kill NODE | stop NODE | crash NODE | start NODE | link NODE down|up\n  \
         ferrolb-lab apply -f lab/examples/web-bgp.yaml\n  ferrolb-lab down\n",
    );
    out
}

// ---------------------------------------------------------------------------------------
// down
// ---------------------------------------------------------------------------------------

/// Removes everything: the controller, every process in every `flb-*` namespace, the
/// namespaces, and the state directory (only if it is a lab's). Idempotent; works after
/// a crash, whatever `lab.json` says.
pub fn down(state: &StateDir, quiet: bool) -> anyhow::Result<()> {
    let start = Instant::now();
    let bins = Binaries::current()?;
    let controller = procs::controller(state, &bins);
    if let Some(pid) = exec::running(state, &controller) {
        exec::terminate(pid, Duration::from_secs(2))?;
    }
    let namespaces = exec::lab_namespaces()?;
    for ns in &namespaces {
        for pid in exec::netns_pids(ns) {
            exec::signal(pid, libc::SIGKILL)?;
        }
    }
    for ns in &namespaces {
        // SIGKILL is not instant: wait (bounded) so nothing still runs in a namespace
        // that is going away.
        wait_until(Duration::from_secs(2), TICK, || {
            exec::netns_pids(ns).is_empty()
        });
        exec::run(&plan::delete_ns(ns))?;
    }
    let mut removed_state = false;
    if state.is_lab() {
        std::fs::remove_dir_all(&state.root)
            .with_context(|| format!("cannot remove {}", state.root.display()))?;
        removed_state = true;
    } else if state.root.exists() && !quiet {
        eprintln!(
            "ferrolb-lab: left {} alone: it is not a lab state directory (no lab.json)",
            state.root.display()
        );
    }
    if !quiet {
        if namespaces.is_empty() && !removed_state {
            println!("no lab to remove");
        } else {
            println!(
                "lab down in {} ({} namespaces removed)",
                secs(start.elapsed()),
                namespaces.len()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// status, apply, delete
// ---------------------------------------------------------------------------------------

pub fn status(state: &StateDir, json: bool) -> anyhow::Result<()> {
    let config = state.require()?;
    let bins = Binaries::current()?;
    let status = observe::gather(state, &config, &bins, true);
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status::render(&status));
    }
    Ok(())
}

/// The name a file gets in the cluster directory.
pub fn cluster_name(file: &Path) -> anyhow::Result<String> {
    let name = file
        .file_name()
        .with_context(|| format!("{}: not a file name", file.display()))?
        .to_string_lossy()
        .into_owned();
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) || name.starts_with('.') {
        bail!("{name}: the controller reads only *.yaml and *.yml files");
    }
    Ok(name)
}

fn stamp(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Waits (bounded) for the controller to act on a change, then prints the status.
fn after_change(state: &StateDir, config: &LabConfig, before: [Option<SystemTime>; 2]) {
    let dir = state.cluster();
    let now = || [stamp(&assignments_path(&dir)), stamp(&status_path(&dir))];
    // The controller polls every 500 ms; a change that alters nothing is not written.
    wait_until(Duration::from_millis(1500), TICK, || now() != before);
    let bins = match Binaries::current() {
        Ok(b) => b,
        Err(_) => return,
    };
    print!(
        "{}",
        status::render(&observe::gather(state, config, &bins, true))
    );
}

pub fn apply(state: &StateDir, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let config = state.require()?;
    let dir = state.cluster();
    let before = [stamp(&assignments_path(&dir)), stamp(&status_path(&dir))];
    for file in files {
        let name = cluster_name(file)?;
        if name.starts_with(cluster::LAB_PREFIX) {
            bail!("{name}: names starting with `lab-` are the lab's own; rename the file");
        }
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        write_atomic(&dir.join(&name), &text)?;
        println!(
            "applied {} as {}",
            file.display(),
            dir.join(&name).display()
        );
    }
    refresh_endpoints(state, &config.topology())?;
    after_change(state, &config, before);
    Ok(())
}

pub fn delete(state: &StateDir, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let config = state.require()?;
    let dir = state.cluster();
    let before = [stamp(&assignments_path(&dir)), stamp(&status_path(&dir))];
    for file in files {
        let name = cluster_name(file)?;
        let path = dir.join(&name);
        std::fs::remove_file(&path)
            .with_context(|| format!("{name} is not in the lab ({})", dir.display()))?;
        println!("deleted {}", path.display());
    }
    refresh_endpoints(state, &config.topology())?;
    after_change(state, &config, before);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// node failures
// ---------------------------------------------------------------------------------------

fn node(config: &LabConfig, name: &str) -> anyhow::Result<Host> {
    let topology = config.topology();
    topology.node(name).cloned().with_context(|| {
        format!(
            "no node {name:?} in this lab (nodes: {})",
            topology
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// `kill` (SIGKILL) or `stop` (SIGTERM) a node's speaker.
pub fn signal_speaker(state: &StateDir, name: &str, sig: i32) -> anyhow::Result<()> {
    let config = state.require()?;
    let node = node(&config, name)?;
    let bins = Binaries::current()?;
    if !bins.speaker_built() {
        bail!(
            "{SPEAKER_NOT_BUILT}: {} has no speaker to signal",
            node.name
        );
    }
    let speaker = procs::speaker(state, &bins, &node, SpeakerFlags::default());
    let pid = exec::running(state, &speaker)
        .with_context(|| format!("{}: no speaker running", node.name))?;
    exec::signal(pid, sig)?;
    let what = if sig == libc::SIGKILL {
        "SIGKILL"
    } else {
        "SIGTERM"
    };
    println!("{}: speaker (pid {pid}) sent {what}", node.name);
    Ok(())
}

/// A node failure: every process of the node killed and its link down, together.
pub fn crash(state: &StateDir, name: &str) -> anyhow::Result<()> {
    let config = state.require()?;
    let node = node(&config, name)?;
    let pids = exec::netns_pids(&node.ns());
    // The link change is a process of its own: start it, kill while it runs, so both
    // land within a few milliseconds.
    let cmd = plan::link(&node, false);
    let mut link = std::process::Command::new(&cmd.argv[0])
        .args(&cmd.argv[1..])
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run `{cmd}`"))?;
    for pid in &pids {
        exec::signal(*pid, libc::SIGKILL)?;
    }
    if !link.wait()?.success() {
        bail!("`{cmd}` failed");
    }
    println!(
        "{}: crashed ({} process(es) killed, link down)",
        node.name,
        pids.len()
    );
    Ok(())
}

/// Brings a node back: link up, responder and speaker running.
pub fn start(state: &StateDir, name: &str) -> anyhow::Result<()> {
    let config = state.require()?;
    let node = node(&config, name)?;
    let bins = Binaries::current()?;
    exec::run(&plan::link(&node, true))?;
    start_responder(state, &bins, &node)?;
    wait_responder(state, &node)?;
    if bins.speaker_built() {
        let speaker = procs::speaker(state, &bins, &node, bins.speaker_flags());
        if exec::running(state, &speaker).is_none() {
            exec::spawn(state, &speaker)?;
            check_speakers(state, &bins, std::iter::once(&node));
        }
        println!("{}: link up, responder and speaker running", node.name);
    } else {
        println!("{}: link up, responder running", node.name);
        println!("{SPEAKER_NOT_BUILT}");
    }
    Ok(())
}

pub fn link(state: &StateDir, name: &str, up: bool) -> anyhow::Result<()> {
    let config = state.require()?;
    let node = node(&config, name)?;
    exec::run(&plan::link(&node, up))?;
    println!("{}: link {}", node.name, if up { "up" } else { "down" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_file_names() {
        assert_eq!(
            cluster_name(Path::new("examples/services.yaml")).unwrap(),
            "services.yaml"
        );
        assert!(cluster_name(Path::new("notes.txt")).is_err());
        assert!(cluster_name(Path::new("/tmp/.hidden.yaml")).is_err());
    }
}
