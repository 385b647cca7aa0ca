//! The node agent's benchmark (`cargo xtask bench-node`), on the lab bridge, release builds:
//!
//! 1. **HTTP sharing**: one share holding a SIZE MiB file, served in turn by the node agent
//!    (`swarmboot-node --share`), nginx (Debian's binary, its package unpacked into the cache,
//!    not installed: no service starts; `sendfile on`, worker_processes auto — vsftpd for
//!    step 2 comes the same way) and Python's
//!    http.server (Debian's python3); 4 downloaders (curl, another namespace) fetch the file
//!    at once, twice each; every copy's size checked, one's bytes. Aggregate MB/s, median of
//!    RUNS, and the agent ÷ each.
//! 2. **The whole node at rest**: the agent as elchOS runs it (HTTP, vsftpd for FTP,
//!    eiskaltdcpp-daemon for ADC on the server's hub, checking in every 5 s with a real
//!    `swarmboot serve`), idle for 30 s after it settled: the agent's RSS (goal ≤ 30 MB) and
//!    peak RSS (after the HTTP load of step 1 as well), its CPU over the 30 s, and the RSS of
//!    the programs it runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_lab::{Lan, Netns, Proc, ScratchDir, Server};

use crate::host;

const DOWNLOADERS: usize = 4;
const FETCHES_EACH: usize = 2;

pub fn run(size_mib: usize, runs: usize) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-node", "warn,swarmboot_server=info")? {
        return Ok(());
    }
    let nginx = unpacked("nginx", "usr/sbin/nginx")?;
    let vsftpd = unpacked("vsftpd", "usr/sbin/vsftpd")?;
    let dir = ScratchDir::new("bench-node")?;
    let d = dir.path();
    let share = d.join("srv/bench");
    std::fs::create_dir_all(&share)?;
    let size = size_mib << 20;
    let data = swarmboot_lab::noise(size, 1);
    std::fs::write(share.join("big.bin"), &data)?;

    let mut lan = Lan::new("10.77.0.1/24")?;
    let h = lan.add_host(None)?;
    lan.host(h).ip(&["addr", "add", "10.77.0.5/24", "dev", "eth0"])?;

    // 1. HTTP sharing, the three servers in turn.
    let mut table: Vec<(&str, f64, Vec<f64>)> = Vec::new();
    let mut agent_peak = 0;
    for server in ["swarmboot-node", "nginx", "python3 http.server"] {
        let mut running = start_http(server, &lan.server, d, &share, &nginx)?;
        wait_http(lan.host(h))?;
        let mut rates = Vec::new();
        for run in 0..runs {
            let t = fetch_all(lan.host(h), d, run, &data)?;
            rates.push((DOWNLOADERS * FETCHES_EACH * size) as f64 / t.as_secs_f64() / 1e6);
        }
        if server == "swarmboot-node" {
            agent_peak = host::proc_status_kib(running.pid().as_raw(), "VmHWM:").unwrap_or(0);
        }
        running.stop(Duration::from_secs(5));
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!("{server:>20}: {median:>8.1} MB/s median ({})", rates.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(", "));
        table.push((server, median, rates));
    }

    // 2. The whole node at rest, checking in.
    let (rest, others) = node_at_rest(&lan.server, d, &share, &vsftpd)?;

    let ours = table[0].1;
    println!("\n{DOWNLOADERS} downloaders × {FETCHES_EACH} fetches of a {size_mib} MiB file over the lab bridge, median of {runs} runs:");
    println!("| server | MB/s | swarmboot-node ÷ this |");
    println!("|---|---|---|");
    for (name, mbps, _) in &table {
        println!("| {name} | {mbps:.1} | {:.2} |", ours / mbps);
    }
    println!("\nThe node at rest (HTTP, FTP, ADC on, checking in every 5 s), 30 s:");
    println!("| | value | goal |");
    println!("|---|---|---|");
    println!("| agent RSS | {:.1} MB | ≤ 30 MB |", rest.rss_kib as f64 / 1024.0);
    println!("| agent peak RSS since its start | {:.1} MB | |", rest.peak_kib as f64 / 1024.0);
    println!("| agent peak RSS under the HTTP load | {:.1} MB | |", agent_peak as f64 / 1024.0);
    println!("| agent CPU at rest | {:.3} % of one core | |", rest.cpu_percent);
    for (name, kib) in others {
        println!("| {name} RSS | {:.1} MB | |", kib as f64 / 1024.0);
    }
    Ok(())
}

/// A program from Debian's package, unpacked (not installed: no service starts, nothing
/// listens on the host) into the cache; the path of `binary` in it.
fn unpacked(package: &str, binary: &str) -> anyhow::Result<PathBuf> {
    let root = host::cache_dir().join(format!("{package}-deb"));
    let exe = root.join("x").join(binary);
    if exe.exists() {
        return Ok(exe);
    }
    std::fs::create_dir_all(&root)?;
    host::run(std::process::Command::new("apt-get").arg("download").arg(package).current_dir(&root)).with_context(|| format!("apt-get download {package}"))?;
    let deb = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("no {package} .deb downloaded"))?;
    host::run(std::process::Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root.join("x")))?;
    Ok(exe)
}

fn start_http(server: &str, ns: &Netns, dir: &Path, share: &Path, nginx: &Path) -> anyhow::Result<Proc> {
    let sdir = dir.join(format!("srv-{}", server.replace(' ', "-")));
    std::fs::create_dir_all(&sdir)?;
    let log = sdir.join("log");
    let mut c = match server {
        "swarmboot-node" => {
            let mut c = ns.command(swarmboot_lab::bin("swarmboot-node"));
            c.args(["--listen", "10.77.0.1:80", "--share"]).arg(format!("x={}", share.display())).arg("--state").arg(sdir.join("state"));
            c
        }
        "nginx" => {
            let conf = sdir.join("nginx.conf");
            let tmp = sdir.join("tmp");
            std::fs::create_dir_all(&tmp)?;
            let t = tmp.display();
            std::fs::write(
                &conf,
                format!(
                    "daemon off;\nworker_processes auto;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 1024; }}\n\
                     http {{\n  access_log off;\n  sendfile on;\n  default_type application/octet-stream;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
                       fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
                       server {{ listen 10.77.0.1:80; location /x/ {{ alias {s}/; autoindex on; }} }}\n}}\n",
                    p = sdir.display(),
                    s = share.display()
                ),
            )?;
            let mut c = ns.command(nginx);
            c.arg("-p").arg(&sdir).arg("-c").arg(&conf);
            c
        }
        "python3 http.server" => {
            // Serves the share's parent, so the URL is /x/… for all three.
            let parent = sdir.join("root");
            std::fs::create_dir_all(&parent)?;
            let link = parent.join("x");
            if !link.exists() {
                std::os::unix::fs::symlink(share, &link)?;
            }
            let mut c = ns.command("/usr/bin/python3");
            c.args(["-m", "http.server", "--bind", "10.77.0.1", "80", "--directory"]).arg(&parent);
            c
        }
        other => bail!("unknown server {other}"),
    };
    Proc::spawn(server, &mut c, &log)
}

fn wait_http(ns: &Netns) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ns.command("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-r", "0-0", "http://10.77.0.1/x/big.bin"]).output()?;
        if out.stdout.starts_with(b"20") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server did not answer within 20 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// DOWNLOADERS curls at once, each fetching the file FETCHES_EACH times; the wall time. Every
/// copy's size is checked, the first copy's bytes.
fn fetch_all(ns: &Netns, dir: &Path, run: usize, data: &[u8]) -> anyhow::Result<Duration> {
    let outs: Vec<PathBuf> = (0..DOWNLOADERS).map(|i| dir.join(format!("dl-{run}-{i}"))).collect();
    let start = Instant::now();
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            let mut c = ns.command("curl");
            c.args(["-sS", "--fail"]);
            for k in 0..FETCHES_EACH {
                c.arg("-o").arg(out.with_extension(k.to_string())).arg("http://10.77.0.1/x/big.bin");
            }
            c.spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        let status = c.wait()?;
        if !status.success() {
            bail!("a download failed: {status}");
        }
    }
    let took = start.elapsed();
    for out in &outs {
        for k in 0..FETCHES_EACH {
            let p = out.with_extension(k.to_string());
            let len = std::fs::metadata(&p)?.len();
            if len != data.len() as u64 {
                bail!("{}: {len} bytes, not {}", p.display(), data.len());
            }
            if out == &outs[0] && k == 0 && std::fs::read(&p)? != data {
                bail!("{}: not the file's bytes", p.display());
            }
            std::fs::remove_file(&p)?;
        }
    }
    Ok(took)
}

/// The children of `pid` by program name (from /proc).
fn children_named(pid: i32, name: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let comm = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map(|(c, _)| c.to_string()).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<i32>().ok());
            ppid == Some(pid) && name.starts_with(&comm)
        })
        .collect()
}

struct Rest {
    rss_kib: u64,
    peak_kib: u64,
    cpu_percent: f64,
}

fn node_at_rest(ns: &Netns, d: &Path, share: &Path, vsftpd: &Path) -> anyhow::Result<(Rest, Vec<(String, u64)>)> {
    let sdir = d.join("rest");
    std::fs::create_dir_all(&sdir)?;
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"10.77.0.1:8080\"\n[swarm]\nlisten = \"10.77.0.1:6881\"\n[nodes]\ncheckin_interval = \"5s\"\n[adc]\nenable = true\nlisten = \"10.77.0.1:1511\"\n",
        sdir.join("state").display()
    );
    let server = Server::start(ns, &sdir, &cfg, 8080)?;
    let key = sdir.join("server.pub");
    std::fs::write(&key, server.public_key()?)?;
    let mut c = ns.command(swarmboot_lab::bin("swarmboot-node"));
    // The agent runs vsftpd from its PATH: the unpacked one first.
    let path = format!("{}:{}", vsftpd.parent().context("vsftpd's directory")?.display(), std::env::var("PATH").unwrap_or_default());
    c.env("PATH", path);
    c.args(["--listen", "10.77.0.1:80", "--server", "http://10.77.0.1:8080", "--mac", "52:54:00:be:ec:01", "--adc", "--share"])
        .arg(format!("bench={}", share.display()))
        .arg("--ftp")
        .arg("--key-file")
        .arg(&key)
        .arg("--state")
        .arg(sdir.join("node-state"))
        .arg("--run-dir")
        .arg(sdir.join("run"));
    let agent = Proc::spawn("swarmboot-node", &mut c, &sdir.join("node.log"))?;
    // Settled: checked in, the ADC client on the hub and done hashing the share.
    std::thread::sleep(Duration::from_secs(20));
    let pid = agent.pid().as_raw();
    let t0 = host::cpu_ns(pid).context("the agent's CPU time")?;
    let at = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let t1 = host::cpu_ns(pid).context("the agent's CPU time")?;
    let cpu_percent = (t1 - t0) as f64 / 1e9 / at.elapsed().as_secs_f64() * 100.0;
    let rest = Rest { rss_kib: host::proc_status_kib(pid, "VmRSS:").context("the agent's RSS")?, peak_kib: host::proc_status_kib(pid, "VmHWM:").unwrap_or(0), cpu_percent };
    let mut others = Vec::new();
    for name in ["vsftpd", "eiskaltdcpp-daemon"] {
        let kib: u64 = children_named(pid, name).into_iter().filter_map(|p| host::proc_status_kib(p, "VmRSS:")).sum();
        others.push((name.to_string(), kib));
    }
    let checkins = server.cli(&["node", "list"]).unwrap_or_default();
    if !checkins.lines().any(|l| l.starts_with("52:54:00:be:ec:01") && l.contains("live")) {
        bail!("the node did not check in while measured:\n{checkins}\n{}", std::fs::read_to_string(sdir.join("node.log")).unwrap_or_default());
    }
    Ok((rest, others))
}
