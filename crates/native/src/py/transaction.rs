//! `Transaction`: a write transaction on the writer slot (BEGIN IMMEDIATE).

use super::exec_result::ExecResult;
use super::savepoint::Savepoint;
use super::statement::target;
use crate::errors;
use crate::exec::Out;
use crate::json::{notify_args, NOTIFY_SQL};
use crate::route::{executemany_on, run_on, Target};
use crate::session::Session;
use pyo3::prelude::*;
use std::sync::Arc;

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
        let t = target(stmt, self.sess.db())?;
        // All-or-nothing inside the transaction too: a savepoint around it.
        self.sess.with_conn(|c| {
            c.exec_raw(py, "SAVEPOINT _alk_many")?;
            match executemany_on(py, c, &t, seq_of_params) {
                Ok(r) => {
                    c.exec_raw(py, "RELEASE _alk_many")?;
                    Ok(ExecResult::from_parts(r))
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
        let t = Target::Sql(NOTIFY_SQL);
        self.sess
            .with_conn(|c| run_on(py, c, &t, Some(args.bind(py).as_any()), Out::One))?
            .first_int(py)
    }

    fn bootstrap_honker_schema(&self, py: Python<'_>) -> PyResult<()> {
        self.sess.with_conn(|c| {
            honker_core::bootstrap_honker_schema(&c.conn).map_err(|e| errors::core_error(py, &e))
        })
    }

    /// A nested savepoint: `with tx.savepoint():` (RELEASE on success,
    /// ROLLBACK TO on an exception).
    fn savepoint(&self) -> Savepoint {
        Savepoint::new(self.sess.clone())
    }

    fn __repr__(&self) -> String {
        format!("<Transaction {}>", self.sess.describe())
    }
});
