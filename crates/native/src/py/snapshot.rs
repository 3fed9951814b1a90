//! `Snapshot`: a consistent read snapshot on a reader.

use crate::session::Session;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::Arc;

/// A consistent read snapshot on a reader (deferred BEGIN). Never blocks
/// the writer.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct Snapshot {
    pub sess: Arc<Session>,
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

    fn __repr__(&self) -> String {
        format!("<Snapshot {}>", self.sess.describe())
    }
});
