//! The install base renders: `kubectl kustomize deploy/` (run from the repository root)
//! exits 0 and its output holds the CRDs, the namespace, the controller's Deployment,
//! the speaker's DaemonSet and their RBAC, consistent with one another, with the
//! speaker's privileges and permissions no wider than it needs.
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

    // Every CRD, as generated from the types.
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
    assert_eq!(crds.len(), 8);

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
            .is_some_and(|i| i.starts_with("ferrolb:"))
            && c["command"][0] == "/ferrolb-controller"),
        "no ferrolb image running /ferrolb-controller in the Deployment: {containers:?}"
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

/// The rules of a (Cluster)Role as (apiGroup, resource, verb) triples.
fn grants(role: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        for g in rule["apiGroups"].as_array().expect("apiGroups") {
            for r in rule["resources"].as_array().expect("resources") {
                for v in rule["verbs"].as_array().expect("verbs") {
                    out.push((
                        g.as_str().unwrap_or_default().to_string(),
                        r.as_str().unwrap_or_default().to_string(),
                        v.as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
    }
    out
}

fn bound(docs: &[Value], binding: &str, role: &str, account: &str) -> bool {
    docs.iter().any(|d| {
        d["kind"] == binding
            && d["roleRef"]["name"] == role
            && d["subjects"].as_array().is_some_and(|s| {
                s.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == account
                        && s["namespace"] == NAMESPACE
                })
            })
    })
}

#[test]
fn speaker_daemonset_and_least_privilege() {
    let docs = render();
    let ds = find(&docs, "DaemonSet", "ferrolb-speaker");
    assert_eq!(ds["metadata"]["namespace"], NAMESPACE);
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostNetwork"], true,
        "the speaker answers on the node's interfaces"
    );
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(
        c["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("ferrolb:")),
        "{c}"
    );
    assert_eq!(c["command"], serde_json::json!(["/ferrolb-speaker"]));

    // Environment from the pod's own fields.
    let env = |name: &str| -> String {
        c["env"]
            .as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == name))
            .and_then(|v| v["valueFrom"]["fieldRef"]["fieldPath"].as_str())
            .unwrap_or_else(|| panic!("{name} is not set from a fieldRef: {c}"))
            .to_string()
    };
    assert_eq!(env("NODE_NAME"), "spec.nodeName");
    assert_eq!(env("POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(env("POD_NAME"), "metadata.name");
    assert_eq!(env("POD_UID"), "metadata.uid");

    // Capabilities: all dropped; NET_RAW (ARP, NDP) and NET_BIND_SERVICE (BGP listens on
    // TCP 179) added back; nothing else privileged.
    let sc = &c["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["NET_RAW", "NET_BIND_SERVICE"])
    );
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert!(sc["privileged"].is_null() || sc["privileged"] == false);

    // Gossip: UDP 7946 only, keyed by a Secret that is mounted, not shipped.
    let ports = c["ports"].as_array().expect("ports");
    assert_eq!(
        ports
            .iter()
            .map(|p| (
                p["containerPort"].as_u64().unwrap_or(0),
                p["protocol"].as_str().unwrap_or("TCP")
            ))
            .collect::<Vec<_>>(),
        vec![(7946, "UDP")]
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--gossip-bind=0.0.0.0:7946"), "{args:?}");
    let secret_file = args
        .iter()
        .find_map(|a| a.strip_prefix("--gossip-secret-file="))
        .expect("the speaker is given the gossip secret");
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|m| {
            m.iter().find(|m| {
                m["mountPath"]
                    .as_str()
                    .is_some_and(|p| secret_file.starts_with(&format!("{p}/")))
            })
        })
        .unwrap_or_else(|| panic!("{secret_file} is on no mounted volume: {c}"));
    let volume = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
        .expect("the mounted volume exists");
    assert_eq!(volume["secret"]["secretName"], "ferrolb-gossip");
    assert!(
        docs.iter().all(|d| d["kind"] != "Secret"),
        "no Secret is rendered: each cluster makes its own gossip key"
    );

    // Its identity and permissions.
    let account = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    assert_eq!(account, "ferrolb-speaker");
    find(&docs, "ServiceAccount", account);
    let cluster = find(&docs, "ClusterRole", "ferrolb-speaker");
    let role = find(&docs, "Role", "ferrolb-speaker");
    assert!(bound(
        &docs,
        "ClusterRoleBinding",
        "ferrolb-speaker",
        account
    ));
    assert!(bound(&docs, "RoleBinding", "ferrolb-speaker", account));

    let read = ["get", "list", "watch"];
    let cluster_grants = grants(cluster);
    for (group, resource) in [
        ("", "services"),
        ("", "nodes"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        for verb in read {
            assert!(
                cluster_grants.contains(&(group.into(), resource.into(), verb.into())),
                "speaker cannot {verb} {resource}"
            );
        }
    }
    assert!(cluster_grants.contains(&("events.k8s.io".into(), "events".into(), "create".into())));
    // Cluster-wide it writes Events and nothing else; it reads no Secret outside its
    // namespace.
    for (group, resource, verb) in &cluster_grants {
        assert!(
            read.contains(&verb.as_str()) || (group == "events.k8s.io" && resource == "events"),
            "the speaker's ClusterRole grants {verb} on {group}/{resource}"
        );
        assert_ne!(resource, "secrets");
    }
    let role_grants = grants(role);
    for resource in [
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
    ] {
        for verb in read {
            assert!(role_grants.contains(&("ferrolb.io".into(), resource.into(), verb.into())));
        }
    }
    // passwordSecret: the Secrets of its own namespace, read only.
    for verb in read {
        assert!(
            role_grants.contains(&("".into(), "secrets".into(), verb.into())),
            "speaker cannot {verb} secrets in its namespace"
        );
    }
    for verb in ["create", "patch", "delete", "list", "watch"] {
        assert!(
            role_grants.contains(&("ferrolb.io".into(), "servicel2statuses".into(), verb.into())),
            "speaker cannot {verb} servicel2statuses"
        );
    }
    assert!(role_grants.contains(&(
        "ferrolb.io".into(),
        "servicel2statuses/status".into(),
        "patch".into()
    )));
    for (group, resource, verb) in &role_grants {
        if resource == "secrets" {
            assert_eq!(group, "");
            assert!(
                read.contains(&verb.as_str()),
                "the speaker may {verb} secrets"
            );
            continue;
        }
        assert_eq!(group, "ferrolb.io");
        assert!(
            read.contains(&verb.as_str())
                || resource.starts_with("servicel2statuses")
                || resource.starts_with("servicebgpstatuses"),
            "the speaker's Role grants {verb} on {resource}"
        );
    }
}
