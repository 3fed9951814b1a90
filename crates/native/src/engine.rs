//! The engine of one database file: the writer slot, the reader pool, the
//! update watcher and the registry of user-defined functions, plus the
//! bookkeeping of prepared-statement slots. Python objects (`Database`,
//! `Transaction`...) hold it through an `Arc`.

use crate::conn::Conn;
use crate::errors::{self, OperationalError, ProgrammingError};
use crate::functions::Registry;
use alkdev_storage_core::pool::{PoolError, ReaderPool, Waiter, WriterSlot};
use honker_core::{SharedUpdateWatcher, WatcherConfig};
use parking_lot::Mutex;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

static NEXT_DB_ID: AtomicU64 = AtomicU64::new(1);

/// Waiting with the GIL released, checking for signals (Ctrl-C) between
/// slices of the wait.
pub struct PyWait<'py>(pub Python<'py>);

impl Waiter for PyWait<'_> {
    type Error = PyErr;

    #[inline]
    fn block<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        self.0.detach(f)
    }

    fn check(&self) -> Result<(), PyErr> {
        if unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
            return Err(PyErr::fetch(self.0));
        }
        Ok(())
    }
}

pub struct DbInner {
    pub id: u64,
    pub path: String,
    writer: WriterSlot<Conn>,
    readers: ReaderPool<Conn>,
    closed: AtomicBool,
    free_slots: Mutex<Vec<usize>>,
    next_slot: AtomicUsize,
    next_stmt_id: AtomicU64,
    watcher: Mutex<Option<Arc<SharedUpdateWatcher>>>,
    watcher_config: WatcherConfig,
    pub funcs: Arc<Registry>,
}

impl DbInner {
    /// Wrap an open writer; readers open lazily, up to `max_readers`.
    pub fn new(
        path: String,
        writer: Conn,
        max_readers: usize,
        watcher_config: WatcherConfig,
    ) -> DbInner {
        DbInner {
            id: NEXT_DB_ID.fetch_add(1, Ordering::Relaxed),
            path,
            writer: WriterSlot::new(writer),
            readers: ReaderPool::new(max_readers),
            closed: AtomicBool::new(false),
            free_slots: Mutex::new(Vec::new()),
            next_slot: AtomicUsize::new(0),
            next_stmt_id: AtomicU64::new(1),
            watcher: Mutex::new(None),
            watcher_config,
            funcs: Arc::new(Registry::default()),
        }
    }

    fn pool_error<O>(
        &self,
        py: Python<'_>,
        e: PoolError<PyErr, O>,
        open: impl FnOnce(O) -> PyErr,
    ) -> PyErr {
        match e {
            PoolError::Closed => errors::closed(),
            PoolError::SameThread => ProgrammingError::new_err(
                "this thread already holds the writer in an open transaction; \
                 run the statement through that transaction (tx.execute) instead",
            ),
            PoolError::AllHeldByThisThread { max } => ProgrammingError::new_err(format!(
                "all {max} reader connections are held by this thread (open snapshots or \
                 iterators); finish one first, or open the Database with a larger max_readers"
            )),
            PoolError::TimedOut { waited, .. } => errors::with_code(
                py,
                OperationalError::new_err(format!(
                    "gave up waiting for a connection to {:?} after {:.1} s",
                    self.path,
                    waited.as_secs_f64()
                )),
                5,
            ),
            PoolError::Interrupted(e) => e,
            PoolError::Open(e) => open(e),
        }
    }

    /// Take the writer (waiting, GIL released, while another thread has it).
    #[inline]
    pub fn acquire_writer(&self, py: Python<'_>) -> PyResult<Conn> {
        match self.writer.acquire(&PyWait(py), None) {
            Ok(mut c) => {
                self.funcs.apply(&mut c);
                Ok(c)
            }
            Err(e) => Err(self.pool_error(py, e, |never| match never {})),
        }
    }

    #[inline]
    pub fn release_writer(&self, conn: Conn) {
        self.writer.release(conn);
    }

    /// Take a reader (an idle one, a new one, or wait for one).
    #[inline]
    pub fn acquire_reader(&self, py: Python<'_>) -> PyResult<Conn> {
        let path = &self.path;
        match self
            .readers
            .acquire(&PyWait(py), None, || Conn::open_reader(path))
        {
            Ok(mut c) => {
                self.funcs.apply(&mut c);
                Ok(c)
            }
            Err(e) => Err(self.pool_error(py, e, |e| errors::core_error(py, &e))),
        }
    }

    #[inline]
    pub fn release_reader(&self, conn: Conn) {
        self.readers.release(conn);
    }

    pub fn give_back(&self, writer: bool, conn: Conn) {
        if writer {
            self.release_writer(conn);
        } else {
            self.release_reader(conn);
        }
    }

    pub fn max_readers(&self) -> usize {
        self.readers.max()
    }

    pub fn open_readers(&self) -> usize {
        self.readers.open_count()
    }

    #[inline]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    #[inline]
    pub fn check_open(&self) -> PyResult<()> {
        if self.is_closed() {
            return Err(errors::closed());
        }
        Ok(())
    }

    /// Close the connections and stop the watcher. Idempotent; needs no GIL.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(w) = self.watcher.lock().take() {
            let _ = w.close();
        }
        self.writer.close();
        self.readers.close();
    }

    /// The shared update watcher (one poll thread per engine).
    pub fn shared_watcher(&self) -> PyResult<Arc<SharedUpdateWatcher>> {
        self.check_open()?;
        let mut guard = self.watcher.lock();
        if let Some(w) = guard.as_ref() {
            return Ok(w.clone());
        }
        let w = Arc::new(SharedUpdateWatcher::new_with_config(
            PathBuf::from(&self.path),
            self.watcher_config.clone(),
        ));
        *guard = Some(w.clone());
        Ok(w)
    }

    /// A slot number and a unique id for a new prepared Statement.
    pub fn new_statement_slot(&self) -> (usize, u64) {
        let slot = self
            .free_slots
            .lock()
            .pop()
            .unwrap_or_else(|| self.next_slot.fetch_add(1, Ordering::Relaxed));
        (slot, self.next_stmt_id.fetch_add(1, Ordering::Relaxed))
    }

    /// A dropped Statement's slot can be reused.
    pub fn free_statement_slot(&self, slot: usize) {
        self.free_slots.lock().push(slot);
    }
}

impl Drop for DbInner {
    fn drop(&mut self) {
        self.close();
    }
}
