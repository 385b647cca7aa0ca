//! SHA-1 throughput of piece verification (the `sha1` crate, as `swarmboot-torrent` uses it)
//! against coreutils' `sha1sum` on the same bytes, in the same run.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use swarmboot_lab::ScratchDir;
use swarmboot_torrent::Metainfo;

const SIZE: usize = 256 << 20;
const PIECE: u32 = 256 << 10;

pub fn run() -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        // Hashing speed is only meaningful optimized: run this task from a release build.
        return crate::host::run(crate::host::cargo().current_dir(crate::host::workspace_root()).args(["run", "--quiet", "--release", "-p", "xtask", "--", "bench-sha1"]));
    }
    let data: Vec<u8> = (0..SIZE as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let (m, _) = Metainfo::single_file("bench.bin", &data, PIECE, None, false);
    // Ours: verify every piece, best of 3.
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for i in 0..m.pieces.len() as u32 {
            let start = i as usize * PIECE as usize;
            if !m.verify(i, &data[start..start + m.piece_len(i) as usize]) {
                bail!("piece {i} did not verify");
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let ours = SIZE as f64 / best / 1e6;
    // Baseline: sha1sum over the same bytes from a file in the page cache, best of 3.
    let dir = ScratchDir::new("bench-sha1")?;
    let file = dir.path().join("bench.bin");
    std::fs::write(&file, &data)?;
    let mut base_best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new("sha1sum").arg(&file).output().context("sha1sum")?;
        if !out.status.success() {
            bail!("sha1sum failed");
        }
        base_best = base_best.min(t.elapsed().as_secs_f64());
    }
    let base = SIZE as f64 / base_best / 1e6;
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().contains(" sha_ni");
    println!("SHA-1 over {} MiB in {} KiB pieces (CPU has SHA-NI: {sha_ni}), best of 3:", SIZE >> 20, PIECE >> 10);
    println!("| hasher | MB/s | ÷ sha1sum |");
    println!("|---|---|---|");
    println!("| sha1 crate, piece verify | {ours:.0} | {:.2} |", ours / base);
    println!("| coreutils sha1sum (file in page cache) | {base:.0} | 1.00 |");
    Ok(())
}
