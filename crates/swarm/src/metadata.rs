//! BEP 9 (`ut_metadata`), the serving side: a peer that joined by magnet link gets the torrent's
//! `info` dictionary from us in 16 KiB pieces, so `/magnet/<sha256>` works for any client even
//! when no other client is in the swarm. Sans-IO: extension payloads in, payloads out. We never
//! ask for metadata ourselves (we always start from a torrent).

use swarmboot_torrent::bencode;

/// The extension id we ask peers to use for `ut_metadata` messages to us.
pub const OUR_ID: u8 = 1;
/// BEP 9's metadata piece size.
pub const PIECE: usize = 16 * 1024;

/// Our extension handshake (BEP 10 message id 0).
pub fn handshake(metadata_size: usize) -> Vec<u8> {
    format!("d1:md11:ut_metadatai{OUR_ID}ee13:metadata_sizei{metadata_size}e1:v15:swarmboot 0.1.0e").into_bytes()
}

/// The id a peer wants its `ut_metadata` messages sent with, from its extension handshake
/// (`None`: it does not speak `ut_metadata`, or turned it off with 0).
pub fn their_id(handshake: &[u8]) -> Option<u8> {
    let v = bencode::decode(handshake).ok()?;
    let id = v.get("m")?.get("ut_metadata")?.as_int()?;
    u8::try_from(id).ok().filter(|&i| i != 0)
}

/// The piece a `ut_metadata` request asks for (`None`: not a request, or malformed).
pub fn requested_piece(payload: &[u8]) -> Option<u32> {
    let v = bencode::decode(payload).ok()?;
    if v.get("msg_type")?.as_int()? != 0 {
        return None;
    }
    u32::try_from(v.get("piece")?.as_int()?).ok()
}

/// The answer to a request for `piece` of `info`: the data, or a reject past the end.
pub fn reply(piece: u32, info: &[u8]) -> Vec<u8> {
    let start = piece as usize * PIECE;
    if start >= info.len() {
        return format!("d8:msg_typei2e5:piecei{piece}ee").into_bytes();
    }
    let chunk = &info[start..(start + PIECE).min(info.len())];
    let mut out = format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{}ee", info.len()).into_bytes();
    out.extend_from_slice(chunk);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_torrent::bencode::Value;

    #[test]
    fn handshakes_and_requests_round_trip() {
        let hs = handshake(40_000);
        let v = bencode::decode(&hs).expect("canonical bencode");
        assert_eq!(v.get("metadata_size").and_then(Value::as_int), Some(40_000));
        assert_eq!(their_id(&hs), Some(OUR_ID));
        assert_eq!(their_id(b"d1:md11:ut_metadatai0eee"), None, "0 turns it off");
        assert_eq!(their_id(b"d1:md6:ut_pexi2eee"), None);
        assert_eq!(their_id(b"garbage"), None);
        assert_eq!(requested_piece(b"d8:msg_typei0e5:piecei2ee"), Some(2));
        assert_eq!(requested_piece(b"d8:msg_typei1e5:piecei2ee"), None, "data is not a request");
        assert_eq!(requested_piece(b"d8:msg_typei0e5:piecei-1ee"), None);
        assert_eq!(requested_piece(b"d8:msg_typei0e"), None);
    }

    #[test]
    fn replies_cover_the_info_dict_then_reject() {
        let info: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut got = Vec::new();
        for piece in 0..3 {
            let r = reply(piece, &info);
            let head = format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei40000ee");
            assert!(r.starts_with(head.as_bytes()));
            got.extend_from_slice(&r[head.len()..]);
        }
        assert_eq!(got, info);
        assert_eq!(reply(3, &info), b"d8:msg_typei2e5:piecei3ee");
    }
}
