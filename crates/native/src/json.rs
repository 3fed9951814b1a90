//! The one JSON payload codec: every payload written by this package
//! (notifications, jobs, stream events, schedules, results) is encoded by
//! [`encode`], exposed to Python as `_native.encode_payload`; and the
//! arguments of honker's `notify(channel, payload)`.
//!
//! Compact (`,` and `:` separators) and strict: NaN and the infinities are
//! refused, since they are not JSON and other honker bindings cannot parse
//! them. Every failure (an object JSON cannot represent, a circular
//! reference, NaN, too deep a nesting) is a `TypeError` naming the
//! payload's type, raised before anything is written.

use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

/// The SQL that inserts one notification.
pub const NOTIFY_SQL: &str = "SELECT notify(?1, ?2)";

pub fn notify_args(
    py: Python<'_>,
    channel: &Bound<'_, PyAny>,
    payload: &Bound<'_, PyAny>,
) -> PyResult<Py<PyTuple>> {
    let ch = channel.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "channel must be a str, not '{}'",
            channel
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if ch.to_str()?.is_empty() {
        return Err(PyValueError::new_err("channel must not be empty"));
    }
    let text = encode(py, payload, "payload")?;
    Ok(PyTuple::new(py, [ch.as_any(), &text])?.unbind())
}

static ENCODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// JSON text of `obj`. `what` names it in the error ("payload", "result value").
pub fn encode<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<Bound<'py, PyString>> {
    let encode = ENCODE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("allow_nan", false)?;
        kwargs.set_item("separators", (",", ":"))?;
        let encoder = py
            .import("json")?
            .getattr("JSONEncoder")?
            .call((), Some(&kwargs))?;
        Ok(encoder.getattr("encode")?.unbind())
    })?;
    match encode.bind(py).call1((obj,)) {
        Ok(text) => Ok(text.cast_into::<PyString>()?),
        // KeyboardInterrupt and other BaseExceptions pass through untouched.
        Err(e) if !e.is_instance_of::<PyException>(py) => Err(e),
        Err(e) => {
            let tname = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            let err = PyTypeError::new_err(format!(
                "{what} of type {tname} cannot be encoded as JSON: {}",
                e.value(py)
            ));
            err.set_cause(py, Some(e));
            Err(err)
        }
    }
}

/// JSON text of a payload: compact, strict (no NaN/Infinity). Raises
/// TypeError naming the payload's type when it cannot be encoded.
#[pyfunction]
#[pyo3(signature = (obj, what = "payload"))]
pub fn encode_payload<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<Bound<'py, PyString>> {
    encode(py, obj, what)
}
