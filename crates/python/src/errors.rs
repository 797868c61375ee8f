//! convscope's errors as Python exceptions.
//!
//! Every exception raised by the package derives from `convscope.Error`, and also from the
//! built-in exception a Python programmer would catch for that kind of failure: `ValueError`
//! for bad inputs and options (`convscope.InvalidInput`), `OSError` for a file that cannot be
//! read or written (`convscope.FileError`), `FileNotFoundError` for a missing one
//! (`convscope.MissingFile`). The message is the CLI's one line (`error::one_line`).

use convscope::error::one_line;
use convscope::lower::{engine, image, onnx};
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception classes, made once per interpreter at import.
struct Classes {
    error: Py<PyType>,
    invalid: Py<PyType>,
    file: Py<PyType>,
    missing: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

/// A class `name(bases...)` in module `convscope`, made with `type()` so that it can have two
/// bases (a `create_exception!` class has one).
fn make_class<'py>(
    py: Python<'py>,
    name: &str,
    doc: &str,
    bases: Vec<Bound<'py, PyAny>>,
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__module__", "convscope")?;
    dict.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, bases)?;
    let class = py
        .get_type::<PyType>()
        .call1((name, bases, dict))?
        .cast_into::<PyType>()?;
    Ok(class.unbind())
}

/// Creates the exception classes and adds them to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let error = make_class(
        py,
        "Error",
        "Base of every exception convscope raises; the message is one line naming the problem.",
        vec![py.get_type::<PyException>().into_any()],
    )?;
    let invalid = make_class(
        py,
        "InvalidInput",
        "A bad input, option or model (also a ValueError).",
        vec![
            error.bind(py).clone().into_any(),
            py.get_type::<PyValueError>().into_any(),
        ],
    )?;
    let file = make_class(
        py,
        "FileError",
        "A file that cannot be read or written (also an OSError).",
        vec![
            error.bind(py).clone().into_any(),
            py.get_type::<PyOSError>().into_any(),
        ],
    )?;
    let missing = make_class(
        py,
        "MissingFile",
        "A file or folder that does not exist (also a FileNotFoundError).",
        vec![
            file.bind(py).clone().into_any(),
            py.get_type::<PyFileNotFoundError>().into_any(),
        ],
    )?;
    m.add("Error", error.bind(py))?;
    m.add("InvalidInput", invalid.bind(py))?;
    m.add("FileError", file.bind(py))?;
    m.add("MissingFile", missing.bind(py))?;
    // A second import in the same interpreter (importlib.reload) keeps the first classes, so
    // `except convscope.Error` written against either catches what is raised.
    let _ = CLASSES.set(
        py,
        Classes {
            error,
            invalid,
            file,
            missing,
        },
    );
    Ok(())
}

/// Which exception class an error raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `convscope.Error` itself (a cancelled job).
    Other,
    /// `convscope.InvalidInput` (ValueError).
    Invalid,
    /// `convscope.FileError` (OSError).
    File,
    /// `convscope.MissingFile` (FileNotFoundError).
    Missing,
}

fn io_kind(e: &std::io::Error) -> Kind {
    if e.kind() == std::io::ErrorKind::NotFound {
        Kind::Missing
    } else {
        Kind::File
    }
}

/// The exception class for a library error.
pub fn kind_of(err: &convscope::Error) -> Kind {
    use convscope::Error as E;
    match err {
        E::Io { reason, .. } => io_kind(reason),
        E::Image(image::Error::NotFound { .. }) => Kind::Missing,
        E::Image(image::Error::Io { error, .. }) => io_kind(error),
        E::Engine(engine::Error::Onnx(onnx::Error::Io { error, .. })) => io_kind(error),
        E::Cancelled => Kind::Other,
        _ => Kind::Invalid,
    }
}

/// A Python exception of `kind` with `message`.
pub fn raise(py: Python<'_>, kind: Kind, message: String) -> PyErr {
    let Some(c) = CLASSES.get(py) else {
        // Only reachable if the module failed half-way through its import.
        return PyValueError::new_err(message);
    };
    let class = match kind {
        Kind::Other => &c.error,
        Kind::Invalid => &c.invalid,
        Kind::File => &c.file,
        Kind::Missing => &c.missing,
    };
    PyErr::from_type(class.bind(py).clone(), message)
}

/// `convscope.InvalidInput` with `message`.
pub fn invalid(message: impl Into<String>) -> PyErr {
    Python::attach(|py| raise(py, Kind::Invalid, message.into()))
}

/// The Python exception for a library error: its class by [`kind_of`], the one-line message.
pub fn to_py(err: convscope::Error) -> PyErr {
    Python::attach(|py| raise(py, kind_of(&err), one_line(&err)))
}

/// `?` on a library result inside a binding.
pub trait OrRaise<T> {
    /// The value, or the error as a Python exception.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for convscope::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
