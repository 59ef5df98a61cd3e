//! The minion's journal, in SQLite under `state_dir`: which jobs it has started (so none runs
//! twice) and the return spool (so no return is lost).
//!
//! A job is marked started before it runs. Its return is written to the spool, in the same
//! transaction that marks it finished, before it is sent, and leaves the spool only when the
//! master has acknowledged it. A job found started but not finished at start-up was cut off by
//! a restart: it is spooled as interrupted and never run again.

use std::path::Path;

use brine_proto::{decode, encode, Jid, JobReturn, MinionId, Value};
use rusqlite::{params, Connection, OptionalExtension};

/// What went wrong in the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("minion journal: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("minion journal: creating {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS started (
    jid TEXT PRIMARY KEY,
    fun TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spool (
    jid TEXT PRIMARY KEY,
    ret BLOB NOT NULL
) WITHOUT ROWID;
";

/// SQLite's page cache for the journal, in KiB (a negative `cache_size`). Every statement
/// touches a row by its key, a handful of pages; SQLite's default (up to 2 MiB per connection)
/// would keep the pages of large spooled returns resident long after they were sent.
const CACHE_SIZE: i64 = -256;

/// Checkpoint the WAL past this many pages (1 MiB) ...
const WAL_AUTOCHECKPOINT_PAGES: i64 = 256;
/// ... and truncate it to at most this after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 1024 * 1024;

/// The journal of one minion.
#[derive(Debug)]
pub struct Journal {
    conn: Connection,
}

impl Journal {
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        std::fs::create_dir_all(state_dir).map_err(|source| JournalError::Dir {
            path: state_dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(state_dir.join("journal.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
        // SQLite's default lets the WAL grow to 4 MiB before a checkpoint and keeps the file at
        // that size: for a journal of a few KiB (and a swarm of a thousand journals),
        // checkpoint sooner and cut the file back.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// Marks `jid` started. False when it was started before: it must not run again.
    pub fn begin(&mut self, jid: &Jid, fun: &str, now_ms: u64) -> Result<bool, JournalError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO started (jid, fun, started_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![jid.as_str(), fun, now_ms as i64])?;
        Ok(n == 1)
    }

    /// Whether `jid` was ever started here.
    pub fn has_started(&self, jid: &Jid) -> Result<bool, JournalError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM started WHERE jid = ?1")?
            .query_row(params![jid.as_str()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Marks the job finished and spools its return, in one transaction.
    pub fn finish(&mut self, ret: &JobReturn) -> Result<(), JournalError> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE started SET finished_ms = ?2 WHERE jid = ?1")?
            .execute(params![ret.jid.as_str(), ret.finished_ms as i64])?;
        tx.prepare_cached("INSERT OR REPLACE INTO spool (jid, ret) VALUES (?1, ?2)")?
            .execute(params![ret.jid.as_str(), encode(ret)])?;
        tx.commit()?;
        Ok(())
    }

    /// The master has the return: drop it from the spool.
    pub fn unspool(&mut self, jid: &Jid) -> Result<(), JournalError> {
        self.conn
            .prepare_cached("DELETE FROM spool WHERE jid = ?1")?
            .execute(params![jid.as_str()])?;
        Ok(())
    }

    /// Returns waiting for the master's acknowledgement, oldest first. Undecodable rows (from
    /// another version) are dropped.
    pub fn spooled(&mut self) -> Result<Vec<JobReturn>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT jid, ret FROM spool ORDER BY jid")?;
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        let mut returns = Vec::new();
        for (jid, bytes) in rows {
            match decode::<JobReturn>(&bytes) {
                Ok(ret) => returns.push(ret),
                Err(err) => {
                    tracing::warn!(%jid, cause = %err, "dropping an unreadable spooled return");
                    self.conn
                        .execute("DELETE FROM spool WHERE jid = ?1", params![jid])?;
                }
            }
        }
        Ok(returns)
    }

    /// Jobs started and never finished (cut off by a restart): each is finished now with an
    /// "interrupted" return, spooled for the master. Never re-run.
    pub fn interrupt_unfinished(
        &mut self,
        id: &MinionId,
        now_ms: u64,
    ) -> Result<Vec<JobReturn>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT jid, fun, started_ms FROM started WHERE finished_ms IS NULL")?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        let mut interrupted = Vec::new();
        for (jid, fun, started_ms) in rows {
            let Ok(jid) = Jid::new(jid) else { continue };
            let ret = JobReturn {
                id: id.clone(),
                jid,
                fun,
                ret: Value::String(
                    "interrupted: the minion restarted while this job was running".into(),
                ),
                retcode: 1,
                success: false,
                started_ms: started_ms as u64,
                finished_ms: now_ms,
                interrupted: true,
                rejected: false,
            };
            self.finish(&ret)?;
            interrupted.push(ret);
        }
        Ok(interrupted)
    }

    /// Forgets started jobs older than `cutoff_ms` (their jids can no longer be live).
    pub fn prune(&mut self, cutoff_ms: u64) -> Result<usize, JournalError> {
        Ok(self.conn.execute(
            "DELETE FROM started WHERE started_ms < ?1 AND finished_ms IS NOT NULL
             AND jid NOT IN (SELECT jid FROM spool)",
            params![cutoff_ms as i64],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_starts_once_and_its_return_stays_spooled_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let id = MinionId::new("m").unwrap();
        let jid = Jid::from_micros(7);
        let other = Jid::from_micros(8);
        {
            let mut journal = Journal::open(dir.path()).unwrap();
            assert!(journal.begin(&jid, "test.ping", 1).unwrap());
            assert!(!journal.begin(&jid, "test.ping", 2).unwrap());
            assert!(journal.begin(&other, "test.sleep", 3).unwrap());
            journal
                .finish(&JobReturn {
                    id: id.clone(),
                    jid: jid.clone(),
                    fun: "test.ping".into(),
                    ret: Value::Bool(true),
                    retcode: 0,
                    success: true,
                    started_ms: 1,
                    finished_ms: 2,
                    interrupted: false,
                    rejected: false,
                })
                .unwrap();
        }
        // A restart: `other` was cut off.
        let mut journal = Journal::open(dir.path()).unwrap();
        let interrupted = journal.interrupt_unfinished(&id, 9).unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].jid, other);
        assert!(!journal.begin(&other, "test.sleep", 10).unwrap());
        assert_eq!(journal.spooled().unwrap().len(), 2);
        journal.unspool(&jid).unwrap();
        let left = journal.spooled().unwrap();
        assert_eq!(left.len(), 1);
        assert!(!left[0].success);
        assert!(journal.interrupt_unfinished(&id, 11).unwrap().is_empty());
    }
}
