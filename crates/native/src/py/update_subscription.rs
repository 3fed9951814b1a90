//! Wake-ups from the process-wide update watcher (`crate::watcher`: one
//! poll thread for every watched file), any number of subscribers per
//! Database.

use crate::engine::DbInner;
use crate::errors;
use crate::watcher::{End, FileWatch, Sink, Sub};
use alkdev_storage_core::pool::WAIT_SLICE;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// One subscription to the database's commit ticks (from any process).
/// Ticks coalesce: after a wake, re-read state.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct UpdateSubscription {
    db: Arc<DbInner>,
    watch: Arc<FileWatch>,
    id: u64,
    sub: Arc<Sub>,
}

#[pymethods]
impl UpdateSubscription {
    /// Block (GIL released) until a commit is observed or `timeout_s`
    /// passes. Returns True on a commit, False on timeout. Raises
    /// InterfaceError once the subscription or the Database is closed.
    #[pyo3(signature = (timeout_s=None))]
    fn wait(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<bool> {
        let sub = &self.sub;
        let r = wait_sliced(py, timeout_s, |slice| match py.detach(|| sub.wait(slice)) {
            Ok(false) => None,
            other => Some(other),
        })?
        .unwrap_or(Ok(false));
        match r {
            Ok(t) => Ok(t),
            Err(End::Failed(msg)) => Err(errors::InterfaceError::new_err(msg)),
            Err(_) if self.db.is_closed() => Err(errors::closed()),
            Err(End::Closed) => Err(errors::InterfaceError::new_err(
                "the subscription is closed",
            )),
            Err(End::Stopped) => Err(errors::InterfaceError::new_err(
                "the update watcher stopped",
            )),
        }
    }

    /// Also report this subscription's ticks (and its end) to `sink` as
    /// `key`: one thread can then wait on many subscriptions
    /// (`WakeSink.wait`) and consume each tick with `wait(0)`.
    fn forward_to(&self, sink: &WakeSink, key: u64) {
        self.sub.forward_to(sink.sink.clone(), key);
    }

    /// Stop receiving ticks (idempotent). A thread blocked in wait() wakes
    /// with InterfaceError.
    fn close(&self) {
        self.watch.unsubscribe(&self.sub);
    }

    fn __repr__(&self) -> String {
        let state = if self.sub.ended() || self.db.is_closed() {
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
        self.watch.unsubscribe(&self.sub);
    }
}

/// Keys of forwarded subscriptions that got a tick or ended: one thread
/// waits on many subscriptions (the process's asyncio wake bridge).
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct WakeSink {
    sink: Arc<Sink>,
}

#[pymethods]
impl WakeSink {
    #[new]
    fn new() -> Self {
        WakeSink {
            sink: Arc::new(Sink::default()),
        }
    }

    /// Block (GIL released) until some forwarded subscription got a tick
    /// or ended, or `timeout_s` passes: their keys (possibly repeated; an
    /// empty list on timeout). Raises InterfaceError once closed.
    #[pyo3(signature = (timeout_s=None))]
    fn wait(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<Vec<u64>> {
        let sink = &self.sink;
        let keys = wait_sliced(py, timeout_s, |slice| {
            match py.detach(|| sink.wait(slice)) {
                None => Some(None),
                Some(keys) if !keys.is_empty() => Some(Some(keys)),
                Some(_) => None,
            }
        })?;
        match keys {
            Some(None) => Err(errors::InterfaceError::new_err("the wake sink is closed")),
            Some(Some(keys)) => Ok(keys),
            None => Ok(Vec::new()),
        }
    }

    /// Wake every waiter with InterfaceError (idempotent).
    fn close(&self) {
        self.sink.close();
    }
}

/// True on Python's main thread (the one that runs signal handlers).
fn is_main_thread(py: Python<'_>) -> bool {
    static MAIN: OnceLock<u64> = OnceLock::new();
    let main = MAIN.get_or_init(|| {
        py.import("threading")
            .and_then(|t| t.call_method0("main_thread"))
            .and_then(|t| t.getattr("ident"))
            .and_then(|i| i.extract::<u64>())
            .unwrap_or(0)
    });
    *main == 0 || *main == unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64
}

static NEXT_SUB_ID: AtomicU64 = AtomicU64::new(1);

pub fn subscribe(py: Python<'_>, db: &Arc<DbInner>) -> PyResult<UpdateSubscription> {
    db.check_open()?;
    let inner = db.clone();
    let watch = py.detach(|| inner.file_watch()).map_err(|msg| {
        if msg.is_empty() || inner.is_closed() {
            errors::closed()
        } else {
            errors::OperationalError::new_err(msg)
        }
    })?;
    let sub = watch.subscribe().map_err(|e| match e {
        End::Failed(msg) => errors::InterfaceError::new_err(msg),
        _ => errors::closed(),
    })?;
    Ok(UpdateSubscription {
        db: inner,
        watch,
        id: NEXT_SUB_ID.fetch_add(1, Ordering::Relaxed),
        sub,
    })
}

/// Wait in slices with the GIL released until `step` (given the length of
/// the next slice) returns Some, or `timeout_s` passes (Ok(None)). Only the
/// main thread runs Python's signal handlers: it waits in slices of
/// WAIT_SLICE and checks for signals (Ctrl-C) between them; other threads
/// wait in one go (an idle listener thread costs no wake-ups).
fn wait_sliced<T>(
    py: Python<'_>,
    timeout_s: Option<f64>,
    mut step: impl FnMut(Duration) -> Option<T>,
) -> PyResult<Option<T>> {
    let timeout = match timeout_s {
        None => None,
        Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(PyValueError::new_err(format!(
                "timeout_s must be >= 0, got {t}"
            )))
        }
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let slice_max = if is_main_thread(py) {
        WAIT_SLICE
    } else {
        Duration::from_secs(3600)
    };
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(slice_max),
            None => slice_max,
        };
        if let Some(done) = step(slice) {
            return Ok(Some(done));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        if unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
            return Err(PyErr::fetch(py));
        }
    }
}
