//! Label-selector matching with MetalLB's list semantics: a list of selectors matches
//! when any one does, and an empty list matches everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid label selector: {0}")]
pub struct SelectorError(pub String);

/// A parsed list of label selectors.
#[derive(Clone, Debug, Default)]
pub struct Selectors(Vec<Selector>);

impl Selectors {
    pub fn parse(list: &[LabelSelector]) -> Result<Selectors, SelectorError> {
        list.iter()
            .map(|s| Selector::try_from(s.clone()).map_err(|e| SelectorError(e.to_string())))
            .collect::<Result<Vec<_>, _>>()
            .map(Selectors)
    }

    /// True when the list is empty (no restriction) or any selector matches.
    pub fn matches_or_empty(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.is_empty() || self.matches_any(labels)
    }

    /// True when some selector matches; an empty list matches nothing.
    pub fn matches_any(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().any(|s| s.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn or_semantics_and_empty_list() {
        let a = LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            ..Default::default()
        };
        let b = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["web".into()]),
            }]),
            ..Default::default()
        };
        let s = Selectors::parse(&[a, b]).unwrap();
        assert!(s.matches_any(&labels(&[("team", "a")])));
        assert!(s.matches_any(&labels(&[("tier", "web")])));
        assert!(!s.matches_any(&labels(&[("team", "b")])));
        let empty = Selectors::parse(&[]).unwrap();
        assert!(empty.matches_or_empty(&labels(&[])));
        assert!(!empty.matches_any(&labels(&[])));
    }

    #[test]
    fn bad_operator_is_an_error() {
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Sometimes".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(Selectors::parse(&[bad]).is_err());
    }
}
