//! Settings of the engine compared in the simulator, each over several seeds (the storm's
//! randomness: start times, piece choices): mean and worst p99 ÷ bound, server bytes ÷ image.
//!
//! `cargo run --release -p swarmboot-sim --example sweep -- [CASE,CASE…] [MACHINES]`
//! (`SEEDS=5` by default). A setting that wins here is kept only if the lab's storm agrees
//! (`cargo xtask bench-storm`).

use std::time::Duration;
use swarmboot_sim::{run, Role, StormSpec};
type Tune = Box<dyn Fn(Role, &mut swarmboot_swarm::SwarmConfig)>;
fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let base = StormSpec::lab(n);
    let bound = base.bound();
    let cases: Vec<(&str, StormSpec, Tune)> = vec![
        ("base", base.clone(), Box::new(|_, _| {})),
        ("slots12", StormSpec { client_slots: 12, ..base.clone() }, Box::new(|_, _| {})),
        ("slots16", StormSpec { client_slots: 16, ..base.clone() }, Box::new(|_, _| {})),
        (
            "offers1",
            base.clone(),
            Box::new(|r, c| {
                if r == Role::Server {
                    c.super_seed_offers = 1
                }
            }),
        ),
        (
            "s16o1",
            StormSpec { client_slots: 16, ..base.clone() },
            Box::new(|r, c| {
                if r == Role::Server {
                    c.super_seed_offers = 1
                }
            }),
        ),
        (
            "s12o1",
            StormSpec { client_slots: 12, ..base.clone() },
            Box::new(|r, c| {
                if r == Role::Server {
                    c.super_seed_offers = 1
                }
            }),
        ),
        (
            "srv8o1",
            StormSpec { server_slots: 8, ..base.clone() },
            Box::new(|r, c| {
                if r == Role::Server {
                    c.super_seed_offers = 1
                }
            }),
        ),
        ("peers200", base.clone(), Box::new(|_, c| c.max_peers = 200)),
        (
            "srvpeers",
            base.clone(),
            Box::new(|r, c| {
                if r == Role::Server {
                    c.max_peers = 4096
                }
            }),
        ),
        (
            "machpeers",
            base.clone(),
            Box::new(|r, c| {
                if r == Role::Machine {
                    c.max_peers = 200
                }
            }),
        ),
        ("rechoke2", base.clone(), Box::new(|_, c| c.rechoke_interval = Duration::from_secs(2))),
    ];
    for (name, spec, tune) in cases {
        if !which.is_empty() && !which.split(',').any(|w| w == name) {
            continue;
        }
        let (mut p50, mut p99, mut worst, mut srv) = (0.0, 0.0, 0.0f64, 0.0);
        let seeds: u64 = std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
        for seed in 1..=seeds {
            let s = StormSpec { seed, ..spec.clone() };
            let r = run(&s, |role, c| tune(role, c)).unwrap();
            p50 += r.quantile(0.5) / bound;
            p99 += r.quantile(0.99) / bound;
            worst = worst.max(r.quantile(0.99) / bound);
            srv += r.server_bytes as f64 / s.image_bytes as f64;
        }
        let k = seeds as f64;
        println!("{name:10} N={n} mean p50 {:.3} mean p99 {:.3} worst p99 {:.3} server {:.3}", p50 / k, p99 / k, worst, srv / k);
    }
}
