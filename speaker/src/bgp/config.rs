//! BGP configuration as plain data: a `BGPPeer` resolved into the session settings a node
//! uses ([`Peer`], [`SessionConfig`]), and BGP community values with their `Community`
//! aliases ([`CommunityValue`], [`aliases_from_crd`]).
//!
//! Everything a user can get wrong becomes a [`Problem`] on the object, never a panic:
//! the CRD schema rejects most mistakes, but standalone files bypass it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use ferrolb_crds::bgp::DynamicAsn;
use ferrolb_crds::selector::Selectors;
use ferrolb_crds::validate::Problem;
use ferrolb_crds::{BFDProfile, BGPPeer, Community as CommunityCrd};
use k8s_openapi::api::core::v1::Secret;
use thiserror::Error;

use super::message::{Afi, Community, LargeCommunity, Safi};

/// Hold time proposed when `holdTime` is not set (MetalLB's native default).
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// Upper bound of the reconnect back-off when `connectTime` is not set (MetalLB's native
/// speaker backs off 1, 2, 4 … up to 120 s; FRR's connect timer is 120 s).
pub const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(120);
/// Longest TCP MD5 key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_MD5_KEY_LEN: usize = 80;

/// The peer's AS: fixed, or whatever the peer says as long as it is (`Internal`) or is
/// not (`External`) our own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAsn {
    Fixed(u32),
    Dynamic(DynamicAsn),
}

/// A Secret holding a TCP MD5 key (`passwordSecret`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub namespace: Option<String>,
    pub name: String,
}

/// Everything one BGP session needs, independent of which nodes open it. Two peers with
/// equal `SessionConfig`s need the same session, so a driver may keep a session open
/// across a configuration change that leaves this equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub my_asn: u32,
    pub peer_asn: PeerAsn,
    pub address: IpAddr,
    pub port: u16,
    /// Local address to connect from; `None`: the kernel's choice.
    pub source_address: Option<IpAddr>,
    /// `None`: the node's IPv4 address on the session.
    pub router_id: Option<Ipv4Addr>,
    /// Proposed hold time, whole seconds; zero disables keepalives.
    pub hold_time: Duration,
    /// Whole seconds, at most `hold_time`; zero when `hold_time` is zero.
    pub keepalive_time: Duration,
    /// Upper bound of the reconnect back-off, whole seconds.
    pub connect_time: Duration,
    /// Allow an eBGP peer more than one hop away (TTL 255 instead of 1).
    pub ebgp_multihop: bool,
    /// The TCP MD5 key: `password` as written, or the value of `password_secret` once the
    /// source has read the Secret. `None` with `password_secret` set means the Secret
    /// could not be read; the session must not start without its key.
    pub password: Option<String>,
    pub password_secret: Option<SecretRef>,
    pub graceful_restart: bool,
    /// Never connect; accept the peer's connection only.
    pub passive: bool,
    /// Open IPv4 and IPv6 unicast whatever the session's family.
    pub dual_stack: bool,
    /// BFD with the peer, as the `BFDProfile` the BGPPeer names says (filled in by
    /// [`resolve_bfd_profiles`]); `None`: no BFD, the hold timer alone detects failures.
    pub bfd: Option<crate::bfd::Profile>,
}

impl SessionConfig {
    /// iBGP: the peer is in our AS (a dynamic `internal` peer is, by definition).
    pub fn is_ibgp(&self) -> bool {
        match self.peer_asn {
            PeerAsn::Fixed(asn) => asn == self.my_asn,
            PeerAsn::Dynamic(d) => d == DynamicAsn::Internal,
        }
    }

    /// Whether prefixes of this family are exchanged on the session: the session's own
    /// family, or both with `dualStackAddressFamily` (as MetalLB's FRR modes).
    pub fn carries(&self, ip: &IpAddr) -> bool {
        self.dual_stack || ip.is_ipv4() == self.address.is_ipv4()
    }

    /// The address families exchanged on the session, IPv4 first.
    pub fn families(&self) -> Vec<(Afi, Safi)> {
        let mut out = Vec::with_capacity(2);
        if self.dual_stack || self.address.is_ipv4() {
            out.push((Afi::IPV4, Safi::UNICAST));
        }
        if self.dual_stack || self.address.is_ipv6() {
            out.push((Afi::IPV6, Safi::UNICAST));
        }
        out
    }

    /// The key is missing: `passwordSecret` is set and its value was not found.
    pub fn missing_password(&self) -> bool {
        self.password_secret.is_some() && self.password.is_none()
    }
}

/// A `BGPPeer`, resolved.
#[derive(Clone, Debug)]
pub struct Peer {
    pub name: String,
    /// Nodes that open this session; empty: every node.
    pub node_selectors: Selectors,
    pub session: SessionConfig,
    /// The `bfdProfile` named, resolved into `session.bfd` when it exists.
    pub bfd_profile: Option<String>,
}

impl Peer {
    /// Resolves a `BGPPeer`. `Err` when the peer cannot be used at all. The BFD profile
    /// is looked up later ([`resolve_bfd_profiles`]).
    pub fn from_crd(peer: &BGPPeer) -> Result<Peer, Problem> {
        let name = peer.metadata.name.clone().unwrap_or_default();
        let s = &peer.spec;
        let problem = |reason: &'static str, message: String| Problem {
            kind: "BGPPeer",
            name: name.clone(),
            reason,
            message,
        };
        if s.my_asn == 0 {
            return Err(problem("InvalidASN", "myASN must not be 0".into()));
        }
        let peer_asn = match (s.peer_asn, s.dynamic_asn) {
            (Some(0), _) => return Err(problem("InvalidASN", "peerASN must not be 0".into())),
            (Some(asn), None) => PeerAsn::Fixed(asn),
            (None, Some(d)) => PeerAsn::Dynamic(d),
            _ => {
                return Err(problem(
                    "InvalidASN",
                    "exactly one of peerASN and dynamicASN must be set".into(),
                ));
            }
        };
        let address: IpAddr = s.peer_address.parse().map_err(|_| {
            problem(
                "InvalidAddress",
                format!("peerAddress {:?} is not an IP address", s.peer_address),
            )
        })?;
        if s.peer_port == 0 {
            return Err(problem("InvalidPort", "peerPort must not be 0".into()));
        }
        let source_address = s
            .source_address
            .as_deref()
            .map(|a| {
                a.parse::<IpAddr>().map_err(|_| {
                    problem(
                        "InvalidAddress",
                        format!("sourceAddress {a:?} is not an IP address"),
                    )
                })
            })
            .transpose()?;
        if source_address.is_some_and(|src| src.is_ipv4() != address.is_ipv4()) {
            return Err(problem(
                "InvalidAddress",
                "sourceAddress and peerAddress are of different families".into(),
            ));
        }
        let router_id = s
            .router_id
            .as_deref()
            .map(|a| {
                a.parse::<Ipv4Addr>().map_err(|_| {
                    problem(
                        "InvalidRouterID",
                        format!("routerID {a:?} is not an IPv4 address"),
                    )
                })
            })
            .transpose()?;
        let seconds = |field: &str, value: &Option<String>| -> Result<Option<Duration>, Problem> {
            value
                .as_deref()
                .map(|v| {
                    parse_duration_secs(v)
                        .map_err(|e| problem("InvalidTimer", format!("{field} {v:?}: {e}")))
                })
                .transpose()
        };
        let (hold_time, keepalive_time) = timers(
            seconds("holdTime", &s.hold_time)?,
            seconds("keepaliveTime", &s.keepalive_time)?,
        )
        .map_err(|m| problem("InvalidTimer", m))?;
        let connect_time = match seconds("connectTime", &s.connect_time)? {
            None => DEFAULT_CONNECT_TIME,
            Some(t) if (1..=65535).contains(&t.as_secs()) => t,
            Some(t) => {
                return Err(problem(
                    "InvalidTimer",
                    format!("connectTime {}s is not between 1s and 65535s", t.as_secs()),
                ));
            }
        };
        let session = SessionConfig {
            my_asn: s.my_asn,
            peer_asn,
            address,
            port: s.peer_port,
            source_address,
            router_id,
            hold_time,
            keepalive_time,
            connect_time,
            ebgp_multihop: s.ebgp_multi_hop,
            password: s.password.clone().filter(|p| !p.is_empty()),
            // Unset namespace: the BGPPeer's own, as MetalLB reads it.
            password_secret: s.password_secret.as_ref().map(|r| SecretRef {
                namespace: r
                    .namespace
                    .clone()
                    .or_else(|| peer.metadata.namespace.clone()),
                name: r.name.clone().unwrap_or_default(),
            }),
            graceful_restart: s.enable_graceful_restart,
            passive: s.passive,
            dual_stack: s.dual_stack_address_family,
            bfd: None,
        };
        if session.ebgp_multihop && session.is_ibgp() {
            return Err(problem(
                "InvalidMultiHop",
                "ebgpMultiHop cannot be set for an iBGP peer".into(),
            ));
        }
        if session.password.is_some() && session.password_secret.is_some() {
            return Err(problem(
                "InvalidPassword",
                "password and passwordSecret are mutually exclusive".into(),
            ));
        }
        if session
            .password
            .as_ref()
            .is_some_and(|p| p.len() > MAX_MD5_KEY_LEN)
        {
            return Err(problem(
                "InvalidPassword",
                format!(
                    "password is longer than {MAX_MD5_KEY_LEN} bytes (the kernel's TCP MD5 limit)"
                ),
            ));
        }
        if let Some(vrf) = &s.vrf {
            return Err(problem(
                "Unsupported",
                format!("vrf {vrf:?}: peering from a VRF is not supported; the peer is not used"),
            ));
        }
        let node_selectors = Selectors::parse(&s.node_selectors)
            .map_err(|e| problem("InvalidSelector", format!("nodeSelectors: {e}")))?;
        Ok(Peer {
            name,
            node_selectors,
            session,
            bfd_profile: s.bfd_profile.clone().filter(|p| !p.is_empty()),
        })
    }
}

/// The Secret type MetalLB requires of a `passwordSecret`.
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
/// The key of a `passwordSecret` holding the TCP MD5 key.
pub const PASSWORD_KEY: &str = "password";

/// Why a `passwordSecret` gives no key. Messages never include the key.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "passwordSecret {0}: no Secret of type kubernetes.io/basic-auth by that name (the speaker reads Secrets in the FerroLB namespace only)"
    )]
    NotFound(String),
    #[error("passwordSecret {0}: the Secret is of type {1:?}, not kubernetes.io/basic-auth")]
    WrongType(String, String),
    #[error("passwordSecret {0}: the Secret has no key \"password\"")]
    NoKey(String),
    #[error(
        "passwordSecret {0}: the password must be 1 to {MAX_MD5_KEY_LEN} bytes of UTF-8 (the kernel's TCP MD5 limit)"
    )]
    BadKey(String),
}

/// A Secret reduced to what a BGP session may need: its name, namespace, type and the
/// `password` key (from `stringData` when a file gives it there, as the API server
/// would merge it). Everything else (TLS keys, tokens) is dropped on the way in, so the
/// speaker holds no more secret material than it uses.
pub fn slim_secret(s: Secret) -> Secret {
    let password = s
        .string_data
        .and_then(|mut d| d.remove(PASSWORD_KEY))
        .map(|p| k8s_openapi::ByteString(p.into_bytes()))
        .or_else(|| s.data.and_then(|mut d| d.remove(PASSWORD_KEY)));
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: s.metadata.name,
            namespace: s.metadata.namespace,
            uid: s.metadata.uid,
            ..Default::default()
        },
        type_: s.type_,
        data: Some(
            password
                .map(|p| (PASSWORD_KEY.to_string(), p))
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }
}

/// The TCP MD5 key a `passwordSecret` names, from `secrets` (slimmed or not). A Secret
/// without a namespace (a standalone file) matches any.
pub fn password_from(r: &SecretRef, secrets: &[Secret]) -> Result<String, SecretError> {
    let shown = match &r.namespace {
        Some(ns) => format!("{ns}/{}", r.name),
        None => r.name.clone(),
    };
    let found = secrets.iter().find(|s| {
        s.metadata.name.as_deref() == Some(r.name.as_str())
            && match (&s.metadata.namespace, &r.namespace) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    });
    let Some(secret) = found else {
        return Err(SecretError::NotFound(shown));
    };
    // An unset type is Opaque, as the API server defaults it.
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if kind != BASIC_AUTH {
        return Err(SecretError::WrongType(shown, kind.into()));
    }
    let bytes = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(PASSWORD_KEY))
        .map(|p| p.as_bytes().to_vec())
        .or_else(|| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(PASSWORD_KEY))
                .map(|b| b.0.clone())
        })
        .ok_or_else(|| SecretError::NoKey(shown.clone()))?;
    match String::from_utf8(bytes) {
        Ok(p) if !p.is_empty() && p.len() <= MAX_MD5_KEY_LEN => Ok(p),
        _ => Err(SecretError::BadKey(shown)),
    }
}

/// Fills in the key of every peer with a `passwordSecret` from `secrets`. A peer whose
/// key cannot be found stays without one (its session refuses to start, see
/// [`SessionConfig::missing_password`]) and the reason goes to `problems`.
pub fn resolve_passwords(
    peers: &mut BTreeMap<String, Peer>,
    secrets: &[Secret],
    problems: &mut Vec<Problem>,
) {
    for peer in peers.values_mut() {
        let Some(r) = &peer.session.password_secret else {
            continue;
        };
        match password_from(r, secrets) {
            Ok(p) => peer.session.password = Some(p),
            Err(e) => {
                peer.session.password = None;
                problems.push(Problem {
                    kind: "BGPPeer",
                    name: peer.name.clone(),
                    reason: "MissingPassword",
                    message: format!("{e}; the session is not opened without its key"),
                });
            }
        }
    }
}

/// Gives every peer naming a `bfdProfile` the profile's BFD settings. A profile that
/// does not exist leaves the peer without BFD (its hold time detects failures) and is
/// reported, as is what a profile asks for that is not supported (echo mode) or out
/// of range.
pub fn resolve_bfd_profiles(
    peers: &mut BTreeMap<String, Peer>,
    profiles: &[BFDProfile],
    problems: &mut Vec<Problem>,
) {
    let mut by_name: BTreeMap<&str, &BFDProfile> = BTreeMap::new();
    for p in profiles {
        if let Some(name) = p.metadata.name.as_deref() {
            by_name.entry(name).or_insert(p);
        }
    }
    let mut warned: BTreeMap<&str, ()> = BTreeMap::new();
    for peer in peers.values_mut() {
        let Some(name) = peer.bfd_profile.as_deref() else {
            continue;
        };
        let Some(crd) = by_name.get(name) else {
            peer.session.bfd = None;
            problems.push(Problem {
                kind: "BGPPeer",
                name: peer.name.clone(),
                reason: "MissingBFDProfile",
                message: format!(
                    "bfdProfile {name:?} does not exist; the session runs without BFD and relies on its hold time"
                ),
            });
            continue;
        };
        let mut warnings = Vec::new();
        peer.session.bfd = Some(crate::bfd::Profile::from_crd(
            name,
            &crd.spec,
            &mut warnings,
        ));
        // Once per profile, however many peers use it.
        if warned.insert(name, ()).is_none() {
            problems.extend(warnings.into_iter().map(|w| Problem {
                kind: "BFDProfile",
                name: name.to_string(),
                reason: "Unsupported",
                message: w,
            }));
        }
    }
}

/// Every usable `BGPPeer`, by name; what cannot be used (or is ignored) is pushed to
/// `problems`.
pub fn peers_from_crd<'a>(
    peers: impl IntoIterator<Item = &'a BGPPeer>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Peer> {
    let mut out = BTreeMap::new();
    for p in peers {
        match Peer::from_crd(p) {
            Ok(peer) => {
                if out.contains_key(&peer.name) {
                    problems.push(Problem {
                        kind: "BGPPeer",
                        name: peer.name.clone(),
                        reason: "Duplicate",
                        message: "another BGPPeer has the same name; only the first is used".into(),
                    });
                } else {
                    out.insert(peer.name.clone(), peer);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    out
}

/// Hold time and keepalive interval as MetalLB reads them: defaults 90 s and hold/3;
/// given only one, the other follows (keepalive = hold/3, hold = 3 × keepalive).
fn timers(
    hold: Option<Duration>,
    keepalive: Option<Duration>,
) -> Result<(Duration, Duration), String> {
    let (hold, keepalive) = match (hold, keepalive) {
        (None, None) => (DEFAULT_HOLD_TIME, DEFAULT_HOLD_TIME / 3),
        (Some(h), None) => (h, Duration::from_secs(h.as_secs() / 3)),
        (None, Some(k)) => (k * 3, k),
        (Some(h), Some(k)) => (h, k),
    };
    let h = hold.as_secs();
    if h != 0 && h < 3 {
        return Err(format!("holdTime {h}s must be 0 or at least 3s"));
    }
    if h > u64::from(u16::MAX) {
        return Err(format!("holdTime {h}s is longer than 65535s"));
    }
    if keepalive > hold {
        return Err(format!(
            "keepaliveTime {}s exceeds holdTime {h}s",
            keepalive.as_secs()
        ));
    }
    if h == 0 {
        return Ok((Duration::ZERO, Duration::ZERO));
    }
    if keepalive.is_zero() {
        return Err("keepaliveTime must not be 0 when holdTime is not 0".into());
    }
    Ok((hold, keepalive))
}

/// A Go duration (`90s`, `1m30s`, `1.5s`, `500ms`), rounded to whole seconds.
pub fn parse_duration_secs(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?} lacks a unit (s, m, h …)"))?;
        let (number, tail) = rest.split_at(number_end);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("{text:?}: unknown unit {unit:?}")),
        };
        nanos += value * scale;
        rest = tail;
    }
    let secs = (nanos / 1e9).round();
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs(secs as u64))
}

/// A community value as written in a `BGPAdvertisement` or a `Community` alias:
/// standard (RFC 1997, `A:B`) or large (RFC 8092, `large:A:B:C`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommunityValue {
    Standard(Community),
    Large(LargeCommunity),
}

/// Why a community value cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a community: write A:B (each 0-65535) or large:A:B:C (each 0-4294967295)")]
pub struct CommunityError(pub String);

impl FromStr for CommunityValue {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<CommunityValue, CommunityError> {
        let err = || CommunityError(s.to_string());
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["large", a, b, c] if [a, b, c].iter().all(|p| digits(p)) => {
                Ok(CommunityValue::Large(LargeCommunity {
                    global_admin: a.parse().map_err(|_| err())?,
                    local_data1: b.parse().map_err(|_| err())?,
                    local_data2: c.parse().map_err(|_| err())?,
                }))
            }
            [a, b] if digits(a) && digits(b) => Ok(CommunityValue::Standard(Community::new(
                a.parse().map_err(|_| err())?,
                b.parse().map_err(|_| err())?,
            ))),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityValue::Standard(c) => write!(f, "{c}"),
            CommunityValue::Large(l) => write!(f, "large:{l}"),
        }
    }
}

/// Every alias of every `Community` object, by alias name. A value that does not parse
/// is reported and left out; an alias defined twice keeps the definition of the
/// `Community` whose name sorts first, so every speaker keeps the same one.
pub fn aliases_from_crd<'a>(
    objects: impl IntoIterator<Item = &'a CommunityCrd>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, CommunityValue> {
    let mut sorted: Vec<&CommunityCrd> = objects.into_iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out: BTreeMap<String, (CommunityValue, String)> = BTreeMap::new();
    for object in sorted {
        let object_name = object.metadata.name.clone().unwrap_or_default();
        for alias in &object.spec.communities {
            let problem = |reason, message| Problem {
                kind: "Community",
                name: object_name.clone(),
                reason,
                message,
            };
            match alias.value.parse::<CommunityValue>() {
                Err(e) => problems.push(problem(
                    "InvalidCommunity",
                    format!("alias {:?}: {e}", alias.name),
                )),
                Ok(_) if alias.name.contains(':') || alias.name.is_empty() => {
                    problems.push(problem(
                        "InvalidCommunity",
                        format!(
                            "alias name {:?} must be non-empty and without ':'",
                            alias.name
                        ),
                    ))
                }
                Ok(value) => {
                    if let Some((_, first)) = out.get(&alias.name) {
                        problems.push(problem(
                            "DuplicateAlias",
                            format!(
                                "alias {:?} is also defined in Community {first:?}, which is used",
                                alias.name
                            ),
                        ));
                    } else {
                        out.insert(alias.name.clone(), (value, object_name.clone()));
                    }
                }
            }
        }
    }
    out.into_iter().map(|(k, (v, _))| (k, v)).collect()
}

/// Reads one entry of `BGPAdvertisement.spec.communities`: a value, or an alias name
/// (no `:`) looked up in `aliases`.
pub fn resolve_community(
    text: &str,
    aliases: &BTreeMap<String, CommunityValue>,
) -> Result<CommunityValue, String> {
    if text.contains(':') {
        text.parse().map_err(|e: CommunityError| e.to_string())
    } else {
        aliases
            .get(text)
            .copied()
            .ok_or_else(|| format!("community alias {text:?} is not defined by any Community"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_crds::BGPPeerSpec;
    use ferrolb_crds::community::{CommunityAlias, CommunitySpec};
    use k8s_openapi::api::core::v1::SecretReference;

    fn spec() -> BGPPeerSpec {
        BGPPeerSpec {
            my_asn: 64512,
            peer_asn: Some(64500),
            peer_address: "198.51.100.1".into(),
            peer_port: 179,
            ..Default::default()
        }
    }

    fn resolve(spec: BGPPeerSpec) -> (Result<Peer, Problem>, Vec<Problem>) {
        (Peer::from_crd(&BGPPeer::new("r1", spec)), Vec::new())
    }

    #[test]
    fn defaults_follow_metallb() {
        let (p, w) = resolve(spec());
        let p = p.unwrap();
        assert!(w.is_empty());
        assert_eq!(p.name, "r1");
        let s = &p.session;
        assert_eq!(s.port, 179);
        assert_eq!(s.hold_time, Duration::from_secs(90));
        assert_eq!(s.keepalive_time, Duration::from_secs(30));
        assert_eq!(s.connect_time, Duration::from_secs(120));
        assert_eq!(s.peer_asn, PeerAsn::Fixed(64500));
        assert!(!s.is_ibgp() && !s.passive && !s.dual_stack && !s.graceful_restart);
        assert!(s.carries(&"203.0.113.1".parse().unwrap()));
        assert!(!s.carries(&"2001:db8::1".parse().unwrap()));
        assert_eq!(s.families(), [(Afi::IPV4, Safi::UNICAST)]);
        assert!(p.node_selectors.is_empty());
    }

    #[test]
    fn timers_fill_each_other() {
        let mut s = spec();
        s.hold_time = Some("9s".into());
        let p = resolve(s.clone()).0.unwrap();
        assert_eq!(p.session.keepalive_time, Duration::from_secs(3));
        s.hold_time = None;
        s.keepalive_time = Some("10s".into());
        let p = resolve(s.clone()).0.unwrap();
        assert_eq!(p.session.hold_time, Duration::from_secs(30));
        s.hold_time = Some("0s".into());
        s.keepalive_time = None;
        let p = resolve(s.clone()).0.unwrap();
        assert_eq!(
            (p.session.hold_time, p.session.keepalive_time),
            (Duration::ZERO, Duration::ZERO)
        );
        for (hold, keepalive) in [("2s", None), ("9s", Some("10s")), ("70000s", None)] {
            s.hold_time = Some(hold.into());
            s.keepalive_time = keepalive.map(Into::into);
            assert_eq!(resolve(s.clone()).0.unwrap_err().reason, "InvalidTimer");
        }
        s.hold_time = None;
        s.keepalive_time = None;
        s.connect_time = Some("1m30s".into());
        assert_eq!(
            resolve(s.clone()).0.unwrap().session.connect_time,
            Duration::from_secs(90)
        );
        s.connect_time = Some("400ms".into());
        assert_eq!(resolve(s).0.unwrap_err().reason, "InvalidTimer");
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        let secs = |t: &str| parse_duration_secs(t).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("1m30s"), Ok(90));
        assert_eq!(secs("1h"), Ok(3600));
        assert_eq!(secs("1.5s"), Ok(2));
        assert_eq!(secs("2500ms"), Ok(3));
        assert_eq!(secs("0"), Ok(0));
        for bad in ["", "90", "9x", "s", "1..2s", "-1s"] {
            assert!(secs(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ibgp_and_dynamic_asn() {
        let mut s = spec();
        s.peer_asn = Some(64512);
        assert!(resolve(s.clone()).0.unwrap().session.is_ibgp());
        s.peer_asn = None;
        s.dynamic_asn = Some(DynamicAsn::Internal);
        let p = resolve(s.clone()).0.unwrap();
        assert!(p.session.is_ibgp());
        s.dynamic_asn = Some(DynamicAsn::External);
        assert!(!resolve(s.clone()).0.unwrap().session.is_ibgp());
        s.ebgp_multi_hop = true;
        assert!(resolve(s.clone()).0.is_ok());
        s.dynamic_asn = Some(DynamicAsn::Internal);
        assert_eq!(resolve(s.clone()).0.unwrap_err().reason, "InvalidMultiHop");
        s.dynamic_asn = None;
        assert_eq!(resolve(s.clone()).0.unwrap_err().reason, "InvalidASN");
        s.peer_asn = Some(1);
        s.dynamic_asn = Some(DynamicAsn::External);
        assert_eq!(resolve(s).0.unwrap_err().reason, "InvalidASN");
    }

    #[test]
    fn unusable_peers_say_why() {
        type Edit = fn(&mut BGPPeerSpec);
        let cases: Vec<(Edit, &str)> = vec![
            (|s| s.my_asn = 0, "InvalidASN"),
            (|s| s.peer_address = "router".into(), "InvalidAddress"),
            (
                |s| s.source_address = Some("2001:db8::5".into()),
                "InvalidAddress",
            ),
            (
                |s| s.router_id = Some("2001:db8::5".into()),
                "InvalidRouterID",
            ),
            (|s| s.peer_port = 0, "InvalidPort"),
            (|s| s.vrf = Some("red".into()), "Unsupported"),
            (|s| s.password = Some("x".repeat(81)), "InvalidPassword"),
        ];
        for (edit, reason) in cases {
            let mut s = spec();
            edit(&mut s);
            let p = resolve(s).0.unwrap_err();
            assert_eq!((p.kind, p.reason), ("BGPPeer", reason), "{p}");
            assert_eq!(p.name, "r1");
        }
    }

    #[test]
    fn optional_settings_are_carried() {
        let mut s = spec();
        s.peer_address = "2001:db8:51::1".into();
        s.source_address = Some("2001:db8:51::11".into());
        s.router_id = Some("192.0.2.7".into());
        s.peer_port = 1179;
        s.passive = true;
        s.enable_graceful_restart = true;
        s.dual_stack_address_family = true;
        s.password_secret = Some(SecretReference {
            name: Some("md5".into()),
            namespace: Some("ferrolb-system".into()),
        });
        s.bfd_profile = Some("fast".into());
        let (p, warnings) = resolve(s);
        let p = p.unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(p.bfd_profile.as_deref(), Some("fast"));
        let p = p.session;
        assert_eq!(p.router_id, Some(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(p.source_address, Some("2001:db8:51::11".parse().unwrap()));
        assert_eq!(p.port, 1179);
        assert!(p.passive && p.graceful_restart && p.dual_stack);
        assert!(p.carries(&"203.0.113.1".parse().unwrap()));
        assert_eq!(p.families().len(), 2);
        assert!(p.missing_password());
        assert_eq!(p.password_secret.as_ref().unwrap().name, "md5");
    }

    fn secret(v: serde_json::Value) -> Secret {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn password_secrets_resolve_with_metallb_semantics() {
        let r = SecretRef {
            namespace: Some("ferrolb-system".into()),
            name: "md5".into(),
        };
        // "s3cret" in base64.
        let good = secret(serde_json::json!({
            "metadata": {"name": "md5", "namespace": "ferrolb-system"},
            "type": "kubernetes.io/basic-auth",
            "data": {"password": "czNjcmV0", "username": "dXNlcg=="}
        }));
        assert_eq!(
            password_from(&r, std::slice::from_ref(&good)).as_deref(),
            Ok("s3cret")
        );
        // Slimming keeps the key and nothing else.
        let slim = slim_secret(good.clone());
        assert_eq!(slim.data.as_ref().map(|d| d.len()), Some(1));
        assert_eq!(password_from(&r, &[slim]).as_deref(), Ok("s3cret"));
        // stringData (a standalone file) wins over data, as the API server merges it.
        let mut plain = good.clone();
        plain.string_data = Some([("password".to_string(), "plain".to_string())].into());
        assert_eq!(
            password_from(&r, &[slim_secret(plain)]).as_deref(),
            Ok("plain")
        );
        // A Secret of another namespace is another Secret.
        let mut elsewhere = good.clone();
        elsewhere.metadata.namespace = Some("app".into());
        assert!(matches!(
            password_from(&r, &[elsewhere]),
            Err(SecretError::NotFound(_))
        ));
        let mut opaque = good.clone();
        opaque.type_ = None;
        assert_eq!(
            password_from(&r, &[opaque]),
            Err(SecretError::WrongType(
                "ferrolb-system/md5".into(),
                "Opaque".into()
            ))
        );
        let mut keyless = good.clone();
        keyless.data = Some(
            [(
                "username".to_string(),
                k8s_openapi::ByteString(b"u".to_vec()),
            )]
            .into(),
        );
        assert!(matches!(
            password_from(&r, &[keyless]),
            Err(SecretError::NoKey(_))
        ));
        for bad in [
            Vec::new(),
            vec![b'x'; MAX_MD5_KEY_LEN + 1],
            vec![0xff, 0xfe],
        ] {
            let mut b = good.clone();
            b.data = Some([("password".to_string(), k8s_openapi::ByteString(bad))].into());
            assert!(matches!(
                password_from(&r, &[b]),
                Err(SecretError::BadKey(_))
            ));
        }
    }

    #[test]
    fn bfd_profiles_resolve_or_the_peer_runs_without() {
        use ferrolb_crds::BFDProfileSpec;
        let named = |peer: &str, profile: &str| {
            let mut s = spec();
            s.bfd_profile = Some(profile.into());
            BGPPeer::new(peer, s)
        };
        let (a, b, c) = (named("a", "fast"), named("b", "nope"), named("c", "fast"));
        let plain = BGPPeer::new("d", spec());
        let mut problems = Vec::new();
        let mut peers = peers_from_crd([&a, &b, &c, &plain], &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let fast = BFDProfile::new(
            "fast",
            BFDProfileSpec {
                transmit_interval: Some(100),
                receive_interval: Some(100),
                echo_mode: Some(true),
                ..Default::default()
            },
        );
        resolve_bfd_profiles(&mut peers, &[fast], &mut problems);
        let bfd = peers["a"].session.bfd.as_ref().unwrap();
        assert_eq!(bfd.timers.desired_min_tx, Duration::from_millis(100));
        assert_eq!(bfd.timers.detect_mult, 3);
        assert_eq!(peers["a"].session.bfd, peers["c"].session.bfd);
        assert_eq!(peers["b"].session.bfd, None);
        assert_eq!(peers["d"].session.bfd, None);
        let said: Vec<_> = problems
            .iter()
            .map(|p| (p.kind, p.name.as_str(), p.reason))
            .collect();
        assert_eq!(
            said,
            [
                ("BFDProfile", "fast", "Unsupported"),
                ("BGPPeer", "b", "MissingBFDProfile")
            ]
        );
        assert!(problems[0].message.contains("echoMode"));
        assert!(
            problems[1]
                .message
                .starts_with("bfdProfile \"nope\" does not exist;"),
            "{}",
            problems[1].message
        );
    }

    #[test]
    fn resolving_fills_the_key_or_reports_the_peer() {
        let mut with_secret = spec();
        with_secret.password_secret = Some(SecretReference {
            name: Some("md5".into()),
            namespace: None,
        });
        let mut crd = BGPPeer::new("r1", with_secret);
        crd.metadata.namespace = Some("ferrolb-system".into());
        let mut other = BGPPeer::new("r2", spec());
        other.metadata.namespace = Some("ferrolb-system".into());
        let mut problems = Vec::new();
        let mut peers = peers_from_crd([&crd, &other], &mut problems);
        assert_eq!(
            peers["r1"]
                .session
                .password_secret
                .as_ref()
                .and_then(|r| r.namespace.as_deref()),
            Some("ferrolb-system"),
            "an unset namespace is the peer's"
        );
        let secrets = [secret(serde_json::json!({
            "metadata": {"name": "md5", "namespace": "ferrolb-system"},
            "type": "kubernetes.io/basic-auth",
            "stringData": {"password": "s3cret"}
        }))];
        let mut missing = peers.clone();
        resolve_passwords(&mut peers, &secrets, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(peers["r1"].session.password.as_deref(), Some("s3cret"));
        assert!(!peers["r1"].session.missing_password());
        assert_eq!(peers["r2"].session.password, None);

        resolve_passwords(&mut missing, &[], &mut problems);
        assert!(missing["r1"].session.missing_password());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].name.as_str(), problems[0].reason),
            ("r1", "MissingPassword")
        );
        assert!(
            problems[0].message.contains("ferrolb-system/md5"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn communities_parse_and_print() {
        assert_eq!(
            "65535:65281".parse(),
            Ok(CommunityValue::Standard(Community::NO_EXPORT))
        );
        assert_eq!(
            "large:64512:1:4294967295".parse(),
            Ok(large(64512, 1, u32::MAX))
        );
        for bad in [
            "65536:1",
            "1:2:3",
            "large:1:2",
            "large:1:2:4294967296",
            ":1",
            "a:b",
            "1:-2",
            "+1:2",
        ] {
            assert!(bad.parse::<CommunityValue>().is_err(), "{bad}");
        }
        for ok in ["0:0", "64512:100", "large:1:2:3"] {
            assert_eq!(ok.parse::<CommunityValue>().unwrap().to_string(), ok);
        }
    }

    fn large(a: u32, b: u32, c: u32) -> CommunityValue {
        CommunityValue::Large(LargeCommunity {
            global_admin: a,
            local_data1: b,
            local_data2: c,
        })
    }

    fn community(name: &str, aliases: &[(&str, &str)]) -> CommunityCrd {
        CommunityCrd::new(
            name,
            CommunitySpec {
                communities: aliases
                    .iter()
                    .map(|(n, v)| CommunityAlias {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            },
        )
    }

    #[test]
    fn aliases_resolve_and_conflicts_keep_the_first() {
        let mut problems = Vec::new();
        let aliases = aliases_from_crd(
            &[
                community("z", &[("vip", "1:1"), ("bad", "1:70000")]),
                community("a", &[("vip", "64512:100"), ("big", "large:1:2:3")]),
            ],
            &mut problems,
        );
        assert_eq!(aliases.len(), 2);
        assert_eq!(
            aliases["vip"],
            CommunityValue::Standard(Community::new(64512, 100))
        );
        let reasons: Vec<_> = problems
            .iter()
            .map(|p| (p.name.as_str(), p.reason))
            .collect();
        assert_eq!(
            reasons,
            [("z", "DuplicateAlias"), ("z", "InvalidCommunity")]
        );
        assert_eq!(resolve_community("big", &aliases), Ok(large(1, 2, 3)));
        assert_eq!(
            resolve_community("7:8", &aliases),
            Ok(CommunityValue::Standard(Community::new(7, 8)))
        );
        assert!(resolve_community("nope", &aliases).is_err());
        assert!(resolve_community("1:2:3", &aliases).is_err());
    }
}
