//! A session: one connection held for a while — a write transaction on the
//! writer, a read snapshot on a reader, or the private reader of a
//! streaming iterator — plus the statements iterating on it.

use crate::conn::Conn;
use crate::engine::DbInner;
use crate::errors::{InterfaceError, ProgrammingError};
use parking_lot::Mutex;
use pyo3::prelude::*;
use rusqlite::ffi;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Holds the writer slot inside BEGIN IMMEDIATE.
    Write,
    /// Holds a reader inside a deferred BEGIN (a snapshot).
    Snapshot,
    /// Holds a reader in autocommit for one streaming statement.
    Stream,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    New,
    Active,
    Ended,
}

struct StmtPtr(*mut ffi::sqlite3_stmt);
// SAFETY: statements are only stepped by the thread that holds their
// connection (see Session::with_conn).
unsafe impl Send for StmtPtr {}

/// The state machine: New -> Active -> Ended. Only `Session`'s methods
/// touch it.
struct SessState {
    conn: Option<Conn>,
    status: Status,
    /// Savepoint depth.
    depth: u32,
    /// Bumped when the session ends, so iterators notice.
    gen: u64,
    /// Live iterator statements: (iterator id, statement).
    live: Vec<(u64, StmtPtr)>,
    /// Statements of dropped iterators, finalized when the connection is next held.
    orphans: Vec<StmtPtr>,
    next_iter: u64,
}

pub struct Session {
    db: Arc<DbInner>,
    kind: Kind,
    state: Mutex<SessState>,
}

impl Session {
    pub fn new(db: Arc<DbInner>, kind: Kind) -> Self {
        Session {
            db,
            kind,
            state: Mutex::new(SessState {
                conn: None,
                status: Status::New,
                depth: 0,
                gen: 0,
                live: Vec::new(),
                orphans: Vec::new(),
                next_iter: 0,
            }),
        }
    }

    /// The engine this session's connection belongs to.
    pub fn db(&self) -> &Arc<DbInner> {
        &self.db
    }

    fn what(&self) -> &'static str {
        match self.kind {
            Kind::Write => "transaction",
            Kind::Snapshot => "read snapshot",
            Kind::Stream => "iterator",
        }
    }

    pub fn is_active(&self) -> bool {
        self.state.lock().status == Status::Active
    }

    /// State for a `repr`: "new", "active" (with the savepoint depth when
    /// there are savepoints) or "ended", and the database path.
    pub fn describe(&self) -> String {
        let (status, depth) = {
            let st = self.state.lock();
            (st.status, st.depth)
        };
        let state = match status {
            Status::New => "new".to_string(),
            Status::Active if depth > 0 => format!("active depth={depth}"),
            Status::Active => "active".to_string(),
            Status::Ended => "ended".to_string(),
        };
        format!("{state} {:?}", self.db.path)
    }

    /// Take the connection and open the session.
    pub fn begin(&self, py: Python<'_>) -> PyResult<()> {
        {
            let st = self.state.lock();
            match st.status {
                Status::New => {}
                Status::Active => {
                    return Err(ProgrammingError::new_err(format!(
                        "this {} has already begun",
                        self.what()
                    )))
                }
                Status::Ended => {
                    return Err(InterfaceError::new_err(format!(
                        "this {} has ended; start a new one",
                        self.what()
                    )))
                }
            }
        }
        let mut conn = match self.kind {
            Kind::Write => self.db.acquire_writer(py)?,
            _ => self.db.acquire_reader(py)?,
        };
        conn.end_read();
        let started = match self.kind {
            Kind::Write => conn.begin_immediate(py),
            Kind::Snapshot => conn.exec_raw(py, "BEGIN; SELECT 1 FROM sqlite_schema LIMIT 1;"),
            Kind::Stream => Ok(()),
        };
        if let Err(e) = started {
            conn.rollback();
            self.db.give_back(self.kind == Kind::Write, conn);
            return Err(e);
        }
        let mut st = self.state.lock();
        st.conn = Some(conn);
        st.status = Status::Active;
        Ok(())
    }

    /// Begin a write session only if it needs no wait: the writer slot is
    /// free and the file's write lock can be had at once. False (nothing
    /// held) otherwise.
    pub fn try_begin(&self, py: Python<'_>) -> PyResult<bool> {
        debug_assert!(self.kind == Kind::Write);
        if self.state.lock().status != Status::New {
            return Err(ProgrammingError::new_err(format!(
                "this {} has already begun",
                self.what()
            )));
        }
        let Some(mut conn) = self.db.try_acquire_writer(py)? else {
            return Ok(false);
        };
        conn.end_read();
        match conn.try_begin_immediate(py) {
            Ok(true) => {}
            Ok(false) => {
                self.db.give_back(true, conn);
                return Ok(false);
            }
            Err(e) => {
                conn.rollback();
                self.db.give_back(true, conn);
                return Err(e);
            }
        }
        let mut st = self.state.lock();
        st.conn = Some(conn);
        st.status = Status::Active;
        Ok(true)
    }

    fn check_active(&self, st: &SessState) -> PyResult<()> {
        match st.status {
            Status::Active => Ok(()),
            Status::New => Err(InterfaceError::new_err(format!(
                "this {} has not begun: use it as a context manager (`with ...`)",
                self.what()
            ))),
            Status::Ended => Err(InterfaceError::new_err(format!(
                "this {} has ended; it cannot be used any more",
                self.what()
            ))),
        }
    }

    /// After `db.close()` a session can only end (rolling back).
    fn check_db_open(&self) -> PyResult<()> {
        if self.db.is_closed() {
            return Err(InterfaceError::new_err(format!(
                "Database is closed; this {} can no longer be used",
                self.what()
            )));
        }
        Ok(())
    }

    fn in_use(&self) -> PyErr {
        ProgrammingError::new_err(format!(
            "this {} is in use by another thread; a {} belongs to one thread at a time",
            self.what(),
            self.what()
        ))
    }

    /// Run `f` with the session's connection held exclusively. The
    /// connection is moved out of the lock for the call, so the lock is
    /// never held while SQLite runs with the GIL released.
    pub fn with_conn<R>(&self, f: impl FnOnce(&mut Conn) -> PyResult<R>) -> PyResult<R> {
        self.check_db_open()?;
        let mut conn = {
            let mut st = self.state.lock();
            self.check_active(&st)?;
            let conn = st.conn.take().ok_or_else(|| self.in_use())?;
            for s in st.orphans.drain(..) {
                unsafe { ffi::sqlite3_finalize(s.0) };
            }
            conn
        };
        let result = f(&mut conn);
        self.state.lock().conn = Some(conn);
        result
    }

    /// Commit (or roll back) and give the connection back. `strict`: an
    /// ended or unstarted session is an error (explicit commit/rollback);
    /// otherwise a no-op (context-manager exit).
    pub fn end(&self, py: Python<'_>, commit: bool, strict: bool) -> PyResult<()> {
        let mut conn = {
            let mut st = self.state.lock();
            if st.status != Status::Active {
                if strict {
                    self.check_active(&st)?;
                }
                return Ok(());
            }
            let conn = st.conn.take().ok_or_else(|| self.in_use())?;
            for s in st.orphans.drain(..) {
                unsafe { ffi::sqlite3_finalize(s.0) };
            }
            for (_, s) in st.live.drain(..) {
                unsafe { ffi::sqlite3_finalize(s.0) };
            }
            st.status = Status::Ended;
            st.gen += 1;
            st.depth = 0;
            conn
        };
        let closed = self.db.is_closed();
        let result = if commit && closed && self.kind == Kind::Write && !conn.autocommit() {
            Err(InterfaceError::new_err(
                "Database was closed before this transaction committed; it was rolled back",
            ))
        } else if commit && !conn.autocommit() {
            conn.commit(py)
        } else {
            Ok(())
        };
        // A failed COMMIT (or a rollback request) rolls everything back.
        conn.rollback();
        self.db.give_back(self.kind == Kind::Write, conn);
        result
    }

    /// Register a statement for an iterator; returns (iterator id, gen).
    pub fn add_live(&self, stmt: *mut ffi::sqlite3_stmt) -> (u64, u64) {
        let mut st = self.state.lock();
        st.next_iter += 1;
        let id = st.next_iter;
        st.live.push((id, StmtPtr(stmt)));
        (id, st.gen)
    }

    /// The live statement of iterator `id`, with the connection held.
    pub fn with_live<R>(
        &self,
        id: u64,
        gen: u64,
        f: impl FnOnce(&mut Conn, *mut ffi::sqlite3_stmt) -> PyResult<R>,
    ) -> PyResult<R> {
        self.check_db_open()?;
        let (mut conn, stmt) = {
            let mut st = self.state.lock();
            if st.gen != gen || st.status != Status::Active {
                return Err(InterfaceError::new_err(format!(
                    "the {} this iterator reads from has ended",
                    self.what()
                )));
            }
            let stmt = st
                .live
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, s)| s.0)
                .ok_or_else(|| InterfaceError::new_err("this iterator is closed"))?;
            let conn = st.conn.take().ok_or_else(|| self.in_use())?;
            for s in st.orphans.drain(..) {
                unsafe { ffi::sqlite3_finalize(s.0) };
            }
            (conn, stmt)
        };
        let result = f(&mut conn, stmt);
        self.state.lock().conn = Some(conn);
        result
    }

    /// Forget iterator `id`: finalize its statement now if the connection
    /// is free, else when it is next held.
    pub fn drop_live(&self, id: u64, gen: u64) {
        let mut st = self.state.lock();
        if st.gen != gen {
            return; // the session ended and finalized it already
        }
        if let Some(pos) = st.live.iter().position(|(i, _)| *i == id) {
            let (_, s) = st.live.swap_remove(pos);
            if st.conn.is_some() {
                unsafe { ffi::sqlite3_finalize(s.0) };
            } else {
                st.orphans.push(s);
            }
        }
    }

    pub fn push_savepoint(&self) -> u32 {
        let mut st = self.state.lock();
        st.depth += 1;
        st.depth
    }

    pub fn depth(&self) -> u32 {
        self.state.lock().depth
    }

    pub fn set_depth(&self, d: u32) {
        self.state.lock().depth = d;
    }

    pub fn gen(&self) -> u64 {
        self.state.lock().gen
    }

    /// End the session without Python (a dropped streaming iterator): its
    /// reader goes back to the pool; nothing to roll back.
    pub fn abandon(&self) {
        let mut st = self.state.lock();
        if let Some(conn) = st.conn.take() {
            st.status = Status::Ended;
            drop(st);
            self.db.give_back(self.kind == Kind::Write, conn);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session dropped while active (never exited) rolls back and
        // returns its connection.
        let st = self.state.get_mut();
        for s in st.orphans.drain(..) {
            unsafe { ffi::sqlite3_finalize(s.0) };
        }
        for (_, s) in st.live.drain(..) {
            unsafe { ffi::sqlite3_finalize(s.0) };
        }
        if let Some(mut conn) = st.conn.take() {
            conn.rollback();
            self.db.give_back(self.kind == Kind::Write, conn);
        }
        st.status = Status::Ended;
    }
}
