//! `ferrolb-speaker`'s BGP features one by one, against real daemons in network
//! namespaces: TCP MD5 (right and wrong key), passive mode, iBGP with LOCAL_PREF, exact
//! attributes at ExaBGP (communities, aliases, aggregation, IPv6 next hop), withdrawal on
//! endpoint loss, GoBGP as the router, eBGP multihop, hold-timer expiry, graceful restart
//! through a speaker restart, TCP MD5 against FRR, a key from a `passwordSecret` (and its
//! rotation), and a raw TCP "router" sending malformed OPEN/UPDATE/NOTIFICATION messages
//! while a real BIRD peer of the same speaker keeps its session and route.
//!
//! Each test builds its own namespaces (`flbt-<tag>-<pid>-…`, removed on drop, also on
//! failure) and site directory. Root only (skipped loudly otherwise); needs `bird2 frr
//! gobgpd exabgp`. Documentation addresses only.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ferrolb_tests::bgp::bird::Bird;
use ferrolb_tests::bgp::exabgp::Exabgp;
use ferrolb_tests::bgp::frr::Frr;
use ferrolb_tests::bgp::gobgp::Gobgp;
use ferrolb_tests::bgp::netns::Far;
use ferrolb_tests::bgp::site::{self, NAMESPACE, NODE_AS, ROUTER_AS, Service, advertisement, peer};
use ferrolb_tests::bgp::testbed::{
    LIMIT, POLL, Site, VIP, WEB_ROUTE, ip, pairs, ready, wait_routes, want, web,
};
use ferrolb_tests::bgp::{RouterConfig, run, wait_for};
use serde_json::json;

/// The AS of the raw TCP peer of the malformed-message tests.
const RAW_AS: u16 = 64501;

/// Runs `check` every `every` for `window` (at most 1000 times): for what must hold
/// all along, not only in the end.
fn throughout(window: Duration, every: Duration, mut check: impl FnMut()) {
    let start = Instant::now();
    let mut polls = 0;
    while start.elapsed() < window && polls < 1000 {
        polls += 1;
        check();
        std::thread::sleep(every);
    }
}

/// Asserts BIRD's session with the speaker does not come up for `window`.
fn assert_never_established(s: &Site, bird: &Bird, window: Duration, why: &str) {
    assert_stays_down(window, why, || bird.state(s.node()));
}

/// Asserts a session whose state `state` reads does not come up for `window`.
fn assert_stays_down(window: Duration, why: &str, state: impl Fn() -> Option<String>) {
    throughout(window, Duration::from_millis(100), || {
        assert_ne!(state().as_deref(), Some("Established"), "{why}");
    });
}

/// `TcpExtTCPMD5Failure` in namespace `ns` (a fresh namespace starts at 0).
fn md5_failures(ns: &str) -> u64 {
    let out = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "nstat",
        "-asz",
        "TcpExtTCPMD5Failure",
    ])
    .unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("TcpExtTCPMD5Failure")).then(|| w.next()?.parse::<u64>().ok())?
        })
        .sum()
}

// --- TCP MD5 ----------------------------------------------------------------------------

/// The speaker's key for the router.
const MD5_KEY: &str = "ferrolb-md5-key";

/// A started speaker with [`MD5_KEY`] for the router, and BIRD using `bird_key` for the
/// speaker.
fn md5_site(tag: &str, bird_key: &str) -> (Site, Bird) {
    let mut s = Site::with_router(tag, json!({"password": MD5_KEY}), json!({}));
    let bird = s.bird(s.neighbor().md5(bird_key), |_| {});
    s.start();
    (s, bird)
}

#[test]
fn md5_right_password_establishes_and_the_route_arrives() {
    if !ready("md5_right_password_establishes_and_the_route_arrives") {
        return;
    }
    let (s, bird) = md5_site("ft-md5ok", MD5_KEY);
    s.wait_web(&bird);
    // The segments were really signed: the kernel rejected none of them.
    assert_eq!(md5_failures(&s.net.router.ns), 0);
}

#[test]
fn md5_wrong_password_never_establishes() {
    if !ready("md5_wrong_password_never_establishes") {
        return;
    }
    let (s, bird) = md5_site("ft-md5bad", "another-key");
    // Several connect attempts each way (connect time 1 s) fit in this window.
    assert_never_established(
        &s,
        &bird,
        Duration::from_secs(6),
        "a session with mismatched MD5 keys came up",
    );
    assert!(bird.routes().unwrap().is_empty());
    let failures = md5_failures(&s.net.router.ns) + md5_failures(&s.net.host(1).ns);
    assert!(
        failures > 0,
        "no TCPMD5Failure counted in either namespace: were the segments signed at all?"
    );
}

/// A started speaker with [`MD5_KEY`] for the router, and FRR (bgpd) using `frr_key` for
/// the speaker.
fn md5_frr_site(tag: &str, frr_key: &str) -> (Site, Frr) {
    let mut s = Site::with_router(tag, json!({"password": MD5_KEY}), json!({}));
    let cfg = s.router_config(s.neighbor().md5(frr_key));
    let frr = Frr::start(&s.net.router.ns, s.net.subdir("frr").unwrap(), cfg).unwrap();
    s.start();
    (s, frr)
}

#[test]
fn md5_against_frr_right_password_establishes_and_the_route_arrives() {
    if !ready("md5_against_frr_right_password_establishes_and_the_route_arrives") {
        return;
    }
    let (s, frr) = md5_frr_site("ft-md5frr", MD5_KEY);
    frr.wait_established(s.node(), LIMIT).unwrap();
    let r = wait_routes("FRR", &[(WEB_ROUTE, s.node())], || frr.routes().unwrap());
    assert_eq!(r[0].as_path, [NODE_AS]);
    assert_eq!(r[0].peer, Some(s.node()));
    assert_eq!(md5_failures(&s.net.router.ns), 0);
    assert_eq!(md5_failures(&s.net.host(1).ns), 0);
}

#[test]
fn md5_against_frr_wrong_password_never_establishes() {
    if !ready("md5_against_frr_wrong_password_never_establishes") {
        return;
    }
    let (s, frr) = md5_frr_site("ft-md5frrbad", "another-key");
    // FRR's connect timer and the speaker's connectTime are 1 s: several attempts each
    // way fit in this window.
    assert_stays_down(
        Duration::from_secs(6),
        "a session with mismatched MD5 keys came up with FRR",
        || frr.state(s.node()),
    );
    assert!(frr.routes().unwrap().is_empty());
    let failures = md5_failures(&s.net.router.ns) + md5_failures(&s.net.host(1).ns);
    assert!(
        failures > 0,
        "no TCPMD5Failure counted in either namespace: were the segments signed at all?"
    );
}

/// The Secret named by the BGPPeer's `passwordSecret`.
const MD5_SECRET: &str = "router-md5";

/// Writes `secrets.yaml`: the `kubernetes.io/basic-auth` Secret [`MD5_SECRET`] in the
/// FerroLB namespace, `key` the fields holding its password (`data` or `stringData`).
fn write_md5_secret(s: &Site, key: serde_json::Value) {
    let mut doc = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": MD5_SECRET, "namespace": NAMESPACE},
        "type": "kubernetes.io/basic-auth",
    });
    doc.as_object_mut()
        .unwrap()
        .extend(key.as_object().unwrap().clone());
    site::write(&s.dir, "secrets.yaml", &format!("---\n{doc}\n")).unwrap();
}

#[test]
fn password_secret_keys_the_session_and_a_rotated_key_takes_effect() {
    if !ready("password_secret_keys_the_session_and_a_rotated_key_takes_effect") {
        return;
    }
    let mut s = Site::with_router(
        "ft-md5sec",
        json!({"passwordSecret": {"name": MD5_SECRET, "namespace": NAMESPACE}}),
        json!({}),
    );
    // As the API server stores it: `data`, base64.
    let b64 = serde_json::to_value(k8s_openapi::ByteString(MD5_KEY.as_bytes().to_vec())).unwrap();
    assert_ne!(
        b64,
        json!(MD5_KEY),
        "the password is written base64-encoded"
    );
    write_md5_secret(&s, json!({"data": {"password": b64}}));
    let bird = s.bird(s.neighbor().md5(MD5_KEY), |_| {});
    s.start();
    s.wait_web(&bird);
    assert_eq!(md5_failures(&s.net.router.ns), 0);

    // The Secret now holds another key (`stringData`, as a file may give it): the
    // speaker restarts the session with it, and BIRD, still on the old key, cannot
    // come back.
    write_md5_secret(&s, json!({"stringData": {"password": "rotated-key"}}));
    let restarted = wait_for(LIMIT, POLL, || {
        s.log()
            .lines()
            .any(|l| l.contains("peer=router") && l.contains("its settings changed"))
            .then_some(())
    });
    assert!(
        restarted.is_some(),
        "the speaker did not restart the session for the new key; log:\n{}",
        s.log()
    );
    let down = wait_for(LIMIT, POLL, || {
        (bird.state(s.node()).as_deref() != Some("Established")).then_some(())
    });
    assert!(
        down.is_some(),
        "BIRD's session stayed up after the key changed"
    );
    // BIRD retries after 1 s (its error wait time), the speaker after 1 s (connectTime).
    assert_never_established(
        &s,
        &bird,
        Duration::from_secs(6),
        "the session came back although the Secret's key no longer matches BIRD's",
    );
    assert!(bird.routes().unwrap().is_empty());
    let failures = md5_failures(&s.net.router.ns) + md5_failures(&s.net.host(1).ns);
    assert!(failures > 0, "no TCPMD5Failure after the key changed");

    // And back to BIRD's key: the session and the route return.
    write_md5_secret(&s, json!({"stringData": {"password": MD5_KEY}}));
    s.wait_web(&bird);
}

// --- Passive, iBGP ----------------------------------------------------------------------

#[test]
fn passive_peer_is_dialed_by_the_router() {
    if !ready("passive_peer_is_dialed_by_the_router") {
        return;
    }
    let mut s = Site::with_router("ft-passive", json!({"passive": true}), json!({}));
    let bird = s.bird(s.neighbor(), |_| {});
    s.start();
    s.wait_web(&bird);
    // The router dialed: the speaker's end of the session is its port 179.
    let ss = s
        .net
        .exec(&s.net.host(1).ns, &["ss", "-Htn", "state", "established"])
        .unwrap();
    assert!(
        ss.contains(&format!("{}:179 ", s.node())) && !ss.contains(&format!("{}:179", s.router())),
        "the speaker dialed instead of waiting: {ss}"
    );
}

#[test]
fn ibgp_carries_the_advertisement_local_pref() {
    if !ready("ibgp_carries_the_advertisement_local_pref") {
        return;
    }
    let mut s = Site::new("ft-ibgp", 1);
    s.configure(&[
        peer("router", s.router(), NODE_AS, json!({})),
        advertisement("bgp", json!({"localPref": 150})),
    ]);
    s.services(&[web()]);
    let bird = s.bird(s.neighbor(), |c| c.asn = NODE_AS);
    s.start();
    let r = s.wait_web(&bird);
    assert_eq!(r[0].local_pref, Some(150));
    assert_eq!(
        r[0].as_path,
        Vec::<u32>::new(),
        "iBGP: our AS is not prepended"
    );
}

// --- Exact attributes at ExaBGP ---------------------------------------------------------

#[test]
fn exabgp_sees_communities_aliases_aggregation_and_ipv6_next_hop() {
    if !ready("exabgp_sees_communities_aliases_aggregation_and_ipv6_next_hop") {
        return;
    }
    let mut s = Site::new("ft-exa", 1);
    s.configure(&[
        peer(
            "router",
            s.router(),
            ROUTER_AS,
            json!({"dualStackAddressFamily": true}),
        ),
        (
            "Community",
            "aliases".into(),
            json!({"communities": [{"name": "edge", "value": "64512:300"}]}),
        ),
        advertisement(
            "bgp",
            json!({
                "communities": ["64512:100", "large:64512:1:2", "edge"],
                "aggregationLength": 24,
                "aggregationLengthV6": 120,
            }),
        ),
    ]);
    s.services(&[Service::new(
        "web",
        &[ip(VIP), ip("2001:db8:113::10")],
        &["node1"],
    )]);
    let cfg = s.router_config(s.neighbor());
    let exa = Exabgp::start(&s.net.router.ns, s.net.subdir("exabgp").unwrap(), cfg).unwrap();
    s.start();
    exa.wait_established(s.node(), LIMIT).unwrap();
    let v6_nh: IpAddr = s.net.host(1).ipv6.into();
    let r = wait_routes(
        "ExaBGP",
        &[("203.0.113.0/24", s.node()), ("2001:db8:113::/120", v6_nh)],
        || exa.routes().unwrap(),
    );
    for route in &r {
        let p = route.prefix();
        assert_eq!(route.peer, Some(s.node()), "{p}");
        assert_eq!(route.as_path, [NODE_AS], "{p}");
        assert_eq!(route.communities, ["64512:100", "64512:300"], "{p}");
        assert_eq!(route.large_communities, ["64512:1:2"], "{p}");
        assert_eq!(route.local_pref, None, "{p}: LOCAL_PREF is for iBGP only");
        assert_eq!(route.med, None, "{p}");
    }
    // The IPv6 prefix came in MP_REACH_NLRI (ExaBGP files it under its family).
    let raw = exa.raw().unwrap();
    assert!(raw.contains("\"ipv6 unicast\""), "{raw}");
    assert!(exa.received().notifications.is_empty());
}

// --- Withdrawal on endpoint loss --------------------------------------------------------

#[test]
fn local_service_route_goes_when_its_endpoints_go() {
    if !ready("local_service_route_goes_when_its_endpoints_go") {
        return;
    }
    let mut s = Site::new("ft-endpt", 1);
    s.configure(&[
        peer("router", s.router(), ROUTER_AS, json!({})),
        advertisement("bgp", json!({})),
    ]);
    let mut svc = web();
    svc.local = true;
    s.services(std::slice::from_ref(&svc));
    let bird = s.bird(s.neighbor(), |_| {});
    s.start();
    s.wait_web(&bird);
    // The Service and its address stay; only its last endpoint goes.
    svc.endpoints_on.clear();
    s.services(std::slice::from_ref(&svc));
    wait_routes("BIRD after the endpoints went", &[], || {
        bird.routes().unwrap()
    });
    assert_eq!(bird.state(s.node()).as_deref(), Some("Established"));
    // And back when an endpoint is ready again.
    svc.endpoints_on = vec!["node1".into()];
    s.services(std::slice::from_ref(&svc));
    wait_routes(
        "BIRD after the endpoint came back",
        &[(WEB_ROUTE, s.node())],
        || bird.routes().unwrap(),
    );
}

// --- GoBGP as the router ----------------------------------------------------------------

#[test]
fn gobgp_receives_the_service_route() {
    if !ready("gobgp_receives_the_service_route") {
        return;
    }
    let mut s = Site::with_router("ft-gobgp", json!({}), json!({"communities": ["64512:100"]}));
    // GoBGP dials late (5–10 s): it waits for the speaker.
    let cfg = s.router_config(s.neighbor().passive());
    let gobgp = Gobgp::start(&s.net.router.ns, s.net.subdir("gobgp").unwrap(), cfg).unwrap();
    s.start();
    gobgp.wait_established(s.node(), LIMIT).unwrap();
    let r = wait_routes("GoBGP", &[(WEB_ROUTE, s.node())], || {
        gobgp.routes().unwrap()
    });
    assert_eq!(r[0].as_path, [NODE_AS]);
    assert_eq!(r[0].communities, ["64512:100"]);
}

// --- A raw TCP "router" sending malformed messages --------------------------------------

const MARKER: [u8; 16] = [0xff; 16];
const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;

/// Runs `f` on a thread that has entered network namespace `ns` (sockets it creates
/// stay in that namespace wherever they are used later).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: setns(2) on a valid descriptor changes only this thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("thread in the namespace")
}

/// A whole BGP message of `msg_type` with `body`.
fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = MARKER.to_vec();
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// An OPEN of `version` from AS `RAW_AS`, hold 9 s, IPv4 unicast and 4-octet AS
/// capabilities.
fn open(version: u8, id: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&RAW_AS.to_be_bytes());
    b.extend_from_slice(&9u16.to_be_bytes());
    b.extend_from_slice(&id.octets());
    let mut caps = vec![2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 65, 4];
    caps.extend_from_slice(&u32::from(RAW_AS).to_be_bytes());
    b.push(caps.len() as u8);
    b.extend_from_slice(&caps);
    message(OPEN, &b)
}

/// One message as received: (type, body), after checking the marker and the length.
fn read_message(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 19];
    stream.read_exact(&mut header)?;
    assert_eq!(header[..16], MARKER, "bad marker from the speaker");
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    assert!(
        (19..=4096).contains(&len),
        "bad length {len} from the speaker"
    );
    let mut body = vec![0u8; len - 19];
    stream.read_exact(&mut body)?;
    Ok((header[18], body))
}

/// Reads messages (at most 50, each within the stream's timeout) until one of
/// `msg_type`; the others are returned before it.
fn read_until(stream: &mut TcpStream, msg_type: u8) -> (Vec<(u8, Vec<u8>)>, Vec<u8>) {
    let mut before = Vec::new();
    for _ in 0..50 {
        let (t, body) = read_message(stream)
            .unwrap_or_else(|e| panic!("no message of type {msg_type} from the speaker: {e}"));
        if t == msg_type {
            return (before, body);
        }
        before.push((t, body));
    }
    panic!("no message of type {msg_type} in 50: {before:?}");
}

/// Accepts the speaker's next connection (bounded wait).
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < LIMIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the speaker did not dial the raw peer: {e}"),
        }
    }
}

/// Asserts the peer closes `stream` after its NOTIFICATION (EOF within the timeout).
fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) if total < 4096 => total += n,
            r => panic!("the speaker kept the connection open after its NOTIFICATION: {r:?}"),
        }
    }
}

/// Accepts the speaker's next connection and takes it to Established: its OPEN, ours
/// (version 4) and a KEEPALIVE, then its KEEPALIVE and the UPDATE with [`web`]'s route.
fn raw_established(s: &Site, listener: &TcpListener) -> TcpStream {
    let mut c = accept(listener);
    read_until(&mut c, OPEN);
    c.write_all(&open(4, s.net.host(2).ipv4)).unwrap();
    c.write_all(&message(KEEPALIVE, &[])).unwrap();
    // OpenConfirm → Established: the speaker's KEEPALIVE, then its routes.
    read_until(&mut c, KEEPALIVE);
    let (_, update) = read_until(&mut c, UPDATE);
    let prefix = [32, 203, 0, 113, 10];
    assert!(
        update.windows(prefix.len()).any(|w| w == prefix),
        "the raw peer, Established, gets the Service route: {update:?}"
    );
    c
}

/// Reads messages until the speaker closes the connection (at most 50, each within the
/// stream's timeout); returns them.
fn read_to_close(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut got = Vec::new();
    for _ in 0..50 {
        match read_message(stream) {
            Ok(m) => got.push(m),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return got;
            }
            Err(e) => panic!("the speaker kept the connection open: {e}; it sent {got:?}"),
        }
    }
    panic!("the speaker kept the connection open and kept sending: {got:?}");
}

/// The speaker's log lines about peer `raw` containing `what`.
fn raw_log_lines(s: &Site, what: &str) -> Vec<String> {
    s.log()
        .lines()
        .filter(|l| l.contains("peer=raw") && l.contains(what))
        .map(String::from)
        .collect()
}

/// Waits (at most [`LIMIT`]) for the speaker to log the raw session down; those lines.
fn wait_raw_down(s: &Site) -> Vec<String> {
    wait_for(LIMIT, POLL, || {
        let l = raw_log_lines(s, "BGP session down");
        (!l.is_empty()).then_some(l)
    })
    .unwrap_or_else(|| {
        panic!(
            "the speaker never logged the raw session down; log:\n{}",
            s.log()
        )
    })
}

/// A speaker with two peers: BIRD in the router namespace (the route's receiver) and a
/// raw TCP listener on host 2's BGP port; returns the site, BIRD and the listener once
/// BIRD holds the route.
fn raw_site(tag: &str) -> (Site, Bird, TcpListener) {
    let mut s = Site::new(tag, 2);
    let raw: IpAddr = s.net.host(2).ipv4.into();
    s.configure(&[
        peer("router", s.router(), ROUTER_AS, json!({})),
        peer("raw", raw, u32::from(RAW_AS), json!({})),
        advertisement("bgp", json!({})),
    ]);
    s.services(&[web()]);
    let listener = in_netns(&s.net.host(2).ns, move || {
        TcpListener::bind(SocketAddr::new(raw, 179)).expect("bind the raw peer's port 179")
    });
    let bird = s.bird(s.neighbor(), |_| {});
    s.start();
    s.wait_web(&bird);
    (s, bird, listener)
}

/// BIRD's `show protocols` line for its session with the speaker (state and since).
fn bird_session_line(bird: &Bird) -> String {
    let text = bird.birdc(&["show", "protocols"]).unwrap();
    text.lines()
        .find(|l| l.starts_with("n1 "))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The other peer did not notice: BIRD's session never went down (same line, same
/// since-time) and the speaker never logged it down; the route is still there.
fn assert_router_undisturbed(s: &Site, bird: &Bird, line_before: &str) {
    assert!(line_before.contains("Established"), "{line_before}");
    assert_eq!(bird_session_line(bird), line_before);
    let router_downs = s
        .log()
        .lines()
        .filter(|l| l.contains("BGP session down") && l.contains("peer=router"))
        .count();
    assert_eq!(router_downs, 0, "log:\n{}", s.log());
    wait_routes(
        "BIRD after the raw peer's errors",
        &[(WEB_ROUTE, s.node())],
        || bird.routes().unwrap(),
    );
}

#[test]
fn malformed_open_gets_the_right_notification_and_other_peers_stay_up() {
    if !ready("malformed_open_gets_the_right_notification_and_other_peers_stay_up") {
        return;
    }
    let (s, bird, listener) = raw_site("ft-rawopen");
    let before = bird_session_line(&bird);
    let id = s.net.host(2).ipv4;

    // BGP version 3: OPEN Message Error (2), Unsupported Version Number (1), data: the
    // largest version the speaker supports (4, two octets).
    let mut c = accept(&listener);
    let (_, speaker_open) = read_until(&mut c, OPEN);
    assert_eq!(speaker_open[0], 4, "the speaker's own OPEN is version 4");
    c.write_all(&open(3, id)).unwrap();
    let (_, n) = read_until(&mut c, NOTIFICATION);
    assert_eq!(n, [2, 1, 0, 4], "NOTIFICATION code, subcode, data");
    assert_closed(&mut c);

    // The speaker dials again; this time a KEEPALIVE with a broken marker: Message
    // Header Error (1), Connection Not Synchronized (1).
    let mut c = accept(&listener);
    read_until(&mut c, OPEN);
    let mut bad = message(KEEPALIVE, &[]);
    bad[3] = 0;
    c.write_all(&bad).unwrap();
    let (_, n) = read_until(&mut c, NOTIFICATION);
    assert_eq!(n[..2], [1, 1], "NOTIFICATION code, subcode");
    assert_closed(&mut c);

    assert_router_undisturbed(&s, &bird, &before);
}

#[test]
fn malformed_update_after_a_good_open_gets_the_right_notification() {
    if !ready("malformed_update_after_a_good_open_gets_the_right_notification") {
        return;
    }
    let (s, bird, listener) = raw_site("ft-rawupd");
    let before = bird_session_line(&bird);

    let mut c = raw_established(&s, &listener);

    // Withdrawn Routes Length 65535 in a 4-octet body (the shortest UPDATE): UPDATE
    // Message Error (3), Malformed Attribute List (1) — a session reset, not
    // treat-as-withdraw.
    c.write_all(&message(UPDATE, &[0xff, 0xff, 0, 0])).unwrap();
    let (_, n) = read_until(&mut c, NOTIFICATION);
    assert_eq!(n[..2], [3, 1], "NOTIFICATION code, subcode");
    assert_closed(&mut c);
    assert!(
        s.log()
            .lines()
            .any(|l| l.contains("peer=raw") && l.contains("BGP session down")),
        "the speaker logs the raw session down"
    );

    assert_router_undisturbed(&s, &bird, &before);
}

#[test]
fn malformed_notification_length_gets_bad_message_length_and_other_peers_stay_up() {
    if !ready("malformed_notification_length_gets_bad_message_length_and_other_peers_stay_up") {
        return;
    }
    let (s, bird, listener) = raw_site("ft-rawntf");
    let before = bird_session_line(&bird);
    let mut c = raw_established(&s, &listener);

    // A NOTIFICATION whose Length field says 20: one octet after the header, below the
    // 21 its code and subcode need. RFC 4271 §6.1: Message Header Error (1), Bad Message
    // Length (2), the data the erroneous Length field (two octets).
    let bad = message(NOTIFICATION, &[6]);
    assert_eq!(u16::from_be_bytes([bad[16], bad[17]]), 20);
    c.write_all(&bad).unwrap();
    let (_, n) = read_until(&mut c, NOTIFICATION);
    assert_eq!(n, [1, 2, 0, 20], "NOTIFICATION code, subcode, data");
    assert_closed(&mut c);
    let down = wait_raw_down(&s);
    assert!(
        down[0].contains(
            "sent NOTIFICATION: message header error (1), bad message length (2), data 00 14"
        ),
        "{down:?}"
    );

    assert_router_undisturbed(&s, &bird, &before);
}

#[test]
fn notification_with_odd_data_closes_the_session_and_the_speaker_redials() {
    if !ready("notification_with_odd_data_closes_the_session_and_the_speaker_redials") {
        return;
    }
    let (s, bird, listener) = raw_site("ft-rawcease");
    let before = bird_session_line(&bird);
    let mut c = raw_established(&s, &listener);

    // Cease (6), Administrative Shutdown (2) with two octets of data that are no
    // Shutdown Communication (RFC 9003: a length octet, then that many octets of UTF-8):
    // length 255, then one octet that is not UTF-8.
    c.write_all(&message(NOTIFICATION, &[6, 2, 0xff, 0xfe]))
        .unwrap();
    let sent = Instant::now();
    // The session ends; a NOTIFICATION is never answered with one (RFC 4271 §6.4).
    let after = read_to_close(&mut c);
    assert!(
        after.iter().all(|(t, _)| *t != NOTIFICATION),
        "the speaker answered the NOTIFICATION: {after:?}"
    );
    let down = wait_raw_down(&s);
    assert_eq!(down.len(), 1, "log:\n{}", s.log());
    assert!(
        down[0]
            .contains("received NOTIFICATION: cease (6), administrative shutdown (2), data ff fe"),
        "{down:?}"
    );

    // The speaker lives on and dials again after its back-off (connectTime 1 s); the new
    // session comes up and carries the route.
    let _second = raw_established(&s, &listener);
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "the speaker took {:?} to redial",
        sent.elapsed()
    );
    assert_eq!(raw_log_lines(&s, "BGP session established").len(), 2);

    assert_router_undisturbed(&s, &bird, &before);
}

// --- Graceful restart, hold timer, multihop ---------------------------------------------

#[test]
fn graceful_restart_keeps_the_route_through_a_speaker_restart() {
    if !ready("graceful_restart_keeps_the_route_through_a_speaker_restart") {
        return;
    }
    let mut s = Site::new("ft-gr", 1);
    s.configure(&[
        peer(
            "router",
            s.router(),
            ROUTER_AS,
            json!({"enableGracefulRestart": true}),
        ),
        advertisement("bgp", json!({})),
    ]);
    let old = Service::new("old", &[ip("203.0.113.20")], &["node1"]);
    s.services(&[web(), old]);
    let bird = s.bird(s.neighbor(), |c| c.graceful_restart = true);
    s.start();
    bird.wait_established(s.node(), LIMIT).unwrap();
    let both = [(WEB_ROUTE, s.node()), ("203.0.113.20/32", s.node())];
    wait_routes("BIRD", &both, || bird.routes().unwrap());

    // A rolling upgrade: SIGTERM; while it is away, Service `old` goes.
    s.stop();
    s.services(&[web()]);
    let kept = want(&both);
    let held = |what: &str| assert_eq!(pairs(&bird.routes().unwrap()), kept, "{what}");
    throughout(Duration::from_secs(2), Duration::from_millis(50), || {
        held("BIRD dropped the routes while the speaker was away")
    });
    assert_ne!(bird.state(s.node()).as_deref(), Some("Established"));

    // Back: until the session is up again BIRD keeps both (stale) routes …
    s.start();
    let start = Instant::now();
    let mut polls = 0;
    while bird.state(s.node()).as_deref() != Some("Established") {
        polls += 1;
        assert!(
            start.elapsed() < LIMIT && polls < 1000,
            "the restarted speaker did not come back"
        );
        held("BIRD dropped the routes during the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    // … and after End-of-RIB only what the speaker announced again: `old` is flushed,
    // `web` never left.
    wait_routes("BIRD after End-of-RIB", &[(WEB_ROUTE, s.node())], || {
        let r = bird.routes().unwrap();
        assert!(
            r.iter().any(|r| r.prefix() == WEB_ROUTE.parse().unwrap()),
            "the kept route went away after the restart: {r:?}"
        );
        r
    });
}

#[test]
fn hold_timer_expiry_drops_the_session_with_a_frozen_router() {
    if !ready("hold_timer_expiry_drops_the_session_with_a_frozen_router") {
        return;
    }
    let mut s = Site::with_router(
        "ft-hold",
        json!({"holdTime": "3s", "keepaliveTime": "1s"}),
        json!({}),
    );
    let bird = s.bird(s.neighbor(), |c| c.hold_time = 3);
    s.start();
    s.wait_web(&bird);
    let expired = |s: &Site| {
        s.log()
            .lines()
            .any(|l| l.contains("BGP session down") && l.contains("hold timer expired (4)"))
    };
    assert!(!expired(&s));

    // Frozen: no KEEPALIVEs, though the TCP connection stays open (the Daemon's drop
    // thaws it before stopping it, also when this test fails).
    bird.daemon.signal(libc::SIGSTOP);
    let down = wait_for(LIMIT, POLL, || expired(&s).then_some(()));
    bird.daemon.signal(libc::SIGCONT);
    assert!(down.is_some(), "no hold timer expiry; log:\n{}", s.log());
    // Thawed, BIRD gets the session back.
    let back = wait_for(LIMIT, POLL, || {
        (s.log().matches("BGP session established").count() >= 2).then_some(())
    });
    assert!(
        back.is_some(),
        "the session did not come back; log:\n{}",
        s.log()
    );
    bird.wait_established(s.node(), LIMIT).unwrap();
}

/// BIRD in `far`, multihop towards the speaker.
fn far_bird(s: &Site, far: &Far) -> Bird {
    let cfg = RouterConfig::new(ROUTER_AS, far.addr, far.addr).neighbor(s.neighbor().multihop(2));
    Bird::start(&far.ns, s.net.subdir("far-bird").unwrap(), cfg, false).unwrap()
}

#[test]
fn ebgp_multihop_reaches_a_router_two_hops_away_and_ttl_1_does_not() {
    if !ready("ebgp_multihop_reaches_a_router_two_hops_away_and_ttl_1_does_not") {
        return;
    }
    let mut s = Site::new("ft-mhop", 1);
    let far = Far::new(&s.net).unwrap();
    let far_ip: IpAddr = far.addr.into();
    // Without ebgpMultiHop: TTL 1 never crosses the router namespace.
    s.configure(&[
        peer("far", far_ip, ROUTER_AS, json!({})),
        advertisement("bgp", json!({})),
    ]);
    s.services(&[web()]);
    let bird = far_bird(&s, &far);
    s.start();
    assert_never_established(
        &s,
        &bird,
        Duration::from_secs(5),
        "an eBGP session two hops away came up with TTL 1",
    );
    // With it: TTL 255, the session forms and the route arrives (its next hop is the
    // node, reached through the router).
    s.configure(&[
        peer("far", far_ip, ROUTER_AS, json!({"ebgpMultiHop": true})),
        advertisement("bgp", json!({})),
    ]);
    bird.wait_established(s.node(), LIMIT).unwrap();
    let r = wait_routes("far BIRD", &[(WEB_ROUTE, s.node())], || {
        bird.routes().unwrap()
    });
    assert_eq!(r[0].as_path, [NODE_AS]);
}
