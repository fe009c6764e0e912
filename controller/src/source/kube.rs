//! The controller against Kubernetes (`--source kube`).
//!
//! # Shape
//!
//! One task owns the [`Engine`] (through [`shell::Shell`]). Kube-runtime watchers,
//! merged into one stream, feed it: Services in every namespace, IPAddressPools in the
//! FerroLB namespace (`--namespace`), Namespaces (metadata only: labels), and the
//! L2Advertisements, BGPAdvertisements, BGPPeers and Communities in the FerroLB
//! namespace (only checked: see below). Nothing is decided until the first three initial
//! lists are complete; then
//! the engine gets the namespaces, the pools and every Service at once (`resync`, which
//! reclaims existing assignments before allocating anything, so a restart never moves an
//! assigned IP). After that:
//!
//! - Service applied / deleted → `engine.service` / `engine.service_deleted`;
//! - pool spec added, changed or deleted → `set_pools` (all pools) and `resync`;
//!   status-only pool updates (our own writes coming back) change nothing;
//! - Namespace labels changed → `set_namespaces`, and `resync` if the engine asks;
//! - a relist after the watch lost track → the same, plus `service_deleted` for Services
//!   that vanished meanwhile;
//! - pool statuses are collected from the engine at most once a second;
//! - once the pools and the four configuration kinds are listed, and after any change
//!   to them, [`crate::references::References`] checks the cross-object rules
//!   (`ferrolb_crds::validate::check_references`): a problem earns a `Warning` Event on
//!   the object at fault when it appears or its message changes, a `Normal` `Resolved`
//!   Event when it goes away. Allocation never waits for these watchers, so a missing
//!   CRD only costs its watcher's logged retries.
//!
//! The engine's [`Action`]s are written by [`apply::Writer`] (status subresource merge
//! patches, the pool annotation, Events). A status write the watched object already
//! shows is skipped. Writes to distinct objects run concurrently (up to
//! [`WRITE_CONCURRENCY`]); of several writes to one object in one batch only the last
//! is sent. A 404 drops the write (the object is gone); a retryable failure is retried
//! with exponential backoff (0.5 s doubling to 60 s, at most [`MAX_ATTEMPTS`] attempts,
//! Events [`MAX_EVENT_ATTEMPTS`]), superseded by any newer write to the same object;
//! nothing panics.
//!
//! # Leader election
//!
//! Only the holder of the Lease `--lease-name` in `--namespace` (identity `--identity`,
//! else the host name, which in a pod is the pod name) watches and writes. Timings:
//! lease duration [`LEASE_DURATION_SECONDS`] = 15 s, renewed [`LEASE_GRACE_SECONDS`] = 10 s
//! before expiry, i.e. every 5 s. A standby takes over at most ~16 s after the leader
//! died (15 s expiry, up to 1 s random jitter). After a clean shutdown, which releases
//! the Lease, it takes over within about a second: standbys watch the Lease and, when
//! it has no holder, restart their lease manager (which otherwise sleeps until the old
//! lock's expiry). The leader also checks the Lease itself every
//! [`LEASE_CHECK_INTERVAL`]: held by someone else, deleted, or not confirmed up to 2 s
//! before its expiry → it stops. Losing leadership ends the process with an error
//! (Kubernetes restarts it as a standby): simpler and safer than winding the state down.
//! It then does not release the Lease: kube-lease-manager's release trusts its cached
//! state and would clear the new holder's lock.
//!
//! SIGTERM / SIGINT: stop deciding, release the Lease, return `Ok` (exit 0).
//!
//! # Readiness
//!
//! `/readyz` is 200 on a standby replica (so a rolling update can proceed), 503 on the
//! leader until it has processed the initial lists, then 200. `/healthz` is 200 while
//! the process runs.

pub mod apply;
pub mod shell;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use ferrolb_crds::IPAddressPool;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::cli::RunArgs;
use crate::engine::{Action, Engine, EngineConfig};
use crate::health::{self, Readiness};
use crate::metrics::{Metrics, WriteResult};
use apply::{Applied, Writer};
use shell::{Input, Ns, Shell, Target};

/// Seconds a Lease stays valid after its last renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// The holder renews this many seconds before expiry (so every 5 s); also the clock
/// skew between nodes the election tolerates.
pub const LEASE_GRACE_SECONDS: u64 = 10;
/// How often the leader re-reads the Lease to make sure it still holds it.
pub const LEASE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// The leader stops when its Lease is this close to expiry without a confirmed renewal.
const LEASE_SAFETY_MARGIN: Duration = Duration::from_secs(2);

/// Writes in flight at once.
pub const WRITE_CONCURRENCY: usize = 16;
/// Attempts of one status write before giving up (the next event for the object
/// brings it back).
pub const MAX_ATTEMPTS: u32 = 10;
/// Attempts of one Event.
pub const MAX_EVENT_ATTEMPTS: u32 = 4;
/// Pool statuses are collected from the engine at most this often.
const POOL_STATUS_DEBOUNCE: Duration = Duration::from_secs(1);

/// Runs the controller against the cluster in the environment (in-cluster config or
/// kubeconfig) until SIGTERM/SIGINT (`Ok`) or a fatal error, such as losing the Lease.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    if args.once {
        return Err(anyhow!("--once applies only to --source dir:PATH"));
    }
    let shutdown = shutdown_channel().context("installing signal handlers")?;
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
    let servers = start_servers(args, &metrics, &readiness).await?;
    let result = async {
        let client = tokio::select! {
            c = Client::try_default() => c.context("connecting to the Kubernetes API")?,
            _ = wait_shutdown(shutdown.clone()) => return Ok(()),
        };
        run_elected(args, client, metrics, readiness, shutdown).await
    }
    .await;
    for s in servers {
        s.abort();
    }
    result
}

/// Binds `--metrics-addr` (`/metrics`) and `--health-addr` (`/healthz`, `/readyz`); one
/// listener serves both when the addresses are equal.
async fn start_servers(
    args: &RunArgs,
    metrics: &Arc<Metrics>,
    readiness: &Readiness,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    Ok(health::start(
        args.metrics_addr,
        args.health_addr,
        metrics.clone(),
        readiness.clone(),
    )
    .await?)
}

/// A flag that turns true on SIGTERM or SIGINT.
fn shutdown_channel() -> std::io::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
        let _ = tx.send(true);
        // Keep the sender, so receivers never see the channel closed.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

async fn wait_shutdown(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn identity(args: &RunArgs) -> anyhow::Result<String> {
    if let Some(id) = args.identity.as_ref().filter(|s| !s.is_empty()) {
        return Ok(id.clone());
    }
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_string());
        }
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("cannot tell this replica's identity: set --identity or POD_NAME"))
}

/// The Lease's server-side-apply field manager: names the replica in managedFields.
fn lease_field_manager(identity: &str) -> String {
    let mut m = format!("ferrolb-controller-{identity}");
    // Field managers are limited to 128 bytes.
    while m.len() > 128 {
        m.pop();
    }
    m
}

async fn build_manager(
    client: &Client,
    args: &RunArgs,
    identity: &str,
) -> kube_lease_manager::Result<kube_lease_manager::LeaseManager> {
    LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.namespace)
        .with_identity(identity)
        .with_field_manager(lease_field_manager(identity))
        .with_duration(LEASE_DURATION_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .build()
        .await
}

/// Returns once the Lease has no holder (after at least a second, so a Lease that stays
/// free cannot make the caller spin). Watch errors are retried with backoff.
async fn lease_released(client: Client, namespace: &str, name: &str) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut leases = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(item) = leases.next().await {
        match item {
            Ok(lease) => {
                let holder = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.as_deref());
                if holder.is_none_or(str::is_empty) {
                    return;
                }
            }
            Err(e) => debug!(error = %e, "watching the lease"),
        }
    }
    std::future::pending::<()>().await
}

/// Waits for the Lease, then runs the controller while holding it.
async fn run_elected(
    args: &RunArgs,
    client: Client,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let identity = identity(args)?;
    let lease = format!("{}/{}", args.namespace, args.lease_name);
    let manager = tokio::select! {
        m = build_manager(&client, args, &identity) => m.with_context(|| format!("setting up the Lease {lease}"))?,
        _ = wait_shutdown(shutdown.clone()) => return Ok(()),
    };
    let (mut leader, mut lease_task) = manager.watch().await;
    readiness.set(true);
    info!(%identity, %lease, "standing by for the lease");
    while !*leader.borrow_and_update() {
        tokio::select! {
            changed = leader.changed() => if changed.is_err() {
                return Err(lease_task_result(lease_task).await.err().unwrap_or_else(|| anyhow!("the lease manager stopped")));
            },
            // The lease manager sleeps until the holder's lock expires; when the holder
            // releases it (clean shutdown), start over so as to take it at once.
            _ = lease_released(client.clone(), &args.namespace, &args.lease_name) => {
                info!(%lease, "the lease was released: trying to take it");
                // Not the holder: the manager's release on close is a no-op.
                drop(leader);
                let _ = lease_task_result(lease_task).await;
                let manager = tokio::select! {
                    m = build_manager(&client, args, &identity) => m.with_context(|| format!("setting up the Lease {lease}"))?,
                    _ = wait_shutdown(shutdown.clone()) => return Ok(()),
                };
                (leader, lease_task) = manager.watch().await;
            }
            _ = wait_shutdown(shutdown.clone()) => {
                drop(leader);
                let _ = lease_task_result(lease_task).await;
                return Ok(());
            }
        }
    }
    info!(%identity, "acquired the lease: this replica is the active controller");
    metrics.set_leader(true);
    readiness.set(false);
    let result = tokio::select! {
        r = run_leader(client.clone(), args, &identity, metrics.clone(), readiness.clone()) => r,
        _ = leadership_lost(&mut leader) => Err(anyhow!(
            "lost the lease {}/{}; exiting so that this replica restarts as a standby", args.namespace, args.lease_name
        )),
        e = lease_guard(client.clone(), &args.namespace, &args.lease_name, &identity) => Err(e),
        _ = wait_shutdown(shutdown.clone()) => Ok(()),
    };
    metrics.set_leader(false);
    if result.is_ok() && holds_lease(&client, &args.namespace, &args.lease_name, &identity).await {
        // Clean shutdown while holding the Lease (checked just now, not from the lease
        // manager's cache): closing the channel makes the lease manager release it, so
        // a standby takes over at once.
        drop(leader);
        match lease_task_result(lease_task).await {
            Ok(()) => info!("released the lease"),
            Err(e) => warn!(error = %e, "releasing the lease"),
        }
    } else {
        // Leadership lost or in doubt: the lease manager's cached state may still name
        // this replica, and its release would clear another holder's lock (it patches
        // holderIdentity to null without a precondition). Stop it without releasing;
        // the Lease expires on its own if it is still ours.
        lease_task.abort();
    }
    result
}

/// Whether the Lease names `identity` as its holder right now (false on any error).
async fn holds_lease(client: &Client, namespace: &str, name: &str, identity: &str) -> bool {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    match tokio::time::timeout(Duration::from_secs(2), api.get_opt(name)).await {
        Ok(Ok(Some(lease))) => {
            lease.spec.and_then(|s| s.holder_identity).as_deref() == Some(identity)
        }
        _ => false,
    }
}

async fn leadership_lost(leader: &mut watch::Receiver<bool>) {
    // An error means the lease manager stopped: leadership is no longer assured.
    while leader.changed().await.is_ok() {
        if !*leader.borrow_and_update() {
            return;
        }
    }
}

async fn lease_task_result(
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err(e))) => Err(anyhow!(e).context("lease manager")),
        Ok(Err(e)) => Err(anyhow!(e).context("lease manager task")),
        Err(_) => Err(anyhow!("lease manager did not stop within 5 s")),
    }
}

/// Returns (an error) when the Lease is no longer certainly ours: another holder, the
/// Lease deleted, or no confirmed renewal until shortly before it expires.
async fn lease_guard(client: Client, namespace: &str, name: &str, identity: &str) -> anyhow::Error {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let lease_duration = Duration::from_secs(LEASE_DURATION_SECONDS);
    let mut deadline = SystemTime::now() + lease_duration - LEASE_SAFETY_MARGIN;
    loop {
        tokio::time::sleep(LEASE_CHECK_INTERVAL).await;
        match api.get_opt(name).await {
            Ok(Some(lease)) => {
                let spec = lease.spec.unwrap_or_default();
                if spec.holder_identity.as_deref() != Some(identity) {
                    return anyhow!(
                        "the lease {namespace}/{name} is now held by {:?}; exiting so that this replica restarts as a standby",
                        spec.holder_identity.unwrap_or_default()
                    );
                }
                if let (Some(renew), Some(secs)) = (spec.renew_time, spec.lease_duration_seconds) {
                    let renewed: SystemTime = renew.0.into();
                    let secs = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
                    deadline = renewed + secs.min(lease_duration) - LEASE_SAFETY_MARGIN;
                }
            }
            Ok(None) => return anyhow!("the lease {namespace}/{name} was deleted; exiting"),
            Err(e) => warn!(error = %e, "checking the lease"),
        }
        if SystemTime::now() > deadline {
            return anyhow!(
                "could not confirm the lease {namespace}/{name} before it expires; exiting"
            );
        }
    }
}

type Inputs = BoxStream<'static, Result<Input, (&'static str, watcher::Error)>>;

/// The watchers, merged. Watch errors are yielded (for logging) and the watcher retries
/// with kube-runtime's default backoff.
fn watch_inputs(client: Client, namespace: &str) -> Inputs {
    /// A watcher of one FerroLB kind in the FerroLB namespace.
    fn config<K>(
        client: &Client,
        namespace: &str,
        input: fn(Event<K>) -> Input,
        what: &'static str,
    ) -> Inputs
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + 'static,
        K::DynamicType: Default,
    {
        watcher(
            Api::<K>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .map_ok(input)
        .map_err(move |e| (what, e))
        .boxed()
    }

    let services = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(Input::Service)
    .map_err(|e| ("services", e));
    let pools = watcher(
        Api::<IPAddressPool>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(Input::Pool)
    .map_err(|e| ("ipaddresspools", e));
    let namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(|ev| Input::Namespace(map_event(ev, ns_of)))
    .map_err(|e| ("namespaces", e));
    let l2 = config(
        &client,
        namespace,
        Input::L2Advertisement,
        "l2advertisements",
    );
    let bgp = config(
        &client,
        namespace,
        Input::BGPAdvertisement,
        "bgpadvertisements",
    );
    let peers = config(&client, namespace, Input::BGPPeer, "bgppeers");
    let communities = config(&client, namespace, Input::Community, "communities");
    futures::stream::select_all([
        services.boxed(),
        pools.boxed(),
        namespaces.boxed(),
        l2,
        bgp,
        peers,
        communities,
    ])
    .boxed()
}

fn ns_of(m: PartialObjectMeta<Namespace>) -> Ns {
    Ns {
        name: m.name_any(),
        labels: m.metadata.labels.unwrap_or_default(),
    }
}

fn map_event<A, B>(ev: Event<A>, f: impl Fn(A) -> B) -> Event<B> {
    match ev {
        Event::Apply(a) => Event::Apply(f(a)),
        Event::Delete(a) => Event::Delete(f(a)),
        Event::Init => Event::Init,
        Event::InitApply(a) => Event::InitApply(f(a)),
        Event::InitDone => Event::InitDone,
    }
}

/// The leader's loop: watch, decide, write. Returns only on error; the caller stops
/// it (drops the future) on shutdown or loss of the Lease. `identity` is the Events'
/// reporting instance. Public for tests against a scripted API server.
pub async fn run_leader(
    client: Client,
    args: &RunArgs,
    identity: &str,
    metrics: Arc<Metrics>,
    readiness: Readiness,
) -> anyhow::Result<()> {
    let mut shell = Shell::new(Engine::new(EngineConfig {
        lb_class: args.lb_class.clone(),
    }));
    let writer = Writer::new(client.clone(), Some(identity.to_string()));
    let mut inputs = watch_inputs(client, &args.namespace);
    let mut retries = Retries::default();
    let mut pool_status_due: Option<Instant> = None;
    info!(namespace = %args.namespace, lb_class = ?args.lb_class, "watching Services, Namespaces and the FerroLB kinds");
    loop {
        let retry_due = retries.next_due();
        tokio::select! {
            item = inputs.next() => {
                let input = match item {
                    Some(Ok(input)) => input,
                    Some(Err((what, e))) => {
                        warn!(watch = what, error = %e, "watch failed; retrying with backoff");
                        continue;
                    }
                    None => return Err(anyhow!("the watch streams ended")),
                };
                let began = std::time::Instant::now();
                shell.engine_mut().set_now(k8s_openapi::jiff::Timestamp::now());
                let step = shell.handle(input);
                if step.started {
                    let (services, pools) = shell.counts();
                    info!(services, pools, "initial lists complete: existing assignments reclaimed, deciding");
                }
                let failures = step.decisions.iter().filter(|d| d.error.is_some()).count();
                metrics.allocation_failures(u64::try_from(failures).unwrap_or(u64::MAX));
                for d in &step.decisions {
                    debug!(service = %d.key, ips = ?d.ips, pool = ?d.pool, error = ?d.error, "decision");
                }
                let jobs = retries.jobs(step.actions);
                execute(&mut shell, &writer, &metrics, &mut retries, jobs).await;
                if shell.started() {
                    metrics.set_pool_usage(&shell.engine().pool_usage());
                    readiness.set(true);
                    pool_status_due.get_or_insert_with(|| Instant::now() + POOL_STATUS_DEBOUNCE);
                }
                metrics.observe_reconcile(began.elapsed());
            }
            _ = sleep_until(retry_due), if retry_due.is_some() => {
                let jobs = retries.take_due(Instant::now());
                execute(&mut shell, &writer, &metrics, &mut retries, jobs).await;
            }
            _ = sleep_until(pool_status_due), if pool_status_due.is_some() => {
                pool_status_due = None;
                shell.engine_mut().set_now(k8s_openapi::jiff::Timestamp::now());
                let actions = shell.engine_mut().pool_statuses();
                let jobs = retries.jobs(actions);
                execute(&mut shell, &writer, &metrics, &mut retries, jobs).await;
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

/// One write to do: the action and how many attempts it has had.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub target: Target,
    pub action: Action,
    pub attempt: u32,
}

/// Failed writes waiting for their next attempt, one per target.
#[derive(Debug, Default)]
pub struct Retries {
    queue: BTreeMap<Target, (Job, Instant)>,
    next_event: u64,
}

/// Delay before attempt `attempt + 1`, after `attempt` failed ones (1-based).
pub fn retry_delay(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(ms).min(Duration::from_secs(60))
}

impl Retries {
    /// Turns fresh actions into jobs: of several status writes to one object only the
    /// last is kept. A fresh action supersedes any queued retry for its object.
    pub fn jobs(&mut self, actions: Vec<Action>) -> Vec<Job> {
        let mut jobs: Vec<Job> = Vec::with_capacity(actions.len());
        let mut index: BTreeMap<Target, usize> = BTreeMap::new();
        for action in actions {
            let target = match &action {
                Action::SetServiceStatus { key, .. } | Action::ClearServiceStatus { key } => {
                    Target::Service(key.clone())
                }
                Action::SetPoolStatus {
                    namespace, name, ..
                } => Target::Pool {
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
                Action::Event { .. } => {
                    self.next_event += 1;
                    Target::Event(self.next_event)
                }
            };
            self.queue.remove(&target);
            let job = Job {
                target: target.clone(),
                action,
                attempt: 0,
            };
            match index.get(&target) {
                Some(&i) => jobs[i] = job,
                None => {
                    index.insert(target, jobs.len());
                    jobs.push(job);
                }
            }
        }
        jobs
    }

    /// Queues `job` (which has just failed) for another attempt, unless it has had them
    /// all. Returns false when it is given up.
    pub fn failed(&mut self, mut job: Job, now: Instant) -> bool {
        job.attempt += 1;
        let max = if matches!(job.target, Target::Event(_)) {
            MAX_EVENT_ATTEMPTS
        } else {
            MAX_ATTEMPTS
        };
        if job.attempt >= max {
            return false;
        }
        let due = now + retry_delay(job.attempt);
        self.queue.insert(job.target.clone(), (job, due));
        true
    }

    /// Drops the queued retry for `target`: a newer write to it is being sent.
    pub fn cancel(&mut self, target: &Target) {
        self.queue.remove(target);
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.queue.values().map(|(_, due)| *due).min()
    }

    pub fn take_due(&mut self, now: Instant) -> Vec<Job> {
        let due: Vec<Target> = self
            .queue
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(t, _)| t.clone())
            .collect();
        due.into_iter()
            .filter_map(|t| self.queue.remove(&t))
            .map(|(job, _)| job)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Writes `jobs` (distinct targets) concurrently, skipping writes the cluster already
/// shows, and queues retryable failures.
async fn execute(
    shell: &mut Shell,
    writer: &Writer,
    metrics: &Metrics,
    retries: &mut Retries,
    jobs: Vec<Job>,
) {
    let mut work = Vec::with_capacity(jobs.len());
    for job in jobs {
        if !shell.needs_write(&job.action) {
            continue;
        }
        retries.cancel(&job.target);
        shell.sent(&job.action);
        let uid = match &job.action {
            Action::Event {
                kind,
                namespace,
                name,
                ..
            } => shell.uid(*kind, namespace, name).map(str::to_string),
            _ => None,
        };
        work.push((job, uid));
    }
    let results: Vec<(Job, Result<Applied, apply::WriteError>)> = futures::stream::iter(work)
        .map(|(job, uid)| async move {
            let r = writer.apply(&job.action, uid.as_deref()).await;
            (job, r)
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let now = Instant::now();
    for (job, result) in results {
        match result {
            Ok(Applied::Written) => {
                metrics.k8s_write(WriteResult::Ok);
                log_written(&job.action);
            }
            Ok(Applied::Gone) => {
                shell.not_sent(&job.target);
                metrics.k8s_write(WriteResult::Gone);
                debug!(target = ?job.target, "object gone; write dropped");
            }
            Err(e) if e.is_retryable() => {
                shell.not_sent(&job.target);
                let attempt = job.attempt + 1;
                let target = job.target.clone();
                if retries.failed(job, now) {
                    metrics.k8s_write(WriteResult::Retry);
                    warn!(?target, attempt, error = %e, "write failed; will retry");
                } else {
                    metrics.k8s_write(WriteResult::Failed);
                    error!(?target, attempt, error = %e, "write failed; giving up until the object changes");
                }
            }
            Err(e) => {
                shell.not_sent(&job.target);
                metrics.k8s_write(WriteResult::Failed);
                error!(target = ?job.target, error = %e, "write rejected");
            }
        }
    }
}

fn log_written(action: &Action) {
    match action {
        Action::SetServiceStatus { key, ips, pool } => {
            info!(service = %key, ?ips, %pool, "assigned")
        }
        Action::ClearServiceStatus { key } => info!(service = %key, "assignment cleared"),
        Action::SetPoolStatus {
            namespace, name, ..
        } => debug!(pool = %format!("{namespace}/{name}"), "pool status written"),
        Action::Event {
            namespace,
            name,
            reason,
            message,
            ..
        } => {
            debug!(object = %format!("{namespace}/{name}"), %reason, %message, "event recorded")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::ServiceKey;
    use crate::engine::{EventType, Kind};

    fn set(name: &str, ip: &str) -> Action {
        Action::SetServiceStatus {
            key: ServiceKey {
                namespace: "a".into(),
                name: name.into(),
            },
            ips: vec![ip.parse().unwrap()],
            pool: "p".into(),
        }
    }

    fn event(name: &str) -> Action {
        Action::Event {
            kind: Kind::Service,
            namespace: "a".into(),
            name: name.into(),
            type_: EventType::Normal,
            reason: "IPAllocated".into(),
            message: "m".into(),
        }
    }

    type ApiHandle = tower_test::mock::Handle<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >;

    fn mock_client() -> (Client, ApiHandle) {
        let (service, handle) = tower_test::mock::pair();
        (Client::new(service, "default"), handle)
    }

    /// Answers the guard's next GET of the Lease with `spec`.
    async fn answer_lease(api: &mut ApiHandle, spec: serde_json::Value) {
        let (req, send) = api.next_request().await.unwrap();
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(
            req.uri().path(),
            "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases/ferrolb-controller"
        );
        let lease = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "ferrolb-controller", "namespace": "ferrolb-system"}, "spec": spec});
        send.send_response(
            http::Response::builder()
                .status(200)
                .body(kube::client::Body::from(
                    serde_json::to_vec(&lease).unwrap(),
                ))
                .unwrap(),
        );
    }

    fn micro_time(t: SystemTime) -> serde_json::Value {
        let ts = k8s_openapi::jiff::Timestamp::try_from(t).unwrap();
        serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            ts,
        ))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn lease_guard_stops_when_another_replica_holds_the_lease() {
        let (client, mut api) = mock_client();
        let guard = tokio::spawn(async move {
            lease_guard(client, "ferrolb-system", "ferrolb-controller", "me").await
        });
        let fresh = serde_json::json!({"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": micro_time(SystemTime::now())});
        answer_lease(&mut api, fresh).await;
        answer_lease(&mut api, fresh_with_holder("other")).await;
        let err = guard.await.unwrap().to_string();
        assert!(err.contains("held by \"other\""), "{err}");
    }

    fn fresh_with_holder(holder: &str) -> serde_json::Value {
        serde_json::json!({"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": micro_time(SystemTime::now())})
    }

    #[tokio::test(start_paused = true)]
    async fn lease_guard_stops_before_an_unrenewed_lease_expires() {
        let (client, mut api) = mock_client();
        let guard = tokio::spawn(async move {
            lease_guard(client, "ferrolb-system", "ferrolb-controller", "me").await
        });
        // Ours, but last renewed 14 s ago: it expires in 1 s, inside the safety margin.
        let stale = SystemTime::now() - Duration::from_secs(14);
        answer_lease(
            &mut api,
            serde_json::json!({"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": micro_time(stale)}),
        )
        .await;
        let err = guard.await.unwrap().to_string();
        assert!(err.contains("could not confirm"), "{err}");
    }

    #[test]
    fn later_writes_supersede_earlier_ones() {
        let mut r = Retries::default();
        let jobs = r.jobs(vec![
            set("web", "192.0.2.1"),
            event("web"),
            set("db", "192.0.2.2"),
            set("web", "192.0.2.3"),
            event("web"),
        ]);
        let actions: Vec<&Action> = jobs.iter().map(|j| &j.action).collect();
        assert_eq!(
            actions,
            vec![
                &set("web", "192.0.2.3"),
                &event("web"),
                &set("db", "192.0.2.2"),
                &event("web")
            ]
        );
        assert_ne!(jobs[1].target, jobs[3].target, "events are never merged");
    }

    #[test]
    fn retries_back_off_and_are_bounded() {
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(2), Duration::from_secs(1));
        assert_eq!(retry_delay(30), Duration::from_secs(60));
        let mut r = Retries::default();
        let now = Instant::now();
        let mut job = r.jobs(vec![set("web", "192.0.2.1")]).remove(0);
        assert!(r.failed(job.clone(), now));
        assert_eq!(r.next_due(), Some(now + Duration::from_millis(500)));
        assert!(r.take_due(now).is_empty());
        let due = r.take_due(now + Duration::from_secs(1));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].attempt, 1);
        assert!(r.is_empty());
        // A queued retry is dropped when a newer write to the same object comes, even
        // if that write turns out unnecessary.
        assert!(r.failed(job.clone(), now));
        let fresh = r.jobs(vec![set("web", "192.0.2.9")]);
        assert_eq!(fresh[0].attempt, 0);
        assert!(r.is_empty());
        // Bounded.
        job.attempt = MAX_ATTEMPTS - 1;
        assert!(!r.failed(job, now));
        assert!(r.is_empty());
        let ev = r.jobs(vec![event("web")]).remove(0);
        let mut ev = ev;
        ev.attempt = MAX_EVENT_ATTEMPTS - 1;
        assert!(!r.failed(ev, now));
    }
}
