//! The BFD session state machine (RFC 5880 §6.2, §6.8), sans-IO: events in (a Control
//! packet received, a timer fired, admin up/down), actions out (send a packet, arm a
//! timer, the state changed). Asynchronous mode only: no Demand mode, no Echo function,
//! no authentication. Time is relative (timer durations), randomness is an input, so
//! every decision is testable without sockets or clocks.

use std::time::Duration;

use super::packet::{Control, Diag, State};

/// While not Up, packets go no faster than once a second (§6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// What one session runs with (a `BFDProfile`, resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// `transmitInterval`: how often we would like to send once Up.
    pub desired_min_tx: Duration,
    /// `receiveInterval`: how often we can take packets.
    pub required_min_rx: Duration,
    /// `detectMultiplier`: packets the peer may miss before it declares us down.
    pub detect_mult: u8,
    /// `passiveMode`: send nothing until the peer has.
    pub passive: bool,
}

impl Default for Config {
    /// MetalLB's defaults: 300 ms both ways, multiplier 3, active.
    fn default() -> Config {
        Config {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The next periodic packet.
    Transmit,
    /// Detection time without a packet from the peer.
    Detect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A packet that passed [`Control::decode`] and was routed to this session.
    Received(Control),
    TimerExpired(Timer),
    /// Start (or resume) the session: leave AdminDown.
    AdminUp,
    /// Stop the session, telling the peer (so it does not count a failure).
    AdminDown,
    /// New timers (a changed `BFDProfile`), taken on without leaving Up: a Poll
    /// Sequence announces them (§6.8.3).
    Reconfigure(Config),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Control),
    /// (Re)arm a timer; a later arm replaces it.
    Arm(Timer, Duration),
    Cancel(Timer),
    StateChanged {
        from: State,
        to: State,
        diag: Diag,
    },
}

/// One BFD session.
#[derive(Clone, Debug)]
pub struct Fsm {
    config: Config,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diag,
    /// What the peer asked of us, last packet (§6.8.1: 1 µs until it says).
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    /// A Poll Sequence is in progress: our packets carry P until one with F comes.
    polling: bool,
    /// The Desired Min TX advertised (1 s while not Up).
    advertised_tx: Duration,
    /// The intervals actually used for our packets and for the peer's detection time:
    /// a slower rate for us, or a faster one for the peer, waits for the peer to
    /// acknowledge it (the end of the Poll Sequence, §6.8.3).
    tx_in_use: Duration,
    rx_in_use: Duration,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Fsm {
    /// A session in AdminDown with local discriminator `discr` (non-zero, unique on
    /// this system; the driver picks it). Feed [`Event::AdminUp`] to start it.
    pub fn new(config: Config, discr: u32) -> Fsm {
        Fsm {
            config,
            state: State::AdminDown,
            remote_state: State::Down,
            local_discr: discr,
            remote_discr: 0,
            local_diag: Diag::NONE,
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_detect_mult: 0,
            polling: false,
            advertised_tx: SLOW_TX.max(config.desired_min_tx),
            tx_in_use: SLOW_TX.max(config.desired_min_tx),
            rx_in_use: config.required_min_rx,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    /// Why the session last went down.
    pub fn diag(&self) -> Diag {
        self.local_diag
    }

    pub fn polling(&self) -> bool {
        self.polling
    }

    /// Detection time (§6.8.4): the peer's Detect Mult times the interval agreed for
    /// its packets; `None` before the peer said anything.
    pub fn detection_time(&self) -> Option<Duration> {
        if self.remote_detect_mult == 0 {
            return None;
        }
        let agreed = self.rx_in_use.max(self.remote_desired_tx);
        Some(agreed * u32::from(self.remote_detect_mult))
    }

    /// Interval between our periodic packets before jitter (§6.8.7); `None`: the peer
    /// asked for none (Required Min RX 0).
    pub fn transmit_interval(&self) -> Option<Duration> {
        if self.remote_min_rx.is_zero() {
            return None;
        }
        Some(self.tx_in_use.max(self.remote_min_rx))
    }

    /// Applies one event. `random` is any random number (the driver draws a fresh one
    /// per call): it picks the jitter of the next transmit interval.
    pub fn handle(&mut self, event: Event, random: u32) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::AdminUp => {
                if self.state == State::AdminDown {
                    self.local_diag = Diag::NONE;
                    self.set_state(State::Down, &mut out);
                    self.arm_transmit(random, &mut out);
                }
            }
            Event::AdminDown => {
                if self.state != State::AdminDown {
                    self.local_diag = Diag::ADMINISTRATIVELY_DOWN;
                    self.set_state(State::AdminDown, &mut out);
                    out.push(Action::Cancel(Timer::Detect));
                    // Told at once: the peer goes Down without counting a failure.
                    out.push(Action::Send(self.packet(false)));
                }
            }
            Event::TimerExpired(Timer::Transmit) => {
                if self.may_transmit() {
                    out.push(Action::Send(self.packet(false)));
                }
                self.arm_transmit(random, &mut out);
            }
            Event::TimerExpired(Timer::Detect) => self.detection_expired(&mut out),
            Event::Reconfigure(config) => self.reconfigure(config),
            Event::Received(p) => self.receive(p, random, &mut out),
        }
        out
    }

    /// Periodic packets go out once active, or (passive) once the peer spoke, and not
    /// when the peer asked for none.
    fn may_transmit(&self) -> bool {
        self.state != State::AdminDown
            && (!self.config.passive || self.remote_discr != 0)
            && self.transmit_interval().is_some()
    }

    /// §6.8.7: 75–100 % of the interval, 75–90 % with a Detect Mult of 1 (so one late
    /// packet is never late enough to bring the session down).
    fn jittered(&self, interval: Duration, random: u32) -> Duration {
        let span = if self.config.detect_mult == 1 { 16 } else { 26 };
        let percent = 75 + random % span;
        interval * percent / 100
    }

    fn arm_transmit(&mut self, random: u32, out: &mut Vec<Action>) {
        if self.state == State::AdminDown {
            out.push(Action::Cancel(Timer::Transmit));
            return;
        }
        // With nothing to send for now (passive, or the peer asked for no packets) the
        // timer still runs at the slow rate, to look again.
        let interval = self.transmit_interval().unwrap_or(SLOW_TX);
        out.push(Action::Arm(
            Timer::Transmit,
            self.jittered(interval, random),
        ));
    }

    fn set_state(&mut self, to: State, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        // §6.8.3: the slow rate while not Up; the configured one once Up, announced
        // with a Poll Sequence (§6.8.3: a changed Desired Min TX starts one).
        let tx = if to == State::Up {
            self.config.desired_min_tx
        } else {
            SLOW_TX.max(self.config.desired_min_tx)
        };
        if tx != self.advertised_tx {
            self.advertised_tx = tx;
            self.polling = to == State::Up;
        }
        // Entering Up only speeds us up; leaving it, the peer leaves Up too (or will
        // by its detection time): nothing to wait for either way.
        self.tx_in_use = tx;
        self.rx_in_use = self.config.required_min_rx;
        if to != State::Up {
            self.polling = false;
        }
        out.push(Action::StateChanged {
            from,
            to,
            diag: self.local_diag,
        });
    }

    /// §6.8.3: new intervals are polled for while Up; until the peer answers, a
    /// slower transmit rate is not used yet (the peer's detection time still expects the
    /// old one), nor a faster receive rate (the peer still sends at the old one).
    fn reconfigure(&mut self, config: Config) {
        let old = std::mem::replace(&mut self.config, config);
        if self.state != State::Up {
            self.advertised_tx = SLOW_TX.max(config.desired_min_tx);
            self.tx_in_use = self.advertised_tx;
            self.rx_in_use = config.required_min_rx;
            return;
        }
        if config.desired_min_tx != self.advertised_tx {
            self.advertised_tx = config.desired_min_tx;
            self.tx_in_use = self.tx_in_use.min(config.desired_min_tx);
            self.polling = true;
        }
        if config.required_min_rx != old.required_min_rx {
            self.rx_in_use = self.rx_in_use.max(config.required_min_rx);
            self.polling = true;
        }
    }

    fn detection_expired(&mut self, out: &mut Vec<Action>) {
        // §6.8.1: forget the peer; §6.8.4: Init or Up goes Down.
        self.remote_discr = 0;
        self.remote_min_rx = Duration::from_micros(1);
        self.remote_detect_mult = 0;
        self.remote_state = State::Down;
        if matches!(self.state, State::Init | State::Up) {
            self.local_diag = Diag::DETECTION_TIME_EXPIRED;
            self.set_state(State::Down, out);
        }
    }

    /// §6.8.6, from "set bfd.RemoteDiscr" on (the checks before it are the decoder's
    /// and the demultiplexer's).
    fn receive(&mut self, p: Control, random: u32, out: &mut Vec<Action>) {
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            return;
        }
        if self.state == State::AdminDown {
            return;
        }
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_min_rx = Duration::from_micros(p.required_min_rx_us.into());
        self.remote_desired_tx = Duration::from_micros(p.desired_min_tx_us.into());
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.polling = false;
            self.tx_in_use = self.advertised_tx;
            self.rx_in_use = self.config.required_min_rx;
        }
        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) | (State::Up, State::Down) => {
                self.local_diag = Diag::NEIGHBOR_SIGNALED_DOWN;
                self.set_state(State::Down, out);
            }
            (State::Down, State::Down) => self.set_state(State::Init, out),
            (State::Down, State::Init) => self.set_state(State::Up, out),
            (State::Init, State::Init | State::Up) => self.set_state(State::Up, out),
            // Down hearing AdminDown stays Down; Up hearing Init or Up stays Up.
            _ => {}
        }
        if let Some(t) = self.detection_time() {
            out.push(Action::Arm(Timer::Detect, t));
        }
        if p.poll {
            // Answered at once, whatever the transmit timer says (§6.8.7), then the
            // periodic packets go on from here.
            out.push(Action::Send(self.packet(true)));
            self.arm_transmit(random, out);
        }
    }

    /// Our next packet (§6.8.7); `final_` answers a Poll, and never polls itself
    /// (§6.5: P and F are never both set).
    fn packet(&self, final_: bool) -> Control {
        Control {
            diag: self.local_diag,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: us(self.advertised_tx),
            required_min_rx_us: us(self.config.required_min_rx),
            required_min_echo_rx_us: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn fast() -> Config {
        Config {
            desired_min_tx: MS(100),
            required_min_rx: MS(100),
            detect_mult: 3,
            passive: false,
        }
    }

    fn sent(actions: &[Action]) -> Vec<Control> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    fn armed(actions: &[Action], timer: Timer) -> Option<Duration> {
        actions.iter().rev().find_map(|a| match a {
            Action::Arm(t, d) if *t == timer => Some(*d),
            _ => None,
        })
    }

    fn changes(actions: &[Action]) -> Vec<(State, State)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::StateChanged { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    /// Fires `f`'s transmit timer; the packet it sends.
    fn tick(f: &mut Fsm) -> Control {
        let a = f.handle(Event::TimerExpired(Timer::Transmit), 0);
        let p = sent(&a);
        assert_eq!(p.len(), 1, "{a:?}");
        p[0]
    }

    /// Two sessions brought Up by the three-way handshake; returns them.
    fn handshake() -> (Fsm, Fsm) {
        let mut a = Fsm::new(fast(), 11);
        let mut b = Fsm::new(fast(), 22);
        assert_eq!(
            changes(&a.handle(Event::AdminUp, 0)),
            [(State::AdminDown, State::Down)]
        );
        b.handle(Event::AdminUp, 0);
        // A: Down, Your Discriminator 0.
        let p = tick(&mut a);
        assert_eq!((p.state, p.your_discriminator), (State::Down, 0));
        assert_eq!(p.desired_min_tx_us, 1_000_000, "slow while not Up");
        assert_eq!(
            changes(&b.handle(Event::Received(p), 0)),
            [(State::Down, State::Init)]
        );
        let p = tick(&mut b);
        assert_eq!((p.state, p.your_discriminator), (State::Init, 11));
        assert_eq!(
            changes(&a.handle(Event::Received(p), 0)),
            [(State::Down, State::Up)]
        );
        let p = tick(&mut a);
        assert_eq!(p.state, State::Up);
        assert_eq!(
            changes(&b.handle(Event::Received(p), 0)),
            [(State::Init, State::Up)]
        );
        (a, b)
    }

    #[test]
    fn bfd_three_way_handshake_brings_both_up() {
        let (a, b) = handshake();
        assert_eq!((a.state(), b.state()), (State::Up, State::Up));
        assert_eq!(
            (a.remote_discriminator(), b.remote_discriminator()),
            (22, 11)
        );
    }

    #[test]
    fn bfd_going_up_polls_the_new_rate_and_final_ends_it() {
        let (mut a, mut b) = handshake();
        assert!(a.polling() && b.polling());
        let p = tick(&mut a);
        assert!(p.poll && !p.final_);
        assert_eq!(p.desired_min_tx_us, 100_000, "the fast rate once Up");
        // B answers at once with F (and without P), then carries on.
        let answer = b.handle(Event::Received(p), 0);
        let f = sent(&answer);
        assert_eq!(f.len(), 1);
        assert!(f[0].final_ && !f[0].poll);
        assert!(armed(&answer, Timer::Transmit).is_some());
        a.handle(Event::Received(f[0]), 0);
        assert!(!a.polling(), "F ends the Poll Sequence");
        assert!(!tick(&mut a).poll);
        // A packet without F leaves B's own sequence running.
        let p = tick(&mut a);
        b.handle(Event::Received(p), 0);
        assert!(b.polling());
    }

    /// Both Up and the Poll of going Up answered.
    fn settled() -> (Fsm, Fsm) {
        let (mut a, mut b) = handshake();
        for _ in 0..2 {
            let pa = tick(&mut a);
            let fb = sent(&b.handle(Event::Received(pa), 0));
            for f in fb {
                a.handle(Event::Received(f), 0);
            }
            let pb = tick(&mut b);
            let fa = sent(&a.handle(Event::Received(pb), 0));
            for f in fa {
                b.handle(Event::Received(f), 0);
            }
        }
        assert!(!a.polling() && !b.polling());
        (a, b)
    }

    #[test]
    fn bfd_new_timers_are_polled_for_and_used_once_acknowledged() {
        let (mut a, mut b) = settled();
        let slower = Config {
            desired_min_tx: MS(250),
            required_min_rx: MS(50),
            ..fast()
        };
        assert!(a.handle(Event::Reconfigure(slower), 0).is_empty());
        assert_eq!(a.state(), State::Up, "no state change");
        assert!(a.polling());
        // Not yet: slower sending and faster receiving wait for the Final.
        assert_eq!(a.transmit_interval(), Some(MS(100)));
        let pb = tick(&mut b);
        a.handle(Event::Received(pb), 0);
        assert_eq!(a.detection_time(), Some(MS(300)));
        let p = tick(&mut a);
        assert!(p.poll);
        assert_eq!(
            (p.desired_min_tx_us, p.required_min_rx_us),
            (250_000, 50_000)
        );
        let answer = b.handle(Event::Received(p), 0);
        // B takes A's new rate at once: its detection time for A grows.
        assert_eq!(armed(&answer, Timer::Detect), Some(MS(750)));
        let f = sent(&answer);
        a.handle(Event::Received(f[0]), 0);
        assert!(!a.polling());
        assert_eq!(a.transmit_interval(), Some(MS(250)));
        assert_eq!(
            a.detection_time(),
            Some(MS(300)),
            "B still sends every 100 ms"
        );
        assert_eq!(
            b.transmit_interval(),
            Some(MS(100)),
            "A takes 50 ms: B's own 100"
        );
    }

    #[test]
    fn bfd_new_timers_while_down_apply_at_once() {
        let mut a = Fsm::new(fast(), 11);
        a.handle(Event::AdminUp, 0);
        let cfg = Config {
            desired_min_tx: MS(2000),
            ..fast()
        };
        a.handle(Event::Reconfigure(cfg), 0);
        assert!(!a.polling());
        assert_eq!(a.transmit_interval(), Some(MS(2000)));
    }

    #[test]
    fn bfd_detection_time_is_the_peers_multiplier_times_the_agreed_interval() {
        let (mut a, mut b) = handshake();
        // Both at 100 ms once the rates are agreed: 3 × 100 ms.
        let p = tick(&mut b);
        let actions = a.handle(Event::Received(p), 0);
        assert_eq!(armed(&actions, Timer::Detect), Some(MS(300)));
        // A peer that sends slower than we can receive sets the interval; its
        // multiplier counts, not ours.
        let mut slow = tick(&mut b);
        slow.desired_min_tx_us = 250_000;
        slow.detect_mult = 5;
        let actions = a.handle(Event::Received(slow), 0);
        assert_eq!(armed(&actions, Timer::Detect), Some(MS(1250)));
        assert_eq!(a.detection_time(), Some(MS(1250)));
    }

    #[test]
    fn bfd_detection_timeout_takes_the_session_down() {
        let (mut a, _b) = handshake();
        let actions = a.handle(Event::TimerExpired(Timer::Detect), 0);
        assert_eq!(changes(&actions), [(State::Up, State::Down)]);
        assert_eq!(a.diag(), Diag::DETECTION_TIME_EXPIRED);
        assert_eq!(a.remote_discriminator(), 0);
        let p = tick(&mut a);
        assert_eq!(
            (p.state, p.diag, p.your_discriminator),
            (State::Down, Diag::DETECTION_TIME_EXPIRED, 0)
        );
        assert_eq!(p.desired_min_tx_us, 1_000_000, "slow again");
    }

    #[test]
    fn bfd_admin_down_from_the_peer_is_a_signalled_down() {
        let (mut a, mut b) = handshake();
        let actions = b.handle(Event::AdminDown, 0);
        assert_eq!(changes(&actions), [(State::Up, State::AdminDown)]);
        let p = sent(&actions);
        assert_eq!(
            (p[0].state, p[0].diag),
            (State::AdminDown, Diag::ADMINISTRATIVELY_DOWN)
        );
        let actions = a.handle(Event::Received(p[0]), 0);
        assert_eq!(changes(&actions), [(State::Up, State::Down)]);
        assert_eq!(a.diag(), Diag::NEIGHBOR_SIGNALED_DOWN);
        // B in AdminDown ignores what A says, and stops its timers.
        assert!(changes(&b.handle(Event::Received(tick(&mut a)), 0)).is_empty());
        assert_eq!(
            b.handle(Event::TimerExpired(Timer::Transmit), 0),
            [Action::Cancel(Timer::Transmit)]
        );
        // Back up: the handshake starts again.
        b.handle(Event::AdminUp, 0);
        let p = tick(&mut b);
        assert_eq!(p.state, State::Down);
        assert_eq!(
            changes(&a.handle(Event::Received(p), 0)),
            [(State::Down, State::Init)]
        );
    }

    #[test]
    fn bfd_peer_down_while_up_is_a_signalled_down() {
        let (mut a, _b) = handshake();
        let mut p = Control::decode(&tick(&mut a).encode()).unwrap();
        p.state = State::Down;
        p.my_discriminator = 22;
        p.your_discriminator = 11;
        let actions = a.handle(Event::Received(p), 0);
        assert_eq!(changes(&actions), [(State::Up, State::Down)]);
        assert_eq!(a.diag(), Diag::NEIGHBOR_SIGNALED_DOWN);
    }

    #[test]
    fn bfd_packets_for_another_discriminator_are_ignored() {
        let (mut a, mut b) = handshake();
        let mut p = tick(&mut b);
        p.your_discriminator = 99;
        p.state = State::Down;
        assert!(a.handle(Event::Received(p), 0).is_empty());
        assert_eq!(a.state(), State::Up);
    }

    #[test]
    fn bfd_passive_waits_for_the_peer() {
        let mut cfg = fast();
        cfg.passive = true;
        let mut a = Fsm::new(cfg, 11);
        let mut b = Fsm::new(fast(), 22);
        a.handle(Event::AdminUp, 0);
        b.handle(Event::AdminUp, 0);
        for _ in 0..3 {
            let actions = a.handle(Event::TimerExpired(Timer::Transmit), 0);
            assert!(sent(&actions).is_empty(), "passive sent {actions:?}");
            assert!(armed(&actions, Timer::Transmit).is_some(), "keeps looking");
        }
        a.handle(Event::Received(tick(&mut b)), 0);
        assert_eq!(a.state(), State::Init);
        assert_eq!(tick(&mut a).state, State::Init);
    }

    #[test]
    fn bfd_required_min_rx_zero_stops_our_packets() {
        let (mut a, mut b) = handshake();
        let mut p = tick(&mut b);
        p.required_min_rx_us = 0;
        a.handle(Event::Received(p), 0);
        assert!(sent(&a.handle(Event::TimerExpired(Timer::Transmit), 0)).is_empty());
    }

    #[test]
    fn bfd_transmit_interval_is_jittered_within_the_rfc_bounds() {
        let (mut a, mut b) = handshake();
        a.handle(Event::Received(tick(&mut b)), 0);
        let mut seen = std::collections::BTreeSet::new();
        for r in 0..1000 {
            let d = armed(
                &a.handle(Event::TimerExpired(Timer::Transmit), r),
                Timer::Transmit,
            )
            .unwrap();
            assert!((MS(75)..=MS(100)).contains(&d), "{d:?}");
            seen.insert(d);
        }
        assert_eq!(seen.first(), Some(&MS(75)));
        assert_eq!(seen.last(), Some(&MS(100)));
        // Detect Mult 1: never above 90 %.
        let mut cfg = fast();
        cfg.detect_mult = 1;
        let mut one = Fsm::new(cfg, 5);
        one.handle(Event::AdminUp, 0);
        let mut top = Duration::ZERO;
        for r in 0..1000 {
            let d = armed(
                &one.handle(Event::TimerExpired(Timer::Transmit), r),
                Timer::Transmit,
            )
            .unwrap();
            assert!((MS(750)..=MS(900)).contains(&d), "{d:?}");
            top = top.max(d);
        }
        assert_eq!(top, MS(900));
    }

    /// Random events in any order: no panic, never P and F together, never a packet
    /// in AdminDown except the one announcing it, and only RFC state changes.
    #[test]
    fn bfd_random_events_keep_the_invariants() {
        use rand::RngExt;
        let mut rng: rand::rngs::StdRng = rand::make_rng();
        let allowed = [
            (State::AdminDown, State::Down),
            (State::Down, State::Init),
            (State::Down, State::Up),
            (State::Init, State::Up),
            (State::Init, State::Down),
            (State::Up, State::Down),
            (State::Down, State::AdminDown),
            (State::Init, State::AdminDown),
            (State::Up, State::AdminDown),
        ];
        for _ in 0..200 {
            let mut f = Fsm::new(fast(), 11);
            for _ in 0..200 {
                let state =
                    [State::AdminDown, State::Down, State::Init, State::Up][rng.random_range(0..4)];
                let p = Control {
                    diag: Diag::NONE,
                    state,
                    poll: rng.random(),
                    final_: rng.random(),
                    cpi: false,
                    demand: false,
                    detect_mult: rng.random_range(1..=5),
                    my_discriminator: 22,
                    your_discriminator: [0, 11, 12][rng.random_range(0..3)],
                    desired_min_tx_us: rng.random_range(0..2_000_000),
                    required_min_rx_us: rng.random_range(0..2_000_000),
                    required_min_echo_rx_us: 0,
                };
                let event = match rng.random_range(0..7) {
                    0 => Event::AdminUp,
                    1 => Event::AdminDown,
                    2 => Event::TimerExpired(Timer::Transmit),
                    3 => Event::TimerExpired(Timer::Detect),
                    4 => Event::Reconfigure(Config {
                        desired_min_tx: MS(rng.random_range(100..=500)),
                        required_min_rx: MS(rng.random_range(10..=500)),
                        detect_mult: rng.random_range(2..=5),
                        passive: rng.random(),
                    }),
                    _ => Event::Received(p),
                };
                let was = f.state();
                let actions = f.handle(event, rng.random());
                for a in &actions {
                    match a {
                        Action::Send(p) => {
                            assert!(!(p.poll && p.final_), "{p:?}");
                            assert_eq!(p.my_discriminator, 11);
                            if p.state == State::AdminDown {
                                assert_eq!(event, Event::AdminDown);
                            }
                        }
                        Action::StateChanged { from, to, .. } => {
                            assert!(allowed.contains(&(*from, *to)), "{from} -> {to}");
                        }
                        // Never faster than 75 % of our own 100 ms.
                        Action::Arm(Timer::Transmit, d) => {
                            assert!(*d >= Duration::from_millis(75), "{d:?}")
                        }
                        _ => {}
                    }
                }
                if was != f.state() {
                    assert!(changes(&actions).contains(&(was, f.state())));
                }
            }
        }
    }

    #[test]
    fn bfd_slow_rate_until_up_and_the_peers_rx_bounds_ours() {
        let mut a = Fsm::new(fast(), 11);
        a.handle(Event::AdminUp, 0);
        assert_eq!(a.transmit_interval(), Some(SLOW_TX));
        let (mut a, mut b) = handshake();
        let mut p = tick(&mut b);
        p.required_min_rx_us = 500_000;
        a.handle(Event::Received(p), 0);
        assert_eq!(a.transmit_interval(), Some(MS(500)));
    }
}
