//! Our swarm engine against real BitTorrent clients, on loopback: our seeder feeds aria2c and
//! rqbit (librqbit), aria2c / rqbit / transmission seeders feed our leecher, and a swarm of all
//! of them completes from one super-seeding seed of ours. Every download must be byte-identical.
//! Peers find each other through opentracker (whitelist mode), as aria2c and transmission-cli
//! take no peer addresses on the command line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use swarmboot_lab::bittorrent::{self as bt, Discovery};
use swarmboot_lab::{bin, Proc, ScratchDir};
use swarmboot_torrent::Metainfo;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Setup {
    dir: ScratchDir,
    data: Vec<u8>,
    torrent: PathBuf,
    /// The complete data, as `<dir>/seed/image.bin`.
    seed_dir: PathBuf,
    _tracker: Proc,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(LOCAL, port)
}

fn setup(tag: &str, size: usize, piece: u32) -> Setup {
    let dir = ScratchDir::new(tag).unwrap();
    let data = swarmboot_lab::noise(size, size as u64);
    let seed_dir = dir.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::write(seed_dir.join("image.bin"), &data).unwrap();
    let tport = bt::free_port();
    let (meta, bytes) = Metainfo::single_file("image.bin", &data, piece, Some(&format!("http://127.0.0.1:{tport}/announce")), true);
    let torrent = dir.path().join("image.torrent");
    std::fs::write(&torrent, bytes).unwrap();
    let tracker = Proc::spawn("opentracker", &mut bt::opentracker(dir.path(), LOCAL, tport, &[meta.info_hash]).unwrap(), &dir.path().join("tracker.log")).unwrap();
    wait_listening(tport);
    Setup { dir, data, torrent, seed_dir, _tracker: tracker }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr(port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn spawn(&self, name: &str, cmd: &mut std::process::Command) -> Proc {
        Proc::spawn(name, cmd, &self.path(&format!("{name}.log"))).unwrap()
    }
    /// Waits until `file` holds exactly the data; on timeout, fails with every log.
    fn wait_identical(&self, who: &str, file: &Path, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if std::fs::read(file).is_ok_and(|d| d == self.data) {
                return;
            }
            if Instant::now() > deadline {
                self.dir.keep();
                let mut logs = String::new();
                for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
                    if e.path().extension().is_some_and(|x| x == "log") {
                        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                        logs += &format!("--- {}\n{}\n", e.path().display(), tail.join("\n"));
                    }
                }
                panic!("{who}: {} is not byte-identical after {timeout:?}\n{logs}", file.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_default()).unwrap_or(serde_json::Value::Null)
}

#[test]
fn our_seed_serves_aria2c_and_rqbit() {
    let s = setup("swarm-to-others", 6 << 20, 256 * 1024);
    let rqbit = bt::rqbit_path().unwrap();
    let seed_port = bt::free_port();
    let mut seed = s.spawn("ours-seed", &mut bt::ours_seed(&bin("swarmboot"), &s.torrent, &s.seed_dir, addr(seed_port), false, &Discovery::default(), &s.path("seed.json")));
    wait_listening(seed_port);
    let _aria = s.spawn("aria2c", &mut bt::aria2c_get(&s.torrent, &s.path("aria"), bt::free_port(), 0));
    let _rq = s.spawn("rqbit", &mut bt::rqbit_get(&rqbit, &s.torrent, &s.path("rqbit"), addr(bt::free_port()), &[addr(seed_port)], false));
    s.wait_identical("aria2c", &s.path("aria/image.bin"), Duration::from_secs(60));
    s.wait_identical("rqbit", &s.path("rqbit/image.bin"), Duration::from_secs(60));
    seed.stop(Duration::from_secs(5));
    let st = stats(&s.path("seed.json"));
    let up = st["uploaded"].as_u64().unwrap_or(0);
    assert!(up >= s.data.len() as u64, "our seed's counters show what it sent: {st}");
}

/// A leecher of ours, fed by `seeder` (started by `start`, listening on the returned port).
fn ours_from(tag: &str, start: impl FnOnce(&Setup, u16) -> Proc) {
    let s = setup(tag, 6 << 20, 256 * 1024);
    let port = bt::free_port();
    let _seeder = start(&s, port);
    wait_listening(port);
    let get = bt::ours_get(&bin("swarmboot"), &s.torrent, &s.path("ours"), addr(bt::free_port()), false, &Discovery::default(), &s.path("ours.json"));
    let mut ours = s.spawn("ours-get", &mut { get });
    s.wait_identical("our leecher", &s.path("ours/image.bin"), Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ours.exited() {
        assert!(Instant::now() < deadline, "our leecher did not exit after completing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = stats(&s.path("ours.json"));
    assert_eq!(st["have"], st["pieces"], "{st}");
    assert_eq!(st["hash_failures"], 0, "{st}");
    assert!(st["downloaded"].as_u64().unwrap() >= s.data.len() as u64, "{st}");
}

#[test]
fn aria2c_seed_serves_ours() {
    ours_from("aria2c-to-ours", |s, port| s.spawn("aria2c-seed", &mut bt::aria2c_seed(&s.torrent, &s.seed_dir, port, 300)));
}

#[test]
fn rqbit_seed_serves_ours() {
    let rqbit = bt::rqbit_path().unwrap();
    ours_from("rqbit-to-ours", |s, port| s.spawn("rqbit-seed", &mut bt::rqbit_get(&rqbit, &s.torrent, &s.seed_dir, addr(port), &[], true)));
}

#[test]
fn transmission_seed_serves_ours() {
    ours_from("transmission-to-ours", |s, port| {
        std::fs::create_dir_all(s.path("tr-config")).unwrap();
        s.spawn("transmission-seed", &mut bt::transmission(&s.torrent, &s.seed_dir, &s.path("tr-config"), port))
    });
}

/// One super-seeding seed of ours and, all starting at once, two leechers of ours, aria2c,
/// rqbit and transmission: everyone ends up with the same bytes.
#[test]
fn a_mixed_swarm_completes() {
    let s = setup("mixed-swarm", 8 << 20, 128 * 1024);
    let rqbit = bt::rqbit_path().unwrap();
    let seed_port = bt::free_port();
    let _seed = s.spawn("ours-seed", &mut bt::ours_seed(&bin("swarmboot"), &s.torrent, &s.seed_dir, addr(seed_port), true, &Discovery::default(), &s.path("seed.json")));
    wait_listening(seed_port);
    let sb = bin("swarmboot");
    let _a = s.spawn("ours-1", &mut bt::ours_get(&sb, &s.torrent, &s.path("ours1"), addr(bt::free_port()), true, &Discovery::default(), &s.path("o1.json")));
    let _b = s.spawn("ours-2", &mut bt::ours_get(&sb, &s.torrent, &s.path("ours2"), addr(bt::free_port()), true, &Discovery::default(), &s.path("o2.json")));
    let _c = s.spawn("aria2c", &mut bt::aria2c_get(&s.torrent, &s.path("aria"), bt::free_port(), 300));
    let _d = s.spawn("rqbit", &mut bt::rqbit_get(&rqbit, &s.torrent, &s.path("rqbit"), addr(bt::free_port()), &[], true));
    std::fs::create_dir_all(s.path("tr-config")).unwrap();
    let _e = s.spawn("transmission", &mut bt::transmission(&s.torrent, &s.path("tr"), &s.path("tr-config"), bt::free_port()));
    for (who, file) in [("ours-1", "ours1"), ("ours-2", "ours2"), ("aria2c", "aria"), ("rqbit", "rqbit"), ("transmission", "tr")] {
        s.wait_identical(who, &s.path(&format!("{file}/image.bin")), Duration::from_secs(120));
    }
}

/// On a lab LAN: the seed bound to the server's bridge (`--interface br0`) and a leecher bound
/// to its `eth0`, found through `--peer` only; the counters in `--stats` add up.
#[test]
fn seed_and_leecher_bound_to_their_interfaces() {
    if !swarmboot_lab::require_root("seed_and_leecher_bound_to_their_interfaces") {
        return;
    }
    let dir = ScratchDir::new("swarm-iface").unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 13) as u8).collect();
    std::fs::create_dir_all(dir.path().join("seed")).unwrap();
    std::fs::write(dir.path().join("seed/image.bin"), &data).unwrap();
    let (_, bytes) = Metainfo::single_file("image.bin", &data, 64 * 1024, None, true);
    let torrent = dir.path().join("image.torrent");
    std::fs::write(&torrent, bytes).unwrap();
    let mut lan = swarmboot_lab::Lan::new("10.89.0.1/24").unwrap();
    let h = lan.add_host(None).unwrap();
    lan.host(h).ip(&["addr", "add", "10.89.0.20/24", "dev", "eth0"]).unwrap();
    let sb = bin("swarmboot");
    let mut seed_cmd = bt::ours_seed(&sb, &torrent, &dir.path().join("seed"), "10.89.0.1:6881".parse().unwrap(), true, &Discovery::default(), &dir.path().join("seed.json"));
    seed_cmd.args(["--interface", "br0"]);
    let mut seed = Proc::spawn("seed", &mut lan.server.wrap(&seed_cmd), &dir.path().join("seed.log")).unwrap();
    swarmboot_lab::wait_for_line(&dir.path().join("seed.log"), "seeding image.bin", Duration::from_secs(10)).unwrap();
    let how = Discovery { tracker: None, peers: vec!["10.89.0.1:6881".parse().unwrap()] };
    let mut get_cmd = bt::ours_get(&sb, &torrent, &dir.path().join("out"), "10.89.0.20:6881".parse().unwrap(), false, &how, &dir.path().join("get.json"));
    get_cmd.args(["--interface", "eth0"]);
    let out = lan.host(h).wrap(&get_cmd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.path().join("out/image.bin")).unwrap(), data);
    seed.stop(Duration::from_secs(5));
    let (s, g) = (stats(&dir.path().join("seed.json")), stats(&dir.path().join("get.json")));
    assert_eq!(s["uploaded"], g["downloaded"], "seed {s}\nleecher {g}");
    assert_eq!(g["downloaded"], data.len() as u64, "one peer, no endgame: every byte once");
    let peers = s["peers"].as_array().unwrap();
    assert!(peers.is_empty() || peers[0]["uploaded"] == s["uploaded"], "{s}");
}
