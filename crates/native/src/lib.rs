//! Native core of alkdev-storage: a PyO3 session over honker-core.
//!
//! Small and fast on purpose: connections (one writer slot, a bounded
//! reader pool), prepared statement handles, transactions, value
//! conversion and honker's SQL functions. Everything else is Python.

mod conn;
mod database;
mod errors;
mod pool;
mod session;
mod watch;

use pyo3::prelude::*;

/// Version of the SQLite library compiled into this module.
#[pyfunction]
fn sqlite_version() -> String {
    rusqlite::version().to_string()
}

/// Raise a Rust panic (used by the tests to show that a panic surfaces as a
/// Python exception and never aborts the process).
#[pyfunction]
fn _panic_for_tests() {
    panic!("deliberate panic for tests");
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<database::Database>()?;
    m.add_class::<database::Statement>()?;
    m.add_class::<database::ExecResult>()?;
    m.add_class::<database::Transaction>()?;
    m.add_class::<database::Savepoint>()?;
    m.add_class::<database::Snapshot>()?;
    m.add_class::<database::RowIterator>()?;
    m.add_class::<watch::UpdateSubscription>()?;
    m.add_function(wrap_pyfunction!(sqlite_version, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add("sqlite_version_number", rusqlite::version_number())?;
    Ok(())
}
