//! The storm simulator (`swarmboot-sim`), checked against the lab, then at fleet scale.
//!
//! 1. The lab's storm (`bench-storm`'s `fetch` mode: `swarmboot serve` and N × `swarmboot
//!    fetch --seed` in namespaces, every port shaped to RATE) and the simulator's model of the
//!    same storm, in the same run: p50, p99 and server bytes side by side, and their ratios
//!    (the goal: within 10 %).
//! 2. Fleets of each size in `--machines`: rooms of 40 behind 1 Gbit/s uplinks, machines at
//!    1 Gbit/s, the server at 10 Gbit/s, `--die` of the machines powering off mid-download.
//!    Printed against the physical bound (SIZE / a machine's rate) and the image: p99 ÷ bound,
//!    server bytes ÷ image, the busiest room uplink's bytes in ÷ image; and what the run cost
//!    (CPU seconds, virtual seconds).

use swarmboot_sim::{run as simulate, StormSpec};

use crate::bench_storm::{self, StormArgs};
use crate::host;

pub struct SimArgs {
    pub lab_clients: usize,
    /// Every port's rate in the lab storm (tc syntax, `100mbit`).
    pub lab_rate: String,
    pub size_mib: usize,
    pub machines: Vec<usize>,
    pub die: f64,
    /// Skip the lab part (no root needed).
    pub no_lab: bool,
}

fn cpu_secs() -> f64 {
    host::cpu_ns(std::process::id() as i32).unwrap_or(0) as f64 / 1e9
}

pub fn run(a: SimArgs) -> anyhow::Result<()> {
    let image = a.size_mib << 20;
    if !a.no_lab {
        lab_vs_sim(&a)?;
    }
    println!("\nfleets: rooms of 40 behind 1 Gbit/s uplinks, machines 1 Gbit/s, server 10 Gbit/s, {} MiB, {:.0} % of machines die mid-download", a.size_mib, a.die * 100.0);
    println!("| machines | rooms | p50 ÷ bound | p99 ÷ bound | server bytes ÷ image | busiest room uplink in ÷ image | died | CPU s | virtual s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &a.machines {
        let spec = StormSpec { image_bytes: image, die_fraction: a.die, ..StormSpec::campus(n) };
        let cpu0 = cpu_secs();
        let r = simulate(&spec, |_, _| {})?;
        let cpu = cpu_secs() - cpu0;
        let bound = spec.bound();
        let uplink = r.room_uplink.iter().map(|&(into, _)| into).max().unwrap_or(0);
        println!(
            "| {n} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {cpu:.1} | {:.2} |",
            spec.rooms,
            r.quantile(0.5) / bound,
            r.quantile(0.99) / bound,
            r.server_bytes as f64 / image as f64,
            uplink as f64 / image as f64,
            r.died,
            r.virtual_secs
        );
    }
    println!("(bound = {:.2} s: the image through a machine's 1 Gbit/s port)", image as f64 * 8.0 / 1e9);
    Ok(())
}

/// The storm bench's `fetch` mode in the lab, and the simulator's model of it.
fn lab_vs_sim(a: &SimArgs) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-sim", "warn")? {
        return Ok(());
    }
    let args = StormArgs {
        clients: a.lab_clients,
        size_mib: a.size_mib,
        rate: a.lab_rate.clone(),
        modes: vec!["fetch".into()],
        piece_kib: 256,
        server_slots: 4,
        client_slots: 12,
        runs: 1,
    };
    let prepared = bench_storm::prepare(&args)?;
    let (mut lab_times, lab_server) = bench_storm::measure(&args, &prepared, "fetch", 0)?;
    lab_times.sort_by(f64::total_cmp);
    let bps = (a.size_mib << 20) as f64 * 8.0 / prepared.bound;
    let spec = StormSpec { image_bytes: a.size_mib << 20, machine_bps: bps, server_bps: bps, ..StormSpec::lab(a.lab_clients) };
    let cpu0 = cpu_secs();
    let r = simulate(&spec, |_, _| {})?;
    let cpu = cpu_secs() - cpu0;
    let q = |t: &[f64], p: f64| t[((p * t.len() as f64).ceil() as usize).clamp(1, t.len()) - 1];
    let image = (a.size_mib << 20) as f64;
    // The lab counts its server port's frames (Ethernet, IP and TCP headers: 66 bytes per
    // 1448 of payload, and the HTTP before the swarm); the simulator counts peer-wire bytes.
    let sim_server = r.server_bytes as f64 * 1514.0 / 1448.0;
    println!("\nthe simulator vs the lab: {} clients, {} MiB, every port {} (bound {:.2} s)", a.lab_clients, a.size_mib, a.lab_rate, prepared.bound);
    println!("| | p50 | p99 | server bytes ÷ image |");
    println!("|---|---|---|---|");
    println!("| lab (swarmboot serve + fetch) | {:.2} s | {:.2} s | {:.3} |", q(&lab_times, 0.5), q(&lab_times, 0.99), lab_server as f64 / image);
    println!("| simulator ({cpu:.1} CPU s) | {:.2} s | {:.2} s | {:.3} |", r.quantile(0.5), r.quantile(0.99), sim_server / image);
    println!("simulator ÷ lab: p99 {:.3}, server bytes {:.3} (goal: both within 0.90–1.10)", r.quantile(0.99) / q(&lab_times, 0.99), sim_server / lab_server as f64);
    Ok(())
}
