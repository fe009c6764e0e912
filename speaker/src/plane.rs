//! The Layer2 data plane: one [`Announcer`] per interface that has addresses to answer
//! for, started when an interface first gets one and stopped when it has none left (or
//! changes MAC or link-local address).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::desired::{Desired, Owned};
use crate::l2::announcer::{Announcer, Config, Link};
use crate::l2::ether::MacAddr;
use crate::metrics::Metrics;
use crate::run::L2Plane;

pub struct Announcers {
    config: Config,
    running: BTreeMap<u32, Announcer>,
    metrics: Option<Arc<Metrics>>,
}

impl Announcers {
    pub fn new(garp_refresh: Option<Duration>) -> Announcers {
        Announcers {
            config: Config {
                garp_refresh,
                ..Config::default()
            },
            running: BTreeMap::new(),
            metrics: None,
        }
    }

    /// Announcers count into `metrics`, per interface name.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Announcers {
        self.metrics = Some(metrics);
        self
    }

    fn link(index: u32, o: &Owned) -> Link {
        Link {
            index,
            name: o.name.clone(),
            mac: MacAddr(o.mac),
            arp: o.arp,
            link_local: o.link_local,
        }
    }
}

impl L2Plane for Announcers {
    fn apply(&mut self, desired: &Desired) {
        self.running.retain(|index, a| {
            desired
                .get(index)
                .is_some_and(|o| a.link() == &Self::link(*index, o))
        });
        for (index, owned) in desired {
            if !self.running.contains_key(index) {
                let counters = self
                    .metrics
                    .as_ref()
                    .map_or_else(Default::default, |m| m.l2_counters(&owned.name));
                let link = Self::link(*index, owned);
                match Announcer::spawn_counting(link, self.config.clone(), counters) {
                    Ok(a) => {
                        self.running.insert(*index, a);
                    }
                    Err(e) => {
                        warn!("cannot announce on {}: {e}", owned.name);
                        continue;
                    }
                }
            }
            if let Some(a) = self.running.get(index) {
                a.set_owned(owned.ips.clone());
            }
        }
    }
}
