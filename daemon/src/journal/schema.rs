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
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {}: {e}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}
