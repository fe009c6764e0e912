//! The install base renders: `kubectl kustomize deploy/` (run from the repository root)
//! exits 0 and its output holds the CRDs, the namespace, the controller's Deployment and
//! its RBAC, consistent with one another.
//!
//! Needs `kubectl` on the PATH (Debian: `apt-get install kubernetes-client`; `.ci/run`
//! installs it).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const NAMESPACE: &str = "ferrolb-system";

fn render() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = match Command::new("kubectl")
        .args(["kustomize", "deploy/"])
        .current_dir(&root)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "kubectl is not installed, and this test renders deploy/ with `kubectl kustomize`: \
             install it (Debian/Ubuntu: `apt-get install kubernetes-client`; .ci/run does this)"
        ),
        Err(e) => panic!("cannot run kubectl: {e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`kubectl kustomize deploy/` failed ({}):\n{stderr}",
        output.status
    );
    let stdout = String::from_utf8(output.stdout).expect("kubectl prints UTF-8");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&stdout).unwrap_or_else(|e| {
        panic!("`kubectl kustomize deploy/` printed invalid YAML: {e}\n{stdout}")
    });
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("`kubectl kustomize deploy/` renders no {kind} {name}"))
}

#[test]
fn deploy_base_renders() {
    let docs = render();

    // The six CRDs, as generated from the types.
    let crds: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    for crd in ferrolb_crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        let rendered = find(&docs, "CustomResourceDefinition", &name);
        assert_eq!(rendered["spec"]["group"], "ferrolb.io", "{name}");
        assert_eq!(
            rendered["spec"]["names"]["kind"],
            crd.spec.names.kind.as_str(),
            "{name}"
        );
        assert_eq!(rendered["spec"]["scope"], "Namespaced", "{name}");
    }
    assert_eq!(
        crds.len(),
        ferrolb_crds::crds().len(),
        "unexpected CRDs rendered"
    );
    assert_eq!(crds.len(), 6);

    find(&docs, "Namespace", NAMESPACE);

    // The controller, and the identity and permissions it runs with.
    let deployment = find(&docs, "Deployment", "ferrolb-controller");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    let pod = &deployment["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"]
        .as_str()
        .expect("the Deployment names its ServiceAccount");
    let sa = find(&docs, "ServiceAccount", account);
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE);
    let containers = pod["containers"]
        .as_array()
        .expect("the Deployment has containers");
    assert!(
        containers.iter().any(|c| c["image"]
            .as_str()
            .is_some_and(|i| i.contains("ferrolb-controller"))),
        "no ferrolb-controller image in the Deployment: {containers:?}"
    );

    let role = find(&docs, "ClusterRole", "ferrolb-controller");
    assert!(
        role["rules"].as_array().is_some_and(|r| !r.is_empty()),
        "the ClusterRole grants nothing"
    );
    let bound = docs.iter().any(|d| {
        d["kind"] == "ClusterRoleBinding"
            && d["roleRef"]["name"] == "ferrolb-controller"
            && d["subjects"].as_array().is_some_and(|s| {
                s.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == account
                        && s["namespace"] == NAMESPACE
                })
            })
    });
    assert!(
        bound,
        "no ClusterRoleBinding gives the ClusterRole to ServiceAccount {NAMESPACE}/{account}"
    );

    // Everything namespaced lands in FerroLB's namespace.
    for d in &docs {
        if let Some(ns) = d["metadata"]["namespace"].as_str() {
            assert_eq!(
                ns, NAMESPACE,
                "{} {} is in namespace {ns}",
                d["kind"], d["metadata"]["name"]
            );
        }
    }
}
