//! `Database`, `Statement`, `ExecResult`, `Transaction`, `Savepoint`,
//! `Snapshot` and `RowIterator`: the native session exposed to Python.

use crate::conn::{self, Conn, Out, Produced, StmtInfo, StmtShared};
use crate::errors::{self, InterfaceError, ProgrammingError};
use crate::pool::{ReaderPool, WriterSlot};
use crate::session::{Kind, Session};
use honker_core::{SharedUpdateWatcher, WatcherConfig};
use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use rusqlite::ffi;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

static NEXT_DB_ID: AtomicU64 = AtomicU64::new(1);

pub struct DbInner {
    pub id: u64,
    pub path: String,
    pub writer: WriterSlot,
    pub readers: ReaderPool,
    pub closed: AtomicBool,
    free_slots: Mutex<Vec<usize>>,
    next_slot: AtomicUsize,
    next_stmt_id: AtomicU64,
    pub watcher: Mutex<Option<Arc<SharedUpdateWatcher>>>,
    pub watcher_config: WatcherConfig,
    pub funcs: Arc<crate::functions::Registry>,
}

impl DbInner {
    pub fn give_back(&self, writer: bool, conn: Conn) {
        if writer {
            self.writer.release(conn);
        } else {
            self.readers.release(conn);
        }
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(w) = self.watcher.lock().take() {
            let _ = w.close();
        }
        self.writer.close();
        self.readers.close();
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::closed());
        }
        Ok(())
    }

    /// The shared update watcher (one poll thread per Database).
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
}

impl Drop for DbInner {
    fn drop(&mut self) {
        self.close();
    }
}

// ---------------------------------------------------------------------
// Statement and ExecResult
// ---------------------------------------------------------------------

/// A prepared statement: compiled once per connection and reused.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct Statement {
    pub shared: StmtShared,
    /// Set when a read statement turned out to write (its SQL functions
    /// write, e.g. `SELECT notify(...)`): it then runs on the writer.
    needs_writer: AtomicBool,
    db: Arc<DbInner>,
}

impl Drop for Statement {
    fn drop(&mut self) {
        self.db.free_slots.lock().push(self.shared.slot);
    }
}

#[pymethods]
impl Statement {
    /// The SQL text.
    #[getter]
    fn sql(&self) -> &str {
        &self.shared.sql
    }

    /// Result column names (empty for statements that return no rows).
    #[getter]
    fn columns(&self, py: Python<'_>) -> Py<PyTuple> {
        self.shared.columns.clone_ref(py)
    }

    /// Number of parameters the statement takes.
    #[getter]
    fn param_count(&self) -> i32 {
        self.shared.param_count
    }

    /// Parameter names without their prefix (None for positional ones).
    #[getter]
    fn param_names(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        let items: Vec<Option<Py<PyString>>> = self
            .shared
            .param_names
            .iter()
            .map(|n| n.as_ref().map(|s| s.clone_ref(py)))
            .collect();
        Ok(PyTuple::new(py, items)?.unbind())
    }

    /// True when the statement does not write (it runs on a reader).
    #[getter]
    fn readonly(&self) -> bool {
        self.shared.info.readonly && !self.needs_writer.load(Ordering::Relaxed)
    }

    fn __repr__(&self) -> String {
        format!("<Statement {:?}>", self.shared.sql)
    }
}

/// Result of a write: rows changed and the connection's last insert rowid.
#[pyclass(frozen, module = "alkdev_storage._native", eq)]
#[derive(PartialEq, Clone)]
pub struct ExecResult {
    /// Rows inserted, updated or deleted by the statement(s) (0 for others).
    #[pyo3(get)]
    changes: i64,
    /// `sqlite3_last_insert_rowid()` after the statement, read natively.
    #[pyo3(get)]
    lastrowid: i64,
}

#[pymethods]
impl ExecResult {
    #[new]
    fn new(changes: i64, lastrowid: i64) -> Self {
        ExecResult { changes, lastrowid }
    }

    fn __repr__(&self) -> String {
        format!(
            "ExecResult(changes={}, lastrowid={})",
            self.changes, self.lastrowid
        )
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let t = PyTuple::new(py, [self.changes, self.lastrowid])?;
        Ok(t.try_iter()?.into_any().unbind())
    }
}

/// Build a Statement from `stmt` (just prepared on `conn`) and keep the
/// handle in `conn`'s statement slots, so its first run there is free.
fn statement_from(
    py: Python<'_>,
    db: &Arc<DbInner>,
    conn: &mut Conn,
    stmt: *mut ffi::sqlite3_stmt,
    sql: &str,
) -> PyResult<Statement> {
    let info = Conn::info_of(stmt, sql);
    let n = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
    let param_names = (1..=n)
        .map(|i| conn::param_name(py, stmt, i).map(|s| s.unbind()))
        .collect();
    let columns = match PyTuple::new(py, conn::column_names(py, stmt)) {
        Ok(t) => t.unbind(),
        Err(e) => {
            unsafe { ffi::sqlite3_finalize(stmt) };
            return Err(e);
        }
    };
    let slot = db
        .free_slots
        .lock()
        .pop()
        .unwrap_or_else(|| db.next_slot.fetch_add(1, Ordering::Relaxed));
    let id = db.next_stmt_id.fetch_add(1, Ordering::Relaxed);
    conn.adopt(slot, id, stmt);
    Ok(Statement {
        shared: StmtShared {
            db_id: db.id,
            id,
            slot,
            sql: sql.to_string(),
            info,
            param_count: n,
            param_names,
            columns,
        },
        needs_writer: AtomicBool::new(false),
        db: db.clone(),
    })
}

fn produced(py: Python<'_>, p: Produced) -> PyResult<Py<PyAny>> {
    match p {
        Produced::Obj(o) => Ok(o),
        Produced::Exec { changes, lastrowid } => {
            Ok(Py::new(py, ExecResult { changes, lastrowid })?.into_any())
        }
    }
}

// ---------------------------------------------------------------------
// Targets: a Statement or SQL text
// ---------------------------------------------------------------------

pub enum Target<'a> {
    Stmt(&'a Statement),
    Sql(&'a str),
}

fn target<'a>(obj: &'a Bound<'_, PyAny>, db: &DbInner) -> PyResult<Target<'a>> {
    if let Ok(s) = obj.cast::<Statement>() {
        let st: &'a Statement = s.get();
        if st.shared.db_id != db.id {
            return Err(ProgrammingError::new_err(
                "this Statement was prepared by another Database",
            ));
        }
        return Ok(Target::Stmt(st));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Target::Sql(s.to_str()?));
    }
    Err(PyTypeError::new_err(format!(
        "expected a Statement or SQL str, not '{}'",
        obj.get_type().name()?
    )))
}

fn txn_control_error() -> PyErr {
    ProgrammingError::new_err(
        "transaction control statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, END) \
         are not run through execute: use db.transaction(), tx.savepoint() or db.read()",
    )
}

struct Prepared<'a> {
    stmt: *mut ffi::sqlite3_stmt,
    names: Option<&'a [Option<Py<PyString>>]>,
    info: StmtInfo,
}

fn prepare_on<'a>(py: Python<'_>, conn: &mut Conn, t: &Target<'a>) -> PyResult<Prepared<'a>> {
    match t {
        Target::Stmt(s) => {
            let stmt = conn.stmt_for(&s.shared).map_err(|e| e.into_py(py))?;
            Ok(Prepared {
                stmt,
                names: Some(&s.shared.param_names),
                info: s.shared.info,
            })
        }
        Target::Sql(sql) => {
            let (stmt, info) = conn.stmt_for_sql(sql).map_err(|e| e.into_py(py))?;
            Ok(Prepared {
                stmt,
                names: None,
                info,
            })
        }
    }
}

/// Run one target on a held connection (inside a session).
fn run_on(
    py: Python<'_>,
    conn: &mut Conn,
    t: &Target<'_>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Produced> {
    let p = prepare_on(py, conn, t)?;
    if p.info.txn_control {
        return Err(txn_control_error());
    }
    unsafe { conn::run(py, conn.handle(), p.stmt, params, p.names, out) }
}

fn is_query_only_violation(py: Python<'_>, e: &PyErr) -> bool {
    // Directly (SQLITE_READONLY), or through an SQL function whose own
    // INSERT failed (reported as SQLITE_ERROR with SQLite's message).
    let v = e.value(py);
    let code = v
        .getattr("sqlite_errorcode")
        .and_then(|c| c.extract::<i32>())
        .unwrap_or(0);
    code & 0xff == ffi::SQLITE_READONLY
        || (code == ffi::SQLITE_ERROR
            && v.str()
                .map(|s| {
                    s.to_string_lossy()
                        .contains("attempt to write a readonly database")
                })
                .unwrap_or(false))
}

fn add_note(py: Python<'_>, e: &PyErr, note: String) {
    let _ = e.value(py).call_method1("add_note", (note,));
}

// ---------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------

/// An open honker database: one writer slot and a bounded reader pool.
///
/// Safe to share between threads. Reads outside a transaction run on a
/// reader; writes outside a transaction run on the writer in their own
/// short `BEGIN IMMEDIATE` transaction.
#[pyclass(frozen, subclass, module = "alkdev_storage._native")]
pub struct Database {
    pub inner: Arc<DbInner>,
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
    fn db(&self) -> PyResult<&Arc<DbInner>> {
        self.inner.check_open()?;
        Ok(&self.inner)
    }

    /// Run on the writer in its own BEGIN IMMEDIATE transaction.
    fn write(
        &self,
        py: Python<'_>,
        t: &Target<'_>,
        params: Option<&Bound<'_, PyAny>>,
        out: Out,
    ) -> PyResult<Produced> {
        let db = self.db()?;
        let mut conn = db.writer.acquire(py)?;
        let r = (|| {
            let p = prepare_on(py, &mut conn, t)?;
            if p.info.txn_control {
                return Err(txn_control_error());
            }
            // A writing statement in autocommit takes its read snapshot and
            // the write lock in one step (SQLite retries both through the
            // busy handler), so it is its own short transaction already. A
            // read statement whose SQL functions write (SELECT notify(...))
            // would upgrade a read snapshot mid-statement and could fail with
            // SQLITE_BUSY_SNAPSHOT: it runs inside BEGIN IMMEDIATE.
            if p.info.no_wrap || !p.info.readonly {
                return unsafe { conn::run(py, conn.handle(), p.stmt, params, p.names, out) };
            }
            conn.begin_immediate(py)?;
            match unsafe { conn::run(py, conn.handle(), p.stmt, params, p.names, out) } {
                Ok(v) => {
                    conn.commit(py)?;
                    Ok(v)
                }
                Err(e) => Err(e),
            }
        })();
        conn.rollback(); // no-op after a successful commit
        db.writer.release(conn);
        r
    }

    /// Run a read on a reader (or on the writer when it turns out to write).
    fn read(
        &self,
        py: Python<'_>,
        t: &Target<'_>,
        params: Option<&Bound<'_, PyAny>>,
        out: Out,
    ) -> PyResult<Produced> {
        if let Target::Stmt(s) = t {
            if s.shared.info.txn_control {
                return Err(txn_control_error());
            }
            if !s.shared.info.readonly || s.needs_writer.load(Ordering::Relaxed) {
                return self.write(py, t, params, out);
            }
        }
        let db = self.db()?;
        let mut conn = db.readers.acquire(py)?;
        conn.fresh_read();
        let p = match prepare_on(py, &mut conn, t) {
            Ok(p) => p,
            Err(e) => {
                db.readers.release(conn);
                return Err(e);
            }
        };
        if p.info.txn_control {
            db.readers.release(conn);
            return Err(txn_control_error());
        }
        let to_writer = match t {
            Target::Sql(sql) => !p.info.readonly || conn.needs_writer.contains(*sql),
            Target::Stmt(_) => false,
        };
        if to_writer {
            db.readers.release(conn);
            return self.write(py, t, params, out);
        }
        let r = unsafe { conn::run(py, conn.handle(), p.stmt, params, p.names, out) };
        match r {
            Err(e) if is_query_only_violation(py, &e) => {
                // A read statement whose functions write: remember, and run
                // it on the writer. Nothing was written on the reader.
                match t {
                    Target::Sql(sql) => {
                        conn.needs_writer.insert((*sql).into());
                    }
                    Target::Stmt(s) => s.needs_writer.store(true, Ordering::Relaxed),
                }
                db.readers.release(conn);
                self.write(py, t, params, out)
            }
            other => {
                db.readers.release(conn);
                other
            }
        }
    }
}

#[pymethods]
impl Database {
    #[new]
    #[pyo3(signature = (path, *, max_readers=8, watcher_poll_interval_ms=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        max_readers: i64,
        watcher_poll_interval_ms: Option<f64>,
    ) -> PyResult<Self> {
        let path = path
            .to_str()
            .ok_or_else(|| PyValueError::new_err("database path must be valid UTF-8"))?
            .to_string();
        validate_path(&path)?;
        if max_readers < 1 {
            return Err(PyValueError::new_err(format!(
                "max_readers must be at least 1, got {max_readers}"
            )));
        }
        let mut watcher_config = WatcherConfig::default();
        if let Some(ms) = watcher_poll_interval_ms {
            if !(ms.is_finite() && ms > 0.0) {
                return Err(PyValueError::new_err(format!(
                    "watcher_poll_interval_ms must be a positive number, got {ms}"
                )));
            }
            watcher_config = watcher_config
                .with_poll_interval(Duration::from_secs_f64(ms / 1000.0))
                .map_err(PyValueError::new_err)?;
        }
        let p2 = path.clone();
        let writer = py.detach(move || Conn::open_writer(&p2)).map_err(|e| {
            let err = errors::core_error(py, &e);
            add_note(py, &err, format!("while opening database {path:?}"));
            err
        })?;
        let funcs = Arc::new(crate::functions::Registry::default());
        Ok(Database {
            inner: Arc::new(DbInner {
                id: NEXT_DB_ID.fetch_add(1, Ordering::Relaxed),
                path: path.clone(),
                writer: WriterSlot::new(writer, funcs.clone()),
                readers: ReaderPool::new(path, max_readers as usize, funcs.clone()),
                funcs,
                closed: AtomicBool::new(false),
                free_slots: Mutex::new(Vec::new()),
                next_slot: AtomicUsize::new(0),
                next_stmt_id: AtomicU64::new(1),
                watcher: Mutex::new(None),
                watcher_config,
            }),
        })
    }

    /// Path of the database file.
    #[getter]
    fn path(&self) -> &str {
        &self.inner.path
    }

    #[getter]
    fn max_readers(&self) -> usize {
        self.inner.readers.max()
    }

    /// Reader connections currently open (they open lazily).
    #[getter]
    fn open_readers(&self) -> usize {
        self.inner.readers.open_count()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Compile `sql` into a reusable Statement. Invalid SQL raises here,
    /// with SQLite's message.
    fn prepare(&self, py: Python<'_>, sql: &str) -> PyResult<Statement> {
        let db = self.db()?.clone();
        let mut conn = db.readers.acquire(py)?;
        conn.fresh_read(); // see the latest schema
        match conn.prepare_raw(sql) {
            Ok(stmt) => {
                let r = statement_from(py, &db, &mut conn, stmt, sql);
                db.readers.release(conn);
                r
            }
            Err(e) => {
                // An object only the writer sees (a TEMP table, an attached
                // database): try the writer, else report the reader's error.
                // Other errors (bad SQL) never wait for the writer slot.
                db.readers.release(conn);
                if !(e.msg.starts_with("no such") || e.msg.starts_with("unknown database")) {
                    return Err(e.into_py(py));
                }
                let err = e.into_py(py);
                let Ok(mut w) = db.writer.acquire(py) else {
                    return Err(err);
                };
                let r = match w.prepare_raw(sql) {
                    Ok(stmt) => statement_from(py, &db, &mut w, stmt, sql),
                    Err(_) => Err(err),
                };
                db.writer.release(w);
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
        let t = target(stmt, &self.inner)?;
        let r = match &t {
            Target::Stmt(s)
                if s.shared.info.readonly && !s.needs_writer.load(Ordering::Relaxed) =>
            {
                self.read(py, &t, params, Out::Exec)?
            }
            _ => self.write(py, &t, params, Out::Exec)?,
        };
        produced(py, r)
    }

    /// Run one statement for every parameter set, in one transaction: all
    /// rows or none.
    fn executemany(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        seq_of_params: &Bound<'_, PyAny>,
    ) -> PyResult<ExecResult> {
        let t = target(stmt, &self.inner)?;
        let db = self.db()?;
        let mut conn = db.writer.acquire(py)?;
        let r = (|| {
            conn.begin_immediate(py)?;
            let r = executemany_on(py, &mut conn, &t, seq_of_params)?;
            conn.commit(py)?;
            Ok(r)
        })();
        conn.rollback();
        db.writer.release(conn);
        r
    }

    /// First row as a tuple, or None.
    #[pyo3(signature = (stmt, params=None))]
    fn fetchone(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let t = target(stmt, &self.inner)?;
        produced(py, self.read(py, &t, params, Out::One)?)
    }

    /// All rows as a list of tuples.
    #[pyo3(signature = (stmt, params=None))]
    fn fetchall(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let t = target(stmt, &self.inner)?;
        produced(py, self.read(py, &t, params, Out::All)?)
    }

    /// honker-compatible: all rows as a list of dicts keyed by column name.
    #[pyo3(signature = (sql, params=None))]
    fn query(
        &self,
        py: Python<'_>,
        sql: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let t = target(sql, &self.inner)?;
        produced(py, self.read(py, &t, params, Out::Dicts)?)
    }

    /// Stream rows one at a time (bounded memory) from a reader.
    #[pyo3(signature = (stmt, params=None))]
    fn iterate(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let t = target(stmt, &self.inner)?;
        let readonly = match &t {
            Target::Stmt(s) => s.shared.info.readonly && !s.needs_writer.load(Ordering::Relaxed),
            Target::Sql(_) => true, // checked once prepared on the reader
        };
        if readonly {
            let sess = Arc::new(Session::new(self.db()?.clone(), Kind::Stream));
            sess.begin(py)?;
            if let Some(it) = RowIterator::start(py, sess, &t, params, true)? {
                return Ok(Py::new(py, it)?.into_any());
            }
        }
        // A writing statement (INSERT ... RETURNING) runs on the writer and
        // its rows are returned once it has run.
        let rows = produced(py, self.write(py, &t, params, Out::All)?)?;
        Ok(rows.bind(py).try_iter()?.into_any().unbind())
    }

    /// Run a script of several statements (no parameters) on the writer,
    /// atomically: the whole script is one BEGIN IMMEDIATE transaction, so a
    /// failing statement leaves nothing written. Transaction control inside
    /// the script is refused (and so is VACUUM, which cannot run inside a
    /// transaction: use `db.execute("VACUUM")`).
    fn executescript(&self, py: Python<'_>, sql: &str) -> PyResult<()> {
        let db = self.db()?;
        let mut conn = db.writer.acquire(py)?;
        let r = (|| {
            conn.begin_immediate(py)?;
            conn.exec_script(py, sql)?;
            conn.commit(py)
        })();
        conn.rollback();
        db.writer.release(conn);
        r
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

    /// A consistent read snapshot on a reader: `with db.read() as snap:`.
    #[pyo3(name = "read")]
    fn read_snapshot(&self) -> PyResult<Snapshot> {
        Ok(Snapshot {
            sess: Arc::new(Session::new(self.db()?.clone(), Kind::Snapshot)),
        })
    }

    /// Insert a notification on `channel` (honker's `notify()`), in its own
    /// transaction. `payload` is stored as JSON. Returns the notification id.
    fn notify(
        &self,
        py: Python<'_>,
        channel: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
    ) -> PyResult<i64> {
        let args = notify_args(py, channel, payload)?;
        let t = Target::Sql("SELECT notify(?1, ?2)");
        let r = self.write(py, &t, Some(args.bind(py).as_any()), Out::One)?;
        first_int(py, r)
    }

    /// Create honker's tables (idempotent).
    fn bootstrap_honker_schema(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.db()?;
        let mut conn = db.writer.acquire(py)?;
        let r = (|| {
            conn.begin_immediate(py)?;
            honker_core::bootstrap_honker_schema(&conn.conn)
                .map_err(|e| errors::core_error(py, &e))?;
            conn.commit(py)
        })();
        conn.rollback();
        db.writer.release(conn);
        r
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
    fn subscribe_updates(&self) -> PyResult<crate::watch::UpdateSubscription> {
        crate::watch::subscribe(self)
    }

    /// Release every connection and the watcher thread. Idempotent.
    fn close(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        py.detach(move || inner.close());
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
            if self.inner.closed.load(Ordering::Acquire) {
                " closed"
            } else {
                ""
            }
        )
    }
}

fn executemany_on(
    py: Python<'_>,
    conn: &mut Conn,
    t: &Target<'_>,
    seq: &Bound<'_, PyAny>,
) -> PyResult<ExecResult> {
    let p = prepare_on(py, conn, t)?;
    if p.info.txn_control {
        return Err(txn_control_error());
    }
    let mut changes = 0i64;
    let mut lastrowid = unsafe { ffi::sqlite3_last_insert_rowid(conn.handle()) };
    let iter = seq.try_iter().map_err(|_| {
        PyTypeError::new_err("executemany expects an iterable of parameter sequences or mappings")
    })?;
    for (i, params) in iter.enumerate() {
        let params = params?;
        if i % 4096 == 4095 && unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
            return Err(PyErr::fetch(py)); // Ctrl-C: the transaction rolls back
        }
        match unsafe {
            conn::run(
                py,
                conn.handle(),
                p.stmt,
                Some(&params),
                p.names,
                Out::ExecMany(i),
            )
        } {
            Ok(Produced::Exec {
                changes: c,
                lastrowid: l,
            }) => {
                changes += c;
                lastrowid = l;
            }
            Ok(_) => unreachable!(),
            Err(e) => {
                add_note(
                    py,
                    &e,
                    format!("in parameter set {i} of executemany; nothing was written"),
                );
                return Err(e);
            }
        }
    }
    Ok(ExecResult { changes, lastrowid })
}

fn notify_args(
    py: Python<'_>,
    channel: &Bound<'_, PyAny>,
    payload: &Bound<'_, PyAny>,
) -> PyResult<Py<PyTuple>> {
    let ch = channel.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "channel must be a str, not '{}'",
            channel
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if ch.to_str()?.is_empty() {
        return Err(PyValueError::new_err("channel must not be empty"));
    }
    let text = encode_json(py, payload)?;
    Ok(PyTuple::new(py, [ch.as_any(), &text])?.unbind())
}

static JSON_ENCODE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// Payload JSON text: compact and strict (no NaN/Infinity, which other
/// honker bindings cannot parse). Any failure is a TypeError, raised before
/// anything is written.
fn encode_json<'py>(py: Python<'py>, payload: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let encode = JSON_ENCODE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("allow_nan", false)?;
        kwargs.set_item("separators", (",", ":"))?;
        let encoder = py
            .import("json")?
            .getattr("JSONEncoder")?
            .call((), Some(&kwargs))?;
        Ok(encoder.getattr("encode")?.unbind())
    })?;
    encode.bind(py).call1((payload,)).map_err(|e| {
        let tname = payload
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let err = PyTypeError::new_err(format!(
            "payload of type {tname} cannot be encoded as JSON: {}",
            e.value(py)
        ));
        err.set_cause(py, Some(e));
        err
    })
}

fn first_int(py: Python<'_>, r: Produced) -> PyResult<i64> {
    match r {
        Produced::Obj(o) => o.bind(py).get_item(0)?.extract(),
        Produced::Exec { .. } => unreachable!(),
    }
}

// ---------------------------------------------------------------------
// What Transaction and Snapshot share: running on their session's connection
// ---------------------------------------------------------------------

fn sess_run(
    py: Python<'_>,
    sess: &Session,
    stmt: &Bound<'_, PyAny>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Py<PyAny>> {
    let t = target(stmt, &sess.db)?;
    produced(py, sess.with_conn(|c| run_on(py, c, &t, params, out))?)
}

fn sess_iterate(
    py: Python<'_>,
    sess: &Arc<Session>,
    stmt: &Bound<'_, PyAny>,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<RowIterator> {
    let t = target(stmt, &sess.db)?;
    Ok(RowIterator::start(py, sess.clone(), &t, params, false)?.expect("non-private iterator"))
}

/// Compile `sql` on the session's connection (sees its uncommitted schema).
fn sess_prepare(py: Python<'_>, sess: &Session, sql: &str) -> PyResult<Statement> {
    let db = sess.db.clone();
    sess.with_conn(|c| {
        let stmt = c.prepare_raw(sql).map_err(|e| e.into_py(py))?;
        statement_from(py, &db, c, stmt, sql)
    })
}

/// The `#[pymethods]` of a session-backed class (Transaction, Snapshot):
/// the statement methods they share, plus the class's own `$extra` items.
macro_rules! session_pymethods {
    ($ty:ident { $($extra:tt)* }) => {
        #[pymethods]
        impl $ty {
            /// True between begin and end.
            #[getter]
            fn active(&self) -> bool {
                self.sess.is_active()
            }

            /// Compile `sql` on this session's connection (it sees the schema
            /// the session changed). The Statement can be used anywhere on
            /// this Database afterwards.
            fn prepare(&self, py: Python<'_>, sql: &str) -> PyResult<Statement> {
                sess_prepare(py, &self.sess, sql)
            }

            #[pyo3(signature = (stmt, params=None))]
            fn execute(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                sess_run(py, &self.sess, stmt, params, Out::Exec)
            }

            #[pyo3(signature = (stmt, params=None))]
            fn fetchone(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                sess_run(py, &self.sess, stmt, params, Out::One)
            }

            #[pyo3(signature = (stmt, params=None))]
            fn fetchall(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                sess_run(py, &self.sess, stmt, params, Out::All)
            }

            /// honker-compatible: rows as dicts keyed by column name.
            #[pyo3(signature = (sql, params=None))]
            fn query(
                &self,
                py: Python<'_>,
                sql: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                sess_run(py, &self.sess, sql, params, Out::Dicts)
            }

            /// Stream rows one at a time on this session's connection.
            #[pyo3(signature = (stmt, params=None))]
            fn iterate(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<RowIterator> {
                sess_iterate(py, &self.sess, stmt, params)
            }

            $($extra)*
        }
    };
}

// ---------------------------------------------------------------------
// Transaction and Savepoint
// ---------------------------------------------------------------------

/// A write transaction on the writer slot (BEGIN IMMEDIATE).
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct Transaction {
    pub sess: Arc<Session>,
}

session_pymethods!(Transaction {
    fn __enter__<'a>(slf: PyRef<'a, Self>, py: Python<'a>) -> PyResult<PyRef<'a, Self>> {
        if !slf.sess.is_active() {
            slf.sess.begin(py)?;
        }
        Ok(slf)
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let raised = exc_type.is_some_and(|e| !e.is_none());
        self.sess.end(py, !raised, false)?;
        Ok(false)
    }

    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.sess.end(py, true, true)
    }

    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        self.sess.end(py, false, true)
    }

    fn executemany(
        &self,
        py: Python<'_>,
        stmt: &Bound<'_, PyAny>,
        seq_of_params: &Bound<'_, PyAny>,
    ) -> PyResult<ExecResult> {
        let t = target(stmt, &self.sess.db)?;
        // All-or-nothing inside the transaction too: a savepoint around it.
        self.sess.with_conn(|c| {
            c.exec_raw(py, "SAVEPOINT _alk_many")?;
            match executemany_on(py, c, &t, seq_of_params) {
                Ok(r) => {
                    c.exec_raw(py, "RELEASE _alk_many")?;
                    Ok(r)
                }
                Err(e) => {
                    let _ = c.exec_raw(py, "ROLLBACK TO _alk_many; RELEASE _alk_many");
                    Err(e)
                }
            }
        })
    }

    /// Run a script inside this transaction, all or nothing (a savepoint
    /// around it). Transaction control inside the script is refused.
    fn executescript(&self, py: Python<'_>, sql: &str) -> PyResult<()> {
        self.sess.with_conn(|c| {
            c.exec_raw(py, "SAVEPOINT _alk_script")?;
            match c.exec_script(py, sql) {
                Ok(()) => c.exec_raw(py, "RELEASE _alk_script"),
                Err(e) => {
                    let _ = c.exec_raw(py, "ROLLBACK TO _alk_script; RELEASE _alk_script");
                    Err(e)
                }
            }
        })
    }

    /// honker-compatible notify inside the transaction: delivered only if
    /// the transaction commits.
    fn notify(
        &self,
        py: Python<'_>,
        channel: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
    ) -> PyResult<i64> {
        let args = notify_args(py, channel, payload)?;
        let t = Target::Sql("SELECT notify(?1, ?2)");
        let r = self
            .sess
            .with_conn(|c| run_on(py, c, &t, Some(args.bind(py).as_any()), Out::One))?;
        first_int(py, r)
    }

    fn bootstrap_honker_schema(&self, py: Python<'_>) -> PyResult<()> {
        self.sess.with_conn(|c| {
            honker_core::bootstrap_honker_schema(&c.conn).map_err(|e| errors::core_error(py, &e))
        })
    }

    /// A nested savepoint: `with tx.savepoint():` (RELEASE on success,
    /// ROLLBACK TO on an exception).
    fn savepoint(&self) -> Savepoint {
        Savepoint {
            sess: self.sess.clone(),
            level: Mutex::new(None),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<Transaction {}>",
            if self.sess.is_active() {
                "active"
            } else {
                "inactive"
            }
        )
    }
});

#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct Savepoint {
    sess: Arc<Session>,
    level: Mutex<Option<(u32, u64)>>,
}

impl Savepoint {
    fn finish(&self, py: Python<'_>, rollback: bool) -> PyResult<()> {
        let (level, gen) = self
            .level
            .lock()
            .take()
            .ok_or_else(|| InterfaceError::new_err("this savepoint is not active"))?;
        if self.sess.gen() != gen {
            return Err(InterfaceError::new_err(
                "the transaction of this savepoint has ended",
            ));
        }
        if self.sess.depth() != level {
            *self.level.lock() = Some((level, gen));
            return Err(ProgrammingError::new_err(
                "savepoints must be released innermost first",
            ));
        }
        let name = format!("_alk_sp_{level}");
        let sql = if rollback {
            format!("ROLLBACK TO {name}; RELEASE {name}")
        } else {
            format!("RELEASE {name}")
        };
        let r = self.sess.with_conn(|c| c.exec_raw(py, &sql));
        self.sess.set_depth(level - 1);
        r
    }
}

#[pymethods]
impl Savepoint {
    fn __enter__<'a>(slf: PyRef<'a, Self>, py: Python<'a>) -> PyResult<PyRef<'a, Self>> {
        if slf.level.lock().is_some() {
            return Err(ProgrammingError::new_err(
                "this savepoint is already active",
            ));
        }
        let level = slf.sess.depth() + 1;
        let name = format!("_alk_sp_{level}");
        slf.sess
            .with_conn(|c| c.exec_raw(py, &format!("SAVEPOINT {name}")))?;
        slf.sess.push_savepoint();
        *slf.level.lock() = Some((level, slf.sess.gen()));
        Ok(slf)
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.level.lock().is_none() {
            return Ok(false); // already released or rolled back explicitly
        }
        let raised = exc_type.is_some_and(|e| !e.is_none());
        self.finish(py, raised)?;
        Ok(false)
    }

    /// Keep the savepoint's changes (RELEASE).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, false)
    }

    /// Undo the savepoint's changes (ROLLBACK TO, then RELEASE).
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, true)
    }

    #[getter]
    fn active(&self) -> bool {
        self.level.lock().is_some()
    }
}

// ---------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------

/// A consistent read snapshot on a reader (deferred BEGIN). Never blocks
/// the writer.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct Snapshot {
    sess: Arc<Session>,
}

session_pymethods!(Snapshot {
    fn __enter__<'a>(slf: PyRef<'a, Self>, py: Python<'a>) -> PyResult<PyRef<'a, Self>> {
        slf.sess.begin(py)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.sess.end(py, false, false)?;
        Ok(false)
    }

    /// End the snapshot early (idempotent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.sess.end(py, false, false)
    }

});

// ---------------------------------------------------------------------
// RowIterator
// ---------------------------------------------------------------------

/// Streams the rows of one statement, one tuple at a time.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct RowIterator {
    sess: Arc<Session>,
    id: u64,
    gen: u64,
    /// The iterator owns its session (Database.iterate): end it when done.
    private: bool,
    done: AtomicBool,
    /// Private copy of the parameters: bound text/blobs point into it.
    _params: Option<Py<PyAny>>,
}

impl RowIterator {
    fn start(
        py: Python<'_>,
        sess: Arc<Session>,
        t: &Target<'_>,
        params: Option<&Bound<'_, PyAny>>,
        private: bool,
    ) -> PyResult<Option<RowIterator>> {
        // Keep our own container of the parameter objects alive for as long
        // as the statement may be stepped.
        if let Some(p) = params {
            if p.is_instance_of::<PyString>()
                || p.is_instance_of::<pyo3::types::PyBytes>()
                || p.is_instance_of::<pyo3::types::PyByteArray>()
            {
                if private {
                    let _ = sess.end(py, false, false);
                }
                return Err(ProgrammingError::new_err(
                    "parameters must be a sequence or a mapping, not a str or bytes",
                ));
            }
        }
        let kept: Option<Bound<'_, PyAny>> = match params {
            None => None,
            Some(p) if p.is_none() => None,
            Some(p) if p.is_exact_instance_of::<PyTuple>() => Some(p.clone()),
            Some(p) if p.cast::<PyDict>().is_ok() || p.hasattr("keys")? => {
                Some(PyDict::from_sequence(&p.call_method0("items")?)?.into_any())
            }
            Some(p) => {
                Some(PyTuple::new(py, p.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.into_any())
            }
        };
        let (sql, names) = match t {
            Target::Stmt(s) => (s.shared.sql.as_str(), Some(&s.shared.param_names[..])),
            Target::Sql(sql) => (*sql, None),
        };
        if conn::is_txn_control(sql) {
            if private {
                let _ = sess.end(py, false, false);
            }
            return Err(txn_control_error());
        }
        let r = sess.with_conn(|c| {
            let stmt = c.prepare_raw(sql).map_err(|e| e.into_py(py))?;
            if private && unsafe { ffi::sqlite3_stmt_readonly(stmt) } == 0 {
                unsafe { ffi::sqlite3_finalize(stmt) };
                return Ok(None);
            }
            // `kept` is our private container: its items outlive the iterator.
            let mut keep = conn::Keep::default();
            if let Err(e) = unsafe { conn::bind_params(py, stmt, kept.as_ref(), names, &mut keep) }
            {
                unsafe { ffi::sqlite3_finalize(stmt) };
                return Err(e);
            }
            Ok(Some(stmt))
        });
        let stmt = match r {
            Ok(Some(s)) => s,
            Ok(None) => {
                let _ = sess.end(py, false, false);
                return Ok(None);
            }
            Err(e) => {
                if private {
                    let _ = sess.end(py, false, false);
                }
                return Err(e);
            }
        };
        let (id, gen) = sess.add_live(stmt);
        Ok(Some(RowIterator {
            sess,
            id,
            gen,
            private,
            done: AtomicBool::new(false),
            _params: kept.map(|k| k.unbind()),
        }))
    }

    fn finish(&self, py: Python<'_>) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        self.sess.drop_live(self.id, self.gen);
        if self.private {
            let _ = self.sess.end(py, false, false);
        }
    }
}

#[pymethods]
impl RowIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.done.load(Ordering::Acquire) {
            return Ok(None);
        }
        let r = self.sess.with_live(self.id, self.gen, |c, stmt| unsafe {
            match conn::step_nogil(stmt) {
                ffi::SQLITE_ROW => Ok(Some(
                    Bound::from_owned_ptr(
                        py,
                        conn::row_tuple(py, stmt, ffi::sqlite3_column_count(stmt))?,
                    )
                    .unbind(),
                )),
                ffi::SQLITE_DONE => Ok(None),
                _ => Err(errors::last_error(py, c.handle())),
            }
        });
        match r {
            Ok(Some(row)) => Ok(Some(row)),
            Ok(None) => {
                self.finish(py);
                Ok(None)
            }
            Err(e) => {
                self.finish(py);
                Err(e)
            }
        }
    }

    /// Stop early and give the connection back (idempotent).
    fn close(&self, py: Python<'_>) {
        self.finish(py);
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.finish(py);
        false
    }
}

impl Drop for RowIterator {
    fn drop(&mut self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.sess.drop_live(self.id, self.gen);
            if self.private {
                // No Python needed: roll back nothing, just give the reader back.
                let st = &self.sess;
                let mut s = st.state.lock();
                if let Some(conn) = s.conn.take() {
                    s.status = crate::session::Status::Ended;
                    drop(s);
                    st.db.give_back(false, conn);
                }
            }
        }
    }
}
