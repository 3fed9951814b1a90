//! One SQLite connection with its own prepared-statement handles.
//!
//! The struct and its lifetime live here; its other concerns are child
//! modules: opening it ([`open`]), the WAL-index snapshot reuse of readers
//! ([`walindex`]), the statement caches ([`stmt_cache`]), the transaction
//! control statements ([`control`]) and scripts ([`script`]). Binding,
//! rows and stepping (the per-statement hot path) take raw handles and live
//! at the crate root (`bind`, `rows`, `exec`, `gil`).

pub mod busy;
mod control;
mod open;
mod script;
mod stmt_cache;
mod walindex;
pub(crate) use walindex::map_region0;

#[cfg(test)]
mod tests;

use crate::errors::{self, ProgrammingError};
use alkdev_storage_core::classify::{Control, Info};
use alkdev_storage_core::pool::PoolConn;
use alkdev_storage_core::walindex::ReadSnapshot;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use rusqlite::ffi;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;

pub use walindex::ShmHeader;

/// What a prepared `Statement` object shares with the connections.
pub struct StmtShared {
    /// Id of the engine (DbInner) the statement was prepared by.
    pub db_id: u64,
    pub id: u64,
    pub slot: usize,
    pub sql: String,
    /// Its classification, made once when it was first compiled.
    pub info: Info,
    /// For transaction control: the action and savepoint name.
    pub control: Option<(Control, Option<String>)>,
    pub param_count: i32,
    /// Names (without the `:`/`@`/`$` prefix) of each parameter, `None` for
    /// positional ones. Index 0 is parameter 1.
    pub param_names: Vec<Option<Py<PyString>>>,
    pub columns: Py<PyTuple>,
    /// Declared type of each result column (None: an expression).
    pub decltypes: Py<PyTuple>,
}

pub struct Conn {
    // Field order matters: statements are finalized in Drop before `conn`
    // closes the handle.
    db: *mut ffi::sqlite3,
    slots: Vec<Option<(u64, *mut ffi::sqlite3_stmt)>>,
    adhoc: HashMap<Box<str>, (*mut ffi::sqlite3_stmt, Info)>,
    /// The writer (statements compiled here may run here); false for readers.
    writer: bool,
    control: [*mut ffi::sqlite3_stmt; control::COUNT],
    /// Readers: the WAL-index header (SQLite's own shared mapping).
    shm: Option<ShmHeader>,
    /// The writer: the WAL-index header (to see a checkpoint coming).
    wal_hdr: Option<ShmHeader>,
    /// The writer: its `wal_autocheckpoint` threshold in frames (0: off).
    autockpt: u32,
    /// Readers: the implicit read transaction kept between statements.
    snap: ReadSnapshot,
    /// Readers: thread tag of the thread that took it from the pool.
    holder: usize,
    /// Generation of the Database's user-defined functions registered here.
    pub func_gen: u64,
    pub conn: rusqlite::Connection,
    /// The busy handler's state: dropped after `conn` has closed.
    _busy: Box<busy::Busy>,
}

// SAFETY: a Conn is only ever used by one thread at a time (it is moved in
// and out of the writer slot / reader pool / a session); SQLite is compiled
// threadsafe (serialized by default in the bundled build).
unsafe impl Send for Conn {}

impl Drop for Conn {
    fn drop(&mut self) {
        unsafe {
            for (_, s) in self.slots.drain(..).flatten() {
                ffi::sqlite3_finalize(s);
            }
            for (_, (s, _)) in self.adhoc.drain() {
                ffi::sqlite3_finalize(s);
            }
            for s in self.control {
                if !s.is_null() {
                    ffi::sqlite3_finalize(s);
                }
            }
        }
    }
}

impl PoolConn for Conn {
    #[inline]
    fn holder(&self) -> usize {
        self.holder
    }
    #[inline]
    fn set_holder(&mut self, tag: usize) {
        self.holder = tag;
    }
    fn end_stale_read(&mut self, age: std::time::Duration) {
        if self.snap.older_than(age) {
            self.end_read();
        }
    }
}

/// Error raised by a prepare: SQLite's code and message.
#[derive(Debug)]
pub struct PrepareError {
    pub code: i32,
    pub msg: String,
}

impl PrepareError {
    pub fn into_py(self, py: Python<'_>) -> PyErr {
        if self.code == -1 {
            return ProgrammingError::new_err(self.msg);
        }
        errors::sqlite_error(py, self.code, &self.msg)
    }
}

/// The error for SQL text holding a NUL character at byte `at` (SQLite
/// would stop reading there): ProgrammingError, as stdlib sqlite3 raises.
/// The position is counted in characters, as Python indexes a str.
pub fn nul_message(what: &str, sql: &str, at: usize) -> String {
    let pos = sql[..at].chars().count();
    format!(
        "the {what} contains a NUL character at position {pos}; SQL text cannot hold NUL \
         (pass such values as parameters)"
    )
}

impl Conn {
    fn wrap(conn: rusqlite::Connection, timeout: std::time::Duration) -> Conn {
        let db = unsafe { conn.handle() };
        let busy = busy::Busy::new(timeout);
        // SAFETY: the box is a field after `conn`, so it outlives it.
        unsafe { busy.install(&conn) };
        Conn {
            db,
            slots: Vec::new(),
            adhoc: HashMap::new(),
            writer: false,
            control: [ptr::null_mut(); control::COUNT],
            shm: None,
            wal_hdr: None,
            autockpt: 0,
            snap: ReadSnapshot::default(),
            holder: 0,
            func_gen: 0,
            conn,
            _busy: busy,
        }
    }

    #[inline]
    pub fn handle(&self) -> *mut ffi::sqlite3 {
        self.db
    }

    /// True for the writer connection, false for readers.
    #[inline]
    pub fn is_writer(&self) -> bool {
        self.writer
    }

    #[inline]
    pub fn autocommit(&self) -> bool {
        unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
    }

    /// Prepare one statement. Errors: SQLite's, an empty statement, or
    /// trailing statements after the first.
    pub fn prepare_raw(&self, sql: &str) -> Result<*mut ffi::sqlite3_stmt, PrepareError> {
        if let Some(pos) = sql.find('\0') {
            return Err(PrepareError {
                code: -1,
                msg: nul_message("SQL", sql, pos),
            });
        }
        let mut stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        let len = c_int::try_from(sql.len()).map_err(|_| PrepareError {
            code: ffi::SQLITE_TOOBIG,
            msg: "SQL text is too long".into(),
        })?;
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr() as *const c_char,
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db)) }
                .to_string_lossy()
                .into_owned();
            let code = unsafe { ffi::sqlite3_extended_errcode(self.db) };
            return Err(PrepareError { code, msg });
        }
        if stmt.is_null() {
            return Err(PrepareError {
                code: -1,
                msg: "empty SQL statement: nothing to execute".into(),
            });
        }
        let used = tail as usize - sql.as_ptr() as usize;
        let rest = &sql[used.min(sql.len())..];
        if !crate::sqltext::only_trivia(rest) {
            unsafe { ffi::sqlite3_finalize(stmt) };
            return Err(PrepareError {
                code: -1,
                msg: "you can only execute one statement at a time (use executescript for scripts)"
                    .into(),
            });
        }
        Ok(stmt)
    }
}
