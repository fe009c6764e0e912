//! Who a gossip member is: its Kubernetes node name, the address it gossips on, and a
//! "bump" that makes every process run (and every rejoin) a new identity.
//!
//! foca keys its member table by [`foca::Identity::addr`], here the gossip socket
//! address: two identities with the same address are two runs of the same speaker, and
//! the one with the larger bump wins. That is what lets a restarted speaker come back at
//! once instead of waiting for the cluster to forget its previous, dead, identity. The
//! node name rides along because it is what the election compares with Node objects.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A gossip member's identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// The Kubernetes node name (`--node-name`).
    pub name: String,
    /// The address peers send datagrams to.
    pub addr: SocketAddr,
    /// Orders the runs of one speaker: larger wins. See [`NodeId::new`].
    pub bump: u64,
}

impl NodeId {
    /// This run's identity. The bump is the wall clock in microseconds: a restarted
    /// speaker gets a larger one than its previous run without keeping any state, as
    /// long as the clock did not step back by more than the restart took. (If it did,
    /// the old identity is declared down within a probe cycle anyway and foca's
    /// [`renew`](foca::Identity::renew) moves us past it.)
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            name: name.into(),
            addr,
            bump: now_micros(),
        }
    }

    /// The identity used to reach a seed address whose name and bump we do not know
    /// yet. foca accepts an `Announce` addressed to any identity with the receiver's
    /// address, so this is enough to join through it.
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        Self {
            name: String::new(),
            addr,
            bump: 0,
        }
    }
}

impl foca::Identity for NodeId {
    type Addr = SocketAddr;

    /// Opt in to automatic rejoin: when the cluster declares us down (a false suspicion
    /// after a long stall, a partition), foca switches to this identity and rejoins
    /// immediately instead of going defunct.
    fn renew(&self) -> Option<Self> {
        Some(Self {
            name: self.name.clone(),
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// Microseconds since the UNIX epoch; 0 if the clock is before it (then the bump still
/// orders renewals, just not restarts).
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn renewed_identity_wins_over_the_previous_one() {
        let a = NodeId::new("n1", "127.0.0.1:7946".parse().unwrap());
        let b = a.renew().unwrap();
        assert_eq!(a.addr(), b.addr());
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
    }
}
