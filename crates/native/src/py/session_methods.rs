//! What Transaction and Snapshot share: running statements on their
//! session's connection, and the `#[pymethods]` macro that exposes them.

use super::exec_result::produced;
use super::row_iterator::RowIterator;
use super::statement::{statement_from, target, Statement};
use crate::exec::Out;
use crate::route::run_on;
use crate::session::Session;
use pyo3::prelude::*;
use std::sync::Arc;

pub fn sess_run(
    py: Python<'_>,
    sess: &Session,
    stmt: &Bound<'_, PyAny>,
    params: Option<&Bound<'_, PyAny>>,
    out: Out,
) -> PyResult<Py<PyAny>> {
    let t = target(stmt, sess.db())?;
    produced(py, sess.with_conn(|c| run_on(py, c, &t, params, out))?)
}

pub fn sess_iterate(
    py: Python<'_>,
    sess: &Arc<Session>,
    stmt: &Bound<'_, PyAny>,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<RowIterator> {
    let t = target(stmt, sess.db())?;
    Ok(RowIterator::start(py, sess.clone(), &t, params, false)?.expect("non-private iterator"))
}

/// Compile `sql` on the session's connection (sees its uncommitted schema).
pub fn sess_prepare(py: Python<'_>, sess: &Session, sql: &str) -> PyResult<Statement> {
    let db = sess.db().clone();
    sess.with_conn(|c| {
        // A setting compiles (and so takes effect) only on the writer.
        let writer = c.is_writer();
        let classified = c
            .prepare_classified(sql, writer)
            .map_err(|e| e.into_py(py))?;
        statement_from(py, &db, c, classified, sql)
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
            fn prepare(&self, py: Python<'_>, sql: &str) -> PyResult<$crate::py::statement::Statement> {
                $crate::py::session_methods::sess_prepare(py, &self.sess, sql)
            }

            #[pyo3(signature = (stmt, params=None))]
            fn execute(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                $crate::py::session_methods::sess_run(py, &self.sess, stmt, params, $crate::exec::Out::Exec)
            }

            #[pyo3(signature = (stmt, params=None))]
            fn fetchone(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                $crate::py::session_methods::sess_run(py, &self.sess, stmt, params, $crate::exec::Out::One)
            }

            #[pyo3(signature = (stmt, params=None))]
            fn fetchall(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                $crate::py::session_methods::sess_run(py, &self.sess, stmt, params, $crate::exec::Out::All)
            }

            /// honker-compatible: rows as dicts keyed by column name.
            #[pyo3(signature = (sql, params=None))]
            fn query(
                &self,
                py: Python<'_>,
                sql: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                $crate::py::session_methods::sess_run(py, &self.sess, sql, params, $crate::exec::Out::Dicts)
            }

            /// Stream rows one at a time on this session's connection.
            #[pyo3(signature = (stmt, params=None))]
            fn iterate(
                &self,
                py: Python<'_>,
                stmt: &Bound<'_, PyAny>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<$crate::py::row_iterator::RowIterator> {
                $crate::py::session_methods::sess_iterate(py, &self.sess, stmt, params)
            }

            $($extra)*
        }
    };
}
