//! The job store: jobs, their expected minions, returns and final states, and the minions the
//! master has met, in SQLite (WAL) under `state_dir`.
//!
//! Every method is one savepoint: all of it or nothing. A job is written before it is
//! published; a return is committed before the minion is told `ok`; `(jid, minion)` is stored
//! once, so a resent return changes nothing. Commits use `synchronous = NORMAL`: they survive a
//! crash of the master process, not a power loss within the last moments (see
//! docs/ARCHITECTURE.md).
//!
//! The store is synchronous; async callers reach it through a [`StoreHandle`]: one thread owns
//! the connection and runs the calls in order. Calls that queue up while it works are run as a
//! batch in one transaction (group commit), and none of them is answered before that commit:
//! a thousand returns arriving together cost one commit, not a thousand.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc as sync_mpsc;

use brine_proto::control::{
    ActiveJob, JobQuery, JobReport, JobSummary, KeyInfo, KeyMatcher, KeyState, MinionOutcome,
    MinionProgress, MinionState, MAX_LISTED_JOBS,
};
use brine_proto::{decode, encode, Fnmatch, Jid, Job, JobReturn, Map, MinionId, Target, Value};
use rusqlite::{params, Connection, OptionalExtension};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("job store: creating {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("job store: corrupt record for job {jid}: {reason}")]
    Corrupt { jid: String, reason: String },
    #[error("job store: a job with jid {0} exists already")]
    DuplicateJid(Jid),
    #[error("job store: the store thread has stopped")]
    Stopped,
    #[error("job store: committing: {0}")]
    Commit(String),
    #[error("{MAX_PENDING_KEYS} keys are pending already: accept, reject or delete some first")]
    TooManyPendingKeys,
    #[error("{MAX_PREACCEPTED_KEYS} ids are preaccepted already: delete some first")]
    TooManyPreaccepted,
    #[error(
        "job store: its schema is version {found}, written by a newer brine-master; this one \
         knows up to version {known} and leaves the store as it is (run the newer master, or \
         move the store aside)"
    )]
    NewerSchema { found: i64, known: i64 },
}

/// SQLite checkpoints by itself only past this many WAL pages (32 MiB); the store thread
/// checkpoints every [`CHECKPOINT_EVERY`].
const WAL_AUTOCHECKPOINT_PAGES: i64 = 8192;
/// The WAL file is truncated to this size after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// The most pending keys the master records: anyone who reaches the return port can present
/// a key, so the table must not grow without bound.
pub const MAX_PENDING_KEYS: usize = 4096;
/// The most ids preaccepted by fingerprint and not yet seen: an operator's list of expected
/// minions, bounded as the pending keys are.
pub const MAX_PREACCEPTED_KEYS: usize = 16_384;
/// The most denied keys recorded per id (the first ones; later ones are refused unrecorded).
pub const MAX_DENIED_PER_ID: usize = 8;

/// What [`Store::choose_key`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// The id's key now: accepted, or preaccepted when no key has the fingerprint yet.
    pub key: KeyInfo,
    /// The id's other keys that were not denied, as they were: they are denied now (a
    /// preaccepted fingerprint is dropped).
    pub displaced: Vec<KeyInfo>,
}

/// What storing a return did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnOutcome {
    /// Stored now.
    Stored,
    /// Stored before: a resend.
    Duplicate,
    /// No such job, or the minion was not expected in it.
    NotExpected,
}

/// A minion the master has met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMinion {
    pub id: MinionId,
    pub last_seen_ms: u64,
    pub version: String,
    /// The grains it reported last (empty if none could be read back).
    pub grains: Map,
}

/// A job whose deadline had not been reached, or whose final states were not yet written.
#[derive(Debug, Clone)]
pub struct OpenJob {
    pub jid: Jid,
    pub deadline_ms: u64,
    /// How long the function may run on a minion.
    pub timeout_ms: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    jid TEXT PRIMARY KEY,
    fun TEXT NOT NULL,
    target BLOB NOT NULL,
    arg BLOB NOT NULL,
    kwarg BLOB NOT NULL,
    user TEXT NOT NULL,
    published_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    finalized INTEGER NOT NULL DEFAULT 0,
    target_text TEXT
);
CREATE INDEX IF NOT EXISTS jobs_published ON jobs (published_ms);
CREATE TABLE IF NOT EXISTS expected (
    jid TEXT NOT NULL REFERENCES jobs (jid) ON DELETE CASCADE,
    minion TEXT NOT NULL,
    receipt_ms INTEGER,
    state TEXT,
    PRIMARY KEY (jid, minion)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS returns (
    jid TEXT NOT NULL REFERENCES jobs (jid) ON DELETE CASCADE,
    minion TEXT NOT NULL,
    ret BLOB NOT NULL,
    stored_ms INTEGER NOT NULL,
    PRIMARY KEY (jid, minion)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minions (
    id TEXT PRIMARY KEY,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    version TEXT NOT NULL,
    grains BLOB
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT NOT NULL,
    public BLOB NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (id, public)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_keys (
    epoch INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
";

/// The SQLite job store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

/// The schema version this build writes (SQLite's `user_version`). Version 1 is the schema of
/// the first versioned store: its migration brings any earlier store up to it, whatever it
/// lacked. A later change of the schema is a new version with a migration of its own, run once,
/// in order.
pub const SCHEMA_VERSION: i64 = 1;

/// Brings the store's schema to [`SCHEMA_VERSION`], each step once, in one immediate
/// transaction (a second master or process opening the same store waits for it, then finds
/// the work done). A store written by a newer brine is refused, not changed.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        tx.execute_batch(SCHEMA)?;
        add_missing_columns(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Columns added before the schema was versioned: a store from then gains them (part of
/// version 1's migration, inside its transaction).
fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    let has_grains = conn
        .prepare("SELECT 1 FROM pragma_table_info('minions') WHERE name = 'grains'")?
        .exists([])?;
    if !has_grains {
        conn.execute_batch("ALTER TABLE minions ADD COLUMN grains BLOB")?;
    }
    let has_target_text = conn
        .prepare("SELECT 1 FROM pragma_table_info('jobs') WHERE name = 'target_text'")?
        .exists([])?;
    if !has_target_text {
        conn.execute_batch("ALTER TABLE jobs ADD COLUMN target_text TEXT")?;
        fill_target_texts(conn)?;
    }
    Ok(())
}

/// Writes the target as written (`Target`'s display form, which `search_target` matches) of
/// every job stored before the column existed.
fn fill_target_texts(conn: &Connection) -> Result<(), StoreError> {
    let rows: Vec<(String, Vec<u8>)> = {
        let mut stmt = conn.prepare("SELECT jid, target FROM jobs WHERE target_text IS NULL")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut update = conn.prepare("UPDATE jobs SET target_text = ?2 WHERE jid = ?1")?;
    for (jid, target) in rows {
        match decode::<Target>(&target) {
            Ok(target) => {
                update.execute(params![jid, target.to_string()])?;
            }
            // Only the target filter misses it; the job itself is reported as corrupt when read.
            Err(err) => tracing::warn!(%jid, cause = %err, "a stored job's target does not decode"),
        }
    }
    Ok(())
}

/// Makes Salt's fnmatch (`brine_proto::fnmatch`) a function of SQL, `fnmatch(pattern, text)`,
/// so that a query filters with the dialect every other glob uses (SQLite's own GLOB is
/// another). A pattern is compiled once per statement.
fn add_fnmatch(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "fnmatch",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let glob = ctx.get_or_create_aux(0, |pattern| -> Result<Fnmatch, String> {
                Fnmatch::new(pattern.as_str().map_err(|e| e.to_string())?)
            })?;
            Ok(match ctx.get_raw(1) {
                rusqlite::types::ValueRef::Text(text) => {
                    std::str::from_utf8(text).is_ok_and(|text| glob.matches(text))
                }
                _ => false,
            })
        },
    )
}

impl Store {
    /// Opens (creating if needed) `state_dir/jobs.sqlite`.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Dir {
            path: state_dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(state_dir.join("jobs.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints (which fsync) come from the store thread once a minute, not in the middle
        // of a burst of returns every 1000 pages; the WAL file is cut back after each.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        // The hot statements (receipts, returns, hellos) are cached; room for all of them.
        conn.set_prepared_statement_cache_capacity(32);
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn)?;
        add_fnmatch(&conn)?;
        Ok(Self { conn })
    }

    /// Writes a new job and its expected minions: those it is sent to, and the ids its target
    /// names that have no accepted key (`no_key` from the start). Fails if the jid exists.
    pub fn insert_job(
        &mut self,
        job: &Job,
        published_ms: u64,
        deadline_ms: u64,
        expected: &[MinionId],
        no_key: &[MinionId],
    ) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO jobs (jid, fun, target, arg, kwarg, user, published_ms,
                deadline_ms, expires_ms, timeout_ms, target_text)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                job.jid.as_str(),
                job.fun,
                encode(&job.target),
                encode(&job.arg),
                encode(&job.kwarg),
                job.user,
                published_ms as i64,
                deadline_ms as i64,
                job.expires_ms as i64,
                job.timeout_ms as i64,
                job.target.to_string(),
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::DuplicateJid(job.jid.clone()));
        }
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO expected (jid, minion) VALUES (?1, ?2)")?;
            for id in expected {
                stmt.execute(params![job.jid.as_str(), id.as_str()])?;
            }
            let mut stmt =
                tx.prepare_cached("INSERT INTO expected (jid, minion, state) VALUES (?1, ?2, ?3)")?;
            for id in no_key {
                stmt.execute(params![
                    job.jid.as_str(),
                    id.as_str(),
                    MinionState::NoKey.name()
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records that `minion` received job `jid`. Returns false when it was not expected.
    pub fn record_receipt(
        &mut self,
        jid: &Jid,
        minion: &MinionId,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE expected SET receipt_ms = COALESCE(receipt_ms, ?3) WHERE jid = ?1 AND minion = ?2",
            )?
            .execute(params![jid.as_str(), minion.as_str(), now_ms as i64])?;
        Ok(n == 1)
    }

    /// Stores a return once per (jid, minion).
    pub fn record_return(
        &mut self,
        ret: &JobReturn,
        now_ms: u64,
    ) -> Result<ReturnOutcome, StoreError> {
        let tx = self.conn.savepoint()?;
        let expected: Option<String> = tx
            .prepare_cached("SELECT minion FROM expected WHERE jid = ?1 AND minion = ?2")?
            .query_row(params![ret.jid.as_str(), ret.id.as_str()], |row| row.get(0))
            .optional()?;
        if expected.is_none() {
            return Ok(ReturnOutcome::NotExpected);
        }
        let n = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO returns (jid, minion, ret, stored_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                ret.jid.as_str(),
                ret.id.as_str(),
                encode(ret),
                now_ms as i64
            ])?;
        if n == 0 {
            return Ok(ReturnOutcome::Duplicate);
        }
        // A return that lands after the deadline still corrects the recorded final state.
        tx.prepare_cached(
            "UPDATE expected SET state = 'returned' WHERE jid = ?1 AND minion = ?2 AND state IS NOT NULL",
        )?
        .execute(params![ret.jid.as_str(), ret.id.as_str()])?;
        tx.commit()?;
        Ok(ReturnOutcome::Stored)
    }

    /// Writes the final state of every listed minion that has none yet; the job stays open.
    pub fn settle(
        &mut self,
        jid: &Jid,
        states: &BTreeMap<MinionId, MinionState>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        write_states(&tx, jid, states)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes the final state of every listed minion that has none yet and marks the job final.
    pub fn finalize(
        &mut self,
        jid: &Jid,
        states: &BTreeMap<MinionId, MinionState>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        write_states(&tx, jid, states)?;
        tx.execute(
            "UPDATE jobs SET finalized = 1 WHERE jid = ?1",
            params![jid.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The full record of a job: every expected minion with its return and its state, by the
    /// rule every answer uses ([`MinionState::of`]).
    pub fn report(&self, jid: &Jid) -> Result<Option<JobReport>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT fun, target, arg, kwarg, user, published_ms, deadline_ms FROM jobs WHERE jid = ?1",
                params![jid.as_str()],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, Vec<u8>>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, i64>(5)?,
                        row.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((fun, target, arg, kwarg, user, published_ms, deadline_ms)) = row else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            jid: jid.to_string(),
            reason,
        };
        let target: Target = decode(&target).map_err(|e| corrupt(e.to_string()))?;
        let arg: Vec<Value> = decode(&arg).map_err(|e| corrupt(e.to_string()))?;
        let kwarg: Map = decode(&kwarg).map_err(|e| corrupt(e.to_string()))?;

        let mut stmt = self.conn.prepare(
            "SELECT e.minion, e.receipt_ms, e.state, r.ret FROM expected e
             LEFT JOIN returns r ON r.jid = e.jid AND r.minion = e.minion
             WHERE e.jid = ?1 ORDER BY e.minion",
        )?;
        let rows = stmt.query_map(params![jid.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<i64>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        let mut minions = Vec::new();
        for row in rows {
            let (id, receipt, state, ret) = row?;
            let id = MinionId::new(id).map_err(|e| corrupt(e.to_string()))?;
            let ret: Option<JobReturn> = ret
                .map(|bytes| decode(&bytes))
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?;
            let settled = state
                .map(|name| MinionState::from_name(&name).ok_or_else(|| corrupt(name)))
                .transpose()?;
            let state = MinionState::of(
                ret.as_ref().map(MinionState::of_return),
                settled,
                receipt.is_some(),
            );
            minions.push(MinionOutcome { id, state, ret });
        }
        Ok(Some(JobReport {
            jid: jid.clone(),
            fun,
            target,
            arg,
            kwarg,
            user,
            published_ms: published_ms as u64,
            deadline_ms: deadline_ms as u64,
            minions,
        }))
    }

    /// Jobs not yet finalized: on start, the master resumes their deadlines.
    pub fn open_jobs(&self) -> Result<Vec<OpenJob>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT jid, deadline_ms, timeout_ms FROM jobs WHERE finalized = 0 ORDER BY jid",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let mut jobs = Vec::new();
        for row in rows {
            let (jid, deadline_ms, timeout_ms) = row?;
            let jid = Jid::new(jid.clone()).map_err(|e| StoreError::Corrupt {
                jid,
                reason: e.to_string(),
            })?;
            jobs.push(OpenJob {
                jid,
                deadline_ms: deadline_ms as u64,
                timeout_ms: timeout_ms as u64,
            });
        }
        Ok(jobs)
    }

    /// Live jobs (not expired) that expect `minion` and have neither a return nor a final
    /// state from it (a `no_key` id was sent nothing, and gets nothing later): catch-up.
    pub fn pending_for(&self, minion: &MinionId, now_ms: u64) -> Result<Vec<Job>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT j.jid, j.fun, j.target, j.arg, j.kwarg, j.user, j.expires_ms, j.timeout_ms
             FROM jobs j JOIN expected e ON e.jid = j.jid
             LEFT JOIN returns r ON r.jid = e.jid AND r.minion = e.minion
             WHERE e.minion = ?1 AND r.jid IS NULL AND e.state IS NULL
               AND j.expires_ms > ?2 AND j.finalized = 0
             ORDER BY j.jid",
        )?;
        let rows = stmt.query_map(params![minion.as_str(), now_ms as i64], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, Vec<u8>>(3)?,
                row.get::<_, Vec<u8>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, i64>(7)?,
            ))
        })?;
        let mut jobs = Vec::new();
        for row in rows {
            let (jid, fun, target, arg, kwarg, user, expires_ms, timeout_ms) = row?;
            let corrupt = |reason: String| StoreError::Corrupt {
                jid: jid.clone(),
                reason,
            };
            jobs.push(Job {
                jid: Jid::new(jid.clone()).map_err(|e| corrupt(e.to_string()))?,
                target: decode(&target).map_err(|e| corrupt(e.to_string()))?,
                fun,
                arg: decode(&arg).map_err(|e| corrupt(e.to_string()))?,
                kwarg: decode(&kwarg).map_err(|e| corrupt(e.to_string()))?,
                timeout_ms: timeout_ms as u64,
                expires_ms: expires_ms as u64,
                master_time_ms: now_ms,
                user,
            });
        }
        Ok(jobs)
    }

    /// The newest jobs that pass every filter of `query`, with their counts: at most
    /// `query.limit` of them, and never more than [`MAX_LISTED_JOBS`]. The filters are
    /// conditions of the query itself (the globs through the SQL function `fnmatch`), so only the jobs listed
    /// are read.
    pub fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobSummary>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<rusqlite::types::Value> =
            vec![i64::from(query.limit.min(MAX_LISTED_JOBS)).into()];
        let mut bind = |value: rusqlite::types::Value| {
            values.push(value);
            format!("?{}", values.len())
        };
        if let Some(pattern) = &query.search_function {
            let p = bind(pattern.clone().into());
            conditions.push(format!("fnmatch({p}, j.fun)"));
        }
        if let Some(pattern) = &query.search_target {
            let p = bind(pattern.clone().into());
            conditions.push(format!(
                "(fnmatch({p}, j.target_text) OR EXISTS
                    (SELECT 1 FROM expected e WHERE e.jid = j.jid AND fnmatch({p}, e.minion)))"
            ));
        }
        let ms = |ms: u64| rusqlite::types::Value::Integer(ms.min(i64::MAX as u64) as i64);
        if let Some(start) = query.start_time_ms {
            let p = bind(ms(start));
            conditions.push(format!("j.published_ms >= {p}"));
        }
        if let Some(end) = query.end_time_ms {
            let p = bind(ms(end));
            conditions.push(format!("j.published_ms <= {p}"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // Only fixed fragments and parameter numbers go into the text; values are bound.
        let mut stmt = self.conn.prepare(&format!(
            "SELECT j.jid, j.fun, j.target, j.user, j.published_ms,
                (SELECT COUNT(*) FROM expected e WHERE e.jid = j.jid),
                (SELECT COUNT(*) FROM returns r WHERE r.jid = j.jid)
             FROM jobs j {filter} ORDER BY j.jid DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, u32>(5)?,
                row.get::<_, u32>(6)?,
            ))
        })?;
        let mut jobs = Vec::new();
        for row in rows {
            let (jid, fun, target, user, published_ms, expected, returned) = row?;
            let corrupt = |reason: String| StoreError::Corrupt {
                jid: jid.clone(),
                reason,
            };
            jobs.push(JobSummary {
                jid: Jid::new(jid.clone()).map_err(|e| corrupt(e.to_string()))?,
                fun,
                target: decode(&target).map_err(|e| corrupt(e.to_string()))?,
                user,
                published_ms: published_ms as u64,
                expected,
                returned,
            });
        }
        Ok(jobs)
    }

    /// The live jobs of `live` (from the job hub: each with where its minions stand), with
    /// what the store holds about each: function, target, user, publication time. A job the
    /// store does not hold (pruned in the meantime) is left out; the order is kept.
    pub fn active_jobs(
        &self,
        live: Vec<(Jid, Vec<MinionProgress>)>,
    ) -> Result<Vec<ActiveJob>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT fun, target, user, published_ms FROM jobs WHERE jid = ?1")?;
        let mut jobs = Vec::with_capacity(live.len());
        for (jid, minions) in live {
            let row = stmt
                .query_row(params![jid.as_str()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
                .optional()?;
            let Some((fun, target, user, published_ms)) = row else {
                continue;
            };
            let target = decode(&target).map_err(|e| StoreError::Corrupt {
                jid: jid.to_string(),
                reason: e.to_string(),
            })?;
            jobs.push(ActiveJob {
                jid,
                fun,
                target,
                user,
                published_ms: published_ms as u64,
                minions,
            });
        }
        Ok(jobs)
    }

    /// Moves the WAL's pages into the database (without waiting for readers).
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Deletes jobs published before `cutoff_ms`; returns how many.
    pub fn prune(&mut self, cutoff_ms: u64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM jobs WHERE published_ms < ?1 AND finalized = 1",
            params![cutoff_ms as i64],
        )?)
    }

    /// Records a minion's hello (first or again) and the grains it carried.
    pub fn upsert_minion(
        &mut self,
        id: &MinionId,
        version: &str,
        grains: &Map,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO minions (id, first_seen_ms, last_seen_ms, version, grains)
                 VALUES (?1, ?2, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET last_seen_ms = ?2, version = ?3, grains = ?4",
            )?
            .execute(params![id.as_str(), now_ms as i64, version, encode(grains)])?;
        Ok(())
    }

    /// Records a known minion's new grains.
    pub fn update_grains(&mut self, id: &MinionId, grains: &Map) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE minions SET grains = ?2 WHERE id = ?1")?
            .execute(params![id.as_str(), encode(grains)])?;
        Ok(())
    }

    /// Every minion the master has met.
    pub fn minions(&self) -> Result<Vec<KnownMinion>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, last_seen_ms, version, grains FROM minions ORDER BY id")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        let mut minions = Vec::new();
        for row in rows {
            let (id, last_seen_ms, version, grains) = row?;
            let id = MinionId::new(id.clone()).map_err(|e| StoreError::Corrupt {
                jid: format!("(minion {id})"),
                reason: e.to_string(),
            })?;
            // Grains are a cache the minion's next hello refreshes: unreadable ones are
            // forgotten, not fatal.
            let grains = match grains.as_deref().map(decode::<Map>) {
                Some(Ok(grains)) => grains,
                Some(Err(err)) => {
                    tracing::warn!(minion = %id, cause = %err, "forgetting unreadable stored grains");
                    Map::new()
                }
                None => Map::new(),
            };
            minions.push(KnownMinion {
                id,
                last_seen_ms: last_seen_ms as u64,
                version,
                grains,
            });
        }
        Ok(minions)
    }
}

/// The keys part of the store: minion keys by state, and the group key's epochs.
///
/// An id holds at most one key that is not denied. A `preaccepted` row holds a fingerprint
/// and no key (an empty `public`): the key with that fingerprint becomes the id's accepted key
/// when it is presented.
impl Store {
    /// Records the key a minion presented and returns the state of that key: a new id gets
    /// `pending` (or `accepted` with auto-accept); the key an operator preaccepted gets
    /// `accepted`; a second key for an id that has one is `denied` and never replaces the first.
    pub fn register_key(
        &mut self,
        id: &MinionId,
        public: &[u8],
        fingerprint: &str,
        auto_accept: bool,
        now_ms: u64,
    ) -> Result<KeyState, StoreError> {
        let tx = self.conn.savepoint()?;
        let rows = key_rows(&tx, id)?;
        if let Some(row) = rows.iter().find(|row| row.public == public) {
            return Ok(row.state);
        }
        if rows
            .iter()
            .any(|row| row.state == KeyState::Preaccepted && row.fingerprint == fingerprint)
        {
            tx.execute(
                "UPDATE keys SET public = ?2, state = 'accepted', first_seen_ms = ?3 \
                 WHERE id = ?1 AND state = 'preaccepted'",
                params![id.as_str(), public, now_ms as i64],
            )?;
            tx.commit()?;
            return Ok(KeyState::Accepted);
        }
        let holds_a_key = rows.iter().any(|row| row.state != KeyState::Denied);
        let state = match (holds_a_key, auto_accept) {
            (true, _) => KeyState::Denied,
            (false, true) => KeyState::Accepted,
            (false, false) => KeyState::Pending,
        };
        match state {
            KeyState::Denied if rows.len() > MAX_DENIED_PER_ID => return Ok(KeyState::Denied),
            KeyState::Pending if count_in_state(&tx, KeyState::Pending)? >= MAX_PENDING_KEYS => {
                return Err(StoreError::TooManyPendingKeys)
            }
            _ => {}
        }
        tx.execute(
            "INSERT INTO keys (id, public, state, fingerprint, first_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.as_str(), public, state.name(), fingerprint, now_ms as i64],
        )?;
        tx.commit()?;
        Ok(state)
    }

    /// Those of `ids` whose key is accepted.
    pub fn accepted_among(&self, ids: &[MinionId]) -> Result<Vec<MinionId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM keys WHERE id = ?1 AND state = ?2")?;
        let mut accepted = Vec::new();
        for id in ids {
            if stmt.exists(params![id.as_str(), KeyState::Accepted.name()])? {
                accepted.push(id.clone());
            }
        }
        Ok(accepted)
    }

    /// Every key, sorted by id then state.
    pub fn keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, state, fingerprint FROM keys ORDER BY id, state, fingerprint")?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (id, state, fingerprint) = row?;
            let corrupt = |reason: String| StoreError::Corrupt {
                jid: format!("(key of {id})"),
                reason,
            };
            keys.push(KeyInfo {
                id: MinionId::new(id.clone()).map_err(|e| corrupt(e.to_string()))?,
                state: KeyState::from_name(&state).ok_or_else(|| corrupt(state.clone()))?,
                fingerprint,
            });
        }
        Ok(keys)
    }

    /// Moves the id's key (not its denied ones) from one of `from` to `to`; returns it changed,
    /// or None when the id has no key in one of those states.
    pub fn set_key_state(
        &mut self,
        id: &MinionId,
        from: &[KeyState],
        to: KeyState,
    ) -> Result<Option<KeyInfo>, StoreError> {
        for state in from {
            let n = self.conn.execute(
                "UPDATE keys SET state = ?3 WHERE id = ?1 AND state = ?2",
                params![id.as_str(), state.name(), to.name()],
            )?;
            if n > 0 {
                let fingerprint: String = self.conn.query_row(
                    "SELECT fingerprint FROM keys WHERE id = ?1 AND state = ?2",
                    params![id.as_str(), to.name()],
                    |row| row.get(0),
                )?;
                return Ok(Some(KeyInfo {
                    id: id.clone(),
                    state: to,
                    fingerprint,
                }));
            }
        }
        Ok(None)
    }

    /// The operator's choice of the id's key by its fingerprint: the id's key that has it is
    /// accepted, or, when none has it yet and `preaccept`, the id is preaccepted for it; every
    /// other key of the id becomes denied (another preaccepted fingerprint is dropped). An
    /// accepted key that is displaced takes the minion with it (forgotten, as by a reject).
    /// None (nothing changed) when no key has the fingerprint and not `preaccept`.
    pub fn choose_key(
        &mut self,
        id: &MinionId,
        fingerprint: &str,
        preaccept: bool,
        now_ms: u64,
    ) -> Result<Option<Chosen>, StoreError> {
        let tx = self.conn.savepoint()?;
        let rows = key_rows(&tx, id)?;
        if !preaccept && !rows.iter().any(|row| row.fingerprint == fingerprint) {
            return Ok(None);
        }
        let displaced: Vec<KeyInfo> = rows
            .iter()
            .filter(|row| row.fingerprint != fingerprint && row.state != KeyState::Denied)
            .map(|row| row.info(id))
            .collect();
        for key in &displaced {
            if key.state == KeyState::Preaccepted {
                tx.execute(
                    "DELETE FROM keys WHERE id = ?1 AND state = 'preaccepted'",
                    params![id.as_str()],
                )?;
            } else {
                tx.execute(
                    "UPDATE keys SET state = 'denied' WHERE id = ?1 AND fingerprint = ?2",
                    params![id.as_str(), key.fingerprint],
                )?;
            }
        }
        let state = match rows.iter().find(|row| row.fingerprint == fingerprint) {
            Some(row) if matches!(row.state, KeyState::Accepted | KeyState::Preaccepted) => {
                row.state
            }
            Some(_) => {
                tx.execute(
                    "UPDATE keys SET state = 'accepted' WHERE id = ?1 AND fingerprint = ?2",
                    params![id.as_str(), fingerprint],
                )?;
                KeyState::Accepted
            }
            None => {
                if count_in_state(&tx, KeyState::Preaccepted)? >= MAX_PREACCEPTED_KEYS {
                    return Err(StoreError::TooManyPreaccepted);
                }
                tx.execute(
                    "INSERT INTO keys (id, public, state, fingerprint, first_seen_ms) \
                     VALUES (?1, X'', 'preaccepted', ?2, ?3)",
                    params![id.as_str(), fingerprint, now_ms as i64],
                )?;
                KeyState::Preaccepted
            }
        };
        if displaced.iter().any(|k| k.state == KeyState::Accepted) {
            tx.execute("DELETE FROM minions WHERE id = ?1", params![id.as_str()])?;
        }
        tx.commit()?;
        Ok(Some(Chosen {
            key: KeyInfo {
                id: id.clone(),
                state,
                fingerprint: fingerprint.to_owned(),
            },
            displaced,
        }))
    }

    /// Rejects the keys `selection` matches (it was compiled for pending and accepted keys),
    /// in one transaction; returns them as they were. The minions whose accepted key was
    /// rejected are forgotten.
    pub fn reject_keys(&mut self, selection: &KeyMatcher) -> Result<Vec<KeyInfo>, StoreError> {
        self.change_keys(selection, "UPDATE keys SET state = 'rejected'")
    }

    /// Forgets the keys `selection` matches, in one transaction; returns them as they were.
    /// The minions whose accepted key went are forgotten.
    pub fn delete_keys(&mut self, selection: &KeyMatcher) -> Result<Vec<KeyInfo>, StoreError> {
        self.change_keys(selection, "DELETE FROM keys")
    }

    /// `change` (an UPDATE or DELETE of `keys` without its WHERE) on every key `selection`
    /// matches.
    fn change_keys(
        &mut self,
        selection: &KeyMatcher,
        change: &str,
    ) -> Result<Vec<KeyInfo>, StoreError> {
        let chosen: Vec<KeyInfo> = self
            .keys()?
            .into_iter()
            .filter(|k| selection.matches(k))
            .collect();
        let tx = self.conn.savepoint()?;
        {
            let mut change = tx.prepare(&format!(
                "{change} WHERE id = ?1 AND state = ?2 AND fingerprint = ?3"
            ))?;
            let mut forget = tx.prepare("DELETE FROM minions WHERE id = ?1")?;
            for key in &chosen {
                change.execute(params![key.id.as_str(), key.state.name(), key.fingerprint])?;
                if key.state == KeyState::Accepted {
                    forget.execute(params![key.id.as_str()])?;
                }
            }
        }
        tx.commit()?;
        Ok(chosen)
    }

    /// The newest group key: (epoch, key bytes).
    pub fn group_key(&self) -> Result<Option<(u32, Vec<u8>)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT epoch, key FROM group_keys ORDER BY epoch DESC LIMIT 1",
                [],
                |row| Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?)
    }

    /// Stores a new group key epoch and forgets the older ones.
    pub fn put_group_key(&mut self, epoch: u32, key: &[u8], now_ms: u64) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        tx.execute(
            "INSERT INTO group_keys (epoch, key, created_ms) VALUES (?1, ?2, ?3)",
            params![epoch, key, now_ms as i64],
        )?;
        tx.execute("DELETE FROM group_keys WHERE epoch < ?1", params![epoch])?;
        tx.commit()?;
        Ok(())
    }
}

/// One row of `keys`.
struct KeyRow {
    public: Vec<u8>,
    state: KeyState,
    fingerprint: String,
}

impl KeyRow {
    fn info(&self, id: &MinionId) -> KeyInfo {
        KeyInfo {
            id: id.clone(),
            state: self.state,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Every row of the id's keys.
fn key_rows(conn: &Connection, id: &MinionId) -> Result<Vec<KeyRow>, StoreError> {
    let mut stmt = conn.prepare("SELECT public, state, fingerprint FROM keys WHERE id = ?1")?;
    let rows = stmt.query_map(params![id.as_str()], |row| {
        Ok((row.get(0)?, row.get::<_, String>(1)?, row.get(2)?))
    })?;
    let mut keys = Vec::new();
    for row in rows {
        let (public, state, fingerprint) = row?;
        let state = KeyState::from_name(&state).ok_or_else(|| StoreError::Corrupt {
            jid: format!("(key of {id})"),
            reason: state.clone(),
        })?;
        keys.push(KeyRow {
            public,
            state,
            fingerprint,
        });
    }
    Ok(keys)
}

/// How many keys are in `state`.
fn count_in_state(conn: &Connection, state: KeyState) -> Result<usize, StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM keys WHERE state = ?1",
        params![state.name()],
        |row| row.get(0),
    )?)
}

/// Writes the final state of every listed minion that has none yet.
fn write_states(
    tx: &Connection,
    jid: &Jid,
    states: &BTreeMap<MinionId, MinionState>,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "UPDATE expected SET state = ?3 WHERE jid = ?1 AND minion = ?2 AND state IS NULL",
    )?;
    for (id, state) in states {
        stmt.execute(params![jid.as_str(), id.as_str(), state.name()])?;
    }
    Ok(())
}

/// One store call, run on the store thread; it gives back what answers the caller once the
/// batch it ran in has committed (or failed to).
type Call = Box<dyn FnOnce(&mut Store) -> Answer + Send>;
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The most calls committed together.
const MAX_BATCH: usize = 512;
/// How often the store thread checkpoints the WAL (between batches, outside a transaction).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A cloneable async handle to the [`Store`], which lives on a thread of its own.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    calls: sync_mpsc::Sender<Call>,
}

impl StoreHandle {
    /// Moves `store` to a thread of its own; it closes when the last handle is dropped.
    pub fn spawn(store: Store) -> std::io::Result<Self> {
        let (calls, queue) = sync_mpsc::channel::<Call>();
        std::thread::Builder::new()
            .name("brine-store".into())
            .spawn(move || serve(store, queue))?;
        Ok(Self { calls })
    }

    /// Runs `f` with the store; answers once what it wrote is committed.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let call: Call = Box::new(move |store| {
            let result = f(store);
            Box::new(move |committed: Result<(), String>| {
                let _ = tx.send(committed.map_err(StoreError::Commit).and(result));
            })
        });
        self.calls.send(call).map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }
}

/// The store thread: takes every call that is queued (up to [`MAX_BATCH`]), runs them in one
/// transaction, each in its own savepoint (a failing call undoes only itself), commits, then
/// answers them all. Once in a while, between batches, it checkpoints the WAL.
fn serve(mut store: Store, queue: sync_mpsc::Receiver<Call>) {
    let mut checkpointed = std::time::Instant::now();
    while let Ok(first) = queue.recv() {
        let batch = std::iter::once(first)
            .chain(std::iter::from_fn(|| queue.try_recv().ok()))
            .take(MAX_BATCH);
        // Without an open transaction each call commits by itself: still correct.
        let began = store.conn.execute_batch("BEGIN").is_ok();
        let answers: Vec<Answer> = batch.map(|call| call(&mut store)).collect();
        let committed = if began {
            store
                .conn
                .execute_batch("COMMIT")
                .map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        if committed.is_err() {
            let _ = store.conn.execute_batch("ROLLBACK");
        }
        for answer in answers {
            answer(committed.clone());
        }
        if checkpointed.elapsed() >= CHECKPOINT_EVERY {
            if let Err(err) = store.checkpoint() {
                tracing::warn!(cause = %err, "checkpointing the job store failed");
            }
            checkpointed = std::time::Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::control::{KeySelection, REJECTABLE};

    fn job(jid: &Jid) -> Job {
        Job {
            jid: jid.clone(),
            target: Target::Glob("*".into()),
            fun: "test.ping".into(),
            arg: vec![],
            kwarg: Map::new(),
            timeout_ms: 1000,
            expires_ms: 10_000,
            master_time_ms: 0,
            user: "root".into(),
        }
    }

    fn ret(jid: &Jid, id: &MinionId) -> JobReturn {
        JobReturn::new(id.clone(), jid.clone(), "test.ping", true).ran(1, 2)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_batched_in_one_commit_fail_alone_and_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let jid = Jid::from_micros(1);
        let ids: Vec<MinionId> = (0..200)
            .map(|i| MinionId::new(format!("m{i}")).unwrap())
            .collect();
        let handle = StoreHandle::spawn(Store::open(dir.path()).unwrap()).unwrap();
        let expected = ids.clone();
        handle
            .call(move |s| s.insert_job(&job(&Jid::from_micros(1)), 0, 5000, &expected, &[]))
            .await
            .unwrap();
        // Many calls at once (they queue up and share commits), one of which fails.
        let calls = ids.iter().map(|id| {
            let (handle, ret) = (handle.clone(), ret(&jid, id));
            tokio::spawn(async move { handle.call(move |s| s.record_return(&ret, 3)).await })
        });
        let duplicate = {
            let handle = handle.clone();
            tokio::spawn(async move {
                handle
                    .call(|s| s.insert_job(&job(&Jid::from_micros(1)), 0, 5000, &[], &[]))
                    .await
            })
        };
        for call in calls.collect::<Vec<_>>() {
            assert_eq!(call.await.unwrap().unwrap(), ReturnOutcome::Stored);
        }
        assert!(matches!(
            duplicate.await.unwrap(),
            Err(StoreError::DuplicateJid(_))
        ));
        drop(handle);
        let reopened = Store::open(dir.path()).unwrap();
        let report = reopened.report(&jid).unwrap().unwrap();
        assert!(report
            .minions
            .iter()
            .all(|m| m.state == MinionState::Returned));
        assert_eq!(report.minions.len(), 200);
    }

    #[test]
    fn a_checkpoint_moves_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let a = MinionId::new("a").unwrap();
        store
            .insert_job(&job(&Jid::from_micros(1)), 0, 5000, &[a], &[])
            .unwrap();
        let wal = dir.path().join("jobs.sqlite-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        store.checkpoint().unwrap();
        let reopened = Store::open(dir.path()).unwrap();
        assert!(reopened.report(&Jid::from_micros(1)).unwrap().is_some());
    }

    #[test]
    fn a_return_is_stored_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let jid = Jid::from_micros(1);
        let a = MinionId::new("a").unwrap();
        let b = MinionId::new("b").unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            store
                .insert_job(&job(&jid), 0, 5000, &[a.clone(), b.clone()], &[])
                .unwrap();
            assert!(matches!(
                store.insert_job(&job(&jid), 0, 5000, std::slice::from_ref(&a), &[]),
                Err(StoreError::DuplicateJid(_))
            ));
            assert_eq!(
                store.record_return(&ret(&jid, &a), 3).unwrap(),
                ReturnOutcome::Stored
            );
            assert_eq!(
                store.record_return(&ret(&jid, &a), 4).unwrap(),
                ReturnOutcome::Duplicate
            );
            let stranger = MinionId::new("c").unwrap();
            assert_eq!(
                store.record_return(&ret(&jid, &stranger), 4).unwrap(),
                ReturnOutcome::NotExpected
            );
            assert!(store.record_receipt(&jid, &b, 5).unwrap());
        }
        let mut store = Store::open(dir.path()).unwrap();
        let report = store.report(&jid).unwrap().unwrap();
        let states: Vec<_> = report.minions.iter().map(|m| m.state).collect();
        assert_eq!(states, [MinionState::Returned, MinionState::Running]);
        assert_eq!(store.pending_for(&b, 100).unwrap().len(), 1);
        assert!(store.pending_for(&a, 100).unwrap().is_empty());
        assert!(store.pending_for(&b, 20_000).unwrap().is_empty());

        let finals = BTreeMap::from([
            (a.clone(), MinionState::NoResponse),
            (b.clone(), MinionState::NoResponse),
        ]);
        store.finalize(&jid, &finals).unwrap();
        let report = store.report(&jid).unwrap().unwrap();
        let states: Vec<_> = report.minions.iter().map(|m| m.state).collect();
        assert_eq!(states, [MinionState::Returned, MinionState::NoResponse]);
        assert!(store.open_jobs().unwrap().is_empty());
        assert_eq!(
            store.list_jobs(&JobQuery::newest(10)).unwrap()[0].returned,
            1
        );
        assert_eq!(store.prune(1).unwrap(), 1);
        assert!(store.report(&jid).unwrap().is_none());
    }

    /// Stores a job of `fun` on `target` published at `published_ms`, expecting `expected`.
    fn stored(store: &mut Store, micros: u64, fun: &str, target: Target, expected: &[&str]) -> Jid {
        let jid = Jid::from_micros(micros);
        let job = Job {
            fun: fun.into(),
            target,
            ..job(&jid)
        };
        let expected: Vec<MinionId> = expected
            .iter()
            .map(|i| MinionId::new(*i).unwrap())
            .collect();
        store
            .insert_job(&job, micros / 1000, micros / 1000 + 5000, &expected, &[])
            .unwrap();
        jid
    }

    fn listed(store: &Store, query: JobQuery) -> Vec<String> {
        let jobs = store.list_jobs(&query).unwrap();
        jobs.into_iter().map(|j| j.fun).collect()
    }

    #[test]
    fn list_jobs_filters_by_function_target_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let glob = |s: &str| Target::Glob(s.into());
        stored(
            &mut store,
            1_000_000,
            "test.ping",
            glob("*"),
            &["web1", "web2", "db1"],
        );
        stored(&mut store, 2_000_000, "test.echo", glob("db1"), &["db1"]);
        stored(
            &mut store,
            3_000_000,
            "cmd.run",
            Target::list_from_str("web1,web2"),
            &["web1", "web2"],
        );
        stored(
            &mut store,
            4_000_000,
            "test.sleep",
            glob("web[!1]"),
            &["web2"],
        );
        let query = |f: fn(&mut JobQuery)| {
            let mut q = JobQuery::newest(100);
            f(&mut q);
            q
        };
        assert_eq!(
            listed(&store, JobQuery::newest(100)),
            ["test.sleep", "cmd.run", "test.echo", "test.ping"]
        );
        assert_eq!(
            listed(&store, JobQuery::newest(2)),
            ["test.sleep", "cmd.run"]
        );
        assert_eq!(
            listed(&store, query(|q| q.search_function = Some("test.*".into()))),
            ["test.sleep", "test.echo", "test.ping"]
        );
        assert_eq!(
            listed(
                &store,
                query(|q| q.search_function = Some("test.[!p]*".into()))
            ),
            ["test.sleep", "test.echo"]
        );
        // The target as written, or an expected minion.
        assert_eq!(
            listed(&store, query(|q| q.search_target = Some("db1".into()))),
            ["test.echo", "test.ping"]
        );
        assert_eq!(
            listed(&store, query(|q| q.search_target = Some("L@*".into()))),
            ["cmd.run"]
        );
        assert_eq!(
            listed(&store, query(|q| q.search_target = Some("web[!1]".into()))),
            ["test.sleep", "cmd.run", "test.ping"]
        );
        // Times are inclusive at both ends.
        assert_eq!(
            listed(
                &store,
                query(|q| {
                    q.start_time_ms = Some(2_000);
                    q.end_time_ms = Some(3_000);
                })
            ),
            ["cmd.run", "test.echo"]
        );
        assert_eq!(
            listed(
                &store,
                query(|q| {
                    q.start_time_ms = Some(2_001);
                    q.search_function = Some("test.*".into());
                })
            ),
            ["test.sleep"]
        );
        assert!(listed(&store, query(|q| q.end_time_ms = Some(999))).is_empty());
        assert_eq!(
            listed(&store, query(|q| q.end_time_ms = Some(u64::MAX))).len(),
            4
        );
        // Nothing in the patterns is SQL.
        assert!(listed(
            &store,
            query(|q| q.search_function = Some("' OR 1=1 --".into()))
        )
        .is_empty());
    }

    #[test]
    fn list_jobs_answers_at_most_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let many = MAX_LISTED_JOBS as u64 + 5;
        store.conn.execute_batch("BEGIN").unwrap();
        for i in 0..many {
            stored(
                &mut store,
                1_000_000 + i,
                "test.ping",
                Target::Glob("*".into()),
                &[],
            );
        }
        store.conn.execute_batch("COMMIT").unwrap();
        assert_eq!(
            store.list_jobs(&JobQuery::newest(u32::MAX)).unwrap().len(),
            MAX_LISTED_JOBS as usize
        );
    }

    #[test]
    fn an_old_store_gains_the_target_text_of_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let jid = {
            let mut store = Store::open(dir.path()).unwrap();
            let jid = stored(
                &mut store,
                1_000_000,
                "test.ping",
                Target::list_from_str("a,b"),
                &["a"],
            );
            // As a store from before the column was kept (and the schema versioned).
            store
                .conn
                .execute_batch("ALTER TABLE jobs DROP COLUMN target_text; PRAGMA user_version = 0")
                .unwrap();
            jid
        };
        let store = Store::open(dir.path()).unwrap();
        let text: String = store
            .conn
            .query_row(
                "SELECT target_text FROM jobs WHERE jid = ?1",
                [jid.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(text, "L@a,b");
        let mut q = JobQuery::newest(10);
        q.search_target = Some("L@a,*".into());
        assert_eq!(listed(&store, q), ["test.ping"]);
    }

    #[test]
    fn grains_survive_reopening_and_an_old_store_gains_their_column() {
        let dir = tempfile::tempdir().unwrap();
        // A store from before grains were kept.
        Connection::open(dir.path().join("jobs.sqlite"))
            .unwrap()
            .execute_batch(
                "CREATE TABLE minions (id TEXT PRIMARY KEY, first_seen_ms INTEGER NOT NULL,
                     last_seen_ms INTEGER NOT NULL, version TEXT NOT NULL);
                 INSERT INTO minions VALUES ('old1', 1, 2, '0.0.9');",
            )
            .unwrap();
        let web1 = MinionId::new("web1").unwrap();
        let mut grains = Map::new();
        grains.insert("os".into(), "Debian".into());
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.upsert_minion(&web1, "0.1.0", &Map::new(), 3).unwrap();
            store.update_grains(&web1, &grains).unwrap();
        }
        let minions = Store::open(dir.path()).unwrap().minions().unwrap();
        assert_eq!(minions.len(), 2);
        assert_eq!(minions[0].id.as_str(), "old1");
        assert!(minions[0].grains.is_empty(), "none were ever reported");
        assert_eq!(minions[1].grains, grains);
    }

    #[test]
    fn the_schema_is_versioned_and_a_newer_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let version = |store: &Store| -> i64 {
            store
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(version(&store), SCHEMA_VERSION);
        drop(store);
        // Opening again runs nothing twice.
        assert_eq!(version(&Store::open(dir.path()).unwrap()), SCHEMA_VERSION);
        Connection::open(dir.path().join("jobs.sqlite"))
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("newer brine-master"), "{err}");
        let left: i64 = Connection::open(dir.path().join("jobs.sqlite"))
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, SCHEMA_VERSION + 1, "not changed");
    }

    #[test]
    fn a_second_key_for_an_id_is_denied_and_never_replaces_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let id = MinionId::new("web1").unwrap();
        let first = store.register_key(&id, b"key-one", "f1", false, 1).unwrap();
        assert_eq!(first, KeyState::Pending);
        assert_eq!(
            store.register_key(&id, b"key-one", "f1", false, 2).unwrap(),
            KeyState::Pending
        );
        assert_eq!(
            store.register_key(&id, b"key-two", "f2", true, 3).unwrap(),
            KeyState::Denied
        );
        let accepted = store
            .set_key_state(&id, &[KeyState::Pending], KeyState::Accepted)
            .unwrap()
            .unwrap();
        assert_eq!(accepted.fingerprint, "f1");
        assert_eq!(
            store.register_key(&id, b"key-one", "f1", false, 4).unwrap(),
            KeyState::Accepted
        );
        assert_eq!(
            store.register_key(&id, b"key-two", "f2", false, 5).unwrap(),
            KeyState::Denied
        );
        assert_eq!(store.keys().unwrap().len(), 2);
        let web1 = KeySelection::id(&id).compile(&KeyState::ALL).unwrap();
        assert_eq!(store.delete_keys(&web1).unwrap().len(), 2);
        assert_eq!(
            store.register_key(&id, b"key-two", "f2", false, 6).unwrap(),
            KeyState::Pending,
            "after delete, the id is new again"
        );
    }

    #[test]
    fn the_fingerprint_chooses_the_key_of_an_id_whoever_came_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let id = MinionId::new("web2").unwrap();
        let state_of = |store: &Store, fingerprint: &str| {
            store
                .keys()
                .unwrap()
                .into_iter()
                .find(|k| k.fingerprint == fingerprint)
                .map(|k| k.state)
        };
        // A squatter's key came first; the real one is denied.
        store
            .register_key(&id, b"squatter", "fs", false, 1)
            .unwrap();
        assert_eq!(
            store.register_key(&id, b"real", "fr", false, 2).unwrap(),
            KeyState::Denied
        );
        assert_eq!(store.choose_key(&id, "fx", false, 3).unwrap(), None);
        let chosen = store.choose_key(&id, "fr", false, 3).unwrap().unwrap();
        assert_eq!(chosen.key.state, KeyState::Accepted);
        assert_eq!(chosen.displaced.len(), 1);
        assert_eq!(chosen.displaced[0].state, KeyState::Pending);
        assert_eq!(state_of(&store, "fs"), Some(KeyState::Denied));
        assert_eq!(
            store.register_key(&id, b"real", "fr", false, 4).unwrap(),
            KeyState::Accepted
        );
        assert_eq!(
            store
                .register_key(&id, b"squatter", "fs", false, 5)
                .unwrap(),
            KeyState::Denied
        );

        // A fingerprint no key has yet: the id waits for it, and only that key gets in.
        let db1 = MinionId::new("db1").unwrap();
        store
            .register_key(&db1, b"squatter", "fs", false, 6)
            .unwrap();
        assert_eq!(
            store.choose_key(&db1, "fd", false, 7).unwrap(),
            None,
            "no key has it, and no preaccept was asked for"
        );
        let chosen = store.choose_key(&db1, "fd", true, 7).unwrap().unwrap();
        assert_eq!(chosen.key.state, KeyState::Preaccepted);
        assert_eq!(
            store
                .choose_key(&db1, "fd", true, 8)
                .unwrap()
                .unwrap()
                .key
                .state,
            KeyState::Preaccepted,
            "asking twice changes nothing"
        );
        assert_eq!(
            store.register_key(&db1, b"other", "fo", false, 9).unwrap(),
            KeyState::Denied
        );
        assert_eq!(
            store.register_key(&db1, b"db1", "fd", false, 10).unwrap(),
            KeyState::Accepted
        );
        assert_eq!(state_of(&store, "fd"), Some(KeyState::Accepted));
        assert_eq!(
            store.register_key(&db1, b"db1", "fd", false, 11).unwrap(),
            KeyState::Accepted
        );
    }

    #[test]
    fn many_keys_are_rejected_or_deleted_by_pattern_and_state_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        for n in 0..100 {
            let id = MinionId::new(format!("flood{n}")).unwrap();
            store
                .register_key(&id, format!("k{n}").as_bytes(), &format!("f{n}"), false, 1)
                .unwrap();
        }
        let web1 = MinionId::new("web1").unwrap();
        store.register_key(&web1, b"w", "fw", true, 1).unwrap();
        let pending = KeySelection {
            ids: vec!["*".into()],
            states: vec![KeyState::Pending],
        };
        let removed = store
            .delete_keys(&pending.compile(&KeyState::ALL).unwrap())
            .unwrap();
        assert_eq!(removed.len(), 100);
        let left = store.keys().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].state, KeyState::Accepted);
        let rejected = store
            .reject_keys(&KeySelection::id(&web1).compile(&REJECTABLE).unwrap())
            .unwrap();
        assert_eq!(rejected[0].state, KeyState::Accepted, "as it was");
        assert_eq!(store.keys().unwrap()[0].state, KeyState::Rejected);
    }

    #[test]
    fn group_keys_keep_only_the_newest_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert!(store.group_key().unwrap().is_none());
        store.put_group_key(1, &[1; 32], 0).unwrap();
        store.put_group_key(2, &[2; 32], 0).unwrap();
        assert_eq!(store.group_key().unwrap(), Some((2, vec![2; 32])));
    }
}
