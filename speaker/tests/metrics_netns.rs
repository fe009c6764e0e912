//! The speaker's HTTP endpoints, scraped from the real binary while real ARP requests
//! and Neighbor Solicitations (Habets `arping`, `ndisc6`) reach it across a bridge in
//! network namespaces ([`site`]).
//!
//! Needs root (namespaces, raw sockets): without it the test prints a SKIP line and
//! passes. Needs the packages `arping` and `ndisc6`.

#[path = "support/site.rs"]
mod site;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrolb_speaker::metrics::{key, sample};
use site::{Site, Svc, wait_for};

const VIP4: &str = "198.51.100.200";
const VIP6: &str = "2001:db8:51::200";

/// Root and the tools, or a loud SKIP (false) without root.
fn ready() -> bool {
    if !site::is_root() {
        eprintln!(
            "SKIP metrics_netns: needs root (network namespaces, raw sockets); CI runs it as root"
        );
        return false;
    }
    require_tools();
    true
}

fn require_tools() {
    for (tool, package) in [("arping", "arping"), ("ndisc6", "ndisc6")] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "`{tool}` is missing: apt-get install -y {package}");
    }
}

/// One scrape of `/metrics`, or panics.
fn scrape(site: &Site, addr: SocketAddr) -> String {
    let (code, body) = site
        .http_get(addr, "/metrics")
        .expect("/metrics does not answer");
    assert_eq!(code, 200, "{body}");
    body
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, &key(name, labels)).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
}

#[test]
fn endpoints_count_real_arp_and_ndp_traffic() {
    if !ready() {
        return;
    }
    let mut site = Site::build("mtr");
    let web = Svc {
        name: "web".into(),
        ips: vec![VIP4.parse().unwrap(), VIP6.parse().unwrap()],
    };
    site.write_inputs(std::slice::from_ref(&web));
    site.write_assignments(std::slice::from_ref(&web));
    let metrics: SocketAddr = "127.0.0.1:7472".parse().unwrap();
    let health: SocketAddr = "127.0.0.1:7473".parse().unwrap();
    site.start_speaker(&[
        "--metrics-addr",
        &metrics.to_string(),
        "--health-addr",
        &health.to_string(),
    ]);

    // Alive, then ready once it has read the directory and watches the interfaces.
    let alive = wait_for(Duration::from_secs(10), || {
        site.http_get(health, "/healthz").map(|r| r.0) == Some(200)
    });
    assert!(alive, "/healthz never answered 200");
    assert!(
        wait_for(Duration::from_secs(5), || site
            .http_get(health, "/readyz")
            .map(|r| r.0)
            == Some(200)),
        "/readyz never answered 200"
    );
    // Each listener serves only its own paths.
    assert_eq!(site.http_get(health, "/metrics").map(|r| r.0), Some(404));
    assert_eq!(site.http_get(metrics, "/healthz").map(|r| r.0), Some(404));

    // Both addresses announced, and their first gratuitous round sent.
    let announced = wait_for(Duration::from_secs(5), || {
        let t = scrape(&site, metrics);
        sample(
            &t,
            &key(
                "ferrolb_speaker_announced_ips",
                &[("mode", "layer2"), ("family", "ipv4")],
            ),
        ) == Some(1.0)
            && sample(
                &t,
                &key(
                    "ferrolb_speaker_announced_ips",
                    &[("mode", "layer2"), ("family", "ipv6")],
                ),
            ) == Some(1.0)
    });
    assert!(announced, "{}", scrape(&site, metrics));
    let eth0 = [("interface", "eth0")];
    let before = scrape(&site, metrics);
    // IPv4: two frames per round; IPv6: one.
    assert!(
        value(&before, "ferrolb_layer2_gratuitous_sent_total", &eth0) >= 3.0,
        "{before}"
    );
    assert_eq!(value(&before, "ferrolb_speaker_gossip_enabled", &[]), 0.0);
    assert!(
        !before.contains("ferrolb_speaker_gossip_members"),
        "{before}"
    );
    assert_eq!(value(&before, "ferrolb_speaker_failovers_total", &[]), 0.0);

    // Three ARP requests from the client, each answered by the speaker.
    let out = site.exec("client", &format!("arping -c 3 -w 5 -I eth0 {VIP4}"));
    assert!(
        out.status.success(),
        "arping got no answer: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = scrape(&site, metrics);
    let delta = |name: &str| value(&after, name, &eth0) - value(&before, name, &eth0);
    assert!(
        delta("ferrolb_layer2_arp_requests_received_total") >= 3.0,
        "{after}"
    );
    assert!(
        delta("ferrolb_layer2_arp_requests_answered_total") >= 3.0,
        "{after}"
    );

    // A Neighbor Solicitation, answered.
    let out = site.exec("client", &format!("ndisc6 -q -1 -r 3 -w 500 {VIP6} eth0"));
    assert!(
        out.status.success(),
        "ndisc6 got no answer: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after_ns = scrape(&site, metrics);
    let delta = |name: &str| value(&after_ns, name, &eth0) - value(&after, name, &eth0);
    assert!(
        delta("ferrolb_layer2_ndp_solicitations_received_total") >= 1.0,
        "{after_ns}"
    );
    assert!(
        delta("ferrolb_layer2_ndp_solicitations_answered_total") >= 1.0,
        "{after_ns}"
    );
    // Requests for an address not announced here are neither counted nor answered.
    let unowned: IpAddr = "198.51.100.201".parse().unwrap();
    let out = site.exec("client", &format!("arping -c 1 -w 1 -I eth0 {unowned}"));
    assert!(!out.status.success(), "someone answered for {unowned}");
    let last = scrape(&site, metrics);
    assert_eq!(
        value(&last, "ferrolb_layer2_arp_requests_received_total", &eth0),
        value(
            &after_ns,
            "ferrolb_layer2_arp_requests_received_total",
            &eth0
        ),
        "{last}"
    );

    // On SIGTERM it stops cleanly.
    let status = site.stop_speaker();
    assert!(
        status.is_some_and(|s| s.success()),
        "speaker exit: {status:?}"
    );
}

/// Gossip that cannot start (here: bound to an address the node does not have) must not
/// take the node's announcements down: Node readiness alone decides, and the metric
/// says gossip is off.
#[test]
fn gossip_that_cannot_start_falls_back_to_readiness() {
    if !ready() {
        return;
    }
    let mut site = Site::build("gfb");
    let web = Svc {
        name: "web".into(),
        ips: vec![VIP4.parse().unwrap()],
    };
    site.write_inputs(std::slice::from_ref(&web));
    site.write_assignments(std::slice::from_ref(&web));
    let secret = site.dir.join("gossip.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let metrics: SocketAddr = "127.0.0.1:7482".parse().unwrap();
    site.start_speaker(&[
        "--metrics-addr",
        &metrics.to_string(),
        "--health-addr",
        "127.0.0.1:7483",
        "--gossip-secret-file",
        secret.to_str().unwrap(),
        // Not an address of the node: the bind fails.
        "--gossip-bind",
        "203.0.113.77:7946",
    ]);
    let announced = wait_for(Duration::from_secs(10), || {
        site.http_get(metrics, "/metrics").is_some_and(|(_, t)| {
            sample(
                &t,
                &key(
                    "ferrolb_speaker_announced_ips",
                    &[("mode", "layer2"), ("family", "ipv4")],
                ),
            ) == Some(1.0)
        })
    });
    assert!(site.speaker_running(), "the speaker exited");
    assert!(announced, "{}", scrape(&site, metrics));
    assert_eq!(
        value(
            &scrape(&site, metrics),
            "ferrolb_speaker_gossip_enabled",
            &[]
        ),
        0.0
    );
    let out = site.exec("client", &format!("arping -c 2 -w 5 -I eth0 {VIP4}"));
    assert!(
        out.status.success(),
        "arping got no answer: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(site.stop_speaker().is_some_and(|s| s.success()));
}
