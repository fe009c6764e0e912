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

impl Inputs {
    /// Parses multi-document YAML. `origin` names the source in errors (a file name).
    /// Documents of other kinds are skipped: users pass whole application manifests.
    /// `List` documents are expanded. MetalLB's `metallb.io/v1beta1` IPAddressPools are
    /// read as FerroLB's, so a MetalLB configuration can be previewed unchanged.
    pub fn parse(&mut self, text: &str, origin: &str) -> Result<(), LoadError> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| LoadError::Yaml {
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
