//! FerroLB's speaker: decides which service IPs this node announces and makes the
//! network deliver them. This milestone holds the pure core: the inputs as plain data
//! ([`world`]), who announces what ([`election`]), and the Layer2 packet codecs
//! ([`l2`]). The shell (sockets, netlink, gossip, the binary) is not built yet.

pub mod election;
pub mod interfaces;
pub mod l2;
pub mod netlink;
pub mod world;
