//! Datasets and donors' check-ins against a real server (no VM): datasets added with the CLI
//! are served as signed manifests; a donor's signed check-in over HTTP gets a reply signed for
//! it, with a ticket per dataset to add; shown back, the tickets count; a replay, a forged
//! check-in and a stranger's ticket are refused or not counted, and counted in `/metrics`.

use std::time::{Duration, Instant};

use swarmboot_checkin::donation::{self, DonorCheckIn, DonorHolding, DonorReply, SignedDonorReply, SIGNATURE_HEADER};
use swarmboot_lab::{bin, require_root, Lan, Proc, ScratchDir, Server};
use swarmboot_manifest::{PublicKey, SigningKey};

const URL: &str = "http://10.77.0.1:8080";

#[test]
fn donors_check_in_over_http_and_get_signed_orders_with_tickets() {
    if !require_root("donors_check_in_over_http_and_get_signed_orders_with_tickets") {
        return;
    }
    let dir = ScratchDir::new("datasets").unwrap();
    let lan = Lan::new("10.77.0.1/24").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n[nodes]\ncheckin_interval = \"1s\"\nmissed_before_lost = 3\n",
        dir.path().join("state").display()
    );
    // The datasets first: the server reads them at start.
    let books = dir.path().join("books");
    std::fs::create_dir_all(books.join("Dickens")).unwrap();
    std::fs::write(books.join("Dickens/Great Expectations.pdf"), swarmboot_lab::noise(300_000, 1)).unwrap();
    std::fs::write(books.join("Dickens/Bleak House.pdf"), swarmboot_lab::noise(200_000, 2)).unwrap();
    std::fs::write(dir.path().join("swarmboot.toml"), &cfg).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(swarmboot_lab::bin("swarmboot")).args(args).arg("--config").arg(dir.path().join("swarmboot.toml")).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cli(&["dataset", "add", "books", books.to_str().unwrap(), "--replicas", "1"]);
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080).unwrap();
    let server_key = PublicKey::from_hex(&server.public_key().unwrap()).unwrap();

    // The signed manifest donors fetch by.
    let out = lan.server.command("curl").args(["-sS", "--fail", &format!("{URL}/dataset/books")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (body, _) = swarmboot_manifest::open(&out.stdout, &[server_key]).expect("signed by the server's key");
    let text = String::from_utf8_lossy(body);
    assert!(text.contains("Dickens/Great Expectations.pdf") && text.contains("replicas = 1"), "{text}");

    let donor = SigningKey::from_seed([7; 32]);
    let donor_key = donor.public().to_hex();
    let post = |c: &DonorCheckIn, key: &SigningKey| -> (u16, String) {
        let (body, sig) = donation::seal(key, c);
        lan.server.curl(dir.path(), "POST", &format!("{URL}/api/v1/donor"), Some(&body), &[(SIGNATURE_HEADER, &sig)])
    };
    let reply_to = |c: &DonorCheckIn| -> DonorReply {
        let (code, body) = post(c, &donor);
        assert_eq!(code, 200, "{body}");
        let signed: SignedDonorReply = serde_json::from_str(&body).unwrap();
        donation::open_reply(&signed, &server_key, &donor_key, c.counter).expect("a reply signed for this check-in")
    };
    let mut counter = 1;
    let mut checkin = |holdings: Vec<DonorHolding>| {
        counter += 1;
        DonorCheckIn { donor_key: donor_key.clone(), counter, capacity: 10 << 20, holdings }
    };
    // The server listens for a few intervals after it starts (its table rebuilt from
    // check-ins), then answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let r = reply_to(&checkin(vec![]));
        if !r.add.is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "no dataset placed within 20 s");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(reply.add.len(), 1);
    assert_eq!(reply.add[0].dataset, "books");
    assert_eq!(reply.interval_secs, 1);
    assert!(donation::ticket_valid(&server_key, &donor_key, "books", &reply.add[0].ticket));

    // Shown back with its ticket: held, nothing more to do.
    let holding = vec![DonorHolding { dataset: "books".into(), permille: 1000, ticket: Some(reply.add[0].ticket.clone()) }];
    let shown = checkin(holding.clone());
    let r = reply_to(&shown);
    assert!(r.add.is_empty() && r.remove.is_empty(), "{r:?}");
    // The same check-in again: a replay.
    let (code, body) = post(&shown, &donor);
    assert_eq!(code, 409, "{body}");
    // Signed by another key than it names: refused.
    let (code, _) = post(&checkin(vec![]), &SigningKey::from_seed([8; 32]));
    assert_eq!(code, 400);
    // Another donor showing the first one's ticket: kept as what it says it holds, not
    // counted. The API shows `books` held once: by the first donor.
    let other = SigningKey::from_seed([9; 32]);
    let c = DonorCheckIn { donor_key: other.public().to_hex(), counter: 1, capacity: 10 << 20, holdings: holding };
    let (code, _) = post(&c, &other);
    assert_eq!(code, 200);
    let (code, body) = lan.server.curl(dir.path(), "GET", &format!("{URL}/api/v1/datasets"), None, &[]);
    assert_eq!(code, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let row = &view[0];
    assert_eq!(
        (row["name"].as_str(), row["files"].as_u64(), row["bytes"].as_u64(), row["replicas"].as_u64(), row["holders"].as_u64()),
        (Some("books"), Some(2), Some(500_000), Some(1), Some(1)),
        "{view}"
    );
    assert_eq!(server.metric("swarmboot_donor_checkins_refused_total").unwrap(), 1);
    assert_eq!(server.metric("swarmboot_donor_checkins_bad_total").unwrap(), 1);
    assert!(server.metric("swarmboot_donor_holdings_unvouched_total").unwrap() >= 1);
}

/// `(name, sha256)` of every file under `dir`'s `store/`.
fn stored(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for a in std::fs::read_dir(dir.join("store")).into_iter().flatten().flatten() {
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                let name = f.file_name().into_string().unwrap();
                // The file itself (named by its SHA-256), not its torrent or its `.verified` mark.
                if !name.contains('.') {
                    out.push(name);
                }
            }
        }
    }
    out.sort();
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn donors_running_swarmboot_donate_hold_seed_and_drop_datasets() {
    if !require_root("donors_running_swarmboot_donate_hold_seed_and_drop_datasets") {
        return;
    }
    let dir = ScratchDir::new("donate").unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n[nodes]\ncheckin_interval = \"1s\"\nmissed_before_lost = 3\n",
        dir.path().join("state").display()
    );
    std::fs::write(dir.path().join("swarmboot.toml"), &cfg).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin("swarmboot")).args(args).arg("--config").arg(dir.path().join("swarmboot.toml")).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // Two datasets that share a file; each wants both donors.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (one, shared, two) = (swarmboot_lab::noise(3 << 20, 11), swarmboot_lab::noise(1 << 20, 12), swarmboot_lab::noise(2 << 20, 13));
    std::fs::write(a.join("one.bin"), &one).unwrap();
    std::fs::write(a.join("shared.bin"), &shared).unwrap();
    std::fs::write(b.join("shared.bin"), &shared).unwrap();
    std::fs::write(b.join("two.bin"), &two).unwrap();
    cli(&["dataset", "add", "set-a", a.to_str().unwrap(), "--replicas", "2"]);
    cli(&["dataset", "add", "set-b", b.to_str().unwrap(), "--replicas", "2"]);
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080).unwrap();
    let key = server.public_key().unwrap();

    let (mut procs, mut dirs) = (Vec::new(), Vec::new());
    for i in 0..2 {
        let h = lan.add_host(None).unwrap();
        let host = lan.host(h);
        host.ip(&["addr", "add", &format!("10.77.0.{}/24", 21 + i), "dev", "eth0"]).unwrap();
        let d = dir.path().join(format!("donor{i}"));
        let mut cmd = if i == 0 {
            let mut cmd = host.command(bin("swarmboot"));
            cmd.args(["donate", "--server", URL, "--space", "100M", "--server-key", &key, "--listen", "0.0.0.0:6881", "--dir"]).arg(&d);
            cmd
        } else {
            // The second as the package's service runs it: settings from the package's
            // /etc/default/swarmboot-donate, filled in as its comments ask.
            let defaults = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../debian/swarmboot-donate.default")).unwrap();
            let filled = defaults
                .replace("\nSWARMBOOT_DONATE_SERVER=\n", &format!("\nSWARMBOOT_DONATE_SERVER={URL}\n"))
                .replace("\nSWARMBOOT_DONATE_SERVER_KEY=\n", &format!("\nSWARMBOOT_DONATE_SERVER_KEY={key}\n"))
                .replace("\nSWARMBOOT_DONATE_SPACE=\n", "\nSWARMBOOT_DONATE_SPACE=100M\n")
                .replace("\n# SWARMBOOT_DONATE_DIR=/srv/donated\n", &format!("\nSWARMBOOT_DONATE_DIR={}\n", d.display()))
                .replace("\n# SWARMBOOT_DONATE_LISTEN=0.0.0.0:0\n", "\nSWARMBOOT_DONATE_LISTEN=0.0.0.0:6881\n");
            assert_eq!(filled.lines().filter(|l| l.starts_with("SWARMBOOT_DONATE_")).count(), 5, "the defaults file changed its settings' lines:\n{filled}");
            let file = dir.path().join("swarmboot-donate.default");
            std::fs::write(&file, filled).unwrap();
            let mut cmd = host.command("/bin/sh");
            cmd.args(["-c", "set -a; . \"$0\"; exec \"$1\" donate"]).arg(&file).arg(bin("swarmboot"));
            cmd
        };
        cmd.env("SWARMBOOT_LOG", "info");
        procs.push(Proc::spawn("swarmboot donate", &mut cmd, &dir.path().join(format!("donor{i}.log"))).unwrap());
        dirs.push(d);
    }
    let all = {
        let mut v = vec![sha256_hex(&one), sha256_hex(&shared), sha256_hex(&two)];
        v.sort();
        v
    };
    let wait = |what: &str, secs: u64, ok: &dyn Fn() -> bool, procs: &mut Vec<Proc>| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok() {
            for p in procs.iter_mut() {
                assert!(!p.exited(), "a donor exited:\n{}", p.output());
            }
            assert!(Instant::now() < deadline, "{what} within {secs} s:\n{}\n{}", procs[0].output(), procs[1].output());
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    // Both donors hold both datasets: every file once in each store, byte-identical (named by
    // its SHA-256, checked piece by piece and whole by the fetch), and the server counts them.
    wait(
        "both donors holding both datasets",
        60,
        &|| dirs.iter().all(|d| stored(d) == all && d.join("view/set-b/two.bin").exists() && d.join("view/set-a/one.bin").exists()),
        &mut procs,
    );
    for d in &dirs {
        for sha in &all {
            let p = d.join("store").join(&sha[..2]).join(&sha[..4]).join(sha);
            assert_eq!(&sha256_hex(&std::fs::read(&p).unwrap()), sha);
        }
        assert!(std::fs::read_to_string(d.join("set-a.toml")).unwrap().contains("=one.bin"));
        assert_eq!(std::fs::read(d.join("view/set-a/one.bin")).unwrap(), one, "the view shows each dataset under its files' names");
        assert_eq!(std::fs::read(d.join("view/set-b/shared.bin")).unwrap(), shared);
    }
    let holders = || -> Vec<u64> {
        let (code, body) = lan.server.curl(dir.path(), "GET", &format!("{URL}/api/v1/datasets"), None, &[]);
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array().unwrap().iter().map(|d| d["holders"].as_u64().unwrap()).collect()
    };
    wait("the server counting both donors for both datasets", 10, &|| holders() == [2, 2], &mut procs);

    // A dataset removed: both donors drop it, deleting its own file and keeping the shared one.
    cli(&["dataset", "rm", "set-a"]);
    let left = {
        let mut v = vec![sha256_hex(&shared), sha256_hex(&two)];
        v.sort();
        v
    };
    wait("both donors dropping set-a's own file", 30, &|| dirs.iter().all(|d| stored(d) == left && !d.join("set-a.toml").exists() && !d.join("view/set-a").exists()), &mut procs);
    // A successor of set-b with one more file: the donors take it in set-b's place, fetching
    // only that file through the swarm (what machines report downloading grows by it, twice).
    let three = swarmboot_lab::noise(1 << 20, 14);
    std::fs::write(b.join("three.bin"), &three).unwrap();
    let downloaded_before = server.metric("swarmboot_peers_downloaded_bytes_total").unwrap();
    cli(&["dataset", "add", "set-b2", b.to_str().unwrap(), "--replicas", "2", "--successor-of", "set-b"]);
    let succeeded = {
        let mut v = vec![sha256_hex(&shared), sha256_hex(&two), sha256_hex(&three)];
        v.sort();
        v
    };
    wait(
        "both donors holding set-b2 in set-b's place",
        40,
        &|| dirs.iter().all(|d| stored(d) == succeeded && d.join("set-b2.toml").exists() && !d.join("set-b.toml").exists()),
        &mut procs,
    );
    std::thread::sleep(Duration::from_secs(3)); // the donors' next announces carry their totals
    let downloaded = server.metric("swarmboot_peers_downloaded_bytes_total").unwrap() - downloaded_before;
    eprintln!("donors reported downloading {downloaded_before} bytes for set-a and set-b, then {downloaded} for set-b2 (which adds {} each)", three.len());
    assert!(downloaded_before > 0 && downloaded > 0, "the donors' announces carry what they downloaded");
    assert!(downloaded <= 2 * (three.len() as u64) * 105 / 100, "the donors downloaded {downloaded} bytes for a successor that adds {} each", three.len());
    // Everything came through the swarm: no file bytes over HTTP.
    assert_eq!(server.metric("swarmboot_http_blob_bytes_total").unwrap(), 0);
    for p in &mut procs {
        p.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    }
}
