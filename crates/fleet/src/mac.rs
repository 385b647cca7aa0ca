//! A machine's Ethernet address: the fleet's key.

use std::fmt;
use std::str::FromStr;

/// A 48-bit MAC address; written lowercase `aa:bb:cc:dd:ee:ff`, read with `:` or `-` in
/// either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// From a DHCP `chaddr` (its first 6 bytes; `None` when shorter).
    pub fn from_bytes(bytes: &[u8]) -> Option<Mac> {
        bytes.get(..6).map(|b| Mac([b[0], b[1], b[2], b[3], b[4], b[5]]))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (aa:bb:cc:dd:ee:ff)")]
pub struct BadMac(pub String);

impl FromStr for Mac {
    type Err = BadMac;
    fn from_str(s: &str) -> Result<Mac, BadMac> {
        let bad = || BadMac(s.chars().take(40).collect());
        if s.len() != 17 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        for (o, p) in out.iter_mut().zip(parts) {
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(Mac(out))
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_separators_and_cases_and_writes_lowercase_colons() {
        let m: Mac = "52:54:00:AB:cd:01".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert_eq!("52-54-00-ab-cd-01".parse::<Mac>().unwrap(), m);
        for bad in ["", "52:54:00:ab:cd", "52:54:00:ab:cd:0g", "5254:00:ab:cd:01:", "52:54:00:ab:cd:011", "+2:54:00:ab:cd:01"] {
            assert!(bad.parse::<Mac>().is_err(), "{bad:?}");
        }
        assert_eq!(Mac::from_bytes(&[1, 2, 3, 4, 5, 6, 0, 0]), Some(Mac([1, 2, 3, 4, 5, 6])));
        assert_eq!(Mac::from_bytes(&[1, 2, 3]), None);
    }
}
