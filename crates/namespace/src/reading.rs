//! Reading a file of the namespace from the nodes that hold it, by byte ranges (for `swarmboot
//! mount` and WebDAV): how much to fetch for a read ([`Readahead`]: sequential reads fetch a
//! window that doubles up to a bound, a read elsewhere fetches only what was asked), and from
//! whom ([`Sources`]: one source at a time, the next when it fails, mid-file included).

/// How much to fetch for each read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readahead {
    min: u64,
    max: u64,
    window: u64,
    /// Where the last fetch ended: a read that misses there is sequential.
    next: Option<u64>,
}

impl Readahead {
    /// Windows from `min` up to `max` bytes.
    pub fn new(min: u64, max: u64) -> Self {
        Readahead { min, max: max.max(min), window: min, next: None }
    }

    /// The range to fetch (`start..end`) for a read of `len` bytes at `offset` (the first byte
    /// the caller does not hold) in a file of `size` bytes: the read itself, and, when it
    /// starts where the last fetch ended, a window (twice the last, up to the bound). Nothing
    /// past the end.
    pub fn range_for(&mut self, offset: u64, len: u64, size: u64) -> (u64, u64) {
        let sequential = self.next == Some(offset) || (self.next.is_none() && offset == 0);
        self.window = if sequential { (self.window.saturating_mul(2)).clamp(self.min, self.max) } else { self.min };
        let want = if sequential { len.max(self.window) } else { len };
        let start = offset.min(size);
        let end = offset.saturating_add(want).min(size);
        self.next = Some(end);
        (start, end)
    }
}

/// The sources of one file, tried one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    urls: Vec<String>,
    failed: Vec<bool>,
    current: usize,
}

impl Sources {
    pub fn new(urls: Vec<String>) -> Self {
        let n = urls.len();
        Sources { urls, failed: vec![false; n], current: 0 }
    }

    /// The source to read from now (`None`: every one failed).
    pub fn current(&self) -> Option<&str> {
        (!self.failed.get(self.current).copied().unwrap_or(true)).then(|| self.urls[self.current].as_str())
    }

    /// `url` failed: the next source that has not, if any.
    pub fn failed(&mut self, url: &str) -> Option<&str> {
        if let Some(i) = self.urls.iter().position(|u| u == url) {
            self.failed[i] = true;
        }
        if let Some(i) = (0..self.urls.len()).map(|k| (self.current + k) % self.urls.len()).find(|i| !self.failed[*i]) {
            self.current = i;
        }
        self.current()
    }

    /// Sources that have not failed.
    pub fn alive(&self) -> usize {
        self.failed.iter().filter(|f| !**f).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_reads_fetch_a_growing_window_and_random_ones_only_what_they_ask() {
        let mut r = Readahead::new(128 << 10, 4 << 20);
        let size = 100 << 20;
        assert_eq!(r.range_for(0, 4096, size), (0, 256 << 10), "from the start: sequential");
        assert_eq!(r.range_for(256 << 10, 4096, size), (256 << 10, 768 << 10), "where the last fetch ended");
        let (mut at, mut last) = (768 << 10, 0);
        for _ in 0..8 {
            let (s, e) = r.range_for(at, 4096, size);
            (at, last) = (e, e - s);
        }
        assert_eq!(last, 4 << 20, "bounded");
        assert_eq!(r.range_for(50 << 20, 4096, size), (50 << 20, (50 << 20) + 4096), "a jump: the read alone");
        assert_eq!(r.range_for(7 << 20, 4096, size), (7 << 20, (7 << 20) + 4096));
        assert_eq!(r.range_for(size - 10, 4096, size), (size - 10, size), "nothing past the end");
        assert_eq!(r.range_for(size + 5, 4096, size), (size, size));
    }

    #[test]
    fn a_failed_source_hands_over_to_the_next_until_none_is_left() {
        let mut s = Sources::new(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(s.current(), Some("a"));
        assert_eq!(s.failed("a"), Some("b"));
        assert_eq!(s.failed("c"), Some("b"), "a failure of another source keeps the current one");
        assert_eq!(s.failed("b"), None);
        assert_eq!((s.current(), s.alive()), (None, 0));
        assert_eq!(Sources::new(vec![]).current(), None);
    }
}
