//! The allocator's view of its pools: free addresses per entry, which pools a Service
//! may use and in which order, and the index answering "which pool holds this IP?".
//!
//! Every address belongs to at most one (pool, entry). The shell drops overlapping
//! pools before they get here; should some slip through anyway, the pool whose name
//! sorts first keeps the shared addresses (and within a pool, the entry listed first),
//! so an address can never be handed out twice through two pools.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_crds::addresses::Family;

use super::free::FreeSet;
use super::{Addr, PoolAllocation, PoolConfig};

/// Index into per-family arrays.
pub(super) fn fam_idx(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

pub(super) fn other_family(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

/// One address entry of a pool, minus what earlier entries or pools already claim.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) family: Family,
    pub(super) free: FreeSet,
}

#[derive(Clone, Debug)]
pub(super) struct Pool {
    pub(super) cfg: PoolConfig,
    pub(super) entries: Vec<Entry>,
    /// Entries that may still have a free address, per family; the smallest index is
    /// the entry listed first, so "first free address of the pool" costs O(log n) no
    /// matter how many entries before it are full.
    open: [BTreeSet<u32>; 2],
    /// Addresses the pool can hand out (after clipping overlaps and, with
    /// avoidBuggyIPs, leaving out .0/.255), per family; saturating.
    pub(super) usable: [u128; 2],
    /// Distinct addresses in use, per family.
    pub(super) assigned: [u128; 2],
}

/// A maximal run of addresses owned by one (pool, entry), keyed by its first address
/// in [`super::Allocator`]'s index.
#[derive(Clone, Copy, Debug)]
pub(super) struct Piece {
    pub(super) last: u128,
    pub(super) pool: u32,
    pub(super) entry: u32,
}

impl Pool {
    fn new(cfg: PoolConfig) -> Pool {
        let entries = cfg
            .ranges
            .iter()
            .map(|r| Entry {
                family: r.family,
                free: FreeSet::default(),
            })
            .collect();
        Pool {
            cfg,
            entries,
            open: Default::default(),
            usable: [0; 2],
            assigned: [0; 2],
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Whether .0/.255 addresses of family `f` are off limits in this pool.
    pub(super) fn avoids_buggy(&self, f: Family) -> bool {
        self.cfg.avoid_buggy_ips && f == Family::V4
    }

    pub(super) fn has_family(&self, f: Family) -> bool {
        self.entries.iter().any(|e| e.family == f)
    }

    /// Lowest free address of family `f` in entry order; does not take it.
    pub(super) fn first_free(&mut self, f: Family) -> Option<u128> {
        let avoid = self.avoids_buggy(f);
        let open = &mut self.open[fam_idx(f)];
        while let Some(&e) = open.first() {
            if let Some(n) = self
                .entries
                .get_mut(e as usize)
                .and_then(|entry| entry.free.first(avoid))
            {
                return Some(n);
            }
            // Only emptied (or buggy-only) entries reach here; they reopen on `give`.
            open.remove(&e);
        }
        None
    }

    pub(super) fn take(&mut self, entry: u32, n: u128) -> bool {
        let Some(e) = self.entries.get_mut(entry as usize) else {
            return false;
        };
        let taken = e.free.take(n);
        if e.free.is_empty() {
            self.open[fam_idx(e.family)].remove(&entry);
        }
        taken
    }

    pub(super) fn give(&mut self, entry: u32, n: u128) {
        if let Some(e) = self.entries.get_mut(entry as usize) {
            e.free.give(n);
            self.open[fam_idx(e.family)].insert(entry);
        }
    }

    pub(super) fn free_intervals(&self) -> usize {
        self.entries.iter().map(|e| e.free.intervals()).sum()
    }

    /// Lower priority first, 0 (unset) after every positive one, then by name.
    fn order_key(&self) -> (bool, i32, &str) {
        let p = self.cfg.allocation.as_ref().map_or(0, |a| a.priority);
        (p == 0, p, self.name())
    }
}

/// Whether a pool's `serviceAllocation` admits a Service. Namespaces listed by name and
/// namespaces matched by selector add up; with neither set, every namespace is
/// admitted. An allocation with nothing set admits every Service.
pub(super) fn admits(
    alloc: Option<&PoolAllocation>,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(a) = alloc else {
        return true;
    };
    let namespace_ok = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
        || a.namespaces.contains(namespace)
        || a.namespace_selectors.matches_any(namespace_labels);
    namespace_ok && a.service_selectors.matches_or_empty(labels)
}

/// IPv4 addresses in `[0, x]` that end in .0 or .255.
fn buggy_up_to(x: u128) -> u128 {
    (x / 256 + 1) + (x + 1) / 256
}

fn buggy_between(first: u128, last: u128) -> u128 {
    buggy_up_to(last)
        - if first == 0 {
            0
        } else {
            buggy_up_to(first - 1)
        }
}

/// Pools sorted by name (duplicates dropped, first kept) and the index of the address
/// pieces they own. Free sets are left empty: the caller fills them, knowing what is
/// in use.
pub(super) fn build(mut configs: Vec<PoolConfig>) -> (Vec<Pool>, BTreeMap<Addr, Piece>) {
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    configs.dedup_by(|later, first| later.name == first.name);
    let mut pools: Vec<Pool> = configs.into_iter().map(Pool::new).collect();
    let mut index: BTreeMap<Addr, Piece> = BTreeMap::new();
    for (pi, pool) in pools.iter_mut().enumerate() {
        let avoid = pool.cfg.avoid_buggy_ips;
        for (ei, range) in pool.cfg.ranges.iter().enumerate() {
            for (first, last) in unclaimed(&index, range.family, range.first, range.last) {
                index.insert(
                    Addr {
                        family: range.family,
                        n: first,
                    },
                    Piece {
                        last,
                        pool: pi as u32,
                        entry: ei as u32,
                    },
                );
                let mut size = (last - first).saturating_add(1);
                if avoid && range.family == Family::V4 {
                    size -= buggy_between(first, last);
                }
                let u = &mut pool.usable[fam_idx(range.family)];
                *u = u.saturating_add(size);
            }
        }
    }
    (pools, index)
}

/// The parts of `[first, last]` no piece of `index` covers yet.
fn unclaimed(
    index: &BTreeMap<Addr, Piece>,
    family: Family,
    first: u128,
    last: u128,
) -> Vec<(u128, u128)> {
    let mut claimed: Vec<(u128, u128)> = Vec::new();
    if let Some((start, piece)) = index.range(..Addr { family, n: first }).next_back()
        && start.family == family
        && piece.last >= first
    {
        claimed.push((start.n, piece.last));
    }
    for (start, piece) in index.range(Addr { family, n: first }..=Addr { family, n: last }) {
        claimed.push((start.n, piece.last));
    }
    let mut out = Vec::new();
    let mut cur = Some(first);
    for (s, l) in claimed {
        let Some(c) = cur else { break };
        if s > c {
            out.push((c, s - 1));
        }
        cur = if l >= c { l.checked_add(1) } else { Some(c) };
    }
    if let Some(c) = cur
        && c <= last
    {
        out.push((c, last));
    }
    out
}

/// Fills the free sets of freshly built pools: every piece minus the addresses in
/// use, in one ordered pass (so a rebuild costs O(n) and leaves one interval per gap).
pub(super) fn fill_free<V>(
    pools: &mut [Pool],
    index: &BTreeMap<Addr, Piece>,
    in_use: &BTreeMap<Addr, V>,
) {
    for (start, piece) in index {
        let Some(pool) = pools.get_mut(piece.pool as usize) else {
            continue;
        };
        let Some(entry) = pool.entries.get_mut(piece.entry as usize) else {
            continue;
        };
        let end = Addr {
            family: start.family,
            n: piece.last,
        };
        let mut next = Some(start.n);
        for (used, _) in in_use.range(*start..=end) {
            let Some(n) = next else { break };
            if used.n > n {
                entry.free.push(n, used.n - 1);
            }
            next = used.n.checked_add(1);
        }
        if let Some(n) = next
            && n <= piece.last
        {
            entry.free.push(n, piece.last);
        }
        if !entry.free.is_empty() {
            pool.open[fam_idx(entry.family)].insert(piece.entry);
        }
    }
}

/// Pools tried for automatic allocation: those with a `serviceAllocation` (filtered
/// per Service later) by priority then name, and those without one, by name. Pools
/// with `autoAssign: false` are in neither.
pub(super) fn auto_orders(pools: &[Pool]) -> (Vec<usize>, Vec<usize>) {
    let mut with: Vec<usize> = (0..pools.len())
        .filter(|&i| pools[i].cfg.auto_assign && pools[i].cfg.allocation.is_some())
        .collect();
    with.sort_by(|&a, &b| pools[a].order_key().cmp(&pools[b].order_key()));
    let without = (0..pools.len())
        .filter(|&i| pools[i].cfg.auto_assign && pools[i].cfg.allocation.is_none())
        .collect();
    (with, without)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_crds::addresses::AddrRange;

    fn cfg(name: &str, ranges: &[&str], avoid: bool) -> PoolConfig {
        PoolConfig {
            name: name.into(),
            ranges: ranges
                .iter()
                .map(|r| AddrRange::parse(r).unwrap())
                .collect(),
            auto_assign: true,
            avoid_buggy_ips: avoid,
            allocation: None,
        }
    }

    #[test]
    fn buggy_counts() {
        assert_eq!(buggy_between(0, 255), 2);
        assert_eq!(buggy_between(1, 254), 0);
        assert_eq!(buggy_between(255, 256), 2);
        assert_eq!(buggy_between(0, 0xffff), 512);
    }

    #[test]
    fn overlaps_go_to_the_first_pool_by_name() {
        let (pools, index) = build(vec![
            cfg("b", &["198.51.100.0/24"], false),
            cfg(
                "a",
                &["198.51.100.128/25", "198.51.100.100-198.51.100.200"],
                true,
            ),
        ]);
        assert_eq!(pools[0].name(), "a");
        // a: .128-.255 minus .255 = 127, plus .100-.127 = 28
        assert_eq!(pools[0].usable[0], 127 + 28);
        // b keeps .0-.99 only
        assert_eq!(pools[1].usable[0], 100);
        assert_eq!(index.len(), 3);
    }
}
