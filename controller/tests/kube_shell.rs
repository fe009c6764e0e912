//! The Kubernetes shell against a scripted API server (a `tower_test` mock behind a real
//! `kube::Client`, as kube-rs's controller-rs does): the exact requests each action
//! sends, how responses are classified, and the leader loop end to end (initial lists,
//! reclaim of existing assignments, writes, a pool edit arriving on the watch).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferrolb_controller::allocator::ServiceKey;
use ferrolb_controller::cli::Cli;
use ferrolb_controller::engine::{Action, EventType, Kind};
use ferrolb_controller::health::Readiness;
use ferrolb_controller::metrics::Metrics;
use ferrolb_controller::source::kube::apply::{Applied, Writer};
use ferrolb_controller::source::kube::run_leader;
use ferrolb_crds::IPAddressPoolStatus;
use ferrolb_crds::condition::Condition;
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (Client, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// A request as the API server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

async fn read(req: Request<Body>) -> Seen {
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        // Query parameters, without empty ones (kube writes `?&fieldManager=…`).
        query: parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("&"),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        },
    }
}

async fn next(api: &mut ApiHandle) -> (Seen, SendResponse<Response<Body>>) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), api.next_request())
        .await
        .expect("a request within 5 s")
        .expect("the client is still there");
    (read(req).await, send)
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn status_failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{reason} (scripted)"), "reason": reason, "code": code})
}

fn service_object(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name, "resourceVersion": "9"}})
}

fn pool_object(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
           "metadata": {"namespace": ns, "name": name, "resourceVersion": "9"},
           "spec": {"addresses": ["192.0.2.0/24"]}})
}

/// Asserts that no further request arrives (the client may also be gone).
async fn assert_no_more_requests(api: &mut ApiHandle) {
    if let Ok(Some((req, _))) =
        tokio::time::timeout(Duration::from_millis(200), api.next_request()).await
    {
        panic!("unexpected request: {:?}", read(req).await);
    }
}

fn key(ns: &str, name: &str) -> ServiceKey {
    ServiceKey {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

const MERGE: &str = "application/merge-patch+json";
const FM: &str = "fieldManager=ferrolb-controller";

#[tokio::test]
async fn set_service_status_patches_status_then_annotation() {
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, Some("pod-1".into()));
    let action = Action::SetServiceStatus {
        key: key("ns", "web"),
        ips: ips(&["192.0.2.10", "2001:db8::10"]),
        pool: "p".into(),
    };
    let task = tokio::spawn(async move { writer.apply(&action, None).await });

    let (req, send) = next(&mut api).await;
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, "/api/v1/namespaces/ns/services/web/status");
    assert_eq!(req.query, FM);
    assert_eq!(req.content_type, MERGE);
    assert_eq!(
        req.body,
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]}}})
    );
    respond(send, 200, &service_object("ns", "web"));

    let (req, send) = next(&mut api).await;
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, "/api/v1/namespaces/ns/services/web");
    assert_eq!(req.query, FM);
    assert_eq!(req.content_type, MERGE);
    assert_eq!(
        req.body,
        json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "p"}}})
    );
    respond(send, 200, &service_object("ns", "web"));

    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);
    assert_no_more_requests(&mut api).await;
}

#[tokio::test]
async fn clear_service_status_nulls_ingress_and_annotation() {
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, None);
    let task = tokio::spawn(async move {
        writer
            .apply(
                &Action::ClearServiceStatus {
                    key: key("ns", "web"),
                },
                None,
            )
            .await
    });

    let (req, send) = next(&mut api).await;
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("PATCH", "/api/v1/namespaces/ns/services/web/status")
    );
    assert_eq!(req.content_type, MERGE);
    // `{"loadBalancer":{}}` would merge into nothing; null deletes the list.
    assert_eq!(
        req.body,
        json!({"status": {"loadBalancer": {"ingress": null}}})
    );
    respond(send, 200, &service_object("ns", "web"));

    let (req, send) = next(&mut api).await;
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("PATCH", "/api/v1/namespaces/ns/services/web")
    );
    assert_eq!(req.content_type, MERGE);
    assert_eq!(
        req.body,
        json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": null}}})
    );
    respond(send, 200, &service_object("ns", "web"));

    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);
}

#[tokio::test]
async fn set_pool_status_patches_the_status_subresource() {
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, None);
    let status = IPAddressPoolStatus {
        assigned_ipv4: 2,
        assigned_ipv6: 0,
        available_ipv4: 252,
        available_ipv6: 0,
        conditions: vec![Condition::new(
            "Valid",
            true,
            "Valid",
            "the pool is used for allocation",
        )],
    };
    let action = Action::SetPoolStatus {
        namespace: "ferrolb-system".into(),
        name: "p".into(),
        status,
    };
    let task = tokio::spawn(async move { writer.apply(&action, None).await });

    let (req, send) = next(&mut api).await;
    assert_eq!(req.method, "PATCH");
    assert_eq!(
        req.path,
        "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools/p/status"
    );
    assert_eq!(req.query, FM);
    assert_eq!(req.content_type, MERGE);
    assert_eq!(
        req.body,
        json!({"status": {"assignedIPv4": 2, "assignedIPv6": 0, "availableIPv4": 252, "availableIPv6": 0,
               "conditions": [{"type": "Valid", "status": "True", "reason": "Valid",
                               "message": "the pool is used for allocation"}]}})
    );
    respond(send, 200, &pool_object("ferrolb-system", "p"));
    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);

    // No conditions: the list is still sent, so a merge patch removes stale ones.
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, None);
    let action = Action::SetPoolStatus {
        namespace: "ferrolb-system".into(),
        name: "p".into(),
        status: IPAddressPoolStatus::default(),
    };
    let task = tokio::spawn(async move { writer.apply(&action, None).await });
    let (req, send) = next(&mut api).await;
    assert_eq!(req.body["status"]["conditions"], json!([]));
    respond(send, 200, &pool_object("ferrolb-system", "p"));
    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);
}

fn svc_event(reason: &str, message: &str) -> Action {
    Action::Event {
        kind: Kind::Service,
        namespace: "ns".into(),
        name: "web".into(),
        type_: EventType::Normal,
        reason: reason.into(),
        message: message.into(),
    }
}

#[tokio::test]
async fn events_are_posted_with_reason_note_and_reference() {
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, Some("pod-1".into()));
    let w = writer.clone();
    let task = tokio::spawn(async move {
        w.apply(
            &svc_event("IPAllocated", "Assigned IP [192.0.2.10] from pool p"),
            Some("uid-1"),
        )
        .await
    });
    let (req, send) = next(&mut api).await;
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/apis/events.k8s.io/v1/namespaces/ns/events");
    let b = &req.body;
    assert_eq!(b["apiVersion"], "events.k8s.io/v1");
    assert_eq!(b["kind"], "Event");
    assert_eq!(b["reason"], "IPAllocated");
    assert_eq!(b["note"], "Assigned IP [192.0.2.10] from pool p");
    assert_eq!(b["type"], "Normal");
    assert_eq!(b["action"], "Reconcile");
    assert_eq!(b["reportingController"], "ferrolb-controller");
    assert_eq!(b["reportingInstance"], "pod-1");
    assert_eq!(
        b["regarding"],
        json!({"apiVersion": "v1", "kind": "Service", "namespace": "ns", "name": "web", "uid": "uid-1"})
    );
    assert_eq!(b["metadata"]["namespace"], "ns");
    let event_name = b["metadata"]["name"].as_str().unwrap().to_string();
    assert!(event_name.starts_with("web."), "{event_name}");
    respond(send, 201, &req.body);
    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);

    // The same Event again: the recorder counts it on the first one (series).
    let w = writer.clone();
    let task = tokio::spawn(async move {
        w.apply(
            &svc_event("IPAllocated", "Assigned IP [192.0.2.10] from pool p"),
            Some("uid-1"),
        )
        .await
    });
    let (req, send) = next(&mut api).await;
    assert_eq!(req.method, "PATCH");
    assert_eq!(
        req.path,
        format!("/apis/events.k8s.io/v1/namespaces/ns/events/{event_name}")
    );
    assert_eq!(req.body["series"]["count"], 2);
    respond(send, 200, &req.body);
    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);

    // Same reason, new message: a new Event carrying the new message, not a count on
    // the old one.
    let w = writer.clone();
    let task = tokio::spawn(async move {
        w.apply(
            &svc_event("IPAllocated", "Assigned IP [192.0.2.11] from pool q"),
            Some("uid-1"),
        )
        .await
    });
    let (req, send) = next(&mut api).await;
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/apis/events.k8s.io/v1/namespaces/ns/events");
    assert_eq!(req.body["note"], "Assigned IP [192.0.2.11] from pool q");
    assert!(req.body.get("series").is_none_or(Value::is_null));
    respond(send, 201, &req.body);
    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);
}

#[tokio::test]
async fn pool_events_reference_the_pool() {
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, None);
    let action = Action::Event {
        kind: Kind::IPAddressPool,
        namespace: "ferrolb-system".into(),
        name: "p".into(),
        type_: EventType::Warning,
        reason: "Overlapping".into(),
        message: "pool p overlaps pool q at 192.0.2.0/24".into(),
    };
    let task = tokio::spawn(async move { writer.apply(&action, Some("uid-p")).await });
    let (req, send) = next(&mut api).await;
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        (
            "POST",
            "/apis/events.k8s.io/v1/namespaces/ferrolb-system/events"
        )
    );
    assert_eq!(req.body["type"], "Warning");
    assert_eq!(req.body["reason"], "Overlapping");
    assert_eq!(req.body["note"], "pool p overlaps pool q at 192.0.2.0/24");
    assert_eq!(
        req.body["regarding"],
        json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool", "namespace": "ferrolb-system",
               "name": "p", "uid": "uid-p"})
    );
    respond(send, 201, &req.body);
    assert_eq!(task.await.unwrap().unwrap(), Applied::Written);
}

#[tokio::test]
async fn not_found_means_gone_and_stops_the_write() {
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, None);
    let action = Action::SetServiceStatus {
        key: key("ns", "web"),
        ips: ips(&["192.0.2.10"]),
        pool: "p".into(),
    };
    let task = tokio::spawn(async move { writer.apply(&action, None).await });
    let (req, send) = next(&mut api).await;
    assert_eq!(req.path, "/api/v1/namespaces/ns/services/web/status");
    respond(send, 404, &status_failure(404, "NotFound"));
    assert_eq!(task.await.unwrap().unwrap(), Applied::Gone);
    // No annotation patch for a Service that is gone.
    assert_no_more_requests(&mut api).await;
}

async fn result_of(
    code: u16,
    reason: &str,
) -> Result<Applied, ferrolb_controller::source::kube::apply::WriteError> {
    let (client, mut api) = mock_client();
    let writer = Writer::new(client, None);
    let action = Action::SetPoolStatus {
        namespace: "ferrolb-system".into(),
        name: "p".into(),
        status: IPAddressPoolStatus::default(),
    };
    let task = tokio::spawn(async move { writer.apply(&action, None).await });
    let (_, send) = next(&mut api).await;
    respond(send, code, &status_failure(code, reason));
    task.await.unwrap()
}

#[tokio::test]
async fn server_errors_are_retryable_rejections_are_not() {
    let e = result_of(500, "InternalError").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let e = result_of(409, "Conflict").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let e = result_of(429, "TooManyRequests").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let e = result_of(422, "Invalid").await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let e = result_of(403, "Forbidden").await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(result_of(404, "NotFound").await.unwrap(), Applied::Gone);
}

// ---------------------------------------------------------------------------------
// The leader loop against a scripted cluster.

fn lb_service(name: &str, created: &str, ingress: Option<&str>, pool: Option<&str>) -> Value {
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "app", "name": name, "uid": format!("uid-{name}"), "resourceVersion": "5",
                     "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {}}
    });
    if let Some(ip) = ingress {
        svc["status"]["loadBalancer"]["ingress"] = json!([{"ip": ip}]);
    }
    if let Some(p) = pool {
        svc["metadata"]["annotations"] = json!({"ferrolb.io/ip-allocated-from-pool": p});
    }
    svc
}

fn pool(addresses: &[&str], rv: &str) -> Value {
    json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
           "metadata": {"namespace": "ferrolb-system", "name": "p", "uid": "uid-p", "resourceVersion": rv,
                        "generation": 1},
           "spec": {"addresses": addresses, "avoidBuggyIPs": true}})
}

fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

enum Control {
    /// Answer the held IPAddressPool watch with these watch events.
    PoolWatch(Vec<Value>),
}

/// Serves the initial lists (`l2`: the L2Advertisements; no other configuration
/// objects), holds watches open, answers writes and reports them.
async fn cluster(
    mut api: ApiHandle,
    writes: mpsc::UnboundedSender<Seen>,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut fail_status_patches: usize,
    l2: Vec<Value>,
) {
    let mut held = Vec::new();
    let mut pool_watch: Option<SendResponse<Response<Body>>> = None;
    loop {
        tokio::select! {
            req = api.next_request() => {
                let Some((req, send)) = req else { return };
                let seen = read(req).await;
                let watch = seen.query.contains("watch=true");
                match (seen.method.as_str(), seen.path.as_str()) {
                    ("GET", "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools") if watch => {
                        pool_watch = Some(send);
                    }
                    ("GET", _) if watch => held.push(send),
                    ("GET", "/api/v1/services") => respond(send, 200, &list("v1", "ServiceList", vec![
                        // "web" is older and listed first: only reclaiming existing
                        // assignments first keeps it off old's 192.0.2.1.
                        lb_service("web", "2024-01-01T00:00:00Z", None, None),
                        lb_service("old", "2024-06-01T00:00:00Z", Some("192.0.2.1"), Some("p")),
                        json!({"apiVersion": "v1", "kind": "Service",
                               "metadata": {"namespace": "app", "name": "plain", "resourceVersion": "5"},
                               "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"],
                                        "ports": [{"port": 80}]}}),
                    ])),
                    ("GET", "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools") => {
                        respond(send, 200, &list("ferrolb.io/v1beta1", "IPAddressPoolList", vec![pool(&["192.0.2.0/24"], "3")]))
                    }
                    ("GET", "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/l2advertisements") => {
                        respond(send, 200, &list("ferrolb.io/v1beta1", "L2AdvertisementList", l2.clone()))
                    }
                    ("GET", path @ ("/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/bgpadvertisements"
                        | "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/bgppeers"
                        | "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/communities")) => {
                        let kind = match path.rsplit('/').next() {
                            Some("bgpadvertisements") => "BGPAdvertisementList",
                            Some("bgppeers") => "BGPPeerList",
                            _ => "CommunityList",
                        };
                        respond(send, 200, &list("ferrolb.io/v1beta1", kind, vec![]))
                    }
                    ("GET", "/api/v1/namespaces") => respond(send, 200, &list("meta.k8s.io/v1", "PartialObjectMetadataList", vec![
                        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                               "metadata": {"name": "app", "labels": {"team": "a"}, "resourceVersion": "2"}}),
                    ])),
                    (_, path) if path.contains("/services/") && path.ends_with("/status") && fail_status_patches > 0 => {
                        fail_status_patches -= 1;
                        respond(send, 500, &status_failure(500, "InternalError"));
                        let _ = writes.send(Seen { method: format!("{} (failed)", seen.method), ..seen });
                    }
                    (_, path) => {
                        let body = if path.contains("/events") {
                            seen.body.clone()
                        } else if path.contains("ipaddresspools") {
                            pool(&["192.0.2.0/24"], "11")
                        } else {
                            service_object("app", path.split('/').nth(6).unwrap_or_default())
                        };
                        respond(send, if seen.method == "POST" { 201 } else { 200 }, &body);
                        let _ = writes.send(seen);
                    }
                }
            }
            c = control.recv() => match c {
                Some(Control::PoolWatch(events)) => {
                    let send = pool_watch.take().expect("the pool watch is open");
                    let mut body = Vec::new();
                    for e in events {
                        body.extend(serde_json::to_vec(&e).unwrap());
                        body.push(b'\n');
                    }
                    send.send_response(Response::builder().status(200).body(Body::from(body)).unwrap());
                }
                None => return,
            },
        }
    }
}

/// Collects writes until `done` holds for them, then a little longer to catch extras.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    done: impl Fn(&[Seen]) -> bool,
) -> Vec<Seen> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&got) {
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

fn status_patches<'a>(writes: &'a [Seen], name: &str) -> Vec<&'a Seen> {
    let path = format!("/api/v1/namespaces/app/services/{name}/status");
    writes.iter().filter(|w| w.path == path).collect()
}

fn events<'a>(writes: &'a [Seen], name: &str, reason: &str) -> Vec<&'a Seen> {
    writes
        .iter()
        .filter(|w| {
            w.path.contains("/events")
                && w.body["regarding"]["name"] == name
                && w.body["reason"] == reason
        })
        .collect()
}

#[tokio::test]
async fn leader_reclaims_then_allocates_and_follows_pool_edits() {
    let (client, api) = mock_client();
    let (writes_tx, mut writes) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(cluster(api, writes_tx, control_rx, 0, vec![]));

    let args = Cli::parse_from(["ferrolb-controller", "--namespace", "ferrolb-system"]).run;
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
    let (m, r) = (metrics.clone(), readiness.clone());
    let leader = tokio::spawn(async move { run_leader(client, &args, "pod-1", m, r).await });

    // Start-up: "old" keeps 192.0.2.1 (nothing written for it); "web" gets the next
    // free address (avoidBuggyIPs skips .0), its annotation and an IPAllocated Event;
    // the pool's status counts both.
    let got = collect(&mut writes, |w| {
        !status_patches(w, "web").is_empty()
            && w.iter().any(|s| s.path.ends_with("/services/web"))
            && !events(w, "web", "IPAllocated").is_empty()
            && w.iter()
                .any(|s| s.path.ends_with("/ipaddresspools/p/status"))
    })
    .await;
    assert!(!leader.is_finished());
    let web = status_patches(&got, "web");
    assert_eq!(web.len(), 1, "{got:#?}");
    assert_eq!(
        web[0].body,
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}})
    );
    assert!(
        got.iter()
            .all(|w| !w.path.contains("/services/old") && !w.path.contains("/services/plain")),
        "{got:#?}"
    );
    assert!(
        got.iter().all(|w| w.body["regarding"]["name"] != "old"),
        "{got:#?}"
    );
    let ev = events(&got, "web", "IPAllocated");
    assert_eq!(ev[0].body["regarding"]["uid"], "uid-web");
    assert_eq!(ev[0].body["note"], "Assigned IP [192.0.2.2] from pool p");
    let pool_status = got
        .iter()
        .find(|w| w.path.ends_with("/ipaddresspools/p/status"))
        .unwrap();
    assert_eq!(pool_status.body["status"]["assignedIPv4"], 2);
    for c in pool_status.body["status"]["conditions"]
        .as_array()
        .unwrap_or(&Vec::new())
    {
        assert_eq!(c["observedGeneration"], 1, "{c}");
        let t = c["lastTransitionTime"].as_str().unwrap_or_default();
        assert!(
            t.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && t.ends_with('Z'),
            "{c}"
        );
    }
    assert_eq!(
        pool_status.body["status"]["conditions"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert!(readiness.is_ready());
    let text = metrics.encode();
    assert!(
        text.contains(r#"ferrolb_allocator_addresses_in_use_total{pool="p",family="ipv4"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ferrolb_k8s_writes_total{result="ok"}"#),
        "{text}"
    );

    // The pool is edited to other addresses: both Services move, each with a reason.
    control
        .send(Control::PoolWatch(vec![
            json!({"type": "MODIFIED", "object": pool(&["198.51.100.0/24"], "12")}),
        ]))
        .ok()
        .unwrap();
    let got = collect(&mut writes, |w| {
        status_patches(w, "web").len() == 1 && status_patches(w, "old").len() == 1
    })
    .await;
    let moved: Vec<String> = ["old", "web"]
        .iter()
        .map(|n| {
            status_patches(&got, n)[0].body["status"]["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for ip in &moved {
        assert!(ip.starts_with("198.51.100."), "{moved:?}");
    }
    assert_ne!(moved[0], moved[1]);
    assert!(
        !events(&got, "old", "ClearAssignment").is_empty(),
        "{got:#?}"
    );
    leader.abort();
}

#[tokio::test]
async fn leader_retries_a_failed_write() {
    let (client, api) = mock_client();
    let (writes_tx, mut writes) = mpsc::unbounded_channel();
    let (_control, control_rx) = mpsc::unbounded_channel();
    // The first Service status patch (web's) fails with a 500.
    tokio::spawn(cluster(api, writes_tx, control_rx, 1, vec![]));
    let args = Cli::parse_from(["ferrolb-controller", "--namespace", "ferrolb-system"]).run;
    let metrics = Arc::new(Metrics::new());
    let m = metrics.clone();
    let leader =
        tokio::spawn(
            async move { run_leader(client, &args, "pod-1", m, Readiness::default()).await },
        );

    let got = collect(&mut writes, |w| {
        w.iter()
            .any(|s| s.method == "PATCH" && s.path.ends_with("/services/web/status"))
            && w.iter().any(|s| s.path.ends_with("/services/web"))
    })
    .await;
    let web: Vec<&str> = got
        .iter()
        .filter(|s| s.path.ends_with("/services/web/status"))
        .map(|s| s.method.as_str())
        .collect();
    assert_eq!(web, ["PATCH (failed)", "PATCH"], "{got:#?}");
    let retried = got
        .iter()
        .filter(|s| s.path.ends_with("/services/web/status"))
        .collect::<Vec<_>>();
    assert_eq!(retried[0].body, retried[1].body);
    // The annotation patch only follows the successful status patch.
    let order: Vec<&str> = got.iter().map(|s| s.path.as_str()).collect();
    let ann = order
        .iter()
        .position(|p| p.ends_with("/services/web"))
        .unwrap();
    let ok = got
        .iter()
        .position(|s| s.method == "PATCH" && s.path.ends_with("/services/web/status"))
        .unwrap();
    assert!(ann > ok, "{order:?}");
    let text = metrics.encode();
    assert!(
        text.contains(r#"ferrolb_k8s_writes_total{result="retry"} 1"#),
        "{text}"
    );
    leader.abort();
}

#[tokio::test]
async fn leader_warns_once_about_an_l2advertisement_naming_a_missing_pool() {
    let (client, api) = mock_client();
    let (writes_tx, mut writes) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let lan = json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
                     "metadata": {"namespace": "ferrolb-system", "name": "lan", "uid": "uid-lan",
                                  "resourceVersion": "4"},
                     "spec": {"ipAddressPools": ["p", "ghost"]}});
    tokio::spawn(cluster(api, writes_tx, control_rx, 0, vec![lan]));
    let args = Cli::parse_from(["ferrolb-controller", "--namespace", "ferrolb-system"]).run;
    let leader = tokio::spawn(async move {
        run_leader(
            client,
            &args,
            "pod-1",
            Arc::new(Metrics::new()),
            Readiness::default(),
        )
        .await
    });

    let about_lan = |w: &[Seen]| -> usize {
        w.iter()
            .filter(|s| s.path.contains("/events") && s.body["regarding"]["name"] == "lan")
            .count()
    };
    let got = collect(&mut writes, |w| {
        about_lan(w) >= 1
            && w.iter()
                .any(|s| s.path.ends_with("/ipaddresspools/p/status"))
    })
    .await;
    let ev: Vec<&Seen> = got
        .iter()
        .filter(|s| s.path.contains("/events") && s.body["regarding"]["name"] == "lan")
        .collect();
    assert_eq!(ev.len(), 1, "{got:#?}");
    let ev = ev[0];
    assert_eq!(ev.method, "POST");
    assert_eq!(
        ev.path,
        "/apis/events.k8s.io/v1/namespaces/ferrolb-system/events"
    );
    let name = ev.body["metadata"]["name"].as_str().unwrap_or_default();
    assert!(name.starts_with("lan."), "{name}");
    // Everything but the generated name and the time, exactly.
    let mut body = ev.body.clone();
    for (parent, field) in [("metadata", "name"), ("", "eventTime")] {
        let obj = if parent.is_empty() {
            body.as_object_mut()
        } else {
            body[parent].as_object_mut()
        };
        assert!(obj.and_then(|o| o.remove(field)).is_some(), "{field}");
    }
    assert_eq!(
        body,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
               "metadata": {"namespace": "ferrolb-system"},
               "type": "Warning", "reason": "UnknownReference", "action": "Reconcile",
               "note": "pool \"ghost\" does not exist",
               "reportingController": "ferrolb-controller", "reportingInstance": "pod-1",
               "regarding": {"apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
                             "namespace": "ferrolb-system", "name": "lan", "uid": "uid-lan"}})
    );

    // A pool edit makes a new pass (both Services move), but the problem is the same:
    // no second Event.
    control
        .send(Control::PoolWatch(vec![
            json!({"type": "MODIFIED", "object": pool(&["198.51.100.0/24"], "12")}),
        ]))
        .ok()
        .unwrap();
    let got = collect(&mut writes, |w| {
        status_patches(w, "web").len() == 1 && status_patches(w, "old").len() == 1
    })
    .await;
    assert_eq!(about_lan(&got), 0, "{got:#?}");
    leader.abort();
}
