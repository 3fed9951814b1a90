//! `Statement`: a prepared statement, compiled once per connection and
//! reused; and turning a Python argument into a [`Target`].

use crate::conn::{Conn, StmtShared};
use crate::engine::DbInner;
use crate::errors::ProgrammingError;
use crate::route::Target;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use rusqlite::ffi;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A prepared statement: compiled once per connection and reused.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct Statement {
    pub shared: StmtShared,
    db: Arc<DbInner>,
}

impl Drop for Statement {
    fn drop(&mut self) {
        self.db.free_statement_slot(self.shared.slot);
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
        self.shared.reads()
    }

    fn __repr__(&self) -> String {
        format!("<Statement {:?}>", self.shared.sql)
    }
}

/// Build a Statement from `stmt` (just prepared on `conn`) and keep the
/// handle in `conn`'s statement slots, so its first run there is free.
pub fn statement_from(
    py: Python<'_>,
    db: &Arc<DbInner>,
    conn: &mut Conn,
    stmt: *mut ffi::sqlite3_stmt,
    sql: &str,
) -> PyResult<Statement> {
    let info = crate::sqltext::info_of(stmt, sql);
    let n = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
    let param_names = (1..=n)
        .map(|i| crate::bind::param_name(py, stmt, i).map(|s| s.unbind()))
        .collect();
    let columns = match PyTuple::new(py, crate::rows::column_names(py, stmt)) {
        Ok(t) => t.unbind(),
        Err(e) => {
            unsafe { ffi::sqlite3_finalize(stmt) };
            return Err(e);
        }
    };
    let (slot, id) = db.new_statement_slot();
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
            needs_writer: AtomicBool::new(false),
        },
        db: db.clone(),
    })
}

/// A Statement (of this engine) or SQL text.
pub fn target<'a>(obj: &'a Bound<'_, PyAny>, db: &DbInner) -> PyResult<Target<'a>> {
    if let Ok(s) = obj.cast::<Statement>() {
        let st: &'a Statement = s.get();
        if st.shared.db_id != db.id {
            return Err(foreign_statement(st, db));
        }
        return Ok(Target::Stmt(&st.shared));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Target::Sql(s.to_str()?));
    }
    Err(PyTypeError::new_err(format!(
        "expected a Statement or SQL str, not '{}'",
        obj.get_type().name()?
    )))
}

#[cold]
fn foreign_statement(st: &Statement, db: &DbInner) -> PyErr {
    let (theirs, ours) = (&st.db.path, &db.path);
    ProgrammingError::new_err(if theirs == ours {
        format!(
            "this Statement was prepared for an earlier opening of {ours:?} (closed since, or the \
             file was replaced): prepare it again with db.prepare(sql)"
        )
    } else {
        format!(
            "this Statement was prepared by another Database ({theirs:?}), not this one \
             ({ours:?}): prepare the SQL on this Database (db.prepare(sql)), or run the \
             Statement through a Database or transaction of {theirs:?}"
        )
    })
}
