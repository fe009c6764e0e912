//! The controller's state between the watchers and the [`Engine`]: current Services,
//! pools and namespace labels, the start-up gate, and which writes are still needed;
//! also the advertisement, peer and community objects, checked by [`References`].
//! No I/O: the event loop in [`super`] feeds it watch events and writes what it returns.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_crds::annotations::IP_ALLOCATED_FROM_POOL;
use ferrolb_crds::{
    BGPAdvertisement, BGPPeer, Community, IPAddressPool, IPAddressPoolStatus, L2Advertisement,
};
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::allocator::ServiceKey;
use crate::engine::{Action, Decision, Engine, Kind, NamespaceLabels};
use crate::references::{Objects, References};

/// How long a successful status write counts as in flight, waiting for the watch to
/// show it (see [`Shell::needs_write`]).
pub const IN_FLIGHT: Duration = Duration::from_secs(10);

/// A Namespace as the controller needs it (from a metadata-only watch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ns {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// One watch event from one of the watchers.
// Moved once from the stream into `handle`: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    Service(Event<Service>),
    Pool(Event<IPAddressPool>),
    Namespace(Event<Ns>),
    L2Advertisement(Event<L2Advertisement>),
    BGPAdvertisement(Event<BGPAdvertisement>),
    BGPPeer(Event<BGPPeer>),
    Community(Event<Community>),
}

/// What handling one input decided.
#[derive(Debug, Default)]
pub struct Step {
    pub decisions: Vec<Decision>,
    pub actions: Vec<Action>,
    /// This input completed the initial lists: decisions have begun.
    pub started: bool,
}

impl Step {
    fn resync(&mut self, (decisions, actions): (Vec<Decision>, Vec<Action>)) {
        self.decisions.extend(decisions);
        self.actions.extend(actions);
    }
}

/// What a write is about; at most one write per target is pending or queued for retry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Service(ServiceKey),
    Pool {
        namespace: String,
        name: String,
    },
    /// Events are never superseded: each has its own number.
    Event(u64),
}

/// The state a status write establishes.
#[derive(Clone, Debug, PartialEq)]
enum Desired {
    /// `Some((ips, pool))` for an assignment, `None` for cleared.
    Service(Option<(Vec<IpAddr>, String)>),
    Pool(IPAddressPoolStatus),
}

fn desired(action: &Action) -> Option<(Target, Desired)> {
    match action {
        Action::SetServiceStatus { key, ips, pool } => Some((
            Target::Service(key.clone()),
            Desired::Service(Some((ips.clone(), pool.clone()))),
        )),
        Action::ClearServiceStatus { key } => {
            Some((Target::Service(key.clone()), Desired::Service(None)))
        }
        Action::SetPoolStatus {
            namespace,
            name,
            status,
        } => Some((
            Target::Pool {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            Desired::Pool(status.clone()),
        )),
        Action::Event { .. } => None,
    }
}

pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
    }
}

/// The Service's assignment as written in the API: ingress IPs (`None` when an entry
/// is not a bare IP, e.g. a hostname, or does not parse) and the pool annotation.
fn service_state(svc: &Service) -> (Option<Vec<IpAddr>>, Option<&str>) {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let ips = match ingress {
        None => Some(Vec::new()),
        Some(list) => list
            .iter()
            .map(|i| {
                let bare = i.hostname.is_none()
                    && i.ip_mode.is_none()
                    && i.ports.as_ref().is_none_or(|p| p.is_empty());
                i.ip.as_deref()
                    .filter(|_| bare)
                    .and_then(|ip| ip.parse().ok())
            })
            .collect(),
    };
    let pool = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IP_ALLOCATED_FROM_POOL))
        .map(String::as_str);
    (ips, pool)
}

fn service_matches(svc: &Service, want: &Option<(Vec<IpAddr>, String)>) -> bool {
    let (ips, pool) = service_state(svc);
    match want {
        Some((want_ips, want_pool)) => {
            ips.as_ref() == Some(want_ips) && pool == Some(want_pool.as_str())
        }
        None => ips.is_some_and(|i| i.is_empty()) && pool.is_none(),
    }
}

#[derive(Debug, Default)]
struct Listed {
    services: bool,
    pools: bool,
    namespaces: bool,
}

/// Objects of one FerroLB configuration kind (in the FerroLB namespace), by name.
#[derive(Debug)]
struct Store<K> {
    items: BTreeMap<String, K>,
    /// Objects of a (re)list in progress, swapped in at `InitDone`.
    init: Option<BTreeMap<String, K>>,
    /// The initial list is complete.
    listed: bool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Store {
            items: BTreeMap::new(),
            init: None,
            listed: false,
        }
    }
}

impl<K: kube::Resource + Clone> Store<K> {
    /// Applies one watch event. Returns true when the objects may have changed; the
    /// references are then checked again (cheap, and Events are only sent on change).
    fn apply(&mut self, ev: Event<K>) -> bool {
        match ev {
            Event::Init => {
                self.init = Some(BTreeMap::new());
                false
            }
            Event::InitApply(mut o) => {
                o.meta_mut().managed_fields = None;
                self.init
                    .get_or_insert_with(BTreeMap::new)
                    .insert(o.name_any(), o);
                false
            }
            Event::InitDone => {
                self.items = self.init.take().unwrap_or_default();
                self.listed = true;
                true
            }
            Event::Apply(mut o) => {
                o.meta_mut().managed_fields = None;
                self.items.insert(o.name_any(), o);
                true
            }
            Event::Delete(o) => self.items.remove(&o.name_any()).is_some(),
        }
    }

    fn all(&self) -> Vec<K> {
        self.items.values().cloned().collect()
    }

    fn uid(&self, namespace: &str, name: &str) -> Option<&str> {
        self.items
            .get(name)
            .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
            .and_then(|o| o.meta().uid.as_deref())
    }
}

/// See the module documentation.
pub struct Shell {
    engine: Engine,
    services: BTreeMap<ServiceKey, Service>,
    pools: BTreeMap<String, IPAddressPool>,
    namespaces: NamespaceLabels,
    /// Objects of a (re)list in progress, swapped in at `InitDone`.
    init_services: Option<BTreeMap<ServiceKey, Service>>,
    init_pools: Option<BTreeMap<String, IPAddressPool>>,
    init_namespaces: Option<NamespaceLabels>,
    listed: Listed,
    started: bool,
    /// Writes sent whose result the watch has not shown yet, and when.
    pending: BTreeMap<Target, (Desired, Instant)>,
    l2_advertisements: Store<L2Advertisement>,
    bgp_advertisements: Store<BGPAdvertisement>,
    bgp_peers: Store<BGPPeer>,
    communities: Store<Community>,
    references: References,
    /// Pools or configuration objects changed since references were last checked.
    references_stale: bool,
}

impl Shell {
    pub fn new(engine: Engine) -> Shell {
        Shell {
            engine,
            services: BTreeMap::new(),
            pools: BTreeMap::new(),
            namespaces: NamespaceLabels::new(),
            init_services: None,
            init_pools: None,
            init_namespaces: None,
            listed: Listed::default(),
            started: false,
            pending: BTreeMap::new(),
            l2_advertisements: Store::default(),
            bgp_advertisements: Store::default(),
            bgp_peers: Store::default(),
            communities: Store::default(),
            references: References::new(),
            references_stale: true,
        }
    }

    /// Whether all three initial lists are in and decisions have begun.
    pub fn started(&self) -> bool {
        self.started
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Handles one watch event. Nothing is decided until the Service, pool and
    /// Namespace watchers have delivered their initial lists; then namespaces, pools and
    /// every Service (existing assignments first) are handed to the engine at once.
    ///
    /// References are checked once the pools and the four configuration kinds are
    /// listed, and again whenever one of them changes. Allocation does not wait for
    /// them: a cluster without the advertisement CRDs still gets addresses.
    pub fn handle(&mut self, input: Input) -> Step {
        let mut step = Step::default();
        match input {
            Input::Service(ev) => self.on_service(ev, &mut step),
            Input::Pool(ev) => self.on_pool(ev, &mut step),
            Input::Namespace(ev) => self.on_namespace(ev, &mut step),
            Input::L2Advertisement(ev) => {
                self.references_stale |= self.l2_advertisements.apply(ev);
            }
            Input::BGPAdvertisement(ev) => {
                self.references_stale |= self.bgp_advertisements.apply(ev);
            }
            Input::BGPPeer(ev) => self.references_stale |= self.bgp_peers.apply(ev),
            Input::Community(ev) => self.references_stale |= self.communities.apply(ev),
        }
        if self.references_stale
            && self.listed.pools
            && self.l2_advertisements.listed
            && self.bgp_advertisements.listed
            && self.bgp_peers.listed
            && self.communities.listed
        {
            self.references_stale = false;
            let pools: Vec<IPAddressPool> = self.pools.values().cloned().collect();
            let (l2, bgp) = (self.l2_advertisements.all(), self.bgp_advertisements.all());
            let (peers, communities) = (self.bgp_peers.all(), self.communities.all());
            step.actions.extend(self.references.check(Objects {
                pools: &pools,
                l2_advertisements: &l2,
                bgp_advertisements: &bgp,
                bgp_peers: &peers,
                communities: &communities,
            }));
        }
        if !self.started && self.listed.services && self.listed.pools && self.listed.namespaces {
            self.started = true;
            step.started = true;
            // set_namespaces' answer does not matter: everything is resynced below.
            self.engine.set_namespaces(self.namespaces.clone());
            let pools: Vec<IPAddressPool> = self.pools.values().cloned().collect();
            step.actions.extend(self.engine.set_pools(&pools));
            let services = self.services_in_order();
            step.resync(self.engine.resync(&services));
        }
        step
    }

    /// Every Service, oldest first (then by namespace/name): among Services without an
    /// address the oldest gets first pick. The engine puts existing assignments first.
    fn services_in_order(&self) -> Vec<Service> {
        let mut v: Vec<&Service> = self.services.values().collect();
        // Services without a timestamp (never from a real API server) go last.
        v.sort_by(|a, b| creation_order(a).cmp(&creation_order(b)));
        v.into_iter().cloned().collect()
    }

    fn resync_all(&mut self, step: &mut Step) {
        let services = self.services_in_order();
        step.resync(self.engine.resync(&services));
    }

    fn set_pools_and_resync(&mut self, step: &mut Step) {
        let pools: Vec<IPAddressPool> = self.pools.values().cloned().collect();
        step.actions.extend(self.engine.set_pools(&pools));
        self.resync_all(step);
    }

    fn on_service(&mut self, ev: Event<Service>, step: &mut Step) {
        match ev {
            Event::Init => self.init_services = Some(BTreeMap::new()),
            Event::InitApply(mut svc) => {
                svc.metadata.managed_fields = None;
                let key = service_key(&svc);
                self.init_services
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, svc);
            }
            Event::InitDone => {
                let listed = self.init_services.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.services, listed);
                self.listed.services = true;
                for svc in self.services.values() {
                    confirm_service(&mut self.pending, svc);
                }
                for key in old.keys().filter(|k| !self.services.contains_key(*k)) {
                    self.pending.remove(&Target::Service(key.clone()));
                }
                if self.started {
                    // A relist after the watch lost track. `resync` treats Services that
                    // vanished meanwhile as deleted.
                    self.resync_all(step);
                }
            }
            Event::Apply(mut svc) => {
                // Nothing reads managedFields; they are often the bulk of an object.
                svc.metadata.managed_fields = None;
                let key = service_key(&svc);
                confirm_service(&mut self.pending, &svc);
                if self.started {
                    let (decision, actions) = self.engine.service(&svc);
                    step.decisions.push(decision);
                    step.actions.extend(actions);
                }
                self.services.insert(key, svc);
            }
            Event::Delete(svc) => {
                let key = service_key(&svc);
                self.services.remove(&key);
                self.pending.remove(&Target::Service(key.clone()));
                if self.started {
                    step.actions.extend(self.engine.service_deleted(&key));
                }
            }
        }
    }

    fn on_pool(&mut self, ev: Event<IPAddressPool>, step: &mut Step) {
        match ev {
            Event::Init => self.init_pools = Some(BTreeMap::new()),
            Event::InitApply(pool) => {
                let name = pool.metadata.name.clone().unwrap_or_default();
                self.init_pools
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name, pool);
            }
            Event::InitDone => {
                let listed = self.init_pools.take().unwrap_or_default();
                let changed = !same_specs(&self.pools, &listed);
                self.references_stale |= changed || !self.listed.pools;
                self.pools = listed;
                self.listed.pools = true;
                for pool in self.pools.values() {
                    confirm_pool(&mut self.pending, pool);
                }
                if self.started && changed {
                    self.set_pools_and_resync(step);
                }
            }
            Event::Apply(pool) => {
                let name = pool.metadata.name.clone().unwrap_or_default();
                confirm_pool(&mut self.pending, &pool);
                // Our own status writes come back as Apply events: only a spec change
                // (or a new pool) is worth a resync.
                let changed = self
                    .pools
                    .get(&name)
                    .is_none_or(|old| old.spec != pool.spec);
                self.references_stale |= changed;
                self.pools.insert(name, pool);
                if self.started && changed {
                    self.set_pools_and_resync(step);
                }
            }
            Event::Delete(pool) => {
                let name = pool.metadata.name.clone().unwrap_or_default();
                let namespace = pool.metadata.namespace.clone().unwrap_or_default();
                self.pending.remove(&Target::Pool {
                    namespace,
                    name: name.clone(),
                });
                let removed = self.pools.remove(&name).is_some();
                self.references_stale |= removed;
                if removed && self.started {
                    self.set_pools_and_resync(step);
                }
            }
        }
    }

    fn on_namespace(&mut self, ev: Event<Ns>, step: &mut Step) {
        let changed = match ev {
            Event::Init => {
                self.init_namespaces = Some(NamespaceLabels::new());
                false
            }
            Event::InitApply(ns) => {
                self.init_namespaces
                    .get_or_insert_with(NamespaceLabels::new)
                    .insert(ns.name, ns.labels);
                false
            }
            Event::InitDone => {
                let listed = self.init_namespaces.take().unwrap_or_default();
                self.listed.namespaces = true;
                let changed = listed != self.namespaces;
                self.namespaces = listed;
                changed
            }
            Event::Apply(ns) => {
                let changed = self.namespaces.get(&ns.name) != Some(&ns.labels);
                self.namespaces.insert(ns.name, ns.labels);
                changed
            }
            Event::Delete(ns) => self.namespaces.remove(&ns.name).is_some(),
        };
        if self.started && changed && self.engine.set_namespaces(self.namespaces.clone()) {
            self.resync_all(step);
        }
    }

    /// Whether `action` still has to be written. Events always do. A status write does
    /// not when the same write succeeded less than [`IN_FLIGHT`] ago and the watch has
    /// not shown it yet (the Service's two patches come back as two events, and the
    /// engine, seeing the first, would ask again), nor when the watched object already
    /// shows exactly that and no different write to it is unconfirmed.
    pub fn needs_write(&self, action: &Action) -> bool {
        let Some((target, want)) = desired(action) else {
            return true;
        };
        match self.pending.get(&target) {
            Some((p, _)) if *p != want => return true,
            Some((_, at)) if at.elapsed() < IN_FLIGHT => return false,
            _ => {}
        }
        match (&target, &want) {
            (Target::Service(key), Desired::Service(w)) => self
                .services
                .get(key)
                .is_none_or(|svc| !service_matches(svc, w)),
            (Target::Pool { namespace, name }, Desired::Pool(w)) => self
                .pools
                .get(name)
                .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
                .is_none_or(|p| p.status.as_ref() != Some(w)),
            _ => true,
        }
    }

    /// Records that `action` was written, until the watch shows its result.
    pub fn sent(&mut self, action: &Action) {
        if let Some((target, want)) = desired(action) {
            self.pending.insert(target, (want, Instant::now()));
        }
    }

    /// Forgets a write to `target` that failed (or found the object gone): nothing is
    /// in flight, the next decision compares with the watched object again.
    pub fn not_sent(&mut self, target: &Target) {
        self.pending.remove(target);
    }

    /// The uid of the object an Event is about, if it is known.
    pub fn uid(&self, kind: Kind, namespace: &str, name: &str) -> Option<&str> {
        let meta = match kind {
            Kind::Service => {
                &self
                    .services
                    .get(&ServiceKey {
                        namespace: namespace.into(),
                        name: name.into(),
                    })?
                    .metadata
            }
            Kind::IPAddressPool => {
                &self
                    .pools
                    .get(name)
                    .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))?
                    .metadata
            }
            Kind::L2Advertisement => return self.l2_advertisements.uid(namespace, name),
            Kind::BGPAdvertisement => return self.bgp_advertisements.uid(namespace, name),
            Kind::BGPPeer => return self.bgp_peers.uid(namespace, name),
            Kind::Community => return self.communities.uid(namespace, name),
        };
        meta.uid.as_deref()
    }

    /// Number of Services and pools currently known.
    pub fn counts(&self) -> (usize, usize) {
        (self.services.len(), self.pools.len())
    }
}

/// Sort key: creation time (none last), namespace, name.
fn creation_order(
    s: &Service,
) -> (
    bool,
    Option<k8s_openapi::jiff::Timestamp>,
    Option<&str>,
    Option<&str>,
) {
    let t = s.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        t.is_none(),
        t,
        s.metadata.namespace.as_deref(),
        s.metadata.name.as_deref(),
    )
}

fn confirm_service(pending: &mut BTreeMap<Target, (Desired, Instant)>, svc: &Service) {
    let target = Target::Service(service_key(svc));
    if let Some((Desired::Service(want), _)) = pending.get(&target)
        && service_matches(svc, want)
    {
        pending.remove(&target);
    }
}

fn confirm_pool(pending: &mut BTreeMap<Target, (Desired, Instant)>, pool: &IPAddressPool) {
    let target = Target::Pool {
        namespace: pool.metadata.namespace.clone().unwrap_or_default(),
        name: pool.metadata.name.clone().unwrap_or_default(),
    };
    if let Some((Desired::Pool(want), _)) = pending.get(&target)
        && pool.status.as_ref() == Some(want)
    {
        pending.remove(&target);
    }
}

fn same_specs(a: &BTreeMap<String, IPAddressPool>, b: &BTreeMap<String, IPAddressPool>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((na, pa), (nb, pb))| na == nb && pa.spec == pb.spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
    use kube::api::ObjectMeta;

    fn svc(ns: &str, name: &str, ingress: &[&str], pool: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                annotations: pool
                    .map(|p| [(IP_ALLOCATED_FROM_POOL.to_string(), p.to_string())].into()),
                ..Default::default()
            },
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn key(ns: &str, name: &str) -> ServiceKey {
        ServiceKey {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn set(ns: &str, name: &str, ips: &[&str], pool: &str) -> Action {
        Action::SetServiceStatus {
            key: key(ns, name),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            pool: pool.into(),
        }
    }

    #[test]
    fn nothing_is_decided_before_all_lists() {
        // The engine's methods are never called before the gate opens (they would
        // panic in a stub engine): only stores change.
        let mut shell = Shell::new(Engine::new(Default::default()));
        for input in [
            Input::Service(Event::Init),
            Input::Service(Event::InitApply(svc("a", "web", &["192.0.2.1"], Some("p")))),
            Input::Service(Event::InitDone),
            Input::Service(Event::Apply(svc("a", "db", &[], None))),
            Input::Namespace(Event::Init),
            Input::Namespace(Event::InitApply(Ns {
                name: "a".into(),
                labels: BTreeMap::new(),
            })),
            Input::Namespace(Event::InitDone),
            Input::Pool(Event::Init),
        ] {
            let step = shell.handle(input);
            assert!(!step.started);
            assert!(step.actions.is_empty() && step.decisions.is_empty());
        }
        assert!(!shell.started());
        assert_eq!(shell.counts(), (2, 0));
    }

    #[test]
    fn status_writes_are_skipped_when_the_object_already_shows_them() {
        let mut shell = Shell::new(Engine::new(Default::default()));
        shell.handle(Input::Service(Event::Apply(svc(
            "a",
            "web",
            &["192.0.2.1"],
            Some("p"),
        ))));
        assert!(!shell.needs_write(&set("a", "web", &["192.0.2.1"], "p")));
        assert!(shell.needs_write(&set("a", "web", &["192.0.2.2"], "p")));
        assert!(shell.needs_write(&set("a", "web", &["192.0.2.1"], "q")));
        assert!(shell.needs_write(&Action::ClearServiceStatus {
            key: key("a", "web")
        }));
        // Unknown Service: write (a 404 will say it is gone).
        assert!(shell.needs_write(&set("a", "nope", &["192.0.2.1"], "p")));

        // A -> B -> A before the watch shows B: the second A must still be written.
        shell.sent(&set("a", "web", &["192.0.2.2"], "p"));
        assert!(shell.needs_write(&set("a", "web", &["192.0.2.1"], "p")));
        // Once the watch shows B, the pending write is confirmed.
        shell.handle(Input::Service(Event::Apply(svc(
            "a",
            "web",
            &["192.0.2.2"],
            Some("p"),
        ))));
        assert!(!shell.needs_write(&set("a", "web", &["192.0.2.2"], "p")));

        // A write just sent is not repeated when the watch shows half of it (the status
        // patch, before the annotation patch)...
        shell.sent(&set("a", "web", &["192.0.2.3"], "p"));
        shell.handle(Input::Service(Event::Apply(svc(
            "a",
            "web",
            &["192.0.2.3"],
            None,
        ))));
        assert!(!shell.needs_write(&set("a", "web", &["192.0.2.3"], "p")));
        // ...but is when it failed.
        shell.not_sent(&Target::Service(key("a", "web")));
        assert!(shell.needs_write(&set("a", "web", &["192.0.2.3"], "p")));

        shell.handle(Input::Service(Event::Apply(svc("a", "bare", &[], None))));
        assert!(!shell.needs_write(&Action::ClearServiceStatus {
            key: key("a", "bare")
        }));
    }

    fn lb(name: &str, ingress: Option<&str>) -> Service {
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "a", "name": name},
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.1"], "ports": [{"port": 80}]},
        });
        if let Some(ip) = ingress {
            v["status"] = serde_json::json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
            v["metadata"]["annotations"] = serde_json::json!({IP_ALLOCATED_FROM_POOL: "p"});
        }
        serde_json::from_value(v).unwrap()
    }

    fn pool(addresses: &[&str]) -> IPAddressPool {
        let mut p = IPAddressPool::new("p", ferrolb_crds::IPAddressPoolSpec::new(addresses));
        p.metadata.namespace = Some("ferrolb-system".into());
        p
    }

    /// A shell past the start-up gate with pool p and the given Services.
    fn started(services: Vec<Service>) -> (Shell, Step) {
        let mut shell = Shell::new(Engine::new(Default::default()));
        let mut inputs = vec![Input::Service(Event::Init)];
        inputs.extend(
            services
                .into_iter()
                .map(|s| Input::Service(Event::InitApply(s))),
        );
        inputs.extend([
            Input::Service(Event::InitDone),
            Input::Pool(Event::Init),
            Input::Pool(Event::InitApply(pool(&["192.0.2.0/24"]))),
            Input::Pool(Event::InitDone),
            Input::Namespace(Event::Init),
            Input::Namespace(Event::InitApply(Ns {
                name: "a".into(),
                labels: BTreeMap::new(),
            })),
        ]);
        for i in inputs {
            assert!(!shell.handle(i).started);
        }
        let step = shell.handle(Input::Namespace(Event::InitDone));
        assert!(step.started && shell.started());
        (shell, step)
    }

    fn in_use(shell: &Shell) -> u128 {
        shell.engine().pool_usage().iter().map(|u| u.in_use).sum()
    }

    #[test]
    fn start_decides_every_service_at_once() {
        let (shell, step) = started(vec![lb("web", None), lb("old", Some("192.0.2.7"))]);
        let decided: Vec<(String, Vec<IpAddr>)> = step
            .decisions
            .iter()
            .map(|d| (d.key.name.clone(), d.ips.clone()))
            .collect();
        // The existing assignment is kept; the new Service gets the first free address.
        assert!(
            decided.contains(&("old".into(), vec!["192.0.2.7".parse().unwrap()])),
            "{decided:?}"
        );
        assert!(
            decided.contains(&("web".into(), vec!["192.0.2.0".parse().unwrap()])),
            "{decided:?}"
        );
        assert_eq!(in_use(&shell), 2);
    }

    #[test]
    fn pool_status_updates_do_not_resync_but_spec_changes_do() {
        let (mut shell, _) = started(vec![lb("old", Some("192.0.2.7"))]);
        let mut p = pool(&["192.0.2.0/24"]);
        p.status = Some(IPAddressPoolStatus {
            assigned_ipv4: 1,
            ..Default::default()
        });
        let step = shell.handle(Input::Pool(Event::Apply(p)));
        assert!(
            step.decisions.is_empty() && step.actions.is_empty(),
            "{step:?}"
        );

        let step = shell.handle(Input::Pool(Event::Apply(pool(&["198.51.100.0/24"]))));
        assert_eq!(step.decisions.len(), 1, "{step:?}");
        assert!(
            step.decisions[0]
                .ips
                .iter()
                .all(|ip| ip.to_string().starts_with("198.51.100.")),
            "{step:?}"
        );

        let step = shell.handle(Input::Pool(Event::Delete(pool(&["198.51.100.0/24"]))));
        assert!(step.decisions[0].error.is_some(), "{step:?}");
    }

    #[test]
    fn relist_forgets_services_deleted_meanwhile() {
        let (mut shell, _) = started(vec![lb("web", None), lb("old", Some("192.0.2.7"))]);
        assert_eq!(in_use(&shell), 2);
        shell.handle(Input::Service(Event::Init));
        shell.handle(Input::Service(Event::InitApply(lb(
            "old",
            Some("192.0.2.7"),
        ))));
        let step = shell.handle(Input::Service(Event::InitDone));
        assert_eq!(step.decisions.len(), 1);
        assert_eq!(in_use(&shell), 1);
        assert_eq!(shell.counts(), (1, 1));
    }

    #[test]
    fn namespace_label_changes_resync() {
        let (mut shell, _) = started(vec![lb("web", None)]);
        let same = Ns {
            name: "a".into(),
            labels: BTreeMap::new(),
        };
        let step = shell.handle(Input::Namespace(Event::Apply(same)));
        assert!(step.decisions.is_empty());
        let labelled = Ns {
            name: "a".into(),
            labels: [("team".to_string(), "x".to_string())].into(),
        };
        let step = shell.handle(Input::Namespace(Event::Apply(labelled)));
        assert_eq!(step.decisions.len(), 1);
    }

    #[test]
    fn service_events_after_start_reach_the_engine() {
        let (mut shell, _) = started(vec![]);
        let step = shell.handle(Input::Service(Event::Apply(lb("web", None))));
        assert_eq!(
            step.decisions[0].ips,
            vec!["192.0.2.0".parse::<IpAddr>().unwrap()]
        );
        assert!(
            step.actions
                .iter()
                .any(|a| matches!(a, Action::SetServiceStatus { .. }))
        );
        assert_eq!(in_use(&shell), 1);
        shell.handle(Input::Service(Event::Delete(lb("web", None))));
        assert_eq!(in_use(&shell), 0);
        assert_eq!(shell.counts(), (0, 1));
    }

    fn l2(name: &str, pools: &[&str]) -> L2Advertisement {
        let mut a = L2Advertisement::new(
            name,
            ferrolb_crds::L2AdvertisementSpec {
                ip_address_pools: pools.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            },
        );
        a.metadata.namespace = Some("ferrolb-system".into());
        a.metadata.uid = Some(format!("uid-{name}"));
        a
    }

    fn reference_events(step: &Step) -> Vec<(String, String)> {
        step.actions
            .iter()
            .filter_map(|a| match a {
                Action::Event {
                    kind: Kind::L2Advertisement,
                    reason,
                    message,
                    ..
                } => Some((reason.clone(), message.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn references_are_checked_once_listed_and_after_pool_changes() {
        let (mut shell, _) = started(vec![]);
        let lists = [
            Input::L2Advertisement(Event::Init),
            Input::L2Advertisement(Event::InitApply(l2("lan", &["ghost"]))),
            Input::L2Advertisement(Event::InitDone),
            Input::BGPAdvertisement(Event::Init),
            Input::BGPAdvertisement(Event::InitDone),
            Input::BGPPeer(Event::Init),
            Input::BGPPeer(Event::InitDone),
            Input::Community(Event::Init),
        ];
        for input in lists {
            let step = shell.handle(input);
            assert!(
                step.actions.is_empty(),
                "not every kind is listed: {step:?}"
            );
        }
        let step = shell.handle(Input::Community(Event::InitDone));
        assert_eq!(
            reference_events(&step),
            [(
                "UnknownReference".to_string(),
                r#"pool "ghost" does not exist"#.to_string()
            )]
        );
        assert_eq!(
            shell.uid(Kind::L2Advertisement, "ferrolb-system", "lan"),
            Some("uid-lan")
        );
        // A pool status write coming back is no change: nothing is said again.
        let mut p = pool(&["192.0.2.0/24"]);
        p.status = Some(IPAddressPoolStatus::default());
        assert!(reference_events(&shell.handle(Input::Pool(Event::Apply(p)))).is_empty());
        // The missing pool is created: resolved.
        let mut ghost = pool(&["198.51.100.0/24"]);
        ghost.metadata.name = Some("ghost".into());
        let step = shell.handle(Input::Pool(Event::Apply(ghost)));
        assert_eq!(
            reference_events(&step),
            [(
                "Resolved".to_string(),
                r#"resolved: pool "ghost" does not exist"#.to_string()
            )]
        );
    }

    #[test]
    fn hostname_ingress_is_not_our_assignment() {
        let mut s = svc("a", "web", &["192.0.2.1"], Some("p"));
        if let Some(ing) = s
            .status
            .as_mut()
            .and_then(|s| s.load_balancer.as_mut())
            .and_then(|l| l.ingress.as_mut())
        {
            ing.push(LoadBalancerIngress {
                hostname: Some("x.example".into()),
                ..Default::default()
            });
        }
        let mut shell = Shell::new(Engine::new(Default::default()));
        shell.handle(Input::Service(Event::Apply(s)));
        assert!(shell.needs_write(&set("a", "web", &["192.0.2.1"], "p")));
    }

    #[test]
    fn pool_status_skip() {
        let mut shell = Shell::new(Engine::new(Default::default()));
        let mut pool =
            IPAddressPool::new("p", ferrolb_crds::IPAddressPoolSpec::new(&["192.0.2.0/24"]));
        pool.metadata.namespace = Some("ferrolb-system".into());
        pool.metadata.uid = Some("u-1".into());
        let st = IPAddressPoolStatus {
            assigned_ipv4: 1,
            ..Default::default()
        };
        pool.status = Some(st.clone());
        shell.handle(Input::Pool(Event::Apply(pool)));
        let action = |status: IPAddressPoolStatus| Action::SetPoolStatus {
            namespace: "ferrolb-system".into(),
            name: "p".into(),
            status,
        };
        assert!(!shell.needs_write(&action(st.clone())));
        assert!(shell.needs_write(&action(IPAddressPoolStatus::default())));
        assert_eq!(
            shell.uid(Kind::IPAddressPool, "ferrolb-system", "p"),
            Some("u-1")
        );
        assert_eq!(shell.uid(Kind::IPAddressPool, "other", "p"), None);
    }
}
