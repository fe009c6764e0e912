//! Layer2 sockets: the only place where ARP and NDP frames meet the kernel.
//!
//! One `AF_PACKET`/`SOCK_RAW` socket per interface and per kind of frame
//! ([`Kind`]), bound to the interface index and to one ethertype, with a classic BPF
//! filter attached **before** the socket is bound, so not a single frame reaches user
//! space unfiltered:
//! - [`Kind::Arp`] (`ETH_P_ARP`): every ARP frame addressed to this host (broadcast or
//!   our MAC). ARP replies are kept, not only requests, because another station
//!   claiming one of our IPs shows up in them (`arp::conflict`).
//! - [`Kind::NeighborSolicitation`] (`ETH_P_IPV6`): ICMPv6 type 135 with hop limit 255
//!   and no extension header, and nothing else, so the speaker does not copy the
//!   host's IPv6 traffic.
//! - [`Kind::NeighborAdvertisement`]: the same for type 136; the speaker does not need it
//!   to answer, it exists for conflict detection and for tests that look at answers.
//!
//! Every filter also drops frames the kernel marks as not for this host
//! (`PACKET_OTHERHOST`, seen only while something else put the NIC in promiscuous
//! mode), our host's own outgoing frames (`PACKET_OUTGOING`), and frames that carried
//! an 802.1Q tag (an answer to those would have to be tagged; the speaker answers on
//! the VLAN interface instead, where the tag is gone). Promiscuous mode is never
//! requested.
//!
//! Neighbor Solicitations for an address are sent to its solicited-node multicast
//! group, 33:33:ff:xx:yy:zz on Ethernet, which a NIC drops unless that group is in its
//! filter. [`Multicast`] adds the group with `PACKET_ADD_MEMBERSHIP` while at least one
//! owned address maps to it (several addresses share a group when their low 24 bits
//! match, so it is reference counted), and the kernel removes every membership of a
//! socket when the socket closes, so a crashed speaker leaves no group behind.
//!
//! Sockets are non-blocking and registered with tokio through [`AsyncFd`]; frames are
//! sent with `sendto` to the interface index. All `unsafe` in the speaker's Layer2
//! path is here, each block around one libc call.
//!
//! Privileges: `CAP_NET_RAW` and nothing else (opening, filtering, binding and
//! `PACKET_ADD_MEMBERSHIP` were checked with a bounding set of `net_raw` alone).
//! Kernel behaviour worth knowing: when the interface goes down the kernel unhooks the
//! socket and queues one `ENETDOWN` on it, and hooks it again when the interface comes
//! back up, so the same socket keeps working across a link bounce; when the interface
//! is deleted the socket stays silent forever, so its owner must be dropped then.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use thiserror::Error;
use tokio::io::unix::AsyncFd;

use super::ether::{ETHERTYPE_ARP, ETHERTYPE_IPV6, MacAddr};

/// How long [`PacketSocket::send`] waits for room in the socket's send buffer before it
/// gives up on a frame. Room normally comes back within microseconds (the NIC or veth
/// peer frees the buffers); a full buffer for this long means the link is stuck, and
/// waiting longer would only delay every other frame of the caller.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Which frames a [`PacketSocket`] receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// ARP requests and replies addressed to this host.
    Arp,
    /// ICMPv6 Neighbor Solicitations (type 135) addressed to this host.
    NeighborSolicitation,
    /// ICMPv6 Neighbor Advertisements (type 136) addressed to this host.
    NeighborAdvertisement,
}

impl Kind {
    /// The ethertype the socket is bound to, and that its frames carry.
    pub const fn ethertype(self) -> u16 {
        match self {
            Kind::Arp => ETHERTYPE_ARP,
            Kind::NeighborSolicitation | Kind::NeighborAdvertisement => ETHERTYPE_IPV6,
        }
    }

    /// The classic BPF program attached to sockets of this kind.
    pub fn filter(self) -> &'static [libc::sock_filter] {
        match self {
            Kind::Arp => &ARP_FILTER,
            Kind::NeighborSolicitation => &NS_FILTER,
            Kind::NeighborAdvertisement => &NA_FILTER,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Arp => "ARP",
            Kind::NeighborSolicitation => "Neighbor Solicitation",
            Kind::NeighborAdvertisement => "Neighbor Advertisement",
        }
    }
}

/// A failed socket operation, with the interface and the step that failed.
#[derive(Debug, Error)]
pub enum IoError {
    #[error("{kind} socket on interface index {ifindex}: {step}: {source}")]
    Open {
        kind: &'static str,
        ifindex: u32,
        step: &'static str,
        source: io::Error,
    },
    #[error("receiving on the {kind} socket of interface index {ifindex}: {source}")]
    Recv {
        kind: &'static str,
        ifindex: u32,
        source: io::Error,
    },
    #[error("sending a {len}-byte frame on interface index {ifindex}: {source}")]
    Send {
        ifindex: u32,
        len: usize,
        source: io::Error,
    },
    #[error(
        "sending a {len}-byte frame on interface index {ifindex}: send buffer still full after {SEND_TIMEOUT:?}"
    )]
    SendTimeout { ifindex: u32, len: usize },
    #[error("{action} multicast group {group} on interface index {ifindex}: {source}")]
    Membership {
        action: &'static str,
        group: MacAddr,
        ifindex: u32,
        source: io::Error,
    },
}

impl IoError {
    /// The operating-system error behind this one, if any (ENETDOWN, ENOBUFS, …).
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            IoError::Open { source, .. }
            | IoError::Recv { source, .. }
            | IoError::Send { source, .. }
            | IoError::Membership { source, .. } => Some(source),
            IoError::SendTimeout { .. } => None,
        }
    }
}

/// What [`PacketSocket::recv`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A whole frame of this many bytes, at the start of the buffer.
    Frame(usize),
    /// A frame of this many bytes that did not fit in the buffer and was cut; its bytes
    /// are not worth parsing.
    Truncated(usize),
}

/// A non-blocking `AF_PACKET` socket bound to one interface and one [`Kind`].
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
    kind: Kind,
}

impl PacketSocket {
    /// Opens a socket receiving `kind` frames on interface `ifindex`. Needs
    /// `CAP_NET_RAW` and must be called inside a tokio runtime with I/O enabled. The
    /// socket belongs to the network namespace of the calling thread.
    pub fn open(ifindex: u32, kind: Kind) -> Result<Self, IoError> {
        let fail = |step| {
            move |source| IoError::Open {
                kind: kind.name(),
                ifindex,
                step,
                source,
            }
        };
        // Protocol 0: the socket receives nothing until `bind` names a protocol, so no
        // frame can queue up before the filter is in place.
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(fail("socket")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        attach_filter(fd.as_raw_fd(), kind.filter()).map_err(fail("SO_ATTACH_FILTER"))?;
        let addr = link_address(ifindex, kind.ethertype(), MacAddr::ZERO);
        // SAFETY: `addr` is a fully initialised sockaddr_ll and the length passed is its
        // size; the kernel only reads it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                socklen::<libc::sockaddr_ll>(),
            )
        };
        if rc < 0 {
            return Err(fail("bind")(io::Error::last_os_error()));
        }
        // register() panics outside a runtime: refuse here with an error instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(fail("registering with the tokio reactor")(
                io::Error::other("not called inside a tokio runtime"),
            ));
        }
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, so the descriptor stays open
        // and unchanged for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register(fd) }
            .map_err(|e| fail("registering with the tokio reactor")(io::Error::from(e)))?;
        Ok(PacketSocket { fd, ifindex, kind })
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The kind of frames the socket receives.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Waits for the next frame and copies it into `buf` (Ethernet header included).
    ///
    /// Errors are those the kernel queues on the socket, notably `ENETDOWN` once when
    /// the interface goes down; the socket keeps working when it comes back up, so a
    /// caller logs them and calls `recv` again.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Received, IoError> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|source| self.recv_error(source))?;
            match guard.try_io(|fd| recv_truncating(fd.get_ref().as_raw_fd(), buf)) {
                Ok(Ok(len)) if len > buf.len() => return Ok(Received::Truncated(len)),
                Ok(Ok(len)) => return Ok(Received::Frame(len)),
                Ok(Err(source)) => return Err(self.recv_error(source)),
                // Readiness was stale: try_io cleared it, wait for the next edge.
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives a frame if one is queued, without waiting: `Ok(None)` when none is.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<Option<Received>, IoError> {
        match recv_truncating(self.fd.get_ref().as_raw_fd(), buf) {
            Ok(len) if len > buf.len() => Ok(Some(Received::Truncated(len))),
            Ok(len) => Ok(Some(Received::Frame(len))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(source) => Err(self.recv_error(source)),
        }
    }

    /// Sends one complete Ethernet frame out of the interface, now if the send buffer
    /// has room (the usual case: no await point is reached), else within
    /// [`SEND_TIMEOUT`].
    pub async fn send(&self, frame: &[u8]) -> Result<(), IoError> {
        let send_error = |source| IoError::Send {
            ifindex: self.ifindex,
            len: frame.len(),
            source,
        };
        match self.send_now(frame) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other.map_err(send_error),
        }
        let wait = async {
            loop {
                let mut guard = self.fd.writable().await?;
                match guard.try_io(|fd| send_to(fd.get_ref().as_raw_fd(), self.ifindex, frame)) {
                    Ok(result) => return result,
                    Err(_would_block) => continue,
                }
            }
        };
        match tokio::time::timeout(SEND_TIMEOUT, wait).await {
            Ok(result) => result.map_err(send_error),
            Err(_elapsed) => Err(IoError::SendTimeout {
                ifindex: self.ifindex,
                len: frame.len(),
            }),
        }
    }

    fn send_now(&self, frame: &[u8]) -> io::Result<()> {
        send_to(self.fd.get_ref().as_raw_fd(), self.ifindex, frame)
    }

    /// Adds Ethernet multicast `group` to the interface's filter for this socket. Prefer
    /// [`Multicast`], which counts references.
    pub fn add_membership(&self, group: MacAddr) -> Result<(), IoError> {
        self.membership(libc::PACKET_ADD_MEMBERSHIP, group)
            .map_err(|source| IoError::Membership {
                action: "joining",
                group,
                ifindex: self.ifindex,
                source,
            })
    }

    /// Removes what [`add_membership`](Self::add_membership) added.
    pub fn drop_membership(&self, group: MacAddr) -> Result<(), IoError> {
        self.membership(libc::PACKET_DROP_MEMBERSHIP, group)
            .map_err(|source| IoError::Membership {
                action: "leaving",
                group,
                ifindex: self.ifindex,
                source,
            })
    }

    fn membership(&self, option: libc::c_int, group: MacAddr) -> io::Result<()> {
        let mut address = [0u8; 8];
        address[..6].copy_from_slice(&group.octets());
        let request = libc::packet_mreq {
            mr_ifindex: ifindex_c(self.ifindex)?,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address: address,
        };
        setsockopt(
            self.fd.get_ref().as_raw_fd(),
            libc::SOL_PACKET,
            option,
            &request,
        )
    }

    fn recv_error(&self, source: io::Error) -> IoError {
        IoError::Recv {
            kind: self.kind.name(),
            ifindex: self.ifindex,
            source,
        }
    }
}

/// The solicited-node groups one NDP socket has joined, counted per group so that the
/// group is left only when the last owned address that maps to it goes.
#[derive(Debug, Default)]
pub struct Multicast {
    refs: BTreeMap<MacAddr, usize>,
}

impl Multicast {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one reference on `group`, joining it on `socket` if it is the first.
    /// Nothing is counted when joining fails, so the caller may simply retry later.
    pub fn join(&mut self, socket: &PacketSocket, group: MacAddr) -> Result<(), IoError> {
        match self.refs.get_mut(&group) {
            Some(count) => *count = count.saturating_add(1),
            None => {
                socket.add_membership(group)?;
                self.refs.insert(group, 1);
            }
        }
        Ok(())
    }

    /// Drops one reference on `group`, leaving it on `socket` with the last one. A group
    /// never joined is ignored.
    pub fn leave(&mut self, socket: &PacketSocket, group: MacAddr) -> Result<(), IoError> {
        let Some(count) = self.refs.get_mut(&group) else {
            return Ok(());
        };
        if *count > 1 {
            *count -= 1;
            return Ok(());
        }
        self.refs.remove(&group);
        socket.drop_membership(group)
    }

    /// The groups currently joined, ascending.
    pub fn groups(&self) -> impl Iterator<Item = MacAddr> + '_ {
        self.refs.keys().copied()
    }

    /// How many owned addresses hold `group`.
    pub fn references(&self, group: MacAddr) -> usize {
        self.refs.get(&group).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------
// BPF programs. Offsets are into the whole frame: SOCK_RAW sockets see the Ethernet
// header, and 802.1Q frames are rejected before any offset is used, so the header is
// always 14 bytes.

const RET_ACCEPT: u32 = 0x0004_0000; // accept up to 256 KiB, i.e. the whole frame
const ETH_TYPE: u32 = 12;
const IPV6_NEXT_HEADER: u32 = 14 + 6;
const IPV6_HOP_LIMIT: u32 = 14 + 7;
const ICMPV6_TYPE: u32 = 14 + 40;
const NEXT_HEADER_ICMPV6: u32 = 58;
const ND_HOP_LIMIT: u32 = 255;
const ICMPV6_NS: u32 = 135;
const ICMPV6_NA: u32 = 136;
/// `PACKET_HOST`, `PACKET_BROADCAST` and `PACKET_MULTICAST` are 0, 1, 2; anything
/// above (`OTHERHOST`, `OUTGOING`, `LOOPBACK`, …) is not a frame addressed to us.
const PKTTYPE_MAX_FOR_US: u32 = 2;

/// Offset of a Linux ancillary load (`SKF_AD_OFF + n`), as BPF encodes it.
const fn ancillary(n: libc::c_int) -> u32 {
    (libc::SKF_AD_OFF + n) as u32
}

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LD_W_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const LD_H_ABS: u32 = libc::BPF_LD | libc::BPF_H | libc::BPF_ABS;
const LD_B_ABS: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGT: u32 = libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

/// The checks every program starts with: addressed to us, untagged, right ethertype.
/// `to_reject` is the jump distance from the *last* of these to the final `ret #0`.
const fn common(ethertype: u16, to_reject: u8) -> [libc::sock_filter; 6] {
    [
        stmt(LD_W_ABS, ancillary(libc::SKF_AD_PKTTYPE)),
        jump(JGT, PKTTYPE_MAX_FOR_US, to_reject + 4, 0),
        stmt(LD_W_ABS, ancillary(libc::SKF_AD_VLAN_TAG_PRESENT)),
        jump(JEQ, 0, 0, to_reject + 2),
        stmt(LD_H_ABS, ETH_TYPE),
        jump(JEQ, ethertype as u32, 0, to_reject),
    ]
}

const fn arp_filter() -> [libc::sock_filter; 8] {
    let c = common(ETHERTYPE_ARP, 1);
    [
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        stmt(RET, RET_ACCEPT),
        stmt(RET, 0),
    ]
}

const fn icmpv6_filter(icmp_type: u32) -> [libc::sock_filter; 14] {
    let c = common(ETHERTYPE_IPV6, 7);
    [
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        stmt(LD_B_ABS, IPV6_NEXT_HEADER),
        jump(JEQ, NEXT_HEADER_ICMPV6, 0, 5),
        stmt(LD_B_ABS, IPV6_HOP_LIMIT),
        jump(JEQ, ND_HOP_LIMIT, 0, 3),
        stmt(LD_B_ABS, ICMPV6_TYPE),
        jump(JEQ, icmp_type, 0, 1),
        stmt(RET, RET_ACCEPT),
        stmt(RET, 0),
    ]
}

static ARP_FILTER: [libc::sock_filter; 8] = arp_filter();
static NS_FILTER: [libc::sock_filter; 14] = icmpv6_filter(ICMPV6_NS);
static NA_FILTER: [libc::sock_filter; 14] = icmpv6_filter(ICMPV6_NA);

// ---------------------------------------------------------------------------------
// libc wrappers.

fn attach_filter(fd: RawFd, program: &'static [libc::sock_filter]) -> io::Result<()> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel copies the program and never writes through this pointer.
        filter: program.as_ptr().cast_mut(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised T and the length passed is its size;
    // the kernel only reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast::<c_void>(),
            socklen::<T>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// recv(2) with `MSG_TRUNC`: returns the frame's real length even when it exceeds
/// `buf`, so a cut frame is recognised instead of parsed.
fn recv_truncating(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which is valid and
    // exclusively borrowed for the call.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast::<c_void>(),
            buf.len(),
            libc::MSG_TRUNC,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn send_to(fd: RawFd, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    // The protocol sets skb->protocol; for SOCK_RAW the frame carries its own header,
    // so the destination MAC here is informational only.
    let (dst, ethertype) = match frame {
        [d0, d1, d2, d3, d4, d5, _, _, _, _, _, _, t0, t1, ..] => (
            MacAddr([*d0, *d1, *d2, *d3, *d4, *d5]),
            u16::from_be_bytes([*t0, *t1]),
        ),
        _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    let addr = link_address(ifindex, ethertype, dst);
    // SAFETY: `frame` is valid for `frame.len()` bytes and `addr` is an initialised
    // sockaddr_ll of the length passed; the kernel only reads both.
    let n = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr().cast::<c_void>(),
            frame.len(),
            0,
            (&raw const addr).cast::<libc::sockaddr>(),
            socklen::<libc::sockaddr_ll>(),
        )
    };
    match usize::try_from(n) {
        Ok(sent) if sent == frame.len() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "frame sent in part",
        )),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

fn link_address(ifindex: u32, ethertype: u16, dst: MacAddr) -> libc::sockaddr_ll {
    let mut addr = [0u8; 8];
    addr[..6].copy_from_slice(&dst.octets());
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: ethertype.to_be(),
        // An index that does not fit a c_int cannot exist; 0 makes bind/sendto fail
        // with a clear ENODEV/ENXIO rather than hit another interface.
        sll_ifindex: ifindex_c(ifindex).unwrap_or(0),
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: addr,
    }
}

fn ifindex_c(ifindex: u32) -> io::Result<libc::c_int> {
    libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn socklen<T>() -> libc::socklen_t {
    // Socket structures are a few dozen bytes.
    mem::size_of::<T>() as libc::socklen_t
}

#[cfg(test)]
mod tests {
    //! The BPF programs run here on a small classic-BPF interpreter (only the
    //! instructions they use), fed with frames built by the codecs. The kernel's own
    //! verifier sees them in the namespace tests.

    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::l2::{arp, ndp};

    const HOST: u32 = 0;
    const BROADCAST: u32 = 1;
    const MULTICAST: u32 = 2;
    const OTHERHOST: u32 = 3;
    const OUTGOING: u32 = 4;

    /// Runs `program` on `frame`; returns the accepted length (0 = dropped), or None if
    /// the program misbehaves (jump out of range, read past the end, unknown opcode).
    fn run(program: &[libc::sock_filter], frame: &[u8], pkttype: u32, vlan: bool) -> Option<u32> {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        for _ in 0..program.len() {
            let insn = program.get(pc)?;
            let code = u32::from(insn.code);
            pc += 1;
            match code {
                c if c == LD_W_ABS || c == LD_H_ABS || c == LD_B_ABS => {
                    a = if insn.k == ancillary(libc::SKF_AD_PKTTYPE) {
                        pkttype
                    } else if insn.k == ancillary(libc::SKF_AD_VLAN_TAG_PRESENT) {
                        u32::from(vlan)
                    } else {
                        let at = usize::try_from(insn.k).ok()?;
                        let size = match c {
                            c if c == LD_W_ABS => 4,
                            c if c == LD_H_ABS => 2,
                            _ => 1,
                        };
                        let bytes = frame.get(at..at + size)?;
                        bytes.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b))
                    };
                }
                c if c == JEQ || c == JGT => {
                    let taken = if c == JEQ { a == insn.k } else { a > insn.k };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                c if c == RET => return Some(insn.k),
                _ => return None,
            }
        }
        None
    }

    fn accepted(kind: Kind, frame: &[u8], pkttype: u32) -> bool {
        run(kind.filter(), frame, pkttype, false).expect("filter ran off its end") > 0
    }

    const US: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const THEM: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn arp_request() -> Vec<u8> {
        arp::build(&arp::ArpFrame {
            eth_dst: MacAddr::BROADCAST,
            eth_src: THEM,
            packet: arp::ArpPacket {
                op: arp::Op::Request,
                sender_mac: THEM,
                sender_ip: Ipv4Addr::new(198, 51, 100, 100),
                target_mac: MacAddr::ZERO,
                target_ip: Ipv4Addr::new(198, 51, 100, 200),
            },
        })
    }

    fn solicitation() -> Vec<u8> {
        let target: Ipv6Addr = "2001:db8::200".parse().expect("literal");
        ndp::build_solicitation(&ndp::NeighborSolicitation {
            eth_dst: ndp::solicited_node_mac(target),
            eth_src: THEM,
            src: "2001:db8::100".parse().expect("literal"),
            dst: ndp::solicited_node_multicast(target),
            target,
            source_lla: Some(THEM),
        })
    }

    #[test]
    fn arp_filter_keeps_arp_addressed_to_us() {
        let request = arp_request();
        assert!(accepted(Kind::Arp, &request, BROADCAST));
        assert!(accepted(Kind::Arp, &request, HOST));
        assert!(accepted(
            Kind::Arp,
            &arp::gratuitous_reply(THEM, Ipv4Addr::new(198, 51, 100, 1)),
            BROADCAST
        ));
        // Flooded to us only because of promiscuous mode, or sent by this host.
        assert!(!accepted(Kind::Arp, &request, OTHERHOST));
        assert!(!accepted(Kind::Arp, &request, OUTGOING));
        // Tagged, or not ARP at all.
        assert_eq!(run(Kind::Arp.filter(), &request, BROADCAST, true), Some(0));
        assert!(!accepted(Kind::Arp, &solicitation(), MULTICAST));
    }

    #[test]
    fn ns_filter_keeps_only_solicitations() {
        let ns = solicitation();
        assert!(accepted(Kind::NeighborSolicitation, &ns, MULTICAST));
        assert!(accepted(Kind::NeighborSolicitation, &ns, HOST));
        assert!(!accepted(Kind::NeighborSolicitation, &ns, OTHERHOST));
        assert!(!accepted(Kind::NeighborSolicitation, &ns, OUTGOING));
        assert_eq!(
            run(Kind::NeighborSolicitation.filter(), &ns, MULTICAST, true),
            Some(0)
        );
        assert!(!accepted(Kind::NeighborAdvertisement, &ns, MULTICAST));

        let na = ndp::unsolicited_advertisement(
            US,
            "fe80::1".parse().expect("literal"),
            "2001:db8::200".parse().expect("literal"),
        );
        assert!(!accepted(Kind::NeighborSolicitation, &na, MULTICAST));
        assert!(accepted(Kind::NeighborAdvertisement, &na, MULTICAST));

        // Same message with a hop limit below 255 (crossed a router), with another next
        // header, and an ICMPv6 echo request: all dropped.
        let mut routed = ns.clone();
        routed[21] = 254;
        assert!(!accepted(Kind::NeighborSolicitation, &routed, MULTICAST));
        let mut udp = ns.clone();
        udp[20] = 17;
        assert!(!accepted(Kind::NeighborSolicitation, &udp, MULTICAST));
        let mut echo = ns.clone();
        echo[54] = 128;
        assert!(!accepted(Kind::NeighborSolicitation, &echo, MULTICAST));
        assert!(!accepted(
            Kind::NeighborSolicitation,
            &arp_request(),
            BROADCAST
        ));
        // Too short to hold the fields: the kernel drops such frames (a load past the
        // end returns 0); the interpreter reports it as a read past the end.
        assert_eq!(
            run(
                Kind::NeighborSolicitation.filter(),
                &ns[..30],
                MULTICAST,
                false
            ),
            None
        );
    }

    #[test]
    fn every_jump_lands_inside_its_program() {
        for kind in [
            Kind::Arp,
            Kind::NeighborSolicitation,
            Kind::NeighborAdvertisement,
        ] {
            let program = kind.filter();
            for (pc, insn) in program.iter().enumerate() {
                if u32::from(insn.code) & 0x07 == libc::BPF_JMP {
                    let far = pc + 1 + usize::from(insn.jt.max(insn.jf));
                    assert!(
                        far < program.len(),
                        "{kind:?}: jump at {pc} leaves the program"
                    );
                }
            }
            let last = program.last().expect("programs are not empty");
            assert_eq!(
                (u32::from(last.code), last.k),
                (RET, 0),
                "{kind:?} ends in a drop"
            );
        }
    }
}
