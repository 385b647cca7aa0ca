//! Admission of connections (or transfers) by source address: at most `total` at once, and at
//! most `per_source` from one address, so a few LAN hosts cannot take every file descriptor
//! a listener has. A [`Permit`] holds a place until it is dropped. The peer listener, the
//! server's HTTP listener and its TFTP transfers each have one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::locks::lock;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
    refused: u64,
}

/// The caps and who holds a place now. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Admission {
    total: usize,
    per_source: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One place, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    source: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    pub fn new(total: usize, per_source: usize) -> Self {
        Admission { total, per_source, counts: Arc::default() }
    }

    /// A place for one more from `source`, or `None` (counted) when it or everyone is at the cap.
    pub fn admit(&self, source: IpAddr) -> Option<Permit> {
        let mut c = lock(&self.counts);
        let mine = c.by_source.get(&source).copied().unwrap_or(0);
        if c.total >= self.total || mine >= self.per_source {
            c.refused += 1;
            return None;
        }
        c.total += 1;
        *c.by_source.entry(source).or_insert(0) += 1;
        Some(Permit { source, counts: self.counts.clone() })
    }

    /// Places held now.
    pub fn held(&self) -> usize {
        lock(&self.counts).total
    }

    /// Admissions refused since start.
    pub fn refused(&self) -> u64 {
        lock(&self.counts).refused
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total -= 1;
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_source_and_in_total_and_places_come_back() {
        let a = Admission::new(3, 2);
        let (x, y, z): (IpAddr, IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let p1 = a.admit(x).unwrap();
        let _p2 = a.admit(x).unwrap();
        assert!(a.admit(x).is_none(), "two per source");
        let _p3 = a.admit(y).unwrap();
        assert!(a.admit(z).is_none(), "three in all");
        assert_eq!((a.held(), a.refused()), (3, 2));
        drop(p1);
        let _p4 = a.admit(z).expect("a place came back");
        assert!(a.admit(x).is_none(), "full again");
    }
}
