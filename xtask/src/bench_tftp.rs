//! TFTP benchmark: one 20 MB file fetched over the lab bridge from swarmboot, tftpd-hpa and
//! dnsmasq in turn, by curl (blksize 1468) and by atftp (blksize 1468 + windowsize 8, which only
//! swarmboot of the three grants); median of several runs, throughput and ratios.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_lab::{Lan, Netns, Proc, ScratchDir, Server};

use crate::host::{self, Running};

const SIZE: usize = 20 * 1000 * 1000;

pub fn run(runs: usize) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-tftp", "warn,swarmboot_server=info,swarmboot_server::tftp_service=warn")? {
        return Ok(());
    }
    let dir = ScratchDir::new("bench-tftp")?;
    let files = dir.path().join("root");
    std::fs::create_dir_all(&files)?;
    let mut x: u32 = 7;
    let data: Vec<u8> = (0..SIZE)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(files.join("f20m.bin"), &data)?;

    let clients: [(&str, &[&str]); 2] = [("curl blksize 1468", &[]), ("atftp blksize 1468 windowsize 8", &["windowsize 8"])];
    let mut table: Vec<(String, f64)> = Vec::new();
    for server in ["swarmboot", "tftpd-hpa", "dnsmasq"] {
        let mut lan = Lan::new("10.77.0.1/24")?;
        let h = lan.add_host(None)?;
        lan.host(h).ip(&["addr", "add", "10.77.0.5/24", "dev", "eth0"])?;
        let _running = start(server, &lan.server, dir.path(), &files)?;
        for (label, extra) in clients {
            let mut times = Vec::new();
            for i in 0..runs {
                let out = dir.path().join(format!("out-{server}-{i}"));
                let _ = std::fs::remove_file(&out);
                let t = fetch(lan.host(h), extra, &out)?;
                let got = std::fs::read(&out).unwrap_or_default();
                if got != data {
                    bail!("{server} / {label}: the fetched file differs ({} of {SIZE} bytes)", got.len());
                }
                times.push(t);
            }
            times.sort();
            let median = times[times.len() / 2];
            let mbps = SIZE as f64 / median.as_secs_f64() / 1e6;
            println!(
                "{server:>10} / {label:<32} median {:>7.3} s  {mbps:>7.1} MB/s  (runs: {:?})",
                median.as_secs_f64(),
                times.iter().map(|t| format!("{:.2}", t.as_secs_f64())).collect::<Vec<_>>()
            );
            table.push((format!("{server} / {label}"), mbps));
        }
    }
    let find = |k: &str| table.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or(f64::NAN);
    let ours = find("swarmboot / curl blksize 1468");
    let ours_w = find("swarmboot / atftp blksize 1468 windowsize 8");
    println!("\n20 MB over the lab bridge, median of {runs} runs:");
    println!("| server / client | MB/s | swarmboot (same client) ÷ this |");
    println!("|---|---|---|");
    for (name, v) in &table {
        let base = if name.contains("windowsize") { ours_w } else { ours };
        println!("| {name} | {v:.1} | {:.2} |", base / v);
    }
    println!("swarmboot windowsize 8 ÷ swarmboot windowsize 1: {:.2}", ours_w / ours);
    Ok(())
}

fn start(server: &str, ns: &Netns, dir: &Path, files: &Path) -> anyhow::Result<Running> {
    let sdir = dir.join(format!("srv-{server}"));
    std::fs::create_dir_all(&sdir)?;
    let log = sdir.join("log");
    let r = match server {
        "swarmboot" => {
            let cfg = format!(
                "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[tftp]\nroot = \"{}\"\n[http]\nlisten = \"127.0.0.1:8080\"\n",
                sdir.join("state").display(),
                files.display()
            );
            Running::Swarmboot(Server::start(ns, &sdir, &cfg, 8080)?)
        }
        "tftpd-hpa" => {
            let mut c = ns.command("/usr/sbin/in.tftpd");
            c.args(["--foreground", "--address", "10.77.0.1:69", "--secure", "--blocksize", "1468"]).arg(files);
            Running::Other(Proc::spawn("in.tftpd", &mut c, &log)?)
        }
        "dnsmasq" => {
            let mut c = ns.command("dnsmasq");
            c.args(["--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces", "--enable-tftp"])
                .arg(format!("--tftp-root={}", files.display()))
                .arg(format!("--pid-file={}", sdir.join("pid").display()));
            Running::Other(Proc::spawn("dnsmasq", &mut c, &log)?)
        }
        other => bail!("unknown server {other}"),
    };
    std::thread::sleep(Duration::from_millis(500));
    Ok(r)
}

/// Fetches f20m.bin with curl (no extra options) or atftp (with them); returns the wall time.
fn fetch(ns: &Netns, extra: &[&str], out: &Path) -> anyhow::Result<Duration> {
    let mut c = if extra.is_empty() {
        let mut c = ns.command("curl");
        c.args(["-sS", "--tftp-blksize", "1468", "-o"]).arg(out).arg("tftp://10.77.0.1/f20m.bin");
        c
    } else {
        let mut c = ns.command("atftp");
        c.args(["-g", "-r", "f20m.bin", "-l"]).arg(out).args(["--option", "blksize 1468"]);
        for o in extra {
            c.args(["--option", o]);
        }
        c.arg("10.77.0.1");
        c
    };
    let t = Instant::now();
    let o = c.output().context("tftp client")?;
    let elapsed = t.elapsed();
    if !o.status.success() {
        bail!("{c:?} failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    }
    Ok(elapsed)
}
