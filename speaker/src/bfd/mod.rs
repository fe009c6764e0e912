//! BFD (RFC 5880) for BGP sessions: single-hop (RFC 5881) and multi-hop (RFC 5883), in
//! asynchronous mode, without echo or authentication. A BGPPeer naming a `BFDProfile`
//! gets a BFD session with its router; when it goes from Up to Down the BGP session is
//! closed at once (Cease / BFD Down, RFC 9384) instead of waiting for the hold timer.
//!
//! - [`packet`]: Control packets on the wire, and the checks a received one must pass;
//! - [`fsm`]: the session state machine, sans-IO;
//! - [`socket`]: UDP sockets with TTL / hop limit 255 out and the received TTL read in;
//! - [`driver`]: the tokio tasks moving packets and time for the state machine, and the
//!   shared receive sockets that hand each packet to its session;
//! - here: a `BFDProfile` resolved into what a session runs with ([`Profile`]).

pub mod driver;
pub mod fsm;
pub mod packet;
pub mod socket;

use std::time::Duration;

use ferrolb_crds::BFDProfileSpec;

/// Port of single-hop Control packets (RFC 5881).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// Port of multi-hop Control packets (RFC 5883).
pub const MULTI_HOP_PORT: u16 = 4784;
/// MetalLB's default `minimumTtl` for multi-hop sessions.
pub const DEFAULT_MINIMUM_TTL: u8 = 254;

/// A `BFDProfile`, resolved: what a BFD session runs with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    pub name: String,
    pub timers: fsm::Config,
    /// Multi-hop only: received packets need at least this TTL.
    pub minimum_ttl: u8,
}

impl Profile {
    /// Reads a profile; values outside MetalLB's ranges (a standalone file bypasses the
    /// CRD schema) are brought into them, each with a warning in `warnings`, and so is
    /// echo mode, which is not supported.
    pub fn from_crd(name: &str, spec: &BFDProfileSpec, warnings: &mut Vec<String>) -> Profile {
        let mut bounded = |field: &str, value: Option<u32>, default: u32, min: u32, max: u32| {
            let v = value.unwrap_or(default);
            let b = v.clamp(min, max);
            if b != v {
                warnings.push(format!("{field} {v} is outside {min}..={max}; {b} is used"));
            }
            b
        };
        let tx = bounded("transmitInterval", spec.transmit_interval, 300, 10, 60_000);
        let rx = bounded("receiveInterval", spec.receive_interval, 300, 10, 60_000);
        let mult = bounded("detectMultiplier", spec.detect_multiplier, 3, 2, 255);
        let ttl = bounded(
            "minimumTtl",
            spec.minimum_ttl,
            DEFAULT_MINIMUM_TTL.into(),
            1,
            254,
        );
        if spec.echo_mode == Some(true) {
            warnings.push(
                "echoMode is not supported: the session runs without echo (control packets only)"
                    .into(),
            );
        }
        Profile {
            name: name.to_string(),
            timers: fsm::Config {
                desired_min_tx: Duration::from_millis(tx.into()),
                required_min_rx: Duration::from_millis(rx.into()),
                detect_mult: u8::try_from(mult).unwrap_or(u8::MAX),
                passive: spec.passive_mode.unwrap_or(false),
            },
            minimum_ttl: u8::try_from(ttl).unwrap_or(DEFAULT_MINIMUM_TTL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_profile_defaults_follow_metallb() {
        let mut w = Vec::new();
        let p = Profile::from_crd("p", &BFDProfileSpec::default(), &mut w);
        assert!(w.is_empty());
        assert_eq!(p.timers, fsm::Config::default());
        assert_eq!(p.minimum_ttl, 254);
    }

    #[test]
    fn bfd_profile_out_of_range_and_echo_are_warned() {
        let mut w = Vec::new();
        let spec = BFDProfileSpec {
            receive_interval: Some(5),
            transmit_interval: Some(100),
            detect_multiplier: Some(1000),
            echo_mode: Some(true),
            passive_mode: Some(true),
            minimum_ttl: Some(0),
            ..Default::default()
        };
        let p = Profile::from_crd("p", &spec, &mut w);
        assert_eq!(p.timers.required_min_rx, Duration::from_millis(10));
        assert_eq!(p.timers.desired_min_tx, Duration::from_millis(100));
        assert_eq!(p.timers.detect_mult, 255);
        assert!(p.timers.passive);
        assert_eq!(p.minimum_ttl, 1);
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w.iter().any(|m| m.contains("echoMode")));
    }
}
