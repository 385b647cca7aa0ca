//! A directory of the namespace, merged from what every live node holds there.
//!
//! Directories of the same name are one directory (its sources: every node that has it).
//! Files of the same name are one file when their content is the same — the same SHA-256, or,
//! when neither node hashed it, the same size and modification time — and that file lists
//! every node that holds it as a source; different content makes separate entries. Names stay
//! unique (a file system needs that): the entry with the most sources keeps the name (a
//! directory before a file, then the lowest MAC), the others are named
//! `stem (from aa-bb-cc-dd-ee-ff).ext` after their first source.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::entry::Kind;

/// One node's entry in a directory (the server's row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The node's MAC.
    pub node: String,
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime: i64,
    pub hash: Option<String>,
}

/// One entry of a merged directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The name as listed (unique in the directory).
    pub name: String,
    /// The name on the nodes.
    pub real_name: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The nodes that hold it, lowest MAC first.
    pub sources: Vec<String>,
}

/// What makes two rows of one name the same entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Identity {
    Dir,
    Hashed(String),
    Unhashed { size: u64, mtime: i64 },
}

fn identity(r: &Row) -> Identity {
    match (&r.kind, &r.hash) {
        (Kind::Dir, _) => Identity::Dir,
        (Kind::File, Some(h)) => Identity::Hashed(h.clone()),
        (Kind::File, None) => Identity::Unhashed { size: r.size, mtime: r.mtime },
    }
}

/// `name` told apart by the node it comes from: `stem (from aa-bb-…).ext`.
fn variant_name(name: &str, node: &str) -> String {
    let from = node.replace(':', "-");
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() && ext.len() <= 8 => format!("{stem} (from {from}).{ext}"),
        _ => format!("{name} (from {from})"),
    }
}

/// The merged directory from every live node's rows in it, by listed name.
pub fn merge(rows: impl IntoIterator<Item = Row>) -> Vec<Listed> {
    let mut by_name: BTreeMap<String, BTreeMap<Identity, Listed>> = BTreeMap::new();
    for r in rows {
        let id = identity(&r);
        let group = by_name.entry(r.name.clone()).or_default();
        let l = group.entry(id).or_insert_with(|| Listed {
            name: r.name.clone(),
            real_name: r.name.clone(),
            kind: r.kind,
            size: r.size,
            mtime: r.mtime,
            hash: r.hash.clone(),
            sources: Vec::new(),
        });
        l.mtime = l.mtime.max(r.mtime);
        if !l.sources.contains(&r.node) {
            l.sources.push(r.node);
        }
    }
    let mut out = Vec::new();
    for (_, group) in by_name {
        let mut variants: Vec<Listed> = group.into_values().collect();
        for v in &mut variants {
            v.sources.sort();
        }
        variants.sort_by(|a, b| (a.kind != Kind::Dir, std::cmp::Reverse(a.sources.len()), &a.sources).cmp(&(b.kind != Kind::Dir, std::cmp::Reverse(b.sources.len()), &b.sources)));
        for (i, mut v) in variants.into_iter().enumerate() {
            if i > 0 {
                v.name = variant_name(&v.real_name, &v.sources[0]);
            }
            out.push(v);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, name: &str, kind: Kind, size: u64, hash: Option<&str>) -> Row {
        Row { node: node.into(), name: name.into(), kind, size, mtime: 100, hash: hash.map(|h| h.repeat(64)) }
    }

    #[test]
    fn directories_merge_and_files_merge_only_with_the_same_content() {
        let (a, b, c) = ("52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c");
        let listed = merge([
            row(b, "KillBill.mkv", Kind::File, 10, Some("1")),
            row(a, "TheMatrix.mkv", Kind::File, 20, None),
            row(a, "KillBill.mkv", Kind::File, 10, Some("1")),
            row(c, "KillBill.mkv", Kind::File, 11, Some("2")),
            row(a, "extras", Kind::Dir, 0, None),
            row(b, "extras", Kind::Dir, 0, None),
            row(c, "TheMatrix.mkv", Kind::File, 20, None),
        ]);
        let shown: Vec<(&str, usize)> = listed.iter().map(|l| (l.name.as_str(), l.sources.len())).collect();
        assert_eq!(shown, [("KillBill (from 52-54-00-00-00-0c).mkv", 1), ("KillBill.mkv", 2), ("TheMatrix.mkv", 2), ("extras", 2)]);
        assert_eq!(listed[1].sources, [a, b], "lowest MAC first");
        assert_eq!(listed[0].real_name, "KillBill.mkv");
    }

    #[test]
    fn a_name_that_is_a_directory_here_and_a_file_there_stays_unique() {
        let listed =
            merge([row("n2", "x", Kind::File, 1, None), row("n1", "x", Kind::Dir, 0, None), row("n3", "notes", Kind::File, 1, None), row("n4", "notes", Kind::File, 2, None)]);
        let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["notes", "notes (from n4)", "x", "x (from n2)"]);
        assert_eq!(listed[2].kind, Kind::Dir, "the directory keeps the name");
    }
}
