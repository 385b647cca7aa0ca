//! Bencode: integers, byte strings, lists, dictionaries. Decoding is strict (canonical
//! integers, sorted unique keys, nothing after the value, bounded nesting) and never panics.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("unexpected end at byte {0}")]
    Eof(usize),
    #[error("unexpected byte at {0}")]
    Unexpected(usize),
    #[error("bad integer at byte {0}")]
    BadInt(usize),
    #[error("dictionary keys not sorted or repeated at byte {0}")]
    KeyOrder(usize),
    #[error("nested deeper than {0}")]
    TooDeep(usize),
    #[error("{0} bytes after the value")]
    Trailing(usize),
}

const MAX_DEPTH: usize = 64;

impl Value {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Value::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        if let Value::Int(i) = self {
            Some(*i)
        } else {
            None
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        if let Value::Bytes(b) = self {
            Some(b)
        } else {
            None
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        if let Value::List(l) = self {
            Some(l)
        } else {
            None
        }
    }
}

/// Decodes one value that spans all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, BencodeError> {
    let mut p = Parser { b: input, at: 0, spans: None };
    let v = p.value(0)?;
    if p.at != input.len() {
        return Err(BencodeError::Trailing(input.len() - p.at));
    }
    Ok(v)
}

/// Like [`decode`], and also the byte range of the top-level dictionary's value for `key`.
pub fn decode_with_span(input: &[u8], key: &[u8]) -> Result<(Value, Option<std::ops::Range<usize>>), BencodeError> {
    let mut p = Parser { b: input, at: 0, spans: Some((key.to_vec(), None)) };
    let v = p.value(0)?;
    if p.at != input.len() {
        return Err(BencodeError::Trailing(input.len() - p.at));
    }
    Ok((v, p.spans.and_then(|s| s.1)))
}

struct Parser<'a> {
    b: &'a [u8],
    at: usize,
    spans: Option<(Vec<u8>, Option<std::ops::Range<usize>>)>,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.b.get(self.at).copied().ok_or(BencodeError::Eof(self.at))
    }

    fn int_until(&mut self, end: u8) -> Result<i64, BencodeError> {
        let start = self.at;
        let rel = self.b[start..].iter().position(|&c| c == end).ok_or(BencodeError::Eof(self.b.len()))?;
        let s = std::str::from_utf8(&self.b[start..start + rel]).map_err(|_| BencodeError::BadInt(start))?;
        let canonical = !s.is_empty()
            && (s == "0" || (!s.starts_with('0') && !s.starts_with("-0") && s != "-"))
            && s.bytes().enumerate().all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == b'-'));
        if !canonical {
            return Err(BencodeError::BadInt(start));
        }
        let v = s.parse::<i64>().map_err(|_| BencodeError::BadInt(start))?;
        self.at = start + rel + 1;
        Ok(v)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BencodeError> {
        let at = self.at;
        let len = self.int_until(b':')?;
        let len = usize::try_from(len).map_err(|_| BencodeError::BadInt(at))?;
        let end = self.at.checked_add(len).filter(|&e| e <= self.b.len()).ok_or(BencodeError::Eof(self.b.len()))?;
        let v = self.b[self.at..end].to_vec();
        self.at = end;
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        if depth > MAX_DEPTH {
            return Err(BencodeError::TooDeep(MAX_DEPTH));
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                Ok(Value::Int(self.int_until(b'e')?))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' => {
                self.at += 1;
                let mut l = Vec::new();
                while self.peek()? != b'e' {
                    l.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(l))
            }
            b'd' => {
                self.at += 1;
                let mut d = BTreeMap::new();
                let mut last: Option<Vec<u8>> = None;
                while self.peek()? != b'e' {
                    let key_at = self.at;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(BencodeError::Unexpected(key_at));
                    }
                    let k = self.bytes()?;
                    if last.as_ref().is_some_and(|l| *l >= k) {
                        return Err(BencodeError::KeyOrder(key_at));
                    }
                    let start = self.at;
                    let v = self.value(depth + 1)?;
                    if depth == 0 {
                        if let Some((want, span)) = &mut self.spans {
                            if *want == k {
                                *span = Some(start..self.at);
                            }
                        }
                    }
                    last = Some(k.clone());
                    d.insert(k, v);
                }
                self.at += 1;
                Ok(Value::Dict(d))
            }
            _ => Err(BencodeError::Unexpected(self.at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_spans() {
        let text = b"d4:infod6:lengthi3e4:name1:ae8:announce3:urle";
        // keys must be sorted: "info" < "announce" is false, so this is refused...
        assert!(matches!(decode(text), Err(BencodeError::KeyOrder(_))));
        let text = b"d8:announce3:url4:infod6:lengthi3e4:name1:aee";
        let (v, span) = decode_with_span(text, b"info").unwrap();
        assert_eq!(&text[span.unwrap()], b"d6:lengthi3e4:name1:ae");
        assert_eq!(v.to_bytes(), text.to_vec());
        assert_eq!(v.get("info").unwrap().get("length").unwrap().as_int(), Some(3));
    }

    #[test]
    fn strictness() {
        for bad in [&b"i03e"[..], b"i-0e", b"ie", b"i-e", b"5:abc", b"l", b"d1:a", b"x", b"i1ei2e", b"d1:ai1e1:ai2ee", b"di1ei2ee", b"-1:a"] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = [b'l'; 100].iter().chain([b'e'; 100].iter()).copied().collect::<Vec<u8>>();
        assert_eq!(decode(&deep), Err(BencodeError::TooDeep(MAX_DEPTH)));
        assert_eq!(decode(b"i-42e"), Ok(Value::Int(-42)));
        assert_eq!(decode(b"0:"), Ok(Value::Bytes(vec![])));
        assert!(decode(b"99999999999999999999:a").is_err());
    }
}
