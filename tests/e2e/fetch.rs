//! `swarmboot fetch` against `swarmboot serve`: signed manifests, the server's tracker and seed,
//! clients seeding each other, aria2c joining through the served .torrent, the HTTP fallback
//! when the swarm stalls, and refusals of tampered manifests, foreign keys, corrupt torrents
//! and a peer that serves garbage; a peer that trickles does not hold a fetch back.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use swarmboot_lab::hostile::{CorruptPeer, Proxy, Rewrites, StaticHttp, TricklePeer};
use swarmboot_lab::{bin, bittorrent, noise, require_root, Lan, Netns, Proc, ScratchDir, Server};

struct Image {
    kernel: Vec<u8>,
    initrd: Vec<u8>,
    rootfs: Vec<u8>,
}

impl Image {
    fn new(rootfs_len: usize) -> Self {
        Image { kernel: noise(2_000_000, 1), initrd: noise(700_000, 2), rootfs: noise(rootfs_len, 3) }
    }
    fn total(&self) -> u64 {
        (self.kernel.len() + self.initrd.len() + self.rootfs.len()) as u64
    }
    /// `image add NAME` on `server`; returns the rootfs's SHA-256.
    fn add(&self, server: &Server, dir: &Path, name: &str) -> String {
        let paths: Vec<PathBuf> = ["kernel", "initrd", "rootfs"].iter().map(|f| dir.join(format!("{name}-{f}"))).collect();
        for (p, data) in paths.iter().zip([&self.kernel, &self.initrd, &self.rootfs]) {
            std::fs::write(p, data).unwrap();
        }
        let s = |p: &PathBuf| p.to_str().unwrap().to_string();
        let out = server.cli(&["image", "add", name, "--kernel", &s(&paths[0]), "--initrd", &s(&paths[1]), "--rootfs", &s(&paths[2])]).unwrap();
        out.lines().find(|l| l.trim_start().starts_with("rootfs")).and_then(|l| l.split_whitespace().last()).unwrap().to_string()
    }
    fn check(&self, out: &Path) {
        for (f, data) in [("kernel", &self.kernel), ("initrd", &self.initrd), ("rootfs", &self.rootfs)] {
            assert!(std::fs::read(out.join(f)).unwrap() == *data, "{f} in {} differs from the published file", out.display());
        }
    }
}

/// A server alone in a namespace, on its loopback: HTTP on 8080, seed on 6881.
fn solo(tag: &str, swarm: &str) -> (ScratchDir, Netns, Server) {
    let dir = ScratchDir::new(tag).unwrap();
    let ns = Netns::new("f").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"127.0.0.1:8080\"\n[swarm]\nlisten = \"127.0.0.1:6881\"\n{swarm}\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&ns, dir.path(), &cfg, 8080).unwrap();
    (dir, ns, server)
}

fn fetch(ns: &Netns, server_url: &str, image: &str, out: &Path, key: &str, extra: &[&str]) -> Output {
    ns.command(bin("swarmboot"))
        .args(["fetch", "--server", server_url, "--image", image, "--key", key, "--out"])
        .arg(out)
        .args(extra)
        .env("SWARMBOOT_LOG", "info")
        .output()
        .unwrap()
}

/// A man in the middle in `ns` (its threads there too), in front of the `solo` server.
fn in_the_middle(ns: &Netns, rewrites: Rewrites) -> Proxy {
    ns.enter(move || Proxy::start(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), "127.0.0.1:8080".parse().unwrap(), rewrites).unwrap()).unwrap()
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// GET over plain HTTP/1.1 from inside `ns` (bodies are small).
fn http_get(ns: &Netns, addr: &str, path: &str) -> Vec<u8> {
    let (addr, path) = (addr.to_string(), path.to_string());
    ns.enter(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&resp[..split]));
        resp[split + 4..].to_vec()
    })
    .unwrap()
}

/// Five machines fetch one image at once with `--seed` and an aria2c joins through the
/// served .torrent, then through the magnet link; every copy matches, nothing went over HTTP, and the server's counters show
/// how much the machines got from each other.
#[test]
fn five_fetch_clients_and_aria2c_share_an_image() {
    if !require_root("five_fetch_clients_and_aria2c_share_an_image") {
        return;
    }
    let dir = ScratchDir::new("fetch-five").unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080).unwrap();
    let image = Image::new(24 << 20);
    let rootfs_sha = image.add(&server, dir.path(), "elchos");
    let key = server.public_key().unwrap();
    for i in 0..6 {
        let h = lan.add_host(None).unwrap();
        lan.host(h).ip(&["addr", "add", &format!("10.77.0.{}/24", 10 + i), "dev", "eth0"]).unwrap();
    }
    wait_files(&server, 3);

    let mut clients = Vec::new();
    for i in 0..5 {
        let out = dir.path().join(format!("client{i}"));
        let stats = dir.path().join(format!("client{i}.json"));
        let mut cmd = lan.host(i).command(bin("swarmboot"));
        cmd.args(["fetch", "--server", "http://10.77.0.1:8080", "--image", "elchos", "--key", &key, "--seed", "--listen", "0.0.0.0:6881", "--out"])
            .arg(&out)
            .arg("--stats")
            .arg(&stats)
            .env("SWARMBOOT_LOG", "info");
        clients.push((Proc::spawn("swarmboot fetch", &mut cmd, &dir.path().join(format!("client{i}.log"))).unwrap(), out, stats));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for (p, _, stats) in &mut clients {
        while !stats.exists() {
            assert!(!p.exited(), "a fetch client exited:\n{}", p.output());
            assert!(Instant::now() < deadline, "not done in 120 s:\n{}", p.output());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut fetched = 0u64;
    for (p, out, stats_path) in &clients {
        image.check(out);
        let s = stats(stats_path);
        assert_eq!((s["from_http"].as_u64(), s["hash_failures"].as_u64()), (Some(0), Some(0)), "{s}\n{}", p.output());
        assert!(p.output().contains("verified (signed by sha256:"), "{}", p.output());
        assert!(p.output().contains("every piece verified by its signed SHA-256"), "no pass over the whole files:\n{}", p.output());
        fetched += s["from_peers"].as_u64().unwrap();
    }

    // aria2c, a BitTorrent client that knows nothing of swarmboot, joins via the .torrent.
    let aria = lan.host(5);
    let torrent = dir.path().join("rootfs.torrent");
    std::fs::write(&torrent, http_get(aria, "10.77.0.1:8080", &format!("/torrent/{rootfs_sha}.torrent"))).unwrap();
    let aria_out = dir.path().join("aria2c");
    let out = aria.wrap(&bittorrent::aria2c_get(&torrent, &aria_out, 6881, 0)).output().unwrap();
    assert!(out.status.success(), "aria2c: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(aria_out.join(&rootfs_sha)).unwrap() == image.rootfs, "aria2c's copy differs");
    // And through the magnet link: aria2c gets the info dictionary from our peers (BEP 9).
    let magnet = String::from_utf8(http_get(aria, "10.77.0.1:8080", &format!("/magnet/{rootfs_sha}"))).unwrap();
    assert!(magnet.starts_with("magnet:?xt=urn:btih:") && magnet.contains("&tr=http%3A%2F%2F10.77.0.1%3A8080%2Fannounce"), "{magnet}");
    let magnet_out = dir.path().join("aria2c-magnet");
    // Without the `xs` (the .torrent's URL), so the metadata can only come from peers.
    let bare = magnet.trim().split('&').filter(|p| !p.starts_with("xs=")).collect::<Vec<_>>().join("&");
    let out = aria.wrap(&bittorrent::aria2c_get(Path::new(&bare), &magnet_out, 6881, 0)).output().unwrap();
    assert!(out.status.success(), "aria2c (magnet): {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(magnet_out.join(&rootfs_sha)).unwrap() == image.rootfs, "aria2c's magnet copy differs");

    for (p, _, _) in &mut clients {
        p.stop(Duration::from_secs(5));
    }
    let m = |name: &str| server.metric(name).unwrap();
    let (seed_up, peers_up, peers_down, http) =
        (m("swarmboot_seed_uploaded_bytes_total"), m("swarmboot_peers_uploaded_bytes_total"), m("swarmboot_peers_downloaded_bytes_total"), m("swarmboot_http_blob_bytes_total"));
    let size = image.total();
    eprintln!(
        "5 clients fetched {fetched} bytes ({:.2} images each); server seed uploaded {seed_up} ({:.2} images); machines reported uploading {peers_up}, downloading {peers_down}; HTTP {http}",
        fetched as f64 / 5.0 / size as f64,
        seed_up as f64 / size as f64
    );
    assert_eq!(http, 0, "nothing over HTTP");
    assert!(peers_down >= 5 * size, "the tracker heard every machine's downloads: {peers_down}");
    // Five machines and aria2c's two rootfs copies: about 6.8 images in total;
    // the seed sent well under half of that, the machines the rest.
    assert!(seed_up < 3 * size, "the seed sent {seed_up} bytes, {:.2} images", seed_up as f64 / size as f64);
    assert!(peers_up > 2 * size, "machines uploaded only {peers_up} bytes to each other");
}

/// No seed and no peers: after `--stall-timeout` the missing pieces come over HTTP Range and
/// the download completes. A restart seeds without hashing again; a changed file is hashed.
#[test]
fn a_stalled_swarm_falls_back_to_http_and_restarts_do_not_rehash() {
    if !require_root("a_stalled_swarm_falls_back_to_http_and_restarts_do_not_rehash") {
        return;
    }
    let (dir, ns, mut server) = solo("fetch-stall", "seed = false");
    let image = Image::new(5 << 20);
    image.add(&server, dir.path(), "img");
    let key = server.public_key().unwrap();
    let out = dir.path().join("out");
    let stats_path = dir.path().join("stats.json");
    let started = Instant::now();
    let r = fetch(&ns, "http://127.0.0.1:8080", "img", &out, &key, &["--stall-timeout", "2s", "--stats", stats_path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    image.check(&out);
    let s = stats(&stats_path);
    assert_eq!((s["from_http"].as_u64(), s["from_peers"].as_u64(), s["fallback"].as_bool()), (Some(image.total()), Some(0), Some(true)), "{s}");
    assert!(stderr.contains("the swarm stalled"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(2), "waited for the swarm first");
    assert_eq!(server.metric("swarmboot_http_blob_bytes_total").unwrap(), image.total());

    // Seeding on: the first start hashes the three files, a restart none, a touched file one.
    let cfg = std::fs::read_to_string(&server.config).unwrap().replace("seed = false", "seed = true");
    std::fs::write(&server.config, cfg).unwrap();
    server.restart(&ns).unwrap();
    wait_files(&server, 3);
    assert_eq!(server.metric("swarmboot_seed_hashed_files_total").unwrap(), 3);
    server.restart(&ns).unwrap();
    wait_files(&server, 3);
    assert_eq!(server.metric("swarmboot_seed_hashed_files_total").unwrap(), 0, "a verified store is not hashed again");
    let stored = dir.path().join("state/store");
    let rootfs = find_file(&stored, image.rootfs.len() as u64).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&rootfs).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
    server.restart(&ns).unwrap();
    wait_files(&server, 3);
    assert_eq!(server.metric("swarmboot_seed_hashed_files_total").unwrap(), 1, "the touched file is hashed again");
    // And the seed serves: a fetch now gets everything from the swarm.
    let out2 = dir.path().join("out2");
    let r = fetch(&ns, "http://127.0.0.1:8080", "img", &out2, &key, &["--stats", stats_path.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    image.check(&out2);
    assert_eq!(stats(&stats_path)["from_http"].as_u64(), Some(0));
}

/// Waits until the server serves `n` files through the swarm (its sync period is 5 s).
fn wait_files(server: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric("swarmboot_seed_files").unwrap() < n {
        assert!(Instant::now() < deadline, "the server did not pick up the image:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find_file(dir: &Path, len: u64) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, len) {
                return Some(f);
            }
        } else if p.extension().is_none() && std::fs::metadata(&p).ok()?.len() == len {
            return Some(p);
        }
    }
    None
}

/// A manifest changed in transit, a manifest signed by another key, a key the client was
/// not given, and a corrupt .torrent: each refused with a message saying which, and nothing
/// written. Pieces' SHA-256 lists changed in transit: refused, the files checked whole.
#[test]
fn tampered_manifests_foreign_keys_and_corrupt_torrents_are_refused() {
    if !require_root("tampered_manifests_foreign_keys_and_corrupt_torrents_are_refused") {
        return;
    }
    let (dir, ns, server) = solo("fetch-refuse", "");
    let image = Image::new(300_000);
    let rootfs_sha = image.add(&server, dir.path(), "img");
    let key = server.public_key().unwrap();
    let envelope = http_get(&ns, "127.0.0.1:8080", "/manifest/img");
    let torrent = http_get(&ns, "127.0.0.1:8080", &format!("/torrent/{rootfs_sha}.torrent"));

    // A second server (another key) publishes an image of the same name.
    let (dir2, ns2, server2) = solo("fetch-refuse2", "");
    image.add(&server2, dir2.path(), "img");
    let foreign = http_get(&ns2, "127.0.0.1:8080", "/manifest/img");
    let foreign_key = server2.public_key().unwrap();
    drop((server2, ns2));

    let mut tampered = envelope.clone();
    let text = String::from_utf8(tampered.clone()).unwrap();
    let at = text.find("cmdline = \"\"").expect("the manifest has a cmdline") + "cmdline = \"".len();
    tampered.splice(at..at, b"init=/bin/sh".iter().copied());
    let fake_server = |manifest: &[u8], torrent: &[u8]| {
        let mut routes = HashMap::new();
        routes.insert("/manifest/img".to_string(), manifest.to_vec());
        routes.insert(format!("/torrent/{rootfs_sha}.torrent"), torrent.to_vec());
        let listener = ns.enter(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        StaticHttp::start(listener, routes).unwrap()
    };
    let cases: Vec<(&str, StaticHttp, &str, &str)> = vec![
        ("tampered", fake_server(&tampered, &torrent), key.as_str(), "altered after it was signed"),
        ("signed by another server", fake_server(&foreign, &torrent), key.as_str(), "which is not a key you trust"),
        ("a key the client was not given", fake_server(&envelope, &torrent), foreign_key.as_str(), "which is not a key you trust"),
        ("not a manifest", fake_server(b"<html>captive portal</html>\n", &torrent), key.as_str(), "not a signed swarmboot manifest"),
    ];
    // A torrent changed on its way (the real server's answers otherwise, so the manifest is
    // vouched for as fresh): refused before anything is written.
    let rewrites = Rewrites { body: vec![("/torrent/".into(), b"4:name".to_vec(), b"4:namf".to_vec())], ..Default::default() };
    let proxy = in_the_middle(&ns, rewrites);
    let mut cases: Vec<(&str, SocketAddr, &str, &str)> = cases.iter().map(|(what, fake, trusted, says)| (*what, fake.addr, *trusted, *says)).collect();
    cases.push(("corrupt torrent", proxy.addr, key.as_str(), "is not valid"));
    for (what, addr, trusted, says) in &cases {
        let out = dir.path().join(what.replace(' ', "-"));
        let r = fetch(&ns, &format!("http://{addr}"), "img", &out, trusted, &[]);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{what}: fetched anyway");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(!out.exists(), "{what}: something was written");
    }
    // The SHA-256 list of each file's pieces changed on its way (its piece length, so the
    // signature no longer holds): refused, and the files are checked whole instead; the
    // fetch completes, byte for byte.
    let rewrites = Rewrites { body: vec![("/pieces/".into(), b"piece_length=262144".to_vec(), b"piece_length=131072".to_vec())], ..Default::default() };
    let proxy = in_the_middle(&ns, rewrites);
    let out = dir.path().join("pieces-changed");
    let r = fetch(&ns, &format!("http://{}", proxy.addr), "img", &out, &key, &[]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("refusing the SHA-256 list of its pieces (the piece hashes are not signed by a key you trust)"), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("checking the SHA-256 of each file without a signed list of its pieces") && l.contains("files=3")), "{stderr}");
    image.check(&out);
    assert_eq!(proxy.rewritten.load(std::sync::atomic::Ordering::Relaxed), 3, "the list of each of the 3 files");
    // A manifest edited on the server's disk is not served at all.
    let stored = dir.path().join("state/images/img/1.toml");
    let edited = std::fs::read_to_string(&stored).unwrap().replace("cmdline = \"\"", "cmdline = \"init=/bin/sh\"");
    std::fs::write(&stored, edited).unwrap();
    let r = fetch(&ns, "http://127.0.0.1:8080", "img", &dir.path().join("edited"), &key, &[]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("HTTP status 500"), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(server.log().contains("does not match its signature"), "{}", server.log());
}

/// Rollback, against `swarmboot fetch`: with version 3 the latest, a man in the middle turns
/// the request for the latest into one for version 1. The manifest is validly signed and the
/// server's freshness statement is for this request's nonce, but it says the latest is 3:
/// refused, naming both versions. Without the statement (stripped on the way): refused.
/// Version 1 asked for by number (the operator's choice) is fetched.
#[test]
fn an_older_manifest_replayed_as_the_latest_is_refused() {
    if !require_root("an_older_manifest_replayed_as_the_latest_is_refused") {
        return;
    }
    let (dir, ns, server) = solo("fetch-rollback", "");
    let versions: Vec<Image> = (0..3).map(|i| Image::new(200_000 + i)).collect();
    for image in &versions {
        image.add(&server, dir.path(), "img");
    }
    let key = server.public_key().unwrap();
    let proxy = |rewrites: Rewrites| in_the_middle(&ns, rewrites);
    let replay = proxy(Rewrites { request: vec![("/manifest/img?".into(), "/manifest/img/1?".into())], ..Default::default() });
    let stripped = proxy(Rewrites { drop_headers: vec![swarmboot_manifest::freshness::HEADER.into()], ..Default::default() });
    for (what, via, says) in [
        ("replayed", &replay, "refusing img@1: the server's signed answer to this request says the latest img is version 3"),
        ("without a statement", &stripped, "has no signed freshness statement"),
    ] {
        let out = dir.path().join(what.replace(' ', "-"));
        let r = fetch(&ns, &format!("http://{}", via.addr), "img", &out, &key, &[]);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{what}: fetched anyway");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(!out.exists(), "{what}: something was written");
        assert!(via.rewritten.load(std::sync::atomic::Ordering::Relaxed) >= 1 || what != "replayed");
    }
    // Straight from the server: the latest, 3.
    let out = dir.path().join("latest");
    let r = fetch(&ns, "http://127.0.0.1:8080", "img", &out, &key, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    versions[2].check(&out);
    // Asked for by number, an older version is the operator's choice.
    let out = dir.path().join("pinned");
    let r = fetch(&ns, "http://127.0.0.1:8080", "img@1", &out, &key, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    versions[0].check(&out);
}

/// A peer that claims every piece and sends garbage: its pieces fail, it is dropped and
/// banned, and the download completes byte for byte from the server's seed.
#[test]
fn a_corrupting_peer_is_dropped_and_the_download_completes() {
    if !require_root("a_corrupting_peer_is_dropped_and_the_download_completes") {
        return;
    }
    let (dir, ns, server) = solo("fetch-corrupt", "upload_slots = 1");
    let image = Image::new(16 << 20);
    let rootfs_sha = image.add(&server, dir.path(), "img");
    let key = server.public_key().unwrap();
    let meta = swarmboot_torrent::Metainfo::parse(&http_get(&ns, "127.0.0.1:8080", &format!("/torrent/{rootfs_sha}.torrent"))).unwrap();
    wait_files(&server, 3);
    let listener = ns.enter(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let liar = CorruptPeer::start(listener, meta.info_hash, meta.pieces.len() as u32).unwrap();
    let reply = http_get(&ns, "127.0.0.1:8080", &liar.announce_path(&meta.info_hash));
    assert!(!reply.starts_with(b"d14:failure"), "{}", String::from_utf8_lossy(&reply));

    let out = dir.path().join("out");
    let stats_path = dir.path().join("stats.json");
    let r = fetch(&ns, "http://127.0.0.1:8080", "img", &out, &key, &["--stall-timeout", "60s", "--stats", stats_path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    image.check(&out);
    let s = stats(&stats_path);
    use std::sync::atomic::Ordering::Relaxed;
    let (sent, conns, closed) = (liar.stats.blocks_sent.load(Relaxed), liar.stats.connections.load(Relaxed), liar.stats.closed_by_peer.load(Relaxed));
    eprintln!("liar: {conns} connection(s), {sent} garbage blocks, closed by the client {closed}; client: {s}");
    assert!(sent > 0, "the liar was asked for blocks");
    assert!(s["hash_failures"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["from_http"].as_u64(), Some(0), "completed from the swarm, not HTTP");
    assert!(closed >= 1 && closed == conns, "the client dropped every connection to the liar");
    assert!(stderr.contains("banned"), "{stderr}");
}

/// A genuine peer that sends one piece every 9 s is the only peer (the server's seed is off),
/// and the server's link is slow (3 Mbit/s): the fetch does not wait on the trickle but tops
/// up over HTTP, and finishes within twice the time HTTP alone takes on the same link.
#[test]
fn a_peer_trickling_a_piece_every_9_s_does_not_hold_the_fetch_back() {
    if !require_root("a_peer_trickling_a_piece_every_9_s_does_not_hold_the_fetch_back") {
        return;
    }
    let (dir, ns, server) = solo("fetch-trickle", "seed = false");
    // Loopback's 64 KiB frames would not fit the shaper's burst.
    ns.ip(&["link", "set", "lo", "mtu", "1500"]).unwrap();
    ns.shape("lo", "3mbit").unwrap();
    let image = Image::new(4 << 20);
    let rootfs_sha = image.add(&server, dir.path(), "img");
    let key = server.public_key().unwrap();

    // HTTP alone: no peer at all, and no wait for one.
    let stats_path = dir.path().join("stats.json");
    let started = Instant::now();
    let r = fetch(&ns, "http://127.0.0.1:8080", "img", &dir.path().join("alone"), &key, &["--stall-timeout", "0s", "--stats", stats_path.to_str().unwrap()]);
    let http_alone = started.elapsed();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(stats(&stats_path)["from_http"].as_u64(), Some(image.total()));

    let meta = swarmboot_torrent::Metainfo::parse(&http_get(&ns, "127.0.0.1:8080", &format!("/torrent/{rootfs_sha}.torrent"))).unwrap();
    let listener = ns.enter(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let trickle = TricklePeer::start(listener, meta.info_hash, meta.piece_length, image.rootfs.clone(), Duration::from_secs(9)).unwrap();
    let reply = http_get(&ns, "127.0.0.1:8080", &trickle.announce_path(&meta.info_hash));
    assert!(!reply.starts_with(b"d14:failure"), "{}", String::from_utf8_lossy(&reply));

    // With the trickling peer, the fetch's own defaults (a 10 s stall watch).
    let out = dir.path().join("out");
    let started = Instant::now();
    let mut child = ns
        .command(bin("swarmboot"))
        .args(["fetch", "--server", "http://127.0.0.1:8080", "--image", "img", "--key", &key, "--stats", stats_path.to_str().unwrap(), "--out"])
        .arg(&out)
        .env("SWARMBOOT_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let budget = 2 * http_alone;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > budget {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the fetch beside a trickling peer took more than {budget:?}, twice HTTP alone ({http_alone:?}); the peer had sent {} blocks",
                trickle.stats.blocks_sent.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    image.check(&out);
    let s = stats(&stats_path);
    let blocks = trickle.stats.blocks_sent.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "HTTP alone {:.1} s; beside a peer trickling a {} KiB piece every 9 s: {:.1} s ({blocks} blocks from it); {s}",
        http_alone.as_secs_f64(),
        meta.piece_length >> 10,
        took.as_secs_f64()
    );
    assert!(blocks > 0 && s["from_peers"].as_u64().unwrap() > 0, "the trickling peer was used: {s}");
    assert_eq!(s["fallback"].as_bool(), Some(true), "{s}");
    assert!(stderr.contains("the swarm is too slow"), "{stderr}");
}
