//! # convscope for Python
//!
//! The `convscope` Python module: PyO3 bindings over the `convscope` library facade. Every
//! call reads its Python arguments (copying arrays) with the GIL held, then releases the GIL
//! for the work: preparing the input, running the model, drawing pictures. Errors become
//! Python exceptions with the CLI's one-line message (module `errors`).
//!
//! The module is built with maturin (`pip install ./crates/python`); `convscope.pyi` beside
//! this crate's `pyproject.toml` is its type stub. The Python tests in `tests/python/` run from
//! `cargo test` through `tests/python_package.rs`.

mod errors;
mod examples;
mod fvis;
mod inputs;
mod interrupt;
mod model;
mod results;

use pyo3::prelude::*;

/// The module: `import convscope`.
#[pymodule(name = "convscope")]
fn convscope_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<results::PyInput>()?;
    m.add_class::<results::PyPicture>()?;
    m.add_class::<results::PyPredictions>()?;
    m.add_class::<results::PyActivations>()?;
    m.add_class::<results::PyCamMap>()?;
    m.add_class::<results::PySaliencyMap>()?;
    m.add_class::<results::PyFilterGrid>()?;
    m.add_class::<fvis::PyVisualization>()?;
    m.add_class::<examples::PyExamples>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CAM_METHODS", convscope::cam::method_names().to_vec())?;
    m.add(
        "SALIENCY_METHODS",
        convscope::saliency::saliency_method_names().to_vec(),
    )?;
    // Activations is a read-only mapping: register it so isinstance(acts, Mapping) holds.
    let abc = m.py().import("collections.abc")?;
    abc.getattr("Mapping")?
        .call_method1("register", (m.getattr("Activations")?,))?;
    Ok(())
}
