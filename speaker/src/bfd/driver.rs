//! The tokio side of BFD: one task per session moves packets and time for its
//! [`Fsm`] and reports state changes; a [`Hub`] owns the receive sockets, one per
//! local address and port, shared by every session on it, and hands each packet to its
//! session: by Your Discriminator, or by source address while that is still 0.
//!
//! A session whose sockets cannot be opened (the local address is not there yet, or
//! another BFD daemon holds the port) says so and tries again every
//! [`RETRY`]: BGP carries on without it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::fsm::{Action, Event, Fsm, Timer};
use super::packet::{Control, Diag, State};
use super::{MULTI_HOP_PORT, Profile, SINGLE_HOP_PORT, socket};

/// Wait before trying again to open a session's sockets.
pub const RETRY: Duration = Duration::from_secs(5);

/// One BFD session as the BGP session asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub peer: IpAddr,
    /// `None`: the address the kernel routes to the peer from.
    pub local: Option<IpAddr>,
    /// RFC 5883 (port 4784, TTL at least `profile.minimum_ttl`) rather than RFC 5881.
    pub multihop: bool,
    pub profile: Profile,
}

impl Spec {
    fn port(&self) -> u16 {
        if self.multihop {
            MULTI_HOP_PORT
        } else {
            SINGLE_HOP_PORT
        }
    }

    /// GTSM: a single-hop packet cannot have crossed a router.
    fn ttl_ok(&self, ttl: Option<u8>) -> bool {
        match ttl {
            Some(t) if self.multihop => t >= self.profile.minimum_ttl,
            Some(t) => t == 255,
            None => false,
        }
    }
}

/// What a session tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Changed {
        from: State,
        to: State,
        diag: Diag,
        /// The peer's state in the packet that caused it (Down when nothing came).
        remote: State,
    },
    /// The session cannot run for now (and retries).
    Error(String),
}

impl Report {
    /// The change means the path to the peer failed: Up to Down, other than by the
    /// peer's administrative decision (RFC 5882 §3.2: an AdminDown peer is not a
    /// failure).
    pub fn is_failure(&self) -> bool {
        matches!(self, Report::Changed { from: State::Up, to: State::Down, remote, .. } if *remote != State::AdminDown)
    }
}

/// A received packet on its way to a session.
type Delivery = (Control, SocketAddr, Option<u8>);
type Inbox = mpsc::Sender<Delivery>;

/// Packets waiting for a session: many more than any peer sends between two turns of
/// its task. Beyond that they are dropped (a flood, not a peer).
const INBOX: usize = 64;

#[derive(Default)]
struct Routes {
    by_discr: HashMap<u32, Inbox>,
    by_peer: HashMap<IpAddr, Inbox>,
}

impl Routes {
    /// Where a packet goes (RFC 5880 §6.8.6: Your Discriminator selects the session;
    /// while it is 0, the source address does).
    fn route(&self, p: &Control, from: IpAddr) -> Option<&Inbox> {
        if p.your_discriminator != 0 {
            self.by_discr.get(&p.your_discriminator)
        } else {
            self.by_peer.get(&from)
        }
    }
}

struct Listener {
    routes: Arc<Mutex<Routes>>,
    task: JoinHandle<()>,
}

/// The receive sockets, shared by every session of the speaker.
#[derive(Default)]
pub struct Hub {
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A session's place in the hub; leaving it (drop) removes the routes and closes the
/// socket when no session uses it any more.
struct Registration {
    hub: Weak<Hub>,
    at: SocketAddr,
    peer: IpAddr,
    discr: u32,
    /// To tell its own route by source from that of a newer session with the same peer
    /// (a restarted session's old task may still be saying AdminDown).
    inbox: Inbox,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut listeners = lock(&hub.listeners);
        let empty = match listeners.get(&self.at) {
            Some(l) => {
                let mut r = lock(&l.routes);
                r.by_discr.remove(&self.discr);
                if r.by_peer
                    .get(&self.peer)
                    .is_some_and(|i| i.same_channel(&self.inbox))
                {
                    r.by_peer.remove(&self.peer);
                }
                r.by_discr.is_empty()
            }
            None => false,
        };
        if empty && let Some(l) = listeners.remove(&self.at) {
            l.task.abort();
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Routes packets to `at` from `peer` (or for a discriminator it returns) to `inbox`.
    async fn register(
        self: &Arc<Hub>,
        at: SocketAddr,
        peer: IpAddr,
        inbox: Inbox,
        random: u32,
    ) -> Result<(Registration, u32), socket::SocketError> {
        // The socket is bound outside the lock; a session racing for the same address
        // may get there first, and then this one uses its socket.
        let mut fresh = None;
        loop {
            let exists = lock(&self.listeners).contains_key(&at);
            if exists || fresh.is_some() {
                break;
            }
            fresh = Some(socket::receiver(at).await?);
        }
        let mut listeners = lock(&self.listeners);
        let listener = match (listeners.entry(at), fresh) {
            (Entry::Occupied(e), _) => e.into_mut(),
            (Entry::Vacant(e), Some(s)) => {
                let routes = Arc::new(Mutex::new(Routes::default()));
                let task = tokio::spawn(listen(s, routes.clone()));
                e.insert(Listener { routes, task })
            }
            // Not reached: the loop above binds before leaving without a listener.
            (Entry::Vacant(_), None) => {
                return Err(socket::SocketError::Bind {
                    addr: at,
                    err: std::io::Error::other("receive socket vanished"),
                });
            }
        };
        let mut routes = lock(&listener.routes);
        // Non-zero and unused on this socket (the only scope a discriminator needs).
        let mut discr = random.max(1);
        while routes.by_discr.contains_key(&discr) {
            discr = discr.wrapping_add(1).max(1);
        }
        routes.by_discr.insert(discr, inbox.clone());
        routes.by_peer.insert(peer, inbox.clone());
        Ok((
            Registration {
                hub: Arc::downgrade(self),
                at,
                peer,
                discr,
                inbox,
            },
            discr,
        ))
    }
}

/// Reads one receive socket, handing each good packet to its session.
async fn listen(socket: UdpSocket, routes: Arc<Mutex<Routes>>) {
    let mut buf = [0u8; 512];
    loop {
        let r = match socket::recv(&socket, &mut buf).await {
            Ok(r) => r,
            Err(e) => {
                debug!("BFD receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let datagram = buf.get(..r.len).unwrap_or_default();
        match Control::decode(datagram) {
            Ok(p) => {
                let routes = lock(&routes);
                match routes.route(&p, r.from.ip()) {
                    Some(inbox) => {
                        let _ = inbox.try_send((p, r.from, r.ttl));
                    }
                    None => debug!(from = %r.from, "BFD packet for no session here"),
                }
            }
            Err(e) => debug!(from = %r.from, "BFD packet dropped: {e}"),
        }
    }
}

/// A running session; dropping it stops the session (the peer is told AdminDown).
pub struct Handle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    profiles: mpsc::UnboundedSender<Profile>,
    pub reports: mpsc::UnboundedReceiver<Report>,
}

/// How long [`Handle::stop`] waits for the last packet to leave.
const STOP_TIMEOUT: Duration = Duration::from_millis(500);

impl Handle {
    /// New timers for the running session (same peer, addresses and hop kind): taken
    /// on with a Poll Sequence, without leaving Up.
    pub fn reconfigure(&self, profile: Profile) {
        let _ = self.profiles.send(profile);
    }

    /// Stops the session and waits (briefly) until the peer was told AdminDown, so a
    /// speaker shutting down does not leave the peer to time the session out.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, t).await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a session.
pub fn spawn(hub: Arc<Hub>, spec: Spec, name: String) -> Handle {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (tx, rx) = mpsc::unbounded_channel();
    let (profiles_tx, profiles) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(hub, spec, name, stop_rx, tx, profiles));
    Handle {
        stop: Some(stop_tx),
        task: Some(task),
        profiles: profiles_tx,
        reports: rx,
    }
}

fn random() -> u32 {
    rand::random()
}

async fn run(
    hub: Arc<Hub>,
    mut spec: Spec,
    name: String,
    mut stop: oneshot::Receiver<()>,
    reports: mpsc::UnboundedSender<Report>,
    mut profiles: mpsc::UnboundedReceiver<Profile>,
) {
    let mut last = String::new();
    loop {
        match open(&hub, &spec).await {
            Ok(opened) => {
                session(opened, spec, &name, &mut stop, &reports, &mut profiles).await;
                return;
            }
            Err(e) => {
                let e = e.to_string();
                // Once per distinct reason: the retries of a lasting problem say nothing new.
                if e != last {
                    warn!(peer = %name, "BFD session not started: {e}; retrying every {RETRY:?}");
                    last.clone_from(&e);
                }
                let _ = reports.send(Report::Error(e));
                let retry = tokio::time::sleep(RETRY);
                tokio::pin!(retry);
                loop {
                    tokio::select! {
                        _ = &mut stop => return,
                        Some(p) = profiles.recv() => spec.profile = p,
                        _ = &mut retry => break,
                    }
                }
            }
        }
    }
}

struct Opened {
    sender: UdpSocket,
    to: SocketAddr,
    inbox: mpsc::Receiver<Delivery>,
    registration: Registration,
    discr: u32,
}

async fn open(hub: &Arc<Hub>, spec: &Spec) -> Result<Opened, socket::SocketError> {
    let local = match spec.local {
        Some(ip) => ip,
        None => socket::route_source(spec.peer)?,
    };
    let (tx, inbox) = mpsc::channel(INBOX);
    let at = SocketAddr::new(local, spec.port());
    let (registration, discr) = hub.register(at, spec.peer, tx, random()).await?;
    let sender = socket::sender(local, random() as u16).await?;
    Ok(Opened {
        sender,
        to: SocketAddr::new(spec.peer, spec.port()),
        inbox,
        registration,
        discr,
    })
}

async fn session(
    mut o: Opened,
    mut spec: Spec,
    name: &str,
    stop: &mut oneshot::Receiver<()>,
    reports: &mpsc::UnboundedSender<Report>,
    profiles: &mut mpsc::UnboundedReceiver<Profile>,
) {
    let mut fsm = Fsm::new(spec.profile.timers, o.discr);
    let mut timers: HashMap<Timer, Instant> = HashMap::new();
    let mut remote = State::Down;
    let local = o.sender.local_addr().ok();
    info!(peer = %name, to = %o.to, from = ?local, discriminator = o.discr, "BFD session started");
    let first = fsm.handle(Event::AdminUp, random());
    perform(first, &o, &mut timers, name, reports, remote).await;
    loop {
        let next = timers.values().min().copied();
        let event = tokio::select! {
            _ = &mut *stop => {
                let last = fsm.handle(Event::AdminDown, random());
                perform(last, &o, &mut timers, name, reports, remote).await;
                drop(o.registration);
                return;
            }
            Some(profile) = profiles.recv() => {
                info!(peer = %name, profile = %profile.name, "BFD timers changed");
                let timers = profile.timers;
                spec.profile = profile;
                Event::Reconfigure(timers)
            }
            Some((p, from, ttl)) = o.inbox.recv() => {
                if !spec.ttl_ok(ttl) {
                    debug!(peer = %name, %from, ?ttl, "BFD packet dropped: TTL check");
                    continue;
                }
                remote = p.state;
                Event::Received(p)
            }
            _ = sleep_until(next) => {
                let now = Instant::now();
                let Some((&t, _)) = timers.iter().find(|(_, at)| **at <= now) else { continue };
                timers.remove(&t);
                if t == Timer::Detect {
                    remote = State::Down;
                }
                Event::TimerExpired(t)
            }
        };
        let actions = fsm.handle(event, random());
        perform(actions, &o, &mut timers, name, reports, remote).await;
    }
}

async fn perform(
    actions: Vec<Action>,
    o: &Opened,
    timers: &mut HashMap<Timer, Instant>,
    name: &str,
    reports: &mpsc::UnboundedSender<Report>,
    remote: State,
) {
    for a in actions {
        match a {
            Action::Send(p) => {
                if let Err(e) = o.sender.send_to(&p.encode(), o.to).await {
                    debug!(peer = %name, "BFD send to {}: {e}", o.to);
                }
            }
            Action::Arm(t, after) => {
                timers.insert(t, Instant::now() + after);
            }
            Action::Cancel(t) => {
                timers.remove(&t);
            }
            Action::StateChanged { from, to, diag } => {
                if to == State::Up || from == State::Up {
                    info!(peer = %name, "BFD session {from} -> {to} ({diag})");
                } else {
                    debug!(peer = %name, "BFD session {from} -> {to} ({diag})");
                }
                let _ = reports.send(Report::Changed {
                    from,
                    to,
                    diag,
                    remote,
                });
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn profile(ms: u64) -> Profile {
        Profile {
            name: "fast".into(),
            timers: super::super::fsm::Config {
                desired_min_tx: Duration::from_millis(ms),
                required_min_rx: Duration::from_millis(ms),
                detect_mult: 3,
                passive: false,
            },
            minimum_ttl: 254,
        }
    }

    #[test]
    fn bfd_reports_only_path_failures_as_failures() {
        let change = |from, to, remote| Report::Changed {
            from,
            to,
            diag: Diag::NONE,
            remote,
        };
        assert!(change(State::Up, State::Down, State::Down).is_failure());
        assert!(!change(State::Up, State::Down, State::AdminDown).is_failure());
        assert!(!change(State::Init, State::Down, State::Down).is_failure());
        assert!(!change(State::Up, State::AdminDown, State::Up).is_failure());
        assert!(!Report::Error("x".into()).is_failure());
    }

    #[test]
    fn bfd_packets_go_by_discriminator_then_by_source() {
        let mut routes = Routes::default();
        let (a_tx, mut a_rx) = mpsc::channel(1);
        let (b_tx, mut b_rx) = mpsc::channel(1);
        let a: IpAddr = Ipv4Addr::new(198, 51, 100, 1).into();
        let b: IpAddr = Ipv4Addr::new(198, 51, 100, 2).into();
        routes.by_discr.insert(7, a_tx.clone());
        routes.by_peer.insert(a, a_tx);
        routes.by_discr.insert(9, b_tx.clone());
        routes.by_peer.insert(b, b_tx);
        let mut p = Control::decode(
            &Control {
                diag: Diag::NONE,
                state: State::Down,
                poll: false,
                final_: false,
                cpi: false,
                demand: false,
                detect_mult: 3,
                my_discriminator: 1,
                your_discriminator: 0,
                desired_min_tx_us: 1,
                required_min_rx_us: 1,
                required_min_echo_rx_us: 0,
            }
            .encode(),
        )
        .unwrap();
        let send = |routes: &Routes, p: &Control, from| {
            if let Some(i) = routes.route(p, from) {
                i.try_send((*p, SocketAddr::new(from, 49152), Some(255)))
                    .unwrap();
            }
        };
        // No discriminator yet: the source address picks the session.
        send(&routes, &p, b);
        assert!(b_rx.try_recv().is_ok() && a_rx.try_recv().is_err());
        // With one, the discriminator does, whatever the source.
        p.your_discriminator = 7;
        send(&routes, &p, b);
        assert!(a_rx.try_recv().is_ok() && b_rx.try_recv().is_err());
        // An unknown discriminator or source reaches nobody.
        p.your_discriminator = 8;
        assert!(routes.route(&p, a).is_none());
        p.your_discriminator = 0;
        assert!(routes.route(&p, Ipv4Addr::LOCALHOST.into()).is_none());
    }

    #[test]
    fn bfd_ttl_rules_per_hop_kind() {
        let mut s = Spec {
            peer: Ipv4Addr::LOCALHOST.into(),
            local: None,
            multihop: false,
            profile: profile(100),
        };
        assert!(s.ttl_ok(Some(255)));
        assert!(!s.ttl_ok(Some(254)));
        assert!(!s.ttl_ok(None));
        s.multihop = true;
        assert!(s.ttl_ok(Some(254)));
        assert!(!s.ttl_ok(Some(253)));
    }

    /// A restarted session's old registration going away leaves the new one's route.
    #[tokio::test]
    async fn bfd_an_old_registration_leaves_the_newer_route_alone() {
        let hub = Hub::new();
        let at = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 41).into(), MULTI_HOP_PORT);
        let peer: IpAddr = Ipv4Addr::new(127, 0, 0, 42).into();
        let (old_tx, _old_rx) = mpsc::channel(1);
        let (new_tx, _new_rx) = mpsc::channel(1);
        let (old, _) = hub.register(at, peer, old_tx, 5).await.unwrap();
        let (new, d) = hub.register(at, peer, new_tx.clone(), 5).await.unwrap();
        assert_ne!(d, 5, "discriminators are unique per socket");
        drop(old);
        let routed = |hub: &Hub| {
            let listeners = lock(&hub.listeners);
            let r = lock(&listeners[&at].routes);
            r.by_peer
                .get(&peer)
                .is_some_and(|i| i.same_channel(&new_tx))
        };
        assert!(routed(&hub));
        drop(new);
        assert!(
            lock(&hub.listeners).is_empty(),
            "the socket closes with its last session"
        );
    }

    #[tokio::test]
    async fn bfd_a_taken_port_is_reported_and_retried() {
        let local: IpAddr = Ipv4Addr::new(127, 0, 0, 31).into();
        let _squatter = std::net::UdpSocket::bind(SocketAddr::new(local, MULTI_HOP_PORT)).unwrap();
        let spec = Spec {
            peer: Ipv4Addr::new(127, 0, 0, 32).into(),
            local: Some(local),
            multihop: true,
            profile: profile(100),
        };
        let mut h = spawn(Hub::new(), spec, "squatted".into());
        let r = tokio::time::timeout(Duration::from_secs(5), h.reports.recv())
            .await
            .unwrap();
        match r {
            Some(Report::Error(e)) => assert!(e.contains("cannot bind"), "{e}"),
            other => panic!("{other:?}"),
        }
        h.stop().await;
    }

    /// Two sessions on two loopback addresses, through real sockets and one hub each
    /// side would have: both come Up; stopping one brings the other Down without it
    /// counting as a failure (AdminDown).
    #[tokio::test]
    async fn bfd_two_sessions_over_loopback_come_up_and_admin_down_is_no_failure() {
        // Multi-hop port, so a BFD daemon of the host on 3784 cannot interfere.
        let a_ip: IpAddr = Ipv4Addr::new(127, 0, 0, 21).into();
        let b_ip: IpAddr = Ipv4Addr::new(127, 0, 0, 22).into();
        let hub = Hub::new();
        let spec = |peer, local| Spec {
            peer,
            local: Some(local),
            multihop: true,
            profile: profile(50),
        };
        let a = spawn(hub.clone(), spec(b_ip, a_ip), "a".into());
        let mut b = spawn(hub.clone(), spec(a_ip, b_ip), "b".into());
        let mut a = a;
        let limit = Duration::from_secs(10);
        async fn up(h: &mut Handle) {
            loop {
                match h.reports.recv().await {
                    Some(Report::Changed { to: State::Up, .. }) => return,
                    Some(Report::Error(e)) => panic!("{e}"),
                    Some(_) => {}
                    None => panic!("session ended"),
                }
            }
        }
        tokio::time::timeout(limit, up(&mut a)).await.unwrap();
        tokio::time::timeout(limit, up(&mut b)).await.unwrap();
        drop(a);
        let down = tokio::time::timeout(limit, async {
            loop {
                if let Some(
                    r @ Report::Changed {
                        to: State::Down, ..
                    },
                ) = b.reports.recv().await
                {
                    return r;
                }
            }
        })
        .await
        .unwrap();
        assert!(!down.is_failure(), "{down:?}");
        assert!(matches!(
            down,
            Report::Changed {
                diag: Diag::NEIGHBOR_SIGNALED_DOWN,
                ..
            }
        ));
    }
}
