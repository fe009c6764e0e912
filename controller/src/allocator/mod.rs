//! Address allocation: a pure function of pools and Services, no I/O.
//!
//! [`Allocator`] holds the pools and every assignment made so far, and answers "which
//! addresses does this Service get?" following MetalLB's rules, made deterministic
//! (see `docs/allocation.md`). The shell (Kubernetes, a directory, the planner) builds
//! [`PoolConfig`]s and [`ServiceRequest`]s from API objects and writes the results back.
//!
//! INTERFACE CONTRACT (implementation in progress in this module's submodules):
//! everything below is the public surface other modules code against.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_crds::addresses::{AddrRange, Family};
use ferrolb_crds::selector::Selectors;

/// A valid pool, ready for allocation (invalid pools never reach the allocator: the
/// shell reports them on the pool and leaves them out).
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub name: String,
    /// Address entries in the order the pool lists them.
    pub ranges: Vec<AddrRange>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`, if set.
    pub allocation: Option<PoolAllocation>,
}

/// A pool's `serviceAllocation`, with selectors parsed.
#[derive(Clone, Debug, Default)]
pub struct PoolAllocation {
    /// Lower first; 0 means "after every positive priority".
    pub priority: i32,
    pub namespaces: BTreeSet<String>,
    pub namespace_selectors: Selectors,
    pub service_selectors: Selectors,
}

/// Identifies a Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Which families a Service wants, from `spec.clusterIPs`, `ipFamilies`, `ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Families {
    /// One address of this family.
    Single(Family),
    /// Both families if one pool can give both, else one (primary first); the missing
    /// family is added later from the same pool when it becomes available.
    PreferDual { primary: Family },
    /// One address of each family, from one pool.
    RequireDual,
}

/// A (protocol, port) a Service exposes; two Services sharing an IP must not collide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// `TCP`, `UDP` or `SCTP`, as in the Service.
    pub protocol: String,
    pub port: u16,
}

/// Everything the allocator needs to know about one Service.
#[derive(Clone, Debug)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    pub labels: BTreeMap<String, String>,
    /// Labels of the Service's namespace (for `serviceAllocation.namespaceSelectors`).
    pub namespace_labels: BTreeMap<String, String>,
    pub families: Families,
    /// `spec.loadBalancerIP` or the loadBalancerIPs annotation (the shell rejects both
    /// set, and malformed values, before building the request).
    pub requested_ips: Vec<IpAddr>,
    /// The address-pool annotation.
    pub pool: Option<String>,
    /// The allow-shared-ip annotation; `None` or empty means "do not share".
    pub sharing_key: Option<String>,
    /// The pod selector as `k=v,k2=v2` (sorted) under `externalTrafficPolicy: Local`,
    /// empty under Cluster.
    pub backend_key: String,
    pub ports: Vec<Port>,
    /// The addresses in `status.loadBalancer.ingress` now (reclaimed at start-up).
    pub current: Vec<IpAddr>,
}

/// Where a Service's addresses come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub pool: String,
    /// IPv4 first for automatic allocation; request order for requested IPs.
    pub ips: Vec<IpAddr>,
}

/// What `assign` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The Service keeps the addresses it had.
    Unchanged,
    /// The Service had no address and got one.
    New,
    /// The Service had addresses that no longer satisfy it and got others; `reason` says
    /// why, for an Event.
    Moved { from: Vec<IpAddr>, reason: String },
    /// A dual-stack Service kept its address and got the missing family too.
    Extended,
}

/// The result of a successful `assign`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub assignment: Assignment,
    pub change: Change,
    /// Non-fatal remarks, e.g. a PreferDualStack Service that could not get its second
    /// family yet.
    pub notes: Vec<String>,
}

/// Why a Service gets no address; the message says what a person can do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("no pool matches {0}: add a pool, or a serviceAllocation that admits it")]
    NoMatchingPool(String),
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    #[error("pool {0:?} has no free {1} address")]
    PoolFull(String, String),
    #[error("no pool has a free {0} address for this service")]
    NoFreeAddress(String),
    #[error("{ip} is not in any pool")]
    NotInAnyPool { ip: IpAddr },
    #[error("pool {pool:?} does not admit this service (serviceAllocation)")]
    PoolNotAllowed { pool: String },
    #[error("requested {ip} is in pool {pool:?}, not in the annotated pool {annotated:?}")]
    PoolMismatch { ip: IpAddr, pool: String, annotated: String },
    #[error("{ip} is in use by {by}")]
    InUse { ip: IpAddr, by: String },
    #[error("port {port} is already in use on {ip} by {by}")]
    PortInUse { ip: IpAddr, port: String, by: String },
    #[error("{0}")]
    BadRequest(String),
}

/// Address counts of one pool (distinct addresses; shared ones count once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub assigned_v4: u128,
    pub assigned_v6: u128,
    pub available_v4: u128,
    pub available_v6: u128,
}
