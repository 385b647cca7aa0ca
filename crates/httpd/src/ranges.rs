//! Byte ranges and content types for serving files: which bytes a `Range` header asks of a
//! file (one range as asked; several, rare, answered with the whole file; one that does not
//! parse ignored, as RFC 9110 allows; one that does not fit answered 416), and a file's
//! content type by its name. The node's shares and the server's WebDAV serve files with them.

use std::ops::RangeInclusive;

/// What to send of a file of `len` bytes for a `Range` header (`None`: the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bytes {
    Whole,
    /// 206 with these bytes.
    Part(RangeInclusive<u64>),
    /// 416.
    Unsatisfiable,
}

/// One range is served as asked; several (rare, multipart) are answered with the whole file;
/// a header that does not parse is ignored (as RFC 9110 allows); a range that does not fit
/// the file, or ends before it starts, is answered 416.
pub fn bytes_for(range: Option<&str>, len: u64) -> Bytes {
    let Some(h) = range else { return Bytes::Whole };
    let Ok(parsed) = http_range_header::parse_range_header(h) else { return Bytes::Whole };
    if len == 0 {
        return Bytes::Unsatisfiable;
    }
    match parsed.validate(len) {
        Ok(v) if v.len() == 1 => Bytes::Part(v[0].clone()),
        Ok(_) => Bytes::Whole,
        Err(_) => Bytes::Unsatisfiable,
    }
}

/// The content type for a file name (by its extension; `application/octet-stream` when unknown).
pub fn content_type(name: &str) -> String {
    let m = mime_guess::from_path(name).first_or_octet_stream();
    if m.type_() == "text" {
        format!("{m}; charset=utf-8")
    } else {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ranges_as_asked_or_the_whole_file() {
        assert_eq!(bytes_for(None, 100), Bytes::Whole);
        assert_eq!(bytes_for(Some("bytes=0-9"), 100), Bytes::Part(0..=9));
        assert_eq!(bytes_for(Some("bytes=90-"), 100), Bytes::Part(90..=99));
        assert_eq!(bytes_for(Some("bytes=-10"), 100), Bytes::Part(90..=99));
        assert_eq!(bytes_for(Some("bytes=50-500"), 100), Bytes::Part(50..=99));
        assert_eq!(bytes_for(Some("bytes=0-1,5-6"), 100), Bytes::Whole);
        assert_eq!(bytes_for(Some("bytes=200-"), 100), Bytes::Unsatisfiable);
        assert_eq!(bytes_for(Some("bytes=0-0"), 0), Bytes::Unsatisfiable);
        assert_eq!(bytes_for(Some("chars=0-1"), 100), Bytes::Whole);
        assert_eq!(bytes_for(Some("bytes=9-1"), 100), Bytes::Unsatisfiable, "reversed: rejected (RFC 9110 allows ignoring or rejecting)");
    }
}
