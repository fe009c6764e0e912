//! Membership: which speakers are alive, by SWIM gossip over authenticated UDP.
//!
//! The election needs one fact the Kubernetes API learns too slowly: is the node's
//! speaker still running? Node readiness takes ~40 s to flip after a crash; SWIM
//! notices in a few hundred milliseconds. This module runs the SWIM protocol with
//! [`foca`] (sans-IO) and a single tokio task for the socket and timers, and publishes
//! the set of live node names on a [`watch`] channel.
//!
//! - [`identity`]: who a member is (node name, gossip address, restart bump);
//! - [`auth`]: the HMAC envelope around every datagram;
//! - [`replay`]: the per-sender sequence window that makes a datagram count once;
//! - [`tuning`]: the timers, and what detection time and traffic they give;
//! - `driver`: the task that does the I/O.
//!
//! # Using it
//!
//! ```no_run
//! # async fn f() -> Result<(), ferrolb_speaker::membership::MembershipError> {
//! use ferrolb_speaker::membership::{GossipKey, Membership, MembershipConfig, Tuning};
//! let key = ferrolb_speaker::membership::read_secret_file("/etc/ferrolb/gossip-secret".as_ref())?;
//! let m = Membership::start(MembershipConfig {
//!     node_name: "node-a".into(),
//!     bind: "0.0.0.0:7946".parse().unwrap(),
//!     advertise: Some("198.51.100.11:7946".parse().unwrap()),
//!     key,
//!     tuning: Tuning::lan(),
//! })
//! .await?;
//! m.join(["198.51.100.12:7946".parse().unwrap()])?; // every Node's InternalIP:port
//! let mut live = m.live();
//! live.changed().await.ok();
//! println!("alive: {:?}", *live.borrow());
//! m.leave().await?; // on SIGTERM, after we stopped announcing
//! # Ok(()) }
//! ```
//!
//! # What the speaker's main loop must know
//!
//! - The live set always contains this node. Right after [`Membership::start`] it is
//!   only this node: wait (briefly) to hear from the other nodes before electing, or a
//!   restarting speaker grabs every IP for a moment.
//! - A node that can reach no peer (isolated, or the only speaker) also sees only
//!   itself, and elects itself for everything. That is SWIM's view of a partition, as
//!   in MetalLB.
//! - Seeds must be exactly the addresses peers advertise (foca ignores an announce not
//!   addressed to the receiver's own address): every speaker must compute a node's
//!   gossip address the same way, e.g. its first InternalIP and the gossip port.
//! - Dropping [`Membership`] is a crash for the peers (detected in ~0.25–0.5 s);
//!   [`Membership::leave`] is seen within a millisecond. On SIGTERM: stop announcing,
//!   then leave, then exit.
//! - Detection time, traffic and the trade-offs behind them: see [`tuning`].

pub mod auth;
mod counters;
mod driver;
pub mod identity;
pub mod replay;
pub mod tuning;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use foca::{Foca, PostcardCodec};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use auth::{GossipKey, SecretError};
pub use counters::CounterSnapshot;
pub use identity::NodeId;
pub use tuning::{Tuning, TuningError};

use counters::Counters;
use driver::{Command, Driver};

/// Why membership could not start, or a request could not be passed on.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The secret file could not be read.
    #[error("reading gossip secret file {path}: {source}")]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The secret file's content is not a usable secret.
    #[error("gossip secret file {path}: {source}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// Why.
        source: SecretError,
    },
    /// The timers are inconsistent.
    #[error(transparent)]
    Tuning(#[from] TuningError),
    /// The gossip socket could not be bound.
    #[error("binding gossip socket {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Bound to a wildcard address and no address to advertise was given: peers would
    /// not know where to send.
    #[error("gossip binds {0}, a wildcard address; give the address peers reach this node at")]
    NoAdvertiseAddress(SocketAddr),
    /// The gossip task has stopped (it left, or panicked).
    #[error("the gossip task has stopped")]
    Stopped,
}

/// Reads `--gossip-secret-file` and derives the key (see [`GossipKey::from_secret`]).
pub fn read_secret_file(path: &Path) -> Result<GossipKey, MembershipError> {
    let secret = std::fs::read(path).map_err(|source| MembershipError::ReadSecret {
        path: path.to_owned(),
        source,
    })?;
    GossipKey::from_secret(&secret).map_err(|source| MembershipError::Secret {
        path: path.to_owned(),
        source,
    })
}

/// What [`Membership::start`] needs.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's name, as in its Node object.
    pub node_name: String,
    /// `--gossip-bind`. Port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// The address peers send to, which must be exactly the address they are given to
    /// [`Membership::join`] for this node (foca only accepts an announce addressed to
    /// its own address). `None`: the bound address, which then must not be a wildcard.
    /// A port of 0 here means "the bound port".
    pub advertise: Option<SocketAddr>,
    /// The shared key.
    pub key: GossipKey,
    /// Timers.
    pub tuning: Tuning,
}

/// A running gossip member. Dropping it stops gossip abruptly, as a crash would (peers
/// notice within the detection time); [`Membership::leave`] is the clean way out.
#[derive(Debug)]
pub struct Membership {
    identity: NodeId,
    commands: mpsc::UnboundedSender<Command>,
    live: watch::Receiver<BTreeSet<String>>,
    counters: Arc<Counters>,
    task: Option<JoinHandle<()>>,
}

impl Membership {
    /// Binds the socket and starts the gossip task. Until [`Membership::join`] is
    /// called (or a peer joins through us), the live set is just this node.
    pub async fn start(config: MembershipConfig) -> Result<Self, MembershipError> {
        let foca_config = config.tuning.to_foca()?;
        let socket =
            UdpSocket::bind(config.bind)
                .await
                .map_err(|source| MembershipError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let bound = socket
            .local_addr()
            .map_err(|source| MembershipError::Bind {
                addr: config.bind,
                source,
            })?;
        let mut advertise = config.advertise.unwrap_or(bound);
        if advertise.port() == 0 {
            advertise.set_port(bound.port());
        }
        if advertise.ip().is_unspecified() {
            return Err(MembershipError::NoAdvertiseAddress(bound));
        }

        let identity = NodeId::new(config.node_name, advertise);
        let rng: rand::rngs::StdRng = rand::make_rng();
        let foca = Foca::new(identity.clone(), foca_config.clone(), rng, PostcardCodec);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (live_tx, live) = watch::channel(BTreeSet::from([identity.name.clone()]));
        let counters = Arc::new(Counters::default());
        let driver = Driver {
            foca,
            config: foca_config,
            socket,
            key: config.key,
            max_datagram: config.tuning.max_datagram,
            rejoin_period: config.tuning.rejoin_period,
            commands: commands_rx,
            live: live_tx,
            counters: Arc::clone(&counters),
        };
        let task = tokio::spawn(driver.run());
        Ok(Self {
            identity,
            commands,
            live,
            counters,
            task: Some(task),
        })
    }

    /// Sets the seed addresses (every Node's gossip address; our own is ignored) and
    /// announces to those that are not live members yet. Call it again whenever the
    /// node list changes: the list replaces the previous one. Seeds that are not live
    /// are announced to again every [`Tuning::rejoin_period`], so a partition heals and
    /// a speaker that starts later is found even if nobody calls this again.
    pub fn join(&self, seeds: impl IntoIterator<Item = SocketAddr>) -> Result<(), MembershipError> {
        self.commands
            .send(Command::Join(seeds.into_iter().collect()))
            .map_err(|_| MembershipError::Stopped)
    }

    /// The live node names, this node included, republished on every change. Alive and
    /// suspect members count as live; a member is removed when declared down or when it
    /// leaves.
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    /// This run's identity (name, advertised address, bump).
    pub fn identity(&self) -> &NodeId {
        &self.identity
    }

    /// The address peers send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.identity.addr
    }

    /// The socket's counters now.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Reads the counters when called, for a metrics registry that reads them on
    /// every scrape; it outlives the membership.
    pub fn counter_source(&self) -> impl Fn() -> CounterSnapshot + Send + Sync + 'static {
        let counters = Arc::clone(&self.counters);
        move || counters.snapshot()
    }

    /// Nodes declared down by failure detection (suspected, then not refuted in time)
    /// and not up again. A node that left with [`Membership::leave`] is not in it.
    pub fn failed(&self) -> BTreeSet<String> {
        self.counters.failed()
    }

    /// Tells peers we are leaving, so they drop us at once instead of after the
    /// detection time, then stops the task. The live set becomes empty.
    pub async fn leave(mut self) -> Result<(), MembershipError> {
        let (done, sent) = oneshot::channel();
        self.commands
            .send(Command::Leave(done))
            .map_err(|_| MembershipError::Stopped)?;
        sent.await.map_err(|_| MembershipError::Stopped)?;
        if let Some(task) = self.task.take() {
            task.await.map_err(|_| MembershipError::Stopped)?;
        }
        Ok(())
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
