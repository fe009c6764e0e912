//! The lab's "cluster": the directory the controller reads (`--source dir:PATH`) and the
//! speakers read after it.
//!
//! It holds the example pools, advertisements, BGP peers and Service (the files in
//! `lab/cluster/`, embedded), plus what a real cluster would have on its own and the lab
//! must write: a Node object per node (InternalIP, Ready), and EndpointSlices putting an
//! endpoint of every LoadBalancer Service on every node (the responders play the pods).
//! Everything here is pure: YAML in, YAML out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use serde_json::{Value, json};

use crate::topology::Topology;

/// The lab's own files, written by `up`. Applied files may not use the `lab-` prefix.
pub const FILES: &[(&str, &str)] = &[
    ("lab-pools.yaml", include_str!("../cluster/lab-pools.yaml")),
    (
        "lab-l2advertisement.yaml",
        include_str!("../cluster/lab-l2advertisement.yaml"),
    ),
    ("lab-bgp.yaml", include_str!("../cluster/lab-bgp.yaml")),
    (
        "lab-services.yaml",
        include_str!("../cluster/lab-services.yaml"),
    ),
];
/// Generated: one Node per lab node.
pub const NODES_FILE: &str = "lab-nodes.yaml";
/// Generated: endpoints on every node for Services that have no EndpointSlice of their own.
pub const ENDPOINTS_FILE: &str = "lab-endpointslices.yaml";
/// The prefix reserved for the files above.
pub const LAB_PREFIX: &str = "lab-";
/// `endpointslice.kubernetes.io/managed-by` of the generated slices.
const MANAGED_BY: &str = "ferrolb-lab";

/// Joins documents into one multi-document YAML text.
fn to_yaml(header: &str, docs: &[Value]) -> String {
    let mut out = String::from(header);
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(doc).expect("JSON values serialize"));
    }
    out
}

/// `lab-nodes.yaml`: a Ready Node per lab node, with both LAN addresses as InternalIP
/// (the speakers find their gossip peers there).
pub fn nodes_yaml(topology: &Topology) -> String {
    let docs: Vec<Value> = topology
        .nodes
        .iter()
        .map(|n| {
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": n.name,
                    "labels": {
                        "kubernetes.io/hostname": n.name,
                        "kubernetes.io/os": "linux",
                    },
                },
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": n.ipv4.to_string()},
                        {"type": "InternalIP", "address": n.ipv6.to_string()},
                        {"type": "Hostname", "address": n.name},
                    ],
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                },
            })
        })
        .collect();
    to_yaml(
        "# Written by ferrolb-lab: the lab's nodes. Rewritten by `ferrolb-lab up`.\n",
        &docs,
    )
}

/// All documents of all `*.yaml` / `*.yml` files directly in `dir` (dotfiles skipped),
/// with the file name they come from. Unparsable files are skipped: the controller
/// reports them.
pub fn read_docs(dir: &Path) -> Vec<(String, Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && (n.ends_with(".yaml") || n.ends_with(".yml")))
        .collect();
    names.sort();
    let mut docs = Vec::new();
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        if let Ok(values) = serde_saphyr::from_multiple::<Value>(&text) {
            docs.extend(
                values
                    .into_iter()
                    .filter(|v| v.is_object())
                    .map(|v| (name.clone(), v)),
            );
        }
    }
    docs
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn kind(v: &Value) -> &str {
    str_at(v, &["kind"]).unwrap_or("")
}

/// `lab-endpointslices.yaml` for the documents of the directory: for every LoadBalancer
/// Service without an EndpointSlice of its own (label `kubernetes.io/service-name`), one
/// slice per address family with a ready endpoint on every node, at the node's address.
pub fn endpoints_yaml(topology: &Topology, docs: &[(String, Value)]) -> String {
    let own: BTreeSet<(String, String)> = docs
        .iter()
        .filter(|(file, v)| file != ENDPOINTS_FILE && kind(v) == "EndpointSlice")
        .filter_map(|(_, v)| {
            let ns = str_at(v, &["metadata", "namespace"]).unwrap_or("default");
            let svc = str_at(v, &["metadata", "labels", "kubernetes.io/service-name"])?;
            Some((ns.to_string(), svc.to_string()))
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut slices = Vec::new();
    for (_, svc) in docs.iter().filter(|(_, v)| kind(v) == "Service") {
        if str_at(svc, &["spec", "type"]) != Some("LoadBalancer") {
            continue;
        }
        let Some(name) = str_at(svc, &["metadata", "name"]) else {
            continue;
        };
        let ns = str_at(svc, &["metadata", "namespace"]).unwrap_or("default");
        let key = (ns.to_string(), name.to_string());
        if own.contains(&key) || !seen.insert(key) {
            continue;
        }
        let families: Vec<&str> = svc["spec"]["ipFamilies"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .filter(|f: &Vec<&str>| !f.is_empty())
            .unwrap_or_else(|| vec!["IPv4"]);
        let ports: Vec<Value> = svc["spec"]["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| {
                        let port = p["targetPort"].as_u64().or(p["port"].as_u64());
                        let mut out = json!({
                            "port": port,
                            "protocol": p["protocol"].as_str().unwrap_or("TCP"),
                        });
                        if let Some(n) = p["name"].as_str() {
                            out["name"] = json!(n);
                        }
                        out
                    })
                    .collect()
            })
            .unwrap_or_default();
        for family in families {
            let endpoints: Vec<Value> = topology
                .nodes
                .iter()
                .map(|n| {
                    let addr = if family == "IPv6" {
                        n.ipv6.to_string()
                    } else {
                        n.ipv4.to_string()
                    };
                    json!({
                        "addresses": [addr],
                        "nodeName": n.name,
                        "conditions": {"ready": true, "serving": true, "terminating": false},
                    })
                })
                .collect();
            slices.push(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{name}-lab-{}", family.to_ascii_lowercase()),
                    "namespace": ns,
                    "labels": {
                        "kubernetes.io/service-name": name,
                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                    },
                },
                "addressType": family,
                "endpoints": endpoints,
                "ports": ports,
            }));
        }
    }
    to_yaml(
        "# Written by ferrolb-lab: an endpoint on every node for each LoadBalancer Service\n\
         # without an EndpointSlice of its own (the nodes' responders play the pods).\n",
        &slices,
    )
}

/// How a pool's addresses are announced, from the advertisements in the directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Modes {
    pub layer2: bool,
    pub bgp: bool,
}

impl Modes {
    pub fn label(self) -> &'static str {
        match (self.layer2, self.bgp) {
            (true, true) => "layer2+bgp",
            (true, false) => "layer2",
            (false, true) => "bgp",
            (false, false) => "none",
        }
    }
}

/// Does this advertisement select the pool? By name (`ipAddressPools`) or by labels
/// (`ipAddressPoolSelectors[].matchLabels`); one with neither selects every pool.
/// `matchExpressions` are not evaluated here: such a selector counts as a match.
fn selects(adv: &Value, pool: &str, pool_labels: &BTreeMap<String, String>) -> bool {
    let names = adv["spec"]["ipAddressPools"].as_array();
    let selectors = adv["spec"]["ipAddressPoolSelectors"].as_array();
    if names.is_none_or(|n| n.is_empty()) && selectors.is_none_or(|s| s.is_empty()) {
        return true;
    }
    if names.is_some_and(|n| n.iter().any(|n| n.as_str() == Some(pool))) {
        return true;
    }
    selectors.is_some_and(|sels| {
        sels.iter().any(|sel| {
            sel["matchLabels"].as_object().is_none_or(|want| {
                want.iter()
                    .all(|(k, v)| pool_labels.get(k).map(String::as_str) == v.as_str())
            })
        })
    })
}

/// The announcement modes of every pool in the directory.
pub fn pool_modes(docs: &[(String, Value)]) -> BTreeMap<String, Modes> {
    let pools: Vec<(String, BTreeMap<String, String>)> = docs
        .iter()
        .filter(|(_, v)| kind(v) == "IPAddressPool")
        .filter_map(|(_, v)| {
            let name = str_at(v, &["metadata", "name"])?.to_string();
            let labels = v["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            Some((name, labels))
        })
        .collect();
    let mut modes = BTreeMap::new();
    for (pool, labels) in &pools {
        let by = |k: &str| {
            docs.iter()
                .any(|(_, v)| kind(v) == k && selects(v, pool, labels))
        };
        modes.insert(
            pool.clone(),
            Modes {
                layer2: by("L2Advertisement"),
                bgp: by("BGPAdvertisement"),
            },
        );
    }
    modes
}

/// The addresses of every assigned Service: what kube-proxy would make local on each
/// node (here: addresses on `lo`).
pub fn all_ips(list: &ferrolb_controller::source::dir::AssignmentList) -> BTreeSet<IpAddr> {
    list.items
        .iter()
        .flat_map(|i| i.ips.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: &str, text: &str) -> Vec<(String, Value)> {
        serde_saphyr::from_multiple::<Value>(text)
            .unwrap()
            .into_iter()
            .filter(|v| v.is_object())
            .map(|v| (file.to_string(), v))
            .collect()
    }

    fn lab_docs() -> Vec<(String, Value)> {
        FILES.iter().flat_map(|(f, t)| parse(f, t)).collect()
    }

    #[test]
    fn embedded_files_parse_and_hold_what_the_lab_promises() {
        let docs = lab_docs();
        let kinds: Vec<&str> = docs.iter().map(|(_, v)| kind(v)).collect();
        assert_eq!(
            kinds,
            [
                "IPAddressPool",
                "IPAddressPool",
                "L2Advertisement",
                "BGPPeer",
                "BGPPeer",
                "BGPAdvertisement",
                "Service"
            ]
        );
        let lan = &docs[0].1;
        assert_eq!(
            lan["spec"]["addresses"],
            json!([
                "198.51.100.200-198.51.100.250",
                "2001:db8:51::200-2001:db8:51::250"
            ])
        );
        let bgp = &docs[1].1;
        assert_eq!(
            bgp["spec"]["addresses"],
            json!(["203.0.113.0/24", "2001:db8:113::/120"])
        );
        for (file, _) in FILES {
            assert!(file.starts_with(LAB_PREFIX));
        }
    }

    #[test]
    fn nodes_have_both_addresses_and_are_ready() {
        let text = nodes_yaml(&Topology::new(2));
        let docs = parse(NODES_FILE, &text);
        assert_eq!(docs.len(), 2);
        let n2 = &docs[1].1;
        assert_eq!(n2["kind"], "Node");
        assert_eq!(n2["metadata"]["name"], "node2");
        assert_eq!(
            n2["status"]["addresses"][0],
            json!({"type": "InternalIP", "address": "198.51.100.12"})
        );
        assert_eq!(
            n2["status"]["addresses"][1],
            json!({"type": "InternalIP", "address": "2001:db8:51::12"})
        );
        assert_eq!(n2["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn endpoints_on_every_node_per_family() {
        let t = Topology::new(3);
        let text = endpoints_yaml(&t, &lab_docs());
        let slices = parse(ENDPOINTS_FILE, &text);
        assert_eq!(slices.len(), 2, "{text}");
        let v6 = &slices[1].1;
        assert_eq!(v6["metadata"]["name"], "web-lab-ipv6");
        assert_eq!(v6["metadata"]["namespace"], "default");
        assert_eq!(
            v6["metadata"]["labels"]["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(v6["addressType"], "IPv6");
        assert_eq!(v6["endpoints"].as_array().unwrap().len(), 3);
        assert_eq!(v6["endpoints"][2]["addresses"], json!(["2001:db8:51::13"]));
        assert_eq!(v6["endpoints"][2]["nodeName"], "node3");
        assert_eq!(v6["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(
            v6["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP"}])
        );
    }

    #[test]
    fn a_service_with_its_own_slices_gets_none() {
        let mut docs = lab_docs();
        docs.extend(parse(
            "mine.yaml",
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  namespace: default\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\nendpoints: []\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: dns\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 53\n    protocol: UDP\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: internal\nspec:\n  type: ClusterIP\n",
        ));
        let slices = parse(ENDPOINTS_FILE, &endpoints_yaml(&Topology::new(1), &docs));
        assert_eq!(slices.len(), 1);
        let s = &slices[0].1;
        assert_eq!(s["metadata"]["name"], "dns-lab-ipv4");
        assert_eq!(s["ports"], json!([{"port": 53, "protocol": "UDP"}]));
    }

    #[test]
    fn modes_follow_the_advertisements() {
        let modes = pool_modes(&lab_docs());
        assert_eq!(modes["lan"].label(), "layer2");
        assert_eq!(modes["bgp"].label(), "bgp");

        let docs = parse(
            "x.yaml",
            "kind: IPAddressPool\nmetadata:\n  name: a\n  labels: {zone: x}\n---\nkind: IPAddressPool\nmetadata:\n  name: b\n---\nkind: L2Advertisement\nmetadata:\n  name: all\n---\nkind: BGPAdvertisement\nmetadata:\n  name: sel\nspec:\n  ipAddressPoolSelectors:\n  - matchLabels: {zone: x}\n",
        );
        let modes = pool_modes(&docs);
        assert_eq!(modes["a"].label(), "layer2+bgp");
        assert_eq!(modes["b"].label(), "layer2");
    }
}
