//! The minion's journal, in SQLite under `state_dir`: which jobs it has started (so none runs
//! twice) and the return spool (so no return is lost), one row per job in one table.
//!
//! A job is marked started, committed, before it runs. Its return is written into its row, in
//! the transaction that marks it finished, before it is sent: a row whose `ret` is not null is
//! a spooled return. A job found started but not finished at start-up was cut off by a
//! restart: it is spooled as interrupted and never run again.
//!
//! Two things are kept in memory so that a job costs two write transactions and no read. The
//! set of started jids, loaded at open and changed only after a commit, answers "already
//! started here?". An acknowledged return is dropped from the spool in memory at once, and its
//! deletion is written with the next `begin`, `finish` or `prune`, or by
//! [`Journal::flush_waiting`] (the minion's timer) or [`Journal::flush`] (at shutdown). A crash
//! before then only means the return is sent again after the restart, which is harmless: the
//! master stores (jid, minion) once.
//!
//! A journal from before the one table (`started` and `spool`) is moved into it at open, in
//! one transaction.

use std::collections::HashSet;
use std::path::Path;

use brine_proto::{decode, encode, Jid, JobReturn, MinionId};
use rusqlite::{params, Connection};

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
CREATE TABLE IF NOT EXISTS jobs (
    jid TEXT PRIMARY KEY,
    fun TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    ret BLOB
) WITHOUT ROWID;
";

/// Moves a journal of two tables (`started`, and `spool` for the returns) into `jobs`. No
/// version spooled a return without its started row, but a return is never dropped: one would
/// come over as a finished job of unknown function and times.
const MIGRATE_TWO_TABLES: &str = "
INSERT INTO jobs (jid, fun, started_ms, finished_ms, ret)
    SELECT s.jid, s.fun, s.started_ms, s.finished_ms, p.ret
    FROM started s LEFT JOIN spool p ON p.jid = s.jid;
INSERT INTO jobs (jid, fun, started_ms, finished_ms, ret)
    SELECT jid, '', 0, 0, ret FROM spool WHERE jid NOT IN (SELECT jid FROM started);
DROP TABLE started;
DROP TABLE spool;
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
    /// Every jid with a row, committed.
    started: HashSet<String>,
    /// Acknowledged returns whose deletion from the spool is not written yet.
    unspooled: HashSet<String>,
    /// `unspooled` has not been written since the last `flush_waiting` found it not empty.
    unspooled_waited: bool,
}

impl Journal {
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        std::fs::create_dir_all(state_dir).map_err(|source| JournalError::Dir {
            path: state_dir.display().to_string(),
            source,
        })?;
        let mut conn = Connection::open(state_dir.join("journal.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
        // SQLite's default lets the WAL grow to 4 MiB before a checkpoint and keeps the file at
        // that size: for a journal of a few KiB (and a swarm of a thousand journals),
        // checkpoint sooner and cut the file back.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        let two_tables: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'started')",
            [],
            |row| row.get(0),
        )?;
        if two_tables {
            tx.execute_batch(MIGRATE_TWO_TABLES)?;
        }
        tx.commit()?;
        let started = conn
            .prepare("SELECT jid FROM jobs")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Self {
            conn,
            started,
            unspooled: HashSet::new(),
            unspooled_waited: false,
        })
    }

    /// Runs `write` in one transaction that also writes the pending deletions from the spool.
    fn write<T>(
        &mut self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        let tx = self.conn.transaction()?;
        {
            let mut unspool = tx.prepare_cached("UPDATE jobs SET ret = NULL WHERE jid = ?1")?;
            for jid in &self.unspooled {
                unspool.execute(params![jid])?;
            }
        }
        let written = write(&tx)?;
        tx.commit()?;
        self.unspooled.clear();
        self.unspooled_waited = false;
        Ok(written)
    }

    /// Marks `jid` started, committed. False when it was started before: it must not run again.
    pub fn begin(&mut self, jid: &Jid, fun: &str, now_ms: u64) -> Result<bool, JournalError> {
        if self.has_started(jid) {
            return Ok(false);
        }
        let inserted = self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO jobs (jid, fun, started_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![jid.as_str(), fun, now_ms as i64])?;
            Ok(n == 1)
        })?;
        self.started.insert(jid.as_str().to_owned());
        Ok(inserted)
    }

    /// Whether `jid` was ever started here (and not pruned since).
    pub fn has_started(&self, jid: &Jid) -> bool {
        self.started.contains(jid.as_str())
    }

    /// Marks the job finished and spools its return, in one transaction.
    pub fn finish(&mut self, ret: &JobReturn) -> Result<(), JournalError> {
        let bytes = encode(ret);
        self.write(|tx| {
            // An upsert, so that a return is spooled even for a job that has no row.
            tx.prepare_cached(
                "INSERT INTO jobs (jid, fun, started_ms, finished_ms, ret)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (jid) DO UPDATE SET finished_ms = excluded.finished_ms,
                                                 ret = excluded.ret",
            )?
            .execute(params![
                ret.jid.as_str(),
                ret.fun,
                ret.started_ms as i64,
                ret.finished_ms as i64,
                bytes
            ])?;
            Ok(())
        })?;
        if !self.has_started(&ret.jid) {
            self.started.insert(ret.jid.as_str().to_owned());
        }
        Ok(())
    }

    /// The master has the return: drop it from the spool. Written with the next write or
    /// flush; until then it is only left out of [`Journal::spooled`].
    pub fn unspool(&mut self, jid: &Jid) {
        self.unspooled.insert(jid.as_str().to_owned());
    }

    /// Writes the pending deletions from the spool now.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.unspooled.is_empty() {
            return Ok(());
        }
        self.write(|_| Ok(()))
    }

    /// Writes the pending deletions from the spool that were pending at the previous call
    /// already: called on a timer, a deletion waits at most two periods, and on a busy minion
    /// it rides with the next job's `begin` instead of taking a transaction of its own.
    pub fn flush_waiting(&mut self) -> Result<(), JournalError> {
        if self.unspooled_waited {
            return self.flush();
        }
        self.unspooled_waited = !self.unspooled.is_empty();
        Ok(())
    }

    /// Returns waiting for the master's acknowledgement, oldest first. Undecodable rows (from
    /// another version) are dropped.
    pub fn spooled(&mut self) -> Result<Vec<JobReturn>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT jid, ret FROM jobs WHERE ret IS NOT NULL ORDER BY jid")?;
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        let mut returns = Vec::new();
        for (jid, bytes) in rows {
            if self.unspooled.contains(&jid) {
                continue;
            }
            match decode::<JobReturn>(&bytes) {
                Ok(ret) => returns.push(ret),
                Err(err) => {
                    tracing::warn!(%jid, cause = %err, "dropping an unreadable spooled return");
                    self.unspooled.insert(jid);
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
            .prepare("SELECT jid, fun, started_ms FROM jobs WHERE finished_ms IS NULL")?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        let mut interrupted = Vec::new();
        for (jid, fun, started_ms) in rows {
            let Ok(jid) = Jid::new(jid) else { continue };
            let notice = "interrupted: the minion restarted while this job was running";
            let ret = JobReturn::interruption(id.clone(), jid, fun, notice.into())
                .ran(started_ms as u64, now_ms);
            self.finish(&ret)?;
            interrupted.push(ret);
        }
        Ok(interrupted)
    }

    /// Forgets started jobs older than `cutoff_ms` (their jids can no longer be live), except
    /// those unfinished or with a return still spooled.
    pub fn prune(&mut self, cutoff_ms: u64) -> Result<usize, JournalError> {
        let forgotten: Vec<String> = self.write(|tx| {
            tx.prepare(
                "DELETE FROM jobs WHERE started_ms < ?1 AND finished_ms IS NOT NULL
                 AND ret IS NULL RETURNING jid",
            )?
            .query_map(params![cutoff_ms as i64], |row| row.get(0))?
            .collect()
        })?;
        for jid in &forgotten {
            self.started.remove(jid);
        }
        Ok(forgotten.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping_return(jid: &Jid) -> JobReturn {
        JobReturn::new(MinionId::new("m").unwrap(), jid.clone(), "test.ping", true).ran(1, 2)
    }

    /// The jids of the returns spooled on disk, as a restarted minion would find them (a
    /// second connection: the journal under test stays open).
    fn spooled_on_disk(dir: &Path) -> Vec<String> {
        let mut journal = Journal::open(dir).unwrap();
        journal
            .spooled()
            .unwrap()
            .into_iter()
            .map(|r| r.jid.as_str().to_owned())
            .collect()
    }

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
            journal.finish(&ping_return(&jid)).unwrap();
        }
        // A restart: `other` was cut off.
        let mut journal = Journal::open(dir.path()).unwrap();
        assert!(journal.has_started(&jid) && journal.has_started(&other));
        let interrupted = journal.interrupt_unfinished(&id, 9).unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].jid, other);
        assert!(!journal.begin(&other, "test.sleep", 10).unwrap());
        assert_eq!(journal.spooled().unwrap().len(), 2);
        journal.unspool(&jid);
        let left = journal.spooled().unwrap();
        assert_eq!(left.len(), 1);
        assert!(!left[0].success);
        assert!(journal.interrupt_unfinished(&id, 11).unwrap().is_empty());
    }

    #[test]
    fn an_unspool_not_yet_written_is_resent_after_a_restart_and_a_written_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = [1, 2, 3].map(Jid::from_micros);
        {
            let mut journal = Journal::open(dir.path()).unwrap();
            for jid in [&a, &b] {
                journal.begin(jid, "test.ping", 1).unwrap();
                journal.finish(&ping_return(jid)).unwrap();
            }
            journal.unspool(&a);
            // Gone for this process at once, still on disk: a crash now means a resend.
            assert_eq!(
                journal
                    .spooled()
                    .unwrap()
                    .iter()
                    .map(|r| &r.jid)
                    .collect::<Vec<_>>(),
                [&b]
            );
        }
        assert_eq!(spooled_on_disk(dir.path()), [a.as_str(), b.as_str()]);
        {
            let mut journal = Journal::open(dir.path()).unwrap();
            journal.unspool(&a);
            journal.flush().unwrap();
            assert_eq!(spooled_on_disk(dir.path()), [b.as_str()]);
            // The next job's begin carries the deletion.
            journal.unspool(&b);
            journal.begin(&c, "test.ping", 3).unwrap();
        }
        assert!(spooled_on_disk(dir.path()).is_empty());
        let journal = Journal::open(dir.path()).unwrap();
        assert!([&a, &b, &c].iter().all(|jid| journal.has_started(jid)));
    }

    #[test]
    fn the_timer_writes_only_deletions_that_waited_a_whole_period() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = [1, 2, 3].map(Jid::from_micros);
        let mut journal = Journal::open(dir.path()).unwrap();
        for jid in [&a, &b] {
            journal.begin(jid, "test.ping", 1).unwrap();
            journal.finish(&ping_return(jid)).unwrap();
        }
        journal.unspool(&a);
        journal.flush_waiting().unwrap();
        assert_eq!(spooled_on_disk(dir.path()), [a.as_str(), b.as_str()]);
        journal.flush_waiting().unwrap();
        assert_eq!(spooled_on_disk(dir.path()), [b.as_str()]);
        // A begin between two ticks writes the deletion and restarts the wait.
        journal.unspool(&b);
        journal.flush_waiting().unwrap();
        journal.begin(&c, "test.ping", 3).unwrap();
        journal.finish(&ping_return(&c)).unwrap();
        journal.unspool(&c);
        journal.flush_waiting().unwrap();
        assert_eq!(spooled_on_disk(dir.path()), [c.as_str()]);
        journal.flush_waiting().unwrap();
        assert!(spooled_on_disk(dir.path()).is_empty());
    }

    #[test]
    fn prune_forgets_only_old_jobs_whose_return_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let [acked, spooled, running, recent] = [1, 2, 3, 4].map(Jid::from_micros);
        let mut journal = Journal::open(dir.path()).unwrap();
        for jid in [&acked, &spooled, &running] {
            journal.begin(jid, "test.ping", 1).unwrap();
        }
        journal.begin(&recent, "test.ping", 50).unwrap();
        for jid in [&acked, &spooled, &recent] {
            journal.finish(&ping_return(jid)).unwrap();
        }
        // Acknowledged in memory only: prune writes the deletion first.
        journal.unspool(&acked);
        journal.unspool(&recent);
        assert_eq!(journal.prune(10).unwrap(), 1);
        assert!(!journal.has_started(&acked));
        for jid in [&spooled, &running, &recent] {
            assert!(journal.has_started(jid));
        }
        assert_eq!(spooled_on_disk(dir.path()), [spooled.as_str()]);
        drop(journal);
        let journal = Journal::open(dir.path()).unwrap();
        assert!(!journal.has_started(&acked));
        assert!(journal.has_started(&spooled) && journal.has_started(&running));
    }

    #[test]
    fn a_journal_of_two_tables_is_moved_into_one_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let [returned, acked, running, orphan] = [1, 2, 3, 4].map(Jid::from_micros);
        {
            // The schema and rows as the minion wrote them before the one table.
            let conn = Connection::open(dir.path().join("journal.sqlite")).unwrap();
            conn.execute_batch(
                "CREATE TABLE started (
                     jid TEXT PRIMARY KEY,
                     fun TEXT NOT NULL,
                     started_ms INTEGER NOT NULL,
                     finished_ms INTEGER
                 ) WITHOUT ROWID;
                 CREATE TABLE spool (jid TEXT PRIMARY KEY, ret BLOB NOT NULL) WITHOUT ROWID;",
            )
            .unwrap();
            let mut start = conn
                .prepare("INSERT INTO started VALUES (?1, 'test.ping', 1, ?2)")
                .unwrap();
            start.execute(params![returned.as_str(), 2]).unwrap();
            start.execute(params![acked.as_str(), 2]).unwrap();
            start
                .execute(params![running.as_str(), None::<i64>])
                .unwrap();
            let mut spool = conn.prepare("INSERT INTO spool VALUES (?1, ?2)").unwrap();
            for jid in [&returned, &orphan] {
                spool
                    .execute(params![jid.as_str(), encode(&ping_return(jid))])
                    .unwrap();
            }
        }
        let mut journal = Journal::open(dir.path()).unwrap();
        for jid in [&returned, &acked, &running, &orphan] {
            assert!(journal.has_started(jid), "{jid} lost its started mark");
        }
        let spooled = journal.spooled().unwrap();
        assert_eq!(spooled, [ping_return(&returned), ping_return(&orphan)]);
        let interrupted = journal
            .interrupt_unfinished(&MinionId::new("m").unwrap(), 5)
            .unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].jid, running);
        let tables: Vec<String> = journal
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["jobs"]);
        drop(journal);
        // Opened again: nothing left to move, nothing lost.
        let journal = Journal::open(dir.path()).unwrap();
        assert!(journal.has_started(&acked));
        assert_eq!(spooled_on_disk(dir.path()).len(), 3);
    }
}
