//! The placement of datasets on a simulated fleet (200 donors × 500 datasets, `sim::Spec`'s
//! default), against issue 20's goals: replicas reached, little churn once settled, Sybils that
//! cannot empty a dataset, successors that fetch only what they add, a table rebuilt from one
//! round of check-ins.

use swarmboot_placement::sim::{sybil_futures, Spec, World};

/// A fleet that has had `rounds` rounds from empty disks.
fn settled(seed: u64, rounds: usize) -> World {
    let mut w = World::new(&Spec { seed, ..Spec::default() });
    for _ in 0..rounds {
        w.round();
    }
    w
}

#[test]
fn datasets_reach_their_replica_counts_within_20_rounds_and_then_stay_put() {
    let mut w = World::new(&Spec::default());
    let mut reached = Vec::new();
    for _ in 0..20 {
        w.round();
        reached.push(w.at_target());
    }
    let (used, capacity) = w.fill();
    eprintln!("at target by round: {}", reached.iter().map(|r| format!("{:.3}", r)).collect::<Vec<_>>().join(" "));
    eprintln!("fleet {:.1} of {:.1} TB used; the counts need {:.1} TB", used as f64 / 1e12, capacity as f64 / 1e12, w.need() as f64 / 1e12);
    assert!(reached[19] >= 0.95, "only {:.1} % of datasets at their replica count after 20 rounds", reached[19] * 100.0);
    let churn: Vec<f64> = (0..10).map(|_| w.round().churn()).collect();
    eprintln!("churn per round once settled: {}", churn.iter().map(|c| format!("{:.4}", c)).collect::<Vec<_>>().join(" "));
    assert!(churn.iter().all(|&c| c <= 0.05), "a settled fleet moved more than 5 % of its bytes in a round: {churn:?}");
    assert!(w.at_target() >= 0.95);
}

#[test]
fn fifty_sybils_claiming_a_dataset_do_not_take_it_below_its_count_among_honest_donors() {
    // The dataset honest donors hold fewest times at or over its count.
    let base = settled(7, 20);
    let x = (2..).find_map(|n| base.dataset_held(n)).expect("some dataset is held");
    let (wanted, before) = (base.replicas_wanted(&x), base.honest_holders(&x));
    let o = sybil_futures(&base, &x, false, 1000);
    eprintln!("{x}: wants {wanted}, {before} honest holders; 50 Sybils claiming it: at its count after 20 rounds in {}/1000 futures (lowest {})", o.kept, o.lowest);
    assert!(o.kept >= 990, "{x} fell below its count among honest donors in {} of 1000 futures", 1000 - o.kept);
    // What the tickets are for: Sybils whose claims count (as if each had been given it once)
    // keep the server from placing it again as honest holders die.
    let t = sybil_futures(&base, &x, true, 100);
    eprintln!("the same Sybils with a ticket each from the start: at its count in {}/100 futures (lowest {})", t.kept, t.lowest);
    assert!(t.kept * 1000 < o.kept * 100, "claims with tickets count: {}/100 vs {}/1000", t.kept, o.kept);
}

#[test]
fn a_successor_reaches_its_predecessors_holders_within_3_rounds_fetching_only_what_it_adds() {
    let mut w = settled(11, 20);
    let d = w.dataset_held(5).or_else(|| w.dataset_held(3)).expect("a dataset held by a few donors");
    let s = w.succeed(&d, 0.1, 3);
    eprintln!("{d} → {}: {} of {} holders moved in 3 rounds, fetching {} bytes ({:.3} × what it adds)", s.successor, s.moved, s.holders, s.fetched, s.fetched_ratio());
    assert!(s.moved * 10 >= s.holders * 9, "{} of {} holders of {d} took {}", s.moved, s.holders, s.successor);
    assert!(s.fetched_ratio() <= 1.05, "holders of {d} fetched {} bytes for {}, which adds {} each", s.fetched, s.successor, s.added);
    assert!(w.holders_of(&d).len() < s.holders, "the predecessor is being replaced");
}

#[test]
fn a_server_that_lost_its_table_has_the_same_one_after_one_round_of_check_ins() {
    let mut w = settled(3, 20);
    let before = w.placement.table();
    assert_eq!(before, w.holdings(), "the table is what the donors hold");
    w.restart_server();
    assert_eq!(w.placement.donors(), 0);
    let listening = w.round();
    assert_eq!((listening.fetched, listening.deleted), (0, 0), "a server that only listens moves nothing");
    assert_eq!(w.placement.table(), before, "the table rebuilt from one round of check-ins");
    let next = w.round();
    assert!(next.churn() <= 0.05, "the round after moved {:.1} %", next.churn() * 100.0);
}

#[test]
fn fleets_of_many_seeds_reach_their_counts() {
    for seed in 100..110 {
        let w = settled(seed, 20);
        assert!(w.at_target() >= 0.95, "seed {seed}: {:.3} at target", w.at_target());
    }
}
