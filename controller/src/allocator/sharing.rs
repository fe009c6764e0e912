//! Who uses each address, and MetalLB's sharing rules.
//!
//! Two Services may hold one address only when both carry the same non-empty
//! allow-shared-ip key, have the same backend key (pod selector under
//! `externalTrafficPolicy: Local`, empty under Cluster), and expose no common
//! (protocol, port). This module keeps the per-address record those rules are checked
//! against, the per-Service record needed to undo a use, and an index of shareable
//! addresses by sharing key so a sharing Service finds a compatible address already in
//! use without scanning the pool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_crds::addresses::Family;

use super::pool::fam_idx;
use super::{Addr, AllocError, Allocator, Assignment, Port, ServiceKey, ServiceRequest};

/// A Service's key, shared by every record that mentions the Service so that holding
/// an address costs a pointer, not two strings.
pub(super) type Key = Arc<ServiceKey>;

/// The record of one address in use.
#[derive(Clone, Debug)]
pub(super) struct IpUse {
    pub(super) pool: u32,
    pub(super) entry: u32,
    /// Most addresses have one user; more only on shareable ones.
    first: Key,
    others: Vec<Key>,
    /// Set when the address is shareable, i.e. its users carry a sharing key.
    shared: Option<Box<SharedUse>>,
}

#[derive(Clone, Debug)]
struct SharedUse {
    key: String,
    backend_key: String,
    /// Which user exposes each (protocol, port).
    ports: BTreeMap<Port, Key>,
}

impl IpUse {
    pub(super) fn users(&self) -> impl Iterator<Item = &ServiceKey> {
        std::iter::once(&*self.first).chain(self.others.iter().map(|k| &**k))
    }
}

/// A sharing Service's terms: its allow-shared-ip key, backend key and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Terms {
    pub(super) key: String,
    pub(super) backend_key: String,
    pub(super) ports: Vec<Port>,
}

/// What the allocator remembers of a Service that holds addresses: enough to undo
/// its use of them, and to re-check `serviceAllocation` when the pools change.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub(super) assignment: Assignment,
    /// Only for sharing Services: elsewhere ports and backend key never matter.
    pub(super) terms: Option<Box<Terms>>,
    /// The Service's labels, compact (a `BTreeMap` node costs ~0.5 KiB even for one
    /// label, and every assigned Service keeps these).
    pub(super) labels: Box<[(String, String)]>,
}

/// The request's sharing key, if it allows sharing at all.
pub(super) fn sharing_key(req: &ServiceRequest) -> Option<&str> {
    req.sharing_key.as_deref().filter(|k| !k.is_empty())
}

impl Held {
    /// The record for `req`; `prev` is what the Service held before, whose labels are
    /// reused when unchanged (the common case on every reconcile).
    pub(super) fn new(req: &ServiceRequest, assignment: Assignment, prev: Option<Held>) -> Held {
        let labels = match prev {
            Some(p) if p.labels.iter().map(|(k, v)| (k, v)).eq(req.labels.iter()) => p.labels,
            _ => req
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        Held {
            assignment,
            terms: sharing_key(req).map(|k| {
                Box::new(Terms {
                    key: k.to_owned(),
                    backend_key: req.backend_key.clone(),
                    ports: req.ports.clone(),
                })
            }),
            labels,
        }
    }

    pub(super) fn labels_map(&self) -> BTreeMap<String, String> {
        self.labels.iter().cloned().collect()
    }
}

/// Why `req` may not join the users of an address, if it may not.
enum Refusal<'a> {
    NoKey(&'a ServiceKey),
    TheyDoNotShare(&'a ServiceKey),
    OtherKey(&'a ServiceKey, &'a str),
    OtherBackend(&'a ServiceKey),
    Port(&'a Port, &'a ServiceKey),
}

fn refusal<'a>(u: &'a IpUse, req: &'a ServiceRequest) -> Option<Refusal<'a>> {
    let other = u.users().find(|k| **k != req.key)?;
    let Some(mine) = sharing_key(req) else {
        return Some(Refusal::NoKey(other));
    };
    let Some(shared) = u.shared.as_deref() else {
        return Some(Refusal::TheyDoNotShare(other));
    };
    if shared.key != mine {
        return Some(Refusal::OtherKey(other, &shared.key));
    }
    if shared.backend_key != req.backend_key {
        return Some(Refusal::OtherBackend(other));
    }
    req.ports
        .iter()
        .find_map(|p| {
            shared
                .ports
                .get_key_value(p)
                .filter(|(_, owner)| ***owner != req.key)
        })
        .map(|(p, owner)| Refusal::Port(p, owner))
}

impl Allocator {
    /// The (pool, entry) owning an address, in O(log pieces).
    pub(super) fn locate(&self, a: Addr) -> Option<(usize, u32)> {
        let (start, piece) = self.index.range(..=a).next_back()?;
        (start.family == a.family && piece.last >= a.n)
            .then_some((piece.pool as usize, piece.entry))
    }

    /// Whether `req` may use `a` as far as other users are concerned.
    pub(super) fn can_share(&self, a: Addr, req: &ServiceRequest) -> bool {
        self.in_use
            .get(&a)
            .is_none_or(|u| refusal(u, req).is_none())
    }

    /// Like [`Self::can_share`], with the error a person can act on.
    pub(super) fn check_share(&self, a: Addr, req: &ServiceRequest) -> Result<(), AllocError> {
        let Some(u) = self.in_use.get(&a) else {
            return Ok(());
        };
        let ip = a.ip();
        let in_use = |by: String| AllocError::InUse { ip, by };
        match refusal(u, req) {
            None => Ok(()),
            Some(Refusal::NoKey(other)) => Err(in_use(format!(
                "{other} (set the same allow-shared-ip key on both Services to share it)"
            ))),
            Some(Refusal::TheyDoNotShare(other)) => {
                Err(in_use(format!("{other}, which does not allow sharing")))
            }
            Some(Refusal::OtherKey(other, theirs)) => Err(in_use(format!(
                "{other}, which has allow-shared-ip key {theirs:?}"
            ))),
            Some(Refusal::OtherBackend(other)) => Err(in_use(format!(
                "{other}, which selects other pods (externalTrafficPolicy: Local Services share only with an identical selector, and not with Cluster ones)"
            ))),
            Some(Refusal::Port(p, owner)) => Err(AllocError::PortInUse {
                ip,
                port: format!("{}/{}", p.protocol, p.port),
                by: owner.to_string(),
            }),
        }
    }

    /// Records `key` as a user of the addresses of `held`. The caller has checked the
    /// sharing rules; addresses outside every pool cannot be recorded and are skipped
    /// (nothing could be handed out twice through them).
    pub(super) fn attach(&mut self, key: &Key, held: &Held) {
        self.attach_with(key, held, true);
    }

    /// [`Self::attach`]; `take_free: false` leaves the free sets alone, for a rebuild
    /// that derives them from the addresses in use afterwards.
    pub(super) fn attach_with(&mut self, key: &Key, held: &Held, take_free: bool) {
        for ip in &held.assignment.ips {
            let a = Addr::of(*ip);
            if let Some(u) = self.in_use.get_mut(&a) {
                if u.users().all(|k| k != &**key) {
                    u.others.push(key.clone());
                }
                if let (Some(shared), Some(terms)) =
                    (u.shared.as_deref_mut(), held.terms.as_deref())
                {
                    for p in &terms.ports {
                        shared.ports.insert(p.clone(), key.clone());
                    }
                }
                continue;
            }
            let Some((pool, entry)) = self.locate(a) else {
                continue;
            };
            if let Some(p) = self.pools.get_mut(pool) {
                if take_free {
                    p.take(entry, a.n);
                }
                p.assigned[fam_idx(a.family)] += 1;
            }
            let shared = held.terms.as_deref().map(|t| {
                self.shared
                    .entry(t.key.clone())
                    .or_default()
                    .insert((pool as u32, entry, a));
                Box::new(SharedUse {
                    key: t.key.clone(),
                    backend_key: t.backend_key.clone(),
                    ports: t.ports.iter().map(|p| (p.clone(), key.clone())).collect(),
                })
            });
            self.in_use.insert(
                a,
                IpUse {
                    pool: pool as u32,
                    entry,
                    first: key.clone(),
                    others: Vec::new(),
                    shared,
                },
            );
        }
    }

    /// Undoes [`Self::attach`]; an address nobody uses any more becomes free again.
    pub(super) fn detach(&mut self, key: &ServiceKey, held: &Held) {
        for ip in &held.assignment.ips {
            let a = Addr::of(*ip);
            let Some(u) = self.in_use.get_mut(&a) else {
                continue;
            };
            if let Some(shared) = u.shared.as_deref_mut() {
                shared.ports.retain(|_, k| **k != *key);
            }
            u.others.retain(|k| **k != *key);
            if *u.first == *key {
                match u.others.pop() {
                    Some(next) => u.first = next,
                    None => self.release_addr(a),
                }
            }
        }
    }

    /// Forgets an address nobody uses any more: it becomes free again.
    fn release_addr(&mut self, a: Addr) {
        let Some(u) = self.in_use.remove(&a) else {
            return;
        };
        if let Some(p) = self.pools.get_mut(u.pool as usize) {
            p.give(u.entry, a.n);
            let count = &mut p.assigned[fam_idx(a.family)];
            *count = count.saturating_sub(1);
        }
        if let Some(shared) = &u.shared
            && let Some(set) = self.shared.get_mut(&shared.key)
        {
            set.remove(&(u.pool, u.entry, a));
            if set.is_empty() {
                self.shared.remove(&shared.key);
            }
        }
    }

    /// The first address of family `f` in pool `p` that `req` may take: for a sharing
    /// Service a compatible address already in use (pool order), else the first free
    /// one. Takes nothing.
    pub(super) fn pick(&mut self, p: usize, f: Family, req: &ServiceRequest) -> Option<Addr> {
        if let Some(k) = sharing_key(req)
            && let Some(set) = self.shared.get(k)
        {
            let lo = (p as u32, 0, Addr::MIN);
            let hi = (p as u32 + 1, 0, Addr::MIN);
            let found = set
                .range(lo..hi)
                .map(|&(_, _, a)| a)
                .find(|&a| a.family == f && self.can_share(a, req));
            if found.is_some() {
                return found;
            }
        }
        let n = self.pools.get_mut(p)?.first_free(f)?;
        Some(Addr { family: f, n })
    }

    /// Users of an address (none when free).
    pub(super) fn users(&self, ip: &IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.in_use
            .get(&Addr::of(*ip))
            .into_iter()
            .flat_map(IpUse::users)
    }
}

/// Shareable addresses by sharing key, each as (pool, entry, address) so one pool's
/// addresses come out in pool order.
pub(super) type SharedIndex = std::collections::HashMap<String, BTreeSet<(u32, u32, Addr)>>;
