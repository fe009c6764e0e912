//! `ferrolb-controller --source dir:PATH` as a program: `--once` prints the table and
//! exits 0 (1 when the directory cannot be read); without `--once` it follows changes
//! and stops cleanly on SIGTERM and SIGINT.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_controller::source::dir::AssignmentList;

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-controller");

const POOL: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.10-198.51.100.19]}
";

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n"
    )
}

fn copy_standalone_example(to: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standalone");
    for entry in std::fs::read_dir(example).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn source(dir: &Path) -> String {
    format!("dir:{}", dir.display())
}

#[test]
fn once_prints_the_assignments_and_records_them() {
    let tmp = tempfile::tempdir().unwrap();
    copy_standalone_example(tmp.path());
    let out = Command::new(BIN)
        .args(["--source", &source(tmp.path()), "--once"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("SERVICE") && lines[0].contains("IPS") && lines[0].contains("POOL"),
        "{stdout}"
    );
    assert!(lines[0].contains("ERROR"), "{stdout}");
    let web = lines
        .iter()
        .find(|l| l.starts_with("default/web "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        web.contains("198.51.100.200,2001:db8:51::200") && web.contains("lan"),
        "{web}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("198.51.100.201"))
            .count(),
        2,
        "{stdout}"
    );

    let list = AssignmentList::read(tmp.path())
        .unwrap()
        .expect("assignments.yaml written");
    assert_eq!(list.items.len(), 6);

    // Run again: same output, nothing moved.
    let again = Command::new(BIN)
        .args(["--source", &source(tmp.path()), "--once"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
    assert_eq!(AssignmentList::read(tmp.path()).unwrap().unwrap(), list);
}

#[test]
fn once_reports_a_malformed_file_and_still_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pools.yaml"), POOL).unwrap();
    std::fs::write(tmp.path().join("services.yaml"), service("web")).unwrap();
    std::fs::write(tmp.path().join("typo.yaml"), "kind: Service\nmetadata: [\n").unwrap();
    let out = Command::new(BIN)
        .args(["--source", &source(tmp.path()), "--once"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("default/web") && l.contains("198.51.100.10")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("typo.yaml")),
        "the bad file is named: {stdout}"
    );
}

#[test]
fn once_on_an_unreadable_directory_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let out = Command::new(BIN)
        .args(["--source", &source(&missing), "--once"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing"),
        "the error names the directory: {stderr}"
    );
}

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assigned(dir: &Path, name: &str) -> Option<Vec<String>> {
    let list = AssignmentList::read(dir).ok()??;
    let item = list.get("default", name)?;
    Some(item.ips.iter().map(ToString::to_string).collect())
}

fn follows_changes_and_stops_on(signal: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("pools.yaml"), POOL).unwrap();
    std::fs::write(d.join("web.yaml"), service("web")).unwrap();
    let mut child = Running(
        Command::new(BIN)
            .args(["--source", &source(d)])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the first pass", || assigned(d, "web").is_some());
    assert_eq!(assigned(d, "web").unwrap(), ["198.51.100.10"]);

    // A new file is noticed, and the existing assignment stays.
    std::fs::write(d.join("api.yaml"), service("api")).unwrap();
    wait_for("the new Service", || assigned(d, "api").is_some());
    assert_eq!(assigned(d, "api").unwrap(), ["198.51.100.11"]);
    assert_eq!(assigned(d, "web").unwrap(), ["198.51.100.10"]);

    // A removed file releases its Service's address.
    std::fs::remove_file(d.join("web.yaml")).unwrap();
    wait_for("the release", || assigned(d, "web").is_none());

    let pid = child.0.id().to_string();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit after SIG{signal}: {exit}");
}

#[test]
fn follows_changes_and_stops_on_sigterm() {
    follows_changes_and_stops_on("TERM");
}

#[test]
fn follows_changes_and_stops_on_sigint() {
    follows_changes_and_stops_on("INT");
}
