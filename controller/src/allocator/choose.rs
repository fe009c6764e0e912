//! The order of choice for one Service: keep what it has while that still satisfies
//! it; else the requested addresses; else the pool annotation; else automatic
//! allocation over the pools that admit it. Plus the batch form used at start-up,
//! which reclaims every Service's addresses before handing out any new one.
//!
//! `assign` first lets go of the Service's own addresses, decides as if it held
//! nothing (so its own addresses count as free or shareable for it), then records the
//! result, or puts the old addresses back on error. Each step is O(log n), so a
//! failed attempt leaves the state exactly as it was at the same cost.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_crds::addresses::{Family, is_buggy};

use super::pool::{admits, other_family};
use super::sharing::{Held, Key};
use super::{
    Addr, AllocError, Allocator, Assignment, Change, Families, Outcome, ServiceKey, ServiceRequest,
};

/// Addresses a Service already has that still satisfy it.
struct Keep {
    pool: usize,
    ips: Vec<Addr>,
    /// A dual-stack Service became single-stack: the other family is let go.
    narrowed: Option<String>,
    /// The family to add, and whether the Service requires it.
    extend: Option<(Family, bool)>,
}

struct Decision {
    pool: usize,
    ips: Vec<Addr>,
    change: Change,
    notes: Vec<String>,
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Checks the shape of the requested addresses against the Service's families.
fn validate_request(req: &ServiceRequest) -> Result<(), AllocError> {
    let r = &req.requested_ips;
    if r.is_empty() {
        return Ok(());
    }
    let bad = |m: String| Err(AllocError::BadRequest(m));
    if r.len() > 2 {
        return bad(format!(
            "at most two addresses may be requested, one IPv4 and one IPv6; got {}",
            list(r)
        ));
    }
    if r.len() == 2 && Family::of(&r[0]) == Family::of(&r[1]) {
        return bad(format!(
            "requested {} are both {}; request at most one address per family",
            list(r),
            Family::of(&r[0])
        ));
    }
    match req.families {
        Families::Single(f) if r.len() != 1 || Family::of(&r[0]) != f => bad(format!(
            "the Service is single-stack {f}, so request exactly one {f} address (got {})",
            list(r)
        )),
        Families::RequireDual if r.len() != 2 => bad(format!(
            "the Service requires dual-stack, so request one IPv4 and one IPv6 address (got {})",
            list(r)
        )),
        _ => Ok(()),
    }
}

fn wanted(families: Families) -> String {
    match families {
        Families::Single(f) => f.to_string(),
        Families::RequireDual => "IPv4 and IPv6".into(),
        Families::PreferDual { .. } => "IPv4 or IPv6".into(),
    }
}

impl Allocator {
    fn pool_admits(&self, p: usize, req: &ServiceRequest) -> bool {
        self.pools.get(p).is_some_and(|pool| {
            admits(
                pool.cfg.allocation.as_ref(),
                &req.key.namespace,
                &req.namespace_labels,
                &req.labels,
            )
        })
    }

    fn pool_name(&self, p: usize) -> &str {
        self.pools.get(p).map_or("", |pool| pool.name())
    }

    /// Why the Service of a PreferDualStack request has one family only.
    fn single_note(&self, p: usize, missing: Family) -> String {
        let name = self.pool_name(p);
        if self
            .pools
            .get(p)
            .is_some_and(|pool| pool.has_family(missing))
        {
            format!(
                "no {missing} address yet: pool {name:?} has none free; it is added from that pool once one frees up"
            )
        } else {
            format!("no {missing} address: pool {name:?} has no {missing} addresses")
        }
    }

    pub(super) fn assign_one(&mut self, req: &ServiceRequest) -> Result<Outcome, AllocError> {
        validate_request(req)?;
        let prev = self.held.remove_entry(&req.key);
        if let Some((k, h)) = &prev {
            self.detach(k, h);
        }
        match self.decide(req, prev.as_ref().map(|(_, h)| h)) {
            Ok(d) => {
                let assignment = Assignment {
                    pool: self.pool_name(d.pool).to_owned(),
                    ips: d.ips.iter().map(|a| a.ip()).collect(),
                };
                self.record(req, assignment.clone(), prev);
                Ok(Outcome {
                    assignment,
                    change: d.change,
                    notes: d.notes,
                })
            }
            Err(e) => {
                if let Some((k, h)) = prev {
                    self.attach(&k, &h);
                    self.held.insert(k, h);
                }
                Err(e)
            }
        }
    }

    fn record(&mut self, req: &ServiceRequest, assignment: Assignment, prev: Option<(Key, Held)>) {
        let (key, prev) = match prev {
            Some((k, h)) => (k, Some(h)),
            None => (Arc::new(req.key.clone()), None),
        };
        let held = Held::new(req, assignment, prev);
        self.attach(&key, &held);
        self.held.insert(key, held);
        self.remember_namespace(req);
    }

    fn decide(
        &mut self,
        req: &ServiceRequest,
        prev: Option<&Held>,
    ) -> Result<Decision, AllocError> {
        let candidate = match prev {
            Some(h) => Some(h.assignment.ips.clone()),
            None if !req.current.is_empty() => Some(req.current.clone()),
            None => None,
        };
        let mut moved = None;
        if let Some(cand) = candidate {
            let kept = self
                .check_keep(req, &cand)
                .and_then(|k| self.finish_keep(req, k, &cand));
            match kept {
                Ok(d) => return Ok(d),
                Err(reason) => moved = Some((cand, reason)),
            }
        }
        let (pool, ips, notes) = self.fresh(req)?;
        let change = match moved {
            Some((from, reason)) => Change::Moved { from, reason },
            None => Change::New,
        };
        Ok(Decision {
            pool,
            ips,
            change,
            notes,
        })
    }

    /// Whether addresses a Service has (in memory, or in its status after a restart)
    /// still satisfy everything it asks; the error is the reason it must move.
    fn check_keep(&self, req: &ServiceRequest, cand: &[IpAddr]) -> Result<Keep, String> {
        if cand.len() > 2 || (cand.len() == 2 && Family::of(&cand[0]) == Family::of(&cand[1])) {
            return Err(format!("{} is not one address per family", list(cand)));
        }
        let requested = &req.requested_ips;
        if !requested.is_empty() && !same_set(requested, cand) {
            let what = if requested.len() == 1 { "IP" } else { "IPs" };
            return Err(format!(
                "the requested {what} changed to {}",
                list(requested)
            ));
        }
        // Requested addresses keep the request's order.
        let mut ips: Vec<IpAddr> = if requested.is_empty() {
            cand.to_vec()
        } else {
            requested.clone()
        };
        let mut narrowed = None;
        let mut extend = None;
        match req.families {
            Families::Single(f) => {
                if !ips.iter().any(|ip| Family::of(ip) == f) {
                    return Err(format!("the Service is now single-stack {f}"));
                }
                if ips.len() == 2 {
                    ips.retain(|ip| Family::of(ip) == f);
                    narrowed = Some(format!("the Service is now single-stack {f}"));
                }
            }
            Families::RequireDual if ips.len() == 1 => {
                extend = Some((other_family(Family::of(&ips[0])), true));
            }
            Families::PreferDual { .. } if ips.len() == 1 && requested.is_empty() => {
                extend = Some((other_family(Family::of(&ips[0])), false));
            }
            _ => {}
        }
        let mut pool = None;
        for ip in &ips {
            let Some((p, _)) = self.locate(Addr::of(*ip)) else {
                return Err(format!("{ip} is no longer in any pool"));
            };
            if self.pools[p].avoids_buggy(Family::of(ip)) && is_buggy(ip) {
                return Err(format!(
                    "{ip} ends in .0 or .255, which pool {:?} no longer hands out (avoidBuggyIPs)",
                    self.pool_name(p)
                ));
            }
            match pool {
                Some(q) if q != p => {
                    return Err(format!(
                        "{} and {ip} are in different pools ({:?} and {:?})",
                        ips[0],
                        self.pool_name(q),
                        self.pool_name(p)
                    ));
                }
                _ => pool = Some(p),
            }
        }
        let Some(p) = pool else {
            return Err("the Service had no address".into());
        };
        if let Some(annotated) = &req.pool
            && annotated != self.pool_name(p)
        {
            return Err(format!("pool annotation changed to {annotated}"));
        }
        if !self.pool_admits(p, req) {
            return Err(format!(
                "pool {:?} does not admit this Service (serviceAllocation)",
                self.pool_name(p)
            ));
        }
        let ips: Vec<Addr> = ips.iter().map(|ip| Addr::of(*ip)).collect();
        for a in &ips {
            self.check_share(*a, req).map_err(|e| e.to_string())?;
        }
        Ok(Keep {
            pool: p,
            ips,
            narrowed,
            extend,
        })
    }

    fn finish_keep(
        &mut self,
        req: &ServiceRequest,
        keep: Keep,
        cand: &[IpAddr],
    ) -> Result<Decision, String> {
        let Keep {
            pool,
            mut ips,
            narrowed,
            extend,
        } = keep;
        let mut notes = Vec::new();
        let mut change = match narrowed {
            Some(reason) => Change::Moved {
                from: cand.to_vec(),
                reason,
            },
            None => Change::Unchanged,
        };
        if let Some((family, required)) = extend {
            match self.pick(pool, family, req) {
                Some(a) => {
                    ips.push(a);
                    ips.sort_by_key(|a| a.family);
                    change = Change::Extended;
                }
                None if required => {
                    return Err(format!(
                        "the Service now requires IPv4 and IPv6, and pool {:?} has no free {family} address",
                        self.pool_name(pool)
                    ));
                }
                None => notes.push(self.single_note(pool, family)),
            }
        }
        Ok(Decision {
            pool,
            ips,
            change,
            notes,
        })
    }

    /// A new choice, ignoring what the Service had.
    fn fresh(
        &mut self,
        req: &ServiceRequest,
    ) -> Result<(usize, Vec<Addr>, Vec<String>), AllocError> {
        if !req.requested_ips.is_empty() {
            return self.requested(req).map(|(p, ips)| (p, ips, Vec::new()));
        }
        if let Some(name) = &req.pool {
            let Some(&p) = self.by_name.get(name) else {
                return Err(AllocError::UnknownPool(name.clone()));
            };
            if !self.pool_admits(p, req) {
                return Err(AllocError::PoolNotAllowed { pool: name.clone() });
            }
            return self
                .alloc_in_pool(p, req)
                .map(|(ips, notes)| (p, ips, notes))
                .map_err(|missing| AllocError::PoolFull(name.clone(), missing));
        }
        self.automatic(req)
    }

    fn requested(&self, req: &ServiceRequest) -> Result<(usize, Vec<Addr>), AllocError> {
        let mut pool: Option<usize> = None;
        let mut ips = Vec::with_capacity(req.requested_ips.len());
        for ip in &req.requested_ips {
            let a = Addr::of(*ip);
            let Some((p, _)) = self.locate(a) else {
                return Err(AllocError::NotInAnyPool { ip: *ip });
            };
            if self.pools[p].avoids_buggy(a.family) && is_buggy(ip) {
                return Err(AllocError::BadRequest(format!(
                    "{ip} ends in .0 or .255, which pool {:?} does not hand out (avoidBuggyIPs)",
                    self.pool_name(p)
                )));
            }
            match pool {
                Some(q) if q != p => {
                    return Err(AllocError::BadRequest(format!(
                        "requested {} are in different pools ({:?} and {:?}); both must come from one pool",
                        list(&req.requested_ips),
                        self.pool_name(q),
                        self.pool_name(p)
                    )));
                }
                _ => pool = Some(p),
            }
            ips.push(a);
        }
        let Some(p) = pool else {
            return Err(AllocError::BadRequest("no address requested".into()));
        };
        if let Some(annotated) = &req.pool
            && annotated != self.pool_name(p)
        {
            return Err(AllocError::PoolMismatch {
                ip: req.requested_ips[0],
                pool: self.pool_name(p).to_owned(),
                annotated: annotated.clone(),
            });
        }
        if !self.pool_admits(p, req) {
            return Err(AllocError::PoolNotAllowed {
                pool: self.pool_name(p).to_owned(),
            });
        }
        for a in &ips {
            self.check_share(*a, req)?;
        }
        Ok((p, ips))
    }

    /// Addresses for `req` from pool `p`; the error names the family missing.
    fn alloc_in_pool(
        &mut self,
        p: usize,
        req: &ServiceRequest,
    ) -> Result<(Vec<Addr>, Vec<String>), String> {
        match req.families {
            Families::Single(f) => self
                .pick(p, f, req)
                .map(|a| (vec![a], Vec::new()))
                .ok_or_else(|| f.to_string()),
            Families::RequireDual => {
                match (self.pick(p, Family::V4, req), self.pick(p, Family::V6, req)) {
                    (Some(a), Some(b)) => Ok((vec![a, b], Vec::new())),
                    (None, Some(_)) => Err("IPv4".into()),
                    (Some(_), None) => Err("IPv6".into()),
                    (None, None) => Err("IPv4 or IPv6".into()),
                }
            }
            Families::PreferDual { .. } => {
                match (self.pick(p, Family::V4, req), self.pick(p, Family::V6, req)) {
                    (Some(a), Some(b)) => Ok((vec![a, b], Vec::new())),
                    (Some(a), None) => Ok((vec![a], vec![self.single_note(p, Family::V6)])),
                    (None, Some(b)) => Ok((vec![b], vec![self.single_note(p, Family::V4)])),
                    (None, None) => Err("IPv4 or IPv6".into()),
                }
            }
        }
    }

    /// Pools whose `serviceAllocation` admits the Service by priority then name, then
    /// pools without `serviceAllocation` by name; `autoAssign: false` pools never.
    fn automatic(
        &mut self,
        req: &ServiceRequest,
    ) -> Result<(usize, Vec<Addr>, Vec<String>), AllocError> {
        let ranked = self.by_priority.len();
        let mut considered = 0;
        let mut last = 0;
        let mut missing = wanted(req.families);
        // PreferDualStack: both families from one pool if any can; else the first pool
        // with the primary family, else the first with the secondary.
        let mut first_primary = None;
        let mut first_secondary = None;
        for i in 0..ranked + self.fallback.len() {
            let p = if i < ranked {
                self.by_priority[i]
            } else {
                self.fallback[i - ranked]
            };
            if i < ranked && !self.pool_admits(p, req) {
                continue;
            }
            considered += 1;
            last = p;
            if let Families::PreferDual { primary } = req.families {
                let v4 = self.pick(p, Family::V4, req);
                let v6 = self.pick(p, Family::V6, req);
                if let (Some(a), Some(b)) = (v4, v6) {
                    return Ok((p, vec![a, b], Vec::new()));
                }
                let (pri, sec) = if primary == Family::V4 {
                    (v4, v6)
                } else {
                    (v6, v4)
                };
                if first_primary.is_none() {
                    first_primary = pri.map(|a| (p, a));
                }
                if first_secondary.is_none() {
                    first_secondary = sec.map(|a| (p, a));
                }
                continue;
            }
            match self.alloc_in_pool(p, req) {
                Ok((ips, notes)) => return Ok((p, ips, notes)),
                Err(m) => missing = m,
            }
        }
        if let Some((p, a)) = first_primary.or(first_secondary) {
            let note = self.single_note(p, other_family(a.family));
            return Ok((p, vec![a], vec![note]));
        }
        match considered {
            0 => Err(AllocError::NoMatchingPool(format!(
                "namespace {} (Service {})",
                req.key.namespace, req.key
            ))),
            1 => Err(AllocError::PoolFull(
                self.pool_name(last).to_owned(),
                missing,
            )),
            _ => Err(AllocError::NoFreeAddress(wanted(req.families))),
        }
    }

    /// See [`Allocator::reclaim`].
    pub(super) fn reclaim_one(&mut self, req: &ServiceRequest) -> bool {
        if req.current.is_empty()
            || self.held.contains_key(&req.key)
            || validate_request(req).is_err()
        {
            return false;
        }
        match self.check_keep(req, &req.current) {
            // A narrowed keep is left to `assign`, which reports the move.
            Ok(keep) if keep.narrowed.is_none() => {
                let assignment = Assignment {
                    pool: self.pool_name(keep.pool).to_owned(),
                    ips: keep.ips.iter().map(|a| a.ip()).collect(),
                };
                self.record(req, assignment, None);
                true
            }
            _ => false,
        }
    }

    /// Start-up (and "reprocess all") form of [`Self::assign_one`]; see
    /// [`Allocator::assign_all`].
    pub(super) fn assign_batch(
        &mut self,
        reqs: &[&ServiceRequest],
    ) -> Vec<(ServiceKey, Result<Outcome, AllocError>)> {
        let mut results: Vec<Option<Result<Outcome, AllocError>>> = vec![None; reqs.len()];
        // Pass 1: every Service whose current addresses still satisfy it takes them
        // back before anything is handed out, most addresses first (as MetalLB), then
        // by key, so conflicting statuses are settled the same way whatever the input
        // order. Extensions and moves wait.
        let mut reclaim: Vec<usize> = (0..reqs.len())
            .filter(|&i| !reqs[i].current.is_empty() && !self.held.contains_key(&reqs[i].key))
            .collect();
        reclaim.sort_by(|&a, &b| {
            (Reverse(reqs[a].current.len()), &reqs[a].key)
                .cmp(&(Reverse(reqs[b].current.len()), &reqs[b].key))
        });
        for i in reclaim {
            let req = reqs[i];
            if validate_request(req).is_err() || self.held.contains_key(&req.key) {
                continue;
            }
            let Ok(keep) = self.check_keep(req, &req.current) else {
                continue;
            };
            let assignment = Assignment {
                pool: self.pool_name(keep.pool).to_owned(),
                ips: keep.ips.iter().map(|a| a.ip()).collect(),
            };
            self.record(req, assignment.clone(), None);
            // Kept whole: nothing left for pass 2 (a later reclaim that shares the
            // address was checked against this one, and sharing is symmetric).
            if keep.extend.is_none() {
                let change = match keep.narrowed {
                    Some(reason) => Change::Moved {
                        from: req.current.clone(),
                        reason,
                    },
                    None => Change::Unchanged,
                };
                results[i] = Some(Ok(Outcome {
                    assignment,
                    change,
                    notes: Vec::new(),
                }));
            }
        }
        // Pass 2: the rest, by key; Services reclaimed above but missing a family come
        // out Extended (or Moved, when that family is required and unavailable).
        let mut order: Vec<usize> = (0..reqs.len()).filter(|&i| results[i].is_none()).collect();
        order.sort_by(|&a, &b| reqs[a].key.cmp(&reqs[b].key));
        for i in order {
            results[i] = Some(self.assign_one(reqs[i]));
        }
        reqs.iter()
            .zip(results)
            .filter_map(|(req, r)| r.map(|r| (req.key.clone(), r)))
            .collect()
    }

    /// Keeps the latest labels of each namespace that has assigned Services, for
    /// re-checking `namespaceSelectors` when the pools change.
    fn remember_namespace(&mut self, req: &ServiceRequest) {
        match self.namespace_labels.get(&req.key.namespace) {
            Some(l) if *l == req.namespace_labels => {}
            _ => {
                self.namespace_labels
                    .insert(req.key.namespace.clone(), req.namespace_labels.clone());
            }
        }
    }

    /// Whether a held assignment still fits the (new) pools, and in which pool it is.
    pub(super) fn still_fits(&self, key: &ServiceKey, held: &Held) -> Option<usize> {
        static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
        let mut pool = None;
        for ip in &held.assignment.ips {
            let (p, _) = self.locate(Addr::of(*ip))?;
            if self.pools[p].avoids_buggy(Family::of(ip)) && is_buggy(ip) {
                return None;
            }
            match pool {
                Some(q) if q != p => return None,
                _ => pool = Some(p),
            }
        }
        let p = pool?;
        let ns_labels = self
            .namespace_labels
            .get(&key.namespace)
            .unwrap_or(&NO_LABELS);
        let admitted = self
            .pools
            .get(p)
            .is_some_and(|pool| match pool.cfg.allocation.as_ref() {
                None => true,
                // Labels are rebuilt into a map only when a selector needs them.
                Some(a) if a.service_selectors.is_empty() => {
                    admits(Some(a), &key.namespace, ns_labels, &NO_LABELS)
                }
                Some(a) => admits(Some(a), &key.namespace, ns_labels, &held.labels_map()),
            });
        admitted.then_some(p)
    }
}
