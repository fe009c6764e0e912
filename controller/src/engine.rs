//! The controller's decisions over everything it sees, as a pure state machine: feed
//! it pools, namespaces and Services, get back [`Action`]s (status to write, Events to
//! record). The Kubernetes shell, the directory source and the planner all drive this
//! one engine, so they cannot disagree.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_crds::IPAddressPoolStatus;

use crate::allocator::ServiceKey;

/// Kind of object an Event or status write is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Service,
    IPAddressPool,
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
    SetServiceStatus { key: ServiceKey, ips: Vec<IpAddr>, pool: String },
    /// Empty `status.loadBalancer` and remove the pool annotation.
    ClearServiceStatus { key: ServiceKey },
    /// Record an Event on an object (`namespace` is the object's own).
    Event { kind: Kind, namespace: String, name: String, type_: EventType, reason: String, message: String },
    /// Replace a pool's status (counts and conditions).
    SetPoolStatus { namespace: String, name: String, status: IPAddressPoolStatus },
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

/// The controller's state: pools, namespaces, and the allocator with every assignment.
pub struct Engine {
    config: EngineConfig,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine { config }
    }

    /// Replaces the set of pools (all IPAddressPools in the FerroLB namespace). Returns
    /// pool status writes and Events for pools that cannot be used. After a change the
    /// caller must `resync` every Service (addresses may have left their pool).
    pub fn set_pools(&mut self, pools: &[ferrolb_crds::IPAddressPool]) -> Vec<Action> {
        let _ = (pools, &self.config);
        unimplemented!("engine in progress")
    }

    /// Replaces the namespace labels. Returns true when they changed in a way that
    /// needs a `resync`.
    pub fn set_namespaces(&mut self, namespaces: NamespaceLabels) -> bool {
        let _ = namespaces;
        unimplemented!("engine in progress")
    }

    /// A Service was added or changed.
    pub fn service(&mut self, svc: &k8s_openapi::api::core::v1::Service) -> (Decision, Vec<Action>) {
        let _ = svc;
        unimplemented!("engine in progress")
    }

    /// A Service was deleted: its addresses return to the pool.
    pub fn service_deleted(&mut self, key: &ServiceKey) -> Vec<Action> {
        let _ = key;
        unimplemented!("engine in progress")
    }

    /// Processes every Service: those that already have addresses first (so nothing new
    /// can take them), then the rest in the order given. Returns one Decision per
    /// handled Service, in processing order, and the actions. Ends with pool statuses.
    pub fn resync(&mut self, services: &[k8s_openapi::api::core::v1::Service]) -> (Vec<Decision>, Vec<Action>) {
        let _ = services;
        unimplemented!("engine in progress")
    }

    /// Pool status writes for pools whose status changed since last reported.
    pub fn pool_statuses(&mut self) -> Vec<Action> {
        unimplemented!("engine in progress")
    }

    /// Per pool and family: (total addresses, in use), for metrics.
    pub fn pool_usage(&self) -> Vec<PoolUsage> {
        unimplemented!("engine in progress")
    }
}

/// Address counts of one pool, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    pub pool: String,
    pub family: ferrolb_crds::addresses::Family,
    pub total: u128,
    pub in_use: u128,
}
