//! The speaker's Prometheus metrics, read from the live counters of the announcers and
//! the gossip membership on every scrape, and the `/readyz` flag.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `ferrolb_speaker_announced_ips` | gauge | `mode`, `family` | addresses this node announces: `mode="layer2"` (on an interface), `mode="bgp"` (meant for at least one peer) |
//! | `ferrolb_layer2_arp_requests_received_total` | counter | `interface` | ARP requests for an address announced here |
//! | `ferrolb_layer2_arp_requests_answered_total` | counter | `interface` | ARP replies sent to them |
//! | `ferrolb_layer2_ndp_solicitations_received_total` | counter | `interface` | Neighbor Solicitations for an address announced here |
//! | `ferrolb_layer2_ndp_solicitations_answered_total` | counter | `interface` | Neighbor Advertisements sent to them |
//! | `ferrolb_layer2_gratuitous_sent_total` | counter | `interface` | gratuitous ARP frames (two per IPv4 round) and unsolicited Neighbor Advertisements |
//! | `ferrolb_layer2_conflicts_total` | counter | `interface` | ARP packets from another station claiming an address announced here |
//! | `ferrolb_layer2_errors_total` | counter | `interface`, `kind` | `send`, `receive`, `multicast` (solicited-node group join/leave), `invalid_frame` |
//! | `ferrolb_speaker_gossip_enabled` | gauge | | 1 when gossip runs; 0 when it is off and Node readiness alone decides who is alive |
//! | `ferrolb_speaker_gossip_members` | gauge | `state` | other members `alive`, `suspect`, `down` (gossip on only) |
//! | `ferrolb_speaker_gossip_dropped_total` | counter | `reason` | datagrams dropped: `unauthenticated` (bad or no tag), `replayed` (gossip on only) |
//! | `ferrolb_speaker_failovers_total` | counter | | addresses taken over from a failed node ([`crate::takeover`]) |
//! | `ferrolb_bgp_session_up` | gauge | `peer` | 1 while the session with the BGPPeer is Established |
//! | `ferrolb_bgp_session_state` | gauge | `peer`, `state` | 1 for the session's RFC 4271 state (`Idle` … `Established`), 0 for the others |
//! | `ferrolb_bgp_sessions_established_total` | counter | `peer` | times the session reached Established |
//! | `ferrolb_bgp_messages_sent_total` | counter | `peer` | BGP messages sent |
//! | `ferrolb_bgp_messages_received_total` | counter | `peer` | BGP messages received |
//! | `ferrolb_bgp_updates_sent_total` | counter | `peer` | UPDATE messages sent |
//! | `ferrolb_bgp_updates_received_total` | counter | `peer` | UPDATE messages received (never imported) |
//! | `ferrolb_bgp_announced_prefixes` | gauge | `peer` | prefixes the peer holds from this node |
//! | `ferrolb_bgp_notifications_sent_total` | counter | `peer`, `code`, `subcode` | NOTIFICATIONs sent (RFC 4271 §4.5 numbers) |
//! | `ferrolb_bgp_notifications_received_total` | counter | `peer`, `code`, `subcode` | NOTIFICATIONs received |
//! | `ferrolb_speaker_bfd_session_up` | gauge | `peer` | 1 while the BFD session with the BGPPeer is Up (sessions with a BFD profile only) |
//! | `ferrolb_speaker_bfd_session_downs_total` | counter | `peer` | times the BFD session went from Up to Down, each closing the BGP session |
//!
//! Layer2 counters are kept per interface for the life of the process: an interface
//! whose announcer stops and starts again goes on counting. BGP series exist for the
//! sessions running at scrape time and are read from them; a session restarted because
//! its BGPPeer changed starts from zero (a counter reset, which `rate()` handles).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ferrolb_observe::{Exposition, Readiness};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::bgp::session::{NotificationCount, SessionStatus};
use crate::l2::announcer::{CounterSnapshot as L2Snapshot, Counters as L2Counters};
use crate::membership::CounterSnapshot as GossipSnapshot;

/// How an address is announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Layer2,
    Bgp,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Layer2 => "layer2",
            Mode::Bgp => "bgp",
        }
    }
}

type GossipSource = Box<dyn Fn() -> GossipSnapshot + Send + Sync>;
/// Reads the BGP sessions' statuses.
pub type BgpSource = Box<dyn Fn() -> Vec<SessionStatus> + Send + Sync>;

/// The RFC 4271 states, for `ferrolb_bgp_session_state`.
const BGP_STATES: [&str; 6] = [
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
];

/// Every metric of the speaker, and its readiness. Shared (`Arc`) between the main
/// loop, the data plane and the HTTP server.
pub struct Metrics {
    registry: Registry,
    state: Arc<State>,
    readiness: Readiness,
}

#[derive(Default)]
struct State {
    l2: Mutex<BTreeMap<String, Arc<L2Counters>>>,
    /// (mode, is IPv6) → addresses announced.
    announced: Mutex<BTreeMap<(Mode, bool), u64>>,
    /// -1 until the main loop knows, then 0 or 1.
    gossip_enabled: AtomicI64,
    gossip: Mutex<Option<GossipSource>>,
    failovers: AtomicU64,
    bgp: Mutex<Option<BgpSource>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain counters;
/// the data is still worth showing.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let state = Arc::new(State {
            gossip_enabled: AtomicI64::new(-1),
            ..State::default()
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collect(Arc::clone(&state))));
        Metrics {
            registry,
            state,
            readiness: Readiness::default(),
        }
    }

    /// The counters of `interface`'s announcer, created on first use.
    pub fn l2_counters(&self, interface: &str) -> Arc<L2Counters> {
        Arc::clone(
            lock(&self.state.l2)
                .entry(interface.to_string())
                .or_default(),
        )
    }

    /// Replaces the number of addresses announced in `mode`.
    pub fn set_announced<'a>(&self, mode: Mode, ips: impl IntoIterator<Item = &'a IpAddr>) {
        let (mut v4, mut v6) = (0u64, 0u64);
        for ip in ips {
            if ip.is_ipv4() {
                v4 += 1;
            } else {
                v6 += 1;
            }
        }
        let mut a = lock(&self.state.announced);
        a.insert((mode, false), v4);
        a.insert((mode, true), v6);
    }

    /// Gossip runs and `source` reads its counters; `None`: gossip is off.
    pub fn set_gossip(&self, source: Option<GossipSource>) {
        self.state
            .gossip_enabled
            .store(i64::from(source.is_some()), Ordering::Relaxed);
        *lock(&self.state.gossip) = source;
    }

    /// `source` reads the BGP sessions on every scrape (`None`: no BGP series).
    pub fn set_bgp(&self, source: Option<BgpSource>) {
        *lock(&self.state.bgp) = source;
    }

    pub fn failovers(&self, n: usize) {
        self.state
            .failovers
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The `/readyz` flag.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        ferrolb_observe::encode(&self.registry)
    }
}

impl Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

#[derive(Debug)]
struct Collect(Arc<State>);

/// One metric family: its descriptor, then one value per label set.
fn family<'l>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    values: impl IntoIterator<Item = (Vec<(&'l str, String)>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in values {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let m = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(value).encode(m)?,
            _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(m)?,
        }
    }
    Ok(())
}

/// One metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    match metric_type {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric),
    }
}

impl Collector for Collect {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let announced: Vec<_> = lock(&state.announced)
            .iter()
            .map(|(&(mode, v6), &n)| {
                let family = if v6 { "ipv6" } else { "ipv4" };
                (
                    vec![
                        ("mode", mode.label().to_string()),
                        ("family", family.into()),
                    ],
                    n,
                )
            })
            .collect();
        family(
            &mut encoder,
            "ferrolb_speaker_announced_ips",
            "Addresses this node announces, per mode and family",
            MetricType::Gauge,
            announced,
        )?;

        let l2: Vec<(String, L2Snapshot)> = lock(&state.l2)
            .iter()
            .map(|(name, c)| (name.clone(), c.snapshot()))
            .collect();
        let per_interface = |get: fn(&L2Snapshot) -> u64| {
            l2.iter()
                .map(move |(name, s)| (vec![("interface", name.clone())], get(s)))
        };
        for (name, help, get) in [
            (
                "ferrolb_layer2_arp_requests_received",
                "ARP requests received for an address announced here",
                (|s| s.arp_requests_received) as fn(&L2Snapshot) -> u64,
            ),
            (
                "ferrolb_layer2_arp_requests_answered",
                "ARP replies sent for an address announced here",
                |s| s.arp_requests_answered,
            ),
            (
                "ferrolb_layer2_ndp_solicitations_received",
                "Neighbor Solicitations received for an address announced here",
                |s| s.ns_received,
            ),
            (
                "ferrolb_layer2_ndp_solicitations_answered",
                "Neighbor Advertisements sent in answer to a solicitation",
                |s| s.ns_answered,
            ),
            (
                "ferrolb_layer2_gratuitous_sent",
                "Gratuitous ARP frames (two per IPv4 round) and unsolicited Neighbor Advertisements sent",
                |s| s.gratuitous_sent,
            ),
            (
                "ferrolb_layer2_conflicts",
                "ARP packets from another station claiming an address announced here",
                |s| s.conflicts,
            ),
        ] {
            family(
                &mut encoder,
                name,
                help,
                MetricType::Counter,
                per_interface(get),
            )?;
        }
        let errors = l2.iter().flat_map(|(name, s)| {
            [
                ("send", s.send_errors),
                ("receive", s.recv_errors),
                ("multicast", s.membership_errors),
                ("invalid_frame", s.frames_invalid),
            ]
            .map(|(kind, n)| {
                (
                    vec![("interface", name.clone()), ("kind", kind.to_string())],
                    n,
                )
            })
        });
        family(
            &mut encoder,
            "ferrolb_layer2_errors",
            "Layer2 errors: send, receive, multicast (solicited-node groups), invalid_frame",
            MetricType::Counter,
            errors,
        )?;

        let enabled = state.gossip_enabled.load(Ordering::Relaxed);
        if enabled >= 0 {
            single(
                &mut encoder,
                "ferrolb_speaker_gossip_enabled",
                "1 when gossip membership runs; 0 when it is off and Node readiness alone decides who is alive",
                MetricType::Gauge,
                u64::try_from(enabled).unwrap_or(0),
            )?;
        }
        let gossip = lock(&state.gossip).as_ref().map(|read| read());
        if let Some(g) = gossip {
            family(
                &mut encoder,
                "ferrolb_speaker_gossip_members",
                "Other gossip members by state",
                MetricType::Gauge,
                [
                    ("alive", g.members_alive),
                    ("suspect", g.members_suspect),
                    ("down", g.members_down),
                ]
                .map(|(s, n)| (vec![("state", s.to_string())], n)),
            )?;
            family(
                &mut encoder,
                "ferrolb_speaker_gossip_dropped",
                "Gossip datagrams dropped: unauthenticated (bad or missing tag), replayed",
                MetricType::Counter,
                [
                    ("unauthenticated", g.dropped_unauthenticated),
                    ("replayed", g.dropped_replayed),
                ]
                .map(|(r, n)| (vec![("reason", r.to_string())], n)),
            )?;
        }
        single(
            &mut encoder,
            "ferrolb_speaker_failovers",
            "Addresses this node took over from a node that failed (not one that left cleanly)",
            MetricType::Counter,
            state.failovers.load(Ordering::Relaxed),
        )?;
        let sessions = lock(&state.bgp).as_ref().map(|read| read());
        if let Some(sessions) = sessions {
            encode_bgp(&mut encoder, &sessions)?;
        }
        Ok(())
    }
}

/// The BGP families, one series per session (and state or NOTIFICATION code).
fn encode_bgp(
    encoder: &mut DescriptorEncoder,
    sessions: &[SessionStatus],
) -> Result<(), std::fmt::Error> {
    let peer = |s: &SessionStatus| vec![("peer", s.peer.clone())];
    family(
        encoder,
        "ferrolb_bgp_session_up",
        "1 while the BGP session with the peer is Established",
        MetricType::Gauge,
        sessions
            .iter()
            .map(|s| (peer(s), u64::from(s.state == "Established"))),
    )?;
    family(
        encoder,
        "ferrolb_bgp_session_state",
        "1 for the BGP session's current RFC 4271 state, 0 for the others",
        MetricType::Gauge,
        sessions.iter().flat_map(|s| {
            BGP_STATES.map(|state| {
                (
                    vec![("peer", s.peer.clone()), ("state", state.to_string())],
                    u64::from(s.state == state),
                )
            })
        }),
    )?;
    for (name, help, metric_type, get) in [
        (
            "ferrolb_bgp_sessions_established",
            "Times the BGP session reached Established",
            MetricType::Counter,
            (|s| s.established_count) as fn(&SessionStatus) -> u64,
        ),
        (
            "ferrolb_bgp_messages_sent",
            "BGP messages sent to the peer",
            MetricType::Counter,
            |s| s.messages_sent,
        ),
        (
            "ferrolb_bgp_messages_received",
            "BGP messages received from the peer",
            MetricType::Counter,
            |s| s.messages_received,
        ),
        (
            "ferrolb_bgp_updates_sent",
            "BGP UPDATE messages sent to the peer",
            MetricType::Counter,
            |s| s.updates_sent,
        ),
        (
            "ferrolb_bgp_updates_received",
            "BGP UPDATE messages received from the peer (validated, never imported)",
            MetricType::Counter,
            |s| s.updates_received,
        ),
        (
            "ferrolb_bgp_announced_prefixes",
            "Prefixes the peer holds from this node",
            MetricType::Gauge,
            |s| u64::try_from(s.advertised.len()).unwrap_or(u64::MAX),
        ),
    ] {
        family(
            encoder,
            name,
            help,
            metric_type,
            sessions.iter().map(|s| (peer(s), get(s))),
        )?;
    }
    for (name, help, get) in [
        (
            "ferrolb_bgp_notifications_sent",
            "BGP NOTIFICATIONs sent, by code and subcode",
            (|s| &s.notifications_sent) as fn(&SessionStatus) -> &Vec<NotificationCount>,
        ),
        (
            "ferrolb_bgp_notifications_received",
            "BGP NOTIFICATIONs received, by code and subcode",
            |s| &s.notifications_received,
        ),
    ] {
        family(
            encoder,
            name,
            help,
            MetricType::Counter,
            sessions.iter().flat_map(|s| {
                get(s).iter().map(|n| {
                    (
                        vec![
                            ("peer", s.peer.clone()),
                            ("code", n.code.to_string()),
                            ("subcode", n.subcode.to_string()),
                        ],
                        n.count,
                    )
                })
            }),
        )?;
    }
    let with_bfd: Vec<&SessionStatus> = sessions.iter().filter(|s| s.bfd.is_some()).collect();
    if !with_bfd.is_empty() {
        family(
            encoder,
            "ferrolb_speaker_bfd_session_up",
            "1 while the BFD session with the peer is Up",
            MetricType::Gauge,
            with_bfd
                .iter()
                .map(|s| (peer(s), u64::from(s.bfd.as_deref() == Some("up")))),
        )?;
        family(
            encoder,
            "ferrolb_speaker_bfd_session_downs",
            "Times the BFD session went from Up to Down (each closed the BGP session)",
            MetricType::Counter,
            with_bfd.iter().map(|s| (peer(s), s.bfd_downs)),
        )?;
    }
    Ok(())
}

/// The value of one sample in a scrape, for tests and benches: `key` is the metric name
/// and labels as written (see [`key`]), e.g. `ferrolb_speaker_failovers_total`.
pub fn sample(text: &str, key: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == key).then(|| value.parse().ok()).flatten()
    })
}

/// Writes `labels` as Prometheus does, for building [`sample`] keys.
pub fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut out = name.to_string();
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_live_values() {
        let m = Metrics::new();
        let text = m.encode();
        // Nothing is known yet: no gossip gauge, no interface.
        assert!(!text.contains("gossip_enabled"), "{text}");
        assert!(!text.contains("interface="), "{text}");
        assert_eq!(sample(&text, "ferrolb_speaker_failovers_total"), Some(0.0));

        let eth0 = m.l2_counters("eth0");
        eth0.arp_requests_received.fetch_add(3, Ordering::Relaxed);
        eth0.ns_answered.fetch_add(2, Ordering::Relaxed);
        // The same counters come back for the same interface.
        m.l2_counters("eth0")
            .arp_requests_received
            .fetch_add(1, Ordering::Relaxed);
        let ips: Vec<IpAddr> = ["198.51.100.1", "198.51.100.2", "2001:db8::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        m.set_announced(Mode::Layer2, &ips);
        m.set_gossip(None);
        m.failovers(2);

        let text = m.encode();
        let get = |name: &str, labels: &[(&str, &str)]| sample(&text, &key(name, labels));
        assert_eq!(
            get(
                "ferrolb_layer2_arp_requests_received_total",
                &[("interface", "eth0")]
            ),
            Some(4.0),
            "{text}"
        );
        assert_eq!(
            get(
                "ferrolb_layer2_ndp_solicitations_answered_total",
                &[("interface", "eth0")]
            ),
            Some(2.0)
        );
        assert_eq!(
            get(
                "ferrolb_layer2_errors_total",
                &[("interface", "eth0"), ("kind", "send")]
            ),
            Some(0.0)
        );
        assert_eq!(
            get(
                "ferrolb_speaker_announced_ips",
                &[("mode", "layer2"), ("family", "ipv4")]
            ),
            Some(2.0)
        );
        assert_eq!(
            get(
                "ferrolb_speaker_announced_ips",
                &[("mode", "layer2"), ("family", "ipv6")]
            ),
            Some(1.0)
        );
        assert_eq!(get("ferrolb_speaker_gossip_enabled", &[]), Some(0.0));
        assert!(!text.contains("gossip_members"), "{text}");
        assert_eq!(get("ferrolb_speaker_failovers_total", &[]), Some(2.0));
        assert!(text.ends_with("# EOF\n"));

        m.set_gossip(Some(Box::new(|| GossipSnapshot {
            members_alive: 2,
            members_suspect: 1,
            dropped_unauthenticated: 7,
            ..GossipSnapshot::default()
        })));
        let text = m.encode();
        let get = |name: &str, labels: &[(&str, &str)]| sample(&text, &key(name, labels));
        assert_eq!(get("ferrolb_speaker_gossip_enabled", &[]), Some(1.0));
        assert_eq!(
            get("ferrolb_speaker_gossip_members", &[("state", "suspect")]),
            Some(1.0)
        );
        assert_eq!(
            get(
                "ferrolb_speaker_gossip_dropped_total",
                &[("reason", "unauthenticated")]
            ),
            Some(7.0),
            "{text}"
        );
    }

    #[test]
    fn bfd_series_exist_for_sessions_with_bfd_only() {
        let m = Metrics::new();
        m.set_bgp(Some(Box::new(|| {
            vec![
                SessionStatus {
                    peer: "plain".into(),
                    ..SessionStatus::default()
                },
                SessionStatus {
                    peer: "fast".into(),
                    bfd: Some("up".into()),
                    bfd_downs: 2,
                    ..SessionStatus::default()
                },
                SessionStatus {
                    peer: "lost".into(),
                    bfd: Some("down".into()),
                    ..SessionStatus::default()
                },
            ]
        })));
        let text = m.encode();
        let get = |name: &str, peer: &str| sample(&text, &key(name, &[("peer", peer)]));
        assert_eq!(get("ferrolb_speaker_bfd_session_up", "fast"), Some(1.0));
        assert_eq!(get("ferrolb_speaker_bfd_session_up", "lost"), Some(0.0));
        assert_eq!(
            get("ferrolb_speaker_bfd_session_up", "plain"),
            None,
            "{text}"
        );
        assert_eq!(
            get("ferrolb_speaker_bfd_session_downs_total", "fast"),
            Some(2.0)
        );
        m.set_bgp(Some(Box::new(Vec::new)));
        assert!(!m.encode().contains("bfd"), "no BFD session, no BFD series");
    }

    #[test]
    fn bgp_series_come_from_the_sessions_at_scrape_time() {
        let m = Metrics::new();
        assert!(!m.encode().contains("ferrolb_bgp_"), "no source, no series");

        let state = Arc::new(Mutex::new("Active".to_string()));
        let read = Arc::clone(&state);
        m.set_bgp(Some(Box::new(move || {
            vec![
                SessionStatus {
                    peer: "router".into(),
                    state: lock(&read).clone(),
                    advertised: crate::bgp::rib::Prefixes::new([
                        "203.0.113.5/32".parse().unwrap(),
                        "203.0.113.6/32".parse().unwrap(),
                    ]),
                    established_count: 2,
                    messages_sent: 40,
                    messages_received: 31,
                    updates_sent: 5,
                    updates_received: 3,
                    notifications_sent: vec![NotificationCount {
                        code: 6,
                        subcode: 2,
                        count: 1,
                    }],
                    notifications_received: vec![NotificationCount {
                        code: 4,
                        subcode: 0,
                        count: 2,
                    }],
                    ..SessionStatus::default()
                },
                SessionStatus {
                    peer: "backup".into(),
                    state: "Established".into(),
                    ..SessionStatus::default()
                },
            ]
        })));
        let ips: Vec<IpAddr> = ["203.0.113.5", "2001:db8::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        m.set_announced(Mode::Bgp, &ips);

        let text = m.encode();
        let get = |name: &str, labels: &[(&str, &str)]| sample(&text, &key(name, labels));
        let router = [("peer", "router")];
        assert_eq!(get("ferrolb_bgp_session_up", &router), Some(0.0), "{text}");
        assert_eq!(
            get("ferrolb_bgp_session_up", &[("peer", "backup")]),
            Some(1.0)
        );
        assert_eq!(
            get(
                "ferrolb_bgp_session_state",
                &[("peer", "router"), ("state", "Active")]
            ),
            Some(1.0)
        );
        assert_eq!(
            get(
                "ferrolb_bgp_session_state",
                &[("peer", "router"), ("state", "Established")]
            ),
            Some(0.0)
        );
        for (name, value) in [
            ("ferrolb_bgp_sessions_established_total", 2.0),
            ("ferrolb_bgp_messages_sent_total", 40.0),
            ("ferrolb_bgp_messages_received_total", 31.0),
            ("ferrolb_bgp_updates_sent_total", 5.0),
            ("ferrolb_bgp_updates_received_total", 3.0),
            ("ferrolb_bgp_announced_prefixes", 2.0),
        ] {
            assert_eq!(get(name, &router), Some(value), "{name}: {text}");
        }
        assert_eq!(
            get(
                "ferrolb_bgp_notifications_sent_total",
                &[("peer", "router"), ("code", "6"), ("subcode", "2")]
            ),
            Some(1.0)
        );
        assert_eq!(
            get(
                "ferrolb_bgp_notifications_received_total",
                &[("peer", "router"), ("code", "4"), ("subcode", "0")]
            ),
            Some(2.0)
        );
        assert_eq!(
            get(
                "ferrolb_bgp_notifications_sent_total",
                &[("peer", "backup"), ("code", "6"), ("subcode", "2")]
            ),
            None,
            "no series for a NOTIFICATION never sent"
        );
        assert_eq!(
            get(
                "ferrolb_speaker_announced_ips",
                &[("mode", "bgp"), ("family", "ipv6")]
            ),
            Some(1.0)
        );

        // Read live: a change shows at the next scrape.
        *lock(&state) = "Established".into();
        let text = m.encode();
        assert_eq!(
            sample(&text, &key("ferrolb_bgp_session_up", &router)),
            Some(1.0)
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
