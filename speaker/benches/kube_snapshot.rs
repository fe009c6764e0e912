//! What one change costs the Kubernetes source: after every batch of watch events the
//! speaker rebuilds the whole [`Snapshot`] from its stores and reruns the election.
//!
//! `cargo bench -p ferrolb-speaker --bench kube_snapshot [-- --services N] [--nodes N]
//! [--rounds N]`
//!
//! The cluster: N LoadBalancer Services (one IPv6 address each from one pool, one
//! L2Advertisement), one EndpointSlice per Service with 3 endpoints on random nodes, and
//! the given number of Ready nodes. Printed: time to load the initial lists, then per
//! change (one EndpointSlice updated) the median and worst time of handling the event,
//! rebuilding the snapshot and electing, one rebuild split into its parts (the world,
//! the election), and the process's peak RSS.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferrolb_speaker::election;
use ferrolb_speaker::source::kube::store::{Input, Store};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn from<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).expect("valid object")
}

fn service(i: usize) -> Service {
    from(json!({
        "metadata": {"namespace": "app", "name": format!("svc-{i}"), "uid": format!("u{i}")},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": format!("2001:db8:1::{i:x}")}]}}
    }))
}

fn slice(i: usize, nodes: usize, salt: usize) -> EndpointSlice {
    let eps: Vec<_> = (0..3)
        .map(|k| {
            json!({"addresses": [format!("2001:db8:2::{k}:{i:x}")],
                   "nodeName": format!("node-{}", (i * 7 + k * 13 + salt) % nodes),
                   "conditions": {"ready": true}})
        })
        .collect();
    from(json!({
        "metadata": {"namespace": "app", "name": format!("svc-{i}-x"),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv6",
        "endpoints": eps
    }))
}

fn node(i: usize) -> Node {
    from(json!({
        "metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}")}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": format!("198.51.100.{}", i % 250 + 1)}]}
    }))
}

fn list<K>(items: impl IntoIterator<Item = K>, wrap: fn(Event<K>) -> Input, st: &mut Store) {
    st.handle(wrap(Event::Init));
    for o in items {
        st.handle(wrap(Event::InitApply(o)));
    }
    st.handle(wrap(Event::InitDone));
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let services = arg("--services", 1000);
    let nodes = arg("--nodes", 50).max(1);
    let rounds = arg("--rounds", 50).max(1);

    let began = Instant::now();
    let mut st = Store::new(None);
    list((0..services).map(service), Input::Service, &mut st);
    list(
        (0..services).map(|i| slice(i, nodes, 0)),
        Input::EndpointSlice,
        &mut st,
    );
    list((0..nodes).map(node), Input::Node, &mut st);
    list(
        [from(
            json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
                     "metadata": {"namespace": "ferrolb-system", "name": "lan"},
                     "spec": {"addresses": ["2001:db8:1::/64"]}}),
        )],
        Input::Pool,
        &mut st,
    );
    list(
        [from(
            json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
                     "metadata": {"namespace": "ferrolb-system", "name": "lan"},
                     "spec": {"ipAddressPools": ["lan"]}}),
        )],
        Input::L2Advertisement,
        &mut st,
    );
    list([], Input::BgpAdvertisement, &mut st);
    list([], Input::BgpPeer, &mut st);
    list([], Input::Community, &mut st);
    list([], Input::BfdProfile, &mut st);
    list([], Input::Secret, &mut st);
    assert!(st.listed());
    let snap = st.snapshot();
    let loaded = began.elapsed();
    let live: BTreeSet<String> = snap.world.nodes.keys().cloned().collect();
    let ann = election::announcements(&snap.world, "node-0", &live);
    assert_eq!(snap.world.services.len(), services);

    // One rebuild, by part: the world from the stores, then the election.
    let breakdown;
    {
        let t = Instant::now();
        let snap = st.snapshot();
        let t1 = t.elapsed();
        let ann = election::announcements(&snap.world, "node-0", &live);
        let t2 = t.elapsed();
        std::hint::black_box(ann);
        breakdown = (t1, t2 - t1);
    }
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let t = Instant::now();
        let changed = st.handle(Input::EndpointSlice(Event::Apply(slice(
            r % services,
            nodes,
            // Never a multiple of `nodes`: the endpoints really move.
            1 + r % (nodes - 1).max(1),
        ))));
        let snap = st.snapshot();
        let ann = election::announcements(&snap.world, "node-0", &live);
        times.push(t.elapsed());
        assert!(changed || nodes == 1, "the slice moved endpoints");
        std::hint::black_box(ann);
    }
    times.sort();
    println!(
        "kube source: {services} Services, {services} EndpointSlices (3 endpoints each), {nodes} nodes"
    );
    println!(
        "  initial lists to first snapshot: {:.1} ms (node-0 announces {} addresses)",
        loaded.as_secs_f64() * 1e3,
        ann.l2.len()
    );
    println!(
        "  one EndpointSlice change -> snapshot + election: median {:.2} ms, max {:.2} ms ({rounds} rounds)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  of which: world from the stores {:.2} ms, election {:.2} ms",
        ms(breakdown.0),
        ms(breakdown.1)
    );
    if let Some(kib) = peak_rss_kib() {
        println!("  peak RSS of this process: {:.1} MiB", kib as f64 / 1024.0);
    }
}
