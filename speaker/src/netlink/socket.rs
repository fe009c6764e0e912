//! An rtnetlink socket on tokio, and the framing of the datagrams it receives.
//!
//! netlink-sys opens and binds the socket; readiness comes from tokio's `AsyncFd`, so a
//! receive error such as `ENOBUFS` reaches the caller as it is (the watcher must see it
//! to re-list). The framing walks each datagram with explicit bounds checks and hands
//! the caller one message at a time, so one bad message never hides the others.

use std::io;
use std::os::fd::AsRawFd;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;

/// Large enough for any datagram the kernel sends here: dump replies are at most 32 KiB
/// (the kernel sizes them to the reader's buffer, capped there) and link notifications
/// carry no per-VF data.
const RECV_BUFFER: usize = 64 * 1024;

const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
/// The dump was interrupted by a change; its contents may be inconsistent.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;

pub(crate) struct NlSocket {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
}

impl NlSocket {
    /// A socket for requests (dumps), bound to a port the kernel picks.
    pub(crate) fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Self::register(sock)
    }

    /// A socket that receives the notifications of `groups` (`RTNLGRP_*` numbers), with a
    /// receive queue of about `recv_buffer` bytes.
    pub(crate) fn subscribe(groups: &[u32], recv_buffer: usize) -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        set_recv_buffer(&sock, recv_buffer)?;
        for group in groups {
            sock.add_membership(*group)?;
        }
        Self::register(sock)
    }

    fn register(sock: Socket) -> io::Result<Self> {
        sock.set_non_blocking(true)?;
        // SAFETY: `Socket` owns its descriptor and closes it only when dropped, which
        // happens only when the `AsyncFd` that owns it is dropped.
        let fd = unsafe { AsyncFd::register(sock) }?;
        Ok(NlSocket {
            fd,
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// The socket's port id, which the kernel puts in its replies to our requests.
    pub(crate) fn port(&self) -> io::Result<u32> {
        let mut addr = SocketAddr::new(0, 0);
        self.fd.get_ref().get_address(&mut addr)?;
        Ok(addr.port_number())
    }

    pub(crate) async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| fd.get_ref().send(bytes, 0)) {
                Ok(Ok(n)) if n == bytes.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::other(format!(
                        "netlink request truncated: sent {n} of {} bytes",
                        bytes.len()
                    )));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Waits for the next datagram from the kernel and returns it.
    pub(crate) async fn recv(&mut self) -> io::Result<&[u8]> {
        loop {
            let mut guard = self.fd.readable().await?;
            let buf = &mut self.buf;
            match guard.try_io(|fd| recv_from_kernel(fd.get_ref(), buf)) {
                Ok(Ok(Some(n))) => return Ok(&self.buf[..n]),
                // Not from the kernel: dropped, wait for the next one.
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// The next datagram if one is already queued, without waiting.
    pub(crate) fn try_recv(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            match recv_from_kernel(self.fd.get_ref(), &mut self.buf) {
                Ok(Some(n)) => return Ok(Some(&self.buf[..n])),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

/// One datagram into `buf`: `Some(length)`, or `None` when it came from a process rather
/// than the kernel (only a privileged process can send one, but it is not ours to trust).
fn recv_from_kernel(sock: &Socket, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let cap = buf.len();
    // MSG_TRUNC makes the kernel return the datagram's real length, so a datagram larger
    // than the buffer is detected instead of silently cut.
    let (n, from) = sock.recv_from(&mut &mut buf[..], libc::MSG_TRUNC)?;
    if n > cap {
        return Err(io::Error::other(format!(
            "netlink datagram of {n} bytes truncated to {cap}"
        )));
    }
    Ok((from.port_number() == 0).then_some(n))
}

/// Asks for a receive queue of `bytes`. `SO_RCVBUFFORCE` may exceed `net.core.rmem_max`
/// but needs CAP_NET_ADMIN; without it, `SO_RCVBUF` gets as much as the limit allows.
fn set_recv_buffer(sock: &Socket, bytes: usize) -> io::Result<()> {
    // The kernel doubles the value it is given (for its bookkeeping).
    let half = libc::c_int::try_from(bytes / 2).unwrap_or(libc::c_int::MAX);
    // SAFETY: the option value is a c_int that lives across the call, with its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&half as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    sock.set_rx_buf_sz(half)
}

/// One netlink message inside a datagram: its header fields and all its bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    /// The whole message, header included.
    pub bytes: &'a [u8],
}

impl Frame<'_> {
    /// The error code of an `NLMSG_ERROR` or `NLMSG_DONE` message (0 = success, else a
    /// negative errno).
    pub(crate) fn code(&self) -> Option<i32> {
        let b = self.bytes.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)?;
        Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A datagram whose framing is broken: the rest of it cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad netlink framing at byte {offset}: {what}")]
pub struct BadFrame {
    pub offset: usize,
    pub what: &'static str,
}

/// The messages in a datagram, in order. After a framing error nothing more is yielded.
pub(crate) fn frames(datagram: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, BadFrame>> {
    let mut offset = 0;
    let mut broken = false;
    std::iter::from_fn(move || {
        if broken || offset >= datagram.len() {
            return None;
        }
        let rest = &datagram[offset..];
        let fail = |what| BadFrame { offset, what };
        let Some(header) = rest.get(..NLMSG_HDRLEN) else {
            broken = true;
            return Some(Err(fail("shorter than a header")));
        };
        let u32_at =
            |i: usize| u32::from_ne_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let u16_at = |i: usize| u16::from_ne_bytes([header[i], header[i + 1]]);
        let len = u32_at(0) as usize;
        if len < NLMSG_HDRLEN {
            broken = true;
            return Some(Err(fail("length smaller than the header")));
        }
        let Some(bytes) = rest.get(..len) else {
            broken = true;
            return Some(Err(fail("length beyond the datagram")));
        };
        // Messages are 4-byte aligned; the padding after the last one may be absent.
        offset = offset.saturating_add(len.div_ceil(4) * 4);
        Some(Ok(Frame {
            kind: u16_at(4),
            flags: u16_at(6),
            seq: u32_at(8),
            port: u32_at(12),
            bytes,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn walks_messages_and_reads_codes() {
        let mut d = msg(16, 2, &[1, 2, 3]);
        d.extend(msg(NLMSG_DONE, 2, &0i32.to_ne_bytes()));
        d.extend(msg(NLMSG_ERROR, 0, &(-libc::EPERM).to_ne_bytes()));
        let f: Vec<_> = frames(&d).collect::<Result<_, _>>().unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].kind, f[0].flags, f[0].seq), (16, 2, 7));
        assert_eq!(f[0].bytes.len(), 19, "padding is not part of the message");
        assert_eq!(f[1].code(), Some(0));
        assert_eq!(f[2].code(), Some(-libc::EPERM));
        assert_eq!(f[0].code(), None, "a code never reads past its message");
    }

    #[test]
    fn the_last_message_may_lack_padding() {
        let mut d = msg(16, 0, &[1, 2, 3]);
        d.pop();
        assert_eq!(frames(&d).count(), 1);
        assert!(frames(&d).all(|f| f.is_ok()));
    }

    #[test]
    fn broken_framing_stops_the_walk_without_panicking() {
        let good = msg(16, 0, &[0; 4]);
        // Length smaller than a header, length beyond the end, a short tail.
        for (tail, offset) in [
            (vec![4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 20),
            (msg(16, 0, &[0; 8])[..20].to_vec(), 20),
            (vec![1, 2, 3], 20),
        ] {
            let mut d = good.clone();
            d.extend(tail);
            let f: Vec<_> = frames(&d).collect();
            assert_eq!(f.len(), 2, "{f:?}");
            assert!(f[0].is_ok());
            assert_eq!(f[1].as_ref().unwrap_err().offset, offset);
        }
        // Every prefix of every byte pattern: no panic, finite walk.
        let mut d = good.clone();
        d.extend(msg(NLMSG_DONE, 0, &[0; 4]));
        for cut in 0..=d.len() {
            for byte in [0u8, 0x7f, 0xff] {
                let mut x = d[..cut].to_vec();
                if let Some(b) = x.get_mut(cut / 2) {
                    *b = byte;
                }
                assert!(frames(&x).count() <= 3);
            }
        }
    }
}
