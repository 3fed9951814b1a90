//! Wake-ups from honker-core's shared update watcher: one PRAGMA
//! data_version poll thread per Database, any number of subscribers.

use crate::engine::DbInner;
use crate::errors;
use alkdev_storage_core::pool::WAIT_SLICE;
use honker_core::SharedUpdateWatcher;
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One subscription to the database's commit ticks (from any process).
/// Ticks coalesce: after a wake, re-read state.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct UpdateSubscription {
    db: Arc<DbInner>,
    watcher: Arc<SharedUpdateWatcher>,
    id: u64,
    rx: Mutex<Option<Receiver<()>>>,
    closed: AtomicBool,
}

#[pymethods]
impl UpdateSubscription {
    /// Block (GIL released) until a commit is observed or `timeout_s`
    /// passes. Returns True on a commit, False on timeout. Raises
    /// InterfaceError once the subscription or the Database is closed.
    #[pyo3(signature = (timeout_s=None))]
    fn wait(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout_s {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout_s must be >= 0, got {t}"
                )))
            }
        };
        let rx = self.rx.lock().take().ok_or_else(|| {
            errors::InterfaceError::new_err("subscription is closed or in use by another thread")
        })?;
        // Wait in slices with the GIL released, checking for signals
        // (Ctrl-C) between them.
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut rx = rx;
        let r = loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            let (back, r) = py.detach(move || {
                let r = rx.recv_timeout(slice);
                (rx, r)
            });
            rx = back;
            match r {
                Err(RecvTimeoutError::Timeout) => {}
                other => break other,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break Err(RecvTimeoutError::Timeout);
            }
            if unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
                *self.rx.lock() = Some(rx);
                return Err(PyErr::fetch(py));
            }
        };
        *self.rx.lock() = Some(rx);
        match r {
            Ok(()) => Ok(true),
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                if self.db.is_closed() {
                    Err(errors::closed())
                } else {
                    Err(errors::InterfaceError::new_err(
                        "the update watcher stopped",
                    ))
                }
            }
        }
    }

    /// Stop receiving ticks (idempotent). A thread blocked in wait() wakes
    /// with InterfaceError.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.watcher.unsubscribe(self.id);
    }

    fn __repr__(&self) -> String {
        let state = if self.closed.load(Ordering::Acquire) || self.db.is_closed() {
            "closed"
        } else {
            "open"
        };
        format!(
            "<UpdateSubscription {} {state} {:?}>",
            self.id, self.db.path
        )
    }
}

impl Drop for UpdateSubscription {
    fn drop(&mut self) {
        self.watcher.unsubscribe(self.id);
    }
}

pub fn subscribe(db: &Arc<DbInner>) -> PyResult<UpdateSubscription> {
    let inner = db.clone();
    let watcher = inner.shared_watcher()?;
    let (id, rx) = watcher.subscribe();
    Ok(UpdateSubscription {
        db: inner,
        watcher,
        id,
        rx: Mutex::new(Some(rx)),
        closed: AtomicBool::new(false),
    })
}
