//! Status conditions, shaped like `metav1.Condition`, and the reasons FerroLB uses.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One observation about an object, as `metav1.Condition` (type, status, reason, message).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Valid`, `Overlapping`, `AddressesInUseOutsidePool`, …
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase machine-readable reason.
    pub reason: String,
    /// What a person should know and do.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Condition types written on IPAddressPools.
pub mod pool {
    /// The pool parsed and is used for allocation.
    pub const VALID: &str = "Valid";
    /// The pool shares addresses with another pool.
    pub const OVERLAPPING: &str = "Overlapping";
    /// Services hold addresses that this pool no longer contains.
    pub const ADDRESSES_IN_USE_OUTSIDE_POOL: &str = "AddressesInUseOutsidePool";
}
