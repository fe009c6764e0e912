//! Where the speaker's inputs come from: the standalone directory ([`dir`]).

pub mod dir;
