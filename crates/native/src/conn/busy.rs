//! SQLite's busy waits (another process holds the lock): bounded by the
//! Database's timeout, and interruptible. Our busy handler sleeps with
//! SQLite's own back-off, at most 50 ms at a time, and from 40 ms on
//! checks for Python signals between sleeps: a Ctrl-C ends the wait with
//! SQLITE_BUSY, and the statement raises the KeyboardInterrupt (kept in a
//! thread-local until then). See docs/0008-waits.md.

use crate::errors;
use pyo3::ffi as pyffi;
use pyo3::prelude::*;
use rusqlite::ffi;
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

/// Sleeps between retries (SQLite's default back-off, capped at 50 ms).
const DELAYS_MS: [u64; 10] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50];

/// From this much waiting on, check for signals before each sleep.
const CHECK_AFTER: Duration = Duration::from_millis(40);

/// State of one connection's busy handler; lives as long as the connection.
pub struct Busy {
    timeout: Duration,
    start: Cell<Instant>,
}

impl Busy {
    pub fn new(timeout: Duration) -> Box<Busy> {
        Box::new(Busy {
            timeout,
            start: Cell::new(Instant::now()),
        })
    }

    /// Install the handler on `conn` (replacing the busy timeout).
    ///
    /// # Safety
    /// `self` must outlive the connection (Conn keeps the box after it).
    pub unsafe fn install(&self, conn: &rusqlite::Connection) {
        ffi::sqlite3_busy_handler(
            conn.handle(),
            Some(busy_handler),
            self as *const Busy as *mut c_void,
        );
    }
}

/// True when a signal handler raised (the exception is kept in PENDING).
fn signalled() -> bool {
    unsafe {
        if pyffi::Py_IsInitialized() == 0 {
            return false;
        }
        // Right whether or not this thread holds the GIL (see functions.rs).
        let gil = pyffi::PyGILState_Ensure();
        let raised = pyffi::PyErr_CheckSignals() != 0;
        if raised {
            let err = PyErr::fetch(Python::assume_attached());
            errors::set_interrupt(Some(err));
        }
        pyffi::PyGILState_Release(gil);
        raised
    }
}

extern "C" fn busy_handler(arg: *mut c_void, n: c_int) -> c_int {
    // SAFETY: `arg` is the connection's Busy, alive while it is open.
    let busy = unsafe { &*(arg as *const Busy) };
    if n == 0 {
        busy.start.set(Instant::now());
        errors::set_interrupt(None);
    }
    let waited = busy.start.get().elapsed();
    if waited >= busy.timeout {
        return 0;
    }
    if waited >= CHECK_AFTER && signalled() {
        return 0;
    }
    let delay = Duration::from_millis(DELAYS_MS[(n as usize).min(DELAYS_MS.len() - 1)]);
    std::thread::sleep(delay.min(busy.timeout - waited));
    1
}
