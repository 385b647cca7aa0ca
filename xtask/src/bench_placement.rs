//! Datasets on donated space, simulated (`swarmboot_placement::sim`): the placement's figures
//! against issue 20's goals, over several fleets of 200 donors × 500 datasets, in one run.

use std::time::Instant;

use swarmboot_placement::sim::{sybil_futures, Spec, World};

pub fn run(fleets: u64, futures: u64) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        let args = ["run", "--quiet", "--release", "-p", "xtask", "--", "bench-placement", "--fleets", &fleets.to_string(), "--futures", &futures.to_string()];
        return crate::host::run(crate::host::cargo().current_dir(crate::host::workspace_root()).args(args));
    }
    let started = Instant::now();
    let spec = Spec::default();
    println!("bench-placement: {fleets} fleets of {} donors × {} datasets (seeds 1..={fleets}), rounds of one check-in each", spec.donors, spec.datasets);
    println!(
        "{:>5} {:>9} {:>9} {:>11} {:>10} {:>11} {:>12} {:>13} {:>9} {:>9}",
        "fleet", "need TB", "give TB", "≥count r20", "rounds→95%", "churn max", "churn 1%die", "successor r3", "fetch ×", "rebuilt"
    );
    let mut worst_target: f64 = 1.0;
    let mut worst_churn: f64 = 0.0;
    for seed in 1..=fleets {
        let mut w = World::new(&Spec { seed, ..Spec::default() });
        let mut reached = None;
        for r in 1..=20 {
            w.round();
            if reached.is_none() && w.at_target() >= 0.95 {
                reached = Some(r);
            }
        }
        let at20 = w.at_target();
        let (_, give) = w.fill();
        let need = w.need();
        let settled = w.clone();
        let churn = (0..10).map(|_| w.round().churn()).fold(0.0, f64::max);
        // Churn while 1 % of donors die each round (and as many join).
        let mut dying = settled.clone();
        let churn_dying = (0..10)
            .map(|_| {
                dying.die_and_replace(0.01);
                dying.round().churn()
            })
            .sum::<f64>()
            / 10.0;
        // A successor 10 % larger than a dataset several donors hold.
        let mut s = settled.clone();
        let d = s.dataset_held(4).or_else(|| s.dataset_held(2)).expect("a held dataset");
        let succession = s.succeed(&d, 0.1, 3);
        // The server loses its table.
        let mut r = settled.clone();
        let before = r.placement.table();
        r.restart_server();
        r.round();
        let rebuilt = r.placement.table() == before;
        println!(
            "{seed:>5} {:>9.1} {:>9.1} {:>10.1}% {:>10} {:>10.2}% {:>11.2}% {:>7}/{:<5} {:>9.3} {:>9}",
            need as f64 / 1e12,
            give as f64 / 1e12,
            at20 * 100.0,
            reached.map_or("-".into(), |r| r.to_string()),
            churn * 100.0,
            churn_dying * 100.0,
            succession.moved,
            succession.holders,
            succession.fetched_ratio(),
            if rebuilt { "same" } else { "DIFFERS" }
        );
        worst_target = worst_target.min(at20);
        worst_churn = worst_churn.max(churn);
    }
    // Sybils: 50 claim the dataset honest donors hold fewest times at or over its count, in
    // `futures` futures of fleet 1 where 1 % of honest donors die each round.
    let base = {
        let mut w = World::new(&Spec { seed: 1, ..Spec::default() });
        for _ in 0..20 {
            w.round();
        }
        w
    };
    let x = (2..).find_map(|n| base.dataset_held(n)).expect("a held dataset");
    let mut line =
        format!("sybils: 50 claim {x} (wants {}, {} honest holders), 20 rounds, 1 % of honest donors dying per round:", base.replicas_wanted(&x), base.honest_holders(&x));
    for with_tickets in [false, true] {
        let o = sybil_futures(&base, &x, with_tickets, futures);
        line += &format!(" {} {}/{futures} at count;", if with_tickets { "claims counted (as if each had a ticket)" } else { "claims without tickets" }, o.kept);
    }
    println!("{line}");
    println!("goals: ≥ 95 % at count after 20 rounds (worst {:.1} %), churn ≤ 5 % per settled round (worst {:.2} %), Sybils ≥ 99 % of futures, successor ≥ 90 % of holders in 3 rounds fetching ≤ 1.05× what it adds", worst_target * 100.0, worst_churn * 100.0);
    println!("not measured here yet: the boot image's upgrade storm with and without pre-seeding (needs the donors' lab)");
    println!("({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}
