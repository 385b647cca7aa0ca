//! The lease database: SQLite in WAL mode. Every record the DHCP core hands back is written here,
//! in one transaction per batch, before the reply that grants it is sent; so `kill -9` at any
//! moment loses no granted lease.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use swarmboot_dhcp::{ClientId, HwAddr, Lease, LeaseState};

/// The file name under `state_dir`.
pub const LEASE_DB: &str = "leases.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("lease database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("lease database {path} has a bad row for {ip}: {problem}")]
    BadRow { path: PathBuf, ip: String, problem: String },
}

pub struct LeaseStore {
    conn: Connection,
    path: PathBuf,
}

impl LeaseStore {
    /// Opens (creating if needed) the database under `state_dir`, for the server.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::CreateDir { path: state_dir.into(), source })?;
        let path = state_dir.join(LEASE_DB);
        let tables = "CREATE TABLE IF NOT EXISTS leases (
                 ip        TEXT PRIMARY KEY,
                 client_id BLOB NOT NULL,
                 hwaddr    TEXT NOT NULL,
                 hostname  TEXT,
                 state     TEXT NOT NULL,
                 expires   INTEGER NOT NULL
             );";
        let conn = crate::sqlite::open_for_writing(&path, tables).map_err(|source| StoreError::Sqlite { path: path.clone(), source })?;
        Ok(LeaseStore { conn, path })
    }

    /// Opens an existing database read-only (for `swarmboot leases` beside a running server).
    pub fn open_read_only(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(LEASE_DB);
        let conn = crate::sqlite::open_read_only(&path).map_err(|source| StoreError::Sqlite { path: path.clone(), source })?;
        Ok(LeaseStore { conn, path })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// Every record.
    pub fn load(&self) -> Result<Vec<Lease>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT ip, client_id, hwaddr, hostname, state, expires FROM leases ORDER BY ip").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, String>(4)?, r.get::<_, i64>(5)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (ip, client_id, hwaddr, hostname, state, expires) = row.map_err(|e| self.err(e))?;
            let bad = |problem: &str| StoreError::BadRow { path: self.path.clone(), ip: ip.clone(), problem: problem.into() };
            out.push(Lease {
                ip: ip.parse::<Ipv4Addr>().map_err(|_| bad("not an IPv4 address"))?,
                client_id: ClientId::new(client_id),
                hwaddr: hwaddr.parse::<HwAddr>().map_err(|_| bad("bad hardware address"))?,
                hostname,
                state: LeaseState::parse(&state).ok_or_else(|| bad("unknown state"))?,
                expires: u64::try_from(expires).map_err(|_| bad("negative expiry"))?,
            });
        }
        Ok(out)
    }

    /// Writes `leases` in one transaction; returns once it is committed.
    pub fn save(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO leases (ip, client_id, hwaddr, hostname, state, expires)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(ip) DO UPDATE SET client_id=excluded.client_id, hwaddr=excluded.hwaddr,
                       hostname=excluded.hostname, state=excluded.state, expires=excluded.expires",
                )
                .map_err(err)?;
            for l in leases {
                stmt.execute(params![l.ip.to_string(), l.client_id.as_bytes(), l.hwaddr.to_string(), l.hostname, l.state.as_str(), i64::try_from(l.expires).unwrap_or(i64::MAX),])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(last: u8, state: LeaseState) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 77, 0, last),
            client_id: ClientId::new(vec![1, 2, last]),
            hwaddr: HwAddr::new(&[0x52, 0x54, 0, 0, 0, last]),
            hostname: last.is_multiple_of(2).then(|| format!("host-{last}")),
            state,
            expires: 1_800_000_000 + u64::from(last),
        }
    }

    #[test]
    fn records_survive_reopening_and_updates_replace() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LeaseStore::open(dir.path()).unwrap();
        s.save(&[lease(100, LeaseState::Bound), lease(101, LeaseState::Declined)]).unwrap();
        s.save(&[lease(100, LeaseState::Released)]).unwrap();
        drop(s);
        let r = LeaseStore::open_read_only(dir.path()).unwrap().load().unwrap();
        assert_eq!(r, vec![lease(100, LeaseState::Released), lease(101, LeaseState::Declined)]);
    }

    #[test]
    fn a_reader_sees_commits_of_a_live_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LeaseStore::open(dir.path()).unwrap();
        w.save(&[lease(7, LeaseState::Bound)]).unwrap();
        let r = LeaseStore::open_read_only(dir.path()).unwrap();
        assert_eq!(r.load().unwrap().len(), 1);
        w.save(&[lease(8, LeaseState::Bound)]).unwrap();
        assert_eq!(r.load().unwrap().len(), 2);
    }

    #[test]
    fn a_missing_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = LeaseStore::open_read_only(&dir.path().join("nope")).err().unwrap().to_string();
        assert!(e.contains("leases.sqlite"), "{e}");
    }
}
