//! The HTTP endpoints over real sockets: `/healthz`, `/readyz`, `/metrics`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use ferrolb_controller::engine::PoolUsage;
use ferrolb_controller::health::{self, Readiness, Routes};
use ferrolb_controller::metrics::{Metrics, WriteResult};
use ferrolb_crds::addresses::Family;

/// Sends `request` and returns (status code, headers, body).
async fn fetch(addr: SocketAddr, request: String) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head.to_string(), body.to_string())
    })
    .await
    .unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    fetch(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nUser-Agent: kube-probe/1.34\r\n\r\n"),
    )
    .await
}

async fn start(routes: Routes) -> SocketAddr {
    let listener = health::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(health::serve(listener, routes));
    addr
}

#[tokio::test]
async fn healthz_and_readyz() {
    let ready = Readiness::default();
    let addr = start(Routes {
        metrics: None,
        health: Some(ready.clone()),
    })
    .await;

    let (code, head, body) = get(addr, "/healthz").await;
    assert_eq!(code, 200);
    assert_eq!(body, "ok\n");
    assert!(head.contains("Content-Length: 3"), "{head}");

    assert_eq!(get(addr, "/readyz").await.0, 503);
    ready.set(true);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    ready.set(false);
    assert_eq!(get(addr, "/readyz").await.0, 503);

    assert_eq!(
        get(addr, "/metrics").await.0,
        404,
        "metrics live on their own listener"
    );
    assert_eq!(get(addr, "/nope").await.0, 404);
    let (code, _, _) = fetch(addr, "DELETE /healthz HTTP/1.1\r\n\r\n".into()).await;
    assert_eq!(code, 405);
    let (code, _, _) = fetch(addr, "nonsense\r\n\r\n".into()).await;
    assert_eq!(code, 400);
    // HEAD: headers only.
    let (code, head, body) = fetch(addr, "HEAD /healthz HTTP/1.1\r\n\r\n".into()).await;
    assert_eq!((code, body.as_str()), (200, ""));
    assert!(head.contains("Content-Length: 3"), "{head}");
}

#[tokio::test]
async fn metrics_endpoint_serves_openmetrics() {
    let metrics = Arc::new(Metrics::new());
    let addr = start(Routes {
        metrics: Some(metrics.clone()),
        health: None,
    })
    .await;
    metrics.set_pool_usage(&[PoolUsage {
        pool: "p".into(),
        family: Family::V4,
        total: 254,
        in_use: 7,
    }]);
    metrics.allocation_failures(1);
    metrics.k8s_write(WriteResult::Retry);
    metrics.observe_reconcile(std::time::Duration::from_millis(2));

    let (code, head, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    for needle in [
        r#"ferrolb_allocator_addresses_total{pool="p",family="ipv4"} 254"#,
        r#"ferrolb_allocator_addresses_in_use_total{pool="p",family="ipv4"} 7"#,
        "ferrolb_allocation_failures_total 1",
        "# TYPE ferrolb_reconcile_duration_seconds histogram",
        "ferrolb_reconcile_duration_seconds_count 1",
        r#"ferrolb_k8s_writes_total{result="retry"} 1"#,
        "# EOF",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in\n{body}");
    }
    assert_eq!(
        get(addr, "/healthz").await.0,
        404,
        "health lives on its own listener"
    );
}
