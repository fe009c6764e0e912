//! A standalone site directory for `ferrolb-speaker --source dir:PATH`, written by the
//! test instead of the controller: Nodes, an address pool, BGPPeers, BGPAdvertisements,
//! LoadBalancer Services with their addresses already assigned (Service status and
//! `.ferrolb/assignments.yaml`, as the controller would write them) and EndpointSlices
//! placing each Service's endpoints on chosen nodes; and the BGP objects the tests and
//! benches put in it ([`peer`], [`advertisement`]), with the AS numbers they use.
//!
//! Documents are written as JSON, which is YAML. Files are replaced atomically (write,
//! then rename), so the speaker never reads half a file.

use std::net::IpAddr;
use std::path::Path;

use serde_json::{Value, json};

use super::{Result, io};

/// One LoadBalancer Service of the site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub ips: Vec<IpAddr>,
    /// Nodes with a ready endpoint.
    pub endpoints_on: Vec<String>,
    /// `Local` external traffic policy (default `Cluster`).
    pub local: bool,
}

impl Service {
    pub fn new(name: &str, ips: &[IpAddr], endpoints_on: &[&str]) -> Service {
        Service {
            name: name.into(),
            ips: ips.to_vec(),
            endpoints_on: endpoints_on.iter().map(|s| s.to_string()).collect(),
            local: false,
        }
    }
}

/// A Node: name and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

pub const POOL: &str = "bgp";
pub const NAMESPACE: &str = "ferrolb-system";
/// The router's AS (the daemon facing the speaker).
pub const ROUTER_AS: u32 = 64500;
/// The nodes' AS (`myASN` of every [`peer`]).
pub const NODE_AS: u32 = 64512;

/// One BGP object of `site.yaml`: (kind, name, spec).
pub type Object = (&'static str, String, Value);

/// Adds the fields of `extra` (an object) to `base`, replacing those it names.
fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// A BGPPeer from every node ([`NODE_AS`]) to `address` in `peer_as`, with short
/// timers (hold 9 s, keepalive 3 s, connect 1 s); `extra` fields added or replacing.
pub fn peer(name: &str, address: IpAddr, peer_as: u32, extra: Value) -> Object {
    let spec = json!({
        "myASN": NODE_AS,
        "peerASN": peer_as,
        "peerAddress": address.to_string(),
        "holdTime": "9s",
        "keepaliveTime": "3s",
        "connectTime": "1s",
    });
    ("BGPPeer", name.to_string(), merged(spec, extra))
}

/// A BGPAdvertisement of the pool [`POOL`], `spec` fields added.
pub fn advertisement(name: &str, spec: Value) -> Object {
    let base = json!({"ipAddressPools": [POOL]});
    ("BGPAdvertisement", name.to_string(), merged(base, spec))
}

fn docs_text(docs: &[Value]) -> String {
    let mut out = String::from("# Written by the FerroLB BGP test harness.\n");
    for d in docs {
        out.push_str("---\n");
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// `site.yaml`: Nodes, the pool `bgp` over `ranges`, and the given BGP objects
/// (`spec` JSON each: BGPPeer, BGPAdvertisement, Community, as `(kind, name, spec)`).
pub fn site_yaml<S: AsRef<str>>(
    nodes: &[Node],
    ranges: &[&str],
    bgp: &[(&str, S, Value)],
) -> String {
    let mut docs: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let mut addrs: Vec<Value> = n
                .addresses
                .iter()
                .map(|a| json!({"type": "InternalIP", "address": a.to_string()}))
                .collect();
            addrs.push(json!({"type": "Hostname", "address": n.name}));
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": n.name, "labels": {"kubernetes.io/hostname": n.name}},
                "status": {
                    "addresses": addrs,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            })
        })
        .collect();
    docs.push(json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": POOL, "namespace": NAMESPACE},
        "spec": {"addresses": ranges, "autoAssign": false},
    }));
    for (kind, name, spec) in bgp {
        docs.push(json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": kind,
            "metadata": {"name": name.as_ref(), "namespace": NAMESPACE},
            "spec": spec,
        }));
    }
    docs_text(&docs)
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv6() { "IPv6" } else { "IPv4" }
}

/// `services.yaml`: each Service with its status, and one EndpointSlice per address
/// family with a ready endpoint on each of `endpoints_on` (`node_addr` gives a node's
/// endpoint address for a family).
pub fn services_yaml(services: &[Service], node_addr: &dyn Fn(&str, bool) -> IpAddr) -> String {
    let mut docs = Vec::with_capacity(services.len() * 2);
    for s in services {
        let mut families: Vec<&str> = s.ips.iter().map(family).collect();
        families.dedup();
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": s.name,
                "namespace": "default",
                "annotations": {"ferrolb.io/address-pool": POOL},
            },
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": if s.local { "Local" } else { "Cluster" },
                "ipFamilies": families,
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
            "status": {"loadBalancer": {"ingress":
                s.ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>()}},
        }));
        for f in &families {
            let v6 = *f == "IPv6";
            let endpoints: Vec<Value> = s
                .endpoints_on
                .iter()
                .map(|n| {
                    json!({
                        "addresses": [node_addr(n, v6).to_string()],
                        "nodeName": n,
                        "conditions": {"ready": true, "serving": true, "terminating": false},
                    })
                })
                .collect();
            docs.push(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{}-{}", s.name, f.to_ascii_lowercase()),
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": s.name},
                },
                "addressType": f,
                "endpoints": endpoints,
                "ports": [{"port": 80, "protocol": "TCP"}],
            }));
        }
    }
    docs_text(&docs)
}

/// `.ferrolb/assignments.yaml` for `services`.
pub fn assignments_yaml(services: &[Service]) -> String {
    let mut sorted: Vec<&Service> = services.iter().filter(|s| !s.ips.is_empty()).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let items: Vec<Value> = sorted
        .iter()
        .map(|s| {
            json!({
                "namespace": "default",
                "name": s.name,
                "ips": s.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                "pool": POOL,
            })
        })
        .collect();
    format!(
        "{}\n",
        json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "AssignmentList", "items": items})
    )
}

/// Writes `text` to `dir/name` atomically.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io(format!("cannot create {}", parent.display())))?;
    }
    let tmp = dir.join(format!(".{}.tmp", name.replace('/', "_")));
    std::fs::write(&tmp, text).map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("cannot rename to {}", path.display())))
}

/// Writes the Services and the matching assignment record (the record first: a Service
/// without a record is not announced, an address without a Service is dropped).
pub fn write_services(
    dir: &Path,
    services: &[Service],
    node_addr: &dyn Fn(&str, bool) -> IpAddr,
) -> Result<()> {
    write(
        dir,
        ".ferrolb/assignments.yaml",
        &assignments_yaml(services),
    )?;
    write(dir, "services.yaml", &services_yaml(services, node_addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_as_json_and_carry_the_addresses() {
        let s = vec![Service::new(
            "web",
            &[
                "203.0.113.10".parse().unwrap(),
                "2001:db8:113::10".parse().unwrap(),
            ],
            &["node1", "node2"],
        )];
        let text = services_yaml(&s, &|n, v6| {
            let k = if n == "node1" { 11 } else { 12 };
            if v6 {
                format!("2001:db8:e::{k}").parse().unwrap()
            } else {
                format!("198.51.100.{k}").parse().unwrap()
            }
        });
        let docs: Vec<Value> = text
            .split("---\n")
            .skip(1)
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 3);
        // And as YAML, the way the programs read the directory.
        let yaml: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(yaml.len(), 3);
        assert_eq!(yaml[1]["metadata"]["name"], "web-ipv4");
        assert_eq!(docs[0]["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        assert_eq!(docs[2]["endpoints"][1]["addresses"][0], "2001:db8:e::12");
        let a: Value = serde_json::from_str(&assignments_yaml(&s)).unwrap();
        assert_eq!(
            a["items"][0]["ips"],
            json!(["203.0.113.10", "2001:db8:113::10"])
        );
        let site = site_yaml(
            &[Node {
                name: "node1".into(),
                addresses: vec!["198.51.100.11".parse().unwrap()],
            }],
            &["203.0.113.0/24"],
            &[("BGPPeer", "router", json!({"myASN": 64512}))],
        );
        assert_eq!(site.matches("---\n").count(), 3);
        assert!(site.contains(r#""kind":"BGPPeer""#));
    }

    #[test]
    fn peer_and_advertisement_take_extra_fields() {
        let (kind, name, spec) = peer(
            "router",
            "198.51.100.1".parse().unwrap(),
            ROUTER_AS,
            json!({"holdTime": "3s", "passive": true}),
        );
        assert_eq!((kind, name.as_str()), ("BGPPeer", "router"));
        assert_eq!(spec["myASN"], NODE_AS);
        assert_eq!(spec["peerASN"], ROUTER_AS);
        assert_eq!(spec["peerAddress"], "198.51.100.1");
        assert_eq!(spec["holdTime"], "3s");
        assert_eq!(spec["keepaliveTime"], "3s");
        assert_eq!(spec["passive"], true);
        let (kind, _, spec) = advertisement("bgp", json!({"localPref": 150}));
        assert_eq!(kind, "BGPAdvertisement");
        assert_eq!(spec, json!({"ipAddressPools": [POOL], "localPref": 150}));
    }
}
