//! Behaviour of the allocator as a whole: the order of choice, sharing, dual-stack,
//! pool edits, restarts, and the cost bounds (interval counts).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_crds::addresses::{AddrRange, Family};
use ferrolb_crds::selector::Selectors;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

fn key(ns: &str, name: &str) -> ServiceKey {
    ServiceKey {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn pool(name: &str, ranges: &[&str]) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        ranges: ranges
            .iter()
            .map(|r| AddrRange::parse(r).unwrap())
            .collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

fn manual(mut p: PoolConfig) -> PoolConfig {
    p.auto_assign = false;
    p
}

fn avoid_buggy(mut p: PoolConfig) -> PoolConfig {
    p.avoid_buggy_ips = true;
    p
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
    .unwrap()
}

fn with_alloc(mut p: PoolConfig, priority: i32, namespaces: &[&str]) -> PoolConfig {
    p.allocation = Some(PoolAllocation {
        priority,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    });
    p
}

fn req(ns: &str, name: &str) -> ServiceRequest {
    ServiceRequest {
        key: key(ns, name),
        labels: BTreeMap::new(),
        namespace_labels: BTreeMap::new(),
        families: Families::Single(Family::V4),
        requested_ips: Vec::new(),
        pool: None,
        sharing_key: None,
        backend_key: String::new(),
        ports: vec![Port {
            protocol: "TCP".into(),
            port: 80,
        }],
        current: Vec::new(),
    }
}

fn v6(mut r: ServiceRequest) -> ServiceRequest {
    r.families = Families::Single(Family::V6);
    r
}

fn fam(mut r: ServiceRequest, families: Families) -> ServiceRequest {
    r.families = families;
    r
}

fn sharing(mut r: ServiceRequest, k: &str, ports: &[(&str, u16)]) -> ServiceRequest {
    r.sharing_key = Some(k.into());
    r.ports = ports
        .iter()
        .map(|(p, n)| Port {
            protocol: p.to_string(),
            port: *n,
        })
        .collect();
    r
}

fn requesting(mut r: ServiceRequest, list: &[&str]) -> ServiceRequest {
    r.requested_ips = ips(list);
    r
}

fn annotated(mut r: ServiceRequest, p: &str) -> ServiceRequest {
    r.pool = Some(p.into());
    r
}

fn current(mut r: ServiceRequest, list: &[&str]) -> ServiceRequest {
    r.current = ips(list);
    r
}

/// Assigns and returns (pool, addresses as strings).
fn got(a: &mut Allocator, r: &ServiceRequest) -> (String, Vec<String>) {
    let o = a.assign(r).unwrap_or_else(|e| panic!("{}: {e}", r.key));
    (
        o.assignment.pool,
        o.assignment.ips.iter().map(|i| i.to_string()).collect(),
    )
}

fn one(pool: &str, addr: &str) -> (String, Vec<String>) {
    (pool.into(), vec![addr.into()])
}

// ---------------------------------------------------------------- order of choice

#[test]
fn fallback_pools_by_name_entries_in_order_addresses_ascending() {
    let mut a = Allocator::new(vec![
        pool("b", &["192.0.2.0/31"]),
        pool("a", &["198.51.100.20-198.51.100.21", "198.51.100.10/31"]),
    ]);
    let order: Vec<_> = (0..6)
        .map(|i| got(&mut a, &req("ns", &format!("s{i}"))))
        .collect();
    assert_eq!(
        order,
        vec![
            one("a", "198.51.100.20"),
            one("a", "198.51.100.21"),
            one("a", "198.51.100.10"),
            one("a", "198.51.100.11"),
            one("b", "192.0.2.0"),
            one("b", "192.0.2.1"),
        ]
    );
    assert_eq!(
        a.assign(&req("ns", "s6")),
        Err(AllocError::NoFreeAddress("IPv4".into()))
    );
}

#[test]
fn first_assignment_is_new_and_reassignment_is_unchanged_and_idempotent() {
    let mut a = Allocator::new(vec![pool("a", &["198.51.100.0/30"])]);
    let r = req("ns", "web");
    let first = a.assign(&r).unwrap();
    assert_eq!(first.change, Change::New);
    let before = a.footprint();
    let again = a.assign(&r).unwrap();
    assert_eq!(again.change, Change::Unchanged);
    assert_eq!(again.assignment, first.assignment);
    assert_eq!(a.footprint(), before);
    assert_eq!(
        a.users_of(&ip("198.51.100.0")).collect::<Vec<_>>(),
        vec![&key("ns", "web")]
    );
    assert_eq!(a.pool_stats("a").unwrap().assigned_v4, 1);
}

#[test]
fn priority_order_zero_last_ties_by_name_then_fallback() {
    let mut a = Allocator::new(vec![
        pool("0-fallback", &["192.0.2.1/32"]),
        with_alloc(pool("p0", &["192.0.2.2/32"]), 0, &[]),
        with_alloc(pool("p2", &["192.0.2.3/32"]), 2, &[]),
        with_alloc(pool("p1-b", &["192.0.2.4/32"]), 1, &[]),
        with_alloc(pool("p1-a", &["192.0.2.5/32"]), 1, &[]),
    ]);
    let pools: Vec<String> = (0..5)
        .map(|i| got(&mut a, &req("ns", &format!("s{i}"))).0)
        .collect();
    assert_eq!(pools, vec!["p1-a", "p1-b", "p2", "p0", "0-fallback"]);
}

#[test]
fn namespaces_restrict_pools_and_unmatched_namespace_is_named() {
    let mut a = Allocator::new(vec![with_alloc(
        pool("team-a", &["192.0.2.0/30"]),
        1,
        &["a"],
    )]);
    assert_eq!(got(&mut a, &req("a", "web")), one("team-a", "192.0.2.0"));
    let err = a.assign(&req("b", "web")).unwrap_err();
    assert!(
        matches!(&err, AllocError::NoMatchingPool(m) if m.contains("namespace b")),
        "{err}"
    );
    // A pool without serviceAllocation takes the others, and only them.
    a.set_pools(vec![
        with_alloc(pool("team-a", &["192.0.2.0/30"]), 1, &["a"]),
        pool("0-shared", &["198.51.100.0/30"]),
    ]);
    assert_eq!(got(&mut a, &req("b", "web")).0, "0-shared");
    assert_eq!(
        got(&mut a, &req("a", "api")).0,
        "team-a",
        "matching serviceAllocation comes before fallback"
    );
}

#[test]
fn namespace_and_service_selectors() {
    let mut by_ns = with_alloc(pool("prod", &["192.0.2.0/30"]), 1, &[]);
    by_ns.allocation.as_mut().unwrap().namespace_selectors = selectors(&[("env", "prod")]);
    let mut by_svc = with_alloc(pool("dns", &["198.51.100.0/30"]), 1, &[]);
    by_svc.allocation.as_mut().unwrap().service_selectors = selectors(&[("app", "dns")]);
    let mut a = Allocator::new(vec![by_ns, by_svc]);

    let mut r = req("shop", "web");
    r.namespace_labels = labels(&[("env", "prod")]);
    assert_eq!(got(&mut a, &r).0, "prod");

    let mut r = req("shop", "resolver");
    r.labels = labels(&[("app", "dns")]);
    assert_eq!(got(&mut a, &r).0, "dns");

    let err = a.assign(&req("shop", "other")).unwrap_err();
    assert!(matches!(err, AllocError::NoMatchingPool(_)));
    // Explicit requests cannot bypass serviceAllocation either.
    let err = a
        .assign(&annotated(req("shop", "other"), "dns"))
        .unwrap_err();
    assert_eq!(err, AllocError::PoolNotAllowed { pool: "dns".into() });
    let err = a
        .assign(&requesting(req("shop", "other"), &["192.0.2.3"]))
        .unwrap_err();
    assert_eq!(
        err,
        AllocError::PoolNotAllowed {
            pool: "prod".into()
        }
    );
}

#[test]
fn auto_assign_false_only_by_annotation_or_request() {
    let mut a = Allocator::new(vec![manual(pool("reserved", &["192.0.2.0/30"]))]);
    assert!(matches!(
        a.assign(&req("ns", "auto")),
        Err(AllocError::NoMatchingPool(_))
    ));
    assert_eq!(
        got(&mut a, &annotated(req("ns", "by-pool"), "reserved")),
        one("reserved", "192.0.2.0")
    );
    assert_eq!(
        got(&mut a, &requesting(req("ns", "by-ip"), &["192.0.2.3"])),
        one("reserved", "192.0.2.3")
    );
}

#[test]
fn annotation_errors() {
    let mut a = Allocator::new(vec![
        pool("a", &["192.0.2.0/32"]),
        pool("b", &["198.51.100.0/32"]),
    ]);
    assert_eq!(
        a.assign(&annotated(req("ns", "x"), "nope")),
        Err(AllocError::UnknownPool("nope".into()))
    );
    assert_eq!(
        got(&mut a, &annotated(req("ns", "x"), "b")),
        one("b", "198.51.100.0")
    );
    assert_eq!(
        a.assign(&annotated(req("ns", "y"), "b")),
        Err(AllocError::PoolFull("b".into(), "IPv4".into()))
    );
}

#[test]
fn requested_ips() {
    let mut a = Allocator::new(vec![
        pool("a", &["192.0.2.0/29", "2001:db8::/126"]),
        pool("b", &["198.51.100.0/29"]),
    ]);
    assert_eq!(
        a.assign(&requesting(req("ns", "x"), &["203.0.113.1"])),
        Err(AllocError::NotInAnyPool {
            ip: ip("203.0.113.1")
        })
    );
    assert_eq!(
        a.assign(&annotated(
            requesting(req("ns", "x"), &["198.51.100.3"]),
            "a"
        )),
        Err(AllocError::PoolMismatch {
            ip: ip("198.51.100.3"),
            pool: "b".into(),
            annotated: "a".into()
        })
    );
    assert_eq!(
        got(
            &mut a,
            &annotated(requesting(req("ns", "x"), &["198.51.100.3"]), "b")
        ),
        one("b", "198.51.100.3")
    );
    // Request order is kept, even IPv6 first.
    let dual = fam(
        requesting(req("ns", "d"), &["2001:db8::2", "192.0.2.5"]),
        Families::RequireDual,
    );
    assert_eq!(
        got(&mut a, &dual),
        ("a".into(), vec!["2001:db8::2".into(), "192.0.2.5".into()])
    );

    let bad = |r: ServiceRequest| {
        matches!(
            Allocator::new(vec![pool("a", &["192.0.2.0/29"])]).assign(&r),
            Err(AllocError::BadRequest(_))
        )
    };
    assert!(
        bad(requesting(req("ns", "x"), &["192.0.2.1", "192.0.2.2"])),
        "two of one family"
    );
    assert!(
        bad(requesting(
            req("ns", "x"),
            &["192.0.2.1", "2001:db8::1", "192.0.2.3"]
        )),
        "three"
    );
    assert!(
        bad(requesting(req("ns", "x"), &["2001:db8::1"])),
        "IPv6 for an IPv4 service"
    );
    assert!(
        bad(fam(
            requesting(req("ns", "x"), &["192.0.2.1"]),
            Families::RequireDual
        )),
        "dual needs two"
    );
    assert!(
        bad(requesting(req("ns", "x"), &["192.0.2.1", "2001:db8::1"])),
        "two for a single-stack service"
    );
    // Addresses from two pools.
    let split = fam(
        requesting(req("ns", "s"), &["198.51.100.1", "2001:db8::1"]),
        Families::RequireDual,
    );
    let err = a.assign(&split).unwrap_err();
    assert!(
        matches!(&err, AllocError::BadRequest(m) if m.contains("different pools")),
        "{err}"
    );
}

#[test]
fn requested_ip_in_use_is_an_error_naming_the_holder_and_changes_nothing() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/30"])]);
    assert_eq!(got(&mut a, &req("ns", "first")), one("a", "192.0.2.0"));
    assert_eq!(got(&mut a, &req("ns", "second")), one("a", "192.0.2.1"));
    let err = a
        .assign(&requesting(req("ns", "second"), &["192.0.2.0"]))
        .unwrap_err();
    assert!(
        matches!(&err, AllocError::InUse { ip: i, by } if *i == ip("192.0.2.0") && by.starts_with("ns/first")),
        "{err}"
    );
    assert_eq!(
        a.assignment(&key("ns", "second")).unwrap().ips,
        ips(&["192.0.2.1"])
    );
    assert_eq!(a.users_of(&ip("192.0.2.1")).count(), 1);
    assert_eq!(a.pool_stats("a").unwrap().assigned_v4, 2);
}

#[test]
fn avoid_buggy_ips() {
    let mut a = Allocator::new(vec![avoid_buggy(pool(
        "a",
        &["198.51.100.254-198.51.101.1"],
    ))]);
    assert_eq!(a.pool_stats("a").unwrap().available_v4, 2);
    assert_eq!(got(&mut a, &req("ns", "x")), one("a", "198.51.100.254"));
    assert_eq!(got(&mut a, &req("ns", "y")), one("a", "198.51.101.1"));
    assert_eq!(
        a.assign(&req("ns", "z")),
        Err(AllocError::PoolFull("a".into(), "IPv4".into()))
    );
    let err = a
        .assign(&requesting(req("ns", "z"), &["198.51.101.0"]))
        .unwrap_err();
    assert!(matches!(err, AllocError::BadRequest(m) if m.contains("avoidBuggyIPs")));
    let s = a.pool_stats("a").unwrap();
    assert_eq!((s.assigned_v4, s.available_v4), (2, 0));
    // IPv6 is never "buggy".
    let mut b = Allocator::new(vec![avoid_buggy(pool(
        "b",
        &["2001:db8::ff-2001:db8::100"],
    ))]);
    assert_eq!(got(&mut b, &v6(req("ns", "x"))), one("b", "2001:db8::ff"));
    assert_eq!(b.pool_stats("b").unwrap().available_v6, 1);
}

#[test]
fn avoid_buggy_on_a_big_pool_stays_cheap() {
    let mut a = Allocator::new(vec![avoid_buggy(pool("a", &["10.0.0.0/16"]))]);
    assert_eq!(a.pool_stats("a").unwrap().available_v4, 65536 - 512);
    for i in 0..1000 {
        let (_, got_ips) = got(&mut a, &req("ns", &format!("s{i}")));
        let last = got_ips[0].rsplit('.').next().unwrap().to_string();
        assert!(last != "0" && last != "255", "{got_ips:?}");
    }
    assert_eq!(a.footprint().free_intervals, 1);
    assert_eq!(a.pool_stats("a").unwrap().available_v4, 65536 - 512 - 1000);
}

// ---------------------------------------------------------------- dual-stack

#[test]
fn require_dual_takes_both_from_one_pool() {
    let mut a = Allocator::new(vec![
        pool("a-v4-only", &["192.0.2.0/30"]),
        pool("b-dual", &["2001:db8::/126", "198.51.100.0/30"]),
    ]);
    let r = fam(req("ns", "d"), Families::RequireDual);
    assert_eq!(
        got(&mut a, &r),
        (
            "b-dual".into(),
            vec!["198.51.100.0".into(), "2001:db8::".into()]
        )
    );
    let mut only_v4 = Allocator::new(vec![pool("a", &["192.0.2.0/30"])]);
    assert_eq!(
        only_v4.assign(&r),
        Err(AllocError::PoolFull("a".into(), "IPv6".into()))
    );
}

#[test]
fn prefer_dual_degrades_then_extends_from_the_same_pool() {
    let mut a = Allocator::new(vec![
        pool("a", &["192.0.2.0/30", "2001:db8::1/128"]),
        pool("b", &["2001:db8:1::/120"]),
    ]);
    // Takes the only IPv6 of "a".
    let hog = fam(req("ns", "hog"), Families::RequireDual);
    assert_eq!(got(&mut a, &hog).1, vec!["192.0.2.0", "2001:db8::1"]);

    let r = fam(
        req("ns", "pref"),
        Families::PreferDual {
            primary: Family::V4,
        },
    );
    let o = a.assign(&r).unwrap();
    assert_eq!(
        o.assignment,
        Assignment {
            pool: "a".into(),
            ips: ips(&["192.0.2.1"])
        }
    );
    assert_eq!(o.change, Change::New);
    assert_eq!(o.notes.len(), 1, "{:?}", o.notes);

    // Still no IPv6 in "a": unchanged, with a note; never from "b".
    let o = a.assign(&r).unwrap();
    assert_eq!(o.change, Change::Unchanged);
    assert!(o.notes[0].contains("IPv6"), "{:?}", o.notes);

    a.release(&key("ns", "hog"));
    let o = a.assign(&r).unwrap();
    assert_eq!(o.change, Change::Extended);
    assert_eq!(
        o.assignment,
        Assignment {
            pool: "a".into(),
            ips: ips(&["192.0.2.1", "2001:db8::1"])
        }
    );
    assert!(o.notes.is_empty());
}

#[test]
fn prefer_dual_prefers_a_pool_with_both_then_primary_then_secondary() {
    let mut a = Allocator::new(vec![
        pool("a-v4", &["192.0.2.0/30"]),
        pool("b-v6", &["2001:db8::/126"]),
        pool("c-dual", &["198.51.100.0/30", "2001:db8:1::/126"]),
    ]);
    let r = fam(
        req("ns", "x"),
        Families::PreferDual {
            primary: Family::V6,
        },
    );
    assert_eq!(got(&mut a, &r).0, "c-dual");
    let mut b = Allocator::new(vec![
        pool("a-v4", &["192.0.2.0/30"]),
        pool("b-v6", &["2001:db8::/126"]),
    ]);
    assert_eq!(got(&mut b, &r), one("b-v6", "2001:db8::"));
    let r4 = fam(
        req("ns", "y"),
        Families::PreferDual {
            primary: Family::V4,
        },
    );
    assert_eq!(got(&mut b, &r4), one("a-v4", "192.0.2.0"));
    let mut c = Allocator::new(vec![pool("a-v4", &["192.0.2.0/30"])]);
    assert_eq!(
        got(&mut c, &r),
        one("a-v4", "192.0.2.0"),
        "secondary when no primary"
    );
}

#[test]
fn dual_to_single_keeps_the_family_asked_for() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/30", "2001:db8::/126"])]);
    let dual = fam(req("ns", "x"), Families::RequireDual);
    assert_eq!(got(&mut a, &dual).1, vec!["192.0.2.0", "2001:db8::"]);
    let o = a.assign(&v6(req("ns", "x"))).unwrap();
    assert_eq!(o.assignment.ips, ips(&["2001:db8::"]));
    assert!(
        matches!(o.change, Change::Moved { ref from, .. } if *from == ips(&["192.0.2.0", "2001:db8::"]))
    );
    assert_eq!(a.users_of(&ip("192.0.2.0")).count(), 0);
    // Back to RequireDual: the IPv6 address stays and IPv4 is added.
    let o = a.assign(&dual).unwrap();
    assert_eq!(o.change, Change::Extended);
    assert_eq!(o.assignment.ips, ips(&["192.0.2.0", "2001:db8::"]));
}

// ---------------------------------------------------------------- sharing

#[test]
fn same_key_shares_different_key_does_not() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/30"])]);
    let tcp = sharing(req("ns", "dns-tcp"), "dns", &[("TCP", 53)]);
    let udp = sharing(req("ns", "dns-udp"), "dns", &[("UDP", 53)]);
    assert_eq!(got(&mut a, &tcp), one("a", "192.0.2.0"));
    assert_eq!(got(&mut a, &udp), one("a", "192.0.2.0"));
    assert_eq!(a.users_of(&ip("192.0.2.0")).count(), 2);
    assert_eq!(
        a.pool_stats("a").unwrap().assigned_v4,
        1,
        "a shared address counts once"
    );

    let other = requesting(
        sharing(req("ns", "other"), "web", &[("TCP", 8080)]),
        &["192.0.2.0"],
    );
    let err = a.assign(&other).unwrap_err();
    assert!(
        matches!(&err, AllocError::InUse { by, .. } if by.contains("\"dns\"")),
        "{err}"
    );
    let unshared = requesting(req("ns", "plain"), &["192.0.2.0"]);
    assert!(matches!(a.assign(&unshared), Err(AllocError::InUse { .. })));
    // Automatic allocation without a compatible key goes elsewhere.
    assert_eq!(
        got(&mut a, &sharing(req("ns", "other"), "web", &[("TCP", 53)])),
        one("a", "192.0.2.1")
    );

    // Releasing one sharer keeps the address for the other.
    a.release(&key("ns", "dns-tcp"));
    assert_eq!(
        a.users_of(&ip("192.0.2.0")).collect::<Vec<_>>(),
        vec![&key("ns", "dns-udp")]
    );
    assert_eq!(a.pool_stats("a").unwrap().assigned_v4, 2);
}

#[test]
fn port_collision_and_backend_mismatch() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/30"])]);
    assert_eq!(
        got(&mut a, &sharing(req("ns", "a"), "k", &[("TCP", 80)])),
        one("a", "192.0.2.0")
    );
    let clash = requesting(
        sharing(req("ns", "b"), "k", &[("TCP", 443), ("TCP", 80)]),
        &["192.0.2.0"],
    );
    assert_eq!(
        a.assign(&clash),
        Err(AllocError::PortInUse {
            ip: ip("192.0.2.0"),
            port: "TCP/80".into(),
            by: "ns/a".into()
        })
    );
    // Same port, other protocol: fine.
    let udp = requesting(sharing(req("ns", "b"), "k", &[("UDP", 80)]), &["192.0.2.0"]);
    assert_eq!(got(&mut a, &udp), one("a", "192.0.2.0"));
    // Automatic allocation skips the address whose port is taken.
    assert_eq!(
        got(&mut a, &sharing(req("ns", "c"), "k", &[("TCP", 80)])),
        one("a", "192.0.2.1")
    );

    let mut local = requesting(
        sharing(req("ns", "d"), "k", &[("TCP", 9000)]),
        &["192.0.2.0"],
    );
    local.backend_key = "app=x".into();
    let err = a.assign(&local).unwrap_err();
    assert!(
        matches!(&err, AllocError::InUse { by, .. } if by.contains("other pods")),
        "{err}"
    );
}

#[test]
fn sharing_service_packs_onto_a_compatible_address_before_a_free_one() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/29"])]);
    assert_eq!(got(&mut a, &req("ns", "plain")), one("a", "192.0.2.0"));
    assert_eq!(
        got(&mut a, &sharing(req("ns", "s1"), "k", &[("TCP", 1)])),
        one("a", "192.0.2.1")
    );
    a.release(&key("ns", "plain"));
    // .0 is free and lower, but .1 already carries key k.
    assert_eq!(
        got(&mut a, &sharing(req("ns", "s2"), "k", &[("TCP", 2)])),
        one("a", "192.0.2.1")
    );
    assert_eq!(
        got(&mut a, &sharing(req("ns", "s3"), "other", &[("TCP", 3)])),
        one("a", "192.0.2.0")
    );
}

#[test]
fn sharing_key_changes_only_while_sole_user() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/30"])]);
    assert_eq!(
        got(&mut a, &sharing(req("ns", "a"), "k", &[("TCP", 1)])),
        one("a", "192.0.2.0")
    );
    // Sole user: the key changes in place.
    let o = a
        .assign(&sharing(req("ns", "a"), "k2", &[("TCP", 1)]))
        .unwrap();
    assert_eq!(o.change, Change::Unchanged);
    assert_eq!(
        got(&mut a, &sharing(req("ns", "b"), "k2", &[("TCP", 2)])),
        one("a", "192.0.2.0")
    );
    // Now shared: a may not take another key on that address.
    let o = a
        .assign(&sharing(req("ns", "a"), "k3", &[("TCP", 1)]))
        .unwrap();
    assert_eq!(o.assignment.ips, ips(&["192.0.2.1"]));
    assert!(
        matches!(&o.change, Change::Moved { reason, .. } if reason.contains("ns/b")),
        "{:?}",
        o.change
    );
    let err = a
        .assign(&requesting(
            sharing(req("ns", "a"), "k3", &[("TCP", 1)]),
            &["192.0.2.0"],
        ))
        .unwrap_err();
    assert!(matches!(err, AllocError::InUse { .. }));
    // Sharing Service holding the address alone can drop the key, and then nobody joins.
    a.release(&key("ns", "a"));
    a.assign(&req("ns", "b")).unwrap();
    let err = a
        .assign(&requesting(
            sharing(req("ns", "c"), "k2", &[("TCP", 3)]),
            &["192.0.2.0"],
        ))
        .unwrap_err();
    assert!(
        matches!(&err, AllocError::InUse { by, .. } if by.contains("does not allow sharing")),
        "{err}"
    );
}

#[test]
fn empty_sharing_key_means_no_sharing() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/30"])]);
    let mut x = req("ns", "x");
    x.sharing_key = Some(String::new());
    x.ports = vec![Port {
        protocol: "TCP".into(),
        port: 1,
    }];
    assert_eq!(got(&mut a, &x), one("a", "192.0.2.0"));
    let mut y = requesting(req("ns", "y"), &["192.0.2.0"]);
    y.sharing_key = Some(String::new());
    y.ports = vec![Port {
        protocol: "TCP".into(),
        port: 2,
    }];
    assert!(matches!(a.assign(&y), Err(AllocError::InUse { .. })));
}

// ---------------------------------------------------------------- pool edits

#[test]
fn assignments_survive_reorder_rename_and_edits_that_keep_the_address() {
    let mut a = Allocator::new(vec![
        pool("a", &["192.0.2.0/29"]),
        pool("b", &["198.51.100.0/29"]),
    ]);
    let r = req("ns", "x");
    assert_eq!(got(&mut a, &r), one("a", "192.0.2.0"));
    // Renamed, moved after "b" in order, and widened.
    let dropped = a.set_pools(vec![
        pool("z", &["198.51.100.64/29", "192.0.2.0/28"]),
        pool("b", &["198.51.100.0/29"]),
    ]);
    assert!(dropped.is_empty());
    assert_eq!(a.assignment(&r.key).unwrap().pool, "z");
    let o = a.assign(&r).unwrap();
    assert_eq!(
        (o.change, o.assignment.pool.as_str()),
        (Change::Unchanged, "z")
    );
    assert_eq!(a.pool_stats("z").unwrap().assigned_v4, 1);
    assert_eq!(a.pool_stats("z").unwrap().available_v4, 8 + 16 - 1);
    // Split: the address now lives in its own pool.
    let dropped = a.set_pools(vec![
        pool("z", &["192.0.2.8/29"]),
        pool("y", &["192.0.2.0/29"]),
    ]);
    assert!(dropped.is_empty());
    assert_eq!(a.pool_of(&ip("192.0.2.0")), Some("y"));
    assert_eq!(a.assign(&r).unwrap().assignment.pool, "y");
}

#[test]
fn edit_that_removes_the_address_moves_the_service_with_a_reason() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/29"])]);
    let r = req("ns", "x");
    assert_eq!(got(&mut a, &r), one("a", "192.0.2.0"));
    assert_eq!(got(&mut a, &req("ns", "y")), one("a", "192.0.2.1"));
    let dropped = a.set_pools(vec![pool("a", &["192.0.2.1-192.0.2.7"])]);
    assert_eq!(
        dropped,
        vec![(
            key("ns", "x"),
            Assignment {
                pool: "a".into(),
                ips: ips(&["192.0.2.0"])
            }
        )]
    );
    assert_eq!(a.assignment(&r.key), None);
    let o = a.assign(&current(r, &["192.0.2.0"])).unwrap();
    assert_eq!(o.assignment.ips, ips(&["192.0.2.2"]));
    assert_eq!(
        o.change,
        Change::Moved {
            from: ips(&["192.0.2.0"]),
            reason: "192.0.2.0 is no longer in any pool".into()
        }
    );
    assert_eq!(
        a.assignment(&key("ns", "y")).unwrap().ips,
        ips(&["192.0.2.1"])
    );
}

#[test]
fn turning_on_avoid_buggy_ips_drops_dot_zero() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/29"])]);
    assert_eq!(got(&mut a, &req("ns", "x")), one("a", "192.0.2.0"));
    assert_eq!(got(&mut a, &req("ns", "y")), one("a", "192.0.2.1"));
    let dropped = a.set_pools(vec![avoid_buggy(pool("a", &["192.0.2.0/29"]))]);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].0, key("ns", "x"));
    let o = a.assign(&current(req("ns", "x"), &["192.0.2.0"])).unwrap();
    assert_eq!(o.assignment.ips, ips(&["192.0.2.2"]));
    assert!(matches!(&o.change, Change::Moved { reason, .. } if reason.contains("avoidBuggyIPs")));
}

#[test]
fn service_allocation_edit_drops_services_no_longer_admitted() {
    let mut a = Allocator::new(vec![
        with_alloc(pool("a", &["192.0.2.0/29"]), 1, &["x", "y"]),
        pool("b", &["198.51.100.0/29"]),
    ]);
    let mut rx = req("x", "s");
    rx.labels = labels(&[("app", "s")]);
    assert_eq!(got(&mut a, &rx).0, "a");
    assert_eq!(got(&mut a, &req("y", "s")).0, "a");
    let dropped = a.set_pools(vec![
        with_alloc(pool("a", &["192.0.2.0/29"]), 1, &["y"]),
        pool("b", &["198.51.100.0/29"]),
    ]);
    assert_eq!(
        dropped.iter().map(|d| &d.0).collect::<Vec<_>>(),
        vec![&key("x", "s")]
    );
    let o = a.assign(&current(rx.clone(), &["192.0.2.0"])).unwrap();
    assert_eq!(o.assignment.pool, "b");
    assert!(
        matches!(&o.change, Change::Moved { reason, .. } if reason.contains("serviceAllocation"))
    );
    // Service selectors are checked against the labels the Service was assigned with.
    let mut with_sel = with_alloc(pool("c", &["203.0.113.0/29"]), 1, &[]);
    with_sel.allocation.as_mut().unwrap().service_selectors = selectors(&[("app", "s")]);
    let mut b = Allocator::new(vec![with_sel.clone()]);
    assert_eq!(got(&mut b, &rx).0, "c");
    assert!(b.set_pools(vec![with_sel]).is_empty());
}

#[test]
fn moves_say_why() {
    let mut a = Allocator::new(vec![
        pool("a", &["192.0.2.0/29"]),
        manual(pool("b", &["198.51.100.0/29"])),
    ]);
    let r = req("ns", "x");
    got(&mut a, &r);
    let o = a.assign(&requesting(r.clone(), &["192.0.2.5"])).unwrap();
    assert_eq!(
        o.change,
        Change::Moved {
            from: ips(&["192.0.2.0"]),
            reason: "the requested IP changed to 192.0.2.5".into()
        }
    );
    // No request any more: the address is kept.
    assert_eq!(a.assign(&r).unwrap().change, Change::Unchanged);
    let o = a.assign(&annotated(r.clone(), "b")).unwrap();
    assert_eq!(
        o.assignment,
        Assignment {
            pool: "b".into(),
            ips: ips(&["198.51.100.0"])
        }
    );
    assert_eq!(
        o.change,
        Change::Moved {
            from: ips(&["192.0.2.5"]),
            reason: "pool annotation changed to b".into()
        }
    );
    assert_eq!(
        a.users_of(&ip("192.0.2.5")).count(),
        0,
        "the old address is let go"
    );
}

#[test]
fn failed_move_keeps_the_old_address() {
    let mut a = Allocator::new(vec![
        pool("a", &["192.0.2.0/32"]),
        pool("b", &["198.51.100.0/32"]),
    ]);
    got(&mut a, &req("ns", "x"));
    got(&mut a, &req("ns", "y"));
    assert_eq!(
        a.assign(&annotated(req("ns", "x"), "b")),
        Err(AllocError::PoolFull("b".into(), "IPv4".into()))
    );
    assert_eq!(
        a.assignment(&key("ns", "x")).unwrap().ips,
        ips(&["192.0.2.0"])
    );
    assert_eq!(a.pool_stats("a").unwrap().assigned_v4, 1);
}

// ---------------------------------------------------------------- restart

fn restart_fixture() -> (Vec<PoolConfig>, Vec<ServiceRequest>) {
    let pools = vec![
        pool("a", &["192.0.2.0/29"]),
        pool("b", &["198.51.100.0/29", "2001:db8::/125"]),
    ];
    let mut reqs = vec![
        req("ns", "s0"),
        req("ns", "s1"),
        annotated(req("ns", "s2"), "b"),
        fam(req("ns", "s3"), Families::RequireDual),
        sharing(req("ns", "s4"), "k", &[("TCP", 1)]),
        sharing(req("ns", "s5"), "k", &[("TCP", 2)]),
    ];
    let mut a = Allocator::new(pools.clone());
    got(&mut a, &req("ns", "filler"));
    for r in &reqs {
        a.assign(r).unwrap();
    }
    // s1 released its first address once: holes make "first free" differ from status.
    a.release(&key("ns", "filler"));
    for r in &mut reqs {
        r.current = a.assignment(&r.key).unwrap().ips.clone();
    }
    (pools, reqs)
}

#[test]
fn restart_reclaims_current_in_any_order() {
    let (pools, reqs) = restart_fixture();
    for rotation in 0..reqs.len() {
        let mut order = reqs.clone();
        order.rotate_left(rotation);
        order.swap(0, rotation % 3);
        let mut a = Allocator::new(pools.clone());
        for r in &order {
            let o = a.assign(r).unwrap();
            assert_eq!(o.change, Change::Unchanged, "{}", r.key);
            assert_eq!(o.assignment.ips, r.current);
        }
    }
}

#[test]
fn assign_all_never_lets_a_new_service_steal_a_reclaimed_address() {
    let (pools, mut reqs) = restart_fixture();
    reqs.push(req("aa", "new")); // sorts first by key
    for rotation in 0..reqs.len() {
        let mut order = reqs.clone();
        order.rotate_left(rotation);
        let mut a = Allocator::new(pools.clone());
        let results = a.assign_all(&order);
        assert_eq!(results.len(), order.len());
        for ((k, res), r) in results.iter().zip(&order) {
            assert_eq!(k, &r.key, "input order kept");
            let o = res.as_ref().unwrap();
            if r.key.name == "new" {
                assert_eq!(o.change, Change::New);
                assert_eq!(
                    o.assignment.ips,
                    ips(&["192.0.2.0"]),
                    "the hole, not someone's address"
                );
            } else {
                assert_eq!(o.change, Change::Unchanged, "{}", r.key);
                assert_eq!(o.assignment.ips, r.current);
            }
        }
    }
}

#[test]
fn conflicting_statuses_resolve_the_same_way_whatever_the_order() {
    let pools = vec![pool("a", &["192.0.2.0/29"])];
    let x = current(req("ns", "x"), &["192.0.2.3"]);
    let y = current(req("ns", "y"), &["192.0.2.3"]);
    let mut first = Allocator::new(pools.clone());
    let r1 = first.assign_all([&y, &x]);
    let mut second = Allocator::new(pools);
    let r2 = second.assign_all([&x, &y]);
    assert_eq!(first.assignment(&x.key), second.assignment(&x.key));
    assert_eq!(first.assignment(&y.key), second.assignment(&y.key));
    let (winner, loser) = if first.assignment(&x.key).unwrap().ips == ips(&["192.0.2.3"]) {
        (&x.key, &y.key)
    } else {
        (&y.key, &x.key)
    };
    assert_eq!(first.assignment(winner).unwrap().ips, ips(&["192.0.2.3"]));
    assert_eq!(winner, &x.key, "the smaller key keeps the address");
    for results in [&r1, &r2] {
        let moved = results
            .iter()
            .find(|(k, _)| k == loser)
            .unwrap()
            .1
            .as_ref()
            .unwrap();
        assert!(
            matches!(&moved.change, Change::Moved { reason, .. } if reason.contains(&winner.to_string())),
            "{moved:?}"
        );
        let kept = results
            .iter()
            .find(|(k, _)| k == winner)
            .unwrap()
            .1
            .as_ref()
            .unwrap();
        assert_eq!(kept.change, Change::Unchanged);
    }
}

// ---------------------------------------------------------------- release, stats, cost

#[test]
fn release_frees_the_address_for_reuse() {
    let mut a = Allocator::new(vec![pool("a", &["192.0.2.0/30"])]);
    assert_eq!(got(&mut a, &req("ns", "x")), one("a", "192.0.2.0"));
    assert_eq!(got(&mut a, &req("ns", "y")), one("a", "192.0.2.1"));
    assert_eq!(a.release(&key("ns", "x")).unwrap().ips, ips(&["192.0.2.0"]));
    assert_eq!(a.release(&key("ns", "x")), None);
    assert_eq!(got(&mut a, &req("ns", "z")), one("a", "192.0.2.0"));
    let s = a.pool_stats("a").unwrap();
    assert_eq!((s.assigned_v4, s.available_v4), (2, 2));
}

#[test]
fn ipv6_slash_64_costs_only_what_is_used() {
    let mut a = Allocator::new(vec![pool("v6", &["2001:db8::/64"])]);
    assert_eq!(a.footprint().free_intervals, 1);
    for i in 0..10_000 {
        a.assign(&v6(req("ns", &format!("s{i}")))).unwrap();
    }
    let f = a.footprint();
    assert_eq!(
        (f.services, f.addresses_in_use, f.free_intervals),
        (10_000, 10_000, 1)
    );
    let s = a.pool_stats("v6").unwrap();
    assert_eq!(
        (s.assigned_v6, s.available_v6),
        (10_000, (1u128 << 64) - 10_000)
    );
    // A pool edit rebuilds the free sets from what is in use: still one interval.
    assert!(a.set_pools(vec![pool("v6", &["2001:db8::/64"])]).is_empty());
    assert_eq!(a.footprint().free_intervals, 1);
    assert_eq!(
        got(&mut a, &v6(req("ns", "one-more"))),
        one("v6", "2001:db8::2710")
    );
    a.release(&key("ns", "one-more"));
    // Holes cost one interval each, and close again.
    for i in (0..10_000).step_by(2) {
        a.release(&key("ns", &format!("s{i}")));
    }
    assert_eq!(a.footprint().free_intervals, 5_001);
    for i in (0..10_000).step_by(2) {
        a.assign(&v6(req("ns", &format!("s{i}")))).unwrap();
    }
    assert_eq!(a.footprint().free_intervals, 1);
    let mut all = Allocator::new(vec![pool("all", &["::/0"])]);
    assert_eq!(all.pool_stats("all").unwrap().available_v6, u128::MAX);
    assert_eq!(got(&mut all, &v6(req("ns", "x"))), one("all", "::"));
}

#[test]
fn pool_of_and_overlapping_pools() {
    let mut a = Allocator::new(vec![
        pool("b", &["192.0.2.0/30"]),
        pool("a", &["192.0.2.2/31", "192.0.2.2/32"]),
    ]);
    assert_eq!(a.pool_of(&ip("192.0.2.2")), Some("a"));
    assert_eq!(a.pool_of(&ip("192.0.2.1")), Some("b"));
    assert_eq!(a.pool_of(&ip("192.0.2.4")), None);
    assert_eq!(a.pool_of(&ip("2001:db8::")), None);
    let mut seen = BTreeSet::new();
    for i in 0..4 {
        let (_, got_ips) = got(&mut a, &req("ns", &format!("s{i}")));
        assert!(
            seen.insert(got_ips[0].clone()),
            "{got_ips:?} handed out twice"
        );
    }
    assert!(a.assign(&req("ns", "s4")).is_err());
    assert_eq!(
        a.pool_stats("a").unwrap().assigned_v4 + a.pool_stats("b").unwrap().assigned_v4,
        4
    );
}

#[test]
fn no_pools_at_all() {
    let mut a = Allocator::new(Vec::new());
    assert!(matches!(
        a.assign(&req("ns", "x")),
        Err(AllocError::NoMatchingPool(_))
    ));
    assert_eq!(a.pool_stats("x"), None);
}

// ---------------------------------------------------------------- property-style

/// A small xorshift generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn check_invariants(a: &Allocator) {
    let mut per_ip: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
    for (k, asg) in a.assignments() {
        for i in &asg.ips {
            assert_eq!(
                a.pool_of(i),
                Some(asg.pool.as_str()),
                "{k} holds {i} outside its pool"
            );
            per_ip.entry(*i).or_default().push(k);
        }
        let fams: BTreeSet<Family> = asg.ips.iter().map(Family::of).collect();
        assert_eq!(fams.len(), asg.ips.len(), "{k}: one address per family");
    }
    for (i, users) in &per_ip {
        let mut listed: Vec<&ServiceKey> = a.users_of(i).collect();
        listed.sort();
        let mut users = users.clone();
        users.sort();
        assert_eq!(listed, users, "users of {i}");
        if users.len() > 1 {
            let terms = |k: &ServiceKey| {
                a.held[k]
                    .terms
                    .as_deref()
                    .unwrap_or_else(|| panic!("{i} shared by {k} without a key"))
            };
            let first = terms(users[0]);
            let mut ports = BTreeSet::new();
            for u in &users {
                let t = terms(u);
                assert_eq!(
                    (&t.key, &t.backend_key),
                    (&first.key, &first.backend_key),
                    "{i}: {u}"
                );
                for p in &t.ports {
                    assert!(ports.insert(p.clone()), "{i}: port {p:?} twice");
                }
            }
        }
    }
    // Internal consistency: free sets and the in-use map never overlap, and what the
    // free sets hold (less .0/.255 not yet trimmed) is exactly what stats call available.
    for (addr, u) in &a.in_use {
        let entry = &a.pools[u.pool as usize].entries[u.entry as usize];
        assert!(
            !entry.free.contains(addr.n),
            "{} both used and free",
            addr.ip()
        );
    }
    for pl in &a.pools {
        let mut free = [0u128; 2];
        for e in &pl.entries {
            for (s, l) in e.free.iter() {
                let usable = (s..=l)
                    .filter(|n| !(pl.avoids_buggy(e.family) && matches!(n & 0xff, 0 | 0xff)))
                    .count() as u128;
                free[pool::fam_idx(e.family)] += usable;
            }
        }
        let s = a.pool_stats(pl.name()).unwrap();
        assert_eq!(free, [s.available_v4, s.available_v6], "pool {}", pl.name());
    }
    for p in a.pools() {
        let s = a.pool_stats(&p.name).unwrap();
        let mine: Vec<&IpAddr> = per_ip
            .keys()
            .filter(|i| a.pool_of(i) == Some(p.name.as_str()))
            .collect();
        let v4 = mine.iter().filter(|i| i.is_ipv4()).count() as u128;
        assert_eq!(s.assigned_v4, v4, "pool {}", p.name);
        assert_eq!(s.assigned_v6, mine.len() as u128 - v4, "pool {}", p.name);
        let size = |f: Family| -> u128 {
            p.ranges
                .iter()
                .filter(|r| r.family == f)
                .map(|r| r.size())
                .sum::<u128>()
                - if p.avoid_buggy_ips && f == Family::V4 {
                    2
                } else {
                    0
                }
        };
        assert_eq!(
            s.assigned_v4 + s.available_v4,
            size(Family::V4),
            "pool {}",
            p.name
        );
        assert_eq!(
            s.assigned_v6 + s.available_v6,
            size(Family::V6),
            "pool {}",
            p.name
        );
    }
}

#[test]
fn random_operations_keep_the_invariants() {
    let pools = vec![
        pool("a", &["192.0.2.0/28", "2001:db8::/124"]),
        avoid_buggy(pool("b", &["198.51.100.0/24"])),
        with_alloc(pool("c", &["203.0.113.0/29"]), 1, &["n1"]),
        manual(pool("d", &["203.0.113.64/29"])),
        pool("e", &["2001:db8:1::/120"]),
    ];
    let namespaces = ["n0", "n1", "n2"];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut a = Allocator::new(pools.clone());
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for step in 0..4000 {
        let ns = namespaces[rng.below(3)];
        let name = format!("s{}", rng.below(60));
        match rng.below(10) {
            0..=5 => {
                let mut r = req(ns, &name);
                r.families = match rng.below(5) {
                    0 => Families::Single(Family::V6),
                    1 => Families::RequireDual,
                    2 => Families::PreferDual {
                        primary: Family::V4,
                    },
                    _ => Families::Single(Family::V4),
                };
                if rng.below(3) == 0 {
                    r.sharing_key = Some(["k1", "k2"][rng.below(2)].into());
                    r.ports = vec![Port {
                        protocol: "TCP".into(),
                        port: rng.below(4) as u16,
                    }];
                    if rng.below(4) == 0 {
                        r.backend_key = "app=x".into();
                    }
                }
                match rng.below(8) {
                    0 => r.pool = Some(["a", "b", "c", "d", "x"][rng.below(5)].into()),
                    1 if matches!(r.families, Families::Single(Family::V4)) => {
                        r.requested_ips =
                            vec![IpAddr::from([203, 0, 113, 64 + rng.below(8) as u8])];
                    }
                    _ => {}
                }
                r.current = a
                    .assignment(&r.key)
                    .map(|x| x.ips.clone())
                    .unwrap_or_default();
                let before = a.assignment(&r.key).cloned();
                match a.assign(&r) {
                    Ok(o) => {
                        assert_eq!(a.assignment(&r.key), Some(&o.assignment));
                        let what = match o.change {
                            Change::New => "new",
                            Change::Unchanged => "unchanged",
                            Change::Moved { .. } => "moved",
                            Change::Extended => "extended",
                        };
                        *seen.entry(what).or_default() += 1;
                        if a.users_of(&o.assignment.ips[0]).count() > 1 {
                            *seen.entry("shared").or_default() += 1;
                        }
                    }
                    Err(e) => {
                        assert_eq!(a.assignment(&r.key), before.as_ref(), "error changed state");
                        let what = match e {
                            AllocError::InUse { .. } | AllocError::PortInUse { .. } => "in use",
                            AllocError::PoolFull(..) | AllocError::NoFreeAddress(_) => "full",
                            _ => "other error",
                        };
                        *seen.entry(what).or_default() += 1;
                    }
                }
            }
            6..=8 => {
                a.release(&key(ns, &name));
            }
            _ => {
                // A pool edit: drop or restore pool "a"'s second half.
                let mut edited = pools.clone();
                if step % 2 == 0 {
                    edited[0] = pool("a", &["192.0.2.0/29", "2001:db8::/124"]);
                }
                edited.rotate_left(step % 5);
                for (k, asg) in a.set_pools(edited) {
                    assert!(a.assignment(&k).is_none());
                    assert!(
                        asg.ips.iter().any(|i| a.pool_of(i).is_none()),
                        "{k} dropped needlessly"
                    );
                }
            }
        }
        check_invariants(&a);
    }
    for what in [
        "new",
        "unchanged",
        "moved",
        "extended",
        "shared",
        "in use",
        "full",
        "other error",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "never saw {what}: {seen:?}"
        );
    }
}

#[test]
fn assign_all_extends_and_narrows_reclaimed_services() {
    let pools = vec![pool("a", &["192.0.2.0/30", "2001:db8::/126"])];
    let pref = current(
        fam(
            req("ns", "pref"),
            Families::PreferDual {
                primary: Family::V4,
            },
        ),
        &["192.0.2.1"],
    );
    let was_dual = current(req("ns", "was-dual"), &["192.0.2.2", "2001:db8::2"]);
    let new = fam(req("aa", "new"), Families::RequireDual);
    let mut a = Allocator::new(pools);
    let results = a.assign_all([&new, &pref, &was_dual]);
    let by_key: BTreeMap<&ServiceKey, &Outcome> = results
        .iter()
        .map(|(k, r)| (k, r.as_ref().unwrap()))
        .collect();
    let o = by_key[&pref.key];
    assert_eq!(
        (&o.change, &o.assignment.ips),
        (&Change::Extended, &ips(&["192.0.2.1", "2001:db8::1"]))
    );
    let o = by_key[&was_dual.key];
    assert_eq!(o.assignment.ips, ips(&["192.0.2.2"]));
    assert!(
        matches!(&o.change, Change::Moved { reason, .. } if reason.contains("single-stack IPv4")),
        "{o:?}"
    );
    // The new Service took neither reclaimed address (extensions are new allocations,
    // in key order: "aa/new" before "ns/pref"); 2001:db8::2 was let go.
    let o = by_key[&new.key];
    assert_eq!(o.change, Change::New);
    assert_eq!(o.assignment.ips, ips(&["192.0.2.0", "2001:db8::"]));
    assert_eq!(a.users_of(&ip("2001:db8::2")).count(), 0);
    let s = a.pool_stats("a").unwrap();
    assert_eq!((s.assigned_v4, s.assigned_v6), (3, 2));
}

#[test]
fn labels_and_ports_follow_the_latest_request() {
    let mut sel = with_alloc(pool("edge", &["192.0.2.0/30"]), 1, &[]);
    sel.allocation.as_mut().unwrap().service_selectors = selectors(&[("tier", "edge")]);
    let mut a = Allocator::new(vec![sel.clone(), pool("z", &["198.51.100.0/30"])]);
    let mut r = sharing(req("ns", "x"), "k", &[("TCP", 80)]);
    r.labels = labels(&[("tier", "edge")]);
    assert_eq!(got(&mut a, &r).0, "edge");
    // Same labels on reassign, new port: the new port is what others collide with.
    let r2 = sharing(r.clone(), "k", &[("TCP", 81)]);
    assert_eq!(a.assign(&r2).unwrap().change, Change::Unchanged);
    let y = requesting(sharing(req("ns", "y"), "k", &[("TCP", 80)]), &["192.0.2.0"]);
    let mut y = y;
    y.labels = labels(&[("tier", "edge")]);
    assert_eq!(got(&mut a, &y), one("edge", "192.0.2.0"));
    // Labels changed away from the selector: a pool edit now drops x.
    let mut r3 = r2.clone();
    r3.labels = labels(&[("tier", "inner")]);
    let o = a.assign(&r3).unwrap();
    assert!(
        matches!(&o.change, Change::Moved { reason, .. } if reason.contains("serviceAllocation")),
        "{o:?}"
    );
    assert_eq!(o.assignment.pool, "z");
}

#[test]
fn reclaim_then_assign_one_at_a_time_never_steals() {
    // x's status address (.0) is no longer handed out, so x must move; the first
    // address it could take is .1, which y's status holds.
    let pools = vec![avoid_buggy(pool("a", &["192.0.2.0/29"]))];
    let x = current(req("ns", "x"), &["192.0.2.0"]);
    let y = current(req("ns", "y"), &["192.0.2.1"]);

    // Assigning without reclaiming first: x takes y's address, y has to move.
    let mut naive = Allocator::new(pools.clone());
    assert_eq!(
        naive.assign(&x).unwrap().assignment.ips,
        ips(&["192.0.2.1"])
    );
    assert!(matches!(
        naive.assign(&y).unwrap().change,
        Change::Moved { .. }
    ));

    let mut a = Allocator::new(pools);
    assert!(!a.reclaim(&x), ".0 no longer satisfies x");
    assert!(a.reclaim(&y));
    assert!(!a.reclaim(&y), "already held");
    let o = a.assign(&x).unwrap();
    assert_eq!(o.assignment.ips, ips(&["192.0.2.2"]));
    assert!(
        matches!(&o.change, Change::Moved { reason, .. } if reason.contains("avoidBuggyIPs")),
        "{o:?}"
    );
    let o = a.assign(&y).unwrap();
    assert_eq!(
        (o.change, o.assignment.ips),
        (Change::Unchanged, ips(&["192.0.2.1"]))
    );

    // Narrowing is left to assign, which reports the move.
    let mut b = Allocator::new(vec![pool("a", &["192.0.2.0/30", "2001:db8::/126"])]);
    let narrowed = current(req("ns", "n"), &["192.0.2.0", "2001:db8::"]);
    assert!(!b.reclaim(&narrowed));
    assert!(matches!(
        b.assign(&narrowed).unwrap().change,
        Change::Moved { .. }
    ));
}
