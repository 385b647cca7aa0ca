//! swarmboot's BitTorrent tracker, sans-IO: the server's axum handler passes the raw query
//! bytes and the client's address in and sends back the bytes that come out.
//!
//! - [`query`]: announce and scrape requests parsed from raw query bytes (binary
//!   `info_hash`/`peer_id` kept intact), with an error naming the bad field.
//! - [`table::PeerTable`]: the served swarms (a whitelist: the server's own torrents), their
//!   peers, `announce` (bounded random peer sets preferring the same subnet and fuller
//!   peers, short intervals for young swarms, expiry) and `scrape`.
//! - [`reply`]: bencoded announce (compact BEP 23 or dictionaries), scrape and failure replies.
//! - [`handle_announce`]: the three together; any input gives a reply, never a panic.
//!
//! Not here: sockets, HTTP, a clock (time is passed in), UDP trackers (BEP 15), IPv6 peers.

pub mod query;
pub mod reply;
pub mod table;

use std::net::Ipv4Addr;
use std::time::Instant;

pub use table::{PeerTable, PeerView, TrackerConfig};

/// An announce from raw query bytes to reply bytes: a malformed request or a refused one
/// gets a bencoded `failure reason` saying why.
pub fn handle_announce(table: &mut PeerTable, raw_query: &[u8], source: Ipv4Addr, now: Instant) -> Vec<u8> {
    let req = match query::parse_announce(raw_query) {
        Ok(r) => r,
        Err(e) => return reply::failure(&format!("bad announce: {e}")),
    };
    match table.announce(&req, source, now) {
        Ok(r) => reply::announce(&r, req.want_dict),
        Err(refusal) => reply::failure(&refusal.to_string()),
    }
}

/// A scrape from raw query bytes (no `info_hash`: every served torrent).
pub fn handle_scrape(table: &PeerTable, raw_query: &[u8]) -> Vec<u8> {
    let hashes = match query::parse_scrape(raw_query) {
        Ok(h) if h.is_empty() => table.info_hashes(),
        Ok(h) => h,
        Err(e) => return reply::failure(&format!("bad scrape: {e}")),
    };
    let entries: Vec<_> = hashes.iter().filter_map(|h| table.scrape(h).map(|e| (*h, e))).collect();
    reply::scrape(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our engine's announce URL, answered by the tracker, and the answer parsed by the
    /// engine's reply parser: both ends agree on the binary ids and the compact peers.
    #[test]
    fn our_engine_and_our_tracker_agree() {
        use swarmboot_swarm::announce::{parse_reply, Announce, AnnounceEvent};
        let mut t = PeerTable::new(TrackerConfig::default(), 5);
        let info_hash: [u8; 20] = std::array::from_fn(|i| (i * 13) as u8); // bytes 0x00..0xF7, not UTF-8
        t.allow(info_hash);
        let now = Instant::now();
        let mut ask = |n: u8, port: u16| {
            let mut peer_id = *b"-SB0100-\x00\xff%&=+ ?#/\x80;";
            peer_id[19] = n;
            let a = Announce { info_hash, peer_id, port, uploaded: 0, downloaded: 0, left: 5, event: AnnounceEvent::Started, numwant: 50 };
            let url = a.url("http://10.77.0.1:8080/announce");
            let query = url.split_once('?').unwrap().1;
            parse_reply(&handle_announce(&mut t, query.as_bytes(), Ipv4Addr::new(10, 77, 0, n), now)).unwrap()
        };
        assert!(ask(10, 6881).peers.is_empty());
        let r = ask(11, 6882);
        assert_eq!(r.peers, vec!["10.77.0.10:6881".parse().unwrap()]);
        assert_eq!(r.interval, TrackerConfig::default().young_interval);
    }

    #[test]
    fn round_trip_with_hostile_inputs() {
        let mut t = PeerTable::new(TrackerConfig::default(), 3);
        t.allow([0xAB; 20]);
        let now = Instant::now();
        let q = b"info_hash=%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB&peer_id=-SB0100-aaaaaaaaaaaa&port=6881&uploaded=0&downloaded=0&left=10&compact=1&event=started";
        let r = handle_announce(&mut t, q, Ipv4Addr::new(10, 0, 0, 2), now);
        assert!(r.starts_with(b"d8:complete"), "{}", String::from_utf8_lossy(&r));
        let other = b"info_hash=%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB&peer_id=-SB0100-bbbbbbbbbbbb&port=7000&left=0";
        let r = handle_announce(&mut t, other, Ipv4Addr::new(10, 0, 0, 3), now);
        assert!(r.ends_with(b"5:peers6:\x0a\x00\x00\x02\x1a\xe1e"), "{}", String::from_utf8_lossy(&r));
        let s = handle_scrape(&t, b"");
        assert!(s.windows(11).any(|w| w == b"completei1e"), "{}", String::from_utf8_lossy(&s));
        for bad in [&b""[..], b"&&&", b"info_hash=%", b"port=99999999999999999999", &[0xFF, 0x00, b'%', b'Z']] {
            let r = handle_announce(&mut t, bad, Ipv4Addr::LOCALHOST, now);
            assert!(r.starts_with(b"d14:failure reason"), "{}", String::from_utf8_lossy(&r));
        }
        let unknown = String::from_utf8_lossy(q).replace("%AB", "%CD");
        assert!(String::from_utf8_lossy(&handle_announce(&mut t, unknown.as_bytes(), Ipv4Addr::LOCALHOST, now)).contains("unknown torrent"));
    }
}
