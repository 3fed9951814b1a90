//! User-defined SQL functions written in Python, registered on every
//! connection of a Database (the writer and each reader, as they are next
//! taken), like `sqlite3.Connection.create_function` for the whole pool.

use crate::conn::Conn;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyMemoryView, PyString, PyTuple};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct FuncDef {
    pub name: String,
    pub nargs: i32,
    pub func: Py<PyAny>,
    pub deterministic: bool,
}

/// The functions of one Database and a generation counter, so each
/// connection registers what it has not seen yet when it is next taken.
#[derive(Default)]
pub struct Registry {
    defs: Mutex<Vec<Arc<FuncDef>>>,
    gen: AtomicU64,
}

impl Registry {
    pub fn add(&self, def: FuncDef) {
        let mut defs = self.defs.lock();
        // The same function registered again (a driver doing it per
        // connection): nothing to do, and no connection re-registers.
        if defs.iter().any(|d| {
            d.name == def.name
                && d.nargs == def.nargs
                && d.deterministic == def.deterministic
                && d.func.as_ptr() == def.func.as_ptr()
        }) {
            return;
        }
        defs.retain(|d| !(d.name.eq_ignore_ascii_case(&def.name) && d.nargs == def.nargs));
        defs.push(Arc::new(def));
        self.gen.fetch_add(1, Ordering::AcqRel);
    }

    /// Bring `conn` up to date (one atomic load when it already is).
    #[inline]
    pub fn apply(&self, conn: &mut Conn) {
        let gen = self.gen.load(Ordering::Acquire);
        if conn.func_gen == gen {
            return;
        }
        let defs: Vec<Arc<FuncDef>> = self.defs.lock().clone();
        for d in defs {
            // A name SQLite refuses was rejected when it was added.
            let _ = register(&conn.conn, d);
        }
        conn.func_gen = gen;
    }
}

fn register(conn: &rusqlite::Connection, def: Arc<FuncDef>) -> rusqlite::Result<()> {
    let mut flags = FunctionFlags::SQLITE_UTF8;
    if def.deterministic {
        flags |= FunctionFlags::SQLITE_DETERMINISTIC;
    }
    let name = def.name.clone();
    conn.create_scalar_function(name.as_str(), def.nargs, flags, move |ctx| call(&def, ctx))
}

fn user_error(msg: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(msg.into())
}

/// Run the Python function. The calling statement may be stepping with the
/// GIL released (by `step_nogil`, which uses the C API directly, so PyO3's
/// own bookkeeping may still believe the GIL is held): take it with
/// `PyGILState_Ensure`, which is right in both cases.
fn call(def: &FuncDef, ctx: &Context<'_>) -> rusqlite::Result<Value> {
    struct Gil(pyo3::ffi::PyGILState_STATE);
    impl Drop for Gil {
        fn drop(&mut self) {
            unsafe { pyo3::ffi::PyGILState_Release(self.0) };
        }
    }
    let _gil = Gil(unsafe { pyo3::ffi::PyGILState_Ensure() });
    // SAFETY: the GIL is held until `_gil` drops, after everything below.
    let py = unsafe { Python::assume_attached() };
    (|| {
        let mut args: Vec<Bound<'_, PyAny>> = Vec::with_capacity(ctx.len());
        for i in 0..ctx.len() {
            let v = match ctx.get_raw(i) {
                ValueRef::Null => py.None().into_bound(py),
                ValueRef::Integer(n) => n
                    .into_pyobject(py)
                    .map_err(|e| user_error(e.to_string()))?
                    .into_any(),
                ValueRef::Real(f) => PyFloat::new(py, f).into_any(),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => PyString::new(py, s).into_any(),
                    Err(_) => {
                        return Err(user_error(format!(
                            "argument {i} of {}() is text that is not valid UTF-8",
                            def.name
                        )))
                    }
                },
                ValueRef::Blob(b) => PyBytes::new(py, b).into_any(),
            };
            args.push(v);
        }
        let args = PyTuple::new(py, args).map_err(|e| user_error(e.to_string()))?;
        let out = def.func.bind(py).call1(args).map_err(|e| {
            user_error(format!(
                "user-defined function {}() raised {}: {}",
                def.name,
                e.get_type(py)
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                e.value(py)
            ))
        })?;
        to_value(def, &out)
    })()
}

fn to_value(def: &FuncDef, out: &Bound<'_, PyAny>) -> rusqlite::Result<Value> {
    if out.is_none() {
        Ok(Value::Null)
    } else if let Ok(b) = out.cast::<PyBool>() {
        Ok(Value::Integer(b.is_true() as i64))
    } else if out.is_instance_of::<PyInt>() {
        out.extract::<i64>().map(Value::Integer).map_err(|_| {
            user_error(format!(
                "{}() returned an int too large for SQLite (64-bit)",
                def.name
            ))
        })
    } else if let Ok(f) = out.cast::<PyFloat>() {
        Ok(Value::Real(f.value()))
    } else if let Ok(s) = out.cast::<PyString>() {
        s.to_str().map(|s| Value::Text(s.to_string())).map_err(|e| {
            user_error(format!(
                "{}() returned a str that is not UTF-8: {e}",
                def.name
            ))
        })
    } else if let Ok(b) = out.cast::<PyBytes>() {
        Ok(Value::Blob(b.as_bytes().to_vec()))
    } else if let Ok(b) = out.cast::<PyByteArray>() {
        Ok(Value::Blob(b.to_vec()))
    } else if out.is_instance_of::<PyMemoryView>() {
        out.call_method0("tobytes")
            .and_then(|b| b.extract::<Vec<u8>>())
            .map(Value::Blob)
            .map_err(|e| user_error(e.to_string()))
    } else {
        Err(user_error(format!(
            "{}() returned an unsupported type '{}'; return None, bool, int, float, str or bytes",
            def.name,
            out.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )))
    }
}
