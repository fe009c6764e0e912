//! Allocator benchmark: 50,000 Services over 100 pools, then a restart that reclaims
//! them all from their status. Plain `main` (harness = false) printing time and memory
//! per phase; run with `cargo bench -p ferrolb-controller --bench allocate`.
//!
//! Pools: 96 synthetic IPv4 /22s from 10.0.0.0/8 (pure computation, no traffic: the
//! documentation ranges are far too small for 50,000 Services), the three IPv4
//! documentation /24s as `autoAssign: false` pools for requested addresses and the
//! pool annotation, and one dual-stack pool holding 2001:db8::/64. Memory is counted
//! by a global allocator wrapper (bytes requested, current and peak) and by the
//! kernel's VmHWM.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use ferrolb_controller::allocator::{
    Allocator, Change, Families, PoolAllocation, PoolConfig, Port, ServiceKey, ServiceRequest,
};
use ferrolb_crds::addresses::{AddrRange, Family};
use ferrolb_crds::selector::Selectors;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only byte counts are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERVICES: usize = 50_000;

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "n/a".into())
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn selectors(kv: &[(&str, &str)]) -> Selectors {
    Selectors::parse(&[LabelSelector {
        match_labels: Some(labels(kv)),
        ..Default::default()
    }])
    .unwrap_or_default()
}

fn range(s: &str) -> AddrRange {
    AddrRange::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn pools() -> Vec<PoolConfig> {
    let mut out = Vec::new();
    for i in 0..96u32 {
        let base = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 1024);
        let allocation = match i {
            // three pools per team namespace, priorities 1..3
            0..30 => Some(PoolAllocation {
                priority: 1 + (i / 10) as i32,
                namespaces: [format!("team-{}", i % 10)].into(),
                ..Default::default()
            }),
            // edge Services anywhere
            30..40 => Some(PoolAllocation {
                priority: 10 + (i % 3) as i32,
                service_selectors: selectors(&[("tier", "edge")]),
                ..Default::default()
            }),
            // production namespaces, priority unset (after the others)
            40..50 => Some(PoolAllocation {
                namespace_selectors: selectors(&[("env", "prod")]),
                ..Default::default()
            }),
            _ => None,
        };
        out.push(PoolConfig {
            name: format!("pool-{i:03}"),
            ranges: vec![range(&format!("{base}/22"))],
            auto_assign: true,
            avoid_buggy_ips: i % 3 == 0,
            allocation,
        });
    }
    for (i, cidr) in ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
        .iter()
        .enumerate()
    {
        out.push(PoolConfig {
            name: format!("pool-{:03}", 96 + i),
            ranges: vec![range(cidr)],
            auto_assign: false,
            avoid_buggy_ips: false,
            allocation: None,
        });
    }
    out.push(PoolConfig {
        name: "dual".into(),
        ranges: vec![range("2001:db8::/64"), range("10.200.0.0/18")],
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: Some(PoolAllocation {
            priority: 1,
            service_selectors: selectors(&[("stack", "dual")]),
            ..Default::default()
        }),
    });
    out
}

fn requests() -> Vec<ServiceRequest> {
    (0..SERVICES)
        .map(|i| {
            let ns_i = i % 20;
            let namespace = if ns_i < 10 {
                format!("team-{ns_i}")
            } else {
                format!("other-{}", ns_i - 10)
            };
            let env = if ns_i % 2 == 0 { "prod" } else { "dev" };
            let mut svc_labels = labels(&[("app", &format!("app-{}", i % 100))]);
            if i % 20 == 5 {
                svc_labels.insert("tier".into(), "edge".into());
            }
            let families = match i % 20 {
                0 => Families::RequireDual,
                1 => Families::Single(Family::V6),
                2 => Families::PreferDual {
                    primary: Family::V4,
                },
                _ => Families::Single(Family::V4),
            };
            if i % 20 < 3 {
                svc_labels.insert("stack".into(), "dual".into());
            }
            let mut r = ServiceRequest {
                key: ServiceKey {
                    namespace,
                    name: format!("svc-{i}"),
                },
                labels: svc_labels,
                namespace_labels: labels(&[("env", env)]),
                families,
                requested_ips: Vec::new(),
                pool: None,
                sharing_key: None,
                backend_key: String::new(),
                ports: vec![Port {
                    protocol: "TCP".into(),
                    port: 443,
                }],
                current: Vec::new(),
            };
            if i % 10 == 3 {
                // groups of ten with distinct ports: they pack onto shared addresses
                r.sharing_key = Some(format!("share-{}", i / 100));
                r.ports = vec![Port {
                    protocol: "TCP".into(),
                    port: 8000 + ((i / 10) % 10) as u16,
                }];
            } else if i % 50 == 7 {
                // same key, same port: every one needs its own address
                r.sharing_key = Some(format!("collide-{}", i / 1000));
                r.ports = vec![Port {
                    protocol: "UDP".into(),
                    port: 53,
                }];
            } else if i % 500 == 9 {
                let n = (i / 500) as u8;
                r.requested_ips = vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))];
            } else if i % 200 == 11 {
                r.pool = Some("pool-098".into());
            }
            r
        })
        .collect()
}

fn per_op(d: Duration) -> String {
    format!("{:.2} µs/Service", d.as_secs_f64() * 1e6 / SERVICES as f64)
}

fn main() {
    let pools = pools();
    let mut reqs = requests();

    // Phase 1: allocate everything from scratch.
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let mut a = Allocator::new(pools.clone());
    let mut changes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut errors = 0;
    for r in &reqs {
        match a.assign(r) {
            Ok(o) => {
                *changes
                    .entry(match o.change {
                        Change::New => "new",
                        Change::Unchanged => "unchanged",
                        Change::Moved { .. } => "moved",
                        Change::Extended => "extended",
                    })
                    .or_default() += 1
            }
            Err(e) => {
                if errors < 3 {
                    eprintln!("unexpected: {e}");
                }
                errors += 1;
            }
        }
    }
    let phase1 = t.elapsed();
    let held1 = CURRENT.load(Relaxed) - base;
    let peak1 = PEAK.load(Relaxed) - base;
    let fp = a.footprint();
    let shared = a
        .assignments()
        .filter(|(_, asg)| a.users_of(&asg.ips[0]).count() > 1)
        .count();
    println!("pools: {}   services: {SERVICES}", pools.len());
    println!(
        "phase 1  allocate      {:>9.1} ms  ({})   {changes:?}, {errors} errors",
        phase1.as_secs_f64() * 1e3,
        per_op(phase1)
    );
    println!(
        "         state: {} services, {} addresses in use, {} sharing Services, {} free intervals",
        fp.services, fp.addresses_in_use, shared, fp.free_intervals
    );
    let dual = a.pool_stats("dual").unwrap_or_default();
    println!(
        "         pool dual: {} IPv4 + {} IPv6 assigned, {} IPv6 available",
        dual.assigned_v4, dual.assigned_v6, dual.available_v6
    );
    println!(
        "         allocator heap: {} held, {} peak",
        mib(held1),
        mib(peak1)
    );

    // Phase 2: restart. A fresh allocator reclaims every Service from its status.
    for r in &mut reqs {
        r.current = a
            .assignment(&r.key)
            .map(|x| x.ips.clone())
            .unwrap_or_default();
    }
    let expected: Vec<_> = reqs.iter().map(|r| a.assignment(&r.key).cloned()).collect();
    drop(a);
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let mut b = Allocator::new(pools.clone());
    let results = b.assign_all(&reqs);
    let phase2 = t.elapsed();
    let held2 = CURRENT.load(Relaxed) - base;
    let peak2 = PEAK.load(Relaxed) - base;
    let unchanged = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(o) if o.change == Change::Unchanged))
        .count();
    let same = reqs
        .iter()
        .zip(&expected)
        .filter(|(r, e)| b.assignment(&r.key) == e.as_ref())
        .count();
    println!(
        "phase 2  restart (assign_all) {:>4.1} ms  ({})   {unchanged} unchanged, {same} identical to before",
        phase2.as_secs_f64() * 1e3,
        per_op(phase2)
    );
    println!(
        "         allocator heap: {} held, {} peak (incl. results)",
        mib(held2),
        mib(peak2)
    );
    drop(results);

    // Phase 2b: the same restart one Service at a time, in reverse order.
    let t = Instant::now();
    let mut c = Allocator::new(pools.clone());
    let mut unchanged = 0;
    for r in reqs.iter().rev() {
        if matches!(c.assign(r), Ok(o) if o.change == Change::Unchanged) {
            unchanged += 1;
        }
    }
    let phase2b = t.elapsed();
    println!(
        "phase 2b restart (assign, reverse) {:>4.1} ms  ({})   {unchanged} unchanged",
        phase2b.as_secs_f64() * 1e3,
        per_op(phase2b)
    );
    drop(c);

    // Phase 2c: the engine's way: reclaim every Service, then assign each.
    let t = Instant::now();
    let mut d = Allocator::new(pools.clone());
    let reclaimed = reqs.iter().filter(|r| d.reclaim(r)).count();
    let mut unchanged = 0;
    for r in &reqs {
        if matches!(d.assign(r), Ok(o) if o.change == Change::Unchanged) {
            unchanged += 1;
        }
    }
    let phase2c = t.elapsed();
    println!(
        "phase 2c restart (reclaim all, then assign) {:>4.1} ms  ({})   {reclaimed} reclaimed, {unchanged} unchanged",
        phase2c.as_secs_f64() * 1e3,
        per_op(phase2c)
    );
    drop(d);

    // Phase 3: a pool edit (reordered and renamed, same addresses), then release all.
    let mut edited = pools.clone();
    edited.reverse();
    for p in edited.iter_mut().filter(|p| p.name.starts_with("pool-05")) {
        p.name = p.name.replace("pool-", "renamed-");
    }
    let t = Instant::now();
    let dropped = b.set_pools(edited);
    let edit = t.elapsed();
    let t = Instant::now();
    for r in &reqs {
        b.release(&r.key);
    }
    let release = t.elapsed();
    println!(
        "phase 3  set_pools {:.1} ms ({} dropped), release all {:.1} ms ({}); free intervals after: {}",
        edit.as_secs_f64() * 1e3,
        dropped.len(),
        release.as_secs_f64() * 1e3,
        per_op(release),
        b.footprint().free_intervals
    );
    println!("process VmHWM: {}", vm_hwm());
}
