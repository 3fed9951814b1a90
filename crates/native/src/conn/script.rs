//! Scripts and raw SQL text run with `sqlite3_exec` (GIL released).

use super::Conn;
use crate::errors::{self, ProgrammingError};
use crate::gil::SendPtr;
use pyo3::prelude::*;
use rusqlite::ffi;
use std::ptr;

impl Conn {
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
        let csql = std::ffi::CString::new(sql).map_err(|e| {
            ProgrammingError::new_err(super::nul_message("script", sql, e.nul_position()))
        })?;
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
