//! `Statement`: a prepared statement, compiled once per connection and
//! reused; and turning a Python argument into a [`Target`].

use crate::authorize::Classified;
use crate::conn::{Conn, StmtShared};
use crate::engine::DbInner;
use crate::errors::ProgrammingError;
use crate::route::Target;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use rusqlite::ffi;
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

    /// True when the statement only reads (`kind == "read"`).
    #[getter]
    fn readonly(&self) -> bool {
        self.shared.info.readonly()
    }

    /// Where the statement belongs, classified once when it was compiled:
    /// "read", "write", "read_writes", "transaction" or "connection".
    #[getter]
    fn kind(&self) -> &'static str {
        self.shared.info.kind.as_str()
    }

    /// For transaction control: (action, savepoint name), the action one of
    /// begin/commit/rollback/savepoint/release/rollback_to; else None.
    #[getter]
    fn control(&self) -> Option<(&'static str, Option<&str>)> {
        self.shared
            .control
            .as_ref()
            .map(|(c, name)| (c.as_str(), name.as_deref()))
    }

    /// True for CREATE/DROP/ALTER/REINDEX/ANALYZE.
    #[getter]
    fn is_ddl(&self) -> bool {
        self.shared.info.is_ddl
    }

    /// True when the statement creates, drops or names a TEMP object.
    #[getter]
    fn uses_temp(&self) -> bool {
        self.shared.info.uses_temp
    }

    /// Declared type of each result column (None for expressions).
    #[getter]
    fn decltypes(&self, py: Python<'_>) -> Py<PyTuple> {
        self.shared.decltypes.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Statement {} {:?}>",
            self.shared.info.kind.as_str(),
            self.shared.sql
        )
    }
}

/// Build a Statement from `c` (just compiled and classified on `conn`) and
/// keep the handle in `conn`'s statement slots, so its first run there is
/// free. A null handle (a PRAGMA setting met on a reader) is compiled where
/// it runs, when it first runs.
pub fn statement_from(
    py: Python<'_>,
    db: &Arc<DbInner>,
    conn: &mut Conn,
    c: Classified,
    sql: &str,
) -> PyResult<Statement> {
    let stmt = c.stmt;
    let built = (|| -> PyResult<_> {
        let n = if stmt.is_null() {
            0
        } else {
            unsafe { ffi::sqlite3_bind_parameter_count(stmt) }
        };
        let param_names: Vec<Option<Py<PyString>>> = (1..=n)
            .map(|i| crate::bind::param_name(py, stmt, i).map(|s| s.unbind()))
            .collect();
        let (columns, decltypes) = c.shape(sql);
        Ok((
            n,
            param_names,
            PyTuple::new(py, columns)?.unbind(),
            PyTuple::new(py, decltypes)?.unbind(),
        ))
    })();
    let (n, param_names, columns, decltypes) = match built {
        Ok(b) => b,
        Err(e) => {
            if !stmt.is_null() {
                unsafe { ffi::sqlite3_finalize(stmt) };
            }
            return Err(e);
        }
    };
    let (slot, id) = db.new_statement_slot();
    if !stmt.is_null() {
        conn.adopt(slot, id, stmt);
    }
    Ok(Statement {
        shared: StmtShared {
            db_id: db.id,
            id,
            slot,
            sql: sql.to_string(),
            info: c.class.info,
            control: c.class.control,
            param_count: n,
            param_names,
            columns,
            decltypes,
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
