//! FerroLB's speaker: decides which service IPs this node announces and makes the
//! network deliver them. The pure core: the inputs as plain data ([`world`]), who
//! announces what ([`election`]), what each interface answers for ([`desired`]), which
//! ServiceL2Status objects to keep ([`status`]), and the Layer2 packet codecs ([`l2`]).
//! The shell: gossip ([`membership`]), interfaces ([`netlink`]), raw sockets
//! ([`l2::io`], [`l2::announcer`], [`plane`]), the sources, standalone directory or
//! Kubernetes ([`source`]), and the main loop ([`run`]). BGP mode is in [`bgp`].

pub mod bfd;
pub mod bgp;
pub mod cli;
pub mod desired;
pub mod election;
pub mod interfaces;
pub mod l2;
pub mod membership;
pub mod memory;
pub mod metrics;
pub mod netlink;
pub mod plane;
pub mod run;
pub mod source;
pub mod status;
pub mod takeover;
pub mod world;
