//! The free addresses of one pool entry, kept as disjoint inclusive intervals.
//!
//! A fresh entry is one interval whatever its size, so an IPv6 /64 costs one map node
//! until addresses are taken; handing out addresses in order only moves the start of
//! the first interval. Memory therefore grows with the number of *holes* (addresses
//! released between used ones), never with the size of the range.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent intervals `start → end` (inclusive), as integers.
#[derive(Clone, Debug, Default)]
pub(super) struct FreeSet {
    iv: BTreeMap<u128, u128>,
}

/// The first address at or after `n` that does not end in .0 or .255 (IPv4 only).
fn skip_buggy(n: u128) -> u128 {
    match n & 0xff {
        0 => n + 1,
        0xff => n + 2,
        _ => n,
    }
}

impl FreeSet {
    /// Adds `[first, last]`, which must not overlap what the set holds; intervals are
    /// added in ascending order while a pool is built, so no merging is attempted here.
    pub(super) fn push(&mut self, first: u128, last: u128) {
        debug_assert!(first <= last);
        self.iv.insert(first, last);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.iv.is_empty()
    }

    /// Number of intervals: the memory this entry costs.
    pub(super) fn intervals(&self) -> usize {
        self.iv.len()
    }

    /// The lowest free address. With `avoid_buggy` (IPv4 pools with avoidBuggyIPs),
    /// .0/.255 addresses met at the head are dropped for good: this set is rebuilt
    /// whenever the pool changes, and until then they can never be handed out, so
    /// forgetting them keeps later calls O(log n) (each interval is trimmed once).
    pub(super) fn first(&mut self, avoid_buggy: bool) -> Option<u128> {
        loop {
            let (&start, &end) = self.iv.first_key_value()?;
            if !avoid_buggy {
                return Some(start);
            }
            let candidate = skip_buggy(start);
            self.iv.remove(&start);
            if candidate <= end {
                self.iv.insert(candidate, end);
                return Some(candidate);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.iv.iter().map(|(&s, &e)| (s, e))
    }

    pub(super) fn contains(&self, n: u128) -> bool {
        self.iv
            .range(..=n)
            .next_back()
            .is_some_and(|(_, &end)| end >= n)
    }

    /// Removes one address; false when it was not free.
    pub(super) fn take(&mut self, n: u128) -> bool {
        let Some((&start, &end)) = self.iv.range(..=n).next_back() else {
            return false;
        };
        if end < n {
            return false;
        }
        self.iv.remove(&start);
        if start < n {
            self.iv.insert(start, n - 1);
        }
        if n < end {
            self.iv.insert(n + 1, end);
        }
        true
    }

    /// Returns one address to the set, merging it with its neighbours so that
    /// allocate/release cycles never fragment the set.
    pub(super) fn give(&mut self, n: u128) {
        if self.contains(n) {
            return;
        }
        let mut start = n;
        let mut end = n;
        if let Some((&s, &e)) = self.iv.range(..n).next_back()
            && e.checked_add(1) == Some(n)
        {
            self.iv.remove(&s);
            start = s;
        }
        if let Some(next) = n.checked_add(1)
            && let Some(e) = self.iv.remove(&next)
        {
            end = e;
        }
        self.iv.insert(start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_and_give_merge_back_to_one_interval() {
        let mut f = FreeSet::default();
        f.push(10, 20);
        assert!(f.take(15));
        assert!(!f.take(15));
        assert_eq!(f.intervals(), 2);
        assert!(f.take(10));
        assert!(f.take(20));
        assert_eq!(f.first(false), Some(11));
        f.give(15);
        f.give(10);
        f.give(20);
        assert_eq!(f.intervals(), 1);
        assert!(f.contains(10) && f.contains(20) && !f.contains(21));
        // giving twice is harmless
        f.give(12);
        assert_eq!(f.intervals(), 1);
    }

    #[test]
    fn first_skips_and_forgets_buggy_heads() {
        let mut f = FreeSet::default();
        // x.255 .. (x+1).0 only, then a usable one
        f.push(0x1ff, 0x200);
        f.push(0x2ff, 0x301);
        assert_eq!(f.first(true), Some(0x301));
        assert_eq!(f.intervals(), 1);
        let mut g = FreeSet::default();
        g.push(0x100, 0x1ff);
        assert_eq!(g.first(false), Some(0x100));
        assert_eq!(g.first(true), Some(0x101));
    }

    #[test]
    fn edges_of_the_number_space() {
        let mut f = FreeSet::default();
        f.push(u128::MAX - 1, u128::MAX);
        assert!(f.take(u128::MAX));
        f.give(u128::MAX);
        assert_eq!(f.intervals(), 1);
        let mut g = FreeSet::default();
        g.push(0, 5);
        assert!(g.take(0));
        g.give(0);
        assert_eq!(g.intervals(), 1);
        // 255.255.255.255 with avoid_buggy: skipping past it must not overflow
        let mut h = FreeSet::default();
        h.push(0xffff_ffff, 0xffff_ffff);
        assert_eq!(h.first(true), None);
    }
}
