//! ADC on loopback, no VM: `swarmboot serve` runs the hub (Debian's uhub), the node agent
//! joins it through its ADC client (Debian's eiskaltdcpp-daemon) with its share, and a second
//! eiskaltdcpp-daemon — an ordinary ADC client, driven over its JSON-RPC — finds the node's
//! file by name and downloads it by its TTH, byte for byte; the agent counts the bytes under
//! `adc`. A hostile ADC user flooding searches reaches the other users only at the hub's
//! flood-control rate, and the hub keeps serving. (On VMs: `elchos.rs`.)

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use swarmboot_lab::{require_root, Netns, ScratchDir, Server};

const MAC: &str = "52:54:00:c0:ff:0a";
const HUB: &str = "adc://127.0.0.1:1511";

pub(crate) fn wait_until<T>(what: &str, secs: u64, log: &dyn Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s:\n{}", log());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// An ordinary ADC client on the LAN: Debian's eiskaltdcpp-daemon in `ns`, passive (its search
/// results come through the hub), driven over its JSON-RPC with curl.
pub(crate) struct AdcSearcher<'a> {
    ns: &'a Netns,
    rpc_port: u16,
    pub dir: PathBuf,
    _proc: swarmboot_lab::Proc,
}

impl<'a> AdcSearcher<'a> {
    /// Started with its directory under `dir`, its transfers on `port` (TLS on the next), its
    /// JSON-RPC on 127.0.0.1:`rpc_port`.
    pub(crate) fn start(ns: &'a Netns, dir: &Path, port: u16, rpc_port: u16) -> Self {
        let dir = dir.join(format!("adc-searcher-{rpc_port}"));
        std::fs::create_dir_all(dir.join("dl")).unwrap();
        let settings = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n<DCPlusPlus>\n\t<Settings>\n\t\t<ConfigVersion type=\"string\">2.4.2</ConfigVersion>\n\
             \t\t<Nick type=\"string\">searcher</Nick>\n\t\t<InPort type=\"int\">{port}</InPort>\n\t\t<UDPPort type=\"int\">{port}</UDPPort>\n\
             \t\t<TLSPort type=\"int\">{}</TLSPort>\n\t\t<IncomingConnections type=\"int\">3</IncomingConnections>\n\t\t<UseDHT type=\"int\">0</UseDHT>\n\
             \t\t<MinimumSearchInterval type=\"int\">1</MinimumSearchInterval>\n\t</Settings>\n</DCPlusPlus>\n",
            port + 1
        );
        std::fs::write(dir.join("DCPlusPlus.xml"), settings).unwrap();
        let mut cmd = ns.command("eiskaltdcpp-daemon");
        cmd.arg("-c").arg(format!("{}/", dir.display())).args(["-L", "127.0.0.1", "-P", &rpc_port.to_string()]);
        let proc = swarmboot_lab::Proc::spawn("eiskaltdcpp-daemon", &mut cmd, &dir.join("daemon.log")).unwrap();
        let s = AdcSearcher { ns, rpc_port, dir, _proc: proc };
        wait_until("the ADC client's JSON-RPC", 20, &String::new, || s.try_call("show.version", json!({})).ok());
        s
    }

    fn try_call(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": "1", "method": method, "params": params}).to_string();
        let out =
            self.ns.command("curl").args(["-s", "-S", "-m", "10", "--data-binary", &body, &format!("http://127.0.0.1:{}/", self.rpc_port)]).output().map_err(|e| e.to_string())?;
        let v: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("{method}: {e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))?;
        v.get("result").cloned().ok_or_else(|| format!("{method}: {v}"))
    }

    pub(crate) fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn join(&self, hub: &str) {
        self.call("hub.add", json!({"huburl": hub}));
    }

    pub(crate) fn users(&self, hub: &str) -> Vec<String> {
        self.call("hub.getusers", json!({"huburl": hub, "separator": "\t"})).as_str().unwrap_or_default().split('\t').filter(|n| !n.is_empty()).map(str::to_string).collect()
    }

    /// One search on the hub: the hits after 2 s.
    pub(crate) fn search(&self, hub: &str, words: &str) -> Vec<Value> {
        self.call("search.clear", json!({"huburl": hub}));
        self.call("search.send", json!({"searchstring": words, "searchtype": 0, "sizemode": 0, "sizetype": 0, "size": 0, "huburls": hub}));
        std::thread::sleep(Duration::from_secs(2));
        self.call("search.getresults", json!({"huburl": hub})).as_array().cloned().unwrap_or_default()
    }

    /// Every wanted file — (nick, its directory in the nick's shares like `music/sub/`, its
    /// name) — found by searching the hub for its name, then downloaded by the TTH the search
    /// gave, each into a directory of its own (the users' file lists name the sources); the
    /// bytes of each, in order.
    pub(crate) fn fetch_files(&self, hub: &str, wanted: &[(String, String, String)], within: u64, log: &dyn Fn() -> String) -> Vec<Vec<u8>> {
        let mut hits: Vec<Option<Value>> = vec![None; wanted.len()];
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(within);
        while hits.iter().any(Option::is_none) {
            assert!(
                Instant::now() < deadline,
                "search hits for {:?} within {within} s; the hits seen: {seen:?}\n{}",
                wanted.iter().zip(&hits).filter(|(_, h)| h.is_none()).map(|(w, _)| w).collect::<Vec<_>>(),
                log()
            );
            // Every missing name searched, then the results gathered for a while: the client
            // sends queued searches at its own pace, so results come when they come.
            let names: std::collections::BTreeSet<&str> = wanted.iter().zip(&hits).filter(|(_, h)| h.is_none()).map(|(w, _)| w.2.as_str()).collect();
            for name in names {
                let word = name.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty()).unwrap_or(name);
                self.call("search.send", json!({"searchstring": word, "searchtype": 0, "sizemode": 0, "sizetype": 0, "size": 0, "huburls": hub}));
            }
            for _ in 0..10 {
                std::thread::sleep(Duration::from_secs(1));
                for r in self.call("search.getresults", json!({"huburl": hub})).as_array().cloned().unwrap_or_default() {
                    seen.insert(format!("{} {}{}", r["Nick"], r["Path"], r["Filename"]));
                    for (w, h) in wanted.iter().zip(hits.iter_mut()) {
                        if h.is_none() && r["Nick"] == w.0.as_str() && r["Path"] == w.1.as_str() && r["Filename"] == w.2.as_str() {
                            *h = Some(r.clone());
                        }
                    }
                }
                if hits.iter().all(Option::is_some) {
                    break;
                }
            }
        }
        let targets: Vec<PathBuf> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = h.as_ref().unwrap();
                let (name, tth, size) = (h["Filename"].as_str().unwrap(), h["TTH"].as_str().unwrap(), h["Real Size"].as_str().unwrap());
                let to = self.dir.join(format!("files/{i}"));
                std::fs::create_dir_all(&to).unwrap();
                let magnet = format!("magnet:?xt=urn:tree:tiger:{tth}&xl={size}&dn={}", name.replace('%', "%25").replace('&', "%26").replace(' ', "%20"));
                assert_eq!(self.call("magnet.add", json!({"magnet": magnet, "directory": format!("{}/", to.display())})), json!(0), "{h}");
                to.join(name)
            })
            .collect();
        let nicks: std::collections::BTreeSet<&str> = wanted.iter().map(|w| w.0.as_str()).collect();
        for nick in nicks {
            assert_eq!(self.call("list.download", json!({"huburl": hub, "nick": nick})), json!(0));
        }
        wait_until(&format!("{} files downloaded", targets.len()), within, log, || {
            self.call("queue.matchlists", json!({}));
            std::thread::sleep(Duration::from_secs(1));
            let queued = self.call("queue.list", json!({}));
            targets
                .iter()
                .zip(&hits)
                .all(|(t, h)| {
                    let size: u64 = h.as_ref().unwrap()["Real Size"].as_str().unwrap().parse().unwrap();
                    std::fs::metadata(t).is_ok_and(|m| m.len() == size) && queued.get(t.display().to_string()).is_none()
                })
                .then_some(())
        });
        targets.iter().map(|t| std::fs::read(t).unwrap()).collect()
    }

    /// Downloads a search hit by its TTH from the user who has it (the user's file list names
    /// the source); the bytes, once the whole file is there.
    pub(crate) fn download(&self, hub: &str, hit: &Value, within: u64, log: &dyn Fn() -> String) -> Vec<u8> {
        let (name, tth, size) = (hit["Filename"].as_str().unwrap(), hit["TTH"].as_str().unwrap(), hit["Real Size"].as_str().unwrap());
        let dl = self.dir.join("dl");
        let magnet = format!("magnet:?xt=urn:tree:tiger:{tth}&xl={size}&dn={name}");
        assert_eq!(self.call("magnet.add", json!({"magnet": magnet, "directory": format!("{}/", dl.display())})), json!(0));
        assert_eq!(self.call("list.download", json!({"huburl": hub, "nick": hit["Nick"]})), json!(0));
        let got = dl.join(name);
        let size: u64 = size.parse().unwrap();
        wait_until(&format!("the download of {name}"), within, log, || {
            self.call("queue.matchlists", json!({}));
            std::thread::sleep(Duration::from_secs(1));
            (std::fs::metadata(&got).ok()?.len() == size && self.call("queue.list", json!({})).get(got.display().to_string()).is_none()).then_some(())
        });
        std::fs::read(&got).unwrap()
    }
}

/// A raw ADC user (the test's own bytes): logged in with a PID whose Tiger hash is its CID,
/// as the hub checks.
struct AdcUser {
    stream: std::net::TcpStream,
    reader: std::io::BufReader<std::net::TcpStream>,
    sid: String,
}

impl AdcUser {
    fn login(ns: &Netns, nick: &str, seed: u8) -> AdcUser {
        use tiger::Digest;
        let stream = ns.enter(|| std::net::TcpStream::connect("127.0.0.1:1511")).unwrap().expect("the hub takes a connection");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        (&stream).write_all(b"HSUP ADBASE ADTIGR\n").unwrap();
        let mut sid = String::new();
        let mut line = String::new();
        while sid.is_empty() {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the hub closed before a session id");
            if let Some(s) = line.trim_end().strip_prefix("ISID ") {
                sid = s.to_string();
            }
        }
        let pid = [seed; 24];
        let cid = tiger::Tiger::digest(pid);
        let b32 = |b: &[u8]| data_encoding::BASE32_NOPAD.encode(b);
        let inf = format!("BINF {sid} ID{} PD{} NI{nick} SS0 SF0 HN1 HR0 HO0 SL1 VEflood\\stest I40.0.0.0\n", b32(&cid), b32(&pid));
        (&stream).write_all(inf.as_bytes()).unwrap();
        AdcUser { stream, reader, sid }
    }

    /// The lines the hub sends within `window`.
    fn lines_for(&mut self, window: Duration) -> Vec<String> {
        let end = Instant::now() + window;
        let mut lines = Vec::new();
        self.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        while Instant::now() < end {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => lines.push(line.trim_end().to_string()),
                Err(_) => {}
            }
        }
        lines
    }
}

/// The node agent on the server's hub, to a real ADC client; a search flood held back.
#[test]
fn a_node_shares_on_the_servers_adc_hub_to_a_real_adc_client_and_a_search_flood_is_held_back() {
    if !require_root("a_node_shares_on_the_servers_adc_hub_to_a_real_adc_client_and_a_search_flood_is_held_back") {
        return;
    }
    let dir = ScratchDir::new("adc-share").unwrap();
    let d = dir.path();
    let ns = Netns::new("adcs").unwrap();
    let cfg = format!(
        "[server]\ninterface = \"lo\"\naddress = \"127.0.0.1\"\nstate_dir = \"{}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
         [http]\nlisten = \"127.0.0.1:8080\"\n[swarm]\nlisten = \"127.0.0.1:6881\"\n[nodes]\ncheckin_interval = \"2s\"\n[adc]\nenable = true\nlisten = \"127.0.0.1:1511\"\n",
        d.join("state").display()
    );
    let server = Server::start(&ns, d, &cfg, 8080).unwrap();
    let key_file = d.join("server.key");
    std::fs::write(&key_file, server.public_key().unwrap()).unwrap();
    // The node's share: a file no one else has (random bytes, 3 MB), a second one beside it.
    let share = d.join("music");
    std::fs::create_dir_all(&share).unwrap();
    let content = swarmboot_lab::noise(3_000_000, 0x2545);
    std::fs::write(share.join("elch-sample.bin"), &content).unwrap();
    std::fs::write(share.join("other.txt"), b"not this one").unwrap();
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(share.join("sub/deep.txt"), b"one level down").unwrap();
    let mut node_cmd = ns.command(swarmboot_lab::bin("swarmboot-node"));
    node_cmd
        .args(["--listen", "127.0.0.1:8090", "--image", "elchos@1", "--server", "http://127.0.0.1:8080", "--mac", MAC, "--adc", "--adc-port", "1412", "--share"])
        .arg(format!("music={}", share.display()))
        .arg("--key-file")
        .arg(&key_file)
        .arg("--state")
        .arg(d.join("node-state"))
        .arg("--run-dir")
        .arg(d.join("run"));
    let mut node = swarmboot_lab::Proc::spawn("swarmboot-node", &mut node_cmd, &d.join("node.log")).unwrap();
    let node_log = || std::fs::read_to_string(d.join("node.log")).unwrap_or_default();

    let logs = || format!("node log:\n{}\nserver log:\n{}", node_log(), server.log());
    let client = AdcSearcher::start(&ns, d, 1422, 3131);
    client.join(HUB);
    let nick = "elch-525400c0ff0a";
    wait_until("the node on the hub", 60, &logs, || client.users(HUB).iter().any(|n| n == nick).then_some(()));

    // Found by name (once the node has hashed it), with its size, TTH, the share's name and
    // the node's 16 upload slots.
    let hit = wait_until("a search hit for the node's file", 60, &logs, || client.search(HUB, "elch-sample").into_iter().find(|r| r["Filename"] == "elch-sample.bin"));
    eprintln!("search hit: {hit}");
    assert_eq!(
        (hit["Nick"].as_str(), hit["Real Size"].as_str(), hit["Path"].as_str(), hit["Slots"].as_str()),
        (Some(nick), Some("3000000"), Some("music/"), Some("16/16")),
        "{hit}"
    );
    assert_eq!(hit["TTH"].as_str().map(str::len), Some(39), "{hit}");
    // Downloaded by its TTH from the node.
    assert!(client.download(HUB, &hit, 60, &logs) == content, "the downloaded bytes differ from the node's file");

    // The agent counted them: ADC bytes on its page, and in the server's registry.
    let status = || -> Option<Value> {
        let out = ns.command("curl").args(["-s", "-m", "5", "http://127.0.0.1:8090/api/v1/status"]).output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    };
    let adc_bytes = |v: &Value| v["served"].as_array().and_then(|a| a.iter().find(|s| s["protocol"] == "adc" && s["share"] == "music")).and_then(|s| s["bytes"].as_u64());
    let counted = wait_until("the ADC bytes counted", 30, &logs, || adc_bytes(&status()?).filter(|b| *b >= 3_000_000));
    eprintln!("the node counted {counted} ADC bytes for music");
    assert_eq!(counted, 3_000_000, "every chunk of the file once");
    wait_until("the server's registry showing them", 30, &logs, || server.cli(&["node", "show", MAC]).ok().filter(|s| s.contains("adc") && s.contains("3000000")).map(|_| ()));

    // Files at the share's root and below, found by name and fetched in one go.
    let wanted = [(nick.to_string(), "music/".to_string(), "other.txt".to_string()), (nick.to_string(), "music/sub/".to_string(), "deep.txt".to_string())];
    assert_eq!(client.fetch_files(HUB, &wanted, 60, &logs), [b"not this one".to_vec(), b"one level down".to_vec()]);

    // A flood of searches from a hostile user: a listener sees at most the hub's rate.
    let mut listener = AdcUser::login(&ns, "listener", 7);
    let mut flooder = AdcUser::login(&ns, "flooder", 8);
    listener.lines_for(Duration::from_secs(1));
    let mut flood = String::new();
    for i in 0..1000 {
        flood.push_str(&format!("BSCH {} ANnothing{i} TOt{i}\n", flooder.sid));
    }
    let _ = (&flooder.stream).write_all(flood.as_bytes());
    let seen = listener.lines_for(Duration::from_secs(4)).iter().filter(|l| l.starts_with("BSCH ") && l.contains("ANnothing")).count();
    eprintln!("of 1000 searches flooded, the listener saw {seen}");
    assert!(seen <= 25, "the hub passed {seen} of 1000 searches in 4 s (flood control: 20 per 10 s)");
    let _ = flooder.lines_for(Duration::from_millis(200));
    // And the hub still serves the rest: the client's next search is answered.
    wait_until("a search answered after the flood", 30, &logs, || client.search(HUB, "other").iter().any(|r| r["Filename"] == "other.txt").then_some(()));
    // The node's page is up all along.
    let page = ns.command("curl").args(["-sS", "--fail", "-m", "10", "http://127.0.0.1:8090/"]).output().unwrap();
    assert!(page.status.success() && String::from_utf8_lossy(&page.stdout).contains("elchos@1"), "the node's page after the flood: {page:?}");

    // The agent takes its ADC client with it when it stops.
    node.stop(Duration::from_secs(10));
    wait_until("the node's ADC client gone", 15, &logs, || {
        let out = ns.command("curl").args(["-s", "-m", "2", "--data-binary", r#"{"jsonrpc":"2.0","id":"1","method":"show.version"}"#, "http://127.0.0.1:3121/"]).output().ok()?;
        (!out.status.success()).then_some(())
    });
}
