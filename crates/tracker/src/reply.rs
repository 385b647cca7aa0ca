//! Bencoded replies: announce (compact, BEP 23, or a list of dictionaries), scrape, and
//! `failure reason`.

use std::collections::BTreeMap;

use swarmboot_torrent::bencode::Value;

use crate::table::{AnnounceReply, ScrapeEntry};

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(entries.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect::<BTreeMap<_, _>>())
}

pub fn announce(r: &AnnounceReply, want_dict: bool) -> Vec<u8> {
    let peers = if want_dict {
        Value::List(
            r.peers
                .iter()
                .map(|p| {
                    dict(vec![
                        // No `peer id`: ids are the clients' own business (as with
                        // `no_peer_id`); peers learn each other's in the handshake.
                        ("ip", Value::Bytes(p.ip().to_string().into_bytes())),
                        ("port", Value::Int(i64::from(p.port()))),
                    ])
                })
                .collect(),
        )
    } else {
        let mut b = Vec::with_capacity(6 * r.peers.len());
        for p in &r.peers {
            b.extend_from_slice(&p.ip().octets());
            b.extend_from_slice(&p.port().to_be_bytes());
        }
        Value::Bytes(b)
    };
    dict(vec![
        ("complete", Value::Int(i64::from(r.complete))),
        ("incomplete", Value::Int(i64::from(r.incomplete))),
        ("interval", Value::Int(r.interval.as_secs() as i64)),
        ("min interval", Value::Int(r.min_interval.as_secs() as i64)),
        ("peers", peers),
    ])
    .to_bytes()
}

pub fn failure(reason: &str) -> Vec<u8> {
    dict(vec![("failure reason", Value::Bytes(reason.as_bytes().to_vec()))]).to_bytes()
}

pub fn scrape(entries: &[([u8; 20], ScrapeEntry)]) -> Vec<u8> {
    let files = entries
        .iter()
        .map(|(h, e)| {
            (
                h.to_vec(),
                dict(vec![("complete", Value::Int(i64::from(e.complete))), ("downloaded", Value::Int(e.downloaded as i64)), ("incomplete", Value::Int(i64::from(e.incomplete)))]),
            )
        })
        .collect::<BTreeMap<_, _>>();
    dict(vec![("files", Value::Dict(files))]).to_bytes()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Duration;

    use super::*;

    #[test]
    fn compact_and_dictionary_forms() {
        let r = AnnounceReply {
            interval: Duration::from_secs(5),
            min_interval: Duration::from_secs(1),
            complete: 1,
            incomplete: 2,
            peers: vec![SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 6881)],
        };
        assert_eq!(announce(&r, false), b"d8:completei1e10:incompletei2e8:intervali5e12:min intervali1e5:peers6:\x0a\x4d\x00\x02\x1a\xe1e".to_vec());
        let d = String::from_utf8(announce(&r, true)).unwrap();
        assert!(d.contains("5:peersld2:ip9:10.77.0.24:porti6881eee"), "no peer ids handed out: {d}");
        assert_eq!(failure("no"), b"d14:failure reason2:noe".to_vec());
        assert_eq!(
            scrape(&[([b'a'; 20], ScrapeEntry { complete: 1, incomplete: 0, downloaded: 3 })]),
            b"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei1e10:downloadedi3e10:incompletei0eeee".to_vec()
        );
    }
}
