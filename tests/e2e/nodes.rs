//! elchOS nodes checking in with `swarmboot serve` over real HTTP (curl). No VM: the test is
//! the node, and signs its check-ins with a key of its own as the node agent does. The
//! registry lists the node with its disks and shares, keeps its MAC for its key while it is
//! live, refuses replays and forgeries, survives a restart, and marks a silent node lost.

use std::path::Path;
use std::time::Duration;

use swarmboot_checkin::command::Ack;
use swarmboot_checkin::report::{seal, CheckIn, Disk, Seeding, Served, Share, SIGNATURE_HEADER};
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

/// POSTs a check-in with curl from inside `ns`; (HTTP status, body).
fn post(ns: &Netns, dir: &Path, body: &[u8], signature: Option<&str>) -> (u16, String) {
    let file = dir.join("checkin.json");
    std::fs::write(&file, body).unwrap();
    let mut cmd = ns.command("curl");
    cmd.args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "-H", "content-type: application/json", "--data-binary"]).arg(format!("@{}", file.display()));
    if let Some(sig) = signature {
        cmd.args(["-H", &format!("{SIGNATURE_HEADER}: {sig}")]);
    }
    let out = cmd.arg("http://127.0.0.1:8080/api/v1/checkin").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl: {text}{}", String::from_utf8_lossy(&out.stderr)));
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn nodes_check_in_are_listed_keep_their_mac_and_are_lost_when_silent() {
    if !require_root("nodes_check_in_are_listed_keep_their_mac_and_are_lost_when_silent") {
        return;
    }
    let dir = ScratchDir::new("nodes").unwrap();
    let ns = Netns::new("n").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"127.0.0.1:8080\"\n[swarm]\nlisten = \"127.0.0.1:6881\"\n[nodes]\ncheckin_interval = \"1s\"\nmissed_before_lost = 3\n",
        dir.path().join("state").display()
    );
    let mut server = Server::start(&ns, dir.path(), &cfg, 8080).unwrap();
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

    // A restart keeps the registry: the replay is still one, the next check-in is taken.
    server.restart(&ns).unwrap();
    assert_eq!(post(&ns, dir.path(), &body, Some(&sig)).0, 409);
    let (body2, sig2) = seal(&node, &checkin(&node, 2));
    assert_eq!(post(&ns, dir.path(), &body2, Some(&sig2)).0, 200);

    // Silent for more than 3 intervals: lost, and the next boot's key takes the MAC.
    std::thread::sleep(Duration::from_millis(4200));
    let list = server.cli(&["node", "list"]).unwrap();
    assert!(list.lines().any(|l| l.starts_with(MAC) && l.split_whitespace().nth(1) == Some("lost")), "{list}");
    assert!(server.metrics().unwrap().lines().any(|l| l == "swarmboot_nodes{state=\"lost\"} 1"));
    assert_eq!(post(&ns, dir.path(), &ibody, Some(&isig)).0, 200);
    assert!(server.cli(&["node", "show", MAC]).unwrap().contains(&impostor.public().fingerprint()));
}
