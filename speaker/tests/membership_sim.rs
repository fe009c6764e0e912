//! The gossip protocol with the LAN tuning, in virtual time: foca instances exchanging
//! datagrams through an event queue with a fixed 0.1 ms latency and no CPU contention.
//!
//! This is what the protocol itself delivers, independent of how loaded the machine
//! running the tests is, so unlike the loopback tests it can assert the sub-second
//! figure: it is deterministic (seeded). `benches/gossip.rs` includes this file and
//! prints the same figures next to the loopback ones.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use ferrolb_speaker::membership::{NodeId, Tuning};
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, PostcardCodec, Timer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

const LATENCY_US: u64 = 100;

enum Event {
    Deliver { to: usize, data: Vec<u8> },
    Timer { node: usize, timer: Timer<NodeId> },
}

struct Cluster {
    nodes: Vec<(Swim, AccumulatingRuntime<NodeId>)>,
    alive: Vec<bool>,
    index: HashMap<SocketAddr, usize>,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    now: u64,
}

impl Cluster {
    fn new(tuning: &Tuning, n: usize, seed: u64) -> Option<Self> {
        let config = tuning.to_foca().ok()?;
        let mut c = Cluster {
            nodes: Vec::new(),
            alive: vec![true; n],
            index: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            now: 0,
        };
        for i in 0..n {
            let addr = SocketAddr::from(([192, 0, 2, u8::try_from(i + 1).ok()?], 7946));
            let id = NodeId {
                name: format!("node-{i}"),
                addr,
                bump: 1,
            };
            let rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(i as u64));
            c.nodes.push((
                Foca::new(id, config.clone(), rng, PostcardCodec),
                AccumulatingRuntime::new(),
            ));
            c.index.insert(addr, i);
        }
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let addr = c.nodes[j].0.identity().addr;
                    let seed = NodeId {
                        name: String::new(),
                        addr,
                        bump: 0,
                    };
                    let (foca, rt) = &mut c.nodes[i];
                    foca.announce(seed, &mut *rt).ok()?;
                }
            }
            c.drain(i);
        }
        Some(c)
    }

    fn push(&mut self, at: u64, e: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), e);
    }

    fn drain(&mut self, i: usize) {
        let now = self.now;
        let mut out = Vec::new();
        {
            let rt = &mut self.nodes[i].1;
            while let Some((to, data)) = rt.to_send() {
                if let Some(&j) = self.index.get(&to.addr) {
                    out.push((
                        now + LATENCY_US,
                        Event::Deliver {
                            to: j,
                            data: data.to_vec(),
                        },
                    ));
                }
            }
            while let Some((after, timer)) = rt.to_schedule() {
                let at = now + u64::try_from(after.as_micros()).unwrap_or(u64::MAX / 2);
                out.push((at, Event::Timer { node: i, timer }));
            }
            while rt.to_notify().is_some() {}
        }
        for (at, e) in out {
            self.push(at, e);
        }
    }

    /// Runs events until `until` (µs) or until `done` holds; returns whether it did.
    fn run(&mut self, until: u64, done: impl Fn(&Self) -> bool) -> bool {
        while let Some(entry) = self.queue.first_entry() {
            let (at, _) = *entry.key();
            if at > until {
                break;
            }
            let event = entry.remove();
            self.now = at;
            let i = match event {
                Event::Deliver { to, data } => {
                    if !self.alive[to] {
                        continue;
                    }
                    let (foca, rt) = &mut self.nodes[to];
                    let _ = foca.handle_data(&data, &mut *rt);
                    to
                }
                Event::Timer { node, timer } => {
                    if !self.alive[node] {
                        continue;
                    }
                    let (foca, rt) = &mut self.nodes[node];
                    let _ = foca.handle_timer(timer, &mut *rt);
                    node
                }
            };
            self.drain(i);
            if done(self) {
                return true;
            }
        }
        self.now = self.now.max(until);
        done(self)
    }

    fn sees(&self, i: usize, victim: SocketAddr) -> bool {
        self.nodes[i]
            .0
            .iter_members()
            .any(|m| m.id().addr == victim)
    }
}

/// Detection times of `trials` crashes, each in a fresh `n`-node cluster.
pub fn crash_detection(tuning: &Tuning, n: usize, trials: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for trial in 0..trials {
        let mut rng = StdRng::seed_from_u64(trial as u64);
        let Some(mut c) = Cluster::new(tuning, n, trial as u64) else {
            continue;
        };
        // Converge, then crash the victim at a random instant in the next second.
        let kill_at = 1_000_000 + rng.random_range(0..1_000_000u64);
        let victim = trial % n;
        c.run(kill_at, |_| false);
        if (0..n).any(|i| c.nodes[i].0.num_members() != n - 1) {
            continue;
        }
        c.alive[victim] = false;
        let vaddr = c.nodes[victim].0.identity().addr;
        let survivors: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
        if c.run(kill_at + 10_000_000, |c| {
            survivors.iter().all(|&i| !c.sees(i, vaddr))
        }) {
            out.push(Duration::from_micros(c.now - kill_at));
        }
    }
    out
}

/// The p-th quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[test]
fn lan_tuning_declares_a_crash_dead_well_under_a_second() {
    let t = Tuning::lan();
    // Bounds of the tuning (see membership::tuning): p99 within 5.5 probe periods +
    // suspicion + a gossip tick; max within 8 periods + the same.
    let fixed = t.suspect_to_down_after + t.gossip_period;
    let p99_bound = t.probe_period * 11 / 2 + fixed;
    let max_bound = t.probe_period * 8 + fixed;
    for n in [3, 5, 10] {
        let mut d = crash_detection(&t, n, 200);
        assert_eq!(d.len(), 200, "some simulated clusters did not converge");
        d.sort();
        let (p50, p99, max) = (quantile(&d, 0.5), quantile(&d, 0.99), quantile(&d, 1.0));
        eprintln!("simulated crash of 1 in {n}: p50 {p50:?}, p99 {p99:?}, max {max:?}");
        assert!(
            p99 < p99_bound,
            "{n} nodes: p99 {p99:?} (bound {p99_bound:?})"
        );
        assert!(
            max < max_bound,
            "{n} nodes: max {max:?} (bound {max_bound:?})"
        );
        assert!(max < Duration::from_secs(1), "{n} nodes: max {max:?}");
    }
}
