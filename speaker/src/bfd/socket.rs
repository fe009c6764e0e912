//! BFD's UDP sockets. Sending: one socket per session, bound to the session's local
//! address and a source port in 49152..=65535 (RFC 5881 §4), TTL / hop limit 255 on
//! every packet. Receiving: a socket on the local address and port 3784 (4784
//! multi-hop) that reports each datagram's TTL / hop limit (`IP_RECVTTL`,
//! `IPV6_RECVHOPLIMIT`, read with `recvmsg`), since the GTSM check (RFC 5881 §5: 255
//! single-hop; RFC 5883: at least `minimumTtl`) is what keeps off-link packets out.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// First source port a session may use (RFC 5881 §4).
pub const SOURCE_PORT_MIN: u16 = 49152;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(
        "cannot bind a BFD socket to {addr} (is the address configured on this node, and no other BFD daemon running?): {err}"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        err: io::Error,
    },
    #[error("no free UDP source port in 49152..=65535 on {0}")]
    NoSourcePort(IpAddr),
    #[error("cannot set {what} on a BFD socket: {err}")]
    Option {
        what: &'static str,
        #[source]
        err: io::Error,
    },
    #[error("no route to BFD peer {peer} to pick a local address from: {err}")]
    NoRoute {
        peer: IpAddr,
        #[source]
        err: io::Error,
    },
}

fn set_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &'static str,
) -> Result<(), SocketError> {
    crate::bgp::socket::set_int(fd, level, name, value)
        .map_err(|err| SocketError::Option { what, err })
}

/// The socket a session sends from: `local`, a free port from `SOURCE_PORT_MIN` up
/// (starting at `start`, any number: spreads sessions over the range), hop limit 255.
pub async fn sender(local: IpAddr, start: u16) -> Result<UdpSocket, SocketError> {
    let span = u32::from(u16::MAX - SOURCE_PORT_MIN) + 1;
    let mut socket = None;
    for i in 0..span {
        let port = SOURCE_PORT_MIN as u32 + (u32::from(start) + i) % span;
        let addr = SocketAddr::new(local, port as u16);
        match UdpSocket::bind(addr).await {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(err) => return Err(SocketError::Bind { addr, err }),
        }
    }
    let socket = socket.ok_or(SocketError::NoSourcePort(local))?;
    match local {
        IpAddr::V4(_) => set_int(&socket, libc::IPPROTO_IP, libc::IP_TTL, 255, "IP_TTL")?,
        IpAddr::V6(_) => set_int(
            &socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            255,
            "IPV6_UNICAST_HOPS",
        )?,
    }
    Ok(socket)
}

/// A socket receiving on `local`, reporting each datagram's TTL / hop limit.
pub async fn receiver(local: SocketAddr) -> Result<UdpSocket, SocketError> {
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|err| SocketError::Bind { addr: local, err })?;
    match local {
        SocketAddr::V4(_) => set_int(&socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1, "IP_RECVTTL")?,
        SocketAddr::V6(_) => set_int(
            &socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVHOPLIMIT,
            1,
            "IPV6_RECVHOPLIMIT",
        )?,
    }
    Ok(socket)
}

/// The address the kernel would send to `peer` from: what a BGP session without
/// `sourceAddress` connects from too. Nothing is sent.
pub fn route_source(peer: IpAddr) -> Result<IpAddr, SocketError> {
    let any: IpAddr = match peer {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let err = |err| SocketError::NoRoute { peer, err };
    let s = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).map_err(err)?;
    s.connect(SocketAddr::new(peer, super::SINGLE_HOP_PORT))
        .map_err(err)?;
    Ok(s.local_addr().map_err(err)?.ip())
}

/// One received datagram: its length in the buffer, its source, and the TTL / hop limit
/// it arrived with (`None`: the kernel did not say, which counts as a failed check).
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub ttl: Option<u8>,
}

/// Waits for the next datagram on a [`receiver`] socket.
pub async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    socket
        .async_io(Interest::READABLE, || recvmsg(socket, buf))
        .await
}

fn recvmsg(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    // u64s: the control buffer must be aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in msg refers to a live buffer of the length given.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = usize::try_from(n).unwrap_or(0).min(buf.len());
    let from = sockaddr(&name).ok_or_else(|| io::Error::other("datagram without a source"))?;
    let mut ttl = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
    // msg_controllen; each header's data is read unaligned as the c_int it carries.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            let is_ttl = (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL)
                || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT);
            if is_ttl {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Received { len, from, ttl })
}

fn sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((s as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((s as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            // A v4-mapped source on a v6 socket is an IPv4 peer.
            let ip: IpAddr = match ip.to_ipv4_mapped() {
                Some(v4) => v4.into(),
                None => ip.into(),
            };
            Some(match ip {
                IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, u16::from_be(a.sin6_port))),
                IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(
                    v6,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback only, no namespaces: the TTL really travels from sender to receiver.
    #[tokio::test]
    async fn bfd_sockets_send_with_ttl_255_and_read_it_back() {
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        let rx = receiver(SocketAddr::new(lo, 0)).await.unwrap();
        let to = rx.local_addr().unwrap();
        let tx = sender(lo, 7).await.unwrap();
        let port = tx.local_addr().unwrap().port();
        assert!(port >= SOURCE_PORT_MIN, "{port}");
        tx.send_to(b"hello", to).await.unwrap();
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), recv(&rx, &mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..r.len], b"hello");
        assert_eq!(r.from, tx.local_addr().unwrap());
        assert_eq!(r.ttl, Some(255));
        // An ordinary socket's packets keep the default TTL (64): the check can fail.
        let plain = UdpSocket::bind(SocketAddr::new(lo, 0)).await.unwrap();
        plain.send_to(b"x", to).await.unwrap();
        let r = recv(&rx, &mut buf).await.unwrap();
        assert_ne!(r.ttl, Some(255));
        assert!(r.ttl.is_some());
        assert_eq!(route_source(lo).unwrap(), lo);
    }
}
