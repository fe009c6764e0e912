//! BFD Control packets (RFC 5880 §4.1): the typed packet, its 24-byte encoding, and
//! the reception checks of §6.8.6 that need nothing but the packet itself. Decoding
//! never panics, whatever the bytes; a packet that fails a check is an error saying
//! which, and is dropped by the caller.

use std::fmt;

use thiserror::Error;

/// The only version this speaks (RFC 5880).
pub const VERSION: u8 = 1;
/// A Control packet without authentication section: all we send, all we accept.
pub const LEN: usize = 24;

/// `bfd.SessionState`, and the State field of a packet (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(bits: u8) -> State {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "admin-down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        })
    }
}

/// The Diagnostic field (§4.1): why the sender's session last left Up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Diag(pub u8);

impl Diag {
    pub const NONE: Diag = Diag(0);
    pub const DETECTION_TIME_EXPIRED: Diag = Diag(1);
    pub const ECHO_FAILED: Diag = Diag(2);
    pub const NEIGHBOR_SIGNALED_DOWN: Diag = Diag(3);
    pub const FORWARDING_PLANE_RESET: Diag = Diag(4);
    pub const PATH_DOWN: Diag = Diag(5);
    pub const CONCATENATED_PATH_DOWN: Diag = Diag(6);
    pub const ADMINISTRATIVELY_DOWN: Diag = Diag(7);
    pub const REVERSE_CONCATENATED_PATH_DOWN: Diag = Diag(8);
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.0 {
            0 => "no diagnostic",
            1 => "control detection time expired",
            2 => "echo function failed",
            3 => "neighbor signaled session down",
            4 => "forwarding plane reset",
            5 => "path down",
            6 => "concatenated path down",
            7 => "administratively down",
            8 => "reverse concatenated path down",
            other => return write!(f, "diagnostic {other}"),
        };
        f.write_str(text)
    }
}

/// A BFD Control packet. Intervals are in microseconds, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a received datagram is not a Control packet this implementation accepts.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("{0} bytes is shorter than a BFD Control packet (24)")]
    Short(usize),
    #[error("BFD version {0}; only version 1 is spoken")]
    Version(u8),
    #[error("Length field {0} is below the minimum of 24")]
    LengthTooSmall(u8),
    #[error("Length field {field} exceeds the {datagram}-byte datagram")]
    LengthBeyondDatagram { field: u8, datagram: usize },
    #[error("Detect Mult is 0")]
    ZeroDetectMult,
    #[error("the Multipoint bit is set")]
    Multipoint,
    #[error("My Discriminator is 0")]
    ZeroMyDiscriminator,
    #[error("Your Discriminator is 0 in a packet of state {0}")]
    ZeroYourDiscriminator(State),
    #[error("authentication is not supported (the A bit is set)")]
    Authenticated,
}

impl Control {
    /// The 24 bytes on the wire (no authentication section).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (VERSION << 5) | (self.diag.0 & 0x1f);
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }

    /// Reads and checks a received datagram (RFC 5880 §6.8.6, up to the session
    /// lookup). Packets with the A bit are refused: no session here is configured
    /// with authentication, and §6.8.6 says to drop them then.
    pub fn decode(datagram: &[u8]) -> Result<Control, PacketError> {
        let Some(b) = datagram.first_chunk::<LEN>() else {
            return Err(PacketError::Short(datagram.len()));
        };
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let flags = b[1];
        let length = b[3];
        if usize::from(length) < LEN {
            return Err(PacketError::LengthTooSmall(length));
        }
        if usize::from(length) > datagram.len() {
            return Err(PacketError::LengthBeyondDatagram {
                field: length,
                datagram: datagram.len(),
            });
        }
        if flags & 0b100 != 0 {
            return Err(PacketError::Authenticated);
        }
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let p = Control {
            diag: Diag(b[0] & 0x1f),
            state: State::from_bits(flags >> 6),
            poll: flags & 0b10_0000 != 0,
            final_: flags & 0b1_0000 != 0,
            cpi: flags & 0b1000 != 0,
            demand: flags & 0b10 != 0,
            detect_mult: b[2],
            my_discriminator: word(4),
            your_discriminator: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        };
        if p.detect_mult == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if flags & 1 != 0 {
            return Err(PacketError::Multipoint);
        }
        if p.my_discriminator == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        if p.your_discriminator == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(PacketError::ZeroYourDiscriminator(p.state));
        }
        Ok(p)
    }
}

/// The fuzz target's body (`speaker/fuzz`, `bfd_packet`): any datagram decodes to a
/// packet or an error without panicking, and a packet that decodes encodes to 24 bytes
/// that decode to itself.
pub fn fuzz_control(datagram: &[u8]) {
    if let Ok(p) = Control::decode(datagram) {
        assert_eq!(Control::decode(&p.encode()), Ok(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn sample() -> Control {
        Control {
            diag: Diag::DETECTION_TIME_EXPIRED,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 0xa0b0_c0d0,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn bfd_encoding_matches_the_rfc_layout() {
        let b = sample().encode();
        assert_eq!(
            b,
            [
                0x21, 0xe0, 3, 24, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0, 0, 1, 0x86, 0xa0, 0, 4,
                0x93, 0xe0, 0, 0, 0, 0
            ]
        );
        assert_eq!(Control::decode(&b), Ok(sample()));
        let mut f = sample();
        f.poll = false;
        f.final_ = true;
        f.cpi = true;
        f.state = State::Init;
        assert_eq!(Control::decode(&f.encode()), Ok(f));
    }

    #[test]
    fn bfd_datagrams_longer_than_the_packet_are_read() {
        let mut d = sample().encode().to_vec();
        d.extend_from_slice(&[9, 9, 9]);
        assert_eq!(Control::decode(&d), Ok(sample()));
    }

    #[test]
    fn bfd_every_reception_check_refuses() {
        type Edit = fn(&mut [u8; LEN]);
        let cases: Vec<(Edit, PacketError)> = vec![
            (|b| b[0] = (2 << 5) | 1, PacketError::Version(2)),
            (|b| b[3] = 23, PacketError::LengthTooSmall(23)),
            (
                |b| b[3] = 25,
                PacketError::LengthBeyondDatagram {
                    field: 25,
                    datagram: 24,
                },
            ),
            (|b| b[2] = 0, PacketError::ZeroDetectMult),
            (|b| b[1] |= 1, PacketError::Multipoint),
            (|b| b[4..8].fill(0), PacketError::ZeroMyDiscriminator),
            (
                |b| b[8..12].fill(0),
                PacketError::ZeroYourDiscriminator(State::Up),
            ),
            (|b| b[1] |= 0b100, PacketError::Authenticated),
        ];
        for (edit, want) in cases {
            let mut b = sample().encode();
            edit(&mut b);
            assert_eq!(Control::decode(&b), Err(want));
        }
        assert_eq!(Control::decode(&[0x20; 23]), Err(PacketError::Short(23)));
        // Your Discriminator 0 is how a session starts: fine in Down and AdminDown.
        for state in [State::Down, State::AdminDown] {
            let mut p = sample();
            p.state = state;
            p.your_discriminator = 0;
            assert_eq!(Control::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn bfd_decoding_random_bytes_never_panics() {
        let mut rng: rand::rngs::StdRng = rand::make_rng();
        let mut buf = [0u8; 64];
        let mut accepted = 0;
        for i in 0..200_000 {
            let len = i % 64;
            rng.fill_bytes(&mut buf[..len]);
            // Half the time a plausible header, so the later checks are reached too.
            if i % 2 == 0 && len >= 4 {
                buf[0] = (buf[0] & 0x1f) | 0x20;
                buf[3] = 24 + (buf[3] % 8);
                buf[1] &= !0b101;
            }
            if let Ok(p) = Control::decode(&buf[..len]) {
                accepted += 1;
                assert_eq!(Control::decode(&p.encode()), Ok(p));
            }
        }
        assert!(accepted > 0, "the generator never reached a valid packet");
    }
}
