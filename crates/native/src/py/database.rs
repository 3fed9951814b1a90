//! `Database`: a handle on the engine of one database file, with the
//! statement methods that run outside any session (routed by
//! `crate::route`) and the factories of sessions.

use super::exec_result::{produced, ExecResult};
use super::row_iterator::RowIterator;
use super::snapshot::Snapshot;
use super::statement::{statement_from, target, Statement};
use super::transaction::Transaction;
use super::update_subscription::{self, UpdateSubscription};
use crate::engine::{self, DbInner, Requested};
use crate::errors;
use crate::exec::Out;
use crate::route::{self, Place, Target};
use crate::session::{Kind, Session};
use honker_core::WatcherConfig;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An open honker database: one writer slot and a bounded reader pool.
///
/// Safe to share between threads. Reads outside a transaction run on a
/// reader; writes outside a transaction run on the writer in their own
/// short `BEGIN IMMEDIATE` transaction.
///
/// Every `Database` object opened on one file in this process is a handle
/// on the same engine (writer slot, reader pool, watcher, SQL functions):
/// each handle has its own `closed` flag, and the engine closes when its
/// last handle closes.
#[pyclass(frozen, subclass, module = "alkdev_storage._native")]
pub struct Database {
    inner: Arc<DbInner>,
    closed: AtomicBool,
}

impl Drop for Database {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            engine::release_dropped(&self.inner);
        }
    }
}

/// The path argument: a str, bytes (decoded as `os.fsdecode` does) or an
/// `os.PathLike` of either; it must be valid UTF-8 (SQLite's file names are).
fn path_arg(path: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = path.py();
    let p = py
        .import(pyo3::intern!(py, "os"))?
        .call_method1(pyo3::intern!(py, "fspath"), (path,))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "database path must be a str, bytes or os.PathLike, not {}",
                path.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
    let invalid = || {
        PyValueError::new_err(format!(
            "database path must be valid UTF-8, got {}",
            p.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    };
    if let Ok(b) = p.cast::<PyBytes>() {
        return std::str::from_utf8(b.as_bytes())
            .map(str::to_string)
            .map_err(|_| invalid());
    }
    let s = p.cast::<PyString>()?;
    s.to_str().map(str::to_string).map_err(|_| invalid())
}

fn validate_path(path: &str) -> PyResult<()> {
    if path.trim().is_empty() {
        return Err(PyValueError::new_err("database path must not be empty"));
    }
    let lower = path.to_ascii_lowercase();
    if path == ":memory:"
        || lower.starts_with("file::memory:")
        || (lower.starts_with("file:") && lower.contains("mode=memory"))
    {
        return Err(PyValueError::new_err(format!(
            "in-memory databases are not supported ({path:?}): each reader connection would see a \
             different database; use a file (a temporary file in tests)"
        )));
    }
    Ok(())
}

impl Database {
    /// The engine, if this handle and the engine are open.
    #[inline]
    fn db(&self) -> PyResult<&Arc<DbInner>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::closed());
        }
        self.inner.check_open()?;
        Ok(&self.inner)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.inner.is_closed()
    }
}

#[pymethods]
impl Database {
    #[new]
    #[pyo3(signature = (path, *, max_readers=None, watcher_poll_interval_ms=None, timeout=None))]
    fn new(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        max_readers: Option<i64>,
        watcher_poll_interval_ms: Option<f64>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let path = path_arg(path)?;
        validate_path(&path)?;
        let mut req = Requested::default();
        if let Some(m) = max_readers {
            if m < 1 {
                return Err(PyValueError::new_err(format!(
                    "max_readers must be at least 1, got {m}"
                )));
            }
            req.max_readers = Some(m as usize);
        }
        if let Some(ms) = watcher_poll_interval_ms {
            if !(ms.is_finite() && ms > 0.0) {
                return Err(PyValueError::new_err(format!(
                    "watcher_poll_interval_ms must be a positive number, got {ms}"
                )));
            }
            req.watcher = Some(
                WatcherConfig::default()
                    .with_poll_interval(Duration::from_secs_f64(ms / 1000.0))
                    .map_err(PyValueError::new_err)?,
            );
        }
        if let Some(t) = timeout {
            if !(t.is_finite() && t >= 0.0) {
                return Err(PyValueError::new_err(format!(
                    "timeout must be a number of seconds >= 0, got {t}"
                )));
            }
            req.timeout = Some(Duration::from_secs_f64(t));
        }
        Ok(Database {
            inner: engine::open(py, path, req)?,
            closed: AtomicBool::new(false),
        })
    }

    /// Path of the database file.
    #[getter]
    fn path(&self) -> &str {
        &self.inner.path
    }

    #[getter]
    fn max_readers(&self) -> usize {
        self.inner.max_readers()
    }

    /// Reader connections currently open (they open lazily).
    #[getter]
    fn open_readers(&self) -> usize {
        self.inner.open_readers()
    }

    /// True once this handle (or the engine, by its last handle) closed.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
    }

    /// The wait bound in seconds (writer slot, reader pool, SQLite busy wait).
    #[getter]
    fn timeout(&self) -> f64 {
        self.inner.options.timeout.as_secs_f64()
    }

    /// Open handles (Database objects) on this file's engine in this process.
    #[getter]
    fn shared_handles(&self) -> usize {
        self.inner.handle_count()
    }

    /// Compile `sql` into a reusable Statement. Invalid SQL raises here,
    /// with SQLite's message.
    fn prepare(&self, py: Python<'_>, sql: &str) -> PyResult<Statement> {
        let db = self.db()?.clone();
        let mut conn = db.acquire_reader(py)?;
        conn.fresh_read(); // see the latest schema
        match conn.prepare_classified(sql, false) {
            Ok(c) => {
                let r = statement_from(py, &db, &mut conn, c, sql);
                db.release_reader(conn);
                r
            }
            Err(e) => {
                // An object only the writer sees (a TEMP table, an attached
                // database): try the writer, else report the reader's error.
                // Other errors (bad SQL) never wait for the writer slot.
                db.release_reader(conn);
                if !(e.msg.starts_with("no such") || e.msg.starts_with("unknown database")) {
                    return Err(e.into_py(py));
                }
                let err = e.into_py(py);
                let Ok(mut w) = db.acquire_writer(py) else {
                    return Err(err);
                };
                let r = match w.prepare_classified(sql, true) {
                    Ok(c) => statement_from(py, &db, &mut w, c, sql),
                    Err(_) => Err(err),
                };
                db.release_writer(w);
                r
            }
        }
    }

    /// Run one statement. Writes run on the writer in their own transaction;
    /// returns ExecResult(changes, lastrowid).
    #[pyo3(signature = (stmt, params=None))]
    fn execute(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db()?;
        let t = target(stmt, db)?;
        produced(py, route::execute(py, db, &t, params)?)
    }

    /// Run one statement for every parameter set, in one transaction: all
    /// rows or none.
    fn executemany(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        seq_of_params: &Bound<'_, PyAny>,
    ) -> PyResult<ExecResult> {
        let db = self.db()?;
        let t = target(stmt, db)?;
        route::executemany(py, db, &t, seq_of_params).map(ExecResult::from_parts)
    }

    /// First row as a tuple, or None.
    #[pyo3(signature = (stmt, params=None))]
    fn fetchone(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db()?;
        let t = target(stmt, db)?;
        produced(py, route::read(py, db, &t, params, Out::One)?)
    }

    /// All rows as a list of tuples.
    #[pyo3(signature = (stmt, params=None))]
    fn fetchall(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db()?;
        let t = target(stmt, db)?;
        produced(py, route::read(py, db, &t, params, Out::All)?)
    }

    /// honker-compatible: all rows as a list of dicts keyed by column name.
    #[pyo3(signature = (sql, params=None))]
    fn query(
        &self,
        py: Python<'_>,
        sql: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db()?;
        let t = target(sql, db)?;
        produced(py, route::read(py, db, &t, params, Out::Dicts)?)
    }

    /// Stream rows one at a time (bounded memory) from a reader.
    #[pyo3(signature = (stmt, params=None))]
    fn iterate(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db()?;
        let t = target(stmt, db)?;
        let on_reader = match &t {
            Target::Stmt(s) => match route::place(&s.info) {
                Place::Reader => true,
                Place::Refused => return Err(route::txn_control_error()),
                Place::Writer | Place::WriterImmediate => false,
            },
            Target::Sql(_) => true, // classified once compiled on the reader
        };
        if on_reader {
            let sess = Arc::new(Session::new(db.clone(), Kind::Stream));
            sess.begin(py)?;
            if let Some(it) = RowIterator::start(py, sess, &t, params, true)? {
                return Ok(Py::new(py, it)?.into_any());
            }
        }
        // A writing statement (INSERT ... RETURNING) runs on the writer and
        // its rows are returned once it has run.
        let rows = produced(py, route::write(py, db, &t, params, Out::All)?)?;
        Ok(rows.bind(py).try_iter()?.into_any().unbind())
    }

    /// Run a script of several statements (no parameters) on the writer,
    /// atomically: the whole script is one BEGIN IMMEDIATE transaction, so a
    /// failing statement leaves nothing written. Transaction control inside
    /// the script is refused (and so is VACUUM, which cannot run inside a
    /// transaction: use `db.execute("VACUUM")`).
    fn executescript(&self, py: Python<'_>, sql: &str) -> PyResult<()> {
        route::in_writer_tx(py, self.db()?, |c| c.exec_script(py, sql))
    }

    /// A write transaction (honker-compatible): `with db.transaction() as tx:`
    /// takes the writer slot with BEGIN IMMEDIATE, commits on success and
    /// rolls back on an exception.
    fn transaction(&self) -> PyResult<Transaction> {
        Ok(Transaction {
            sess: Arc::new(Session::new(self.db()?.clone(), Kind::Write)),
        })
    }

    /// A write transaction that has already begun (for explicit
    /// commit()/rollback() use, e.g. by the DB-API driver).
    fn begin(&self, py: Python<'_>) -> PyResult<Transaction> {
        let sess = Arc::new(Session::new(self.db()?.clone(), Kind::Write));
        sess.begin(py)?;
        Ok(Transaction { sess })
    }

    /// A write transaction already begun if that needs no wait (the writer
    /// slot is free and no other process holds the file's write lock),
    /// else None: never waits (for async code, docs/0020).
    fn try_begin(&self, py: Python<'_>) -> PyResult<Option<Transaction>> {
        let sess = Arc::new(Session::new(self.db()?.clone(), Kind::Write));
        Ok(if sess.try_begin(py)? {
            Some(Transaction { sess })
        } else {
            None
        })
    }

    /// A consistent read snapshot on a reader: `with db.read() as snap:`.
    #[pyo3(name = "read")]
    fn read_snapshot(&self) -> PyResult<Snapshot> {
        Ok(Snapshot {
            sess: Arc::new(Session::new(self.db()?.clone(), Kind::Snapshot)),
        })
    }

    /// Create honker's tables (idempotent).
    fn bootstrap_honker_schema(&self, py: Python<'_>) -> PyResult<()> {
        route::in_writer_tx(py, self.db()?, |c| {
            honker_core::bootstrap_honker_schema(&c.conn).map_err(|e| errors::core_error(py, &e))
        })
    }

    /// Register a Python function as an SQL function on every connection of
    /// this Database (the writer and each reader, from the next statement
    /// on). `narg` is its number of arguments (-1: any). `deterministic`
    /// lets SQLite use it in indexes and constant-fold it. Arguments arrive
    /// as None/int/float/str/bytes; return one of those (or bool). An
    /// exception in the function fails the statement with OperationalError.
    #[pyo3(signature = (name, narg, func, *, deterministic=false))]
    fn create_function(
        &self,
        name: &Bound<'_, PyAny>,
        narg: i32,
        func: &Bound<'_, PyAny>,
        deterministic: bool,
    ) -> PyResult<()> {
        let db = self.db()?;
        let name: String = name.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "function name must be a str, not '{}'",
                name.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        if name.is_empty() || name.len() > 255 || name.contains('\0') {
            return Err(PyValueError::new_err(format!(
                "invalid function name {name:?}: 1 to 255 bytes, no NUL"
            )));
        }
        if !(-1..=127).contains(&narg) {
            return Err(PyValueError::new_err(format!(
                "narg must be between -1 (any) and 127, got {narg}"
            )));
        }
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "func must be callable, not '{}'",
                func.get_type().name()?
            )));
        }
        db.funcs.add(crate::functions::FuncDef {
            name,
            nargs: narg,
            func: func.clone().unbind(),
            deterministic,
        });
        Ok(())
    }

    /// Subscribe to commit ticks on this file (from any process), through
    /// the one shared update watcher of this Database.
    fn subscribe_updates(&self, py: Python<'_>) -> PyResult<UpdateSubscription> {
        update_subscription::subscribe(py, self.db()?)
    }

    /// Release every connection and the watcher thread. Idempotent.
    fn close(&self, py: Python<'_>) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            engine::release(py, &self.inner, true);
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<Database {:?}{}>",
            self.inner.path,
            if self.is_closed() { " closed" } else { "" }
        )
    }
}
