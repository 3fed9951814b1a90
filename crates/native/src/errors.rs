//! Raising the PEP 249 exceptions. The classes are defined in Python
//! (`alkdev_storage/errors.py`) and imported here on first use; this module
//! picks the class for an SQLite result code (the choice itself is in the
//! core crate, `alkdev_storage_core::codes`) and sets `sqlite_errorcode` /
//! `sqlite_errorname` on the instance.

use alkdev_storage_core::codes::{code_name, error_class, ErrorClass};
use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;
use rusqlite::ffi;
use std::ffi::CStr;

pyo3::import_exception!(alkdev_storage.errors, InterfaceError);
pyo3::import_exception!(alkdev_storage.errors, DatabaseError);
pyo3::import_exception!(alkdev_storage.errors, DataError);
pyo3::import_exception!(alkdev_storage.errors, OperationalError);
pyo3::import_exception!(alkdev_storage.errors, IntegrityError);
pyo3::import_exception!(alkdev_storage.errors, InternalError);
pyo3::import_exception!(alkdev_storage.errors, ProgrammingError);

thread_local! {
    /// The exception a signal handler raised during a busy wait of this
    /// thread (see conn/busy.rs), raised by the statement that waited
    /// instead of its SQLITE_BUSY error.
    static PENDING: std::cell::RefCell<Option<PyErr>> = const { std::cell::RefCell::new(None) };
    /// The message for a busy wait of this thread that reached its timeout
    /// (how long it waited), used by the SQLITE_BUSY error that follows.
    static TIMED_OUT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Keep (or clear) the message of a busy wait that reached its timeout.
pub fn set_timed_out(msg: Option<String>) {
    TIMED_OUT.with(|p| *p.borrow_mut() = msg);
}

/// Keep (or clear) the exception that ends this thread's busy wait.
pub fn set_interrupt(err: Option<PyErr>) {
    PENDING.with(|p| *p.borrow_mut() = err);
}

/// Add a note (PEP 678) to a raised exception.
pub fn add_note(py: Python<'_>, e: &PyErr, note: String) {
    let _ = e.value(py).call_method1("add_note", (note,));
}

/// Build the Python exception for an extended SQLite result `code` with `msg`.
/// Class selection follows the stdlib `sqlite3` module so code written for it
/// catches the same classes.
pub fn sqlite_error(py: Python<'_>, code: i32, msg: &str) -> PyErr {
    if code & 0xff == ffi::SQLITE_BUSY {
        // A Ctrl-C that ended a busy wait: raise it instead.
        if let Some(interrupt) = PENDING.with(|p| p.borrow_mut().take()) {
            return interrupt;
        }
    }
    let msg = match TIMED_OUT.with(|p| p.borrow_mut().take()) {
        Some(waited) if code & 0xff == ffi::SQLITE_BUSY => waited,
        _ => msg.to_string(),
    };
    let err = match error_class(code) {
        ErrorClass::NoMemory => return PyMemoryError::new_err(msg),
        ErrorClass::InternalError => InternalError::new_err(msg),
        ErrorClass::IntegrityError => IntegrityError::new_err(msg),
        ErrorClass::DataError => DataError::new_err(msg),
        ErrorClass::ProgrammingError => ProgrammingError::new_err(msg),
        ErrorClass::OperationalError => OperationalError::new_err(msg),
        ErrorClass::DatabaseError => DatabaseError::new_err(msg),
    };
    with_code(py, err, code)
}

/// Set `sqlite_errorcode` and `sqlite_errorname` on `err`.
pub fn with_code(py: Python<'_>, err: PyErr, code: i32) -> PyErr {
    let value = err.value(py);
    let _ = value.setattr(pyo3::intern!(py, "sqlite_errorcode"), code);
    let _ = value.setattr(pyo3::intern!(py, "sqlite_errorname"), code_name(code));
    err
}

/// Error for the last failed call on connection `db`.
///
/// # Safety
/// `db` must be a valid open connection handle.
pub unsafe fn last_error(py: Python<'_>, db: *mut ffi::sqlite3) -> PyErr {
    let code = ffi::sqlite3_extended_errcode(db);
    let msg = CStr::from_ptr(ffi::sqlite3_errmsg(db)).to_string_lossy();
    sqlite_error(py, code, &msg)
}

/// Error for a result code without a live connection message.
pub fn code_error(py: Python<'_>, code: i32) -> PyErr {
    let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errstr(code)) }.to_string_lossy();
    sqlite_error(py, code, &msg)
}

/// Convert a rusqlite / honker-core error into the PEP 249 hierarchy.
pub fn rusqlite_error(py: Python<'_>, e: &rusqlite::Error) -> PyErr {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| f.to_string());
            sqlite_error(py, f.extended_code, &text)
        }
        other => OperationalError::new_err(other.to_string()),
    }
}

pub fn core_error(py: Python<'_>, e: &honker_core::Error) -> PyErr {
    match e {
        honker_core::Error::Sqlite(inner) => rusqlite_error(py, inner),
    }
}

pub fn closed() -> PyErr {
    InterfaceError::new_err("Database is closed")
}
