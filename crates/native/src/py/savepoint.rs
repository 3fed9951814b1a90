//! `Savepoint`: a nested savepoint inside a Transaction.

use crate::errors::{InterfaceError, ProgrammingError};
use crate::session::Session;
use parking_lot::Mutex;
use pyo3::prelude::*;
use std::sync::Arc;

/// A nested savepoint: `with tx.savepoint():` (RELEASE on success,
/// ROLLBACK TO on an exception).
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct Savepoint {
    sess: Arc<Session>,
    level: Mutex<Option<(u32, u64)>>,
}

impl Savepoint {
    pub fn new(sess: Arc<Session>) -> Self {
        Savepoint {
            sess,
            level: Mutex::new(None),
        }
    }

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

    /// True between `__enter__` and its release or rollback.
    #[getter]
    fn active(&self) -> bool {
        self.level.lock().is_some()
    }

    fn __repr__(&self) -> String {
        let level = *self.level.lock();
        match level {
            Some((level, gen)) if self.sess.gen() == gen => format!(
                "<Savepoint active depth={level} of transaction {}>",
                self.sess.describe()
            ),
            Some(_) => format!(
                "<Savepoint ended (its transaction ended) {:?}>",
                self.sess.db().path
            ),
            None => format!("<Savepoint inactive {:?}>", self.sess.db().path),
        }
    }
}
