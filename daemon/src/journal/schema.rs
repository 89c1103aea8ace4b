//! The journal's schema and its versioned migrations (`PRAGMA user_version`).
//!
//! Each migration runs once, in a transaction, in order. Never edit a
//! migration that has shipped: add the next one.

use rusqlite::Connection;

/// Migrations, index + 1 = the schema version they produce.
const MIGRATIONS: &[&str] = &[
    // 1: transaction records, their state log, and every msgid ever used.
    r#"
    CREATE TABLE txn (
        txn_id          TEXT PRIMARY KEY,
        client_ref      TEXT NOT NULL UNIQUE,
        infno           TEXT NOT NULL,
        request_hash    TEXT NOT NULL,
        session_id      TEXT,
        input           TEXT NOT NULL,
        insuplc_admdvs  TEXT NOT NULL DEFAULT '',
        psn_no          TEXT NOT NULL DEFAULT '',
        mdtrt_cert_type TEXT NOT NULL DEFAULT '',
        sale_key        TEXT,
        msgid           TEXT NOT NULL,
        request         TEXT,
        state           TEXT NOT NULL,
        fail_kind       TEXT,
        output          TEXT,
        error           TEXT,
        reversal_msgid  TEXT,
        reversal_infno  TEXT,
        reversal_state  TEXT,
        reversal_attempts INTEGER NOT NULL DEFAULT 0,
        attempts        INTEGER NOT NULL DEFAULT 0,
        setl_id         TEXT,
        cancels_setl_id TEXT,
        sent_at         TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX txn_state ON txn(state);
    CREATE INDEX txn_created ON txn(created_at);
    CREATE INDEX txn_sale_key ON txn(sale_key);
    CREATE INDEX txn_setl_id ON txn(setl_id);
    CREATE TABLE txn_log (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        txn_id  TEXT NOT NULL,
        at      TEXT NOT NULL,
        state   TEXT NOT NULL,
        msgid   TEXT,
        detail  TEXT
    );
    CREATE INDEX txn_log_txn ON txn_log(txn_id);
    CREATE TABLE msgid (
        msgid   TEXT PRIMARY KEY,
        txn_id  TEXT NOT NULL,
        purpose TEXT NOT NULL,
        at      TEXT NOT NULL
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 2: money safety — the monotonic time since the last send, resends
    // after a lost answer, unclear answers, a person's closing.
    r#"
    ALTER TABLE txn ADD COLUMN sent_elapsed_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE txn ADD COLUMN resent_after_unknown INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE txn ADD COLUMN unclear_answers INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE txn ADD COLUMN closed TEXT;
    CREATE INDEX txn_cancels ON txn(cancels_setl_id);
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`VERSION`]; refuses a newer database.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if current > VERSION {
        return Err(format!(
            "journal schema version {current} is newer than this ybposd understands ({VERSION}); \
             refusing to touch it"
        ));
    }
    if current as usize >= MIGRATIONS.len() {
        return Ok(());
    }
    // Every pending migration in one transaction: one synced commit (a new
    // journal is created with one), and a crash leaves the old version whole.
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {}: {e}", i + 1))?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_journal_is_migrated_with_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO txn (txn_id, client_ref, infno, request_hash, input, msgid, state, created_at, updated_at) \
                 VALUES ('t1', 'c1', '2102', 'h', '{}', 'P42130200001202611231000000001', 'reversing', \
                 '2026-11-23T10:00:00Z', '2026-11-23T10:00:00Z')",
                [],
            )
            .unwrap();
        }
        let j = crate::journal::Journal::open(&path).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(j.by_txn_id("t1")).unwrap().unwrap();
        assert_eq!(r.sent_elapsed_ms, 0);
        assert!(!r.resent_after_unknown && r.closed.is_none());
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
    }
}
