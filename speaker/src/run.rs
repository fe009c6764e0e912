//! The speaker's main loop: read the world, learn who is alive, decide, and hand each
//! interface the addresses it answers for. Every input change (a new [`Snapshot`] from
//! the source, gossip members, interfaces) triggers a recomputation of the pure
//! [`election`] and [`desired`] functions; the data plane only receives the result, and a
//! [`Reporter`] tells the world (a file beside the standalone directory, or
//! ServiceL2Status and ServiceBGPStatus objects and Events in Kubernetes).
//!
//! Both sources push [`Snapshot`]s into a `watch` channel: the directory is read again
//! when inotify says it changed (polled every [`POLL`] where it cannot); the Kubernetes source ([`crate::source::kube`]) sends one after every
//! change once its initial lists are in, and keeps the last one while the API server is
//! away, so announcing goes on from the last known inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::bgp::rib::{self, Plan};
use crate::bgp::speaker::SessionSummary;
use crate::cli::{Cli, Source};
use crate::desired::{self, Desired};
use crate::election::{self, Announcements};
use crate::interfaces::{Exclusions, Interface};
use crate::membership::{self, Membership, MembershipConfig};
use crate::metrics::{Metrics, Mode};
use crate::netlink;
use crate::source::Snapshot;
use crate::source::dir::DirSource;
use crate::source::dir_watch::DirWatch;
use crate::world::ServiceKey;
use crate::{status, takeover};

/// How often the standalone directory is checked for changes.
pub const POLL: Duration = Duration::from_millis(100);
/// How often the standalone directory is still polled while inotify watches it: only a
/// safety net for file systems that send no events.
const DIR_FALLBACK_POLL: Duration = Duration::from_secs(1);
/// How long after a decision on new inputs the freed heap is given back.
const TRIM_AFTER: Duration = Duration::from_millis(200);
/// How long a starting speaker waits to hear from every known node before announcing
/// on what it has: a few gossip probe periods.
const SETTLE: Duration = Duration::from_millis(1500);

/// The data plane: given what each interface must answer for, make it so.
pub trait L2Plane {
    fn apply(&mut self, desired: &Desired);
}

/// Tells the world what this node announces; called whenever that changes. `bgp` is
/// what each BGP peer is meant to hold, and the problems found planning it.
pub trait Reporter {
    fn announced(&mut self, report: &Arc<Report>, ann: &Announcements, want: &Desired, bgp: &Plan);

    /// Only the BGP sessions changed (`report.bgp_sessions`): nothing that was decided.
    fn sessions(&mut self, report: &Arc<Report>);

    /// The speaker is stopping and announces nothing any more: withdraw what was
    /// reported, if that means anything.
    fn stop(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// What this speaker announces, written for people and the lab to read:
/// `PATH/.ferrolb/speakers/<node>.yaml` (the standalone counterpart of ServiceL2Status).
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub node: String,
    pub live_members: BTreeSet<String>,
    /// Interface name → addresses it answers for.
    pub announcing: BTreeMap<String, Vec<String>>,
    /// Service → why this node announces none of its addresses (in Layer2 mode and
    /// over BGP).
    pub not_announced: BTreeMap<ServiceKey, String>,
    /// Addresses elected here that no interface can carry.
    pub no_interface: Vec<String>,
    /// BGP sessions: state and the prefixes each peer holds from this node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bgp_sessions: Vec<SessionSummary>,
    /// Service → the BGPPeers its addresses are meant to reach (the standalone
    /// counterpart of ServiceBGPStatus; empty: elected here but reaching no peer).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub bgp_announcing: BTreeMap<ServiceKey, Names>,
    /// What BGP could not send, and why (a conflicting localPref, an unknown community).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bgp_problems: Vec<String>,
}

impl Report {
    /// The report of what was decided, with the sessions as they were.
    fn decided(
        node: &str,
        live: BTreeSet<String>,
        ann: &Announcements,
        want: &Desired,
        homeless: &BTreeSet<IpAddr>,
        bgp: &Plan,
        bgp_sessions: Vec<SessionSummary>,
    ) -> Report {
        Report {
            node: node.to_string(),
            live_members: live,
            announcing: want
                .values()
                .map(|o| {
                    (
                        o.name.clone(),
                        o.ips.iter().map(IpAddr::to_string).collect(),
                    )
                })
                .collect(),
            not_announced: not_announced(ann),
            no_interface: homeless.iter().map(IpAddr::to_string).collect(),
            bgp_sessions,
            bgp_announcing: bgp_announcing(ann, bgp),
            bgp_problems: bgp.problems.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// Names, shared: thousands of Services list the same BGPPeers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(Arc<[String]>);

impl serde::Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// Service → the BGPPeers its addresses are meant to reach, each distinct list once.
fn bgp_announcing(ann: &Announcements, bgp: &Plan) -> BTreeMap<ServiceKey, Names> {
    let mut lists: BTreeMap<BTreeSet<String>, Names> = BTreeMap::new();
    status::desired_bgp(ann, &bgp.peers)
        .into_iter()
        .map(|(svc, peers)| {
            let names = match lists.get(&peers) {
                Some(n) => n.clone(),
                None => {
                    let n = Names(peers.iter().cloned().collect());
                    lists.insert(peers, n.clone());
                    n
                }
            };
            (svc, names)
        })
        .collect()
}

/// Every Service of which this node announces no address, in either mode, with why:
/// a Service it announces over BGP is not listed for having no Layer2 advertisement
/// (with BGP alone, that would be every Service).
fn not_announced(ann: &Announcements) -> BTreeMap<ServiceKey, String> {
    ann.reasons
        .iter()
        .filter_map(|(k, l2)| {
            let bgp = ann.bgp_reasons.get(k)?;
            Some((k.clone(), format!("Layer2: {l2:?}; BGP: {bgp:?}")))
        })
        .collect()
}

/// The standalone reporter: writes the [`Report`] beside the directory, on a blocking
/// thread: with tens of thousands of Services the file takes tens of milliseconds to
/// render, which must not hold up the sessions. Only the latest report is written.
struct DirReporter {
    dir: PathBuf,
    /// The report not written yet; taken by whoever writes next.
    pending: Arc<Mutex<Option<Arc<Report>>>>,
    /// Held while writing, so that an older report never lands after a newer one.
    writing: Arc<Mutex<()>>,
}

impl DirReporter {
    fn new(dir: PathBuf) -> DirReporter {
        DirReporter {
            dir,
            pending: Arc::default(),
            writing: Arc::default(),
        }
    }

    /// A task that writes whatever is pending.
    fn flush(&self) -> tokio::task::JoinHandle<()> {
        let (dir, pending, writing) =
            (self.dir.clone(), self.pending.clone(), self.writing.clone());
        tokio::task::spawn_blocking(move || {
            let _w = writing.lock().unwrap_or_else(|p| p.into_inner());
            let next = pending.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(r) = next {
                write_report(&dir, &r);
                drop(r);
                // Rendering a large report leaves megabytes free in this thread's heap.
                crate::memory::trim();
            }
        })
    }

    fn put(&mut self, report: &Arc<Report>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let idle = pending.is_none();
        *pending = Some(report.clone());
        drop(pending);
        // A write already queued takes the newer report with it.
        if idle {
            self.flush();
        }
    }
}

impl Reporter for DirReporter {
    fn announced(&mut self, report: &Arc<Report>, _: &Announcements, _: &Desired, _: &Plan) {
        self.put(report);
    }

    fn sessions(&mut self, report: &Arc<Report>) {
        self.put(report);
    }

    fn stop(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let last = self.flush();
        Box::pin(async move {
            let _ = last.await;
        })
    }
}

fn write_report(dir: &std::path::Path, r: &Report) {
    let dir = dir
        .join(ferrolb_crds::standalone::STATE_DIR)
        .join("speakers");
    let body = match serde_saphyr::to_string(r) {
        Ok(b) => b,
        Err(e) => {
            warn!("cannot render the speaker report: {e}");
            return;
        }
    };
    let path = dir.join(format!("{}.yaml", r.node));
    let tmp = dir.join(format!(".{}.yaml.tmp", r.node));
    let result = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, body))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        warn!("cannot write {}: {e}", path.display());
    }
}

/// Reads the directory once (an error here stops the speaker: there is nothing to go
/// on), then again in a task whenever it changes. A read that fails later keeps the last
/// inputs.
async fn dir_feed(
    dir: PathBuf,
    lb_class: Option<String>,
) -> anyhow::Result<watch::Receiver<Arc<Snapshot>>> {
    let reader = Reader::start(DirSource::new(dir.clone(), lb_class))
        .with_context(|| format!("starting the reader of {}", dir.display()))?;
    let first = reader
        .read()
        .await
        .context("the directory reader stopped")?
        .context("the directory reader found nothing to read")?;
    let snap = first.with_context(|| format!("reading {}", dir.display()))?;
    let (tx, rx) = watch::channel(Arc::new(snap));
    let mut notify = match DirWatch::new(&dir) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(
                "cannot watch {} for changes ({e}): polling it every {POLL:?}",
                dir.display()
            );
            None
        }
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(if notify.is_some() {
            DIR_FALLBACK_POLL
        } else {
            POLL
        });
        while !tx.is_closed() {
            match &notify {
                Some(w) => tokio::select! {
                    _ = tick.tick() => {}
                    r = w.changed() => if let Err(e) = r {
                        warn!("watching {}: {e}; polling it every {POLL:?}", dir.display());
                        notify = None;
                        tick = tokio::time::interval(POLL);
                    }
                },
                None => {
                    tick.tick().await;
                }
            }
            match reader.read().await {
                None => {
                    warn!(
                        "reading {} stopped: the reader thread is gone",
                        dir.display()
                    );
                    break;
                }
                Some(None) => {}
                Some(Some(Ok(s))) => {
                    tx.send_replace(Arc::new(s));
                }
                Some(Some(Err(e))) => {
                    warn!("reading {}: {e} (keeping the last inputs)", dir.display())
                }
            }
        }
    });
    Ok(rx)
}

/// A reading of the directory: `None` when nothing changed since the last one.
type Reading = Option<Result<Snapshot, std::io::Error>>;

/// The thread that reads the directory: parsing tens of thousands of objects takes a
/// while, and the sessions and gossip must not wait for it. One long-lived thread, so
/// that the heap arena glibc gives it holds the snapshots it builds and little else:
/// large files are parsed on short-lived threads of their own, whose arenas then hold
/// only the parse and are given back whole. Built in an arena shared with the parse,
/// the snapshot's small objects end up scattered through megabytes of freed pages,
/// which then cannot be returned.
struct Reader(std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Reading>>);

impl Reader {
    fn start(mut source: DirSource) -> std::io::Result<Reader> {
        let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Reading>>();
        std::thread::Builder::new()
            .name("dir-reader".into())
            .spawn(move || {
                for reply in rx {
                    let reading = source.changed().then(|| {
                        let start = std::time::Instant::now();
                        let read = source.read();
                        if let Ok(s) = &read {
                            debug!(
                                services = s.world.services.len(),
                                took = ?start.elapsed(),
                                "read the directory"
                            );
                        }
                        read
                    });
                    let _ = reply.send(reading);
                }
            })?;
        Ok(Reader(tx))
    }

    /// Reads the directory if it changed; `None` when the thread is gone.
    async fn read(&self) -> Option<Reading> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.send(tx).ok()?;
        rx.await.ok()
    }
}

/// Runs until SIGTERM/SIGINT. On the way out the speaker stops answering and leaves the
/// gossip membership first, so a successor takes over at once.
pub async fn run(cli: Cli, plane: &mut dyn L2Plane, metrics: &Metrics) -> anyhow::Result<()> {
    let exclude = if cli.exclude_interfaces.is_empty() {
        Exclusions::metallb_defaults()
    } else {
        Exclusions::new(&cli.exclude_interfaces)
            .map_err(|e| anyhow::anyhow!("--exclude-interface: {e}"))?
    };
    let (mut snaps, mut reporter): (watch::Receiver<Arc<Snapshot>>, Box<dyn Reporter>) =
        match cli.source.clone() {
            Source::Dir(dir) => (
                dir_feed(dir.clone(), cli.lb_class.clone()).await?,
                Box::new(DirReporter::new(dir)),
            ),
            Source::Kube => {
                let (rx, reporter) = crate::source::kube::start(&cli).await?;
                (rx, Box::new(reporter))
            }
        };
    let mut snap = snaps.borrow_and_update().clone();
    for p in &snap.problems {
        warn!("{p}");
    }

    let ifaces = netlink::watch(netlink::WatchOptions::default())
        .await
        .context("watching interfaces")?;
    let mut if_rx = ifaces.subscribe();

    let mut gossip = start_gossip(&cli, &snap).await?;
    metrics.set_gossip(gossip.as_ref().map(|g| Box::new(g.counter_source()) as _));
    // Inputs loaded, interfaces watched: ready.
    metrics.readiness().set(true);
    let (_fixed_tx, fixed_rx) = watch::channel(BTreeSet::new());
    let mut live_rx = gossip.as_ref().map(Membership::live).unwrap_or(fixed_rx);
    let mut seeds = seeds_of(&snap, cli.gossip_bind.port());
    if let Some(g) = &gossip {
        g.join(seeds.iter().copied())?;
    }

    let mut bgp = crate::bgp::speaker::Bgp::start(Some(cli.bgp_listen_port).filter(|p| *p != 0));
    let mut bgp_changes = bgp.changes();
    metrics.set_bgp(Some(Box::new(bgp.status_source())));

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(POLL);
    let mut report = Arc::new(Report::default());
    let mut ann = election::Announcements::default();
    let mut reported = false;
    let settle_deadline = tokio::time::Instant::now() + SETTLE;
    let mut settled = false;
    // What the plane was last told, to silence it on the way out.
    let mut applied = Desired::new();
    // What woke the loop: the inputs of the decision (the world, who is alive, the
    // interfaces), or only the BGP sessions, which change nothing of what is decided and
    // are only reported. Deciding costs a pass over every Service; a session sending
    // tens of thousands of prefixes reports many times while it does.
    let mut decide = true;
    // New inputs came in since the last decision.
    let mut fresh = true;
    let mut trim_at = None;
    loop {
        let mut what_changed = Changed::default();
        if std::mem::take(&mut decide) {
            let decided_at = std::time::Instant::now();
            let table: Vec<Interface> = if_rx.borrow_and_update().as_ref().clone();
            let live = match &gossip {
                Some(_) => live_rx.borrow_and_update().clone(),
                // Without gossip, Node readiness alone decides (the election also requires
                // Ready): every node counts as alive.
                None => snap.world.nodes.keys().cloned().collect(),
            };
            // A speaker that just started knows only itself and would elect itself for
            // everything; it first waits (briefly) to hear from the other nodes.
            if !settled {
                let known: BTreeSet<&String> = snap.node_addresses.keys().collect();
                settled = gossip.is_none()
                    || known.iter().all(|n| live.contains(*n))
                    || tokio::time::Instant::now() >= settle_deadline;
            }
            let next = if settled {
                election::announcements(&snap.world, &cli.node_name, &live)
            } else {
                election::Announcements::default()
            };
            let known = snap.node_addresses.get(&cli.node_name).copied();
            let bgp_ann = settled.then_some(&next.bgp);
            bgp.update(&snap.world, &cli.node_name, known, bgp_ann, &table);
            let (want, homeless) = desired::desired(&next, &table, &exclude);
            plane.apply(&want);
            let failed = gossip.as_ref().map(Membership::failed);
            let taken = takeover::taken_over(&ann, &next, |n| {
                takeover::has_failed(n, failed.as_ref(), &snap.world)
            });
            if !taken.is_empty() {
                info!(ips = ?taken, "took over from a failed node");
                metrics.failovers(taken.len());
            }
            ann = next;
            let announced: BTreeSet<IpAddr> =
                want.values().flat_map(|o| o.ips.iter().copied()).collect();
            metrics.set_announced(Mode::Layer2, &announced);
            // Over BGP: the addresses some peer is meant to receive.
            let bgp_ips = rib::peers_by_ip(&ann.bgp, &bgp.plan().peers);
            metrics.set_announced(
                Mode::Bgp,
                bgp_ips
                    .iter()
                    .filter(|(_, peers)| !peers.is_empty())
                    .map(|(ip, _)| ip),
            );
            let next = Report::decided(
                &cli.node_name,
                live,
                &ann,
                &want,
                &homeless,
                bgp.plan(),
                report.bgp_sessions.clone(),
            );
            if next != *report {
                report = Arc::new(next);
                what_changed.decision = true;
            }
            if what_changed.decision {
                info!(announcing = ?report.announcing, live = ?report.live_members, "announcements changed");
                for ip in &report.no_interface {
                    warn!("{ip}: elected here but no eligible interface can carry it");
                }
            }
            debug!(took = ?decided_at.elapsed(), "decided");
            applied = want;
            if settled && std::mem::take(&mut fresh) {
                // The parse, the last world and the last decision are gone: give their
                // pages back, once the sessions have sent what changed (trimming holds
                // the allocator's locks while it walks the whole heap).
                trim_at = Some(tokio::time::Instant::now() + TRIM_AFTER);
            }
        }
        let sessions = bgp.summaries();
        if sessions != report.bgp_sessions {
            Arc::make_mut(&mut report).bgp_sessions = sessions;
            what_changed.sessions = true;
        }
        // Not before settling: a restarted speaker would withdraw, then restore,
        // everything it reported before.
        if settled && (!reported || what_changed.decision) {
            reporter.announced(&report, &ann, &applied, bgp.plan());
            reported = true;
        } else if settled && what_changed.sessions {
            reporter.sessions(&report);
        }

        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            r = if_rx.changed() => {
                if r.is_err() { bail!("the interface watcher stopped") }
                decide = true;
            }
            r = live_rx.changed(), if gossip.is_some() => {
                if r.is_err() { bail!("gossip stopped") }
                decide = true;
            }
            _ = bgp_changes.changed() => {}
            r = snaps.changed() => {
                if r.is_err() {
                    bail!("the input source stopped");
                }
                let s = snaps.borrow_and_update().clone();
                for p in s.problems.iter().filter(|p| !snap.problems.contains(p)) {
                    warn!("{p}");
                }
                snap = s;
                decide = true;
                fresh = true;
                let now = seeds_of(&snap, cli.gossip_bind.port());
                if now != seeds {
                    seeds = now;
                    if let Some(g) = &gossip {
                        g.join(seeds.iter().copied())?;
                    }
                }
            }
            _ = sleep_until(trim_at), if trim_at.is_some() => {
                trim_at = None;
                tokio::task::spawn_blocking(crate::memory::trim);
            }
            // Until settled, look again now and then: the deadline may have passed.
            _ = tick.tick(), if !settled => decide = true,
        }
    }
    info!("stopping: no longer answering, leaving the membership");
    // Layer2 first, as it only takes a packet: every announcer silenced at once, its
    // sockets kept until the leave is out. Closing a packet socket waits for a kernel
    // RCU grace period (8-16 ms each, more on a busy machine), and on this
    // single-threaded runtime those closes would run before the leave is sent, holding
    // up the successor by tens of milliseconds.
    plane.apply(&silenced(&applied));
    let left = match gossip.take() {
        Some(g) => g.leave().await,
        None => Ok(()),
    };
    // Cease to the routers (they withdraw our routes at once), or with graceful restart
    // only close, so they keep forwarding to this node while it restarts.
    bgp.shutdown().await;
    metrics.readiness().set(false);
    plane.apply(&Desired::new());
    reporter.stop().await;
    left?;
    Ok(())
}

/// What one turn of the main loop changed in the report.
#[derive(Default)]
struct Changed {
    decision: bool,
    sessions: bool,
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The same interfaces, answering for nothing.
fn silenced(applied: &Desired) -> Desired {
    applied
        .iter()
        .map(|(index, owned)| {
            let mut quiet = owned.clone();
            quiet.ips.clear();
            (*index, quiet)
        })
        .collect()
}

fn seeds_of(snap: &Snapshot, port: u16) -> BTreeSet<SocketAddr> {
    snap.node_addresses
        .values()
        .map(|ip| SocketAddr::new(*ip, port))
        .collect()
}

async fn start_gossip(cli: &Cli, snap: &Snapshot) -> anyhow::Result<Option<Membership>> {
    let Some(path) = &cli.gossip_secret_file else {
        warn!(
            "no --gossip-secret-file: gossip is off, Node readiness alone decides who is alive (slower failover)"
        );
        return Ok(None);
    };
    let key = membership::read_secret_file(path)?;
    // Peers reach us at our Node's InternalIP when we bind a wildcard address.
    let advertise = cli
        .gossip_bind
        .ip()
        .is_unspecified()
        .then(|| {
            snap.node_addresses
                .get(&cli.node_name)
                .map(|ip| SocketAddr::new(*ip, cli.gossip_bind.port()))
        })
        .flatten();
    let config = MembershipConfig {
        node_name: cli.node_name.clone(),
        bind: cli.gossip_bind,
        advertise,
        key,
        tuning: cli.gossip_tuning(),
    };
    // A secret that cannot be read is a mistake to fix (it failed above); a socket that
    // cannot be bound (the port taken, the address gone) must not take the node's
    // announcements down with it: readiness alone decides, slower but still correct.
    match Membership::start(config).await {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            warn!(
                "gossip cannot start on {} ({e}): Node readiness alone decides who is alive (slower failover)",
                cli.gossip_bind
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::{BgpAnnouncement, NotAnnounced};
    use crate::world::ServiceKey;

    #[test]
    fn the_report_names_services_and_peers_as_people_write_them() {
        let peers = Names(vec!["router".to_string()].into());
        let report = Report {
            node: "node1".into(),
            bgp_announcing: BTreeMap::from([(ServiceKey::new("shop", "web"), peers)]),
            ..Report::default()
        };
        let text = serde_saphyr::to_string(&report).unwrap();
        assert!(
            text.contains("bgpAnnouncing:\n  shop/web:\n  - router\n"),
            "{text}"
        );
    }

    #[test]
    fn a_service_announced_over_bgp_is_not_reported_as_not_announced() {
        let (over_bgp, nowhere) = (
            ServiceKey::new("default", "a"),
            ServiceKey::new("default", "b"),
        );
        let mut ann = Announcements::default();
        for k in [&over_bgp, &nowhere] {
            ann.reasons.insert(k.clone(), NotAnnounced::NoAdvertisement);
        }
        ann.bgp.insert(
            "203.0.113.1".parse().unwrap(),
            BgpAnnouncement {
                services: [over_bgp].into(),
                ads: vec![0].into(),
            },
        );
        ann.bgp_reasons
            .insert(nowhere, NotAnnounced::NoServingEndpoints);
        assert_eq!(
            not_announced(&ann),
            BTreeMap::from([(
                ServiceKey::new("default", "b"),
                "Layer2: NoAdvertisement; BGP: NoServingEndpoints".to_string()
            )])
        );
    }
}
