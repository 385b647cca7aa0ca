//! The node registry on disk: SQLite in WAL mode under `state_dir` (`nodes.sqlite`), one row
//! per node (the registry's record as JSON, which the registry wrote) and the next command
//! sequence number. Written in one transaction after every change, before the reply goes out,
//! so a restarted server knows every node, its key, its commands and the numbers given out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use swarmboot_checkin::registry::Node;

/// The file name under `state_dir`.
pub const NODE_DB: &str = "nodes.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum NodeStoreError {
    #[error("node database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("node database {path} has a bad row for {mac}: {problem}")]
    BadRow { path: PathBuf, mac: String, problem: String },
}

pub struct NodeStore {
    conn: Connection,
    path: PathBuf,
}

impl NodeStore {
    /// Opens (creating if needed) the database under `state_dir`, for the server.
    pub fn open(state_dir: &Path) -> Result<Self, NodeStoreError> {
        let path = state_dir.join(NODE_DB);
        let tables = "CREATE TABLE IF NOT EXISTS nodes (mac TEXT PRIMARY KEY, record TEXT NOT NULL);
                      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);";
        let conn = crate::sqlite::open_for_writing(&path, tables).map_err(|source| NodeStoreError::Sqlite { path: path.clone(), source })?;
        Ok(NodeStore { conn, path })
    }

    /// Opens an existing database read-only (`swarmboot node list` beside a running server).
    pub fn open_read_only(state_dir: &Path) -> Result<Self, NodeStoreError> {
        let path = state_dir.join(NODE_DB);
        let conn = crate::sqlite::open_read_only(&path).map_err(|source| NodeStoreError::Sqlite { path: path.clone(), source })?;
        Ok(NodeStore { conn, path })
    }

    fn err(&self, source: rusqlite::Error) -> NodeStoreError {
        NodeStoreError::Sqlite { path: self.path.clone(), source }
    }

    /// Every node, and the next command sequence number.
    pub fn load(&self) -> Result<(BTreeMap<String, Node>, u64), NodeStoreError> {
        let mut stmt = self.conn.prepare("SELECT mac, record FROM nodes ORDER BY mac").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
        let mut nodes = BTreeMap::new();
        for row in rows {
            let (mac, record) = row.map_err(|e| self.err(e))?;
            let node: Node = serde_json::from_str(&record).map_err(|e| NodeStoreError::BadRow { path: self.path.clone(), mac: mac.clone(), problem: e.to_string() })?;
            nodes.insert(mac, node);
        }
        let next_seq: i64 = self.conn.query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| r.get(0)).unwrap_or(1);
        Ok((nodes, u64::try_from(next_seq).unwrap_or(1)))
    }

    /// Writes the nodes that changed, and the next sequence number, in one transaction.
    pub fn save<'a>(&mut self, changed: impl IntoIterator<Item = (&'a String, &'a Node)>, forgotten: &[String], next_seq: u64) -> Result<(), NodeStoreError> {
        let path = self.path.clone();
        let err = |source| NodeStoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        for (mac, node) in changed {
            tx.execute("INSERT OR REPLACE INTO nodes (mac, record) VALUES (?1, ?2)", params![mac, serde_json::to_string(node).expect("a node serializes")]).map_err(err)?;
        }
        for mac in forgotten {
            tx.execute("DELETE FROM nodes WHERE mac = ?1", params![mac]).map_err(err)?;
        }
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?1)", params![i64::try_from(next_seq).unwrap_or(i64::MAX)]).map_err(err)?;
        tx.commit().map_err(err)
    }
}
