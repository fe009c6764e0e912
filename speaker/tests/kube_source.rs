//! The speaker's Kubernetes source against a scripted API server (a `tower_test` mock
//! behind a real `kube::Client`): the snapshot built from the listed objects, the exact
//! ServiceL2Status, ServiceBGPStatus and Event requests, clean-up on stop, and what
//! happens when the API server goes away.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrolb_speaker::bgp::rib::{AdjRibOut, Conflict, Plan, RouteAttrs};
use ferrolb_speaker::bgp::speaker::SessionSummary;
use ferrolb_speaker::desired::{Desired, Owned};
use ferrolb_speaker::election::{Announcements, BgpAnnouncement, L2Announcement};
use ferrolb_speaker::run::{Report, Reporter};
use ferrolb_speaker::source::kube::{Config, start_with};
use ferrolb_speaker::status::{self, object_name, object_name_of};
use ferrolb_speaker::world::ServiceKey;
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const NS: &str = "ferrolb-system";

/// A request as the API server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
}

async fn read(req: Request<Body>) -> Seen {
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        },
    }
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{reason} (scripted)"), "reason": reason, "code": code})
}

fn service(name: &str, class: Option<&str>, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"namespace": "app", "name": name, "uid": format!("uid-{name}"), "resourceVersion": "5"},
           "spec": {"type": "LoadBalancer", "loadBalancerClass": class, "clusterIP": "10.96.0.10",
                    "ports": [{"port": 80, "protocol": "TCP"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
}

fn node(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "resourceVersion": "7", "labels": {"kubernetes.io/hostname": name}},
           "status": {"conditions": [{"type": "Ready", "status": "True"}],
                      "addresses": [{"type": "InternalIP", "address": ip}]}})
}

fn existing_status(name: &str, service: &str) -> Value {
    json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "ServiceL2Status",
           "metadata": {"namespace": NS, "name": name, "resourceVersion": "8",
                        "labels": {"ferrolb.io/node": "n1", "ferrolb.io/service-name": service,
                                   "ferrolb.io/service-namespace": "app"}},
           "spec": {},
           "status": {"node": "n1", "serviceName": service, "serviceNamespace": "app",
                      "interfaces": [{"name": "eth0"}]}})
}

fn existing_bgp_status(name: &str, service: &str) -> Value {
    json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "ServiceBGPStatus",
           "metadata": {"namespace": NS, "name": name, "resourceVersion": "8",
                        "labels": {"ferrolb.io/node": "n1", "ferrolb.io/service-name": service,
                                   "ferrolb.io/service-namespace": "app"}},
           "spec": {},
           "status": {"node": "n1", "serviceName": service, "serviceNamespace": "app",
                      "peers": ["router"]}})
}

/// The answer to a list request, by path.
fn listed(path: &str) -> Option<Value> {
    let crd = |plural: &str| format!("/apis/ferrolb.io/v1beta1/namespaces/{NS}/{plural}");
    Some(match path {
        "/api/v1/services" => list(
            "v1",
            "ServiceList",
            vec![
                service("web", None, "192.0.2.10"),
                service("other", Some("example.com/other"), "192.0.2.11"),
            ],
        ),
        "/apis/discovery.k8s.io/v1/endpointslices" => list(
            "discovery.k8s.io/v1",
            "EndpointSliceList",
            vec![
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"namespace": "app", "name": "web-abc", "resourceVersion": "6",
                                     "labels": {"kubernetes.io/service-name": "web"}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "n1", "conditions": {"ready": true}}]}),
            ],
        ),
        "/api/v1/nodes" => list(
            "v1",
            "NodeList",
            vec![node("n1", "198.51.100.11"), node("n2", "198.51.100.12")],
        ),
        p if p == crd("ipaddresspools") => list(
            "ferrolb.io/v1beta1",
            "IPAddressPoolList",
            vec![
                json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
                        "metadata": {"namespace": NS, "name": "lan", "resourceVersion": "3"},
                        "spec": {"addresses": ["192.0.2.0/24"]}}),
            ],
        ),
        p if p == crd("l2advertisements") => list(
            "ferrolb.io/v1beta1",
            "L2AdvertisementList",
            vec![
                json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
                        "metadata": {"namespace": NS, "name": "lan", "resourceVersion": "4"},
                        "spec": {"ipAddressPools": ["lan"]}}),
            ],
        ),
        p if p == crd("bgpadvertisements") => list(
            "ferrolb.io/v1beta1",
            "BGPAdvertisementList",
            vec![
                json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "BGPAdvertisement",
                        "metadata": {"namespace": NS, "name": "wan", "resourceVersion": "4"},
                        "spec": {"ipAddressPools": ["lan"], "communities": ["edge"]}}),
            ],
        ),
        p if p == crd("bgppeers") => list(
            "ferrolb.io/v1beta1",
            "BGPPeerList",
            vec![
                json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "BGPPeer",
                        "metadata": {"namespace": NS, "name": "router", "uid": "uid-router", "resourceVersion": "4"},
                        "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "198.51.100.1",
                                 "passwordSecret": {"name": "router-md5"}, "bfdProfile": "fast"}}),
            ],
        ),
        p if p == crd("bfdprofiles") => list(
            "ferrolb.io/v1beta1",
            "BFDProfileList",
            vec![
                json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "BFDProfile",
                        "metadata": {"namespace": NS, "name": "fast", "resourceVersion": "4"},
                        "spec": {"transmitInterval": 100, "receiveInterval": 100}}),
            ],
        ),
        p if p == crd("communities") => list(
            "ferrolb.io/v1beta1",
            "CommunityList",
            vec![
                json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "Community",
                        "metadata": {"namespace": NS, "name": "aliases", "resourceVersion": "4"},
                        "spec": {"communities": [{"name": "edge", "value": "64512:100"}]}}),
            ],
        ),
        // As the field selector asks: basic-auth Secrets only. "s3cret", base64.
        p if p == format!("/api/v1/namespaces/{NS}/secrets") => list(
            "v1",
            "SecretList",
            vec![json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"namespace": NS, "name": "router-md5", "resourceVersion": "4"},
                        "type": "kubernetes.io/basic-auth",
                        "data": {"password": "czNjcmV0", "username": "cm91dGVy"}})],
        ),
        p if p == crd("servicel2statuses") => list(
            "ferrolb.io/v1beta1",
            "ServiceL2StatusList",
            vec![existing_status("l2-stale", "gone")],
        ),
        p if p == crd("servicebgpstatuses") => {
            list("ferrolb.io/v1beta1", "ServiceBGPStatusList", vec![])
        }
        _ => return None,
    })
}

/// Serves the lists, holds watches open, answers writes and reports them. Once `down`
/// is set, every request fails with 503 (the API server is unavailable).
async fn cluster(
    mut api: ApiHandle,
    writes: mpsc::UnboundedSender<Seen>,
    lists: mpsc::UnboundedSender<Seen>,
    down: Arc<AtomicBool>,
) {
    let mut held = Vec::new();
    while let Some((req, send)) = api.next_request().await {
        let seen = read(req).await;
        if down.load(Ordering::SeqCst) {
            held.clear();
            respond(send, 503, &failure(503, "ServiceUnavailable"));
            continue;
        }
        if seen.method == "GET" {
            if seen.query.contains("watch=true") {
                held.push(send);
            } else if let Some(body) = listed(&seen.path) {
                respond(send, 200, &body);
                let _ = lists.send(seen);
            } else {
                respond(send, 404, &failure(404, "NotFound"));
            }
            continue;
        }
        let body = match seen.method.as_str() {
            "POST" if seen.path.contains("/events") => seen.body.clone(),
            "DELETE" => failure(200, "Success"),
            _ => {
                let name = seen
                    .path
                    .trim_end_matches("/status")
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let mut obj = if seen.path.contains("/servicebgpstatuses") {
                    existing_bgp_status(&name, "web")
                } else {
                    existing_status(&name, "web")
                };
                if let Value::Object(b) = &seen.body
                    && let Some(m) = b.get("metadata")
                {
                    obj["metadata"] = m.clone();
                    obj["metadata"]["resourceVersion"] = json!("11");
                }
                obj
            }
        };
        respond(send, if seen.method == "POST" { 201 } else { 200 }, &body);
        let _ = writes.send(seen);
    }
}

struct Scripted {
    writes: mpsc::UnboundedReceiver<Seen>,
    lists: mpsc::UnboundedReceiver<Seen>,
    down: Arc<AtomicBool>,
}

fn scripted() -> (Client, Scripted) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let (wtx, writes) = mpsc::unbounded_channel();
    let (ltx, lists) = mpsc::unbounded_channel();
    let down = Arc::new(AtomicBool::new(false));
    tokio::spawn(cluster(handle, wtx, ltx, down.clone()));
    (
        Client::new(service, "default"),
        Scripted {
            writes,
            lists,
            down,
        },
    )
}

fn config() -> Config {
    Config {
        node: "n1".into(),
        namespace: NS.into(),
        lb_class: None,
        pod: Some(("speaker-x1".into(), "uid-pod".into())),
    }
}

/// Collects writes until `n` arrived, then a little longer to catch extras.
async fn writes(rx: &mut mpsc::UnboundedReceiver<Seen>, n: usize) -> Vec<Seen> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(s)) => got.push(s),
            _ => panic!("timed out; writes so far: {got:#?}"),
        }
    }
    while let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        got.push(s);
    }
    got
}

fn web() -> ServiceKey {
    ServiceKey::new("app", "web")
}

/// web's address announced on eth0 by this node.
fn announced_on(interface: &str) -> (Announcements, Desired) {
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let mut ann = Announcements::default();
    ann.l2.insert(
        ip,
        L2Announcement {
            services: [web()].into(),
            interfaces: None,
        },
    );
    let want: Desired = [(
        2,
        Owned {
            name: interface.into(),
            mac: [2, 0, 0, 0, 0, 2],
            arp: true,
            link_local: None,
            ips: [ip].into(),
        },
    )]
    .into();
    (ann, want)
}

#[tokio::test]
async fn snapshot_from_the_listed_objects() {
    let (client, mut api) = scripted();
    let (rx, _reporter) =
        tokio::time::timeout(Duration::from_secs(10), start_with(client, config()))
            .await
            .expect("initial lists within 10 s");
    let snap = rx.borrow().clone();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    // Only the Service of this speaker's class, with its endpoints and pool.
    assert_eq!(snap.world.services.keys().collect::<Vec<_>>(), vec![&web()]);
    let svc = &snap.world.services[&web()];
    assert_eq!(
        svc.ips.as_slice(),
        ["192.0.2.10".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(&*svc.pool, "lan");
    assert_eq!(svc.endpoints.len(), 1);
    assert_eq!(svc.endpoints[0].node.as_deref(), Some("n1"));
    assert!(svc.endpoints[0].serving);
    assert_eq!(snap.world.nodes.len(), 2);
    assert!(snap.world.nodes["n1"].ready);
    assert_eq!(
        snap.node_addresses,
        BTreeMap::from([
            ("n1".to_string(), "198.51.100.11".parse().unwrap()),
            ("n2".to_string(), "198.51.100.12".parse().unwrap()),
        ])
    );
    assert_eq!(snap.world.l2_ads.len(), 1);
    assert_eq!(snap.world.l2_ads[0].name, "lan");
    // BGP mode's objects reach the same world.
    assert_eq!(snap.world.bgp_ads.len(), 1);
    assert_eq!(snap.world.bgp_ads[0].name, "wan");
    assert_eq!(
        snap.world.bgp_peers.keys().collect::<Vec<_>>(),
        vec!["router"]
    );
    assert!(snap.world.community_aliases.contains_key("edge"));
    // The passwordSecret's key, from the listed Secret.
    assert_eq!(
        snap.world.bgp_peers["router"].session.password.as_deref(),
        Some("s3cret")
    );
    // The BGPPeer's bfdProfile, from the listed BFDProfile.
    let bfd = snap.world.bgp_peers["router"].session.bfd.as_ref();
    assert_eq!(
        bfd.map(|b| b.timers.desired_min_tx),
        Some(std::time::Duration::from_millis(100))
    );
    // Every kind was listed; FerroLB's in its namespace.
    let mut paths = Vec::new();
    let mut secret_queries = Vec::new();
    while let Ok(s) = api.lists.try_recv() {
        if s.path.ends_with("/secrets") {
            secret_queries.push(s.query.clone());
        }
        paths.push(s.path);
    }
    assert!(
        secret_queries
            .iter()
            .any(|q| q.contains("fieldSelector=type%3Dkubernetes.io%2Fbasic-auth")),
        "Secrets listed without the type selector: {secret_queries:?}"
    );
    for plural in [
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "bfdprofiles",
    ] {
        let p = format!("/apis/ferrolb.io/v1beta1/namespaces/{NS}/{plural}");
        assert!(paths.contains(&p), "{p} not listed: {paths:?}");
    }
    for p in [
        &format!("/api/v1/namespaces/{NS}/secrets"),
        "/api/v1/services",
        "/api/v1/nodes",
        "/apis/discovery.k8s.io/v1/endpointslices",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} not listed: {paths:?}");
    }
}

#[tokio::test]
async fn statuses_and_events_follow_what_is_announced() {
    let (client, mut api) = scripted();
    let (_rx, mut reporter) =
        tokio::time::timeout(Duration::from_secs(10), start_with(client, config()))
            .await
            .unwrap();
    let (ann, want) = announced_on("eth0");
    reporter.announced(&Arc::default(), &ann, &want, &Plan::default());

    // The stale object (a Service this node no longer announces) goes; web's is created,
    // its status written, and the Service told.
    let got = writes(&mut api.writes, 4).await;
    let name = object_name("n1", &web());
    let base = format!("/apis/ferrolb.io/v1beta1/namespaces/{NS}/servicel2statuses");
    let summary: Vec<(&str, &str)> = got
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("DELETE", format!("{base}/l2-stale").as_str()),
            ("POST", base.as_str()),
            ("PATCH", format!("{base}/{name}/status").as_str()),
            ("POST", "/apis/events.k8s.io/v1/namespaces/app/events"),
        ],
        "{got:#?}"
    );
    assert_eq!(
        got[1].body,
        json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "ServiceL2Status",
               "metadata": {"name": name, "namespace": NS,
                            "labels": {"ferrolb.io/node": "n1", "ferrolb.io/service-name": "web",
                                       "ferrolb.io/service-namespace": "app"},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "speaker-x1", "uid": "uid-pod"}]},
               "spec": {}})
    );
    assert!(got[1].query.contains("fieldManager=ferrolb-speaker"));
    assert!(got[2].query.contains("fieldManager=ferrolb-speaker"));
    assert_eq!(
        got[2].body,
        json!({"status": {"node": "n1", "serviceName": "web", "serviceNamespace": "app",
                          "interfaces": [{"name": "eth0"}]}})
    );
    let ev = &got[3].body;
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["reason"], "nodeAssigned");
    assert_eq!(ev["note"], "announcing from node n1, interfaces eth0");
    assert_eq!(ev["reportingController"], "ferrolb-speaker");
    assert_eq!(ev["reportingInstance"], "n1");
    assert_eq!(
        ev["regarding"],
        json!({"apiVersion": "v1", "kind": "Service", "namespace": "app", "name": "web", "uid": "uid-web"})
    );

    // Only this node's objects were listed.
    let mut l2_lists = Vec::new();
    while let Ok(s) = api.lists.try_recv() {
        if s.path.ends_with("/servicel2statuses") {
            l2_lists.push(s.query);
        }
    }
    assert!(
        l2_lists
            .iter()
            .any(|q| q.contains("labelSelector=ferrolb.io%2Fnode%3Dn1")),
        "{l2_lists:?}"
    );

    // The same again: nothing is written.
    reporter.announced(&Arc::default(), &ann, &want, &Plan::default());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), api.writes.recv())
            .await
            .is_err()
    );

    // Another interface: the status is updated, with a new Event.
    let (ann, want) = announced_on("eth1");
    reporter.announced(&Arc::default(), &ann, &want, &Plan::default());
    let got = writes(&mut api.writes, 2).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("PATCH", format!("{base}/{name}/status").as_str())
    );
    assert_eq!(
        got[0].body["status"]["interfaces"],
        json!([{"name": "eth1"}])
    );
    assert_eq!(
        got[1].body["note"],
        "announcing from node n1, interfaces eth1"
    );

    // Stopping deletes this node's objects.
    tokio::time::timeout(Duration::from_secs(5), reporter.stop())
        .await
        .expect("stop returns in time");
    let got = writes(&mut api.writes, 1).await;
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("DELETE", format!("{base}/{name}").as_str())
    );
}

#[tokio::test]
async fn the_last_snapshot_stays_while_the_api_server_is_away() {
    let (client, mut api) = scripted();
    let (mut rx, mut reporter) =
        tokio::time::timeout(Duration::from_secs(10), start_with(client, config()))
            .await
            .unwrap();
    rx.borrow_and_update();
    api.down.store(true, Ordering::SeqCst);
    // Writes fail (503) and are retried; the snapshot neither changes nor empties.
    let (ann, want) = announced_on("eth0");
    reporter.announced(&Arc::default(), &ann, &want, &Plan::default());
    let got = writes(&mut api.writes, 0).await;
    assert!(got.is_empty(), "nothing succeeds while the API is down");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!rx.has_changed().unwrap(), "the source is still there");
    assert_eq!(rx.borrow().world.services.len(), 1);
    // Back: the pending writes go through.
    api.down.store(false, Ordering::SeqCst);
    let got = writes(&mut api.writes, 4).await;
    assert!(
        got.iter()
            .any(|s| s.method == "PATCH" && s.body["status"]["serviceName"] == "web"),
        "{got:#?}"
    );
}

/// web's address announced over BGP to `router`, with a conflicting localPref between
/// the advertisements `a` and `b` on another prefix.
fn announced_over_bgp() -> (Announcements, Plan) {
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let mut ann = Announcements::default();
    ann.bgp.insert(
        ip,
        BgpAnnouncement {
            services: [web()].into(),
            ads: [0].into(),
        },
    );
    let table: AdjRibOut = [(
        "192.0.2.10/32".parse().unwrap(),
        Arc::new(RouteAttrs::default()),
    )]
    .into();
    let plan = Plan {
        peers: [("router".to_string(), Arc::new(table))].into(),
        problems: Vec::new(),
        conflicts: vec![Conflict {
            ads: vec!["a".into(), "b".into()],
            message: "192.0.2.0/24 is advertised with different localPref".into(),
        }],
    };
    (ann, plan)
}

#[tokio::test]
async fn bgp_statuses_events_and_warnings() {
    let (client, mut api) = scripted();
    let (_rx, mut reporter) =
        tokio::time::timeout(Duration::from_secs(10), start_with(client, config()))
            .await
            .unwrap();
    let (ann, plan) = announced_over_bgp();
    reporter.announced(&Arc::default(), &ann, &Desired::new(), &plan);

    // Layer2: the stale object goes (nothing is announced in Layer2). BGP: web's object
    // is created, its status written and the Service told; each advertisement of the
    // conflict gets a Warning. The writers run side by side: compared per path.
    let got = writes(&mut api.writes, 6).await;
    assert_eq!(got.len(), 6, "{got:#?}");
    let name = object_name_of::<status::Bgp>("n1", &web());
    let base = format!("/apis/ferrolb.io/v1beta1/namespaces/{NS}/servicebgpstatuses");
    let bgp: Vec<&Seen> = got.iter().filter(|s| s.path.starts_with(&base)).collect();
    assert_eq!(
        bgp.iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("POST", base.as_str()),
            ("PATCH", format!("{base}/{name}/status").as_str())
        ],
        "{got:#?}"
    );
    assert_eq!(
        bgp[0].body,
        json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "ServiceBGPStatus",
               "metadata": {"name": name, "namespace": NS,
                            "labels": {"ferrolb.io/node": "n1", "ferrolb.io/service-name": "web",
                                       "ferrolb.io/service-namespace": "app"},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "speaker-x1", "uid": "uid-pod"}]},
               "spec": {}})
    );
    assert_eq!(
        bgp[1].body,
        json!({"status": {"node": "n1", "serviceName": "web", "serviceNamespace": "app",
                          "peers": ["router"]}})
    );
    let on_service: Vec<&Seen> = got
        .iter()
        .filter(|s| s.path == "/apis/events.k8s.io/v1/namespaces/app/events")
        .collect();
    assert_eq!(on_service.len(), 1, "{got:#?}");
    let ev = &on_service[0].body;
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["reason"], "nodeAssigned");
    assert_eq!(
        ev["note"],
        "announcing from node n1 over BGP to peers router"
    );
    assert_eq!(ev["regarding"]["uid"], "uid-web");
    let mut warned: Vec<(String, String)> = got
        .iter()
        .filter(|s| s.path == format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"))
        .map(|s| {
            assert_eq!(s.body["type"], "Warning");
            assert_eq!(s.body["reason"], "ConflictingLocalPref");
            assert_eq!(
                s.body["note"],
                "192.0.2.0/24 is advertised with different localPref"
            );
            assert_eq!(s.body["regarding"]["kind"], "BGPAdvertisement");
            assert_eq!(s.body["regarding"]["apiVersion"], "ferrolb.io/v1beta1");
            (
                s.body["regarding"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                s.body["regarding"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    warned.sort();
    assert_eq!(
        warned,
        [
            (NS.to_string(), "a".to_string()),
            (NS.to_string(), "b".to_string())
        ]
    );
    assert!(
        got.iter()
            .any(|s| s.method == "DELETE" && s.path.ends_with("/servicel2statuses/l2-stale"))
    );

    // The same again: no status write, and the problem is not repeated.
    reporter.announced(&Arc::default(), &ann, &Desired::new(), &plan);
    let again = writes(&mut api.writes, 0).await;
    assert!(again.is_empty(), "{again:#?}");

    // Stopping deletes this node's BGP object too.
    tokio::time::timeout(Duration::from_secs(5), reporter.stop())
        .await
        .expect("stop returns in time");
    let got = writes(&mut api.writes, 1).await;
    assert_eq!(
        got.iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect::<Vec<_>>(),
        vec![("DELETE", format!("{base}/{name}").as_str())]
    );
}

fn sessions(state: &str, last_down: Option<&str>) -> Report {
    Report {
        node: "n1".into(),
        bgp_sessions: vec![SessionSummary {
            peer: "router".into(),
            address: "198.51.100.1:179".into(),
            state: state.into(),
            last_down: last_down.map(Into::into),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The Events recorded on BGPPeers among `got`: (type, reason, note).
fn peer_events(got: &[Seen]) -> Vec<(String, String, String)> {
    got.iter()
        .filter(|s| s.path == format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"))
        .filter(|s| s.body["regarding"]["kind"] == "BGPPeer")
        .map(|s| {
            assert_eq!(s.body["regarding"]["name"], "router");
            assert_eq!(s.body["regarding"]["namespace"], NS);
            assert_eq!(s.body["regarding"]["uid"], "uid-router");
            let field = |k: &str| s.body[k].as_str().unwrap_or_default().to_string();
            (field("type"), field("reason"), field("note"))
        })
        .collect()
}

#[tokio::test]
async fn session_up_and_down_are_events_on_the_peer() {
    let (client, mut api) = scripted();
    let (_rx, mut reporter) =
        tokio::time::timeout(Duration::from_secs(10), start_with(client, config()))
            .await
            .unwrap();
    let nothing = (Announcements::default(), Desired::new(), Plan::default());
    reporter.announced(
        &Arc::new(sessions("Established", None)),
        &nothing.0,
        &nothing.1,
        &nothing.2,
    );
    // With the stale Layer2 object's deletion.
    let got = writes(&mut api.writes, 2).await;
    assert_eq!(
        peer_events(&got),
        [(
            "Normal".to_string(),
            "BGPSessionUp".to_string(),
            "BGP session from node n1 to 198.51.100.1:179 established".to_string()
        )],
        "{got:#?}"
    );
    // The same state again (only the sessions reported, as the main loop does when
    // nothing was decided anew): no Event.
    reporter.sessions(&Arc::new(sessions("Established", None)));
    assert!(writes(&mut api.writes, 0).await.is_empty());
    reporter.sessions(&Arc::new(sessions("Idle", Some("hold timer expired"))));
    let got = writes(&mut api.writes, 1).await;
    assert_eq!(
        peer_events(&got),
        [(
            "Warning".to_string(),
            "BGPSessionDown".to_string(),
            "BGP session from node n1 to 198.51.100.1:179 down: hold timer expired".to_string()
        )],
        "{got:#?}"
    );
}
