//! BGP announcement planning at scale: how long a node takes from the world to the
//! UPDATE bytes for a large table, and for a small change to it.
//!
//! `cargo bench -p ferrolb-speaker --bench rib [-- --services N] [--rounds R]`
//!
//! The world: `N` Services (default 50,000), each with one IPv4 address from the
//! benchmarking range 198.18.0.0/15 (RFC 2544) and, for every tenth, one IPv6 address
//! from 2001:db8::/32, Cluster policy, endpoints on every node; three nodes; one
//! BGPAdvertisement with localPref and two communities; an iBGP IPv4 peer and an eBGP
//! IPv6 peer. Figures are the median over `R` rounds (default 5) of: the election for one
//! node (`announcements`), the per-peer Adj-RIB-Out (`plan`), the full table as UPDATEs
//! (`updates`) and their encoding (`codec::encode`), then a change of 1% of the Services
//! (withdrawn, moved to new addresses) through `diff` and `updates`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_crds::selector::Selectors;
use ferrolb_speaker::bgp::codec::{Context, encode};
use ferrolb_speaker::bgp::config::{Peer, PeerAsn, SessionConfig};
use ferrolb_speaker::bgp::message::Message;
use ferrolb_speaker::bgp::rib::{RibDiff, SessionParams, diff, plan, updates};
use ferrolb_speaker::election::announcements;
use ferrolb_speaker::world::{BgpAd, Endpoint, Node, ServiceInfo, ServiceKey, World};

/// `--name VALUE` from the command line.
fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

const NODES: [&str; 3] = ["node1", "node2", "node3"];

fn service(i: u32, offset: u32) -> ServiceInfo {
    let v4 = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + offset + i);
    let mut ips = vec![IpAddr::V4(v4)];
    if i.is_multiple_of(10) {
        let v6 = Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x113,
            0,
            0,
            0,
            ((offset + i) >> 16) as u16,
            (offset + i) as u16,
        );
        ips.push(IpAddr::V6(v6));
    }
    ServiceInfo {
        key: ServiceKey::new("bench", format!("svc-{i}")),
        ips: ips.into(),
        pool: "bgp".into(),
        endpoints: NODES
            .iter()
            .map(|n| Endpoint {
                node: Some((*n).into()),
                serving: true,
            })
            .collect(),
        ..Default::default()
    }
}

fn peer(name: &str, address: IpAddr, peer_asn: u32) -> Peer {
    Peer {
        name: name.into(),
        node_selectors: Selectors::default(),
        session: SessionConfig {
            my_asn: 64512,
            peer_asn: PeerAsn::Fixed(peer_asn),
            address,
            port: 179,
            source_address: None,
            router_id: None,
            hold_time: Duration::from_secs(90),
            keepalive_time: Duration::from_secs(30),
            connect_time: Duration::from_secs(120),
            ebgp_multihop: false,
            password: None,
            password_secret: None,
            graceful_restart: false,
            passive: false,
            dual_stack: false,
            bfd: None,
        },
        bfd_profile: None,
    }
}

fn world(services: u32) -> World {
    let mut w = World::default();
    for n in NODES {
        w.insert_node(Node {
            name: n.into(),
            ready: true,
            ..Default::default()
        });
    }
    for i in 0..services {
        w.insert_service(service(i, 0));
    }
    w.bgp_ads.push(BgpAd {
        name: "bgp".into(),
        pools: ["bgp".to_string()].into(),
        aggregation_length: 32,
        aggregation_length_v6: 128,
        local_pref: Some(150),
        communities: ["64512:100".to_string(), "large:64512:1:1".to_string()].into(),
        ..Default::default()
    });
    for p in [
        peer("rr", IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)), 64512),
        peer(
            "router-v6",
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 1)),
            64500,
        ),
    ] {
        w.bgp_peers.insert(p.name.clone(), p);
    }
    w
}

fn session(ibgp: bool) -> SessionParams {
    SessionParams {
        my_asn: 64512,
        ibgp,
        four_octet_as: true,
        next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
        next_hop_v6: Some(Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x11)),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let services: u32 = arg("--services").unwrap_or(50_000);
    let rounds: usize = arg("--rounds").unwrap_or(5).max(1);
    let live: BTreeSet<String> = NODES.iter().map(|n| n.to_string()).collect();
    let ctx = Context {
        four_octet_as: true,
        ipv4_unicast: true,
        ipv6_unicast: true,
    };
    let w = world(services);
    // The changed world: 1% of the Services gone, as many new ones elsewhere.
    let mut changed = w.clone();
    let moved = services / 100;
    for i in 0..moved {
        changed
            .services
            .remove(&ServiceKey::new("bench", format!("svc-{i}")));
        let mut s = service(i, services + 1000);
        s.key = ServiceKey::new("bench", format!("new-{i}"));
        changed.insert_service(s);
    }

    let (mut t_elect, mut t_plan, mut t_build, mut t_encode, mut t_change) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut figures = (0, 0, 0, 0, 0);
    for _ in 0..rounds {
        let start = Instant::now();
        let a = announcements(&w, "node1", &live);
        t_elect.push(start.elapsed());

        let start = Instant::now();
        let p = plan(&w, "node1", &a.bgp);
        t_plan.push(start.elapsed());

        let start = Instant::now();
        let full: Vec<_> = p
            .peers
            .iter()
            .map(|(name, rib)| updates(&RibDiff::full(rib), &session(name == "rr")))
            .collect();
        t_build.push(start.elapsed());

        let start = Instant::now();
        let mut bytes = 0;
        let mut messages = 0;
        for u in &full {
            for m in &u.messages {
                match encode(&Message::Update(m.clone()), &ctx) {
                    Ok(b) => bytes += b.len(),
                    Err(e) => {
                        eprintln!("encode: {e}");
                        std::process::exit(1);
                    }
                }
                messages += 1;
            }
        }
        t_encode.push(start.elapsed());

        let start = Instant::now();
        let a2 = announcements(&changed, "node1", &live);
        let p2 = plan(&changed, "node1", &a2.bgp);
        let mut change_messages = 0;
        let mut change_prefixes = 0;
        for (name, rib) in &p2.peers {
            let d = diff(&p.peers[name], rib);
            change_prefixes += d.withdraw.len() + d.announce.len();
            change_messages += updates(&d, &session(name == "rr")).messages.len();
        }
        t_change.push(start.elapsed());
        let prefixes: usize = p.peers.values().map(|r| r.len()).sum();
        figures = (prefixes, messages, bytes, change_prefixes, change_messages);
    }
    let (prefixes, messages, bytes, change_prefixes, change_messages) = figures;
    println!(
        "{services} Services, 3 nodes, 2 peers (iBGP IPv4, eBGP IPv6), median of {rounds} rounds"
    );
    println!(
        "election for one node (announcements): {:?}",
        median(&mut t_elect)
    );
    println!(
        "Adj-RIB-Out of both peers (plan), {prefixes} prefixes: {:?}",
        median(&mut t_plan)
    );
    println!(
        "full table as UPDATEs (updates): {messages} messages, {bytes} bytes encoded, {:.1} prefixes per message: {:?}",
        prefixes as f64 / messages.max(1) as f64,
        median(&mut t_build)
    );
    println!("encoding them (codec::encode): {:?}", median(&mut t_encode));
    println!(
        "1% of Services moved (election + plan + diff + updates), {change_prefixes} prefix changes in {change_messages} messages: {:?}",
        median(&mut t_change)
    );
}
