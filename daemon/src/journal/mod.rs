//! The durable journal of transactions (SQLite, WAL, `synchronous=FULL`).
//!
//! Every record is written and synced before its request leaves, and every
//! state change is a synced write, so after a crash or a power cut the
//! daemon knows every request that may have reached the gateway. One thread
//! owns the connection; async callers send it closures.
//!
//! Group commit: the thread runs every job already queued behind the one it
//! takes in one SQLite transaction, each job in its own savepoint and in
//! order (so each job sees every job before it, the sale rule included),
//! commits once — one synced write for the batch — and only then hands each
//! job its result. Nobody learns of a write before it is synced, and a
//! failed commit fails every job of the batch. Nothing waits to fill a
//! batch: a lone job commits at once; jobs that queued while a commit was
//! syncing share the next one.
//!
//! Lookups and reports (`by_client_ref`, `by_txn_id`, `list`, `counts`,
//! `usage`) run on a second thread with a read-only connection, so they
//! never wait behind a commit; they see what is committed (synced), as they
//! did on the writer, whose results are only handed over once committed.
//!
//! - [`schema`]: versioned migrations.
//! - [`record`]: one transaction as stored ([`Record`], [`Problem`]).

pub mod record;
pub mod schema;

pub use record::{Closure, Problem, Record, Reversal};

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDate, SecondsFormat, Timelike, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::engine::machine::{FailKind, State};

/// A journal operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// SQLite said no (disk full, I/O error, corruption …).
    #[error("journal: {0}")]
    Db(String),
    /// The journal thread is gone.
    #[error("journal is closed")]
    Closed,
    /// A stored row cannot be read back.
    #[error("journal row {txn_id} is unreadable: {why}")]
    Corrupt {
        /// Which record.
        txn_id: String,
        /// What is wrong.
        why: String,
    },
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        JournalError::Db(e.to_string())
    }
}

fn ts(t: &DateTime<Local>) -> String {
    t.with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Option<DateTime<Local>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Local))
}

fn fail_kind_str(k: Option<FailKind>) -> Option<&'static str> {
    k.map(|k| match k {
        FailKind::Rejected => "rejected",
        FailKind::NotSent => "not_sent",
        FailKind::SignInRejected => "sign_in_rejected",
        FailKind::DuplicateMsgid => "duplicate_msgid",
        FailKind::Unconfirmed => "unconfirmed",
    })
}

fn parse_fail_kind(s: Option<String>) -> Option<FailKind> {
    match s.as_deref() {
        Some("rejected") => Some(FailKind::Rejected),
        Some("not_sent") => Some(FailKind::NotSent),
        Some("sign_in_rejected") => Some(FailKind::SignInRejected),
        Some("duplicate_msgid") => Some(FailKind::DuplicateMsgid),
        Some("unconfirmed") => Some(FailKind::Unconfirmed),
        _ => None,
    }
}

const COLUMNS: &str = "txn_id, client_ref, infno, request_hash, session_id, input, insuplc_admdvs, psn_no, \
    mdtrt_cert_type, sale_key, msgid, request, state, fail_kind, output, error, reversal_msgid, \
    reversal_infno, reversal_state, reversal_attempts, attempts, setl_id, cancels_setl_id, sent_at, created_at, updated_at, \
    sent_elapsed_ms, resent_after_unknown, unclear_answers, closed";

fn from_row(r: &Row<'_>) -> Result<Record, JournalError> {
    let txn_id: String = r.get(0)?;
    let corrupt = |why: String| JournalError::Corrupt {
        txn_id: txn_id.clone(),
        why,
    };
    let json = |s: Option<String>| -> Result<Option<Value>, JournalError> {
        s.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(e.to_string())))
            .transpose()
    };
    let state: String = r.get(12)?;
    let reversal_msgid: Option<String> = r.get(16)?;
    Ok(Record {
        client_ref: r.get(1)?,
        infno: r.get(2)?,
        request_hash: r.get(3)?,
        session_id: r.get(4)?,
        input: json(Some(r.get(5)?))?.unwrap_or(Value::Null),
        insuplc_admdvs: r.get(6)?,
        psn_no: r.get(7)?,
        mdtrt_cert_type: r.get(8)?,
        sale_key: r.get(9)?,
        msgid: r.get(10)?,
        request: r.get(11)?,
        state: State::parse(&state).ok_or_else(|| corrupt(format!("state {state:?}")))?,
        fail_kind: parse_fail_kind(r.get(13)?),
        output: json(r.get(14)?)?,
        error: json(r.get(15)?)?.map(Problem::from_json),
        reversal: match reversal_msgid {
            Some(msgid) => Some(Reversal {
                msgid,
                infno: r.get::<_, Option<String>>(17)?.unwrap_or_default(),
                state: r.get::<_, Option<String>>(18)?.unwrap_or_default(),
                attempts: r.get(19)?,
            }),
            None => None,
        },
        attempts: r.get(20)?,
        setl_id: r.get(21)?,
        cancels_setl_id: r.get(22)?,
        sent_at: r
            .get::<_, Option<String>>(23)?
            .as_deref()
            .and_then(parse_ts),
        created_at: parse_ts(&r.get::<_, String>(24)?)
            .ok_or_else(|| corrupt("created_at".into()))?,
        updated_at: parse_ts(&r.get::<_, String>(25)?)
            .ok_or_else(|| corrupt("updated_at".into()))?,
        sent_elapsed_ms: r.get::<_, i64>(26)?.max(0) as u64,
        resent_after_unknown: r.get::<_, i64>(27)? != 0,
        unclear_answers: r.get::<_, i64>(28)?.max(0) as u32,
        closed: json(r.get(29)?)?.as_ref().and_then(Closure::from_json),
        txn_id,
    })
}

/// Columns fixed when a record is created.
const IMMUTABLE: &[&str] = &[
    "txn_id",
    "client_ref",
    "infno",
    "request_hash",
    "session_id",
    "mdtrt_cert_type",
    "sale_key",
    "created_at",
];

type Bound = (&'static str, Box<dyn rusqlite::ToSql>);

/// Every column of `rec`, as `:column` names: one binding for insert and save.
fn bind(rec: &Record) -> Vec<Bound> {
    let rv = rec.reversal.as_ref();
    vec![
        (":txn_id", Box::new(rec.txn_id.clone())),
        (":client_ref", Box::new(rec.client_ref.clone())),
        (":infno", Box::new(rec.infno.clone())),
        (":request_hash", Box::new(rec.request_hash.clone())),
        (":session_id", Box::new(rec.session_id.clone())),
        (":input", Box::new(rec.input.to_string())),
        (":insuplc_admdvs", Box::new(rec.insuplc_admdvs.clone())),
        (":psn_no", Box::new(rec.psn_no.clone())),
        (":mdtrt_cert_type", Box::new(rec.mdtrt_cert_type.clone())),
        (":sale_key", Box::new(rec.sale_key.clone())),
        (":msgid", Box::new(rec.msgid.clone())),
        (":request", Box::new(rec.request.clone())),
        (":state", Box::new(rec.state.as_str())),
        (":fail_kind", Box::new(fail_kind_str(rec.fail_kind))),
        (
            ":output",
            Box::new(rec.output.as_ref().map(Value::to_string)),
        ),
        (
            ":error",
            Box::new(rec.error.as_ref().map(|p| p.to_json().to_string())),
        ),
        (":reversal_msgid", Box::new(rv.map(|r| r.msgid.clone()))),
        (":reversal_infno", Box::new(rv.map(|r| r.infno.clone()))),
        (":reversal_state", Box::new(rv.map(|r| r.state.clone()))),
        (
            ":reversal_attempts",
            Box::new(rv.map(|r| r.attempts).unwrap_or(0)),
        ),
        (":attempts", Box::new(rec.attempts)),
        (":setl_id", Box::new(rec.setl_id.clone())),
        (":cancels_setl_id", Box::new(rec.cancels_setl_id.clone())),
        (":sent_at", Box::new(rec.sent_at.as_ref().map(ts))),
        (":created_at", Box::new(ts(&rec.created_at))),
        (":updated_at", Box::new(ts(&rec.updated_at))),
        (":sent_elapsed_ms", Box::new(rec.sent_elapsed_ms as i64)),
        (":resent_after_unknown", Box::new(rec.resent_after_unknown)),
        (":unclear_answers", Box::new(rec.unclear_answers)),
        (
            ":closed",
            Box::new(rec.closed.as_ref().map(|c| c.to_json().to_string())),
        ),
    ]
}

/// Named parameters for rusqlite.
fn named(values: &[Bound]) -> Vec<(&str, &dyn rusqlite::ToSql)> {
    values.iter().map(|(k, v)| (*k, v.as_ref())).collect()
}

/// The column a `:column` name binds.
fn col(name: &str) -> &str {
    name.trim_start_matches(':')
}

/// What [`Journal::insert`] found.
#[derive(Debug, Clone)]
pub enum Inserted<B> {
    /// The record is new and durable.
    New,
    /// A record with the same `client_ref` exists already.
    Existing(Box<Record>),
    /// Another attempt of the same sale blocks this one (gateway.md §5
    /// rule 3), for the reason the sale rule gave: nothing was written.
    Blocked(Box<Record>, B),
}

/// The sale rule: whether `other`, an attempt of the same sale, blocks a
/// send (and why); `cancelled` says whether a succeeded cancel names its
/// `setl_id`. The engine's policy supplies it; the journal applies it
/// inside the transaction that marks a record sent.
pub type SaleRule<B> = fn(other: &Record, cancelled: bool) -> Option<B>;

/// The states of records that still need work (not final, or a refused
/// settlement not yet confirmed void), as SQL.
const OPEN: &str = "(state NOT IN ('succeeded','failed','reversed','reversal_failed') \
    OR (state = 'failed' AND fail_kind = 'unconfirmed'))";

/// Counts for `system.info` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records not in a final state.
    pub unresolved: u64,
    /// Records in `reversal_failed` (need a person).
    pub reversal_failed: u64,
    /// Unresolved records older than the given age.
    pub stale: u64,
}

/// One day of `report.usage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Local date of the settlement.
    pub date: NaiveDate,
    /// Credential type (`01`, `02`, `03`).
    pub mdtrt_cert_type: String,
    /// Settlements in effect (not cancelled).
    pub count: u64,
}

/// Reads the journal's counts from a second, read-only connection, so the
/// metrics scrape (a blocking thread) never queues behind journal writes.
#[derive(Debug)]
pub struct CountReader {
    path: PathBuf,
    conn: std::sync::Mutex<Option<Connection>>,
}

impl CountReader {
    /// A reader of the journal at `path` (opened on first use).
    pub fn new(path: &Path) -> Self {
        CountReader {
            path: path.to_path_buf(),
            conn: std::sync::Mutex::new(None),
        }
    }

    /// Current counts, `None` when the journal cannot be read.
    pub fn counts(&self, stale_before: DateTime<Local>) -> Option<Counts> {
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            let c =
                Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .ok()?;
            c.busy_timeout(std::time::Duration::from_secs(1)).ok()?;
            *g = Some(c);
        }
        let c = g.as_ref()?;
        let r = count_query(c, &ts(&stale_before));
        if r.is_err() {
            *g = None;
        }
        r.ok()
    }
}

fn count_query(c: &Connection, stale: &str) -> Result<Counts, rusqlite::Error> {
    c.prepare_cached(&format!(
        "SELECT coalesce(sum({OPEN}),0), coalesce(sum(state = 'reversal_failed'),0), \
         coalesce(sum({OPEN} AND created_at < ?1),0) FROM txn"
    ))?
    .query_row([stale], |r| {
        Ok(Counts {
            unresolved: r.get::<_, i64>(0)? as u64,
            reversal_failed: r.get::<_, i64>(1)? as u64,
            stale: r.get::<_, i64>(2)? as u64,
        })
    })
}

/// What a job leaves to do once its batch is committed: hand over its
/// result, or the commit's error.
type Deliver = Box<dyn FnOnce(Result<(), JournalError>) + Send>;

/// Work for the journal thread: runs inside the batch's transaction (in a
/// savepoint of its own where it writes) and returns its delivery.
type Job = Box<dyn FnOnce(&mut Connection) -> Deliver + Send>;

/// Jobs committed together at most (group commit).
const MAX_BATCH: usize = 64;

/// Prepared statements kept per connection (each distinct SQL text once).
const STATEMENTS: usize = 32;

/// The reader's page cache, in KiB (negative: SQLite's "KiB" form).
const READER_CACHE_KIB: i64 = -512;

/// The journal thread's loop: batch by batch until every handle is gone.
fn serve(mut conn: Connection, rx: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        batch(&mut conn, first, &rx);
    }
}

/// Group commit: `first` and the jobs queued behind it (up to
/// [`MAX_BATCH`]) in one transaction, one synced commit, then every result.
fn batch(conn: &mut Connection, first: Job, rx: &std::sync::mpsc::Receiver<Job>) {
    if conn
        .prepare_cached("BEGIN")
        .and_then(|mut s| s.execute([]))
        .is_err()
    {
        // No batch: the job's own savepoint is its transaction, and
        // releasing it committed (synced) what it wrote.
        first(conn)(Ok(()));
        return;
    }
    let mut done: Vec<Deliver> = vec![first(conn)];
    while !conn.is_autocommit() && done.len() < MAX_BATCH {
        let Ok(job) = rx.try_recv() else { break };
        done.push(job(conn));
    }
    let committed = if conn.is_autocommit() {
        // An error rolled the whole transaction back (SQLite does on a full
        // disk or an I/O error): nothing of the batch was written.
        Err(JournalError::Db(
            "the journal transaction was rolled back".into(),
        ))
    } else {
        conn.prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(JournalError::from)
    };
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for d in done {
        d(committed.clone());
    }
}

/// A lookup for the reader thread.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Handle to the journal thread (and its reader).
#[derive(Debug, Clone)]
pub struct Journal {
    tx: std::sync::mpsc::Sender<Job>,
    reads: std::sync::mpsc::Sender<ReadJob>,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating folders and the file), sets WAL + `synchronous=FULL`, migrates.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| JournalError::Db(format!("{}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        schema::migrate(&mut conn).map_err(JournalError::Db)?;
        let reader = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
        reader.set_prepared_statement_cache_capacity(STATEMENTS);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || serve(conn, rx))
            .map_err(|e| JournalError::Db(e.to_string()))?;
        let (reads, read_rx) = std::sync::mpsc::channel::<ReadJob>();
        std::thread::Builder::new()
            .name("journal-read".into())
            .spawn(move || {
                while let Ok(job) = read_rx.recv() {
                    job(&reader);
                }
            })
            .map_err(|e| JournalError::Db(e.to_string()))?;
        Ok(Journal {
            tx,
            reads,
            path: path.to_path_buf(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Test hook (feature `crash-points`): the journal thread stops taking
    /// jobs, as a wedged disk would make it; nothing is written after this.
    #[cfg(feature = "crash-points")]
    pub fn freeze_for_test(&self) {
        let _ = self.tx.send(Box::new(|_| {
            loop {
                std::thread::park();
            }
        }));
    }

    /// Proof that the writing thread takes jobs (health): counts run on the
    /// reader, so a wedged writer would go unseen without this.
    pub async fn probe_writer(&self) -> Result<(), JournalError> {
        self.run(|c| {
            c.prepare_cached("SELECT 1")?
                .query_row([], |_| Ok(()))
                .map_err(JournalError::from)
        })
        .await
    }

    /// Runs `f` on the journal thread, in a batch's transaction; its result
    /// comes once the batch is committed (synced). A job that writes does
    /// so in a savepoint of its own (`c.savepoint()`), never `transaction()`.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, JournalError> + Send + 'static,
    ) -> Result<R, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |c| {
                let r = f(c);
                Box::new(move |committed: Result<(), JournalError>| {
                    let _ = tx.send(committed.and(r));
                }) as Deliver
            }))
            .map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Runs the lookup `f` on the reader thread (committed data only).
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, JournalError> + Send + 'static,
    ) -> Result<R, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.reads
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Writes a new record (durably), or returns the one with the same
    /// client_ref, or the attempt of the same sale that blocks it by `rule`.
    pub async fn insert<B: Send + 'static>(
        &self,
        rec: Record,
        rule: SaleRule<B>,
    ) -> Result<Inserted<B>, JournalError> {
        self.run(move |c| {
            let tx = c.savepoint()?;
            let existing = tx
                .prepare_cached(&format!("SELECT {COLUMNS} FROM txn WHERE client_ref = ?1"))?
                .query_row([&rec.client_ref], |r| Ok(from_row(r)))
                .optional()?;
            if let Some(e) = existing {
                return Ok(Inserted::Existing(Box::new(e?)));
            }
            // Checked in the same transaction as the insert, so two attempts
            // of one sale racing each other cannot both get in.
            if let Some((other, why)) = sale_blocker(&tx, &rec, rule)? {
                return Ok(Inserted::Blocked(Box::new(other), why));
            }
            let values = bind(&rec);
            let names: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
            let cols: Vec<&str> = names.iter().map(|k| col(k)).collect();
            tx.prepare_cached(&format!(
                "INSERT INTO txn ({}) VALUES ({})",
                cols.join(", "),
                names.join(", ")
            ))?
            .execute(named(&values).as_slice())?;
            log(&tx, &rec, Some("created"))?;
            tx.commit()?;
            Ok(Inserted::New)
        })
        .await
    }

    /// Saves `rec` as it is about to be sent (state `sent`, its msgid)
    /// unless another attempt of its sale blocks it by `rule`: the check and
    /// the write are one transaction, so every send — a retry, a
    /// resubmission, a renewal — is checked as a first one is.
    pub async fn mark_sent<B: Send + 'static>(
        &self,
        rec: Record,
        detail: String,
        rule: SaleRule<B>,
    ) -> Result<Option<(Box<Record>, B)>, JournalError> {
        self.run(move |c| {
            let tx = c.savepoint()?;
            if let Some((other, why)) = sale_blocker(&tx, &rec, rule)? {
                return Ok(Some((Box::new(other), why)));
            }
            update(&tx, &rec)?;
            log(&tx, &rec, Some(&detail))?;
            tx.commit()?;
            Ok(None)
        })
        .await
    }

    /// Saves every mutable field of `rec` (durably) and logs the change.
    pub async fn save(&self, rec: Record, detail: Option<String>) -> Result<(), JournalError> {
        self.run(move |c| {
            let tx = c.savepoint()?;
            update(&tx, &rec)?;
            log(&tx, &rec, detail.as_deref())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The record with this client_ref.
    pub async fn by_client_ref(&self, client_ref: &str) -> Result<Option<Record>, JournalError> {
        let k = client_ref.to_string();
        self.one("client_ref = ?1", k).await
    }

    /// The record with this txn_id.
    pub async fn by_txn_id(&self, txn_id: &str) -> Result<Option<Record>, JournalError> {
        let k = txn_id.to_string();
        self.one("txn_id = ?1", k).await
    }

    async fn one(&self, cond: &'static str, key: String) -> Result<Option<Record>, JournalError> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM txn WHERE {cond}"))?
                .query_row([key], |r| Ok(from_row(r)))
                .optional()?
                .transpose()
        })
        .await
    }

    /// Records created at or after `since`, optionally in one state, and
    /// with `needs_person` only those a person must look at (handed over,
    /// or open since before that time), newest first.
    pub async fn list(
        &self,
        since: Option<DateTime<Local>>,
        state: Option<State>,
        needs_person: Option<DateTime<Local>>,
        limit: usize,
    ) -> Result<Vec<Record>, JournalError> {
        let since = since.map(|t| ts(&t)).unwrap_or_default();
        let state = state.map(|s| s.as_str().to_string());
        let stale = needs_person.map(|t| ts(&t));
        self.read(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM txn WHERE created_at >= ?1 AND (?2 IS NULL OR state = ?2) \
                 AND (?3 IS NULL OR state = 'reversal_failed' OR ({OPEN} AND created_at < ?3)) \
                 ORDER BY created_at DESC, txn_id DESC LIMIT ?4"
            ))?;
            let rows = st.query_map(params![since, state, stale, limit as i64], |r| {
                Ok(from_row(r))
            })?;
            rows.map(|r| r.map_err(JournalError::from).and_then(|x| x))
                .collect()
        })
        .await
    }

    /// Every record that still needs work (not final, or a refused
    /// settlement not yet confirmed void), oldest first.
    pub async fn unresolved(&self) -> Result<Vec<Record>, JournalError> {
        self.run(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM txn WHERE {OPEN} ORDER BY created_at"
            ))?;
            let rows = st.query_map([], |r| Ok(from_row(r)))?;
            rows.map(|r| r.map_err(JournalError::from).and_then(|x| x))
                .collect()
        })
        .await
    }

    /// The newest msgid ever journaled with this prefix (to resume the allocator).
    pub async fn max_msgid(&self, prefix: &str) -> Result<Option<String>, JournalError> {
        let p = format!("{prefix}%");
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT max(msgid) FROM msgid WHERE msgid LIKE ?1",
                [p],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Claims the second this run's msgids start at: after `now` (ids a
    /// killed predecessor may have used this very second, unjournaled, such
    /// as its sign-in) and after every earlier run's start (which may lie
    /// ahead of the clock after quick restarts). Durable before any id is used.
    pub async fn claim_msgid_start(
        &self,
        now: chrono::NaiveDateTime,
    ) -> Result<chrono::NaiveDateTime, JournalError> {
        self.run(move |c| {
            let tx = c.savepoint()?;
            let last: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'msgid_start'", [], |r| r.get(0))
                .optional()?;
            let last = last.and_then(|v| chrono::NaiveDateTime::parse_from_str(&v, "%Y%m%d%H%M%S").ok());
            let one = chrono::TimeDelta::seconds(1);
            let now = now.with_nanosecond(0).unwrap_or(now);
            let start = match last {
                Some(l) if l + one > now + one => l + one,
                _ => now + one,
            };
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('msgid_start', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
                [start.format("%Y%m%d%H%M%S").to_string()],
            )?;
            tx.commit()?;
            Ok(start)
        })
        .await
    }

    /// Unresolved, reversal_failed and stale counts.
    pub async fn counts(&self, stale_before: DateTime<Local>) -> Result<Counts, JournalError> {
        let stale = ts(&stale_before);
        self.read(move |c| Ok(count_query(c, &stale)?)).await
    }

    /// Settlements in effect (succeeded and not cancelled by a succeeded
    /// cancel), by local day and credential type, for settlements created in
    /// `[from, to]` (local dates).
    pub async fn usage(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsageRow>, JournalError> {
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT s.created_at, s.mdtrt_cert_type FROM txn s \
                 WHERE s.state = 'succeeded' AND s.infno IN ('2102','2207','2304','2207A') \
                 AND NOT EXISTS (SELECT 1 FROM txn x WHERE x.state = 'succeeded' \
                     AND x.infno IN ('2103','2208','2305') AND x.cancels_setl_id = s.setl_id \
                     AND s.setl_id IS NOT NULL)",
            )?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut counts: std::collections::BTreeMap<(NaiveDate, String), u64> =
                Default::default();
            for row in rows {
                let (at, cert) = row?;
                let Some(day) = parse_ts(&at).map(|t| t.date_naive()) else {
                    continue;
                };
                if day < from || day > to {
                    continue;
                }
                *counts.entry((day, cert)).or_default() += 1;
            }
            Ok(counts
                .into_iter()
                .map(|((date, mdtrt_cert_type), count)| UsageRow {
                    date,
                    mdtrt_cert_type,
                    count,
                })
                .collect())
        })
        .await
    }
}

/// Writes every mutable column of `rec`; the insert binds the same values.
fn update(tx: &Connection, rec: &Record) -> Result<(), JournalError> {
    let values: Vec<_> = bind(rec)
        .into_iter()
        .filter(|(k, _)| !IMMUTABLE.contains(&col(k)) || col(k) == "txn_id")
        .collect();
    let sets: Vec<String> = values
        .iter()
        .map(|(k, _)| col(k))
        .filter(|c| *c != "txn_id")
        .map(|c| format!("{c} = :{c}"))
        .collect();
    let n = tx
        .prepare_cached(&format!(
            "UPDATE txn SET {} WHERE txn_id = :txn_id",
            sets.join(", ")
        ))?
        .execute(named(&values).as_slice())?;
    if n != 1 {
        return Err(JournalError::Db(format!("record {} vanished", rec.txn_id)));
    }
    Ok(())
}

/// The first other attempt of `rec`'s sale that blocks it by `rule`.
fn sale_blocker<B>(
    tx: &Connection,
    rec: &Record,
    rule: SaleRule<B>,
) -> Result<Option<(Record, B)>, JournalError> {
    let Some(key) = &rec.sale_key else {
        return Ok(None);
    };
    let mut st = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM txn WHERE sale_key = ?1 AND txn_id != ?2 ORDER BY created_at"
    ))?;
    let others: Vec<Record> = st
        .query_map(params![key, rec.txn_id], |r| Ok(from_row(r)))?
        .map(|r| r.map_err(JournalError::from).and_then(|x| x))
        .collect::<Result<_, _>>()?;
    for other in others {
        let cancelled = match &other.setl_id {
            Some(setl_id) => tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM txn WHERE cancels_setl_id = ?1 AND state = 'succeeded')",
                )?
                .query_row([setl_id], |r| r.get::<_, bool>(0))?,
            None => false,
        };
        if let Some(why) = rule(&other, cancelled) {
            return Ok(Some((other, why)));
        }
    }
    Ok(None)
}

fn log(tx: &Connection, rec: &Record, detail: Option<&str>) -> Result<(), JournalError> {
    tx.prepare_cached(
        "INSERT INTO txn_log (txn_id, at, state, msgid, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        rec.txn_id,
        ts(&rec.updated_at),
        rec.state.as_str(),
        rec.msgid,
        detail
    ])?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO msgid (msgid, txn_id, purpose, at) VALUES (?1, ?2, 'request', ?3)",
    )?
    .execute(params![rec.msgid, rec.txn_id, ts(&rec.updated_at)])?;
    if let Some(r) = &rec.reversal {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO msgid (msgid, txn_id, purpose, at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![r.msgid, rec.txn_id, r.infno, ts(&rec.updated_at)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
