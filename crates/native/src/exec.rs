//! Running one statement: bind, step, collect what the caller asked for
//! (`Out`), reset.

use crate::bind::{bind_params, Keep};
use crate::errors;
use crate::gil::{step_batched, step_nogil};
use crate::rows::{column_names, row_dict, row_tuple};
use pyo3::ffi as pyffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use rusqlite::ffi;
use std::ffi::c_int;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Exec,
    /// Parameter set `n` of an executemany: the statement runs inside a
    /// transaction that already holds the write lock, so its step never
    /// waits on other connections; the GIL is released every 32nd set
    /// only (as for the rows of a multi-row read).
    ExecMany(usize),
    One,
    All,
    Dicts,
}

/// What a run produced.
pub enum Produced {
    Exec { changes: i64, lastrowid: i64 },
    Obj(Py<PyAny>),
}

/// Bind, step and collect one statement, then reset it.
///
/// # Safety
/// `stmt` belongs to `db`; GIL held; the connection is used by this thread only.
pub unsafe fn run(
    py: Python<'_>,
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    params: Option<&Bound<'_, PyAny>>,
    names: Option<&[Option<Py<PyString>>]>,
    out: Out,
) -> PyResult<Produced> {
    let mut keep = Keep::default();
    if let Err(e) = bind_params(py, stmt, params, names, &mut keep) {
        ffi::sqlite3_clear_bindings(stmt);
        return Err(e);
    }
    let result = collect(py, db, stmt, out);
    ffi::sqlite3_reset(stmt);
    drop(keep);
    result
}

#[inline]
unsafe fn step_error(py: Python<'_>, db: *mut ffi::sqlite3, stmt: *mut ffi::sqlite3_stmt) -> PyErr {
    let err = errors::last_error(py, db);
    ffi::sqlite3_reset(stmt);
    err
}

unsafe fn collect(
    py: Python<'_>,
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    out: Out,
) -> PyResult<Produced> {
    match out {
        Out::Exec | Out::ExecMany(_) => {
            let before = ffi::sqlite3_total_changes64(db);
            let mut first = true;
            loop {
                let rc = match out {
                    Out::ExecMany(n) if first => step_batched(stmt, n),
                    _ => step_nogil(stmt),
                };
                first = false;
                match rc {
                    ffi::SQLITE_ROW => continue,
                    ffi::SQLITE_DONE => break,
                    _ => return Err(step_error(py, db, stmt)),
                }
            }
            let changes = if ffi::sqlite3_total_changes64(db) == before {
                0
            } else {
                ffi::sqlite3_changes64(db)
            };
            Ok(Produced::Exec {
                changes,
                lastrowid: ffi::sqlite3_last_insert_rowid(db),
            })
        }
        // Column counts and names are read after the first step: SQLite
        // re-prepares a statement inside sqlite3_step when the schema changed
        // (another connection's ALTER TABLE), and the shape can change with it.
        Out::One => {
            match step_nogil(stmt) {
                ffi::SQLITE_ROW => {
                    let row = row_tuple(py, stmt, ffi::sqlite3_column_count(stmt))?;
                    // Run a writing statement (INSERT ... RETURNING) to completion.
                    if ffi::sqlite3_stmt_readonly(stmt) == 0 {
                        loop {
                            match step_nogil(stmt) {
                                ffi::SQLITE_ROW => continue,
                                ffi::SQLITE_DONE => break,
                                _ => {
                                    pyffi::Py_DecRef(row);
                                    return Err(step_error(py, db, stmt));
                                }
                            }
                        }
                    }
                    Ok(Produced::Obj(Bound::from_owned_ptr(py, row).unbind()))
                }
                ffi::SQLITE_DONE => Ok(Produced::Obj(py.None())),
                _ => Err(step_error(py, db, stmt)),
            }
        }
        Out::All => {
            let mut ncols: c_int = -1;
            let mut rows: Vec<*mut pyffi::PyObject> = Vec::new();
            loop {
                // Let Ctrl-C (and other signal handlers) stop a long read.
                if rows.len() % 4096 == 4095 && pyffi::PyErr_CheckSignals() != 0 {
                    rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                    return Err(PyErr::fetch(py));
                }
                match step_batched(stmt, rows.len()) {
                    ffi::SQLITE_ROW => match row_tuple(py, stmt, {
                        if ncols < 0 {
                            ncols = ffi::sqlite3_column_count(stmt);
                        }
                        ncols
                    }) {
                        Ok(r) => rows.push(r),
                        Err(e) => {
                            rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                            return Err(e);
                        }
                    },
                    ffi::SQLITE_DONE => break,
                    _ => {
                        rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                        return Err(step_error(py, db, stmt));
                    }
                }
            }
            let list = pyffi::PyList_New(rows.len() as pyffi::Py_ssize_t);
            if list.is_null() {
                rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                return Err(PyErr::fetch(py));
            }
            for (i, r) in rows.into_iter().enumerate() {
                pyffi::PyList_SetItem(list, i as pyffi::Py_ssize_t, r);
            }
            Ok(Produced::Obj(Bound::from_owned_ptr(py, list).unbind()))
        }
        Out::Dicts => {
            let mut names: Option<Vec<Bound<'_, PyString>>> = None;
            let list = PyList::empty(py);
            loop {
                match step_nogil(stmt) {
                    ffi::SQLITE_ROW => {
                        let names = names.get_or_insert_with(|| column_names(py, stmt));
                        list.append(row_dict(py, stmt, names)?)?
                    }
                    ffi::SQLITE_DONE => break,
                    _ => return Err(step_error(py, db, stmt)),
                }
            }
            Ok(Produced::Obj(list.into_any().unbind()))
        }
    }
}

impl Produced {
    /// The first column of a one-row result (e.g. `SELECT notify(...)`).
    pub fn first_int(self, py: Python<'_>) -> PyResult<i64> {
        match self {
            Produced::Obj(o) => o.bind(py).get_item(0)?.extract(),
            Produced::Exec { .. } => unreachable!("a one-row result was asked for"),
        }
    }
}
