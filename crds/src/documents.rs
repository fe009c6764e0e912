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
        // Not all JSON, or a document JSON cannot read: the YAML parser reads it, and
        // says what is wrong the same way as for any file.
        if let Some(fast) = json_documents(text).and_then(|d| parse_json_documents(&d, origin)) {
            self.extend(fast);
            return Ok(());
        }
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

    /// Appends every object of `other`, in order.
    pub fn extend(&mut self, other: Inputs) {
        self.pools.extend(other.pools);
        self.services.extend(other.services);
        self.namespaces.extend(other.namespaces);
        self.nodes.extend(other.nodes);
        self.endpoint_slices.extend(other.endpoint_slices);
        self.l2_advertisements.extend(other.l2_advertisements);
        self.bgp_advertisements.extend(other.bgp_advertisements);
        self.bgp_peers.extend(other.bgp_peers);
        self.communities.extend(other.communities);
        self.bfd_profiles.extend(other.bfd_profiles);
        self.secrets.extend(other.secrets);
    }

    /// One JSON document: the core kinds, which are most of a large file, straight into
    /// their types; anything else through [`Self::add`], as YAML documents go.
    fn add_json(&mut self, doc: &str, origin: &str) -> Result<(), LoadError> {
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(default, borrow, rename = "apiVersion")]
            api_version: Option<std::borrow::Cow<'a, str>>,
            #[serde(default, borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let syntax = |e: serde_json::Error| LoadError::Yaml {
            origin: origin.into(),
            message: e.to_string(),
        };
        let head: Head = serde_json::from_str(doc).map_err(syntax)?;
        let typed_err = |e: serde_json::Error| LoadError::Object {
            origin: origin.into(),
            kind: head.kind.as_deref().unwrap_or_default().into(),
            name: String::new(),
            message: e.to_string(),
        };
        match (head.api_version.as_deref(), head.kind.as_deref()) {
            (Some("v1"), Some("Service")) => self
                .services
                .push(serde_json::from_str(doc).map_err(typed_err)?),
            (Some("discovery.k8s.io/v1"), Some("EndpointSlice")) => self
                .endpoint_slices
                .push(serde_json::from_str(doc).map_err(typed_err)?),
            _ => self.add(serde_json::from_str(doc).map_err(syntax)?, origin)?,
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

/// Below this many documents a file is read on the calling thread only.
const PARALLEL_FROM: usize = 2_000;

/// Every document read as JSON, on as many threads as there are CPUs (at most four)
/// for a large file; `None` when one of them cannot be read that way.
fn parse_json_documents(docs: &[&str], origin: &str) -> Option<Inputs> {
    let one = |chunk: &[&str]| {
        let mut part = Inputs::default();
        chunk
            .iter()
            .all(|d| part.add_json(d, origin).is_ok())
            .then_some(part)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    if docs.len() < PARALLEL_FROM || threads < 2 {
        return one(docs);
    }
    let size = docs.len().div_ceil(threads);
    let parts: Vec<Option<Inputs>> = std::thread::scope(|s| {
        let handles: Vec<_> = docs
            .chunks(size)
            .map(|chunk| s.spawn(move || one(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let mut all = Inputs::default();
    for part in parts {
        all.extend(part?);
    }
    Some(all)
}

/// The documents of a multi-document stream when every one is a single JSON object
/// (how programs write large files, `kubectl get -o json` included); `None` otherwise.
/// JSON is YAML, but a JSON parser reads it many times faster. Documents are split at
/// `---` lines, which JSON text cannot contain; comment lines between them are skipped.
fn json_documents(text: &str) -> Option<Vec<&str>> {
    let mut docs = Vec::new();
    let mut rest = text;
    loop {
        let (doc, next) = match find_marker(rest) {
            Some((at, after)) => (&rest[..at], Some(&rest[after..])),
            None => (rest, None),
        };
        let body = skip_comments(doc);
        if !body.is_empty() {
            if !body.starts_with('{') {
                return None;
            }
            docs.push(body);
        }
        match next {
            Some(n) => rest = n,
            None => return Some(docs),
        }
    }
}

/// Where the next `---` marker line starts and where the text after it begins.
fn find_marker(text: &str) -> Option<(usize, usize)> {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" {
            return Some((start, start + line.len()));
        }
        if bare.starts_with("--- ") {
            // Content after the marker on its own line: not the shape written by programs.
            return Some((start, start + 3));
        }
        start += line.len();
    }
    None
}

/// The text without leading blank and comment lines, and without trailing space.
fn skip_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if !text.starts_with('#') {
            return text.trim_end();
        }
        text = text.split_once('\n').map(|(_, r)| r).unwrap_or("");
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

    const YAML_DOCS: &str = "# services
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {ferrolb.io/address-pool: lan}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
addressType: IPv4
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
endpoints: [{addresses: [192.0.2.1], nodeName: node1, conditions: {ready: true}}]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: v1
kind: List
items: [{apiVersion: v1, kind: Node, metadata: {name: node1}}]
";

    /// The same documents as JSON, one per `---` (how programs write large files).
    fn as_json(yaml: &str) -> String {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
        let mut out = String::from("# written by a program\n");
        for d in docs {
            out.push_str(&format!("---\n{d}\n"));
        }
        out
    }

    fn summary(i: &Inputs) -> Vec<String> {
        let names = |v: Vec<String>| v.join(",");
        vec![
            names(i.services.iter().map(|s| format!("{:?}", s)).collect()),
            names(
                i.endpoint_slices
                    .iter()
                    .map(|s| format!("{:?}", s))
                    .collect(),
            ),
            names(i.pools.iter().map(|p| format!("{:?}", p.spec)).collect()),
            names(i.nodes.iter().map(|n| n.name_any()).collect()),
        ]
    }

    #[test]
    fn json_documents_read_as_their_yaml() {
        let (mut yaml, mut json) = (Inputs::default(), Inputs::default());
        yaml.parse(YAML_DOCS, "a.yaml").unwrap();
        let text = as_json(YAML_DOCS);
        assert!(json_documents(&text).is_some_and(|d| d.len() == 4));
        json.parse(&text, "a.yaml").unwrap();
        assert_eq!(summary(&json), summary(&yaml));
        assert_eq!(json.services.len(), 1);
        assert_eq!(json.endpoint_slices.len(), 1);
        assert_eq!(json.pools.len(), 1);
        assert_eq!(json.nodes.len(), 1);
    }

    #[test]
    fn a_large_json_file_is_read_in_parallel_in_order() {
        let n = PARALLEL_FROM * 2 + 1;
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "---\n{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"svc{i}\",\"namespace\":\"default\"}}}}\n"
            ));
        }
        let mut i = Inputs::default();
        i.parse(&text, "big.yaml").unwrap();
        let names: Vec<String> = i.services.iter().map(|s| s.name_any()).collect();
        let want: Vec<String> = (0..n).map(|i| format!("svc{i}")).collect();
        assert_eq!(names, want);
        // One bad document anywhere: the YAML parser's error.
        text.push_str("---\n{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"spec\":{\"ports\":1}}\n");
        let err = Inputs::default().parse(&text, "big.yaml").unwrap_err();
        assert!(matches!(err, LoadError::Object { .. }), "{err}");
    }

    #[test]
    fn a_file_is_only_read_as_json_when_every_document_is() {
        // YAML with a JSON document in it: the YAML parser reads it all.
        let mixed = format!(
            "{YAML_DOCS}---\n{{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {{\"name\": \"n2\"}}}}\n"
        );
        assert!(json_documents(&mixed).is_none());
        let mut i = Inputs::default();
        i.parse(&mixed, "m.yaml").unwrap();
        assert_eq!(i.nodes.len(), 2);
        // A marker with content after it, and a blank document.
        let text = "--- {\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}}\n---\n# nothing\n---\n";
        let mut i = Inputs::default();
        i.parse(text, "n.yaml").unwrap();
        assert_eq!(i.nodes.len(), 1);
    }

    #[test]
    fn broken_json_is_reported_by_the_yaml_parser_and_nothing_is_half_read() {
        let text = format!(
            "{}---\n{{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {{\"name\": \"n2\"\n",
            as_json(YAML_DOCS)
        );
        let mut i = Inputs::default();
        let err = i.parse(&text, "broken.yaml").unwrap_err();
        assert!(
            err.to_string().starts_with("broken.yaml: not valid YAML"),
            "{err}"
        );
        assert!(i.services.is_empty() && i.nodes.is_empty());
        // A Service JSON reads but its type refuses: the same error as from YAML.
        let bad = "---\n{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"s\"}, \"spec\": {\"ports\": 80}}\n";
        let err = Inputs::default().parse(bad, "svc.yaml").unwrap_err();
        assert!(
            matches!(err, LoadError::Object { ref name, .. } if name == "s"),
            "{err}"
        );
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
