//! Layer2 mode end to end, in the lab (`ferrolb-lab up --nodes 3`: controller, three
//! speakers with gossip, responders, a client), observed from the client the way a
//! network engineer would: Habets `arping -d` and `ndisc6 -m` list every MAC that
//! answers for a VIP, `ip neigh` shows where the client sends, and a TCP connection says
//! which node got the packets.
//!
//! Covered: exactly one MAC per VIP in both families; a leader that is killed, crashes,
//! stops gracefully or loses its link is replaced by one other node and the client's
//! neighbour entries move to it without the client asking; `externalTrafficPolicy:
//! Local` follows the endpoints; nodes that are excluded, not Ready or not selected stay
//! silent; a speaker with the wrong gossip secret is not counted alive; with the
//! controller killed and its directory gone, addresses stay announced and failover
//! still works over gossip.
//!
//! Root only (skipped loudly otherwise); one lab at a time across test binaries
//! (`ferrolb_tests::lab::LOCK`); each test's lab is removed by a drop guard, also on
//! failure. Needs `iproute2 bird2 arping ndisc6` and the speaker binary (built here).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_tests::lab::{Lab, binaries, run, text};
use serde_json::{Value, json};

/// The example Service `default/web`: the first addresses of the lab's `lan` pool.
const WEB4: &str = "198.51.100.200";
const WEB6: &str = "2001:db8:51::200";
const CLIENT: &str = "flb-client";

/// Longest wait for anything gossip or a file change should do in well under a second.
const CONVERGE: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------
// observing from the client
// ---------------------------------------------------------------------------------------

/// The lab node a MAC belongs to: `02:66:6c:62:00:XX`, XX the host part of the node's
/// IPv4 address (node K is `.1K`).
fn node_of_mac(mac: &str) -> String {
    let last = mac.rsplit(':').next().unwrap_or("");
    match u8::from_str_radix(last, 16) {
        Ok(b @ 11..=19) if mac.starts_with("02:66:6c:62:00:") => format!("node{}", b - 10),
        _ => format!("unknown {mac}"),
    }
}

fn mac_of_node(node: &str) -> String {
    let k: u8 = node
        .strip_prefix("node")
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("not a lab node: {node}"));
    format!("02:66:6c:62:00:{:02x}", 10 + k)
}

fn is_mac(w: &str) -> bool {
    w.len() == 17
        && w.split(':')
            .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok())
}

/// Every MAC address in a tool's output, lowercased.
fn macs_in(out: &str) -> BTreeSet<String> {
    out.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| is_mac(w))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The MACs answering ARP for `ip`: Habets `arping -d` (exit status 1 when two MACs
/// answer), two requests 50 ms apart, every reply collected for 300 ms.
fn arp_answers(ip: &str) -> BTreeSet<String> {
    let out = run(&[
        "ip", "netns", "exec", CLIENT, "arping", "-d", "-c", "2", "-W", "0.05", "-w", "0.3", "-i",
        "eth0", ip,
    ]);
    let macs = macs_in(&String::from_utf8_lossy(&out.stdout));
    // arping -d's own verdict agrees with what it printed.
    if macs.len() > 1 {
        assert!(
            !out.status.success(),
            "arping -d saw {macs:?} but did not report duplicates"
        );
    }
    macs
}

/// The MACs answering a Neighbor Solicitation for `ip`: `ndisc6 -m` (every answer).
fn nd_answers(ip: &str) -> BTreeSet<String> {
    let out = run(&[
        "ip", "netns", "exec", CLIENT, "ndisc6", "-q", "-m", "-r", "1", "-w", "300", ip, "eth0",
    ]);
    macs_in(&String::from_utf8_lossy(&out.stdout))
}

/// The nodes answering for `ip`, seen from the client.
fn answering(ip: &str) -> BTreeSet<String> {
    let macs = if ip.contains(':') {
        nd_answers(ip)
    } else {
        arp_answers(ip)
    };
    macs.iter().map(|m| node_of_mac(m)).collect()
}

/// Polls until exactly one node answers for every address in `ips`, the same node for
/// all, satisfying `ok`, twice in a row; that node. Panics after `limit` with what was
/// seen last.
fn wait_one_announcer(ips: &[&str], limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut last = Vec::new();
    let mut previous: Option<String> = None;
    while start.elapsed() < limit {
        last = ips.iter().map(|ip| answering(ip)).collect::<Vec<_>>();
        let one = last
            .first()
            .filter(|first| first.len() == 1 && last.iter().all(|s| s == *first))
            .and_then(|s| s.iter().next().cloned())
            .filter(|n| ok(n));
        match (one, &previous) {
            (Some(n), Some(p)) if *p == n => return n,
            (one, _) => previous = one,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{ips:?}: not answered by one expected node within {limit:?}; last seen: {last:?}");
}

/// Polls until nobody answers for any of `ips`.
fn wait_silent(ips: &[&str], limit: Duration) {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < limit {
        last = ips.iter().map(|ip| answering(ip)).collect::<Vec<_>>();
        if last.iter().all(BTreeSet::is_empty) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{ips:?}: still answered after {limit:?}: {last:?}");
}

/// Exactly `node` answers for each of `ips`, in several probes.
fn assert_only(ips: &[&str], node: &str) {
    for _ in 0..3 {
        for ip in ips {
            let seen = answering(ip);
            assert_eq!(
                seen,
                BTreeSet::from([node.to_string()]),
                "{ip}: expected only {node} to answer"
            );
        }
    }
}

/// The MAC of the client's neighbour entry for `ip`, if it has one with an address.
fn client_neighbour(ip: &str) -> Option<String> {
    let out = run(&["ip", "-n", CLIENT, "neigh", "show", ip]);
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = t.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_ascii_lowercase)
}

fn ping_client(ip: &str) -> bool {
    run(&[
        "ip", "netns", "exec", CLIENT, "ping", "-n", "-q", "-c", "2", "-i", "0.05", "-W", "1", ip,
    ])
    .status
    .success()
}

/// What a TCP connection from the client to `addr` port 80 reads: the name of the node
/// whose responder got it. Retried, bounded.
fn tcp_from_client(addr: &str) -> String {
    let script = format!("exec 3<>/dev/tcp/{addr}/80 && timeout 2 cat <&3");
    let mut last = String::new();
    for _ in 0..10 {
        let out = run(&[
            "ip", "netns", "exec", CLIENT, "timeout", "3", "bash", "-c", &script,
        ]);
        last = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !last.is_empty() {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

// ---------------------------------------------------------------------------------------
// the lab
// ---------------------------------------------------------------------------------------

/// A three-node lab with speakers, or `None` when the test cannot run here.
fn lab_up(test: &str) -> Option<Lab> {
    let lab = Lab::prepare(test)?;
    assert!(
        binaries().speaker,
        "the speaker binary did not build: these tests need it"
    );
    lab.ok(&["up", "--nodes", "3", "--router", "none"]);
    Some(lab)
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn nodes() -> [&'static str; 3] {
    ["node1", "node2", "node3"]
}

/// Reads a speaker's report (`cluster/.ferrolb/speakers/NODE.yaml`).
fn report(dir: &Path, node: &str) -> Option<Value> {
    let text =
        std::fs::read_to_string(dir.join(".ferrolb/speakers").join(format!("{node}.yaml"))).ok()?;
    serde_saphyr::from_str::<Value>(&text).ok()
}

fn live_members(dir: &Path, node: &str) -> Option<BTreeSet<String>> {
    Some(
        report(dir, node)?
            .get("liveMembers")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
    )
}

/// Writes a file the way an editor that saves atomically does (the speakers never see a
/// half-written file).
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn to_yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_saphyr::to_string(d).expect("JSON values serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Rewrites the lab's Node objects (`lab-nodes.yaml`) through `edit`.
fn edit_nodes(lab: &Lab, edit: impl Fn(&mut Value)) {
    let path = lab.cluster().join("lab-nodes.yaml");
    let text = std::fs::read_to_string(&path).expect("lab-nodes.yaml");
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("lab-nodes.yaml parses");
    for d in &mut docs {
        edit(d);
    }
    write_atomic(&path, &to_yaml(&docs));
}

fn node_name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// one MAC per VIP
// ---------------------------------------------------------------------------------------

#[test]
fn the_client_sees_exactly_one_mac_per_vip_in_both_families() {
    let Some(lab) = lab_up("l2_one_mac_per_vip") else {
        return;
    };
    let leader = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |_| true);
    // Habets arping -d, several times, and ndisc6 listing every answer: one MAC only.
    for _ in 0..5 {
        let arp = run(&[
            "ip", "netns", "exec", CLIENT, "arping", "-d", "-c", "3", "-W", "0.05", "-w", "0.5",
            "-i", "eth0", WEB4,
        ]);
        assert!(
            arp.status.success(),
            "arping -d {WEB4} failed or saw duplicates: {}",
            text(&arp)
        );
        assert_eq!(
            macs_in(&String::from_utf8_lossy(&arp.stdout)),
            BTreeSet::from([mac_of_node(&leader)])
        );
        assert_eq!(nd_answers(WEB6), BTreeSet::from([mac_of_node(&leader)]));
    }
    // The speakers agree: only the leader reports announcing the addresses.
    let dir = lab.cluster();
    for node in nodes() {
        let r = report(&dir, node).unwrap_or_else(|| panic!("{node} wrote no report"));
        let announced: BTreeSet<String> = r["announcing"]
            .as_object()
            .map(|m| {
                m.values()
                    .flat_map(|ips| ips.as_array().cloned().unwrap_or_default())
                    .filter_map(|ip| ip.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if node == leader {
            assert_eq!(
                announced,
                BTreeSet::from([WEB4.to_string(), WEB6.to_string()]),
                "{r}"
            );
        } else {
            assert!(announced.is_empty(), "{node} announces too: {r}");
        }
    }
    // The packets go to that node, in both families.
    assert!(ping_client(WEB4) && ping_client(WEB6));
    assert_eq!(tcp_from_client(WEB4), leader);
    assert_eq!(client_neighbour(WEB4), Some(mac_of_node(&leader)));
    assert_eq!(client_neighbour(WEB6), Some(mac_of_node(&leader)));
}

// ---------------------------------------------------------------------------------------
// failover
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Failure {
    /// SIGKILL to the speaker; the node stays up.
    Kill,
    /// Every process of the node killed and its link down.
    Crash,
    /// SIGTERM to the speaker.
    Graceful,
    /// The node's link down, processes alive.
    LinkDown,
}

fn fail_and_restore(test: &str, failure: Failure) {
    let Some(lab) = lab_up(test) else {
        return;
    };
    let leader = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |_| true);
    // The client talks to the leader in both families: it has neighbour entries to move.
    assert!(ping_client(WEB4) && ping_client(WEB6));
    assert_eq!(client_neighbour(WEB4), Some(mac_of_node(&leader)));
    assert_eq!(client_neighbour(WEB6), Some(mac_of_node(&leader)));

    let t = Instant::now();
    match failure {
        Failure::Kill => lab.ok(&["kill", &leader]),
        Failure::Crash => lab.ok(&["crash", &leader]),
        Failure::Graceful => lab.ok(&["stop", &leader]),
        Failure::LinkDown => lab.ok(&["link", &leader, "down"]),
    };
    // The client's entries move by themselves (the new node's gratuitous ARP and
    // unsolicited NA): no traffic from the client in between.
    let moved = |ip: &str| client_neighbour(ip).is_some_and(|m| m != mac_of_node(&leader));
    let mut polls = 0;
    while !(moved(WEB4) && moved(WEB6)) {
        polls += 1;
        assert!(
            t.elapsed() < CONVERGE && polls < 2_000,
            "{failure:?} of {leader}: the client's entries did not move: {:?} {:?}",
            client_neighbour(WEB4),
            client_neighbour(WEB6)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let moved_after = t.elapsed();
    let new = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n != leader);
    assert_eq!(client_neighbour(WEB4), Some(mac_of_node(&new)));
    assert_eq!(client_neighbour(WEB6), Some(mac_of_node(&new)));
    assert_only(&[WEB4, WEB6], &new);
    assert_eq!(tcp_from_client(WEB4), new, "the packets go to the new node");
    eprintln!(
        "{failure:?}: {leader} → {new}, client's entries moved after {:.0} ms",
        moved_after.as_secs_f64() * 1000.0
    );

    // Back: the returning node is first in the rendezvous order again and takes its
    // addresses back, with no second announcer left behind.
    match failure {
        Failure::LinkDown => lab.ok(&["link", &leader, "up"]),
        _ => lab.ok(&["start", &leader]),
    };
    let back = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n == leader);
    assert_only(&[WEB4, WEB6], &back);
}

#[test]
fn a_killed_leader_is_replaced_and_the_client_follows() {
    fail_and_restore("l2_kill", Failure::Kill);
}

#[test]
fn a_crashed_leader_is_replaced_and_the_client_follows() {
    fail_and_restore("l2_crash", Failure::Crash);
}

#[test]
fn a_gracefully_stopped_leader_hands_over_and_the_client_follows() {
    fail_and_restore("l2_graceful", Failure::Graceful);
}

#[test]
fn a_leader_losing_its_link_is_replaced_and_the_client_follows() {
    fail_and_restore("l2_link", Failure::LinkDown);
}

// ---------------------------------------------------------------------------------------
// externalTrafficPolicy: Local
// ---------------------------------------------------------------------------------------

const LOCAL4: &str = "198.51.100.210";
const LOCAL6: &str = "2001:db8:51::210";

/// A dual-stack `Local` Service at .210/::210 with its own EndpointSlices: one endpoint,
/// on `node` (`None`: one that is not ready, on node1).
fn local_service(node: Option<&str>) -> String {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "local",
            "namespace": "default",
            "annotations": {"ferrolb.io/loadBalancerIPs": format!("{LOCAL4},{LOCAL6}")},
        },
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "ipFamilyPolicy": "RequireDualStack",
            "ipFamilies": ["IPv4", "IPv6"],
            "selector": {"app": "local"},
            "ports": [{"name": "http", "port": 80, "targetPort": 80}],
        },
    });
    let (host, ready) = match node {
        Some(n) => (n, true),
        None => ("node1", false),
    };
    let k: u8 = host[4..].parse().expect("nodeK");
    let slice = |family: &str, addr: String| {
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("local-{}", family.to_ascii_lowercase()),
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "local"},
            },
            "addressType": family,
            "endpoints": [{
                "addresses": [addr],
                "nodeName": host,
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
            }],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        })
    };
    to_yaml(&[
        service,
        slice("IPv4", format!("198.51.100.1{k}")),
        slice("IPv6", format!("2001:db8:51::1{k}")),
    ])
}

#[test]
fn local_traffic_policy_moves_the_address_with_the_endpoints() {
    let Some(lab) = lab_up("l2_local") else {
        return;
    };
    let file = lab.state.join("local.yaml");
    let apply = |node: Option<&str>| {
        std::fs::write(&file, local_service(node)).expect("local.yaml");
        lab.ok(&["apply", "-f", file.to_str().expect("utf-8 path")]);
    };
    // Each node in turn hosts the only endpoint: the address follows it.
    for node in ["node2", "node3", "node1", "node2"] {
        apply(Some(node));
        let got = wait_one_announcer(&[LOCAL4, LOCAL6], CONVERGE, |n| n == node);
        assert_only(&[LOCAL4, LOCAL6], &got);
        assert_eq!(tcp_from_client(LOCAL4), node);
    }
    // No serving endpoint anywhere: nobody attracts the traffic.
    apply(None);
    wait_silent(&[LOCAL4, LOCAL6], CONVERGE);
    // The Cluster-policy Service is not affected by any of it.
    wait_one_announcer(&[WEB4, WEB6], CONVERGE, |_| true);
}

// ---------------------------------------------------------------------------------------
// nodes that must stay silent
// ---------------------------------------------------------------------------------------

#[test]
fn excluded_not_ready_and_unselected_nodes_stay_silent() {
    let Some(lab) = lab_up("l2_ineligible") else {
        return;
    };
    let leader = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |_| true);

    // Labelled exclude-from-external-load-balancers: another node takes over.
    edit_nodes(&lab, |d| {
        if node_name(d) == leader {
            d["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] =
                json!("");
        }
    });
    let other = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n != leader);
    assert_only(&[WEB4, WEB6], &other);
    edit_nodes(&lab, |d| {
        if let Some(labels) = d["metadata"]["labels"].as_object_mut() {
            labels.remove("node.kubernetes.io/exclude-from-external-load-balancers");
        }
    });
    wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n == leader);

    // Not Ready (its speaker still runs and gossips): the same.
    let ready = |status: &'static str| {
        let leader = leader.clone();
        move |d: &mut Value| {
            if node_name(d) == leader {
                d["status"]["conditions"] = json!([{"type": "Ready", "status": status}]);
            }
        }
    };
    edit_nodes(&lab, ready("False"));
    let other = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n != leader);
    assert_only(&[WEB4, WEB6], &other);
    edit_nodes(&lab, ready("True"));
    wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n == leader);

    // nodeSelectors: only the chosen node (not the leader) may announce, then none.
    let chosen = nodes()
        .into_iter()
        .find(|n| *n != leader)
        .expect("three nodes");
    let ad = |hostname: &str| {
        to_yaml(&[json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "lan", "namespace": "ferrolb-system"},
            "spec": {
                "ipAddressPools": ["lan"],
                "interfaces": ["eth0"],
                "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": hostname}}],
            },
        })])
    };
    let ad_file = lab.cluster().join("lab-l2advertisement.yaml");
    write_atomic(&ad_file, &ad(chosen));
    let got = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n == chosen);
    assert_only(&[WEB4, WEB6], &got);
    write_atomic(&ad_file, &ad("no-such-node"));
    wait_silent(&[WEB4, WEB6], CONVERGE);
}

// ---------------------------------------------------------------------------------------
// gossip authentication
// ---------------------------------------------------------------------------------------

/// A process this test started; killed when dropped.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_speaker_with_the_wrong_gossip_secret_is_not_counted_alive() {
    let Some(lab) = lab_up("l2_wrong_secret") else {
        return;
    };
    let dir = lab.cluster();
    let all: BTreeSet<String> = nodes().iter().map(|n| n.to_string()).collect();
    let wait_live = |node: &str, want: &BTreeSet<String>| {
        let start = Instant::now();
        while live_members(&dir, node).as_ref() != Some(want) {
            assert!(
                start.elapsed() < CONVERGE,
                "{node}: live members {:?}, expected {want:?}",
                live_members(&dir, node)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for n in nodes() {
        wait_live(n, &all);
    }

    // node3's speaker, exactly as the lab runs it, but with another secret.
    let pid = lab.pid("node3-speaker").expect("node3's speaker pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("its command line");
    let mut argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = argv
        .iter()
        .position(|a| a == "--gossip-secret-file")
        .expect("the lab passes --gossip-secret-file")
        + 1;
    let wrong = lab.state.join("wrong.secret");
    std::fs::write(&wrong, format!("{}\n", "5a".repeat(32))).expect("wrong.secret");
    argv[at] = wrong.display().to_string();
    lab.ok(&["kill", "node3"]);
    let good: BTreeSet<String> = ["node1", "node2"].map(String::from).into();
    wait_live("node1", &good);
    wait_live("node2", &good);

    let log = std::fs::File::create(lab.state.join("logs/node3-impostor.log")).expect("log");
    let impostor = Spawned(
        Command::new("ip")
            .args(["netns", "exec", "flb-node3"])
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot start the speaker"),
    );
    // It runs and, hearing nobody it can authenticate, counts only itself…
    wait_live("node3", &BTreeSet::from(["node3".to_string()]));
    // …and the others never count it, over several of its announce rounds.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        for n in ["node1", "node2"] {
            assert_eq!(
                live_members(&dir, n).as_ref(),
                Some(&good),
                "{n} counts the speaker with the wrong secret"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(impostor);

    // The right secret again: node3 is counted at once (the check above could fail).
    lab.ok(&["start", "node3"]);
    for n in nodes() {
        wait_live(n, &all);
    }
}

// ---------------------------------------------------------------------------------------
// the standalone source going away
// ---------------------------------------------------------------------------------------

#[test]
fn without_controller_or_directory_addresses_stay_and_failover_still_works() {
    let Some(lab) = lab_up("l2_source_gone") else {
        return;
    };
    let leader = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |_| true);
    assert!(ping_client(WEB4) && ping_client(WEB6));

    let controller = lab.pid("controller").expect("the controller's pid");
    let killed = run(&["kill", "-KILL", &controller.to_string()]);
    assert!(
        killed.status.success(),
        "cannot kill the controller: {}",
        text(&killed)
    );
    let gone = lab.state.join("cluster-gone");
    std::fs::rename(lab.cluster(), &gone).expect("moving the directory away");
    // Several of the speakers' directory polls later, nothing changed.
    std::thread::sleep(Duration::from_millis(600));
    assert_only(&[WEB4, WEB6], &leader);
    for n in nodes() {
        let pid = lab
            .pid(&format!("{n}-speaker"))
            .expect("speaker pid recorded");
        assert!(
            pid_alive(pid),
            "{n}'s speaker exited: {}",
            lab.log(&format!("{n}-speaker"))
        );
    }

    // Gossip alone still moves the addresses off a crashed leader.
    lab.ok(&["crash", &leader]);
    let new = wait_one_announcer(&[WEB4, WEB6], CONVERGE, |n| n != leader);
    assert_only(&[WEB4, WEB6], &new);
    let start = Instant::now();
    while client_neighbour(WEB4) != Some(mac_of_node(&new)) {
        assert!(
            start.elapsed() < CONVERGE,
            "the client's entry did not move"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // (No TCP check here: the lab's responders, its stand-in for kube-proxy, take the
    // VIPs off `lo` when the assignments file disappears, which kube-proxy would not.)
}
