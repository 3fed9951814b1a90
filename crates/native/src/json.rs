//! Notification payloads: the arguments of honker's `notify(channel,
//! payload)`, with the payload encoded as compact, strict JSON.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
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
    let text = encode_json(py, payload)?;
    Ok(PyTuple::new(py, [ch.as_any(), &text])?.unbind())
}

static JSON_ENCODE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// Payload JSON text: compact and strict (no NaN/Infinity, which other
/// honker bindings cannot parse). Any failure is a TypeError, raised before
/// anything is written.
fn encode_json<'py>(py: Python<'py>, payload: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let encode = JSON_ENCODE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("allow_nan", false)?;
        kwargs.set_item("separators", (",", ":"))?;
        let encoder = py
            .import("json")?
            .getattr("JSONEncoder")?
            .call((), Some(&kwargs))?;
        Ok(encoder.getattr("encode")?.unbind())
    })?;
    encode.bind(py).call1((payload,)).map_err(|e| {
        let tname = payload
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let err = PyTypeError::new_err(format!(
            "payload of type {tname} cannot be encoded as JSON: {}",
            e.value(py)
        ));
        err.set_cause(py, Some(e));
        err
    })
}
