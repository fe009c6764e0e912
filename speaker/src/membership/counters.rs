//! What the gossip socket saw, and how many members are in which state, for metrics and
//! tests.
//!
//! Plain relaxed atomics: each counter is read on its own, nothing needs the set to be
//! a consistent snapshot.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared between the driver task and [`super::Membership`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    pub(crate) dropped_unauthenticated: AtomicU64,
    pub(crate) dropped_replayed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) members_alive: AtomicU64,
    pub(crate) members_suspect: AtomicU64,
    pub(crate) members_down: AtomicU64,
    /// Names of the members under suspicion at the last walk of the member table.
    pub(crate) suspected: Mutex<BTreeSet<String>>,
    /// Names of the members declared down after a suspicion (failure detection), as
    /// opposed to those that announced their leave; a name leaves the set when the
    /// member is up again.
    pub(crate) failed: Mutex<BTreeSet<String>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    /// Remembers who is suspect now, for [`Counters::member_down`].
    pub(crate) fn set_suspected(&self, names: BTreeSet<String>) {
        if let Ok(mut s) = self.suspected.lock() {
            *s = names;
        }
    }

    /// A member was declared down: by failure detection if it was suspect before
    /// (a leaving member goes from alive to down in one step).
    pub(crate) fn member_down(&self, name: &str) {
        let suspected = self.suspected.lock().is_ok_and(|s| s.contains(name));
        if let Ok(mut failed) = self.failed.lock() {
            if suspected {
                failed.insert(name.to_string());
            } else {
                failed.remove(name);
            }
        }
    }

    pub(crate) fn member_up(&self, name: &str) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.remove(name);
        }
    }

    pub(crate) fn failed(&self) -> BTreeSet<String> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            received: get(&self.received),
            received_bytes: get(&self.received_bytes),
            dropped_unauthenticated: get(&self.dropped_unauthenticated),
            dropped_replayed: get(&self.dropped_replayed),
            rejected: get(&self.rejected),
            sent: get(&self.sent),
            sent_bytes: get(&self.sent_bytes),
            send_errors: get(&self.send_errors),
            members_alive: get(&self.members_alive),
            members_suspect: get(&self.members_suspect),
            members_down: get(&self.members_down),
        }
    }
}

/// The counters and gauges at one moment. Byte counts are UDP payload bytes (add 28 per datagram
/// for IPv4 + UDP headers, 48 for IPv6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Datagrams received, whatever they held.
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Dropped: not a well-formed envelope with a valid tag (wrong or no secret,
    /// garbage, truncated).
    pub dropped_unauthenticated: u64,
    /// Dropped: valid tag, but already seen or from an earlier run of the sender.
    pub dropped_replayed: u64,
    /// Authenticated and fresh, but foca refused it (undecodable payload, not
    /// addressed to us, from ourselves, …).
    pub rejected: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Sends the kernel refused (no route, buffer full, …).
    pub send_errors: u64,
    /// Gauge: other members known alive (this node not counted).
    pub members_alive: u64,
    /// Gauge: other members under suspicion (still in the live set).
    pub members_suspect: u64,
    /// Gauge: members declared down or gone, one per address ever seen (a restarted
    /// speaker replaces its previous identity, it does not add one).
    pub members_down: u64,
}
