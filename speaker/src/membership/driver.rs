//! The only part of membership that does I/O: one tokio task owning the UDP socket,
//! foca, the timer queue and the replay windows.
//!
//! foca is sans-IO: every call hands it a runtime that collects "send this to X",
//! "call me back in D" and "member Y is up/down". After each call the task drains that
//! runtime: seals and sends the datagrams, queues the timers, and republishes the live
//! set if it changed. A single task means no locks: foca, the queue and the windows are
//! only ever touched here.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;

use foca::{
    AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, State, Timer,
};
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::auth::GossipKey;
use super::counters::Counters;
use super::identity::{NodeId, now_micros};
use super::replay::ReplayGuard;

/// What the [`super::Membership`] handle asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Replace the seed addresses and announce to the ones not already live.
    Join(BTreeSet<SocketAddr>),
    /// Announce our departure, then stop; the sender learns when it is sent.
    Leave(oneshot::Sender<()>),
}

type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

pub(crate) struct Driver {
    pub(crate) foca: Swim,
    /// What foca was configured with (it has no getter), for the leave.
    pub(crate) config: foca::Config,
    pub(crate) socket: UdpSocket,
    pub(crate) key: GossipKey,
    pub(crate) max_datagram: usize,
    pub(crate) rejoin_period: std::time::Duration,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) live: watch::Sender<BTreeSet<String>>,
    pub(crate) counters: Arc<Counters>,
}

/// The task's mutable state besides foca.
struct Io {
    runtime: AccumulatingRuntime<NodeId>,
    timers: BinaryHeap<Reverse<(Instant, Timer<NodeId>)>>,
    replay: ReplayGuard,
    /// Our process epoch and datagram counter, sent in every envelope.
    epoch: u64,
    seq: u64,
    seal_buf: Vec<u8>,
    seeds: BTreeSet<SocketAddr>,
}

impl Driver {
    /// Runs until the handle leaves or is dropped.
    pub(crate) async fn run(mut self) {
        let mut io = Io {
            runtime: AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            replay: ReplayGuard::new(),
            epoch: now_micros(),
            seq: 0,
            seal_buf: Vec::with_capacity(self.max_datagram),
            seeds: BTreeSet::new(),
        };
        // One byte more than we accept, so that an oversized datagram is seen as such
        // (it fails authentication) instead of being silently truncated to a valid size.
        let mut recv_buf = vec![0u8; self.max_datagram + 1];
        let mut rejoin = tokio::time::interval(self.rejoin_period);
        rejoin.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.publish_live();

        loop {
            let next_timer = io.timers.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                // Commands first: a leave must not wait behind a flood of datagrams.
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Join(seeds)) => {
                        io.seeds = seeds;
                        self.announce_to_missing_seeds(&mut io);
                    }
                    Some(Command::Leave(done)) => {
                        self.leave(&mut io).await;
                        // The caller may have stopped waiting; leaving is done either way.
                        let _ = done.send(());
                        return;
                    }
                    // The handle is gone without leaving: stop like a crash would.
                    None => return,
                },
                () = sleep_until(next_timer) => {
                    self.fire_due_timers(&mut io);
                }
                received = self.socket.recv_from(&mut recv_buf) => match received {
                    Ok((len, _from)) => self.receive(&mut io, recv_buf.get(..len).unwrap_or_default()),
                    // ICMP errors reported on the socket, interrupted calls: none of them
                    // concern the next datagram.
                    Err(err) => tracing::debug!(%err, "gossip receive error"),
                },
                _ = rejoin.tick() => self.announce_to_missing_seeds(&mut io),
            }
            self.flush(&mut io).await;
        }
    }

    fn receive(&mut self, io: &mut Io, datagram: &[u8]) {
        Counters::add(&self.counters.received, 1);
        Counters::add(&self.counters.received_bytes, len_u64(datagram.len()));
        if datagram.len() > self.max_datagram {
            Counters::add(&self.counters.dropped_unauthenticated, 1);
            return;
        }
        let opened = match self.key.open(datagram) {
            Ok(opened) => opened,
            Err(err) => {
                Counters::add(&self.counters.dropped_unauthenticated, 1);
                tracing::trace!(%err, "dropped unauthenticated gossip datagram");
                return;
            }
        };
        if let Err(replay) = io.replay.check(
            opened.sender,
            opened.epoch,
            opened.seq,
            std::time::Instant::now(),
        ) {
            Counters::add(&self.counters.dropped_replayed, 1);
            tracing::debug!(sender = %opened.sender, ?replay, "dropped replayed gossip datagram");
            return;
        }
        if let Err(err) = self.foca.handle_data(opened.payload, &mut io.runtime) {
            Counters::add(&self.counters.rejected, 1);
            tracing::debug!(sender = %opened.sender, %err, "foca refused a gossip datagram");
        }
    }

    fn fire_due_timers(&mut self, io: &mut Io) {
        let now = Instant::now();
        // The heap orders equal deadlines by timer kind, which is the order foca wants
        // (an indirect probe before the next probe) when the task ran late.
        while let Some(Reverse((at, _))) = io.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, timer))) = io.timers.pop() else {
                break;
            };
            if let Err(err) = self.foca.handle_timer(timer, &mut io.runtime) {
                tracing::debug!(%err, "foca timer");
            }
        }
    }

    /// Announces to every seed that is neither us nor a live member's address.
    fn announce_to_missing_seeds(&mut self, io: &mut Io) {
        let me = self.foca.identity().addr;
        let live: BTreeSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for seed in &io.seeds {
            if *seed == me || live.contains(seed) {
                continue;
            }
            if let Err(err) = self.foca.announce(NodeId::seed(*seed), &mut io.runtime) {
                tracing::debug!(%seed, %err, "gossip announce");
            }
        }
    }

    async fn leave(&mut self, io: &mut Io) {
        // foca's leave tells `num_indirect_probes` random members and lets them relay;
        // raising that to everyone for this one call tells every member directly, so
        // none waits for a relay. (This config change is allowed at runtime; the
        // instance is discarded right after.)
        let everyone = u8::try_from(self.foca.num_members()).unwrap_or(u8::MAX);
        let mut config = self.config.clone();
        if let Some(n) = NonZeroU8::new(everyone) {
            config.num_indirect_probes = config.num_indirect_probes.max(NonZeroUsize::from(n));
            config.max_transmissions = config.max_transmissions.max(n);
        }
        if let Err(err) = self.foca.set_config(config) {
            tracing::debug!(%err, "widening the leave announcement");
        }
        if let Err(err) = self.foca.leave_cluster(&mut io.runtime) {
            tracing::warn!(%err, "leaving gossip");
        }
        // Timers and notifications no longer matter; only the datagrams do.
        self.flush(io).await;
        self.live.send_replace(BTreeSet::new());
    }

    /// Drains what foca asked for during the last call(s).
    async fn flush(&mut self, io: &mut Io) {
        let now = Instant::now();
        while let Some((after, timer)) = io.runtime.to_schedule() {
            io.timers.push(Reverse((now + after, timer)));
        }
        let mut membership_changed = false;
        while let Some(notification) = io.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => {
                    self.counters.member_up(&id.name);
                    membership_changed = true;
                }
                OwnedNotification::MemberDown(id) => {
                    self.counters.member_down(&id.name);
                    membership_changed = true;
                }
                OwnedNotification::Rename(..) | OwnedNotification::Idle => {
                    membership_changed = true
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::warn!(
                        bump = id.bump,
                        "declared down by the cluster; rejoined under a renewed identity"
                    );
                    membership_changed = true;
                }
                OwnedNotification::Defunct => {
                    tracing::debug!("gossip identity is down");
                    membership_changed = true;
                }
                OwnedNotification::Active => {}
            }
        }
        while let Some((to, payload)) = io.runtime.to_send() {
            io.seq = io.seq.wrapping_add(1);
            self.key.seal(
                self.foca.identity().addr,
                io.epoch,
                io.seq,
                &payload,
                &mut io.seal_buf,
            );
            match self.socket.send_to(&io.seal_buf, to.addr).await {
                Ok(n) => {
                    Counters::add(&self.counters.sent, 1);
                    Counters::add(&self.counters.sent_bytes, len_u64(n));
                }
                Err(err) => {
                    Counters::add(&self.counters.send_errors, 1);
                    tracing::debug!(to = %to.addr, %err, "gossip send");
                }
            }
        }
        // Gauges first: whoever sees the new live set then sees counts at least as new
        // (the watch channel orders the two).
        self.publish_gauges();
        if membership_changed {
            self.publish_live();
        }
    }

    /// Member counts by state. Suspicions come and go without a notification, so this
    /// runs after every interaction; a walk over the member table costs less than the
    /// datagram that triggered it.
    fn publish_gauges(&self) {
        let (mut alive, mut suspect, mut down) = (0u64, 0u64, 0u64);
        let mut suspected = BTreeSet::new();
        for m in self.foca.iter_membership_state() {
            match m.state() {
                State::Alive => alive += 1,
                State::Suspect => {
                    suspect += 1;
                    suspected.insert(m.id().name.clone());
                }
                State::Down => down += 1,
            }
        }
        self.counters.set_suspected(suspected);
        Counters::set(&self.counters.members_alive, alive);
        Counters::set(&self.counters.members_suspect, suspect);
        Counters::set(&self.counters.members_down, down);
    }

    /// Publishes our name plus every active (alive or suspect) member's, if different
    /// from what was last published.
    fn publish_live(&self) {
        let mut live: BTreeSet<String> = self
            .foca
            .iter_members()
            .map(|m| m.id().name.clone())
            .collect();
        live.insert(self.foca.identity().name.clone());
        self.live.send_if_modified(|current| {
            if *current == live {
                false
            } else {
                *current = live;
                true
            }
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
