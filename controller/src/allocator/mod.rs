//! Address allocation: a pure function of pools and Services, no I/O.
//!
//! [`Allocator`] holds the pools and every assignment made so far, and answers "which
//! addresses does this Service get?" following MetalLB's rules, made deterministic
//! (see `docs/allocation.md`). The shell (Kubernetes, a directory, the planner) builds
//! [`PoolConfig`]s and [`ServiceRequest`]s from API objects and writes the results back.
//!
//! The order of choice for one Service ([`Allocator::assign`]):
//!
//! 1. what it has (the in-memory assignment, or else `current`, its status addresses
//!    after a restart), while that still satisfies everything it asks: same requested
//!    IPs, same pool annotation, its families, all addresses in one pool that admits it
//!    (`serviceAllocation`; `autoAssign` does not matter here) and hands them out
//!    (avoidBuggyIPs), and the sharing rules. A PreferDualStack Service with one family
//!    gets the other added from the same pool when free ([`Change::Extended`]);
//! 2. else the requested IPs: one pool holding them all that admits the Service
//!    (`autoAssign: false` pools too); with a pool annotation, that pool;
//! 3. else the annotated pool (any `autoAssign`, still `serviceAllocation`);
//! 4. else the `autoAssign` pools whose `serviceAllocation` admits the Service, by
//!    priority (lower first, 0 last) then name; then the `autoAssign` pools without
//!    `serviceAllocation`, by name.
//!
//! Within a pool: entries in the order listed, addresses ascending, .0/.255 skipped
//! under avoidBuggyIPs; a sharing Service first joins a compatible address of the pool
//! already in use. Automatic choices list IPv4 first; requested IPs keep their order.
//!
//! Costs: `assign` and `release` are O(log n) in the number of addresses in use (plus
//! the pools skipped because they are full or do not admit the Service, and, for a
//! sharing Service, the addresses already carrying its sharing key); memory grows with
//! what is assigned, never with the size of the pools, so an IPv6 /64 costs nothing
//! until used. `set_pools` is O(n log n).
//!
//! Submodules: `free` (free intervals of one pool entry), `pool` (pools, their order,
//! `serviceAllocation`), `sharing` (who uses each address, the sharing rules), `choose`
//! (the order of choice, start-up reclaim).

mod choose;
mod free;
mod pool;
mod sharing;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_crds::addresses::{AddrRange, Family, ip_to_u128, u128_to_ip};
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
    PoolMismatch {
        ip: IpAddr,
        pool: String,
        annotated: String,
    },
    #[error("{ip} is in use by {by}")]
    InUse { ip: IpAddr, by: String },
    #[error("port {port} is already in use on {ip} by {by}")]
    PortInUse {
        ip: IpAddr,
        port: String,
        by: String,
    },
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

/// Size of the allocator's state, for tests, benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Services holding addresses.
    pub services: usize,
    /// Distinct addresses in use.
    pub addresses_in_use: usize,
    /// Free intervals over all pool entries (a fresh entry is one interval).
    pub free_intervals: usize,
}

/// An address as the allocator's maps key it: family first, so IPv4 and IPv6 never
/// mix, then the address as an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Addr {
    family: Family,
    n: u128,
}

impl Addr {
    const MIN: Addr = Addr {
        family: Family::V4,
        n: 0,
    };

    fn of(ip: IpAddr) -> Addr {
        Addr {
            family: Family::of(&ip),
            n: ip_to_u128(ip),
        }
    }

    fn ip(self) -> IpAddr {
        u128_to_ip(self.family, self.n)
    }
}

/// Pools, and every assignment made so far. See the module documentation for the
/// rules and costs.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    /// Sorted by name.
    pools: Vec<pool::Pool>,
    by_name: HashMap<String, usize>,
    /// First address of each piece → the (pool, entry) owning it.
    index: BTreeMap<Addr, pool::Piece>,
    /// `autoAssign` pools with a `serviceAllocation`, by priority then name.
    by_priority: Vec<usize>,
    /// `autoAssign` pools without `serviceAllocation`, by name.
    fallback: Vec<usize>,
    in_use: BTreeMap<Addr, sharing::IpUse>,
    held: HashMap<sharing::Key, sharing::Held>,
    shared: sharing::SharedIndex,
    /// Latest labels seen per namespace with assigned Services.
    namespace_labels: HashMap<String, BTreeMap<String, String>>,
}

impl Allocator {
    pub fn new(pools: Vec<PoolConfig>) -> Allocator {
        let mut a = Allocator::default();
        a.set_pools(pools);
        a
    }

    /// Replaces the pools. Assignments whose addresses are still all in one pool that
    /// admits the Service are kept (only their pool name changes, after a rename or a
    /// split); the others are dropped and returned: assign those Services again (with
    /// `current` = their status addresses), which moves them and says why. Pools with
    /// the same name: the first one counts.
    pub fn set_pools(&mut self, pools: Vec<PoolConfig>) -> Vec<(ServiceKey, Assignment)> {
        let (new_pools, index) = pool::build(pools);
        let (by_priority, fallback) = pool::auto_orders(&new_pools);
        self.by_name = new_pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name().to_owned(), i))
            .collect();
        self.pools = new_pools;
        self.index = index;
        self.by_priority = by_priority;
        self.fallback = fallback;
        self.in_use.clear();
        self.shared.clear();

        let capacity = self.held.len();
        let old = std::mem::replace(&mut self.held, HashMap::with_capacity(capacity));
        let mut dropped = Vec::new();
        for (key, mut held) in old {
            match self.still_fits(&key, &held) {
                Some(p) => {
                    if held.assignment.pool != self.pools[p].name() {
                        held.assignment.pool = self.pools[p].name().to_owned();
                    }
                    self.attach_with(&key, &held, false);
                    self.held.insert(key, held);
                }
                None => dropped.push(((*key).clone(), held.assignment)),
            }
        }
        pool::fill_free(&mut self.pools, &self.index, &self.in_use);
        dropped.sort_by(|a, b| a.0.cmp(&b.0));
        let namespaces: HashSet<&str> = self.held.keys().map(|k| k.namespace.as_str()).collect();
        self.namespace_labels
            .retain(|ns, _| namespaces.contains(ns.as_str()));
        dropped
    }

    /// Decides the addresses of one Service and records them; see the module
    /// documentation for the order of choice. On success the Service's previous
    /// addresses are let go (assigning the same thing twice changes nothing); on error
    /// nothing changes, the Service keeps what it held: call [`Self::release`] if it
    /// must lose it.
    pub fn assign(&mut self, req: &ServiceRequest) -> Result<Outcome, AllocError> {
        self.assign_one(req)
    }

    /// Assigns many Services at once, as after a (re)start: first every Service takes
    /// back the addresses of its `current` status that still satisfy it (most
    /// addresses first, then by key: of two statuses claiming one address, the smaller
    /// key keeps it), so no new allocation can take an address another Service already
    /// has; then the others are assigned as by [`Self::assign`], by key. The result is
    /// in input order and does not depend on it.
    pub fn assign_all<'a>(
        &mut self,
        reqs: impl IntoIterator<Item = &'a ServiceRequest>,
    ) -> Vec<(ServiceKey, Result<Outcome, AllocError>)> {
        let reqs: Vec<&ServiceRequest> = reqs.into_iter().collect();
        self.assign_batch(&reqs)
    }

    /// Start-up building block, for callers that assign one Service at a time: takes
    /// back `req.current` (its status addresses) if they still satisfy the Service as
    /// they are, and returns whether it did. Call it for every Service before the
    /// first [`Self::assign`], so that no new or moved Service can take an address
    /// another Service already has; `assign` then reports reclaimed Services as
    /// Unchanged (or Extended). [`Self::assign_all`] does both steps.
    pub fn reclaim(&mut self, req: &ServiceRequest) -> bool {
        self.reclaim_one(req)
    }

    /// Lets go of a Service's addresses (deleted, or no longer a LoadBalancer).
    pub fn release(&mut self, key: &ServiceKey) -> Option<Assignment> {
        let (_, held) = self.held.remove_entry(key)?;
        self.detach(key, &held);
        Some(held.assignment)
    }

    pub fn assignment(&self, key: &ServiceKey) -> Option<&Assignment> {
        self.held.get(key).map(|h| &h.assignment)
    }

    /// Every assignment, in no particular order.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> {
        self.held.iter().map(|(k, h)| (&**k, &h.assignment))
    }

    /// The pools, by name.
    pub fn pools(&self) -> impl Iterator<Item = &PoolConfig> {
        self.pools.iter().map(|p| &p.cfg)
    }

    /// Assigned and available counts; available leaves out .0/.255 under avoidBuggyIPs
    /// and saturates at `u128::MAX`.
    pub fn pool_stats(&self, pool: &str) -> Option<PoolStats> {
        let p = self.pools.get(*self.by_name.get(pool)?)?;
        Some(PoolStats {
            assigned_v4: p.assigned[0],
            assigned_v6: p.assigned[1],
            available_v4: p.usable[0].saturating_sub(p.assigned[0]),
            available_v6: p.usable[1].saturating_sub(p.assigned[1]),
        })
    }

    /// The pool whose addresses include `ip` (even a .0/.255 one that the pool does not
    /// hand out under avoidBuggyIPs).
    pub fn pool_of(&self, ip: &IpAddr) -> Option<&str> {
        let (p, _) = self.locate(Addr::of(*ip))?;
        self.pools.get(p).map(|p| p.name())
    }

    /// The Services holding `ip`.
    pub fn users_of(&self, ip: &IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.users(ip)
    }

    pub fn footprint(&self) -> Footprint {
        Footprint {
            services: self.held.len(),
            addresses_in_use: self.in_use.len(),
            free_intervals: self.pools.iter().map(|p| p.free_intervals()).sum(),
        }
    }
}
