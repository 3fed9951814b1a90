//! Where a statement runs outside a session — decided in one place,
//! [`place`], from the statement's classification (made once, when it was
//! first compiled) — and the one "run in a writer transaction" helper. Also
//! what every caller shares to run a target on a held connection.
//! See docs/0003-statement-routing.md and docs/0007-statement-classification.md.

use crate::conn::{Conn, StmtShared};
use crate::engine::DbInner;
use crate::errors::{self, ProgrammingError};
use crate::exec::{self, Out, Produced};
use alkdev_storage_core::classify::{Info, Kind};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use rusqlite::ffi;

/// What to run: a prepared Statement or SQL text.
pub enum Target<'a> {
    Stmt(&'a StmtShared),
    Sql(&'a str),
}

impl Target<'_> {
    pub fn sql(&self) -> &str {
        match self {
            Target::Stmt(s) => &s.sql,
            Target::Sql(sql) => sql,
        }
    }
}

pub fn txn_control_error() -> PyErr {
    ProgrammingError::new_err(
        "transaction control statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, END) \
         are not run through execute: use db.transaction(), tx.savepoint() or db.read()",
    )
}

/// Where a statement runs outside any session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A reader: kind `read`, on objects every connection sees.
    Reader,
    /// The writer in autocommit: a write is its own short transaction
    /// (SQLite takes its snapshot and the write lock in one step); a
    /// connection-level statement runs outside any transaction; a read of
    /// TEMP objects or an attached database runs where they exist.
    Writer,
    /// The writer inside BEGIN IMMEDIATE: a read whose SQL functions write
    /// (`SELECT notify(...)`) would otherwise upgrade its read snapshot
    /// mid-statement and could fail with SQLITE_BUSY_SNAPSHOT.
    WriterImmediate,
    /// Transaction control: never run here (see [`txn_control_error`]).
    Refused,
}

/// The one routing decision: where a statement of this classification runs.
#[inline]
pub fn place(info: &Info) -> Place {
    match info.kind {
        Kind::Read if !info.writer_only() => Place::Reader,
        Kind::Read | Kind::Write | Kind::Connection => Place::Writer,
        Kind::ReadWrites => Place::WriterImmediate,
        Kind::Transaction => Place::Refused,
    }
}

fn executemany_error(kind: Kind) -> PyErr {
    if kind == Kind::Transaction {
        return txn_control_error();
    }
    ProgrammingError::new_err(format!(
        "executemany() requires a statement that writes (INSERT, UPDATE, DELETE, REPLACE, \
         DDL); this one is of kind '{}': run it with execute() or fetchall() instead",
        kind.as_str()
    ))
}

/// A target's handle on one connection.
pub struct Prepared<'a> {
    pub stmt: *mut ffi::sqlite3_stmt,
    pub names: Option<&'a [Option<Py<PyString>>]>,
    pub info: Info,
}

/// The handle of `t` on `conn`. `runs_here`: SQL text compiled now may take
/// effect on this connection (see `Conn::prepare_classified`); when false
/// the handle is null for a PRAGMA setting, which [`place`] sends elsewhere.
pub fn prepare_on<'a>(
    py: Python<'_>,
    conn: &mut Conn,
    t: &Target<'a>,
    runs_here: bool,
) -> PyResult<Prepared<'a>> {
    match t {
        Target::Stmt(s) => {
            let stmt = conn.stmt_for(s).map_err(|e| e.into_py(py))?;
            Ok(Prepared {
                stmt,
                names: Some(&s.param_names),
                info: s.info,
            })
        }
        Target::Sql(sql) => {
            let (stmt, info) = conn
                .stmt_for_sql(sql, runs_here)
                .map_err(|e| e.into_py(py))?;
            Ok(Prepared {
                stmt,
                names: None,
                info,
            })
        }
    }
}

/// Run one target on a held connection (inside a session).
pub fn run_on(
    py: Python<'_>,
    conn: &mut Conn,
    t: &Target<'_>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Produced> {
    let writer = conn.is_writer();
    if let Target::Stmt(s) = t {
        check_session(&s.info, writer)?;
    }
    let p = prepare_on(py, conn, t, writer)?;
    check_session(&p.info, writer)?;
    unsafe { exec::run(py, conn.handle(), p.stmt, params, p.names, out) }
}

/// What a session refuses: transaction control, and on a reader (a read
/// snapshot) a PRAGMA setting, which would change a pooled connection.
pub fn check_session(info: &Info, writer: bool) -> PyResult<()> {
    if info.kind == Kind::Transaction {
        return Err(txn_control_error());
    }
    if info.setting && !writer {
        return Err(ProgrammingError::new_err(
            "a PRAGMA setting cannot run in a read snapshot: it would change a pooled \
             reader connection; run it outside the snapshot (it then applies to the writer)",
        ));
    }
    Ok(())
}

/// Run `f` on the writer, outside any transaction of ours; whatever `f`
/// leaves open is rolled back, and the writer goes back to its slot.
fn on_writer<R>(
    py: Python<'_>,
    db: &DbInner,
    f: impl FnOnce(&mut Conn) -> PyResult<R>,
) -> PyResult<R> {
    db.check_open()?;
    let mut conn = db.acquire_writer(py)?;
    let r = f(&mut conn);
    conn.rollback(); // no-op after a successful commit
    db.release_writer(conn);
    r
}

/// `f` inside BEGIN IMMEDIATE on a held writer: COMMIT when it succeeds
/// (the caller rolls back otherwise).
fn in_tx<R>(
    py: Python<'_>,
    conn: &mut Conn,
    f: impl FnOnce(&mut Conn) -> PyResult<R>,
) -> PyResult<R> {
    conn.begin_immediate(py)?;
    let r = f(conn)?;
    conn.commit(py)?;
    Ok(r)
}

/// Run `f` on the writer in its own BEGIN IMMEDIATE transaction: committed
/// when `f` succeeds, rolled back when it (or the COMMIT) fails.
pub fn in_writer_tx<R>(
    py: Python<'_>,
    db: &DbInner,
    f: impl FnOnce(&mut Conn) -> PyResult<R>,
) -> PyResult<R> {
    on_writer(py, db, |c| in_tx(py, c, f))
}

/// Run on the writer, outside any session (SQL text is compiled and
/// classified there).
pub fn write(
    py: Python<'_>,
    db: &DbInner,
    t: &Target<'_>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Produced> {
    on_writer(py, db, |conn| {
        let p = prepare_on(py, conn, t, true)?;
        let run = |c: &mut Conn| unsafe { exec::run(py, c.handle(), p.stmt, params, p.names, out) };
        match place(&p.info) {
            Place::Refused => Err(txn_control_error()),
            Place::WriterImmediate => in_tx(py, conn, run),
            Place::Reader | Place::Writer => run(conn),
        }
    })
}

/// Run a statement outside any session where [`place`] says: SQL text is
/// compiled and classified on a reader first (the common case for text
/// passed to `fetch*`), then sent to the writer if it belongs there.
pub fn read(
    py: Python<'_>,
    db: &DbInner,
    t: &Target<'_>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Produced> {
    if let Target::Stmt(s) = t {
        match place(&s.info) {
            Place::Reader => {}
            Place::Refused => return Err(txn_control_error()),
            Place::Writer | Place::WriterImmediate => return write(py, db, t, params, out),
        }
    }
    db.check_open()?;
    let mut conn = db.acquire_reader(py)?;
    conn.fresh_read();
    let p = match prepare_on(py, &mut conn, t, false) {
        Ok(p) => p,
        Err(e) => {
            db.release_reader(conn);
            return Err(e);
        }
    };
    match place(&p.info) {
        Place::Reader => {}
        Place::Refused => {
            db.release_reader(conn);
            return Err(txn_control_error());
        }
        Place::Writer | Place::WriterImmediate => {
            db.release_reader(conn);
            return write(py, db, t, params, out);
        }
    }
    let r = unsafe { exec::run(py, conn.handle(), p.stmt, params, p.names, out) };
    db.release_reader(conn);
    r
}

/// `Database.execute`: a Statement runs where [`place`] says; SQL text is
/// compiled on the writer (the usual text passed to execute writes).
pub fn execute(
    py: Python<'_>,
    db: &DbInner,
    t: &Target<'_>,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<Produced> {
    match t {
        Target::Stmt(_) => read(py, db, t, params, Out::Exec),
        Target::Sql(_) => write(py, db, t, params, Out::Exec),
    }
}

/// Run `t` once per parameter set of `seq` on a held writer inside a
/// transaction. Returns the total changes and the last rowid.
pub fn executemany_on(
    py: Python<'_>,
    conn: &mut Conn,
    t: &Target<'_>,
    seq: &Bound<'_, PyAny>,
) -> PyResult<(i64, i64)> {
    let p = prepare_on(py, conn, t, true)?;
    if p.info.kind != Kind::Write {
        return Err(executemany_error(p.info.kind));
    }
    let mut changes = 0i64;
    let mut lastrowid = unsafe { ffi::sqlite3_last_insert_rowid(conn.handle()) };
    let iter = seq.try_iter().map_err(|_| {
        PyTypeError::new_err("executemany expects an iterable of parameter sequences or mappings")
    })?;
    for (i, params) in iter.enumerate() {
        let params = params?;
        if i % 4096 == 4095 && unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
            return Err(PyErr::fetch(py)); // Ctrl-C: the transaction rolls back
        }
        match unsafe {
            exec::run(
                py,
                conn.handle(),
                p.stmt,
                Some(&params),
                p.names,
                Out::ExecMany(i),
            )
        } {
            Ok(Produced::Exec {
                changes: c,
                lastrowid: l,
            }) => {
                changes += c;
                lastrowid = l;
            }
            Ok(_) => unreachable!(),
            Err(e) => {
                errors::add_note(
                    py,
                    &e,
                    format!("in parameter set {i} of executemany; nothing was written"),
                );
                return Err(e);
            }
        }
    }
    Ok((changes, lastrowid))
}

/// Run `t` for every parameter set on the writer in one transaction.
pub fn executemany(
    py: Python<'_>,
    db: &DbInner,
    t: &Target<'_>,
    seq: &Bound<'_, PyAny>,
) -> PyResult<(i64, i64)> {
    in_writer_tx(py, db, |c| executemany_on(py, c, t, seq))
}
