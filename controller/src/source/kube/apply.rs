//! Writing the engine's [`Action`]s to the Kubernetes API, one request (or two) each.
//!
//! | action | request |
//! |---|---|
//! | `SetServiceStatus` | `PATCH /api/v1/namespaces/NS/services/NAME/status` (merge patch) `{"status":{"loadBalancer":{"ingress":[{"ip":"…"},…]}}}`, then `PATCH /api/v1/namespaces/NS/services/NAME` `{"metadata":{"annotations":{"ferrolb.io/ip-allocated-from-pool":"POOL"}}}` |
//! | `ClearServiceStatus` | the same two paths with `{"status":{"loadBalancer":{"ingress":null}}}` and the annotation set to `null` (a JSON merge patch deletes keys set to null; `{"loadBalancer":{}}` would change nothing) |
//! | `SetPoolStatus` | `PATCH /apis/ferrolb.io/v1beta1/namespaces/NS/ipaddresspools/NAME/status` `{"status":{…}}`, `conditions` always present so an empty list clears old ones |
//! | `Event` | `POST /apis/events.k8s.io/v1/namespaces/NS/events` through kube-runtime's [`Recorder`] (reporter `ferrolb-controller`); a repeat within 6 minutes becomes a `PATCH` of the same Event's series |
//!
//! Every PATCH carries `?fieldManager=ferrolb-controller`. A 404 means the object is
//! gone: [`Applied::Gone`], not an error. Conflicts, throttling, server errors and
//! transport errors are [`WriteError::Retryable`]; other rejections (400, 403, 422) are
//! [`WriteError::Rejected`].

use std::net::IpAddr;

use ferrolb_crds::annotations::IP_ALLOCATED_FROM_POOL;
use ferrolb_crds::{IPAddressPool, IPAddressPoolStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use ferrolb_crds::client::Events;

use crate::engine::{Action, EventType, Kind};

/// Field manager of every write, and the Events' reporting controller.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

pub use ferrolb_crds::client::{Applied, EVENT_ACTION, WriteError, classify};

/// `{"status":{"loadBalancer":{"ingress":[{"ip":"…"}, …]}}}`
pub fn service_status_patch(ips: &[IpAddr]) -> Value {
    let ingress: Vec<Value> = ips
        .iter()
        .map(|ip| json!({ "ip": ip.to_string() }))
        .collect();
    json!({ "status": { "loadBalancer": { "ingress": ingress } } })
}

/// `{"status":{"loadBalancer":{"ingress":null}}}`: removes every ingress entry.
pub fn clear_service_status_patch() -> Value {
    json!({ "status": { "loadBalancer": { "ingress": null } } })
}

/// Sets (or with `None` removes) `ferrolb.io/ip-allocated-from-pool`.
pub fn pool_annotation_patch(pool: Option<&str>) -> Value {
    json!({ "metadata": { "annotations": { IP_ALLOCATED_FROM_POOL: pool } } })
}

/// `{"status": STATUS}`, with `conditions` always present (a merge patch replaces lists,
/// so `[]` removes conditions that no longer hold).
pub fn pool_status_patch(status: &IPAddressPoolStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.entry("conditions").or_insert_with(|| json!([]));
    }
    json!({ "status": value })
}

/// The object an Event is about. `uid` makes `kubectl describe` find it.
pub fn object_reference(
    kind: Kind,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(kind.api_version().into()),
        kind: Some(kind.as_str().into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: uid.map(str::to_string),
        ..Default::default()
    }
}

/// Writes actions. Cheap to clone; clones share the Event recorder
/// ([`ferrolb_crds::client::Events`]: a changed message makes a new Event rather than
/// a repeat of the old one).
#[derive(Clone)]
pub struct Writer {
    client: Client,
    events: Events,
}

impl Writer {
    /// `instance`: the reporting instance of Events (the pod name).
    pub fn new(client: Client, instance: Option<String>) -> Writer {
        Writer {
            events: Events::new(client.clone(), FIELD_MANAGER, instance),
            client,
        }
    }

    /// Performs `action` once (no retry). `uid` is the uid of the object an Event is
    /// about, when known.
    pub async fn apply(&self, action: &Action, uid: Option<&str>) -> Result<Applied, WriteError> {
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match action {
            Action::SetServiceStatus { key, ips, pool } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
                let patch = service_status_patch(ips);
                if let Err(e) = api
                    .patch_status(&key.name, &pp, &Patch::Merge(&patch))
                    .await
                {
                    return classify(e);
                }
                let patch = pool_annotation_patch(Some(pool));
                api.patch(&key.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| Applied::Written)
                    .or_else(classify)
            }
            Action::ClearServiceStatus { key } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
                let patch = clear_service_status_patch();
                if let Err(e) = api
                    .patch_status(&key.name, &pp, &Patch::Merge(&patch))
                    .await
                {
                    return classify(e);
                }
                let patch = pool_annotation_patch(None);
                api.patch(&key.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| Applied::Written)
                    .or_else(classify)
            }
            Action::SetPoolStatus {
                namespace,
                name,
                status,
            } => {
                let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), namespace);
                let patch = pool_status_patch(status);
                api.patch_status(name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| Applied::Written)
                    .or_else(classify)
            }
            Action::Event {
                kind,
                namespace,
                name,
                type_,
                reason,
                message,
            } => {
                let reference = object_reference(*kind, namespace, name, uid);
                self.events
                    .publish(&reference, *type_ == EventType::Warning, reason, message)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches() {
        let ips: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(
            service_status_patch(&ips),
            json!({"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1"},{"ip":"2001:db8::1"}]}}})
        );
        assert_eq!(
            clear_service_status_patch(),
            json!({"status":{"loadBalancer":{"ingress":null}}})
        );
        assert_eq!(
            pool_annotation_patch(None),
            json!({"metadata":{"annotations":{"ferrolb.io/ip-allocated-from-pool":null}}})
        );
        let st = IPAddressPoolStatus {
            assigned_ipv4: 1,
            available_ipv4: 9,
            ..Default::default()
        };
        assert_eq!(
            pool_status_patch(&st),
            json!({"status":{"assignedIPv4":1,"assignedIPv6":0,"availableIPv4":9,"availableIPv6":0,"conditions":[]}})
        );
    }
}
