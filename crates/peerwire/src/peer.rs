//! One connection to one peer, sans-IO: bytes in ([`Peer::on_bytes`]), bytes out
//! ([`Peer::take_transmit`]), time in ([`Peer::on_timeout`] at [`Peer::poll_timeout`]).
//! It checks the protocol (a block nobody asked for, a malformed or mis-sized message, a bad
//! bitfield, the wrong torrent: the peer is dropped with a reason) and keeps the connection
//! alive: a keep-alive goes out well before the idle timeout the other side may apply, and a
//! peer silent for the whole idle timeout is dropped.

use std::time::{Duration, Instant};

use crate::wire::{Decoder, Frame, Handshake, Message, WireError, BLOCK, EXTENSION_PROTOCOL, FAST_EXTENSION};
use crate::{Bitfield, BitfieldError};

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub info_hash: [u8; 20],
    pub our_id: [u8; 20],
    pub pieces: u32,
    /// Drop a peer we heard nothing from for this long.
    pub idle_timeout: Duration,
    /// Send a keep-alive when we sent nothing for this long (a third of the idle timeout, so a
    /// peer applying the same timeout never drops us).
    pub keepalive: Duration,
    /// Requests we keep outstanding at most.
    pub max_requests: usize,
}

impl PeerConfig {
    pub fn new(info_hash: [u8; 20], our_id: [u8; 20], pieces: u32) -> Self {
        let idle_timeout = Duration::from_secs(60);
        PeerConfig { info_hash, our_id, pieces, idle_timeout, keepalive: idle_timeout / 3, max_requests: 64 }
    }
}

/// Why a peer was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disconnect {
    #[error("protocol: {0}")]
    Wire(#[from] WireError),
    #[error("handshake for another torrent")]
    WrongTorrent,
    #[error("connected to ourselves")]
    SelfConnection,
    #[error("bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    #[error("piece index {0} out of range")]
    BadIndex(u32),
    #[error("a block nobody requested: piece {index} offset {begin}")]
    Unrequested { index: u32, begin: u32 },
    #[error("request larger than 16 KiB or out of range")]
    BadRequest,
    #[error("Fast-extension message without the Fast extension")]
    NotFast,
    #[error("silent for the whole idle timeout")]
    Idle,
}

/// What happened, for the swarm to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Connected {
        peer_id: [u8; 20],
        fast: bool,
        /// The peer speaks the extension protocol (BEP 10).
        extended: bool,
    },
    /// A BEP 10 message (`id` 0: the extension handshake); its meaning is the caller's.
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
    /// The peer's pieces are these now (bitfield, have-all, have-none).
    Has(Bitfield),
    /// The peer got one more piece (a HAVE for a piece it had already is no event at all).
    Have(u32),
    Choked,
    Unchoked,
    Interested(bool),
    Block {
        index: u32,
        begin: u32,
        data: Vec<u8>,
    },
    /// The peer will not send this block (BEP 6), or choked us with it outstanding.
    Lost {
        index: u32,
        begin: u32,
        length: u32,
    },
    Requested {
        index: u32,
        begin: u32,
        length: u32,
    },
    Cancelled {
        index: u32,
        begin: u32,
        length: u32,
    },
    Dropped(Disconnect),
}

#[derive(Debug)]
pub struct Peer {
    cfg: PeerConfig,
    decoder: Decoder,
    out: Vec<u8>,
    handshaken: bool,
    fast: bool,
    pub peer_has: Bitfield,
    pub peer_choking: bool,
    pub am_interested: bool,
    outstanding: Vec<(u32, u32, u32)>,
    /// Requests we cancelled or gave up on: a block for one of them may still be on its way
    /// and is accepted (the swarm decides whether it is still needed), not treated as unrequested.
    late: std::collections::VecDeque<(u32, u32, u32)>,
    last_recv: Instant,
    last_send: Instant,
    dropped: bool,
}

impl Peer {
    /// A connection (either direction); our handshake is queued at once.
    pub fn new(cfg: PeerConfig, now: Instant) -> Self {
        let mut out = Vec::new();
        Handshake::new(cfg.info_hash, cfg.our_id).encode(&mut out);
        let max = BLOCK + 13;
        let bitfield_max = cfg.pieces.div_ceil(8) + 1;
        Peer {
            decoder: Decoder::new(max.max(bitfield_max)),
            peer_has: Bitfield::new(cfg.pieces),
            cfg,
            out,
            handshaken: false,
            fast: false,
            peer_choking: true,
            am_interested: false,
            outstanding: Vec::new(),
            late: Default::default(),
            last_recv: now,
            last_send: now,
            dropped: false,
        }
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped
    }
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
    pub fn is_handshaken(&self) -> bool {
        self.handshaken
    }
    /// Whether anything is waiting to be written.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }
    /// Bytes waiting to be written.
    pub fn pending_transmit(&self) -> usize {
        self.out.len()
    }
    pub fn can_request(&self) -> bool {
        self.handshaken && !self.peer_choking && self.outstanding.len() < self.cfg.max_requests
    }

    /// Bytes to write to the socket.
    pub fn take_transmit(&mut self, now: Instant) -> Vec<u8> {
        if !self.out.is_empty() {
            self.last_send = now;
        }
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, m: Message) {
        m.encode(&mut self.out);
    }

    pub fn set_interested(&mut self, yes: bool) {
        if yes != self.am_interested {
            self.am_interested = yes;
            self.send(if yes { Message::Interested } else { Message::NotInterested });
        }
    }
    pub fn announce(&mut self, have: &Bitfield) {
        if have.is_complete() && self.fast {
            self.send(Message::HaveAll);
        } else if have.count() == 0 && self.fast {
            self.send(Message::HaveNone);
        } else {
            self.send(Message::Bitfield(have.as_bytes().to_vec()));
        }
    }
    pub fn have(&mut self, piece: u32) {
        self.send(Message::Have(piece));
    }
    pub fn choke(&mut self, yes: bool) {
        self.send(if yes { Message::Choke } else { Message::Unchoke });
    }
    pub fn request(&mut self, index: u32, begin: u32, length: u32) {
        self.outstanding.push((index, begin, length));
        self.send(Message::Request { index, begin, length });
    }
    /// Cancels one outstanding request (endgame: the block came from someone else).
    pub fn cancel(&mut self, index: u32, begin: u32, length: u32) {
        if let Some(pos) = self.outstanding.iter().position(|&r| r == (index, begin, length)) {
            self.outstanding.swap_remove(pos);
            self.remember_late((index, begin, length));
            self.send(Message::Cancel { index, begin, length });
        }
    }
    /// Gives up on every outstanding request without telling the peer (it choked us, or it is
    /// too slow); returns them. A block that still arrives for one is accepted.
    pub fn forget_requests(&mut self) -> Vec<(u32, u32, u32)> {
        let gone: Vec<_> = self.outstanding.drain(..).collect();
        for &r in &gone {
            self.remember_late(r);
        }
        gone
    }
    fn remember_late(&mut self, r: (u32, u32, u32)) {
        const LATE_KEPT: usize = 1024;
        if self.late.len() == LATE_KEPT {
            self.late.pop_front();
        }
        self.late.push_back(r);
    }
    /// Refuses a request (BEP 6; without the Fast extension the request is just ignored).
    pub fn reject(&mut self, index: u32, begin: u32, length: u32) {
        if self.fast {
            self.send(Message::Reject { index, begin, length });
        }
    }
    /// Sends a BEP 10 message.
    pub fn send_extended(&mut self, id: u8, payload: Vec<u8>) {
        self.send(Message::Extended { id, payload });
    }

    pub fn send_block(&mut self, index: u32, begin: u32, data: Vec<u8>) {
        self.send(Message::Piece { index, begin, data });
    }

    /// When to call [`Peer::on_timeout`].
    pub fn poll_timeout(&self) -> Instant {
        (self.last_send + self.cfg.keepalive).min(self.last_recv + self.cfg.idle_timeout)
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Event> {
        if self.dropped {
            return vec![];
        }
        if now >= self.last_recv + self.cfg.idle_timeout {
            return self.drop_with(Disconnect::Idle);
        }
        if now >= self.last_send + self.cfg.keepalive && self.out.is_empty() {
            self.send(Message::KeepAlive);
        }
        vec![]
    }

    fn drop_with(&mut self, why: Disconnect) -> Vec<Event> {
        self.dropped = true;
        vec![Event::Dropped(why)]
    }

    /// Bytes read from the socket.
    pub fn on_bytes(&mut self, now: Instant, bytes: &[u8]) -> Vec<Event> {
        if self.dropped {
            return vec![];
        }
        self.last_recv = now;
        self.decoder.push(bytes);
        let mut events = Vec::new();
        loop {
            match self.decoder.next_frame() {
                Ok(None) => return events,
                Ok(Some(frame)) => {
                    if let Err(why) = self.on_frame(frame, &mut events) {
                        events.extend(self.drop_with(why));
                        return events;
                    }
                }
                Err(e) => {
                    events.extend(self.drop_with(e.into()));
                    return events;
                }
            }
        }
    }

    fn check_index(&self, i: u32) -> Result<(), Disconnect> {
        if i < self.cfg.pieces {
            Ok(())
        } else {
            Err(Disconnect::BadIndex(i))
        }
    }

    fn on_frame(&mut self, frame: Frame, ev: &mut Vec<Event>) -> Result<(), Disconnect> {
        let m = match frame {
            Frame::Handshake(h) => {
                if h.info_hash != self.cfg.info_hash {
                    return Err(Disconnect::WrongTorrent);
                }
                if h.peer_id == self.cfg.our_id {
                    return Err(Disconnect::SelfConnection);
                }
                self.handshaken = true;
                self.fast = h.supports(FAST_EXTENSION);
                ev.push(Event::Connected { peer_id: h.peer_id, fast: self.fast, extended: h.supports(EXTENSION_PROTOCOL) });
                return Ok(());
            }
            Frame::Message(m) => m,
        };
        let fast_only = matches!(m, Message::HaveAll | Message::HaveNone | Message::Reject { .. } | Message::Suggest(_) | Message::AllowedFast(_));
        if fast_only && !self.fast {
            return Err(Disconnect::NotFast);
        }
        match m {
            Message::KeepAlive | Message::Port(_) | Message::Suggest(_) | Message::AllowedFast(_) | Message::Unknown { .. } => {}
            Message::Extended { id, payload } => ev.push(Event::Extended { id, payload }),
            Message::Choke => {
                self.peer_choking = true;
                // Without the Fast extension a choke discards every outstanding request.
                if !self.fast {
                    for (index, begin, length) in self.forget_requests() {
                        ev.push(Event::Lost { index, begin, length });
                    }
                }
                ev.push(Event::Choked);
            }
            Message::Unchoke => {
                self.peer_choking = false;
                ev.push(Event::Unchoked);
            }
            Message::Interested => ev.push(Event::Interested(true)),
            Message::NotInterested => ev.push(Event::Interested(false)),
            Message::Have(i) => {
                self.check_index(i)?;
                if !self.peer_has.has(i) {
                    self.peer_has.set(i);
                    ev.push(Event::Have(i));
                }
            }
            Message::Bitfield(b) => {
                self.peer_has = Bitfield::from_bytes(&b, self.cfg.pieces)?;
                ev.push(Event::Has(self.peer_has.clone()));
            }
            Message::HaveAll => {
                self.peer_has = Bitfield::full(self.cfg.pieces);
                ev.push(Event::Has(self.peer_has.clone()));
            }
            Message::HaveNone => {
                self.peer_has = Bitfield::new(self.cfg.pieces);
                ev.push(Event::Has(self.peer_has.clone()));
            }
            Message::Request { index, begin, length } => {
                self.check_index(index)?;
                if length == 0 || length > BLOCK {
                    return Err(Disconnect::BadRequest);
                }
                ev.push(Event::Requested { index, begin, length });
            }
            Message::Cancel { index, begin, length } => ev.push(Event::Cancelled { index, begin, length }),
            Message::Piece { index, begin, data } => {
                let key = |&(i, b, l): &(u32, u32, u32)| i == index && b == begin && l as usize == data.len();
                if let Some(pos) = self.outstanding.iter().position(key) {
                    self.outstanding.swap_remove(pos);
                } else if let Some(pos) = self.late.iter().position(key) {
                    self.late.remove(pos);
                } else {
                    return Err(Disconnect::Unrequested { index, begin });
                }
                ev.push(Event::Block { index, begin, data });
            }
            Message::Reject { index, begin, length } => {
                if let Some(pos) = self.outstanding.iter().position(|&r| r == (index, begin, length)) {
                    self.outstanding.swap_remove(pos);
                    ev.push(Event::Lost { index, begin, length });
                } else if let Some(pos) = self.late.iter().position(|&r| r == (index, begin, length)) {
                    self.late.remove(pos);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: [u8; 20] = [7; 20];

    fn pair(now: Instant) -> (Peer, Peer) {
        (Peer::new(PeerConfig::new(HASH, [1; 20], 8), now), Peer::new(PeerConfig::new(HASH, [2; 20], 8), now))
    }

    /// Moves bytes a → b and b → a until both are quiet; returns (events at a, events at b).
    fn pump(a: &mut Peer, b: &mut Peer, now: Instant) -> (Vec<Event>, Vec<Event>) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        loop {
            let (ta, tb) = (a.take_transmit(now), b.take_transmit(now));
            if ta.is_empty() && tb.is_empty() {
                return (ea, eb);
            }
            eb.extend(b.on_bytes(now, &ta));
            ea.extend(a.on_bytes(now, &tb));
        }
    }

    #[test]
    fn handshake_bitfield_request_block() {
        let now = Instant::now();
        let (mut seed, mut leech) = pair(now);
        seed.announce(&Bitfield::full(8));
        leech.announce(&Bitfield::new(8));
        let (es, el) = pump(&mut seed, &mut leech, now);
        assert_eq!(es[0], Event::Connected { peer_id: [2; 20], fast: true, extended: true });
        assert!(el.contains(&Event::Has(Bitfield::full(8))), "have-all over the Fast extension");
        leech.set_interested(true);
        seed.choke(false);
        let (es, el) = pump(&mut seed, &mut leech, now);
        assert!(es.contains(&Event::Interested(true)) && el.contains(&Event::Unchoked));
        assert!(leech.can_request());
        leech.request(3, 0, 16384);
        let (es, _) = pump(&mut seed, &mut leech, now);
        assert_eq!(es, vec![Event::Requested { index: 3, begin: 0, length: 16384 }]);
        seed.send_block(3, 0, vec![5; 16384]);
        let (_, el) = pump(&mut seed, &mut leech, now);
        assert_eq!(el, vec![Event::Block { index: 3, begin: 0, data: vec![5; 16384] }]);
        assert_eq!(leech.outstanding(), 0);
    }

    #[test]
    fn unrequested_blocks_and_garbage_drop_the_peer() {
        let now = Instant::now();
        let (mut a, mut b) = pair(now);
        pump(&mut a, &mut b, now);
        a.send_block(0, 0, vec![1; 10]);
        let (_, eb) = pump(&mut a, &mut b, now);
        assert_eq!(eb, vec![Event::Dropped(Disconnect::Unrequested { index: 0, begin: 0 })]);
        assert!(b.is_dropped());

        let (mut a, mut b) = pair(now);
        pump(&mut a, &mut b, now);
        let ev = b.on_bytes(now, &[0, 0, 0, 5, 4, 0, 0, 0, 9]); // HAVE 9 of 8 pieces
        assert_eq!(ev, vec![Event::Dropped(Disconnect::BadIndex(9))]);

        let mut other = Peer::new(PeerConfig::new([9; 20], [3; 20], 8), now);
        let (_, mut c) = pair(now);
        let (_, ec) = pump(&mut other, &mut c, now);
        assert!(ec.contains(&Event::Dropped(Disconnect::WrongTorrent)));
    }

    #[test]
    fn rejects_and_chokes_give_requests_back() {
        let now = Instant::now();
        let (mut seed, mut leech) = pair(now);
        seed.choke(false);
        pump(&mut seed, &mut leech, now);
        leech.request(1, 0, 16384);
        leech.request(1, 16384, 16384);
        pump(&mut seed, &mut leech, now);
        seed.send(Message::Reject { index: 1, begin: 16384, length: 16384 });
        let (_, el) = pump(&mut seed, &mut leech, now);
        assert_eq!(el, vec![Event::Lost { index: 1, begin: 16384, length: 16384 }]);
        assert_eq!(leech.outstanding(), 1);
    }

    #[test]
    fn cancelled_and_forgotten_requests_may_still_arrive_once() {
        let now = Instant::now();
        let (mut seed, mut leech) = pair(now);
        seed.choke(false);
        pump(&mut seed, &mut leech, now);
        leech.request(2, 0, 16384);
        leech.request(2, 16384, 16384);
        leech.cancel(2, 0, 16384);
        assert_eq!(leech.forget_requests(), vec![(2, 16384, 16384)]);
        let (es, _) = pump(&mut seed, &mut leech, now);
        assert!(es.contains(&Event::Cancelled { index: 2, begin: 0, length: 16384 }));
        seed.send_block(2, 0, vec![1; 16384]);
        seed.send_block(2, 16384, vec![1; 16384]);
        let (_, el) = pump(&mut seed, &mut leech, now);
        assert_eq!(el.len(), 2, "both late blocks accepted: {el:?}");
        seed.send_block(2, 0, vec![1; 16384]);
        let (_, el) = pump(&mut seed, &mut leech, now);
        assert_eq!(el, vec![Event::Dropped(Disconnect::Unrequested { index: 2, begin: 0 })], "but only once");
    }

    #[test]
    fn keepalives_go_out_before_the_idle_timeout_and_silence_drops() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        pump(&mut a, &mut b, t0);
        // a keeps talking because its timer says so; b stays alive.
        let mut now = t0;
        for _ in 0..10 {
            now = a.poll_timeout().min(b.poll_timeout());
            a.on_timeout(now);
            b.on_timeout(now);
            let (ea, eb) = pump(&mut a, &mut b, now);
            assert!(ea.is_empty() && eb.is_empty(), "{ea:?} {eb:?}");
        }
        assert!(now >= t0 + Duration::from_secs(150), "ran through several idle periods");
        // Now b goes silent (its keep-alives are lost): a drops it after the idle timeout.
        let silent_from = now;
        loop {
            now = a.poll_timeout();
            let ev = a.on_timeout(now);
            a.take_transmit(now);
            if !ev.is_empty() {
                assert_eq!(ev, vec![Event::Dropped(Disconnect::Idle)]);
                assert_eq!(now, silent_from + Duration::from_secs(60));
                break;
            }
        }
    }
}
