//! What the node served: bytes and requests per protocol and share, kept across restarts of
//! the agent (a small JSON file it rewrites whole; elchOS keeps it in `/var/lib/elchos`, which
//! lives as long as the boot).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use swarmboot_checkin::report::Served;

/// Counters by (protocol, share).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    by: BTreeMap<String, BTreeMap<String, Count>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub bytes: u64,
    pub requests: u64,
}

/// Most files a node's counters can name in all (a share per disk; protocols are few).
const MAX_KEYS: usize = 4096;
/// Longest counters file read.
const MAX_FILE: u64 = 1 << 20;

impl Counters {
    /// One request of `protocol` to `share` that sent `bytes`.
    pub fn add(&mut self, protocol: &str, share: &str, bytes: u64) {
        self.count(protocol, share, bytes, 1);
    }

    /// One request begins (its bytes come with [`Counters::add_bytes`] as they leave).
    pub fn add_request(&mut self, protocol: &str, share: &str) {
        self.count(protocol, share, 0, 1);
    }

    /// Bytes of a request under way.
    pub fn add_bytes(&mut self, protocol: &str, share: &str, bytes: u64) {
        self.count(protocol, share, bytes, 0);
    }

    fn count(&mut self, protocol: &str, share: &str, bytes: u64, requests: u64) {
        let known = self.by.get(protocol).is_some_and(|m| m.contains_key(share));
        if !known && self.len() >= MAX_KEYS {
            return;
        }
        let c = self.by.entry(protocol.to_string()).or_default().entry(share.to_string()).or_default();
        c.bytes = c.bytes.saturating_add(bytes);
        c.requests = c.requests.saturating_add(requests);
    }

    fn len(&self) -> usize {
        self.by.values().map(BTreeMap::len).sum()
    }

    /// Bytes of `protocol` over every share.
    pub fn bytes_of(&self, protocol: &str) -> u64 {
        self.by.get(protocol).map_or(0, |m| m.values().map(|c| c.bytes).fold(0, u64::saturating_add))
    }

    /// The counters as a check-in lists them.
    pub fn served(&self) -> Vec<Served> {
        self.by.iter().flat_map(|(p, m)| m.iter().map(move |(s, c)| Served { protocol: p.clone(), share: s.clone(), bytes: c.bytes, requests: c.requests })).collect()
    }

    /// The counters saved at `path`; zero if there are none, and zero (with the reason) if the
    /// file cannot be read as counters — a damaged file never stops the agent.
    pub fn load(path: &Path) -> (Self, Option<String>) {
        let read = || -> Result<Self, String> {
            let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_FILE), &mut text).map_err(|e| e.to_string())?;
            let c: Counters = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if c.len() > MAX_KEYS {
                return Err(format!("{} counters, more than {MAX_KEYS}", c.len()));
            }
            Ok(c)
        };
        match read() {
            Ok(c) => (c, None),
            Err(_) if !path.exists() => (Counters::default(), None),
            Err(why) => (Counters::default(), Some(format!("{}: {why}; counting from zero", path.display()))),
        }
    }

    /// Writes the counters to `path` whole (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).expect("counters serialize"))?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_survive_a_restart_and_a_damaged_file() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("served.json");
        let (mut c, why) = Counters::load(&path);
        assert_eq!((c.clone(), why), (Counters::default(), None), "no file yet: zero");
        c.add("http", "music", 1000);
        c.add("http", "music", 24);
        c.add("ftp", "music", 66);
        c.add("http", "photos", 5);
        assert_eq!(c.bytes_of("http"), 1029);
        c.save(&path).unwrap();
        let (again, why) = Counters::load(&path);
        assert_eq!((&again, why), (&c, None));
        assert_eq!(again.served()[1], Served { protocol: "http".into(), share: "music".into(), bytes: 1024, requests: 2 });
        std::fs::write(&path, b"{not json").unwrap();
        let (zero, why) = Counters::load(&path);
        assert_eq!(zero, Counters::default());
        assert!(why.unwrap().contains("counting from zero"));
    }

    #[test]
    fn counters_are_bounded_and_saturate() {
        let mut c = Counters::default();
        for i in 0..(MAX_KEYS + 10) {
            c.add("http", &format!("share{i}"), 1);
        }
        assert_eq!(c.len(), MAX_KEYS);
        c.add("http", "share0", u64::MAX);
        assert_eq!(c.by["http"]["share0"].bytes, u64::MAX);
    }
}
