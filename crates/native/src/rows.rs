//! Building rows straight from SQLite's column values: the per-row hot path.

use crate::errors::DataError;
use pyo3::ffi as pyffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rusqlite::ffi;
use std::ffi::{c_char, c_int, CStr};

fn column_label(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> String {
    let name = unsafe { ffi::sqlite3_column_name(stmt, i) };
    if name.is_null() {
        format!("column {i}")
    } else {
        format!(
            "column {i} ({:?})",
            unsafe { CStr::from_ptr(name) }.to_string_lossy()
        )
    }
}

/// New reference to the Python value of column `i` of the current row.
///
/// # Safety
/// `stmt` positioned on a row; GIL held.
#[inline]
unsafe fn column_value(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
) -> PyResult<*mut pyffi::PyObject> {
    let obj = match ffi::sqlite3_column_type(stmt, i) {
        ffi::SQLITE_INTEGER => pyffi::PyLong_FromLongLong(ffi::sqlite3_column_int64(stmt, i)),
        ffi::SQLITE_FLOAT => pyffi::PyFloat_FromDouble(ffi::sqlite3_column_double(stmt, i)),
        ffi::SQLITE_TEXT => {
            let data = ffi::sqlite3_column_text(stmt, i);
            let len = ffi::sqlite3_column_bytes(stmt, i);
            let o = pyffi::PyUnicode_DecodeUTF8(
                data as *const c_char,
                len as pyffi::Py_ssize_t,
                c"strict".as_ptr(),
            );
            if o.is_null() {
                let cause = PyErr::fetch(py);
                let err = DataError::new_err(format!(
                    "{} holds text that is not valid UTF-8; read it as a BLOB (CAST(x AS BLOB)) instead",
                    column_label(stmt, i)
                ));
                err.set_cause(py, Some(cause));
                return Err(err);
            }
            o
        }
        ffi::SQLITE_BLOB => {
            let data = ffi::sqlite3_column_blob(stmt, i);
            let len = ffi::sqlite3_column_bytes(stmt, i);
            pyffi::PyBytes_FromStringAndSize(data as *const c_char, len as pyffi::Py_ssize_t)
        }
        _ => {
            let none = pyffi::Py_None();
            pyffi::Py_IncRef(none);
            none
        }
    };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    Ok(obj)
}

/// The current row as a new tuple (owned pointer).
///
/// # Safety
/// `stmt` positioned on a row; GIL held.
#[inline]
pub unsafe fn row_tuple(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    ncols: c_int,
) -> PyResult<*mut pyffi::PyObject> {
    let t = pyffi::PyTuple_New(ncols as pyffi::Py_ssize_t);
    if t.is_null() {
        return Err(PyErr::fetch(py));
    }
    for i in 0..ncols {
        match column_value(py, stmt, i) {
            Ok(v) => {
                pyffi::PyTuple_SetItem(t, i as pyffi::Py_ssize_t, v);
            }
            Err(e) => {
                pyffi::Py_DecRef(t);
                return Err(e);
            }
        }
    }
    Ok(t)
}

/// Column names of a statement as Python strings.
pub fn column_names<'py>(
    py: Python<'py>,
    stmt: *mut ffi::sqlite3_stmt,
) -> Vec<Bound<'py, PyString>> {
    let n = unsafe { ffi::sqlite3_column_count(stmt) };
    (0..n)
        .map(|i| {
            let p = unsafe { ffi::sqlite3_column_name(stmt, i) };
            let s = if p.is_null() {
                std::borrow::Cow::Borrowed("")
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy()
            };
            PyString::new(py, &s)
        })
        .collect()
}

/// The current row as a dict keyed by column name.
///
/// # Safety
/// `stmt` positioned on a row; GIL held.
pub unsafe fn row_dict<'py>(
    py: Python<'py>,
    stmt: *mut ffi::sqlite3_stmt,
    names: &[Bound<'py, PyString>],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (i, name) in names.iter().enumerate() {
        let v = Bound::from_owned_ptr(py, column_value(py, stmt, i as c_int)?);
        d.set_item(name, v)?;
    }
    Ok(d)
}
