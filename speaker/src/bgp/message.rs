//! Typed BGP-4 messages (RFC 4271) with the extensions FerroLB speaks: 4-octet AS numbers
//! (RFC 6793), multiprotocol IPv4/IPv6 unicast (RFC 4760), route refresh (RFC 2918, 7313),
//! graceful restart (RFC 4724), communities (RFC 1997, 8092). Plain data only: reading and
//! writing bytes is the codec's job, so these types carry no wire details (no lengths, no
//! AS_TRANS) and every value here can be built and compared in tests.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

/// The BGP version we speak (RFC 4271 §4.2).
pub const BGP_VERSION: u8 = 4;
/// Length of the fixed message header: 16-byte marker, 2-byte length, 1-byte type.
pub const HEADER_LEN: usize = 19;
/// Largest message RFC 4271 allows (we do not negotiate RFC 8654 extended messages).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The 2-octet placeholder sent in OPEN's "My AS" when the real ASN needs 4 octets (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// Address Family Identifier (IANA "Address Family Numbers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (RFC 4760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    pub const UNICAST: Safi = Safi(1);
    pub const MULTICAST: Safi = Safi(2);
}

/// One BGP message.
// UPDATE dominates the size; boxing it would only complicate every match on messages,
// which are built and moved a handful of times each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918): the peer asks us to re-send our Adj-RIB-Out for a family.
    /// Enhanced route refresh demarcations (RFC 7313 BoRR/EoRR) are decoded to the same
    /// variant: we never import routes, so they carry nothing we act on.
    RouteRefresh {
        afi: Afi,
        safi: Safi,
    },
}

impl Message {
    /// The message type code (RFC 4271 §4.1, RFC 2918).
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Open(_) => MessageType::OPEN,
            Message::Update(_) => MessageType::UPDATE,
            Message::Notification(_) => MessageType::NOTIFICATION,
            Message::Keepalive => MessageType::KEEPALIVE,
            Message::RouteRefresh { .. } => MessageType::ROUTE_REFRESH,
        }
    }
}

/// Message type codes.
pub struct MessageType;

impl MessageType {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// OPEN (RFC 4271 §4.2). `asn` is the real AS number; the codec writes AS_TRANS plus the
/// 4-octet AS capability when it does not fit in 16 bits, and reads the capability back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    pub asn: u32,
    /// Seconds; 0 means no keepalives and no hold timer, otherwise at least 3.
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// Whether the sender announced the 4-octet AS capability.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    /// Whether the sender announced multiprotocol support for `(afi, safi)`.
    pub fn multiprotocol(&self, afi: Afi, safi: Safi) -> bool {
        self.capabilities
            .contains(&Capability::Multiprotocol { afi, safi })
    }

    /// The families announced with the multiprotocol capability, in order.
    pub fn families(&self) -> Vec<(Afi, Safi)> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
                _ => None,
            })
            .collect()
    }

    /// Whether the sender supports route refresh (RFC 2918).
    pub fn route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }

    /// The graceful restart capability, if announced.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }
}

/// A capability from OPEN's Capabilities optional parameter (RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Code 1 (RFC 4760).
    Multiprotocol { afi: Afi, safi: Safi },
    /// Code 2 (RFC 2918).
    RouteRefresh,
    /// Code 64 (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// Code 65 (RFC 6793): the sender's real AS number.
    FourOctetAs(u32),
    /// Any other capability, kept as received.
    Unknown { code: u8, data: Vec<u8> },
}

impl Capability {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The R bit: the sender has restarted.
    pub restart_state: bool,
    /// Seconds the sender asks its peer to keep routes after a restart (12 bits).
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of the graceful restart capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub afi: Afi,
    pub safi: Safi,
    /// The F bit: forwarding state for this family was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// UPDATE (RFC 4271 §4.3). IPv4 unicast routes travel in `withdrawn`/`nlri`, other
/// families in the MP_REACH_NLRI / MP_UNREACH_NLRI attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: Attributes,
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// The End-of-RIB marker for a family (RFC 4724 §2): an empty UPDATE for IPv4 unicast,
    /// an UPDATE with only an empty MP_UNREACH_NLRI for any other family.
    pub fn end_of_rib(afi: Afi, safi: Safi) -> Update {
        if (afi, safi) == (Afi::IPV4, Safi::UNICAST) {
            return Update::default();
        }
        Update {
            attributes: Attributes {
                mp_unreach: Some(MpUnreach {
                    afi,
                    safi,
                    withdrawn: Vec::new(),
                }),
                ..Attributes::default()
            },
            ..Update::default()
        }
    }

    /// The family this UPDATE marks the End-of-RIB for, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<(Afi, Safi)> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        if self.attributes == Attributes::default() {
            return Some((Afi::IPV4, Safi::UNICAST));
        }
        let only_unreach = Attributes {
            mp_unreach: self.attributes.mp_unreach.clone(),
            ..Attributes::default()
        };
        match &self.attributes.mp_unreach {
            Some(u) if u.withdrawn.is_empty() && only_unreach == self.attributes => {
                Some((u.afi, u.safi))
            }
            _ => None,
        }
    }
}

/// The path attributes of an UPDATE. Absent attributes are `None` / empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// ORIGIN (type 1, well-known mandatory).
    pub origin: Option<Origin>,
    /// AS_PATH (type 2, well-known mandatory), always with 4-octet AS numbers here: the
    /// codec converts to and from 2-octet paths when the session did not negotiate them.
    pub as_path: Option<Vec<AsSegment>>,
    /// NEXT_HOP (type 3, well-known mandatory for IPv4 NLRI in the UPDATE body).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC (type 4, optional non-transitive).
    pub med: Option<u32>,
    /// LOCAL_PREF (type 5, well-known, iBGP only).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE (type 6, well-known discretionary).
    pub atomic_aggregate: bool,
    /// AGGREGATOR (type 7, optional transitive): AS and router ID.
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// COMMUNITIES (type 8, RFC 1997).
    pub communities: Vec<Community>,
    /// MP_REACH_NLRI (type 14, RFC 4760).
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI (type 15, RFC 4760).
    pub mp_unreach: Option<MpUnreach>,
    /// LARGE_COMMUNITY (type 32, RFC 8092).
    pub large_communities: Vec<LargeCommunity>,
    /// Attributes not modelled above, kept as received (flags, type, value).
    pub other: Vec<RawAttribute>,
}

/// Attribute type codes.
pub struct AttrType;

impl AttrType {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub struct AttrFlags;

impl AttrFlags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// ORIGIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// One AS_PATH segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: AsSegmentKind,
    pub asns: Vec<u32>,
}

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065 for confederations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AsSegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

/// A standard community (RFC 1997): high 16 bits an AS, low 16 bits a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);

    pub fn new(asn: u16, value: u16) -> Community {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xFFFF)
    }
}

/// A large community (RFC 8092).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data1: u32,
    pub local_data2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

/// MP_REACH_NLRI (RFC 4760 §3). For IPv6 unicast the next hop is a global address,
/// optionally followed by a link-local one (RFC 2545).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    pub next_hop: IpAddr,
    pub link_local_next_hop: Option<Ipv6Addr>,
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4). Empty `withdrawn` with nothing else in the UPDATE is the
/// End-of-RIB marker for the family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: Vec<IpNet>,
}

/// A path attribute kept as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttribute {
    /// The flag octet as received, without the extended-length bit: that one is a wire
    /// detail the codec sets from the value's length.
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// NOTIFICATION (RFC 4271 §4.5). Codes and subcodes are in [`Notification`]'s constants
/// and the modules under [`notify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub const MESSAGE_HEADER_ERROR: u8 = 1;
    pub const OPEN_MESSAGE_ERROR: u8 = 2;
    pub const UPDATE_MESSAGE_ERROR: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM_ERROR: u8 = 5;
    pub const CEASE: u8 = 6;
    /// RFC 7313.
    pub const ROUTE_REFRESH_MESSAGE_ERROR: u8 = 7;

    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// A Cease with the given subcode and no data.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(Notification::CEASE, subcode, Vec::new())
    }

    /// Human-readable name of the error code.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            Notification::MESSAGE_HEADER_ERROR => "message header error",
            Notification::OPEN_MESSAGE_ERROR => "OPEN message error",
            Notification::UPDATE_MESSAGE_ERROR => "UPDATE message error",
            Notification::HOLD_TIMER_EXPIRED => "hold timer expired",
            Notification::FSM_ERROR => "finite state machine error",
            Notification::CEASE => "cease",
            Notification::ROUTE_REFRESH_MESSAGE_ERROR => "ROUTE-REFRESH message error",
            _ => "unknown error code",
        }
    }

    /// Human-readable name of the subcode (in the context of the code).
    pub fn subcode_name(&self) -> &'static str {
        use notify::*;
        match (self.code, self.subcode) {
            (Notification::MESSAGE_HEADER_ERROR, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "connection not synchronized"
            }
            (Notification::MESSAGE_HEADER_ERROR, header::BAD_MESSAGE_LENGTH) => {
                "bad message length"
            }
            (Notification::MESSAGE_HEADER_ERROR, header::BAD_MESSAGE_TYPE) => "bad message type",
            (Notification::OPEN_MESSAGE_ERROR, open::UNSUPPORTED_VERSION_NUMBER) => {
                "unsupported version number"
            }
            (Notification::OPEN_MESSAGE_ERROR, open::BAD_PEER_AS) => "bad peer AS",
            (Notification::OPEN_MESSAGE_ERROR, open::BAD_BGP_IDENTIFIER) => "bad BGP identifier",
            (Notification::OPEN_MESSAGE_ERROR, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "unsupported optional parameter"
            }
            (Notification::OPEN_MESSAGE_ERROR, open::UNACCEPTABLE_HOLD_TIME) => {
                "unacceptable hold time"
            }
            (Notification::OPEN_MESSAGE_ERROR, open::UNSUPPORTED_CAPABILITY) => {
                "unsupported capability"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::MALFORMED_ATTRIBUTE_LIST) => {
                "malformed attribute list"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "unrecognized well-known attribute"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                "missing well-known attribute"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::ATTRIBUTE_FLAGS_ERROR) => {
                "attribute flags error"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::ATTRIBUTE_LENGTH_ERROR) => {
                "attribute length error"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::INVALID_ORIGIN_ATTRIBUTE) => {
                "invalid ORIGIN attribute"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::INVALID_NEXT_HOP_ATTRIBUTE) => {
                "invalid NEXT_HOP attribute"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::OPTIONAL_ATTRIBUTE_ERROR) => {
                "optional attribute error"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::INVALID_NETWORK_FIELD) => {
                "invalid network field"
            }
            (Notification::UPDATE_MESSAGE_ERROR, update::MALFORMED_AS_PATH) => "malformed AS_PATH",
            (Notification::FSM_ERROR, fsm::UNEXPECTED_IN_OPENSENT) => {
                "unexpected message in OpenSent"
            }
            (Notification::FSM_ERROR, fsm::UNEXPECTED_IN_OPENCONFIRM) => {
                "unexpected message in OpenConfirm"
            }
            (Notification::FSM_ERROR, fsm::UNEXPECTED_IN_ESTABLISHED) => {
                "unexpected message in Established"
            }
            (Notification::CEASE, cease::MAXIMUM_PREFIXES_REACHED) => "maximum prefixes reached",
            (Notification::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "administrative shutdown",
            (Notification::CEASE, cease::PEER_DECONFIGURED) => "peer de-configured",
            (Notification::CEASE, cease::ADMINISTRATIVE_RESET) => "administrative reset",
            (Notification::CEASE, cease::CONNECTION_REJECTED) => "connection rejected",
            (Notification::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => {
                "other configuration change"
            }
            (Notification::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "connection collision resolution"
            }
            (Notification::CEASE, cease::OUT_OF_RESOURCES) => "out of resources",
            (Notification::CEASE, cease::HARD_RESET) => "hard reset",
            (Notification::CEASE, cease::BFD_DOWN) => "BFD down",
            (Notification::ROUTE_REFRESH_MESSAGE_ERROR, route_refresh::INVALID_MESSAGE_LENGTH) => {
                "invalid message length"
            }
            (_, 0) => "unspecific",
            _ => "unknown subcode",
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}), {} ({})",
            self.code_name(),
            self.code,
            self.subcode_name(),
            self.subcode
        )?;
        if !self.data.is_empty() {
            write!(f, ", data")?;
            for b in &self.data {
                write!(f, " {b:02x}")?;
            }
        }
        Ok(())
    }
}

/// NOTIFICATION subcodes, one module per error code.
pub mod notify {
    /// Message Header Error subcodes (RFC 4271 §6.1).
    pub mod header {
        pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
        pub const BAD_MESSAGE_LENGTH: u8 = 2;
        pub const BAD_MESSAGE_TYPE: u8 = 3;
    }
    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5).
    pub mod open {
        pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
        pub const BAD_PEER_AS: u8 = 2;
        pub const BAD_BGP_IDENTIFIER: u8 = 3;
        pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
        pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
        pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    }
    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    pub mod update {
        pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
        pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
        pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
        pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
        pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
        pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
        pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
        pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
        pub const INVALID_NETWORK_FIELD: u8 = 10;
        pub const MALFORMED_AS_PATH: u8 = 11;
    }
    /// Finite State Machine Error subcodes (RFC 6608).
    pub mod fsm {
        pub const UNSPECIFIED: u8 = 0;
        pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
        pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
        pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
    }
    /// Cease subcodes (RFC 4486, RFC 8538 hard reset, RFC 9384 BFD down).
    pub mod cease {
        pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
        pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
        pub const PEER_DECONFIGURED: u8 = 3;
        pub const ADMINISTRATIVE_RESET: u8 = 4;
        pub const CONNECTION_REJECTED: u8 = 5;
        pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
        pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
        pub const OUT_OF_RESOURCES: u8 = 8;
        pub const HARD_RESET: u8 = 9;
        /// RFC 9384: the session's BFD session went down.
        pub const BFD_DOWN: u8 = 10;
    }
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313).
    pub mod route_refresh {
        pub const INVALID_MESSAGE_LENGTH: u8 = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_rib_markers_are_recognized_per_family() {
        let v4 = Update::end_of_rib(Afi::IPV4, Safi::UNICAST);
        assert_eq!(v4, Update::default());
        assert_eq!(v4.end_of_rib_family(), Some((Afi::IPV4, Safi::UNICAST)));
        let v6 = Update::end_of_rib(Afi::IPV6, Safi::UNICAST);
        assert_eq!(v6.end_of_rib_family(), Some((Afi::IPV6, Safi::UNICAST)));

        let mut not_eor = v6.clone();
        not_eor.attributes.origin = Some(Origin::Igp);
        assert_eq!(not_eor.end_of_rib_family(), None);
        let mut withdraw = Update::default();
        withdraw.withdrawn.push("192.0.2.0/24".parse().unwrap());
        assert_eq!(withdraw.end_of_rib_family(), None);
    }

    #[test]
    fn open_capability_queries() {
        let open = Open {
            version: BGP_VERSION,
            asn: 4_200_000_000,
            hold_time: 90,
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                },
                Capability::FourOctetAs(4_200_000_000),
                Capability::RouteRefresh,
            ],
        };
        assert!(open.four_octet_as());
        assert!(open.route_refresh());
        assert!(open.multiprotocol(Afi::IPV6, Safi::UNICAST));
        assert!(!open.multiprotocol(Afi::IPV4, Safi::UNICAST));
        assert_eq!(open.families(), vec![(Afi::IPV6, Safi::UNICAST)]);
        assert!(open.graceful_restart().is_none());
    }

    #[test]
    fn notification_and_communities_display() {
        let n = Notification::new(
            Notification::OPEN_MESSAGE_ERROR,
            notify::open::BAD_PEER_AS,
            vec![0xfd, 0xe8],
        );
        assert_eq!(
            n.to_string(),
            "OPEN message error (2), bad peer AS (2), data fd e8"
        );
        assert_eq!(Community::new(64512, 100).to_string(), "64512:100");
        assert_eq!(Community::NO_EXPORT.to_string(), "65535:65281");
    }
}
