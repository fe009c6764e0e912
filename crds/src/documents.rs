//! Kubernetes-shaped YAML documents, read into typed objects: the input of standalone
//! mode (`--source dir:PATH`) and of the planner, shared by the controller and the speaker.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use serde_json::Value;
use thiserror::Error;

use crate::{BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};

/// The objects found in a set of YAML documents, in input order.
#[derive(Debug, Default)]
pub struct Inputs {
    pub pools: Vec<IPAddressPool>,
    pub services: Vec<Service>,
    pub namespaces: Vec<Namespace>,
    pub nodes: Vec<Node>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub l2_advertisements: Vec<L2Advertisement>,
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    pub bgp_peers: Vec<BGPPeer>,
    pub communities: Vec<Community>,
    pub bfd_profiles: Vec<BFDProfile>,
    /// Secrets (a BGPPeer's `passwordSecret`); only the speaker reads them.
    pub secrets: Vec<Secret>,
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{origin}: not valid YAML: {message}")]
    Yaml { origin: String, message: String },
    #[error("{origin}: {kind} {name:?}: {message}")]
    Object {
        origin: String,
        kind: String,
        name: String,
        message: String,
    },
}

/// The YAML parser's limits for one file of a standalone directory (inputs and the
/// programs' own records). Its defaults (1,024 documents, 250,000 nodes)
/// are sized for configuration files and refuse a standalone directory's file of a few
/// hundred Services with their EndpointSlices. These files are the operator's own, so
/// the limits on size go up to what the input size cap (256 MiB) allows, while those
/// against alias expansion ("billion laughs") stay at the parser's defaults.
pub fn file_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1_000_000,
            max_nodes: 50_000_000,
            max_events: 100_000_000,
            max_total_scalar_bytes: 256 * 1024 * 1024,
        },
    }
}

impl Inputs {
    /// Parses multi-document YAML. `origin` names the source in errors (a file name).
    /// Documents of other kinds are skipped: users pass whole application manifests.
    /// `List` documents are expanded. MetalLB's `metallb.io/v1beta1` IPAddressPools are
    /// read as FerroLB's, so a MetalLB configuration can be previewed unchanged.
    pub fn parse(&mut self, text: &str, origin: &str) -> Result<(), LoadError> {
        let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, file_options())
            .map_err(|e| LoadError::Yaml {
                origin: origin.into(),
                message: one_line(&e.to_string()),
            })?;
        for doc in docs {
            self.add(doc, origin)?;
        }
        Ok(())
    }

    fn add(&mut self, doc: Value, origin: &str) -> Result<(), LoadError> {
        if doc.is_null() {
            return Ok(());
        }
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let api = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (group, _version) = api.rsplit_once('/').unwrap_or(("", api.as_str()));
        if kind == "List" {
            if let Some(Value::Array(items)) = doc.get("items") {
                for item in items.clone() {
                    self.add(item, origin)?;
                }
            }
            return Ok(());
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let err = |message: String| LoadError::Object {
            origin: origin.into(),
            kind: kind.clone(),
            name: name.clone(),
            message: one_line(&message),
        };
        fn typed<T: serde::de::DeserializeOwned>(mut doc: Value) -> Result<T, String> {
            if let Some(m) = doc.as_object_mut() {
                m.insert(
                    "apiVersion".into(),
                    Value::String("ferrolb.io/v1beta1".into()),
                );
            }
            serde_json::from_value(doc).map_err(|e| e.to_string())
        }
        let ours = group == crate::GROUP || group == crate::METALLB_GROUP;
        match (group, kind.as_str()) {
            ("", "Service") => self
                .services
                .push(serde_json::from_value(doc).map_err(|e| err(e.to_string()))?),
            ("", "Node") => self
                .nodes
                .push(serde_json::from_value(doc).map_err(|e| err(e.to_string()))?),
            ("discovery.k8s.io", "EndpointSlice") => self
                .endpoint_slices
                .push(serde_json::from_value(doc).map_err(|e| err(e.to_string()))?),
            ("", "Secret") => self
                .secrets
                .push(serde_json::from_value(doc).map_err(|e| err(e.to_string()))?),
            ("", "Namespace") => self
                .namespaces
                .push(serde_json::from_value(doc).map_err(|e| err(e.to_string()))?),
            (_, "IPAddressPool") if ours => self.pools.push(typed(doc).map_err(err)?),
            (_, "L2Advertisement") if ours => self.l2_advertisements.push(typed(doc).map_err(err)?),
            (_, "BGPAdvertisement") if ours => {
                self.bgp_advertisements.push(typed(doc).map_err(err)?)
            }
            (_, "BGPPeer") if ours => self.bgp_peers.push(typed(doc).map_err(err)?),
            (_, "Community") if ours => self.communities.push(typed(doc).map_err(err)?),
            (_, "BFDProfile") if ours => self.bfd_profiles.push(typed(doc).map_err(err)?),
            _ => {}
        }
        Ok(())
    }

    /// Labels of every namespace given, plus an empty entry for namespaces that
    /// Services use but no Namespace object describes.
    pub fn namespace_labels(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<_, _> = self
            .namespaces
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect();
        for s in &self.services {
            out.entry(s.namespace().unwrap_or_else(|| "default".into()))
                .or_default();
        }
        out
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A standalone directory's file of thousands of Services (two documents each, with
    /// their EndpointSlices) is past the YAML parser's default limits.
    #[test]
    fn a_file_of_thousands_of_services_parses() {
        let n = 3_000;
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: default}}\n\
                 spec: {{type: LoadBalancer, ports: [{{port: 80, protocol: TCP}}]}}\n\
                 ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\n\
                 metadata: {{name: svc{i}-1, namespace: default, labels: {{kubernetes.io/service-name: svc{i}}}}}\n\
                 endpoints: [{{addresses: [192.0.2.1], nodeName: node1, conditions: {{ready: true}}}}]\n"
            ));
        }
        let mut inputs = Inputs::default();
        inputs.parse(&text, "big.yaml").unwrap();
        assert_eq!(inputs.services.len(), n);
        assert_eq!(inputs.endpoint_slices.len(), n);
    }

    /// Alias expansion stays bounded: the limits raised for size are not the ones that
    /// stop a "billion laughs" document.
    #[test]
    fn alias_bombs_are_still_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let mut inputs = Inputs::default();
        let err = inputs.parse(&text, "bomb.yaml").unwrap_err();
        assert!(err.to_string().contains("bomb.yaml"), "{err}");
    }
}
