//! The controller's decisions over everything it sees, as a pure state machine: feed
//! it pools, namespaces and Services, get back [`Action`]s (status to write, Events to
//! record). The Kubernetes shell, the directory source and the planner all drive this
//! one engine, so they cannot disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_crds::addresses::Family;
use ferrolb_crds::annotations;
use ferrolb_crds::condition::{Condition, pool as cond};
use ferrolb_crds::validate::{ParsedPool, Problem, check_pools};
use ferrolb_crds::{IPAddressPool, IPAddressPoolStatus};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::allocator::{Allocator, Assignment, Change, ServiceKey};
use crate::model;

/// Kind of object an Event or status write is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Service,
    IPAddressPool,
    L2Advertisement,
    BGPAdvertisement,
    BGPPeer,
    Community,
}

impl Kind {
    /// The kind's name in the API (`kind:`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::IPAddressPool => "IPAddressPool",
            Kind::L2Advertisement => "L2Advertisement",
            Kind::BGPAdvertisement => "BGPAdvertisement",
            Kind::BGPPeer => "BGPPeer",
            Kind::Community => "Community",
        }
    }

    /// The kind's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Service => "v1",
            _ => "ferrolb.io/v1beta1",
        }
    }

    /// The kind named `kind` (as [`ferrolb_crds::validate::Problem::kind`]), if the
    /// controller reports on it.
    pub fn from_api_kind(kind: &str) -> Option<Kind> {
        [
            Kind::Service,
            Kind::IPAddressPool,
            Kind::L2Advertisement,
            Kind::BGPAdvertisement,
            Kind::BGPPeer,
            Kind::Community,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }
}

/// `Normal` or `Warning`, as Kubernetes Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write `status.loadBalancer.ingress` = `ips` (in order) and the annotation
    /// `ferrolb.io/ip-allocated-from-pool: pool`.
    SetServiceStatus {
        key: ServiceKey,
        ips: Vec<IpAddr>,
        pool: String,
    },
    /// Empty `status.loadBalancer` and remove the pool annotation.
    ClearServiceStatus { key: ServiceKey },
    /// Record an Event on an object (`namespace` is the object's own).
    Event {
        kind: Kind,
        namespace: String,
        name: String,
        type_: EventType,
        reason: String,
        message: String,
    },
    /// Replace a pool's status (counts and conditions).
    SetPoolStatus {
        namespace: String,
        name: String,
        status: IPAddressPoolStatus,
    },
}

/// What the engine decided for one Service, for the planner and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub key: ServiceKey,
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
    /// Why the Service has no (or not all its) addresses, as a person can act on.
    pub error: Option<String>,
}

/// Labels of every namespace, by name.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// Settings that change what the engine handles.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Handle only Services of this `spec.loadBalancerClass`; `None`: only Services
    /// without a class.
    pub lb_class: Option<String>,
}

/// What the engine remembers of a Service between calls, so it speaks only on change.
#[derive(Debug, Default)]
struct Seen {
    /// The last error reported in an Event, to avoid repeating it on every pass.
    error: Option<String>,
    /// The last remark (e.g. a missing second family) reported.
    note: Option<String>,
    /// MetalLB annotation keys already hinted about.
    hinted: BTreeSet<String>,
}

/// The controller's state: pools, namespaces, and the allocator with every assignment.
pub struct Engine {
    config: EngineConfig,
    allocator: Allocator,
    /// Every pool object, valid or not, by name: (namespace, parsed ranges if valid).
    pools: BTreeMap<String, PoolEntry>,
    namespaces: NamespaceLabels,
    seen: BTreeMap<ServiceKey, Seen>,
    /// Services whose status names a pool that no longer contains their addresses.
    outside: BTreeMap<ServiceKey, (String, Vec<IpAddr>)>,
    reported: BTreeMap<String, IPAddressPoolStatus>,
    /// The time conditions that change now are stamped with, set by the shell (the
    /// engine reads no clock, so tests are deterministic). `None`: not stamped.
    now: Option<String>,
}

#[derive(Debug)]
struct PoolEntry {
    namespace: String,
    parsed: Option<ParsedPool>,
    problem: Option<Problem>,
    /// `metadata.generation`, for the conditions' `observedGeneration`.
    generation: Option<i64>,
    /// The conditions the object's status shows, so that a restarted controller keeps
    /// their `lastTransitionTime` instead of resetting it.
    observed: Vec<Condition>,
}

/// An [`Action::Event`].
pub(crate) fn event(
    kind: Kind,
    namespace: &str,
    name: &str,
    type_: EventType,
    reason: &str,
    message: impl Into<String>,
) -> Action {
    Action::Event {
        kind,
        namespace: namespace.into(),
        name: name.into(),
        type_,
        reason: reason.into(),
        message: message.into(),
    }
}

fn svc_event(
    key: &ServiceKey,
    type_: EventType,
    reason: &str,
    message: impl Into<String>,
) -> Action {
    event(
        Kind::Service,
        &key.namespace,
        &key.name,
        type_,
        reason,
        message,
    )
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a Service's status and annotation say now.
fn observed(svc: &Service) -> (Vec<IpAddr>, Option<String>) {
    let ips = model::ingress_ips(svc);
    let pool = svc
        .annotations()
        .get(annotations::IP_ALLOCATED_FROM_POOL)
        .cloned();
    (ips, pool)
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            config,
            allocator: Allocator::new(Vec::new()),
            pools: BTreeMap::new(),
            namespaces: NamespaceLabels::new(),
            seen: BTreeMap::new(),
            outside: BTreeMap::new(),
            reported: BTreeMap::new(),
            now: None,
        }
    }

    /// Sets the time at which conditions that change from now on transitioned. The
    /// shell calls this before handing over new inputs; RFC 3339 to the second, as
    /// Kubernetes' `metav1.Time`.
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = Timestamp::from_second(now.as_second())
            .ok()
            .map(|t| t.to_string());
    }

    /// Replaces the set of pools (all IPAddressPools in the FerroLB namespace). Returns
    /// Events for pools that cannot be used (once per distinct problem). After a change
    /// the caller must `resync` every Service (addresses may have left their pool).
    pub fn set_pools(&mut self, pools: &[IPAddressPool]) -> Vec<Action> {
        let check = check_pools(pools);
        let mut actions = Vec::new();
        let mut entries = BTreeMap::new();
        for p in pools {
            let name = p.name_any();
            let namespace = p.namespace().unwrap_or_default();
            let problem = check.problems.iter().find(|x| x.name == name).cloned();
            let before = self.pools.get(&name).and_then(|e| e.problem.as_ref());
            if let Some(pr) = problem
                .as_ref()
                .filter(|pr| before.map(|b| &b.message) != Some(&pr.message))
            {
                actions.push(event(
                    Kind::IPAddressPool,
                    &namespace,
                    &name,
                    EventType::Warning,
                    pr.reason,
                    &pr.message,
                ));
            }
            let parsed = check.valid.get(&name).cloned();
            entries.insert(
                name,
                PoolEntry {
                    namespace,
                    parsed,
                    problem,
                    generation: p.metadata.generation,
                    observed: p
                        .status
                        .as_ref()
                        .map(|s| s.conditions.clone())
                        .unwrap_or_default(),
                },
            );
        }
        self.pools = entries;
        // Dropped assignments need no action here: their Services still show the old
        // addresses, and the resync that follows moves them with a reason.
        self.allocator.set_pools(model::pool_configs(&check, pools));
        actions
    }

    /// Replaces the namespace labels. Returns true when they changed.
    pub fn set_namespaces(&mut self, namespaces: NamespaceLabels) -> bool {
        let changed = namespaces != self.namespaces;
        self.namespaces = namespaces;
        changed
    }

    fn forget(&mut self, key: &ServiceKey, svc: &Service, why: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        let held = self.allocator.release(key).is_some();
        self.outside.remove(key);
        let (ips, pool) = observed(svc);
        if !ips.is_empty() && (held || pool.is_some()) {
            actions.push(Action::ClearServiceStatus { key: key.clone() });
            actions.push(svc_event(
                key,
                EventType::Normal,
                "ClearAssignment",
                format!("{why}: released {}", list(&ips)),
            ));
        } else if pool.is_some() {
            actions.push(Action::ClearServiceStatus { key: key.clone() });
        }
        actions
    }

    /// A Service was added or changed.
    pub fn service(&mut self, svc: &Service) -> (Decision, Vec<Action>) {
        let key = model::service_key(svc);
        let mut decision = Decision {
            key: key.clone(),
            ips: Vec::new(),
            pool: None,
            error: None,
        };
        if !model::is_handled(svc, self.config.lb_class.as_deref()) {
            self.seen.remove(&key);
            let actions = self.forget(
                &key,
                svc,
                "not a LoadBalancer Service of this controller's class",
            );
            return (decision, actions);
        }
        let empty = BTreeMap::new();
        let ns_labels = self
            .namespaces
            .get(&key.namespace)
            .unwrap_or(&empty)
            .clone();
        let request = match model::service_request(svc, &ns_labels) {
            Ok(Some(r)) => r,
            Ok(None) => {
                let actions = self.forget(&key, svc, "the Service has no cluster IP");
                return (decision, actions);
            }
            Err(e) => {
                let msg = e.to_string();
                let mut actions = self.forget(&key, svc, "the Service's request is invalid");
                actions.extend(self.report_error(&key, &msg));
                decision.error = Some(msg);
                return (decision, actions);
            }
        };
        let mut actions = Vec::new();
        let seen = self.seen.entry(key.clone()).or_default();
        for (alias, ours) in &request.aliases {
            if seen.hinted.insert(alias.clone()) {
                actions.push(svc_event(
                    &key,
                    EventType::Normal,
                    "DeprecatedAnnotation",
                    format!("{alias} is read as {ours}; rename it to {ours}"),
                ));
            }
        }
        let (status_ips, status_pool) = observed(svc);
        self.track_outside(&key, &status_ips, status_pool.as_deref());
        match self.allocator.assign(&request.request) {
            Ok(outcome) => {
                let Assignment { pool, ips } = outcome.assignment;
                if status_ips != ips || status_pool.as_deref() != Some(pool.as_str()) {
                    actions.push(Action::SetServiceStatus {
                        key: key.clone(),
                        ips: ips.clone(),
                        pool: pool.clone(),
                    });
                }
                match outcome.change {
                    Change::Unchanged => {}
                    Change::New => actions.push(svc_event(
                        &key,
                        EventType::Normal,
                        "IPAllocated",
                        format!("Assigned IP [{}] from pool {pool}", list(&ips)),
                    )),
                    Change::Moved { from, reason } => {
                        actions.push(svc_event(
                            &key,
                            EventType::Normal,
                            "ClearAssignment",
                            format!("{reason}: released {}", list(&from)),
                        ));
                        actions.push(svc_event(
                            &key,
                            EventType::Normal,
                            "IPAllocated",
                            format!("Assigned IP [{}] from pool {pool}", list(&ips)),
                        ));
                    }
                    Change::Extended => actions.push(svc_event(
                        &key,
                        EventType::Normal,
                        "IPAllocated",
                        format!(
                            "Assigned additional IP, now [{}] from pool {pool}",
                            list(&ips)
                        ),
                    )),
                }
                let seen = self.seen.entry(key.clone()).or_default();
                seen.error = None;
                let note = (!outcome.notes.is_empty()).then(|| outcome.notes.join("; "));
                if note.is_some() && note != seen.note {
                    actions.push(svc_event(
                        &key,
                        EventType::Normal,
                        "AdditionalAssignFailed",
                        note.clone().unwrap_or_default(),
                    ));
                }
                seen.note = note;
                self.outside.remove(&key);
                decision.ips = ips;
                decision.pool = Some(pool);
            }
            Err(e) => {
                let msg = e.to_string();
                // Addresses stranded by a pool edit stay on the Service until a valid
                // replacement exists: taking them away would cut traffic for nothing
                // better. The pool's AddressesInUseOutsidePool condition says so.
                let stranded = !status_ips.is_empty()
                    && status_ips
                        .iter()
                        .all(|ip| self.allocator.pool_of(ip).is_none());
                if !stranded {
                    actions.extend(self.forget(&key, svc, "its addresses no longer satisfy it"));
                }
                actions.extend(self.report_error(&key, &msg));
                decision.error = Some(msg);
            }
        }
        (decision, actions)
    }

    fn report_error(&mut self, key: &ServiceKey, msg: &str) -> Vec<Action> {
        let seen = self.seen.entry(key.clone()).or_default();
        if seen.error.as_deref() == Some(msg) {
            return Vec::new();
        }
        seen.error = Some(msg.to_string());
        vec![svc_event(key, EventType::Warning, "AllocationFailed", msg)]
    }

    /// Notes a Service whose status attributes addresses to a pool that does not
    /// contain them, for that pool's `AddressesInUseOutsidePool` condition.
    fn track_outside(&mut self, key: &ServiceKey, ips: &[IpAddr], pool: Option<&str>) {
        let Some(pool) = pool else { return };
        let Some(parsed) = self.pools.get(pool).and_then(|p| p.parsed.as_ref()) else {
            return;
        };
        let out: Vec<IpAddr> = ips
            .iter()
            .filter(|ip| !parsed.contains(ip))
            .copied()
            .collect();
        if out.is_empty() {
            self.outside.remove(key);
        } else {
            self.outside.insert(key.clone(), (pool.to_string(), out));
        }
    }

    /// A Service was deleted: its addresses return to the pool.
    pub fn service_deleted(&mut self, key: &ServiceKey) -> Vec<Action> {
        self.allocator.release(key);
        self.seen.remove(key);
        self.outside.remove(key);
        self.pool_statuses()
    }

    /// Processes every Service: those that already have addresses first (more
    /// addresses first, as MetalLB), so nothing new can take them, then the rest in the
    /// order given. Services the engine knew that are absent are treated as deleted.
    /// Returns one Decision per handled Service, in processing order, and the actions,
    /// ending with pool status writes.
    pub fn resync(&mut self, services: &[Service]) -> (Vec<Decision>, Vec<Action>) {
        let present: BTreeSet<ServiceKey> = services.iter().map(model::service_key).collect();
        let gone: Vec<ServiceKey> = self
            .seen
            .keys()
            .filter(|k| !present.contains(k))
            .cloned()
            .collect();
        for key in gone {
            self.allocator.release(&key);
            self.seen.remove(&key);
            self.outside.remove(&key);
        }
        let mut order: Vec<&Service> = services.iter().collect();
        order.sort_by_key(|s| std::cmp::Reverse(observed(s).0.len()));
        // Every Service first takes back the addresses its status shows (where they
        // still satisfy it), so a Service that must move cannot land on an address
        // another Service holds but has not been processed yet.
        for svc in &order {
            if !model::is_handled(svc, self.config.lb_class.as_deref()) {
                continue;
            }
            let key = model::service_key(svc);
            let empty = BTreeMap::new();
            let ns = self.namespaces.get(&key.namespace).unwrap_or(&empty);
            if let Ok(Some(r)) = model::service_request(svc, ns) {
                self.allocator.reclaim(&r.request);
            }
        }
        let mut decisions = Vec::new();
        let mut actions = Vec::new();
        for svc in order {
            let handled = model::is_handled(svc, self.config.lb_class.as_deref());
            let (d, a) = self.service(svc);
            actions.extend(a);
            if handled {
                decisions.push(d);
            }
        }
        actions.extend(self.pool_statuses());
        (decisions, actions)
    }

    /// The status every pool should have now. A condition keeps the
    /// `lastTransitionTime` it was last reported with (or, before any report, that the
    /// object shows) while its status stays the same; otherwise it gets the time of
    /// [`Engine::set_now`].
    pub fn pool_status(&self, name: &str) -> Option<IPAddressPoolStatus> {
        let entry = self.pools.get(name)?;
        let stats = self.allocator.pool_stats(name).unwrap_or_default();
        let sat = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
        let mut conditions = Vec::new();
        match &entry.problem {
            None => conditions.push(Condition::new(
                cond::VALID,
                true,
                "Valid",
                "the pool is used for allocation",
            )),
            Some(p) => conditions.push(Condition::new(
                cond::VALID,
                false,
                p.reason,
                p.message.clone(),
            )),
        }
        let overlapping = entry.problem.as_ref().filter(|p| p.reason == "Overlapping");
        conditions.push(match overlapping {
            Some(p) => Condition::new(cond::OVERLAPPING, true, "Overlapping", p.message.clone()),
            None => Condition::new(cond::OVERLAPPING, false, "NoOverlap", ""),
        });
        let outside: Vec<String> = self
            .outside
            .iter()
            .filter(|(_, (p, _))| p == name)
            .map(|(k, (_, ips))| format!("{k} ({})", list(ips)))
            .collect();
        conditions.push(if outside.is_empty() {
            Condition::new(cond::ADDRESSES_IN_USE_OUTSIDE_POOL, false, "AllInPool", "")
        } else {
            Condition::new(
                cond::ADDRESSES_IN_USE_OUTSIDE_POOL,
                true,
                "AddressesLeftPool",
                format!(
                    "services hold addresses this pool no longer contains: {}",
                    outside.join(", ")
                ),
            )
        });
        let before = self
            .reported
            .get(name)
            .map_or(entry.observed.as_slice(), |s| s.conditions.as_slice());
        for c in &mut conditions {
            c.observed_generation = entry.generation;
            c.last_transition_time = before
                .iter()
                .find(|b| b.type_ == c.type_ && b.status == c.status)
                .and_then(|b| b.last_transition_time.clone())
                .or_else(|| self.now.clone());
        }
        Some(IPAddressPoolStatus {
            assigned_ipv4: sat(stats.assigned_v4),
            assigned_ipv6: sat(stats.assigned_v6),
            available_ipv4: sat(stats.available_v4),
            available_ipv6: sat(stats.available_v6),
            conditions,
        })
    }

    /// Pool status writes for pools whose status changed since last reported.
    pub fn pool_statuses(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in names {
            let Some(status) = self.pool_status(&name) else {
                continue;
            };
            if self.reported.get(&name) == Some(&status) {
                continue;
            }
            let namespace = self
                .pools
                .get(&name)
                .map(|e| e.namespace.clone())
                .unwrap_or_default();
            self.reported.insert(name.clone(), status.clone());
            actions.push(Action::SetPoolStatus {
                namespace,
                name,
                status,
            });
        }
        self.reported.retain(|n, _| self.pools.contains_key(n));
        actions
    }

    /// Per pool and family: total addresses and addresses in use, for metrics.
    pub fn pool_usage(&self) -> Vec<PoolUsage> {
        let mut out = Vec::new();
        for (name, entry) in &self.pools {
            let Some(parsed) = &entry.parsed else {
                continue;
            };
            let stats = self.allocator.pool_stats(name).unwrap_or_default();
            for family in parsed.families() {
                let (in_use, available) = match family {
                    Family::V4 => (stats.assigned_v4, stats.available_v4),
                    Family::V6 => (stats.assigned_v6, stats.available_v6),
                };
                out.push(PoolUsage {
                    pool: name.clone(),
                    family,
                    total: in_use.saturating_add(available),
                    in_use,
                });
            }
        }
        out
    }

    /// The allocator, for read-only inspection (planner, tests).
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }
}

/// Address counts of one pool, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    pub pool: String,
    pub family: Family,
    pub total: u128,
    pub in_use: u128,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, addrs: &[&str]) -> IPAddressPool {
        let mut p = IPAddressPool::new(name, ferrolb_crds::IPAddressPoolSpec::new(addrs));
        p.metadata.namespace = Some("ferrolb-system".into());
        p
    }

    fn svc(name: &str, status_ip: Option<&str>, pool_ann: Option<&str>) -> Service {
        let mut yaml =
            format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: app\n");
        if let Some(p) = pool_ann {
            yaml.push_str(&format!(
                "  annotations: {{ferrolb.io/ip-allocated-from-pool: {p}}}\n"
            ));
        }
        yaml.push_str("spec: {type: LoadBalancer, clusterIPs: [10.96.0.1], ports: [{port: 80}]}\n");
        if let Some(ip) = status_ip {
            yaml.push_str(&format!(
                "status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
            ));
        }
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn reasons(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Event { reason, .. } => reason.clone(),
                Action::SetServiceStatus { ips, .. } => format!("status {}", list(ips)),
                Action::ClearServiceStatus { .. } => "clear".into(),
                Action::SetPoolStatus { name, .. } => format!("pool {name}"),
            })
            .collect()
    }

    fn engine(pools: &[IPAddressPool]) -> Engine {
        let mut e = Engine::new(EngineConfig::default());
        e.set_pools(pools);
        e
    }

    #[test]
    fn new_service_gets_status_and_one_event() {
        let mut e = engine(&[pool("p", &["198.51.100.0/30"])]);
        let (d, a) = e.service(&svc("web", None, None));
        assert_eq!(d.ips, vec!["198.51.100.0".parse::<IpAddr>().unwrap()]);
        assert_eq!(reasons(&a), ["status 198.51.100.0", "IPAllocated"]);
        // The API echoes the status back: nothing more to do, nothing more to say.
        let (_, a) = e.service(&svc("web", Some("198.51.100.0"), Some("p")));
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn restart_keeps_addresses_and_writes_nothing() {
        let pools = [pool("p", &["198.51.100.0/30"])];
        let services = [
            svc("b", None, None),
            svc("a", Some("198.51.100.2"), Some("p")),
        ];
        let mut e = engine(&pools);
        let (decisions, actions) = e.resync(&services);
        // `a` is processed first and keeps .2; `b` gets the first free address.
        assert_eq!(decisions[0].key.name, "a");
        assert_eq!(
            decisions[0].ips,
            vec!["198.51.100.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            decisions[1].ips,
            vec!["198.51.100.0".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            reasons(&actions),
            ["status 198.51.100.0", "IPAllocated", "pool p"]
        );
    }

    #[test]
    fn restart_never_lets_a_moving_service_steal() {
        // `a` (sorted first: two addresses) must move off 198.51.100.9, which left the
        // pool; `b` holds .0 in its status. Without the reclaim pass `a` would take .0.
        let pools = [pool("p", &["198.51.100.0/30"])];
        let mut a = svc("a", Some("198.51.100.9"), Some("p"));
        if let Some(lb) = a.status.as_mut().and_then(|s| s.load_balancer.as_mut()) {
            lb.ingress.get_or_insert_default().push(
                k8s_openapi::api::core::v1::LoadBalancerIngress {
                    ip: Some("2001:db8::9".into()),
                    ..Default::default()
                },
            );
        }
        let b = svc("b", Some("198.51.100.0"), Some("p"));
        let mut e = engine(&pools);
        let (decisions, _) = e.resync(&[a, b]);
        let ip = |n: &str| {
            decisions
                .iter()
                .find(|d| d.key.name == n)
                .map(|d| d.ips.clone())
                .unwrap_or_default()
        };
        assert_eq!(ip("b"), vec!["198.51.100.0".parse::<IpAddr>().unwrap()]);
        assert_eq!(ip("a"), vec!["198.51.100.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn failures_are_reported_once_and_clear_stale_status() {
        let mut e = engine(&[pool("p", &["198.51.100.1/32"])]);
        e.service(&svc("first", None, None));
        let (d, a) = e.service(&svc("second", None, None));
        assert!(
            d.error
                .as_deref()
                .unwrap_or_default()
                .contains("198.51.100")
                || d.error.is_some()
        );
        assert_eq!(reasons(&a), ["AllocationFailed"]);
        let (_, a) = e.service(&svc("second", None, None));
        assert!(a.is_empty(), "the same failure is not repeated: {a:?}");
    }

    #[test]
    fn pool_edit_moves_service_with_reason() {
        let mut e = engine(&[pool("p", &["198.51.100.0/30"])]);
        e.service(&svc("web", None, None));
        e.set_pools(&[pool("p", &["198.51.100.8/30"])]);
        let (decisions, actions) = e.resync(&[svc("web", Some("198.51.100.0"), Some("p"))]);
        assert_eq!(
            decisions[0].ips,
            vec!["198.51.100.8".parse::<IpAddr>().unwrap()]
        );
        let r = reasons(&actions);
        assert_eq!(
            &r[..3],
            ["status 198.51.100.8", "ClearAssignment", "IPAllocated"],
            "{r:?}"
        );
        let moved = actions.iter().find_map(|a| match a {
            Action::Event {
                reason, message, ..
            } if reason == "ClearAssignment" => Some(message.clone()),
            _ => None,
        });
        assert!(moved.unwrap_or_default().contains("198.51.100.0"));
    }

    #[test]
    fn invalid_pool_is_reported_and_others_serve() {
        let mut bad = pool("bad", &["198.51.100.0/30"]);
        bad.spec.addresses = vec!["198.51.100.9-198.51.100.1".into()];
        let mut e = Engine::new(EngineConfig::default());
        let a = e.set_pools(&[bad.clone(), pool("good", &["203.0.113.0/30"])]);
        assert_eq!(reasons(&a), ["InvalidAddress"]);
        assert!(
            e.set_pools(&[bad, pool("good", &["203.0.113.0/30"])])
                .is_empty(),
            "reported once"
        );
        let status = e.pool_status("bad").unwrap();
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Valid" && !c.is_true())
        );
        let (d, _) = e.service(&svc("web", None, None));
        assert_eq!(d.pool.as_deref(), Some("good"));
        let good = e.pool_status("good").unwrap();
        assert_eq!((good.assigned_ipv4, good.available_ipv4), (1, 3));
    }

    #[test]
    fn leaving_load_balancer_releases_and_clears() {
        let mut e = engine(&[pool("p", &["198.51.100.0/31"])]);
        e.service(&svc("web", None, None));
        let mut s = svc("web", Some("198.51.100.0"), Some("p"));
        if let Some(spec) = s.spec.as_mut() {
            spec.type_ = Some("ClusterIP".into());
        }
        let (_, a) = e.service(&s);
        assert_eq!(reasons(&a), ["clear", "ClearAssignment"]);
        let (d, _) = e.service(&svc("other", None, None));
        assert_eq!(
            d.ips,
            vec!["198.51.100.0".parse::<IpAddr>().unwrap()],
            "address reused"
        );
    }

    #[test]
    fn metallb_annotation_earns_one_hint() {
        let mut e = engine(&[
            pool("p", &["198.51.100.0/30"]),
            pool("q", &["203.0.113.0/30"]),
        ]);
        let mut s = svc("web", None, None);
        s.metadata.annotations =
            Some([("metallb.io/address-pool".to_string(), "q".to_string())].into());
        let (d, a) = e.service(&s);
        assert_eq!(d.pool.as_deref(), Some("q"));
        assert!(reasons(&a).contains(&"DeprecatedAnnotation".to_string()));
        let (_, a) = e.service(&s);
        assert!(!reasons(&a).contains(&"DeprecatedAnnotation".to_string()));
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    /// (type, status, lastTransitionTime, observedGeneration) of every condition.
    fn times(e: &Engine, pool: &str) -> Vec<(String, String, Option<String>, Option<i64>)> {
        e.pool_status(pool)
            .unwrap()
            .conditions
            .into_iter()
            .map(|c| {
                (
                    c.type_,
                    c.status,
                    c.last_transition_time,
                    c.observed_generation,
                )
            })
            .collect()
    }

    #[test]
    fn conditions_keep_their_transition_time_until_status_changes() {
        const T1: &str = "2024-01-01T00:00:00Z";
        const T2: &str = "2024-01-01T00:01:40Z";
        let mut p = pool("p", &["198.51.100.0/30"]);
        p.metadata.generation = Some(3);
        let mut e = Engine::new(EngineConfig::default());
        // Sub-second precision is dropped, as metav1.Time does.
        e.set_now(
            at(1_704_067_200)
                .checked_add(std::time::Duration::from_millis(250))
                .unwrap(),
        );
        e.set_pools(std::slice::from_ref(&p));
        e.resync(&[]);
        let t1 = Some(T1.to_string());
        assert_eq!(
            times(&e, "p"),
            [
                ("Valid".into(), "True".into(), t1.clone(), Some(3)),
                ("Overlapping".into(), "False".into(), t1.clone(), Some(3)),
                (
                    "AddressesInUseOutsidePool".into(),
                    "False".into(),
                    t1.clone(),
                    Some(3)
                ),
            ]
        );

        // Later, a Service takes an address: the counts change, no condition does.
        e.set_now(at(1_704_067_300));
        let (_, actions) = e.resync(&[svc("web", None, None)]);
        let written = actions.iter().find_map(|a| match a {
            Action::SetPoolStatus { status, .. } => Some(status.clone()),
            _ => None,
        });
        let written = written.expect("the counts changed");
        assert!(
            written
                .conditions
                .iter()
                .all(|c| c.last_transition_time == t1),
            "{written:?}"
        );

        // The pool becomes invalid: Valid flips and gets the new time; the rest keep
        // theirs. The new generation is observed.
        p.spec.addresses = vec!["198.51.100.9-198.51.100.1".into()];
        p.metadata.generation = Some(4);
        e.set_pools(std::slice::from_ref(&p));
        e.resync(&[svc("web", Some("198.51.100.0"), Some("p"))]);
        let t2 = Some(T2.to_string());
        let got = times(&e, "p");
        assert_eq!(
            got[0],
            ("Valid".into(), "False".into(), t2, Some(4)),
            "{got:?}"
        );
        assert_eq!(got[1].2, t1, "{got:?}");
    }

    #[test]
    fn a_restart_keeps_the_transition_times_the_pool_shows() {
        let mut p = pool("p", &["198.51.100.0/30"]);
        let mut valid = Condition::new(cond::VALID, true, "Valid", "x");
        valid.last_transition_time = Some("2020-05-05T05:05:05Z".into());
        // The status shown said Overlapping was True: that changed while we were away.
        let mut overlapping = Condition::new(cond::OVERLAPPING, true, "Overlapping", "x");
        overlapping.last_transition_time = Some("2020-05-05T05:05:05Z".into());
        p.status = Some(IPAddressPoolStatus {
            conditions: vec![valid, overlapping],
            ..Default::default()
        });
        let mut e = Engine::new(EngineConfig::default());
        e.set_now(at(1_704_067_200));
        e.set_pools(&[p]);
        let got = times(&e, "p");
        assert_eq!(got[0].2.as_deref(), Some("2020-05-05T05:05:05Z"));
        assert_eq!(got[1].2.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(got[2].2.as_deref(), Some("2024-01-01T00:00:00Z"));
        // Without a clock (the planner) nothing new is stamped.
        let mut plain = Engine::new(EngineConfig::default());
        plain.set_pools(&[pool("q", &["198.51.100.0/30"])]);
        assert!(times(&plain, "q").iter().all(|c| c.2.is_none()));
    }

    #[test]
    fn addresses_outside_pool_condition() {
        // A Service whose status claims an address pool p does not contain, with every
        // pool full, cannot be moved: the pool says so until it is resolved.
        let mut full = Engine::new(EngineConfig::default());
        full.set_pools(&[pool("p", &["198.51.100.0/32"])]);
        full.service(&svc("fill", None, None));
        let (d, a) = full.service(&svc("stale", Some("198.51.100.7"), Some("p")));
        assert!(d.error.is_some());
        assert_eq!(
            reasons(&a),
            ["AllocationFailed"],
            "the stranded address is not taken away"
        );
        let status = full.pool_status("p").unwrap();
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == "AddressesInUseOutsidePool")
            .unwrap();
        assert!(c.is_true(), "{c:?}");
        assert!(c.message.contains("app/stale"));
    }
}
