//! The boot-storm benchmark: N clients in network namespaces on one bridge, every link (each
//! client's uplink and downlink, and the server's uplink) shaped with `tc tbf` to RATE, all
//! clients starting at once to fetch one SIZE file. Modes, in the same run and on the same lab:
//!
//! - `ours`: `swarmboot torrent seed --super-seed` on the server, `swarmboot torrent get --seed`
//!   on the clients (they keep seeding, as booted machines do), opentracker on the server;
//! - `aria2`: aria2c seeding on the server and aria2c on the clients (seeding on), opentracker;
//! - `http`: curl from a plain HTTP server (python3 http.server) on the server;
//! - `fetch`: the product path: `swarmboot serve` (its tracker, its super-seed of the store)
//!   with the file published as an image's rootfs (kernel and initrd of 4 KiB), and
//!   `swarmboot fetch --seed` on the clients (signed manifest, one torrent per file);
//! - `aria2-served`: the same server, aria2c clients joining through its served .torrent.
//!
//! Printed per mode: completion times p50 / p99 / max (from the moment all clients are released
//! at once),
//! server bytes ÷ SIZE (the server's uplink tx counter, headers included; for ours also the
//! engine's payload count), and p99 ÷ bound, where bound = SIZE / RATE.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_lab::bittorrent::{self as bt, Discovery};
use swarmboot_lab::{Lan, Proc, ScratchDir};
use swarmboot_torrent::Metainfo;

use crate::host;

pub struct StormArgs {
    pub clients: usize,
    pub size_mib: usize,
    /// tc rate, like `100mbit`.
    pub rate: String,
    pub modes: Vec<String>,
    pub piece_kib: u32,
    pub server_slots: usize,
    pub client_slots: usize,
    pub runs: usize,
}

struct Outcome {
    mode: String,
    times: Vec<f64>,
    server_bytes: u64,
    payload: Option<u64>,
}

fn rate_bits(rate: &str) -> anyhow::Result<f64> {
    let r = rate.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = r.strip_suffix("gbit") {
        (n, 1e9)
    } else if let Some(n) = r.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = r.strip_suffix("kbit") {
        (n, 1e3)
    } else {
        bail!("--rate like 100mbit, 50mbit or 1gbit");
    };
    Ok(num.parse::<f64>().context("--rate number")? * mult)
}

impl Outcome {
    /// Completion times: (p50, p99, max).
    fn quantiles(&self) -> (f64, f64, f64) {
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        (percentile(&t, 0.5), percentile(&t, 0.99), t[t.len() - 1])
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The kernel's ARP table is one table for every namespace (gc_thresh3 = 1024 by default);
/// N hosts that all talk to each other need about N² entries, and past the limit new
/// neighbours are refused ("neighbor table overflow"): 40 clients lose each other. Raised
/// for the run when needed, and put back when dropped.
struct ArpTableRoom(Vec<(&'static str, String)>);

impl ArpTableRoom {
    fn ensure(hosts: usize) -> anyhow::Result<Self> {
        let need = (hosts + 2) * (hosts + 2) * 2;
        let mut saved = Vec::new();
        for (key, value) in [("gc_thresh3", need * 2), ("gc_thresh2", need)] {
            let path = format!("/proc/sys/net/ipv4/neigh/default/{key}");
            let old = std::fs::read_to_string(&path)?.trim().to_string();
            if old.parse::<usize>().unwrap_or(0) < value {
                std::fs::write(&path, value.to_string()).with_context(|| format!("raising {path}"))?;
                saved.push((key, old));
            }
        }
        Ok(ArpTableRoom(saved))
    }
}

impl Drop for ArpTableRoom {
    fn drop(&mut self) {
        for (key, old) in &self.0 {
            let _ = std::fs::write(format!("/proc/sys/net/ipv4/neigh/default/{key}"), old);
        }
    }
}

/// The file every mode fetches, made once per run: its bytes in `seed/image.bin`, its torrent.
pub struct Prepared {
    dir: ScratchDir,
    seed_dir: PathBuf,
    torrent: PathBuf,
    meta: Metainfo,
    size: usize,
    pub bound: f64,
}

/// The lab's storms need root (namespaces, tc); the file lives in RAM (as in the stub), not
/// on the disk: 64 MiB × (N + 1) copies.
pub fn prepare(a: &StormArgs) -> anyhow::Result<Prepared> {
    std::env::set_var("TMPDIR", "/dev/shm");
    let rate_bps = rate_bits(&a.rate)?;
    let size = a.size_mib << 20;
    let bound = size as f64 * 8.0 / rate_bps;
    let dir = ScratchDir::new("bench-storm")?;
    let data = swarmboot_lab::noise(size, 0x1234_5678);
    let seed_dir = dir.path().join("seed");
    std::fs::create_dir_all(&seed_dir)?;
    std::fs::write(seed_dir.join("image.bin"), &data)?;
    let server_ip = "10.88.0.1";
    let (meta, bytes) = Metainfo::single_file("image.bin", &data, a.piece_kib * 1024, Some(&format!("http://{server_ip}:6969/announce")), true);
    let torrent = dir.path().join("image.torrent");
    std::fs::write(&torrent, bytes)?;
    Ok(Prepared { dir, seed_dir, torrent, meta, size, bound })
}

/// One storm of `mode` on a fresh lab: each client's completion time (seconds from the
/// release) and the bytes the server's port sent.
pub fn measure(a: &StormArgs, p: &Prepared, mode: &str, run: usize) -> anyhow::Result<(Vec<f64>, u64)> {
    let _arp = ArpTableRoom::ensure(a.clients)?;
    let o = storm(a, mode, run, &p.dir, &p.seed_dir, &p.torrent, &p.meta, p.size)?;
    Ok((o.times, o.server_bytes))
}

pub fn run(a: StormArgs) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-storm", "warn")? {
        return Ok(());
    }
    let _arp = ArpTableRoom::ensure(a.clients)?;
    let Prepared { dir, seed_dir, torrent, meta, size, bound } = prepare(&a)?;

    println!(
        "storm: {} clients, {} MiB, every link {} (bound {bound:.2} s), pieces of {} KiB, upload slots: server {}, clients {}",
        a.clients, a.size_mib, a.rate, a.piece_kib, a.server_slots, a.client_slots
    );
    let mut all = Vec::new();
    for run in 0..a.runs {
        for mode in &a.modes {
            let o = storm(&a, mode, run, &dir, &seed_dir, &torrent, &meta, size)?;
            print_row(&o, size, bound);
            all.push(o);
        }
    }
    println!("\n| mode | p50 | p99 | max | server bytes ÷ SIZE | p99 ÷ bound |");
    println!("|---|---|---|---|---|---|");
    for o in &all {
        let (p50, p99, max) = o.quantiles();
        let payload = o.payload.map(|p| format!(" (payload {:.2})", p as f64 / size as f64)).unwrap_or_default();
        println!("| {} | {:.1} s | {:.1} s | {:.1} s | {:.2}{payload} | {:.2} |", o.mode, p50, p99, max, o.server_bytes as f64 / size as f64, p99 / bound);
    }
    let stat = |m: &str, f: &dyn Fn(&Outcome) -> f64| all.iter().filter(|o| o.mode == m).map(f).fold(f64::NAN, f64::max);
    let p99 = |o: &Outcome| o.quantiles().1;
    for ours in ["ours", "fetch"] {
        if !(a.modes.iter().any(|m| m == ours) && a.modes.iter().any(|m| m == "aria2")) {
            continue;
        }
        let (ours_p99, aria_p99) = (stat(ours, &p99), all.iter().filter(|o| o.mode == "aria2").map(p99).fold(f64::INFINITY, f64::min));
        let (ours_srv, aria_srv) = (stat(ours, &|o| o.server_bytes as f64), all.iter().filter(|o| o.mode == "aria2").map(|o| o.server_bytes as f64).fold(f64::INFINITY, f64::min));
        println!("\nworst run of {ours} vs best of aria2: p99 {:.2}× aria2's, server bytes {:.2}× aria2's", ours_p99 / aria_p99, ours_srv / aria_srv);
        println!("{ours} goals: server ≤ 1.2 × SIZE: {}; p99 ≤ 1.3 × bound: {}", ours_srv / size as f64 <= 1.2, ours_p99 / bound <= 1.3);
    }
    Ok(())
}

fn print_row(o: &Outcome, size: usize, bound: f64) {
    let (p50, p99, max) = o.quantiles();
    println!(
        "{:>6}: p50 {:6.2} s  p99 {:6.2} s  max {:6.2} s  server {:5.2} × SIZE{}  p99 {:5.2} × bound",
        o.mode,
        p50,
        p99,
        max,
        o.server_bytes as f64 / size as f64,
        o.payload.map(|p| format!(" (payload {:.2})", p as f64 / size as f64)).unwrap_or_default(),
        p99 / bound
    );
}

/// One storm on a fresh lab.
#[allow(clippy::too_many_arguments)]
fn storm(a: &StormArgs, mode: &str, run: usize, scratch: &ScratchDir, seed_dir: &Path, torrent: &Path, meta: &Metainfo, size: usize) -> anyhow::Result<Outcome> {
    let work = scratch.path().join(format!("{mode}-{run}"));
    std::fs::create_dir_all(&work)?;
    let mut lan = Lan::new("10.88.0.1/24")?;
    for i in 0..a.clients {
        let h = lan.add_host(None)?;
        lan.host(h).ip(&["addr", "add", &format!("10.88.0.{}/24", 10 + i), "dev", "eth0"])?;
        lan.host(h).shape("eth0", &a.rate)?;
        lan.server.shape(&lan.ports[h], &a.rate)?;
    }
    lan.server.shape("br0", &a.rate)?;
    let server_ip = "10.88.0.1";
    let swarmboot = swarmboot_lab::bin("swarmboot");
    let mut keep: Vec<Proc> = Vec::new();
    let log = |name: &str| work.join(format!("{name}.log"));
    let wait_port = |port: u16| -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = lan.server.command("bash").arg("-c").arg(format!("exec 3<>/dev/tcp/{server_ip}/{port}")).output()?.status.success();
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nothing listens on {server_ip}:{port} in the server namespace");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let seed_stats = work.join("seed.json");
    let mut seeder = None;
    let mut server = None;
    let mut served: Option<(String, PathBuf)> = None; // (public key, served .torrent)
    match mode {
        "fetch" | "aria2-served" => {
            let state = work.join("state");
            let cfg = format!(
                "[server]\ninterface = \"br0\"\naddress = \"{server_ip}\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
                 [http]\nlisten = \"0.0.0.0:8080\"\n[swarm]\nlisten = \"0.0.0.0:6881\"\nupload_slots = {}\n",
                state.display(),
                a.server_slots
            );
            std::env::set_var("SWARMBOOT_LOG", "warn,swarmboot_server=info");
            let srv = swarmboot_lab::Server::start(&lan.server, &work, &cfg, 8080)?;
            let small = work.join("small");
            std::fs::write(&small, vec![7u8; 4096])?;
            let rootfs = seed_dir.join("image.bin");
            srv.cli(&["image", "add", "storm", "--kernel", small.to_str().unwrap(), "--initrd", small.to_str().unwrap(), "--rootfs", rootfs.to_str().unwrap()])?;
            let key = srv.public_key()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while srv.metric("swarmboot_seed_files")? < 2 {
                if Instant::now() > deadline {
                    bail!("the server did not start seeding:\n{}", srv.log());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let list: serde_json::Value = serde_json::from_str(&srv.cli(&["image", "list", "--json"])?)?;
            let sha = list[0]["files"].as_array().context("files")?.iter().find(|f| f["role"] == "rootfs").and_then(|f| f["sha256"].as_str()).context("rootfs")?.to_string();
            let served_torrent = work.join("served.torrent");
            host::run(lan.server.command("curl").args(["-sSf", "-o"]).arg(&served_torrent).arg(format!("http://{server_ip}:8080/torrent/{sha}.torrent")))?;
            served = Some((key, served_torrent));
            server = Some(srv);
        }
        "ours" | "aria2" => {
            let t = bt::opentracker(&work, server_ip.parse()?, 6969, &[meta.info_hash])?;
            keep.push(Proc::spawn("opentracker", &mut lan.server.wrap(&t), &log("tracker"))?);
            wait_port(6969)?;
            let s = if mode == "ours" {
                let mut c = bt::ours_seed(&swarmboot, torrent, seed_dir, format!("{server_ip}:6881").parse()?, true, &Discovery::default(), &seed_stats);
                c.args(["--super-seed-slots", &a.server_slots.to_string()]);
                c.env("SWARMBOOT_LOG", "warn,swarmboot_swarm=info");
                c
            } else {
                bt::aria2c_seed(torrent, seed_dir, 6881, 3600)
            };
            seeder = Some(Proc::spawn("seeder", &mut lan.server.wrap(&s), &log("seeder"))?);
            wait_port(6881)?;
            if mode == "aria2" {
                // aria2c checks the file before it seeds and announces.
                std::thread::sleep(Duration::from_secs(3));
            }
        }
        "http" => {
            let mut c = Command::new("python3");
            c.args(["-m", "http.server", "--bind", server_ip, "8000", "--directory"]).arg(seed_dir);
            keep.push(Proc::spawn("http", &mut lan.server.wrap(&c), &log("http"))?);
            wait_port(8000)?;
        }
        other => bail!("unknown mode {other:?} (ours, aria2, http, fetch, aria2-served)"),
    }
    // All clients start at once: each waits for the `go` file, then execs its command; the
    // clock starts when `go` appears (starting 20 processes one by one through `ip netns exec`
    // takes ~0.5 s, which would otherwise count against the late ones).
    let go = work.join("go");
    let mut clients: Vec<(Proc, PathBuf)> = Vec::new();
    for i in 0..a.clients {
        let out = work.join(format!("c{i}"));
        let ip = format!("10.88.0.{}", 10 + i);
        let done_flag = work.join(format!("done-{i}"));
        let cmd = match mode {
            "ours" => {
                let mut c = bt::ours_get(&swarmboot, torrent, &out, format!("{ip}:6881").parse()?, true, &Discovery::default(), &work.join(format!("c{i}.json")));
                c.args(["--upload-slots", &a.client_slots.to_string()]);
                c
            }
            "fetch" => {
                let (key, _) = served.as_ref().expect("a server");
                let mut c = Command::new(&swarmboot);
                c.args(["fetch", "--server", &format!("http://{server_ip}:8080"), "--image", "storm", "--key", key, "--seed", "--stall-timeout", "120s"])
                    .args(["--listen", &format!("{ip}:6881"), "--upload-slots", &a.client_slots.to_string(), "--out"])
                    .arg(&out)
                    .env("SWARMBOOT_LOG", "warn,swarmboot_fetch=info");
                c
            }
            "aria2" | "aria2-served" => {
                let hook = work.join(format!("hook-{i}.sh"));
                std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", done_flag.display()))?;
                std::process::Command::new("chmod").arg("755").arg(&hook).status()?;
                let t = if mode == "aria2" { torrent } else { served.as_ref().expect("a server").1.as_path() };
                let mut c = bt::aria2c_get(t, &out, 6881, 3600);
                c.arg(format!("--on-bt-download-complete={}", hook.display()));
                c
            }
            _ => {
                let mut c = Command::new("curl");
                c.args(["-s", "-o"]).arg(out.join("image.bin")).arg(format!("http://{server_ip}:8000/image.bin")).arg("--create-dirs");
                c
            }
        };
        let mut gated = Command::new("sh");
        gated.arg("-c").arg(format!("while [ ! -e {} ]; do sleep 0.005; done; exec \"$@\"", go.display())).arg("sh").arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                gated.env(k, v);
            }
        }
        let p = Proc::spawn(&format!("client-{i}"), &mut lan.host(i).wrap(&gated), &log(&format!("client-{i}")))?;
        clients.push((p, done_flag));
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = lan.server.tx_bytes("br0")?;
    std::fs::write(&go, b"")?;
    let t0 = Instant::now();
    let mut times: Vec<Option<f64>> = vec![None; a.clients];
    let deadline = t0 + Duration::from_secs(600);
    while times.iter().any(Option::is_none) {
        for (i, (p, flag)) in clients.iter_mut().enumerate() {
            if times[i].is_some() {
                continue;
            }
            let done = match mode {
                "ours" => std::fs::read_to_string(&p.log).is_ok_and(|l| l.contains("complete: ")),
                "fetch" => std::fs::read_to_string(&p.log).is_ok_and(|l| l.contains(" verified (signed by ")),
                "aria2" | "aria2-served" => flag.exists(),
                _ => p.exited(),
            };
            if done {
                times[i] = Some(t0.elapsed().as_secs_f64());
            } else if mode != "http" && p.exited() {
                scratch.keep();
                bail!("{mode}: client {i} exited without completing:\n{}", p.output());
            }
        }
        if Instant::now() > deadline {
            scratch.keep();
            bail!(
                "{mode}: clients {:?} not done after 600 s; logs in {}",
                times.iter().enumerate().filter(|(_, t)| t.is_none()).map(|(i, _)| i).collect::<Vec<_>>(),
                work.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let server_bytes = lan.server.tx_bytes("br0")? - before;
    // Byte-identical everywhere, or the figures mean nothing.
    let want = std::fs::read(seed_dir.join("image.bin"))?;
    let sha = served.as_ref().and_then(|(_, t)| Metainfo::parse(&std::fs::read(t).ok()?).ok()).map(|m| m.name);
    for i in 0..a.clients {
        let name = match mode {
            "fetch" => "rootfs".to_string(),
            "aria2-served" => sha.clone().unwrap_or_default(),
            _ => "image.bin".to_string(),
        };
        let got = std::fs::read(work.join(format!("c{i}/{name}"))).unwrap_or_default();
        if got.len() != size || got != want {
            bail!("{mode}: client {i}'s file differs from the original");
        }
    }
    if let Some(mut s) = seeder.take() {
        s.stop(Duration::from_secs(5));
    }
    let payload = if mode == "ours" {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&seed_stats).unwrap_or_default()).unwrap_or_default();
        v["uploaded"].as_u64()
    } else if let Some(srv) = &server {
        Some(srv.metric("swarmboot_seed_uploaded_bytes_total")? + srv.metric("swarmboot_http_blob_bytes_total")?)
    } else {
        None
    };
    drop(server);
    drop(clients);
    drop(keep);
    for i in 0..a.clients {
        let _ = std::fs::remove_dir_all(work.join(format!("c{i}")));
    }
    Ok(Outcome { mode: mode.to_string(), times: times.into_iter().map(|t| t.unwrap_or(f64::NAN)).collect(), server_bytes, payload })
}
