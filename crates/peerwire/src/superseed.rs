//! Super-seeding (the idea of BEP 16) for the boot server's seed: instead of advertising every
//! piece, the seed offers each peer a piece or two at a time, always one of the pieces it has
//! uploaded least, and not one it is already offering to someone else; peers then spread
//! those pieces among themselves. Every piece leaves the seed once before any piece leaves it
//! twice, so the seed's upload approaches one copy of the file.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::Bitfield;

/// A peer, as the swarm names it: a number the swarm hands out once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u64);

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer {}", self.0)
    }
}

#[derive(Debug, Clone)]
pub struct SuperSeed {
    /// Completed uploads of each piece (by the seed).
    uploads: Vec<u32>,
    /// The pieces currently offered to each peer, and when each last moved (offered, or a
    /// block of it sent).
    offers: HashMap<PeerKey, Vec<(u32, Instant)>>,
    /// Peers that let an offer lapse get none until then.
    benched: HashMap<PeerKey, Instant>,
    /// Offers a peer holds at once: with two, the next piece is already announced while the
    /// current one is still on the wire, so the seed's uplink does not idle for a round trip
    /// after every piece.
    per_peer: usize,
}

impl SuperSeed {
    pub fn new(pieces: u32, per_peer: usize) -> Self {
        SuperSeed { uploads: vec![0; pieces as usize], offers: HashMap::new(), benched: HashMap::new(), per_peer: per_peer.max(1) }
    }

    /// How many times every piece has left the seed at least (1: the first round is done).
    pub fn rounds(&self) -> u32 {
        self.uploads.iter().copied().min().unwrap_or(0)
    }

    pub fn uploads(&self, piece: u32) -> u32 {
        self.uploads[piece as usize]
    }

    /// A new piece to offer `peer` (which has `peer_has`), or `None`: it holds as many offers
    /// as it may, or there is nothing to offer it.
    ///
    /// First round (some piece has never gone out): only a piece that has never gone out and
    /// is not on offer to anyone, so no piece can go out a second time while another has not
    /// gone out yet, however uploads interleave. Later rounds: a piece that has not spread
    /// (`held_by_peers(piece) <= 1`: its one holder may be unreachable for the others, or
    /// gone), least held first; everything else the peers get from each other. A `starving`
    /// peer (the swarm saw it get nothing from other peers for a while: it cannot reach them)
    /// is offered any piece it lacks, rarest first, once the first round is over, so a
    /// partitioned swarm still completes.
    /// An offer stands until [`SuperSeed::uploaded`], [`SuperSeed::withdraw`],
    /// [`SuperSeed::peer_gone`], or until it lapses ([`SuperSeed::expire`]). A peer that let
    /// one lapse is offered nothing for a while.
    pub fn offer(&mut self, now: Instant, peer: PeerKey, peer_has: &Bitfield, held_by_peers: impl Fn(u32) -> u32, starving: bool) -> Option<u32> {
        if self.benched.get(&peer).is_some_and(|&until| now < until) {
            return None;
        }
        let mine = self.offered(peer);
        if mine.len() >= self.per_peer {
            return None;
        }
        let floor = *self.uploads.iter().min()?;
        let on_offer: std::collections::HashSet<u32> = self.offers.values().flatten().map(|&(p, _)| p).collect();
        let lacks = |i: u32| !peer_has.has(i) && !mine.contains(&i);
        let all = 0..self.uploads.len() as u32;
        let piece = if floor == 0 { all.clone().find(|&i| self.uploads[i as usize] == 0 && lacks(i) && !on_offer.contains(&i)) } else { None };
        let piece = match piece {
            Some(p) => p,
            // Round one is not over: nothing goes out twice yet, starving or not.
            None if floor == 0 => return None,
            None if starving => all.filter(|&i| lacks(i)).min_by_key(|&i| (held_by_peers(i), self.uploads[i as usize]))?,
            None => all.filter(|&i| lacks(i) && !on_offer.contains(&i) && held_by_peers(i) <= 1).min_by_key(|&i| (held_by_peers(i), self.uploads[i as usize]))?,
        };
        self.offers.entry(peer).or_default().push((piece, now));
        Some(piece)
    }

    /// Pieces on offer to anyone.
    pub fn total_offers(&self) -> usize {
        self.offers.values().map(Vec::len).sum()
    }

    /// The pieces on offer to `peer`.
    pub fn offered(&self, peer: PeerKey) -> Vec<u32> {
        self.offers.get(&peer).map(|o| o.iter().map(|&(p, _)| p).collect()).unwrap_or_default()
    }

    /// A block of `piece` went to `peer`: its offer is in use.
    pub fn progressed(&mut self, peer: PeerKey, piece: u32, now: Instant) {
        if let Some(o) = self.offers.get_mut(&peer).and_then(|o| o.iter_mut().find(|(p, _)| *p == piece)) {
            o.1 = now;
        }
    }

    /// Withdraws every offer that has not moved for `timeout` (a peer that takes offers and
    /// never asks for them would otherwise hold the seed's slots for ever) and benches its
    /// peer for `4 × timeout`; returns what was withdrawn.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<(PeerKey, u32)> {
        let mut gone = Vec::new();
        for (&peer, offers) in &mut self.offers {
            offers.retain(|&(piece, at)| {
                let lapsed = now.saturating_duration_since(at) >= timeout;
                if lapsed {
                    gone.push((peer, piece));
                }
                !lapsed
            });
        }
        for &(peer, _) in &gone {
            self.benched.insert(peer, now + 4 * timeout);
        }
        self.benched.retain(|_, &mut until| now < until);
        gone
    }

    /// When the oldest standing offer lapses.
    pub fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.offers.values().flatten().map(|&(_, at)| at + timeout).min()
    }

    /// Whether `peer` may request blocks of `piece` from the seed now.
    pub fn allows(&self, peer: PeerKey, piece: u32) -> bool {
        self.offers.get(&peer).is_some_and(|o| o.iter().any(|&(p, _)| p == piece))
    }

    /// The seed finished sending `piece` to `peer`.
    pub fn uploaded(&mut self, peer: PeerKey, piece: u32) {
        self.withdraw(peer, piece);
        self.uploads[piece as usize] += 1;
    }

    /// `peer` got `piece` elsewhere: the offer is free again.
    pub fn withdraw(&mut self, peer: PeerKey, piece: u32) {
        if let Some(o) = self.offers.get_mut(&peer) {
            o.retain(|&(p, _)| p != piece);
        }
    }

    /// `peer` disconnected: its offers are free again.
    pub fn peer_gone(&mut self, peer: PeerKey) {
        self.offers.remove(&peer);
        self.benched.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static T0: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

    /// Random swarms: peers come and go, learn pieces from each other, take offers and finish
    /// them in any order. Whatever happens, no piece is uploaded twice while another was never
    /// uploaded, and the seed only lets a peer fetch the piece it offered. (With `|_| 0` no
    /// peer holds anything, so later rounds offer every piece again.)
    #[test]
    fn every_piece_once_before_any_twice() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _round in 0..200 {
            let pieces = 1 + rnd(40) as u32;
            let peers = 1 + rnd(12);
            let mut s = SuperSeed::new(pieces, 1 + rnd(2) as usize);
            let mut has: Vec<Bitfield> = (0..peers).map(|_| Bitfield::new(pieces)).collect();
            for _ in 0..500 {
                let p = rnd(peers);
                match rnd(4) {
                    0 => {
                        // p learns a random piece from another peer.
                        let donor = rnd(peers) as usize;
                        let got: Vec<u32> = has[donor].iter().collect();
                        if !got.is_empty() {
                            has[p as usize].set(got[rnd(got.len() as u64) as usize]);
                        }
                    }
                    1 => s.peer_gone(PeerKey(p)),
                    2 => {
                        // Take an offer, finish it later (or never).
                        if let Some(piece) = s.offer(*T0, PeerKey(p), &has[p as usize], |_| 0, false) {
                            assert!(s.allows(PeerKey(p), piece));
                            for other in 0..pieces {
                                assert_eq!(s.allows(PeerKey(p), other), s.offered(PeerKey(p)).contains(&other), "only offered pieces may be fetched");
                            }
                            assert!(s.offered(PeerKey(p)).len() <= s.per_peer);
                        }
                    }
                    _ => {
                        if let Some(&piece) = s.offered(PeerKey(p)).first() {
                            s.uploaded(PeerKey(p), piece);
                            has[p as usize].set(piece);
                            let min = (0..pieces).map(|i| s.uploads(i)).min().unwrap();
                            let max = (0..pieces).map(|i| s.uploads(i)).max().unwrap();
                            assert!(min > 0 || max <= 1, "a piece went out {max} times while another never went out");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn concurrent_offers_are_distinct_pieces() {
        let mut s = SuperSeed::new(4, 1);
        let none = Bitfield::new(4);
        let offers: Vec<u32> = (0..4).map(|p| s.offer(*T0, PeerKey(p), &none, |_| 0, false).unwrap()).collect();
        let mut sorted = offers.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        assert_eq!(s.offer(*T0, PeerKey(9), &none, |_| 0, false), None, "a 5th peer waits: every first-round piece is on offer");
        s.uploaded(PeerKey(2), offers[2]);
        assert_eq!(s.offer(*T0, PeerKey(9), &none, |_| 0, false), None, "still: the other three have not gone out once");
        assert_eq!(s.offer(*T0, PeerKey(0), &none, |_| 0, false), None, "one offer per peer, and it stands until uploaded");
        assert_eq!(s.offered(PeerKey(0)), vec![offers[0]]);
    }

    #[test]
    fn after_the_first_round_only_pieces_no_peer_holds() {
        let mut s = SuperSeed::new(3, 1);
        let none = Bitfield::new(3);
        for p in 0..3 {
            let piece = s.offer(*T0, PeerKey(p), &none, |_| 0, false).unwrap();
            s.uploaded(PeerKey(p), piece);
        }
        // Every piece went out once; two peers hold 0 and 2, the holder of 1 left.
        let held = |i: u32| if i == 1 { 0 } else { 2 };
        assert_eq!(s.offer(*T0, PeerKey(7), &none, held, false), Some(1));
        assert_eq!(s.offer(*T0, PeerKey(8), &none, held, false), None, "1 is on offer, 0 and 2 come from peers");
        // A piece only one peer holds has not spread: its holder may be out of reach.
        let once = |i: u32| if i == 2 { 1 } else { 3 };
        assert_eq!(s.offer(*T0, PeerKey(8), &none, once, false), Some(2));
        // A peer that gets nothing from peers gets anything it lacks.
        assert_eq!(s.offer(*T0, PeerKey(9), &none, held, true), Some(1), "rarest first");
        assert_eq!(s.offer(*T0, PeerKey(9), &none, held, true), None, "still one offer at a time");
    }

    #[test]
    fn two_offers_per_peer_when_asked() {
        let mut s = SuperSeed::new(5, 2);
        let none = Bitfield::new(5);
        assert_eq!(
            (s.offer(*T0, PeerKey(1), &none, |_| 0, false), s.offer(*T0, PeerKey(1), &none, |_| 0, false), s.offer(*T0, PeerKey(1), &none, |_| 0, false)),
            (Some(0), Some(1), None)
        );
        assert!(s.allows(PeerKey(1), 0) && s.allows(PeerKey(1), 1) && !s.allows(PeerKey(1), 2));
        s.withdraw(PeerKey(1), 0);
        assert_eq!(s.offer(*T0, PeerKey(2), &none, |_| 0, false), Some(0), "a withdrawn offer goes to someone else");
        assert_eq!(s.offer(*T0, PeerKey(1), &none, |_| 0, false), Some(2));
    }

    /// Offers that are never asked for lapse: the hoarders are benched and the pieces go to
    /// someone else; an offer whose blocks are moving does not lapse.
    #[test]
    fn offers_nobody_asks_for_lapse() {
        let t0 = *T0;
        let timeout = Duration::from_secs(5);
        let mut s = SuperSeed::new(8, 2);
        let none = Bitfield::new(8);
        for p in 0..4 {
            assert!(s.offer(t0, PeerKey(p), &none, |_| 0, false).is_some());
            assert!(s.offer(t0, PeerKey(p), &none, |_| 0, false).is_some());
        }
        assert_eq!(s.offer(t0, PeerKey(9), &none, |_| 0, false), None, "every piece is on offer to a hoarder");
        // Peer 3 asks for one of its pieces now and then.
        let busy = s.offered(PeerKey(3))[0];
        s.progressed(PeerKey(3), busy, t0 + Duration::from_secs(4));
        assert_eq!(s.next_expiry(timeout), Some(t0 + timeout));
        assert!(s.expire(t0 + Duration::from_secs(4), timeout).is_empty());
        let gone = s.expire(t0 + timeout, timeout);
        assert_eq!(gone.len(), 7, "all but the offer in use: {gone:?}");
        assert_eq!(s.offered(PeerKey(3)), vec![busy]);
        let later = t0 + timeout;
        assert!(s.offer(later, PeerKey(9), &none, |_| 0, false).is_some(), "a newcomer gets a freed piece");
        assert_eq!(s.offer(later, PeerKey(0), &none, |_| 0, false), None, "a hoarder is benched");
        assert!(s.offer(later + 4 * timeout, PeerKey(0), &none, |_| 0, false).is_some(), "for a while");
    }
}
