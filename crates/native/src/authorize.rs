//! The SQLite side of statement classification: an authorizer installed
//! only around the first compile of a statement (our own prepare call) and
//! removed right after, so re-prepares — SQLite's after a schema change,
//! ours on another connection — and every other statement never pay for
//! it. The rules themselves are in `classify.rs`.

use alkdev_storage_core::classify::{self, Classification, Events, Probe, Verdict};
use parking_lot::Mutex;
use rusqlite::ffi;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

/// A statement compiled and classified.
pub struct Classified {
    /// The handle, ready to run on the connection it was compiled on; null
    /// when it must not exist there (a PRAGMA setting compiled on a reader:
    /// SQLite applies those while compiling, so it is compiled where it runs).
    pub stmt: *mut ffi::sqlite3_stmt,
    pub class: Classification,
}

impl Classified {
    /// Result column names and `sqlite3_column_decltype` of each (for a
    /// statement compiled without its handle: from the scratch connection).
    pub fn shape(&self, sql: &str) -> (Vec<String>, Vec<Option<String>>) {
        if self.stmt.is_null() && self.class.info.kind == classify::Kind::Connection {
            scratch_shape(sql)
        } else {
            // SAFETY: a handle this struct was built with, still alive.
            unsafe { shape(self.stmt) }
        }
    }
}

fn opt_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: SQLite passes NUL-terminated strings valid for the call.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

unsafe extern "C" fn authorizer(
    user: *mut c_void,
    code: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    schema: *const c_char,
    trigger: *const c_char,
) -> c_int {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `user` is the `Events` of `prepare_classified`, alive and
        // used by this thread only while the authorizer is installed.
        let ev = unsafe { &mut *(user as *mut Events) };
        ev.record(
            code,
            opt_str(arg1),
            opt_str(arg2),
            opt_str(schema),
            opt_str(trigger),
        )
    }));
    match r {
        Ok(Verdict::Ignore) => ffi::SQLITE_IGNORE,
        _ => ffi::SQLITE_OK,
    }
}

/// Compile with `prepare` (the caller's prepare call on `db`) under the
/// classifying authorizer, then classify. `runs_here`: the statement will
/// run on this connection (the writer, a write transaction), so a PRAGMA
/// setting may take effect here as SQLite does while compiling; otherwise
/// (a reader) no setting ever takes effect.
///
/// # Safety
/// `db` is the open connection `prepare` compiles on, used by this thread.
pub unsafe fn prepare_classified<E>(
    db: *mut ffi::sqlite3,
    prepare: impl Fn() -> Result<*mut ffi::sqlite3_stmt, E>,
    runs_here: bool,
) -> Result<Classified, E> {
    let mut ev = Events::default();
    ffi::sqlite3_set_authorizer(db, Some(authorizer), &mut ev as *mut Events as *mut c_void);
    let r = prepare();
    ffi::sqlite3_set_authorizer(db, None, ptr::null_mut());
    let mut stmt = r?;
    let mut probe = StmtProbe { stmt };
    ev.explain = ffi::sqlite3_stmt_isexplain(stmt) > 0;
    let setting = match &ev.pragma {
        // EXPLAIN of a setting: the listing of the (ignored) program is
        // harmless anywhere.
        Some(p) if p.has_value && !ev.explain => Some(!probe.pragma_is_query(&p.name)),
        _ => None,
    };
    if let Some(is_setting) = setting {
        // Compiled to nothing (Verdict::Ignore): compile it for real where
        // that is harmless (a query pragma) or intended (it runs here).
        ffi::sqlite3_finalize(stmt);
        stmt = ptr::null_mut();
        if !is_setting || runs_here {
            stmt = prepare()?;
        }
        probe.stmt = stmt;
    }
    let readonly = !stmt.is_null() && ffi::sqlite3_stmt_readonly(stmt) != 0;
    let class = classify::classify(&ev, readonly, &mut probe);
    Ok(Classified { stmt, class })
}

/// Column names and declared types of a compiled statement.
///
/// # Safety
/// `stmt` null or valid.
pub unsafe fn shape(stmt: *mut ffi::sqlite3_stmt) -> (Vec<String>, Vec<Option<String>>) {
    if stmt.is_null() {
        return (Vec::new(), Vec::new());
    }
    let n = ffi::sqlite3_column_count(stmt);
    let columns = (0..n)
        .map(|i| {
            opt_str(ffi::sqlite3_column_name(stmt, i))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let decltypes = (0..n)
        .map(|i| opt_str(ffi::sqlite3_column_decltype(stmt, i)).map(str::to_string))
        .collect();
    (columns, decltypes)
}

struct StmtProbe {
    stmt: *mut ffi::sqlite3_stmt,
}

impl Probe for StmtProbe {
    fn has_vacuum(&mut self) -> bool {
        if self.stmt.is_null() {
            return false;
        }
        // Switch the statement to EXPLAIN mode: stepping lists the program
        // (column 1: opcode name) without running it.
        unsafe {
            if ffi::sqlite3_stmt_explain(self.stmt, 1) != ffi::SQLITE_OK {
                return false;
            }
            let mut found = false;
            while ffi::sqlite3_step(self.stmt) == ffi::SQLITE_ROW {
                let op = ffi::sqlite3_column_text(self.stmt, 1);
                if !op.is_null() && CStr::from_ptr(op as *const c_char).to_bytes() == b"Vacuum" {
                    found = true;
                    break;
                }
            }
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_stmt_explain(self.stmt, 0);
            found
        }
    }

    fn pragma_is_query(&mut self, name: &str) -> bool {
        with_scratch(|s| {
            if let Some(&q) = s.pragma_query.get(name) {
                return q;
            }
            let q = pragma_takes_query_arg(&s.conn, name);
            s.pragma_query.insert(name.to_string(), q);
            q
        })
    }
}

/// A private in-memory connection that answers questions about SQLite
/// itself (which pragmas are queries) and absorbs the compile-time effects
/// of settings compiled only for their result shape.
struct Scratch {
    conn: rusqlite::Connection,
    pragma_query: HashMap<String, bool>,
}

static SCRATCH: Mutex<Option<Scratch>> = Mutex::new(None);

fn with_scratch<R: Default>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut guard = SCRATCH.lock();
    if guard.is_none() {
        match rusqlite::Connection::open_in_memory() {
            Ok(conn) => {
                *guard = Some(Scratch {
                    conn,
                    pragma_query: HashMap::new(),
                })
            }
            Err(_) => return R::default(),
        }
    }
    f(guard.as_mut().expect("opened above"))
}

/// A pragma is a query when given one argument exactly when SQLite's
/// table-valued form `pragma_<name>` has a hidden `arg` column (SQLite's
/// "acts as a query with one argument" flag, as the library reports it).
fn pragma_takes_query_arg(conn: &rusqlite::Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_xinfo(?1) WHERE name = 'arg' AND hidden",
        [format!("pragma_{name}")],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .unwrap_or(false)
}

/// Result shape of a PRAGMA setting compiled on the scratch connection
/// (empty if it cannot be compiled there, e.g. it names an attached schema).
fn scratch_shape(sql: &str) -> (Vec<String>, Vec<Option<String>>) {
    with_scratch(|s| unsafe {
        let db = s.conn.handle();
        let mut stmt = ptr::null_mut();
        let Ok(len) = c_int::try_from(sql.len()) else {
            return Default::default();
        };
        let rc = ffi::sqlite3_prepare_v2(
            db,
            sql.as_ptr() as *const c_char,
            len,
            &mut stmt,
            ptr::null_mut(),
        );
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return Default::default();
        }
        let r = shape(stmt);
        ffi::sqlite3_finalize(stmt);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alkdev_storage_core::classify::{action, Control, Kind};

    #[test]
    fn action_codes_match_sqlite() {
        let pairs = [
            (action::CREATE_INDEX, ffi::SQLITE_CREATE_INDEX),
            (action::CREATE_TEMP_TABLE, ffi::SQLITE_CREATE_TEMP_TABLE),
            (action::DROP_TEMP_VIEW, ffi::SQLITE_DROP_TEMP_VIEW),
            (action::DROP_VIEW, ffi::SQLITE_DROP_VIEW),
            (action::INSERT, ffi::SQLITE_INSERT),
            (action::PRAGMA, ffi::SQLITE_PRAGMA),
            (action::READ, ffi::SQLITE_READ),
            (action::TRANSACTION, ffi::SQLITE_TRANSACTION),
            (action::UPDATE, ffi::SQLITE_UPDATE),
            (action::ATTACH, ffi::SQLITE_ATTACH),
            (action::DETACH, ffi::SQLITE_DETACH),
            (action::ALTER_TABLE, ffi::SQLITE_ALTER_TABLE),
            (action::ANALYZE, ffi::SQLITE_ANALYZE),
            (action::DROP_VTABLE, ffi::SQLITE_DROP_VTABLE),
            (action::FUNCTION, ffi::SQLITE_FUNCTION),
            (action::SAVEPOINT, ffi::SQLITE_SAVEPOINT),
            (action::RECURSIVE, ffi::SQLITE_RECURSIVE),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs);
        }
    }

    struct Db {
        dir: std::path::PathBuf,
        conn: rusqlite::Connection,
    }

    impl Drop for Db {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn open(tag: &str) -> Db {
        let dir = std::env::temp_dir().join(format!("alk-auth-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = rusqlite::Connection::open(dir.join("t.db")).unwrap();
        honker_core::attach_notify(&conn).unwrap();
        honker_core::attach_honker_functions(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
             CREATE TEMP TABLE tt(x);
             CREATE VIEW v AS SELECT a, b FROM t;",
        )
        .unwrap();
        Db { dir, conn }
    }

    fn classified(db: &rusqlite::Connection, sql: &str, runs_here: bool) -> Classified {
        let h = unsafe { db.handle() };
        let prepare = || {
            let mut stmt = ptr::null_mut();
            let rc = unsafe {
                ffi::sqlite3_prepare_v2(
                    h,
                    sql.as_ptr() as *const c_char,
                    sql.len() as c_int,
                    &mut stmt,
                    ptr::null_mut(),
                )
            };
            if rc == ffi::SQLITE_OK {
                Ok(stmt)
            } else {
                Err(rc)
            }
        };
        unsafe { prepare_classified(h, prepare, runs_here) }.unwrap()
    }

    fn kind_of(db: &rusqlite::Connection, sql: &str) -> (Kind, Classified) {
        let c = classified(db, sql, true);
        if !c.stmt.is_null() {
            unsafe { ffi::sqlite3_finalize(c.stmt) };
        }
        (c.class.info.kind, c)
    }

    #[test]
    fn real_statements() {
        let db = open("real");
        let c = &db.conn;
        for (sql, want) in [
            ("SELECT * FROM t", Kind::Read),
            ("select b from v where a > 1", Kind::Read),
            ("WITH x(n) AS (SELECT 1) SELECT n FROM x", Kind::Read),
            ("INSERT INTO t(b) VALUES ('x') RETURNING a", Kind::Write),
            ("SELECT notify('c', '1')", Kind::ReadWrites),
            ("SELECT honker_get_job(1)", Kind::Read),
            ("BEGIN IMMEDIATE", Kind::Transaction),
            ("VACUUM", Kind::Connection),
            ("VACUUM INTO '/nonexistent/x.db'", Kind::Connection),
            ("DROP TABLE IF EXISTS missing", Kind::Write),
            ("CREATE TABLE IF NOT EXISTS t(a)", Kind::Write),
            ("PRAGMA table_info(t)", Kind::Read),
            ("PRAGMA user_version", Kind::Read),
            ("PRAGMA user_version = 3", Kind::Connection),
            ("PRAGMA journal_mode", Kind::Connection),
            ("PRAGMA wal_checkpoint(PASSIVE)", Kind::Connection),
            ("ATTACH ':memory:' AS x", Kind::Connection),
            ("EXPLAIN INSERT INTO t(b) VALUES (1)", Kind::Read),
            ("EXPLAIN QUERY PLAN SELECT * FROM tt", Kind::Read),
            ("EXPLAIN BEGIN", Kind::Read),
            ("EXPLAIN PRAGMA query_only = 0", Kind::Read),
            ("DETACH x", Kind::Connection),
        ] {
            assert_eq!(kind_of(c, sql).0, want, "{sql}");
        }
        let (k, cl) = kind_of(c, "ROLLBACK TO \"a b\"");
        assert_eq!(k, Kind::Transaction);
        assert_eq!(
            cl.class.control,
            Some((Control::RollbackTo, Some("a b".to_string())))
        );
        let (_, cl) = kind_of(c, "SELECT x FROM tt");
        assert!(cl.class.info.uses_temp);
        let cl = classified(c, "SELECT a, b, 1 FROM t", false);
        let (columns, decltypes) = cl.shape("SELECT a, b, 1 FROM t");
        unsafe { ffi::sqlite3_finalize(cl.stmt) };
        assert_eq!(columns, ["a", "b", "1"]);
        assert_eq!(
            decltypes,
            [Some("INTEGER".to_string()), Some("TEXT".to_string()), None]
        );
    }

    #[test]
    fn preparing_a_setting_elsewhere_changes_nothing() {
        let db = open("setting");
        let c = &db.conn;
        c.execute_batch("PRAGMA query_only = 1").unwrap();
        let cl = classified(c, "PRAGMA query_only = 0", false);
        assert!(cl.stmt.is_null());
        assert_eq!(cl.class.info.kind, Kind::Connection);
        let on: i64 = c.query_row("PRAGMA query_only", [], |r| r.get(0)).unwrap();
        assert_eq!(on, 1, "classifying must not switch query_only off");
        // Its result shape still comes through.
        let cl = classified(c, "PRAGMA journal_mode = wal", false);
        assert!(cl.stmt.is_null());
        assert_eq!(cl.shape("PRAGMA journal_mode = wal").0, ["journal_mode"]);
        // Compiled where it runs: SQLite applies it while compiling.
        let cl = classified(c, "PRAGMA query_only = 0", true);
        assert!(!cl.stmt.is_null());
        unsafe { ffi::sqlite3_finalize(cl.stmt) };
        let on: i64 = c.query_row("PRAGMA query_only", [], |r| r.get(0)).unwrap();
        assert_eq!(on, 0);
        // The authorizer is gone afterwards: a PRAGMA setting prepared
        // normally takes effect.
        c.execute_batch("PRAGMA query_only = 1").unwrap();
        let on: i64 = c.query_row("PRAGMA query_only", [], |r| r.get(0)).unwrap();
        assert_eq!(on, 1);
    }
}
