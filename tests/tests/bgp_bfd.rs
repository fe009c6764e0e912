//! BFD (RFC 5880/5881/5883) between `ferrolb-speaker` and real routers in network
//! namespaces: the session comes Up with BIRD and with FRR's bfdd, over IPv4 and IPv6,
//! and multi-hop (with `minimumTtl` enforced) with a BIRD two hops away. With BFD
//! timers of 100 ms × 3 and a BGP hold time of 90 s a frozen speaker or a frozen router
//! is noticed by the other side in well under a second instead of a minute and a half:
//! BIRD withdraws the speaker's route, the speaker closes the BGP session (NOTIFICATION
//! Cease / BFD Down) and gets it back once the router is thawed. A BFD session that never
//! comes up does not hold BGP back.
//!
//! Each test builds its own namespaces (`flbt-<tag>-<pid>-…`, removed on drop, also on
//! failure) and site directory. Root only (skipped loudly otherwise); needs `bird2 frr
//! curl`. Documentation addresses only.

use std::time::{Duration, Instant};

use ferrolb_tests::bgp::bird::Bird;
use ferrolb_tests::bgp::frr::Frr;
use ferrolb_tests::bgp::netns::Far;
use ferrolb_tests::bgp::site::{self, ROUTER_AS};
use ferrolb_tests::bgp::testbed::{LIMIT, POLL, Site, WEB_ROUTE, ready, web};
use ferrolb_tests::bgp::{have, wait_for};
use serde_json::json;

/// BFD interval (both ways) and multiplier of every test here: 300 ms detection.
const INTERVAL_MS: u32 = 100;
const MULTIPLIER: u32 = 3;
/// The BGP hold time: what would detect the failure without BFD.
const HOLD: &str = "90s";
/// How long the other side may take to notice a frozen peer (detection is 300 ms; the
/// rest is polling and scheduling slack).
const DETECT_LIMIT: Duration = Duration::from_secs(3);

const BFD_UP: &str = r#"ferrolb_speaker_bfd_session_up{peer="router"}"#;
const BFD_DOWNS: &str = r#"ferrolb_speaker_bfd_session_downs_total{peer="router"}"#;
const BGP_UP: &str = r#"ferrolb_bgp_session_up{peer="router"}"#;
const CEASE_BFD_DOWN_SENT: &str =
    r#"ferrolb_bgp_notifications_sent_total{peer="router",code="6",subcode="10"}"#;

fn bfd_ready(test: &str) -> bool {
    if !ready(test) {
        return false;
    }
    assert!(have("curl"), "`curl` is missing: apt-get install -y curl");
    true
}

/// node1's one peer is the router, hold time 90 s, BFD profile `fast` (100 ms × 3);
/// the advertisement and [`web`] written; the speaker not started.
fn bfd_site(tag: &str) -> Site {
    bfd_site_with(tag, json!({}))
}

/// [`bfd_site`] with `extra` fields in the BFDProfile's spec.
fn bfd_site_with(tag: &str, extra: serde_json::Value) -> Site {
    let s = Site::new(tag, 1);
    let mut profile = json!({
        "transmitInterval": INTERVAL_MS,
        "receiveInterval": INTERVAL_MS,
        "detectMultiplier": MULTIPLIER,
    });
    if let (Some(p), Some(e)) = (profile.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    s.configure(&[
        site::peer(
            "router",
            s.router(),
            ROUTER_AS,
            json!({"holdTime": HOLD, "keepaliveTime": "30s", "bfdProfile": "fast"}),
        ),
        site::advertisement("bgp", json!({})),
        ("BFDProfile", "fast".to_string(), profile),
    ]);
    s.services(&[web()]);
    s
}

/// A started speaker and BIRD with BFD towards each other, hold time 90 s on both
/// sides; returns once BGP carries [`web`] and both ends say BFD is Up.
fn bird_site(tag: &str) -> (Site, Bird) {
    bird_site_with(tag, json!({}))
}

/// [`bird_site`] with `extra` fields in the BFDProfile's spec.
fn bird_site_with(tag: &str, extra: serde_json::Value) -> (Site, Bird) {
    let mut s = bfd_site_with(tag, extra);
    let bird = s.bird(s.neighbor().bfd(INTERVAL_MS, MULTIPLIER), |c| {
        c.hold_time = 90
    });
    s.start();
    s.wait_web(&bird);
    let up = wait_for(LIMIT, POLL, || {
        (bird.bfd_state(s.node()).as_deref() == Some("Up")).then_some(())
    });
    assert!(
        up.is_some(),
        "BIRD's BFD session with the speaker is not Up: {:?}\n{}\nspeaker log:\n{}",
        bird.bfd_state(s.node()),
        bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default(),
        s.log()
    );
    let ours = wait_for(LIMIT, POLL, || {
        (s.metric(BFD_UP) == Some(1.0)).then_some(())
    });
    assert!(
        ours.is_some(),
        "the speaker does not say BFD is up:\n{}",
        s.metrics()
    );
    (s, bird)
}

fn has_web(bird: &Bird) -> bool {
    bird.routes()
        .unwrap_or_default()
        .iter()
        .any(|r| r.prefix.is_some_and(|p| p.to_string() == WEB_ROUTE))
}

/// Freezes a process (`signal` sends to it) until the other side has `noticed` (polled
/// for up to 10 s), thaws it, and asserts that took well under the hold time.
fn frozen_until(signal: impl Fn(i32), what: &str, noticed: impl Fn() -> bool) {
    let start = Instant::now();
    signal(libc::SIGSTOP);
    let gone = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        noticed().then(|| start.elapsed())
    });
    signal(libc::SIGCONT);
    let took = gone.unwrap_or_else(|| panic!("not yet after 10 s frozen: {what}"));
    println!(
        "{what} {took:?} after the freeze (BFD {INTERVAL_MS} ms x {MULTIPLIER}, hold time {HOLD})"
    );
    assert!(
        took < DETECT_LIMIT,
        "took {took:?}; the hold time is {HOLD}"
    );
}

/// [`frozen_until`] with the speaker frozen.
fn frozen_speaker_noticed(s: &Site, what: &str, noticed: impl Fn() -> bool) {
    frozen_until(|sig| s.signal(sig), what, noticed);
}

/// The speaker's log says it closed a BGP session because BFD went down.
fn assert_closed_for_bfd(s: &Site) {
    assert!(
        s.log()
            .lines()
            .any(|l| l.contains("BGP session down") && l.contains("BFD down")),
        "{}",
        s.log()
    );
}

#[test]
fn bfd_comes_up_with_bird() {
    if !bfd_ready("bfd_comes_up_with_bird") {
        return;
    }
    let (s, bird) = bird_site("fb-bird");
    assert_eq!(s.metric(BGP_UP), Some(1.0));
    assert_eq!(s.metric(BFD_DOWNS), Some(0.0));
    // It stays up: packets keep flowing both ways at the negotiated rate.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bird.bfd_state(s.node()).as_deref(), Some("Up"));
    assert_eq!(s.metric(BFD_UP), Some(1.0));
    assert_eq!(s.metric(BFD_DOWNS), Some(0.0));
    let sessions = bird.birdc(&["show", "bfd", "sessions"]).unwrap();
    println!("{sessions}");
    // The standalone report says so too.
    let report = s.dir.join(".ferrolb/speakers/node1.yaml");
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(text.contains("bfd: up"), "{}:\n{text}", report.display());
}

#[test]
fn bfd_passive_speaker_comes_up_once_the_router_speaks() {
    if !bfd_ready("bfd_passive_speaker_comes_up_once_the_router_speaks") {
        return;
    }
    // bird_site_with asserts both ends Up: the speaker answered once BIRD spoke first.
    let (s, bird) = bird_site_with("fb-passive", json!({"passiveMode": true}));
    assert_eq!(bird.bfd_state(s.node()).as_deref(), Some("Up"));
    assert_eq!(s.metric(BFD_DOWNS), Some(0.0));
}

#[test]
fn bfd_router_withdraws_a_frozen_speakers_route_before_the_hold_time() {
    if !bfd_ready("bfd_router_withdraws_a_frozen_speakers_route_before_the_hold_time") {
        return;
    }
    let (s, bird) = bird_site("fb-frzspk");
    assert!(has_web(&bird));
    frozen_speaker_noticed(&s, "BIRD withdrew its route", || !has_web(&bird));
    assert_ne!(bird.state(s.node()).as_deref(), Some("Established"));
    // Thawed: BFD and BGP come back, and so does the route.
    let back = wait_for(LIMIT, POLL, || has_web(&bird).then_some(()));
    assert!(
        back.is_some(),
        "the route did not come back; speaker log:\n{}",
        s.log()
    );
}

#[test]
fn bfd_speaker_closes_the_session_with_a_frozen_router_and_gets_it_back() {
    if !bfd_ready("bfd_speaker_closes_the_session_with_a_frozen_router_and_gets_it_back") {
        return;
    }
    let (s, bird) = bird_site("fb-frzrtr");
    assert_eq!(s.metric(BFD_DOWNS), Some(0.0));
    frozen_until(
        |sig| bird.daemon.signal(sig),
        "the speaker closed its session with the frozen router",
        || s.metric(BGP_UP) == Some(0.0),
    );
    assert_eq!(s.metric(BFD_DOWNS), Some(1.0), "{}", s.metrics());
    assert_eq!(
        s.metric(CEASE_BFD_DOWN_SENT),
        Some(1.0),
        "no Cease / BFD Down sent:\n{}",
        s.metrics()
    );
    assert_closed_for_bfd(&s);
    // Thawed: BFD comes back, BGP is established again and the route is back.
    let back = wait_for(LIMIT, POLL, || {
        (s.metric(BGP_UP) == Some(1.0) && s.metric(BFD_UP) == Some(1.0)).then_some(())
    });
    assert!(
        back.is_some(),
        "the session did not come back; metrics:\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    bird.wait_established(s.node(), LIMIT).unwrap();
    let route = wait_for(LIMIT, POLL, || has_web(&bird).then_some(()));
    assert!(route.is_some(), "the route did not come back");
    let report = s.dir.join(".ferrolb/speakers/node1.yaml");
    let counted = wait_for(LIMIT, POLL, || {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        (text.contains("bfd: up") && text.contains("bfdDowns: 1")).then_some(())
    });
    assert!(
        counted.is_some(),
        "{}",
        std::fs::read_to_string(&report).unwrap_or_default()
    );
}

/// A site whose router is FRR with BFD towards the node (90 s hold time), the speaker
/// started and the BGP session Established.
fn frr_site(name: &str) -> (Site, Frr) {
    let mut s = bfd_site(name);
    let mut cfg = s.router_config(s.neighbor().bfd(INTERVAL_MS, MULTIPLIER));
    cfg.hold_time = 90;
    let frr = Frr::start(&s.net.router.ns, s.net.subdir("frr").unwrap(), cfg).unwrap();
    s.start();
    frr.wait_established(s.node(), LIMIT).unwrap();
    (s, frr)
}

/// Waits for bfdd to say its session with the node is up.
fn frr_bfd_up(s: &Site, frr: &Frr) -> Option<()> {
    wait_for(LIMIT, POLL, || {
        (frr.bfd_state(s.node()).as_deref() == Some("up")).then_some(())
    })
}

#[test]
fn bfd_with_frr_bfdd_comes_up_and_detects_a_frozen_side_both_ways() {
    if !bfd_ready("bfd_with_frr_bfdd_comes_up_and_detects_a_frozen_side_both_ways") {
        return;
    }
    let (s, frr) = frr_site("fb-frr");
    let up = frr_bfd_up(&s, &frr);
    assert!(
        up.is_some(),
        "bfdd's session with the speaker is not up: {}\nspeaker log:\n{}",
        frr.vtysh("show bfd peers").unwrap_or_default(),
        s.log()
    );
    let ours = wait_for(LIMIT, POLL, || {
        (s.metric(BFD_UP) == Some(1.0)).then_some(())
    });
    assert!(ours.is_some(), "{}", s.metrics());
    println!("{}", frr.vtysh("show bfd peers").unwrap_or_default());

    // A frozen speaker: bfdd notices, bgpd drops the session.
    frozen_speaker_noticed(&s, "FRR dropped the session", || {
        frr.state(s.node()).as_deref() != Some("Established")
    });
    frr.wait_established(s.node(), LIMIT).unwrap();
    let up = wait_for(LIMIT, POLL, || {
        (s.metric(BFD_UP) == Some(1.0) && s.metric(BGP_UP) == Some(1.0)).then_some(())
    });
    assert!(up.is_some(), "not back up: {}", s.metrics());

    // A frozen bfdd (bgpd still answering): the speaker closes the BGP session.
    let bfdd = frr.bfdd.as_ref().expect("bfdd runs");
    let downs = s.metric(BFD_DOWNS).unwrap_or_default();
    frozen_until(
        |sig| bfdd.signal(sig),
        "the speaker saw FRR's bfdd go silent",
        || s.metric(BFD_DOWNS) == Some(downs + 1.0),
    );
    assert_closed_for_bfd(&s);
}

#[test]
fn bfd_that_never_comes_up_does_not_hold_bgp_back() {
    if !bfd_ready("bfd_that_never_comes_up_does_not_hold_bgp_back") {
        return;
    }
    // The speaker asks for BFD, BIRD runs none: nothing ever answers on port 3784.
    let mut s = bfd_site("fb-nobfd");
    let bird = s.bird(s.neighbor(), |c| c.hold_time = 90);
    s.start();
    s.wait_web(&bird);
    assert_eq!(s.metric(BGP_UP), Some(1.0));
    // Well past a few BFD slow-rate intervals: still Established, BFD still down, and
    // a BFD session that was never Up never counts as a failure.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bird.state(s.node()).as_deref(), Some("Established"));
    assert_eq!(s.metric(BGP_UP), Some(1.0));
    assert_eq!(s.metric(BFD_UP), Some(0.0), "{}", s.metrics());
    assert_eq!(s.metric(BFD_DOWNS), Some(0.0));
    assert_eq!(s.metric(CEASE_BFD_DOWN_SENT), None);
}

#[test]
fn bfd_over_ipv6_comes_up_with_bird_and_detects_a_frozen_router() {
    if !bfd_ready("bfd_over_ipv6_comes_up_with_bird_and_detects_a_frozen_router") {
        return;
    }
    let mut s = Site::new("fb-bird6", 1);
    let router6: std::net::IpAddr = s.net.router.ipv6.into();
    let node6: std::net::IpAddr = s.net.host(1).ipv6.into();
    s.configure(&[
        site::peer(
            "router",
            router6,
            ROUTER_AS,
            json!({"holdTime": HOLD, "keepaliveTime": "30s", "bfdProfile": "fast"}),
        ),
        site::advertisement("bgp", json!({})),
        (
            "BFDProfile",
            "fast".to_string(),
            json!({"transmitInterval": INTERVAL_MS, "receiveInterval": INTERVAL_MS}),
        ),
    ]);
    s.services(&[web()]);
    let mut cfg = ferrolb_tests::bgp::RouterConfig::new(ROUTER_AS, s.net.router.ipv4, router6)
        .neighbor(
            ferrolb_tests::bgp::Neighbor::new(node6, site::NODE_AS).bfd(INTERVAL_MS, MULTIPLIER),
        );
    cfg.hold_time = 90;
    let bird = Bird::start(&s.net.router.ns, s.net.subdir("bird").unwrap(), cfg, false).unwrap();
    s.start();
    bird.wait_established(node6, LIMIT).unwrap();
    let up = wait_for(LIMIT, POLL, || {
        (bird.bfd_state(node6).as_deref() == Some("Up") && s.metric(BFD_UP) == Some(1.0))
            .then_some(())
    });
    assert!(
        up.is_some(),
        "BFD over IPv6 not up: BIRD says {:?}; speaker log:\n{}",
        bird.bfd_state(node6),
        s.log()
    );
    frozen_until(
        |sig| bird.daemon.signal(sig),
        "IPv6: the speaker closed its session with the frozen router",
        || s.metric(BGP_UP) == Some(0.0),
    );
    assert_eq!(s.metric(BFD_DOWNS), Some(1.0));
}

/// The site of the multi-hop test: node1's one peer is `far`, two hops away, with
/// `ebgpMultiHop` and BFD profile `fast` asking for `minimum_ttl`.
fn configure_far(s: &Site, far: &Far, minimum_ttl: u8) {
    s.configure(&[
        site::peer(
            "far",
            far.addr.into(),
            ROUTER_AS,
            json!({"holdTime": HOLD, "keepaliveTime": "30s", "ebgpMultiHop": true,
                   "bfdProfile": "fast"}),
        ),
        site::advertisement("bgp", json!({})),
        (
            "BFDProfile",
            "fast".to_string(),
            json!({"transmitInterval": INTERVAL_MS, "receiveInterval": INTERVAL_MS,
                   "minimumTtl": minimum_ttl}),
        ),
    ]);
}

#[test]
fn bfd_multihop_checks_the_minimum_ttl_and_comes_up_two_hops_away() {
    if !bfd_ready("bfd_multihop_checks_the_minimum_ttl_and_comes_up_two_hops_away") {
        return;
    }
    let mut s = Site::new("fb-mhop", 1);
    let far = Far::new(&s.net).unwrap();
    // BIRD sends multi-hop BFD with the default TTL (64), not 255: one router later
    // its packets carry 63, below MetalLB's default minimumTtl of 254.
    configure_far(&s, &far, 254);
    s.services(&[web()]);
    let mut cfg = ferrolb_tests::bgp::RouterConfig::new(ROUTER_AS, far.addr, far.addr)
        .neighbor(s.neighbor().multihop(2).bfd(INTERVAL_MS, MULTIPLIER));
    cfg.hold_time = 90;
    let bird = Bird::start(&far.ns, s.net.subdir("far-bird").unwrap(), cfg, false).unwrap();
    s.start();
    bird.wait_established(s.node(), LIMIT).unwrap();
    let far_up = r#"ferrolb_speaker_bfd_session_up{peer="far"}"#;
    // BIRD hears the speaker (its packets leave with 255) and goes Init; the speaker
    // drops BIRD's packets, so neither side ever gets Up, and BGP is unaffected.
    let init = wait_for(LIMIT, POLL, || {
        (bird.bfd_state(s.node()).as_deref() == Some("Init")).then_some(())
    });
    assert!(
        init.is_some(),
        "BIRD never heard the speaker: {:?}",
        bird.bfd_state(s.node())
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.metric(far_up), Some(0.0), "{}", s.metrics());
    assert_ne!(bird.bfd_state(s.node()).as_deref(), Some("Up"));
    assert_eq!(bird.state(s.node()).as_deref(), Some("Established"));

    // A minimumTtl BIRD's packets meet: the session (restarted with the new profile)
    // comes up.
    configure_far(&s, &far, 32);
    let up = wait_for(LIMIT, POLL, || {
        (bird.bfd_state(s.node()).as_deref() == Some("Up") && s.metric(far_up) == Some(1.0))
            .then_some(())
    });
    assert!(
        up.is_some(),
        "multi-hop BFD not up: BIRD says {:?}\n{}\nspeaker log:\n{}",
        bird.bfd_state(s.node()),
        bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default(),
        s.log()
    );
    bird.wait_established(s.node(), LIMIT).unwrap();
    frozen_speaker_noticed(&s, "multi-hop: the far BIRD dropped the session", || {
        bird.state(s.node()).as_deref() != Some("Established")
    });
}

#[test]
fn bfd_profile_change_takes_new_timers_without_going_down() {
    if !bfd_ready("bfd_profile_change_takes_new_timers_without_going_down") {
        return;
    }
    let (s, bird) = bird_site("fb-change");
    let established = r#"ferrolb_bgp_sessions_established_total{peer="router"}"#;
    assert_eq!(s.metric(established), Some(1.0));
    // 100 ms → 250 ms: new timers for the running BFD session, announced with a Poll
    // Sequence; neither BFD nor BGP goes down.
    let start = Instant::now();
    s.configure(&[
        site::peer(
            "router",
            s.router(),
            ROUTER_AS,
            json!({"holdTime": HOLD, "keepaliveTime": "30s", "bfdProfile": "fast"}),
        ),
        site::advertisement("bgp", json!({})),
        (
            "BFDProfile",
            "fast".to_string(),
            json!({"transmitInterval": 250, "receiveInterval": 250}),
        ),
    ]);
    let mut bgp_states = Vec::new();
    let mut bfd_states = Vec::new();
    let back = wait_for(LIMIT, Duration::from_millis(50), || {
        bgp_states.push(bird.state(s.node()).unwrap_or_default());
        bfd_states.push(bird.bfd_state(s.node()).unwrap_or_default());
        let line = bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default();
        (line.contains(" Up ") && line.contains("0.250") && s.metric(BFD_UP) == Some(1.0))
            .then(|| start.elapsed())
    });
    let took = back.unwrap_or_else(|| {
        panic!(
            "BFD not back at 250 ms: {}\nlog:\n{}",
            bird.birdc(&["show", "bfd", "sessions"]).unwrap_or_default(),
            s.log()
        )
    });
    println!("BIRD shows the new 250 ms interval after {took:?}");
    assert!(
        bfd_states.iter().all(|st| st == "Up"),
        "BIRD's BFD session left Up: {bfd_states:?}"
    );
    assert!(
        bgp_states.iter().all(|st| st == "Established"),
        "BIRD's BGP session left Established: {bgp_states:?}"
    );
    assert!(s.log().contains("BFD timers changed"), "{}", s.log());
    assert_eq!(
        s.metric(established),
        Some(1.0),
        "the BGP session restarted"
    );
    assert_eq!(s.metric(BFD_DOWNS), Some(0.0));
}

#[test]
fn bfd_admin_down_of_a_restarting_speaker_keeps_graceful_restart() {
    if !bfd_ready("bfd_admin_down_of_a_restarting_speaker_keeps_graceful_restart") {
        return;
    }
    let mut s = Site::new("fb-gr", 1);
    s.configure(&[
        site::peer(
            "router",
            s.router(),
            ROUTER_AS,
            json!({"holdTime": HOLD, "keepaliveTime": "30s", "bfdProfile": "fast",
                   "enableGracefulRestart": true}),
        ),
        site::advertisement("bgp", json!({})),
        (
            "BFDProfile",
            "fast".to_string(),
            json!({"transmitInterval": INTERVAL_MS, "receiveInterval": INTERVAL_MS}),
        ),
    ]);
    s.services(&[web()]);
    // BIRD 2 closes the BGP session when BFD goes down, also when the peer said
    // AdminDown; `bfd graceful` makes it a graceful restart instead.
    let bird = s.bird(
        s.neighbor().bfd(INTERVAL_MS, MULTIPLIER).bfd_graceful(),
        |c| {
            c.hold_time = 90;
            c.graceful_restart = true;
        },
    );
    s.start();
    s.wait_web(&bird);
    let up = wait_for(LIMIT, POLL, || {
        (bird.bfd_state(s.node()).as_deref() == Some("Up")).then_some(())
    });
    assert!(up.is_some(), "BFD never came up");
    // A rolling upgrade: the speaker closes the connection (no Cease) and tells BFD
    // AdminDown; BIRD keeps the route through the restart.
    s.stop();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert!(
            has_web(&bird),
            "BIRD dropped the route while the speaker was away"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.start();
    let start = Instant::now();
    while bird.state(s.node()).as_deref() != Some("Established") {
        assert!(
            start.elapsed() < LIMIT,
            "the restarted speaker did not come back"
        );
        assert!(has_web(&bird), "BIRD dropped the route during the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = wait_for(LIMIT, POLL, || {
        (bird.bfd_state(s.node()).as_deref() == Some("Up") && has_web(&bird)).then_some(())
    });
    assert!(back.is_some(), "BFD or the route did not come back");
}

#[test]
fn bfd_removed_from_the_peer_says_admin_down_and_stops() {
    if !bfd_ready("bfd_removed_from_the_peer_says_admin_down_and_stops") {
        return;
    }
    let (s, frr) = frr_site("fb-frr-rm");
    let up = frr_bfd_up(&s, &frr);
    assert!(up.is_some(), "bfdd's session never came up");
    // The BGPPeer no longer names a profile: the speaker's BFD session tells bfdd
    // AdminDown and stops, and the speaker does not restart BGP for it.
    s.configure(&[
        site::peer(
            "router",
            s.router(),
            ROUTER_AS,
            json!({"holdTime": HOLD, "keepaliveTime": "30s"}),
        ),
        site::advertisement("bgp", json!({})),
    ]);
    let told = wait_for(LIMIT, POLL, || {
        let json = frr.vtysh("show bfd peers json").unwrap_or_default();
        (json.contains(r#""remote-diagnostic":"administratively down""#)
            && s.metric(BFD_UP).is_none())
        .then_some(json)
    });
    assert!(
        told.is_some(),
        "bfdd was not told AdminDown: {}\n{}",
        frr.vtysh("show bfd peers json").unwrap_or_default(),
        s.metrics()
    );
    let config_change =
        r#"ferrolb_bgp_notifications_sent_total{peer="router",code="6",subcode="6"}"#;
    assert_eq!(s.metric(config_change), None, "the speaker restarted BGP");
    assert_eq!(s.metric(CEASE_BFD_DOWN_SENT), None);
    // FRR 8.4 (like BIRD 2) takes the AdminDown for a failure all the same and resets
    // the session from its side (RFC 5882 §3.2 asks it not to); it comes back without
    // BFD.
    frr.wait_established(s.node(), LIMIT).unwrap();
}
