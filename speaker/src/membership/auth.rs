//! Authenticated envelope around every gossip datagram.
//!
//! foca's packets are plain postcard; anyone on the LAN could forge "node X is down" or
//! keep a dead node alive. So each datagram is wrapped (all integers big-endian):
//!
//! ```text
//!  0      1  version (1)
//!  1     18  sender: the sender's gossip address, IPv6 or IPv4-mapped, then port
//! 19      8  epoch: the sender's process start, µs since the UNIX epoch
//! 27      8  seq: per-epoch datagram counter, from 1
//! 35      …  foca payload
//! -16    16  tag: HMAC-SHA256(key, everything above)[..16]
//! ```
//!
//! The key is derived from the shared secret, never the secret itself (see
//! [`GossipKey::from_secret`]). A 128-bit truncated HMAC-SHA256 tag is what RFC 4868
//! uses for IPsec. `sender`, `epoch` and `seq` are authenticated so that
//! [`ReplayGuard`](super::replay::ReplayGuard) can reject replays; they carry no secret.
//! Confidentiality is not a goal: membership is not secret on a LAN where every node's
//! address is in the Kubernetes API anyway.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Envelope format version; a receiver drops any other.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 1 + 18 + 8 + 8;
/// Bytes of the truncated tag.
pub const TAG_LEN: usize = 16;
/// Bytes the envelope adds to a foca payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The shortest secret accepted, in bytes after trimming. MetalLB's generated secret is
/// 16 random bytes; anything shorter is a typo or a placeholder.
pub const MIN_SECRET_LEN: usize = 16;

/// Domain separation for the key derivation: another protocol keyed from the same
/// secret file never shares our key.
const KDF_SALT: &[u8] = b"ferrolb gossip hmac-sha256 v1";

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Too short after trimming surrounding whitespace.
    #[error(
        "gossip secret is {0} bytes after trimming whitespace; at least {MIN_SECRET_LEN} are required"
    )]
    TooShort(usize),
}

/// Why a datagram was refused. Every variant means "drop it"; they differ only for
/// counters and logs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than an empty envelope.
    #[error("datagram too short for the gossip envelope")]
    TooShort,
    /// Unknown envelope version.
    #[error("unknown gossip envelope version {0}")]
    Version(u8),
    /// Missing, wrong or truncated tag: not sent by someone holding the secret.
    #[error("bad authentication tag")]
    BadTag,
}

/// The HMAC key shared by every speaker of a cluster.
#[derive(Clone)]
pub struct GossipKey {
    /// HMAC state already keyed; cloning it is cheaper than re-keying per datagram.
    mac: HmacSha256,
}

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipKey(..)")
    }
}

impl GossipKey {
    /// Derives the key from the content of the secret file.
    ///
    /// Surrounding ASCII whitespace is trimmed first, so a file written with `echo`
    /// (trailing newline) and a Kubernetes Secret created from a literal give the same
    /// key. The key is HMAC-SHA256(salt, secret), the HKDF-Extract step (RFC 5869 §2.2).
    pub fn from_secret(secret: &[u8]) -> Result<Self, SecretError> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(secret.len()));
        }
        let mut kdf = keyed(KDF_SALT);
        kdf.update(secret);
        let prk = kdf.finalize().into_bytes();
        Ok(Self { mac: keyed(&prk) })
    }

    /// Wraps `payload` into `out` (cleared first).
    pub fn seal(
        &self,
        sender: SocketAddr,
        epoch: u64,
        seq: u64,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.clear();
        out.reserve(OVERHEAD + payload.len());
        out.push(VERSION);
        out.extend_from_slice(&encode_addr(sender));
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(payload);
        let mut mac = self.mac.clone();
        mac.update(out);
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(&tag[..TAG_LEN]);
    }

    /// Checks a received datagram; on success returns its header and the foca payload.
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<Opened<'a>, OpenError> {
        if datagram.len() < OVERHEAD {
            return Err(OpenError::TooShort);
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let (header, payload) = signed.split_at(HEADER_LEN);
        let (version, rest) = header.split_at(1);
        if version != [VERSION] {
            return Err(OpenError::Version(version[0]));
        }
        // Verify before interpreting anything else: an unauthenticated datagram costs
        // one HMAC and nothing more.
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_truncated_left(tag)
            .map_err(|_| OpenError::BadTag)?;
        let (addr, rest) = rest.split_at(18);
        let (epoch, seq) = rest.split_at(8);
        Ok(Opened {
            sender: decode_addr(addr),
            epoch: be_u64(epoch),
            seq: be_u64(seq),
            payload,
        })
    }
}

/// An authenticated datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The gossip address the sender claims (authenticated, so only a key holder can lie).
    pub sender: SocketAddr,
    /// The sender's process epoch.
    pub epoch: u64,
    /// The datagram's sequence number within that epoch.
    pub seq: u64,
    /// What foca sent.
    pub payload: &'a [u8],
}

/// An HMAC keyed with `key` (at most one SHA-256 block, which both of ours are). HMAC
/// zero-pads short keys to the block size itself; doing it here uses the infallible
/// constructor instead of the `Result` one.
fn keyed(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; 64];
    for (d, s) in block.iter_mut().zip(key) {
        *d = *s;
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

fn encode_addr(addr: SocketAddr) -> [u8; 18] {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&ip.octets());
    out[16..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

fn decode_addr(bytes: &[u8]) -> SocketAddr {
    let mut ip = [0u8; 16];
    let mut port = [0u8; 2];
    // Callers pass exactly 18 bytes (split_at above); zip keeps this panic-free anyway.
    for (d, s) in ip.iter_mut().zip(bytes) {
        *d = *s;
    }
    for (d, s) in port.iter_mut().zip(bytes.iter().skip(16)) {
        *d = *s;
    }
    let ip = Ipv6Addr::from(ip);
    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
    SocketAddr::new(ip, u16::from_be_bytes(port))
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> GossipKey {
        GossipKey::from_secret(s.as_bytes()).unwrap()
    }

    #[test]
    fn round_trip_v4_and_v6() {
        let k = key("0123456789abcdef-secret");
        for sender in ["192.0.2.7:7946", "[2001:db8::7]:7946"] {
            let sender: SocketAddr = sender.parse().unwrap();
            let mut buf = Vec::new();
            k.seal(sender, 42, 7, b"hello", &mut buf);
            assert_eq!(buf.len(), OVERHEAD + 5);
            let o = k.open(&buf).unwrap();
            assert_eq!(
                o,
                Opened {
                    sender,
                    epoch: 42,
                    seq: 7,
                    payload: b"hello"
                }
            );
        }
    }

    #[test]
    fn zero_padded_key_is_the_hmac_key() {
        for k in [&b""[..], b"abc", KDF_SALT, &[7u8; 32], &[9u8; 64]] {
            let mut a = keyed(k);
            let mut b = <HmacSha256 as Mac>::new_from_slice(k).unwrap();
            a.update(b"msg");
            b.update(b"msg");
            assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
        }
    }

    #[test]
    fn whitespace_around_the_secret_does_not_matter() {
        let a = key("0123456789abcdef-secret");
        let b = key("  0123456789abcdef-secret\n");
        let mut buf = Vec::new();
        a.seal("192.0.2.1:1".parse().unwrap(), 1, 1, b"x", &mut buf);
        assert!(b.open(&buf).is_ok());
    }

    #[test]
    fn short_secret_is_refused() {
        assert_eq!(
            GossipKey::from_secret(b"short\n").unwrap_err(),
            SecretError::TooShort(5)
        );
    }

    #[test]
    fn wrong_key_any_flipped_bit_and_truncation_are_refused() {
        let k = key("0123456789abcdef-secret");
        let mut buf = Vec::new();
        k.seal(
            "192.0.2.1:7946".parse().unwrap(),
            1,
            1,
            b"payload",
            &mut buf,
        );
        assert_eq!(
            key("another-secret-of-16+").open(&buf),
            Err(OpenError::BadTag)
        );
        for i in 1..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert_eq!(k.open(&b), Err(OpenError::BadTag), "byte {i} bit {bit}");
            }
        }
        let mut b = buf.clone();
        b[0] = 2;
        assert_eq!(k.open(&b), Err(OpenError::Version(2)));
        for len in 0..OVERHEAD {
            assert_eq!(k.open(&buf[..len]), Err(OpenError::TooShort));
        }
        for len in OVERHEAD..buf.len() {
            assert!(k.open(&buf[..len]).is_err());
        }
    }
}
