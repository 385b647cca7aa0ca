//! Which piece to ask a peer for next.
//!
//! - Rarest first, ties broken at random, so a storm of leechers spreads over different pieces
//!   instead of all pulling piece 0 from the seeder; the first few pieces are chosen at random
//!   outright (rarity means little before anyone has anything).
//! - In-order mode: strictly lowest index first, for data the stub needs before the rest.
//! - Endgame: when every missing piece is already being fetched, a piece may be asked of a
//!   second peer, but only while at most [`ENDGAME_PIECES`] pieces are missing and never from
//!   more than [`ENDGAME_MAX_PEERS`] peers at once.

use crate::Bitfield;

/// Pieces picked purely at random before rarest-first starts.
pub const RANDOM_FIRST: u32 = 4;
/// Endgame starts when at most this many pieces are missing.
pub const ENDGAME_PIECES: u32 = 4;
/// In the endgame, a piece is fetched from at most this many peers at once.
pub const ENDGAME_MAX_PEERS: u8 = 2;

/// A small seedable PRNG (xorshift64*) for tie-breaks: the caller seeds it, so the picker
/// stays deterministic under test.
#[derive(Debug, Clone)]
pub struct TieBreak(u64);

impl TieBreak {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed: nearby seeds (0, 1, 2…) give unrelated streams, never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        TieBreak((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    RarestFirst,
    InOrder,
}

#[derive(Debug, Clone)]
pub struct PiecePicker {
    availability: Vec<u32>,
    have: Bitfield,
    in_flight: Vec<u8>,
    order: Order,
    rng: TieBreak,
}

impl PiecePicker {
    pub fn new(pieces: u32, have: Bitfield, seed: u64) -> Self {
        assert_eq!(have.len(), pieces, "a bitfield of the torrent's pieces");
        PiecePicker { availability: vec![0; pieces as usize], have, in_flight: vec![0; pieces as usize], order: Order::RarestFirst, rng: TieBreak::new(seed) }
    }

    pub fn set_order(&mut self, order: Order) {
        self.order = order;
    }
    pub fn have(&self) -> &Bitfield {
        &self.have
    }
    pub fn availability(&self, piece: u32) -> u32 {
        self.availability.get(piece as usize).copied().unwrap_or(0)
    }

    /// A peer announced all of `pieces` (its bitfield, or have-all).
    pub fn add_peer(&mut self, pieces: &Bitfield) {
        for i in pieces.iter() {
            self.availability[i as usize] += 1;
        }
    }
    /// A peer with `pieces` went away.
    pub fn remove_peer(&mut self, pieces: &Bitfield) {
        for i in pieces.iter() {
            self.availability[i as usize] = self.availability[i as usize].saturating_sub(1);
        }
    }
    /// A peer announced one more piece (HAVE).
    pub fn peer_has(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a += 1;
        }
    }
    /// A peer no longer has one piece (a have-none after a bitfield).
    pub fn peer_lost(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_sub(1);
        }
    }

    fn missing(&self) -> u32 {
        self.have.len() - self.have.count()
    }

    /// The next piece to request from a peer that has `peer`, marked in flight; `None` if it
    /// has nothing we want (or all it has is already being fetched outside the endgame).
    pub fn pick(&mut self, peer: &Bitfield) -> Option<u32> {
        let wanted = |i: u32| peer.has(i) && !self.have.has(i);
        let fresh: Vec<u32> = (0..self.have.len()).filter(|&i| wanted(i) && self.in_flight[i as usize] == 0).collect();
        let choice = if fresh.is_empty() {
            // Endgame: duplicate a piece in flight, only near the end and only once more.
            if self.missing() > ENDGAME_PIECES {
                return None;
            }
            let dup: Vec<u32> = (0..self.have.len()).filter(|&i| wanted(i) && self.in_flight[i as usize] < ENDGAME_MAX_PEERS).collect();
            *dup.get(self.rng.below(dup.len().max(1) as u64) as usize)?
        } else {
            match self.order {
                Order::InOrder => fresh[0],
                Order::RarestFirst if self.have.count() < RANDOM_FIRST => fresh[self.rng.below(fresh.len() as u64) as usize],
                Order::RarestFirst => {
                    let rarest = fresh.iter().map(|&i| self.availability[i as usize]).min()?;
                    let ties: Vec<u32> = fresh.into_iter().filter(|&i| self.availability[i as usize] == rarest).collect();
                    ties[self.rng.below(ties.len() as u64) as usize]
                }
            }
        };
        self.in_flight[choice as usize] += 1;
        Some(choice)
    }

    /// A piece arrived and its hash matched.
    pub fn piece_done(&mut self, piece: u32) {
        if self.have.set(piece) {
            self.in_flight[piece as usize] = 0;
        }
    }

    /// A fetch ended without the piece (peer gone, choked, rejected, bad hash): it can be
    /// picked again.
    pub fn piece_abandoned(&mut self, piece: u32) {
        if let Some(f) = self.in_flight.get_mut(piece as usize) {
            *f = f.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf(n: u32, pieces: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(n);
        for &p in pieces {
            b.set(p);
        }
        b
    }

    #[test]
    fn rarest_first_after_the_random_start() {
        let mut p = PiecePicker::new(10, bf(10, &[0, 1, 2, 3]), 7);
        p.add_peer(&Bitfield::full(10));
        p.add_peer(&bf(10, &[4, 5, 6, 7, 8]));
        p.add_peer(&bf(10, &[4, 5, 6, 7]));
        // Piece 9 is on one peer only, 8 on two, 4..=7 on three.
        assert_eq!(p.pick(&Bitfield::full(10)), Some(9));
        assert_eq!(p.pick(&Bitfield::full(10)), Some(8));
        let next = p.pick(&Bitfield::full(10)).unwrap();
        assert!((4..=7).contains(&next));
    }

    #[test]
    fn ties_are_broken_differently_by_different_leechers() {
        // 20 fresh leechers facing one seeder must not all start on the same piece.
        let firsts: std::collections::HashSet<u32> = (0..20)
            .map(|seed| {
                let mut p = PiecePicker::new(256, Bitfield::new(256), seed);
                p.add_peer(&Bitfield::full(256));
                p.pick(&Bitfield::full(256)).unwrap()
            })
            .collect();
        assert!(firsts.len() >= 15, "first pieces: {firsts:?}");
    }

    #[test]
    fn in_order_mode_and_no_piece_twice_before_the_endgame() {
        let mut p = PiecePicker::new(12, Bitfield::new(12), 1);
        p.set_order(Order::InOrder);
        let all = Bitfield::full(12);
        let picks: Vec<u32> = (0..8).map(|_| p.pick(&all).unwrap()).collect();
        assert_eq!(picks, (0..8).collect::<Vec<_>>());
        for i in 0..8 {
            p.piece_done(i);
        }
        // 4 missing, 0 in flight: fresh picks first.
        let rest: Vec<u32> = (0..4).map(|_| p.pick(&all).unwrap()).collect();
        assert_eq!(rest, vec![8, 9, 10, 11]);
        // All 4 in flight: endgame duplicates, each at most once more, then nothing.
        let mut dups = Vec::new();
        while let Some(i) = p.pick(&all) {
            dups.push(i);
        }
        dups.sort();
        assert_eq!(dups, vec![8, 9, 10, 11]);
    }

    #[test]
    fn no_endgame_while_many_pieces_are_missing() {
        let mut p = PiecePicker::new(20, Bitfield::new(20), 3);
        let only_two = bf(20, &[0, 1]);
        assert!(p.pick(&only_two).is_some());
        assert!(p.pick(&only_two).is_some());
        assert_eq!(p.pick(&only_two), None, "18 missing: no duplicates");
        p.piece_abandoned(0);
        assert_eq!(p.pick(&only_two), Some(0), "an abandoned piece can be picked again");
    }
}
