//! Debian's chromium driven over WebDriver (chromium-driver's `chromedriver`), for pages that
//! must be watched while they change: one browser session that loads a page once, then runs
//! scripts in it (read the DOM, click, type) and takes screenshots, with no reload between.
//! `chromedriver` runs in the namespace given (chromium with it), and the test's requests to
//! it are made from a thread inside that namespace.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::proc::Proc;
use crate::Netns;

/// A browser session; the session and the driver end when it is dropped.
pub struct Browser<'a> {
    ns: Option<&'a Netns>,
    port: u16,
    session: String,
    /// Chromium's profile directory (removed at the end).
    profile: std::path::PathBuf,
    _driver: Proc,
}

/// One HTTP/1.1 request to the driver at 127.0.0.1:`port`: the JSON answer's `value`.
fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("chromedriver on port {port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    // chromedriver answers with Content-Length (no chunking) and may keep the connection
    // open: read the head, then exactly the body.
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("chromedriver closed the connection mid-reply to {method} {path}");
        }
        reply.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&reply[..head_end]).into_owned();
    let len: usize =
        head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    while reply.len() < head_end + len {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    let json = String::from_utf8_lossy(&reply[head_end..]).into_owned();
    let json = json.as_str();
    let v: Value = serde_json::from_str(json).with_context(|| format!("chromedriver's reply to {method} {path}: {head}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{method} {path}: {}", v["value"]["message"].as_str().unwrap_or(json));
    }
    Ok(v["value"].clone())
}

impl<'a> Browser<'a> {
    /// Starts chromedriver (in `ns`) and a headless chromium session of `width`×`height`.
    /// `log`: chromedriver's log file.
    pub fn start(ns: Option<&'a Netns>, log: &Path, width: u32, height: u32) -> anyhow::Result<Browser<'a>> {
        // Tests run side by side in one process: each browser its own port and profile.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 9515 + ((std::process::id() % 200) * 20 + n % 20) as u16;
        let mut cmd = match ns {
            Some(ns) => ns.command("chromedriver"),
            None => std::process::Command::new("chromedriver"),
        };
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", &mut cmd, log).context("chromedriver (apt install chromium-driver)")?;
        let up = Instant::now();
        loop {
            let ready = Self::request(ns, port, "GET", "/status", None);
            if ready.as_ref().is_ok_and(|v| v["ready"] == json!(true)) {
                break;
            }
            if up.elapsed() > Duration::from_secs(30) {
                bail!("chromedriver did not come up in 30 s: {ready:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let profile = std::env::temp_dir().join(format!("swarmboot-chromium-{}-{n}", std::process::id()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--hide-scrollbars", format!("--window-size={width},{height}"), format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let session = Self::request(ns, port, "POST", "/session", Some(caps)).context("starting a chromium session")?;
        let session = session["sessionId"].as_str().context("no session id")?.to_string();
        Ok(Browser { ns, port, session, profile, _driver: driver })
    }

    fn request(ns: Option<&Netns>, port: u16, method: &'static str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let path = path.to_string();
        match ns {
            Some(ns) => ns.enter(move || call(port, method, &path, body.as_ref()))?,
            None => call(port, method, &path, body.as_ref()),
        }
    }

    fn session_call(&self, method: &'static str, what: &str, body: Option<Value>) -> anyhow::Result<Value> {
        Self::request(self.ns, self.port, method, &format!("/session/{}{what}", self.session), body)
    }

    /// Loads `url` (waits for the document to load).
    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session_call("POST", "/url", Some(json!({ "url": url }))).map(|_| ())
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> anyhow::Result<Value> {
        self.session_call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    /// The page's DOM as it is now.
    pub fn dom(&self) -> anyhow::Result<String> {
        Ok(self.eval("return document.documentElement.outerHTML")?.as_str().unwrap_or_default().to_string())
    }

    /// The page's address as it is now.
    pub fn url(&self) -> anyhow::Result<String> {
        Ok(self.session_call("GET", "/url", None)?.as_str().unwrap_or_default().to_string())
    }

    /// Waits until `script` returns something truthy (polling every 250 ms), or `timeout`.
    pub fn wait_for(&self, script: &str, timeout: Duration) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            let v = self.eval(script)?;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                bail!("the page did not satisfy `{script}` within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A screenshot of the viewport as a PNG at `png`.
    pub fn screenshot(&self, png: &Path) -> anyhow::Result<()> {
        let v = self.session_call("GET", "/screenshot", None)?;
        let bytes = data_encoding::BASE64.decode(v.as_str().context("no screenshot")?.as_bytes())?;
        std::fs::write(png, bytes).with_context(|| format!("writing {}", png.display()))
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        // Ending the session ends chromium; its profile goes with it.
        let _ = Self::request(self.ns, self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
