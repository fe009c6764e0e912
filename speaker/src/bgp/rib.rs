//! What this node sends to each of its BGP peers, as pure data: the Adj-RIB-Out per peer
//! ([`plan`]), the difference between two of them ([`diff`]), and the UPDATE messages
//! that carry a difference ([`updates`]).
//!
//! From the addresses the election gives this node ([`crate::election::BgpAnnouncement`])
//! and the BGPAdvertisements behind each: the prefix is the address masked to the
//! advertisement's `aggregationLength` / `aggregationLengthV6`; it goes to the peers the
//! advertisement names (`peers`, default every peer of this node) whose session carries
//! its family; LOCAL_PREF is sent to iBGP peers only; communities are the union over
//! every advertisement giving the same prefix (as MetalLB's native speaker merges them).
//! A prefix that advertisements would send to an iBGP peer with different LOCAL_PREFs is
//! not sent to that peer, and reported: which one is meant cannot be known.
//!
//! UPDATEs put every prefix sharing the same attributes in as few messages as the
//! 4096-byte limit allows; sizes are counted here from RFC 4271 / 4760 / 6793 so that a
//! plan is checked before anything is encoded.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ferrolb_crds::validate::Problem;
use ipnet::{IpNet, Ipv4Net};

use super::config::{CommunityValue, Peer, resolve_community};
use super::message::{
    Afi, AsSegment, AsSegmentKind, Attributes, Community, HEADER_LEN, LargeCommunity,
    MAX_MESSAGE_LEN, MpReach, MpUnreach, Origin, Safi, Update,
};
use crate::election::BgpAnnouncement;
use crate::world::World;

/// The attributes that vary between the routes FerroLB sends (ORIGIN, AS_PATH and the
/// next hop are the same for every route of a session).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttrs {
    /// Only ever set for iBGP peers.
    pub local_pref: Option<u32>,
    pub communities: BTreeSet<Community>,
    pub large_communities: BTreeSet<LargeCommunity>,
}

/// What is sent to one peer: every prefix with its attributes. The attributes are
/// shared: tens of thousands of prefixes usually carry one or two sets of them.
pub type AdjRibOut = BTreeMap<IpNet, Arc<RouteAttrs>>;

/// The prefixes a peer holds, shared: the session publishes them on every change and
/// the report, the metrics and the status objects read them, so tens of thousands are
/// never copied. Written out as strings (`203.0.113.5/32`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefixes(std::sync::Arc<[IpNet]>);

impl Prefixes {
    pub fn new(prefixes: impl IntoIterator<Item = IpNet>) -> Prefixes {
        Prefixes(prefixes.into_iter().collect())
    }

    /// As text, for people and tests.
    pub fn strings(&self) -> Vec<String> {
        self.0.iter().map(IpNet::to_string).collect()
    }
}

impl std::ops::Deref for Prefixes {
    type Target = [IpNet];
    fn deref(&self) -> &[IpNet] {
        &self.0
    }
}

impl serde::Serialize for Prefixes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|p| p.to_string()))
    }
}

/// The routes of every peer of this node, and what could not be used.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// By BGPPeer name: every peer this node holds a session with, even with no routes.
    /// Shared with the sessions, and between peers that get the same routes.
    pub peers: BTreeMap<String, Arc<AdjRibOut>>,
    /// Advertisements left out (a community that does not resolve) and prefixes not sent
    /// (conflicting LOCAL_PREF). The same on every node that announces the same things.
    pub problems: Vec<Problem>,
    /// The conflicting-LOCAL_PREF problems again, with every advertisement concerned (a
    /// [`Problem`] names only one), for Warning Events on each of them.
    pub conflicts: Vec<Conflict>,
}

/// A prefix not sent because advertisements give it different LOCAL_PREFs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The BGPAdvertisements giving the prefix, by name.
    pub ads: Vec<String>,
    /// The same text as the [`Problem`]'s message.
    pub message: String,
}

/// Per address this node announces over BGP: the peers whose Adj-RIB-Out (`peers`, as
/// in [`Plan::peers`]) holds a prefix covering it. Addresses reaching no peer map to an
/// empty set.
pub fn peers_by_ip(
    announced: &BTreeMap<IpAddr, BgpAnnouncement>,
    peers: &BTreeMap<String, Arc<AdjRibOut>>,
) -> BTreeMap<IpAddr, BTreeSet<String>> {
    // Lookups by the prefix lengths each table uses (one or two in practice) rather
    // than a scan: tables can hold tens of thousands of prefixes.
    let lengths: Vec<(&String, &AdjRibOut, BTreeSet<u8>)> = peers
        .iter()
        .map(|(name, rib)| (name, &**rib, rib.keys().map(IpNet::prefix_len).collect()))
        .collect();
    announced
        .keys()
        .map(|ip| {
            let to = lengths
                .iter()
                .filter(|(_, rib, lens)| {
                    lens.iter().any(|len| {
                        IpNet::new(*ip, *len).is_ok_and(|p| rib.contains_key(&p.trunc()))
                    })
                })
                .map(|(name, _, _)| (*name).clone())
                .collect();
            (*ip, to)
        })
        .collect()
}

/// The BGPPeers this node holds sessions with: those whose `nodeSelectors` select it
/// (an empty list selects every node). None for a node the world does not know.
pub fn node_peers<'w>(world: &'w World, my_node: &str) -> Vec<&'w Peer> {
    let Some(node) = world.nodes.get(my_node) else {
        return Vec::new();
    };
    world
        .bgp_peers
        .values()
        .filter(|p| p.node_selectors.matches_or_empty(&node.labels))
        .collect()
}

/// An advertisement's communities, resolved.
#[derive(Default)]
struct AdAttrs {
    communities: BTreeSet<Community>,
    large: BTreeSet<LargeCommunity>,
}

/// The IP masked to the advertisement's aggregation length for its family.
fn prefix(ip: IpAddr, v4_len: u8, v6_len: u8) -> Option<IpNet> {
    let len = if ip.is_ipv4() { v4_len } else { v6_len };
    IpNet::new(ip, len).ok().map(|n| n.trunc())
}

/// The Adj-RIB-Out of every peer of `my_node`, from what the election gives it to
/// announce over BGP (`Announcements::bgp`).
pub fn plan(world: &World, my_node: &str, announced: &BTreeMap<IpAddr, BgpAnnouncement>) -> Plan {
    let mut problems = Vec::new();
    // Each advertisement's communities once; one that does not resolve leaves its
    // advertisement out rather than sending routes without (say) a no-export tag.
    let mut usable: BTreeMap<usize, AdAttrs> = BTreeMap::new();
    let used: BTreeSet<usize> = announced
        .values()
        .flat_map(|a| a.ads.iter().copied())
        .collect();
    for i in used {
        let Some(ad) = world.bgp_ads.get(i) else {
            continue;
        };
        let mut attrs = AdAttrs::default();
        let mut bad = Vec::new();
        for text in &ad.communities {
            match resolve_community(text, &world.community_aliases) {
                Ok(CommunityValue::Standard(c)) => {
                    attrs.communities.insert(c);
                }
                Ok(CommunityValue::Large(l)) => {
                    attrs.large.insert(l);
                }
                Err(e) => bad.push(e),
            }
        }
        if bad.is_empty() {
            usable.insert(i, attrs);
        } else {
            problems.push(Problem {
                kind: "BGPAdvertisement",
                name: ad.name.clone(),
                reason: "InvalidCommunity",
                message: format!(
                    "{}; its addresses are not announced under it",
                    bad.join("; ")
                ),
            });
        }
    }

    // (prefix, advertisements) -> iBGP peers it was not sent to.
    let mut conflicts: BTreeMap<(IpNet, Vec<usize>), Vec<String>> = BTreeMap::new();
    let mut peers = BTreeMap::new();
    // Each distinct set of attributes once, shared by every prefix carrying it.
    let mut interned: BTreeSet<Arc<RouteAttrs>> = BTreeSet::new();
    for peer in node_peers(world, my_node) {
        let ibgp = peer.session.is_ibgp();
        // Prefix -> the advertisements giving it to this peer.
        let mut sources: BTreeMap<IpNet, BTreeSet<usize>> = BTreeMap::new();
        for (ip, a) in announced {
            if !peer.session.carries(ip) {
                continue;
            }
            for &i in a.ads.iter() {
                let ad = &world.bgp_ads[i];
                if !usable.contains_key(&i)
                    || !(ad.peers.is_empty() || ad.peers.contains(&peer.name))
                {
                    continue;
                }
                if let Some(p) = prefix(*ip, ad.aggregation_length, ad.aggregation_length_v6) {
                    sources.entry(p).or_default().insert(i);
                }
            }
        }
        // A sorted list made a map in one go: its nodes packed full.
        let mut rib = Vec::with_capacity(sources.len());
        for (p, ads) in sources {
            let prefs: BTreeSet<Option<u32>> =
                ads.iter().map(|&i| world.bgp_ads[i].local_pref).collect();
            if ibgp && prefs.len() > 1 {
                conflicts
                    .entry((p, ads.into_iter().collect()))
                    .or_default()
                    .push(peer.name.clone());
                continue;
            }
            let mut attrs = RouteAttrs {
                local_pref: if ibgp {
                    prefs.into_iter().next().flatten()
                } else {
                    None
                },
                ..RouteAttrs::default()
            };
            for i in &ads {
                let a = &usable[i];
                attrs.communities.extend(a.communities.iter().copied());
                attrs.large_communities.extend(a.large.iter().copied());
            }
            let attrs = match interned.get(&attrs) {
                Some(a) => Arc::clone(a),
                None => {
                    let a = Arc::new(attrs);
                    interned.insert(Arc::clone(&a));
                    a
                }
            };
            rib.push((p, attrs));
        }
        let rib: AdjRibOut = rib.into_iter().collect();
        // Peers given the same routes (two routers of a pair, usually) share one table.
        let rib = match peers
            .values()
            .find(|other: &&Arc<AdjRibOut>| ***other == rib)
        {
            Some(same) => Arc::clone(same),
            None => Arc::new(rib),
        };
        peers.insert(peer.name.clone(), rib);
    }
    let mut conflicted = Vec::new();
    for ((p, ads), to) in conflicts {
        let names: Vec<String> = ads
            .iter()
            .map(|&i| {
                let ad = &world.bgp_ads[i];
                match ad.local_pref {
                    Some(v) => format!("{:?} (localPref {v})", ad.name),
                    None => format!("{:?} (no localPref)", ad.name),
                }
            })
            .collect();
        let message = format!(
            "{p} is advertised by {} with different localPref; it is not sent to iBGP peer(s) {}",
            names.join(", "),
            to.join(", ")
        );
        let ad_names: BTreeSet<String> =
            ads.iter().map(|&i| world.bgp_ads[i].name.clone()).collect();
        conflicted.push(Conflict {
            ads: ad_names.into_iter().collect(),
            message: message.clone(),
        });
        problems.push(Problem {
            kind: "BGPAdvertisement",
            name: world.bgp_ads[ads[0]].name.clone(),
            reason: "ConflictingLocalPref",
            message,
        });
    }
    Plan {
        peers,
        problems,
        conflicts: conflicted,
    }
}

/// What changes between two Adj-RIB-Outs: prefixes to withdraw, and prefixes to
/// announce (new, or with changed attributes: a new announcement replaces the old one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RibDiff {
    pub withdraw: BTreeSet<IpNet>,
    pub announce: AdjRibOut,
}

impl RibDiff {
    /// Everything in `rib`, announced: the first UPDATEs of a session, and the answer to
    /// a ROUTE-REFRESH.
    pub fn full(rib: &AdjRibOut) -> RibDiff {
        RibDiff {
            withdraw: BTreeSet::new(),
            announce: rib.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }

    /// What the peer holds after receiving this difference on top of `rib`.
    pub fn apply(&self, rib: &mut AdjRibOut) {
        for p in &self.withdraw {
            rib.remove(p);
        }
        for (p, a) in &self.announce {
            rib.insert(*p, a.clone());
        }
    }
}

/// The difference that turns `old` into `new`, in one merge pass over both (sorted) maps.
pub fn diff(old: &AdjRibOut, new: &AdjRibOut) -> RibDiff {
    let mut out = RibDiff::default();
    let mut o = old.iter().peekable();
    let mut n = new.iter().peekable();
    loop {
        match (o.peek(), n.peek()) {
            (None, None) => break,
            (Some((op, _)), None) => {
                out.withdraw.insert(**op);
                o.next();
            }
            (None, Some((np, na))) => {
                out.announce.insert(**np, (*na).clone());
                n.next();
            }
            (Some((op, oa)), Some((np, na))) => match op.cmp(np) {
                std::cmp::Ordering::Less => {
                    out.withdraw.insert(**op);
                    o.next();
                }
                std::cmp::Ordering::Greater => {
                    out.announce.insert(**np, (*na).clone());
                    n.next();
                }
                std::cmp::Ordering::Equal => {
                    if oa != na {
                        out.announce.insert(**np, (*na).clone());
                    }
                    o.next();
                    n.next();
                }
            },
        }
    }
    out
}

/// What UPDATEs of one session carry besides the routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    pub my_asn: u32,
    pub ibgp: bool,
    /// 4-octet AS numbers were negotiated. Without, an ASN above 65535 costs an extra
    /// AS4_PATH attribute (RFC 6793), which sizes account for.
    pub four_octet_as: bool,
    /// NEXT_HOP for IPv4 routes: the node's IPv4 address on the session.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Global next hop for IPv6 routes (RFC 2545): the node's IPv6 address on the session.
    pub next_hop_v6: Option<Ipv6Addr>,
}

/// The UPDATEs for a difference, and the routes they could not carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Updates {
    /// Withdrawals first, then announcements grouped by attributes.
    pub messages: Vec<Update>,
    /// Announcements left out, with why (no next hop of their family on the session,
    /// or attributes too large for one message).
    pub unsendable: Vec<(IpNet, &'static str)>,
}

/// Bytes a prefix takes in NLRI or withdrawn routes: a length octet and the significant
/// octets (RFC 4271 §4.3).
pub fn prefix_len_bytes(p: &IpNet) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

/// Header bytes of a path attribute whose value is `len` bytes (extended length above
/// 255, RFC 4271 §4.3).
fn attr_header(len: usize) -> usize {
    if len > 255 { 4 } else { 3 }
}

/// Bytes of the attributes common to every route of `attrs` on a session, without the
/// next hop: ORIGIN, AS_PATH (and AS4_PATH), LOCAL_PREF, COMMUNITIES, LARGE_COMMUNITY.
fn common_attrs_len(attrs: &RouteAttrs, s: &SessionParams) -> usize {
    let origin = 3 + 1;
    let as_len = if s.four_octet_as { 4 } else { 2 };
    let as_path = if s.ibgp { 3 } else { 3 + 2 + as_len };
    let as4_path = if !s.ibgp && !s.four_octet_as && s.my_asn > u32::from(u16::MAX) {
        3 + 2 + 4
    } else {
        0
    };
    let local_pref = if attrs.local_pref.is_some() { 3 + 4 } else { 0 };
    let comm = match attrs.communities.len() * 4 {
        0 => 0,
        n => attr_header(n) + n,
    };
    let large = match attrs.large_communities.len() * 12 {
        0 => 0,
        n => attr_header(n) + n,
    };
    origin + as_path + as4_path + local_pref + comm + large
}

/// Fixed bytes of an UPDATE: header and the two length fields.
const UPDATE_FIXED: usize = HEADER_LEN + 2 + 2;
/// MP_REACH_NLRI / MP_UNREACH_NLRI headers are counted extended: the size of their value
/// is not known until the prefixes are packed, and an encoder may well always extend.
const MP_ATTR_HEADER: usize = 4;

/// The encoded size of an UPDATE as built here (an upper bound when AS4_PATH is
/// counted for a 2-octet session), for checking what [`updates`] produces.
pub fn update_len(u: &Update, four_octet_as: bool) -> usize {
    let a = &u.attributes;
    let mut len = UPDATE_FIXED;
    len += u
        .withdrawn
        .iter()
        .map(|p| prefix_len_bytes(&IpNet::V4(*p)))
        .sum::<usize>();
    len += u
        .nlri
        .iter()
        .map(|p| prefix_len_bytes(&IpNet::V4(*p)))
        .sum::<usize>();
    if a.origin.is_some() {
        len += 4;
    }
    if let Some(path) = &a.as_path {
        let as_len = if four_octet_as { 4 } else { 2 };
        let v: usize = path.iter().map(|s| 2 + as_len * s.asns.len()).sum();
        len += attr_header(v) + v;
        let wide = path
            .iter()
            .flat_map(|s| &s.asns)
            .any(|&asn| asn > u32::from(u16::MAX));
        if !four_octet_as && wide {
            let v4: usize = path.iter().map(|s| 2 + 4 * s.asns.len()).sum();
            len += attr_header(v4) + v4;
        }
    }
    if a.next_hop.is_some() {
        len += 7;
    }
    if a.local_pref.is_some() {
        len += 7;
    }
    if !a.communities.is_empty() {
        len += attr_header(a.communities.len() * 4) + a.communities.len() * 4;
    }
    if !a.large_communities.is_empty() {
        len += attr_header(a.large_communities.len() * 12) + a.large_communities.len() * 12;
    }
    if let Some(r) = &a.mp_reach {
        let nh = match r.next_hop {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 16,
        } + if r.link_local_next_hop.is_some() {
            16
        } else {
            0
        };
        len += MP_ATTR_HEADER + 5 + nh + r.nlri.iter().map(prefix_len_bytes).sum::<usize>();
    }
    if let Some(w) = &a.mp_unreach {
        len += MP_ATTR_HEADER + 3 + w.withdrawn.iter().map(prefix_len_bytes).sum::<usize>();
    }
    len
}

/// The attributes of an announcement, without NLRI and next hop.
fn base_attributes(attrs: &RouteAttrs, s: &SessionParams) -> Attributes {
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(if s.ibgp {
            Vec::new()
        } else {
            vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: vec![s.my_asn],
            }]
        }),
        local_pref: attrs.local_pref,
        communities: attrs.communities.iter().copied().collect(),
        large_communities: attrs.large_communities.iter().copied().collect(),
        ..Attributes::default()
    }
}

/// Splits `prefixes` into runs whose encoded NLRI fits in `room` bytes each.
fn chunks<P: Copy>(prefixes: &[P], room: usize, size: impl Fn(&P) -> usize) -> Vec<Vec<P>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut used = 0;
    for p in prefixes {
        let n = size(p);
        if used + n > room && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(*p);
        used += n;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The UPDATE messages carrying `d` on a session: IPv4 withdrawals in the withdrawn
/// routes field, IPv6 ones in MP_UNREACH_NLRI; IPv4 announcements as NLRI with
/// NEXT_HOP, IPv6 ones in MP_REACH_NLRI with the global next hop; every message at most
/// 4096 bytes, each prefix in exactly one message.
pub fn updates(d: &RibDiff, s: &SessionParams) -> Updates {
    let mut out = Updates::default();
    let v4_w: Vec<Ipv4Net> = d
        .withdraw
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
        .collect();
    let v6_w: Vec<IpNet> = d
        .withdraw
        .iter()
        .filter(|p| p.addr().is_ipv6())
        .copied()
        .collect();
    let room = MAX_MESSAGE_LEN - UPDATE_FIXED;
    for run in chunks(&v4_w, room, |p| prefix_len_bytes(&IpNet::V4(*p))) {
        out.messages.push(Update {
            withdrawn: run,
            ..Update::default()
        });
    }
    for run in chunks(&v6_w, room - MP_ATTR_HEADER - 3, prefix_len_bytes) {
        out.messages.push(Update {
            attributes: Attributes {
                mp_unreach: Some(MpUnreach {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    withdrawn: run,
                }),
                ..Attributes::default()
            },
            ..Update::default()
        });
    }

    let mut groups: BTreeMap<&RouteAttrs, (Vec<Ipv4Net>, Vec<IpNet>)> = BTreeMap::new();
    for (p, a) in &d.announce {
        let g = groups.entry(a).or_default();
        match p {
            IpNet::V4(n) => g.0.push(*n),
            IpNet::V6(_) => g.1.push(*p),
        }
    }
    for (attrs, (v4, v6)) in groups {
        let common = common_attrs_len(attrs, s);
        if !v4.is_empty() {
            let fixed = UPDATE_FIXED + common + 7;
            match (
                s.next_hop_v4,
                MAX_MESSAGE_LEN.checked_sub(fixed).filter(|r| *r >= 5),
            ) {
                (None, _) => out.unsendable.extend(
                    v4.iter()
                        .map(|p| (IpNet::V4(*p), "no IPv4 next hop on this session")),
                ),
                (_, None) => out.unsendable.extend(
                    v4.iter()
                        .map(|p| (IpNet::V4(*p), "attributes too large for one UPDATE")),
                ),
                (Some(nh), Some(room)) => {
                    for run in chunks(&v4, room, |p| prefix_len_bytes(&IpNet::V4(*p))) {
                        let mut attributes = base_attributes(attrs, s);
                        attributes.next_hop = Some(nh);
                        out.messages.push(Update {
                            attributes,
                            nlri: run,
                            ..Update::default()
                        });
                    }
                }
            }
        }
        if !v6.is_empty() {
            let fixed = UPDATE_FIXED + common + MP_ATTR_HEADER + 5 + 16;
            match (
                s.next_hop_v6,
                MAX_MESSAGE_LEN.checked_sub(fixed).filter(|r| *r >= 17),
            ) {
                (None, _) => out
                    .unsendable
                    .extend(v6.iter().map(|p| (*p, "no IPv6 next hop on this session"))),
                (_, None) => out.unsendable.extend(
                    v6.iter()
                        .map(|p| (*p, "attributes too large for one UPDATE")),
                ),
                (Some(nh), Some(room)) => {
                    for run in chunks(&v6, room, prefix_len_bytes) {
                        let mut attributes = base_attributes(attrs, s);
                        attributes.mp_reach = Some(MpReach {
                            afi: Afi::IPV6,
                            safi: Safi::UNICAST,
                            next_hop: IpAddr::V6(nh),
                            link_local_next_hop: None,
                            nlri: run,
                        });
                        out.messages.push(Update {
                            attributes,
                            ..Update::default()
                        });
                    }
                }
            }
        }
    }
    out
}

/// The End-of-RIB markers for the families of a session (RFC 4724 §2), sent after the
/// first full table.
pub fn end_of_rib(families: &[(Afi, Safi)]) -> Vec<Update> {
    families
        .iter()
        .map(|&(afi, safi)| Update::end_of_rib(afi, safi))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn params(ibgp: bool) -> SessionParams {
        SessionParams {
            my_asn: 64512,
            ibgp,
            four_octet_as: true,
            next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
            next_hop_v6: Some("2001:db8:51::11".parse().unwrap()),
        }
    }

    #[test]
    fn one_route_each_way_builds_the_expected_update() {
        let attrs = RouteAttrs {
            local_pref: Some(150),
            communities: [Community::new(64512, 100)].into(),
            ..RouteAttrs::default()
        };
        let d = RibDiff {
            withdraw: [net("203.0.113.9/32"), net("2001:db8:113::9/128")].into(),
            announce: [
                (net("203.0.113.5/32"), Arc::new(attrs.clone())),
                (net("2001:db8:113::5/128"), Arc::new(attrs.clone())),
            ]
            .into(),
        };
        let u = updates(&d, &params(true));
        assert!(u.unsendable.is_empty());
        assert_eq!(u.messages.len(), 4);
        assert_eq!(
            u.messages[0].withdrawn,
            [net("203.0.113.9/32").to_string().parse().unwrap()]
        );
        let unreach = u.messages[1].attributes.mp_unreach.as_ref().unwrap();
        assert_eq!(unreach.withdrawn, [net("2001:db8:113::9/128")]);
        let v4 = &u.messages[2];
        assert_eq!(v4.attributes.origin, Some(Origin::Igp));
        assert_eq!(v4.attributes.as_path, Some(vec![]), "iBGP: empty AS_PATH");
        assert_eq!(v4.attributes.local_pref, Some(150));
        assert_eq!(
            v4.attributes.next_hop,
            Some(Ipv4Addr::new(198, 51, 100, 11))
        );
        assert_eq!(v4.nlri.len(), 1);
        let reach = u.messages[3].attributes.mp_reach.as_ref().unwrap();
        assert_eq!(reach.next_hop, "2001:db8:51::11".parse::<IpAddr>().unwrap());
        assert_eq!(reach.nlri, [net("2001:db8:113::5/128")]);
        assert_eq!(u.messages[3].attributes.next_hop, None);

        let ebgp = updates(&d, &params(false));
        assert_eq!(
            ebgp.messages[2].attributes.as_path,
            Some(vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: vec![64512]
            }])
        );
        // Sizes by hand: 23 fixed + ORIGIN 4 + AS_PATH 3 + NEXT_HOP 7 + LOCAL_PREF 7
        // + COMMUNITIES 7 + one /32 (5).
        assert_eq!(update_len(&u.messages[2], true), 23 + 4 + 3 + 7 + 7 + 7 + 5);
        // 23 + one /32 withdrawn (5).
        assert_eq!(update_len(&u.messages[0], true), 28);
    }

    #[test]
    fn missing_next_hop_leaves_the_family_out() {
        let d = RibDiff {
            withdraw: BTreeSet::new(),
            announce: [
                (net("203.0.113.5/32"), Arc::default()),
                (net("2001:db8:113::5/128"), Arc::default()),
            ]
            .into(),
        };
        let mut p = params(false);
        p.next_hop_v6 = None;
        let u = updates(&d, &p);
        assert_eq!(u.messages.len(), 1);
        assert_eq!(
            u.unsendable,
            [(
                net("2001:db8:113::5/128"),
                "no IPv6 next hop on this session"
            )]
        );
    }

    #[test]
    fn end_of_rib_per_family() {
        let e = end_of_rib(&[(Afi::IPV4, Safi::UNICAST), (Afi::IPV6, Safi::UNICAST)]);
        assert_eq!(e[0], Update::default());
        assert_eq!(e[1].end_of_rib_family(), Some((Afi::IPV6, Safi::UNICAST)));
    }
}
