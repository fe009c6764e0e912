//! Rejects replayed datagrams: a sliding window per sender over `(epoch, seq)`, as
//! IPsec does for ESP (RFC 4303 §3.4.3).
//!
//! Why bother, when SWIM already ignores stale incarnations? Because foca's probe
//! numbers are a wrapping `u8`: someone who recorded a dead node's `Ack`s could replay
//! the one matching a live prober's current probe and delay that node's death by
//! a probe cycle at a time. With the window, a recorded datagram is accepted at most
//! once, ever, while the sender's process runs.
//!
//! Choices:
//! - The sender is identified by the address in the (authenticated) envelope, not the
//!   UDP source, which anyone can spoof.
//! - A sender restart is a new, larger `epoch` (its start time): the window resets. An
//!   older epoch is refused, unless the sender has been silent for
//!   [`EPOCH_RESET_AFTER`]: that keeps a node whose clock stepped back across a reboot
//!   from being locked out forever. Replaying an old run's datagrams after that pause
//!   gains nothing: foca already discards identities older than the one it knows.
//! - No clock comparison between nodes: only a sender's epochs are compared with each
//!   other, so unsynchronised clocks cannot break gossip.
//! - A datagram up to [`WINDOW`] sequence numbers behind the newest is accepted once, so
//!   ordinary UDP reordering costs nothing.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How far behind the newest sequence number a datagram may arrive.
pub const WINDOW: u64 = 64;
/// Silence after which a sender may come back with a smaller epoch.
pub const EPOCH_RESET_AFTER: Duration = Duration::from_secs(10);
/// Senders remembered at most; the longest silent is forgotten first. Only key holders
/// create entries, so this bounds memory against bugs, not attackers.
pub const MAX_SENDERS: usize = 4096;

/// Why a datagram is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Already seen, or too far behind the window.
    Duplicate,
    /// From an earlier run of the sender.
    OldEpoch,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    epoch: u64,
    /// Newest sequence number accepted.
    top: u64,
    /// Bit `i` set: `top - i` was accepted.
    seen: u64,
    last: Instant,
}

/// Per-sender replay windows.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    senders: HashMap<SocketAddr, Window>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts (and records) or refuses `(epoch, seq)` from `sender`, received at `now`.
    /// Call it only for datagrams whose tag verified.
    pub fn check(
        &mut self,
        sender: SocketAddr,
        epoch: u64,
        seq: u64,
        now: Instant,
    ) -> Result<(), Replay> {
        let fresh = Window {
            epoch,
            top: seq,
            seen: 1,
            last: now,
        };
        if !self.senders.contains_key(&sender) && self.senders.len() >= MAX_SENDERS {
            self.evict_oldest();
        }
        let w = match self.senders.entry(sender) {
            Entry::Vacant(v) => {
                v.insert(fresh);
                return Ok(());
            }
            Entry::Occupied(o) => o.into_mut(),
        };
        if w.epoch != epoch {
            let silent = now.saturating_duration_since(w.last) >= EPOCH_RESET_AFTER;
            if epoch < w.epoch && !silent {
                return Err(Replay::OldEpoch);
            }
            *w = fresh;
            return Ok(());
        }
        if seq > w.top {
            let shift = seq - w.top;
            w.seen = if shift >= WINDOW {
                1
            } else {
                (w.seen << shift) | 1
            };
            w.top = seq;
        } else {
            let behind = w.top - seq;
            if behind >= WINDOW {
                return Err(Replay::Duplicate);
            }
            let bit = 1u64 << behind;
            if w.seen & bit != 0 {
                return Err(Replay::Duplicate);
            }
            w.seen |= bit;
        }
        w.last = now;
        Ok(())
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .senders
            .iter()
            .min_by_key(|(_, w)| w.last)
            .map(|(a, _)| *a)
        {
            self.senders.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn each_seq_once_in_any_order_within_the_window() {
        let mut g = ReplayGuard::new();
        let t = Instant::now();
        assert_eq!(g.check(a(1), 5, 10, t), Ok(()));
        assert_eq!(g.check(a(1), 5, 10, t), Err(Replay::Duplicate));
        assert_eq!(g.check(a(1), 5, 12, t), Ok(()));
        assert_eq!(g.check(a(1), 5, 11, t), Ok(()));
        assert_eq!(g.check(a(1), 5, 11, t), Err(Replay::Duplicate));
        assert_eq!(g.check(a(1), 5, 12 + WINDOW, t), Ok(()));
        // 12 is now exactly WINDOW behind: out of the window.
        assert_eq!(g.check(a(1), 5, 12, t), Err(Replay::Duplicate));
        assert_eq!(g.check(a(1), 5, 13, t), Ok(()));
        // Other senders have their own window.
        assert_eq!(g.check(a(2), 5, 10, t), Ok(()));
    }

    #[test]
    fn a_restart_resets_the_window_and_old_runs_are_refused() {
        let mut g = ReplayGuard::new();
        let t = Instant::now();
        assert_eq!(g.check(a(1), 5, 1000, t), Ok(()));
        assert_eq!(g.check(a(1), 6, 1, t), Ok(()));
        assert_eq!(g.check(a(1), 6, 2, t), Ok(()));
        assert_eq!(g.check(a(1), 5, 1001, t), Err(Replay::OldEpoch));
        // After a long silence, a smaller epoch is a clock that stepped back.
        let later = t + EPOCH_RESET_AFTER;
        assert_eq!(g.check(a(1), 4, 1, later), Ok(()));
        assert_eq!(g.check(a(1), 4, 1, later), Err(Replay::Duplicate));
    }

    #[test]
    fn memory_is_bounded() {
        let mut g = ReplayGuard::new();
        let t = Instant::now();
        for p in 0..(MAX_SENDERS as u16 + 10) {
            assert_eq!(
                g.check(a(p), 1, 1, t + Duration::from_millis(p.into())),
                Ok(())
            );
        }
        assert_eq!(g.senders.len(), MAX_SENDERS);
        // The oldest were forgotten, the newest are kept.
        assert!(!g.senders.contains_key(&a(0)));
        assert!(g.senders.contains_key(&a(MAX_SENDERS as u16 + 9)));
    }
}
