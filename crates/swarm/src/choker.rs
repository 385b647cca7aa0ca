//! Who gets an upload slot: a bounded number of interested peers is unchoked, the fastest
//! ones (by what they send us while we download, by what we send them once we seed) plus one
//! optimistic slot that rotates, so a newcomer gets a chance to show its rate.

use swarmboot_peerwire::picker::TieBreak;
use swarmboot_peerwire::superseed::PeerKey;

/// One interested peer, as the choker sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub key: PeerKey,
    /// What ranks it, higher first (bytes/s it sends us or we send it, or minus its piece
    /// count: see [`crate::ChokePolicy`]).
    pub rate: f64,
    pub unchoked: bool,
}

#[derive(Debug, Clone)]
pub struct Choker {
    slots: usize,
    optimistic: Option<PeerKey>,
    rounds: u32,
    rotate_every: u32,
    rng: TieBreak,
}

impl Choker {
    /// `slots` upload slots in all (the optimistic one included); the optimistic slot moves
    /// every `rotate_every` full rechokes.
    pub fn new(slots: usize, rotate_every: u32, seed: u64) -> Self {
        Choker { slots: slots.max(1), optimistic: None, rounds: 0, rotate_every: rotate_every.max(1), rng: TieBreak::new(seed) }
    }

    /// The periodic rechoke: rank everyone, maybe move the optimistic slot. Returns the peers
    /// to have unchoked (every other candidate is choked).
    pub fn rechoke(&mut self, candidates: &[Candidate]) -> Vec<PeerKey> {
        self.rounds += 1;
        let mut ranked: Vec<&Candidate> = candidates.iter().collect();
        ranked.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.key.cmp(&b.key)));
        let regular = if candidates.len() > self.slots { self.slots - 1 } else { self.slots };
        let mut chosen: Vec<PeerKey> = ranked.iter().take(regular).map(|c| c.key).collect();
        let rest: Vec<PeerKey> = ranked.iter().skip(regular).map(|c| c.key).collect();
        if !rest.is_empty() {
            let keep = self.optimistic.filter(|o| rest.contains(o) && !self.rounds.is_multiple_of(self.rotate_every));
            let pick = keep.unwrap_or_else(|| rest[self.rng.below(rest.len() as u64) as usize]);
            self.optimistic = Some(pick);
            chosen.push(pick);
        } else {
            self.optimistic = None;
        }
        chosen
    }

    /// Between rechokes (a peer became interested or left, a slot is free): keep everyone
    /// unchoked as is and fill free slots, best first.
    pub fn fill(&mut self, candidates: &[Candidate]) -> Vec<PeerKey> {
        let mut chosen: Vec<PeerKey> = candidates.iter().filter(|c| c.unchoked).map(|c| c.key).collect();
        chosen.truncate(self.slots);
        let mut waiting: Vec<&Candidate> = candidates.iter().filter(|c| !c.unchoked).collect();
        waiting.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.key.cmp(&b.key)));
        for c in waiting {
            if chosen.len() >= self.slots {
                break;
            }
            chosen.push(c.key);
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ks: &[u64]) -> Vec<PeerKey> {
        ks.iter().map(|&k| PeerKey(k)).collect()
    }

    fn cands(rates: &[f64]) -> Vec<Candidate> {
        rates.iter().enumerate().map(|(i, &rate)| Candidate { key: PeerKey(i as u64), rate, unchoked: false }).collect()
    }

    #[test]
    fn fastest_plus_one_optimistic_that_rotates() {
        let mut c = Choker::new(4, 3, 42);
        let all = cands(&[10.0, 50.0, 40.0, 30.0, 5.0, 1.0, 2.0, 3.0]);
        let mut optimists = std::collections::HashSet::new();
        for round in 0..30 {
            let chosen = c.rechoke(&all);
            assert_eq!(chosen.len(), 4);
            assert_eq!(&chosen[..3], &keys(&[1, 2, 3])[..], "round {round}: the three fastest");
            assert!(!chosen[..3].contains(&chosen[3]));
            optimists.insert(chosen[3]);
        }
        assert!(optimists.len() >= 3, "the optimistic slot moved around: {optimists:?}");
    }

    #[test]
    fn few_candidates_all_unchoked_and_fill_keeps_the_current_ones() {
        let mut c = Choker::new(4, 3, 1);
        assert_eq!(c.rechoke(&cands(&[1.0, 2.0])).len(), 2);
        let mut all = cands(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        all[0].unchoked = true;
        all[1].unchoked = true;
        let chosen = c.fill(&all);
        assert_eq!(chosen, keys(&[0, 1, 5, 4]), "current ones stay, the free slots go to the fastest waiting");
    }
}
