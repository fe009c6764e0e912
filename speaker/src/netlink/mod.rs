//! This node's interfaces and their addresses, listed and watched over rtnetlink.
//!
//! [`list`] dumps links (`RTM_GETLINK`) and addresses (`RTM_GETADDR`) once.
//! [`watch`] subscribes to `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR` and `RTNLGRP_IPV6_IFADDR`
//! first, then dumps, then applies every notification to its table and publishes the
//! whole table through a [`tokio::sync::watch`] channel whenever it changes. A carrier
//! change is one notification, so it is published as soon as the kernel sends it
//! (microseconds after it reads the datagram); which interfaces may announce is then
//! decided by [`crate::interfaces`].
//!
//! Notifications are lost when the socket's receive queue overflows (the kernel then
//! fails the next read with `ENOBUFS`). The watcher then drops the socket, with whatever
//! stale notifications it still queued, opens a new subscription and dumps again: the
//! table is rebuilt from the kernel's current state, never patched from partial history.
//! Any other failure is handled the same way after a short back-off, so the watcher never
//! stops while its [`InterfaceWatch`] lives; until it recovers, the last table stands.

mod decode;
mod socket;
mod table;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use tokio::sync::watch as chan;
use tokio::task::JoinHandle;

pub use self::decode::Malformed;
pub use self::socket::BadFrame;
use self::socket::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NlSocket, frames};
use self::table::Table;
use crate::interfaces::Interface;

/// The table as published: cheap to clone, never mutated after publication.
pub type Interfaces = Arc<Vec<Interface>>;

/// Why the interfaces could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open an rtnetlink socket: {cause}")]
    Socket { cause: io::Error },
    #[error("rtnetlink {what} dump failed: {cause}")]
    Dump {
        what: &'static str,
        cause: io::Error,
    },
    #[error("the kernel refused the {what} dump: {cause}")]
    Refused {
        what: &'static str,
        cause: io::Error,
    },
    #[error("{what} dump: {cause}")]
    Framing { what: &'static str, cause: BadFrame },
    #[error("{what} dump changed under us {attempts} times in a row")]
    Inconsistent { what: &'static str, attempts: u32 },
}

/// How many times a dump the kernel marks as interrupted (`NLM_F_DUMP_INTR`: the table
/// changed while it was read) is retried before giving up.
const DUMP_ATTEMPTS: u32 = 5;

/// The interfaces of the current network namespace, by ascending index.
pub async fn list() -> Result<Vec<Interface>, NetlinkError> {
    Ok(dump().await?.interfaces())
}

/// Settings of [`watch`].
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The subscription's receive queue in bytes. Bursts larger than this (mass
    /// interface creation, a flapping bond) overflow it and cost a full re-list, which is
    /// correct but slower. Raised past `net.core.rmem_max` when the process has
    /// CAP_NET_ADMIN.
    pub recv_buffer: usize,
    /// The first wait before retrying after a failure other than an overrun; doubled per
    /// consecutive failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            recv_buffer: 4 << 20,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// What the watcher has done so far; for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Link and address notifications applied.
    pub notifications: u64,
    /// Tables published (the initial one included).
    pub published: u64,
    /// Receive-queue overruns (`ENOBUFS`), each followed by a re-list.
    pub overruns: u64,
    /// Full dumps done (the initial one included).
    pub dumps: u64,
    /// Failures other than overruns: socket errors, refused dumps, malformed messages.
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    notifications: AtomicU64,
    published: AtomicU64,
    overruns: AtomicU64,
    dumps: AtomicU64,
    failures: AtomicU64,
}

/// A running watcher. Dropping it stops the watcher; receivers then see the channel
/// closed.
pub struct InterfaceWatch {
    rx: chan::Receiver<Interfaces>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl InterfaceWatch {
    /// A receiver of the table; it holds the latest one at once.
    pub fn subscribe(&self) -> chan::Receiver<Interfaces> {
        self.rx.clone()
    }

    /// The latest table.
    pub fn current(&self) -> Interfaces {
        self.rx.borrow().clone()
    }

    pub fn stats(&self) -> WatchStats {
        let c = &self.counters;
        WatchStats {
            notifications: c.notifications.load(Relaxed),
            published: c.published.load(Relaxed),
            overruns: c.overruns.load(Relaxed),
            dumps: c.dumps.load(Relaxed),
            failures: c.failures.load(Relaxed),
        }
    }
}

impl Drop for InterfaceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching the interfaces of the current network namespace (the sockets belong
/// to the namespace of the thread that calls this, and the watcher's later sockets to
/// that of the runtime's threads). Returns once the first full table is published, or
/// with the error that prevented it. Must be called within a tokio runtime.
pub async fn watch(opts: WatchOptions) -> Result<InterfaceWatch, NetlinkError> {
    let counters = Arc::new(Counters::default());
    let (sub, table) = start(&opts, &counters).await?;
    let (tx, rx) = chan::channel(Arc::new(table.interfaces()));
    counters.published.fetch_add(1, Relaxed);
    let task = tokio::spawn(run(sub, table, tx, opts, counters.clone()));
    Ok(InterfaceWatch { rx, counters, task })
}

const GROUPS: [u32; 3] = [
    libc::RTNLGRP_LINK,
    libc::RTNLGRP_IPV4_IFADDR,
    libc::RTNLGRP_IPV6_IFADDR,
];

/// Subscribes, then dumps: every change after the dump's snapshot is then also queued
/// on the subscription, so applying the queue in order on top of the dump converges on
/// the kernel's state (a queued change older than the dump is overwritten by a later one
/// about the same object, which is queued after it).
async fn start(
    opts: &WatchOptions,
    counters: &Counters,
) -> Result<(NlSocket, Table), NetlinkError> {
    let sub = NlSocket::subscribe(&GROUPS, opts.recv_buffer)
        .map_err(|cause| NetlinkError::Socket { cause })?;
    let table = dump().await?;
    counters.dumps.fetch_add(1, Relaxed);
    Ok((sub, table))
}

/// Why following the notifications stopped.
enum Stop {
    /// The receive queue overflowed: notifications were lost.
    Overrun,
    Failed(String),
}

async fn run(
    mut sub: NlSocket,
    mut table: Table,
    tx: chan::Sender<Interfaces>,
    opts: WatchOptions,
    counters: Arc<Counters>,
) {
    let mut backoff = opts.min_backoff;
    loop {
        match follow(&mut sub, &mut table, &tx, &counters).await {
            Stop::Overrun => {
                counters.overruns.fetch_add(1, Relaxed);
                tracing::warn!("netlink receive queue overflowed; re-listing interfaces");
            }
            Stop::Failed(why) => {
                counters.failures.fetch_add(1, Relaxed);
                tracing::warn!("interface watch: {why}; re-listing in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
        // Re-subscribe before re-listing (see `start`); the old socket goes with its queue.
        loop {
            match start(&opts, &counters).await {
                Ok((s, t)) => {
                    sub = s;
                    table = t;
                    break;
                }
                Err(e) => {
                    counters.failures.fetch_add(1, Relaxed);
                    tracing::warn!("interface watch: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(opts.max_backoff);
                }
            }
        }
        publish(&tx, &table, &counters);
        backoff = opts.min_backoff;
    }
}

/// Applies notifications as they come, publishing after each batch (all datagrams
/// already queued), until something forces a re-list.
async fn follow(
    sub: &mut NlSocket,
    table: &mut Table,
    tx: &chan::Sender<Interfaces>,
    counters: &Counters,
) -> Stop {
    loop {
        match sub.recv().await {
            Ok(datagram) => {
                if let Err(stop) = apply(datagram, table, counters) {
                    return stop;
                }
            }
            Err(e) => return stop_for(e),
        }
        loop {
            match sub.try_recv() {
                Ok(Some(datagram)) => {
                    if let Err(stop) = apply(datagram, table, counters) {
                        return stop;
                    }
                }
                Ok(None) => break,
                Err(e) => return stop_for(e),
            }
        }
        publish(tx, table, counters);
    }
}

fn stop_for(e: io::Error) -> Stop {
    if e.raw_os_error() == Some(libc::ENOBUFS) {
        Stop::Overrun
    } else {
        Stop::Failed(format!("receiving notifications: {e}"))
    }
}

fn apply(datagram: &[u8], table: &mut Table, counters: &Counters) -> Result<(), Stop> {
    for frame in frames(datagram) {
        let frame = frame.map_err(|e| Stop::Failed(e.to_string()))?;
        if frame.kind == NLMSG_ERROR || frame.kind == NLMSG_DONE {
            continue;
        }
        let msg = parse(frame.bytes).map_err(|e| Stop::Failed(e.to_string()))?;
        if let Some(change) = decode::decode(&msg).map_err(|e| Stop::Failed(e.to_string()))? {
            table.apply(change);
            counters.notifications.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

/// Publishes the table if it differs from the last one published: link notifications
/// also come for changes the table does not hold (MTU, statistics, promiscuity).
fn publish(tx: &chan::Sender<Interfaces>, table: &Table, counters: &Counters) {
    let now = table.interfaces();
    let changed = tx.send_if_modified(|current| {
        if **current == now {
            return false;
        }
        *current = Arc::new(now);
        true
    });
    if changed {
        counters.published.fetch_add(1, Relaxed);
    }
}

fn parse(bytes: &[u8]) -> Result<RouteNetlinkMessage, Malformed> {
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .map_err(|e| Malformed(e.to_string()))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(m) => Ok(m),
        other => Err(Malformed(format!("unexpected netlink payload {other:?}"))),
    }
}

/// Links, then addresses, into one table. A dump the kernel marks as interrupted is
/// taken again.
async fn dump() -> Result<Table, NetlinkError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut table = Table::default();
        let mut consistent = true;
        let mut sock = NlSocket::open().map_err(|cause| NetlinkError::Socket { cause })?;
        for (seq, what, request) in [
            (
                1,
                "link",
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
            ),
            (
                2,
                "address",
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            ),
        ] {
            consistent &= dump_one(&mut sock, seq, what, request, &mut table).await?;
        }
        if consistent {
            return Ok(table);
        }
        if attempt >= DUMP_ATTEMPTS {
            return Err(NetlinkError::Inconsistent {
                what: "interface",
                attempts: attempt,
            });
        }
    }
}

/// One dump request and its replies, applied to `table`. Returns false when the kernel
/// flagged the dump as interrupted.
async fn dump_one(
    sock: &mut NlSocket,
    seq: u32,
    what: &'static str,
    request: RouteNetlinkMessage,
    table: &mut Table,
) -> Result<bool, NetlinkError> {
    let io = |cause| NetlinkError::Dump { what, cause };
    let port = sock.port().map_err(io)?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(request));
    msg.finalize();
    let mut bytes = vec![0; msg.buffer_len()];
    msg.serialize(&mut bytes);
    sock.send(&bytes).await.map_err(io)?;

    let mut consistent = true;
    loop {
        let datagram = sock.recv().await.map_err(io)?;
        for frame in frames(datagram) {
            let frame = frame.map_err(|cause| NetlinkError::Framing { what, cause })?;
            // Anything not answering this request (there should be nothing) is skipped.
            if frame.seq != seq || frame.port != port {
                continue;
            }
            if frame.flags & NLM_F_DUMP_INTR != 0 {
                consistent = false;
            }
            match frame.kind {
                NLMSG_DONE => {
                    // A negative code in DONE means the dump ended early.
                    return match frame.code() {
                        Some(code) if code < 0 => Err(NetlinkError::Refused {
                            what,
                            cause: io::Error::from_raw_os_error(-code),
                        }),
                        _ => Ok(consistent),
                    };
                }
                NLMSG_ERROR => {
                    let code = frame.code().unwrap_or(-libc::EPROTO);
                    return Err(NetlinkError::Refused {
                        what,
                        cause: io::Error::from_raw_os_error(code.saturating_neg()),
                    });
                }
                _ => {}
            }
            // One entry the parser cannot read costs that entry, not the whole table; the
            // watcher re-lists when a notification about it fails, so it is noticed.
            match parse(frame.bytes).and_then(|m| decode::decode(&m)) {
                Ok(Some(change)) => table.apply(change),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping a {what} in the dump: {e}"),
            }
        }
    }
}
