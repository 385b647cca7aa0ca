//! The namespace under load (`cargo xtask bench-namespace`, issue 19), against a real `swarmboot
//! serve` in a lab LAN:
//!
//! - **Index**: N simulated nodes (10) check in from their own addresses and publish F files
//!   (1M) in all through the node's own `Publisher` and signed batches, all at once: the time
//!   to index from scratch, bytes sent, the server's RSS after. Then 1 % of each node's files
//!   change: the time and bytes of bringing the index up to date, beside the first round.
//! - **Search**: 200 searches of one or two word prefixes over HTTP, p50/p99, beside `grep -i
//!   -F` over the same paths as a flat list (what one would do without an index), measured in
//!   the same run.
//! - **Mount**: a real node agent shares one file of M MiB (256); `swarmboot mount` on another
//!   host reads it sequentially, beside `curl` of the same file from the node; then 100
//!   random 4 KiB reads, and the bytes the node served for them (its own counters) beside the
//!   bytes read.

use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swarmboot_lab::{Lan, Proc, ScratchDir, Seeded, Server};
use swarmboot_manifest::SigningKey;
use swarmboot_namespace::batch::{seal, IndexReply, SIGNATURE_HEADER};
use swarmboot_namespace::entry::{Entry, Kind};
use swarmboot_namespace::Publisher;

use crate::bench_fleet::{http, ms, pct};
use crate::host;

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
    "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "concert", "holiday", "lecture", "season", "episode", "camera",
];
const EXTS: &[&str] = &["mkv", "mp4", "flac", "jpg", "pdf", "iso", "txt", "zip"];
const AGENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 1, 10 + i as u8)
}

fn node_mac(i: usize) -> String {
    format!("52:54:00:b0:00:{:02x}", i + 1)
}

/// Node `i`'s files: three shares (named as other nodes' are), 100 directories of files
/// with names of words, a year and an extension.
fn tree(i: usize, files: usize) -> Vec<Entry> {
    let mut rng = Seeded::new(i as u64 + 1);
    let mut out = Vec::with_capacity(files + 300);
    for d in 0..100 {
        let share = ["movies", "music", "photos"][d % 3].to_string();
        let dir = format!("{} {} {}", rng.pick(WORDS), rng.pick(WORDS), d);
        out.push(Entry { share: share.clone(), path: dir.clone(), kind: Kind::Dir, size: 0, mtime: 1_700_000_000, hash: None });
        for f in 0..files / 100 {
            let name = format!("{} {} {} {}.{}", rng.pick(WORDS), rng.pick(WORDS), 1990 + rng.next_u64() % 35, f, rng.pick(EXTS));
            out.push(Entry {
                share: share.clone(),
                path: format!("{dir}/{name}"),
                kind: Kind::File,
                size: rng.next_u64() % (4 << 30),
                mtime: 1_700_000_000 + f as i64,
                hash: None,
            });
        }
    }
    out
}

/// A POST of `body` with the node's signature from `from`.
fn post(from: Ipv4Addr, path: &str, body: &[u8], sig: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 10.77.0.1:8080\r\nContent-Type: application/json\r\n{SIGNATURE_HEADER}: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    http(from, &(head + std::str::from_utf8(body).context("a batch is JSON")?))
}

fn body_of(reply: &[u8]) -> &[u8] {
    reply.windows(4).position(|w| w == b"\r\n\r\n").map_or(&[][..], |i| &reply[i + 4..])
}

/// Sends a publisher's batches until it has none; (batches, bytes).
fn publish(from: Ipv4Addr, key: &SigningKey, p: &mut Publisher) -> anyhow::Result<(usize, usize)> {
    let (mut batches, mut bytes) = (0, 0);
    while let Some(b) = p.next_batch() {
        let (body, sig) = seal(key, &b);
        bytes += body.len();
        let (status, reply) = post(from, "/api/v1/index", &body, &sig)?;
        if status != 200 {
            bail!("batch {} refused: {status} {}", b.seq, String::from_utf8_lossy(body_of(&reply)));
        }
        let reply: IndexReply = serde_json::from_slice(body_of(&reply)).context("the server's reply")?;
        anyhow::ensure!(matches!(reply, IndexReply::Taken { .. }), "batch {} not taken: {reply:?}", b.seq);
        p.answered(&reply, 0);
        batches += 1;
    }
    Ok((batches, bytes))
}

fn check_in(from: Ipv4Addr, key: &SigningKey, mac: &str) -> anyhow::Result<()> {
    let c = swarmboot_checkin::report::CheckIn {
        mac: mac.into(),
        node_key: key.public().to_hex(),
        counter: 1,
        image: "elchos@1".into(),
        uptime_secs: 1,
        leaving: false,
        disks: vec![],
        shares: ["movies", "music", "photos"]
            .iter()
            .map(|s| swarmboot_checkin::report::Share { name: s.to_string(), path: format!("/srv/{s}"), urls: vec![format!("http://{from}/{s}/")] })
            .collect(),
        served: vec![],
        seeding: Default::default(),
        acks: vec![],
    };
    let (body, sig) = swarmboot_checkin::report::seal(key, &c);
    let head = format!(
        "POST /api/v1/checkin HTTP/1.1\r\nHost: 10.77.0.1:8080\r\nContent-Type: application/json\r\n{}: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        swarmboot_checkin::report::SIGNATURE_HEADER,
        body.len()
    );
    let (status, reply) = http(from, &(head + std::str::from_utf8(&body).context("a check-in is JSON")?))?;
    anyhow::ensure!(status == 200, "check-in of {mac}: {status} {}", String::from_utf8_lossy(body_of(&reply)));
    Ok(())
}

pub fn run(nodes: usize, files: usize, mount_mib: u64) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        // The simulated nodes' side (scans diffed, batches built and signed) runs in this
        // process: measured optimized, as the agent is built.
        let args = [
            "run",
            "--quiet",
            "--release",
            "-p",
            "xtask",
            "--",
            "bench-namespace",
            "--nodes",
            &nodes.to_string(),
            "--files",
            &files.to_string(),
            "--mount-mib",
            &mount_mib.to_string(),
        ];
        return host::run(host::cargo().current_dir(host::workspace_root()).args(args));
    }
    if !host::prepare_bench("bench-namespace", "warn,swarmboot_server=info,swarmboot_server::http=warn")? {
        return Ok(());
    }
    anyhow::ensure!((1..=200).contains(&nodes), "--nodes: 1 to 200");
    let dir = ScratchDir::new("bench-namespace")?;
    let mut lan = Lan::new("10.77.0.1/16")?;
    let g = lan.add_host(None)?;
    let a = lan.add_host(None)?;
    let gen = lan.host(g);
    let agent_ns = lan.host(a);
    for i in 0..nodes {
        gen.ip(&["addr", "add", &format!("{}/16", node_ip(i)), "dev", "eth0"])?;
    }
    gen.ip(&["addr", "add", "10.77.0.3/16", "dev", "eth0"])?;
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n[nodes]\ncheckin_interval = \"1h\"\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080)?;
    let pid = server.pid();
    let rss_empty = host::proc_status_kib(pid, "VmRSS:").unwrap_or(0);

    // Index from scratch: every node at once.
    let per_node = files / nodes;
    let keys: Vec<SigningKey> = (0..nodes).map(|i| SigningKey::from_seed([i as u8 + 1; 32])).collect();
    for i in 0..keys.len() {
        let (mac, ip, seed) = (node_mac(i), node_ip(i), [i as u8 + 1; 32]);
        gen.enter(move || check_in(ip, &SigningKey::from_seed(seed), &mac))??;
    }
    let trees: Vec<Vec<Entry>> = (0..nodes).map(|i| tree(i, per_node)).collect();
    let entries: usize = trees.iter().map(Vec::len).sum();
    let started = Instant::now();
    let firsts = std::thread::scope(|scope| -> anyhow::Result<Vec<(Publisher, usize, usize, Duration)>> {
        let mut hs = Vec::new();
        for (i, t) in trees.iter().enumerate() {
            let t = t.clone();
            hs.push(scope.spawn(move || {
                gen.enter(move || -> anyhow::Result<(Publisher, usize, usize, Duration)> {
                    let key = SigningKey::from_seed([i as u8 + 1; 32]);
                    let mut p = Publisher::new(&node_mac(i), &key.public().to_hex(), 1);
                    let t0 = Instant::now();
                    p.scanned(t);
                    let (b, bytes) = publish(node_ip(i), &key, &mut p)?;
                    Ok((p, b, bytes, t0.elapsed()))
                })?
            }));
        }
        hs.into_iter().map(|h| h.join().map_err(|_| anyhow::anyhow!("a node thread panicked"))?).collect()
    })?;
    let scratch = started.elapsed();
    let rss_indexed = host::proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let first_bytes: usize = firsts.iter().map(|f| f.2).sum();
    let first_batches: usize = firsts.iter().map(|f| f.1).sum();

    // 1 % of each node's files change (a new size), one node after another.
    let mut round = Vec::new();
    let mut round_bytes = 0;
    for (i, (mut p, ..)) in firsts.into_iter().enumerate() {
        let mut t = trees[i].clone();
        let step = 100;
        for e in t.iter_mut().filter(|e| e.kind == Kind::File).step_by(step) {
            e.size += 1;
        }
        let key = SigningKey::from_seed([i as u8 + 1; 32]);
        let t0 = Instant::now();
        p.scanned(t);
        let (_, bytes) = gen.enter(move || publish(node_ip(i), &key, &mut p))??;
        round.push(t0.elapsed());
        round_bytes += bytes;
    }
    round.sort();

    // Search: the index over HTTP, beside grep over a flat list of the same paths.
    let list = dir.path().join("paths.txt");
    let mut flat = String::with_capacity(entries * 60);
    for t in &trees {
        for e in t {
            flat.push_str(&e.ns_path());
            flat.push('\n');
        }
    }
    std::fs::write(&list, &flat)?;
    drop(flat);
    let mut rng = Seeded::new(42);
    let queries: Vec<Vec<String>> = (0..200)
        .map(|k| {
            let n = 1 + k % 2;
            (0..n).map(|_| rng.pick(WORDS)[..4].to_string()).collect()
        })
        .collect();
    let mut indexed = Vec::new();
    let mut hits = 0u64;
    for q in &queries {
        let text = q.join(" ");
        let path = format!("/api/v1/search?q={}&limit=50", swarmboot_urls::escape(text.as_bytes()));
        let req = format!("GET {path} HTTP/1.1\r\nHost: 10.77.0.1:8080\r\nConnection: close\r\n\r\n");
        let t0 = Instant::now();
        let (status, reply) = gen.enter(move || http(Ipv4Addr::new(10, 77, 0, 3), &req))??;
        indexed.push(t0.elapsed());
        anyhow::ensure!(status == 200, "search {text}: {status}");
        let v: serde_json::Value = serde_json::from_slice(body_of(&reply))?;
        hits += v["hits"].as_array().map_or(0, |h| h.len() as u64);
    }
    let mut grep = Vec::new();
    for q in &queries {
        let t0 = Instant::now();
        let mut cmd = format!("grep -i -F -- {} {}", q[0], list.display());
        for w in &q[1..] {
            cmd.push_str(&format!(" | grep -i -F -- {w}"));
        }
        cmd.push_str(" | head -50 > /dev/null");
        host::run(std::process::Command::new("sh").arg("-c").arg(&cmd))?;
        grep.push(t0.elapsed());
    }
    indexed.sort();
    grep.sort();

    // The mount: a real node agent with one big file; mount on the load host.
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share)?;
    let big = share.join("big.bin");
    {
        let mut f = std::fs::File::create(&big)?;
        let chunk = swarmboot_lab::noise(1 << 20, 7);
        for _ in 0..mount_mib {
            std::io::Write::write_all(&mut f, &chunk)?;
        }
    }
    agent_ns.ip(&["addr", "add", &format!("{AGENT}/16"), "dev", "eth0"])?;
    let key_file = dir.path().join("server.key");
    std::fs::write(&key_file, server.public_key()?)?;
    let mut cmd = agent_ns.command(swarmboot_lab::bin("swarmboot-node"));
    cmd.args(["--listen", "0.0.0.0:8090", "--image", "elchos@1", "--server", "http://10.77.0.1:8080", "--mac", "52:54:00:b0:01:01", "--index-every", "2", "--share"])
        .arg(format!("bench={}", share.display()))
        .arg("--key-file")
        .arg(&key_file)
        .arg("--state")
        .arg(dir.path().join("agent-state"))
        .arg("--run-dir")
        .arg(dir.path().join("agent-run"));
    let _agent = Proc::spawn("swarmboot-node", &mut cmd, &dir.path().join("agent.log"))?;
    let waited = Instant::now();
    while !server.get("/api/v1/tree/bench").is_ok_and(|t| t.contains("big.bin")) {
        anyhow::ensure!(waited.elapsed() < Duration::from_secs(30), "the agent's share not indexed in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt)?;
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", gen.name())).arg(swarmboot_lab::bin("swarmboot")).args(["mount", "http://10.77.0.1:8080"]).arg(&mnt);
    let mut mount = Proc::spawn("swarmboot mount", &mut cmd, &dir.path().join("mount.log"))?;
    let waited = Instant::now();
    while std::fs::metadata(mnt.join("bench/big.bin")).is_err() {
        anyhow::ensure!(waited.elapsed() < Duration::from_secs(15), "the mount not up:\n{}", mount.output());
        std::thread::sleep(Duration::from_millis(200));
    }
    let size = mount_mib << 20;
    // Three rounds, the mount and curl taking turns; the medians are printed.
    let (mut mount_times, mut curl_times) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut f = std::fs::File::open(mnt.join("bench/big.bin"))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        mount_times.push(t0.elapsed().as_secs_f64());
        anyhow::ensure!(got == size, "the mount read {got} of {size} bytes");
        let t0 = Instant::now();
        host::run(gen.command("curl").args(["-sS", "--fail", "-o", "/dev/null", &format!("http://{AGENT}:8090/bench/big.bin")]))?;
        curl_times.push(t0.elapsed().as_secs_f64());
    }
    mount_times.sort_by(f64::total_cmp);
    curl_times.sort_by(f64::total_cmp);
    let (mount_secs, curl_secs) = (mount_times[1], curl_times[1]);

    let served = || -> anyhow::Result<u64> {
        let out = agent_ns.command("curl").args(["-sS", "http://127.0.0.1:8090/api/v1/status"]).output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v["served"].as_array().map_or(0, |a| a.iter().filter(|s| s["protocol"] == "http").filter_map(|s| s["bytes"].as_u64()).sum()))
    };
    // Random reads through a fresh open (nothing held), at offsets 4 KiB apart at least. (The
    // agent's page takes its counters every 5 s: wait one round before and after.)
    std::thread::sleep(Duration::from_secs(6));
    let mut f = std::fs::File::open(mnt.join("bench/big.bin"))?;
    let before = served()?;
    let mut rng = Seeded::new(99);
    let mut small = [0u8; 4096];
    for _ in 0..100 {
        let at = (1 + rng.next_u64() % (size / 4096 - 2)) * 4096;
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut small)?;
    }
    std::thread::sleep(Duration::from_secs(6));
    let moved = served()? - before;
    drop(f);
    mount.stop(Duration::from_secs(5));
    // Unmounted before the scratch directory goes (it would be taken from under the mount).
    let waited = Instant::now();
    while std::fs::read_to_string("/proc/self/mounts")?.contains(mnt.to_str().unwrap_or("?")) {
        if waited.elapsed() > Duration::from_secs(10) {
            host::run(std::process::Command::new("umount").arg("-l").arg(&mnt))?;
            bail!("the mount did not go when swarmboot mount was stopped (unmounted by hand):\n{}", mount.output());
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let mb = |b: f64| b / 1e6;
    println!("\nbench-namespace: {nodes} nodes, {entries} entries ({per_node} files each, 100 directories, 3 shares named alike across nodes)");
    println!(
        "index from scratch: {:.1} s for all ({:.0} entries/s), {first_batches} batches, {:.1} MB sent; server RSS {:.1} MB → {:.1} MB",
        scratch.as_secs_f64(),
        entries as f64 / scratch.as_secs_f64(),
        mb(first_bytes as f64),
        rss_empty as f64 / 1024.0,
        rss_indexed as f64 / 1024.0
    );
    println!(
        "1 % changed on each node: p50 {:.0} ms, max {:.0} ms per node, {:.2} MB sent in all ({:.1} % of the first round's bytes)",
        ms(pct(&round, 50.0)),
        ms(*round.last().unwrap_or(&Duration::ZERO)),
        mb(round_bytes as f64),
        100.0 * round_bytes as f64 / first_bytes.max(1) as f64
    );
    println!(
        "search (200, one or two word prefixes, {hits} hits): p50 {:.1} ms, p99 {:.1} ms; grep -i -F over the paths: p50 {:.1} ms, p99 {:.1} ms ({:.1}× the index's p99)",
        ms(pct(&indexed, 50.0)),
        ms(pct(&indexed, 99.0)),
        ms(pct(&grep, 50.0)),
        ms(pct(&grep, 99.0)),
        ms(pct(&grep, 99.0)) / ms(pct(&indexed, 99.0)).max(0.001)
    );
    println!(
        "mount: {mount_mib} MiB sequentially {:.1} MB/s; curl from the node {:.1} MB/s ({:.2}×; medians of 3 rounds each)",
        mb(size as f64) / mount_secs,
        mb(size as f64) / curl_secs,
        curl_secs / mount_secs
    );
    println!("mount: 100 random 4 KiB reads moved {moved} bytes from the node ({:.2}× the {} bytes read)", moved as f64 / (100.0 * 4096.0), 100 * 4096);
    println!(
        "goals: search p99 ≤ 50 ms ({}), mount ≥ 0.8× curl ({}), random reads ≤ 1.5× ({})",
        if ms(pct(&indexed, 99.0)) <= 50.0 { "met" } else { "MISSED" },
        if curl_secs / mount_secs >= 0.8 { "met" } else { "MISSED" },
        if moved as f64 <= 1.5 * 100.0 * 4096.0 { "met" } else { "MISSED" }
    );
    Ok(())
}
