//! The controller's Prometheus metrics, encoded as OpenMetrics text for `/metrics`.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `ferrolb_allocator_addresses_total` | gauge | `pool`, `family` | addresses the pool holds (saturates at 2^63-1) |
//! | `ferrolb_allocator_addresses_in_use_total` | gauge | `pool`, `family` | addresses assigned to Services |
//! | `ferrolb_allocation_failures_total` | counter | | decisions that left a Service without (all) its addresses |
//! | `ferrolb_reconcile_duration_seconds` | histogram | | time to handle one watch event (decide and write) |
//! | `ferrolb_k8s_writes_total` | counter | `result` | API writes: `ok`, `gone` (404), `retry`, `failed` |
//! | `ferrolb_leader` | gauge | | 1 while this replica holds the Lease and acts |
//!
//! `family` is `ipv4` or `ipv6`.

use std::time::Duration;

use ferrolb_crds::addresses::Family as AddrFamily;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::engine::PoolUsage;

/// The content type of [`Metrics::encode`]'s output.
pub use ferrolb_observe::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub result: String,
}

/// Outcome of one API write, for `ferrolb_k8s_writes_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteResult {
    /// Written.
    Ok,
    /// The object was gone (404); nothing to do.
    Gone,
    /// Failed; will be retried.
    Retry,
    /// Failed for good (rejected, or out of retries).
    Failed,
}

impl WriteResult {
    fn label(self) -> &'static str {
        match self {
            WriteResult::Ok => "ok",
            WriteResult::Gone => "gone",
            WriteResult::Retry => "retry",
            WriteResult::Failed => "failed",
        }
    }
}

/// Every metric the controller exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    addresses_total: Family<PoolLabels, Gauge>,
    addresses_in_use: Family<PoolLabels, Gauge>,
    allocation_failures: Counter,
    reconcile_duration: Histogram,
    k8s_writes: Family<WriteLabels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let addresses_total = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "ferrolb_allocator_addresses_total",
            "Addresses in the pool, per family",
            addresses_total.clone(),
        );
        let addresses_in_use = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "ferrolb_allocator_addresses_in_use_total",
            "Addresses of the pool assigned to Services, per family",
            addresses_in_use.clone(),
        );
        let allocation_failures = Counter::default();
        // The encoder appends `_total` to counters.
        registry.register(
            "ferrolb_allocation_failures",
            "Decisions that left a Service without (all) its addresses",
            allocation_failures.clone(),
        );
        // 100 µs .. ~13 s.
        let reconcile_duration = Histogram::new(exponential_buckets(0.0001, 4.0, 9));
        registry.register_with_unit(
            "ferrolb_reconcile_duration",
            "Time to handle one watch event: decide and write",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let k8s_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "ferrolb_k8s_writes",
            "Kubernetes API writes by result",
            k8s_writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "ferrolb_leader",
            "1 while this replica holds the Lease and acts",
            leader.clone(),
        );
        Metrics {
            registry,
            addresses_total,
            addresses_in_use,
            allocation_failures,
            reconcile_duration,
            k8s_writes,
            leader,
        }
    }

    /// Replaces the pool gauges with `usage` (pools no longer present disappear).
    pub fn set_pool_usage(&self, usage: &[PoolUsage]) {
        self.addresses_total.clear();
        self.addresses_in_use.clear();
        for u in usage {
            let labels = PoolLabels {
                pool: u.pool.clone(),
                family: family_label(u.family).to_string(),
            };
            self.addresses_total
                .get_or_create(&labels)
                .set(saturating_i64(u.total));
            self.addresses_in_use
                .get_or_create(&labels)
                .set(saturating_i64(u.in_use));
        }
    }

    pub fn allocation_failures(&self, n: u64) {
        if n > 0 {
            self.allocation_failures.inc_by(n);
        }
    }

    pub fn observe_reconcile(&self, elapsed: Duration) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    pub fn k8s_write(&self, result: WriteResult) {
        self.k8s_writes
            .get_or_create(&WriteLabels {
                result: result.label().to_string(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// OpenMetrics text of every metric (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        ferrolb_observe::encode(&self.registry)
    }
}

impl ferrolb_observe::Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

fn family_label(f: AddrFamily) -> &'static str {
    match f {
        AddrFamily::V4 => "ipv4",
        AddrFamily::V6 => "ipv6",
    }
}

/// `u128` address counts (an IPv6 pool can hold 2^128) as a gauge value.
pub fn saturating_i64(v: u128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates() {
        assert_eq!(saturating_i64(5), 5);
        assert_eq!(saturating_i64(u128::MAX), i64::MAX);
        assert_eq!(saturating_i64(1u128 << 64), i64::MAX);
    }

    #[test]
    fn encodes_every_metric() {
        let m = Metrics::new();
        m.set_pool_usage(&[
            PoolUsage {
                pool: "p".into(),
                family: AddrFamily::V4,
                total: 256,
                in_use: 3,
            },
            PoolUsage {
                pool: "p".into(),
                family: AddrFamily::V6,
                total: 1u128 << 64,
                in_use: 1,
            },
        ]);
        m.allocation_failures(2);
        m.observe_reconcile(Duration::from_millis(3));
        m.k8s_write(WriteResult::Ok);
        m.k8s_write(WriteResult::Gone);
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains(r#"ferrolb_allocator_addresses_total{pool="p",family="ipv4"} 256"#),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"ferrolb_allocator_addresses_total{{pool="p",family="ipv6"}} {}"#,
                i64::MAX
            )),
            "{text}"
        );
        assert!(
            text.contains(r#"ferrolb_allocator_addresses_in_use_total{pool="p",family="ipv4"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_allocation_failures_total 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"ferrolb_k8s_writes_total{result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ferrolb_k8s_writes_total{result="gone"} 1"#),
            "{text}"
        );
        assert!(text.contains("ferrolb_leader 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));

        // A pool that disappears leaves the gauges.
        m.set_pool_usage(&[PoolUsage {
            pool: "q".into(),
            family: AddrFamily::V4,
            total: 1,
            in_use: 0,
        }]);
        let text = m.encode();
        assert!(!text.contains(r#"pool="p""#), "{text}");
        assert!(
            text.contains(r#"ferrolb_allocator_addresses_total{pool="q",family="ipv4"} 1"#),
            "{text}"
        );
    }
}
