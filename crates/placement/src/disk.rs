//! A donor's disk as placement counts it: the files of the datasets it holds, each file once
//! however many datasets list it.

use crate::catalog::Catalog;

#[derive(Debug, Default)]
pub(crate) struct Disk {
    /// (file, how many held datasets list it), by file: a donor holds tens to thousands of
    /// files, and a sorted list beats hashing them at every check-in.
    refs: Vec<(u32, u32)>,
    pub used: u64,
}

impl Disk {
    pub fn of(catalog: &Catalog, held: &[u32]) -> Self {
        let mut files: Vec<u32> = held.iter().flat_map(|&d| catalog.sets[d as usize].files.iter().copied()).collect();
        files.sort_unstable();
        let mut disk = Disk::default();
        for f in files {
            match disk.refs.last_mut() {
                Some((last, n)) if *last == f => *n += 1,
                _ => {
                    disk.refs.push((f, 1));
                    disk.used += catalog.file_bytes[f as usize];
                }
            }
        }
        disk
    }

    fn find(&self, f: u32) -> Result<usize, usize> {
        self.refs.binary_search_by_key(&f, |r| r.0)
    }

    /// The bytes adding `d` would fetch: its files not on the disk.
    pub fn cost(&self, catalog: &Catalog, d: u32) -> u64 {
        catalog.sets[d as usize].files.iter().filter(|&&f| self.find(f).is_err()).map(|&f| catalog.file_bytes[f as usize]).sum()
    }

    pub fn add(&mut self, catalog: &Catalog, d: u32) {
        for &f in &catalog.sets[d as usize].files {
            match self.find(f) {
                Ok(i) => self.refs[i].1 += 1,
                Err(i) => {
                    self.refs.insert(i, (f, 1));
                    self.used += catalog.file_bytes[f as usize];
                }
            }
        }
    }

    /// Takes `d` off: its files no other held dataset lists go.
    pub fn remove(&mut self, catalog: &Catalog, d: u32) {
        for &f in &catalog.sets[d as usize].files {
            if let Ok(i) = self.find(f) {
                self.refs[i].1 -= 1;
                if self.refs[i].1 == 0 {
                    self.refs.remove(i);
                    self.used -= catalog.file_bytes[f as usize];
                }
            }
        }
    }
}
