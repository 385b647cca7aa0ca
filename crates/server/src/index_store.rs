//! The fleet's index of what nodes share: `index.sqlite` in the state directory (WAL), one row
//! per node and namespace path, searched through an FTS5 table over each path's words
//! (`swarmboot_namespace::query::words`: `TheMatrix` is found by `matrix`) kept by triggers, and
//! each node's cursor (where its batches stand). Batches are decided by
//! `swarmboot_namespace::cursor` and applied here in one transaction each.
//!
//! Why SQLite FTS5: prefix search over millions of names in a few milliseconds, kept on disk
//! (a restart keeps the index), no other service to run; the rows also answer listings (by
//! parent) without a second store.
//!
//! A share's own directory (`music`) is implied by its entries and not counted as one of the
//! node's entries; an implied directory left empty goes. Lost nodes' rows stay (they are
//! filtered out of listings and searches by the live set each query is given) for when the
//! node comes back with the same key.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use swarmboot_namespace::batch::{IndexBatch, IndexReply};
use swarmboot_namespace::cursor::{after_apply, decide, Cursor, Decision};
use swarmboot_namespace::entry::{name, parent, Kind};
use swarmboot_namespace::listing::Row;
use swarmboot_namespace::query::{words, Query};

pub const INDEX_DB: &str = "index.sqlite";
/// Most hits a search returns.
pub const MAX_HITS: usize = 500;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS cursors(node TEXT PRIMARY KEY, node_key TEXT NOT NULL, epoch INTEGER NOT NULL, next_seq INTEGER NOT NULL, entries INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries(
  id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  path TEXT NOT NULL,
  parent TEXT NOT NULL,
  name TEXT NOT NULL,
  dir INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  hash TEXT,
  implied INTEGER NOT NULL DEFAULT 0,
  words TEXT NOT NULL,
  UNIQUE(node, path)
);
CREATE INDEX IF NOT EXISTS entries_by_parent ON entries(parent, node);
CREATE VIRTUAL TABLE IF NOT EXISTS names USING fts5(words, content='entries', content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3');
CREATE TRIGGER IF NOT EXISTS entries_ai AFTER INSERT ON entries BEGIN INSERT INTO names(rowid, words) VALUES (new.id, new.words); END;
CREATE TRIGGER IF NOT EXISTS entries_ad AFTER DELETE ON entries BEGIN INSERT INTO names(names, rowid, words) VALUES('delete', old.id, old.words); END;
";

#[derive(Debug, thiserror::Error)]
pub enum IndexStoreError {
    #[error("the index database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// One hit of a search: a namespace path and its content, on the nodes that have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub node: String,
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime: i64,
    pub hash: Option<String>,
}

pub struct IndexStore {
    conn: Connection,
}

fn live_json(live: &[String]) -> String {
    serde_json::to_string(live).expect("strings serialize")
}

impl IndexStore {
    pub fn open(state_dir: &Path) -> Result<Self, IndexStoreError> {
        Ok(IndexStore { conn: crate::sqlite::open_for_writing(&state_dir.join(INDEX_DB), TABLES)? })
    }

    /// An in-memory store (tests, benchmarks).
    pub fn in_memory() -> Result<Self, IndexStoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(TABLES)?;
        Ok(IndexStore { conn })
    }

    pub fn cursor(&self, node: &str) -> Result<Option<Cursor>, IndexStoreError> {
        Ok(self
            .conn
            .query_row("SELECT node_key, epoch, next_seq, entries FROM cursors WHERE node = ?1", [node], |r| {
                Ok(Cursor { node_key: r.get(0)?, epoch: r.get::<_, i64>(1)? as u64, next_seq: r.get::<_, i64>(2)? as u64, entries: r.get::<_, i64>(3)? as u64 })
            })
            .optional()?)
    }

    /// Decides and applies one batch (its signature and the node's right to its MAC checked
    /// by the caller); `Err(why)` inside the `Ok` is a refusal (the node is over the bound).
    pub fn apply(&mut self, b: &IndexBatch) -> Result<Result<IndexReply, String>, IndexStoreError> {
        let stored = self.cursor(&b.mac)?;
        let reset = match decide(stored.as_ref(), b) {
            Decision::Apply { reset } => reset,
            Decision::Answer(reply) => return Ok(Ok(reply)),
            Decision::Refuse(why) => return Ok(Err(why)),
        };
        let tx = self.conn.transaction()?;
        if reset {
            tx.execute("DELETE FROM entries WHERE node = ?1", [&b.mac])?;
        }
        {
            let mut remove_one = tx.prepare_cached("DELETE FROM entries WHERE node = ?1 AND path = ?2")?;
            let mut remove_below = tx.prepare_cached("DELETE FROM entries WHERE node = ?1 AND path > ?2 AND path < ?3")?;
            for k in &b.removals {
                let path = format!("{}/{}", k.share, k.path);
                remove_one.execute(params![b.mac, path])?;
                // Everything beneath: paths from `dir/` up to (not including) `dir0` (`0`
                // follows `/`).
                remove_below.execute(params![b.mac, format!("{path}/"), format!("{path}0")])?;
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO entries(node, path, parent, name, dir, size, mtime, hash, implied, words) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)
                 ON CONFLICT(node, path) DO UPDATE SET dir = excluded.dir, size = excluded.size, mtime = excluded.mtime, hash = excluded.hash, implied = 0",
            )?;
            let mut imply =
                tx.prepare_cached("INSERT OR IGNORE INTO entries(node, path, parent, name, dir, size, mtime, hash, implied, words) VALUES(?1, ?2, ?3, ?4, 1, 0, 0, NULL, 1, ?5)")?;
            let mut drop_below = tx.prepare_cached("DELETE FROM entries WHERE node = ?1 AND path > ?2 AND path < ?3")?;
            for e in &b.upserts {
                let path = e.ns_path();
                // Its directories, up to the share's own (implied unless the node sends them).
                let mut dir = parent(&path);
                while !dir.is_empty() {
                    imply.execute(params![b.mac, dir, parent(dir), name(dir), words(dir)])?;
                    dir = parent(dir);
                }
                upsert.execute(params![b.mac, path, parent(&path), name(&path), e.kind == Kind::Dir, e.size as i64, e.mtime, e.hash, words(&path)])?;
                if e.kind == Kind::File {
                    // A directory that became a file: its contents went with it.
                    drop_below.execute(params![b.mac, format!("{path}/"), format!("{path}0")])?;
                }
            }
            // Implied directories left empty go (deepest first, so their parents can follow).
            if !b.removals.is_empty() || reset {
                let mut gone = tx.prepare_cached(
                    "DELETE FROM entries WHERE node = ?1 AND implied = 1 AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.parent = entries.path AND c.node = entries.node)",
                )?;
                while gone.execute([&b.mac])? > 0 {}
            }
        }
        // An empty batch (the node asking whether the server still holds its index) changes
        // nothing: the count stands.
        let unchanged = !reset && b.upserts.is_empty() && b.removals.is_empty();
        let held = match (&stored, unchanged) {
            (Some(c), true) => c.entries,
            _ => tx.query_row("SELECT count(*) FROM entries WHERE node = ?1 AND implied = 0", [&b.mac], |r| r.get::<_, i64>(0))? as u64,
        };
        let (cursor, reply) = after_apply(b, held);
        if matches!(reply, IndexReply::StartOver { .. }) {
            tx.execute("DELETE FROM entries WHERE node = ?1", [&b.mac])?;
        }
        tx.execute(
            "INSERT INTO cursors(node, node_key, epoch, next_seq, entries) VALUES(?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(node) DO UPDATE SET node_key = excluded.node_key, epoch = excluded.epoch, next_seq = excluded.next_seq, entries = excluded.entries",
            params![b.mac, cursor.node_key, cursor.epoch as i64, cursor.next_seq as i64, cursor.entries as i64],
        )?;
        tx.commit()?;
        Ok(Ok(reply))
    }

    /// The rows of every live node in the namespace directory `dir` (`""`: the top, where the
    /// shares are).
    pub fn children(&self, dir: &str, live: &[String]) -> Result<Vec<Row>, IndexStoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT node, name, dir, size, mtime, hash FROM entries WHERE parent = ?1 AND node IN (SELECT value FROM json_each(?2)) ORDER BY name, node")?;
        let rows = st.query_map(params![dir, live_json(live)], |r| {
            Ok(Row {
                node: r.get(0)?,
                name: r.get(1)?,
                kind: if r.get::<_, bool>(2)? { Kind::Dir } else { Kind::File },
                size: r.get::<_, i64>(3)? as u64,
                mtime: r.get(4)?,
                hash: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The rows of every live node at the namespace path `path` itself.
    pub fn at(&self, path: &str, live: &[String]) -> Result<Vec<Hit>, IndexStoreError> {
        let mut st =
            self.conn.prepare_cached("SELECT node, path, dir, size, mtime, hash FROM entries WHERE path = ?1 AND node IN (SELECT value FROM json_each(?2)) ORDER BY node")?;
        let rows = st.query_map(params![path, live_json(live)], hit)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The hits of `q` among the live nodes' entries, at most `limit`: the first the index
    /// finds, not ranked (ranking every match of a common word — bm25 over tens of thousands
    /// of rows — took 60–80 ms at 1M entries; the first hits take a few).
    pub fn search(&self, q: &Query, live: &[String], limit: usize) -> Result<Vec<Hit>, IndexStoreError> {
        let limit = limit.min(MAX_HITS) as i64;
        let (min, max) = (q.min_size.map_or(-1, |m| m.min(i64::MAX as u64) as i64), q.max_size.map_or(i64::MAX, |m| m.min(i64::MAX as u64) as i64));
        let (lo, hi) = match &q.under {
            Some(u) => (format!("{u}/"), format!("{u}0")),
            None => (String::new(), "\u{10ffff}".to_string()),
        };
        let exts = serde_json::to_string(&q.extensions).expect("strings serialize");
        let filters = "e.node IN (SELECT value FROM json_each(?2)) AND e.size > ?3 AND e.size < ?4 AND e.path >= ?5 AND e.path < ?6
                       AND (json_array_length(?7) = 0 OR lower(substr(e.name, length(rtrim(e.name, replace(e.name, '.', ''))) + 1)) IN (SELECT value FROM json_each(?7)))";
        let rows = match q.fts() {
            Some(fts) => {
                let mut st = self.conn.prepare_cached(&format!(
                    "SELECT e.node, e.path, e.dir, e.size, e.mtime, e.hash FROM names JOIN entries e ON e.id = names.rowid WHERE names MATCH ?1 AND {filters} LIMIT ?8"
                ))?;
                let r = st.query_map(params![fts, live_json(live), min, max, lo, hi, exts, limit], hit)?;
                r.collect::<Result<Vec<_>, _>>()?
            }
            None => {
                let mut st = self.conn.prepare_cached(&format!(
                    "SELECT e.node, e.path, e.dir, e.size, e.mtime, e.hash FROM entries e WHERE ?1 IS NULL AND e.implied = 0 AND {filters} ORDER BY e.path LIMIT ?8"
                ))?;
                let r = st.query_map(params![Option::<String>::None, live_json(live), min, max, lo, hi, exts, limit], hit)?;
                r.collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    /// Entries held per node (for the dashboard and `/metrics`).
    pub fn counts(&self) -> Result<Vec<(String, u64)>, IndexStoreError> {
        let mut st = self.conn.prepare_cached("SELECT node, entries FROM cursors ORDER BY node")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn hit(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hit> {
    Ok(Hit {
        node: r.get(0)?,
        path: r.get(1)?,
        kind: if r.get::<_, bool>(2)? { Kind::Dir } else { Kind::File },
        size: r.get::<_, i64>(3)? as u64,
        mtime: r.get(4)?,
        hash: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmboot_namespace::entry::{Entry, Key};

    const A: &str = "52:54:00:00:00:0a";
    const B: &str = "52:54:00:00:00:0b";

    fn file(share: &str, path: &str, size: u64) -> Entry {
        Entry { share: share.into(), path: path.into(), kind: Kind::File, size, mtime: 1, hash: None }
    }

    fn dir(share: &str, path: &str) -> Entry {
        Entry { share: share.into(), path: path.into(), kind: Kind::Dir, size: 0, mtime: 1, hash: None }
    }

    fn batch(node: &str, epoch: u64, seq: u64, upserts: Vec<Entry>, removals: Vec<Key>, after: u64) -> IndexBatch {
        IndexBatch { mac: node.into(), node_key: format!("key-{node}"), epoch, seq, upserts, removals, entries_after: after, more: false }
    }

    fn live() -> Vec<String> {
        vec![A.into(), B.into()]
    }

    fn names(rows: &[Row]) -> Vec<(String, String)> {
        rows.iter().map(|r| (r.name.clone(), r.node.clone())).collect()
    }

    #[test]
    fn two_nodes_shares_merge_by_path_and_search_finds_prefixes() {
        let mut s = IndexStore::in_memory().unwrap();
        let a = s.apply(&batch(A, 1, 1, vec![file("movies", "KillBill.mkv", 10), dir("movies", "extras"), file("movies", "extras/making of.mkv", 3)], vec![], 3)).unwrap();
        assert_eq!(a, Ok(IndexReply::Taken { next_seq: 2, entries: 3 }));
        s.apply(&batch(B, 1, 1, vec![file("movies", "TheMatrix.mkv", 20), file("music", "a/b/song.ogg", 5)], vec![], 2)).unwrap().unwrap();
        let top = s.children("", &live()).unwrap();
        assert_eq!(names(&top), [("movies".to_string(), A.to_string()), ("movies".into(), B.into()), ("music".into(), B.into())], "the shares, implied");
        let movies = s.children("movies", &live()).unwrap();
        assert_eq!(names(&movies), [("KillBill.mkv".to_string(), A.to_string()), ("TheMatrix.mkv".into(), B.into()), ("extras".into(), A.into())]);
        assert_eq!(names(&s.children("music/a", &live()).unwrap()), [("b".to_string(), B.to_string())], "directories the node did not send are implied");
        let q = |text: &str| s.search(&Query::parse(text).unwrap(), &live(), 50).unwrap().into_iter().map(|h| h.path).collect::<Vec<_>>();
        assert_eq!(q("kill"), ["movies/KillBill.mkv"]);
        assert_eq!(q("mak mkv"), ["movies/extras/making of.mkv"]);
        assert_eq!(q("size>15"), ["movies/TheMatrix.mkv"]);
        assert_eq!(q("type:audio"), ["music/a/b/song.ogg"]);
        assert_eq!(q("in:movies/extras"), ["movies/extras/making of.mkv"]);
        assert!(q("nothing").is_empty());
        // A lost node drops out; its rows stay.
        let only_b = vec![B.to_string()];
        assert!(s.search(&Query::parse("kill").unwrap(), &only_b, 50).unwrap().is_empty());
        assert_eq!(s.children("movies", &only_b).unwrap().len(), 1);
        assert_eq!(q("kill").len(), 1, "back when it is live again");
    }

    #[test]
    fn removals_take_directories_along_and_empty_implied_ones_go() {
        let mut s = IndexStore::in_memory().unwrap();
        s.apply(&batch(A, 1, 1, vec![dir("m", "d"), file("m", "d/x", 1), file("m", "d/y", 1), file("m", "d-e", 1), file("n", "only", 1)], vec![], 5)).unwrap().unwrap();
        let r = s.apply(&batch(A, 1, 2, vec![], vec![Key { share: "m".into(), path: "d".into() }], 2)).unwrap().unwrap();
        assert_eq!(r, IndexReply::Taken { next_seq: 3, entries: 2 });
        assert_eq!(names(&s.children("m", &live()).unwrap()), [("d-e".to_string(), A.to_string())], "d-e is not beneath d");
        s.apply(&batch(A, 1, 3, vec![], vec![Key { share: "n".into(), path: "only".into() }], 1)).unwrap().unwrap();
        assert_eq!(names(&s.children("", &live()).unwrap()), [("m".to_string(), A.to_string())], "share n left empty: gone");
        assert!(s.search(&Query::parse("only").unwrap(), &live(), 10).unwrap().is_empty(), "gone from the names too");
    }

    #[test]
    fn batches_out_of_step_apply_nothing_and_a_wrong_count_starts_over() {
        let mut s = IndexStore::in_memory().unwrap();
        s.apply(&batch(A, 1, 1, vec![file("m", "a", 1)], vec![], 1)).unwrap().unwrap();
        assert_eq!(s.apply(&batch(A, 1, 1, vec![file("m", "b", 1)], vec![], 2)).unwrap(), Ok(IndexReply::Expected { next_seq: 2 }), "a replay of batch 1");
        assert_eq!(s.children("m", &live()).unwrap().len(), 1);
        let r = s.apply(&batch(A, 1, 2, vec![file("m", "b", 1)], vec![], 5)).unwrap().unwrap();
        assert!(matches!(r, IndexReply::StartOver { .. }), "{r:?}");
        assert!(s.children("m", &live()).unwrap().is_empty(), "dropped: the node sends everything again");
        assert_eq!(s.apply(&batch(A, 2, 1, vec![file("m", "b", 1)], vec![], 1)).unwrap(), Ok(IndexReply::Taken { next_seq: 2, entries: 1 }));
        let mut big = batch(B, 1, 1, vec![], vec![], swarmboot_namespace::cursor::MAX_NODE_ENTRIES + 1);
        big.more = true;
        assert!(s.apply(&big).unwrap().is_err(), "over the bound: refused");
    }

    #[test]
    fn a_directory_that_became_a_file_loses_its_contents() {
        let mut s = IndexStore::in_memory().unwrap();
        s.apply(&batch(A, 1, 1, vec![dir("m", "x"), file("m", "x/in", 1)], vec![], 2)).unwrap().unwrap();
        let r = s.apply(&batch(A, 1, 2, vec![file("m", "x", 9)], vec![], 1)).unwrap().unwrap();
        assert_eq!(r, IndexReply::Taken { next_seq: 3, entries: 1 });
        let at = s.at("m/x", &live()).unwrap();
        assert_eq!((at.len(), at[0].kind, at[0].size), (1, Kind::File, 9));
    }
}
