//! The fleet dashboard under load (`cargo xtask bench-fleet`, issue 18): N simulated machines
//! (1000 by default) in a lab LAN. A load generator in its own namespace leases an address for
//! each MAC from the server's DHCP (as a relay, so the leases are real ones and the reports
//! bind to them), puts the addresses on its interface, and then every 10 s each machine
//! announces to the tracker and sends a stage report from its own address (fetching 30 %,
//! fetching 80 %, handover, then running as its booted system). Meanwhile the dashboard's fleet
//! page (all N rows) and `/api/v1/fleet` are read 10 times a second each.
//!
//! Printed: p50/p99 of each, with the same requests against the same server before any
//! machine existed as the baseline (measured first, in the same run); the DHCP burst's
//! exchange latency; the server's RSS (now and peak) and CPU (% of one core) over the window;
//! reports taken and refused.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_lab::{Lan, Netns, ScratchDir, Server};

use crate::host;

const GENERATOR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Each machine's period: an announce and a report.
const PERIOD: Duration = Duration::from_secs(10);
const WORKERS: usize = 8;

pub fn run(machines: usize, secs: u64) -> anyhow::Result<()> {
    if !host::prepare_bench("bench-fleet", "warn,swarmboot_server=info,swarmboot_server::dhcp_service=warn,swarmboot_server::http=warn")? {
        return Ok(());
    }
    anyhow::ensure!((1..=60_000).contains(&machines), "--machines: 1 to 60000");
    let dir = ScratchDir::new("bench-fleet")?;
    let mut lan = Lan::new("10.77.0.1/16")?;
    let h = lan.add_host(None)?;
    let gen = lan.host(h);
    gen.ip(&["addr", "add", &format!("{GENERATOR}/16"), "dev", "eth0"])?;
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.1.0-10.77.255.254\"]\nlease_time = \"12h\"\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080)?;
    let info_hash = add_image(&server, dir.path())?;
    let pid = server.pid();

    // The baseline: the same requests before any machine exists.
    let before = measure(gen, Duration::from_secs(5))?;

    // The DHCP burst: DISCOVER/OFFER and REQUEST/ACK for every MAC, one after another.
    let started = Instant::now();
    let leases = gen.enter(move || lease_all(machines))??;
    let burst = started.elapsed();
    let mut exchange: Vec<Duration> = leases.iter().map(|l| l.2).collect();
    let script: String = leases.iter().map(|(_, ip, _)| format!("addr add {ip}/16 dev eth0\n")).collect();
    std::fs::write(dir.path().join("addrs"), script)?;
    host::run(gen.command("ip").args(["-b"]).arg(dir.path().join("addrs")))?;

    // The load, and the dashboard measured under it.
    let stop = Arc::new(AtomicBool::new(false));
    let (taken, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let machines_list: Vec<([u8; 6], Ipv4Addr)> = leases.iter().map(|(m, ip, _)| (*m, *ip)).collect();
    let chunk = machines_list.len().div_ceil(WORKERS);
    let (under, cpu, rss, peak) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let mut workers = Vec::new();
        for (w, part) in machines_list.chunks(chunk).enumerate() {
            let (part, stop, taken, refused) = (part.to_vec(), stop.clone(), taken.clone(), refused.clone());
            workers.push(scope.spawn(move || gen.enter(move || load(w, &part, info_hash, &stop, &taken, &refused))));
        }
        // One full period so every machine is known and moving, then the window.
        std::thread::sleep(PERIOD);
        let cpu0 = host::cpu_ns(pid).context("the server's CPU time")?;
        let window = Instant::now();
        let under = measure(gen, Duration::from_secs(secs));
        let cpu = (host::cpu_ns(pid).context("the server's CPU time")? - cpu0) as f64 / window.elapsed().as_nanos() as f64 * 100.0;
        let rss = host::proc_status_kib(pid, "VmRSS:").unwrap_or(0);
        let peak = host::proc_status_kib(pid, "VmHWM:").unwrap_or(0);
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a load worker panicked"))???;
        }
        Ok((under?, cpu, rss, peak))
    })?;
    let fleet: serde_json::Value = serde_json::from_str(&server.get("/api/v1/fleet?limit=0")?)?;
    let known: u64 = fleet["by_stage"].as_array().map(|a| a.iter().filter_map(|c| c["machines"].as_u64()).sum()).unwrap_or(0);

    exchange.sort();
    println!(
        "\nbench-fleet: {machines} machines, each announcing and reporting every {} s ({:.0} requests/s), {secs} s window",
        PERIOD.as_secs(),
        2.0 * machines as f64 / PERIOD.as_secs_f64()
    );
    println!("DHCP burst: {machines} leases in {:.1} s; exchange p50 {:.2} ms, p99 {:.2} ms", burst.as_secs_f64(), ms(pct(&exchange, 50.0)), ms(pct(&exchange, 99.0)));
    println!("{:<22} {:>10} {:>10} {:>10} {:>12} {:>12} {:>8}", "request", "n", "p50 ms", "p99 ms", "empty p50", "empty p99", "p99 ×");
    for (name, now, base) in [("fleet page /", &under.page, &before.page), ("GET /api/v1/fleet", &under.api, &before.api)] {
        let (p99, b99) = (ms(pct(now, 99.0)), ms(pct(base, 99.0)));
        println!("{name:<22} {:>10} {:>10.1} {:>10.1} {:>12.2} {:>12.2} {:>8.1}", now.len(), ms(pct(now, 50.0)), p99, ms(pct(base, 50.0)), b99, p99 / b99.max(0.001));
    }
    println!(
        "server: RSS {:.1} MB (peak {:.1} MB), CPU {cpu:.1} % of one core over the window (the machines' load and {READS_PER_SEC} page + {READS_PER_SEC} API reads a second)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("reports taken {}, refused {}; the fleet table holds {known} machines", taken.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    let (page99, api99) = (ms(pct(&under.page, 99.0)), ms(pct(&under.api, 99.0)));
    println!(
        "goals: p99 ≤ 300 ms ({}), RSS ≤ 200 MB ({}), CPU ≤ 25 % ({})",
        if page99 <= 300.0 && api99 <= 300.0 { "met" } else { "MISSED" },
        if peak <= 200 * 1024 { "met" } else { "MISSED" },
        if cpu <= 25.0 { "met" } else { "MISSED" }
    );
    if refused.load(Ordering::Relaxed) > 0 {
        bail!("reports were refused: the load generator's addresses and the leases disagree");
    }
    Ok(())
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// An image with a torrent, so the tracker takes announces for it; its first file's info hash.
fn add_image(server: &Server, dir: &Path) -> anyhow::Result<[u8; 20]> {
    let (k, i) = (dir.join("kernel"), dir.join("initrd"));
    std::fs::write(&k, swarmboot_lab::noise(1 << 20, 1))?;
    std::fs::write(&i, swarmboot_lab::noise(1 << 20, 2))?;
    server.cli(&["image", "add", "lab", "--kernel", k.to_str().unwrap_or_default(), "--initrd", i.to_str().unwrap_or_default()])?;
    let list: serde_json::Value = serde_json::from_str(&server.cli(&["image", "list", "--json"])?)?;
    let hex = list[0]["files"][0]["info_hash"].as_str().context("the image's torrent")?;
    let bytes: Vec<u8> = (0..20).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)).collect::<Result<_, _>>()?;
    Ok(bytes.try_into().expect("20 bytes"))
}

fn mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Leases an address for each of `n` MACs, relaying as 10.77.0.3: (MAC, address, the two
/// exchanges' time).
fn lease_all(n: usize) -> anyhow::Result<Vec<([u8; 6], Ipv4Addr, Duration)>> {
    use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
    use dhcproto::{Decodable, Decoder, Encodable};
    let sock = UdpSocket::bind(SocketAddrV4::new(GENERATOR, 67)).context("the relay's port 67")?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let server = SocketAddrV4::new(SERVER, 67);
    let mut out = Vec::with_capacity(n);
    let mut buf = [0u8; 1500];
    for i in 0..n {
        let m = mac(i);
        let started = Instant::now();
        let mut yiaddr = None;
        for kind in [MessageType::Discover, MessageType::Request] {
            let mut msg = Message::new_with_id(i as u32 + 1, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, GENERATOR, &m);
            msg.set_opcode(Opcode::BootRequest);
            msg.opts_mut().insert(DhcpOption::MessageType(kind));
            if let Some(ip) = yiaddr {
                msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
                msg.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
            }
            sock.send_to(&msg.to_vec()?, server)?;
            let reply = loop {
                let (len, _) = sock.recv_from(&mut buf).with_context(|| format!("no answer to {kind:?} for {}", mac_text(&m)))?;
                let r = Message::decode(&mut Decoder::new(&buf[..len]))?;
                if r.xid() == i as u32 + 1 {
                    break r;
                }
            };
            yiaddr = Some(reply.yiaddr());
        }
        out.push((m, yiaddr.expect("acknowledged"), started.elapsed()));
    }
    Ok(out)
}

/// One HTTP/1.1 exchange from `from` (the server closes after it): the status and body.
pub(crate) fn http(from: Ipv4Addr, request: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from, 0)).into())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.connect_timeout(&SocketAddr::from((SERVER, 8080)).into(), Duration::from_secs(5))?;
    let mut s: TcpStream = s.into();
    s.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    let status = std::str::from_utf8(reply.get(9..12).unwrap_or_default()).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, reply))
}

/// A worker's machines, each once every [`PERIOD`] at its own offset, until `stop`.
fn load(worker: usize, machines: &[([u8; 6], Ipv4Addr)], info_hash: [u8; 20], stop: &AtomicBool, taken: &AtomicU64, refused: &AtomicU64) -> anyhow::Result<()> {
    let esc: String = info_hash.iter().map(|b| format!("%{b:02X}")).collect();
    let started = Instant::now();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for (k, (m, ip)) in machines.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Spread the machines over the period.
            let due = PERIOD * round as u32 + PERIOD.mul_f64(k as f64 / machines.len() as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let peer_id: String = format!("-SB0001-{worker:02}{k:010}");
            let left = if round < 2 { 1 << 20 } else { 0 };
            let announce =
                format!("GET /announce?info_hash={esc}&peer_id={peer_id}&port=6881&uploaded=0&downloaded=0&left={left}&compact=1 HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n");
            let _ = http(*ip, &announce);
            let (stage, by, have) = match round {
                0 => ("fetching", "stub", 30),
                1 => ("fetching", "stub", 80),
                2 => ("handover", "stub", 100),
                _ => ("running", "system", 100),
            };
            let body = format!(
                "{{\"mac\":\"{}\",\"stage\":\"{stage}\",\"by\":\"{by}\",\"image\":\"lab\",\"version\":1,\"have\":{have},\"total\":100,\"from_peers\":{have},\"from_seed\":0,\"from_http\":0,\"uploaded\":{},\"peers\":3}}",
                mac_text(m),
                round * 1000
            );
            let post = format!("POST /api/v1/report HTTP/1.1\r\nHost: s\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            match http(*ip, &post) {
                Ok((200, _)) => taken.fetch_add(1, Ordering::Relaxed),
                _ => refused.fetch_add(1, Ordering::Relaxed),
            };
        }
        round += 1;
    }
    Ok(())
}

struct Latencies {
    page: Vec<Duration>,
    api: Vec<Duration>,
}

/// Dashboard reads per second while measuring: the fleet page and the API, [`READS_PER_SEC`]
/// each (20 people with the page open, each refreshing every 2 s, and as many scripts).
const READS_PER_SEC: u32 = 10;

/// The fleet page and the API, one after the other at [`READS_PER_SEC`] each, for `window`:
/// each request's time, sorted.
fn measure(gen: &Netns, window: Duration) -> anyhow::Result<Latencies> {
    gen.enter(move || -> anyhow::Result<Latencies> {
        let (mut page, mut api) = (Vec::new(), Vec::new());
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < window {
            if let Some(wait) = (Duration::from_secs(1) / READS_PER_SEC * n).checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            n += 1;
            for (path, into) in [("/", &mut page), ("/api/v1/fleet", &mut api)] {
                let t = Instant::now();
                let (status, body) = http(GENERATOR, &format!("GET {path} HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"))?;
                if status != 200 {
                    bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body).lines().next().unwrap_or_default());
                }
                into.push(t.elapsed());
            }
        }
        page.sort();
        api.sort();
        Ok(Latencies { page, api })
    })?
}
