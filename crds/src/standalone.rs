//! The standalone record shared by the programs: `PATH/.ferrolb/assignments.yaml`, where
//! `ferrolb-controller --source dir:PATH` writes which Service holds which addresses and
//! the speaker reads them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The directory, inside `PATH`, where the controller writes its results.
pub const STATE_DIR: &str = ".ferrolb";
/// The assignment record, in [`STATE_DIR`].
pub const ASSIGNMENTS_FILE: &str = "assignments.yaml";
/// `apiVersion` of the files the controller writes.
pub const API_VERSION: &str = "ferrolb.io/v1beta1";
/// `kind` of `assignments.yaml`.
pub const ASSIGNMENT_LIST_KIND: &str = "AssignmentList";

/// `PATH/.ferrolb/assignments.yaml`.
pub fn assignments_path(dir: &Path) -> PathBuf {
    dir.join(STATE_DIR).join(ASSIGNMENTS_FILE)
}

/// The content of `PATH/.ferrolb/assignments.yaml`: which Service holds which addresses.
///
/// ```yaml
/// apiVersion: ferrolb.io/v1beta1
/// kind: AssignmentList
/// items:
///   - namespace: default
///     name: web
///     ips: ["198.51.100.200", "2001:db8:51::200"]
///     pool: lan
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentList {
    pub api_version: String,
    pub kind: String,
    /// One per Service with at least one address, sorted by namespace, then name.
    #[serde(default)]
    pub items: Vec<ServiceAssignment>,
}

/// One Service's addresses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceAssignment {
    pub namespace: String,
    pub name: String,
    /// In the order of `status.loadBalancer.ingress`.
    #[serde(serialize_with = "quoted_ips")]
    pub ips: Vec<IpAddr>,
    /// The pool the addresses come from.
    pub pool: String,
}

/// Addresses as a flow sequence of quoted strings (`["198.51.100.1", "2001:db8::1"]`):
/// quoted, so that no YAML reader takes an address for a number.
pub fn quoted_ips<S: serde::Serializer>(ips: &[IpAddr], s: S) -> Result<S::Ok, S::Error> {
    let quoted: Vec<_> = ips
        .iter()
        .map(|ip| serde_saphyr::DoubleQuoted(ip.to_string()))
        .collect();
    serde_saphyr::FlowSeq(quoted).serialize(s)
}

impl Default for AssignmentList {
    fn default() -> Self {
        AssignmentList::new(Vec::new())
    }
}

/// Why `assignments.yaml` could not be used.
#[derive(Debug, Error)]
pub enum AssignmentError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: not a valid AssignmentList: {message}")]
    Invalid { origin: String, message: String },
}

impl AssignmentList {
    /// A list of these items, sorted by namespace, then name.
    pub fn new(mut items: Vec<ServiceAssignment>) -> Self {
        items.sort();
        AssignmentList {
            api_version: API_VERSION.into(),
            kind: ASSIGNMENT_LIST_KIND.into(),
            items,
        }
    }

    /// Parses the file's text. `origin` names it in errors. Checks `apiVersion` and
    /// `kind`, and that no Service is listed twice; items are returned sorted.
    pub fn parse(text: &str, origin: &str) -> Result<AssignmentList, AssignmentError> {
        let invalid = |message: String| AssignmentError::Invalid {
            origin: origin.into(),
            message: message.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        // Written as JSON (see `to_yaml`), which a JSON parser reads many times faster;
        // anything else, or JSON with a mistake, goes to the YAML parser and its errors.
        let json = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .is_some_and(|l| l.trim_start().starts_with('{'));
        let fast = json
            .then(|| serde_json::from_str::<AssignmentList>(text).ok())
            .flatten();
        let list: AssignmentList = match fast {
            Some(list) => list,
            None => serde_saphyr::from_str_with_options(text, crate::documents::file_options())
                .map_err(|e| invalid(e.to_string()))?,
        };
        if list.api_version != API_VERSION || list.kind != ASSIGNMENT_LIST_KIND {
            return Err(invalid(format!(
                "expected apiVersion {API_VERSION} and kind {ASSIGNMENT_LIST_KIND}, found {} {}",
                list.api_version, list.kind
            )));
        }
        let mut seen = BTreeSet::new();
        for item in &list.items {
            if !seen.insert((&item.namespace, &item.name)) {
                return Err(invalid(format!(
                    "{}/{} is listed twice",
                    item.namespace, item.name
                )));
            }
        }
        Ok(AssignmentList::new(list.items))
    }

    /// Reads `PATH/.ferrolb/assignments.yaml`; `Ok(None)` when it does not exist.
    pub fn read(dir: &Path) -> Result<Option<AssignmentList>, AssignmentError> {
        let path = assignments_path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => AssignmentList::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AssignmentError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The file's text: a header comment and the list as JSON (which is YAML), one
    /// Service per line, so that people can still read it and the speakers parse tens of
    /// thousands of Services in milliseconds.
    pub fn to_yaml(&self) -> String {
        let head = serde_json::json!({"apiVersion": self.api_version, "kind": self.kind});
        let head = head.to_string();
        let mut out = String::with_capacity(64 + self.items.len() * 96);
        out.push_str(
            "# Written by ferrolb-controller (--source dir): the addresses it assigned. Do not edit.\n",
        );
        // `{"apiVersion":…,"kind":…` then `,"items":[`, one item per line, `]}`.
        out.push_str(head.strip_suffix('}').unwrap_or(&head));
        out.push_str(",\"items\":[");
        for (i, item) in self.items.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            let line = serde_json::json!({
                "namespace": item.namespace,
                "name": item.name,
                "ips": item.ips.iter().map(IpAddr::to_string).collect::<Vec<_>>(),
                "pool": item.pool,
            });
            out.push_str(&line.to_string());
        }
        out.push_str("\n]}\n");
        out
    }

    /// The assignment of one Service (a scan: for many look-ups, [`Self::by_service`]).
    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServiceAssignment> {
        self.items
            .iter()
            .find(|i| i.namespace == namespace && i.name == name)
    }

    /// Every assignment by namespace and name, for looking up each Service of a large
    /// directory without scanning the list each time.
    pub fn by_service(&self) -> AssignmentIndex<'_> {
        let mut index = AssignmentIndex::default();
        for i in &self.items {
            index
                .0
                .entry(i.namespace.as_str())
                .or_default()
                .insert(i.name.as_str(), i);
        }
        index
    }
}

/// [`AssignmentList::by_service`]: assignments by namespace, then name.
#[derive(Debug, Default)]
pub struct AssignmentIndex<'a>(
    std::collections::HashMap<&'a str, std::collections::HashMap<&'a str, &'a ServiceAssignment>>,
);

impl<'a> AssignmentIndex<'a> {
    /// The assignment of one Service.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&'a ServiceAssignment> {
        self.0.get(namespace)?.get(name).copied()
    }
}

/// Where a program's inputs come from: `--source kube` or `--source dir:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The Kubernetes API (in-cluster or kubeconfig).
    Kube,
    /// A directory of Kubernetes-shaped YAML files.
    Dir(PathBuf),
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            _ if s == "kube" => Ok(Source::Kube),
            Some(("dir", path)) if !path.is_empty() => Ok(Source::Dir(PathBuf::from(path))),
            _ => Err(format!("expected `kube` or `dir:PATH`, got {s:?}")),
        }
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!("kube".parse(), Ok(Source::Kube));
        assert_eq!("dir:/srv/lb".parse(), Ok(Source::Dir("/srv/lb".into())));
        assert!("dir:".parse::<Source>().is_err());
        assert!("file:/x".parse::<Source>().is_err());
    }
}

#[cfg(test)]
mod assignment_tests {
    use super::*;

    /// A record of 50,000 Services is past the YAML parser's default node limit; it
    /// must read back whole, and be found by name.
    #[test]
    fn a_large_record_reads_back() {
        let items: Vec<ServiceAssignment> = (0..50_000u32)
            .map(|i| ServiceAssignment {
                namespace: "default".into(),
                name: format!("svc{i}"),
                ips: vec![IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0x1000,
                    0,
                    0,
                    0,
                    (i >> 16) as u16,
                    i as u16,
                ))],
                pool: "bgp".into(),
            })
            .collect();
        let list = AssignmentList::new(items);
        let text = list.to_yaml();
        let back = AssignmentList::parse(&text, "assignments.yaml").unwrap();
        assert_eq!(back, list);
        let index = back.by_service();
        assert_eq!(
            index.get("default", "svc49999").map(|a| a.ips.clone()),
            back.get("default", "svc49999").map(|a| a.ips.clone())
        );
        assert!(index.get("default", "svc50000").is_none());
        assert!(index.get("other", "svc1").is_none());
    }
}
