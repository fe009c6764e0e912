//! The BGP session state machine (RFC 4271 §8), sans-IO: [`Fsm::handle`] takes one
//! [`Event`] (a start or stop, a TCP outcome, a decoded message, a decode error, a timer
//! that fired) and returns the [`Action`]s the driver performs (connect, send, close, arm
//! or cancel a timer, session up or down). It reads no clock and touches no socket, so
//! every transition is tested with plain values.
//!
//! One `Fsm` owns at most one TCP connection. When a second connection to the same peer
//! appears while the first is past `Active` ([`Fsm::incoming_policy`] says
//! [`Incoming::Collide`]), the driver runs it in its own instance ([`Fsm::incoming`]) and,
//! once an OPEN tells the peer's identifier, asks [`resolve_collision`] which one stays
//! (RFC 4271 §6.8); the loser gets [`Event::CollisionLost`].
//!
//! Failures are damped by exponential backoff: each failed connect or session counts,
//! the wait before the next try doubles from `connect_retry` up to `backoff_cap`, and the
//! count resets once a session has stayed Established for `backoff_reset_after`.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::message::{
    AS_TRANS, Afi, BGP_VERSION, Capability, GracefulRestart, GracefulRestartFamily, Message,
    Notification, Open, Safi, notify,
};

/// An address family as announced in the multiprotocol capability.
pub type Family = (Afi, Safi);
pub const IPV4_UNICAST: Family = (Afi::IPV4, Safi::UNICAST);
pub const IPV6_UNICAST: Family = (Afi::IPV6, Safi::UNICAST);

/// The hold timer while waiting for the peer's OPEN: RFC 4271 §8.2.2 suggests 4 minutes.
pub const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);

/// Which peer AS we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAsn {
    /// Exactly this AS (`peerASN`).
    Fixed(u32),
    /// Whatever the peer says, as long as it equals ours (`dynamicASN: internal`).
    Internal,
    /// Whatever the peer says, as long as it differs from ours (`dynamicASN: external`).
    External,
}

/// Graceful restart as we announce it (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Seconds the peer should keep our routes while we restart (at most 4095).
    pub restart_time: u16,
    /// The R bit: set on the first session after this speaker restarted.
    pub restarted: bool,
}

/// One session's settings, resolved from a `BGPPeer` for this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub local_asn: u32,
    pub peer_asn: PeerAsn,
    pub router_id: Ipv4Addr,
    /// Hold time we propose, seconds: 0 (no keepalives, no hold timer) or at least 3.
    pub hold_time: u16,
    /// Keepalive interval; `None` means a third of `hold_time`, zero means none at all.
    pub keepalive_time: Option<Duration>,
    /// First wait between connection attempts, and the first backoff step.
    pub connect_retry: Duration,
    /// The longest the backoff grows to.
    pub backoff_cap: Duration,
    /// How long a session must stay Established before the backoff starts over.
    pub backoff_reset_after: Duration,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// Families we offer (IPv4 and/or IPv6 unicast).
    pub families: Vec<Family>,
    /// Announce route refresh and answer ROUTE-REFRESH by re-sending the Adj-RIB-Out.
    pub route_refresh: bool,
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl Config {
    /// A config with the usual defaults: hold 90 s, keepalive 30 s, 5 s first retry doubling
    /// up to 120 s, backoff reset after 60 s Established, IPv4 unicast, route refresh on.
    pub fn new(local_asn: u32, peer_asn: PeerAsn, router_id: Ipv4Addr) -> Config {
        Config {
            local_asn,
            peer_asn,
            router_id,
            hold_time: 90,
            keepalive_time: None,
            connect_retry: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(120),
            backoff_reset_after: Duration::from_secs(60),
            passive: false,
            families: vec![IPV4_UNICAST],
            route_refresh: true,
            graceful_restart: None,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.local_asn == 0 {
            return Err(ConfigError::LocalAsnZero);
        }
        if self.peer_asn == PeerAsn::Fixed(0) {
            return Err(ConfigError::PeerAsnZero);
        }
        // RFC 6793 §7: AS_TRANS only stands in for a 4-octet AS on the wire.
        let as_trans = u32::from(AS_TRANS);
        if self.local_asn == as_trans || self.peer_asn == PeerAsn::Fixed(as_trans) {
            return Err(ConfigError::AsTrans);
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterIdZero);
        }
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.connect_retry.is_zero() {
            return Err(ConfigError::ConnectRetryZero);
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamilies);
        }
        if let Some(f) = self
            .families
            .iter()
            .find(|f| **f != IPV4_UNICAST && **f != IPV6_UNICAST)
        {
            return Err(ConfigError::Family(f.0.0, f.1.0));
        }
        if let Some(gr) = self.graceful_restart
            && gr.restart_time > 4095
        {
            return Err(ConfigError::RestartTime(gr.restart_time));
        }
        Ok(())
    }

    fn keepalive_wanted(&self) -> Duration {
        self.keepalive_time
            .unwrap_or(Duration::from_secs(u64::from(self.hold_time)) / 3)
    }
}

/// A session config this state machine cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the local AS number must not be 0")]
    LocalAsnZero,
    #[error("the peer AS number must not be 0")]
    PeerAsnZero,
    #[error("AS 23456 (AS_TRANS) is reserved and cannot be a speaker's AS number")]
    AsTrans,
    #[error("the router ID must not be 0.0.0.0")]
    RouterIdZero,
    #[error("hold time {0}s is not allowed: use 0 (no keepalives) or at least 3s")]
    HoldTime(u16),
    #[error("the connect retry time must be more than 0")]
    ConnectRetryZero,
    #[error("no address family to offer: enable IPv4 and/or IPv6 unicast")]
    NoFamilies,
    #[error("address family AFI {0} SAFI {1} is not supported: only IPv4 and IPv6 unicast")]
    Family(u16, u8),
    #[error("graceful restart time {0}s is too long: at most 4095s")]
    RestartTime(u16),
}

/// The six states of RFC 4271 §8.2.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    /// Whether this state owns a TCP connection that carries BGP messages.
    pub fn has_connection(self) -> bool {
        matches!(
            self,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The timers the driver keeps for a session. Arming an armed timer restarts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Connect/Active: the connect attempt's deadline and the wait before the next one.
    ConnectRetry,
    /// OpenSent and later: the peer went silent.
    Hold,
    /// OpenConfirm and Established: time to send a KEEPALIVE.
    Keepalive,
    /// Idle after a failure: the backoff before starting again.
    IdleHold,
    /// Established: the session has lasted long enough to reset the backoff.
    BackoffReset,
}

impl Timer {
    const ALL: [Timer; 5] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::IdleHold,
        Timer::BackoffReset,
    ];

    fn index(self) -> usize {
        match self {
            Timer::ConnectRetry => 0,
            Timer::Hold => 1,
            Timer::Keepalive => 2,
            Timer::IdleHold => 3,
            Timer::BackoffReset => 4,
        }
    }
}

/// What happened, as the driver tells it.
// An event is built, handled and dropped, never stored: boxing the message would only add
// an allocation per message received.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start the session: connect, or only listen when the config says `passive`.
    ManualStart,
    /// Start the session listening only, whatever the config says.
    PassiveStart,
    /// Stop the session (sends Cease / Administrative Shutdown if a connection is up).
    ManualStop,
    /// Stop the session like [`Event::ManualStop`], with another Cease subcode (RFC 4486):
    /// `PEER_DECONFIGURED` when the peer is removed, `OTHER_CONFIGURATION_CHANGE` before
    /// restarting it with new settings.
    Cease(u8),
    /// The driver accepted a connection from the peer and hands it to this session; it
    /// drops its own pending connect attempt, if any.
    TcpConnectionConfirmed,
    /// Our outgoing connect attempt succeeded.
    TcpConnectionSucceeded,
    /// The connect attempt failed, or the session's connection closed or broke.
    TcpConnectionFails,
    /// A message decoded from the session's connection.
    MessageReceived(Message),
    /// The bytes received could not be decoded: the NOTIFICATION the codec maps that to.
    DecodeError(Notification),
    /// A timer armed by an [`Action::ArmTimer`] fired. Stale firings are ignored.
    TimerExpired(Timer),
    /// This connection lost the collision resolution: close it with Cease (6, 7).
    CollisionLost,
    /// The BFD session with the peer went from Up to Down: the path is gone, so the
    /// session is closed at once with Cease / BFD Down (RFC 9384) and restarts with the
    /// usual back-off. Ignored while no connection is up.
    BfdDown,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start an outgoing connection attempt, replacing any pending one.
    Connect,
    /// Close the session's connection (and abort a pending connect attempt).
    Close,
    Send(Message),
    /// Start or restart a timer; when it fires, feed [`Event::TimerExpired`].
    ArmTimer(Timer, Duration),
    CancelTimer(Timer),
    /// The session is Established with these parameters.
    Up(Negotiated),
    /// The Established session ended.
    Down(DownReason),
    /// Send the Adj-RIB-Out for these families (the whole table, as UPDATEs), then the
    /// End-of-RIB marker for each when `end_of_rib` (RFC 4724 §2).
    SendAdjRibOut {
        families: Vec<Family>,
        end_of_rib: bool,
    },
}

/// Why a session (or an attempt past TCP connect) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// [`Event::ManualStop`] or [`Event::Cease`].
    Stopped,
    /// We found an error and told the peer (hold timer expiry included).
    NotificationSent(Notification),
    NotificationReceived(Notification),
    /// The TCP connection closed or broke.
    ConnectionLost,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Stopped => f.write_str("stopped"),
            DownReason::NotificationSent(n) => write!(f, "sent NOTIFICATION: {n}"),
            DownReason::NotificationReceived(n) => write!(f, "received NOTIFICATION: {n}"),
            DownReason::ConnectionLost => f.write_str("connection lost"),
        }
    }
}

/// What both OPENs agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Seconds; 0 means neither keepalives nor a hold timer.
    pub hold_time: u16,
    /// Interval between our KEEPALIVEs; `None` sends none.
    pub keepalive: Option<Duration>,
    pub peer_asn: u32,
    pub peer_router_id: Ipv4Addr,
    /// The peer is in our AS (iBGP).
    pub internal: bool,
    /// Both sides use 4-octet AS numbers in AS_PATH (we always announce it).
    pub four_octet_as: bool,
    /// Families both sides announced, in our order.
    pub families: Vec<Family>,
    /// Both sides announced route refresh.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, as announced.
    pub peer_graceful_restart: Option<GracefulRestart>,
}

/// What the driver does with a new incoming connection from this peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Close it: the session is stopped, backing off, or already Established.
    Refuse,
    /// Feed [`Event::TcpConnectionConfirmed`] to this session.
    Take,
    /// The session already has a connection: run the new one in [`Fsm::incoming`] and
    /// settle it with [`resolve_collision`].
    Collide,
}

/// One BGP session.
#[derive(Clone, Debug)]
pub struct Fsm {
    config: Config,
    state: State,
    /// Failed connects and sessions since the last reset: the backoff exponent.
    failures: u32,
    /// Restart by itself after a failure (false once stopped or after a lost collision).
    auto_restart: bool,
    /// The current run listens only.
    passive_run: bool,
    armed: [bool; 5],
    negotiated: Option<Negotiated>,
    last_down: Option<DownReason>,
}

impl Fsm {
    /// A stopped session (Idle) for this config.
    pub fn new(config: Config) -> Result<Fsm, ConfigError> {
        config.validate()?;
        Ok(Fsm {
            config,
            state: State::Idle,
            failures: 0,
            auto_restart: false,
            passive_run: false,
            armed: [false; 5],
            negotiated: None,
            last_down: None,
        })
    }

    /// A session for a second, incoming connection to a peer whose session already has
    /// one: handed the connection at once. Returns the actions for it (send our OPEN, arm
    /// the hold timer). Drop it when it loses the collision; when it wins, it is the
    /// session from then on: after a failure it restarts as the config says (connecting
    /// unless `passive`), like one started with [`Event::ManualStart`].
    pub fn incoming(config: Config) -> Result<(Fsm, Vec<Action>), ConfigError> {
        let mut fsm = Fsm::new(config)?;
        let mut actions = fsm.handle(Event::PassiveStart);
        actions.extend(fsm.handle(Event::TcpConnectionConfirmed));
        fsm.passive_run = fsm.config.passive;
        Ok((fsm, actions))
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What was agreed with the peer, from its valid OPEN (OpenConfirm, Established).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Why the last connection ended, for status reporting.
    pub fn last_down(&self) -> Option<&DownReason> {
        self.last_down.as_ref()
    }

    /// The current wait before the next connect attempt or restart.
    pub fn retry_delay(&self) -> Duration {
        backoff(
            self.config.connect_retry,
            self.config.backoff_cap,
            self.failures,
        )
    }

    pub fn incoming_policy(&self) -> Incoming {
        match self.state {
            State::Idle | State::Established => Incoming::Refuse,
            State::Connect | State::Active => Incoming::Take,
            State::OpenSent | State::OpenConfirm => Incoming::Collide,
        }
    }

    /// Apply one event; returns the actions to perform, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        use Event::*;
        use State::*;

        let mut out = Vec::new();
        if let TimerExpired(timer) = event {
            if !self.armed[timer.index()] {
                return out;
            }
            self.armed[timer.index()] = false;
        }
        match (self.state, event) {
            (_, ManualStop) => self.stop(notify::cease::ADMINISTRATIVE_SHUTDOWN, &mut out),
            (_, Cease(subcode)) => self.stop(subcode, &mut out),
            (Idle, ManualStart) => {
                self.failures = 0;
                self.start(self.config.passive, &mut out);
            }
            (Idle, PassiveStart) => {
                self.failures = 0;
                self.start(true, &mut out);
            }
            (Idle, TimerExpired(Timer::IdleHold)) => self.start(self.passive_run, &mut out),

            (Connect | Active, TcpConnectionSucceeded | TcpConnectionConfirmed) => {
                self.cancel(Timer::ConnectRetry, &mut out);
                out.push(Action::Send(Message::Open(self.our_open())));
                self.arm(Timer::Hold, OPEN_SENT_HOLD, &mut out);
                self.state = OpenSent;
            }
            (Connect, TcpConnectionFails) => {
                self.failures = self.failures.saturating_add(1);
                self.arm(Timer::ConnectRetry, self.retry_delay(), &mut out);
                self.state = Active;
            }
            (Connect, TimerExpired(Timer::ConnectRetry)) => {
                self.failures = self.failures.saturating_add(1);
                out.push(Action::Connect);
                self.arm(Timer::ConnectRetry, self.retry_delay(), &mut out);
            }
            (Active, TimerExpired(Timer::ConnectRetry)) => {
                out.push(Action::Connect);
                self.arm(Timer::ConnectRetry, self.retry_delay(), &mut out);
                self.state = Connect;
            }

            (OpenSent, MessageReceived(Message::Open(open))) => {
                match negotiate(&self.config, &open) {
                    Ok(negotiated) => self.open_confirm(negotiated, &mut out),
                    Err(notification) => self.fail(notification, &mut out),
                }
            }
            (OpenConfirm, MessageReceived(Message::Keepalive)) => self.establish(&mut out),
            (Established, MessageReceived(Message::Keepalive | Message::Update(_))) => {
                self.restart_hold(&mut out);
            }
            (Established, MessageReceived(Message::RouteRefresh { afi, safi })) => {
                self.restart_hold(&mut out);
                self.route_refresh((afi, safi), &mut out);
            }
            (OpenSent | OpenConfirm | Established, MessageReceived(Message::Notification(n))) => {
                self.teardown(DownReason::NotificationReceived(n), &mut out);
            }
            (state @ (OpenSent | OpenConfirm | Established), MessageReceived(_)) => {
                let subcode = match state {
                    OpenSent => notify::fsm::UNEXPECTED_IN_OPENSENT,
                    OpenConfirm => notify::fsm::UNEXPECTED_IN_OPENCONFIRM,
                    _ => notify::fsm::UNEXPECTED_IN_ESTABLISHED,
                };
                let n = Notification::new(Notification::FSM_ERROR, subcode, Vec::new());
                self.fail(n, &mut out);
            }
            (OpenSent | OpenConfirm | Established, DecodeError(n)) => self.fail(n, &mut out),
            (OpenSent | OpenConfirm | Established, TcpConnectionFails) => {
                self.teardown(DownReason::ConnectionLost, &mut out);
            }
            (OpenSent | OpenConfirm | Established, TimerExpired(Timer::Hold)) => {
                let n = Notification::new(Notification::HOLD_TIMER_EXPIRED, 0, Vec::new());
                self.fail(n, &mut out);
            }
            (OpenConfirm | Established, TimerExpired(Timer::Keepalive)) => {
                out.push(Action::Send(Message::Keepalive));
                self.arm_keepalive(&mut out);
            }
            (Established, TimerExpired(Timer::BackoffReset)) => self.failures = 0,
            (OpenSent | OpenConfirm | Established, BfdDown) => {
                self.fail(Notification::cease(notify::cease::BFD_DOWN), &mut out);
            }
            (OpenSent | OpenConfirm | Established, CollisionLost) => {
                self.auto_restart = false;
                let n = Notification::cease(notify::cease::CONNECTION_COLLISION_RESOLUTION);
                self.close_with(Some(n.clone()), DownReason::NotificationSent(n), &mut out);
            }
            // Everything else is stale or out of place: a start while running, TCP news
            // for a connection this session does not own, messages with no connection
            // (left over from one already closed), timers of another state.
            _ => {}
        }
        out
    }

    fn arm(&mut self, timer: Timer, after: Duration, out: &mut Vec<Action>) {
        self.armed[timer.index()] = true;
        out.push(Action::ArmTimer(timer, after));
    }

    fn cancel(&mut self, timer: Timer, out: &mut Vec<Action>) {
        if std::mem::take(&mut self.armed[timer.index()]) {
            out.push(Action::CancelTimer(timer));
        }
    }

    fn cancel_all(&mut self, out: &mut Vec<Action>) {
        for timer in Timer::ALL {
            self.cancel(timer, out);
        }
    }

    fn start(&mut self, passive: bool, out: &mut Vec<Action>) {
        self.auto_restart = true;
        self.passive_run = passive;
        self.cancel(Timer::IdleHold, out);
        if passive {
            self.state = State::Active;
        } else {
            out.push(Action::Connect);
            self.arm(Timer::ConnectRetry, self.retry_delay(), out);
            self.state = State::Connect;
        }
    }

    fn stop(&mut self, cease_subcode: u8, out: &mut Vec<Action>) {
        self.auto_restart = false;
        self.failures = 0;
        match self.state {
            State::Idle => self.cancel_all(out),
            State::Connect | State::Active => {
                out.push(Action::Close);
                self.cancel_all(out);
                self.state = State::Idle;
            }
            _ => {
                let n = Notification::cease(cease_subcode);
                self.close_with(Some(n), DownReason::Stopped, out);
            }
        }
    }

    /// The peer's OPEN was acceptable: confirm it with a KEEPALIVE (RFC 4271 §8.2.2).
    fn open_confirm(&mut self, negotiated: Negotiated, out: &mut Vec<Action>) {
        out.push(Action::Send(Message::Keepalive));
        self.negotiated = Some(negotiated);
        self.restart_hold(out);
        self.arm_keepalive(out);
        self.state = State::OpenConfirm;
    }

    fn establish(&mut self, out: &mut Vec<Action>) {
        let Some(negotiated) = self.negotiated.clone() else {
            // Unreachable by construction (OpenConfirm is entered with the negotiation);
            // treated as an FSM error rather than trusted.
            let n = Notification::new(Notification::FSM_ERROR, 0, Vec::new());
            return self.fail(n, out);
        };
        self.restart_hold(out);
        self.arm(Timer::BackoffReset, self.config.backoff_reset_after, out);
        self.state = State::Established;
        let families = negotiated.families.clone();
        out.push(Action::Up(negotiated));
        out.push(Action::SendAdjRibOut {
            families,
            end_of_rib: true,
        });
    }

    fn route_refresh(&mut self, family: Family, out: &mut Vec<Action>) {
        let negotiated = self.negotiated.as_ref();
        // RFC 2918 §4: a refresh for a family not negotiated is ignored; so is one we never
        // offered to answer.
        if self.config.route_refresh && negotiated.is_some_and(|n| n.families.contains(&family)) {
            out.push(Action::SendAdjRibOut {
                families: vec![family],
                end_of_rib: false,
            });
        }
    }

    /// Restart the hold timer with the negotiated hold time (none when it is 0).
    fn restart_hold(&mut self, out: &mut Vec<Action>) {
        match self.negotiated.as_ref().map(|n| n.hold_time) {
            Some(hold) if hold > 0 => {
                self.arm(Timer::Hold, Duration::from_secs(u64::from(hold)), out)
            }
            _ => self.cancel(Timer::Hold, out),
        }
    }

    fn arm_keepalive(&mut self, out: &mut Vec<Action>) {
        if let Some(every) = self.negotiated.as_ref().and_then(|n| n.keepalive) {
            self.arm(Timer::Keepalive, every, out);
        }
    }

    /// A protocol error on our side of the judgement: tell the peer, then close.
    fn fail(&mut self, notification: Notification, out: &mut Vec<Action>) {
        let reason = DownReason::NotificationSent(notification.clone());
        self.close_with(Some(notification), reason, out);
    }

    /// The connection ended without a NOTIFICATION from us.
    fn teardown(&mut self, reason: DownReason, out: &mut Vec<Action>) {
        self.close_with(None, reason, out);
    }

    fn close_with(
        &mut self,
        notification: Option<Notification>,
        reason: DownReason,
        out: &mut Vec<Action>,
    ) {
        if let Some(n) = notification {
            out.push(Action::Send(Message::Notification(n)));
        }
        out.push(Action::Close);
        self.cancel_all(out);
        if self.state == State::Established {
            out.push(Action::Down(reason.clone()));
        }
        self.last_down = Some(reason);
        self.negotiated = None;
        self.state = State::Idle;
        // A stop or a lost collision is not a failure: nothing restarts by itself.
        if self.auto_restart {
            self.failures = self.failures.saturating_add(1);
            self.arm(Timer::IdleHold, self.retry_delay(), out);
        }
    }

    /// The OPEN we send.
    fn our_open(&self) -> Open {
        let c = &self.config;
        let mut capabilities: Vec<Capability> = c
            .families
            .iter()
            .map(|&(afi, safi)| Capability::Multiprotocol { afi, safi })
            .collect();
        if c.route_refresh {
            capabilities.push(Capability::RouteRefresh);
        }
        capabilities.push(Capability::FourOctetAs(c.local_asn));
        if let Some(gr) = c.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestart {
                restart_state: gr.restarted,
                restart_time: gr.restart_time,
                // The node keeps forwarding to its service IPs while the speaker
                // restarts (the data plane is the kernel's), so the peer may keep using
                // our routes: the F bit is set for every family.
                families: c
                    .families
                    .iter()
                    .map(|&(afi, safi)| GracefulRestartFamily {
                        afi,
                        safi,
                        forwarding_preserved: true,
                    })
                    .collect(),
            }));
        }
        Open {
            version: BGP_VERSION,
            asn: c.local_asn,
            hold_time: c.hold_time,
            router_id: c.router_id,
            capabilities,
        }
    }
}

/// `base * 2^(failures - 1)`, at most `cap` (base itself for 0 and 1 failures; a cap
/// below base means no growth).
pub fn backoff(base: Duration, cap: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    base.checked_mul(1u32 << doublings)
        .unwrap_or(Duration::MAX)
        .min(cap.max(base))
}

/// Check the peer's OPEN against our config (RFC 4271 §6.2, RFC 6793, RFC 5492, RFC 4760)
/// and work out the session parameters, or the NOTIFICATION that rejects it.
pub fn negotiate(config: &Config, open: &Open) -> Result<Negotiated, Notification> {
    let open_error = |subcode, data| {
        Err(Notification::new(
            Notification::OPEN_MESSAGE_ERROR,
            subcode,
            data,
        ))
    };

    if open.version != BGP_VERSION {
        // The data is the largest version we support (RFC 4271 §6.2).
        return open_error(
            notify::open::UNSUPPORTED_VERSION_NUMBER,
            u16::from(BGP_VERSION).to_be_bytes().to_vec(),
        );
    }

    let four_octet = open.capabilities.iter().find_map(|c| match c {
        Capability::FourOctetAs(asn) => Some(*asn),
        _ => None,
    });
    let peer_asn = four_octet.unwrap_or(open.asn);
    let acceptable = peer_asn != 0
        // AS_TRANS without the capability hides the real AS: nothing to check it against.
        && !(four_octet.is_none() && peer_asn == u32::from(AS_TRANS))
        && match config.peer_asn {
            PeerAsn::Fixed(asn) => peer_asn == asn,
            PeerAsn::Internal => peer_asn == config.local_asn,
            PeerAsn::External => peer_asn != config.local_asn,
        };
    if !acceptable {
        return open_error(notify::open::BAD_PEER_AS, Vec::new());
    }
    let internal = peer_asn == config.local_asn;

    if matches!(open.hold_time, 1 | 2) {
        return open_error(notify::open::UNACCEPTABLE_HOLD_TIME, Vec::new());
    }

    // RFC 6286 §2.2: any non-zero identifier, but not ours from an internal peer.
    if open.router_id.is_unspecified() || (internal && open.router_id == config.router_id) {
        return open_error(notify::open::BAD_BGP_IDENTIFIER, Vec::new());
    }

    // A peer announcing no multiprotocol capability speaks IPv4 unicast only (RFC 4760 §7).
    let theirs = open.families();
    let offered = |f: &Family| {
        if theirs.is_empty() {
            *f == IPV4_UNICAST
        } else {
            theirs.contains(f)
        }
    };
    let families: Vec<Family> = config.families.iter().copied().filter(offered).collect();
    if families.is_empty() {
        // RFC 5492 §5: the data lists the capabilities we needed, as encoded in OPEN.
        let mut data = Vec::new();
        for (afi, safi) in &config.families {
            data.extend_from_slice(&[Capability::MULTIPROTOCOL, 4]);
            data.extend_from_slice(&afi.0.to_be_bytes());
            data.extend_from_slice(&[0, safi.0]);
        }
        return open_error(notify::open::UNSUPPORTED_CAPABILITY, data);
    }

    let hold_time = config.hold_time.min(open.hold_time);
    let keepalive = if hold_time == 0 {
        None
    } else {
        let wanted = config.keepalive_wanted();
        let most = Duration::from_secs(u64::from(hold_time)) / 3;
        Some(wanted.min(most)).filter(|k| !k.is_zero())
    };

    Ok(Negotiated {
        hold_time,
        keepalive,
        peer_asn,
        peer_router_id: open.router_id,
        internal,
        four_octet_as: four_octet.is_some(),
        families,
        route_refresh: config.route_refresh && open.route_refresh(),
        peer_graceful_restart: open.graceful_restart().cloned(),
    })
}

/// Which side opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// A speaker's identity for collision resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Speaker {
    pub router_id: Ipv4Addr,
    pub asn: u32,
}

/// One of two connections to the same peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    pub direction: Direction,
    pub state: State,
}

/// The outcome of [`resolve_collision`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collision {
    /// At most one of the two has a BGP connection: nothing to settle.
    None,
    /// Keep the existing connection; the new one gets [`Event::CollisionLost`].
    KeepExisting,
    /// Keep the new connection; the existing one gets [`Event::CollisionLost`].
    KeepNew,
}

/// Settle two connections to one peer (RFC 4271 §6.8), called once the peer's identifier
/// is known from an OPEN on either. An Established connection always stays. Otherwise the
/// connection opened by the speaker with the higher BGP identifier stays, so both ends
/// choose the same one; equal identifiers (allowed between ASes) fall back to the higher
/// AS number (RFC 6286 §2.3).
pub fn resolve_collision(
    local: Speaker,
    remote: Speaker,
    existing: Connection,
    new: Connection,
) -> Collision {
    if !existing.state.has_connection() || !new.state.has_connection() {
        return Collision::None;
    }
    if existing.state == State::Established {
        return Collision::KeepExisting;
    }
    if new.state == State::Established {
        return Collision::KeepNew;
    }
    let ours = (u32::from(local.router_id), local.asn);
    let theirs = (u32::from(remote.router_id), remote.asn);
    if existing.direction == new.direction || ours == theirs {
        return Collision::KeepExisting;
    }
    let winner = if ours > theirs {
        Direction::Outgoing
    } else {
        Direction::Incoming
    };
    if existing.direction == winner {
        Collision::KeepExisting
    } else {
        Collision::KeepNew
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::message::Update;

    const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

    fn cfg() -> Config {
        Config::new(64512, PeerAsn::Fixed(64513), LOCAL_ID)
    }

    fn peer_open(asn: u32, hold: u16) -> Open {
        Open {
            version: BGP_VERSION,
            asn,
            hold_time: hold,
            router_id: PEER_ID,
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(asn),
            ],
        }
    }

    fn open_error(subcode: u8) -> Notification {
        Notification::new(Notification::OPEN_MESSAGE_ERROR, subcode, Vec::new())
    }

    fn sent_notification(actions: &[Action]) -> Option<&Notification> {
        actions.iter().find_map(|a| match a {
            Action::Send(Message::Notification(n)) => Some(n),
            _ => None,
        })
    }

    fn armed(actions: &[Action], timer: Timer) -> Option<Duration> {
        actions.iter().rev().find_map(|a| match a {
            Action::ArmTimer(t, d) if *t == timer => Some(*d),
            _ => None,
        })
    }

    fn open_sent(config: Config) -> Fsm {
        let mut fsm = Fsm::new(config).unwrap();
        fsm.handle(Event::ManualStart);
        fsm.handle(Event::TcpConnectionSucceeded);
        assert_eq!(fsm.state(), State::OpenSent);
        fsm
    }

    fn open_confirm(config: Config, open: Open) -> Fsm {
        let mut fsm = open_sent(config);
        fsm.handle(Event::MessageReceived(Message::Open(open)));
        assert_eq!(fsm.state(), State::OpenConfirm);
        fsm
    }

    fn established(config: Config) -> Fsm {
        let mut fsm = open_confirm(config, peer_open(64513, 90));
        fsm.handle(Event::MessageReceived(Message::Keepalive));
        assert_eq!(fsm.state(), State::Established);
        fsm
    }

    /// Feed the peer's OPEN in OpenSent; the negotiation or the NOTIFICATION sent.
    fn try_open(config: Config, open: Open) -> Result<Negotiated, Notification> {
        let mut fsm = open_sent(config);
        let actions = fsm.handle(Event::MessageReceived(Message::Open(open)));
        match sent_notification(&actions) {
            Some(n) => {
                assert_eq!(fsm.state(), State::Idle);
                Err(n.clone())
            }
            None => {
                assert_eq!(fsm.state(), State::OpenConfirm);
                Ok(fsm.negotiated().unwrap().clone())
            }
        }
    }

    #[test]
    fn start_connects_and_arms_connect_retry() {
        let mut fsm = Fsm::new(cfg()).unwrap();
        assert_eq!(fsm.incoming_policy(), Incoming::Refuse);
        let actions = fsm.handle(Event::ManualStart);
        assert_eq!(
            actions,
            vec![
                Action::Connect,
                Action::ArmTimer(Timer::ConnectRetry, Duration::from_secs(5))
            ]
        );
        assert_eq!(fsm.state(), State::Connect);
        assert_eq!(fsm.incoming_policy(), Incoming::Take);
        // A second start changes nothing.
        assert!(fsm.handle(Event::ManualStart).is_empty());
        assert_eq!(fsm.state(), State::Connect);
    }

    #[test]
    fn passive_start_only_listens() {
        let mut config = cfg();
        config.passive = true;
        let mut fsm = Fsm::new(config).unwrap();
        assert!(fsm.handle(Event::ManualStart).is_empty());
        assert_eq!(fsm.state(), State::Active);
        assert_eq!(fsm.incoming_policy(), Incoming::Take);

        // PassiveStart listens even when the config would connect.
        let mut fsm = Fsm::new(cfg()).unwrap();
        assert!(fsm.handle(Event::PassiveStart).is_empty());
        assert_eq!(fsm.state(), State::Active);
        let actions = fsm.handle(Event::TcpConnectionConfirmed);
        assert!(matches!(actions[0], Action::Send(Message::Open(_))));
        assert_eq!(fsm.state(), State::OpenSent);
    }

    #[test]
    fn connection_sends_our_open() {
        let mut config = cfg();
        config.local_asn = 4_200_000_000;
        config.families = vec![IPV4_UNICAST, IPV6_UNICAST];
        config.hold_time = 30;
        config.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 120,
            restarted: true,
        });
        let mut fsm = Fsm::new(config).unwrap();
        fsm.handle(Event::ManualStart);
        let actions = fsm.handle(Event::TcpConnectionSucceeded);
        let gr_family = |afi| GracefulRestartFamily {
            afi,
            safi: Safi::UNICAST,
            forwarding_preserved: true,
        };
        let open = Open {
            version: 4,
            asn: 4_200_000_000,
            hold_time: 30,
            router_id: LOCAL_ID,
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                },
                Capability::Multiprotocol {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_000),
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: true,
                    restart_time: 120,
                    families: vec![gr_family(Afi::IPV4), gr_family(Afi::IPV6)],
                }),
            ],
        };
        assert_eq!(
            actions,
            vec![
                Action::CancelTimer(Timer::ConnectRetry),
                Action::Send(Message::Open(open)),
                Action::ArmTimer(Timer::Hold, OPEN_SENT_HOLD),
            ]
        );
        assert_eq!(fsm.state(), State::OpenSent);
        assert_eq!(fsm.incoming_policy(), Incoming::Collide);
    }

    #[test]
    fn open_then_keepalive_establishes() {
        let mut fsm = open_sent(cfg());
        let actions = fsm.handle(Event::MessageReceived(Message::Open(peer_open(64513, 90))));
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Keepalive),
                Action::ArmTimer(Timer::Hold, Duration::from_secs(90)),
                Action::ArmTimer(Timer::Keepalive, Duration::from_secs(30)),
            ]
        );
        assert_eq!(fsm.state(), State::OpenConfirm);

        let actions = fsm.handle(Event::MessageReceived(Message::Keepalive));
        let negotiated = Negotiated {
            hold_time: 90,
            keepalive: Some(Duration::from_secs(30)),
            peer_asn: 64513,
            peer_router_id: PEER_ID,
            internal: false,
            four_octet_as: true,
            families: vec![IPV4_UNICAST],
            route_refresh: true,
            peer_graceful_restart: None,
        };
        assert_eq!(
            actions,
            vec![
                Action::ArmTimer(Timer::Hold, Duration::from_secs(90)),
                Action::ArmTimer(Timer::BackoffReset, Duration::from_secs(60)),
                Action::Up(negotiated.clone()),
                Action::SendAdjRibOut {
                    families: vec![IPV4_UNICAST],
                    end_of_rib: true
                },
            ]
        );
        assert_eq!(fsm.state(), State::Established);
        assert_eq!(fsm.negotiated(), Some(&negotiated));
        assert_eq!(fsm.incoming_policy(), Incoming::Refuse);
    }

    #[test]
    fn hold_and_keepalive_arithmetic() {
        // (our hold, our keepalive, their hold) -> (hold, keepalive)
        type Case = (u16, Option<Duration>, u16, u16, Option<Duration>);
        let cases: [Case; 9] = [
            (90, None, 90, 90, Some(Duration::from_secs(30))),
            (90, None, 30, 30, Some(Duration::from_secs(10))),
            (90, None, 180, 90, Some(Duration::from_secs(30))),
            (
                90,
                Some(Duration::from_secs(10)),
                180,
                90,
                Some(Duration::from_secs(10)),
            ),
            (
                90,
                Some(Duration::from_secs(60)),
                9,
                9,
                Some(Duration::from_secs(3)),
            ),
            // Not whole seconds: a third of 4 s.
            (
                4,
                None,
                90,
                4,
                Some(Duration::from_millis(1333) + Duration::from_nanos(333_333)),
            ),
            // Hold 0 on either side: no keepalives, no hold timer.
            (0, None, 90, 0, None),
            (90, None, 0, 0, None),
            // Keepalive 0: none sent.
            (90, Some(Duration::ZERO), 90, 90, None),
        ];
        for (ours, keepalive, theirs, hold, expected_keepalive) in cases {
            let mut config = cfg();
            config.hold_time = ours;
            config.keepalive_time = keepalive;
            let n = try_open(config, peer_open(64513, theirs)).unwrap();
            assert_eq!(n.hold_time, hold, "ours {ours} theirs {theirs}");
            assert_eq!(
                n.keepalive, expected_keepalive,
                "ours {ours} theirs {theirs}"
            );
        }
    }

    #[test]
    fn zero_hold_time_runs_without_timers() {
        let mut config = cfg();
        config.hold_time = 0;
        let mut fsm = open_sent(config);
        let actions = fsm.handle(Event::MessageReceived(Message::Open(peer_open(64513, 90))));
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Keepalive),
                Action::CancelTimer(Timer::Hold)
            ]
        );
        let actions = fsm.handle(Event::MessageReceived(Message::Keepalive));
        assert_eq!(armed(&actions, Timer::Hold), None);
        assert_eq!(fsm.state(), State::Established);
        // Nothing is armed that could fire, and messages arm nothing.
        assert!(
            fsm.handle(Event::MessageReceived(Message::Keepalive))
                .is_empty()
        );
        assert!(fsm.handle(Event::TimerExpired(Timer::Hold)).is_empty());
        assert!(fsm.handle(Event::TimerExpired(Timer::Keepalive)).is_empty());
        assert_eq!(fsm.state(), State::Established);
    }

    #[test]
    fn keepalive_timer_sends_and_rearms() {
        let mut fsm = established(cfg());
        let actions = fsm.handle(Event::TimerExpired(Timer::Keepalive));
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Keepalive),
                Action::ArmTimer(Timer::Keepalive, Duration::from_secs(30))
            ]
        );
        // In OpenConfirm too.
        let mut fsm = open_confirm(cfg(), peer_open(64513, 90));
        let actions = fsm.handle(Event::TimerExpired(Timer::Keepalive));
        assert_eq!(actions[0], Action::Send(Message::Keepalive));
        assert_eq!(fsm.state(), State::OpenConfirm);
    }

    #[test]
    fn received_messages_restart_the_hold_timer() {
        let mut fsm = established(cfg());
        let hold = Action::ArmTimer(Timer::Hold, Duration::from_secs(90));
        assert_eq!(
            fsm.handle(Event::MessageReceived(Message::Keepalive)),
            vec![hold.clone()]
        );
        assert_eq!(
            fsm.handle(Event::MessageReceived(Message::Update(Update::default()))),
            vec![hold]
        );
        assert_eq!(fsm.state(), State::Established);
    }

    #[test]
    fn families_are_the_intersection() {
        let with_families = |families: &[Family]| {
            let mut open = peer_open(64513, 90);
            open.capabilities
                .retain(|c| !matches!(c, Capability::Multiprotocol { .. }));
            for &(afi, safi) in families {
                open.capabilities
                    .push(Capability::Multiprotocol { afi, safi });
            }
            open
        };
        let mut dual = cfg();
        dual.families = vec![IPV4_UNICAST, IPV6_UNICAST];

        let n = try_open(dual.clone(), with_families(&[IPV6_UNICAST])).unwrap();
        assert_eq!(n.families, vec![IPV6_UNICAST]);
        let n = try_open(dual.clone(), with_families(&[IPV6_UNICAST, IPV4_UNICAST])).unwrap();
        assert_eq!(n.families, vec![IPV4_UNICAST, IPV6_UNICAST]);
        // No multiprotocol capability at all: IPv4 unicast implied.
        let n = try_open(dual, with_families(&[])).unwrap();
        assert_eq!(n.families, vec![IPV4_UNICAST]);

        let mut v6 = cfg();
        v6.families = vec![IPV6_UNICAST];
        let err = try_open(v6.clone(), with_families(&[])).unwrap_err();
        assert_eq!(
            err,
            Notification::new(2, 7, vec![1, 4, 0, 2, 0, 1]),
            "Unsupported Capability listing our IPv6 unicast capability"
        );
        let multicast = (Afi::IPV4, Safi::MULTICAST);
        assert!(try_open(v6, with_families(&[IPV4_UNICAST, multicast])).is_err());
    }

    #[test]
    fn peer_as_checks() {
        // Fixed AS: only that one.
        assert_eq!(
            try_open(cfg(), peer_open(64514, 90)).unwrap_err(),
            open_error(notify::open::BAD_PEER_AS)
        );
        assert_eq!(
            try_open(cfg(), peer_open(0, 90)).unwrap_err(),
            open_error(notify::open::BAD_PEER_AS)
        );

        // 4-octet AS: the capability carries the real one, the OPEN field AS_TRANS.
        let mut config = cfg();
        config.peer_asn = PeerAsn::Fixed(4_200_000_000);
        let mut open = peer_open(4_200_000_000, 90);
        open.asn = u32::from(AS_TRANS);
        let n = try_open(config.clone(), open.clone()).unwrap();
        assert_eq!(n.peer_asn, 4_200_000_000);
        assert!(n.four_octet_as);
        // AS_TRANS with no capability: the real AS is unknown.
        open.capabilities
            .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        config.peer_asn = PeerAsn::External;
        assert_eq!(
            try_open(config, open).unwrap_err(),
            open_error(notify::open::BAD_PEER_AS)
        );

        // A 2-octet-only peer.
        let mut open = peer_open(64513, 90);
        open.capabilities
            .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        let n = try_open(cfg(), open).unwrap();
        assert_eq!(n.peer_asn, 64513);
        assert!(!n.four_octet_as);

        // Dynamic: internal means ours, external anything else.
        let mut internal = cfg();
        internal.peer_asn = PeerAsn::Internal;
        let n = try_open(internal.clone(), peer_open(64512, 90)).unwrap();
        assert!(n.internal);
        assert!(try_open(internal, peer_open(64513, 90)).is_err());
        let mut external = cfg();
        external.peer_asn = PeerAsn::External;
        let n = try_open(external.clone(), peer_open(65000, 90)).unwrap();
        assert_eq!(n.peer_asn, 65000);
        assert!(!n.internal);
        assert_eq!(
            try_open(external, peer_open(64512, 90)).unwrap_err(),
            open_error(notify::open::BAD_PEER_AS)
        );
    }

    #[test]
    fn version_hold_time_and_identifier_checks() {
        let mut open = peer_open(64513, 90);
        open.version = 3;
        assert_eq!(
            try_open(cfg(), open).unwrap_err(),
            Notification::new(2, 1, vec![0, 4])
        );

        for hold in [1, 2] {
            assert_eq!(
                try_open(cfg(), peer_open(64513, hold)).unwrap_err(),
                open_error(notify::open::UNACCEPTABLE_HOLD_TIME)
            );
        }
        for hold in [0, 3, u16::MAX] {
            assert!(try_open(cfg(), peer_open(64513, hold)).is_ok());
        }

        let mut open = peer_open(64513, 90);
        open.router_id = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            try_open(cfg(), open).unwrap_err(),
            open_error(notify::open::BAD_BGP_IDENTIFIER)
        );
        // Our own identifier: an error from an internal peer only (RFC 6286).
        let mut ibgp = cfg();
        ibgp.peer_asn = PeerAsn::Fixed(64512);
        let mut open = peer_open(64512, 90);
        open.router_id = LOCAL_ID;
        assert_eq!(
            try_open(ibgp, open).unwrap_err(),
            open_error(notify::open::BAD_BGP_IDENTIFIER)
        );
        let mut open = peer_open(64513, 90);
        open.router_id = LOCAL_ID;
        assert!(try_open(cfg(), open).is_ok());
    }

    #[test]
    fn capabilities_reported_in_negotiation() {
        let mut open = peer_open(64513, 90);
        let gr = GracefulRestart {
            restart_state: false,
            restart_time: 300,
            families: vec![GracefulRestartFamily {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
                forwarding_preserved: true,
            }],
        };
        open.capabilities
            .push(Capability::GracefulRestart(gr.clone()));
        open.capabilities.push(Capability::Unknown {
            code: 73,
            data: vec![1, 2, 3],
        });
        let n = try_open(cfg(), open.clone()).unwrap();
        assert_eq!(n.peer_graceful_restart, Some(gr));
        assert!(n.route_refresh);

        let mut no_refresh = cfg();
        no_refresh.route_refresh = false;
        assert!(!try_open(no_refresh, open.clone()).unwrap().route_refresh);
        open.capabilities.retain(|c| *c != Capability::RouteRefresh);
        assert!(!try_open(cfg(), open).unwrap().route_refresh);
    }

    /// The OPEN error closes the connection after the NOTIFICATION and backs off.
    #[test]
    fn bad_open_notifies_closes_and_backs_off() {
        let mut fsm = open_sent(cfg());
        let actions = fsm.handle(Event::MessageReceived(Message::Open(peer_open(64999, 90))));
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Notification(open_error(notify::open::BAD_PEER_AS))),
                Action::Close,
                Action::CancelTimer(Timer::Hold),
                Action::ArmTimer(Timer::IdleHold, Duration::from_secs(5)),
            ]
        );
        assert_eq!(fsm.state(), State::Idle);
        assert_eq!(
            fsm.last_down(),
            Some(&DownReason::NotificationSent(open_error(
                notify::open::BAD_PEER_AS
            )))
        );
        assert_eq!(fsm.incoming_policy(), Incoming::Refuse);
        // Backoff over: starts again by itself.
        let actions = fsm.handle(Event::TimerExpired(Timer::IdleHold));
        assert_eq!(actions[0], Action::Connect);
        assert_eq!(fsm.state(), State::Connect);
    }

    #[test]
    fn unexpected_messages_are_fsm_errors() {
        let update = || Message::Update(Update::default());
        let refresh = || Message::RouteRefresh {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
        };
        let fsm_error = |subcode| Notification::new(Notification::FSM_ERROR, subcode, vec![]);
        let cases: Vec<(Fsm, Message, u8)> = vec![
            (open_sent(cfg()), Message::Keepalive, 1),
            (open_sent(cfg()), update(), 1),
            (open_sent(cfg()), refresh(), 1),
            (open_confirm(cfg(), peer_open(64513, 90)), update(), 2),
            (
                open_confirm(cfg(), peer_open(64513, 90)),
                Message::Open(peer_open(64513, 90)),
                2,
            ),
            (open_confirm(cfg(), peer_open(64513, 90)), refresh(), 2),
            (established(cfg()), Message::Open(peer_open(64513, 90)), 3),
        ];
        for (mut fsm, message, subcode) in cases {
            let was = fsm.state();
            let actions = fsm.handle(Event::MessageReceived(message.clone()));
            assert_eq!(
                actions[..2],
                [
                    Action::Send(Message::Notification(fsm_error(subcode))),
                    Action::Close
                ],
                "{message:?} in {was}"
            );
            assert_eq!(fsm.state(), State::Idle);
            assert_eq!(
                actions.contains(&Action::Down(DownReason::NotificationSent(fsm_error(
                    subcode
                )))),
                was == State::Established
            );
        }
    }

    #[test]
    fn hold_timer_expiry_sends_hold_timer_expired() {
        let expired = Notification::new(Notification::HOLD_TIMER_EXPIRED, 0, vec![]);
        for mut fsm in [
            open_sent(cfg()),
            open_confirm(cfg(), peer_open(64513, 90)),
            established(cfg()),
        ] {
            let was = fsm.state();
            let actions = fsm.handle(Event::TimerExpired(Timer::Hold));
            assert_eq!(
                actions[..2],
                [
                    Action::Send(Message::Notification(expired.clone())),
                    Action::Close
                ]
            );
            assert_eq!(fsm.state(), State::Idle);
            assert_eq!(
                armed(&actions, Timer::IdleHold),
                Some(Duration::from_secs(5))
            );
            if was == State::Established {
                assert!(
                    actions.contains(&Action::Down(DownReason::NotificationSent(expired.clone())))
                );
            }
        }
    }

    #[test]
    fn decode_error_sends_its_notification() {
        let bad_length = Notification::new(
            Notification::MESSAGE_HEADER_ERROR,
            notify::header::BAD_MESSAGE_LENGTH,
            vec![0x10, 0x01],
        );
        let mut fsm = established(cfg());
        let actions = fsm.handle(Event::DecodeError(bad_length.clone()));
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Notification(bad_length.clone())),
                Action::Close,
                Action::CancelTimer(Timer::Hold),
                Action::CancelTimer(Timer::Keepalive),
                Action::CancelTimer(Timer::BackoffReset),
                Action::Down(DownReason::NotificationSent(bad_length)),
                Action::ArmTimer(Timer::IdleHold, Duration::from_secs(5)),
            ]
        );
        // Without a connection there is nobody to tell.
        let mut fsm = Fsm::new(cfg()).unwrap();
        fsm.handle(Event::ManualStart);
        let n = Notification::new(1, 1, vec![]);
        assert!(fsm.handle(Event::DecodeError(n)).is_empty());
        assert_eq!(fsm.state(), State::Connect);
    }

    #[test]
    fn notification_received_closes_without_answer() {
        let cease = Notification::cease(notify::cease::ADMINISTRATIVE_RESET);
        let mut fsm = established(cfg());
        let actions = fsm.handle(Event::MessageReceived(Message::Notification(cease.clone())));
        assert_eq!(sent_notification(&actions), None);
        assert_eq!(actions[0], Action::Close);
        assert!(actions.contains(&Action::Down(DownReason::NotificationReceived(cease))));
        assert_eq!(fsm.state(), State::Idle);

        let mut fsm = open_sent(cfg());
        let actions = fsm.handle(Event::MessageReceived(Message::Notification(open_error(
            notify::open::BAD_PEER_AS,
        ))));
        assert_eq!(actions[0], Action::Close);
        assert!(!actions.iter().any(|a| matches!(a, Action::Down(_))));
        assert_eq!(
            fsm.last_down(),
            Some(&DownReason::NotificationReceived(open_error(
                notify::open::BAD_PEER_AS
            )))
        );
    }

    #[test]
    fn connection_loss_closes_and_reports() {
        let mut fsm = established(cfg());
        let actions = fsm.handle(Event::TcpConnectionFails);
        assert_eq!(sent_notification(&actions), None);
        assert_eq!(actions[0], Action::Close);
        assert!(actions.contains(&Action::Down(DownReason::ConnectionLost)));
        assert_eq!(fsm.state(), State::Idle);
        assert_eq!(fsm.last_down(), Some(&DownReason::ConnectionLost));
    }

    #[test]
    fn bfd_down_ceases_at_once_and_reconnects_with_backoff() {
        let bfd_down = Notification::cease(notify::cease::BFD_DOWN);
        let mut fsm = established(cfg());
        let actions = fsm.handle(Event::BfdDown);
        assert_eq!(sent_notification(&actions), Some(&bfd_down));
        assert_eq!(actions[1], Action::Close);
        assert!(actions.contains(&Action::Down(DownReason::NotificationSent(
            bfd_down.clone()
        ))));
        assert_eq!(fsm.state(), State::Idle);
        // Not a stop: the usual back-off, then a new connection by itself.
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::ArmTimer(Timer::IdleHold, _)))
        );
        let actions = fsm.handle(Event::TimerExpired(Timer::IdleHold));
        assert_eq!(actions[0], Action::Connect);
        // Before the session is up BFD has nothing to end; while connecting it is ignored.
        assert!(fsm.handle(Event::BfdDown).is_empty());
        assert_eq!(fsm.state(), State::Connect);
        let mut fsm = open_sent(cfg());
        let actions = fsm.handle(Event::BfdDown);
        assert_eq!(sent_notification(&actions), Some(&bfd_down));
        assert!(!actions.iter().any(|a| matches!(a, Action::Down(_))));
        assert!(bfd_down.to_string().contains("BFD down"), "{bfd_down}");
    }

    #[test]
    fn manual_stop() {
        let shutdown = Notification::cease(notify::cease::ADMINISTRATIVE_SHUTDOWN);
        let mut fsm = established(cfg());
        let actions = fsm.handle(Event::ManualStop);
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Notification(shutdown)),
                Action::Close,
                Action::CancelTimer(Timer::Hold),
                Action::CancelTimer(Timer::Keepalive),
                Action::CancelTimer(Timer::BackoffReset),
                Action::Down(DownReason::Stopped),
            ]
        );
        assert_eq!(fsm.state(), State::Idle);

        // While connecting: abandon the attempt, nothing to tell.
        let mut fsm = Fsm::new(cfg()).unwrap();
        fsm.handle(Event::ManualStart);
        assert_eq!(
            fsm.handle(Event::ManualStop),
            vec![Action::Close, Action::CancelTimer(Timer::ConnectRetry)]
        );
        assert_eq!(fsm.state(), State::Idle);
        assert!(fsm.handle(Event::ManualStop).is_empty());

        // While backing off: no restart.
        let mut fsm = open_sent(cfg());
        fsm.handle(Event::TcpConnectionFails);
        assert_eq!(
            fsm.handle(Event::ManualStop),
            vec![Action::CancelTimer(Timer::IdleHold)]
        );
        assert!(fsm.handle(Event::TimerExpired(Timer::IdleHold)).is_empty());
        assert_eq!(fsm.state(), State::Idle);

        // Another Cease subcode for a removed peer.
        let deconfigured = Notification::cease(notify::cease::PEER_DECONFIGURED);
        let mut fsm = open_confirm(cfg(), peer_open(64513, 90));
        let actions = fsm.handle(Event::Cease(notify::cease::PEER_DECONFIGURED));
        assert_eq!(
            actions[..2],
            [
                Action::Send(Message::Notification(deconfigured)),
                Action::Close
            ]
        );
        assert_eq!(armed(&actions, Timer::IdleHold), None);
        assert_eq!(fsm.state(), State::Idle);
        assert_eq!(fsm.last_down(), Some(&DownReason::Stopped));
    }

    #[test]
    fn route_refresh_resends_the_family() {
        let mut config = cfg();
        config.families = vec![IPV4_UNICAST, IPV6_UNICAST];
        let mut open = peer_open(64513, 90);
        open.capabilities.push(Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
        });
        let mut fsm = open_confirm(config.clone(), open);
        let actions = fsm.handle(Event::MessageReceived(Message::Keepalive));
        assert!(actions.contains(&Action::SendAdjRibOut {
            families: vec![IPV4_UNICAST, IPV6_UNICAST],
            end_of_rib: true
        }));
        let refresh =
            |(afi, safi): Family| Event::MessageReceived(Message::RouteRefresh { afi, safi });
        assert_eq!(
            fsm.handle(refresh(IPV6_UNICAST)),
            vec![
                Action::ArmTimer(Timer::Hold, Duration::from_secs(90)),
                Action::SendAdjRibOut {
                    families: vec![IPV6_UNICAST],
                    end_of_rib: false
                }
            ]
        );
        // A family that was not negotiated is ignored (RFC 2918 §4).
        assert_eq!(
            fsm.handle(refresh((Afi::IPV4, Safi::MULTICAST))),
            vec![Action::ArmTimer(Timer::Hold, Duration::from_secs(90))]
        );
        assert_eq!(fsm.state(), State::Established);

        // Route refresh not offered: ignored.
        config.route_refresh = false;
        let mut fsm = established(config);
        let actions = fsm.handle(refresh(IPV4_UNICAST));
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::SendAdjRibOut { .. }))
        );
    }

    #[test]
    fn backoff_sequence() {
        let secs = |n| backoff(Duration::from_secs(5), Duration::from_secs(120), n).as_secs();
        let seq: Vec<u64> = (0..9).map(secs).collect();
        assert_eq!(seq, vec![5, 5, 10, 20, 40, 80, 120, 120, 120]);
        assert_eq!(secs(u32::MAX), 120);
        // A cap below the base: no growth, never shorter than the base.
        assert_eq!(
            backoff(Duration::from_secs(10), Duration::from_secs(1), 5),
            Duration::from_secs(10)
        );
        assert_eq!(backoff(Duration::MAX, Duration::MAX, 40), Duration::MAX);
    }

    #[test]
    fn failed_connects_back_off() {
        let mut fsm = Fsm::new(cfg()).unwrap();
        let actions = fsm.handle(Event::ManualStart);
        assert_eq!(
            armed(&actions, Timer::ConnectRetry),
            Some(Duration::from_secs(5))
        );
        let mut waits = Vec::new();
        for _ in 0..4 {
            // Refused: wait in Active, then try again.
            let actions = fsm.handle(Event::TcpConnectionFails);
            assert_eq!(fsm.state(), State::Active);
            waits.push(armed(&actions, Timer::ConnectRetry).unwrap().as_secs());
            let actions = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
            assert_eq!(actions[0], Action::Connect);
            assert_eq!(fsm.state(), State::Connect);
        }
        // Timed out (no answer at all): a new attempt at once, with a longer deadline.
        let actions = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
        assert_eq!(actions[0], Action::Connect);
        waits.push(armed(&actions, Timer::ConnectRetry).unwrap().as_secs());
        assert_eq!(waits, vec![5, 10, 20, 40, 80]);
        assert_eq!(fsm.state(), State::Connect);
    }

    #[test]
    fn failed_sessions_back_off_until_one_lasts() {
        let mut fsm = Fsm::new(cfg()).unwrap();
        fsm.handle(Event::ManualStart);
        let mut waits = Vec::new();
        for _ in 0..7 {
            fsm.handle(Event::TcpConnectionSucceeded);
            let actions = fsm.handle(Event::TimerExpired(Timer::Hold));
            assert_eq!(fsm.state(), State::Idle);
            waits.push(armed(&actions, Timer::IdleHold).unwrap().as_secs());
            fsm.handle(Event::TimerExpired(Timer::IdleHold));
        }
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 120, 120]);

        // A session that drops before the reset timer keeps the count...
        fsm.handle(Event::TcpConnectionSucceeded);
        fsm.handle(Event::MessageReceived(Message::Open(peer_open(64513, 90))));
        fsm.handle(Event::MessageReceived(Message::Keepalive));
        assert_eq!(fsm.state(), State::Established);
        let actions = fsm.handle(Event::TcpConnectionFails);
        assert_eq!(
            armed(&actions, Timer::IdleHold),
            Some(Duration::from_secs(120))
        );

        // ...one that lasts resets it.
        fsm.handle(Event::TimerExpired(Timer::IdleHold));
        fsm.handle(Event::TcpConnectionSucceeded);
        fsm.handle(Event::MessageReceived(Message::Open(peer_open(64513, 90))));
        fsm.handle(Event::MessageReceived(Message::Keepalive));
        assert!(
            fsm.handle(Event::TimerExpired(Timer::BackoffReset))
                .is_empty()
        );
        let actions = fsm.handle(Event::TcpConnectionFails);
        assert_eq!(
            armed(&actions, Timer::IdleHold),
            Some(Duration::from_secs(5))
        );

        // A manual restart starts over as well.
        let mut fsm = Fsm::new(cfg()).unwrap();
        fsm.handle(Event::ManualStart);
        for _ in 0..3 {
            fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
        }
        assert_eq!(fsm.retry_delay(), Duration::from_secs(20));
        fsm.handle(Event::ManualStop);
        let actions = fsm.handle(Event::ManualStart);
        assert_eq!(
            armed(&actions, Timer::ConnectRetry),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn passive_session_restarts_listening() {
        let mut config = cfg();
        config.passive = true;
        let mut fsm = Fsm::new(config).unwrap();
        fsm.handle(Event::ManualStart);
        fsm.handle(Event::TcpConnectionConfirmed);
        fsm.handle(Event::TcpConnectionFails);
        assert_eq!(fsm.state(), State::Idle);
        let actions = fsm.handle(Event::TimerExpired(Timer::IdleHold));
        assert!(!actions.contains(&Action::Connect));
        assert_eq!(fsm.state(), State::Active);
        // Never connects by itself: no connect-retry timer to fire.
        assert!(
            fsm.handle(Event::TimerExpired(Timer::ConnectRetry))
                .is_empty()
        );
        assert_eq!(fsm.state(), State::Active);
    }

    #[test]
    fn stale_events_are_ignored() {
        // Timers never armed, or cancelled, do nothing when they fire.
        let mut fsm = Fsm::new(cfg()).unwrap();
        for timer in Timer::ALL {
            assert!(fsm.handle(Event::TimerExpired(timer)).is_empty());
        }
        assert_eq!(fsm.state(), State::Idle);
        let mut fsm = established(cfg());
        fsm.handle(Event::ManualStop);
        for timer in Timer::ALL {
            assert!(fsm.handle(Event::TimerExpired(timer)).is_empty());
        }
        // Messages and TCP news without a connection of ours.
        let mut fsm = Fsm::new(cfg()).unwrap();
        fsm.handle(Event::ManualStart);
        for event in [
            Event::MessageReceived(Message::Keepalive),
            Event::MessageReceived(Message::Open(peer_open(64513, 90))),
            Event::CollisionLost,
        ] {
            assert!(fsm.handle(event).is_empty());
            assert_eq!(fsm.state(), State::Connect);
        }
        let mut fsm = established(cfg());
        assert!(fsm.handle(Event::TcpConnectionConfirmed).is_empty());
        assert!(fsm.handle(Event::TcpConnectionSucceeded).is_empty());
        assert_eq!(fsm.state(), State::Established);
    }

    #[test]
    fn collision_lost_ceases_without_restart() {
        let collision = Notification::cease(notify::cease::CONNECTION_COLLISION_RESOLUTION);
        let mut fsm = open_confirm(cfg(), peer_open(64513, 90));
        let actions = fsm.handle(Event::CollisionLost);
        assert_eq!(
            actions,
            vec![
                Action::Send(Message::Notification(collision.clone())),
                Action::Close,
                Action::CancelTimer(Timer::Hold),
                Action::CancelTimer(Timer::Keepalive),
            ]
        );
        assert_eq!(fsm.state(), State::Idle);
        assert_eq!(
            fsm.last_down(),
            Some(&DownReason::NotificationSent(collision))
        );
    }

    #[test]
    fn incoming_instance_sends_open_and_restarts_as_configured() {
        let (mut fsm, actions) = Fsm::incoming(cfg()).unwrap();
        assert_eq!(fsm.state(), State::OpenSent);
        assert!(matches!(actions[0], Action::Send(Message::Open(_))));
        assert_eq!(armed(&actions, Timer::Hold), Some(OPEN_SENT_HOLD));
        assert!(!actions.contains(&Action::Connect));
        // Having won the collision it is the session: a failure backs off, then connects.
        fsm.handle(Event::TcpConnectionFails);
        let actions = fsm.handle(Event::TimerExpired(Timer::IdleHold));
        assert_eq!(actions[0], Action::Connect);
        assert_eq!(fsm.state(), State::Connect);

        let mut passive = cfg();
        passive.passive = true;
        let (mut fsm, _) = Fsm::incoming(passive).unwrap();
        fsm.handle(Event::TcpConnectionFails);
        assert!(fsm.handle(Event::TimerExpired(Timer::IdleHold)).is_empty());
        assert_eq!(fsm.state(), State::Active);
    }

    #[test]
    fn collision_resolution() {
        use Direction::*;
        use State::*;
        let low = Ipv4Addr::new(192, 0, 2, 1);
        let high = Ipv4Addr::new(192, 0, 2, 2);
        let speaker = |router_id, asn| Speaker { router_id, asn };
        let conn = |direction, state| Connection { direction, state };
        let cases = [
            // (local id, local AS, remote id, remote AS, existing, new) -> verdict
            // The higher identifier's connection stays, whichever came first.
            (
                high,
                1,
                low,
                1,
                conn(Outgoing, OpenConfirm),
                conn(Incoming, OpenConfirm),
                Collision::KeepExisting,
            ),
            (
                high,
                1,
                low,
                1,
                conn(Incoming, OpenConfirm),
                conn(Outgoing, OpenConfirm),
                Collision::KeepNew,
            ),
            (
                low,
                1,
                high,
                1,
                conn(Outgoing, OpenConfirm),
                conn(Incoming, OpenConfirm),
                Collision::KeepNew,
            ),
            (
                low,
                1,
                high,
                1,
                conn(Incoming, OpenConfirm),
                conn(Outgoing, OpenSent),
                Collision::KeepExisting,
            ),
            // Equal identifiers (eBGP): the higher AS decides.
            (
                low,
                65001,
                low,
                65000,
                conn(Incoming, OpenConfirm),
                conn(Outgoing, OpenConfirm),
                Collision::KeepNew,
            ),
            (
                low,
                65000,
                low,
                65001,
                conn(Incoming, OpenConfirm),
                conn(Outgoing, OpenConfirm),
                Collision::KeepExisting,
            ),
            // Established always stays.
            (
                high,
                1,
                low,
                1,
                conn(Incoming, Established),
                conn(Outgoing, OpenConfirm),
                Collision::KeepExisting,
            ),
            (
                low,
                1,
                high,
                1,
                conn(Outgoing, OpenSent),
                conn(Incoming, Established),
                Collision::KeepNew,
            ),
            // Only one real connection: nothing to settle.
            (
                high,
                1,
                low,
                1,
                conn(Outgoing, Connect),
                conn(Incoming, OpenConfirm),
                Collision::None,
            ),
            (
                high,
                1,
                low,
                1,
                conn(Outgoing, OpenConfirm),
                conn(Incoming, Idle),
                Collision::None,
            ),
        ];
        for (local_id, local_asn, remote_id, remote_asn, existing, new, verdict) in cases {
            let local = speaker(local_id, local_asn);
            let remote = speaker(remote_id, remote_asn);
            assert_eq!(
                resolve_collision(local, remote, existing, new),
                verdict,
                "local {local:?} remote {remote:?} existing {existing:?} new {new:?}"
            );
            // The peer, running the same rule with the roles mirrored, keeps the same
            // TCP connection.
            let flip = |c: Connection| Connection {
                direction: match c.direction {
                    Outgoing => Incoming,
                    Incoming => Outgoing,
                },
                ..c
            };
            if verdict != Collision::None
                && existing.state != Established
                && new.state != Established
            {
                assert_eq!(
                    resolve_collision(remote, local, flip(existing), flip(new)),
                    verdict,
                    "mirrored"
                );
            }
        }
    }

    #[test]
    fn config_validation() {
        let bad = |f: fn(&mut Config), err: ConfigError| {
            let mut config = cfg();
            f(&mut config);
            assert_eq!(Fsm::new(config).unwrap_err(), err);
        };
        bad(|c| c.local_asn = 0, ConfigError::LocalAsnZero);
        bad(|c| c.peer_asn = PeerAsn::Fixed(0), ConfigError::PeerAsnZero);
        bad(|c| c.local_asn = 23456, ConfigError::AsTrans);
        bad(|c| c.peer_asn = PeerAsn::Fixed(23456), ConfigError::AsTrans);
        bad(
            |c| c.router_id = Ipv4Addr::UNSPECIFIED,
            ConfigError::RouterIdZero,
        );
        bad(|c| c.hold_time = 2, ConfigError::HoldTime(2));
        bad(
            |c| c.connect_retry = Duration::ZERO,
            ConfigError::ConnectRetryZero,
        );
        bad(|c| c.families.clear(), ConfigError::NoFamilies);
        bad(
            |c| c.families.push((Afi::IPV4, Safi::MULTICAST)),
            ConfigError::Family(1, 2),
        );
        bad(
            |c| {
                c.graceful_restart = Some(GracefulRestartConfig {
                    restart_time: 4096,
                    restarted: false,
                })
            },
            ConfigError::RestartTime(4096),
        );
        for hold in [0, 3, 90] {
            let mut config = cfg();
            config.hold_time = hold;
            assert!(Fsm::new(config).is_ok());
        }
    }

    /// A small deterministic generator (xorshift64*), so failures replay from the seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Events weighted towards what moves a session forward, plus every kind of noise.
    fn random_event(rng: &mut Rng) -> Event {
        match rng.below(24) {
            0 => Event::ManualStart,
            1 => Event::PassiveStart,
            2 => match rng.below(7) {
                0 => Event::ManualStop,
                6 => Event::Cease(notify::cease::OTHER_CONFIGURATION_CHANGE),
                1 => Event::CollisionLost,
                2 => Event::DecodeError(Notification::new(1, 2, vec![0, 1])),
                3 => Event::MessageReceived(Message::Notification(Notification::cease(2))),
                _ => Event::TcpConnectionFails,
            },
            3 | 4 => Event::TcpConnectionConfirmed,
            5 | 6 => Event::TcpConnectionSucceeded,
            7..=10 => {
                let mut open = peer_open(64513, [0, 1, 3, 90, 90, 90][rng.below(6) as usize]);
                match rng.below(16) {
                    0 => open.version = 3,
                    1 => open.asn = 64999,
                    2 => open.router_id = Ipv4Addr::UNSPECIFIED,
                    3 => open.capabilities.clear(),
                    _ => {}
                }
                Event::MessageReceived(Message::Open(open))
            }
            11..=16 => Event::MessageReceived(Message::Keepalive),
            17 => Event::MessageReceived(Message::Update(Update::default())),
            18 => Event::MessageReceived(Message::RouteRefresh {
                afi: Afi(rng.below(3) as u16),
                safi: Safi::UNICAST,
            }),
            _ => Event::TimerExpired(Timer::ALL[rng.below(5) as usize]),
        }
    }

    /// What a driver sees, checked against the rules every run must keep.
    #[derive(Default)]
    struct Observer {
        timers: [bool; 5],
        /// Since the current connection began: we sent OPEN, got a valid OPEN, confirmed it.
        sent_open: bool,
        got_open: bool,
        sent_keepalive: bool,
        up: bool,
        ups: u32,
    }

    impl Observer {
        fn check(&mut self, before: State, event: &Event, actions: &[Action], fsm: &Fsm) {
            let after = fsm.state();
            let ctx = || format!("{before} --{event:?}--> {after}: {actions:?}");
            if let Event::TimerExpired(t) = event {
                self.timers[t.index()] = false;
            }
            let mut closed = false;
            for (i, action) in actions.iter().enumerate() {
                match action {
                    Action::Send(message) => {
                        assert!(!closed, "send after close: {}", ctx());
                        assert!(
                            before.has_connection() || after.has_connection(),
                            "{}",
                            ctx()
                        );
                        match message {
                            Message::Open(_) => {
                                self.sent_open = true;
                                self.got_open = false;
                                self.sent_keepalive = false;
                            }
                            Message::Keepalive if self.got_open => self.sent_keepalive = true,
                            _ => {}
                        }
                    }
                    Action::Close => {
                        closed = true;
                        // An error we found is told before the connection closes; only
                        // a broken connection or the peer's NOTIFICATION closes silently.
                        let silent_ok = matches!(
                            event,
                            Event::TcpConnectionFails
                                | Event::MessageReceived(Message::Notification(_))
                        ) || !before.has_connection();
                        let notified = actions[..i]
                            .iter()
                            .any(|a| matches!(a, Action::Send(Message::Notification(_))));
                        assert!(
                            silent_ok || notified,
                            "close without NOTIFICATION: {}",
                            ctx()
                        );
                        self.sent_open = false;
                        self.got_open = false;
                        self.sent_keepalive = false;
                    }
                    Action::ArmTimer(t, d) => {
                        assert!(!d.is_zero(), "{}", ctx());
                        self.timers[t.index()] = true;
                    }
                    Action::CancelTimer(t) => {
                        assert!(self.timers[t.index()], "cancel of an idle timer: {}", ctx());
                        self.timers[t.index()] = false;
                    }
                    Action::Up(n) => {
                        assert!(!self.up, "up twice: {}", ctx());
                        assert_eq!(
                            *event,
                            Event::MessageReceived(Message::Keepalive),
                            "{}",
                            ctx()
                        );
                        assert!(
                            self.sent_open && self.got_open && self.sent_keepalive,
                            "up without the OPEN/KEEPALIVE exchange: {}",
                            ctx()
                        );
                        assert_eq!(n.peer_router_id, PEER_ID);
                        self.up = true;
                        self.ups += 1;
                    }
                    Action::Down(_) => {
                        assert!(self.up, "down while not up: {}", ctx());
                        assert!(closed, "down before close: {}", ctx());
                        self.up = false;
                    }
                    Action::SendAdjRibOut { families, .. } => {
                        assert_eq!(after, State::Established, "{}", ctx());
                        assert!(!families.is_empty(), "{}", ctx());
                    }
                    Action::Connect => assert_eq!(after, State::Connect, "{}", ctx()),
                }
            }
            if let Event::MessageReceived(Message::Open(_)) = event
                && before == State::OpenSent
                && after == State::OpenConfirm
            {
                self.got_open = true;
                // The KEEPALIVE confirming it was sent in this same step.
                self.sent_keepalive = actions.contains(&Action::Send(Message::Keepalive));
            }

            assert_eq!(self.up, after == State::Established, "{}", ctx());
            assert_eq!(self.timers, fsm.armed, "timer bookkeeping: {}", ctx());
            let allowed: &[Timer] = match after {
                State::Idle => &[Timer::IdleHold],
                State::Connect | State::Active => &[Timer::ConnectRetry],
                State::OpenSent => &[Timer::Hold],
                State::OpenConfirm => &[Timer::Hold, Timer::Keepalive],
                State::Established => &[Timer::Hold, Timer::Keepalive, Timer::BackoffReset],
            };
            for t in Timer::ALL {
                assert!(
                    !self.timers[t.index()] || allowed.contains(&t),
                    "{t:?} armed in {after}: {}",
                    ctx()
                );
            }
            assert_eq!(
                fsm.negotiated().is_some(),
                matches!(after, State::OpenConfirm | State::Established)
            );
            assert!(fsm.retry_delay() <= fsm.config().backoff_cap);
        }
    }

    #[test]
    fn random_event_sequences_keep_the_invariants() {
        let mut total_ups = 0;
        let mut seen = std::collections::HashSet::new();
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut config = cfg();
            config.passive = rng.below(4) == 0;
            config.hold_time = [0, 3, 90][rng.below(3) as usize];
            let mut fsm = Fsm::new(config).unwrap();
            let mut observer = Observer::default();
            for _ in 0..400 {
                let event = random_event(&mut rng);
                let before = fsm.state();
                seen.insert((before, std::mem::discriminant(&event)));
                let actions = fsm.handle(event.clone());
                observer.check(before, &event, &actions, &fsm);
            }
            total_ups += observer.ups;
        }
        // The checks mean something only if every kind of event met every state and
        // sessions actually came up (the seeds are fixed: 617 do).
        assert_eq!(seen.len(), 6 * 11, "(state, event kind) pairs exercised");
        assert!(total_ups >= 500, "only {total_ups} sessions came up");
    }

    /// Two sessions joined by one in-memory connection: what one sends, the other
    /// receives, in order, until both are quiet or one closes. Returns each side's
    /// actions, starting with the given ones.
    fn wire(
        a: &mut Fsm,
        a_actions: Vec<Action>,
        b: &mut Fsm,
        b_actions: Vec<Action>,
    ) -> (Vec<Action>, Vec<Action>) {
        use std::collections::VecDeque;
        let mut logs = (a_actions.clone(), b_actions.clone());
        let mut queues = (VecDeque::from(a_actions), VecDeque::from(b_actions));
        let mut closed = false;
        for _ in 0..100 {
            let mut moved = false;
            while let Some(action) = queues.0.pop_front() {
                match action {
                    Action::Close => closed = true,
                    Action::Send(m) if !closed => {
                        let reply = b.handle(Event::MessageReceived(m));
                        logs.1.extend(reply.iter().cloned());
                        queues.1.extend(reply);
                        moved = true;
                    }
                    _ => {}
                }
            }
            while let Some(action) = queues.1.pop_front() {
                match action {
                    Action::Close => closed = true,
                    Action::Send(m) if !closed => {
                        let reply = a.handle(Event::MessageReceived(m));
                        logs.0.extend(reply.iter().cloned());
                        queues.0.extend(reply);
                        moved = true;
                    }
                    _ => {}
                }
            }
            if !moved {
                return logs;
            }
        }
        panic!("the two sessions never went quiet");
    }

    fn came_up(actions: &[Action]) -> bool {
        actions.iter().any(|a| matches!(a, Action::Up(_)))
    }

    /// The speaker on the other end of [`cfg`]: AS 64513, any external peer, passive.
    fn router_cfg() -> Config {
        let mut config = Config::new(64513, PeerAsn::External, PEER_ID);
        config.passive = true;
        config
    }

    #[test]
    fn two_sessions_back_to_back_come_up_and_agree() {
        let mut ours = cfg();
        ours.hold_time = 30;
        ours.families = vec![IPV4_UNICAST, IPV6_UNICAST];
        let mut x = Fsm::new(ours).unwrap();
        let mut y = Fsm::new(router_cfg()).unwrap();
        x.handle(Event::ManualStart);
        y.handle(Event::ManualStart);
        assert_eq!(y.incoming_policy(), Incoming::Take);
        let x_actions = x.handle(Event::TcpConnectionSucceeded);
        let y_actions = y.handle(Event::TcpConnectionConfirmed);
        let (x_log, y_log) = wire(&mut x, x_actions, &mut y, y_actions);

        assert!(came_up(&x_log) && came_up(&y_log));
        assert_eq!(
            (x.state(), y.state()),
            (State::Established, State::Established)
        );
        let (xn, yn) = (x.negotiated().unwrap(), y.negotiated().unwrap());
        assert_eq!((xn.hold_time, yn.hold_time), (30, 30));
        assert_eq!(xn.keepalive, Some(Duration::from_secs(10)));
        assert_eq!(yn.keepalive, Some(Duration::from_secs(10)));
        assert_eq!((xn.peer_asn, yn.peer_asn), (64513, 64512));
        assert_eq!((xn.peer_router_id, yn.peer_router_id), (PEER_ID, LOCAL_ID));
        assert_eq!(xn.families, vec![IPV4_UNICAST]);
        assert_eq!(yn.families, vec![IPV4_UNICAST]);
        assert!(xn.four_octet_as && yn.four_octet_as && xn.route_refresh);

        // Stopping one end tells the other why.
        let stop = x.handle(Event::ManualStop);
        let (_, y_log) = wire(&mut x, stop, &mut y, Vec::new());
        let shutdown = Notification::cease(notify::cease::ADMINISTRATIVE_SHUTDOWN);
        assert!(y_log.contains(&Action::Down(DownReason::NotificationReceived(shutdown))));
        assert_eq!((x.state(), y.state()), (State::Idle, State::Idle));
    }

    #[test]
    fn a_rejected_open_reaches_the_other_end() {
        let mut x = Fsm::new(cfg()).unwrap();
        let mut strict = router_cfg();
        strict.peer_asn = PeerAsn::Fixed(65000);
        let mut y = Fsm::new(strict).unwrap();
        x.handle(Event::ManualStart);
        y.handle(Event::ManualStart);
        let x_actions = x.handle(Event::TcpConnectionSucceeded);
        let y_actions = y.handle(Event::TcpConnectionConfirmed);
        let (x_log, y_log) = wire(&mut x, x_actions, &mut y, y_actions);
        let bad_peer_as = open_error(notify::open::BAD_PEER_AS);
        assert_eq!(sent_notification(&y_log), Some(&bad_peer_as));
        assert!(!came_up(&x_log) && !came_up(&y_log));
        assert_eq!((x.state(), y.state()), (State::Idle, State::Idle));
        assert_eq!(
            x.last_down(),
            Some(&DownReason::NotificationReceived(bad_peer_as))
        );
    }

    /// Both ends connect at once (RFC 4271 §6.8): each runs a second instance for the
    /// connection the other opened, both settle the collision on their own, and both keep
    /// the same TCP connection: the one opened by the higher identifier.
    #[test]
    fn simultaneous_connects_settle_on_the_same_connection() {
        let open_of = |actions: &[Action]| {
            actions
                .iter()
                .find_map(|a| match a {
                    Action::Send(m @ Message::Open(_)) => Some(m.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let mut y_config = router_cfg();
        y_config.passive = false;
        // Connection 1: X dialled Y. Connection 2: Y dialled X.
        let mut x_main = Fsm::new(cfg()).unwrap();
        let mut y_main = Fsm::new(y_config.clone()).unwrap();
        x_main.handle(Event::ManualStart);
        y_main.handle(Event::ManualStart);
        let x_main_open = x_main.handle(Event::TcpConnectionSucceeded);
        let y_main_open = y_main.handle(Event::TcpConnectionSucceeded);
        assert_eq!(x_main.incoming_policy(), Incoming::Collide);
        assert_eq!(y_main.incoming_policy(), Incoming::Collide);
        let (mut x_extra, x_extra_open) = Fsm::incoming(cfg()).unwrap();
        let (mut y_extra, y_extra_open) = Fsm::incoming(y_config).unwrap();

        // The OPENs cross on both connections.
        let receive = |fsm: &mut Fsm, open| fsm.handle(Event::MessageReceived(open));
        receive(&mut y_extra, open_of(&x_main_open));
        receive(&mut x_main, open_of(&y_extra_open));
        let x_extra_confirm = receive(&mut x_extra, open_of(&y_main_open));
        let y_main_confirm = receive(&mut y_main, open_of(&x_extra_open));
        for fsm in [&x_main, &x_extra, &y_main, &y_extra] {
            assert_eq!(fsm.state(), State::OpenConfirm);
        }

        let settle = |main: &Fsm, extra: &Fsm| {
            let c = main.config();
            let n = main.negotiated().unwrap();
            resolve_collision(
                Speaker {
                    router_id: c.router_id,
                    asn: c.local_asn,
                },
                Speaker {
                    router_id: n.peer_router_id,
                    asn: n.peer_asn,
                },
                Connection {
                    direction: Direction::Outgoing,
                    state: main.state(),
                },
                Connection {
                    direction: Direction::Incoming,
                    state: extra.state(),
                },
            )
        };
        // Y has the higher identifier: connection 2, which Y opened, stays on both ends.
        assert_eq!(settle(&x_main, &x_extra), Collision::KeepNew);
        assert_eq!(settle(&y_main, &y_extra), Collision::KeepExisting);
        let collision = Notification::cease(notify::cease::CONNECTION_COLLISION_RESOLUTION);
        for loser in [&mut x_main, &mut y_extra] {
            let actions = loser.handle(Event::CollisionLost);
            assert_eq!(sent_notification(&actions), Some(&collision));
            assert_eq!(loser.state(), State::Idle);
        }

        let (x_log, y_log) = wire(&mut x_extra, x_extra_confirm, &mut y_main, y_main_confirm);
        assert!(came_up(&x_log) && came_up(&y_log));
        assert_eq!(x_extra.state(), State::Established);
        assert_eq!(y_main.state(), State::Established);
    }
}
