//! Layer2 mode: ARP (IPv4) and NDP (IPv6) packets, built and parsed without I/O.

pub mod announcer;
pub mod arp;
pub mod ether;
pub mod io;
pub mod ndp;
