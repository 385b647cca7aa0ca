//! elchOS nodes checking in with `swarmboot serve` over real HTTP (curl), no VM. First the
//! test is the node, signing its check-ins with a key of its own as the node agent does: the
//! registry lists the node with its disks and shares, keeps its MAC for its key while it is
//! live, refuses replays and forgeries, takes an operator's command to the node and its
//! acknowledgement back, survives a restart, and marks a silent node lost. Then the agent
//! binary itself: its shares over HTTP, its check-ins and commands with a real server, and
//! its refusals of bad commands from a scripted one. (elchOS on VMs: `elchos.rs`.)

use std::path::Path;
use std::time::Duration;

use swarmboot_checkin::command::{Ack, Action, Gate};
use swarmboot_checkin::report::{seal, CheckIn, CheckInReply, Disk, Seeding, Served, Share, SIGNATURE_HEADER};
use swarmboot_lab::{require_root, Netns, ScratchDir, Server};
use swarmboot_manifest::SigningKey;

const MAC: &str = "52:54:00:c0:ff:01";

fn checkin(key: &SigningKey, counter: u64) -> CheckIn {
    CheckIn {
        mac: MAC.into(),
        node_key: key.public().to_hex(),
        counter,
        image: "elchos@2".into(),
        uptime_secs: counter * 30,
        leaving: false,
        disks: vec![
            Disk {
                device: "/dev/vdb1".into(),
                fstype: Some("ext4".into()),
                label: Some("music".into()),
                size: 64 << 20,
                used: Some(10 << 20),
                mounted_at: Some("/srv/elchos/music".into()),
                why_not: None,
                donated: false,
            },
            Disk {
                device: "/dev/vdc".into(),
                fstype: Some("crypto_LUKS".into()),
                label: None,
                size: 32 << 20,
                used: None,
                mounted_at: None,
                why_not: Some("encrypted (LUKS): the node has no key".into()),
                donated: false,
            },
        ],
        shares: vec![Share { name: "music".into(), path: "/srv/elchos/music".into(), urls: vec!["http://10.77.0.100/music/".into(), "ftp://10.77.0.100/music/".into()] }],
        served: vec![
            Served { protocol: "http".into(), share: "music".into(), bytes: 1234, requests: 2 },
            Served { protocol: "ftp".into(), share: "music".into(), bytes: 66, requests: 1 },
        ],
        seeding: Seeding { torrents: 1, peers: 3, uploaded: 4096 },
        acks: Vec::<Ack>::new(),
    }
}

/// A server alone on the namespace's loopback (HTTP on 8080), nodes checking in every second
/// and lost after 3 missed.
fn server_checking_in_every_second(ns: &Netns, dir: &Path) -> Server {
    let cfg = format!(
        "[server]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"127.0.0.1:8080\"\n[swarm]\nlisten = \"127.0.0.1:6881\"\n[nodes]\ncheckin_interval = \"1s\"\nmissed_before_lost = 3\n",
        dir.join("state").display()
    );
    Server::start(ns, dir, &cfg, 8080).unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// POSTs a check-in with curl from inside `ns`; (HTTP status, body).
fn post(ns: &Netns, dir: &Path, body: &[u8], signature: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = signature.map(|s| (SIGNATURE_HEADER, s)).into_iter().collect();
    post_to(ns, dir, "/api/v1/checkin", body, &headers)
}

/// POSTs `body` (JSON) to the server's `path` from inside `ns`; (HTTP status, body).
fn post_to(ns: &Netns, dir: &Path, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    ns.curl(dir, "POST", &format!("http://127.0.0.1:8080{path}"), Some(body), headers)
}

#[test]
fn nodes_check_in_are_listed_keep_their_mac_and_are_lost_when_silent() {
    if !require_root("nodes_check_in_are_listed_keep_their_mac_and_are_lost_when_silent") {
        return;
    }
    let dir = ScratchDir::new("nodes").unwrap();
    let ns = Netns::new("n").unwrap();
    let mut server = server_checking_in_every_second(&ns, dir.path());
    let (node, impostor) = (SigningKey::from_seed([21; 32]), SigningKey::from_seed([22; 32]));

    let (body, sig) = seal(&node, &checkin(&node, 1));
    let (code, reply) = post(&ns, dir.path(), &body, Some(&sig));
    assert_eq!(code, 200, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!((reply["interval_secs"].as_u64(), reply["commands"].as_array().map(Vec::len)), (Some(1), Some(0)), "{reply}");

    // Unsigned, tampered, another key for the live MAC, a replay: each refused, saying why.
    let (code, said) = post(&ns, dir.path(), &body, None);
    assert!(code == 400 && said.contains(SIGNATURE_HEADER), "{code} {said}");
    let tampered = String::from_utf8(body.clone()).unwrap().replace("elchos@2", "elchos@9");
    let (code, said) = post(&ns, dir.path(), tampered.as_bytes(), Some(&sig));
    assert!(code == 400 && said.contains("does not verify"), "{code} {said}");
    let (ibody, isig) = seal(&impostor, &checkin(&impostor, 1));
    let (code, said) = post(&ns, dir.path(), &ibody, Some(&isig));
    assert!(code == 409 && said.contains("is a live node with another key"), "{code} {said}");
    let (code, said) = post(&ns, dir.path(), &body, Some(&sig));
    assert!(code == 409 && said.contains("replayed"), "{code} {said}");

    // The operator's view.
    let list = server.cli(&["node", "list"]).unwrap();
    let row = list.lines().find(|l| l.starts_with(MAC)).unwrap_or_else(|| panic!("{list}"));
    for word in ["live", "elchos@2", "1/2", "1300"] {
        assert!(row.split_whitespace().any(|w| w == word), "{word} in {row:?}");
    }
    let json: serde_json::Value = serde_json::from_str(&server.cli(&["node", "list", "--json"]).unwrap()).unwrap();
    assert_eq!(json[0]["disks"][1]["why_not"], "encrypted (LUKS): the node has no key", "{json}");
    let show = server.cli(&["node", "show", MAC]).unwrap();
    for line in ["mounted read-only at /srv/elchos/music", "not mounted: encrypted (LUKS)", "http://10.77.0.100/music/", &format!("node key {}", node.public().fingerprint())] {
        assert!(show.contains(line), "{line} in:\n{show}");
    }
    let metrics = server.metrics().unwrap();
    for line in [
        "swarmboot_nodes{state=\"live\"} 1",
        "swarmboot_node_checkins_total 1",
        "swarmboot_node_checkins_bad_total 2",
        "swarmboot_node_checkins_refused_total 2",
        "swarmboot_nodes_served_bytes{protocol=\"http\"} 1234",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // An operator's command reaches the node with its next check-in, signed for this boot;
    // the node's gate (the server key from its image) lets it through once; its ack is kept.
    // The CLI reaches the server on 127.0.0.1: it runs in the server's namespace, as on its host.
    let command = |args: &[&str]| ns.command(swarmboot_lab::bin("swarmboot")).args(["node", "command"]).args(args).arg("--config").arg(&server.config).output().unwrap();
    let out = command(&[MAC, "rescan-disks"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{MAC}: command 1 (rescan-disks)")), "{said}");
    let server_key = swarmboot_manifest::PublicKey::from_hex(&server.public_key().unwrap()).unwrap();
    let mut gate = Gate::new(server_key, MAC, &node.public().fingerprint());
    let (body2, sig2) = seal(&node, &checkin(&node, 2));
    let (code, reply) = post(&ns, dir.path(), &body2, Some(&sig2));
    let reply: CheckInReply = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{code} {reply}: {e}"));
    assert_eq!(reply.commands.len(), 1, "{reply:?}");
    let c = gate.admit(&reply.commands[0], unix_now()).unwrap();
    assert_eq!((c.seq, c.action), (1, Action::RescanDisks));
    gate.done(1, Ok(()));
    let (body3, sig3) = seal(&node, &CheckIn { acks: gate.pending_acks().to_vec(), ..checkin(&node, 3) });
    let (code, reply) = post(&ns, dir.path(), &body3, Some(&sig3));
    let reply: CheckInReply = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{code} {reply}: {e}"));
    assert_eq!((reply.acks_taken, reply.commands.len()), (1, 0));
    assert!(server.cli(&["node", "show", MAC]).unwrap().contains("command 1 rescan-disks: done"));
    // An order not signed with the server's key is refused; so is a command for no node.
    let forged = swarmboot_checkin::order::Order { target: "all".into(), action: Action::Reboot, issued: unix_now(), id: "f0".into() };
    let (obody, osig) = swarmboot_checkin::order::seal(&impostor, &forged);
    let (code, said) = post_to(&ns, dir.path(), "/api/v1/orders", &obody, &[(swarmboot_checkin::order::SIGNATURE_HEADER, &osig)]);
    assert!(code == 403 && said.contains("not signed with this server's key"), "{code} {said}");
    let none = command(&["52:54:00:00:00:99", "reboot"]);
    assert!(!none.status.success() && String::from_utf8_lossy(&none.stderr).contains("no node 52:54:00:00:00:99 has checked in"), "{none:?}");

    // A restart keeps the registry: the replay is still one, the next check-in is taken.
    server.restart(&ns).unwrap();
    assert_eq!(post(&ns, dir.path(), &body3, Some(&sig3)).0, 409);
    let (body4, sig4) = seal(&node, &checkin(&node, 4));
    assert_eq!(post(&ns, dir.path(), &body4, Some(&sig4)).0, 200);
    assert!(server.cli(&["node", "show", MAC]).unwrap().contains("command 1 rescan-disks: done"), "the outcome survived");

    // Silent for more than 3 intervals: lost, and the next boot's key takes the MAC.
    std::thread::sleep(Duration::from_millis(4200));
    let list = server.cli(&["node", "list"]).unwrap();
    assert!(list.lines().any(|l| l.starts_with(MAC) && l.split_whitespace().nth(1) == Some("lost")), "{list}");
    assert!(server.metrics().unwrap().lines().any(|l| l == "swarmboot_nodes{state=\"lost\"} 1"));
    assert_eq!(post(&ns, dir.path(), &ibody, Some(&isig)).0, 200);
    assert!(server.cli(&["node", "show", MAC]).unwrap().contains(&impostor.public().fingerprint()));
}

/// The node agent's HTTP shares with real curl: listings, HEAD, ranges, content types; paths
/// that climb out and links on the disk that lead out (absolute, relative) answer 400/404
/// while a link inside the share works; bytes served are counted and kept across a restart.
#[test]
fn a_nodes_shares_serve_over_http_and_never_leave_the_share() {
    if !require_root("a_nodes_shares_serve_over_http_and_never_leave_the_share") {
        return;
    }
    use swarmboot_lab::{bin, Proc};
    let dir = ScratchDir::new("node-http").unwrap();
    let ns = Netns::new("nh").unwrap();
    let share = dir.path().join("disk");
    std::fs::create_dir_all(share.join("sub dir")).unwrap();
    std::fs::write(dir.path().join("secret"), b"the node's own file").unwrap();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(share.join("sub dir/big.bin"), &big).unwrap();
    std::fs::write(share.join("<b>notes.txt"), b"hello\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), share.join("absolute")).unwrap();
    std::os::unix::fs::symlink("../secret", share.join("relative")).unwrap();
    std::os::unix::fs::symlink("sub dir/big.bin", share.join("inside")).unwrap();
    let start = |n: u32| {
        let mut cmd = ns.command(bin("swarmboot-node"));
        cmd.args(["--listen", "127.0.0.1:8090", "--image", "elchos@1", "--share"]).arg(format!("music={}", share.display())).arg("--state").arg(dir.path().join("state"));
        let p = Proc::spawn("swarmboot-node", &mut cmd, &dir.path().join(format!("node-{n}.log"))).unwrap();
        swarmboot_lab::wait_for_line(&dir.path().join(format!("node-{n}.log")), "swarmboot-node serving", Duration::from_secs(10)).unwrap();
        p
    };
    let mut node = start(0);
    let curl = |args: &[&str], path: &str| -> (String, Vec<u8>) {
        let out = ns.command("curl").args(["-s", "--path-as-is", "-w", "\n%{http_code} %{content_type}"]).args(args).arg(format!("http://127.0.0.1:8090{path}")).output().unwrap();
        let split = out.stdout.iter().rposition(|&b| b == b'\n').unwrap();
        (String::from_utf8_lossy(&out.stdout[split + 1..]).into_owned(), out.stdout[..split].to_vec())
    };
    let (code, listing) = curl(&[], "/music/");
    let listing = String::from_utf8_lossy(&listing).into_owned();
    assert_eq!(code, "200 text/html; charset=utf-8");
    assert!(listing.contains("href=\"sub%20dir/\"") && listing.contains("&lt;b&gt;notes.txt") && !listing.contains("<b>notes"), "{listing}");
    assert_eq!(curl(&[], "/music/%3Cb%3Enotes.txt"), ("200 text/plain; charset=utf-8".into(), b"hello\n".to_vec()));
    assert_eq!(curl(&[], "/music/sub%2Fdir%2Fbig.bin").0, "400 text/plain; charset=utf-8", "an encoded / is no separator");
    assert_eq!(curl(&[], "/music/sub%20dir/big.bin"), ("200 application/octet-stream".into(), big.clone()));
    assert_eq!(curl(&[], "/music/inside").1, big, "a link inside the share works");
    assert_eq!(curl(&["-r", "1000-1999"], "/music/sub%20dir/big.bin"), ("206 application/octet-stream".into(), big[1000..2000].to_vec()));
    assert!(curl(&["-r", "2000000-"], "/music/sub%20dir/big.bin").0.starts_with("416"));
    let head = ns.command("curl").args(["-sI", "http://127.0.0.1:8090/music/sub%20dir/big.bin"]).output().unwrap();
    assert!(String::from_utf8_lossy(&head.stdout).contains("content-length: 1000000"), "{}", String::from_utf8_lossy(&head.stdout));
    for escape in ["/music/absolute", "/music/relative", "/music/../secret", "/music/%2e%2e/secret", "/music/sub%20dir/../../secret", "/nothing/"] {
        let (code, body) = curl(&[], escape);
        assert!(code.starts_with("400") || code.starts_with("404"), "{escape}: {code}");
        assert!(!String::from_utf8_lossy(&body).contains("the node's own file"), "{escape}");
    }
    // Counted: the notes (6 bytes), big.bin twice (by its name and through the link), one
    // range; nothing for the listing, HEAD or refusals.
    std::thread::sleep(Duration::from_millis(5500));
    let status: serde_json::Value = serde_json::from_slice(&curl(&[], "/api/v1/status").1).unwrap();
    assert_eq!(status["served"][0]["bytes"], 6 + 2 * 1_000_000 + 1000, "{status}");
    assert_eq!(status["served"][0]["requests"], 4, "{status}");
    let page = String::from_utf8_lossy(&curl(&[], "/").1).into_owned();
    assert!(page.contains("image <b>elchos@1</b>") && page.contains("http://127.0.0.1:8090/music/"), "{page}");
    // The status page in a real browser: its DOM, and a screenshot for people to look at.
    let dom = swarmboot_lab::browser::dom(Some(&ns), "http://127.0.0.1:8090/").unwrap();
    assert!(dom.contains("<h1>elchOS node") && dom.contains("<td>http</td><td>music</td><td class=\"n\" title=\"2001006 bytes\">1.9 MiB</td><td class=\"n\">4</td>"), "{dom}");
    let png = swarmboot_lab::browser::screenshot_dir().join("node-status.png");
    swarmboot_lab::browser::screenshot(Some(&ns), "http://127.0.0.1:8090/", &png, 900, 700).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 5_000, "a page was drawn: {}", png.display());
    eprintln!("the node's status page: {}", png.display());
    // Kept across a restart of the agent.
    node.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node.exited() {
        assert!(std::time::Instant::now() < deadline, "the agent stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _node = start(1);
    let status: serde_json::Value = serde_json::from_slice(&curl(&[], "/api/v1/status").1).unwrap();
    assert_eq!(status["served"][0]["bytes"], 6 + 2 * 1_000_000 + 1000, "{status}");
}

/// The agent binary in `ns` on 127.0.0.1:8090, sharing `share` as `music`, checking in with
/// `server` as `mac`, trusting the key in `key_file`; its log in `dir/node.log`.
fn agent(ns: &Netns, dir: &Path, server: &str, key_file: &Path, share: &Path, mac: &str, extra: &[&str]) -> swarmboot_lab::Proc {
    let mut cmd = ns.command(swarmboot_lab::bin("swarmboot-node"));
    cmd.args(["--listen", "127.0.0.1:8090", "--image", "elchos@1", "--server", server, "--mac", mac, "--share"])
        .arg(format!("music={}", share.display()))
        .arg("--key-file")
        .arg(key_file)
        .arg("--state")
        .arg(dir.join("node-state"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .args(extra);
    swarmboot_lab::Proc::spawn("swarmboot-node", &mut cmd, &dir.join("node.log")).unwrap()
}

/// The node agent against a real server: it checks in (listed live with its share), carries
/// out `stop-sharing` (the share is gone, the ack is kept), and for `reboot` acknowledges in a
/// leaving check-in, then runs its reboot command; the server shows the node as left.
#[test]
fn a_node_agent_checks_in_and_carries_out_the_servers_commands() {
    if !require_root("a_node_agent_checks_in_and_carries_out_the_servers_commands") {
        return;
    }
    use swarmboot_lab::bin;
    let dir = ScratchDir::new("node-agent").unwrap();
    let ns = Netns::new("na").unwrap();
    let server = server_checking_in_every_second(&ns, dir.path());
    let key_file = dir.path().join("server.key");
    std::fs::write(&key_file, server.public_key().unwrap()).unwrap();
    let share = dir.path().join("disk");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("song.ogg"), b"la la la").unwrap();
    let mac = "52:54:00:c0:ff:02";
    let rebooted = dir.path().join("rebooted");
    let _agent = agent(&ns, dir.path(), "http://127.0.0.1:8080", &key_file, &share, mac, &["--reboot-command", &format!("touch {}", rebooted.display())]);
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(std::time::Instant::now() < deadline, "{what} within 20 s; node log:\n{}", std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let row = || server.cli(&["node", "list"]).unwrap_or_default().lines().find(|l| l.starts_with(mac)).map(str::to_string).unwrap_or_default();
    wait("the node listed live", &|| row().split_whitespace().nth(1) == Some("live"));
    assert!(server.cli(&["node", "show", mac]).unwrap().contains("http://127.0.0.1:8090/music/"));
    let get = |path: &str| ns.command("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).arg(format!("http://127.0.0.1:8090{path}")).output().unwrap().stdout;
    assert_eq!(get("/music/song.ogg"), b"200");

    let command = |args: &[&str]| {
        let out = ns.command(bin("swarmboot")).args(["node", "command"]).args(args).arg("--config").arg(&server.config).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    command(&[mac, "stop-sharing", "music"]);
    wait("the share gone", &|| get("/music/song.ogg") == b"404");
    wait("the ack kept", &|| server.cli(&["node", "show", mac]).unwrap_or_default().contains("stop-sharing music: done"));

    command(&[mac, "reboot"]);
    wait("the reboot command run", &|| rebooted.exists());
    assert_eq!(row().split_whitespace().nth(1), Some("left"), "{}", row());
    assert!(server.cli(&["node", "show", mac]).unwrap().contains("reboot: done"));
}

/// Reads one HTTP request (head and `Content-Length` body) from `s`: (head, body).
fn read_request(s: &mut std::net::TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let split = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    let mut body = buf[split + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

/// The real agent against a scripted server that holds the key the agent trusts: its first
/// reply carries a command signed by another key, one past its expiry, one for another boot's
/// key, a good one, and the good one again. The agent carries out the good one once and
/// acknowledges each of the others as refused with its reason in its next check-in; the share
/// the forged command names is still served.
#[test]
fn the_agent_refuses_forged_expired_misdirected_and_replayed_commands_and_says_why() {
    if !require_root("the_agent_refuses_forged_expired_misdirected_and_replayed_commands_and_says_why") {
        return;
    }
    use std::io::Write;
    use swarmboot_checkin::command::{Command, SignedCommand};
    let dir = ScratchDir::new("node-refuses").unwrap();
    let ns = Netns::new("nr").unwrap();
    let server_key = SigningKey::from_seed([5; 32]);
    let key_file = dir.path().join("server.pub");
    std::fs::write(&key_file, format!("public key {}\n", server_key.public().to_hex())).unwrap();
    let share = dir.path().join("disk");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("song.ogg"), b"la la la").unwrap();
    let mac = "52:54:00:c0:ff:03";
    let listener = ns.enter(|| std::net::TcpListener::bind("127.0.0.1:8081").unwrap()).unwrap();
    let acks: std::sync::Arc<std::sync::Mutex<Vec<Ack>>> = Default::default();
    let seen = acks.clone();
    std::thread::spawn(move || {
        let mut first = true;
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let Ok((head, body)) = read_request(&mut s) else { continue };
            let signature = head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(SIGNATURE_HEADER)).map(|(_, v)| v.trim().to_string()));
            let Ok((c, node_key)) = swarmboot_checkin::report::open(&body, signature.as_deref()) else { continue };
            seen.lock().unwrap().extend(c.acks.iter().cloned());
            let mut commands = vec![];
            if first {
                first = false;
                let now = unix_now();
                let cmd = |seq: u64, node: String, expires: u64, action: Action| Command { seq, mac: c.mac.clone(), node_key: node, issued: now, expires, action };
                let this = node_key.fingerprint();
                let other_boot = SigningKey::from_seed([6; 32]).public().fingerprint();
                let stop = Action::StopSharing { share: "music".into() };
                let good = SignedCommand::sign(&server_key, &cmd(4, this.clone(), now + 600, Action::BootNext { image: "elchos@2".into() }));
                commands = vec![
                    SignedCommand::sign(&SigningKey::from_seed([7; 32]), &cmd(1, this.clone(), now + 600, stop.clone())),
                    SignedCommand::sign(&server_key, &cmd(2, this.clone(), now - 60, stop.clone())),
                    SignedCommand::sign(&server_key, &cmd(3, other_boot, now + 600, stop)),
                    good.clone(),
                    good,
                ];
            }
            let reply = serde_json::to_vec(&CheckInReply { interval_secs: 1, acks_taken: c.acks.len(), commands, adc_port: None }).unwrap();
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", reply.len());
            let _ = s.write_all(&reply);
        }
    });
    let _agent = agent(&ns, dir.path(), "http://127.0.0.1:8081", &key_file, &share, mac, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acks.lock().unwrap().len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "5 acknowledgements within 20 s: {:?}\n{}",
            acks.lock().unwrap(),
            std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let acks = acks.lock().unwrap().clone();
    let outcome = |seq: Option<u64>, starts: &str| acks.iter().filter(|a| a.seq == seq && a.outcome.starts_with(starts)).count();
    assert_eq!(outcome(None, "refused: not signed by the server's key"), 1, "forged: {acks:#?}");
    assert_eq!(outcome(Some(2), "refused: expired at"), 1, "expired: {acks:#?}");
    assert_eq!(outcome(None, "refused: for 52:54:00:c0:ff:03"), 1, "another boot's (nothing it says is about this node): {acks:#?}");
    assert_eq!(outcome(Some(4), "done"), 1, "the good one, once: {acks:#?}");
    assert_eq!(outcome(Some(4), "refused: command 4 was let through or refused already"), 1, "replayed: {acks:#?}");
    assert_eq!(acks.len(), 5, "{acks:#?}");
    let code = ns.command("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8090/music/song.ogg"]).output().unwrap().stdout;
    assert_eq!(code, b"200", "the forged stop-sharing did not stop the share");
}

/// `[adc] enable = true`: the server writes uhub's configuration (which uhub itself accepts:
/// `uhub -C`), runs Debian's uhub, and the hub answers an ADC client's handshake (`HSUP` →
/// `ISUP`, a session id); the server's SIGTERM stops the hub too.
#[test]
fn the_server_runs_an_adc_hub_that_answers_adc_clients() {
    if !require_root("the_server_runs_an_adc_hub_that_answers_adc_clients") {
        return;
    }
    use std::io::{BufRead, Write};
    let dir = ScratchDir::new("adc-hub").unwrap();
    let ns = Netns::new("adc").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"127.0.0.1:8080\"\n[swarm]\nlisten = \"127.0.0.1:6881\"\n[adc]\nenable = true\nlisten = \"127.0.0.1:1511\"\nmax_users = 50\nhub_name = \"lab hub\"\n",
        dir.path().join("state").display()
    );
    let mut server = Server::start(&ns, dir.path(), &cfg, 8080).unwrap();
    let conf = dir.path().join("state/uhub.conf");
    let check = std::process::Command::new("uhub").arg("-C").arg("-c").arg(&conf).output().unwrap();
    assert!(check.status.success(), "uhub -C: {}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let handshake = || {
        ns.enter(|| -> Result<Vec<String>, String> {
            let s = std::net::TcpStream::connect("127.0.0.1:1511").map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
            (&s).write_all(b"HSUP ADBASE ADTIGR\n").map_err(|e| e.to_string())?;
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(&s).lines() {
                let line = line.map_err(|e| e.to_string())?;
                let sid = line.starts_with("ISID ");
                lines.push(line);
                if sid {
                    break;
                }
            }
            Ok(lines)
        })
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let lines = loop {
        match handshake() {
            Ok(l) => break l,
            Err(e) => assert!(std::time::Instant::now() < deadline, "the hub did not answer within 15 s ({e}):\n{}", server.log()),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("the hub said: {lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("ISUP ") && l.contains("ADBASE")), "{lines:?}");
    assert!(lines.last().is_some_and(|l| l.len() == "ISID AAAA".len()), "{lines:?}");
    server.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while handshake().is_ok() {
        assert!(std::time::Instant::now() < deadline, "the hub still answers after the server stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill9();
}
