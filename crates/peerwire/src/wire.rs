//! Handshake and messages: encode into a buffer, decode from a stream of bytes.

/// `\x13BitTorrent protocol`.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// Reserved byte 7, bit 0x04: Fast extension (BEP 6).
pub const FAST_EXTENSION: (usize, u8) = (7, 0x04);
/// Reserved byte 5, bit 0x10: extension protocol (BEP 10).
pub const EXTENSION_PROTOCOL: (usize, u8) = (5, 0x10);
/// The block size everyone uses (and the most a peer may ask for in one request).
pub const BLOCK: u32 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Ours: Fast extension and extension protocol on.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Self {
        let mut reserved = [0u8; 8];
        reserved[FAST_EXTENSION.0] |= FAST_EXTENSION.1;
        reserved[EXTENSION_PROTOCOL.0] |= EXTENSION_PROTOCOL.1;
        Handshake { reserved, info_hash, peer_id }
    }
    pub fn supports(&self, flag: (usize, u8)) -> bool {
        self.reserved[flag.0] & flag.1 != 0
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(PROTOCOL);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.info_hash);
        out.extend_from_slice(&self.peer_id);
    }
}

/// One peer-wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    /// Raw bytes; check them with [`crate::Bitfield::from_bytes`].
    Bitfield(Vec<u8>),
    Request {
        index: u32,
        begin: u32,
        length: u32,
    },
    Piece {
        index: u32,
        begin: u32,
        data: Vec<u8>,
    },
    Cancel {
        index: u32,
        begin: u32,
        length: u32,
    },
    Port(u16),
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject {
        index: u32,
        begin: u32,
        length: u32,
    },
    AllowedFast(u32),
    /// BEP 10: `id` 0 is the extension handshake (a bencoded dictionary).
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
    /// A message id we do not know; BEP 3 says to ignore it.
    Unknown {
        id: u8,
        len: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a BitTorrent handshake")]
    BadHandshake,
    #[error("message of {len} bytes is longer than the {max} allowed")]
    TooLong { len: u32, max: u32 },
    #[error("message id {id} with a payload of {len} bytes (wrong length)")]
    BadLength { id: u8, len: u32 },
}

const CHOKE: u8 = 0;
const UNCHOKE: u8 = 1;
const INTERESTED: u8 = 2;
const NOT_INTERESTED: u8 = 3;
const HAVE: u8 = 4;
const BITFIELD: u8 = 5;
const REQUEST: u8 = 6;
const PIECE: u8 = 7;
const CANCEL: u8 = 8;
const PORT: u8 = 9;
const SUGGEST: u8 = 0x0D;
const HAVE_ALL: u8 = 0x0E;
const HAVE_NONE: u8 = 0x0F;
const REJECT: u8 = 0x10;
const ALLOWED_FAST: u8 = 0x11;
const EXTENDED: u8 = 20;

impl Message {
    /// Appends the length-prefixed message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut frame = |id: u8, parts: &[&[u8]]| {
            let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.push(id);
            for p in parts {
                out.extend_from_slice(p);
            }
        };
        let be = |v: u32| v.to_be_bytes();
        match self {
            Message::KeepAlive => out.extend_from_slice(&[0, 0, 0, 0]),
            Message::Choke => frame(CHOKE, &[]),
            Message::Unchoke => frame(UNCHOKE, &[]),
            Message::Interested => frame(INTERESTED, &[]),
            Message::NotInterested => frame(NOT_INTERESTED, &[]),
            Message::Have(i) => frame(HAVE, &[&be(*i)]),
            Message::Bitfield(b) => frame(BITFIELD, &[b]),
            Message::Request { index, begin, length } => frame(REQUEST, &[&be(*index), &be(*begin), &be(*length)]),
            Message::Piece { index, begin, data } => frame(PIECE, &[&be(*index), &be(*begin), data]),
            Message::Cancel { index, begin, length } => frame(CANCEL, &[&be(*index), &be(*begin), &be(*length)]),
            Message::Port(p) => frame(PORT, &[&p.to_be_bytes()]),
            Message::Suggest(i) => frame(SUGGEST, &[&be(*i)]),
            Message::HaveAll => frame(HAVE_ALL, &[]),
            Message::HaveNone => frame(HAVE_NONE, &[]),
            Message::Reject { index, begin, length } => frame(REJECT, &[&be(*index), &be(*begin), &be(*length)]),
            Message::AllowedFast(i) => frame(ALLOWED_FAST, &[&be(*i)]),
            Message::Extended { id, payload } => frame(EXTENDED, &[&[*id], payload]),
            Message::Unknown { .. } => {} // never sent
        }
    }

    fn decode(id: u8, p: &[u8]) -> Result<Message, WireError> {
        let len = p.len() as u32;
        let bad = || WireError::BadLength { id, len };
        let u32_at = |o: usize| u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
        let exact = |n: usize| if p.len() == n { Ok(()) } else { Err(bad()) };
        let triple = |p: &[u8]| -> Result<(u32, u32, u32), WireError> {
            if p.len() != 12 {
                return Err(bad());
            }
            Ok((u32_at(0), u32_at(4), u32_at(8)))
        };
        Ok(match id {
            CHOKE => exact(0).map(|_| Message::Choke)?,
            UNCHOKE => exact(0).map(|_| Message::Unchoke)?,
            INTERESTED => exact(0).map(|_| Message::Interested)?,
            NOT_INTERESTED => exact(0).map(|_| Message::NotInterested)?,
            HAVE => exact(4).map(|_| Message::Have(u32_at(0)))?,
            BITFIELD => Message::Bitfield(p.to_vec()),
            REQUEST => triple(p).map(|(index, begin, length)| Message::Request { index, begin, length })?,
            PIECE => {
                if p.len() < 8 {
                    return Err(bad());
                }
                Message::Piece { index: u32_at(0), begin: u32_at(4), data: p[8..].to_vec() }
            }
            CANCEL => triple(p).map(|(index, begin, length)| Message::Cancel { index, begin, length })?,
            PORT => exact(2).map(|_| Message::Port(u16::from_be_bytes([p[0], p[1]])))?,
            SUGGEST => exact(4).map(|_| Message::Suggest(u32_at(0)))?,
            HAVE_ALL => exact(0).map(|_| Message::HaveAll)?,
            HAVE_NONE => exact(0).map(|_| Message::HaveNone)?,
            REJECT => triple(p).map(|(index, begin, length)| Message::Reject { index, begin, length })?,
            ALLOWED_FAST => exact(4).map(|_| Message::AllowedFast(u32_at(0)))?,
            EXTENDED => match p.split_first() {
                Some((ext, rest)) => Message::Extended { id: *ext, payload: rest.to_vec() },
                None => return Err(bad()),
            },
            other => Message::Unknown { id: other, len },
        })
    }
}

/// What [`Decoder::next_frame`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Handshake(Handshake),
    Message(Message),
}

/// Turns a byte stream (handshake first, then messages) into frames.
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    handshake_seen: bool,
    max_len: u32,
}

impl Decoder {
    /// `max_len` bounds one message (a bitfield of the torrent, or a 16 KiB block + 9).
    pub fn new(max_len: u32) -> Self {
        Decoder { buf: Vec::new(), start: 0, handshake_seen: false, max_len }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        // Decoded bytes go before new ones come, once they are at least half of what is held:
        // a peer that always leaves a partial frame behind cannot grow the buffer, and each
        // byte is moved at most once on average.
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held in memory: undecoded ones, and decoded ones not yet discarded.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `None` if more bytes are needed, or an error after which the
    /// connection must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        let avail = &self.buf[self.start..];
        if !self.handshake_seen {
            if avail.len() < HANDSHAKE_LEN {
                // Refuse early if what we have cannot be a handshake.
                let n = avail.len().min(PROTOCOL.len());
                if avail[..n] != PROTOCOL[..n] {
                    return Err(WireError::BadHandshake);
                }
                return Ok(None);
            }
            if avail[..20] != PROTOCOL[..] {
                return Err(WireError::BadHandshake);
            }
            let mut h = Handshake { reserved: [0; 8], info_hash: [0; 20], peer_id: [0; 20] };
            h.reserved.copy_from_slice(&avail[20..28]);
            h.info_hash.copy_from_slice(&avail[28..48]);
            h.peer_id.copy_from_slice(&avail[48..68]);
            self.start += HANDSHAKE_LEN;
            self.handshake_seen = true;
            return Ok(Some(Frame::Handshake(h)));
        }
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]);
        if len > self.max_len {
            return Err(WireError::TooLong { len, max: self.max_len });
        }
        if len == 0 {
            self.start += 4;
            return Ok(Some(Frame::Message(Message::KeepAlive)));
        }
        if avail.len() < 4 + len as usize {
            return Ok(None);
        }
        let msg = Message::decode(avail[4], &avail[5..4 + len as usize])?;
        self.start += 4 + len as usize;
        Ok(Some(Frame::Message(msg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<Message> {
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(7),
            Message::Bitfield(vec![0xff, 0x80]),
            Message::Request { index: 1, begin: 16384, length: 16384 },
            Message::Piece { index: 2, begin: 0, data: vec![9; 100] },
            Message::Cancel { index: 1, begin: 0, length: 16384 },
            Message::Port(6881),
            Message::Suggest(3),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject { index: 4, begin: 32768, length: 16384 },
            Message::AllowedFast(5),
            Message::Extended { id: 0, payload: b"d1:md11:ut_metadatai1eee".to_vec() },
        ]
    }

    /// A peer that always leaves a partial frame in the buffer (100k keep-alives, sent one
    /// byte out of step) does not grow it: at most twice the frame limit is held.
    #[test]
    fn a_partial_frame_always_pending_does_not_grow_the_buffer() {
        let limit = 16384 + 13;
        let mut d = Decoder::new(limit);
        let mut stream = Vec::new();
        Handshake::new([1; 20], [2; 20]).encode(&mut stream);
        stream.extend(std::iter::repeat_n(0u8, 4 * 100_000));
        let (mut frames, mut most) = (0, 0);
        d.push(&stream[..HANDSHAKE_LEN + 1]);
        for chunk in stream[HANDSHAKE_LEN + 1..].chunks(4) {
            d.push(chunk);
            while d.next_frame().unwrap().is_some() {
                frames += 1;
            }
            most = most.max(d.held());
        }
        assert_eq!(frames, 1 + 100_000, "the handshake and every keep-alive, each completed by the next push");
        assert!(most <= 2 * limit as usize, "held {most} bytes at most");
        assert!(most <= HANDSHAKE_LEN + 8, "in fact no more than the handshake and two keep-alives: {most}");
    }

    #[test]
    fn everything_round_trips_even_one_byte_at_a_time() {
        let h = Handshake::new([1; 20], [2; 20]);
        assert!(h.supports(FAST_EXTENSION) && h.supports(EXTENSION_PROTOCOL));
        let mut bytes = Vec::new();
        h.encode(&mut bytes);
        for m in all_messages() {
            m.encode(&mut bytes);
        }
        for chunk in [bytes.len(), 1, 7] {
            let mut d = Decoder::new(BLOCK + 9);
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                d.push(c);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got[0], Frame::Handshake(h));
            assert_eq!(got[1..].to_vec(), all_messages().into_iter().map(Frame::Message).collect::<Vec<_>>());
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let mut d = Decoder::new(100);
        d.push(b"GET / HTTP/1.1\r\n");
        assert_eq!(d.next_frame(), Err(WireError::BadHandshake));

        let mut ok = Vec::new();
        Handshake::new([0; 20], [0; 20]).encode(&mut ok);
        let mut d = Decoder::new(100);
        d.push(&ok);
        d.next_frame().unwrap();
        d.push(&[0, 0, 1, 0, 7]);
        assert_eq!(d.next_frame(), Err(WireError::TooLong { len: 256, max: 100 }));

        for (id, payload) in [(HAVE, vec![1, 2]), (REQUEST, vec![0; 11]), (PIECE, vec![0; 7]), (CHOKE, vec![1]), (EXTENDED, vec![])] {
            let mut d = Decoder::new(100);
            d.push(&ok);
            d.next_frame().unwrap();
            let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
            m.push(id);
            m.extend(payload.iter());
            d.push(&m);
            assert!(matches!(d.next_frame(), Err(WireError::BadLength { .. })), "id {id}");
        }
        // Unknown ids are reported for the peer logic to ignore.
        let mut d = Decoder::new(100);
        d.push(&ok);
        d.next_frame().unwrap();
        d.push(&[0, 0, 0, 3, 99, 1, 2]);
        assert_eq!(d.next_frame(), Ok(Some(Frame::Message(Message::Unknown { id: 99, len: 2 }))));

        // Arbitrary bytes after a handshake: only frames or errors.
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let mut d = Decoder::new(BLOCK + 9);
            d.push(&ok);
            d.next_frame().unwrap();
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 24) as u8
                })
                .collect();
            d.push(&junk);
            while let Ok(Some(_)) = d.next_frame() {}
        }
    }
}
