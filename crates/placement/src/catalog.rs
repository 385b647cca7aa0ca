//! The datasets the server offers, as placement sees them: each one's files (content hashes
//! and sizes; a file two datasets share is one file on a donor's disk), how many replicas it
//! should have, and the dataset it succeeds.

use std::collections::HashMap;

/// Most datasets in a catalog.
pub const MAX_DATASETS: usize = 100_000;
/// Most files one dataset lists.
pub const MAX_FILES: usize = 1_000_000;

/// A dataset as the server's catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Its name (`books-10`).
    pub name: String,
    /// Its files: content hash (hex SHA-256) and size in bytes.
    pub files: Vec<(String, u64)>,
    /// How many donors should hold it.
    pub replicas: u32,
    /// The dataset it replaces wherever a donor has room for what it adds.
    pub successor_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("dataset {0:?} is in the catalog twice: names are unique")]
    Twice(String),
    #[error("dataset {name:?} succeeds {of:?}, which is not in the catalog: add {of:?} first, or leave out --successor-of")]
    UnknownPredecessor { name: String, of: String },
    #[error("datasets {first:?} and {second:?} both succeed {of:?}: a dataset has one successor (make {second:?} succeed {first:?})")]
    TwoSuccessors { of: String, first: String, second: String },
    #[error("dataset {0:?} comes back to itself through its chain of successors")]
    Cycle(String),
    #[error("dataset {0:?} asks for 0 replicas: at least 1")]
    NoReplicas(String),
    #[error("dataset {name:?} lists {files} files: at most {MAX_FILES}")]
    TooManyFiles { name: String, files: usize },
    #[error("dataset {name:?} lists file {hash} twice with different sizes")]
    FileSizes { name: String, hash: String },
    #[error("{0} datasets: at most {MAX_DATASETS}")]
    TooMany(usize),
}

/// One dataset with its files as indices into the catalog's files.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub name: String,
    /// Its distinct files.
    pub files: Vec<u32>,
    pub bytes: u64,
    pub replicas: u32,
    /// The newest dataset of its chain of successors (itself when none succeeds it).
    pub newest: u32,
}

/// The datasets, checked: names unique, successors form chains, files counted once.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub(crate) sets: Vec<Facts>,
    pub(crate) file_bytes: Vec<u64>,
    by_name: HashMap<String, u32>,
    /// The bytes of the smallest dataset (a donor with less room than this takes none).
    pub(crate) smallest: u64,
}

impl Catalog {
    pub fn new(datasets: &[Dataset]) -> Result<Self, CatalogError> {
        if datasets.len() > MAX_DATASETS {
            return Err(CatalogError::TooMany(datasets.len()));
        }
        let mut c = Catalog::default();
        let mut files: HashMap<&str, u32> = HashMap::new();
        for d in datasets {
            if d.replicas == 0 {
                return Err(CatalogError::NoReplicas(d.name.clone()));
            }
            if d.files.len() > MAX_FILES {
                return Err(CatalogError::TooManyFiles { name: d.name.clone(), files: d.files.len() });
            }
            let index = c.sets.len() as u32;
            if c.by_name.insert(d.name.clone(), index).is_some() {
                return Err(CatalogError::Twice(d.name.clone()));
            }
            let mut mine: Vec<u32> = Vec::with_capacity(d.files.len());
            for (hash, size) in &d.files {
                let f = *files.entry(hash.as_str()).or_insert_with(|| {
                    c.file_bytes.push(*size);
                    c.file_bytes.len() as u32 - 1
                });
                if c.file_bytes[f as usize] != *size {
                    return Err(CatalogError::FileSizes { name: d.name.clone(), hash: hash.clone() });
                }
                mine.push(f);
            }
            mine.sort_unstable();
            mine.dedup();
            let bytes = mine.iter().map(|&f| c.file_bytes[f as usize]).sum();
            c.sets.push(Facts { name: d.name.clone(), files: mine, bytes, replicas: d.replicas, newest: index });
        }
        // Successors: each dataset at most one, no cycles; then each one's newest.
        let mut successor: Vec<Option<u32>> = vec![None; datasets.len()];
        for (i, d) in datasets.iter().enumerate() {
            if let Some(of) = &d.successor_of {
                let p = *c.by_name.get(of).ok_or_else(|| CatalogError::UnknownPredecessor { name: d.name.clone(), of: of.clone() })?;
                if let Some(first) = successor[p as usize] {
                    return Err(CatalogError::TwoSuccessors { of: of.clone(), first: datasets[first as usize].name.clone(), second: d.name.clone() });
                }
                successor[p as usize] = Some(i as u32);
            }
        }
        // Each dataset has at most one predecessor (it names one) and one successor: chains
        // and cycles. Walk each chain from its first dataset; what no walk reaches is a cycle.
        let mut has_predecessor = vec![false; datasets.len()];
        for s in successor.iter().flatten() {
            has_predecessor[*s as usize] = true;
        }
        let mut reached = vec![false; datasets.len()];
        for first in (0..datasets.len()).filter(|&i| !has_predecessor[i]) {
            let (mut at, mut chain) = (first, vec![first]);
            while let Some(next) = successor[at] {
                at = next as usize;
                chain.push(at);
            }
            for i in chain {
                reached[i] = true;
                c.sets[i].newest = at as u32;
            }
        }
        if let Some(i) = reached.iter().position(|r| !r) {
            return Err(CatalogError::Cycle(datasets[i].name.clone()));
        }
        c.smallest = c.sets.iter().map(|s| s.bytes).min().unwrap_or(0);
        Ok(c)
    }

    /// How many datasets it holds.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    pub(crate) fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The bytes of `name`'s distinct files.
    pub fn bytes(&self, name: &str) -> Option<u64> {
        self.index(name).map(|i| self.sets[i as usize].bytes)
    }

    /// The dataset that replaces `name` in the end (itself when nothing succeeds it).
    pub fn newest(&self, name: &str) -> Option<&str> {
        self.index(name).map(|i| self.sets[self.sets[i as usize].newest as usize].name.as_str())
    }

    /// Whether a newer dataset replaces it.
    pub(crate) fn superseded(&self, i: u32) -> bool {
        self.sets[i as usize].newest != i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, files: &[(&str, u64)], of: Option<&str>) -> Dataset {
        Dataset { name: name.into(), files: files.iter().map(|(h, s)| (h.to_string(), *s)).collect(), replicas: 2, successor_of: of.map(str::to_string) }
    }

    #[test]
    fn files_count_once_and_chains_end_at_the_newest() {
        let c = Catalog::new(&[
            set("books-9", &[("a", 10), ("b", 20)], None),
            set("books-10", &[("a", 10), ("b", 20), ("c", 5), ("c", 5)], Some("books-9")),
            set("books-11", &[("a", 10), ("b", 20), ("c", 5), ("d", 1)], Some("books-10")),
            set("films", &[("f", 1000)], None),
        ])
        .unwrap();
        assert_eq!(c.bytes("books-10"), Some(35), "the repeated file counts once");
        assert_eq!(c.file_bytes.len(), 5, "files shared between datasets are one file each");
        assert_eq!((c.newest("books-9"), c.newest("books-10"), c.newest("books-11"), c.newest("films")), (Some("books-11"), Some("books-11"), Some("books-11"), Some("films")));
        assert!(c.superseded(0) && c.superseded(1) && !c.superseded(2) && !c.superseded(3));
    }

    #[test]
    fn a_catalog_that_cannot_be_is_refused_with_the_name_to_fix() {
        let e = |sets: &[Dataset]| Catalog::new(sets).unwrap_err();
        assert_eq!(e(&[set("a", &[], None), set("a", &[], None)]), CatalogError::Twice("a".into()));
        assert!(matches!(e(&[set("b", &[], Some("a"))]), CatalogError::UnknownPredecessor { .. }));
        assert!(matches!(e(&[set("a", &[], None), set("b", &[], Some("a")), set("c", &[], Some("a"))]), CatalogError::TwoSuccessors { .. }));
        assert!(matches!(e(&[set("a", &[], Some("b")), set("b", &[], Some("a"))]), CatalogError::Cycle(_)));
        assert!(matches!(e(&[set("a", &[("x", 1)], None), set("b", &[("x", 2)], None)]), CatalogError::FileSizes { .. }));
        assert!(matches!(e(&[Dataset { replicas: 0, ..set("a", &[], None) }]), CatalogError::NoReplicas(_)));
    }
}
