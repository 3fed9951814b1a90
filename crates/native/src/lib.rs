//! Native core of alkdev-storage: a PyO3 session over honker-core.
//!
//! Small and fast on purpose: connections (one writer slot, a bounded
//! reader pool), prepared statement handles, transactions, value
//! conversion and honker's SQL functions. Everything else is Python.
//!
//! Layers, each using only the ones before it:
//! 1. pure logic without Python: the `alkdev-storage-core` crate;
//! 2. one connection and the per-statement hot path: `errors`, `sqltext`,
//!    `gil`, `bind`, `rows`, `exec`, `authorize` (classification at prepare
//!    time), `conn` (open, WAL index, statement caches, control statements,
//!    scripts), `functions`, `json` (the payload codec);
//! 3. the engine of one file and what runs on it: `engine`, `route`,
//!    `session`;
//! 4. the Python classes: `py`.

mod authorize;
mod bind;
mod conn;
mod engine;
mod errors;
mod exec;
mod functions;
mod gil;
mod json;
mod py;
mod route;
mod rows;
mod session;
mod sqltext;
mod watcher;

use pyo3::prelude::*;

/// Version of the SQLite library compiled into this module.
#[pyfunction]
fn sqlite_version() -> String {
    rusqlite::version().to_string()
}

/// Next fire time (unix seconds) of a cron expression after `from_unix`,
/// in local time with DST handling (honker-core's parser: 5 or 6 fields,
/// `@every <duration>`). Raises ValueError naming a bad expression.
#[pyfunction]
fn cron_next_after(expr: &str, from_unix: i64) -> PyResult<i64> {
    honker_core::cron::next_after_unix(expr, from_unix).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "invalid schedule expression '{expr}': {e}"
        ))
    })
}

/// Raise a Rust panic (used by the tests to show that a panic surfaces as a
/// Python exception and never aborts the process).
#[pyfunction]
fn _panic_for_tests() {
    panic!("deliberate panic for tests");
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)?;
    m.add_function(wrap_pyfunction!(sqlite_version, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(cron_next_after, m)?)?;
    m.add_function(wrap_pyfunction!(json::encode_payload, m)?)?;
    m.add("sqlite_version_number", rusqlite::version_number())?;
    Ok(())
}
