//! `convscope.Visualization`: the pictures of `Model.visualize` (and of `Model.filters` with
//! the lucid or maco recipe).

use std::path::PathBuf;

use convscope::output::OutputDir;
use convscope::visualize::Visualization;
use convscope::TileStyle;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::OrRaise;
use crate::results::{png_of, py_json, tile_style, u8_array, PyPicture};

/// Feature-visualization pictures: one per objective (and per copy with `batch=`).
#[pyclass(module = "convscope", name = "Visualization", frozen)]
pub struct PyVisualization {
    pub vis: Visualization,
}

#[pymethods]
impl PyVisualization {
    /// Every picture: uint8, shape (pictures, height, width, 3), objective by objective.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, numpy::PyArrayDyn<u8>>> {
        let pictures = &self.vis.pictures;
        let (w, h) = pictures.first().map_or((0, 0), |p| {
            let s = p.picture.size();
            (s.width, s.height)
        });
        let mut data = Vec::with_capacity(pictures.len() * w * h * 3);
        for p in pictures {
            data.extend_from_slice(p.picture.rgb().as_raw());
        }
        u8_array(py, &[pictures.len(), h, w, 3], data)
    }

    /// The objective of each picture, as text (`'conv3:5'`, `'class:285'`, ...).
    #[getter]
    fn objectives(&self) -> Vec<String> {
        self.vis
            .pictures
            .iter()
            .map(|p| p.objective.clone())
            .collect()
    }

    /// Each finished picture's objective value, as the model sees it untransformed.
    #[getter]
    fn values(&self) -> Vec<f32> {
        self.vis.pictures.iter().map(|p| p.value).collect()
    }

    /// Each picture's objective at every step.
    #[getter]
    fn curves(&self) -> Vec<Vec<f32>> {
        self.vis.pictures.iter().map(|p| p.curve.clone()).collect()
    }

    /// The recipe: 'walkthrough', 'lucid' or 'maco'.
    #[getter]
    fn recipe(&self) -> &'static str {
        self.vis.recipe.name()
    }

    /// Optimisation steps run.
    #[getter]
    fn steps(&self) -> usize {
        self.vis.steps
    }

    /// The seed (the same seed gives the same pictures).
    #[getter]
    fn seed(&self) -> u64 {
        self.vis.seed
    }

    /// The `index.json` document `save(folder)` writes, as a dict.
    fn index<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py_json(py, &self.vis.index())
    }

    /// Every picture tiled into one; `grid=(columns, rows)`, `labels=True` writes each
    /// objective under its picture.
    #[pyo3(signature = (grid=None, margin=5, labels=false))]
    fn picture(
        &self,
        py: Python<'_>,
        grid: Option<(usize, usize)>,
        margin: usize,
        labels: bool,
    ) -> PyResult<PyPicture> {
        let style = tile_style(grid, margin, labels)?;
        Ok(PyPicture::new(
            py.detach(|| self.vis.grid(&style)).or_raise()?,
        ))
    }

    /// Writes the pictures, atomically: a path ending in `.png` gets the tiled picture; any
    /// other path becomes a folder with one PNG per picture, `grid.png` and `index.json`, as
    /// `convscope visualize --out` writes.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let is_png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        py.detach(|| {
            if is_png {
                self.vis.grid(&TileStyle::default())?.save(&path)
            } else {
                let mut out = OutputDir::create(&path)?;
                self.vis.write(&mut out)?;
                out.commit().map(drop)
            }
        })
        .or_raise()
    }

    fn __len__(&self) -> usize {
        self.vis.pictures.len()
    }

    /// Picture `i` (negative counts from the end).
    fn __getitem__(&self, i: isize) -> PyResult<PyPicture> {
        let n = self.vis.pictures.len() as isize;
        let j = if i < 0 { n + i } else { i };
        if !(0..n).contains(&j) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "picture {i} is out of range: {n} pictures"
            )));
        }
        Ok(PyPicture::new(
            self.vis.pictures[j as usize].picture.clone(),
        ))
    }

    fn _repr_png_(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        let style = TileStyle {
            labels: true,
            ..TileStyle::default()
        };
        let picture = py.detach(|| self.vis.grid(&style)).or_raise()?;
        png_of(py, &picture)
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.Visualization: {} pictures, {} recipe, {} steps>",
            self.vis.pictures.len(),
            self.vis.recipe.name(),
            self.vis.steps
        )
    }

    /// Each picture's numbers as a dict: objective, copy, value, curve.
    fn pictures<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.vis
            .pictures
            .iter()
            .map(|p| {
                let d = PyDict::new(py);
                d.set_item("objective", &p.objective)?;
                d.set_item("copy", p.copy)?;
                d.set_item("value", p.value)?;
                d.set_item("curve", p.curve.clone())?;
                Ok(d)
            })
            .collect()
    }
}
