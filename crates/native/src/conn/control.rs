//! Transaction control on one connection: BEGIN IMMEDIATE, COMMIT,
//! ROLLBACK and a deferred BEGIN, each prepared once and reused. While
//! other processes wait for the write lock, BEGIN IMMEDIATE first leaves
//! them a short hand-off gap (`busy::Busy::pause`, docs/0011).

use super::Conn;
use crate::errors;
use crate::gil::step_nogil;
use pyo3::prelude::*;
use rusqlite::ffi;
use std::ffi::{c_char, c_int};
use std::ptr;

/// Frames short of the `wal_autocheckpoint` threshold from which
/// `try_begin_immediate` declines: a commit then may checkpoint.
const CHECKPOINT_MARGIN: u32 = 256;

/// The control statements (index into `Conn::control`).
#[derive(Clone, Copy)]
pub enum Control {
    BeginImmediate = 0,
    Commit = 1,
    Rollback = 2,
    BeginDeferred = 3,
}

pub const COUNT: usize = 4;

impl Control {
    fn sql(self) -> &'static str {
        match self {
            Control::BeginImmediate => "BEGIN IMMEDIATE",
            Control::Commit => "COMMIT",
            Control::Rollback => "ROLLBACK",
            Control::BeginDeferred => "BEGIN",
        }
    }
}

impl Conn {
    fn control_stmt(&mut self, which: Control) -> Result<*mut ffi::sqlite3_stmt, i32> {
        let slot = &mut self.control[which as usize];
        let sql = which.sql();
        unsafe {
            if slot.is_null() {
                let mut s = ptr::null_mut();
                let rc = ffi::sqlite3_prepare_v3(
                    self.db,
                    sql.as_ptr() as *const c_char,
                    sql.len() as c_int,
                    ffi::SQLITE_PREPARE_PERSISTENT,
                    &mut s,
                    ptr::null_mut(),
                );
                if rc != ffi::SQLITE_OK {
                    return Err(ffi::sqlite3_extended_errcode(self.db));
                }
                *slot = s;
            }
            Ok(*slot)
        }
    }

    fn finish_control(&self, s: *mut ffi::sqlite3_stmt, rc: c_int) -> Result<(), i32> {
        unsafe { ffi::sqlite3_reset(s) };
        if rc == ffi::SQLITE_DONE {
            Ok(())
        } else {
            Err(unsafe { ffi::sqlite3_extended_errcode(self.db) })
        }
    }

    /// Run a control statement with the GIL released (the caller holds it).
    fn control(&mut self, which: Control) -> Result<(), i32> {
        let s = self.control_stmt(which)?;
        let rc = unsafe { step_nogil(s) };
        self.finish_control(s, rc)
    }

    /// Run a control statement without touching the GIL (the caller may
    /// not hold it, or the statement cannot block).
    pub(super) fn raw_control(&mut self, which: Control) -> Result<(), i32> {
        let s = self.control_stmt(which)?;
        let rc = unsafe { ffi::sqlite3_step(s) };
        self.finish_control(s, rc)
    }

    pub fn begin_immediate(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(pause) = self._busy.pause() {
            // Another process waited lately: let it take its turn first.
            py.detach(|| std::thread::sleep(pause));
        }
        self.control(Control::BeginImmediate)
            .map_err(|_| unsafe { errors::last_error(py, self.db) })
    }

    /// BEGIN IMMEDIATE only if the file's write lock is free now: false
    /// (nothing begun) when another process holds it, when a hand-off
    /// pause is due (docs/0011) or when the WAL is within
    /// `CHECKPOINT_MARGIN` frames of the auto-checkpoint threshold (the
    /// commit would copy pages and fsync); never waits, never sleeps.
    pub fn try_begin_immediate(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self._busy.pause().is_some() {
            return Ok(false);
        }
        if self.checkpoint_near(CHECKPOINT_MARGIN) {
            // Its COMMIT would likely run the automatic checkpoint: leave
            // that to a thread that may wait (docs/0020).
            return Ok(false);
        }
        self._busy.set_no_wait(true);
        let r = self.control(Control::BeginImmediate);
        self._busy.set_no_wait(false);
        match r {
            Ok(()) => Ok(true),
            Err(code) if code & 0xff == ffi::SQLITE_BUSY => Ok(false),
            Err(_) => Err(unsafe { errors::last_error(py, self.db) }),
        }
    }

    pub fn commit(&mut self, py: Python<'_>) -> PyResult<()> {
        let r = self
            .control(Control::Commit)
            .map_err(|_| unsafe { errors::last_error(py, self.db) });
        self._busy.ended();
        r
    }

    /// Roll back if a transaction is open. Never fails loudly: a rollback
    /// error leaves nothing to recover.
    pub fn rollback(&mut self) {
        self.forget_read();
        if !self.autocommit() {
            let _ = self.raw_control(Control::Rollback);
            self._busy.ended();
        }
    }
}
