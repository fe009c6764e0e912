//! Running `ferrolb-lab` from a test: the binaries built once per test process, one lab
//! at a time across every test binary (an exclusive lock on [`LOCK`]), each lab in its
//! own state directory and removed by a drop guard whatever happens to the test.
//!
//! The lab's namespace names (`flb-lan`, `flb-nodeK`, …) are fixed, so a test that finds
//! a lab already up does not touch it and skips, loudly. Tests that need root skip,
//! loudly, when not root.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long building the binaries may take.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Held by every lab test while it runs.
pub const LOCK: &str = "/run/ferrolb-lab-tests.lock";
const LOCK_LIMIT: Duration = Duration::from_secs(30 * 60);

/// The lab's fixed namespaces (plus `flb-nodeK`, see [`lab_namespaces`]).
pub const LAB_NAMESPACES: [&str; 3] = ["flb-lan", "flb-router", "flb-client"];

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `target/<profile>/`, where cargo puts the binaries (tests run from `deps/`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .to_path_buf()
}

fn cargo_build(packages: &[&str]) -> bool {
    let release = bin_dir().file_name().is_some_and(|n| n == "release");
    let mut cmd = crate::nested_cargo();
    cmd.args(["build", "--bins"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    for p in packages {
        cmd.args(["-p", p]);
    }
    if release {
        cmd.arg("--release");
    }
    // Bounded: another cargo may hold the build directory's lock.
    let mut child = cmd.spawn().expect("cannot run cargo");
    let deadline = Instant::now() + BUILD_LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for cargo") {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cargo build {packages:?} took more than {BUILD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The built binaries, once per test process.
pub struct Binaries {
    pub lab: PathBuf,
    /// Whether the speaker built (without it the lab runs without announcements).
    pub speaker: bool,
}

/// Builds the lab and the controller, and the speaker if it builds.
pub fn binaries() -> &'static Binaries {
    static BUILT: OnceLock<Binaries> = OnceLock::new();
    BUILT.get_or_init(|| {
        assert!(
            cargo_build(&["ferrolb-lab", "ferrolb-controller"]),
            "cargo build -p ferrolb-lab -p ferrolb-controller failed"
        );
        let dir = bin_dir();
        Binaries {
            lab: dir.join("ferrolb-lab"),
            speaker: cargo_build(&["ferrolb-speaker"]) && dir.join("ferrolb-speaker").is_file(),
        }
    })
}

/// Runs a program; panics only if it cannot be started.
pub fn run(argv: &[&str]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
}

/// stdout and stderr of a finished command, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn namespaces() -> Vec<String> {
    String::from_utf8_lossy(&run(&["ip", "netns", "list"]).stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The lab's namespaces that exist (other tests' `flb-*` namespaces are not the lab's).
pub fn lab_namespaces() -> Vec<String> {
    namespaces()
        .into_iter()
        .filter(|n| {
            LAB_NAMESPACES.contains(&n.as_str())
                || n.strip_prefix("flb-node")
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

/// The exclusive lock every lab test holds while it runs.
pub struct LabLock {
    _file: File,
}

impl LabLock {
    /// Waits (bounded) for the other lab tests to finish.
    pub fn acquire() -> LabLock {
        let file = File::create(LOCK).unwrap_or_else(|e| panic!("{LOCK}: {e}"));
        let deadline = Instant::now() + LOCK_LIMIT;
        while file.try_lock().is_err() {
            assert!(
                Instant::now() < deadline,
                "another lab test held {LOCK} for more than {LOCK_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        LabLock { _file: file }
    }
}

/// A lab this test brought up; dropping it takes it down, then releases the lock.
pub struct Lab {
    pub bin: PathBuf,
    pub state: PathBuf,
    _lock: LabLock,
}

impl Lab {
    /// Takes the lock and checks that the lab can run here; `None` (after a loud SKIP
    /// line) when not root or when a lab is already up. Nothing is started yet.
    pub fn prepare(test: &str) -> Option<Lab> {
        if !is_root() {
            eprintln!("\n*** SKIPPED {test}: the lab needs root (network namespaces) ***\n");
            return None;
        }
        let lock = LabLock::acquire();
        let existing = lab_namespaces();
        if !existing.is_empty() {
            eprintln!(
                "\n*** SKIPPED {test}: a lab is already up ({}); not touching it \
                 (remove it with `ferrolb-lab down`) ***\n",
                existing.join(" ")
            );
            return None;
        }
        let bin = binaries().lab.clone();
        let state =
            std::env::temp_dir().join(format!("ferrolb-lab-test-{}-{test}", std::process::id()));
        Some(Lab {
            bin,
            state,
            _lock: lock,
        })
    }

    /// `ferrolb-lab --state STATE ARGS…`, its output echoed for the test's log.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.bin)
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ferrolb-lab: {e}"));
        eprintln!("$ ferrolb-lab {}\n{}", args.join(" "), text(&out));
        out
    }

    /// [`Lab::cmd`] that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "ferrolb-lab {args:?} failed: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The controller's directory, which the speakers read too.
    pub fn cluster(&self) -> PathBuf {
        self.state.join("cluster")
    }

    /// The pid the lab recorded for one of its processes (`controller`,
    /// `node1-speaker`, …).
    pub fn pid(&self, key: &str) -> Option<i32> {
        std::fs::read_to_string(self.state.join("pids").join(format!("{key}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A process's log (`logs/KEY.log`), for failure messages.
    pub fn log(&self, key: &str) -> String {
        std::fs::read_to_string(self.state.join("logs").join(format!("{key}.log")))
            .unwrap_or_default()
    }
}

/// Removes the lab whatever happens to the test (before the lock is released).
impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(&self.bin)
            .arg("--state")
            .arg(&self.state)
            .arg("down")
            .output();
    }
}
