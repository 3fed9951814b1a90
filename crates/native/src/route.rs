//! Where a statement runs outside a session: reads on a reader, writes on
//! the writer, and the one "run in a writer transaction" helper. Also what
//! every caller shares to run a target on a held connection.
//! See docs/0003-statement-routing.md.

use crate::conn::{Conn, StmtInfo, StmtShared};
use crate::engine::DbInner;
use crate::errors::{self, ProgrammingError};
use crate::exec::{self, Out, Produced};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use rusqlite::ffi;
use std::sync::atomic::Ordering;

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

/// A target's handle on one connection.
pub struct Prepared<'a> {
    pub stmt: *mut ffi::sqlite3_stmt,
    pub names: Option<&'a [Option<Py<PyString>>]>,
    pub info: StmtInfo,
}

pub fn prepare_on<'a>(py: Python<'_>, conn: &mut Conn, t: &Target<'a>) -> PyResult<Prepared<'a>> {
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
            let (stmt, info) = conn.stmt_for_sql(sql).map_err(|e| e.into_py(py))?;
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
    let p = prepare_on(py, conn, t)?;
    if p.info.txn_control {
        return Err(txn_control_error());
    }
    unsafe { exec::run(py, conn.handle(), p.stmt, params, p.names, out) }
}

fn is_query_only_violation(py: Python<'_>, e: &PyErr) -> bool {
    // Directly (SQLITE_READONLY), or through an SQL function whose own
    // INSERT failed (reported as SQLITE_ERROR with SQLite's message).
    let code = errors::code_of(py, e);
    code & 0xff == ffi::SQLITE_READONLY
        || (code == ffi::SQLITE_ERROR
            && e.value(py)
                .str()
                .map(|s| {
                    s.to_string_lossy()
                        .contains("attempt to write a readonly database")
                })
                .unwrap_or(false))
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

/// Run on the writer, outside any session.
pub fn write(
    py: Python<'_>,
    db: &DbInner,
    t: &Target<'_>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Produced> {
    on_writer(py, db, |conn| {
        let p = prepare_on(py, conn, t)?;
        if p.info.txn_control {
            return Err(txn_control_error());
        }
        let run = |c: &mut Conn| unsafe { exec::run(py, c.handle(), p.stmt, params, p.names, out) };
        // A writing statement in autocommit takes its read snapshot and
        // the write lock in one step (SQLite retries both through the
        // busy handler), so it is its own short transaction already. A
        // read statement whose SQL functions write (SELECT notify(...))
        // would upgrade a read snapshot mid-statement and could fail with
        // SQLITE_BUSY_SNAPSHOT: it runs inside BEGIN IMMEDIATE.
        if p.info.no_wrap || !p.info.readonly {
            return run(conn);
        }
        in_tx(py, conn, run)
    })
}

/// Run a read on a reader (or on the writer when it turns out to write),
/// outside any session.
pub fn read(
    py: Python<'_>,
    db: &DbInner,
    t: &Target<'_>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Produced> {
    if let Target::Stmt(s) = t {
        if s.info.txn_control {
            return Err(txn_control_error());
        }
        if !s.reads() {
            return write(py, db, t, params, out);
        }
    }
    db.check_open()?;
    let mut conn = db.acquire_reader(py)?;
    conn.fresh_read();
    let p = match prepare_on(py, &mut conn, t) {
        Ok(p) => p,
        Err(e) => {
            db.release_reader(conn);
            return Err(e);
        }
    };
    if p.info.txn_control {
        db.release_reader(conn);
        return Err(txn_control_error());
    }
    let to_writer = match t {
        Target::Sql(sql) => !p.info.readonly || conn.needs_writer.contains(*sql),
        Target::Stmt(_) => false,
    };
    if to_writer {
        db.release_reader(conn);
        return write(py, db, t, params, out);
    }
    let r = unsafe { exec::run(py, conn.handle(), p.stmt, params, p.names, out) };
    match r {
        Err(e) if is_query_only_violation(py, &e) => {
            // A read statement whose functions write: remember, and run
            // it on the writer. Nothing was written on the reader.
            match t {
                Target::Sql(sql) => {
                    conn.needs_writer.insert((*sql).into());
                }
                Target::Stmt(s) => s.needs_writer.store(true, Ordering::Relaxed),
            }
            db.release_reader(conn);
            write(py, db, t, params, out)
        }
        other => {
            db.release_reader(conn);
            other
        }
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
    let p = prepare_on(py, conn, t)?;
    if p.info.txn_control {
        return Err(txn_control_error());
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
