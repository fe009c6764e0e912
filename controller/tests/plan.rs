//! The `plan` subcommand, run as a user would run it: the real binary on YAML files.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn plan(files: &[PathBuf], extra: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"));
    cmd.arg("plan");
    for f in files {
        cmd.arg("-f").arg(f);
    }
    let out = cmd.args(extra).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plan_json(files: &[PathBuf]) -> Vec<Value> {
    let (code, stdout, stderr) = plan(files, &["-o", "json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    serde_json::from_str::<Vec<Value>>(&stdout).unwrap()
}

const POOLS: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: zeta, namespace: ferrolb-system}
spec:
  addresses: ["198.51.100.10-198.51.100.11", "2001:db8::10-2001:db8::11"]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: alpha, namespace: metallb-system}
spec:
  addresses: ["203.0.113.0/30"]
  avoidBuggyIPs: true
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: shop-only, namespace: ferrolb-system}
spec:
  addresses: ["198.51.100.64/31"]
  serviceAllocation: {priority: 5, namespaces: [shop]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: reserved, namespace: ferrolb-system}
spec:
  addresses: ["198.51.100.128/30"]
  autoAssign: false
"#;

fn svc(ns: &str, name: &str, extra_meta: &str, extra_spec: &str, status: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n{extra_meta}spec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n{extra_spec}{status}"
    )
}

#[test]
fn plan_follows_the_allocation_rules() {
    let dir = tempfile::tempdir().unwrap();
    let pools = write(&dir, "pools.yaml", POOLS);
    let services = [
        // Input order: a new service first, an existing one after it.
        svc("default", "new", "", "", ""),
        svc("default", "old", "", "", "status:\n  loadBalancer:\n    ingress: [{ip: 203.0.113.1}]\n"),
        svc("shop", "cart", "", "", ""),
        svc("default", "pinned", "  annotations: {ferrolb.io/address-pool: reserved}\n", "", ""),
        svc("default", "asked", "  annotations: {metallb.universe.tf/loadBalancerIPs: 198.51.100.129}\n", "", ""),
        svc("default", "ghost", "  annotations: {ferrolb.io/address-pool: nope}\n", "", ""),
        svc("default", "dual", "", "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n", ""),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: plain, namespace: default}\nspec: {type: ClusterIP}\n".into(),
    ]
    .concat();
    let services = write(&dir, "services.yaml", &services);
    let rows = plan_json(&[pools, services]);
    let by_name = |n: &str| {
        rows.iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("no row {n}: {rows:?}"))
            .clone()
    };
    // Exactly the documented keys, in input order, LoadBalancer Services only.
    let names: Vec<_> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["new", "old", "cart", "pinned", "asked", "ghost", "dual"]
    );
    for r in &rows {
        let mut keys: Vec<_> = r.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["error", "ips", "name", "namespace", "pool"]);
    }
    // The existing assignment is kept even though `new` comes first in the input; pools
    // without serviceAllocation go by name (alpha before zeta), avoidBuggyIPs skips .0.
    assert_eq!(
        by_name("old"),
        json!({"namespace": "default", "name": "old", "ips": ["203.0.113.1"], "pool": "alpha", "error": null})
    );
    assert_eq!(by_name("new")["ips"], json!(["203.0.113.2"]));
    assert_eq!(
        by_name("cart"),
        json!({"namespace": "shop", "name": "cart", "ips": ["198.51.100.64"], "pool": "shop-only", "error": null})
    );
    assert_eq!(by_name("pinned")["ips"], json!(["198.51.100.128"]));
    assert_eq!(by_name("asked")["ips"], json!(["198.51.100.129"]));
    assert_eq!(by_name("ghost")["ips"], json!([]));
    assert_eq!(by_name("ghost")["pool"], Value::Null);
    assert!(
        by_name("ghost")["error"].as_str().unwrap().contains("nope"),
        "{rows:?}"
    );
    // alpha has no IPv6: the dual-stack Service goes to zeta, IPv4 first.
    assert_eq!(
        by_name("dual")["ips"],
        json!(["198.51.100.10", "2001:db8::10"])
    );
    assert_eq!(by_name("dual")["pool"], json!("zeta"));
}

#[test]
fn plan_shows_moves_when_a_pool_edit_removes_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let pools = write(&dir, "pools.yaml", POOLS);
    let s = svc(
        "default",
        "old",
        "",
        "",
        "status:\n  loadBalancer:\n    ingress: [{ip: 198.51.100.99}]\n",
    );
    let services = write(&dir, "services.yaml", &s);
    let (code, stdout, stderr) = plan(&[pools.clone(), services.clone()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("moved"), "{stdout}");
    assert!(stdout.contains("198.51.100.99"), "{stdout}");
    let rows = plan_json(&[pools, services]);
    assert_eq!(rows[0]["ips"], json!(["203.0.113.1"]));
    assert_eq!(rows[0]["error"], Value::Null);
}

#[test]
fn plan_reports_full_pools_per_service() {
    let dir = tempfile::tempdir().unwrap();
    let pools = write(
        &dir,
        "pools.yaml",
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: tiny}\nspec: {addresses: [198.51.100.1/32]}\n",
    );
    let services = write(
        &dir,
        "s.yaml",
        &[svc("a", "one", "", "", ""), svc("a", "two", "", "", "")].concat(),
    );
    let rows = plan_json(&[pools, services]);
    assert_eq!(rows[0]["ips"], json!(["198.51.100.1"]));
    assert_eq!(rows[1]["ips"], json!([]));
    let err = rows[1]["error"].as_str().unwrap();
    assert!(err.contains("tiny") || err.contains("free"), "{err}");
}

#[test]
fn invalid_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_pool = write(
        &dir,
        "bad.yaml",
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: broken}\nspec: {addresses: [198.51.100.20-198.51.100.10]}\n",
    );
    let (code, stdout, stderr) = plan(&[bad_pool], &[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("broken") && stderr.contains("start is after end"),
        "{stderr}"
    );

    let bad_yaml = write(&dir, "y.yaml", "kind: [unclosed\n");
    let (code, _, stderr) = plan(&[bad_yaml], &[]);
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("y.yaml"), "{stderr}");

    let (code, _, stderr) = plan(&[dir.path().join("missing.yaml")], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing.yaml"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["plan", "--bogus"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}
