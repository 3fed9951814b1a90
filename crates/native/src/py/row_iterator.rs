//! `RowIterator`: streams the rows of one statement, one tuple at a time.

use crate::bind::{self, bind_params, Keep};
use crate::errors;
use crate::gil::step_nogil;
use crate::route::{self, Place, Target};
use crate::rows::row_tuple;
use crate::session::Session;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rusqlite::ffi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Streams the rows of one statement, one tuple at a time.
#[pyclass(frozen, module = "alkdev_storage._native")]
pub struct RowIterator {
    sess: Arc<Session>,
    id: u64,
    gen: u64,
    /// The iterator owns its session (Database.iterate): end it when done.
    private: bool,
    done: AtomicBool,
    /// Private copy of the parameters: bound text/blobs point into it.
    _params: Option<Py<PyAny>>,
}

impl RowIterator {
    pub fn start(
        py: Python<'_>,
        sess: Arc<Session>,
        t: &Target<'_>,
        params: Option<&Bound<'_, PyAny>>,
        private: bool,
    ) -> PyResult<Option<RowIterator>> {
        // Keep our own container of the parameter objects alive for as long
        // as the statement may be stepped.
        let kept = (|| -> PyResult<Option<Bound<'_, PyAny>>> {
            Ok(match params {
                None => None,
                Some(p) if p.is_none() => None,
                Some(p) if p.is_exact_instance_of::<PyTuple>() => Some(p.clone()),
                Some(p) if p.cast::<PyDict>().is_ok() => {
                    Some(PyDict::from_sequence(&p.call_method0("items")?)?.into_any())
                }
                Some(p) if bind::is_mapping(p)? => {
                    // Any mapping: keys() and __getitem__, as when binding.
                    let d = PyDict::new(py);
                    for k in p.call_method0("keys")?.try_iter()? {
                        let k = k?;
                        d.set_item(&k, p.get_item(&k)?)?;
                    }
                    Some(d.into_any())
                }
                Some(p) => {
                    bind::check_sequence(p)?;
                    Some(PyTuple::new(py, p.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.into_any())
                }
            })
        })();
        let kept = match kept {
            Ok(k) => k,
            Err(e) => {
                if private {
                    let _ = sess.end(py, false, false);
                }
                return Err(e);
            }
        };
        let (sql, names, known) = match t {
            Target::Stmt(s) => (s.sql.as_str(), Some(&s.param_names[..]), Some(s.info)),
            Target::Sql(sql) => (*sql, None, None),
        };
        let r = sess.with_conn(|c| {
            // A private iterator reads on a pooled reader outside any
            // session: a setting is never compiled there (null handle).
            let writer = c.is_writer();
            let (stmt, info) = match known {
                Some(info) => {
                    if !private {
                        route::check_session(&info, writer)?;
                    }
                    (c.prepare_raw(sql).map_err(|e| e.into_py(py))?, info)
                }
                None => {
                    let cl = c
                        .prepare_classified(sql, writer)
                        .map_err(|e| e.into_py(py))?;
                    (cl.stmt, cl.class.info)
                }
            };
            let finalize = || {
                if !stmt.is_null() {
                    unsafe { ffi::sqlite3_finalize(stmt) };
                }
            };
            if !private {
                if let Err(e) = route::check_session(&info, writer) {
                    finalize();
                    return Err(e);
                }
            }
            match route::place(&info) {
                Place::Refused => {
                    finalize();
                    return Err(route::txn_control_error());
                }
                // Database.iterate: a statement that belongs on the writer
                // runs there instead (the caller falls back).
                Place::Writer | Place::WriterImmediate if private => {
                    finalize();
                    return Ok(None);
                }
                _ => {}
            }
            // `kept` is our private container: its items outlive the iterator.
            let mut keep = Keep::default();
            if let Err(e) = unsafe { bind_params(py, stmt, kept.as_ref(), names, &mut keep) } {
                finalize();
                return Err(e);
            }
            Ok(Some(stmt))
        });
        let stmt = match r {
            Ok(Some(s)) => s,
            Ok(None) => {
                let _ = sess.end(py, false, false);
                return Ok(None);
            }
            Err(e) => {
                if private {
                    let _ = sess.end(py, false, false);
                }
                return Err(e);
            }
        };
        let (id, gen) = sess.add_live(stmt);
        Ok(Some(RowIterator {
            sess,
            id,
            gen,
            private,
            done: AtomicBool::new(false),
            _params: kept.map(|k| k.unbind()),
        }))
    }

    fn finish(&self, py: Python<'_>) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        self.sess.drop_live(self.id, self.gen);
        if self.private {
            let _ = self.sess.end(py, false, false);
        }
    }
}

#[pymethods]
impl RowIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.done.load(Ordering::Acquire) {
            return Ok(None);
        }
        let r = self.sess.with_live(self.id, self.gen, |c, stmt| unsafe {
            match step_nogil(stmt) {
                ffi::SQLITE_ROW => Ok(Some(
                    Bound::from_owned_ptr(
                        py,
                        row_tuple(py, stmt, ffi::sqlite3_column_count(stmt))?,
                    )
                    .unbind(),
                )),
                ffi::SQLITE_DONE => Ok(None),
                _ => Err(errors::last_error(py, c.handle())),
            }
        });
        match r {
            Ok(Some(row)) => Ok(Some(row)),
            Ok(None) => {
                self.finish(py);
                Ok(None)
            }
            Err(e) => {
                self.finish(py);
                Err(e)
            }
        }
    }

    /// Stop early and give the connection back (idempotent).
    fn close(&self, py: Python<'_>) {
        self.finish(py);
    }

    fn __repr__(&self) -> String {
        let state = if self.done.load(Ordering::Acquire) {
            "done"
        } else {
            "active"
        };
        let owner = if self.private {
            "own reader"
        } else {
            "session"
        };
        format!(
            "<RowIterator {state} on its {owner} {:?}>",
            self.sess.db().path
        )
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.finish(py);
        false
    }
}

impl Drop for RowIterator {
    fn drop(&mut self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.sess.drop_live(self.id, self.gen);
            if self.private {
                // No Python needed: roll back nothing, just give the reader back.
                self.sess.abandon();
            }
        }
    }
}
