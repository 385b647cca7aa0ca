//! TFTP packets: what a client sends (RRQ, WRQ, ACK, ERROR) parsed once; what the server sends
//! (DATA, OACK, ERROR) encoded.

/// Opcodes.
pub const RRQ: u16 = 1;
pub const WRQ: u16 = 2;
pub const DATA: u16 = 3;
pub const ACK: u16 = 4;
pub const ERROR: u16 = 5;
pub const OACK: u16 = 6;

/// TFTP error codes (RFC 1350, 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTransferId = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionsRefused = 8,
}

/// Options a read request asked for (already range-checked; unknown ones are ignored, as RFC
/// 2347 says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOptions {
    pub blksize: Option<u16>,
    /// `tsize` was asked for (its value in a read request is 0 and meaningless).
    pub tsize: bool,
    pub timeout_secs: Option<u8>,
    pub windowsize: Option<u16>,
}

/// A read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The file name as sent (bytes up to the NUL; checked by [`crate::path::resolve`]).
    pub filename: Vec<u8>,
    /// `octet` or `netascii` (lowercased). Both are served as bytes.
    pub mode: String,
    pub options: RequestOptions,
}

/// What arrived on the server's well-known port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initial {
    Read(Request),
    /// A write request: this server is read-only.
    Write,
}

/// What arrived on a transfer's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Ack(u16),
    Error(u16),
}

/// A datagram that is not a valid TFTP packet of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("shorter than an opcode")]
    Truncated,
    #[error("unexpected opcode {0}")]
    Opcode(u16),
    #[error("a string is not NUL-terminated")]
    Unterminated,
    #[error("bad transfer mode")]
    Mode,
}

fn opcode(b: &[u8]) -> Result<u16, Malformed> {
    match b {
        [a, c, ..] => Ok(u16::from_be_bytes([*a, *c])),
        _ => Err(Malformed::Truncated),
    }
}

/// Splits NUL-terminated strings; fails if the last one is not terminated.
fn strings(mut b: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let end = b.iter().position(|&c| c == 0).ok_or(Malformed::Unterminated)?;
        out.push(&b[..end]);
        b = &b[end + 1..];
    }
    Ok(out)
}

/// Parses a datagram that arrived on port 69.
pub fn parse_initial(b: &[u8]) -> Result<Initial, Malformed> {
    match opcode(b)? {
        RRQ => {}
        WRQ => return Ok(Initial::Write),
        other => return Err(Malformed::Opcode(other)),
    }
    let parts = strings(&b[2..])?;
    let (filename, mode) = match parts.as_slice() {
        [f, m, ..] => (f.to_vec(), String::from_utf8_lossy(m).to_ascii_lowercase()),
        _ => return Err(Malformed::Unterminated),
    };
    if mode != "octet" && mode != "netascii" {
        return Err(Malformed::Mode);
    }
    let mut options = RequestOptions::default();
    for pair in parts[2..].chunks(2) {
        let [name, value] = pair else { break };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value: Option<u64> = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        match (name.as_str(), value) {
            ("blksize", Some(v)) if (8..=65464).contains(&v) => options.blksize = Some(v as u16),
            ("tsize", Some(_)) => options.tsize = true,
            ("timeout", Some(v)) if (1..=255).contains(&v) => options.timeout_secs = Some(v as u8),
            ("windowsize", Some(v)) if (1..=65535).contains(&v) => options.windowsize = Some(v as u16),
            _ => {} // unknown or out of range: not acknowledged
        }
    }
    Ok(Initial::Read(Request { filename, mode, options }))
}

/// Parses a datagram that arrived on a transfer's port.
pub fn parse_reply(b: &[u8]) -> Result<Reply, Malformed> {
    match (opcode(b)?, b.len()) {
        (ACK, 4..) => Ok(Reply::Ack(u16::from_be_bytes([b[2], b[3]]))),
        (ERROR, 4..) => Ok(Reply::Error(u16::from_be_bytes([b[2], b[3]]))),
        (ACK | ERROR, _) => Err(Malformed::Truncated),
        (other, _) => Err(Malformed::Opcode(other)),
    }
}

/// Writes a DATA header into the first 4 bytes of `buf` (the shell reads the block after it).
pub fn write_data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + message.len());
    v.extend_from_slice(&ERROR.to_be_bytes());
    v.extend_from_slice(&(code as u16).to_be_bytes());
    v.extend(message.bytes().filter(|&b| b != 0));
    v.push(0);
    v
}

pub fn encode_oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut v = OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(parts: &[&str]) -> Vec<u8> {
        let mut v = RRQ.to_be_bytes().to_vec();
        for p in parts {
            v.extend_from_slice(p.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn read_request_with_options() {
        let r = parse_initial(&rrq(&["undionly.kpxe", "OCTET", "blksize", "1468", "TSIZE", "0", "windowsize", "8", "timeout", "3", "foo", "bar"])).unwrap();
        let Initial::Read(r) = r else { panic!() };
        assert_eq!(r.filename, b"undionly.kpxe");
        assert_eq!(r.mode, "octet");
        assert_eq!(r.options, RequestOptions { blksize: Some(1468), tsize: true, timeout_secs: Some(3), windowsize: Some(8) });
    }

    #[test]
    fn out_of_range_options_are_not_acknowledged() {
        let Initial::Read(r) = parse_initial(&rrq(&["f", "octet", "blksize", "7", "timeout", "0", "windowsize", "70000", "blksize", "x"])).unwrap() else { panic!() };
        assert_eq!(r.options, RequestOptions::default());
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(parse_initial(&[0]), Err(Malformed::Truncated));
        assert_eq!(parse_initial(&[0, 3, 0, 1]), Err(Malformed::Opcode(3)));
        assert_eq!(parse_initial(&[0, 1, b'f', 0, b'o']), Err(Malformed::Unterminated));
        assert_eq!(parse_initial(&rrq(&["f"])), Err(Malformed::Unterminated));
        assert_eq!(parse_initial(&rrq(&["f", "mail"])), Err(Malformed::Mode));
        assert_eq!(parse_initial(&rrq(&["f", "octet"])[..0]), Err(Malformed::Truncated));
        assert_eq!(parse_initial(&[0, 2, b'f', 0, b'o', b'c', b't', b'e', b't', 0]), Ok(Initial::Write));
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(&[0, 4, 0, 7]), Ok(Reply::Ack(7)));
        assert_eq!(parse_reply(&[0, 5, 0, 8, b'x', 0]), Ok(Reply::Error(8)));
        assert_eq!(parse_reply(&[0, 4, 0]), Err(Malformed::Truncated));
        assert_eq!(parse_reply(&[0, 1, 0, 0]), Err(Malformed::Opcode(1)));
        assert_eq!(encode_error(ErrorCode::FileNotFound, "no\0pe"), vec![0, 5, 0, 1, b'n', b'o', b'p', b'e', 0]);
        assert_eq!(encode_oack(&[("tsize", "42".into())]), vec![0, 6, b't', b's', b'i', b'z', b'e', 0, b'4', b'2', 0]);
    }
}
