//! Throughput of the BGP codec: decoding and encoding UPDATEs as a router or another
//! speaker sends them (one route each, and packed full to 4096 bytes, IPv4 and IPv6).
//! Prints messages, prefixes and bytes per second; `cargo bench -p ferrolb-speaker
//! --bench bgp_codec`.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_speaker::bgp::codec::{self, Context};
use ferrolb_speaker::bgp::message::*;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

fn attributes() -> Attributes {
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(vec![AsSegment {
            kind: AsSegmentKind::Sequence,
            asns: vec![64512, 4_200_000_000],
        }]),
        med: Some(0),
        communities: vec![Community::new(64512, 100)],
        large_communities: vec![LargeCommunity {
            global_admin: 64512,
            local_data1: 1,
            local_data2: 2,
        }],
        ..Attributes::default()
    }
}

fn v4(prefixes: u32) -> Update {
    Update {
        attributes: Attributes {
            next_hop: Some(Ipv4Addr::new(198, 51, 100, 1)),
            ..attributes()
        },
        nlri: (0..prefixes)
            .map(|i| Ipv4Net::new(Ipv4Addr::from(0xcb00_0000 + i), 32).unwrap())
            .collect(),
        ..Update::default()
    }
}

fn v6(prefixes: u32) -> Update {
    Update {
        attributes: Attributes {
            mp_reach: Some(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local_next_hop: None,
                nlri: (0..prefixes)
                    .map(|i| {
                        let a = Ipv6Addr::from(
                            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
                        );
                        IpNet::V6(Ipv6Net::new(a, 128).unwrap())
                    })
                    .collect(),
            }),
            ..attributes()
        },
        ..Update::default()
    }
}

/// The most prefixes `make` can hold in one 4096-byte message.
fn packed(make: fn(u32) -> Update, ctx: &Context) -> Update {
    let mut n = 1;
    while codec::encoded_len(&Message::Update(make(n + 1)), ctx) <= MAX_MESSAGE_LEN {
        n += 1;
    }
    make(n)
}

fn prefixes(u: &Update) -> usize {
    u.nlri.len() + u.attributes.mp_reach.as_ref().map_or(0, |m| m.nlri.len())
}

fn run(name: &str, update: Update, ctx: &Context) {
    let msg = Message::Update(update);
    let bytes = codec::encode(&msg, ctx).unwrap();
    let per_msg = prefixes(match &msg {
        Message::Update(u) => u,
        _ => unreachable!(),
    });
    // Enough iterations for about a second each.
    let budget = Duration::from_millis(800);
    let (mut n, start) = (0u64, Instant::now());
    while start.elapsed() < budget {
        for _ in 0..100 {
            black_box(codec::decode_message(black_box(&bytes), ctx).unwrap());
        }
        n += 100;
    }
    let dec = start.elapsed().as_secs_f64();
    let (mut m, start) = (0u64, Instant::now());
    while start.elapsed() < budget {
        for _ in 0..100 {
            black_box(codec::encode(black_box(&msg), ctx).unwrap());
        }
        m += 100;
    }
    let enc = start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {:>5} B {per_msg:>4} pfx | decode {:>9.0} msg/s {:>10.0} pfx/s {:>7.1} MB/s | encode {:>9.0} msg/s {:>10.0} pfx/s",
        bytes.len(),
        n as f64 / dec,
        n as f64 * per_msg as f64 / dec,
        n as f64 * bytes.len() as f64 / dec / 1e6,
        m as f64 / enc,
        m as f64 * per_msg as f64 / enc,
    );
}

fn main() {
    let ctx = Context {
        four_octet_as: true,
        ipv4_unicast: true,
        ipv6_unicast: true,
    };
    run("IPv4 UPDATE, 1 prefix", v4(1), &ctx);
    run("IPv4 UPDATE, packed /32s", packed(v4, &ctx), &ctx);
    run("IPv6 UPDATE, 1 prefix", v6(1), &ctx);
    run("IPv6 UPDATE, packed /128s", packed(v6, &ctx), &ctx);
}
