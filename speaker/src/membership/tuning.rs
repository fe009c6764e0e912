//! SWIM timing: how fast a crashed speaker is declared dead, and what that costs.
//!
//! Detection of a crash is the sum of:
//! 1. waiting for some survivor to pick the dead node as its probe target. Each survivor
//!    probes one member per [`Tuning::probe_period`], walking its members in a shuffled
//!    round-robin, so with `N - 1` survivors the wait is short on average but has a
//!    tail: the chance that nobody picks it for `k` periods is about `e^-k`, so the
//!    99th percentile is 3 to 4.5 periods (N = 5 to 10);
//! 2. that probe failing: no `Ack` within [`Tuning::probe_rtt`], then none through the
//!    [`Tuning::num_indirect_probes`] members asked to ping it for us, by the end of the
//!    period (1 period);
//! 3. [`Tuning::suspect_to_down_after`], the time the suspect has to refute;
//! 4. the prober gossiping `Down`, within one [`Tuning::gossip_period`].
//!
//! So p99 ≈ 4–5.5 × probe period + suspicion + gossip period. The defaults (10 ms
//! period, 4 ms direct RTT, 20 ms suspicion, 5 ms gossip) give, measured:
//!
//! | where                                    | N  | p50   | p99   | max   |
//! |------------------------------------------|----|-------|-------|-------|
//! | virtual time, 0.1 ms latency (1000 runs) | 5  | 37 ms | 66 ms | 90 ms |
//! | loopback UDP, 2-core VM (20 runs)        | 5  | 41 ms | 60 ms | 60 ms |
//! | the lab, client-visible gap (20 runs)    | 3  | 52 ms | 72 ms | 72 ms |
//!
//! (`tests/membership_sim.rs`, `benches/gossip.rs`, `ferrolb-lab bench failover --mode
//! crash`, where keepalived at 100 ms adverts measured p99 340 ms in the same run.) The
//! earlier 50 ms period with 150 ms suspicion measured p99 312–360 ms: no better than
//! VRRP. What the speed costs in robustness: a live speaker is wrongly declared down
//! if it answers nothing (no direct, no indirect `Ack`, no refutation) for about probe
//! period + suspicion = 30 ms; it then rejoins at once under a renewed identity (see
//! [`super::identity`]), so a stall that long moves its IPs and back. Where speakers can
//! be starved of CPU that long, `--gossip-probe-interval` and `--gossip-suspicion`
//! ([`Tuning::with_probe`]) buy tolerance with detection time.
//!
//! A graceful leave is told to every member directly: peers drop the node within a
//! millisecond (loopback: p99 1 ms).
//!
//! # Traffic
//!
//! It does not grow with the cluster: in steady state each speaker sends one `Ping` per
//! probe period and answers on average one, 2 datagrams per period. A datagram is
//! the 51-byte envelope ([`super::auth`]) plus foca's header, which carries two
//! identities (name, address, bump): 102 bytes with 6-letter node names, plus 2 bytes
//! per extra letter of node name. Gossip is only sent when there is news. Measured on
//! loopback, per node, for N = 3, 4, …, 10 alike, with the defaults: 180 datagrams/s
//! (timer granularity keeps it under the nominal 200), 18.4 KB/s of UDP payload,
//! 23.4 KB/s on the wire (IPv4) in each direction: about 0.2 Mbit/s. With a 50 ms
//! period: 40 datagrams/s, 5.1 KB/s on the wire. Announces add one exchange per [`Tuning::announce_period`]
//! whose reply lists up to every member (about 40 bytes each), the only term that grows
//! with N, and seeds that are not live get one small announce per
//! [`Tuning::rejoin_period`].

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::{Config, PeriodicParams};

use super::auth::OVERHEAD;

/// Why a [`Tuning`] cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TuningError {
    /// A duration or count that must be positive is zero.
    #[error("gossip tuning: {0} must not be zero")]
    Zero(&'static str),
    /// `probe_rtt` does not leave room for the indirect probe in the period.
    #[error("gossip tuning: probe_rtt must be less than half of probe_period")]
    RttTooLong,
    /// `max_datagram` leaves no room for foca after the envelope.
    #[error("gossip tuning: max_datagram must be at least {min} bytes")]
    DatagramTooSmall {
        /// The smallest accepted value.
        min: usize,
    },
}

/// The SWIM knobs, in the units people reason in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// One member is probed per period.
    pub probe_period: Duration,
    /// How long a direct `Ping` waits for its `Ack` before others are asked to try. The
    /// rest of the period is for the indirect round trip, hence `< probe_period / 2`.
    pub probe_rtt: Duration,
    /// Members asked to ping an unresponsive target for us (catches one lossy path).
    pub num_indirect_probes: usize,
    /// How long a suspect has to refute before it is declared down.
    pub suspect_to_down_after: Duration,
    /// How often pending news (suspect, down, joined) is pushed, if there is any.
    pub gossip_period: Duration,
    /// Members the news is pushed to each time.
    pub gossip_fanout: usize,
    /// How many times one piece of news is sent in total (a graceful leave is sent to
    /// every member regardless).
    pub max_transmissions: u8,
    /// How often one random member is asked for its member list (finds members that
    /// joined through someone else).
    pub announce_period: Duration,
    /// How often seeds that are not live members are announced to again (heals
    /// partitions, catches speakers that started after us). Also how often members
    /// known to be down are.
    pub rejoin_period: Duration,
    /// Largest datagram sent or accepted, envelope included: below the path MTU.
    pub max_datagram: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self::lan()
    }
}

impl Tuning {
    /// Sub-second detection on a LAN (sub-millisecond RTT, no loss to speak of).
    pub fn lan() -> Self {
        Self::with_probe(Duration::from_millis(10), Duration::from_millis(20))
    }

    /// The LAN tuning with another probe period and suspicion time: the two knobs that
    /// trade detection time against traffic and against tolerance of a stalled speaker
    /// (`--gossip-probe-interval`, `--gossip-suspicion`). The direct probe waits 40% of
    /// the period, leaving the rest for the indirect round trip, and news goes out twice
    /// per period.
    pub fn with_probe(probe_period: Duration, suspect_to_down_after: Duration) -> Self {
        Self {
            probe_period,
            probe_rtt: probe_period * 2 / 5,
            num_indirect_probes: 3,
            suspect_to_down_after,
            gossip_period: probe_period / 2,
            gossip_fanout: 3,
            max_transmissions: 8,
            announce_period: Duration::from_secs(10),
            rejoin_period: Duration::from_secs(2),
            max_datagram: 1400,
        }
    }

    /// The foca configuration this tuning stands for.
    pub fn to_foca(&self) -> Result<Config, TuningError> {
        let nz = |v: usize, what| NonZeroUsize::new(v).ok_or(TuningError::Zero(what));
        let positive = |d: Duration, what| {
            if d.is_zero() {
                Err(TuningError::Zero(what))
            } else {
                Ok(d)
            }
        };
        positive(self.probe_period, "probe_period")?;
        positive(self.probe_rtt, "probe_rtt")?;
        positive(self.suspect_to_down_after, "suspect_to_down_after")?;
        positive(self.gossip_period, "gossip_period")?;
        positive(self.announce_period, "announce_period")?;
        positive(self.rejoin_period, "rejoin_period")?;
        if self.probe_rtt * 2 >= self.probe_period {
            return Err(TuningError::RttTooLong);
        }
        // Room for a header with two long node names and a few updates.
        let min = OVERHEAD + 512;
        if self.max_datagram < min {
            return Err(TuningError::DatagramTooSmall { min });
        }
        Ok(Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: nz(self.num_indirect_probes, "num_indirect_probes")?,
            max_transmissions: NonZeroU8::new(self.max_transmissions)
                .ok_or(TuningError::Zero("max_transmissions"))?,
            suspect_to_down_after: self.suspect_to_down_after,
            // Never forget an address: a restarted speaker still wins by its larger bump,
            // and memory is bounded by the number of nodes that ever existed.
            remove_down_after: None,
            max_packet_size: nz(self.max_datagram - OVERHEAD, "max_datagram")?,
            // A speaker wrongly declared down learns it at once and rejoins under a
            // renewed identity instead of waiting for a probe it will never get.
            notify_down_members: true,
            periodic_announce: Some(PeriodicParams {
                frequency: self.announce_period,
                num_members: NonZeroUsize::MIN,
            }),
            periodic_announce_to_down_members: Some(PeriodicParams {
                frequency: self.rejoin_period,
                num_members: NonZeroUsize::MIN,
            }),
            periodic_gossip: Some(PeriodicParams {
                frequency: self.gossip_period,
                num_members: nz(self.gossip_fanout, "gossip_fanout")?,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_defaults_are_valid() {
        let c = Tuning::lan().to_foca().unwrap();
        assert_eq!(c.max_packet_size.get(), 1400 - OVERHEAD);
    }

    #[test]
    fn nonsense_is_refused() {
        let t = Tuning {
            probe_rtt: Duration::from_millis(25),
            ..Tuning::lan()
        };
        assert_eq!(t.to_foca().unwrap_err(), TuningError::RttTooLong);
        let t = Tuning {
            gossip_fanout: 0,
            ..Tuning::lan()
        };
        assert_eq!(t.to_foca().unwrap_err(), TuningError::Zero("gossip_fanout"));
        let t = Tuning {
            max_datagram: 100,
            ..Tuning::lan()
        };
        assert!(matches!(
            t.to_foca(),
            Err(TuningError::DatagramTooSmall { .. })
        ));
    }
}
