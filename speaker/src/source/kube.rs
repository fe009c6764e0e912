//! The speaker against Kubernetes (`--source kube`, the default).
//!
//! # Inputs
//!
//! kube-runtime watchers over Services (every namespace; only `LoadBalancer` Services
//! of `--lb-class` are kept), EndpointSlices, Nodes, and, in the FerroLB namespace
//! (`--namespace`, from `POD_NAMESPACE`), IPAddressPools, L2Advertisements,
//! BGPAdvertisements, BGPPeers, Communities, BFDProfiles and Secrets of type
//! `kubernetes.io/basic-auth` (a BGPPeer's `passwordSecret`; only their `password` key
//! is kept), merged into one stream that fills a [`store::Store`]. Nothing is sent before every initial list is in; then a
//! [`Snapshot`] (the same shape the standalone source builds, by the same function)
//! goes out on a `watch` channel after every batch of changes.
//!
//! The API server going away stops nothing: each watcher retries with kube-runtime's
//! default backoff (exponential, up to about a minute), the failure is logged, and the
//! channel keeps the last snapshot, so the speaker goes on announcing from its last
//! known inputs (and gossip still tells it which nodes are alive).
//!
//! # Outputs
//!
//! [`KubeReporter`] hands what this node announces to two writer tasks, which keep one
//! `ServiceL2Status` per Service announced in Layer2 mode and one `ServiceBGPStatus`
//! per Service announced over BGP, in the FerroLB namespace (see [`crate::status`] for
//! the rules; the objects of this node are watched by the label
//! `ferrolb.io/node=<node>`), and record a `nodeAssigned` Event on the Service when it
//! starts announcing it or its interfaces (Layer2) or peers (BGP) change. A prefix not
//! sent because BGPAdvertisements disagree on its localPref gets a Warning Event
//! (`ConflictingLocalPref`) on each of those advertisements, once while the problem
//! lasts. Each BGP session of this node that comes up gets a Normal Event
//! (`BGPSessionUp`) on its BGPPeer, and one that goes down a Warning (`BGPSessionDown`,
//! with why: the NOTIFICATION, the hold timer, a lost connection), on the change only
//! ([`status::session_events`]). A Service cannot own an object in
//! another namespace, so, as in MetalLB, the owner is the speaker's pod (`POD_NAME`,
//! `POD_UID`): the objects go with the pod. On SIGTERM the speaker deletes its objects
//! itself (waiting at most [`STOP_TIMEOUT`]).
//!
//! | write | request |
//! |---|---|
//! | create | `POST /apis/ferrolb.io/v1beta1/namespaces/NS/servicel2statuses` (name, labels, owner, `spec: {}`), then the status as below |
//! | status | `PATCH …/servicel2statuses/NAME/status` (merge patch) `{"status": {node, serviceName, serviceNamespace, interfaces}}` |
//! | delete | `DELETE …/servicel2statuses/NAME` |
//! | BGP | the same on `…/servicebgpstatuses`, the status `{node, serviceName, serviceNamespace, peers}` |
//! | Event | `POST /apis/events.k8s.io/v1/namespaces/SVC_NS/events`, reason `nodeAssigned`, reporter `ferrolb-speaker` |
//! | Warning | `POST /apis/events.k8s.io/v1/namespaces/NS/events` regarding the BGPAdvertisement, reason `ConflictingLocalPref` |
//! | session | `POST /apis/events.k8s.io/v1/namespaces/NS/events` regarding the BGPPeer, reason `BGPSessionUp` (Normal) or `BGPSessionDown` (Warning) |
//!
//! A failed write is retried with backoff (0.5 s doubling to 60 s) by planning again;
//! a 404 means the object is gone, a 409 on create that it exists.

pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use ferrolb_crds::client::{Applied, Events, WriteError, classify};
use ferrolb_crds::status::{NODE_LABEL, ServiceBGPStatusSpec, ServiceL2StatusSpec};
use ferrolb_crds::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
    ServiceBGPStatus, ServiceL2Status,
};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::bgp::config::BASIC_AUTH;
use crate::bgp::rib;
use crate::bgp::speaker::SessionSummary;
use crate::cli::Cli;
use crate::desired::Desired;
use crate::election::Announcements;
use crate::run::{Report, Reporter};
use crate::source::Snapshot;
use crate::status::{self, Existing, Kind, Op, Plan, Warning};
use crate::world::ServiceKey;
use std::sync::Arc;
use store::{Input, Store};

/// Field manager of every write, and the Events' reporting controller.
pub const FIELD_MANAGER: &str = "ferrolb-speaker";
/// How long a stopping speaker waits for its status objects to be deleted.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// What the Kubernetes source needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    pub node: String,
    /// The FerroLB namespace.
    pub namespace: String,
    pub lb_class: Option<String>,
    /// The speaker's pod (name, uid): owner of the status objects.
    pub pod: Option<(String, String)>,
}

impl Config {
    pub fn from_cli(cli: &Cli) -> Config {
        Config {
            node: cli.node_name.clone(),
            namespace: cli.namespace.clone(),
            lb_class: cli.lb_class.clone(),
            pod: cli.pod_name.clone().zip(cli.pod_uid.clone()),
        }
    }
}

/// Connects (in-cluster config or kubeconfig) and starts; see [`start_with`].
pub async fn start(cli: &Cli) -> anyhow::Result<(watch::Receiver<Arc<Snapshot>>, KubeReporter)> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let config = Config::from_cli(cli);
    if config.pod.is_none() {
        warn!(
            "POD_NAME/POD_UID not set: ServiceL2Status and ServiceBGPStatus objects get no owner and outlive this speaker if it dies uncleanly"
        );
    }
    Ok(start_with(client, config).await)
}

/// Starts the watchers and the status writer, and returns once every initial list is
/// in (the receiver then holds the first snapshot).
pub async fn start_with(
    client: Client,
    config: Config,
) -> (watch::Receiver<Arc<Snapshot>>, KubeReporter) {
    let (tx, mut rx) = watch::channel(Arc::new(Snapshot::default()));
    let (uids_tx, uids_rx) = watch::channel(BTreeMap::new());
    let (object_uids_tx, object_uids_rx) = watch::channel(BTreeMap::new());
    let inputs = watch_inputs(client.clone(), &config.namespace);
    info!(namespace = %config.namespace, lb_class = ?config.lb_class, "watching Services, EndpointSlices, Nodes and FerroLB objects");
    tokio::spawn(follow(
        inputs,
        Store::new(config.lb_class.clone()),
        tx,
        uids_tx,
        object_uids_tx,
    ));
    // An error means the task ended, which it only does when every receiver is gone.
    let _ = rx.changed().await;
    info!("initial lists complete");
    let reporter = KubeReporter::start(client, config, uids_rx, object_uids_rx);
    (rx, reporter)
}

/// The uid of each BGPPeer and BGPAdvertisement, by (kind, name): what Events on them
/// refer to.
type ObjectUids = BTreeMap<(&'static str, String), String>;

type Inputs = BoxStream<'static, Result<Input, (&'static str, watcher::Error)>>;

fn watch_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    wrap: fn(Event<K>) -> Input,
) -> Inputs
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    watcher(api, config)
        .default_backoff()
        .map_ok(wrap)
        .map_err(move |e| (what, e))
        .boxed()
}

/// Every watcher, merged. Watch errors are yielded (for logging); the watchers retry
/// with backoff.
fn watch_inputs(client: Client, namespace: &str) -> Inputs {
    let all = watcher::Config::default;
    futures::stream::select_all([
        watch_kind(
            Api::<Service>::all(client.clone()),
            all(),
            "services",
            Input::Service,
        ),
        watch_kind(
            Api::<EndpointSlice>::all(client.clone()),
            all(),
            "endpointslices",
            Input::EndpointSlice,
        ),
        watch_kind(
            Api::<Node>::all(client.clone()),
            all(),
            "nodes",
            Input::Node,
        ),
        watch_kind(
            Api::<IPAddressPool>::namespaced(client.clone(), namespace),
            all(),
            "ipaddresspools",
            Input::Pool,
        ),
        watch_kind(
            Api::<L2Advertisement>::namespaced(client.clone(), namespace),
            all(),
            "l2advertisements",
            Input::L2Advertisement,
        ),
        watch_kind(
            Api::<BGPAdvertisement>::namespaced(client.clone(), namespace),
            all(),
            "bgpadvertisements",
            Input::BgpAdvertisement,
        ),
        watch_kind(
            Api::<BGPPeer>::namespaced(client.clone(), namespace),
            all(),
            "bgppeers",
            Input::BgpPeer,
        ),
        watch_kind(
            Api::<Community>::namespaced(client.clone(), namespace),
            all(),
            "communities",
            Input::Community,
        ),
        watch_kind(
            Api::<BFDProfile>::namespaced(client.clone(), namespace),
            all(),
            "bfdprofiles",
            Input::BfdProfile,
        ),
        // Only the type a passwordSecret must have: the namespace's other Secrets (TLS
        // keys, tokens) never reach the speaker.
        watch_kind(
            Api::<Secret>::namespaced(client, namespace),
            all().fields(&format!("type={BASIC_AUTH}")),
            "secrets",
            Input::Secret,
        ),
    ])
    .boxed()
}

/// Feeds the store and publishes a snapshot after every batch of changes (every event
/// already waiting is taken before building one). Ends when nobody listens.
async fn follow(
    mut inputs: Inputs,
    mut store: Store,
    tx: watch::Sender<Arc<Snapshot>>,
    uids: watch::Sender<BTreeMap<ServiceKey, String>>,
    object_uids: watch::Sender<ObjectUids>,
) {
    let mut sent = false;
    let mut failing: BTreeSet<&'static str> = BTreeSet::new();
    while let Some(first) = inputs.next().await {
        let mut changed = false;
        let mut item = Some(first);
        while let Some(next) = item {
            match next {
                Ok(input) => {
                    if failing.remove(input.what()) {
                        info!(watch = input.what(), "watch is back");
                    }
                    changed |= store.handle(input);
                }
                Err((what, e)) => {
                    if failing.insert(what) {
                        warn!(watch = what, error = %e, "watch failed; retrying with backoff, announcing from the last known inputs (a 403 means the speaker's RBAC lacks this kind)");
                    } else {
                        debug!(watch = what, error = %e, "watch failed again");
                    }
                }
            }
            item = inputs.next().now_or_never().flatten();
        }
        if store.listed() && (changed || !sent) {
            sent = true;
            uids.send_replace(store.service_uids());
            object_uids.send_replace(store.object_uids());
            if tx.send(Arc::new(store.snapshot())).is_err() {
                return;
            }
        }
    }
}

/// What a writer is asked for: a generation number and, per Service this node
/// announces, its interfaces or peers (`None` before the main loop first reports).
type Wanted = (u64, Option<BTreeMap<ServiceKey, BTreeSet<String>>>);

/// The main loop's end of one writer task.
struct Writer {
    wanted: watch::Sender<Wanted>,
    /// The last generation the writer brought the cluster to.
    done: watch::Receiver<u64>,
}

impl Writer {
    fn start<O: StatusObject>(
        client: Client,
        config: Config,
        uids: watch::Receiver<BTreeMap<ServiceKey, String>>,
    ) -> Writer {
        let (wanted, wanted_rx) = watch::channel((0, None));
        let (done_tx, done) = watch::channel(0);
        tokio::spawn(write_statuses::<O>(
            client, config, wanted_rx, uids, done_tx,
        ));
        Writer { wanted, done }
    }

    fn ask(&self, statuses: BTreeMap<ServiceKey, BTreeSet<String>>) -> u64 {
        let mut generation = 0;
        self.wanted.send_modify(|(g, w)| {
            *g += 1;
            generation = *g;
            *w = Some(statuses);
        });
        generation
    }

    /// Waits until the writer has brought the cluster to `generation`.
    async fn reached(&self, generation: u64) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d >= generation).await;
    }
}

/// An Event about a FerroLB object in the FerroLB namespace: a BGPAdvertisement's
/// Warning, or a BGPPeer's session going up or down.
#[derive(Debug)]
struct Notice {
    kind: &'static str,
    name: String,
    warning: bool,
    reason: &'static str,
    message: String,
}

impl From<Warning> for Notice {
    fn from(w: Warning) -> Notice {
        Notice {
            kind: "BGPAdvertisement",
            name: w.advertisement,
            warning: true,
            reason: w.reason,
            message: w.message,
        }
    }
}

impl From<status::SessionEvent> for Notice {
    fn from(e: status::SessionEvent) -> Notice {
        Notice {
            kind: "BGPPeer",
            name: e.peer,
            warning: e.warning,
            reason: e.reason,
            message: e.message,
        }
    }
}

/// Hands what this node announces to the status writer tasks, and BGP's problems and
/// session changes to the Event publisher.
pub struct KubeReporter {
    l2: Writer,
    bgp: Writer,
    notices: mpsc::UnboundedSender<Vec<Notice>>,
    /// The Warnings of the last pass, so that each is published once while it lasts.
    said: BTreeSet<Warning>,
    /// The sessions of the last pass, to tell when one went up or down.
    sessions: Vec<SessionSummary>,
}

impl KubeReporter {
    fn start(
        client: Client,
        config: Config,
        uids: watch::Receiver<BTreeMap<ServiceKey, String>>,
        object_uids: watch::Receiver<ObjectUids>,
    ) -> KubeReporter {
        let (notices, notices_rx) = mpsc::unbounded_channel();
        tokio::spawn(publish_notices(
            Events::new(client.clone(), FIELD_MANAGER, Some(config.node.clone())),
            config.namespace.clone(),
            notices_rx,
            object_uids,
        ));
        KubeReporter {
            l2: Writer::start::<ServiceL2Status>(client.clone(), config.clone(), uids.clone()),
            bgp: Writer::start::<ServiceBGPStatus>(client, config, uids),
            notices,
            said: BTreeSet::new(),
            sessions: Vec::new(),
        }
    }
}

impl KubeReporter {
    /// Sends `notices` and an Event for each session that went up or down since the
    /// last report.
    fn notify(&mut self, report: &Report, mut notices: Vec<Notice>) {
        notices.extend(
            status::session_events(&report.node, &self.sessions, &report.bgp_sessions)
                .into_iter()
                .map(Notice::from),
        );
        self.sessions.clone_from(&report.bgp_sessions);
        if !notices.is_empty() {
            // Only fails when the publisher is gone, i.e. the runtime is shutting down.
            let _ = self.notices.send(notices);
        }
    }
}

impl Reporter for KubeReporter {
    fn announced(
        &mut self,
        report: &Arc<Report>,
        ann: &Announcements,
        want: &Desired,
        bgp: &rib::Plan,
    ) {
        self.l2.ask(status::desired_l2(ann, want));
        self.bgp.ask(status::desired_bgp(ann, &bgp.peers));
        let now = status::warnings(&bgp.conflicts);
        let notices: Vec<Notice> = status::fresh(&self.said, &now)
            .into_iter()
            .map(Notice::from)
            .collect();
        self.said = now;
        self.notify(report, notices);
    }

    fn sessions(&mut self, report: &Arc<Report>) {
        self.notify(report, Vec::new());
    }

    fn stop(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let l2 = self.l2.ask(BTreeMap::new());
        let bgp = self.bgp.ask(BTreeMap::new());
        Box::pin(async move {
            let both = async {
                self.l2.reached(l2).await;
                self.bgp.reached(bgp).await;
            };
            if tokio::time::timeout(STOP_TIMEOUT, both).await.is_err() {
                warn!(
                    "could not delete this node's status objects in time; the pod's deletion will"
                );
            }
        })
    }
}

/// Records each notice on its object (in the FerroLB namespace), in order.
async fn publish_notices(
    events: Events,
    namespace: String,
    mut rx: mpsc::UnboundedReceiver<Vec<Notice>>,
    uids: watch::Receiver<ObjectUids>,
) {
    while let Some(batch) = rx.recv().await {
        for n in batch {
            // With the uid, `kubectl describe` finds the Event (it filters by uid).
            let uid = uids.borrow().get(&(n.kind, n.name.clone())).cloned();
            let reference = ObjectReference {
                api_version: Some("ferrolb.io/v1beta1".into()),
                kind: Some(n.kind.into()),
                namespace: Some(namespace.clone()),
                name: Some(n.name.clone()),
                uid,
                ..Default::default()
            };
            match events
                .publish(&reference, n.warning, n.reason, &n.message)
                .await
            {
                Ok(_) => {
                    info!(kind = n.kind, name = %n.name, reason = n.reason, message = %n.message, "event recorded")
                }
                // Events are for people (the same is in the log); not retried.
                Err(e) => {
                    warn!(kind = n.kind, name = %n.name, reason = n.reason, error = %e, "recording an Event")
                }
            }
        }
    }
}

/// A status kind the writer keeps: its Kubernetes object, and how to read and write
/// it.
trait StatusObject:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    type Kind: status::Kind + Send + Sync + 'static;
    fn existing(&self) -> Existing<StatusOf<Self>>;
    /// The object with `meta`, an empty spec and no status.
    fn empty(meta: ObjectMeta) -> Self;
    /// The merge patch writing `status`. Lists always present: a merge patch replaces
    /// lists, so `[]` clears.
    fn patch(status: &StatusOf<Self>) -> serde_json::Value;
}

type StatusOf<O> = <<O as StatusObject>::Kind as Kind>::Status;

impl StatusObject for ServiceL2Status {
    type Kind = status::L2;

    fn existing(&self) -> Existing<StatusOf<Self>> {
        Existing::from_object(self)
    }

    fn empty(metadata: ObjectMeta) -> Self {
        ServiceL2Status {
            metadata,
            spec: ServiceL2StatusSpec {},
            status: None,
        }
    }

    fn patch(status: &StatusOf<Self>) -> serde_json::Value {
        json!({ "status": {
            "node": status.node,
            "serviceName": status.service_name,
            "serviceNamespace": status.service_namespace,
            "interfaces": status.interfaces,
        }})
    }
}

impl StatusObject for ServiceBGPStatus {
    type Kind = status::Bgp;

    fn existing(&self) -> Existing<StatusOf<Self>> {
        Existing::from_bgp_object(self)
    }

    fn empty(metadata: ObjectMeta) -> Self {
        ServiceBGPStatus {
            metadata,
            spec: ServiceBGPStatusSpec {},
            status: None,
        }
    }

    fn patch(status: &StatusOf<Self>) -> serde_json::Value {
        json!({ "status": {
            "node": status.node,
            "serviceName": status.service_name,
            "serviceNamespace": status.service_namespace,
            "peers": status.peers,
        }})
    }
}

/// Delay before attempt `attempt + 1` after `attempt` failed ones (1-based).
fn retry_delay(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(ms).min(Duration::from_secs(60))
}

/// The writer task: watches this node's status objects, plans, writes, and plans again
/// after every change of either side (or after a backoff when a write failed).
async fn write_statuses<O: StatusObject>(
    client: Client,
    config: Config,
    mut wanted: watch::Receiver<Wanted>,
    uids: watch::Receiver<BTreeMap<ServiceKey, String>>,
    done: watch::Sender<u64>,
) {
    let api: Api<O> = Api::namespaced(client.clone(), &config.namespace);
    let selector = format!("{NODE_LABEL}={}", status::node_label_value(&config.node));
    let mut objects = watcher(api.clone(), watcher::Config::default().labels(&selector))
        .default_backoff()
        .boxed();
    let writer = StatusWriter {
        api,
        events: Events::new(client, FIELD_MANAGER, Some(config.node.clone())),
        config,
    };
    let mut existing: BTreeMap<String, Existing<StatusOf<O>>> = BTreeMap::new();
    let mut relist: Option<BTreeMap<String, Existing<StatusOf<O>>>> = None;
    let mut listed = false;
    let mut watch_ok = true;
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::select! {
            item = objects.next() => match item {
                Some(Ok(ev)) => { watch_ok = true; match ev {
                    Event::Init => relist = Some(BTreeMap::new()),
                    Event::InitApply(o) => {
                        let e = o.existing();
                        relist.get_or_insert_with(BTreeMap::new).insert(e.name.clone(), e);
                    }
                    Event::InitDone => {
                        existing = relist.take().unwrap_or_default();
                        listed = true;
                    }
                    Event::Apply(o) => {
                        let e = o.existing();
                        existing.insert(e.name.clone(), e);
                    }
                    Event::Delete(o) => {
                        existing.remove(&o.existing().name);
                    }
                }},
                Some(Err(e)) => {
                    if watch_ok {
                        warn!(kind = O::Kind::KIND, error = %e, "watching this node's status objects failed; retrying with backoff (is the CRD installed?)");
                    }
                    watch_ok = false;
                }
                None => return,
            },
            r = wanted.changed() => if r.is_err() { return },
            _ = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
        }
        let (generation, want) = wanted.borrow_and_update().clone();
        let Some(want) = want.filter(|_| listed && retry_at.is_none()) else {
            continue;
        };
        let plan =
            status::plan_kind::<O::Kind>(&writer.config.node, &want, &existing_list(&existing));
        if plan.is_empty() {
            done.send_replace(generation);
            continue;
        }
        let service_uids = uids.borrow().clone();
        if writer.apply(&plan, &mut existing, &service_uids).await {
            failures = 0;
        } else {
            failures += 1;
            retry_at = Some(Instant::now() + retry_delay(failures));
        }
        // Plan again at once: the writes above may have left work (a create whose
        // status write failed) and `wanted` may have moved meanwhile.
        wanted.mark_changed();
    }
}

fn existing_list<S: Clone>(m: &BTreeMap<String, Existing<S>>) -> Vec<Existing<S>> {
    m.values().cloned().collect()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct StatusWriter<O: StatusObject> {
    api: Api<O>,
    events: Events,
    config: Config,
}

impl<O: StatusObject> StatusWriter<O> {
    /// Writes the plan, keeping `existing` in step with what succeeded. Returns false
    /// when a write failed (and should be tried again later).
    async fn apply(
        &self,
        plan: &Plan<StatusOf<O>>,
        existing: &mut BTreeMap<String, Existing<StatusOf<O>>>,
        uids: &BTreeMap<ServiceKey, String>,
    ) -> bool {
        let mut ok = true;
        for op in &plan.ops {
            match (op, self.write(op).await) {
                (
                    Op::Create {
                        name,
                        service,
                        status,
                    },
                    Ok(Applied::Written),
                ) => {
                    existing.insert(
                        name.clone(),
                        Existing {
                            name: name.clone(),
                            service: Some(service.clone()),
                            status: Some(status.clone()),
                        },
                    );
                }
                (Op::Update { name, status }, Ok(Applied::Written)) => {
                    if let Some(e) = existing.get_mut(name) {
                        e.status = Some(status.clone());
                    }
                }
                (Op::Update { name, .. }, Ok(Applied::Gone)) | (Op::Delete { name }, Ok(_)) => {
                    existing.remove(name);
                }
                // Created, then gone before its status was written: planned again,
                // after a backoff.
                (Op::Create { .. }, Ok(Applied::Gone)) => ok = false,
                (op, Err(e)) => {
                    ok = false;
                    let retryable = e.is_retryable();
                    warn!(kind = O::Kind::KIND, ?op, error = %e, retryable, "status write failed; will try again after a backoff");
                }
            }
        }
        for note in &plan.events {
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(note.service.namespace().to_string()),
                name: Some(note.service.name().to_string()),
                uid: uids.get(&note.service).cloned(),
                ..Default::default()
            };
            match self
                .events
                .publish(&reference, false, status::NODE_ASSIGNED, &note.message)
                .await
            {
                Ok(_) => info!(service = %note.service, message = %note.message, "nodeAssigned"),
                // Events are for people; a lost one is not worth holding the statuses.
                Err(e) => {
                    warn!(service = %note.service, error = %e, "recording the nodeAssigned Event")
                }
            }
        }
        ok
    }

    async fn write(&self, op: &Op<StatusOf<O>>) -> Result<Applied, WriteError> {
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match op {
            Op::Create {
                name,
                service,
                status,
            } => {
                let obj = O::empty(ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    labels: Some(status::labels(&self.config.node, service)),
                    owner_references: self.config.pod.as_ref().map(|(pod, uid)| {
                        vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Pod".into(),
                            name: pod.clone(),
                            uid: uid.clone(),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                });
                let pp_create = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match self.api.create(&pp_create, &obj).await {
                    Ok(_) => {}
                    // Already there (a create that raced with the watch): write its status.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return classify(e),
                }
                self.write_status(name, status, &pp).await
            }
            Op::Update { name, status } => self.write_status(name, status, &pp).await,
            Op::Delete { name } => self
                .api
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| Applied::Written)
                .or_else(classify),
        }
    }

    async fn write_status(
        &self,
        name: &str,
        status: &StatusOf<O>,
        pp: &PatchParams,
    ) -> Result<Applied, WriteError> {
        let patch = O::patch(status);
        self.api
            .patch_status(name, pp, &Patch::Merge(&patch))
            .await
            .map(|_| Applied::Written)
            .or_else(classify)
    }
}
