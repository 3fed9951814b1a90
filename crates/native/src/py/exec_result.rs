//! `ExecResult`: what a write returns (rows changed, last insert rowid).

use crate::exec::Produced;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

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

impl ExecResult {
    pub fn from_parts((changes, lastrowid): (i64, i64)) -> Self {
        ExecResult { changes, lastrowid }
    }
}

/// The Python value of a run: rows as produced, or an ExecResult.
pub fn produced(py: Python<'_>, p: Produced) -> PyResult<Py<PyAny>> {
    match p {
        Produced::Obj(o) => Ok(o),
        Produced::Exec { changes, lastrowid } => {
            Ok(Py::new(py, ExecResult { changes, lastrowid })?.into_any())
        }
    }
}
