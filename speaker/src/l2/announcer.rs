//! The Layer2 announcer of one interface: answers ARP requests and Neighbor
//! Solicitations for the IPs this node owns there, and announces each IP it takes with
//! a burst of gratuitous packets so that neighbour caches and switch tables move to
//! this node at once instead of after their timeouts.
//!
//! One [`Announcer`] per interface, each a tokio task owning that interface's sockets
//! ([`super::io`]). The speaker's main loop computes which IPs this node announces on
//! which interface and hands each announcer its whole set with
//! [`Announcer::set_owned`]; the announcer works out what was taken and what was lost.
//! The set travels through a `watch` channel, so a burst of updates collapses into the
//! latest one and the main loop never waits for the network.
//!
//! Taking an IP sends the first gratuitous packet before the task does anything else
//! (no timer in between), then more at the [`Config::burst`] offsets (default: +0.5 s,
//! +1.1 s, +2.2 s, +4.4 s: the first ones repair a loss quickly, the later ones catch
//! hosts and switches that were busy), then, if [`Config::garp_refresh`] is set, one
//! every interval for as long as the IP is owned, so that switch MAC tables never age
//! out on quiet links. An IPv4 round is a gratuitous ARP request and a gratuitous ARP
//! reply (hosts differ in which one they learn from); an IPv6 round is one unsolicited
//! Neighbor Advertisement to all-nodes with Override set. Losing an IP stops its burst
//! and its answers at once; nothing is sent on release (the new owner's burst is what
//! moves the neighbours).
//!
//! For IPv6 the announcer also joins the solicited-node multicast group of each owned
//! address, or solicitations for it would be filtered out by the NIC. Advertisements
//! come from the announced address itself by default, as the kernel's own do
//! ([`NdpSource`]).
//!
//! What is answered, and how, is decided by the codecs ([`super::arp::reply_for`],
//! [`super::ndp::reply_for`]); this module only moves frames and counts.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::ether::MacAddr;
use super::io::{IoError, Kind, Multicast, PacketSocket, Received};
use super::{arp, ndp};

/// Default offsets, from taking an IP, of its gratuitous rounds.
pub const DEFAULT_BURST: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_millis(1100),
    Duration::from_millis(2200),
    Duration::from_millis(4400),
];

/// Receive buffer per socket: a jumbo frame. ARP and ND frames are far smaller, but a
/// solicitation padded with options up to the MTU must still arrive whole to be judged.
const RECV_BUFFER: usize = 9216;

/// After this many receive errors in a row, a socket is polled again only after a pause
/// (doubling up to [`MAX_RECV_PAUSE`]), so a socket stuck in an error state cannot
/// spin the task.
const RECV_ERRORS_BEFORE_PAUSE: u32 = 3;
const MAX_RECV_PAUSE: Duration = Duration::from_secs(1);

/// The interface an announcer works on: what the interface table says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Kernel interface index; the sockets are bound to it.
    pub index: u32,
    /// For logs only.
    pub name: String,
    /// The MAC that answers carry, and that neighbours will send to.
    pub mac: MacAddr,
    /// Answer ARP and send gratuitous ARP (the interface has `IFF_BROADCAST`).
    pub arp: bool,
    /// The interface's usable link-local address. `None`: IPv6 is off on this
    /// interface, so there is no NDP and owned IPv6 addresses are ignored (MetalLB's
    /// rule). It is the source of NDP packets under [`NdpSource::LinkLocal`].
    pub link_local: Option<Ipv6Addr>,
}

/// The IPv6 source address of the Neighbor Advertisements the announcer sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NdpSource {
    /// The announced address itself, as Linux does for an address it owns (the bytes
    /// are then identical to the kernel's). Tools and stacks that match an answer by
    /// its source accept only this: Debian's `ndisc6` 1.0.5 ignores an advertisement
    /// whose source is not the target. A Layer2 VIP is on-link by definition, so
    /// stacks that refuse advertisements from off-link sources (OpenBSD) accept it too.
    #[default]
    Target,
    /// The interface's link-local address, as MetalLB does and as Linux does for
    /// proxied addresses (RFC 4861 §4.4 asks for an address of the sending interface,
    /// and the VIP usually sits on `lo`). `ndisc6` ignores these answers; kernels use
    /// them.
    LinkLocal,
}

/// Timing of the gratuitous packets, and the NDP source address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Offsets from taking an IP at which a gratuitous round is sent, ascending. The
    /// first is normally zero: the round goes out as soon as the IP is taken.
    pub burst: Vec<Duration>,
    /// After the burst, one more round every this long while the IP is owned.
    pub garp_refresh: Option<Duration>,
    pub ndp_source: NdpSource,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            burst: DEFAULT_BURST.to_vec(),
            garp_refresh: None,
            ndp_source: NdpSource::Target,
        }
    }
}

/// Why an announcer could not start.
#[derive(Debug, Error)]
pub enum AnnouncerError {
    #[error("the Layer2 announcer must be started inside a tokio runtime")]
    NoRuntime,
    #[error("gratuitous burst offsets must be ascending, got {0:?}")]
    BurstOrder(Vec<Duration>),
    #[error("the gratuitous refresh interval must be longer than zero")]
    ZeroRefresh,
    #[error("interface {name}: {source}")]
    Socket {
        name: String,
        #[source]
        source: IoError,
    },
}

/// What an announcer has done, as monotonic counters (for metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// ARP requests received for an owned IP (other hosts' requests are not counted).
    pub arp_requests_received: AtomicU64,
    pub arp_requests_answered: AtomicU64,
    /// Neighbor Solicitations received for an owned IP.
    pub ns_received: AtomicU64,
    pub ns_answered: AtomicU64,
    /// Gratuitous frames put on the wire (an IPv4 round counts two).
    pub gratuitous_sent: AtomicU64,
    /// ARP packets from another station claiming an owned IP.
    pub conflicts: AtomicU64,
    /// Frames that passed the socket filter but not the codecs (malformed, cut).
    pub frames_invalid: AtomicU64,
    pub send_errors: AtomicU64,
    pub recv_errors: AtomicU64,
    /// Failed joins or leaves of solicited-node groups.
    pub membership_errors: AtomicU64,
}

/// A copy of [`Counters`] at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub arp_requests_received: u64,
    pub arp_requests_answered: u64,
    pub ns_received: u64,
    pub ns_answered: u64,
    pub gratuitous_sent: u64,
    pub conflicts: u64,
    pub frames_invalid: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub membership_errors: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            arp_requests_received: get(&self.arp_requests_received),
            arp_requests_answered: get(&self.arp_requests_answered),
            ns_received: get(&self.ns_received),
            ns_answered: get(&self.ns_answered),
            gratuitous_sent: get(&self.gratuitous_sent),
            conflicts: get(&self.conflicts),
            frames_invalid: get(&self.frames_invalid),
            send_errors: get(&self.send_errors),
            recv_errors: get(&self.recv_errors),
            membership_errors: get(&self.membership_errors),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The handle of one interface's announcer task. Dropping it stops the task and closes
/// the sockets (the kernel then leaves every multicast group they joined).
#[derive(Debug)]
pub struct Announcer {
    link: Link,
    wanted: watch::Sender<BTreeSet<IpAddr>>,
    announced: watch::Receiver<BTreeSet<IpAddr>>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Announcer {
    /// Opens the interface's sockets (ARP if `link.arp`, NDP if it has a link-local
    /// address) and starts the task, owning nothing yet.
    ///
    /// Must be called inside a tokio runtime with I/O and time enabled; the sockets
    /// belong to the calling thread's network namespace. Needs `CAP_NET_RAW`.
    pub fn spawn(link: Link, config: Config) -> Result<Self, AnnouncerError> {
        Self::spawn_counting(link, config, Arc::new(Counters::default()))
    }

    /// As [`spawn`](Self::spawn), counting into `counters`, which outlive the
    /// announcer: an interface that stops and starts again keeps counting where it was.
    pub fn spawn_counting(
        link: Link,
        config: Config,
        counters: Arc<Counters>,
    ) -> Result<Self, AnnouncerError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| AnnouncerError::NoRuntime)?;
        if config.burst.windows(2).any(|w| w[0] > w[1]) {
            return Err(AnnouncerError::BurstOrder(config.burst));
        }
        if config.garp_refresh == Some(Duration::ZERO) {
            return Err(AnnouncerError::ZeroRefresh);
        }
        let open = |kind| {
            PacketSocket::open(link.index, kind).map_err(|source| AnnouncerError::Socket {
                name: link.name.clone(),
                source,
            })
        };
        let arp = link.arp.then(|| open(Kind::Arp)).transpose()?;
        let ndp = link
            .link_local
            .is_some()
            .then(|| open(Kind::NeighborSolicitation))
            .transpose()?;

        let (wanted, wanted_rx) = watch::channel(BTreeSet::new());
        let (announced_tx, announced) = watch::channel(BTreeSet::new());
        let task = Task {
            link: link.clone(),
            config,
            arp,
            ndp,
            groups: Multicast::new(),
            wanted: BTreeSet::new(),
            owned: BTreeMap::new(),
            due: BTreeSet::new(),
            counters: Arc::clone(&counters),
            announced: announced_tx,
            last_send_error: None,
        };
        info!(
            interface = %link.name,
            mac = %link.mac,
            arp = link.arp,
            ndp = link.link_local.is_some(),
            "Layer2 announcer started"
        );
        let task = runtime.spawn(task.run(wanted_rx));
        Ok(Announcer {
            link,
            wanted,
            announced,
            counters,
            task,
        })
    }

    /// Replaces the set of IPs this node owns on the interface. IPs that are new get
    /// their first gratuitous round right away; IPs that are gone are no longer
    /// answered. Returns at once (the task does the work); callable from any thread.
    /// IPv4 addresses on a link without ARP and IPv6 addresses on a link without a
    /// link-local address are ignored (see [`announced`](Self::announced)).
    pub fn set_owned(&self, ips: BTreeSet<IpAddr>) {
        self.wanted.send_if_modified(|current| {
            if *current == ips {
                return false;
            }
            *current = ips;
            true
        });
    }

    /// The set last given to [`set_owned`](Self::set_owned).
    pub fn owned(&self) -> BTreeSet<IpAddr> {
        self.wanted.borrow().clone()
    }

    /// The IPs the task is announcing now: the owned set once it has been applied,
    /// minus the IPs the link cannot announce.
    pub fn announced(&self) -> BTreeSet<IpAddr> {
        self.announced.borrow().clone()
    }

    /// A receiver that sees every change of [`announced`](Self::announced): lets a
    /// caller wait until a new owned set is in effect.
    pub fn watch_announced(&self) -> watch::Receiver<BTreeSet<IpAddr>> {
        self.announced.clone()
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The counters, shared with the task (for a metrics registry).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// False once the task has ended, which only a bug can cause: the caller should log
    /// it and start a new announcer.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops the task and waits until its sockets are closed.
    pub async fn stop(mut self) {
        self.task.abort();
        // The result is either Cancelled or the task's own end: both mean it is gone.
        let _ = (&mut self.task).await;
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The gratuitous schedule of one owned IP.
#[derive(Debug)]
struct Owned {
    taken: Instant,
    /// Burst offsets already sent (or skipped because they passed while the task was
    /// busy).
    rounds: usize,
    /// When the next round is due, also the key in [`Task::due`]; `None` when the burst
    /// is over and there is no refresh.
    next: Option<Instant>,
}

struct Task {
    link: Link,
    config: Config,
    arp: Option<PacketSocket>,
    ndp: Option<PacketSocket>,
    groups: Multicast,
    /// The last set received from the handle.
    wanted: BTreeSet<IpAddr>,
    /// The IPs announced (a subset of `wanted`).
    owned: BTreeMap<IpAddr, Owned>,
    /// Pending gratuitous rounds, earliest first.
    due: BTreeSet<(Instant, IpAddr)>,
    counters: Arc<Counters>,
    announced: watch::Sender<BTreeSet<IpAddr>>,
    /// The kind of the last send error logged, so a dead link logs once, not per frame.
    last_send_error: Option<io::ErrorKind>,
}

impl Task {
    async fn run(mut self, mut wanted: watch::Receiver<BTreeSet<IpAddr>>) {
        let mut arp_buf = vec![0u8; RECV_BUFFER];
        let mut ndp_buf = vec![0u8; RECV_BUFFER];
        let mut arp_errors = 0u32;
        let mut ndp_errors = 0u32;
        let initial = wanted.borrow_and_update().clone();
        self.apply(initial).await;
        loop {
            let next_due = self.due.first().map(|&(at, _)| at);
            tokio::select! {
                changed = wanted.changed() => {
                    if changed.is_err() {
                        // The handle is gone.
                        break;
                    }
                    let set = wanted.borrow_and_update().clone();
                    self.apply(set).await;
                }
                () = sleep_until(next_due), if next_due.is_some() => self.send_due().await,
                received = recv(self.arp.as_ref(), &mut arp_buf, arp_errors) => {
                    match received {
                        Ok(len) => {
                            arp_errors = 0;
                            if let Some(frame) = len.and_then(|n| arp_buf.get(..n)) {
                                self.on_arp(frame).await;
                            } else {
                                bump(&self.counters.frames_invalid);
                            }
                        }
                        Err(e) => {
                            arp_errors = arp_errors.saturating_add(1);
                            self.on_recv_error(&e, arp_errors);
                        }
                    }
                }
                received = recv(self.ndp.as_ref(), &mut ndp_buf, ndp_errors) => {
                    match received {
                        Ok(len) => {
                            ndp_errors = 0;
                            if let Some(frame) = len.and_then(|n| ndp_buf.get(..n)) {
                                self.on_ns(frame).await;
                            } else {
                                bump(&self.counters.frames_invalid);
                            }
                        }
                        Err(e) => {
                            ndp_errors = ndp_errors.saturating_add(1);
                            self.on_recv_error(&e, ndp_errors);
                        }
                    }
                }
            }
        }
        info!(interface = %self.link.name, "Layer2 announcer stopped");
    }

    /// Makes `wanted` the owned set: releases first (a lost IP must stop being answered
    /// before anything else), then takes, then sends the first rounds of the new IPs.
    async fn apply(&mut self, wanted: BTreeSet<IpAddr>) {
        let now = Instant::now();
        let lost: Vec<IpAddr> = self
            .owned
            .keys()
            .filter(|ip| !wanted.contains(ip))
            .copied()
            .collect();
        for &ip in &lost {
            self.release(ip);
        }
        let mut taken = 0usize;
        for &ip in &wanted {
            if self.owned.contains_key(&ip) {
                continue;
            }
            if self.can_announce(ip) {
                self.take(ip, now);
                taken = taken.saturating_add(1);
            } else if !self.wanted.contains(&ip) {
                warn!(
                    interface = %self.link.name,
                    %ip,
                    "cannot announce: the interface has no {}",
                    if ip.is_ipv4() { "ARP" } else { "IPv6 link-local address" }
                );
            }
        }
        self.wanted = wanted;
        let changed = taken > 0 || !lost.is_empty();
        // Published before the first rounds go out, so that whoever sees a gratuitous
        // packet for an IP also sees the IP in `announced` (callers may wait on it).
        if changed {
            let announced: BTreeSet<IpAddr> = self.owned.keys().copied().collect();
            self.announced.send_replace(announced);
        }
        // The first rounds of the new IPs are due now; logging waits until they are out.
        self.send_due().await;
        if changed {
            info!(
                interface = %self.link.name,
                taken,
                lost = lost.len(),
                announced = self.owned.len(),
                "Layer2 ownership changed"
            );
        }
    }

    fn can_announce(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.arp.is_some(),
            IpAddr::V6(_) => self.ndp.is_some() && self.link.link_local.is_some(),
        }
    }

    fn take(&mut self, ip: IpAddr, now: Instant) {
        if let (IpAddr::V6(v6), Some(socket)) = (ip, &self.ndp) {
            // Failing to join is not fatal: the unsolicited NAs still move the
            // neighbours, and NICs in promiscuous or all-multicast mode (and veth)
            // deliver the solicitations anyway.
            if let Err(e) = self.groups.join(socket, ndp::solicited_node_mac(v6)) {
                bump(&self.counters.membership_errors);
                warn!(interface = %self.link.name, %ip, error = %e, "solicited-node group not joined");
            }
        }
        let next = self.first_round(now);
        if let Some(at) = next {
            self.due.insert((at, ip));
        }
        self.owned.insert(
            ip,
            Owned {
                taken: now,
                rounds: 0,
                next,
            },
        );
        debug!(interface = %self.link.name, %ip, "taken");
    }

    fn first_round(&self, now: Instant) -> Option<Instant> {
        match (self.config.burst.first(), self.config.garp_refresh) {
            (Some(&offset), _) => Some(now + offset),
            (None, Some(refresh)) => Some(now + refresh),
            (None, None) => None,
        }
    }

    fn release(&mut self, ip: IpAddr) {
        let Some(owned) = self.owned.remove(&ip) else {
            return;
        };
        if let Some(at) = owned.next {
            self.due.remove(&(at, ip));
        }
        if let (IpAddr::V6(v6), Some(socket)) = (ip, &self.ndp)
            && let Err(e) = self.groups.leave(socket, ndp::solicited_node_mac(v6))
        {
            bump(&self.counters.membership_errors);
            warn!(interface = %self.link.name, %ip, error = %e, "solicited-node group not left");
        }
        debug!(interface = %self.link.name, %ip, "released");
    }

    /// Sends every round that is due and schedules the following ones. Each IP is in
    /// `due` once and is rescheduled strictly after `now`, so this visits each at most
    /// once.
    async fn send_due(&mut self) {
        let now = Instant::now();
        for _ in 0..self.due.len() {
            let Some(&(at, ip)) = self.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.due.pop_first();
            self.announce(ip).await;
            let next = self.owned.get_mut(&ip).and_then(|owned| {
                // Offsets that passed while the task was busy are skipped: sending them
                // back to back would add nothing.
                while owned.rounds < self.config.burst.len()
                    && self
                        .config
                        .burst
                        .get(owned.rounds)
                        .is_some_and(|&offset| owned.taken + offset <= now)
                {
                    owned.rounds += 1;
                }
                owned.next = match self.config.burst.get(owned.rounds) {
                    Some(&offset) => Some(owned.taken + offset),
                    None => self.config.garp_refresh.map(|refresh| now + refresh),
                };
                owned.next
            });
            if let Some(next) = next {
                self.due.insert((next, ip));
            }
        }
    }

    /// One gratuitous round for `ip`.
    async fn announce(&mut self, ip: IpAddr) {
        let mac = self.link.mac;
        match ip {
            IpAddr::V4(v4) => {
                for frame in [
                    arp::gratuitous_request(mac, v4),
                    arp::gratuitous_reply(mac, v4),
                ] {
                    if self.send(Kind::Arp, &frame).await {
                        bump(&self.counters.gratuitous_sent);
                    }
                }
            }
            IpAddr::V6(v6) => {
                let Some(source) = self.ndp_source(v6) else {
                    return;
                };
                let frame = ndp::unsolicited_advertisement(mac, source, v6);
                if self.send(Kind::NeighborSolicitation, &frame).await {
                    bump(&self.counters.gratuitous_sent);
                }
            }
        }
    }

    async fn on_arp(&mut self, frame: &[u8]) {
        let Ok(parsed) = arp::parse(frame) else {
            bump(&self.counters.frames_invalid);
            return;
        };
        let owned = |ip: Ipv4Addr| self.owned.contains_key(&IpAddr::V4(ip));
        let packet = &parsed.packet;
        if packet.op == arp::Op::Request && !packet.is_gratuitous() && owned(packet.target_ip) {
            bump(&self.counters.arp_requests_received);
        }
        if let Some(ip) = arp::conflict(&parsed, self.link.mac, owned) {
            bump(&self.counters.conflicts);
            warn!(
                interface = %self.link.name,
                %ip,
                claimed_by = %packet.sender_mac,
                "another station claims an IP this node announces"
            );
        }
        if let Some(reply) = arp::reply_for(&parsed, self.link.mac, owned)
            && self.send(Kind::Arp, &reply).await
        {
            bump(&self.counters.arp_requests_answered);
        }
    }

    async fn on_ns(&mut self, frame: &[u8]) {
        let ns = match ndp::parse(frame) {
            Ok(ndp::Message::Solicitation(ns)) => ns,
            // The socket filter lets only solicitations through; anything else is noise.
            Ok(ndp::Message::Advertisement(_)) | Err(_) => {
                bump(&self.counters.frames_invalid);
                return;
            }
        };
        let Some(source) = self.ndp_source(ns.target) else {
            return;
        };
        let owned = |ip: Ipv6Addr| self.owned.contains_key(&IpAddr::V6(ip));
        if owned(ns.target) {
            bump(&self.counters.ns_received);
        }
        if let Some(reply) = ndp::reply_for(&ns, self.link.mac, source, owned)
            && self.send(Kind::NeighborSolicitation, &reply).await
        {
            bump(&self.counters.ns_answered);
        }
    }

    /// The IPv6 source of an advertisement for `target`; `None` without IPv6 on the link.
    fn ndp_source(&self, target: Ipv6Addr) -> Option<Ipv6Addr> {
        let link_local = self.link.link_local?;
        Some(match self.config.ndp_source {
            NdpSource::Target => target,
            NdpSource::LinkLocal => link_local,
        })
    }

    /// Sends on the socket of `kind`; counts and logs (once per kind of error) failures.
    async fn send(&mut self, kind: Kind, frame: &[u8]) -> bool {
        let socket = match kind {
            Kind::Arp => self.arp.as_ref(),
            Kind::NeighborSolicitation | Kind::NeighborAdvertisement => self.ndp.as_ref(),
        };
        let Some(socket) = socket else {
            return false;
        };
        match socket.send(frame).await {
            Ok(()) => {
                if self.last_send_error.take().is_some() {
                    info!(interface = %self.link.name, "sending works again");
                }
                true
            }
            Err(e) => {
                bump(&self.counters.send_errors);
                let kind = e
                    .os_error()
                    .map_or(io::ErrorKind::TimedOut, io::Error::kind);
                if self.last_send_error != Some(kind) {
                    warn!(interface = %self.link.name, error = %e, "send failed (further failures of this kind are only counted)");
                    self.last_send_error = Some(kind);
                }
                false
            }
        }
    }

    fn on_recv_error(&self, error: &IoError, in_a_row: u32) {
        bump(&self.counters.recv_errors);
        // ENETDOWN arrives once per link down; log the first of a series only.
        if in_a_row == 1 {
            warn!(interface = %self.link.name, %error, "receive failed");
        }
    }
}

/// Sleeps until `at`; never called with `None` (the branch is disabled then).
async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Receives one frame from `socket`, or waits forever when there is none. After
/// repeated errors it first pauses, doubling per error up to [`MAX_RECV_PAUSE`].
/// `Ok(None)` is a frame too large for the buffer.
async fn recv(
    socket: Option<&PacketSocket>,
    buf: &mut [u8],
    errors_in_a_row: u32,
) -> Result<Option<usize>, IoError> {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    if let Some(extra) = errors_in_a_row.checked_sub(RECV_ERRORS_BEFORE_PAUSE) {
        let pause = Duration::from_millis(10)
            .saturating_mul(1u32 << extra.min(16))
            .min(MAX_RECV_PAUSE);
        tokio::time::sleep(pause).await;
    }
    match socket.recv(buf).await? {
        Received::Frame(len) => Ok(Some(len)),
        Received::Truncated(_) => Ok(None),
    }
}
