//! Announce and scrape requests from the raw query bytes. `info_hash` and `peer_id` are
//! 20 raw bytes, percent-encoded byte by byte: they are not UTF-8, so a query-string parser
//! that decodes into `String` (axum's `Query`) mangles them. This one works on bytes.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Started,
    Completed,
    Stopped,
    /// A regular re-announce (absent or empty `event`).
    Update,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// Peers wanted (default [`DEFAULT_NUMWANT`], at most [`MAX_NUMWANT`]).
    pub numwant: usize,
    /// The client asked for a dictionary peer list (`compact=0`).
    pub want_dict: bool,
    /// `ip=` as the client claims it (the shell decides whether to believe it).
    pub claimed_ip: Option<Ipv4Addr>,
}

pub const DEFAULT_NUMWANT: usize = 50;
pub const MAX_NUMWANT: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("missing `{0}`")]
    Missing(&'static str),
    #[error("`{0}` is malformed")]
    Malformed(&'static str),
    #[error("bad percent-encoding")]
    BadEscape,
}

/// Decodes one percent-encoded component (`+` is a space, as in forms).
pub fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(QueryError::BadEscape)?;
                let digit = |c: u8| (c as char).to_digit(16).ok_or(QueryError::BadEscape);
                out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Decoded `key=value` pairs, in order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Every `key=value` pair, decoded, in order (keys may repeat: scrape's `info_hash`).
pub fn pairs(query: &[u8]) -> Result<Pairs, QueryError> {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|&b| b == b'=') {
                Some(eq) => (&p[..eq], &p[eq + 1..]),
                None => (p, &[][..]),
            };
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn get<'a>(pairs: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    pairs.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v.as_slice())
}

fn id20(pairs: &[(Vec<u8>, Vec<u8>)], key: &'static str) -> Result<[u8; 20], QueryError> {
    get(pairs, key).ok_or(QueryError::Missing(key))?.try_into().map_err(|_| QueryError::Malformed(key))
}

fn number<T: std::str::FromStr>(pairs: &[(Vec<u8>, Vec<u8>)], key: &'static str) -> Result<Option<T>, QueryError> {
    match get(pairs, key) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).map(Some).ok_or(QueryError::Malformed(key)),
    }
}

/// Parses an announce's raw query string (the part after `?`).
pub fn parse_announce(query: &[u8]) -> Result<AnnounceRequest, QueryError> {
    let p = pairs(query)?;
    let event = match get(&p, "event") {
        None | Some(b"") | Some(b"empty") => Event::Update,
        Some(b"started") => Event::Started,
        Some(b"completed") => Event::Completed,
        Some(b"stopped") => Event::Stopped,
        Some(_) => return Err(QueryError::Malformed("event")),
    };
    let port: u16 = number(&p, "port")?.ok_or(QueryError::Missing("port"))?;
    if port == 0 {
        return Err(QueryError::Malformed("port"));
    }
    Ok(AnnounceRequest {
        info_hash: id20(&p, "info_hash")?,
        peer_id: id20(&p, "peer_id")?,
        port,
        uploaded: number(&p, "uploaded")?.unwrap_or(0),
        downloaded: number(&p, "downloaded")?.unwrap_or(0),
        left: number(&p, "left")?.ok_or(QueryError::Missing("left"))?,
        event,
        numwant: number::<usize>(&p, "numwant")?.unwrap_or(DEFAULT_NUMWANT).min(MAX_NUMWANT),
        want_dict: get(&p, "compact") == Some(b"0"),
        claimed_ip: get(&p, "ip").and_then(|v| std::str::from_utf8(v).ok()).and_then(|s| s.parse().ok()),
    })
}

/// Parses a scrape's raw query: every `info_hash` (none: the caller scrapes everything).
pub fn parse_scrape(query: &[u8]) -> Result<Vec<[u8; 20]>, QueryError> {
    pairs(query)?.into_iter().filter(|(k, _)| k == b"info_hash").map(|(_, v)| v.as_slice().try_into().map_err(|_| QueryError::Malformed("info_hash"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_ids_survive_and_defaults_apply() {
        let q = b"info_hash=%00%FF%20abcdefghijklmnopq&peer_id=-SB0100-%01%02%03%04%05%06%07%08%09%0A%0B%0C&port=6881&uploaded=1&downloaded=2&left=3&compact=1&event=started&numwant=999";
        let a = parse_announce(q).unwrap();
        assert_eq!(&a.info_hash[..3], &[0x00, 0xFF, 0x20]);
        assert_eq!(&a.info_hash[3..], b"abcdefghijklmnopq");
        assert_eq!(&a.peer_id[8..], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!((a.port, a.uploaded, a.downloaded, a.left, a.event, a.numwant, a.want_dict), (6881, 1, 2, 3, Event::Started, MAX_NUMWANT, false));
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let ok = "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0";
        assert!(parse_announce(ok.as_bytes()).is_ok());
        assert_eq!(parse_announce(ok.replace("port=1", "port=0").as_bytes()), Err(QueryError::Malformed("port")));
        assert_eq!(parse_announce(ok.replace("port=1", "port=70000").as_bytes()), Err(QueryError::Malformed("port")));
        assert_eq!(parse_announce(ok.replace("&left=0", "").as_bytes()), Err(QueryError::Missing("left")));
        assert_eq!(parse_announce(ok.replace("aaaaaaaaaaaaaaaaaaaa", "aaa").as_bytes()), Err(QueryError::Malformed("info_hash")));
        assert_eq!(parse_announce(format!("{ok}&event=bogus").as_bytes()), Err(QueryError::Malformed("event")));
        assert_eq!(parse_announce(format!("{ok}&x=%G1").as_bytes()), Err(QueryError::BadEscape));
        assert_eq!(parse_announce(format!("{ok}&x=%4").as_bytes()), Err(QueryError::BadEscape));
        assert_eq!(parse_scrape(b"info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=bbbbbbbbbbbbbbbbbbbb").unwrap().len(), 2);
        assert!(parse_scrape(b"info_hash=short").is_err());
    }
}
