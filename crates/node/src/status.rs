//! The node's status page (`http://NODE/`, Tahoe's per-node page) and the same as JSON
//! (`/api/v1/status`): image, uptime, the server and the last check-in, disks, shares with
//! their URLs, bytes served per protocol, where its part of the fleet's index stands, and what
//! the seeder does.

use serde::Serialize;
use swarmboot_checkin::report::{Disk, Seeding, Served, Share};

use swarmboot_httpd::html::escape;

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub mac: String,
    pub image: String,
    pub uptime_secs: u64,
    /// The boot server's URL.
    pub server: String,
    pub last_checkin: Option<LastCheckIn>,
    pub disks: Vec<Disk>,
    pub shares: Vec<Share>,
    pub served: Vec<Served>,
    pub seeding: Seeding,
    /// The shares in the server's index of what the fleet shares (none until the first scan).
    pub index: Option<IndexState>,
}

/// Where this node's part of the fleet's index stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexState {
    /// Entries the server holds (with the batch in flight).
    pub entries: u64,
    /// Changes not sent yet.
    pub waiting: usize,
    /// Left out of the last scan: links, devices, names the namespace cannot carry.
    pub skipped: u64,
    /// The last scan found more than the index takes; the rest is not indexed.
    pub truncated: bool,
    /// Files' SHA-256 are read (`--index-hashes`).
    pub hashes: bool,
    /// Unix seconds of the last scan.
    pub scanned_at: u64,
}

/// How the last check-in went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastCheckIn {
    /// Unix seconds.
    pub at: u64,
    pub ok: bool,
    /// The server's refusal, or what went wrong reaching it.
    pub problem: Option<String>,
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The page at unix time `now` (for "N s ago").
pub fn render_html(s: &Status, now: u64) -> String {
    let mut h = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>elchOS node ");
    h.push_str(&escape(&s.mac));
    h.push_str(
        "</title>\n<style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}\
        th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
        th{background:#f2f2f2}.bad{color:#b00}.muted{color:#777}</style>\n</head><body>\n",
    );
    h.push_str(&format!("<h1>elchOS node {}</h1>\n<p>image <b>{}</b>, up {}</p>\n", escape(&s.mac), escape(&s.image), duration(s.uptime_secs)));
    let checkin = match &s.last_checkin {
        None => "not checked in yet".to_string(),
        Some(c) if c.ok => format!("last check-in {} ago", duration(now.saturating_sub(c.at))),
        Some(c) => format!("last check-in {} ago <b class=\"bad\">failed</b>: {}", duration(now.saturating_sub(c.at)), escape(c.problem.as_deref().unwrap_or("?"))),
    };
    if s.server.is_empty() {
        h.push_str("<p class=\"muted\">no boot server given: this node does not check in</p>\n");
    } else {
        h.push_str(&format!("<p>server {}: {checkin}</p>\n", escape(&s.server)));
    }
    h.push_str("<h2>Disks</h2>\n");
    if s.disks.is_empty() {
        h.push_str("<p class=\"muted\">no disks found</p>\n");
    } else {
        h.push_str("<table>\n<tr><th>device</th><th>filesystem</th><th>label</th><th>size</th><th>used</th><th>state</th></tr>\n");
    }
    for d in &s.disks {
        let state = match (&d.mounted_at, &d.why_not) {
            _ if d.donated => "donated space (ELCHOS-DATA)".to_string(),
            (Some(at), _) => format!("mounted read-only at {}", escape(at)),
            (None, Some(why)) => format!("not mounted: {}", escape(why)),
            (None, None) => "not mounted".into(),
        };
        let opt = |v: &Option<String>| escape(v.as_deref().unwrap_or("-"));
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{state}</td></tr>\n",
            escape(&d.device),
            opt(&d.fstype),
            opt(&d.label),
            size(d.size),
            d.used.map_or("-".into(), size)
        ));
    }
    if !s.disks.is_empty() {
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Shares</h2>\n<ul>\n");
    if s.shares.is_empty() {
        h.push_str("<li class=\"muted\">nothing shared</li>\n");
    }
    for sh in &s.shares {
        let links: Vec<String> = sh.urls.iter().map(|u| format!("<a href=\"{0}\">{0}</a>", escape(u))).collect();
        h.push_str(&format!("<li>{} ({}): {}</li>\n", escape(&sh.name), escape(&sh.path), links.join(" ")));
    }
    h.push_str("</ul>\n<h2>Served</h2>\n<table>\n<tr><th>protocol</th><th>share</th><th>bytes</th><th>requests</th></tr>\n");
    for v in &s.served {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"n\" title=\"{} bytes\">{}</td><td class=\"n\">{}</td></tr>\n",
            escape(&v.protocol),
            escape(&v.share),
            v.bytes,
            size(v.bytes),
            v.requests
        ));
    }
    h.push_str("</table>\n<h2>Index</h2>\n");
    match &s.index {
        None => h.push_str("<p class=\"muted\">not indexed yet (after the first check-in)</p>\n"),
        Some(i) => h.push_str(&format!(
            "<p>{} entries in the fleet's index{}{}, scanned {} ago; {} left out (links, devices, names the index cannot carry){}</p>\n",
            i.entries,
            if i.waiting > 0 { format!(" ({} changes waiting)", i.waiting) } else { String::new() },
            if i.hashes { ", with SHA-256" } else { "" },
            duration(now.saturating_sub(i.scanned_at)),
            i.skipped,
            if i.truncated { " <b class=\"bad\">more than the index takes: the rest is not indexed</b>" } else { "" }
        )),
    }
    h.push_str(&format!("<h2>Seeding</h2>\n<p>{} torrent(s), {} peer(s), {} uploaded</p>\n</body></html>\n", s.seeding.torrents, s.seeding.peers, size(s.seeding.uploaded)));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            mac: "52:54:00:aa:bb:01".into(),
            image: "elchos@3".into(),
            uptime_secs: 3725,
            server: "http://10.77.0.1:8080".into(),
            last_checkin: Some(LastCheckIn { at: 990, ok: true, problem: None }),
            disks: vec![
                Disk {
                    device: "/dev/vdb".into(),
                    fstype: Some("ext4".into()),
                    label: Some("<b>music</b>".into()),
                    size: 64 << 20,
                    used: Some(10 << 20),
                    mounted_at: Some("/srv/elchos/_b_music__b_".into()),
                    why_not: None,
                    donated: false,
                },
                Disk {
                    device: "/dev/vdc".into(),
                    fstype: Some("crypto_LUKS".into()),
                    label: None,
                    size: 1 << 30,
                    used: None,
                    mounted_at: None,
                    why_not: Some("encrypted (LUKS): the node has no key".into()),
                    donated: false,
                },
                Disk {
                    device: "/dev/vdd".into(),
                    fstype: Some("ext4".into()),
                    label: Some("ELCHOS-DATA".into()),
                    size: 1 << 30,
                    used: None,
                    mounted_at: None,
                    why_not: None,
                    donated: true,
                },
            ],
            shares: vec![Share { name: "music".into(), path: "/srv/elchos/music".into(), urls: vec!["http://10.77.0.100/music/".into()] }],
            served: vec![Served { protocol: "http".into(), share: "music".into(), bytes: 1234, requests: 2 }],
            seeding: Seeding { torrents: 1, peers: 2, uploaded: 3 << 20 },
            index: Some(IndexState { entries: 1200, waiting: 3, skipped: 2, truncated: false, hashes: true, scanned_at: 995 }),
        }
    }

    #[test]
    fn the_page_shows_everything_escaped() {
        let h = render_html(&status(), 1000);
        for want in [
            "image <b>elchos@3</b>, up 1 h 2 min",
            "last check-in 10 s ago",
            "&lt;b&gt;music&lt;/b&gt;",
            "not mounted: encrypted (LUKS)",
            "donated space (ELCHOS-DATA)",
            "<a href=\"http://10.77.0.100/music/\">",
            "<td>http</td><td>music</td><td class=\"n\" title=\"1234 bytes\">1.2 KiB</td><td class=\"n\">2</td>",
            "1 torrent(s), 2 peer(s), 3.0 MiB uploaded",
            "1200 entries in the fleet's index (3 changes waiting), with SHA-256, scanned 5 s ago; 2 left out",
        ] {
            assert!(h.contains(want), "{want} in:\n{h}");
        }
        assert!(!h.contains("<b>music</b>"), "a disk's label is text, not markup");
        let failed = Status { last_checkin: Some(LastCheckIn { at: 900, ok: false, problem: Some("409: <x>".into()) }), ..status() };
        assert!(render_html(&failed, 1000).contains("1 min 40 s ago <b class=\"bad\">failed</b>: 409: &lt;x&gt;"));
    }

    #[test]
    fn the_json_is_the_same_status() {
        let v: serde_json::Value = serde_json::to_value(status()).unwrap();
        assert_eq!(v["disks"][1]["why_not"], "encrypted (LUKS): the node has no key");
        assert_eq!(v["served"][0]["bytes"], 1234);
        assert_eq!(v["last_checkin"]["ok"], true);
        assert_eq!((v["index"]["entries"].as_u64(), v["index"]["hashes"].as_bool()), (Some(1200), Some(true)));
    }
}
