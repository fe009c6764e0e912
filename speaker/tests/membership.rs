//! Gossip membership over real UDP on 127.0.0.1: convergence, crash and leave
//! detection, authentication, garbage, replays and restarts.
//!
//! Timing figures are printed (`cargo test -- --nocapture`) and asserted only against
//! generous bounds, so a loaded CI machine cannot make these fail; the sub-second
//! figures come from `benches/gossip.rs`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ferrolb_speaker::membership::auth::GossipKey;
use ferrolb_speaker::membership::{Membership, MembershipConfig, Tuning};

const SECRET: &str = "test-secret-0123456789abcdef";
/// Generous: convergence or detection slower than this is a bug, not load.
const BOUND: Duration = Duration::from_secs(3);

fn key(secret: &str) -> GossipKey {
    GossipKey::from_secret(secret.as_bytes()).expect("valid secret")
}

async fn start(name: &str, secret: &str) -> Membership {
    start_on(name, secret, "127.0.0.1:0".parse().expect("addr")).await
}

async fn start_on(name: &str, secret: &str, bind: SocketAddr) -> Membership {
    Membership::start(MembershipConfig {
        node_name: name.to_owned(),
        bind,
        advertise: None,
        key: key(secret),
        tuning: Tuning::lan(),
    })
    .await
    .expect("start")
}

/// `n` members named node-0.., every one given every address.
async fn cluster(n: usize) -> Vec<Membership> {
    let mut members = Vec::new();
    for i in 0..n {
        members.push(start(&format!("node-{i}"), SECRET).await);
    }
    let addrs: Vec<SocketAddr> = members.iter().map(Membership::local_addr).collect();
    for m in &members {
        m.join(addrs.iter().copied()).expect("join");
    }
    members
}

fn names(members: &[Membership]) -> BTreeSet<String> {
    members.iter().map(|m| m.identity().name.clone()).collect()
}

/// Waits until every member's live set equals `want`; returns how long it took.
async fn converge(members: &[Membership], want: &BTreeSet<String>, bound: Duration) -> Duration {
    let start = Instant::now();
    for m in members {
        let mut live = m.live();
        let seen = tokio::time::timeout(bound, live.wait_for(|s| s == want))
            .await
            .is_ok_and(|r| r.is_ok());
        let now = live.borrow().clone();
        assert!(
            seen,
            "{} sees {now:?}, want {want:?} within {bound:?}",
            m.identity().name
        );
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_converge_to_the_same_live_set() {
    for n in [3, 5] {
        let members = cluster(n).await;
        let took = converge(&members, &names(&members), BOUND).await;
        eprintln!("{n} members converged in {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_is_declared_dead() {
    let mut members = cluster(5).await;
    converge(&members, &names(&members), BOUND).await;
    // Let the cluster settle into steady probing, as it would be when a node dies.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let victim = members.remove(2);
    let victim_name = victim.identity().name.clone();
    let t0 = Instant::now();
    drop(victim); // no leave: the task and its socket just go away
    converge(&members, &names(&members), BOUND).await;
    let took = t0.elapsed();
    eprintln!("crash of 1 in 5 seen by every survivor after {took:?}");
    assert!(took < BOUND);
    for m in &members {
        let c = m.counters();
        assert_eq!(
            (c.members_alive + c.members_suspect, c.members_down),
            (3, 1),
            "{c:?}"
        );
        // Declared down after a suspicion: a failure, not a leave.
        assert_eq!(m.failed(), BTreeSet::from([victim_name.clone()]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_member_is_dropped_at_once() {
    let mut members = cluster(5).await;
    converge(&members, &names(&members), BOUND).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let leaver = members.remove(0);
    let mut its_live = leaver.live();
    let t0 = Instant::now();
    leaver.leave().await.expect("leave");
    converge(&members, &names(&members), BOUND).await;
    let took = t0.elapsed();
    eprintln!("graceful leave of 1 in 5 seen by every survivor after {took:?}");
    assert!(took < BOUND);
    // The leaver's own view is emptied.
    assert!(its_live.borrow_and_update().is_empty());
    // A leave is not a failure.
    for m in &members {
        assert!(m.failed().is_empty(), "{:?}", m.failed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_the_wrong_secret_never_joins() {
    let mut members = cluster(3).await;
    let intruder = start("intruder", "not-the-cluster-secret!!").await;
    let mut all: Vec<SocketAddr> = members.iter().map(Membership::local_addr).collect();
    all.push(intruder.local_addr());
    // Everyone is told about everyone, the intruder included.
    for m in &members {
        m.join(all.iter().copied()).expect("join");
    }
    intruder.join(all.iter().copied()).expect("join");

    // Record every live set any good member publishes while the intruder knocks.
    let mut watchers = Vec::new();
    for m in &members {
        let mut live = m.live();
        watchers.push(tokio::spawn(async move {
            let mut seen = vec![live.borrow_and_update().clone()];
            let end = tokio::time::Instant::now() + Duration::from_millis(1500);
            while let Ok(Ok(())) = tokio::time::timeout_at(end, live.changed()).await {
                seen.push(live.borrow_and_update().clone());
            }
            seen
        }));
    }
    for w in watchers {
        for set in w.await.expect("watcher") {
            assert!(!set.contains("intruder"), "intruder joined: {set:?}");
        }
    }
    converge(&members, &names(&members), BOUND).await;
    assert_eq!(
        *intruder.live().borrow(),
        BTreeSet::from(["intruder".to_owned()])
    );

    let dropped: u64 = members
        .iter()
        .map(|m| m.counters().dropped_unauthenticated)
        .sum();
    assert!(dropped > 0, "the intruder's announces were not counted");
    // And the other way round: the intruder refuses the cluster's datagrams too.
    members.push(intruder);
    for m in &members {
        eprintln!("{}: {:?}", m.identity().name, m.counters());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_dropped_and_counted() {
    let members = cluster(3).await;
    converge(&members, &names(&members), BOUND).await;
    let target = &members[0];
    let before = target.counters();

    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut x: u32 = 0x1234_5678;
    let mut garbage = Vec::new();
    garbage.push(Vec::new());
    garbage.push(vec![1u8]); // a version byte and nothing else
    garbage.push(vec![0xff; 4000]); // larger than any datagram we accept
    for len in [1usize, 10, 35, 51, 52, 200, 1399, 1400] {
        let bytes = (0..len)
            .map(|_| {
                // xorshift: deterministic noise, no RNG crate needed
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        garbage.push(bytes);
    }
    for g in &garbage {
        sock.send_to(g, target.local_addr()).expect("send");
    }

    // Correctly signed, but nonsense inside: authenticated, then refused by foca. The
    // same datagram again is a replay.
    let k = key(SECRET);
    let mut sealed = Vec::new();
    let fake_sender: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    k.seal(fake_sender, 1, 1, b"\xff\xff\xff\xff not foca", &mut sealed);
    sock.send_to(&sealed, target.local_addr()).expect("send");
    sock.send_to(&sealed, target.local_addr()).expect("send");

    let n = garbage.len() as u64;
    let deadline = Instant::now() + BOUND;
    loop {
        let c = target.counters();
        if c.dropped_unauthenticated - before.dropped_unauthenticated >= n
            && c.rejected > before.rejected
            && c.dropped_replayed > before.dropped_replayed
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all counted: {before:?} → {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = target.counters();
    assert_eq!(
        c.dropped_unauthenticated - before.dropped_unauthenticated,
        n
    );
    assert_eq!(c.dropped_replayed - before.dropped_replayed, 1);
    eprintln!("after garbage: {c:?}");

    // Still a working member: a newcomer joins through it alone.
    let newcomer = start("newcomer", SECRET).await;
    newcomer.join([target.local_addr()]).expect("join");
    let mut all = members;
    all.push(newcomer);
    converge(&all, &names(&all), BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_rejoins_on_the_same_address() {
    let mut members = cluster(3).await;
    converge(&members, &names(&members), BOUND).await;
    let old = members.remove(1);
    let addr = old.local_addr();
    let old_bump = old.identity().bump;
    drop(old);
    converge(&members, &names(&members), BOUND).await;

    // Same name, same port, new process run. The aborted task frees the port a moment
    // after the drop, hence the retry.
    let deadline = Instant::now() + BOUND;
    let restarted = loop {
        match Membership::start(MembershipConfig {
            node_name: "node-1".into(),
            bind: addr,
            advertise: None,
            key: key(SECRET),
            tuning: Tuning::lan(),
        })
        .await
        {
            Ok(m) => break m,
            Err(e) => {
                assert!(Instant::now() < deadline, "rebind {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(restarted.identity().bump > old_bump);
    let seeds: Vec<SocketAddr> = members.iter().map(Membership::local_addr).collect();
    restarted.join(seeds).expect("join");
    members.push(restarted);
    let took = converge(&members, &names(&members), BOUND).await;
    eprintln!("restarted member back in everyone's live set after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_starts_later_is_found_through_the_seed_list() {
    // a and b know c's address before c runs (a Node whose speaker is still starting).
    // Nobody calls join again and c has no seeds: a's and b's rejoin tick finds it.
    let a = start("a", SECRET).await;
    let b = start("b", SECRET).await;
    let c_addr = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port");
    let seeds = [a.local_addr(), b.local_addr(), c_addr];
    a.join(seeds).expect("join");
    b.join(seeds).expect("join");
    let mut members = vec![a, b];
    converge(&members, &names(&members), BOUND).await;
    // Long enough that the announces of the join calls are certainly lost.
    tokio::time::sleep(Duration::from_millis(300)).await;

    members.push(start_on("c", SECRET, c_addr).await);
    let took = converge(
        &members,
        &names(&members),
        Tuning::lan().rejoin_period + BOUND,
    )
    .await;
    eprintln!("late starter found after {took:?}");
}
