//! Datasets and donors' check-ins against a real server (no VM): datasets added with the CLI
//! are served as signed manifests; a donor's signed check-in over HTTP gets a reply signed for
//! it, with a ticket per dataset to add; shown back, the tickets count; a replay, a forged
//! check-in and a stranger's ticket are refused or not counted, and counted in `/metrics`.

use std::time::{Duration, Instant};

use swarmboot_checkin::donation::{self, DonorCheckIn, DonorHolding, DonorReply, SignedDonorReply, SIGNATURE_HEADER};
use swarmboot_lab::{require_root, Lan, ScratchDir, Server};
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
