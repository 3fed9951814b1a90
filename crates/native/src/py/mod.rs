//! The Python classes of the native module, one file each. They are thin:
//! argument checks and conversions, then a call into the engine
//! (`engine`, `route`, `session`).

#[macro_use]
mod session_methods;
pub mod database;
pub mod exec_result;
pub mod row_iterator;
pub mod savepoint;
pub mod snapshot;
pub mod statement;
pub mod transaction;
pub mod update_subscription;

use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<database::Database>()?;
    m.add_class::<statement::Statement>()?;
    m.add_class::<exec_result::ExecResult>()?;
    m.add_class::<transaction::Transaction>()?;
    m.add_class::<savepoint::Savepoint>()?;
    m.add_class::<snapshot::Snapshot>()?;
    m.add_class::<row_iterator::RowIterator>()?;
    m.add_class::<update_subscription::UpdateSubscription>()?;
    m.add_class::<update_subscription::WakeSink>()?;
    Ok(())
}
