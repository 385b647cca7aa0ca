//! Talking to an HTTP tracker (BEP 3, compact peer lists of BEP 23), sans-IO: the announce
//! URL to fetch and the parsed reply. The engine does the HTTP.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use swarmboot_torrent::bencode::{self, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    Started,
    Completed,
    Stopped,
    /// A regular re-announce.
    None,
}

#[derive(Debug, Clone)]
pub struct Announce {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: AnnounceEvent,
    pub numwant: u32,
}

/// Percent-encodes raw bytes the way trackers expect for `info_hash` and `peer_id`.
fn percent(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl Announce {
    /// The full announce URL: `base` (the torrent's `announce`) plus the query.
    pub fn url(&self, base: &str) -> String {
        let mut u = String::from(base);
        u.push(if base.contains('?') { '&' } else { '?' });
        u.push_str("info_hash=");
        percent(&self.info_hash, &mut u);
        u.push_str("&peer_id=");
        percent(&self.peer_id, &mut u);
        u.push_str(&format!("&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}", self.port, self.uploaded, self.downloaded, self.left, self.numwant));
        let event = match self.event {
            AnnounceEvent::Started => "started",
            AnnounceEvent::Completed => "completed",
            AnnounceEvent::Stopped => "stopped",
            AnnounceEvent::None => "",
        };
        if !event.is_empty() {
            u.push_str("&event=");
            u.push_str(event);
        }
        u
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceReply {
    pub interval: Duration,
    pub min_interval: Option<Duration>,
    pub peers: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    #[error("tracker refused: {0}")]
    Failure(String),
    #[error("tracker reply is not a bencoded dictionary: {0}")]
    Malformed(String),
}

/// Parses a tracker's reply body: compact (6 bytes per peer) or dictionary peer lists.
pub fn parse_reply(body: &[u8]) -> Result<AnnounceReply, AnnounceError> {
    let v = bencode::decode(body).map_err(|e| AnnounceError::Malformed(e.to_string()))?;
    if !matches!(v, Value::Dict(_)) {
        return Err(AnnounceError::Malformed("not a dictionary".into()));
    }
    if let Some(f) = v.get("failure reason").and_then(Value::as_bytes) {
        return Err(AnnounceError::Failure(String::from_utf8_lossy(f).into_owned()));
    }
    let secs = |k| v.get(k).and_then(Value::as_int).and_then(|n| u64::try_from(n).ok()).map(Duration::from_secs);
    let interval = secs("interval").ok_or_else(|| AnnounceError::Malformed("no interval".into()))?;
    let mut peers = Vec::new();
    match v.get("peers") {
        Some(Value::Bytes(b)) => {
            for p in b.chunks_exact(6) {
                let ip = Ipv4Addr::new(p[0], p[1], p[2], p[3]);
                peers.push(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([p[4], p[5]]))));
            }
        }
        Some(Value::List(list)) => {
            for p in list {
                let ip = p.get("ip").and_then(Value::as_bytes).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse().ok());
                let port = p.get("port").and_then(Value::as_int).and_then(|n| u16::try_from(n).ok());
                if let (Some(ip), Some(port)) = (ip, port) {
                    peers.push(SocketAddr::new(ip, port));
                }
            }
        }
        None => {}
        Some(_) => return Err(AnnounceError::Malformed("peers is neither a string nor a list".into())),
    }
    Ok(AnnounceReply { interval, min_interval: secs("min interval"), peers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_binary_ids() {
        let a = Announce { info_hash: [0xAB; 20], peer_id: *b"-SB0001-abcdefghijkl", port: 6881, uploaded: 1, downloaded: 2, left: 3, event: AnnounceEvent::Started, numwant: 50 };
        let u = a.url("http://10.0.0.1:6969/announce");
        assert!(u.starts_with("http://10.0.0.1:6969/announce?info_hash=%AB%AB"), "{u}");
        assert!(u.contains("&peer_id=-SB0001-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3&compact=1&numwant=50&event=started"), "{u}");
    }

    #[test]
    fn compact_and_dictionary_peer_lists_and_failures() {
        let r = parse_reply(b"d8:intervali30e12:min intervali5e5:peers12:\x0a\x00\x00\x02\x1a\xe1\x0a\x00\x00\x03\x1a\xe2e").unwrap();
        assert_eq!(r.interval, Duration::from_secs(30));
        assert_eq!(r.min_interval, Some(Duration::from_secs(5)));
        assert_eq!(r.peers, vec!["10.0.0.2:6881".parse().unwrap(), "10.0.0.3:6882".parse().unwrap()]);
        let r = parse_reply(b"d8:intervali60e5:peersld2:ip8:10.0.0.94:porti7000eeee").unwrap();
        assert_eq!(r.peers, vec!["10.0.0.9:7000".parse().unwrap()]);
        assert_eq!(parse_reply(b"d14:failure reason9:not founde"), Err(AnnounceError::Failure("not found".into())));
        assert!(matches!(parse_reply(b"<html>"), Err(AnnounceError::Malformed(_))));
        assert!(matches!(parse_reply(b"d5:peers3:abce"), Err(AnnounceError::Malformed(_))));
    }
}
