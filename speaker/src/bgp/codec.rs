//! The BGP wire codec: framing, decoding and encoding of [`message`](super::message)s.
//!
//! Decoding is the receive path of a TCP session that anyone able to reach port 179
//! (or a confused router) can feed, so it checks every length before it uses it: no
//! indexing or slicing without bounds (the lints below make those compile errors), no
//! allocation sized by a count from the wire (vectors grow only as bytes are consumed, so
//! a message of at most 4096 bytes bounds them), and every loop consumes at least one
//! byte per turn. Every failure is a typed [`DecodeError`] that knows the NOTIFICATION
//! RFC 4271 §6 requires ([`DecodeError::notification`]).
//!
//! Error handling follows RFC 7606 where it relaxes RFC 4271: a malformed ORIGIN,
//! AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES or LARGE_COMMUNITY, wrong flags on
//! a known attribute, or a missing mandatory attribute make the UPDATE's routes
//! "treated as withdrawn" ([`DecodeError::TreatAsWithdraw`]: the session stays up);
//! a malformed ATOMIC_AGGREGATE or AGGREGATOR is discarded. Errors that leave the
//! message's routes unknowable (framing, attribute list overruns, NLRI syntax,
//! MP_REACH_NLRI / MP_UNREACH_NLRI, duplicate MP attributes) reset the session. FerroLB
//! never imports received routes, so treat-as-withdraw needs no more than the error.
//!
//! The codec is our own rather than zettabgp (or another BGP crate): its receive path is
//! the part that must be trustworthy, zettabgp's has known defects (an AS_PATH with a
//! trailing byte loops forever allocating, a header length below 19 panics, an IPv6
//! session misreads IPv4 NEXT_HOP/NLRI; see the regression tests below), and the encoder
//! for what we send is a few hundred lines with no dependency.

// Bytes come from the network: make every possible panic a compile error here.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

use super::message::{
    AS_TRANS, AsSegment, AsSegmentKind, AttrFlags, AttrType, Attributes, BGP_VERSION, Capability,
    GracefulRestart, GracefulRestartFamily, HEADER_LEN, LargeCommunity, MAX_MESSAGE_LEN, Message,
    MessageType, MpReach, MpUnreach, Notification, Open, Origin, RawAttribute, Safi, Update,
    notify,
};
use super::message::{Afi, Community};

const MARKER: [u8; 16] = [0xff; 16];
/// OPEN's optional parameter type for capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// Non-Ext OP Type announcing RFC 9072 extended optional parameters.
const PARAM_EXTENDED: u8 = 255;

/// What the session negotiated, which changes how UPDATEs are read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// Both sides announced the 4-octet AS capability: AS_PATH and AGGREGATOR carry
    /// 4-octet AS numbers.
    pub four_octet_as: bool,
    /// IPv4 unicast is enabled on the session.
    pub ipv4_unicast: bool,
    /// IPv6 unicast (RFC 4760 AFI 2 / SAFI 1) is enabled on the session.
    pub ipv6_unicast: bool,
}

impl Default for Context {
    /// Plain RFC 4271: 2-octet AS numbers, IPv4 unicast only.
    fn default() -> Context {
        Context {
            four_octet_as: false,
            ipv4_unicast: true,
            ipv6_unicast: false,
        }
    }
}

impl Context {
    /// The context both OPENs agree on. A side that announces no multiprotocol
    /// capability supports IPv4 unicast only (RFC 4760 §8).
    pub fn negotiated(local: &Open, remote: &Open) -> Context {
        let supports = |open: &Open, afi: Afi, safi: Safi| {
            open.multiprotocol(afi, safi)
                || ((afi, safi) == (Afi::IPV4, Safi::UNICAST) && open.families().is_empty())
        };
        let both = |afi, safi| supports(local, afi, safi) && supports(remote, afi, safi);
        Context {
            four_octet_as: local.four_octet_as() && remote.four_octet_as(),
            ipv4_unicast: both(Afi::IPV4, Safi::UNICAST),
            ipv6_unicast: both(Afi::IPV6, Safi::UNICAST),
        }
    }

    /// Whether MP_REACH_NLRI / MP_UNREACH_NLRI for this family are decoded. Other
    /// families are kept as raw attributes: we import nothing, so their routes only need
    /// to be skipped safely.
    fn decodes(&self, afi: Afi, safi: Safi) -> bool {
        match (afi, safi) {
            (Afi::IPV4, Safi::UNICAST) => self.ipv4_unicast,
            (Afi::IPV6, Safi::UNICAST) => self.ipv6_unicast,
            _ => false,
        }
    }
}

/// Why a received message was refused. [`DecodeError::notification`] gives the
/// NOTIFICATION to send before closing the session; [`DecodeError::TreatAsWithdraw`]
/// sends none (the session stays up, the UPDATE's routes are dropped).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("message header: marker is not all ones (connection not synchronized)")]
    ConnectionNotSynchronized,
    #[error("message header: bad message length {length}")]
    BadMessageLength { length: u16 },
    #[error("message header: unknown message type {msg_type}")]
    BadMessageType { msg_type: u8 },
    #[error("OPEN: unsupported BGP version {version} (we speak 4)")]
    UnsupportedVersion { version: u8 },
    #[error("OPEN: bad peer AS {asn}")]
    BadPeerAs { asn: u32 },
    #[error("OPEN: bad BGP identifier {id}")]
    BadBgpIdentifier { id: Ipv4Addr },
    #[error("OPEN: unsupported optional parameter type {param_type}")]
    UnsupportedOptionalParameter { param_type: u8 },
    #[error("OPEN: unacceptable hold time {hold_time} s (must be 0 or at least 3)")]
    UnacceptableHoldTime { hold_time: u16 },
    #[error("OPEN: malformed: {reason}")]
    MalformedOpen { reason: &'static str },
    #[error("UPDATE: malformed attribute list: {reason}")]
    MalformedAttributeList { reason: &'static str },
    #[error("UPDATE: unrecognized well-known attribute type {type_code}")]
    UnrecognizedWellKnownAttribute { type_code: u8, attribute: Vec<u8> },
    #[error("UPDATE: missing well-known attribute type {type_code}")]
    MissingWellKnownAttribute { type_code: u8 },
    #[error("UPDATE: attribute type {type_code} has wrong flags {flags:#04x}")]
    AttributeFlags {
        type_code: u8,
        flags: u8,
        attribute: Vec<u8>,
    },
    #[error("UPDATE: attribute type {type_code} has wrong length {length}")]
    AttributeLength {
        type_code: u8,
        length: usize,
        attribute: Vec<u8>,
    },
    #[error("UPDATE: invalid ORIGIN value {value}")]
    InvalidOrigin { value: u8, attribute: Vec<u8> },
    #[error("UPDATE: invalid NEXT_HOP {next_hop}")]
    InvalidNextHop {
        next_hop: Ipv4Addr,
        attribute: Vec<u8>,
    },
    #[error("UPDATE: optional attribute type {type_code}: {reason}")]
    OptionalAttribute {
        type_code: u8,
        reason: &'static str,
        attribute: Vec<u8>,
    },
    #[error("UPDATE: invalid network field: {reason}")]
    InvalidNetworkField { reason: &'static str },
    #[error("UPDATE: malformed AS_PATH: {reason}")]
    MalformedAsPath { reason: &'static str },
    #[error("ROUTE-REFRESH: invalid message length {length}")]
    RouteRefreshLength { length: u16, message: Vec<u8> },
    #[error("UPDATE treated as withdraw (RFC 7606): {0}")]
    TreatAsWithdraw(Box<DecodeError>),
}

impl DecodeError {
    /// The NOTIFICATION to send (RFC 4271 §6, RFC 7313 §5), or `None` for
    /// treat-as-withdraw, which keeps the session up.
    pub fn notification(&self) -> Option<Notification> {
        use notify::{header, open, route_refresh, update};
        const HEADER: u8 = Notification::MESSAGE_HEADER_ERROR;
        const OPEN: u8 = Notification::OPEN_MESSAGE_ERROR;
        const UPDATE: u8 = Notification::UPDATE_MESSAGE_ERROR;
        let (code, subcode, data) = match self {
            DecodeError::TreatAsWithdraw(_) => return None,
            DecodeError::ConnectionNotSynchronized => {
                (HEADER, header::CONNECTION_NOT_SYNCHRONIZED, vec![])
            }
            DecodeError::BadMessageLength { length } => (
                HEADER,
                header::BAD_MESSAGE_LENGTH,
                length.to_be_bytes().to_vec(),
            ),
            DecodeError::BadMessageType { msg_type } => {
                (HEADER, header::BAD_MESSAGE_TYPE, vec![*msg_type])
            }
            // Data: the largest version we support (RFC 4271 §6.2).
            DecodeError::UnsupportedVersion { .. } => (
                OPEN,
                open::UNSUPPORTED_VERSION_NUMBER,
                u16::from(BGP_VERSION).to_be_bytes().to_vec(),
            ),
            DecodeError::BadPeerAs { .. } => (OPEN, open::BAD_PEER_AS, vec![]),
            DecodeError::BadBgpIdentifier { .. } => (OPEN, open::BAD_BGP_IDENTIFIER, vec![]),
            DecodeError::UnsupportedOptionalParameter { .. } => {
                (OPEN, open::UNSUPPORTED_OPTIONAL_PARAMETER, vec![])
            }
            DecodeError::UnacceptableHoldTime { .. } => {
                (OPEN, open::UNACCEPTABLE_HOLD_TIME, vec![])
            }
            // RFC 4271 has no subcode for a garbled parameter list: "unspecific".
            DecodeError::MalformedOpen { .. } => (OPEN, 0, vec![]),
            DecodeError::MalformedAttributeList { .. } => {
                (UPDATE, update::MALFORMED_ATTRIBUTE_LIST, vec![])
            }
            DecodeError::UnrecognizedWellKnownAttribute { attribute, .. } => (
                UPDATE,
                update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                attribute.clone(),
            ),
            DecodeError::MissingWellKnownAttribute { type_code } => (
                UPDATE,
                update::MISSING_WELL_KNOWN_ATTRIBUTE,
                vec![*type_code],
            ),
            DecodeError::AttributeFlags { attribute, .. } => {
                (UPDATE, update::ATTRIBUTE_FLAGS_ERROR, attribute.clone())
            }
            DecodeError::AttributeLength { attribute, .. } => {
                (UPDATE, update::ATTRIBUTE_LENGTH_ERROR, attribute.clone())
            }
            DecodeError::InvalidOrigin { attribute, .. } => {
                (UPDATE, update::INVALID_ORIGIN_ATTRIBUTE, attribute.clone())
            }
            DecodeError::InvalidNextHop { attribute, .. } => (
                UPDATE,
                update::INVALID_NEXT_HOP_ATTRIBUTE,
                attribute.clone(),
            ),
            DecodeError::OptionalAttribute { attribute, .. } => {
                (UPDATE, update::OPTIONAL_ATTRIBUTE_ERROR, attribute.clone())
            }
            DecodeError::InvalidNetworkField { .. } => {
                (UPDATE, update::INVALID_NETWORK_FIELD, vec![])
            }
            DecodeError::MalformedAsPath { .. } => (UPDATE, update::MALFORMED_AS_PATH, vec![]),
            DecodeError::RouteRefreshLength { message, .. } => (
                Notification::ROUTE_REFRESH_MESSAGE_ERROR,
                route_refresh::INVALID_MESSAGE_LENGTH,
                message.clone(),
            ),
        };
        Some(Notification::new(code, subcode, data))
    }

    /// Whether the session must be closed (after sending [`DecodeError::notification`]).
    pub fn is_session_reset(&self) -> bool {
        !matches!(self, DecodeError::TreatAsWithdraw(_))
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("message of {len} bytes exceeds the BGP maximum of 4096")]
    MessageTooLong { len: usize },
    #[error("OPEN optional parameters of {len} bytes exceed 255")]
    ParametersTooLong { len: usize },
    #[error("capability {code} of {len} bytes exceeds 255")]
    CapabilityTooLong { code: u8, len: usize },
    #[error("attribute type {type_code} of {len} bytes exceeds 65535")]
    AttributeTooLong { type_code: u8, len: usize },
}

/// A cursor over received bytes whose reads fail instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
    fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, _) = self.rest().split_at_checked(n)?;
        self.pos = self.pos.checked_add(n)?;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    /// The bytes read since `start` (a previous `pos`).
    fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }
}

/// Checks the header at the start of `buf` and returns the length of the first message
/// once all of it is in `buf` (`Ok(None)`: read more). The header is checked as soon as
/// its 19 bytes are there, so garbage is refused without waiting for a body.
pub fn frame(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let mut r = Reader::new(buf);
    let (Some(marker), Some(length), Some(msg_type)) = (r.array::<16>(), r.u16(), r.u8()) else {
        return Ok(None);
    };
    if marker != MARKER {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    // The smallest length each type can have (RFC 4271 §4, RFC 2918 §3).
    let min_len = match msg_type {
        MessageType::OPEN => 29,
        MessageType::UPDATE => 23,
        MessageType::NOTIFICATION => 21,
        MessageType::KEEPALIVE => HEADER_LEN,
        // Checked exactly after the whole message is in (RFC 7313 wants it as data).
        MessageType::ROUTE_REFRESH => HEADER_LEN,
        _ if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(length)) => {
            return Err(DecodeError::BadMessageLength { length });
        }
        _ => return Err(DecodeError::BadMessageType { msg_type }),
    };
    let len = usize::from(length);
    if len < min_len
        || len > MAX_MESSAGE_LEN
        || (msg_type == MessageType::KEEPALIVE && len != HEADER_LEN)
    {
        return Err(DecodeError::BadMessageLength { length });
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Decodes the first message in `buf`: `Ok(None)` until all of it has arrived, then the
/// message and how many bytes it took. After [`DecodeError::TreatAsWithdraw`] the
/// session goes on: skip the [`frame`] length and decode the next message.
pub fn decode(buf: &[u8], ctx: &Context) -> Result<Option<(Message, usize)>, DecodeError> {
    let Some(len) = frame(buf)? else {
        return Ok(None);
    };
    let msg = decode_message(buf.get(..len).unwrap_or_default(), ctx)?;
    Ok(Some((msg, len)))
}

/// Decodes exactly one whole message (header included).
pub fn decode_message(msg: &[u8], ctx: &Context) -> Result<Message, DecodeError> {
    let len = frame(msg)?.ok_or(DecodeError::BadMessageLength {
        length: u16::try_from(msg.len()).unwrap_or(u16::MAX),
    })?;
    if len != msg.len() {
        return Err(DecodeError::BadMessageLength {
            length: u16::try_from(len).unwrap_or(u16::MAX),
        });
    }
    let msg_type = msg.get(18).copied().unwrap_or_default();
    let body = msg.get(HEADER_LEN..).unwrap_or_default();
    match msg_type {
        MessageType::OPEN => decode_open(body).map(Message::Open),
        MessageType::UPDATE => decode_update(body, ctx).map(Message::Update),
        MessageType::NOTIFICATION => {
            let mut r = Reader::new(body);
            let (Some(code), Some(subcode)) = (r.u8(), r.u8()) else {
                return Err(DecodeError::BadMessageLength {
                    length: u16::try_from(len).unwrap_or(u16::MAX),
                });
            };
            Ok(Message::Notification(Notification::new(
                code,
                subcode,
                r.rest().to_vec(),
            )))
        }
        MessageType::KEEPALIVE => Ok(Message::Keepalive),
        MessageType::ROUTE_REFRESH => decode_route_refresh(msg, body),
        _ => Err(DecodeError::BadMessageType { msg_type }),
    }
}

fn decode_route_refresh(msg: &[u8], body: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(afi), Some(subtype), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(DecodeError::BadMessageLength {
            length: u16::try_from(msg.len()).unwrap_or(u16::MAX),
        });
    };
    if !r.is_empty() {
        let length = u16::try_from(msg.len()).unwrap_or(u16::MAX);
        // RFC 7313 §5 for the enhanced demarcations; plain RFC 4271 otherwise.
        return Err(if subtype == 1 || subtype == 2 {
            DecodeError::RouteRefreshLength {
                length,
                message: msg.to_vec(),
            }
        } else {
            DecodeError::BadMessageLength { length }
        });
    }
    Ok(Message::RouteRefresh {
        afi: Afi(afi),
        safi: Safi(safi),
    })
}

fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let malformed = |reason| DecodeError::MalformedOpen { reason };
    let mut r = Reader::new(body);
    let version = r.u8().ok_or(malformed("truncated"))?;
    if version != BGP_VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    let (Some(my_as), Some(hold_time), Some(id), Some(opt_len)) =
        (r.u16(), r.u16(), r.u32(), r.u8())
    else {
        return Err(malformed("truncated"));
    };
    // RFC 9072: a 255/255 start announces 2-octet parameter lengths.
    let extended = opt_len == 255 && r.rest().first() == Some(&PARAM_EXTENDED);
    let params = if extended {
        r.u8();
        let len = r.u16().ok_or(malformed("truncated"))?;
        r.take(usize::from(len))
    } else {
        r.take(usize::from(opt_len))
    }
    .ok_or(malformed("optional parameters length exceeds the message"))?;
    if !r.is_empty() {
        return Err(malformed("bytes after the optional parameters"));
    }

    let mut capabilities = Vec::new();
    let mut p = Reader::new(params);
    while !p.is_empty() {
        let param_type = p.u8().ok_or(malformed("parameter header truncated"))?;
        let len = if extended {
            p.u16()
        } else {
            p.u8().map(u16::from)
        }
        .ok_or(malformed("parameter header truncated"))?;
        let value = p
            .take(usize::from(len))
            .ok_or(malformed("parameter exceeds the parameters length"))?;
        if param_type != PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter { param_type });
        }
        decode_capabilities(value, &mut capabilities)?;
    }

    let asn = capabilities
        .iter()
        .find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
        .unwrap_or(u32::from(my_as));
    // AS 0 is never valid (RFC 7607).
    if asn == 0 {
        return Err(DecodeError::BadPeerAs { asn });
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(DecodeError::UnacceptableHoldTime { hold_time });
    }
    let router_id = Ipv4Addr::from(id);
    // RFC 6286: any non-zero 32-bit value is a valid identifier.
    if id == 0 {
        return Err(DecodeError::BadBgpIdentifier { id: router_id });
    }
    Ok(Open {
        version,
        asn,
        hold_time,
        router_id,
        capabilities,
    })
}

fn decode_capabilities(value: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let malformed = |reason| DecodeError::MalformedOpen { reason };
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let (Some(code), Some(len)) = (r.u8(), r.u8()) else {
            return Err(malformed("capability header truncated"));
        };
        let data = r
            .take(usize::from(len))
            .ok_or(malformed("capability exceeds its parameter"))?;
        let mut d = Reader::new(data);
        let cap = match code {
            Capability::MULTIPROTOCOL => {
                let (Some(afi), Some(_reserved), Some(safi)) = (d.u16(), d.u8(), d.u8()) else {
                    return Err(malformed("multiprotocol capability length is not 4"));
                };
                if !d.is_empty() {
                    return Err(malformed("multiprotocol capability length is not 4"));
                }
                Capability::Multiprotocol {
                    afi: Afi(afi),
                    safi: Safi(safi),
                }
            }
            Capability::ROUTE_REFRESH if data.is_empty() => Capability::RouteRefresh,
            Capability::ROUTE_REFRESH => {
                return Err(malformed("route refresh capability length is not 0"));
            }
            Capability::FOUR_OCTET_AS => match (d.u32(), d.is_empty()) {
                (Some(asn), true) => Capability::FourOctetAs(asn),
                _ => return Err(malformed("4-octet AS capability length is not 4")),
            },
            Capability::GRACEFUL_RESTART => {
                let flags_time = d
                    .u16()
                    .ok_or(malformed("graceful restart capability too short"))?;
                let mut families = Vec::new();
                while !d.is_empty() {
                    let (Some(afi), Some(safi), Some(flags)) = (d.u16(), d.u8(), d.u8()) else {
                        return Err(malformed("graceful restart family truncated"));
                    };
                    families.push(GracefulRestartFamily {
                        afi: Afi(afi),
                        safi: Safi(safi),
                        forwarding_preserved: flags & 0x80 != 0,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: flags_time & 0x8000 != 0,
                    restart_time: flags_time & 0x0fff,
                    families,
                })
            }
            _ => Capability::Unknown {
                code,
                data: data.to_vec(),
            },
        };
        out.push(cap);
    }
    Ok(())
}

/// Reads one prefix of the family (RFC 4271 §4.3 / RFC 4760 §5): a length in bits, then
/// just enough bytes to hold it. Bits past the length are cleared.
fn read_prefix(r: &mut Reader<'_>, afi: Afi) -> Result<IpNet, DecodeError> {
    let bad = |reason| DecodeError::InvalidNetworkField { reason };
    let bits = r.u8().ok_or(bad("prefix truncated"))?;
    let bytes = usize::from(bits).div_ceil(8);
    let max_bits = if afi == Afi::IPV4 { 32 } else { 128 };
    if bits > max_bits {
        return Err(bad("prefix length exceeds the address"));
    }
    let data = r.take(bytes).ok_or(bad("prefix shorter than its length"))?;
    let mut addr = [0u8; 16];
    addr.get_mut(..bytes)
        .ok_or(bad("prefix length exceeds the address"))?
        .copy_from_slice(data);
    let net = if afi == Afi::IPV4 {
        let [a, b, c, d, ..] = addr;
        Ipv4Net::new(Ipv4Addr::new(a, b, c, d), bits).map(IpNet::V4)
    } else {
        Ipv6Net::new(Ipv6Addr::from(addr), bits).map(IpNet::V6)
    };
    net.map(|n| n.trunc())
        .map_err(|_| bad("prefix length exceeds the address"))
}

fn read_prefixes(data: &[u8], afi: Afi) -> Result<Vec<IpNet>, DecodeError> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(read_prefix(&mut r, afi)?);
    }
    Ok(out)
}

fn read_ipv4_prefixes(data: &[u8]) -> Result<Vec<Ipv4Net>, DecodeError> {
    Ok(read_prefixes(data, Afi::IPV4)?
        .into_iter()
        .filter_map(|n| match n {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        })
        .collect())
}

fn decode_update(body: &[u8], ctx: &Context) -> Result<Update, DecodeError> {
    let list = |reason| DecodeError::MalformedAttributeList { reason };
    let mut r = Reader::new(body);
    let withdrawn_len = r.u16().ok_or(list("withdrawn routes length truncated"))?;
    let withdrawn = r
        .take(usize::from(withdrawn_len))
        .ok_or(list("withdrawn routes length exceeds the message"))?;
    let attrs_len = r
        .u16()
        .ok_or(list("total path attribute length truncated"))?;
    let attrs = r
        .take(usize::from(attrs_len))
        .ok_or(list("total path attribute length exceeds the message"))?;
    // NLRI in the UPDATE body are IPv4, whatever the session's transport (RFC 4271).
    let withdrawn = read_ipv4_prefixes(withdrawn)?;
    let nlri = read_ipv4_prefixes(r.rest())?;

    // The first treat-as-withdraw error; parsing goes on, as a later error may still
    // require a session reset.
    let mut withdraw: Option<DecodeError> = None;
    let attributes = decode_attributes(attrs, ctx, &mut withdraw)?;

    let announces = !nlri.is_empty()
        || attributes
            .mp_reach
            .as_ref()
            .is_some_and(|m| !m.nlri.is_empty());
    let missing = if !announces {
        None
    } else if attributes.origin.is_none() {
        Some(AttrType::ORIGIN)
    } else if attributes.as_path.is_none() {
        Some(AttrType::AS_PATH)
    } else if !nlri.is_empty() && attributes.next_hop.is_none() {
        Some(AttrType::NEXT_HOP)
    } else {
        None
    };
    if let Some(type_code) = missing {
        withdraw.get_or_insert(DecodeError::MissingWellKnownAttribute { type_code });
    }
    if let Some(e) = withdraw {
        return Err(DecodeError::TreatAsWithdraw(Box::new(e)));
    }
    Ok(Update {
        withdrawn,
        attributes,
        nlri,
    })
}

/// The flag bits that must be set for a known attribute (optional and transitive).
fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = AttrFlags::TRANSITIVE;
    const OPTIONAL_TRANSITIVE: u8 = AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE;
    const OPTIONAL: u8 = AttrFlags::OPTIONAL;
    Some(match type_code {
        AttrType::ORIGIN
        | AttrType::AS_PATH
        | AttrType::NEXT_HOP
        | AttrType::LOCAL_PREF
        | AttrType::ATOMIC_AGGREGATE => WELL_KNOWN,
        AttrType::MULTI_EXIT_DISC | AttrType::MP_REACH_NLRI | AttrType::MP_UNREACH_NLRI => OPTIONAL,
        AttrType::AGGREGATOR | AttrType::COMMUNITIES | AttrType::LARGE_COMMUNITY => {
            OPTIONAL_TRANSITIVE
        }
        _ => return None,
    })
}

fn decode_attributes(
    data: &[u8],
    ctx: &Context,
    withdraw: &mut Option<DecodeError>,
) -> Result<Attributes, DecodeError> {
    let list = |reason| DecodeError::MalformedAttributeList { reason };
    let mut attrs = Attributes::default();
    let mut seen = [false; 256];
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let start = r.pos;
        let (Some(flags), Some(type_code)) = (r.u8(), r.u8()) else {
            return Err(list("attribute header truncated"));
        };
        let len = if flags & AttrFlags::EXTENDED_LENGTH != 0 {
            r.u16()
        } else {
            r.u8().map(u16::from)
        }
        .ok_or(list("attribute header truncated"))?;
        let value = r
            .take(usize::from(len))
            .ok_or(list("attribute length exceeds the path attributes"))?;
        let raw = r.since(start);
        let is_mp = matches!(
            type_code,
            AttrType::MP_REACH_NLRI | AttrType::MP_UNREACH_NLRI
        );
        let seen_before = seen.get_mut(usize::from(type_code));
        if let Some(seen_before) = seen_before {
            if *seen_before {
                // RFC 7606 §3 (g): keep the first, except for the MP attributes.
                if is_mp {
                    return Err(list("duplicate MP_REACH_NLRI or MP_UNREACH_NLRI"));
                }
                continue;
            }
            *seen_before = true;
        }
        let mut set_withdraw = |e: DecodeError| {
            withdraw.get_or_insert(e);
        };
        let length_error = || DecodeError::AttributeLength {
            type_code,
            length: value.len(),
            attribute: raw.to_vec(),
        };
        if let Some(expected) = expected_flags(type_code)
            && flags & (AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE) != expected
        {
            let e = DecodeError::AttributeFlags {
                type_code,
                flags,
                attribute: raw.to_vec(),
            };
            if is_mp {
                return Err(e);
            }
            set_withdraw(e);
            continue;
        }
        let mut v = Reader::new(value);
        match type_code {
            AttrType::ORIGIN => match (v.u8(), v.is_empty()) {
                (Some(0), true) => attrs.origin = Some(Origin::Igp),
                (Some(1), true) => attrs.origin = Some(Origin::Egp),
                (Some(2), true) => attrs.origin = Some(Origin::Incomplete),
                (Some(value), true) => set_withdraw(DecodeError::InvalidOrigin {
                    value,
                    attribute: raw.to_vec(),
                }),
                _ => set_withdraw(length_error()),
            },
            AttrType::AS_PATH => match decode_as_path(value, ctx.four_octet_as) {
                Ok(path) => attrs.as_path = Some(path),
                Err(reason) => set_withdraw(DecodeError::MalformedAsPath { reason }),
            },
            AttrType::NEXT_HOP => match (v.u32().map(Ipv4Addr::from), v.is_empty()) {
                (Some(nh), true) if valid_next_hop(nh) => attrs.next_hop = Some(nh),
                (Some(next_hop), true) => set_withdraw(DecodeError::InvalidNextHop {
                    next_hop,
                    attribute: raw.to_vec(),
                }),
                _ => set_withdraw(length_error()),
            },
            AttrType::MULTI_EXIT_DISC | AttrType::LOCAL_PREF => match (v.u32(), v.is_empty()) {
                (Some(n), true) if type_code == AttrType::MULTI_EXIT_DISC => attrs.med = Some(n),
                (Some(n), true) => attrs.local_pref = Some(n),
                _ => set_withdraw(length_error()),
            },
            // Malformed ATOMIC_AGGREGATE and AGGREGATOR are discarded (RFC 7606 §7.6, §7.7).
            AttrType::ATOMIC_AGGREGATE => attrs.atomic_aggregate = value.is_empty(),
            AttrType::AGGREGATOR => {
                let asn = if ctx.four_octet_as {
                    v.u32()
                } else {
                    v.u16().map(u32::from)
                };
                if let (Some(asn), Some(id), true) = (asn, v.u32(), v.rest().is_empty()) {
                    attrs.aggregator = Some((asn, Ipv4Addr::from(id)));
                }
            }
            AttrType::COMMUNITIES => {
                if value.is_empty() || value.len() % 4 != 0 {
                    set_withdraw(length_error());
                } else {
                    while let Some(c) = v.u32() {
                        attrs.communities.push(Community(c));
                    }
                }
            }
            AttrType::LARGE_COMMUNITY => {
                if value.is_empty() || value.len() % 12 != 0 {
                    set_withdraw(length_error());
                } else {
                    while let (Some(g), Some(l1), Some(l2)) = (v.u32(), v.u32(), v.u32()) {
                        attrs.large_communities.push(LargeCommunity {
                            global_admin: g,
                            local_data1: l1,
                            local_data2: l2,
                        });
                    }
                }
            }
            AttrType::MP_REACH_NLRI | AttrType::MP_UNREACH_NLRI => {
                let mp_error = |reason| DecodeError::OptionalAttribute {
                    type_code,
                    reason,
                    attribute: raw.to_vec(),
                };
                let decoded = if type_code == AttrType::MP_REACH_NLRI {
                    decode_mp_reach(value, ctx)
                        .map_err(mp_error)?
                        .map(|m| attrs.mp_reach = Some(m))
                } else {
                    decode_mp_unreach(value, ctx)
                        .map_err(mp_error)?
                        .map(|m| attrs.mp_unreach = Some(m))
                };
                if decoded.is_none() {
                    attrs.other.push(RawAttribute {
                        flags: flags & !AttrFlags::EXTENDED_LENGTH,
                        type_code,
                        value: value.to_vec(),
                    });
                }
            }
            _ if flags & AttrFlags::OPTIONAL == 0 => {
                return Err(DecodeError::UnrecognizedWellKnownAttribute {
                    type_code,
                    attribute: raw.to_vec(),
                });
            }
            _ => attrs.other.push(RawAttribute {
                flags: flags & !AttrFlags::EXTENDED_LENGTH,
                type_code,
                value: value.to_vec(),
            }),
        }
    }
    Ok(attrs)
}

/// A next hop that can be a host on a link: not 0.0.0.0, multicast or broadcast.
fn valid_next_hop(nh: Ipv4Addr) -> bool {
    !nh.is_unspecified() && !nh.is_multicast() && !nh.is_broadcast()
}

fn decode_as_path(value: &[u8], four_octet: bool) -> Result<Vec<AsSegment>, &'static str> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let (Some(kind), Some(count)) = (r.u8(), r.u8()) else {
            return Err("segment header truncated");
        };
        let kind = match kind {
            1 => AsSegmentKind::Set,
            2 => AsSegmentKind::Sequence,
            3 => AsSegmentKind::ConfedSequence,
            4 => AsSegmentKind::ConfedSet,
            _ => return Err("unknown segment type"),
        };
        if count == 0 {
            return Err("empty segment");
        }
        let width = if four_octet { 4 } else { 2 };
        let data = r
            .take(usize::from(count) * width)
            .ok_or("segment shorter than its AS count")?;
        let asns = if four_octet {
            data.chunks_exact(4)
                .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes))
                .collect()
        } else {
            data.chunks_exact(2)
                .filter_map(|c| c.try_into().ok().map(u16::from_be_bytes))
                .map(u32::from)
                .collect()
        };
        segments.push(AsSegment { kind, asns });
    }
    Ok(segments)
}

/// `Ok(None)`: a family the session does not decode (kept raw by the caller).
fn decode_mp_reach(value: &[u8], ctx: &Context) -> Result<Option<MpReach>, &'static str> {
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err("truncated");
    };
    let (afi, safi) = (Afi(afi), Safi(safi));
    let nh = r
        .take(usize::from(nh_len))
        .ok_or("next hop exceeds the attribute")?;
    r.u8().ok_or("reserved octet missing")?;
    if !ctx.decodes(afi, safi) {
        return Ok(None);
    }
    let mut n = Reader::new(nh);
    // IPv4 next hop for IPv4; one IPv6 global address, optionally followed by a
    // link-local one (RFC 2545), for IPv6 and for IPv4 with RFC 8950 next hops.
    let (next_hop, link_local_next_hop) = match nh.len() {
        4 if afi == Afi::IPV4 => (n.array::<4>().map(IpAddr::from), None),
        16 => (n.array::<16>().map(IpAddr::from), None),
        32 => (
            n.array::<16>().map(IpAddr::from),
            n.array::<16>().map(Ipv6Addr::from),
        ),
        _ => (None, None),
    };
    let next_hop = next_hop.ok_or("next hop length does not fit the family")?;
    let nlri = read_prefixes(r.rest(), afi).map_err(|_| "malformed NLRI")?;
    Ok(Some(MpReach {
        afi,
        safi,
        next_hop,
        link_local_next_hop,
        nlri,
    }))
}

fn decode_mp_unreach(value: &[u8], ctx: &Context) -> Result<Option<MpUnreach>, &'static str> {
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err("truncated");
    };
    let (afi, safi) = (Afi(afi), Safi(safi));
    if !ctx.decodes(afi, safi) {
        return Ok(None);
    }
    let withdrawn = read_prefixes(r.rest(), afi).map_err(|_| "malformed withdrawn routes")?;
    Ok(Some(MpUnreach {
        afi,
        safi,
        withdrawn,
    }))
}

// ---------------------------------------------------------------------------------------
// Encoding

/// Encodes a message for a session with the given context. Fails only when the message
/// would exceed 4096 bytes (callers split UPDATEs; [`encoded_len`] helps them) or a
/// field exceeds its length octets. A NOTIFICATION's data is cut to fit instead: the
/// NOTIFICATION must go out.
pub fn encode(msg: &Message, ctx: &Context) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, msg.type_code()]);
    match msg {
        Message::Open(open) => encode_open(open, &mut out)?,
        Message::Update(update) => encode_update(update, ctx, &mut out)?,
        Message::Notification(n) => {
            out.extend_from_slice(&[n.code, n.subcode]);
            let room = MAX_MESSAGE_LEN.saturating_sub(out.len());
            out.extend_from_slice(n.data.get(..room).unwrap_or(&n.data));
        }
        Message::Keepalive => {}
        Message::RouteRefresh { afi, safi } => {
            out.extend_from_slice(&afi.0.to_be_bytes());
            out.extend_from_slice(&[0, safi.0]);
        }
    }
    let len = out.len();
    let len16 = u16::try_from(len)
        .ok()
        .filter(|_| len <= MAX_MESSAGE_LEN)
        .ok_or(EncodeError::MessageTooLong { len })?;
    if let Some(field) = out.get_mut(16..18) {
        field.copy_from_slice(&len16.to_be_bytes());
    }
    Ok(out)
}

/// The encoded length of a message, also when it is too long to send.
pub fn encoded_len(msg: &Message, ctx: &Context) -> usize {
    match encode(msg, ctx) {
        Ok(bytes) => bytes.len(),
        Err(EncodeError::MessageTooLong { len }) => len,
        Err(_) => usize::MAX,
    }
}

fn encode_open(open: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let my_as = u16::try_from(open.asn).unwrap_or(AS_TRANS);
    out.push(open.version);
    out.extend_from_slice(&my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.router_id.octets());

    let mut caps = Vec::new();
    for cap in &open.capabilities {
        let (code, data) = match cap {
            Capability::Multiprotocol { afi, safi } => {
                let [a, b] = afi.0.to_be_bytes();
                (Capability::MULTIPROTOCOL, vec![a, b, 0, safi.0])
            }
            Capability::RouteRefresh => (Capability::ROUTE_REFRESH, vec![]),
            Capability::FourOctetAs(asn) => (Capability::FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::GracefulRestart(gr) => {
                // The restart time has 12 bits; a larger value is sent as the maximum.
                let flags_time = (u16::from(gr.restart_state) << 15) | gr.restart_time.min(0x0fff);
                let mut data = flags_time.to_be_bytes().to_vec();
                for f in &gr.families {
                    data.extend_from_slice(&f.afi.0.to_be_bytes());
                    data.push(f.safi.0);
                    data.push(if f.forwarding_preserved { 0x80 } else { 0 });
                }
                (Capability::GRACEFUL_RESTART, data)
            }
            Capability::Unknown { code, data } => (*code, data.clone()),
        };
        let len = u8::try_from(data.len()).map_err(|_| EncodeError::CapabilityTooLong {
            code,
            len: data.len(),
        })?;
        caps.extend_from_slice(&[code, len]);
        caps.extend_from_slice(&data);
    }
    if caps.is_empty() {
        out.push(0);
        return Ok(());
    }
    // One Capabilities parameter holding them all (RFC 5492 allows either form).
    let cap_len = u8::try_from(caps.len()).ok().filter(|l| *l <= 253).ok_or(
        EncodeError::ParametersTooLong {
            len: caps.len().saturating_add(2),
        },
    )?;
    out.extend_from_slice(&[cap_len + 2, PARAM_CAPABILITIES, cap_len]);
    out.extend_from_slice(&caps);
    Ok(())
}

fn write_prefix(out: &mut Vec<u8>, net: IpNet) {
    let bits = net.prefix_len();
    let bytes = usize::from(bits).div_ceil(8);
    out.push(bits);
    match net.trunc().addr() {
        IpAddr::V4(a) => out.extend_from_slice(a.octets().get(..bytes).unwrap_or_default()),
        IpAddr::V6(a) => out.extend_from_slice(a.octets().get(..bytes).unwrap_or_default()),
    }
}

fn write_attribute(
    out: &mut Vec<u8>,
    flags: u8,
    type_code: u8,
    value: &[u8],
) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len()).map_err(|_| EncodeError::AttributeTooLong {
        type_code,
        len: value.len(),
    })?;
    if let Ok(short) = u8::try_from(len) {
        out.extend_from_slice(&[flags & !AttrFlags::EXTENDED_LENGTH, type_code, short]);
    } else {
        out.extend_from_slice(&[flags | AttrFlags::EXTENDED_LENGTH, type_code]);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value);
    Ok(())
}

/// AS_PATH value with `width`-octet AS numbers; segments longer than 255 are split.
/// AS numbers that do not fit 2 octets become AS_TRANS (RFC 6793 §4.2.2).
fn as_path_value(path: &[AsSegment], four_octet: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for seg in path {
        for chunk in seg.asns.chunks(255) {
            v.push(seg.kind as u8);
            v.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            for &asn in chunk {
                if four_octet {
                    v.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let asn = u16::try_from(asn).unwrap_or(AS_TRANS);
                    v.extend_from_slice(&asn.to_be_bytes());
                }
            }
        }
    }
    v
}

fn encode_update(update: &Update, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut withdrawn = Vec::new();
    for net in &update.withdrawn {
        write_prefix(&mut withdrawn, IpNet::V4(*net));
    }
    let too_long = |len| EncodeError::MessageTooLong { len };
    let wlen = u16::try_from(withdrawn.len()).map_err(|_| too_long(withdrawn.len()))?;
    out.extend_from_slice(&wlen.to_be_bytes());
    out.extend_from_slice(&withdrawn);

    let a = &update.attributes;
    let mut attrs = Vec::new();
    const WELL_KNOWN: u8 = AttrFlags::TRANSITIVE;
    const OPTIONAL: u8 = AttrFlags::OPTIONAL;
    const OPTIONAL_TRANSITIVE: u8 = AttrFlags::OPTIONAL | AttrFlags::TRANSITIVE;
    // MP attributes first (RFC 7606 §5.1), the rest by type code.
    if let Some(m) = &a.mp_unreach {
        let mut v = m.afi.0.to_be_bytes().to_vec();
        v.push(m.safi.0);
        for net in &m.withdrawn {
            write_prefix(&mut v, *net);
        }
        write_attribute(&mut attrs, OPTIONAL, AttrType::MP_UNREACH_NLRI, &v)?;
    }
    if let Some(m) = &a.mp_reach {
        let mut nh = match m.next_hop {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        if let Some(ll) = m.link_local_next_hop {
            nh.extend_from_slice(&ll.octets());
        }
        let mut v = m.afi.0.to_be_bytes().to_vec();
        v.push(m.safi.0);
        v.push(u8::try_from(nh.len()).unwrap_or(u8::MAX));
        v.extend_from_slice(&nh);
        v.push(0);
        for net in &m.nlri {
            write_prefix(&mut v, *net);
        }
        write_attribute(&mut attrs, OPTIONAL, AttrType::MP_REACH_NLRI, &v)?;
    }
    if let Some(origin) = a.origin {
        write_attribute(&mut attrs, WELL_KNOWN, AttrType::ORIGIN, &[origin as u8])?;
    }
    let mut as4_path = None;
    if let Some(path) = &a.as_path {
        let v = as_path_value(path, ctx.four_octet_as);
        write_attribute(&mut attrs, WELL_KNOWN, AttrType::AS_PATH, &v)?;
        // A 2-octet peer learns the real path from AS4_PATH (RFC 6793 §4.2.2).
        if !ctx.four_octet_as && path.iter().flat_map(|s| &s.asns).any(|&asn| asn > 0xffff) {
            as4_path = Some(as_path_value(path, true));
        }
    }
    if let Some(nh) = a.next_hop {
        write_attribute(&mut attrs, WELL_KNOWN, AttrType::NEXT_HOP, &nh.octets())?;
    }
    if let Some(med) = a.med {
        write_attribute(
            &mut attrs,
            OPTIONAL,
            AttrType::MULTI_EXIT_DISC,
            &med.to_be_bytes(),
        )?;
    }
    if let Some(lp) = a.local_pref {
        write_attribute(
            &mut attrs,
            WELL_KNOWN,
            AttrType::LOCAL_PREF,
            &lp.to_be_bytes(),
        )?;
    }
    if a.atomic_aggregate {
        write_attribute(&mut attrs, WELL_KNOWN, AttrType::ATOMIC_AGGREGATE, &[])?;
    }
    if let Some((asn, id)) = a.aggregator {
        let mut v = if ctx.four_octet_as {
            asn.to_be_bytes().to_vec()
        } else {
            u16::try_from(asn)
                .unwrap_or(AS_TRANS)
                .to_be_bytes()
                .to_vec()
        };
        v.extend_from_slice(&id.octets());
        write_attribute(&mut attrs, OPTIONAL_TRANSITIVE, AttrType::AGGREGATOR, &v)?;
    }
    if !a.communities.is_empty() {
        let v: Vec<u8> = a
            .communities
            .iter()
            .flat_map(|c| c.0.to_be_bytes())
            .collect();
        write_attribute(&mut attrs, OPTIONAL_TRANSITIVE, AttrType::COMMUNITIES, &v)?;
    }
    if let Some(v) = as4_path {
        write_attribute(&mut attrs, OPTIONAL_TRANSITIVE, AttrType::AS4_PATH, &v)?;
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|c| [c.global_admin, c.local_data1, c.local_data2])
            .flat_map(u32::to_be_bytes)
            .collect();
        write_attribute(
            &mut attrs,
            OPTIONAL_TRANSITIVE,
            AttrType::LARGE_COMMUNITY,
            &v,
        )?;
    }
    for raw in &a.other {
        write_attribute(&mut attrs, raw.flags, raw.type_code, &raw.value)?;
    }
    let alen = u16::try_from(attrs.len()).map_err(|_| too_long(attrs.len()))?;
    out.extend_from_slice(&alen.to_be_bytes());
    out.extend_from_slice(&attrs);
    for net in &update.nlri {
        write_prefix(out, IpNet::V4(*net));
    }
    Ok(())
}

/// The body of the `bgp_message` fuzz target (and of the seeded randomized test), kept
/// here so the target needs no change when the codec does. It runs the whole receive
/// path on `data` as a TCP stream, once per kind of session, and must never panic; the
/// assertions check codec invariants, so a panic means a codec bug, not bad input:
/// - a message that decodes re-encodes to at most its size and decodes to itself;
/// - an error that resets the session gives a NOTIFICATION that encodes within 4096 bytes;
/// - decoding consumes what the header says, never more than it was given.
pub fn fuzz_message(data: &[u8]) {
    let contexts = [
        Context::default(),
        Context {
            four_octet_as: true,
            ipv4_unicast: true,
            ipv6_unicast: true,
        },
    ];
    for ctx in &contexts {
        let mut rest = data;
        // Each turn consumes at least a header, so this ends.
        loop {
            let len = match frame(rest) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    check_error(&e);
                    break;
                }
            };
            assert!((HEADER_LEN..=rest.len().min(MAX_MESSAGE_LEN)).contains(&len));
            let (msg_bytes, tail) = rest.split_at_checked(len).unwrap_or((rest, &[]));
            match decode(rest, ctx) {
                Ok(Some((msg, used))) => {
                    assert_eq!(used, len);
                    assert_eq!(decode_message(msg_bytes, ctx).as_ref(), Ok(&msg));
                    if let Ok(again) = encode(&msg, ctx) {
                        assert!(
                            again.len() <= len,
                            "re-encoding grew {len} -> {}",
                            again.len()
                        );
                        assert_eq!(decode_message(&again, ctx), Ok(msg));
                    }
                }
                Ok(None) => unreachable!("a framed message is complete"),
                Err(e) => {
                    check_error(&e);
                    if e.is_session_reset() {
                        break;
                    }
                }
            }
            rest = tail;
        }
    }
}

fn check_error(e: &DecodeError) {
    match e.notification() {
        Some(n) => {
            let bytes = encode(&Message::Notification(n.clone()), &Context::default());
            assert!(bytes.is_ok_and(|b| b.len() <= MAX_MESSAGE_LEN));
            assert!(e.is_session_reset());
        }
        None => assert!(!e.is_session_reset()),
    }
    let _ = e.to_string();
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::bgp::message::notify::{header, open, update};

    /// A whole message: header with the right length, then `body`.
    fn msg(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut m = MARKER.to_vec();
        m.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
        m.push(msg_type);
        m.extend_from_slice(body);
        m
    }

    /// An UPDATE body from withdrawn-routes bytes, attribute bytes and NLRI bytes.
    fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(withdrawn);
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    }

    const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
    const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 198, 51, 100, 1];
    /// 198.51.100.0/24
    const NLRI: [u8; 4] = [24, 198, 51, 100];

    fn ctx4() -> Context {
        Context {
            four_octet_as: true,
            ipv4_unicast: true,
            ipv6_unicast: true,
        }
    }

    fn decode_update_bytes(
        attrs: &[u8],
        nlri: &[u8],
        ctx: &Context,
    ) -> Result<Message, DecodeError> {
        decode_message(
            &msg(MessageType::UPDATE, &update_body(&[], attrs, nlri)),
            ctx,
        )
    }

    fn withdraw_reason(r: Result<Message, DecodeError>) -> DecodeError {
        match r {
            Err(DecodeError::TreatAsWithdraw(e)) => *e,
            other => panic!("expected treat-as-withdraw, got {other:?}"),
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    // --- Regression tests for zettabgp's receive-path defects -------------------------

    #[test]
    fn as_path_with_a_trailing_byte_is_malformed_not_a_loop() {
        // zettabgp loops forever (allocating) on a segment header cut after one byte.
        for (ctx, path) in [
            (Context::default(), vec![2u8, 1, 0xfd, 0xe8, 0x02]),
            (ctx4(), vec![2u8, 1, 0, 0, 0xfd, 0xe8, 0x02]),
        ] {
            let mut attrs = ORIGIN_IGP.to_vec();
            attrs.extend_from_slice(&[0x40, 2, path.len() as u8]);
            attrs.extend_from_slice(&path);
            attrs.extend_from_slice(&NEXT_HOP);
            let e = withdraw_reason(decode_update_bytes(&attrs, &NLRI, &ctx));
            assert_eq!(
                e,
                DecodeError::MalformedAsPath {
                    reason: "segment header truncated"
                }
            );
            assert_eq!(
                e.notification().unwrap(),
                Notification::new(3, update::MALFORMED_AS_PATH, vec![])
            );
        }
    }

    #[test]
    fn short_as_path_segments_are_malformed() {
        let cases: [(&[u8], &str); 4] = [
            // Three AS numbers announced, two present.
            (
                &[2, 3, 0xfd, 0xe8, 0xfd, 0xe9],
                "segment shorter than its AS count",
            ),
            // The count itself is missing.
            (&[2], "segment header truncated"),
            (&[2, 0], "empty segment"),
            (&[9, 1, 0xfd, 0xe8], "unknown segment type"),
        ];
        for (path, reason) in cases {
            let mut attrs = ORIGIN_IGP.to_vec();
            attrs.extend_from_slice(&[0x40, 2, path.len() as u8]);
            attrs.extend_from_slice(path);
            attrs.extend_from_slice(&NEXT_HOP);
            let e = withdraw_reason(decode_update_bytes(&attrs, &NLRI, &Context::default()));
            assert_eq!(e, DecodeError::MalformedAsPath { reason }, "{path:?}");
        }
        // A 2-octet path read on a 4-octet session is short too: 2 bytes for 1 AS.
        let mut attrs = ORIGIN_IGP.to_vec();
        attrs.extend_from_slice(&[0x40, 2, 4, 2, 1, 0xfd, 0xe8]);
        attrs.extend_from_slice(&NEXT_HOP);
        let e = withdraw_reason(decode_update_bytes(&attrs, &NLRI, &ctx4()));
        assert!(matches!(e, DecodeError::MalformedAsPath { .. }), "{e:?}");
    }

    #[test]
    fn header_length_below_19_is_a_bad_length_not_a_panic() {
        // zettabgp panics (subtraction underflow) on these.
        for length in 0u16..19 {
            for msg_type in 1..=5u8 {
                let mut m = MARKER.to_vec();
                m.extend_from_slice(&length.to_be_bytes());
                m.push(msg_type);
                let e = frame(&m).unwrap_err();
                assert_eq!(e, DecodeError::BadMessageLength { length });
                assert_eq!(
                    e.notification().unwrap(),
                    Notification::new(1, header::BAD_MESSAGE_LENGTH, length.to_be_bytes().to_vec())
                );
                assert_eq!(decode(&m, &ctx4()).unwrap_err(), e);
            }
        }
    }

    #[test]
    fn header_errors_map_to_their_notifications() {
        let mut bad_marker = msg(MessageType::KEEPALIVE, &[]);
        bad_marker[3] = 0;
        assert_eq!(
            frame(&bad_marker).unwrap_err().notification().unwrap(),
            Notification::new(1, header::CONNECTION_NOT_SYNCHRONIZED, vec![])
        );
        let bad_type = msg(9, &[]);
        assert_eq!(
            frame(&bad_type).unwrap_err().notification().unwrap(),
            Notification::new(1, header::BAD_MESSAGE_TYPE, vec![9])
        );
        let mut too_long = msg(MessageType::UPDATE, &[0, 0, 0, 0]);
        too_long[16..18].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(
            frame(&too_long).unwrap_err(),
            DecodeError::BadMessageLength { length: 4097 }
        );
        // A KEEPALIVE with a body, OPEN and UPDATE below their minimum sizes.
        for m in [
            msg(MessageType::KEEPALIVE, &[0]),
            msg(MessageType::OPEN, &[4; 9]),
            msg(MessageType::UPDATE, &[0; 3]),
            msg(MessageType::NOTIFICATION, &[6]),
        ] {
            assert!(
                matches!(frame(&m), Err(DecodeError::BadMessageLength { .. })),
                "{m:?}"
            );
        }
    }

    #[test]
    fn truncated_attribute_headers_reset_the_session() {
        for attrs in [
            vec![0x40],
            vec![0x40, 1],
            // Extended length needs two length octets.
            vec![0x50, 1, 0],
            // A complete ORIGIN, then a cut header.
            vec![0x40, 1, 1, 0, 0x40],
            // Length runs past the attributes.
            vec![0x40, 1, 5, 0],
        ] {
            let e = decode_update_bytes(&attrs, &NLRI, &ctx4()).unwrap_err();
            assert!(
                matches!(e, DecodeError::MalformedAttributeList { .. }),
                "{attrs:?}: {e:?}"
            );
            assert!(e.is_session_reset());
            assert_eq!(
                e.notification().unwrap().subcode,
                update::MALFORMED_ATTRIBUTE_LIST
            );
        }
        // Withdrawn and attribute lengths that overrun the message.
        let m = msg(MessageType::UPDATE, &[0, 9, 0, 0]);
        assert!(matches!(
            decode_message(&m, &ctx4()),
            Err(DecodeError::MalformedAttributeList { .. })
        ));
        let m = msg(MessageType::UPDATE, &[0, 0, 0, 9]);
        assert!(matches!(
            decode_message(&m, &ctx4()),
            Err(DecodeError::MalformedAttributeList { .. })
        ));
    }

    #[test]
    fn truncated_mp_reach_resets_the_session_with_the_attribute() {
        let cases: [&[u8]; 5] = [
            // AFI only.
            &[0, 2],
            // Next hop announced as 16 bytes, 8 present.
            &[0, 2, 1, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0],
            // Next hop complete, reserved octet missing.
            &[
                0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ],
            // A /64 announced with only 4 address bytes.
            &[
                0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 64, 0x20,
                1, 0xd, 0xb8,
            ],
            // A next hop of a length no family has.
            &[0, 2, 1, 5, 1, 2, 3, 4, 5, 0],
        ];
        for value in cases {
            let mut attrs = vec![0x80, 14, value.len() as u8];
            attrs.extend_from_slice(value);
            let raw = attrs.clone();
            attrs.extend_from_slice(&ORIGIN_IGP);
            attrs.extend_from_slice(&[0x40, 2, 0]);
            let e = decode_update_bytes(&attrs, &[], &ctx4()).unwrap_err();
            assert!(e.is_session_reset(), "{value:?}: {e:?}");
            assert_eq!(
                e.notification().unwrap(),
                Notification::new(3, update::OPTIONAL_ATTRIBUTE_ERROR, raw),
                "{value:?}"
            );
        }
        // Truncated MP_UNREACH too.
        let e = decode_update_bytes(&[0x80, 15, 2, 0, 2], &[], &ctx4()).unwrap_err();
        assert!(matches!(
            e,
            DecodeError::OptionalAttribute { type_code: 15, .. }
        ));
    }

    #[test]
    fn ipv4_next_hop_and_nlri_are_ipv4_on_an_ipv6_session() {
        // zettabgp reads the body NLRI and NEXT_HOP with the transport's family.
        let ipv6_only = Context {
            four_octet_as: true,
            ipv4_unicast: false,
            ipv6_unicast: true,
        };
        let mut attrs = ORIGIN_IGP.to_vec();
        attrs.extend_from_slice(&[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8]);
        attrs.extend_from_slice(&NEXT_HOP);
        let Message::Update(u) =
            decode_update_bytes(&attrs, &[24, 198, 51, 100, 32, 203, 0, 113, 7], &ipv6_only)
                .unwrap()
        else {
            panic!("not an UPDATE");
        };
        assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(
            u.nlri,
            vec![
                "198.51.100.0/24".parse().unwrap(),
                "203.0.113.7/32".parse().unwrap()
            ]
        );
        assert_eq!(
            u.attributes.as_path,
            Some(vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: vec![65000]
            }])
        );
    }

    #[test]
    fn notifications_with_short_data_decode_exactly() {
        for data in [vec![], vec![0xfd], vec![0xfd, 0xe8], vec![0, 0, 0xfd, 0xe8]] {
            let m = msg(
                MessageType::NOTIFICATION,
                &[[2u8, 2].as_slice(), &data].concat(),
            );
            assert_eq!(
                decode_message(&m, &Context::default()).unwrap(),
                Message::Notification(Notification::new(2, open::BAD_PEER_AS, data))
            );
        }
    }

    // --- Other receive-path rules ------------------------------------------------------

    fn open_body(version: u8, my_as: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
        let mut b = vec![version];
        b.extend_from_slice(&my_as.to_be_bytes());
        b.extend_from_slice(&hold.to_be_bytes());
        b.extend_from_slice(&id);
        b.push(params.len() as u8);
        b.extend_from_slice(params);
        b
    }

    #[test]
    fn open_errors_map_to_their_notifications() {
        let id = [192, 0, 2, 1];
        let cases: [(Vec<u8>, Notification); 7] = [
            (
                open_body(3, 65000, 90, id, &[]),
                Notification::new(2, open::UNSUPPORTED_VERSION_NUMBER, vec![0, 4]),
            ),
            (
                open_body(4, 0, 90, id, &[]),
                Notification::new(2, open::BAD_PEER_AS, vec![]),
            ),
            (
                open_body(4, 65000, 2, id, &[]),
                Notification::new(2, open::UNACCEPTABLE_HOLD_TIME, vec![]),
            ),
            (
                open_body(4, 65000, 90, [0; 4], &[]),
                Notification::new(2, open::BAD_BGP_IDENTIFIER, vec![]),
            ),
            // Authentication parameter (type 1, deprecated).
            (
                open_body(4, 65000, 90, id, &[1, 1, 0]),
                Notification::new(2, open::UNSUPPORTED_OPTIONAL_PARAMETER, vec![]),
            ),
            // A capability longer than its parameter.
            (
                open_body(4, 65000, 90, id, &[2, 2, 65, 4]),
                Notification::new(2, 0, vec![]),
            ),
            // 4-octet AS capability of 4 octets claiming AS 0.
            (
                open_body(4, 23456, 90, id, &[2, 6, 65, 4, 0, 0, 0, 0]),
                Notification::new(2, open::BAD_PEER_AS, vec![]),
            ),
        ];
        for (body, expected) in cases {
            let e =
                decode_message(&msg(MessageType::OPEN, &body), &Context::default()).unwrap_err();
            assert_eq!(e.notification().unwrap(), expected, "{e}");
        }
        // Parameters length shorter than what follows.
        let mut body = open_body(4, 65000, 90, id, &[2, 2, 2, 0]);
        body[9] = 2;
        assert!(matches!(
            decode_message(&msg(MessageType::OPEN, &body), &Context::default()),
            Err(DecodeError::MalformedOpen { .. })
        ));
    }

    #[test]
    fn open_reads_rfc9072_extended_parameters_and_split_capabilities() {
        // Two Capabilities parameters (FRR sends one per capability).
        let params = [2, 6, 1, 4, 0, 2, 0, 1, 2, 6, 65, 4, 0xfa, 0x56, 0xea, 0];
        let m = msg(
            MessageType::OPEN,
            &open_body(4, AS_TRANS, 90, [192, 0, 2, 1], &params),
        );
        let Message::Open(o) = decode_message(&m, &Context::default()).unwrap() else {
            panic!()
        };
        assert_eq!(o.asn, 4_200_000_000);
        assert_eq!(o.families(), vec![(Afi::IPV6, Safi::UNICAST)]);

        let mut ext = vec![4, 0xfd, 0xe8, 0, 90, 192, 0, 2, 1, 255, 255, 0, 7];
        ext.extend_from_slice(&[2, 0, 4, 2, 0, 70, 0]);
        let Message::Open(o) =
            decode_message(&msg(MessageType::OPEN, &ext), &Context::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(o.asn, 65000);
        assert_eq!(
            o.capabilities,
            vec![
                Capability::RouteRefresh,
                Capability::Unknown {
                    code: 70,
                    data: vec![]
                }
            ]
        );
    }

    #[test]
    fn attribute_errors_follow_rfc7606() {
        let ctx = Context::default();
        let path = [0x40, 2, 4, 2, 1, 0xfd, 0xe8];
        let with = |extra: &[u8]| {
            let mut a = ORIGIN_IGP.to_vec();
            a.extend_from_slice(&path);
            a.extend_from_slice(&NEXT_HOP);
            a.extend_from_slice(extra);
            a
        };
        // Treat-as-withdraw, with the NOTIFICATION RFC 4271 alone would have sent.
        let cases: [(Vec<u8>, u8); 7] = [
            (
                vec![0x40, 1, 1, 3, 0x40, 2, 0, 0x40, 3, 4, 198, 51, 100, 1],
                update::INVALID_ORIGIN_ATTRIBUTE,
            ),
            (
                vec![0x40, 1, 2, 0, 0, 0x40, 2, 0, 0x40, 3, 4, 198, 51, 100, 1],
                update::ATTRIBUTE_LENGTH_ERROR,
            ),
            (
                vec![0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 224, 0, 0, 5],
                update::INVALID_NEXT_HOP_ATTRIBUTE,
            ),
            (with(&[0x80, 4, 3, 0, 0, 1]), update::ATTRIBUTE_LENGTH_ERROR),
            (
                with(&[0xc0, 8, 6, 0, 0, 0, 1, 0, 0]),
                update::ATTRIBUTE_LENGTH_ERROR,
            ),
            // ORIGIN flagged optional.
            (
                vec![0xc0, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 198, 51, 100, 1],
                update::ATTRIBUTE_FLAGS_ERROR,
            ),
            // No NEXT_HOP although there is IPv4 NLRI.
            (
                vec![0x40, 1, 1, 0, 0x40, 2, 0],
                update::MISSING_WELL_KNOWN_ATTRIBUTE,
            ),
        ];
        for (attrs, subcode) in cases {
            let e = decode_update_bytes(&attrs, &NLRI, &ctx).unwrap_err();
            assert!(!e.is_session_reset(), "{attrs:?}");
            assert!(e.notification().is_none());
            let DecodeError::TreatAsWithdraw(inner) = e else {
                panic!()
            };
            assert_eq!(
                inner.notification().unwrap().subcode,
                subcode,
                "{attrs:?}: {inner}"
            );
        }
        // An unrecognized well-known attribute resets, with the attribute as data.
        let e = decode_update_bytes(&with(&[0x40, 99, 1, 7]), &NLRI, &ctx).unwrap_err();
        assert_eq!(
            e.notification().unwrap(),
            Notification::new(
                3,
                update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                vec![0x40, 99, 1, 7]
            )
        );
        // Unknown optional attributes are kept; a malformed AGGREGATOR is discarded.
        let Message::Update(u) =
            decode_update_bytes(&with(&[0xc0, 99, 1, 7, 0xc0, 7, 1, 0]), &NLRI, &ctx).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            u.attributes.other,
            vec![RawAttribute {
                flags: 0xc0,
                type_code: 99,
                value: vec![7]
            }]
        );
        assert_eq!(u.attributes.aggregator, None);
        // Duplicates: the first one counts; a duplicate MP attribute resets.
        let Message::Update(u) = decode_update_bytes(&with(&[0x40, 1, 1, 2]), &NLRI, &ctx).unwrap()
        else {
            panic!()
        };
        assert_eq!(u.attributes.origin, Some(Origin::Igp));
        let dup = [0x80, 15, 3, 0, 2, 1, 0x80, 15, 3, 0, 2, 1];
        assert!(matches!(
            decode_update_bytes(&dup, &[], &ctx4()),
            Err(DecodeError::MalformedAttributeList { .. })
        ));
        // Invalid prefixes reset.
        for nlri in [&[33u8, 1, 2, 3, 4, 5][..], &[24, 198, 51]] {
            let e = decode_update_bytes(&with(&[]), nlri, &ctx).unwrap_err();
            assert!(
                matches!(e, DecodeError::InvalidNetworkField { .. }),
                "{e:?}"
            );
            assert_eq!(
                e.notification().unwrap().subcode,
                update::INVALID_NETWORK_FIELD
            );
        }
    }

    #[test]
    fn route_refresh_length_errors() {
        let rr = msg(MessageType::ROUTE_REFRESH, &[0, 2, 0, 1]);
        assert_eq!(
            decode_message(&rr, &Context::default()).unwrap(),
            Message::RouteRefresh {
                afi: Afi::IPV6,
                safi: Safi::UNICAST
            }
        );
        let borr_long = msg(MessageType::ROUTE_REFRESH, &[0, 2, 1, 1, 0]);
        assert_eq!(
            decode_message(&borr_long, &Context::default())
                .unwrap_err()
                .notification()
                .unwrap(),
            Notification::new(7, 1, borr_long.clone())
        );
        let short = msg(MessageType::ROUTE_REFRESH, &[0, 2]);
        assert_eq!(
            decode_message(&short, &Context::default()).unwrap_err(),
            DecodeError::BadMessageLength { length: 21 }
        );
    }

    #[test]
    fn framing_waits_for_the_whole_message_and_splits_a_stream() {
        let ka = encode(&Message::Keepalive, &Context::default()).unwrap();
        let rr = encode(
            &Message::RouteRefresh {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            },
            &Context::default(),
        )
        .unwrap();
        let stream = [ka.clone(), rr.clone()].concat();
        for cut in 0..ka.len() {
            assert_eq!(decode(&stream[..cut], &Context::default()), Ok(None));
        }
        let (m, used) = decode(&stream, &Context::default()).unwrap().unwrap();
        assert_eq!((m, used), (Message::Keepalive, 19));
        assert_eq!(
            decode(&stream[used..used + 22], &Context::default()),
            Ok(None)
        );
        let (m, used2) = decode(&stream[used..], &Context::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Message::RouteRefresh {
                afi: Afi::IPV4,
                safi: Safi::UNICAST
            }
        );
        assert_eq!(used + used2, stream.len());
    }

    // --- Round trips and known encodings ------------------------------------------------

    fn full_open() -> Open {
        Open {
            version: 4,
            asn: 4_200_000_001,
            hold_time: 90,
            router_id: Ipv4Addr::new(192, 0, 2, 10),
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                },
                Capability::Multiprotocol {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_001),
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: true,
                    restart_time: 120,
                    families: vec![
                        GracefulRestartFamily {
                            afi: Afi::IPV4,
                            safi: Safi::UNICAST,
                            forwarding_preserved: false,
                        },
                        GracefulRestartFamily {
                            afi: Afi::IPV6,
                            safi: Safi::UNICAST,
                            forwarding_preserved: true,
                        },
                    ],
                }),
                Capability::Unknown {
                    code: 70,
                    data: vec![],
                },
            ],
        }
    }

    fn full_update_v4() -> Update {
        Update {
            withdrawn: vec![
                "203.0.113.0/25".parse().unwrap(),
                "0.0.0.0/0".parse().unwrap(),
            ],
            attributes: Attributes {
                origin: Some(Origin::Incomplete),
                as_path: Some(vec![
                    AsSegment {
                        kind: AsSegmentKind::Sequence,
                        asns: vec![64512, 4_200_000_000],
                    },
                    AsSegment {
                        kind: AsSegmentKind::Set,
                        asns: vec![65001, 65002],
                    },
                ]),
                next_hop: Some(Ipv4Addr::new(198, 51, 100, 1)),
                med: Some(10),
                local_pref: Some(200),
                atomic_aggregate: true,
                aggregator: Some((64512, Ipv4Addr::new(192, 0, 2, 1))),
                communities: vec![Community::new(64512, 100), Community::NO_EXPORT],
                large_communities: vec![LargeCommunity {
                    global_admin: 4_200_000_000,
                    local_data1: 1,
                    local_data2: 2,
                }],
                other: vec![RawAttribute {
                    flags: 0xc0,
                    type_code: 99,
                    value: vec![1; 300],
                }],
                ..Attributes::default()
            },
            nlri: vec![
                "198.51.100.0/24".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
            ],
        }
    }

    fn update_v6() -> Update {
        Update {
            attributes: Attributes {
                origin: Some(Origin::Igp),
                as_path: Some(vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![64512],
                }]),
                mp_reach: Some(MpReach {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    next_hop: "2001:db8::1".parse().unwrap(),
                    link_local_next_hop: Some("fe80::1".parse().unwrap()),
                    nlri: vec![net("2001:db8:1::/48"), net("2001:db8::5/128"), net("::/0")],
                }),
                mp_unreach: Some(MpUnreach {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    withdrawn: vec![net("2001:db8:2::/64")],
                }),
                ..Attributes::default()
            },
            ..Update::default()
        }
    }

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Message::Open(full_open()),
            Message::Open(Open {
                asn: 65000,
                capabilities: vec![],
                ..full_open()
            }),
            Message::Update(full_update_v4()),
            Message::Update(update_v6()),
            Message::Update(Update::end_of_rib(Afi::IPV4, Safi::UNICAST)),
            Message::Update(Update::end_of_rib(Afi::IPV6, Safi::UNICAST)),
            Message::Notification(Notification::cease(notify::cease::ADMINISTRATIVE_SHUTDOWN)),
            Message::Notification(Notification::new(3, 1, vec![1, 2, 3])),
            Message::Keepalive,
            Message::RouteRefresh {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            },
        ];
        for m in messages {
            let bytes = encode(&m, &ctx4()).unwrap();
            assert_eq!(bytes.len(), encoded_len(&m, &ctx4()));
            assert_eq!(decode_message(&bytes, &ctx4()).as_ref(), Ok(&m), "{m:?}");
        }
    }

    #[test]
    fn a_2_octet_session_gets_as_trans_and_as4_path() {
        let ctx = Context::default();
        let u = full_update_v4();
        let bytes = encode(&Message::Update(u.clone()), &ctx).unwrap();
        let Message::Update(back) = decode_message(&bytes, &ctx).unwrap() else {
            panic!()
        };
        assert_eq!(
            back.attributes.as_path,
            Some(vec![
                AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![64512, u32::from(AS_TRANS)]
                },
                AsSegment {
                    kind: AsSegmentKind::Set,
                    asns: vec![65001, 65002]
                },
            ])
        );
        let as4 = back
            .attributes
            .other
            .iter()
            .find(|a| a.type_code == AttrType::AS4_PATH)
            .unwrap();
        assert_eq!(
            as4.value,
            [
                &[2u8, 2][..],
                &64512u32.to_be_bytes(),
                &4_200_000_000u32.to_be_bytes(),
                &[1, 2],
                &65001u32.to_be_bytes(),
                &65002u32.to_be_bytes()
            ]
            .concat()
        );
        // OPEN: AS_TRANS in My AS, the real one in the capability.
        let bytes = encode(&Message::Open(full_open()), &ctx).unwrap();
        assert_eq!(&bytes[20..22], &AS_TRANS.to_be_bytes());
        assert_eq!(
            decode_message(&bytes, &ctx).unwrap(),
            Message::Open(full_open())
        );
    }

    #[test]
    fn oversized_messages_are_refused_and_long_segments_split() {
        let big = Update {
            nlri: (0..1100u32)
                .map(|i| Ipv4Net::new(Ipv4Addr::from(0xc000_0000 + (i << 8)), 24).unwrap())
                .collect(),
            ..full_update_v4()
        };
        let e = encode(&Message::Update(big.clone()), &ctx4()).unwrap_err();
        assert!(matches!(e, EncodeError::MessageTooLong { len } if len > 4096));
        assert_eq!(
            encoded_len(&Message::Update(big), &ctx4()),
            match e {
                EncodeError::MessageTooLong { len } => len,
                _ => 0,
            }
        );

        let long_path = Update {
            attributes: Attributes {
                as_path: Some(vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: (1..=300).collect(),
                }]),
                ..Attributes::default()
            },
            ..Update::default()
        };
        let bytes = encode(&Message::Update(long_path), &ctx4()).unwrap();
        let Message::Update(u) = decode_message(&bytes, &ctx4()).unwrap() else {
            panic!()
        };
        let segs = u.attributes.as_path.unwrap();
        assert_eq!(
            segs.iter().map(|s| s.asns.len()).collect::<Vec<_>>(),
            vec![255, 45]
        );

        // A NOTIFICATION is cut to fit rather than refused.
        let n = Message::Notification(Notification::new(7, 1, vec![0xff; 5000]));
        assert_eq!(encode(&n, &ctx4()).unwrap().len(), MAX_MESSAGE_LEN);
    }

    #[test]
    fn unnegotiated_families_are_kept_raw() {
        let bytes = encode(&Message::Update(update_v6()), &ctx4()).unwrap();
        let v4_only = Context {
            ipv6_unicast: false,
            ..ctx4()
        };
        let Message::Update(u) = decode_message(&bytes, &v4_only).unwrap() else {
            panic!()
        };
        assert_eq!(u.attributes.mp_reach, None);
        assert_eq!(u.attributes.mp_unreach, None);
        assert_eq!(
            u.attributes
                .other
                .iter()
                .map(|a| a.type_code)
                .collect::<Vec<_>>(),
            vec![AttrType::MP_UNREACH_NLRI, AttrType::MP_REACH_NLRI]
        );
    }

    #[test]
    fn negotiated_context() {
        let ours = full_open();
        let plain = Open {
            capabilities: vec![],
            ..full_open()
        };
        assert_eq!(Context::negotiated(&ours, &ours), ctx4());
        assert_eq!(Context::negotiated(&ours, &plain), Context::default());
    }

    #[test]
    fn keepalive_and_end_of_rib_match_their_rfc_encodings() {
        // RFC 4271 §4.4: a KEEPALIVE is the bare 19-byte header.
        let mut ka = vec![0xff; 16];
        ka.extend_from_slice(&[0x00, 0x13, 0x04]);
        assert_eq!(
            encode(&Message::Keepalive, &Context::default()).unwrap(),
            ka
        );
        // RFC 4724 §2: IPv4 End-of-RIB is an UPDATE with nothing in it (23 bytes).
        let mut eor = vec![0xff; 16];
        eor.extend_from_slice(&[0x00, 0x17, 0x02, 0, 0, 0, 0]);
        assert_eq!(
            encode(
                &Message::Update(Update::end_of_rib(Afi::IPV4, Safi::UNICAST)),
                &ctx4()
            )
            .unwrap(),
            eor
        );
        // ... and for IPv6 only an MP_UNREACH_NLRI with AFI 2 / SAFI 1 and no routes.
        let mut eor6 = vec![0xff; 16];
        eor6.extend_from_slice(&[0x00, 0x1d, 0x02, 0, 0, 0, 6, 0x80, 0x0f, 3, 0, 2, 1]);
        assert_eq!(
            encode(
                &Message::Update(Update::end_of_rib(Afi::IPV6, Safi::UNICAST)),
                &ctx4()
            )
            .unwrap(),
            eor6
        );
        assert_eq!(
            decode_message(&eor6, &ctx4()).map(|m| match m {
                Message::Update(u) => u.end_of_rib_family(),
                _ => None,
            }),
            Ok(Some((Afi::IPV6, Safi::UNICAST)))
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// What GoBGP 3 (Debian 12's gobgpd) sent on a session to a peer in AS 64513 that
    /// offered IPv4 + IPv6 unicast and 4-octet AS, after `gobgp global rib add -a ipv4
    /// 198.51.100.0/24 community 64512:100 med 10` and `gobgp global rib add -a ipv6
    /// 2001:db8:1::/48 nexthop 2001:db8::1`, then a shutdown; read off the TCP stream.
    const GOBGP_STREAM: &str = concat!(
        "ffffffffffffffffffffffffffffffff00410104fc00005ac00002012402220200490402766d00",
        "01040001000101040002000141040000fc000506000100010002",
        "ffffffffffffffffffffffffffffffff001304",
        "ffffffffffffffffffffffffffffffff003d02000000224001010240020602010000fc004003047f",
        "0000018004040000000ac00804fc00006418c63364",
        "ffffffffffffffffffffffffffffffff0043020000002c4001010240020602010000fc00800e1c00",
        "02011020010db8000000000000000000000001003020010db80001",
        "ffffffffffffffffffffffffffffffff0015030603",
    );

    #[test]
    fn a_gobgp_capture_decodes_and_reencodes_byte_exact() {
        let stream = hex(GOBGP_STREAM);
        let mut rest = stream.as_slice();
        let mut messages = vec![];
        while let Some((m, used)) = decode(rest, &ctx4()).unwrap() {
            messages.push((m, rest[..used].to_vec()));
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        let as_path = Some(vec![AsSegment {
            kind: AsSegmentKind::Sequence,
            asns: vec![64512],
        }]);
        let expected = [
            Message::Open(Open {
                version: 4,
                asn: 64512,
                hold_time: 90,
                router_id: Ipv4Addr::new(192, 0, 2, 1),
                capabilities: vec![
                    Capability::RouteRefresh,
                    // FQDN (hostname "vm") and extended next hop: not modelled.
                    Capability::Unknown {
                        code: 73,
                        data: vec![2, b'v', b'm', 0],
                    },
                    Capability::Multiprotocol {
                        afi: Afi::IPV4,
                        safi: Safi::UNICAST,
                    },
                    Capability::Multiprotocol {
                        afi: Afi::IPV6,
                        safi: Safi::UNICAST,
                    },
                    Capability::FourOctetAs(64512),
                    Capability::Unknown {
                        code: 5,
                        data: vec![0, 1, 0, 1, 0, 2],
                    },
                ],
            }),
            Message::Keepalive,
            Message::Update(Update {
                attributes: Attributes {
                    origin: Some(Origin::Incomplete),
                    as_path: as_path.clone(),
                    next_hop: Some(Ipv4Addr::new(127, 0, 0, 1)),
                    med: Some(10),
                    communities: vec![Community::new(64512, 100)],
                    ..Attributes::default()
                },
                nlri: vec!["198.51.100.0/24".parse().unwrap()],
                ..Update::default()
            }),
            Message::Update(Update {
                attributes: Attributes {
                    origin: Some(Origin::Incomplete),
                    as_path,
                    mp_reach: Some(MpReach {
                        afi: Afi::IPV6,
                        safi: Safi::UNICAST,
                        next_hop: "2001:db8::1".parse().unwrap(),
                        link_local_next_hop: None,
                        nlri: vec![net("2001:db8:1::/48")],
                    }),
                    ..Attributes::default()
                },
                ..Update::default()
            }),
            Message::Notification(Notification::cease(notify::cease::PEER_DECONFIGURED)),
        ];
        assert_eq!(
            messages.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
            expected
        );
        // Our encoder writes the same bytes, except that it puts MP_REACH_NLRI first
        // (RFC 7606 §5.1) where GoBGP puts it last.
        for (i, (m, bytes)) in messages.iter().enumerate() {
            let ours = encode(m, &ctx4()).unwrap();
            if i == 3 {
                assert_eq!(ours.len(), bytes.len());
                assert_eq!(&ours[23..23 + 31], &bytes[23 + 13..]);
            } else {
                assert_eq!(&ours, bytes, "message {i}");
            }
        }
    }
}
