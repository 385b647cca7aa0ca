//! ADC sharing: the node joins the boot server's ADC hub with Debian's `eiskaltdcpp-daemon`
//! (a headless DC++ client run by the agent) and shares its mounted disks there, so any ADC
//! client on the LAN can search them and download. Sans-IO: the client's settings file, the
//! JSON-RPC requests the agent sends it and the answers it reads, which share calls bring the
//! client's shares in line with the node's, and the client's upload log read for bytes served.
//!
//! The daemon keeps no settings of its own across starts (it writes none), so every start is
//! from [`settings_xml`] plus the calls: shares are added and removed over JSON-RPC as disks
//! come and go, the hub is joined once the server names it in a check-in reply.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The program.
pub const DAEMON: &str = "eiskaltdcpp-daemon";
/// Where its JSON-RPC listens: loopback only (it has no authentication).
pub const RPC_ADDR: &str = "127.0.0.1:3121";
/// The upload log, relative to the client's directory (its default name; one line per chunk
/// sent).
pub const UPLOAD_LOG: &str = "Logs/Uploads.log";
/// Longest JSON-RPC answer read (a share list of 256 shares is a few KiB).
pub const MAX_ANSWER: usize = 1 << 20;

/// What the client is told before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub nick: String,
    pub description: String,
    /// TCP (client-to-client transfers) and UDP (search results) port.
    pub port: u16,
    pub tls_port: u16,
    /// The client's private id (its CID, what the hub knows it by, is the id's Tiger hash).
    /// Random per start: left to itself the daemon draws it from a generator seeded with the
    /// time, so nodes started in the same second collide ("CID is taken").
    pub private_id: [u8; 24],
    /// Upload slots (uploads at once; the rest wait their turn).
    pub slots: u32,
}

/// The node's nick on the hub: `elch-` and its MAC without colons (unique on the LAN, and the
/// registry's key, so a sysadmin finds the machine from a search result).
pub fn nick(mac: &str) -> String {
    format!("elch-{}", mac.replace(':', ""))
}

/// How the client logs a chunk it sent: bytes, then the file (no peer-chosen text in it).
const UPLOAD_FORMAT: &str = "%[fileSI] %[source]";

/// `DCPlusPlus.xml` for the client's directory: active mode on the given ports, no DHT (the
/// hub is the LAN's only meeting point), hashing at once (not after its default minute),
/// uploads logged in [`UPLOAD_FORMAT`] (for the counters). Its settings version is named: the
/// client drops the log formats of files without one.
pub fn settings_xml(s: &ClientSettings) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n<DCPlusPlus>\n\t<Settings>\n");
    let pid = data_encoding::BASE32_NOPAD.encode(&s.private_id);
    // The private id's key is `CID` (the daemon's name for it).
    let strings = [("ConfigVersion", "2.4.2"), ("Nick", s.nick.as_str()), ("Description", s.description.as_str()), ("CID", pid.as_str()), ("LogFormatPostUpload", UPLOAD_FORMAT)];
    for (k, v) in strings {
        x.push_str(&format!("\t\t<{k} type=\"string\">{}</{k}>\n", swarmboot_httpd::html::escape(v)));
    }
    let ints = [
        ("InPort", s.port.into()),
        ("UDPPort", s.port.into()),
        ("TLSPort", s.tls_port.into()),
        ("IncomingConnections", 0),
        ("UseDHT", 0),
        ("LogUploads", 1),
        ("HashingStartDelay", 0),
        ("Slots", s.slots),
        // What the client uses as its slot count (SLOTS only counts with throttling on).
        ("SlotsPrimaryLimiting", s.slots),
    ];
    for (k, v) in ints {
        x.push_str(&format!("\t\t<{k} type=\"int\">{v}</{k}>\n"));
    }
    x.push_str("\t</Settings>\n</DCPlusPlus>\n");
    x
}

/// The hub's URL: the host the node reaches the server by, the port the server named.
pub fn hub_url(server: &str, port: u16) -> Option<String> {
    let rest = server.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => authority.split(':').next()?.to_string(),
    };
    (!host.is_empty() && host != "[]").then(|| format!("adc://{host}:{port}"))
}

/// A JSON-RPC 2.0 request body.
pub fn request(id: u64, method: &str, params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id.to_string(), "method": method, "params": params})).unwrap_or_default()
}

/// Why an answer of the client's is no use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("the ADC client's answer is not JSON-RPC: {0}")]
    NotJson(String),
    #[error("the ADC client refused the call: {0}")]
    Refused(String),
}

/// The `result` of a JSON-RPC answer.
pub fn result(body: &[u8]) -> Result<Value, RpcError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| RpcError::NotJson(e.to_string()))?;
    if let Some(e) = v.get("error") {
        return Err(RpcError::Refused(e.get("message").and_then(Value::as_str).unwrap_or("no message").to_string()));
    }
    v.get("result").cloned().ok_or_else(|| RpcError::NotJson("no result".into()))
}

/// A directory as the client names it (with a trailing `/`).
fn as_dir(path: &str) -> String {
    if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

/// The client's shares from `share.list` (separator `\t`): directory → virtual name.
pub fn listed_shares(list: &str) -> BTreeMap<String, String> {
    list.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (dir, name) = (f.next()?, f.next()?);
            (!dir.is_empty()).then(|| (dir.to_string(), name.to_string()))
        })
        .collect()
}

/// A change to the client's shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareCall {
    Remove { dir: String },
    Add { dir: String, name: String },
}

impl ShareCall {
    pub fn method(&self) -> (&'static str, Value) {
        match self {
            ShareCall::Remove { dir } => ("share.del", json!({ "directory": dir })),
            ShareCall::Add { dir, name } => ("share.add", json!({ "directory": dir, "virtname": name })),
        }
    }
}

/// What brings the client's shares (`have`: directory → name) to the node's (`want`: name →
/// directory): removals first (a directory shared under another name goes and comes back).
pub fn share_calls(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> Vec<ShareCall> {
    let want: BTreeMap<String, &String> = want.iter().map(|(name, dir)| (as_dir(dir), name)).collect();
    let mut calls: Vec<ShareCall> = have.iter().filter(|(dir, name)| want.get(*dir) != Some(name)).map(|(dir, _)| ShareCall::Remove { dir: dir.clone() }).collect();
    calls.extend(want.iter().filter(|(dir, name)| have.get(*dir) != Some(**name)).map(|(dir, name)| ShareCall::Add { dir: dir.clone(), name: (*name).clone() }));
    calls
}

/// Whether `hub.list` (separator `\t`) names the hub.
pub fn joined(list: &str, hub: &str) -> bool {
    list.split('\t').any(|h| h == hub)
}

/// Files the client still has to hash (`hash.status`): a file hashed after the share was
/// last refreshed is not in it (nor found by searches) until the next refresh.
pub fn hashing_left(status: &Value) -> u64 {
    status.get("filesleft").and_then(Value::as_u64).unwrap_or(0) + u64::from(status.get("bytesleft").and_then(Value::as_u64).unwrap_or(0) > 0)
}

/// The chunks sent (share, bytes), one a line, from upload log lines ([`UPLOAD_FORMAT`]:
/// `BYTES PATH`); a path outside every share counts for none.
pub fn uploads(log: &str, shares: &BTreeMap<String, String>) -> Vec<(String, u64)> {
    let dirs: Vec<(String, &String)> = shares.iter().map(|(name, dir)| (as_dir(dir), name)).collect();
    log.lines()
        .filter_map(|line| {
            let (bytes, path) = line.split_once(' ')?;
            let bytes: u64 = bytes.parse().ok()?;
            let (_, name) = dirs.iter().find(|(dir, _)| path.starts_with(dir.as_str()))?;
            Some(((*name).clone(), bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn the_settings_file_names_the_node_escapes_what_it_says_and_turns_dht_off() {
        let x = settings_xml(&ClientSettings {
            nick: nick("52:54:00:aa:bb:01"),
            description: "elchOS <elchos@1> & co\u{7}".into(),
            port: 1412,
            tls_port: 1413,
            private_id: [0xab; 24],
            slots: 16,
        });
        assert!(x.contains("<Nick type=\"string\">elch-525400aabb01</Nick>"), "{x}");
        assert!(x.contains("<Description type=\"string\">elchOS &lt;elchos@1&gt; &amp; co\u{fffd}</Description>"), "{x}");
        assert!(x.contains("<CID type=\"string\">VOV2XK5LVOV2XK5LVOV2XK5LVOV2XK5LVOV2XKY</CID>"), "{x}");
        assert!(
            x.contains("<ConfigVersion type=\"string\">2.4.2</ConfigVersion>") && x.contains("<LogFormatPostUpload type=\"string\">%[fileSI] %[source]</LogFormatPostUpload>"),
            "{x}"
        );
        for line in [
            "<HashingStartDelay type=\"int\">0</HashingStartDelay>",
            "<Slots type=\"int\">16</Slots>",
            "<InPort type=\"int\">1412</InPort>",
            "<UDPPort type=\"int\">1412</UDPPort>",
            "<TLSPort type=\"int\">1413</TLSPort>",
            "<UseDHT type=\"int\">0</UseDHT>",
            "<LogUploads type=\"int\">1</LogUploads>",
        ] {
            assert!(x.contains(line), "{line} in {x}");
        }
    }

    #[test]
    fn the_hub_is_at_the_servers_host_on_the_port_it_names() {
        assert_eq!(hub_url("http://10.0.0.1:8080", 1511).as_deref(), Some("adc://10.0.0.1:1511"));
        assert_eq!(hub_url("http://boot.lab/", 411).as_deref(), Some("adc://boot.lab:411"));
        assert_eq!(hub_url("http://[fd00::1]:8080/x", 1511).as_deref(), Some("adc://[fd00::1]:1511"));
        assert_eq!(hub_url("10.0.0.1:8080", 1511), None);
        assert_eq!(hub_url("http://", 1511), None);
    }

    #[test]
    fn answers_give_their_result_or_say_what_went_wrong() {
        assert_eq!(result(br#"{"id":"1","jsonrpc":"2.0","result":0}"#), Ok(json!(0)));
        assert_eq!(result(br#"{"error":{"code":-32601,"message":"Method not found."},"id":"1"}"#), Err(RpcError::Refused("Method not found.".into())));
        assert!(matches!(result(b"<html>"), Err(RpcError::NotJson(_))));
        assert!(matches!(result(br#"{"id":"1"}"#), Err(RpcError::NotJson(_))));
        let r: Value = serde_json::from_slice(&request(7, "share.add", json!({"directory": "/srv/elchos/a/"}))).unwrap();
        assert_eq!((r["id"].as_str(), r["method"].as_str(), r["params"]["directory"].as_str()), (Some("7"), Some("share.add"), Some("/srv/elchos/a/")));
    }

    #[test]
    fn shares_follow_the_node_removals_first() {
        let have = listed_shares("\n/srv/elchos/a/\ta\t2.86 MiB\t\n\n/srv/elchos/old/\told\t0 B\t\n\n/srv/elchos/b/\tnot-b\t0 B\t\n");
        assert_eq!(have, shares(&[("/srv/elchos/a/", "a"), ("/srv/elchos/old/", "old"), ("/srv/elchos/b/", "not-b")]));
        let want = shares(&[("a", "/srv/elchos/a"), ("b", "/srv/elchos/b"), ("new", "/srv/elchos/new/")]);
        let calls = share_calls(&have, &want);
        assert_eq!(
            calls,
            [
                ShareCall::Remove { dir: "/srv/elchos/b/".into() },
                ShareCall::Remove { dir: "/srv/elchos/old/".into() },
                ShareCall::Add { dir: "/srv/elchos/b/".into(), name: "b".into() },
                ShareCall::Add { dir: "/srv/elchos/new/".into(), name: "new".into() },
            ]
        );
        assert_eq!(calls[3].method(), ("share.add", json!({"directory": "/srv/elchos/new/", "virtname": "new"})));
        // In line: nothing to do.
        let now = shares(&[("/srv/elchos/a/", "a"), ("/srv/elchos/b/", "b"), ("/srv/elchos/new/", "new")]);
        assert!(share_calls(&now, &want).is_empty());
    }

    #[test]
    fn the_hub_list_and_the_hashers_progress_are_read() {
        assert!(joined("adc://10.0.0.1:1511\t", "adc://10.0.0.1:1511"));
        assert!(!joined("adc://10.0.0.1:15111\t", "adc://10.0.0.1:1511"));
        assert_eq!(hashing_left(&json!({"bytesleft": 0, "currentfile": "", "filesleft": 0, "status": "idle"})), 0);
        assert!(hashing_left(&json!({"bytesleft": 3000000, "filesleft": 2, "status": "hashing"})) > 0);
        assert!(hashing_left(&json!({"bytesleft": 10, "filesleft": 0, "status": "hashing"})) > 0, "the last file under way");
        assert_eq!(hashing_left(&json!("garbage")), 0);
    }

    #[test]
    fn uploads_count_per_share_a_chunk_a_line() {
        let want = shares(&[("a", "/srv/elchos/a"), ("b", "/srv/elchos/b")]);
        let log = "\
65536 /srv/elchos/a/x.bin
131072 /srv/elchos/a/dir, with commas and spaces/y
1000 /srv/elchos/b/z
4242 files.xml.bz2
7 /srv/elchos/c/elsewhere
7 /srv/elchos/ab/not-a
garbage
-5 /srv/elchos/a/negative
/srv/elchos/b/no-bytes";
        assert_eq!(uploads(log, &want), [("a".to_string(), 65536), ("a".to_string(), 131072), ("b".to_string(), 1000)]);
    }
}
