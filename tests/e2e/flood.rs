//! One server under hostile load from the boot LAN, all at once: 600 TFTP read requests that
//! ask for a 255 s timeout and never acknowledge, 1100 HTTP connections and 1000 peer-wire
//! connections that never send a byte, from 8 addresses. Real clients started in the middle
//! of it — a TFTP fetch, `/healthz`, and `swarmboot fetch` of an image — each finish within
//! 5 s, and the server's open files stay within its caps.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use swarmboot_lab::hostile::connect_from;
use swarmboot_lab::{bin, noise, require_root, Lan, ScratchDir, Server};

/// An RRQ for `name` asking for every option, `timeout 255` among them.
fn rrq(name: &str) -> Vec<u8> {
    let mut p = vec![0, 1];
    for part in [name, "octet", "blksize", "1468", "tsize", "0", "timeout", "255"] {
        p.extend_from_slice(part.as_bytes());
        p.push(0);
    }
    p
}

/// A TCP connection from `source` to `to`, or `None` if it was refused or timed out.
#[test]
fn a_flood_of_idle_connections_and_spoofed_transfers_does_not_starve_real_clients() {
    if !require_root("a_flood_of_idle_connections_and_spoofed_transfers_does_not_starve_real_clients") {
        return;
    }
    let dir = ScratchDir::new("flood").unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let tftp_root = dir.path().join("tftp");
    std::fs::create_dir_all(&tftp_root).unwrap();
    std::fs::write(tftp_root.join("big.bin"), noise(1 << 20, 1)).unwrap();
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nroot = \"{}\"\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display(),
        tftp_root.display()
    );
    // Started with the soft limit of open files a service gets by default (1024; the unit
    // sets LimitNOFILE=, and the server raises its soft limit to the hard one itself).
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(1024), hard).unwrap();
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080);
    // This process holds the flood's 2100 sockets.
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let server = server.unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![("kernel", noise(300_000, 2)), ("initrd", noise(200_000, 3)), ("rootfs", noise(2 << 20, 4))];
    for (name, data) in &files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    server.cli(&["image", "add", "img", "--kernel", &p("kernel"), "--initrd", &p("initrd"), "--rootfs", &p("rootfs")]).unwrap();
    let key = server.public_key().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric("swarmboot_seed_files").unwrap() < 3 {
        assert!(Instant::now() < deadline, "the seed did not pick up the image:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (fds_before, rss_before) = server.footprint().unwrap();

    let a = lan.add_host(None).unwrap();
    let sources: Vec<Ipv4Addr> = (0..8u8).map(|i| Ipv4Addr::new(10, 77, 0, 100 + i)).collect();
    for s in &sources {
        lan.host(a).ip(&["addr", "add", &format!("{s}/24"), "dev", "eth0"]).unwrap();
    }
    let g = lan.add_host(None).unwrap();
    lan.host(g).ip(&["addr", "add", "10.77.0.10/24", "dev", "eth0"]).unwrap();

    // The flood: 150 RRQs from each of 4 addresses, 138 HTTP and 125 peer connections from
    // each of 8.
    let srcs = sources.clone();
    let flood = lan
        .host(a)
        .enter(move || {
            let mut held = Vec::new();
            let mut udp = Vec::new();
            for &s in &srcs[..4] {
                let sock = std::net::UdpSocket::bind((s, 0)).unwrap();
                for i in 0..150 {
                    sock.send_to(&rrq("big.bin"), "10.77.0.1:69").unwrap();
                    if i % 10 == 9 {
                        // Paced, so that the server's socket buffer takes them.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                udp.push(sock);
            }
            for (port, per_source) in [(8080u16, 138), (6881, 125)] {
                for &s in &srcs {
                    for _ in 0..per_source {
                        held.extend(connect_from(s, SocketAddr::from(([10, 77, 0, 1], port))));
                    }
                }
            }
            (udp, held)
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (fds, rss) = server.footprint().unwrap();
    eprintln!("flood: {} TCP connections made; server: {fds} open files ({fds_before} before), {rss} kB resident ({rss_before} kB before)", flood.1.len());

    // Real clients, all started now.
    let started = Instant::now();
    let client = lan.host(g);
    let out = dir.path().join("fetched");
    let mut tftp = client.command("curl").args(["-sS", "--max-time", "5", "-o"]).arg(dir.path().join("big.tftp")).arg("tftp://10.77.0.1/big.bin").spawn().unwrap();
    let mut health = client.command("curl").args(["-sS", "--max-time", "5", "-o"]).arg(dir.path().join("healthz")).arg("http://10.77.0.1:8080/healthz").spawn().unwrap();
    let mut fetch = client
        .command(bin("swarmboot"))
        .args(["fetch", "--server", "http://10.77.0.1:8080", "--image", "img", "--key", &key, "--out"])
        .arg(&out)
        .env("SWARMBOOT_LOG", "info")
        .stderr(std::fs::File::create(dir.path().join("fetch.log")).unwrap())
        .spawn()
        .unwrap();
    let mut took = Vec::new();
    for (what, child) in [("tftp", &mut tftp), ("/healthz", &mut health), ("swarmboot fetch", &mut fetch)] {
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        took.push((what, started.elapsed(), status.success()));
    }
    let log = std::fs::read_to_string(dir.path().join("fetch.log")).unwrap_or_default();
    eprintln!("during the flood: {took:?}");
    for (what, t, ok) in &took {
        assert!(*ok && *t < Duration::from_secs(5), "{what}: success {ok} after {t:?}\nfetch log:\n{log}");
    }
    assert!(std::fs::read(dir.path().join("big.tftp")).unwrap() == std::fs::read(tftp_root.join("big.bin")).unwrap());
    assert_eq!(std::fs::read_to_string(dir.path().join("healthz")).unwrap(), "ok\n");
    for (name, data) in &files {
        assert!(std::fs::read(out.join(name)).unwrap() == *data, "{name}");
    }
    // Bounded by the caps per client (32 HTTP connections, 16 peer connections from each of 8
    // addresses, 64 TFTP transfers for each of 4, each transfer holding its socket and the
    // file it sends), over what the server held before. (916 = 20 + 384 + 512 was seen when
    // every transfer had its file open: exactly the caps.)
    assert!(fds <= fds_before + 8 * (32 + 16) + 4 * 64 * 2, "{fds} open files under the flood");
    let refused = |m: &str| server.metric(m).unwrap();
    assert!(refused("swarmboot_http_refused_connections_total") > 0 && refused("swarmboot_tftp_busy_total") > 0, "{}", server.metrics().unwrap());
    drop(flood);
}
