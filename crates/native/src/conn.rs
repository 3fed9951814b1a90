//! One SQLite connection with its own prepared-statement handles, plus the
//! hot path: binding Python parameters and building rows straight from
//! SQLite's column values.
//!
//! Statements prepared through `Database.prepare()` live in `slots`, indexed
//! by the statement's slot number: a lookup is a bounds check and an id
//! compare, with no hashing of the SQL text. Ad-hoc SQL strings go through a
//! small per-connection cache keyed by the text (the convenience path).

use crate::errors::{self, DataError, ProgrammingError};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::ffi as pyffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rusqlite::ffi;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;

/// Upper bound on the ad-hoc SQL cache of one connection.
const ADHOC_CAPACITY: usize = 256;

#[derive(Clone, Copy, Debug)]
pub struct StmtInfo {
    pub readonly: bool,
    pub txn_control: bool,
    /// Must run outside a transaction (VACUUM, some PRAGMAs, ATTACH).
    pub no_wrap: bool,
}

/// What a prepared `Statement` object shares with the connections.
pub struct StmtShared {
    pub db_id: u64,
    pub id: u64,
    pub slot: usize,
    pub sql: String,
    pub info: StmtInfo,
    pub param_count: i32,
    /// Names (without the `:`/`@`/`$` prefix) of each parameter, `None` for
    /// positional ones. Index 0 is parameter 1.
    pub param_names: Vec<Option<Py<PyString>>>,
    pub columns: Py<PyTuple>,
}

pub struct Conn {
    // Field order matters: statements are finalized in Drop before `conn`
    // closes the handle.
    db: *mut ffi::sqlite3,
    slots: Vec<Option<(u64, *mut ffi::sqlite3_stmt)>>,
    adhoc: HashMap<Box<str>, (*mut ffi::sqlite3_stmt, StmtInfo)>,
    /// SQL text of ad-hoc statements that must run on the writer (a read
    /// statement whose functions write, e.g. `SELECT notify(...)`).
    pub needs_writer: std::collections::HashSet<Box<str>>,
    begin_immediate: *mut ffi::sqlite3_stmt,
    commit: *mut ffi::sqlite3_stmt,
    rollback: *mut ffi::sqlite3_stmt,
    begin_deferred: *mut ffi::sqlite3_stmt,
    /// Readers: the WAL-index header (SQLite's own shared mapping).
    shm: Option<ShmHeader>,
    /// Readers: header seen just before the open implicit read transaction
    /// began (None: no implicit read transaction is open).
    snap: Option<[u32; HDR_WORDS]>,
    pub snap_at: std::time::Instant,
    /// Readers: thread tag of the thread that took it from the pool.
    pub holder: usize,
    /// Generation of the Database's user-defined functions registered here.
    pub func_gen: u64,
    pub conn: rusqlite::Connection,
}

/// Pointer to the first copy of the WAL-index header inside SQLite's
/// mapping of region 0 of the `-shm` file; valid while the connection is open.
pub struct ShmHeader(*const u32);

/// Words of one copy of the WAL-index header (48 bytes).
const HDR_WORDS: usize = 12;

// SAFETY: a Conn is only ever used by one thread at a time (it is moved in
// and out of the writer slot / reader pool / a session); SQLite is compiled
// threadsafe (serialized by default in the bundled build).
unsafe impl Send for Conn {}

impl Drop for Conn {
    fn drop(&mut self) {
        unsafe {
            for (_, s) in self.slots.drain(..).flatten() {
                ffi::sqlite3_finalize(s);
            }
            for (_, (s, _)) in self.adhoc.drain() {
                ffi::sqlite3_finalize(s);
            }
            for s in [
                self.begin_immediate,
                self.commit,
                self.rollback,
                self.begin_deferred,
            ] {
                if !s.is_null() {
                    ffi::sqlite3_finalize(s);
                }
            }
        }
    }
}

/// Error raised by a prepare: SQLite's code and message.
#[derive(Debug)]
pub struct PrepareError {
    pub code: i32,
    pub msg: String,
}

impl PrepareError {
    pub fn into_py(self, py: Python<'_>) -> PyErr {
        if self.code == -1 {
            return ProgrammingError::new_err(self.msg);
        }
        errors::sqlite_error(py, self.code, &self.msg)
    }
}

/// First keyword of `sql`, upper-cased, skipping white space and comments.
fn leading_keyword(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] as char).is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if b[i..].starts_with(b"/*") {
            match sql[i + 2..].find("*/") {
                Some(end) => {
                    i += end + 4;
                    continue;
                }
                None => return String::new(),
            }
        }
        break;
    }
    let start = i;
    while i < b.len() && (b[i] as char).is_ascii_alphabetic() {
        i += 1;
    }
    sql[start..i].to_ascii_uppercase()
}

/// True when `s` holds nothing but white space, `;` and comments.
fn only_trivia(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() || b[i] == b';' {
            i += 1;
        } else if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            match s[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return true,
            }
        } else {
            return false;
        }
    }
    true
}

pub fn is_txn_control(sql: &str) -> bool {
    matches!(
        leading_keyword(sql).as_str(),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
    )
}

/// `honker_core::open_conn` with one difference: SQLITE_OPEN_NO_MUTEX. A
/// Conn is only ever used by the one thread that holds it (writer slot,
/// reader pool, session), so SQLite's per-connection mutex — taken on every
/// API call, including each column read — is pure overhead. Same PRAGMA
/// defaults, applied by honker-core.
fn open_conn(path: &str) -> Result<rusqlite::Connection, honker_core::Error> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    honker_core::apply_default_pragmas(&conn)?;
    Ok(conn)
}

/// honker's SQL functions that write, with their arities.
const WRITING_FUNCTIONS: &[(&str, i32)] = &[
    ("notify", 2),
    ("honker_bootstrap", 0),
    ("honker_claim_batch", 4),
    ("honker_ack_batch", 2),
    ("honker_sweep_expired", 1),
    ("honker_lock_acquire", 3),
    ("honker_lock_release", 2),
    ("honker_lock_renew", 3),
    ("honker_rate_limit_try", 3),
    ("honker_rate_limit_sweep", 1),
    ("honker_scheduler_register", 6),
    ("honker_scheduler_register", 7),
    ("honker_scheduler_unregister", 1),
    ("honker_scheduler_tick", 1),
    ("honker_scheduler_pause", 1),
    ("honker_scheduler_resume", 1),
    ("honker_scheduler_update", 6),
    ("honker_scheduler_update", 8),
    ("honker_result_save", 3),
    ("honker_result_sweep", 0),
    ("honker_enqueue", 7),
    ("honker_ack", 2),
    ("honker_retry", 4),
    ("honker_fail", 3),
    ("honker_heartbeat", 3),
    ("honker_cancel", 1),
    ("honker_stream_publish", 3),
    ("honker_stream_save_offset", 3),
];

/// On readers, replace honker's writing SQL functions with ones that fail
/// at once with SQLite's read-only error. Some of the real ones swallow the
/// `query_only` error of their inner statements and return 0, which would
/// look like "no such job" instead of sending the statement to the writer;
/// this error is what the session recognises to re-run it there.
fn disable_writing_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    for &(name, n) in WRITING_FUNCTIONS {
        conn.create_scalar_function(name, n, FunctionFlags::SQLITE_UTF8, |_ctx| {
            Err::<i64, _>(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_READONLY),
                Some("attempt to write a readonly database".into()),
            ))
        })?;
    }
    Ok(())
}

impl Conn {
    fn wrap(conn: rusqlite::Connection) -> Conn {
        let db = unsafe { conn.handle() };
        Conn {
            db,
            slots: Vec::new(),
            adhoc: HashMap::new(),
            needs_writer: Default::default(),
            begin_immediate: ptr::null_mut(),
            commit: ptr::null_mut(),
            rollback: ptr::null_mut(),
            begin_deferred: ptr::null_mut(),
            shm: None,
            snap: None,
            snap_at: std::time::Instant::now(),
            holder: 0,
            func_gen: 0,
            conn,
        }
    }

    /// The writer: honker's PRAGMA defaults, `notify()` and every
    /// `honker_*` SQL function.
    pub fn open_writer(path: &str) -> Result<Conn, honker_core::Error> {
        let conn = open_conn(path)?;
        honker_core::attach_notify(&conn)?;
        honker_core::attach_honker_functions(&conn)?;
        Ok(Conn::wrap(conn))
    }

    /// A reader: same PRAGMAs, the honker functions registered (so reading
    /// ones such as `honker_get_job` work) and `query_only` on, so a write
    /// sent to a reader fails instead of bypassing the writer slot.
    pub fn open_reader(path: &str) -> Result<Conn, honker_core::Error> {
        let conn = open_conn(path)?;
        honker_core::attach_notify(&conn)?;
        honker_core::attach_honker_functions(&conn)?;
        disable_writing_functions(&conn)?;
        conn.execute_batch("PRAGMA query_only = 1;")?;
        let mut c = Conn::wrap(conn);
        c.shm = c.map_shm();
        Ok(c)
    }

    /// The WAL-index header, through SQLite's own mapping of the `-shm` file
    /// (the VFS `xShmMap` of this connection's main database file).
    ///
    /// Never open the `-shm` (or any database) file ourselves: closing a
    /// descriptor drops every POSIX lock this process holds on that file,
    /// including SQLite's, which would let other processes write under our
    /// feet. The region stays mapped until the connection closes.
    fn map_shm(&self) -> Option<ShmHeader> {
        // Only a WAL database has a WAL index; make sure this connection has
        // opened it (the first read does).
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        self.conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()?;
        unsafe {
            let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
            let rc = ffi::sqlite3_file_control(
                self.db,
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                &mut file as *mut _ as *mut std::ffi::c_void,
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return None;
            }
            let methods = &*(*file).pMethods;
            if methods.iVersion < 2 {
                return None;
            }
            let shm_map = methods.xShmMap?;
            let mut region: *mut std::ffi::c_void = ptr::null_mut();
            // Region 0, WALINDEX_PGSZ (32 KiB), do not extend.
            let rc = shm_map(file, 0, 32768, 0, &mut region);
            if rc != ffi::SQLITE_OK || region.is_null() {
                return None;
            }
            Some(ShmHeader(region as *const u32))
        }
    }

    fn wal_header(shm: &ShmHeader) -> [u32; HDR_WORDS] {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let mut h = [0u32; HDR_WORDS];
        for (i, w) in h.iter_mut().enumerate() {
            *w = unsafe { ptr::read_volatile(shm.0.add(i)) };
        }
        h
    }

    /// Readers, before a statement outside any session: keep the implicit
    /// read transaction if nothing was committed since it began (the header
    /// of the WAL index is unchanged), else start a fresh one. Reusing it
    /// saves the shared-memory lock round trip (two fcntl calls) that each
    /// autocommit read would otherwise pay, while every statement still
    /// sees the latest committed state. Without the mapping: autocommit.
    #[inline]
    pub fn fresh_read(&mut self) {
        let Some(shm) = &self.shm else { return };
        let h = Conn::wal_header(shm);
        if let Some(s) = &self.snap {
            if *s == h {
                return;
            }
            self.end_read();
        }
        // Capture the header *before* the read transaction starts: a commit
        // in between only makes us restart once more, never read stale data.
        if self.raw_control(3).is_ok() {
            self.snap = Some(h);
            self.snap_at = std::time::Instant::now();
        }
    }

    /// End the implicit read transaction, if any (no GIL needed).
    pub fn end_read(&mut self) {
        if self.snap.take().is_some() && !self.autocommit() {
            let _ = self.raw_control(1);
        }
    }

    pub fn has_open_read(&self) -> bool {
        self.snap.is_some()
    }

    #[inline]
    pub fn handle(&self) -> *mut ffi::sqlite3 {
        self.db
    }

    /// Prepare one statement. Errors: SQLite's, an empty statement, or
    /// trailing statements after the first.
    pub fn prepare_raw(&self, sql: &str) -> Result<*mut ffi::sqlite3_stmt, PrepareError> {
        let mut stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        let len = c_int::try_from(sql.len()).map_err(|_| PrepareError {
            code: ffi::SQLITE_TOOBIG,
            msg: "SQL text is too long".into(),
        })?;
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr() as *const c_char,
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db)) }
                .to_string_lossy()
                .into_owned();
            let code = unsafe { ffi::sqlite3_extended_errcode(self.db) };
            return Err(PrepareError { code, msg });
        }
        if stmt.is_null() {
            return Err(PrepareError {
                code: -1,
                msg: "empty SQL statement: nothing to execute".into(),
            });
        }
        let used = tail as usize - sql.as_ptr() as usize;
        let rest = &sql[used.min(sql.len())..];
        if !only_trivia(rest) {
            unsafe { ffi::sqlite3_finalize(stmt) };
            return Err(PrepareError {
                code: -1,
                msg: "you can only execute one statement at a time (use executescript for scripts)"
                    .into(),
            });
        }
        Ok(stmt)
    }

    pub fn info_of(stmt: *mut ffi::sqlite3_stmt, sql: &str) -> StmtInfo {
        let kw = leading_keyword(sql);
        StmtInfo {
            readonly: unsafe { ffi::sqlite3_stmt_readonly(stmt) } != 0,
            txn_control: matches!(
                kw.as_str(),
                "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
            ),
            no_wrap: matches!(kw.as_str(), "VACUUM" | "PRAGMA" | "ATTACH" | "DETACH"),
        }
    }

    /// Handle for a `Statement` object, compiled on first use on this
    /// connection and reused afterwards.
    #[inline]
    pub fn stmt_for(&mut self, s: &StmtShared) -> Result<*mut ffi::sqlite3_stmt, PrepareError> {
        if let Some(Some((id, p))) = self.slots.get(s.slot) {
            if *id == s.id {
                return Ok(*p);
            }
        }
        let p = self.prepare_raw(&s.sql)?;
        self.adopt(s.slot, s.id, p);
        Ok(p)
    }

    /// Keep a freshly prepared handle for Statement (`slot`, `id`).
    pub fn adopt(&mut self, slot: usize, id: u64, p: *mut ffi::sqlite3_stmt) {
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        if let Some((_, old)) = self.slots[slot].replace((id, p)) {
            unsafe { ffi::sqlite3_finalize(old) };
        }
    }

    /// Handle for ad-hoc SQL text (cached per connection by the text).
    pub fn stmt_for_sql(
        &mut self,
        sql: &str,
    ) -> Result<(*mut ffi::sqlite3_stmt, StmtInfo), PrepareError> {
        if let Some(&(p, info)) = self.adhoc.get(sql) {
            return Ok((p, info));
        }
        let p = self.prepare_raw(sql)?;
        let info = Conn::info_of(p, sql);
        if self.adhoc.len() >= ADHOC_CAPACITY {
            for (_, (s, _)) in self.adhoc.drain() {
                unsafe { ffi::sqlite3_finalize(s) };
            }
        }
        self.adhoc.insert(sql.into(), (p, info));
        Ok((p, info))
    }

    fn control_stmt(&mut self, which: u8) -> Result<*mut ffi::sqlite3_stmt, i32> {
        let (slot, sql) = match which {
            0 => (&mut self.begin_immediate, "BEGIN IMMEDIATE"),
            1 => (&mut self.commit, "COMMIT"),
            2 => (&mut self.rollback, "ROLLBACK"),
            _ => (&mut self.begin_deferred, "BEGIN"),
        };
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
    fn control(&mut self, which: u8) -> Result<(), i32> {
        let s = self.control_stmt(which)?;
        let rc = unsafe { step_nogil(s) };
        self.finish_control(s, rc)
    }

    /// Run a control statement without touching the GIL (the caller may
    /// not hold it, or the statement cannot block).
    fn raw_control(&mut self, which: u8) -> Result<(), i32> {
        let s = self.control_stmt(which)?;
        let rc = unsafe { ffi::sqlite3_step(s) };
        self.finish_control(s, rc)
    }

    pub fn begin_immediate(&mut self, py: Python<'_>) -> PyResult<()> {
        self.control(0)
            .map_err(|_| unsafe { errors::last_error(py, self.db) })
    }

    pub fn commit(&mut self, py: Python<'_>) -> PyResult<()> {
        self.control(1)
            .map_err(|_| unsafe { errors::last_error(py, self.db) })
    }

    /// Roll back if a transaction is open. Never fails loudly: a rollback
    /// error leaves nothing to recover.
    pub fn rollback(&mut self) {
        self.snap = None;
        if !self.autocommit() {
            let _ = self.raw_control(2);
        }
    }

    #[inline]
    pub fn autocommit(&self) -> bool {
        unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
    }

    /// Run a multi-statement script (no parameters) with the GIL released.
    /// Transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE) inside
    /// the script is refused by an authorizer: the caller owns the
    /// transaction the script runs in.
    pub fn exec_script(&self, py: Python<'_>, sql: &str) -> PyResult<()> {
        use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
        let _ = self
            .conn
            .authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
                AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                    Authorization::Deny
                }
                _ => Authorization::Allow,
            }));
        let r = self.exec_raw(py, sql);
        let _ = self
            .conn
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        r.map_err(|e| {
            if e.value(py)
                .getattr("sqlite_errorcode")
                .and_then(|c| c.extract::<i32>())
                .is_ok_and(|c| c == ffi::SQLITE_AUTH)
            {
                ProgrammingError::new_err(
                    "transaction control statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, \
                     RELEASE, END) are not allowed in a script: the script already runs in \
                     one transaction; nothing was written",
                )
            } else {
                e
            }
        })
    }

    /// `sqlite3_exec` with the GIL released (our own control statements).
    pub fn exec_raw(&self, py: Python<'_>, sql: &str) -> PyResult<()> {
        let csql = std::ffi::CString::new(sql)
            .map_err(|_| ProgrammingError::new_err("the script contains a NUL character"))?;
        let db = SendPtr(self.db);
        let rc = py.detach(move || {
            let db = db;
            unsafe {
                ffi::sqlite3_exec(db.0, csql.as_ptr(), None, ptr::null_mut(), ptr::null_mut())
            }
        });
        if rc != ffi::SQLITE_OK {
            return Err(unsafe { errors::last_error(py, self.db) });
        }
        Ok(())
    }
}

struct SendPtr(*mut ffi::sqlite3);
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

// ---------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------

fn param_label(stmt: *mut ffi::sqlite3_stmt, idx: c_int) -> String {
    let name = unsafe { ffi::sqlite3_bind_parameter_name(stmt, idx) };
    if name.is_null() {
        format!("parameter {idx}")
    } else {
        format!(
            "parameter {idx} ({})",
            unsafe { CStr::from_ptr(name) }.to_string_lossy()
        )
    }
}

/// Bind one Python value. Text and bytes are bound without copying: the
/// caller keeps the parameter objects alive until the statement is reset,
/// and every parameter is rebound before each execution.
///
/// # Safety
/// `stmt` valid; GIL held; `obj` alive until the statement is reset.
#[inline]
unsafe fn bind_value(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    idx: c_int,
    obj: *mut pyffi::PyObject,
) -> PyResult<()> {
    let ty = pyffi::Py_TYPE(obj);
    let rc = if obj == pyffi::Py_None() {
        ffi::sqlite3_bind_null(stmt, idx)
    } else if ty == &raw mut pyffi::PyLong_Type
        || (ty != &raw mut pyffi::PyBool_Type && pyffi::PyLong_Check(obj) != 0)
    {
        let mut overflow: c_int = 0;
        let v = pyffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        if overflow != 0 {
            return Err(PyOverflowError::new_err(format!(
                "{}: Python int too large to convert to SQLite INTEGER (64-bit)",
                param_label(stmt, idx)
            )));
        }
        if v == -1 && !pyffi::PyErr_Occurred().is_null() {
            return Err(PyErr::fetch(py));
        }
        ffi::sqlite3_bind_int64(stmt, idx, v)
    } else if ty == &raw mut pyffi::PyUnicode_Type || pyffi::PyUnicode_Check(obj) != 0 {
        let mut size: pyffi::Py_ssize_t = 0;
        let data = pyffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
        if data.is_null() {
            let cause = PyErr::fetch(py);
            let err = DataError::new_err(format!(
                "{}: str cannot be encoded as UTF-8",
                param_label(stmt, idx)
            ));
            err.set_cause(py, Some(cause));
            return Err(err);
        }
        ffi::sqlite3_bind_text64(
            stmt,
            idx,
            data,
            size as u64,
            ffi::SQLITE_STATIC(),
            ffi::SQLITE_UTF8 as u8,
        )
    } else if ty == &raw mut pyffi::PyFloat_Type || pyffi::PyFloat_Check(obj) != 0 {
        ffi::sqlite3_bind_double(stmt, idx, pyffi::PyFloat_AsDouble(obj))
    } else if ty == &raw mut pyffi::PyBool_Type {
        ffi::sqlite3_bind_int64(stmt, idx, (obj == pyffi::Py_True()) as i64)
    } else if ty == &raw mut pyffi::PyBytes_Type || pyffi::PyBytes_Check(obj) != 0 {
        let mut data: *mut c_char = ptr::null_mut();
        let mut size: pyffi::Py_ssize_t = 0;
        if pyffi::PyBytes_AsStringAndSize(obj, &mut data, &mut size) != 0 {
            return Err(PyErr::fetch(py));
        }
        ffi::sqlite3_bind_blob64(
            stmt,
            idx,
            data as *const _,
            size as u64,
            ffi::SQLITE_STATIC(),
        )
    } else if pyffi::PyByteArray_Check(obj) != 0 || ty == &raw mut pyffi::PyMemoryView_Type {
        let mut view: pyffi::Py_buffer = std::mem::zeroed();
        if pyffi::PyObject_GetBuffer(obj, &mut view, pyffi::PyBUF_SIMPLE) != 0 {
            let cause = PyErr::fetch(py);
            let err = PyTypeError::new_err(format!(
                "{}: buffer is not C-contiguous bytes",
                param_label(stmt, idx)
            ));
            err.set_cause(py, Some(cause));
            return Err(err);
        }
        let rc = ffi::sqlite3_bind_blob64(
            stmt,
            idx,
            view.buf as *const _,
            view.len as u64,
            ffi::SQLITE_TRANSIENT(),
        );
        pyffi::PyBuffer_Release(&mut view);
        rc
    } else {
        let bound = Bound::from_borrowed_ptr(py, obj);
        let tname = bound
            .get_type()
            .fully_qualified_name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(PyTypeError::new_err(format!(
            "{}: unsupported type '{tname}'; use None, bool, int, float, str, bytes, bytearray or memoryview",
            param_label(stmt, idx)
        )));
    };
    if rc != ffi::SQLITE_OK {
        return Err(errors::code_error(py, rc));
    }
    Ok(())
}

/// Bind `params` (None, a sequence or a mapping) to every parameter of
/// `stmt`. `names` are the cached parameter names of a prepared Statement.
///
/// # Safety
/// `stmt` valid; GIL held.
pub unsafe fn bind_params(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    params: Option<&Bound<'_, PyAny>>,
    names: Option<&[Option<Py<PyString>>]>,
    keep: &mut Keep,
) -> PyResult<()> {
    let n = ffi::sqlite3_bind_parameter_count(stmt);
    let params = match params {
        None => {
            if n != 0 {
                return Err(ProgrammingError::new_err(format!(
                    "incorrect number of bindings supplied: the statement uses {n}, and 0 were supplied"
                )));
            }
            return Ok(());
        }
        Some(p) if p.is_none() => {
            if n != 0 {
                return Err(ProgrammingError::new_err(format!(
                    "incorrect number of bindings supplied: the statement uses {n}, and 0 were supplied"
                )));
            }
            return Ok(());
        }
        Some(p) => p,
    };
    let obj = params.as_ptr();
    let ty = pyffi::Py_TYPE(obj);
    if ty == &raw mut pyffi::PyTuple_Type || ty == &raw mut pyffi::PyList_Type {
        let is_tuple = ty == &raw mut pyffi::PyTuple_Type;
        let len = if is_tuple {
            pyffi::PyTuple_Size(obj)
        } else {
            pyffi::PyList_Size(obj)
        };
        if len != n as pyffi::Py_ssize_t {
            return Err(ProgrammingError::new_err(format!(
                "incorrect number of bindings supplied: the statement uses {n}, and {len} were supplied"
            )));
        }
        for i in 0..n {
            let item = if is_tuple {
                pyffi::PyTuple_GetItem(obj, i as pyffi::Py_ssize_t)
            } else {
                // A list can be mutated by another thread while the step
                // runs without the GIL: hold the bound objects.
                let it = pyffi::PyList_GetItem(obj, i as pyffi::Py_ssize_t);
                keep.hold(it);
                it
            };
            bind_value(py, stmt, i + 1, item)?;
        }
        return Ok(());
    }
    if let Ok(dict) = params.cast::<PyDict>() {
        for i in 1..=n {
            let key: Bound<'_, PyString> = match names.and_then(|v| v.get((i - 1) as usize)) {
                Some(Some(k)) => k.bind(py).clone(),
                Some(None) => return Err(positional_in_mapping(i)),
                None => match param_name(py, stmt, i) {
                    Some(k) => k,
                    None => return Err(positional_in_mapping(i)),
                },
            };
            let item = pyffi::PyDict_GetItemWithError(dict.as_ptr(), key.as_ptr());
            if item.is_null() {
                if !pyffi::PyErr_Occurred().is_null() {
                    return Err(PyErr::fetch(py));
                }
                return Err(ProgrammingError::new_err(format!(
                    "you did not supply a value for binding parameter :{}",
                    key.to_string_lossy()
                )));
            }
            // The dict can be mutated by another thread while the step runs
            // without the GIL: hold the bound object.
            keep.hold(item);
            bind_value(py, stmt, i, item)?;
        }
        return Ok(());
    }
    if params.is_instance_of::<PyString>()
        || params.is_instance_of::<pyo3::types::PyBytes>()
        || params.is_instance_of::<pyo3::types::PyByteArray>()
    {
        return Err(ProgrammingError::new_err(
            "parameters must be a sequence or a mapping, not a str or bytes",
        ));
    }
    if params.hasattr(pyo3::intern!(py, "keys"))? {
        // A general Mapping.
        for i in 1..=n {
            let key = match names.and_then(|v| v.get((i - 1) as usize)) {
                Some(Some(k)) => k.bind(py).clone(),
                Some(None) => return Err(positional_in_mapping(i)),
                None => match param_name(py, stmt, i) {
                    Some(k) => k,
                    None => return Err(positional_in_mapping(i)),
                },
            };
            let item = match params.get_item(&key) {
                Ok(v) => v,
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => {
                    return Err(ProgrammingError::new_err(format!(
                        "you did not supply a value for binding parameter :{}",
                        key.to_string_lossy()
                    )))
                }
                Err(e) => return Err(e),
            };
            keep.hold(item.as_ptr());
            bind_value(py, stmt, i, item.as_ptr())?;
        }
        return Ok(());
    }
    // A general sequence.
    let len = params.len().map_err(|_| {
        PyTypeError::new_err(format!(
            "parameters must be a sequence or a mapping, not '{}'",
            params
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if len != n as usize {
        return Err(ProgrammingError::new_err(format!(
            "incorrect number of bindings supplied: the statement uses {n}, and {len} were supplied"
        )));
    }
    for i in 0..n {
        let item = params.get_item(i)?;
        keep.hold(item.as_ptr());
        bind_value(py, stmt, i + 1, item.as_ptr())?;
    }
    Ok(())
}

/// Strong references to parameter objects whose text/blob is bound without
/// copying, held until the statement has been reset.
#[derive(Default)]
pub struct Keep(Vec<*mut pyffi::PyObject>);

impl Keep {
    #[inline]
    pub fn hold(&mut self, obj: *mut pyffi::PyObject) {
        unsafe { pyffi::Py_IncRef(obj) };
        self.0.push(obj);
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        // Only ever dropped with the GIL held (inside a Python call).
        for o in self.0.drain(..) {
            unsafe { pyffi::Py_DecRef(o) };
        }
    }
}

fn positional_in_mapping(i: c_int) -> PyErr {
    ProgrammingError::new_err(format!(
        "parameter {i} is positional (?), but the parameters were given as a mapping"
    ))
}

/// Name of parameter `i` without its prefix character.
pub fn param_name<'py>(
    py: Python<'py>,
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
) -> Option<Bound<'py, PyString>> {
    let name = unsafe { ffi::sqlite3_bind_parameter_name(stmt, i) };
    if name.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    if s.starts_with('?') {
        return None;
    }
    Some(PyString::new(py, &s[1..]))
}

// ---------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------

fn column_label(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> String {
    let name = unsafe { ffi::sqlite3_column_name(stmt, i) };
    if name.is_null() {
        format!("column {i}")
    } else {
        format!(
            "column {i} ({:?})",
            unsafe { CStr::from_ptr(name) }.to_string_lossy()
        )
    }
}

/// New reference to the Python value of column `i` of the current row.
///
/// # Safety
/// `stmt` positioned on a row; GIL held.
#[inline]
unsafe fn column_value(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
) -> PyResult<*mut pyffi::PyObject> {
    let obj = match ffi::sqlite3_column_type(stmt, i) {
        ffi::SQLITE_INTEGER => pyffi::PyLong_FromLongLong(ffi::sqlite3_column_int64(stmt, i)),
        ffi::SQLITE_FLOAT => pyffi::PyFloat_FromDouble(ffi::sqlite3_column_double(stmt, i)),
        ffi::SQLITE_TEXT => {
            let data = ffi::sqlite3_column_text(stmt, i);
            let len = ffi::sqlite3_column_bytes(stmt, i);
            let o = pyffi::PyUnicode_DecodeUTF8(
                data as *const c_char,
                len as pyffi::Py_ssize_t,
                c"strict".as_ptr(),
            );
            if o.is_null() {
                let cause = PyErr::fetch(py);
                let err = DataError::new_err(format!(
                    "{} holds text that is not valid UTF-8; read it as a BLOB (CAST(x AS BLOB)) instead",
                    column_label(stmt, i)
                ));
                err.set_cause(py, Some(cause));
                return Err(err);
            }
            o
        }
        ffi::SQLITE_BLOB => {
            let data = ffi::sqlite3_column_blob(stmt, i);
            let len = ffi::sqlite3_column_bytes(stmt, i);
            pyffi::PyBytes_FromStringAndSize(data as *const c_char, len as pyffi::Py_ssize_t)
        }
        _ => {
            let none = pyffi::Py_None();
            pyffi::Py_IncRef(none);
            none
        }
    };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    Ok(obj)
}

/// The current row as a new tuple (owned pointer).
///
/// # Safety
/// `stmt` positioned on a row; GIL held.
#[inline]
pub unsafe fn row_tuple(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    ncols: c_int,
) -> PyResult<*mut pyffi::PyObject> {
    let t = pyffi::PyTuple_New(ncols as pyffi::Py_ssize_t);
    if t.is_null() {
        return Err(PyErr::fetch(py));
    }
    for i in 0..ncols {
        match column_value(py, stmt, i) {
            Ok(v) => {
                pyffi::PyTuple_SetItem(t, i as pyffi::Py_ssize_t, v);
            }
            Err(e) => {
                pyffi::Py_DecRef(t);
                return Err(e);
            }
        }
    }
    Ok(t)
}

/// Column names of a statement as Python strings.
pub fn column_names<'py>(
    py: Python<'py>,
    stmt: *mut ffi::sqlite3_stmt,
) -> Vec<Bound<'py, PyString>> {
    let n = unsafe { ffi::sqlite3_column_count(stmt) };
    (0..n)
        .map(|i| {
            let p = unsafe { ffi::sqlite3_column_name(stmt, i) };
            let s = if p.is_null() {
                std::borrow::Cow::Borrowed("")
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy()
            };
            PyString::new(py, &s)
        })
        .collect()
}

/// The current row as a dict keyed by column name.
///
/// # Safety
/// `stmt` positioned on a row; GIL held.
pub unsafe fn row_dict<'py>(
    py: Python<'py>,
    stmt: *mut ffi::sqlite3_stmt,
    names: &[Bound<'py, PyString>],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (i, name) in names.iter().enumerate() {
        let v = Bound::from_owned_ptr(py, column_value(py, stmt, i as c_int)?);
        d.set_item(name, v)?;
    }
    Ok(d)
}

// ---------------------------------------------------------------------
// Running one statement
// ---------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Exec,
    /// Parameter set `n` of an executemany: the statement runs inside a
    /// transaction that already holds the write lock, so its step never
    /// waits on other connections; the GIL is released every 32nd set
    /// only (as for the rows of a multi-row read).
    ExecMany(usize),
    One,
    All,
    Dicts,
}

/// What a run produced.
pub enum Produced {
    Exec { changes: i64, lastrowid: i64 },
    Obj(Py<PyAny>),
}

/// Bind, step and collect one statement, then reset it.
///
/// # Safety
/// `stmt` belongs to `db`; GIL held; the connection is used by this thread only.
pub unsafe fn run(
    py: Python<'_>,
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    params: Option<&Bound<'_, PyAny>>,
    names: Option<&[Option<Py<PyString>>]>,
    out: Out,
) -> PyResult<Produced> {
    let mut keep = Keep::default();
    if let Err(e) = bind_params(py, stmt, params, names, &mut keep) {
        ffi::sqlite3_clear_bindings(stmt);
        return Err(e);
    }
    let result = collect(py, db, stmt, out);
    ffi::sqlite3_reset(stmt);
    drop(keep);
    result
}

#[inline]
unsafe fn step_error(py: Python<'_>, db: *mut ffi::sqlite3, stmt: *mut ffi::sqlite3_stmt) -> PyErr {
    let err = errors::last_error(py, db);
    ffi::sqlite3_reset(stmt);
    err
}

unsafe fn collect(
    py: Python<'_>,
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    out: Out,
) -> PyResult<Produced> {
    match out {
        Out::Exec | Out::ExecMany(_) => {
            let before = ffi::sqlite3_total_changes64(db);
            let mut first = true;
            loop {
                let rc = match out {
                    Out::ExecMany(n) if first => step_batched(stmt, n),
                    _ => step_nogil(stmt),
                };
                first = false;
                match rc {
                    ffi::SQLITE_ROW => continue,
                    ffi::SQLITE_DONE => break,
                    _ => return Err(step_error(py, db, stmt)),
                }
            }
            let changes = if ffi::sqlite3_total_changes64(db) == before {
                0
            } else {
                ffi::sqlite3_changes64(db)
            };
            Ok(Produced::Exec {
                changes,
                lastrowid: ffi::sqlite3_last_insert_rowid(db),
            })
        }
        // Column counts and names are read after the first step: SQLite
        // re-prepares a statement inside sqlite3_step when the schema changed
        // (another connection's ALTER TABLE), and the shape can change with it.
        Out::One => {
            match step_nogil(stmt) {
                ffi::SQLITE_ROW => {
                    let row = row_tuple(py, stmt, ffi::sqlite3_column_count(stmt))?;
                    // Run a writing statement (INSERT ... RETURNING) to completion.
                    if ffi::sqlite3_stmt_readonly(stmt) == 0 {
                        loop {
                            match step_nogil(stmt) {
                                ffi::SQLITE_ROW => continue,
                                ffi::SQLITE_DONE => break,
                                _ => {
                                    pyffi::Py_DecRef(row);
                                    return Err(step_error(py, db, stmt));
                                }
                            }
                        }
                    }
                    Ok(Produced::Obj(Bound::from_owned_ptr(py, row).unbind()))
                }
                ffi::SQLITE_DONE => Ok(Produced::Obj(py.None())),
                _ => Err(step_error(py, db, stmt)),
            }
        }
        Out::All => {
            let mut ncols: c_int = -1;
            let mut rows: Vec<*mut pyffi::PyObject> = Vec::new();
            loop {
                // Let Ctrl-C (and other signal handlers) stop a long read.
                if rows.len() % 4096 == 4095 && pyffi::PyErr_CheckSignals() != 0 {
                    rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                    return Err(PyErr::fetch(py));
                }
                match step_batched(stmt, rows.len()) {
                    ffi::SQLITE_ROW => match row_tuple(py, stmt, {
                        if ncols < 0 {
                            ncols = ffi::sqlite3_column_count(stmt);
                        }
                        ncols
                    }) {
                        Ok(r) => rows.push(r),
                        Err(e) => {
                            rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                            return Err(e);
                        }
                    },
                    ffi::SQLITE_DONE => break,
                    _ => {
                        rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                        return Err(step_error(py, db, stmt));
                    }
                }
            }
            let list = pyffi::PyList_New(rows.len() as pyffi::Py_ssize_t);
            if list.is_null() {
                rows.into_iter().for_each(|r| pyffi::Py_DecRef(r));
                return Err(PyErr::fetch(py));
            }
            for (i, r) in rows.into_iter().enumerate() {
                pyffi::PyList_SetItem(list, i as pyffi::Py_ssize_t, r);
            }
            Ok(Produced::Obj(Bound::from_owned_ptr(py, list).unbind()))
        }
        Out::Dicts => {
            let mut names: Option<Vec<Bound<'_, PyString>>> = None;
            let list = PyList::empty(py);
            loop {
                match step_nogil(stmt) {
                    ffi::SQLITE_ROW => {
                        let names = names.get_or_insert_with(|| column_names(py, stmt));
                        list.append(row_dict(py, stmt, names)?)?
                    }
                    ffi::SQLITE_DONE => break,
                    _ => return Err(step_error(py, db, stmt)),
                }
            }
            Ok(Produced::Obj(list.into_any().unbind()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_keyword_skips_space_and_comments() {
        assert_eq!(leading_keyword("  begin immediate"), "BEGIN");
        assert_eq!(leading_keyword("-- c\n /* x */ Commit"), "COMMIT");
        assert_eq!(leading_keyword("select 1"), "SELECT");
        assert_eq!(leading_keyword(""), "");
        assert!(is_txn_control("SAVEPOINT a"));
        assert!(is_txn_control("end"));
        assert!(!is_txn_control("SELECT 'BEGIN'"));
    }

    #[test]
    fn prepare_rejects_trailing_statements_and_empty_sql() {
        let dir = std::env::temp_dir().join(format!("alk-conn-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let c = Conn::open_writer(path.to_str().unwrap()).unwrap();
        assert!(c.prepare_raw("SELECT 1; SELECT 2").is_err());
        assert!(c.prepare_raw("   ").is_err());
        let ok = c.prepare_raw("SELECT 1;  -- trailing comment").unwrap();
        unsafe { ffi::sqlite3_finalize(ok) };
        let bad = c.prepare_raw("SELEC 1").err().unwrap();
        assert!(bad.msg.contains("syntax error"), "{}", bad.msg);
        drop(c);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_db(tag: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("alk-conn-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db").to_str().unwrap().to_string();
        (dir, path)
    }

    fn count(c: &Conn) -> i64 {
        c.conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn reader_snapshot_is_reused_until_a_commit_then_refreshed() {
        let (dir, path) = temp_db("snap");
        let w = Conn::open_writer(&path).unwrap();
        w.conn.execute_batch("CREATE TABLE t(x)").unwrap();
        let mut r = Conn::open_reader(&path).unwrap();
        assert!(r.shm.is_some(), "the -shm header should be mapped");
        r.fresh_read();
        assert_eq!(count(&r), 0);
        assert!(r.has_open_read());
        // Nothing committed: the same read transaction is kept.
        r.fresh_read();
        assert!(r.has_open_read());
        // A commit by the writer, then by a foreign connection: each is seen
        // by the very next statement.
        w.conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        r.fresh_read();
        assert_eq!(count(&r), 1);
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute("INSERT INTO t VALUES (2)", []).unwrap();
        r.fresh_read();
        assert_eq!(count(&r), 2);
        // Readers cannot write.
        assert!(r.conn.execute("INSERT INTO t VALUES (3)", []).is_err());
        r.end_read();
        assert!(!r.has_open_read() && r.autocommit());
        drop((r, w, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn statements_are_finalized_before_the_connection_closes() {
        let (dir, path) = temp_db("fin");
        let mut w = Conn::open_writer(&path).unwrap();
        w.conn.execute_batch("CREATE TABLE t(x)").unwrap();
        let (s1, _) = w.stmt_for_sql("SELECT x FROM t").unwrap();
        let (s2, _) = w.stmt_for_sql("SELECT x FROM t").unwrap();
        assert_eq!(s1, s2, "ad-hoc SQL is cached per connection");
        let handle = w.handle();
        assert!(!unsafe { ffi::sqlite3_next_stmt(handle, ptr::null_mut()) }.is_null());
        // Dropping must close cleanly (sqlite3_close fails with BUSY, and
        // leaks the file handle, if any statement is left unfinalized).
        drop(w);
        let fd_dir = std::path::Path::new("/proc/self/fd");
        if fd_dir.exists() {
            let open: Vec<_> = std::fs::read_dir(fd_dir)
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
                .filter(|p| p.to_string_lossy().contains(&path))
                .collect();
            assert!(open.is_empty(), "file still open: {open:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
