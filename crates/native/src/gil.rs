//! Stepping SQLite with the GIL released.

use pyo3::ffi as pyffi;
use rusqlite::ffi;
use std::ffi::c_int;

/// A connection handle that may cross into a closure run without the GIL
/// (the connection is used by the calling thread only).
pub struct SendPtr(pub *mut ffi::sqlite3);
// SAFETY: see above; the handle is only used by the thread that holds it.
unsafe impl Send for SendPtr {}

/// `sqlite3_step` with the GIL released, so other Python threads (and
/// other readers) run while SQLite works or waits on a lock.
///
/// # Safety
/// `stmt` must be a valid statement; the caller must hold the GIL.
#[inline]
pub unsafe fn step_nogil(stmt: *mut ffi::sqlite3_stmt) -> c_int {
    let ts = pyffi::PyEval_SaveThread();
    let rc = ffi::sqlite3_step(stmt);
    pyffi::PyEval_RestoreThread(ts);
    rc
}

/// Step number `n` of a multi-row read. The first step (where SQLite does
/// the seek, sort or aggregation) and every 32nd step release the GIL; the
/// steps in between are a b-tree cursor advance of a few hundred
/// nanoseconds, where a GIL round trip would cost as much as the step.
///
/// # Safety
/// As [`step_nogil`].
#[inline]
pub unsafe fn step_batched(stmt: *mut ffi::sqlite3_stmt, n: usize) -> c_int {
    if n.is_multiple_of(32) {
        step_nogil(stmt)
    } else {
        ffi::sqlite3_step(stmt)
    }
}
