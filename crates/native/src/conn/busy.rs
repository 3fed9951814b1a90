//! SQLite's busy waits (another process holds the lock): bounded by the
//! Database's timeout, fair between processes, and interruptible. Our busy
//! handler polls at sub-millisecond intervals that shrink as the wait
//! grows (the policy is `alkdev_storage_core::busywait`; the measurements
//! and the alternatives weighed are in docs/0011-fair-write-lock.md). From
//! 40 ms on it checks for Python signals every 20 ms: a Ctrl-C ends the
//! wait with SQLITE_BUSY, and the statement raises the KeyboardInterrupt
//! (kept in a thread-local until then). A wait that reaches the timeout
//! leaves how long it waited to the error (see docs/0008-waits.md). The
//! handler also remembers that this connection had to wait, so its next
//! BEGIN IMMEDIATE leaves waiting processes a hand-off gap ([`Busy::pause`]).

use crate::errors;
use alkdev_storage_core::busywait::{self, Step};
use pyo3::ffi as pyffi;
use pyo3::prelude::*;
use rusqlite::ffi;
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

/// State of one connection's busy handler; lives as long as the connection.
pub struct Busy {
    timeout: Duration,
    start: Cell<Instant>,
    /// When (into the current wait) signals were last checked.
    checked: Cell<Option<Duration>>,
    /// When this connection last had to wait (None: not lately).
    waited_at: Cell<Option<Instant>>,
    /// When its last write transaction ended, recorded only while
    /// `waited_at` is set (no clock read on an uncontended commit).
    ended_at: Cell<Option<Instant>>,
    /// Set around a `try_begin_immediate`: the handler gives up at once.
    no_wait: Cell<bool>,
}

impl Busy {
    pub fn new(timeout: Duration) -> Box<Busy> {
        Box::new(Busy {
            timeout,
            start: Cell::new(Instant::now()),
            checked: Cell::new(None),
            waited_at: Cell::new(None),
            ended_at: Cell::new(None),
            no_wait: Cell::new(false),
        })
    }

    /// How long to wait before the next `BEGIN IMMEDIATE`, so a process
    /// waiting for the lock gets its turn (docs/0011); None when this
    /// connection has not had to wait lately (the uncontended path).
    #[inline]
    pub fn pause(&self) -> Option<Duration> {
        let waited = self.waited_at.get()?.elapsed();
        if waited >= busywait::CONTENDED_FOR {
            self.waited_at.set(None);
            self.ended_at.set(None);
            return None;
        }
        busywait::pause(waited, self.ended_at.get().map(|t| t.elapsed()))
    }

    /// Make the handler give up at once (true) or wait as usual (false).
    #[inline]
    pub fn set_no_wait(&self, on: bool) {
        self.no_wait.set(on);
    }

    /// A write transaction ended.
    #[inline]
    pub fn ended(&self) {
        if self.waited_at.get().is_some() {
            self.ended_at.set(Some(Instant::now()));
        }
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
    if busy.no_wait.get() {
        return 0;
    }
    if n == 0 {
        let now = Instant::now();
        busy.start.set(now);
        busy.waited_at.set(Some(now));
        busy.checked.set(None);
        errors::set_interrupt(None);
        errors::set_timed_out(None);
    }
    let waited = busy.start.get().elapsed();
    let sleep = match busywait::next(waited, busy.timeout, busy.checked.get()) {
        Step::TimedOut => {
            errors::set_timed_out(Some(busywait::timeout_message(waited, busy.timeout)));
            return 0;
        }
        Step::CheckThenSleep(d) => {
            busy.checked.set(Some(waited));
            if signalled() {
                return 0;
            }
            d
        }
        Step::Sleep(d) => d,
    };
    std::thread::sleep(sleep);
    1
}
