//! Binding Python parameters to a statement: the per-statement hot path.
//! Text and bytes are bound without copying (the caller keeps the objects
//! alive until the statement is reset, see [`Keep`]).

use crate::errors::{self, DataError, ProgrammingError};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::ffi as pyffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rusqlite::ffi;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;

fn param_label(stmt: *mut ffi::sqlite3_stmt, idx: c_int) -> String {
    let name = unsafe { ffi::sqlite3_bind_parameter_name(stmt, idx) };
    if name.is_null() {
        format!("parameter {idx}")
    } else {
        format!(
            "parameter {idx} ({})",
            unsafe { CStr::from_ptr(name) }.to_string_lossy()
        )
    }
}

/// Bind one Python value. Text and bytes are bound without copying: the
/// caller keeps the parameter objects alive until the statement is reset,
/// and every parameter is rebound before each execution.
///
/// # Safety
/// `stmt` valid; GIL held; `obj` alive until the statement is reset.
#[inline]
unsafe fn bind_value(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    idx: c_int,
    obj: *mut pyffi::PyObject,
) -> PyResult<()> {
    let ty = pyffi::Py_TYPE(obj);
    let rc = if obj == pyffi::Py_None() {
        ffi::sqlite3_bind_null(stmt, idx)
    } else if ty == &raw mut pyffi::PyLong_Type
        || (ty != &raw mut pyffi::PyBool_Type && pyffi::PyLong_Check(obj) != 0)
    {
        let mut overflow: c_int = 0;
        let v = pyffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        if overflow != 0 {
            return Err(PyOverflowError::new_err(format!(
                "{}: Python int too large to convert to SQLite INTEGER (64-bit)",
                param_label(stmt, idx)
            )));
        }
        if v == -1 && !pyffi::PyErr_Occurred().is_null() {
            return Err(PyErr::fetch(py));
        }
        ffi::sqlite3_bind_int64(stmt, idx, v)
    } else if ty == &raw mut pyffi::PyUnicode_Type || pyffi::PyUnicode_Check(obj) != 0 {
        let mut size: pyffi::Py_ssize_t = 0;
        let data = pyffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
        if data.is_null() {
            let cause = PyErr::fetch(py);
            let err = DataError::new_err(format!(
                "{}: str cannot be encoded as UTF-8",
                param_label(stmt, idx)
            ));
            err.set_cause(py, Some(cause));
            return Err(err);
        }
        ffi::sqlite3_bind_text64(
            stmt,
            idx,
            data,
            size as u64,
            ffi::SQLITE_STATIC(),
            ffi::SQLITE_UTF8 as u8,
        )
    } else if ty == &raw mut pyffi::PyFloat_Type || pyffi::PyFloat_Check(obj) != 0 {
        ffi::sqlite3_bind_double(stmt, idx, pyffi::PyFloat_AsDouble(obj))
    } else if ty == &raw mut pyffi::PyBool_Type {
        ffi::sqlite3_bind_int64(stmt, idx, (obj == pyffi::Py_True()) as i64)
    } else if ty == &raw mut pyffi::PyBytes_Type || pyffi::PyBytes_Check(obj) != 0 {
        let mut data: *mut c_char = ptr::null_mut();
        let mut size: pyffi::Py_ssize_t = 0;
        if pyffi::PyBytes_AsStringAndSize(obj, &mut data, &mut size) != 0 {
            return Err(PyErr::fetch(py));
        }
        ffi::sqlite3_bind_blob64(
            stmt,
            idx,
            data as *const _,
            size as u64,
            ffi::SQLITE_STATIC(),
        )
    } else if pyffi::PyByteArray_Check(obj) != 0 || ty == &raw mut pyffi::PyMemoryView_Type {
        let mut view: pyffi::Py_buffer = std::mem::zeroed();
        if pyffi::PyObject_GetBuffer(obj, &mut view, pyffi::PyBUF_SIMPLE) != 0 {
            let cause = PyErr::fetch(py);
            let err = PyTypeError::new_err(format!(
                "{}: buffer is not C-contiguous bytes",
                param_label(stmt, idx)
            ));
            err.set_cause(py, Some(cause));
            return Err(err);
        }
        let rc = ffi::sqlite3_bind_blob64(
            stmt,
            idx,
            view.buf as *const _,
            view.len as u64,
            ffi::SQLITE_TRANSIENT(),
        );
        pyffi::PyBuffer_Release(&mut view);
        rc
    } else {
        let bound = Bound::from_borrowed_ptr(py, obj);
        let tname = bound
            .get_type()
            .fully_qualified_name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(PyTypeError::new_err(format!(
            "{}: unsupported type '{tname}'; use None, bool, int, float, str, bytes, bytearray or memoryview",
            param_label(stmt, idx)
        )));
    };
    if rc != ffi::SQLITE_OK {
        return Err(errors::code_error(py, rc));
    }
    Ok(())
}

fn count_error(n: c_int, len: impl std::fmt::Display) -> PyErr {
    ProgrammingError::new_err(format!(
        "incorrect number of bindings supplied: the statement uses {n}, and {len} were supplied"
    ))
}

/// Bind `params` (None, a sequence or a mapping) to every parameter of
/// `stmt`. `names` are the cached parameter names of a prepared Statement.
///
/// # Safety
/// `stmt` valid; GIL held.
pub unsafe fn bind_params(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    params: Option<&Bound<'_, PyAny>>,
    names: Option<&[Option<Py<PyString>>]>,
    keep: &mut Keep,
) -> PyResult<()> {
    let n = ffi::sqlite3_bind_parameter_count(stmt);
    let params = match params {
        Some(p) if !p.is_none() => p,
        _ => {
            if n != 0 {
                return Err(count_error(n, 0));
            }
            return Ok(());
        }
    };
    let obj = params.as_ptr();
    let ty = pyffi::Py_TYPE(obj);
    if ty == &raw mut pyffi::PyTuple_Type || ty == &raw mut pyffi::PyList_Type {
        let is_tuple = ty == &raw mut pyffi::PyTuple_Type;
        let len = if is_tuple {
            pyffi::PyTuple_Size(obj)
        } else {
            pyffi::PyList_Size(obj)
        };
        if len != n as pyffi::Py_ssize_t {
            return Err(count_error(n, len));
        }
        for i in 0..n {
            let item = if is_tuple {
                pyffi::PyTuple_GetItem(obj, i as pyffi::Py_ssize_t)
            } else {
                // A list can be mutated by another thread while the step
                // runs without the GIL: hold the bound objects.
                let it = pyffi::PyList_GetItem(obj, i as pyffi::Py_ssize_t);
                keep.hold(it);
                it
            };
            bind_value(py, stmt, i + 1, item)?;
        }
        return Ok(());
    }
    if let Ok(dict) = params.cast::<PyDict>() {
        return bind_mapping(py, stmt, params, Some(dict), n, names, keep);
    }
    if is_mapping(params)? {
        return bind_mapping(py, stmt, params, None, n, names, keep);
    }
    check_sequence(params)?;
    let len = params.len()?;
    if len != n as usize {
        return Err(count_error(n, len));
    }
    for i in 0..n {
        let item = params.get_item(i)?;
        keep.hold(item.as_ptr());
        bind_value(py, stmt, i + 1, item.as_ptr())?;
    }
    Ok(())
}

/// The one error for a params argument that is neither a sequence nor a
/// mapping (str and bytes count as neither).
pub fn params_type_error(params: &Bound<'_, PyAny>) -> PyErr {
    ProgrammingError::new_err(format!(
        "parameters must be a sequence or a mapping, not {}",
        params
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into())
    ))
}

/// A mapping other than a `dict` (which callers test first): anything with
/// `keys()` that is not a str or bytes.
pub fn is_mapping(params: &Bound<'_, PyAny>) -> PyResult<bool> {
    if is_text(params) {
        return Ok(false);
    }
    params.hasattr(pyo3::intern!(params.py(), "keys"))
}

fn is_text(params: &Bound<'_, PyAny>) -> bool {
    params.is_instance_of::<PyString>()
        || params.is_instance_of::<pyo3::types::PyBytes>()
        || params.is_instance_of::<pyo3::types::PyByteArray>()
}

/// Ok for a sequence of parameters (not a str or bytes), else the one
/// params error.
pub fn check_sequence(params: &Bound<'_, PyAny>) -> PyResult<()> {
    if is_text(params) || unsafe { pyffi::PySequence_Check(params.as_ptr()) } == 0 {
        return Err(params_type_error(params));
    }
    Ok(())
}

/// Bind named parameters from a mapping: a `dict` (given as `dict`, looked
/// up through the C API) or any object with `keys()` and `__getitem__`.
///
/// # Safety
/// As [`bind_params`].
unsafe fn bind_mapping(
    py: Python<'_>,
    stmt: *mut ffi::sqlite3_stmt,
    params: &Bound<'_, PyAny>,
    dict: Option<&Bound<'_, PyDict>>,
    n: c_int,
    names: Option<&[Option<Py<PyString>>]>,
    keep: &mut Keep,
) -> PyResult<()> {
    let missing = |key: &Bound<'_, PyString>| {
        ProgrammingError::new_err(format!(
            "you did not supply a value for binding parameter :{}",
            key.to_string_lossy()
        ))
    };
    for i in 1..=n {
        let key: Bound<'_, PyString> = match names.and_then(|v| v.get((i - 1) as usize)) {
            Some(Some(k)) => k.bind(py).clone(),
            Some(None) => return Err(positional_in_mapping(i)),
            None => match param_name(py, stmt, i) {
                Some(k) => k,
                None => return Err(positional_in_mapping(i)),
            },
        };
        // The mapping can be mutated by another thread while the step runs
        // without the GIL: `keep` holds every bound object.
        match dict {
            Some(d) => {
                let item = pyffi::PyDict_GetItemWithError(d.as_ptr(), key.as_ptr());
                if item.is_null() {
                    if !pyffi::PyErr_Occurred().is_null() {
                        return Err(PyErr::fetch(py));
                    }
                    return Err(missing(&key));
                }
                keep.hold(item);
                bind_value(py, stmt, i, item)?;
            }
            None => {
                let item = match params.get_item(&key) {
                    Ok(v) => v,
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => {
                        return Err(missing(&key))
                    }
                    Err(e) => return Err(e),
                };
                keep.hold(item.as_ptr());
                bind_value(py, stmt, i, item.as_ptr())?;
            }
        }
    }
    Ok(())
}

/// Strong references to parameter objects whose text/blob is bound without
/// copying, held until the statement has been reset.
#[derive(Default)]
pub struct Keep(Vec<*mut pyffi::PyObject>);

impl Keep {
    #[inline]
    pub fn hold(&mut self, obj: *mut pyffi::PyObject) {
        unsafe { pyffi::Py_IncRef(obj) };
        self.0.push(obj);
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        // Only ever dropped with the GIL held (inside a Python call).
        for o in self.0.drain(..) {
            unsafe { pyffi::Py_DecRef(o) };
        }
    }
}

fn positional_in_mapping(i: c_int) -> PyErr {
    ProgrammingError::new_err(format!(
        "parameter {i} is positional (?), but the parameters were given as a mapping"
    ))
}

/// Name of parameter `i` without its prefix character.
pub fn param_name<'py>(
    py: Python<'py>,
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
) -> Option<Bound<'py, PyString>> {
    let name = unsafe { ffi::sqlite3_bind_parameter_name(stmt, i) };
    if name.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    if s.starts_with('?') {
        return None;
    }
    Some(PyString::new(py, &s[1..]))
}
