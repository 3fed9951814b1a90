//! The engine of one database file: the writer slot, the reader pool, the
//! update watcher and the registry of user-defined functions, plus the
//! bookkeeping of prepared-statement slots. There is one engine per file
//! per process (see `open`): every native `Database` object opened on the
//! file is a handle on it. Python objects (`Database`, `Transaction`...)
//! hold it through an `Arc`.

use crate::conn::Conn;
use crate::errors::{self, OperationalError, ProgrammingError};
use crate::functions::Registry;
use crate::watcher::{self, FileWatch};
use alkdev_storage_core::pool::{PoolError, ReaderPool, Waiter, WriterSlot};
use alkdev_storage_core::registry::{self, FileId, Shared};
use honker_core::WatcherConfig;
use parking_lot::Mutex;
use pyo3::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

    #[inline]
    fn ident(&self) -> u64 {
        unsafe { pyo3::ffi::PyThread_get_thread_ident() as u64 }
    }
}

/// The options an engine is created with (they hold for all its handles).
#[derive(Clone, Debug)]
pub struct Options {
    pub max_readers: usize,
    pub watcher: WatcherConfig,
    /// Bound of every wait for a connection: the writer slot and the reader
    /// pool inside this process, and SQLite's busy wait between processes.
    pub timeout: Duration,
}

pub const DEFAULT_MAX_READERS: usize = 8;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Options {
    fn default() -> Self {
        Options {
            max_readers: DEFAULT_MAX_READERS,
            watcher: WatcherConfig::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The options an open asked for explicitly (None: not given).
#[derive(Default)]
pub struct Requested {
    pub max_readers: Option<usize>,
    pub watcher: Option<WatcherConfig>,
    pub timeout: Option<Duration>,
}

impl Requested {
    fn resolve(&self) -> Options {
        let d = Options::default();
        Options {
            max_readers: self.max_readers.unwrap_or(d.max_readers),
            watcher: self.watcher.clone().unwrap_or(d.watcher),
            timeout: self.timeout.unwrap_or(d.timeout),
        }
    }

    /// The first option given with another value than `o`'s, as
    /// (name, asked, in force).
    fn conflict(&self, o: &Options) -> Option<(&'static str, String, String)> {
        if let Some(m) = self.max_readers.filter(|m| *m != o.max_readers) {
            return Some(("max_readers", m.to_string(), o.max_readers.to_string()));
        }
        if let Some(w) = self.watcher.as_ref() {
            if w.poll_interval != o.watcher.poll_interval {
                let ms = |d: Duration| format!("{}", d.as_secs_f64() * 1000.0);
                return Some((
                    "watcher_poll_interval_ms",
                    ms(w.poll_interval),
                    ms(o.watcher.poll_interval),
                ));
            }
        }
        if let Some(t) = self.timeout.filter(|t| *t != o.timeout) {
            return Some((
                "timeout",
                t.as_secs_f64().to_string(),
                o.timeout.as_secs_f64().to_string(),
            ));
        }
        None
    }
}

/// Why an engine could not be opened (turned into a Python error with the
/// GIL held).
pub enum OpenError {
    Conflict(&'static str, String, String),
    Sqlite(honker_core::Error),
}

static ENGINES: registry::Registry<DbInner> = registry::Registry::new();

/// A handle on the engine of `path`: the one already open in this process
/// (when the options given match its own), else a new one. The GIL is
/// released while the file opens.
pub fn open(py: Python<'_>, path: String, req: Requested) -> PyResult<Arc<DbInner>> {
    let key = registry::engine_key(&path);
    let r = py.detach(|| {
        ENGINES.open(
            &key,
            |e: &DbInner| match req.conflict(&e.options) {
                Some((name, asked, in_force)) => Err(OpenError::Conflict(name, asked, in_force)),
                None => Ok(()),
            },
            || {
                let options = req.resolve();
                let writer =
                    Conn::open_writer(&path, options.timeout).map_err(OpenError::Sqlite)?;
                Ok(DbInner::new(path.clone(), &key, writer, options))
            },
        )
    });
    match r {
        Ok((engine, _)) => Ok(engine),
        Err(OpenError::Conflict(name, asked, in_force)) => {
            Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{name}={asked} conflicts with {name}={in_force} of the Database already open \
                 for {path:?} in this process (one engine per file per process): pass the same \
                 value, or leave {name} out"
            )))
        }
        Err(OpenError::Sqlite(e)) => {
            let err = errors::core_error(py, &e);
            errors::add_note(py, &err, format!("while opening database {path:?}"));
            Err(err)
        }
    }
}

/// A handle was closed (`close`: true) or dropped. Closes the engine when
/// it was its last handle and `close` is true; a dropped last handle leaves
/// the engine to close when nothing uses it any more.
pub fn release(py: Python<'_>, engine: &Arc<DbInner>, close: bool) {
    if ENGINES.release(&engine.key, engine, close) {
        let e = engine.clone();
        py.detach(move || e.close());
    }
}

/// As [`release`] without the GIL (from a destructor).
pub fn release_dropped(engine: &Arc<DbInner>) {
    ENGINES.release(&engine.key, engine, false);
}

/// The name of the Python thread with `ident`, looked up only to build an
/// error message.
fn thread_name(py: Python<'_>, ident: u64) -> String {
    let found = (|| -> PyResult<Option<String>> {
        for t in py
            .import("threading")?
            .call_method0("enumerate")?
            .try_iter()?
        {
            let t = t?;
            if t.getattr("ident")?.extract::<Option<u64>>()? == Some(ident) {
                return Ok(Some(t.getattr("name")?.extract()?));
            }
        }
        Ok(None)
    })();
    match found {
        Ok(Some(name)) => format!("thread '{name}' (ident {ident})"),
        _ => format!("a thread that is gone or not a Python thread (ident {ident})"),
    }
}

pub struct DbInner {
    pub id: u64,
    pub path: String,
    /// Registry key (the resolved path).
    key: String,
    file_id: Option<FileId>,
    handles: AtomicUsize,
    pub options: Options,
    writer: WriterSlot<Conn>,
    readers: ReaderPool<Conn>,
    closed: AtomicBool,
    free_slots: Mutex<Vec<usize>>,
    next_slot: AtomicUsize,
    next_stmt_id: AtomicU64,
    watcher: Mutex<Option<Arc<FileWatch>>>,
    pub funcs: Arc<Registry>,
}

impl Shared for DbInner {
    fn file_id(&self) -> Option<FileId> {
        self.file_id
    }
    fn is_closed(&self) -> bool {
        DbInner::is_closed(self)
    }
    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }
    fn handles(&self) -> &AtomicUsize {
        &self.handles
    }
}

impl DbInner {
    /// Wrap an open writer; readers open lazily, up to `max_readers`.
    fn new(path: String, key: &str, writer: Conn, options: Options) -> DbInner {
        DbInner {
            id: NEXT_DB_ID.fetch_add(1, Ordering::Relaxed),
            path,
            key: key.to_string(),
            file_id: registry::file_id(Path::new(key)),
            handles: AtomicUsize::new(0),
            writer: WriterSlot::new(writer),
            readers: ReaderPool::new(options.max_readers),
            options,
            closed: AtomicBool::new(false),
            free_slots: Mutex::new(Vec::new()),
            next_slot: AtomicUsize::new(0),
            next_stmt_id: AtomicU64::new(1),
            watcher: Mutex::new(None),
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
            PoolError::TimedOut { holder, waited } => {
                let msg = if holder != 0 {
                    format!(
                        "database is locked: waited {:.2} s for the writer of {:?}, held by {} \
                         (an open transaction or a long write). Keep transactions short, run this \
                         statement in that transaction, or open the database with a larger \
                         timeout (timeout=seconds)",
                        waited.as_secs_f64(),
                        self.path,
                        thread_name(py, holder),
                    )
                } else {
                    format!(
                        "waited {:.2} s for one of the {} reader connections of {:?}, all in use \
                         by other threads (open snapshots or iterators). Close them sooner, or \
                         open the database with a larger max_readers or timeout",
                        waited.as_secs_f64(),
                        self.options.max_readers,
                        self.path,
                    )
                };
                errors::with_code(py, OperationalError::new_err(msg), 5)
            }
            PoolError::Interrupted(e) => e,
            PoolError::Open(e) => open(e),
        }
    }

    /// Take the writer (waiting, GIL released, while another thread has it).
    #[inline]
    pub fn acquire_writer(&self, py: Python<'_>) -> PyResult<Conn> {
        match self.writer.acquire(&PyWait(py), Some(self.options.timeout)) {
            Ok(mut c) => {
                self.funcs.apply(&mut c);
                Ok(c)
            }
            Err(e) => Err(self.pool_error(py, e, |never| match never {})),
        }
    }

    /// The writer if it is free now (None: held by a thread).
    pub fn try_acquire_writer(&self, py: Python<'_>) -> PyResult<Option<Conn>> {
        match self.writer.try_acquire(&PyWait(py)) {
            Ok(Some(mut c)) => {
                self.funcs.apply(&mut c);
                Ok(Some(c))
            }
            Ok(None) => Ok(None),
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
        let (path, timeout) = (&self.path, self.options.timeout);
        match self.readers.acquire(&PyWait(py), Some(timeout), || {
            Conn::open_reader(path, timeout)
        }) {
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

    /// Open handles (native Database objects) on this engine.
    pub fn handle_count(&self) -> usize {
        self.handles.load(Ordering::Acquire)
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
            watcher::unwatch(&w);
        }
        self.writer.close();
        self.readers.close();
    }

    /// The watch of this file by the process-wide update watcher (created
    /// on first use; see `crate::watcher`). Call without the GIL: the
    /// first call opens the watcher's connection.
    pub fn file_watch(&self) -> Result<Arc<FileWatch>, String> {
        if self.is_closed() {
            return Err(String::new());
        }
        let mut guard = self.watcher.lock();
        if let Some(w) = guard.as_ref() {
            return Ok(w.clone());
        }
        let identity = self.file_id.map(|id| (self.key.clone(), id));
        let w = watcher::watch(
            &self.path,
            &self.path,
            identity,
            self.options.watcher.poll_interval,
        )?;
        if self.is_closed() {
            watcher::unwatch(&w);
            return Err(String::new());
        }
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
