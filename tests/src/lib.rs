//! Shared helpers for the integration tests in `tests/tests/`.
pub mod bgp;
pub mod lab;

use std::process::Command;

/// `cargo` for a build run from inside a test or bench: the cargo that runs them (else
/// the one that built this crate), without the variables cargo sets for the test process itself
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …). Build scripts that watch those (ring's
/// does) would otherwise see another environment than the outer `cargo test` and be
/// rerun, with every crate above them rebuilt, on each nested build and again on the
/// next outer one.
pub fn nested_cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_for_the_test) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Whether `name` is one of the variables cargo sets for the crate it runs.
fn set_for_the_test(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_crates_own_variables_are_dropped() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "OUT_DIR"] {
            assert!(set_for_the_test(name), "{name}");
        }
        // Cargo's own configuration stays.
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "PATH",
        ] {
            assert!(!set_for_the_test(name), "{name}");
        }
    }
}
