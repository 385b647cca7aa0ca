//! How the server's databases (`lease_store`, `node_store`) open SQLite: WAL and
//! `synchronous=NORMAL` (a commit is in the WAL file, which the OS has, when it returns, so a
//! killed process loses nothing; only a power cut can lose the last commits), a busy timeout
//! for the CLI reading beside the server, and the store's tables.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// Opens (creating if needed) `path` for the server and makes `tables` (`CREATE TABLE IF NOT
/// EXISTS …;` statements).
pub fn open_for_writing(path: &Path, tables: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!("PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\nPRAGMA busy_timeout=5000;\n{tables}"))?;
    Ok(conn)
}

/// Opens an existing database read-only (the CLI, beside a running server).
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}
