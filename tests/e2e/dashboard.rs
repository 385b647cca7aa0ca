//! The fleet dashboard and its JSON API, with real DHCP clients (busybox udhcpc as the stub's
//! DHCP would ask: class `swarmboot-stub`), stage reports posted from the machines' own
//! namespaces, and a real browser (chromium over WebDriver) that keeps one page open while the
//! fleet changes.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use swarmboot_checkin::report::{seal, CheckIn, Disk, Seeding, Share, SIGNATURE_HEADER};
use swarmboot_lab::clients::Udhcpc;
use swarmboot_lab::webdriver::Browser;
use swarmboot_lab::{require_root, Lan, Netns, Proc, ScratchDir, Server};
use swarmboot_manifest::SigningKey;

/// `curl` from inside `ns`: (HTTP status, body).
pub(crate) fn curl(ns: &Netns, dir: &Path, method: &str, url: &str, body: Option<&[u8]>) -> (u16, String) {
    ns.curl(dir, method, url, body, &[])
}

fn get_json(ns: &Netns, dir: &Path, url: &str) -> Value {
    let (code, body) = curl(ns, dir, "GET", url, None);
    assert_eq!(code, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

fn mac_of(ns: &Netns) -> String {
    let out = ns.command("cat").arg("/sys/class/net/eth0/address").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn report(mac: &str, stage: &str, by: &str, have: u64) -> Vec<u8> {
    json!({ "mac": mac, "stage": stage, "by": by, "image": "lab", "version": 3, "have": have, "total": 100 << 20,
            "from_peers": have / 2, "from_seed": have / 8, "from_http": 0, "uploaded": 0, "peers": 2 })
    .to_string()
    .into_bytes()
}

/// The row of `mac` in the page as the browser shows it now: its cells' text.
fn row_script(mac: &str) -> String {
    format!("const r = document.querySelector('tr[data-mac=\"{mac}\"]'); return r ? Array.from(r.children).map(c => c.textContent.trim()) : null;")
}

/// A node's check-in for `mac` whose disk label and share name are markup.
fn hostile_checkin(key: &SigningKey, mac: &str, counter: u64) -> CheckIn {
    CheckIn {
        mac: mac.into(),
        node_key: key.public().to_hex(),
        counter,
        image: "lab@3".into(),
        uptime_secs: 60,
        leaving: false,
        disks: vec![Disk {
            device: "/dev/vdb1".into(),
            fstype: Some("ext4".into()),
            label: Some(HOSTILE_LABEL.into()),
            size: 64 << 20,
            used: Some(1 << 20),
            mounted_at: Some("/srv/elchos/x".into()),
            why_not: None,
            donated: false,
        }],
        shares: vec![Share { name: HOSTILE_SHARE.into(), path: "/srv/elchos/x".into(), urls: vec!["http://10.77.0.100/x/".into(), "javascript:window.pwned=5".into()] }],
        served: vec![],
        seeding: Seeding { torrents: 1, peers: 0, uploaded: 0 },
        acks: vec![],
    }
}

const HOSTILE_LABEL: &str = "<script>window.pwned=4</script>";
const HOSTILE_SHARE: &str = "\"><img src=x onerror=window.pwned=3>";
const HOSTILE_0: &str = "<script>window.pwned=1</script>";
/// No spaces: busybox cuts option values at whitespace (HTML takes `/` between attributes).
const HOSTILE_1: &str = "\"><img/src=x/onerror=window.pwned=2>";

/// Two machines get leases as the stub would (their hostnames are markup); the dashboard,
/// open in chromium, follows one of them through fetching, handover and running as it reports,
/// without a reload; a report for the other machine's MAC and one from an address that is not
/// the MAC's lease are refused; the hostnames stay text (no script runs); every API endpoint
/// answers its documented shape; screenshots at 1280×800 and phone size.
#[test]
fn the_dashboard_follows_machines_through_their_stages_live_and_shows_hostile_names_as_text() {
    if !require_root("the_dashboard_follows_machines_through_their_stages_live_and_shows_hostile_names_as_text") {
        return;
    }
    let dir = ScratchDir::new("dash").unwrap();
    let mut lan = Lan::new("10.77.0.1/24").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"br0\"\naddress = \"10.77.0.1\"\nstate_dir = \"{}\"\n\
         [dhcp]\nmode = \"authoritative\"\npool = [\"10.77.0.100-10.77.0.199\"]\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n",
        dir.path().join("state").display()
    );
    let server = Server::start(&lan.server, dir.path(), &cfg, 8080).unwrap();
    // Three versions of the image the machines say they boot.
    for v in 1..=3u64 {
        let (kernel, initrd) = (dir.path().join(format!("k{v}")), dir.path().join(format!("i{v}")));
        std::fs::write(&kernel, swarmboot_lab::noise(100_000, v)).unwrap();
        std::fs::write(&initrd, swarmboot_lab::noise(200_000, v + 10)).unwrap();
        server.cli(&["image", "add", "lab", "--kernel", kernel.to_str().unwrap(), "--initrd", initrd.to_str().unwrap()]).unwrap();
    }
    let (h0, h1) = (lan.add_host(None).unwrap(), lan.add_host(None).unwrap());
    let (host0, host1) = (lan.host(h0), lan.host(h1));
    let (mac0, mac1) = (mac_of(host0), mac_of(host1));
    let c0 = Udhcpc::start(host0, dir.path(), "h0", &["-V", "swarmboot-stub", "-x", &format!("hostname:{HOSTILE_0}")]).unwrap();
    let c1 = Udhcpc::start(host1, dir.path(), "h1", &["-V", "swarmboot-stub", "-x", &format!("hostname:{HOSTILE_1}")]).unwrap();
    let ip0 = c0.wait("bound", 0, Duration::from_secs(20)).unwrap().ip().to_string();
    let ip1 = c1.wait("bound", 0, Duration::from_secs(20)).unwrap().ip().to_string();

    let browser = Browser::start(Some(&lan.server), &dir.path().join("chromedriver.log"), 1280, 800).unwrap();
    browser.goto("http://127.0.0.1:8080/").unwrap();
    browser.eval("window.keptSinceLoad = 1; return 1").unwrap();
    let stub_rows = format!("const a = document.querySelector('tr[data-mac=\"{mac0}\"] td.stage'), b = document.querySelector('tr[data-mac=\"{mac1}\"] td.stage'); return a && b && a.textContent.startsWith('stub') && b.textContent.startsWith('stub');");
    browser.wait_for(&stub_rows, Duration::from_secs(20)).unwrap();

    // Host 0 reports as its stub would; host 1 tries to report for host 0.
    let api = "http://10.77.0.1:8080/api/v1/report";
    let (code, body) = curl(host0, dir.path(), "POST", api, Some(&report(&mac0, "fetching", "stub", 45 << 20)));
    assert_eq!(code, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["interval_secs"], 30);
    let (code, body) = curl(host1, dir.path(), "POST", api, Some(&report(&mac0, "handover", "stub", 100 << 20)));
    assert_eq!(code, 403, "a report for another machine's MAC: {body}");
    assert!(body.contains(&format!("is leased to {mac1}, not to {mac0}")), "{body}");
    let (code, body) = curl(&lan.server, dir.path(), "POST", "http://10.77.0.1:8080/api/v1/report", Some(&report(&mac1, "fetching", "stub", 1)));
    assert_eq!(code, 403, "a report from an address that is not the MAC's lease: {body}");
    assert!(body.contains(&format!("holds the lease of {ip1}")), "{body}");
    let (code, body) = curl(host0, dir.path(), "POST", api, Some(b"{\"mac\":\"nope\"}"));
    assert_eq!(code, 400, "{body}");
    let (code, _) = curl(host0, dir.path(), "POST", api, Some(&vec![b' '; 4096]));
    assert_eq!(code, 413, "a body over the report bound");

    // The open page follows, without a reload.
    let fetching = format!("const c = document.querySelector('tr[data-mac=\"{mac0}\"] td.stage'); return c && c.textContent.includes('45%');");
    browser.wait_for(&fetching, Duration::from_secs(20)).unwrap();
    let cells = browser.eval(&row_script(&mac0)).unwrap();
    assert_eq!(cells[0], mac0.as_str());
    assert_eq!(cells[1], HOSTILE_0, "the hostname is shown as the text it is");
    assert_eq!(cells[2], ip0.as_str());
    assert_eq!(cells[3], "lab@3");
    let shot = swarmboot_lab::browser::screenshot_dir();
    browser.screenshot(&shot.join("dashboard-fleet-fetching.png")).unwrap();
    for (stage, by) in [("handover", "stub"), ("running", "system")] {
        let (code, body) = curl(host0, dir.path(), "POST", api, Some(&report(&mac0, stage, by, 100 << 20)));
        assert_eq!(code, 200, "{stage}: {body}");
        let seen = format!("const c = document.querySelector('tr[data-mac=\"{mac0}\"] td.stage'); return c && c.textContent.startsWith('{stage}');");
        browser.wait_for(&seen, Duration::from_secs(20)).unwrap();
    }
    assert_eq!(browser.eval("return window.keptSinceLoad").unwrap(), 1, "the page was never reloaded");
    assert_eq!(browser.eval("return window.pwned === undefined").unwrap(), true, "no reported name ran as script");
    let cells1 = browser.eval(&row_script(&mac1)).unwrap();
    assert_eq!(cells1[1], HOSTILE_1);
    let counts = browser.eval("return Array.from(document.querySelectorAll('ul.stages li')).map(l => l.textContent)").unwrap();
    assert!(counts.as_array().unwrap().iter().any(|c| c == "1 running") && counts.as_array().unwrap().iter().any(|c| c == "1 stub"), "{counts}");

    // The filter works in the open page (typing updates the address and the table).
    browser.eval("const q = document.querySelector('input[name=q]'); q.value = 'lab@3'; q.dispatchEvent(new Event('input', {bubbles: true})); return 1").unwrap();
    browser.wait_for("return document.querySelectorAll('table#fleet tbody tr').length === 1", Duration::from_secs(10)).unwrap();
    assert!(browser.url().unwrap().contains("q=lab%403"), "{}", browser.url().unwrap());
    browser.screenshot(&shot.join("dashboard-fleet-1280x800.png")).unwrap();

    // The machine's page: its boot, stage by stage.
    browser.goto(&format!("http://127.0.0.1:8080/machines/{mac0}")).unwrap();
    let stages = browser.eval("return Array.from(document.querySelectorAll('table.boot tbody th')).map(t => t.textContent)").unwrap();
    assert_eq!(stages, json!(["stub", "fetching", "handover", "running"]));
    assert_eq!(browser.eval("return window.pwned === undefined").unwrap(), true);
    assert_eq!(browser.eval("return document.querySelector('form.command') === null").unwrap(), true, "no agent: no command form");

    // An agent checks in for host 0 (from its lease): its hostile disk label and share name
    // show as text; acting needs the token.
    let key = SigningKey::from_seed([31; 32]);
    let (body, sig) = seal(&key, &hostile_checkin(&key, &mac0, 1));
    let checkin_url = "http://10.77.0.1:8080/api/v1/checkin";
    let (code, reply) = host1.curl(dir.path(), "POST", checkin_url, Some(&body), &[(SIGNATURE_HEADER, &sig)]);
    assert_eq!(code, 403, "a check-in for host 0 from host 1's lease: {reply}");
    let (code, reply) = host0.curl(dir.path(), "POST", checkin_url, Some(&body), &[(SIGNATURE_HEADER, &sig)]);
    assert_eq!(code, 200, "{reply}");
    let page = format!("http://127.0.0.1:8080/machines/{mac0}");
    browser.goto(&page).unwrap();
    assert_eq!(browser.eval("return document.querySelector('table.disks td:nth-child(3)').textContent").unwrap(), HOSTILE_LABEL);
    assert_eq!(browser.eval("return document.querySelector('ul.shares b').textContent").unwrap(), HOSTILE_SHARE);
    assert_eq!(
        browser.eval("return Array.from(document.querySelectorAll('ul.shares a')).map(a => a.getAttribute('href'))").unwrap(),
        json!(["http://10.77.0.100/x/"]),
        "only http/ftp links"
    );
    assert_eq!(browser.eval("return window.pwned === undefined").unwrap(), true, "no reported name ran as script");
    assert_eq!(browser.eval("return document.querySelector('form.command') === null").unwrap(), true, "no form before signing in");
    let token = server.cli(&["token", "show"]).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);
    // Without the token, from the boot network: refused; the queue stays empty.
    let form = b"action=reboot&csrf=";
    let formtype = ("content-type", "application/x-www-form-urlencoded");
    let command_url = format!("http://10.77.0.1:8080/machines/{mac0}/command");
    let (code, _) = host1.curl(dir.path(), "POST", &command_url, Some(form), &[formtype]);
    assert_eq!(code, 403, "a command without the token");
    // The cookie without the form's CSRF field (what a page elsewhere could make a browser send).
    let cookie = format!("swarmboot_admin={token}");
    let (code, body) = host1.curl(dir.path(), "POST", &command_url, Some(form), &[formtype, ("cookie", &cookie), ("origin", "http://evil.example")]);
    assert!(code == 403 && body.contains("CSRF"), "{code} {body}");
    // Signed in, in the browser: the form, a command, and it waits for the node.
    browser.goto("http://127.0.0.1:8080/login").unwrap();
    browser.eval(&format!("document.querySelector('input[name=token]').value = '{token}'; document.querySelector('form.login').submit(); return 1")).unwrap();
    browser.wait_for("return location.pathname === '/'", Duration::from_secs(10)).unwrap();
    browser.goto(&page).unwrap();
    browser.eval("document.querySelector('form.command select').value = 'rescan-disks'; document.querySelector('form.command').submit(); return 1").unwrap();
    browser.wait_for("const l = document.querySelector('ul.commands'); return l && l.textContent.includes('rescan-disks waiting')", Duration::from_secs(10)).unwrap();
    browser.screenshot(&shot.join("dashboard-machine.png")).unwrap();
    // With the bearer header (a script, the CLI elsewhere): taken too.
    let bearer = format!("Bearer {token}");
    let (code, body) = host1.curl(dir.path(), "POST", &command_url, Some(b"action=stop-sharing&argument=x"), &[formtype, ("authorization", &bearer)]);
    assert_eq!(code, 303, "{body}");
    let node = get_json(&lan.server, dir.path(), &format!("http://127.0.0.1:8080/api/v1/machines/{mac0}"))["node"].clone();
    let waiting: Vec<&str> = node["pending"].as_array().unwrap().iter().map(|p| p["action"]["do"].as_str().unwrap()).collect();
    assert_eq!(waiting, ["rescan-disks", "stop-sharing"], "{node}");
    assert_eq!(node["disks"][0]["label"], HOSTILE_LABEL);

    drop(browser);
    let phone = Browser::start(Some(&lan.server), &dir.path().join("chromedriver-phone.log"), 390, 844).unwrap();
    phone.goto("http://127.0.0.1:8080/").unwrap();
    phone.wait_for("return document.querySelectorAll('table#fleet tbody tr').length === 2", Duration::from_secs(10)).unwrap();
    assert_eq!(phone.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1").unwrap(), true, "no sideways scrolling of the page on a phone");
    phone.screenshot(&shot.join("dashboard-fleet-phone.png")).unwrap();
    drop(phone);

    // The images page and its API: versions newest first, who runs which.
    let images = get_json(&lan.server, dir.path(), "http://127.0.0.1:8080/api/v1/images");
    let lab = &images[0];
    assert_eq!((lab["name"].as_str(), lab["latest"].as_u64()), (Some("lab"), Some(3)));
    let versions: Vec<u64> = lab["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!((lab["versions"][0]["running"].as_u64(), lab["versions"][0]["booting"].as_u64(), lab["versions"][0]["size"].as_u64()), (Some(1), Some(0), Some(300_000)));
    let roles: Vec<&str> = lab["versions"][0]["files"].as_array().unwrap().iter().map(|f| f["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["kernel", "initrd"]);
    let phone_free = Browser::start(Some(&lan.server), &dir.path().join("chromedriver-images.log"), 1280, 800).unwrap();
    phone_free.goto("http://127.0.0.1:8080/images").unwrap();
    let rows = phone_free
        .eval("return Array.from(document.querySelectorAll('table.versions tbody tr')).map(r => Array.from(r.children).map(c => c.textContent.trim()).slice(0, 5).join(' | '))")
        .unwrap();
    assert!(rows[0].as_str().unwrap().starts_with("@3 |") && rows[0].as_str().unwrap().ends_with("| 1 | 0"), "{rows}");
    phone_free.screenshot(&shot.join("dashboard-images.png")).unwrap();
    // The server page: facts, what needs attention, the last hour as charts, the leases.
    phone_free.goto("http://127.0.0.1:8080/server").unwrap();
    let problems = phone_free.eval("return Array.from(document.querySelectorAll('ul.problems li')).map(l => l.textContent)").unwrap();
    assert!(problems.as_array().unwrap().iter().any(|p| p.as_str().unwrap().starts_with("No stub is built")), "{problems}");
    assert!(problems.as_array().unwrap().iter().any(|p| p.as_str().unwrap().starts_with("2 stage report(s) were refused")), "{problems}");
    assert_eq!(phone_free.eval("return document.querySelectorAll('figure.chart svg.spark').length").unwrap(), 12);
    let leased = phone_free.eval("return Array.from(document.querySelectorAll('table.leases tbody td:nth-child(2)')).map(c => c.textContent).sort()").unwrap();
    let mut macs = vec![mac0.clone(), mac1.clone()];
    macs.sort();
    assert_eq!(leased, json!(macs));
    phone_free.screenshot(&shot.join("dashboard-server.png")).unwrap();
    drop(phone_free);
    let server_json = get_json(&lan.server, dir.path(), "http://127.0.0.1:8080/api/v1/server");
    assert_eq!((server_json["dhcp"].as_str(), server_json["sample_every_secs"].as_u64()), (Some("authoritative"), Some(10)));
    assert!(!server_json["samples"].as_array().unwrap().is_empty());
    let leases = get_json(&lan.server, dir.path(), "http://127.0.0.1:8080/api/v1/leases");
    assert_eq!(leases.as_array().unwrap().len(), 2, "{leases}");
    assert!(leases[0]["expires_in_ms"].as_u64().unwrap() > 0);

    // The API's shapes.
    let base = "http://127.0.0.1:8080";
    let fleet = get_json(&lan.server, dir.path(), &format!("{base}/api/v1/fleet"));
    let stages: Vec<&str> = fleet["by_stage"].as_array().unwrap().iter().map(|c| c["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dhcp", "ipxe", "stub", "fetching", "handover", "running", "lost"]);
    assert_eq!((fleet["matched"].as_u64(), fleet["machines"].as_array().unwrap().len()), (Some(2), 2));
    let m = fleet["machines"].as_array().unwrap().iter().find(|m| m["mac"] == mac0.as_str()).unwrap();
    for key in ["hostname", "ip", "address_from", "image", "stage", "since_ms", "last_seen_ms", "stuck", "percent", "from_peers", "from_server", "uploaded", "agent"] {
        assert!(m.get(key).is_some(), "{key} in {m}");
    }
    assert_eq!((m["address_from"].as_str(), m["percent"].as_u64(), m["from_peers"].as_u64()), (Some("lease"), Some(100), Some((100u64 << 20) / 2 - (100u64 << 20) / 8)));
    let running = get_json(&lan.server, dir.path(), &format!("{base}/api/v1/fleet?stage=running&sort=last_seen&desc=1&limit=5"));
    assert_eq!(running["machines"].as_array().unwrap().len(), 1);
    let (code, body) = curl(&lan.server, dir.path(), "GET", &format!("{base}/api/v1/fleet?sort=bogus"), None);
    assert!(code == 400 && body.contains("sort=\"bogus\": one of mac,"), "{code} {body}");
    let machine = get_json(&lan.server, dir.path(), &format!("{base}/api/v1/machines/{mac0}"));
    let boot_stages: Vec<&str> = machine["boots"][0]["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(boot_stages, ["stub", "fetching", "handover", "running"]);
    assert_eq!((machine["node"]["state"].as_str(), machine["machine"]["agent"].as_bool()), (Some("live"), Some(true)), "the agent checked in");
    assert_eq!(curl(&lan.server, dir.path(), "GET", &format!("{base}/api/v1/machines/not-a-mac"), None).0, 400);
    assert_eq!(curl(&lan.server, dir.path(), "GET", &format!("{base}/api/v1/machines/02:00:00:00:00:99"), None).0, 404);
    let events = get_json(&lan.server, dir.path(), &format!("{base}/api/v1/events?after=0"));
    let mine: Vec<&str> = events["events"].as_array().unwrap().iter().filter(|e| e["mac"] == mac0.as_str()).map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(mine, ["stub", "fetching", "handover", "running"]);
    let last = events["last_event"].as_u64().unwrap();
    assert_eq!(get_json(&lan.server, dir.path(), &format!("{base}/api/v1/events?after={last}"))["events"], json!([]));
    // Every GET the API's description names answers JSON.
    let doc = get_json(&lan.server, dir.path(), &format!("{base}/api/v1/openapi.json"));
    let gets: Vec<&str> = doc["paths"].as_object().unwrap().iter().filter(|(_, p)| p.get("get").is_some()).map(|(k, _)| k.as_str()).collect();
    assert_eq!(gets.len(), 12, "{gets:?}");
    // (The namespace's tree and search answer in tests/e2e/namespace.rs, with nodes sharing.)
    for path in gets.into_iter().filter(|p| !["/api/v1/tree/{path}", "/api/v1/search"].contains(p)) {
        let _ = get_json(&lan.server, dir.path(), &format!("{base}{}", path.replace("{mac}", &mac0)));
    }
    let page = curl(&lan.server, dir.path(), "GET", &format!("{base}/"), None).1;
    assert!(!page.contains(HOSTILE_0) && page.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"), "escaped in the HTML itself");

    // The counters: the two forged reports, the machines by stage.
    assert_eq!(server.metric("swarmboot_fleet_reports_refused_total").unwrap(), 2);
    assert_eq!(server.metric("swarmboot_fleet_reports_total").unwrap(), 5);
    assert_eq!(server.metric("swarmboot_fleet_machines{stage=\"running\"}").unwrap(), 1);
    assert_eq!(server.metric("swarmboot_fleet_machines{stage=\"stub\"}").unwrap(), 1);

    // The terminal's view of the same fleet.
    let status = server.cli_in_ns(&["status"]).unwrap();
    assert!(status.starts_with("2 machine(s): 1 stub, 1 running"), "{status}");
    assert!(status.lines().any(|l| l.starts_with(&mac0) && l.contains("lab@3") && l.contains("running")), "{status}");
    let json: Value = serde_json::from_str(&server.cli_in_ns(&["status", "--json", "--stage", "stub"]).unwrap()).unwrap();
    assert_eq!(json["machines"][0]["mac"], mac1.as_str());

    // Real swarms: both machines fetch the image through the swarm (`swarmboot fetch`, the
    // stub's engine) and keep seeding. The images page sums each image's swarms and charts the
    // bytes; a machine's page lists its swarms with the peers beside it.
    let key = server.public_key().unwrap();
    let mut fetchers = Vec::new();
    for (i, host) in [host0, host1].into_iter().enumerate() {
        let stats = dir.path().join(format!("fetched{i}.json"));
        let mut cmd = host.command(swarmboot_lab::bin("swarmboot"));
        cmd.args(["fetch", "--server", "http://10.77.0.1:8080", "--image", "lab", "--key", &key, "--seed", "--listen", "0.0.0.0:6881", "--out"])
            .arg(dir.path().join(format!("fetched{i}")))
            .arg("--stats")
            .arg(&stats);
        fetchers.push((Proc::spawn("swarmboot fetch", &mut cmd, &dir.path().join(format!("fetched{i}.log"))).unwrap(), stats));
    }
    for (p, stats) in &mut fetchers {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !stats.exists() {
            assert!(!p.exited() && std::time::Instant::now() < deadline, "fetch not done:\n{}", p.output());
            std::thread::sleep(Duration::from_millis(100));
        }
        let st: Value = serde_json::from_str(&std::fs::read_to_string(&*stats).unwrap()).unwrap();
        assert_eq!(st["from_http"].as_u64(), Some(0), "all through the swarm: {st}");
    }
    // Once both announced they have it all (the tracker hears them every few seconds).
    let mut lab_swarm = Value::Null;
    for _ in 0..100 {
        let swarms = get_json(&lan.server, dir.path(), "http://127.0.0.1:8080/api/v1/swarms");
        lab_swarm = swarms.as_array().unwrap().iter().find(|w| w["name"] == "lab").cloned().unwrap();
        let v3: Vec<&Value> = lab_swarm["files"].as_array().unwrap().iter().filter(|f| f["version"] == 3).collect();
        let sent = lab_swarm["seed_uploaded"].as_u64().unwrap() + lab_swarm["peers_uploaded"].as_u64().unwrap();
        if lab_swarm["machines"] == 2 && v3.len() == 2 && v3.iter().all(|f| f["seeds"] == 2) && sent >= 2 * 300_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!((&lab_swarm["machines"], &lab_swarm["fetching"], &lab_swarm["fetching_percent"]), (&json!(2), &json!(0), &Value::Null), "{lab_swarm}");
    let sent = lab_swarm["seed_uploaded"].as_u64().unwrap() + lab_swarm["peers_uploaded"].as_u64().unwrap();
    assert!(sent >= 2 * 300_000, "two copies went out through the swarm: {lab_swarm}");
    let file_sum: u64 = lab_swarm["files"].as_array().unwrap().iter().map(|f| f["seed_uploaded"].as_u64().unwrap()).sum();
    assert_eq!(file_sum, lab_swarm["seed_uploaded"].as_u64().unwrap(), "the image's seed bytes are its files'");
    let machine = get_json(&lan.server, dir.path(), &format!("http://127.0.0.1:8080/api/v1/machines/{mac0}"));
    let mine = machine["swarms"].as_array().unwrap();
    assert_eq!(mine.len(), 2, "kernel and initrd of lab@3: {machine}");
    assert!(mine.iter().all(|w| w["image"] == "lab@3" && w["left"] == 0), "{machine}");
    let beside: Vec<String> =
        mine[0]["peers"].as_array().unwrap().iter().map(|p| if p["server"] == true { "server".into() } else { p["mac"].as_str().unwrap_or("?").to_string() }).collect();
    let mut want = vec![mac1.clone(), "server".to_string()];
    want.sort();
    let mut beside = beside;
    beside.sort();
    assert_eq!(beside, want, "the other machine and the server's seed");
    let pages = Browser::start(Some(&lan.server), &dir.path().join("chromedriver-swarms.log"), 1280, 800).unwrap();
    pages.goto(&format!("http://127.0.0.1:8080/machines/{mac0}")).unwrap();
    let rows = pages.eval("return Array.from(document.querySelectorAll('table.swarms tbody tr')).map(r => r.textContent)").unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(rows.as_array().unwrap().iter().all(|r| r.as_str().unwrap().contains(&mac1) && r.as_str().unwrap().contains("the server (seed)")), "{rows}");
    pages.screenshot(&shot.join("dashboard-machine-swarms.png")).unwrap();
    pages.goto("http://127.0.0.1:8080/images").unwrap();
    let said = pages.eval("return document.querySelector('section.image p.swarm').textContent").unwrap();
    assert!(said.as_str().unwrap().starts_with("In its swarms now: 2 machine(s)."), "{said}");
    assert_eq!(pages.eval("return document.querySelectorAll('section.image figure.swarm svg polyline').length").unwrap(), 2, "the seed's and the machines' lines");
    pages.screenshot(&shot.join("dashboard-images-swarm.png")).unwrap();
    drop(pages);
    for (p, _) in &mut fetchers {
        p.stop(Duration::from_secs(5));
    }

    // Assigning from the images page, signed in: the same change as `swarmboot assign`, in
    // effect for the machine's next boot script at once; then handed back to the config.
    let script = |mac: &str| curl(&lan.server, dir.path(), "GET", &format!("http://127.0.0.1:8080/boot.ipxe?mac={mac}&arch=x86_64"), None).1;
    assert!(script(&mac1).contains("no image"), "nothing is called elchos here: {}", script(&mac1));
    // (Last: a boot script request starts a new boot in the fleet.)
    let browser = Browser::start(Some(&lan.server), &dir.path().join("chromedriver-assign.log"), 1280, 800).unwrap();
    browser.goto("http://127.0.0.1:8080/login").unwrap();
    browser.eval(&format!("document.querySelector('input[name=token]').value = '{token}'; document.querySelector('form.login').submit(); return 1")).unwrap();
    browser.wait_for("return location.pathname === '/'", Duration::from_secs(10)).unwrap();
    browser.goto("http://127.0.0.1:8080/images").unwrap();
    browser
        .eval(&format!(
            "document.querySelector('#assign-form input[name=target]').value = '{mac1}'; document.querySelector('#assign-form select').value = 'lab'; \
             document.querySelector('#assign-form').submit(); return 1"
        ))
        .unwrap();
    browser.wait_for("const d = document.querySelector('p.done'); return d !== null", Duration::from_secs(10)).unwrap();
    let done = browser.eval("return document.querySelector('p.done').textContent").unwrap();
    assert!(done.as_str().unwrap().contains(&format!("{mac1}: elchos → lab")), "{done}");
    let row = browser.eval(&format!("return Array.from(document.querySelectorAll('table.assignments tbody tr')).map(r => r.textContent).find(t => t.includes('{mac1}'))")).unwrap();
    assert!(row.as_str().unwrap().contains("lab") && row.as_str().unwrap().contains("assigned"), "{row}");
    assert!(script(&mac1).contains(&format!("{mac1} boots lab version 3")), "{}", script(&mac1));
    assert!(script(&mac0).contains("no image"), "only that machine");
    let assigned = std::fs::read_to_string(dir.path().join("state/assignments.toml")).unwrap();
    assert!(assigned.contains(&format!("\"{mac1}\" = \"lab\"")), "{assigned}");
    browser.wait_for("return document.getElementById('status').textContent.startsWith('live')", Duration::from_secs(10)).unwrap();
    browser.screenshot(&shot.join("dashboard-images-assigned.png")).unwrap();
    browser.eval(&format!("document.querySelector('button[aria-label=\"Back to the config for {mac1}\"]').click(); return 1")).unwrap();
    browser.wait_for("const d = document.querySelector('p.done'); return d !== null && d.textContent.includes('as the config says')", Duration::from_secs(10)).unwrap();
    assert!(script(&mac1).contains("no image"), "back to the config");
    // Without the token, or with the cookie but not the page's CSRF field: refused, nothing
    // written; the API with the bearer header: done.
    let assign_url = "http://10.77.0.1:8080/images/assign";
    let form = b"target=default&image=lab&csrf=";
    let (code, body) = host1.curl(dir.path(), "POST", assign_url, Some(form), &[formtype]);
    assert!(code == 403 && body.contains("admin token"), "{code}");
    let (code, body) = host1.curl(dir.path(), "POST", assign_url, Some(form), &[formtype, ("cookie", &cookie), ("origin", "http://evil.example")]);
    assert!(code == 403 && body.contains("CSRF"), "{code}");
    let api_assign = "http://10.77.0.1:8080/api/v1/assign";
    let jsontype = ("content-type", "application/json");
    assert_eq!(host1.curl(dir.path(), "POST", api_assign, Some(br#"{"target":"default","image":"lab"}"#), &[jsontype]).0, 403);
    assert!(script(&mac0).contains("no image"), "nothing changed");
    let (code, body) = host1.curl(dir.path(), "POST", api_assign, Some(br#"{"target":"default","image":"nosuch"}"#), &[jsontype, ("authorization", &bearer)]);
    assert!(code == 400 && body.contains("there is no image nosuch; images: lab"), "{code} {body}");
    let (code, body) = host1.curl(dir.path(), "POST", api_assign, Some(br#"{"target":"default","image":"lab"}"#), &[jsontype, ("authorization", &bearer)]);
    assert!(code == 200 && body.contains("default image: elchos → lab"), "{code} {body}");
    assert!(script(&mac0).contains("boots lab version 3"), "the default for everyone");
    let lines = get_json(&lan.server, dir.path(), "http://127.0.0.1:8080/api/v1/assignments");
    assert_eq!(lines[0], json!({"target": "default", "kind": "default", "image": "lab", "assigned": true}), "{lines}");
    drop(browser);

    // `[http] dashboard = "token"`: the boot network reads nothing without the token; the
    // server itself still does; machines still report.
    let mut server = server;
    let cfg = std::fs::read_to_string(&server.config).unwrap().replace("[http]\n", "[http]\ndashboard = \"token\"\n");
    std::fs::write(&server.config, cfg).unwrap();
    server.restart(&lan.server).unwrap();
    let (code, _) = curl(host1, dir.path(), "GET", "http://10.77.0.1:8080/", None);
    assert_eq!(code, 303, "to the sign-in page");
    let (code, body) = curl(host1, dir.path(), "GET", "http://10.77.0.1:8080/api/v1/fleet", None);
    assert!(code == 401 && body.contains("swarmboot token show"), "{code} {body}");
    let (code, _) = host1.curl(dir.path(), "GET", "http://10.77.0.1:8080/api/v1/fleet", None, &[("authorization", &bearer)]);
    assert_eq!(code, 200);
    assert_eq!(curl(&lan.server, dir.path(), "GET", "http://127.0.0.1:8080/api/v1/fleet", None).0, 200);
    let (code, _) = curl(host0, dir.path(), "POST", api, Some(&report(&mac0, "running", "system", 100 << 20)));
    assert_eq!(code, 200, "reports are the machines' own, whatever the dashboard setting");
    assert_eq!(server.cli(&["token", "show"]).unwrap().trim(), token, "the token survives a restart");

    // `off`: nothing for the boot network, token or not; the server itself still reads.
    let cfg = std::fs::read_to_string(&server.config).unwrap().replace("dashboard = \"token\"", "dashboard = \"off\"");
    std::fs::write(&server.config, cfg).unwrap();
    server.restart(&lan.server).unwrap();
    assert_eq!(host1.curl(dir.path(), "GET", "http://10.77.0.1:8080/api/v1/fleet", None, &[("authorization", &bearer)]).0, 404);
    assert_eq!(host1.curl(dir.path(), "GET", "http://10.77.0.1:8080/", None, &[("cookie", &cookie)]).0, 404);
    assert_eq!(curl(&lan.server, dir.path(), "GET", "http://127.0.0.1:8080/api/v1/fleet", None).0, 200);
    assert!(server.cli_in_ns(&["status"]).unwrap().contains("machine(s)"));
    drop((c0, c1));
    drop(server);
}
