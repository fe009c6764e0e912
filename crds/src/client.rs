//! Writing to the Kubernetes API, as both programs do it: what a failed write means
//! ([`classify`]), and Events ([`Events`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// What came of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The object no longer exists (404); there is nothing to write.
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Worth retrying: conflict, throttling, server error, network.
    #[error("{0}")]
    Retryable(#[source] kube::Error),
    /// The API server refused the write; retrying the same request cannot help.
    #[error("{0}")]
    Rejected(#[source] kube::Error),
}

impl WriteError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, WriteError::Retryable(_))
    }
}

/// Sorts an API error into gone / retry / rejected.
pub fn classify(err: kube::Error) -> Result<Applied, WriteError> {
    match &err {
        kube::Error::Api(status) => match status.code {
            404 => Ok(Applied::Gone),
            408 | 409 | 429 => Err(WriteError::Retryable(err)),
            400..=499 => Err(WriteError::Rejected(err)),
            _ => Err(WriteError::Retryable(err)),
        },
        kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => Err(WriteError::Rejected(err)),
        _ => Err(WriteError::Retryable(err)),
    }
}

/// `s` cut to at most `max` bytes, on a character boundary (Event reasons and notes
/// have length limits).
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The `action` field of the Events FerroLB records.
pub const EVENT_ACTION: &str = "Reconcile";

/// Bound on the memory of last Event messages.
const MAX_REMEMBERED_NOTES: usize = 8192;

/// (kind, namespace, name, Normal/Warning, reason): the Recorder's own dedup key, less
/// the constant parts.
type NoteKey = (String, String, String, bool, String);

/// Records Events (events.k8s.io) through kube-runtime's [`Recorder`]. Cheap to clone;
/// clones share the recorder.
///
/// The Recorder folds a repeated Event (same object, type, reason and action) into the
/// first one's series, keeping the first message. FerroLB's messages carry what a person
/// acts on ("pool P is full" then "IP in use by S"; "interfaces eth0" then "eth1"), so
/// when the message changes the recorder's cache is reset and a new Event is created.
#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Reporter,
    state: Arc<Mutex<EventState>>,
}

struct EventState {
    recorder: Recorder,
    last_note: HashMap<NoteKey, String>,
}

impl Events {
    /// `controller`: the reporting controller (`ferrolb-controller`, `ferrolb-speaker`);
    /// `instance`: the reporting instance (the pod or node name).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Events {
        let reporter = Reporter {
            controller: controller.into(),
            instance,
        };
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Events {
            client,
            reporter,
            state: Arc::new(Mutex::new(EventState {
                recorder,
                last_note: HashMap::new(),
            })),
        }
    }

    /// Records one Event about `regarding` (once: no retry). The reason is cut to 128
    /// bytes and the message to 1024, the API's limits.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Result<Applied, WriteError> {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: truncate(reason, 128),
            note: Some(truncate(message, 1024)),
            action: EVENT_ACTION.into(),
            secondary: None,
        };
        let key: NoteKey = (
            regarding.kind.clone().unwrap_or_default(),
            regarding.namespace.clone().unwrap_or_default(),
            regarding.name.clone().unwrap_or_default(),
            warning,
            reason.into(),
        );
        let recorder = self.recorder_for(key, message);
        recorder
            .publish(&event, regarding)
            .await
            .map(|_| Applied::Written)
            .or_else(classify)
    }

    /// The recorder to publish with: a fresh one when this object's last Event with this
    /// reason had another message.
    fn recorder_for(&self, key: NoteKey, message: &str) -> Recorder {
        // A poisoned lock only means another write panicked mid-update; the state is
        // still a usable cache.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = state.last_note.get(&key).is_some_and(|n| n != message);
        if changed || state.last_note.len() >= MAX_REMEMBERED_NOTES {
            state.recorder = Recorder::new(self.client.clone(), self.reporter.clone());
            if !changed {
                state.last_note.clear();
            }
        }
        state.last_note.insert(key, message.to_string());
        state.recorder.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
