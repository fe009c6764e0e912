//! BGP's TCP sockets: dialing a peer (from a chosen source address, with a TCP MD5
//! signature key and the hop limit the session allows) and the passive listener that
//! accepts connections from configured peers only.
//!
//! Hop limit (IPv4 TTL / IPv6 unicast hops) on everything we send, as FRR does by
//! default and MetalLB (FRR mode) therefore does: a directly connected eBGP peer gets
//! 1, so a session can never form across a router by accident; `ebgpMultiHop` and iBGP
//! get 255. See [`hop_limit`].
//!
//! TCP MD5 (RFC 2385) is the kernel's: `TCP_MD5SIG` installs a key for one peer address
//! on a socket; a connecting socket signs its SYN with it, a listening socket requires
//! it of that peer's SYNs and passes it on to the accepted connection. A peer with the
//! wrong key is never answered (the kernel drops its segments and counts
//! `TCPMD5Failure`), so a wrong password shows up as connect timeouts, not as an error.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// BGP's well-known port.
pub const BGP_PORT: u16 = 179;

/// Longest key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("the TCP MD5 password is {0} bytes long; the kernel accepts 1 to 80 bytes")]
    KeyLength(usize),
    #[error("source address {source_addr} cannot reach peer {peer}: not the same address family")]
    FamilyMismatch { source_addr: IpAddr, peer: IpAddr },
    #[error("connecting to {peer} timed out after {after:?}")]
    Timeout { peer: SocketAddr, after: Duration },
    #[error("{what}: {err}")]
    Io {
        what: String,
        #[source]
        err: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SocketError {
    let what = what.into();
    move |err| SocketError::Io { what, err }
}

/// A TCP MD5 signature key (a BGPPeer's `password`), checked against the kernel's limits.
#[derive(Clone, PartialEq, Eq)]
pub struct Md5Key(Vec<u8>);

impl Md5Key {
    pub fn new(password: &[u8]) -> Result<Md5Key, SocketError> {
        if password.is_empty() || password.len() > MAX_KEY_LEN {
            return Err(SocketError::KeyLength(password.len()));
        }
        Ok(Md5Key(password.to_vec()))
    }
}

impl std::fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        write!(f, "Md5Key({} bytes)", self.0.len())
    }
}

/// The hop limit for packets to a peer: 1 for a directly connected eBGP peer (RFC 4271
/// leaves it open; FRR, BIRD and Cisco all default to 1), 255 for an eBGP peer with
/// `ebgpMultiHop` (FRR's `ebgp-multihop` without a count) and for iBGP (FRR's default,
/// iBGP peers are commonly loopbacks several hops away).
pub fn hop_limit(ebgp: bool, multihop: bool) -> u8 {
    if ebgp && !multihop { 1 } else { 255 }
}

/// How to dial one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    pub peer: SocketAddr,
    /// `sourceAddress`: bound before connecting; otherwise the kernel picks by route.
    pub source: Option<IpAddr>,
    pub hop_limit: u8,
    pub key: Option<Md5Key>,
}

/// Opens a TCP connection to a peer as [`Dial`] says, giving up after `timeout`
/// (`connectTime`).
pub async fn connect(dial: &Dial, timeout: Duration) -> Result<TcpStream, SocketError> {
    let peer = dial.peer;
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(io_err("cannot create a TCP socket"))?;
    if let Some(source) = dial.source {
        if source.is_ipv4() != peer.is_ipv4() {
            return Err(SocketError::FamilyMismatch {
                source_addr: source,
                peer: peer.ip(),
            });
        }
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(io_err(format!(
                "cannot bind to source address {source} (is it configured on this node?)"
            )))?;
    }
    set_hop_limit(&socket, peer.ip(), dial.hop_limit)
        .map_err(io_err("cannot set the hop limit"))?;
    if let Some(key) = &dial.key {
        set_md5_key(&socket, peer.ip(), Some(key)).map_err(io_err(format!(
            "cannot set the TCP MD5 key for {}",
            peer.ip()
        )))?;
    }
    socket
        .set_nodelay(true)
        .map_err(io_err("cannot set TCP_NODELAY"))?;
    match tokio::time::timeout(timeout, socket.connect(peer)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(SocketError::Io {
            what: format!("cannot connect to {peer}"),
            err,
        }),
        Err(_) => Err(SocketError::Timeout {
            peer,
            after: timeout,
        }),
    }
}

/// Sets the hop limit on an accepted (or any) connection to `peer`.
pub fn set_stream_hop_limit(stream: &TcpStream, hop_limit: u8) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    set_hop_limit(stream, peer.ip(), hop_limit)?;
    stream.set_nodelay(true)
}

/// The passive side: listening sockets (IPv4 and/or IPv6) that accept configured peers
/// only and hold their MD5 keys.
#[derive(Debug)]
pub struct Listener {
    v4: Option<TcpListener>,
    v6: Option<TcpListener>,
    peers: BTreeMap<IpAddr, Option<Md5Key>>,
}

impl Listener {
    /// Listens on `port` of every IPv4 and every IPv6 address (the IPv6 socket takes
    /// IPv6 only, so each peer's key lives on the socket of its family). A family that
    /// cannot be bound (no IPv6 on the node) is left out; both failing is an error.
    pub fn bind(port: u16) -> Result<Listener, SocketError> {
        let v4 = listen(SocketAddr::from(([0u8; 4], port)));
        let v6 = listen(SocketAddr::from(([0u16; 8], port)));
        match (v4, v6) {
            (Err(e), Err(_)) => Err(e),
            (v4, v6) => Ok(Listener {
                v4: v4.ok(),
                v6: v6.ok(),
                peers: BTreeMap::new(),
            }),
        }
    }

    /// The addresses actually listened on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Makes `peers` the set accepted, each with its MD5 key: keys of peers no longer
    /// present (or whose key changed) are removed from the kernel, new ones installed.
    pub fn set_peers(
        &mut self,
        peers: BTreeMap<IpAddr, Option<Md5Key>>,
    ) -> Result<(), SocketError> {
        let mut first_error = None;
        for (ip, key) in &self.peers {
            if key.is_none() || peers.get(ip) == Some(key) {
                continue;
            }
            if let Some(Err(e)) = self.socket_for(*ip).map(|l| set_md5_key(l, *ip, None)) {
                first_error.get_or_insert(SocketError::Io {
                    what: format!("cannot remove the TCP MD5 key of {ip}"),
                    err: e,
                });
            }
        }
        for (ip, key) in &peers {
            let Some(key) = key else { continue };
            if self.peers.get(ip) == Some(&Some(key.clone())) {
                continue;
            }
            match self.socket_for(*ip) {
                Some(l) => {
                    if let Err(e) = set_md5_key(l, *ip, Some(key)) {
                        first_error.get_or_insert(SocketError::Io {
                            what: format!("cannot set the TCP MD5 key of {ip} on the listener"),
                            err: e,
                        });
                    }
                }
                None => {
                    first_error.get_or_insert(SocketError::Io {
                        what: format!("cannot accept {ip}: no listening socket of its family"),
                        err: io::Error::from(io::ErrorKind::AddrNotAvailable),
                    });
                }
            }
        }
        self.peers = peers;
        first_error.map_or(Ok(()), Err)
    }

    fn socket_for(&self, ip: IpAddr) -> Option<&TcpListener> {
        match ip {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        }
    }

    /// The next connection from a configured peer; connections from anyone else are
    /// closed at once (and reported through `rejected`).
    pub async fn accept(
        &self,
        mut rejected: impl FnMut(SocketAddr),
    ) -> io::Result<(TcpStream, SocketAddr)> {
        loop {
            let (stream, from) = tokio::select! {
                r = accept_on(&self.v4) => r?,
                r = accept_on(&self.v6) => r?,
            };
            // An IPv4 peer could only arrive here as IPv4 (the IPv6 socket is v6-only).
            if self.peers.contains_key(&from.ip()) {
                return Ok((stream, from));
            }
            rejected(from);
            drop(stream);
        }
    }
}

async fn accept_on(l: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn listen(addr: SocketAddr) -> Result<TcpListener, SocketError> {
    let what = || format!("cannot listen on {addr}");
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(io_err(what()))?;
    socket.set_reuseaddr(true).map_err(io_err(what()))?;
    if addr.is_ipv6() {
        set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).map_err(io_err(what()))?;
    }
    socket.bind(addr).map_err(io_err(what()))?;
    socket.listen(64).map_err(io_err(what()))
}

/// `setsockopt` of a `c_int` option.
pub(crate) fn set_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid socket descriptor and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// IPv4 TTL or IPv6 unicast hops, by the peer's family (an IPv6 socket talks to IPv6
/// peers only here: listeners are v6-only and dialing uses the peer's family).
fn set_hop_limit(fd: &impl AsRawFd, peer: IpAddr, hops: u8) -> io::Result<()> {
    match peer {
        IpAddr::V4(_) => set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, hops.into()),
        IpAddr::V6(_) => set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, hops.into()),
    }
}

/// `struct tcp_md5sig` of `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

/// Installs (`Some`) or removes (`None`) the MD5 key for `peer` on a socket.
fn set_md5_key(fd: &impl AsRawFd, peer: IpAddr, key: Option<&Md5Key>) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage and a valid TcpMd5Sig.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match peer {
        IpAddr::V4(ip) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut sig.addr as *mut libc::sockaddr_storage).cast(), sin) };
        }
        IpAddr::V6(ip) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut sig.addr as *mut libc::sockaddr_storage).cast(), sin6) };
        }
    }
    if let Some(Md5Key(k)) = key {
        sig.keylen = k.len() as u16;
        sig.key[..k.len()].copy_from_slice(k);
    }
    // SAFETY: a valid socket descriptor and a fully initialised tcp_md5sig.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_limits_follow_frr_defaults() {
        assert_eq!(hop_limit(true, false), 1);
        assert_eq!(hop_limit(true, true), 255);
        assert_eq!(hop_limit(false, false), 255);
        assert_eq!(hop_limit(false, true), 255);
    }

    #[test]
    fn md5_keys_are_checked_and_never_printed() {
        assert!(matches!(Md5Key::new(b""), Err(SocketError::KeyLength(0))));
        assert!(matches!(
            Md5Key::new(&[b'x'; 81]),
            Err(SocketError::KeyLength(81))
        ));
        let k = Md5Key::new(b"s3cret").unwrap();
        assert_eq!(format!("{k:?}"), "Md5Key(6 bytes)");
        assert!(Md5Key::new(&[b'x'; 80]).is_ok());
    }

    #[test]
    fn tcp_md5sig_has_the_kernel_layout() {
        // sockaddr_storage (128) + flags, prefixlen (2) + keylen (2) + ifindex (4) + key (80)
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    /// Loopback needs no namespace: a listener with a key for 127.0.0.1 accepts only a
    /// dialer signing with the same key.
    #[tokio::test]
    async fn md5_on_loopback_right_key_connects_wrong_key_does_not() {
        let mut l = match Listener::bind(0) {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let port = l.local_addrs()[0].port();
        let lo: IpAddr = [127, 0, 0, 1].into();
        l.set_peers([(lo, Some(Md5Key::new(b"right").unwrap()))].into())
            .unwrap();
        let dial = |key: &[u8]| Dial {
            peer: SocketAddr::new(lo, port),
            source: None,
            hop_limit: 1,
            key: Some(Md5Key::new(key).unwrap()),
        };
        let accepting = async {
            let (s, from) = l.accept(|_| {}).await.unwrap();
            (s, from)
        };
        let right = dial(b"right");
        let (dialed, accepted) = tokio::join!(connect(&right, Duration::from_secs(2)), accepting);
        dialed.unwrap();
        assert_eq!(accepted.1.ip(), lo);
        let wrong = connect(&dial(b"wrong"), Duration::from_millis(500)).await;
        assert!(
            matches!(wrong, Err(SocketError::Timeout { .. })),
            "{wrong:?}"
        );
        let unsigned = Dial {
            key: None,
            ..dial(b"x")
        };
        let unsigned = connect(&unsigned, Duration::from_millis(500)).await;
        assert!(unsigned.is_err(), "{unsigned:?}");
    }
}
