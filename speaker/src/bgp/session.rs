//! The tokio driver of BGP sessions: one task per configured peer moves bytes and time
//! for the sans-IO state machine ([`super::fsm`]) and does nothing else of its own
//! judgement. It dials (through [`super::socket`]), frames and decodes what arrives
//! ([`super::codec`]; a decode error is handed to the FSM, which picks the
//! NOTIFICATION), keeps the FSM's timers, writes what it says, and once Established sends
//! the peer's Adj-RIB-Out ([`super::rib`]) followed by End-of-RIB, then every change of
//! it as it comes (a `watch` channel per peer), and all of it again on ROUTE-REFRESH.
//!
//! A session holds at most two connections: its own, and one the peer opened while ours
//! was being set up (collision, RFC 4271 §6.8); [`super::fsm::resolve_collision`] picks
//! the one that stays.
//!
//! A peer with a BFD profile also gets a BFD session ([`crate::bfd`]) for the life of
//! the BGP session's task; its going from Up to Down closes the BGP session at once
//! ([`Event::BfdDown`]).
//!
//! The [`Manager`] reconciles the set of sessions with the peers resolved for this node
//! (added, removed or changed: start, stop, restart), owns the passive listener that
//! hands accepted connections to the sessions, and exposes each session's state and
//! counts ([`SessionStatus`]).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::codec::{self, Context};
use super::config::{PeerAsn as ConfiguredAsn, SessionConfig};
use super::fsm::{
    self, Action, Collision, Connection, Direction, Event, Family, Fsm, GracefulRestartConfig,
    Incoming, PeerAsn, Speaker, State, Timer,
};
use super::message::notify::cease;
use super::message::{Afi, Message, Notification, Safi, Update};
use super::rib::{self, AdjRibOut, RibDiff, SessionParams};
use super::socket::{self, Dial, Listener, Md5Key};
use crate::bfd;
use ferrolb_crds::bgp::DynamicAsn;

/// Restart time announced with graceful restart (RFC 4724): how long the router keeps
/// our routes while the speaker restarts. FRR's default.
pub const GRACEFUL_RESTART_TIME: u16 = 120;
/// The first wait before reconnecting (it doubles up to the peer's `connectTime`).
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long a TCP connect may take before it counts as failed (the FSM's connect retry
/// timer usually replaces the attempt earlier).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one write may block before the connection is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping session waits for its last NOTIFICATION to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What a session is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSpec {
    /// The BGPPeer's name.
    pub name: String,
    pub config: SessionConfig,
    /// The node's own addresses: the router ID when neither `routerID` nor an IPv4
    /// source address gives one, and the next hop of the family the session's own
    /// addresses cannot give (IPv6 routes over an IPv4 session and vice versa).
    pub node_v4: Option<Ipv4Addr>,
    pub node_v6: Option<Ipv6Addr>,
}

/// How a session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// NOTIFICATION Cease with this subcode (RFC 4486: administrative shutdown, peer
    /// de-configured, other configuration change), then close: the router withdraws our
    /// routes at once.
    Cease(u8),
    /// Close without a NOTIFICATION: with graceful restart the router keeps our routes
    /// for the restart time.
    Close,
}

/// One session as people (and the lab) see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The BGPPeer's name.
    pub peer: String,
    /// `address:port` of the peer.
    pub address: String,
    /// RFC 4271 state (`Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`,
    /// `Established`).
    pub state: String,
    /// Our end of the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    /// The peer's AS and BGP identifier, once its OPEN was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_router_id: Option<String>,
    /// The prefixes the peer holds from us.
    pub advertised: rib::Prefixes,
    /// Prefixes that could not be sent, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsendable: Vec<String>,
    /// Times the session reached Established.
    pub established_count: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub updates_sent: u64,
    /// UPDATEs received (validated and dropped: nothing is imported), including those
    /// treated as withdraw (RFC 7606).
    pub updates_received: u64,
    /// NOTIFICATIONs sent and received, by code and subcode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications_sent: Vec<NotificationCount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications_received: Vec<NotificationCount>,
    /// Why the last session ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_down: Option<String>,
    /// The last thing that went wrong short of a session (connect failures, bad config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The BFD session's state (`admin-down`, `down`, `init`, `up`); `None`: no BFD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
    /// Times the BFD session went from Up to Down (each closed the BGP session).
    #[serde(skip_serializing_if = "is_zero")]
    pub bfd_downs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many NOTIFICATIONs of one code and subcode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NotificationCount {
    pub code: u8,
    pub subcode: u8,
    pub count: u64,
}

fn notification_counts(m: &BTreeMap<(u8, u8), u64>) -> Vec<NotificationCount> {
    m.iter()
        .map(|(&(code, subcode), &count)| NotificationCount {
            code,
            subcode,
            count,
        })
        .collect()
}

/// The session config the state machine runs with, or why there is none.
pub fn fsm_config(spec: &SessionSpec, restarted: bool) -> Result<fsm::Config, String> {
    let c = &spec.config;
    let router_id = c
        .router_id
        .or(match c.source_address {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        })
        .or(spec.node_v4)
        .ok_or("no router ID: the node has no IPv4 address; set routerID on the BGPPeer")?;
    let peer_asn = match c.peer_asn {
        ConfiguredAsn::Fixed(asn) => PeerAsn::Fixed(asn),
        ConfiguredAsn::Dynamic(DynamicAsn::Internal) => PeerAsn::Internal,
        ConfiguredAsn::Dynamic(DynamicAsn::External) => PeerAsn::External,
    };
    let mut config = fsm::Config::new(c.my_asn, peer_asn, router_id);
    config.hold_time = u16::try_from(c.hold_time.as_secs()).unwrap_or(u16::MAX);
    config.keepalive_time = Some(c.keepalive_time);
    config.connect_retry = FIRST_RETRY
        .min(c.connect_time)
        .max(Duration::from_millis(100));
    config.backoff_cap = c.connect_time;
    config.passive = c.passive;
    config.families = c.families();
    config.route_refresh = true;
    config.graceful_restart = c.graceful_restart.then_some(GracefulRestartConfig {
        restart_time: GRACEFUL_RESTART_TIME,
        restarted,
    });
    fsm::Fsm::new(config.clone()).map_err(|e| e.to_string())?;
    Ok(config)
}

/// The TCP MD5 key of a session, if it has one.
pub fn md5_key(c: &SessionConfig) -> Result<Option<Md5Key>, String> {
    if c.missing_password() {
        return Err("the passwordSecret could not be read: not connecting without the key".into());
    }
    c.password
        .as_deref()
        .map(|p| Md5Key::new(p.as_bytes()).map_err(|e| e.to_string()))
        .transpose()
}

fn hop_limit(c: &SessionConfig) -> u8 {
    socket::hop_limit(!c.is_ibgp(), c.ebgp_multihop)
}

fn family_of(p: &IpNet) -> Family {
    match p {
        IpNet::V4(_) => (Afi::IPV4, Safi::UNICAST),
        IpNet::V6(_) => (Afi::IPV6, Safi::UNICAST),
    }
}

fn only(rib: &AdjRibOut, families: &[Family]) -> AdjRibOut {
    rib.iter()
        .filter(|(p, _)| families.contains(&family_of(p)))
        .map(|(p, a)| (*p, a.clone()))
        .collect()
}

/// [`only`], sharing the table when all of it is of those families (the usual case:
/// a session carrying every family the table holds).
fn only_shared(rib: &Arc<AdjRibOut>, families: &[Family]) -> Arc<AdjRibOut> {
    // Tables sort IPv4 before IPv6: the ends tell which families one holds.
    let ends = [rib.keys().next(), rib.keys().next_back()];
    if ends
        .into_iter()
        .flatten()
        .all(|p| families.contains(&family_of(p)))
    {
        Arc::clone(rib)
    } else {
        Arc::new(only(rib, families))
    }
}

// ---------------------------------------------------------------------------------
// One session

/// What the I/O tasks of a connection report, tagged with the connection's id.
enum Io {
    Connected(TcpStream),
    ConnectFailed(String),
    Frame(Vec<u8>),
    FrameError(codec::DecodeError),
    Closed,
}

/// One FSM instance and the connection it owns.
struct Link {
    fsm: Fsm,
    /// Id of the current connection or connect attempt; I/O reports with another id are
    /// stale.
    conn: u64,
    direction: Direction,
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    tasks: Vec<JoinHandle<()>>,
    local: Option<SocketAddr>,
    timers: HashMap<Timer, Instant>,
    local_open: Option<super::message::Open>,
    ctx: Context,
}

impl Link {
    fn new(fsm: Fsm) -> Link {
        Link {
            fsm,
            conn: 0,
            direction: Direction::Outgoing,
            writer: None,
            tasks: Vec::new(),
            local: None,
            timers: HashMap::new(),
            local_open: None,
            ctx: Context::default(),
        }
    }

    /// Drops the connection: the writer flushes what is queued (a NOTIFICATION) and
    /// closes; reading and connecting stop at once.
    fn close(&mut self) {
        self.writer = None;
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.local = None;
        self.local_open = None;
        self.ctx = Context::default();
    }
}

/// Which link an action list belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Main,
    Extra,
}

struct Session {
    spec: SessionSpec,
    key: Option<Md5Key>,
    hops: u8,
    main: Link,
    extra: Option<Link>,
    next_conn: u64,
    io_tx: mpsc::Sender<(u64, Io)>,
    rib: watch::Receiver<Arc<AdjRibOut>>,
    /// What the peer holds from us (on the main link, while Established); usually the
    /// very table the plan made.
    sent: Arc<AdjRibOut>,
    /// `sent` changed since the status was last published (its prefix list is rebuilt
    /// only then: tables can be large, keepalives are frequent).
    sent_changed: bool,
    unsendable: Vec<String>,
    /// Writers of closed connections still flushing.
    closing: Vec<JoinHandle<()>>,
    status: Arc<Mutex<SessionStatus>>,
    changed: watch::Sender<u64>,
    counts: Counts,
    /// The BFD session with the peer, when the BGPPeer names an existing profile.
    bfd: Option<bfd::driver::Handle>,
    bfd_state: bfd::packet::State,
}

#[derive(Default)]
struct Counts {
    established: u64,
    sent: u64,
    received: u64,
    updates: u64,
    updates_received: u64,
    /// (code, subcode) -> count.
    notifications_sent: BTreeMap<(u8, u8), u64>,
    notifications_received: BTreeMap<(u8, u8), u64>,
    last_down: Option<String>,
    last_error: Option<String>,
    bfd_downs: u64,
}

impl Session {
    fn link(&mut self, which: Which) -> Option<&mut Link> {
        match which {
            Which::Main => Some(&mut self.main),
            Which::Extra => self.extra.as_mut(),
        }
    }

    fn handle(&mut self, which: Which, event: Event) {
        let Some(link) = self.link(which) else { return };
        let actions = link.fsm.handle(event);
        self.perform(which, actions);
    }

    fn perform(&mut self, which: Which, actions: Vec<Action>) {
        for action in actions {
            self.perform_one(which, action);
        }
        self.settle();
    }

    fn perform_one(&mut self, which: Which, action: Action) {
        let peer = SocketAddr::new(self.spec.config.address, self.spec.config.port);
        match action {
            Action::Connect => {
                let id = self.next_id();
                let dial = Dial {
                    peer,
                    source: self.spec.config.source_address,
                    hop_limit: self.hops,
                    key: self.key.clone(),
                };
                let tx = self.io_tx.clone();
                let Some(link) = self.link(which) else { return };
                for t in link.tasks.drain(..) {
                    t.abort();
                }
                link.conn = id;
                link.tasks.push(tokio::spawn(async move {
                    let io = match socket::connect(&dial, CONNECT_TIMEOUT).await {
                        Ok(stream) => Io::Connected(stream),
                        Err(e) => Io::ConnectFailed(e.to_string()),
                    };
                    let _ = tx.send((id, io)).await;
                }));
            }
            Action::Close => {
                let id = self.next_id();
                if let Some(link) = self.link(which) {
                    link.close();
                    link.conn = id;
                }
            }
            Action::Send(msg) => {
                let Some(link) = self.link(which) else { return };
                if let Message::Open(open) = &msg {
                    link.local_open = Some(open.clone());
                }
                match codec::encode(&msg, &link.ctx) {
                    Ok(bytes) => {
                        if let Some(w) = &link.writer {
                            let _ = w.send(bytes);
                            self.counts.sent += 1;
                            if let Message::Notification(n) = &msg {
                                *self
                                    .counts
                                    .notifications_sent
                                    .entry((n.code, n.subcode))
                                    .or_default() += 1;
                            }
                        }
                    }
                    Err(e) => warn!(peer = %self.spec.name, "cannot encode {msg:?}: {e}"),
                }
            }
            Action::ArmTimer(t, after) => {
                if let Some(link) = self.link(which) {
                    link.timers.insert(t, Instant::now() + after);
                }
            }
            Action::CancelTimer(t) => {
                if let Some(link) = self.link(which) {
                    link.timers.remove(&t);
                }
            }
            Action::Up(n) => {
                self.counts.established += 1;
                self.sent = Arc::default();
                self.sent_changed = true;
                self.unsendable.clear();
                info!(
                    peer = %self.spec.name, address = %peer, peer_asn = n.peer_asn,
                    hold = n.hold_time, families = ?n.families, "BGP session established"
                );
            }
            Action::Down(reason) => {
                warn!(peer = %self.spec.name, address = %peer, "BGP session down: {reason}");
                self.counts.last_down = Some(reason.to_string());
                self.sent = Arc::default();
                self.sent_changed = true;
                self.unsendable.clear();
            }
            Action::SendAdjRibOut {
                families,
                end_of_rib,
            } => {
                if which != Which::Main {
                    return;
                }
                let rib = self.rib.borrow().clone();
                let ours = only_shared(&rib, &families);
                let kept = only(&self.sent, &self.other_families(&families));
                let wanted = if kept.is_empty() {
                    Arc::clone(&ours)
                } else {
                    Arc::new(
                        kept.into_iter()
                            .chain(ours.iter().map(|(p, a)| (*p, a.clone())))
                            .collect(),
                    )
                };
                self.send_diff(RibDiff::full(&ours), wanted);
                if end_of_rib {
                    for u in rib::end_of_rib(&families) {
                        self.send_update(u);
                    }
                }
            }
        }
    }

    fn other_families(&self, families: &[Family]) -> Vec<Family> {
        [fsm::IPV4_UNICAST, fsm::IPV6_UNICAST]
            .into_iter()
            .filter(|f| !families.contains(f))
            .collect()
    }

    fn next_id(&mut self) -> u64 {
        self.next_conn += 1;
        self.next_conn
    }

    /// The UPDATE parameters of the main connection.
    fn params(&self) -> Option<SessionParams> {
        let n = self.main.fsm.negotiated()?;
        let local = self.main.local.map(|a| a.ip());
        let v4 = match local {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => self.spec.node_v4,
        };
        let v6 = match local {
            Some(IpAddr::V6(ip)) if !ip.is_unicast_link_local() => Some(ip),
            _ => self.spec.node_v6,
        };
        Some(SessionParams {
            my_asn: self.spec.config.my_asn,
            ibgp: n.internal,
            four_octet_as: n.four_octet_as,
            next_hop_v4: v4,
            next_hop_v6: v6,
        })
    }

    /// Sends `d` and records `wanted` (less what could not be sent) as what the peer
    /// holds.
    fn send_diff(&mut self, d: RibDiff, mut wanted: Arc<AdjRibOut>) {
        let Some(params) = self.params() else { return };
        let start = std::time::Instant::now();
        let ups = rib::updates(&d, &params);
        let messages = ups.messages.len();
        for u in ups.messages {
            self.send_update(u);
        }
        debug!(peer = %self.spec.name, messages, took = ?start.elapsed(), "UPDATEs queued");
        self.unsendable.retain(|u| {
            // Kept only for prefixes this diff did not touch.
            !d.announce
                .keys()
                .chain(d.withdraw.iter())
                .any(|p| u.starts_with(&format!("{p} ")))
        });
        for (p, why) in ups.unsendable {
            warn!(peer = %self.spec.name, "{p} not sent: {why}");
            Arc::make_mut(&mut wanted).remove(&p);
            self.unsendable.push(format!("{p} ({why})"));
        }
        self.sent = wanted;
        self.sent_changed = true;
    }

    fn send_update(&mut self, u: Update) {
        let link = &self.main;
        match codec::encode(&Message::Update(u), &link.ctx) {
            Ok(bytes) => {
                if let Some(w) = &link.writer {
                    let _ = w.send(bytes);
                    self.counts.sent += 1;
                    self.counts.updates += 1;
                }
            }
            Err(e) => warn!(peer = %self.spec.name, "cannot encode an UPDATE: {e}"),
        }
    }

    /// The Adj-RIB-Out changed: send the difference if Established.
    fn rib_changed(&mut self) {
        if self.main.fsm.state() != State::Established {
            return;
        }
        let Some(n) = self.main.fsm.negotiated() else {
            return;
        };
        let wanted = only_shared(&self.rib.borrow_and_update(), &n.families);
        let d = rib::diff(&self.sent, &wanted);
        if !d.is_empty() {
            debug!(peer = %self.spec.name, withdraw = d.withdraw.len(), announce = d.announce.len(), "sending changes");
            self.send_diff(d, wanted);
        }
    }

    /// Gives a connection to a link and starts its reader and writer.
    fn attach(&mut self, which: Which, stream: TcpStream, direction: Direction, id: u64) {
        let local = stream.local_addr().ok();
        let (r, w) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_frames(r, id, self.io_tx.clone()));
        let writer = tokio::spawn(write_queue(w, wrx));
        self.closing.push(writer);
        let Some(link) = self.link(which) else { return };
        for t in link.tasks.drain(..) {
            t.abort();
        }
        link.conn = id;
        link.direction = direction;
        link.local = local;
        link.writer = Some(wtx);
        link.tasks.push(reader);
    }

    fn on_io(&mut self, id: u64, io: Io) {
        let which = if self.main.conn == id {
            Which::Main
        } else if self.extra.as_ref().is_some_and(|l| l.conn == id) {
            Which::Extra
        } else {
            return;
        };
        match io {
            Io::Connected(stream) => {
                self.attach(which, stream, Direction::Outgoing, id);
                self.handle(which, Event::TcpConnectionSucceeded);
            }
            Io::ConnectFailed(e) => {
                debug!(peer = %self.spec.name, "connect failed: {e}");
                self.counts.last_error = Some(e);
                self.handle(which, Event::TcpConnectionFails);
            }
            Io::Closed => self.handle(which, Event::TcpConnectionFails),
            Io::FrameError(e) => {
                self.counts.received += 1;
                let n = e.notification().unwrap_or_else(|| {
                    Notification::new(Notification::MESSAGE_HEADER_ERROR, 0, Vec::new())
                });
                warn!(peer = %self.spec.name, "bad message from the peer: {e}");
                self.handle(which, Event::DecodeError(n));
            }
            Io::Frame(bytes) => {
                self.counts.received += 1;
                let Some(link) = self.link(which) else { return };
                match codec::decode_message(&bytes, &link.ctx) {
                    Ok(msg) => {
                        if let (Message::Open(remote), Some(local)) = (&msg, &link.local_open) {
                            link.ctx = Context::negotiated(local, remote);
                        }
                        match &msg {
                            Message::Update(_) => self.counts.updates_received += 1,
                            Message::Notification(n) => {
                                *self
                                    .counts
                                    .notifications_received
                                    .entry((n.code, n.subcode))
                                    .or_default() += 1;
                            }
                            _ => {}
                        }
                        self.handle(which, Event::MessageReceived(msg));
                    }
                    Err(e) if !e.is_session_reset() => {
                        // Only an UPDATE's attributes can be treated as withdraw.
                        self.counts.updates_received += 1;
                        // RFC 7606 treat-as-withdraw: we import nothing, so the message
                        // only counts as a sign of life (an error outside Established).
                        debug!(peer = %self.spec.name, "{e}");
                        let any_update = Message::Update(Update::default());
                        self.handle(which, Event::MessageReceived(any_update));
                    }
                    Err(e) => {
                        warn!(peer = %self.spec.name, "bad message from the peer: {e}");
                        let n = e.notification().unwrap_or_else(|| {
                            Notification::new(Notification::UPDATE_MESSAGE_ERROR, 0, Vec::new())
                        });
                        self.handle(which, Event::DecodeError(n));
                    }
                }
            }
        }
    }

    /// A connection the listener accepted from this peer.
    fn on_incoming(&mut self, stream: TcpStream) {
        if let Err(e) = socket::set_stream_hop_limit(&stream, self.hops) {
            warn!(peer = %self.spec.name, "cannot set the hop limit on an accepted connection: {e}");
        }
        match self.main.fsm.incoming_policy() {
            Incoming::Refuse => {
                debug!(peer = %self.spec.name, "refusing a connection: session stopped, waiting or established");
            }
            Incoming::Take => {
                let id = self.next_id();
                self.attach(Which::Main, stream, Direction::Incoming, id);
                self.handle(Which::Main, Event::TcpConnectionConfirmed);
            }
            Incoming::Collide if self.extra.is_none() => {
                let config = self.main.fsm.config().clone();
                match Fsm::incoming(config) {
                    Ok((fsm, actions)) => {
                        self.extra = Some(Link::new(fsm));
                        let id = self.next_id();
                        self.attach(Which::Extra, stream, Direction::Incoming, id);
                        self.perform(Which::Extra, actions);
                    }
                    Err(e) => warn!(peer = %self.spec.name, "{e}"),
                }
            }
            // At most two connections per peer.
            Incoming::Collide => {}
        }
    }

    /// After anything happened: settle collisions, drop a dead second connection, and
    /// replace a promoted FSM whose connection ended.
    fn settle(&mut self) {
        let extra = self
            .extra
            .as_ref()
            .map(|e| (e.fsm.state(), e.direction, e.fsm.negotiated().cloned()));
        if let Some((extra_state, extra_direction, extra_negotiated)) = extra {
            let main_state = self.main.fsm.state();
            if !extra_state.has_connection() {
                if let Some(mut extra) = self.extra.take() {
                    extra.close();
                }
            } else if !main_state.has_connection() {
                // Ours failed or never got anywhere: the peer's connection carries on.
                if let Some(extra) = self.extra.take() {
                    let mut old = std::mem::replace(&mut self.main, extra);
                    old.close();
                }
            } else {
                let remote = self
                    .main
                    .fsm
                    .negotiated()
                    .cloned()
                    .or(extra_negotiated)
                    .map(|n| Speaker {
                        router_id: n.peer_router_id,
                        asn: n.peer_asn,
                    });
                if let Some(remote) = remote {
                    let c = self.main.fsm.config();
                    let local = Speaker {
                        router_id: c.router_id,
                        asn: c.local_asn,
                    };
                    let existing = Connection {
                        direction: self.main.direction,
                        state: main_state,
                    };
                    let new = Connection {
                        direction: extra_direction,
                        state: extra_state,
                    };
                    match fsm::resolve_collision(local, remote, existing, new) {
                        Collision::None => {}
                        Collision::KeepExisting => {
                            info!(peer = %self.spec.name, "connection collision: keeping the first connection");
                            self.handle(Which::Extra, Event::CollisionLost);
                        }
                        Collision::KeepNew => {
                            info!(peer = %self.spec.name, "connection collision: keeping the peer's connection");
                            self.handle(Which::Main, Event::CollisionLost);
                        }
                    }
                }
            }
        }
        self.publish();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.main
            .timers
            .values()
            .chain(self.extra.iter().flat_map(|l| l.timers.values()))
            .min()
            .copied()
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        for which in [Which::Main, Which::Extra] {
            let due: Vec<Timer> = match self.link(which) {
                Some(l) => l
                    .timers
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(t, _)| *t)
                    .collect(),
                None => continue,
            };
            for t in due {
                if let Some(l) = self.link(which) {
                    l.timers.remove(&t);
                }
                self.handle(which, Event::TimerExpired(t));
            }
        }
    }

    fn publish(&mut self) {
        let status = self.status.clone();
        let mut cur = status.lock().unwrap_or_else(|p| p.into_inner());
        let sent_changed = std::mem::take(&mut self.sent_changed);
        let advertised = if sent_changed {
            rib::Prefixes::new(self.sent.keys().copied())
        } else {
            std::mem::take(&mut cur.advertised)
        };
        let n = self.main.fsm.negotiated();
        let s = SessionStatus {
            peer: self.spec.name.clone(),
            address: SocketAddr::new(self.spec.config.address, self.spec.config.port).to_string(),
            state: self.main.fsm.state().to_string(),
            local_address: self.main.local.map(|a| a.to_string()),
            peer_asn: n.map(|n| n.peer_asn),
            peer_router_id: n.map(|n| n.peer_router_id.to_string()),
            advertised,
            unsendable: self.unsendable.clone(),
            established_count: self.counts.established,
            messages_sent: self.counts.sent,
            messages_received: self.counts.received,
            updates_sent: self.counts.updates,
            updates_received: self.counts.updates_received,
            notifications_sent: notification_counts(&self.counts.notifications_sent),
            notifications_received: notification_counts(&self.counts.notifications_received),
            last_down: self.counts.last_down.clone(),
            last_error: self.counts.last_error.clone(),
            bfd: self.bfd.as_ref().map(|_| self.bfd_state.to_string()),
            bfd_downs: self.counts.bfd_downs,
        };
        let significant = s.state != cur.state
            || s.bfd != cur.bfd
            || s.last_down != cur.last_down
            || s.last_error != cur.last_error
            || (sent_changed && s.advertised != cur.advertised);
        if significant {
            self.changed.send_modify(|v| *v += 1);
        }
        *cur = s;
    }

    /// (Re)starts the BFD session as the spec says; the one running, if any, is told to
    /// stop (it says AdminDown on its own time, which the peer does not count as a
    /// failure).
    fn start_bfd(&mut self, hub: &Arc<bfd::driver::Hub>) {
        self.bfd = bfd_spec(&self.spec.config)
            .map(|b| bfd::driver::spawn(hub.clone(), b, self.spec.name.clone()));
        self.bfd_state = bfd::packet::State::Down;
    }

    /// A new BFD profile: new timers for the running BFD session (which stays Up), or
    /// BFD started or stopped.
    fn change_bfd(&mut self, new: Option<bfd::Profile>, hub: &Arc<bfd::driver::Hub>) {
        let old = std::mem::replace(&mut self.spec.config.bfd, new.clone());
        match (&self.bfd, old, new) {
            (Some(running), Some(_), Some(profile)) => running.reconfigure(profile),
            _ => self.start_bfd(hub),
        }
    }

    /// News from the BFD session. Up to Down closes the BGP session at once (RFC 9384
    /// Cease / BFD Down); it reconnects with its usual back-off, whether BFD is back
    /// or not (a BFD session that is not Up never holds BGP back, as in FRR).
    fn on_bfd(&mut self, report: bfd::driver::Report) {
        match &report {
            bfd::driver::Report::Changed { to, .. } => self.bfd_state = *to,
            bfd::driver::Report::Error(e) => self.counts.last_error = Some(format!("BFD: {e}")),
        }
        if report.is_failure() {
            self.counts.bfd_downs += 1;
            warn!(peer = %self.spec.name, "BFD session down: closing the BGP session");
            self.handle(Which::Main, Event::BfdDown);
            if self.extra.is_some() {
                self.handle(Which::Extra, Event::BfdDown);
            }
        }
        self.publish();
    }

    /// Ends every connection as `how` says and waits (briefly) for the last bytes to
    /// leave.
    async fn stop(mut self, how: Stop) {
        match how {
            Stop::Cease(subcode) => {
                self.handle(Which::Main, Event::Cease(subcode));
                if self.extra.is_some() {
                    self.handle(Which::Extra, Event::Cease(subcode));
                }
            }
            Stop::Close => {
                self.main.close();
                if let Some(mut e) = self.extra.take() {
                    e.close();
                }
            }
        }
        self.main.writer = None;
        self.extra = None;
        let writers = std::mem::take(&mut self.closing);
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
            for w in writers {
                let _ = w.await;
            }
        })
        .await;
        // After the NOTIFICATION: the peer sees BGP stop first, then BFD go AdminDown,
        // which it does not count as a failure.
        if let Some(b) = self.bfd.take() {
            b.stop().await;
        }
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.state = State::Idle.to_string();
        s.advertised = rib::Prefixes::default();
        if s.bfd.is_some() {
            s.bfd = Some(bfd::packet::State::AdminDown.to_string());
        }
    }
}

/// Reads from the connection and reports whole messages (framing only: decoding needs
/// the session's context). Stops at the first framing error or when the peer closes.
async fn read_frames(mut r: OwnedReadHalf, id: u64, tx: mpsc::Sender<(u64, Io)>) {
    let mut buf: Vec<u8> = Vec::with_capacity(2 * super::message::MAX_MESSAGE_LEN);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            match codec::frame(&buf) {
                Ok(Some(len)) => {
                    let rest = buf.split_off(len);
                    let msg = std::mem::replace(&mut buf, rest);
                    if tx.send((id, Io::Frame(msg))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send((id, Io::FrameError(e))).await;
                    return;
                }
            }
        }
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = tx.send((id, Io::Closed)).await;
                return;
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Writes queued messages in order; when the queue's sender is dropped, flushes and
/// closes our side. A peer that stops reading for [`WRITE_TIMEOUT`] loses the connection.
async fn write_queue(mut w: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, w.shutdown()).await;
}

/// The next report of a session's BFD session; never, without one.
async fn bfd_report(h: &mut Option<bfd::driver::Handle>) -> bfd::driver::Report {
    if let Some(h) = h
        && let Some(r) = h.reports.recv().await
    {
        return r;
    }
    std::future::pending().await
}

/// The BFD session a BGP session asks for: to the peer, from the session's source
/// address (or the kernel's choice by route, as the TCP connection makes it),
/// multi-hop with `ebgpMultiHop`.
pub fn bfd_spec(c: &SessionConfig) -> Option<bfd::driver::Spec> {
    Some(bfd::driver::Spec {
        peer: c.address,
        local: c.source_address,
        multihop: c.ebgp_multihop,
        profile: c.bfd.clone()?,
    })
}

/// Whether two specs differ at most in their BFD profile.
fn same_but_bfd(a: &SessionSpec, b: &SessionSpec) -> bool {
    if a.config.bfd == b.config.bfd {
        return a == b;
    }
    let mut a = a.clone();
    a.config.bfd.clone_from(&b.config.bfd);
    a == *b
}

/// The task of one session. `bfd`: the shared BFD sockets, and the profile (which may
/// change while the session runs).
#[allow(clippy::too_many_arguments)]
async fn run_session(
    spec: SessionSpec,
    (hub, mut profile): (Arc<bfd::driver::Hub>, watch::Receiver<Option<bfd::Profile>>),
    rib: watch::Receiver<Arc<AdjRibOut>>,
    mut incoming: mpsc::UnboundedReceiver<TcpStream>,
    stop: oneshot::Receiver<Stop>,
    status: Arc<Mutex<SessionStatus>>,
    changed: watch::Sender<u64>,
    restarted: bool,
) {
    let (io_tx, mut io_rx) = mpsc::channel(64);
    let problem = |e: String| {
        warn!(peer = %spec.name, "BGP session not started: {e}");
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.state = State::Idle.to_string();
        s.last_error = Some(e);
        changed.send_modify(|v| *v += 1);
    };
    let key = match md5_key(&spec.config) {
        Ok(k) => k,
        Err(e) => {
            problem(e);
            let _ = stop.await;
            return;
        }
    };
    let fsm =
        match fsm_config(&spec, restarted).and_then(|c| Fsm::new(c).map_err(|e| e.to_string())) {
            Ok(f) => f,
            Err(e) => {
                problem(e);
                let _ = stop.await;
                return;
            }
        };
    let mut s = Session {
        hops: hop_limit(&spec.config),
        spec,
        key,
        main: Link::new(fsm),
        extra: None,
        next_conn: 0,
        io_tx,
        rib,
        sent: Arc::default(),
        sent_changed: true,
        unsendable: Vec::new(),
        closing: Vec::new(),
        status,
        changed,
        counts: Counts::default(),
        bfd: None,
        bfd_state: bfd::packet::State::Down,
    };
    s.spec.config.bfd = profile.borrow_and_update().clone();
    s.start_bfd(&hub);
    s.handle(Which::Main, Event::ManualStart);
    let mut stop = stop;
    loop {
        s.closing.retain(|t| !t.is_finished());
        let deadline = s.next_deadline();
        tokio::select! {
            // A stop comes with the manager dropping this session's channels: it must
            // win over "the Adj-RIB-Out channel closed" to stop the way it says.
            biased;
            how = &mut stop => {
                s.stop(how.unwrap_or(Stop::Cease(cease::ADMINISTRATIVE_SHUTDOWN))).await;
                return;
            }
            Some((id, io)) = io_rx.recv() => s.on_io(id, io),
            Some(stream) = incoming.recv() => s.on_incoming(stream),
            r = bfd_report(&mut s.bfd) => s.on_bfd(r),
            Ok(()) = profile.changed() => {
                let new = profile.borrow_and_update().clone();
                s.change_bfd(new, &hub);
                s.publish();
            }
            r = s.rib.changed() => {
                if r.is_err() {
                    s.stop(Stop::Cease(cease::ADMINISTRATIVE_SHUTDOWN)).await;
                    return;
                }
                s.rib_changed();
                s.publish();
            }
            _ = sleep_until(deadline) => s.on_timers(),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------
// The manager

struct Running {
    spec: SessionSpec,
    /// The BFD profile, changed without restarting the BGP session.
    bfd: watch::Sender<Option<bfd::Profile>>,
    rib: watch::Sender<Arc<AdjRibOut>>,
    incoming: mpsc::UnboundedSender<TcpStream>,
    stop: oneshot::Sender<Stop>,
    status: Arc<Mutex<SessionStatus>>,
    task: JoinHandle<()>,
}

type Routes = Arc<Mutex<BTreeMap<IpAddr, mpsc::UnboundedSender<TcpStream>>>>;
/// The running sessions' statuses by BGPPeer name, shared with readers on other threads
/// (the metrics, on each scrape).
type Shared = Arc<Mutex<BTreeMap<String, Arc<Mutex<SessionStatus>>>>>;

/// Every BGP session of this node.
pub struct Manager {
    sessions: BTreeMap<String, Running>,
    routes: Routes,
    listener_peers: Option<watch::Sender<BTreeMap<IpAddr, Option<Md5Key>>>>,
    listener_task: Option<JoinHandle<()>>,
    changed: watch::Sender<u64>,
    /// Stopped sessions still saying goodbye.
    stopping: Vec<JoinHandle<()>>,
    /// Sessions started from now on announce graceful restart's R bit as false: only the
    /// first sessions after the speaker started are "after a restart".
    first_round: bool,
    listening: Vec<SocketAddr>,
    shared: Shared,
    /// BFD's receive sockets, shared by the sessions.
    bfd_hub: Arc<bfd::driver::Hub>,
}

impl Manager {
    /// A manager with no sessions. With `listen_port`, accepts connections from
    /// configured peers on that port (both families); a port that cannot be bound is
    /// reported and the sessions dial only.
    pub fn new(listen_port: Option<u16>) -> (Manager, Option<socket::SocketError>) {
        let routes: Routes = Arc::default();
        let mut m = Manager {
            sessions: BTreeMap::new(),
            routes: routes.clone(),
            listener_peers: None,
            listener_task: None,
            changed: watch::channel(0).0,
            stopping: Vec::new(),
            first_round: true,
            listening: Vec::new(),
            shared: Shared::default(),
            bfd_hub: bfd::driver::Hub::new(),
        };
        let mut error = None;
        if let Some(port) = listen_port {
            match Listener::bind(port) {
                Ok(l) => {
                    m.listening = l.local_addrs();
                    let (tx, rx) = watch::channel(BTreeMap::new());
                    m.listener_peers = Some(tx);
                    m.listener_task = Some(tokio::spawn(listen(l, rx, routes)));
                }
                Err(e) => error = Some(e),
            }
        }
        (m, error)
    }

    /// Where the listener listens (empty: not listening).
    pub fn listening(&self) -> &[SocketAddr] {
        &self.listening
    }

    /// Bumped whenever a session's state, advertised prefixes or errors change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Makes the running sessions those of `wanted` (by BGPPeer name) and hands each
    /// its Adj-RIB-Out. A session whose spec changed is restarted.
    pub fn reconcile(
        &mut self,
        wanted: &BTreeMap<String, SessionSpec>,
        ribs: &BTreeMap<String, Arc<AdjRibOut>>,
    ) {
        // A new BFD profile alone changes the BFD session's timers (or starts or stops
        // it): BGP stays up.
        let gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(name, r)| !wanted.get(*name).is_some_and(|w| same_but_bfd(w, &r.spec)))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(r) = self.sessions.remove(&name) {
                let subcode = if wanted.contains_key(&name) {
                    info!(peer = %name, "restarting the BGP session: its settings changed");
                    cease::OTHER_CONFIGURATION_CHANGE
                } else {
                    info!(peer = %name, "stopping the BGP session: the peer is no longer configured for this node");
                    cease::PEER_DECONFIGURED
                };
                self.retire(r, Stop::Cease(subcode));
            }
        }
        for (name, spec) in wanted {
            let rib = ribs.get(name).cloned().unwrap_or_default();
            if let Some(r) = self.sessions.get_mut(name) {
                if r.spec.config.bfd != spec.config.bfd {
                    info!(peer = %name, "BFD profile changed: the BGP session stays");
                    r.spec = spec.clone();
                    r.bfd.send_replace(spec.config.bfd.clone());
                }
                r.rib.send_if_modified(|cur| {
                    if Arc::ptr_eq(cur, &rib) || **cur == *rib {
                        false
                    } else {
                        *cur = rib;
                        true
                    }
                });
                continue;
            }
            let restarted = self.first_round && spec.config.graceful_restart;
            let (rib_tx, rib_rx) = watch::channel(rib);
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            let (stop_tx, stop_rx) = oneshot::channel();
            let (bfd_tx, bfd_rx) = watch::channel(spec.config.bfd.clone());
            let status = Arc::new(Mutex::new(SessionStatus {
                peer: name.clone(),
                address: SocketAddr::new(spec.config.address, spec.config.port).to_string(),
                state: State::Idle.to_string(),
                ..SessionStatus::default()
            }));
            let task = tokio::spawn(run_session(
                spec.clone(),
                (self.bfd_hub.clone(), bfd_rx),
                rib_rx,
                in_rx,
                stop_rx,
                status.clone(),
                self.changed.clone(),
                restarted,
            ));
            self.sessions.insert(
                name.clone(),
                Running {
                    spec: spec.clone(),
                    bfd: bfd_tx,
                    rib: rib_tx,
                    incoming: in_tx,
                    stop: stop_tx,
                    status,
                    task,
                },
            );
        }
        self.first_round = false;
        self.share();
        self.update_listener();
        self.stopping.retain(|t| !t.is_finished());
    }

    fn share(&self) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let same = shared.len() == self.sessions.len()
            && shared
                .iter()
                .zip(&self.sessions)
                .all(|((a, sa), (b, rb))| a == b && Arc::ptr_eq(sa, &rb.status));
        if !same {
            *shared = self
                .sessions
                .iter()
                .map(|(name, r)| (name.clone(), r.status.clone()))
                .collect();
        }
    }

    /// Reads the statuses of the sessions running at the time of each call (a session
    /// restarted with new settings starts its counters again).
    pub fn status_source(&self) -> impl Fn() -> Vec<SessionStatus> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || {
            let sessions: Vec<Arc<Mutex<SessionStatus>>> = shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            sessions
                .iter()
                .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .collect()
        }
    }

    fn retire(&mut self, r: Running, how: Stop) {
        let _ = r.stop.send(how);
        self.stopping.push(r.task);
    }

    fn update_listener(&mut self) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.clear();
        let mut keys = BTreeMap::new();
        for r in self.sessions.values() {
            let c = &r.spec.config;
            routes
                .entry(c.address)
                .or_insert_with(|| r.incoming.clone());
            keys.entry(c.address)
                .or_insert_with(|| md5_key(c).ok().flatten());
        }
        drop(routes);
        if let Some(tx) = &self.listener_peers {
            tx.send_if_modified(|cur| {
                if *cur == keys {
                    false
                } else {
                    *cur = keys;
                    true
                }
            });
        }
    }

    /// Every session's status, by BGPPeer name.
    pub fn statuses(&self) -> Vec<SessionStatus> {
        self.sessions
            .values()
            .map(|r| r.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Ends every session: graceful-restart peers are only disconnected (the router
    /// keeps our routes for the restart time), the others get a Cease first. Waits at
    /// most a couple of seconds.
    pub async fn shutdown(mut self) {
        let sessions = std::mem::take(&mut self.sessions);
        self.share();
        for (_, r) in sessions {
            let how = if r.spec.config.graceful_restart {
                Stop::Close
            } else {
                Stop::Cease(cease::ADMINISTRATIVE_SHUTDOWN)
            };
            self.retire(r, how);
        }
        if let Some(t) = self.listener_task.take() {
            t.abort();
        }
        let tasks = std::mem::take(&mut self.stopping);
        let _ = tokio::time::timeout(2 * FLUSH_TIMEOUT, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Some(t) = self.listener_task.take() {
            t.abort();
        }
    }
}

/// The listener's task: accepts configured peers and hands each connection to its
/// session.
async fn listen(
    mut listener: Listener,
    mut peers: watch::Receiver<BTreeMap<IpAddr, Option<Md5Key>>>,
    routes: Routes,
) {
    loop {
        let mut update = None;
        tokio::select! {
            r = peers.changed() => {
                if r.is_err() {
                    return;
                }
                update = Some(peers.borrow_and_update().clone());
            }
            r = listener.accept(|from| debug!(%from, "closed a BGP connection from an unconfigured address")) => {
                match r {
                    Ok((stream, from)) => {
                        let route = routes
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&from.ip())
                            .cloned();
                        if let Some(tx) = route {
                            let _ = tx.send(stream);
                        }
                    }
                    Err(e) => {
                        warn!("accepting BGP connections: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        if let Some(Err(e)) = update.map(|p| listener.set_peers(p)) {
            warn!("BGP listener: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::rib::RouteAttrs;

    fn spec(name: &str, my: u32, peer: u32, id: [u8; 4], port: u16, passive: bool) -> SessionSpec {
        SessionSpec {
            name: name.into(),
            config: SessionConfig {
                my_asn: my,
                peer_asn: ConfiguredAsn::Fixed(peer),
                address: IpAddr::from([127, 0, 0, 1]),
                port,
                source_address: None,
                router_id: Some(Ipv4Addr::from(id)),
                hold_time: Duration::from_secs(9),
                keepalive_time: Duration::from_secs(3),
                connect_time: Duration::from_secs(2),
                ebgp_multihop: false,
                password: None,
                password_secret: None,
                graceful_restart: false,
                passive,
                dual_stack: true,
                bfd: None,
            },
            node_v4: None,
            node_v6: Some("2001:db8:51::11".parse().unwrap()),
        }
    }

    #[test]
    fn bfd_profile_changes_alone_keep_the_bgp_session() {
        let a = spec("r", 64512, 64513, [192, 0, 2, 1], 179, false);
        let mut b = a.clone();
        b.config.bfd = Some(crate::bfd::Profile {
            name: "fast".into(),
            timers: crate::bfd::fsm::Config::default(),
            minimum_ttl: 254,
        });
        assert!(same_but_bfd(&a, &b) && same_but_bfd(&b, &a) && same_but_bfd(&a, &a));
        b.config.hold_time = a.config.hold_time + Duration::from_secs(3);
        assert!(!same_but_bfd(&a, &b));
        let mut c = a.clone();
        c.config.port = 1179;
        assert!(!same_but_bfd(&a, &c));
    }

    fn rib(prefixes: &[&str]) -> AdjRibOut {
        prefixes
            .iter()
            .map(|p| {
                (
                    p.parse().unwrap(),
                    std::sync::Arc::new(RouteAttrs::default()),
                )
            })
            .collect()
    }

    async fn wait_for(
        m: &Manager,
        what: &str,
        ok: impl Fn(&SessionStatus) -> bool,
    ) -> SessionStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = m.statuses().into_iter().next().expect("one session");
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Two of our own sessions over loopback (no root needed): the dialing side reaches
    /// Established with the passive side, sends its table and End-of-RIB, sends changes
    /// as UPDATEs, and when the peer is removed says Cease (peer de-configured).
    #[tokio::test]
    async fn two_speakers_establish_exchange_and_cease() {
        let (mut router, err) = Manager::new(Some(0));
        assert!(err.is_none(), "{err:?}");
        let port = router.listening()[0].port();
        let (mut node, _) = Manager::new(None);
        let router_spec = spec("node", 64500, 64512, [192, 0, 2, 1], 0, true);
        let node_spec = spec("router", 64512, 64500, [192, 0, 2, 11], port, false);
        router.reconcile(&[("node".into(), router_spec)].into(), &BTreeMap::new());
        let table = rib(&["203.0.113.5/32", "2001:db8:113::5/128"]);
        node.reconcile(
            &[("router".into(), node_spec.clone())].into(),
            &[("router".into(), Arc::new(table.clone()))].into(),
        );
        let up = wait_for(&node, "Established with the table sent", |s| {
            s.state == "Established" && s.advertised.len() == 2
        })
        .await;
        assert_eq!(up.peer_asn, Some(64500));
        assert_eq!(up.peer_router_id.as_deref(), Some("192.0.2.1"));
        assert_eq!(
            up.advertised.strings(),
            ["203.0.113.5/32", "2001:db8:113::5/128"]
        );
        // One UPDATE per family, then one End-of-RIB per family.
        assert_eq!(up.updates_sent, 4, "{up:?}");
        let r = wait_for(&router, "Established on the passive side", |s| {
            s.state == "Established" && s.messages_received >= 6 && s.updates_received == 4
        })
        .await;
        assert_eq!(r.peer_asn, Some(64512));
        assert!(r.notifications_received.is_empty(), "{r:?}");
        // The metrics' source reads the same sessions from elsewhere.
        let source = node.status_source();
        let seen = source();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].peer, "router");
        assert_eq!(seen[0].updates_sent, 4);

        // A change is sent as its difference: one withdrawal, one announcement.
        let changed = rib(&["203.0.113.6/32", "2001:db8:113::5/128"]);
        node.reconcile(
            &[("router".into(), node_spec)].into(),
            &[("router".into(), Arc::new(changed))].into(),
        );
        let s = wait_for(&node, "the change", |s| {
            s.advertised.first().map(IpNet::to_string).as_deref() == Some("203.0.113.6/32")
        })
        .await;
        assert_eq!(s.updates_sent, 6, "{s:?}");

        // The peer removed from the node's configuration: Cease, peer de-configured.
        node.reconcile(&BTreeMap::new(), &BTreeMap::new());
        let r = wait_for(&router, "the Cease", |s| s.last_down.is_some()).await;
        let why = r.last_down.unwrap_or_default();
        assert!(
            why.starts_with("received NOTIFICATION: cease (6)") && why.contains("(3)"),
            "{why}"
        );
        assert_eq!(
            r.notifications_received,
            [NotificationCount {
                code: 6,
                subcode: 3,
                count: 1
            }]
        );
        assert!(node.statuses().is_empty());
        assert!(source().is_empty(), "a stopped session leaves the source");
        node.shutdown().await;
        router.shutdown().await;
    }

    /// Both sides dial and both listen: the two connections collide and RFC 4271 §6.8
    /// keeps exactly one, the same one on both sides, which stays up.
    #[tokio::test]
    async fn colliding_connections_settle_on_one_session() {
        let (mut a, err) = Manager::new(Some(0));
        assert!(err.is_none(), "{err:?}");
        let (mut b, err) = Manager::new(Some(0));
        assert!(err.is_none(), "{err:?}");
        let (pa, pb) = (a.listening()[0].port(), b.listening()[0].port());
        let sa = spec("b", 64512, 64500, [192, 0, 2, 11], pb, false);
        let sb = spec("a", 64500, 64512, [192, 0, 2, 1], pa, false);
        a.reconcile(
            &[("b".into(), sa)].into(),
            &[("b".into(), Arc::new(rib(&["203.0.113.5/32"])))].into(),
        );
        b.reconcile(
            &[("a".into(), sb)].into(),
            &[("a".into(), Arc::new(rib(&["203.0.113.6/32"])))].into(),
        );
        let up = |s: &SessionStatus| s.state == "Established" && s.advertised.len() == 1;
        wait_for(&a, "a Established", up).await;
        wait_for(&b, "b Established", up).await;
        // Whatever lost the collision is gone; what stayed keeps running.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for m in [&a, &b] {
            let s = m.statuses().remove(0);
            assert_eq!(s.state, "Established", "{s:?}");
            assert_eq!(
                s.established_count, 1,
                "one session, never re-established: {s:?}"
            );
        }
        a.shutdown().await;
        b.shutdown().await;
    }

    /// With graceful restart a stopping speaker only closes (no Cease), so the peer
    /// keeps its routes for the restart time.
    #[tokio::test]
    async fn graceful_restart_stops_without_cease() {
        let (mut router, _) = Manager::new(Some(0));
        let port = router.listening()[0].port();
        let (mut node, _) = Manager::new(None);
        let mut rs = spec("node", 64500, 64512, [192, 0, 2, 1], 0, true);
        rs.config.graceful_restart = true;
        let mut ns = spec("router", 64512, 64500, [192, 0, 2, 11], port, false);
        ns.config.graceful_restart = true;
        router.reconcile(&[("node".into(), rs)].into(), &BTreeMap::new());
        node.reconcile(&[("router".into(), ns)].into(), &BTreeMap::new());
        wait_for(&node, "Established", |s| s.state == "Established").await;
        wait_for(&router, "Established", |s| s.state == "Established").await;
        node.shutdown().await;
        let r = wait_for(&router, "the close", |s| s.last_down.is_some()).await;
        assert_eq!(r.last_down.as_deref(), Some("connection lost"), "{r:?}");
        router.shutdown().await;
    }

    /// A peer that is not there yet: connects fail (and say why), the session retries
    /// with backoff, and comes up once the peer listens.
    #[tokio::test]
    async fn retries_until_the_peer_listens() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let (mut node, _) = Manager::new(None);
        let ns = spec("router", 64512, 64500, [192, 0, 2, 11], port, false);
        node.reconcile(&[("router".into(), ns)].into(), &BTreeMap::new());
        let s = wait_for(&node, "a failed connect", |s| s.last_error.is_some()).await;
        assert_ne!(s.state, "Established");
        let (mut router, err) = Manager::new(Some(port));
        assert!(err.is_none(), "{err:?}");
        let rs = spec("node", 64500, 64512, [192, 0, 2, 1], 0, true);
        router.reconcile(&[("node".into(), rs)].into(), &BTreeMap::new());
        wait_for(&node, "Established after retrying", |s| {
            s.state == "Established"
        })
        .await;
        node.shutdown().await;
        router.shutdown().await;
    }

    /// TCP MD5: a wrong password never gets a session (the kernel drops the SYNs); a
    /// changed spec restarts the session, and with the right password it comes up.
    #[tokio::test]
    async fn md5_password_mismatch_then_fixed_by_reconcile() {
        let (mut router, err) = Manager::new(Some(0));
        assert!(err.is_none(), "{err:?}");
        let port = router.listening()[0].port();
        let mut rs = spec("node", 64500, 64512, [192, 0, 2, 1], 0, true);
        rs.config.password = Some("right".into());
        router.reconcile(&[("node".into(), rs)].into(), &BTreeMap::new());
        let (mut node, _) = Manager::new(None);
        let mut ns = spec("router", 64512, 64500, [192, 0, 2, 11], port, false);
        ns.config.password = Some("wrong".into());
        node.reconcile(&[("router".into(), ns.clone())].into(), &BTreeMap::new());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let r = router.statuses().remove(0);
        assert_eq!(r.messages_received, 0, "nothing gets through: {r:?}");
        assert_ne!(node.statuses()[0].state, "Established");
        ns.config.password = Some("right".into());
        node.reconcile(&[("router".into(), ns)].into(), &BTreeMap::new());
        wait_for(&node, "Established with the right key", |s| {
            s.state == "Established"
        })
        .await;
        node.shutdown().await;
        router.shutdown().await;
    }
}
