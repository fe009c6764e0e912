//! BGP mode: sessions with the routers named in `BGPPeer` objects, announcing service IPs
//! as `BGPAdvertisement`s say. Typed messages ([`message`]) are plain data shared by the
//! wire codec, the sans-IO session state machine and the Adj-RIB-Out.

pub mod codec;
pub mod config;
pub mod fsm;
pub mod message;
pub mod rib;
pub mod session;
pub mod socket;
pub mod speaker;
