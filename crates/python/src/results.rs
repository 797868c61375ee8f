//! The Python result types: each shows itself in Jupyter (`_repr_png_` / `_repr_html_`), saves
//! itself (`save(path)`, atomically) and gives its numbers as numpy arrays (`numpy()`).

use std::path::PathBuf;

use convscope::output::OutputDir;
use convscope::progress::NoProgress;
use convscope::{Colormap, GridStyle, Input, OverlayStyle, Picture, TileStyle};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::{invalid, OrRaise};
use crate::inputs::short_repr;

/// A float32 numpy array of `shape` that takes over `values` (no copy).
pub fn f32_array<'py>(
    py: Python<'py>,
    shape: &[usize],
    values: Vec<f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| invalid(format!("internal shape mismatch: {e}")))?;
    Ok(a.into_pyarray(py))
}

/// A uint8 numpy array of `shape` that takes over `values`.
pub fn u8_array<'py>(
    py: Python<'py>,
    shape: &[usize],
    values: Vec<u8>,
) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| invalid(format!("internal shape mismatch: {e}")))?;
    Ok(a.into_pyarray(py))
}

/// A serializable value (an `index.json` document) as Python data (dicts, lists, numbers).
pub fn py_json<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| invalid(format!("cannot encode the document: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// The tiling of a grid picture, refusing margins too large to be meant.
pub fn tile_style(
    grid: Option<(usize, usize)>,
    margin: usize,
    labels: bool,
) -> PyResult<TileStyle> {
    if margin > 1024 {
        return Err(invalid(format!(
            "margin must be at most 1024 pixels, got {margin}"
        )));
    }
    Ok(TileStyle {
        grid,
        margin,
        labels,
    })
}

fn parse_colormap(name: &str) -> PyResult<Colormap> {
    name.parse::<Colormap>().map_err(|e| invalid(e.to_string()))
}

pub fn png_of(py: Python<'_>, picture: &Picture) -> PyResult<Py<PyBytes>> {
    let bytes = py.detach(|| picture.png_bytes_fast()).or_raise()?;
    Ok(PyBytes::new(py, &bytes).unbind())
}

fn save_picture(py: Python<'_>, picture: &Picture, path: PathBuf) -> PyResult<()> {
    py.detach(|| picture.save(&path)).or_raise()
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `<img>` of a picture as a data URI, for `_repr_html_`.
pub fn img_tag(py: Python<'_>, picture: &Picture, alt: &str) -> PyResult<String> {
    let png = py.detach(|| picture.png_bytes_fast()).or_raise()?;
    let b64: String = py
        .import("base64")?
        .call_method1("b64encode", (PyBytes::new(py, &png),))?
        .call_method1("decode", ("ascii",))?
        .extract()?;
    Ok(format!(
        "<img alt=\"{}\" src=\"data:image/png;base64,{b64}\"/>",
        escape(alt)
    ))
}

/// An 8-bit RGB picture: a grid, a heatmap, an overlay.
#[pyclass(module = "convscope", name = "Picture", frozen)]
pub struct PyPicture {
    pub picture: Picture,
}

impl PyPicture {
    pub fn new(picture: Picture) -> PyPicture {
        PyPicture { picture }
    }
}

#[pymethods]
impl PyPicture {
    /// The pixels: uint8, shape (height, width, 3), RGB.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let s = self.picture.size();
        u8_array(
            py,
            &[s.height, s.width, 3],
            self.picture.rgb().as_raw().clone(),
        )
    }

    /// (width, height) in pixels.
    #[getter]
    fn size(&self) -> (usize, usize) {
        let s = self.picture.size();
        (s.width, s.height)
    }

    /// Writes a PNG file atomically (a temporary file renamed into place).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        save_picture(py, &self.picture, path)
    }

    /// PNG-encoded bytes.
    fn png(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        png_of(py, &self.picture)
    }

    fn _repr_png_(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        png_of(py, &self.picture)
    }

    fn __repr__(&self) -> String {
        format!("<convscope.Picture {}>", self.picture.size())
    }
}

/// An input prepared for a model: the tensor it runs on and the picture it sees.
#[pyclass(module = "convscope", name = "Input", frozen)]
pub struct PyInput {
    pub input: Input,
}

#[pymethods]
impl PyInput {
    /// The model input: float32, a batch of one in the model's layout.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let t = self.input.tensor();
        f32_array(py, t.shape(), t.data().to_vec())
    }

    /// The shape of the model input (batch axis included).
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.input.tensor().shape().to_vec()
    }

    /// Where the input came from: a path, `image` or `tensor`.
    #[getter]
    fn source(&self) -> String {
        self.input.source().to_string()
    }

    /// The image as the model sees it (resized, cropped, before normalisation).
    #[getter]
    fn image(&self) -> PyPicture {
        PyPicture::new(self.input.display().to_picture())
    }

    fn _repr_png_(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        png_of(py, &self.input.display().to_picture())
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.Input {} shape={:?}>",
            self.input.source(),
            self.input.tensor().shape()
        )
    }
}

/// A classifier's prediction: the top classes and every class's probability.
#[pyclass(module = "convscope", name = "Predictions", frozen)]
pub struct PyPredictions {
    pub top: Vec<(usize, String, f32)>,
    pub probabilities: Vec<f32>,
    pub logits: Option<Vec<f32>>,
}

#[pymethods]
impl PyPredictions {
    /// The top classes as (class, label, probability), most probable first.
    #[getter]
    fn top(&self) -> Vec<(usize, String, f32)> {
        self.top.clone()
    }

    /// The most probable class.
    #[getter]
    fn best(&self) -> usize {
        self.top.first().map_or(0, |t| t.0)
    }

    /// Every class's probability (float32, one per class).
    fn probabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        f32_array(py, &[self.probabilities.len()], self.probabilities.clone())
    }

    /// The pre-softmax scores, when the model gives them (else None).
    fn logits<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArrayDyn<f32>>>> {
        self.logits
            .as_ref()
            .map(|l| f32_array(py, &[l.len()], l.clone()))
            .transpose()
    }

    fn __len__(&self) -> usize {
        self.top.len()
    }

    fn __getitem__(&self, i: isize) -> PyResult<(usize, String, f32)> {
        let n = self.top.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if !(0..n).contains(&j) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "prediction {i} is out of range: {n} were asked for"
            )));
        }
        Ok(self.top[j as usize].clone())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.top.clone())?
            .try_iter()
            .map(|i| i.into_any())
    }

    fn __repr__(&self) -> String {
        let mut s = String::from("class  label                          probability\n");
        for (c, l, p) in &self.top {
            s.push_str(&format!("{c:>5}  {l:<30} {p:.4}\n"));
        }
        s.trim_end().to_string()
    }

    fn _repr_html_(&self) -> String {
        let rows: String = self
            .top
            .iter()
            .map(|(c, l, p)| format!("<tr><td>{c}</td><td>{}</td><td>{p:.4}</td></tr>", escape(l)))
            .collect();
        format!("<table><tr><th>class</th><th>label</th><th>probability</th></tr>{rows}</table>")
    }
}

/// The activations of the selected layers for one image: a read-only mapping from layer name to
/// a float32 array in the model's own layout (batch axis included, as onnxruntime returns it).
#[pyclass(module = "convscope", name = "Activations", frozen, mapping)]
pub struct PyActivations {
    pub acts: convscope::Activations,
    /// name → numpy array, made once.
    pub arrays: Py<PyDict>,
}

impl PyActivations {
    pub fn new(py: Python<'_>, acts: convscope::Activations) -> PyResult<PyActivations> {
        let arrays = PyDict::new(py);
        for a in acts.layers() {
            let v = &a.values;
            arrays.set_item(
                &a.selected.label,
                f32_array(py, v.shape(), v.data().to_vec())?,
            )?;
        }
        Ok(PyActivations {
            acts,
            arrays: arrays.unbind(),
        })
    }

    fn index_of(&self, layer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let n = self.acts.layers().len();
        if let Ok(i) = layer.extract::<usize>() {
            if i < n {
                return Ok(i);
            }
            return Err(invalid(format!(
                "layer {i} is out of range: {n} layers were computed"
            )));
        }
        let name: String = layer.extract().map_err(|_| {
            invalid(format!(
                "a layer is a name or a position, got {}",
                short_repr(layer)
            ))
        })?;
        self.acts
            .layers()
            .iter()
            .position(|a| a.selected.label == name || a.value_name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .acts
                    .layers()
                    .iter()
                    .map(|a| a.selected.label.as_str())
                    .take(8)
                    .collect();
                invalid(format!(
                    "no layer '{name}' among the computed ones ({}{})",
                    names.join(", "),
                    if n > 8 { ", ..." } else { "" }
                ))
            })
    }
}

#[pymethods]
impl PyActivations {
    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.arrays.bind(py).get_item(name)? {
            Some(a) => Ok(a),
            None => Err(pyo3::exceptions::PyKeyError::new_err(name.to_string())),
        }
    }

    fn __len__(&self) -> usize {
        self.acts.layers().len()
    }

    fn __contains__(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        self.arrays.bind(py).contains(name)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.arrays.bind(py).keys().try_iter()?.into_any())
    }

    /// The layer names, in the order computed.
    fn keys<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        self.arrays.bind(py).keys()
    }

    /// The arrays, in the order computed.
    fn values<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        self.arrays.bind(py).values()
    }

    /// (name, array) pairs, in the order computed.
    fn items<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        self.arrays.bind(py).items()
    }

    /// The array of `name`, or `default`.
    #[pyo3(signature = (name, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.arrays.bind(py).get_item(name)?.or(default))
    }

    /// A plain dict of name → float32 array.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.arrays.bind(py).copy()
    }

    /// Per-layer statistics: name → {mean, std, min, max, zero_fraction, blank_channels,
    /// channels}.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for a in self.acts.layers() {
            let s = &a.stats;
            let d = PyDict::new(py);
            d.set_item("mean", s.mean)?;
            d.set_item("std", s.std)?;
            d.set_item("min", s.min)?;
            d.set_item("max", s.max)?;
            d.set_item("zero_fraction", s.zero_fraction)?;
            d.set_item("blank_channels", s.blank_channels)?;
            d.set_item("channels", s.channels)?;
            out.set_item(&a.selected.label, d)?;
        }
        Ok(out)
    }

    /// Every channel of `layer` (a name or a position) as a grid, each channel standardised as
    /// the walk-through does ((x - mean) / std * 64 + 128, clipped).
    #[pyo3(signature = (layer=None, per_row=16, cell=48, colormap="viridis"))]
    fn grid(
        &self,
        py: Python<'_>,
        layer: Option<&Bound<'_, PyAny>>,
        per_row: usize,
        cell: usize,
        colormap: &str,
    ) -> PyResult<PyPicture> {
        let i = match layer {
            Some(l) => self.index_of(l)?,
            None => 0,
        };
        let style = GridStyle {
            per_row,
            cell,
            colormap: parse_colormap(colormap)?,
            ..GridStyle::default()
        };
        let picture = py.detach(|| self.acts.grid(i, &style)).or_raise()?;
        Ok(PyPicture::new(picture))
    }

    /// Channel `channel` of `layer` alone, large (longer side `side` pixels), with a colour bar.
    #[pyo3(signature = (layer, channel, colormap="viridis", side=480))]
    fn channel(
        &self,
        py: Python<'_>,
        layer: &Bound<'_, PyAny>,
        channel: usize,
        colormap: &str,
        side: usize,
    ) -> PyResult<PyPicture> {
        let i = self.index_of(layer)?;
        let cmap = parse_colormap(colormap)?;
        if side == 0 || side > convscope::MAX_SIDE {
            return Err(invalid(format!(
                "side must be between 1 and {}, got {side}",
                convscope::MAX_SIDE
            )));
        }
        let picture = py
            .detach(|| self.acts.channel(i, channel, cmap, side))
            .or_raise()?;
        Ok(PyPicture::new(picture))
    }

    /// The statistics table the `activations` command prints.
    fn table(&self) -> String {
        self.acts.table()
    }

    /// Writes what the `activations` command writes into the folder `path` (input.png, a grid
    /// per layer, index.json, index.html; with `npy=True` each layer's values): all files
    /// appear together, or none.
    #[pyo3(signature = (path, npy=false))]
    fn save(&self, py: Python<'_>, path: PathBuf, npy: bool) -> PyResult<()> {
        let style = GridStyle {
            npy,
            ..GridStyle::default()
        };
        py.detach(|| -> convscope::Result<()> {
            let mut out = OutputDir::create(&path)?;
            self.acts.write(&mut out, &style, &NoProgress)?;
            out.commit()?;
            Ok(())
        })
        .or_raise()
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.Activations of {} layers>\n{}",
            self.acts.layers().len(),
            self.acts.table().trim_end()
        )
    }

    /// The statistics table and the grids of the first layers (at most 4).
    fn _repr_html_(&self, py: Python<'_>) -> PyResult<String> {
        let mut html = format!("<pre>{}</pre>", escape(&self.acts.table()));
        let style = GridStyle::default();
        let spatial: Vec<usize> = (0..self.acts.layers().len())
            .filter(|&i| self.acts.layers()[i].spatial().is_some())
            .take(4)
            .collect();
        for i in spatial {
            let picture = py.detach(|| self.acts.grid(i, &style)).or_raise()?;
            html.push_str(&img_tag(
                py,
                &picture,
                &self.acts.layers()[i].selected.label,
            )?);
        }
        Ok(html)
    }
}

fn overlay_style(alpha: f32, colormap: &str) -> PyResult<OverlayStyle> {
    let style = OverlayStyle {
        alpha,
        colormap: parse_colormap(colormap)?,
    };
    style.validate().or_raise()?;
    Ok(style)
}

/// A class activation map (Grad-CAM or another method of the family) for one target.
#[pyclass(module = "convscope", name = "CamMap", frozen)]
pub struct PyCamMap {
    pub map: convscope::CamMap,
}

#[pymethods]
impl PyCamMap {
    /// The map at the layer's resolution: float32 (height, width), >= 0; exactly the CLI's
    /// `<stem>_raw.npy`.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let s = self.map.size();
        f32_array(py, &[s.height, s.width], self.map.raw().to_vec())
    }

    /// The map upsampled to the input size and scaled to 0..1, as pytorch-grad-cam returns it
    /// (the CLI's `<stem>_normalized.npy`); `size=(width, height)` picks another size.
    #[pyo3(signature = (size=None))]
    fn normalized<'py>(
        &self,
        py: Python<'py>,
        size: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let size = match size {
            Some(s) => crate::inputs::parse_size(s)?,
            None => self.map.input_size(),
        };
        let values = py.detach(|| self.map.normalized(size));
        f32_array(py, &[size.height, size.width], values)
    }

    /// The heatmap at the input size.
    #[pyo3(signature = (colormap="jet"))]
    fn heatmap(&self, py: Python<'_>, colormap: &str) -> PyResult<PyPicture> {
        let cmap = parse_colormap(colormap)?;
        Ok(PyPicture::new(
            py.detach(|| self.map.heatmap(cmap)).or_raise()?,
        ))
    }

    /// The map laid over the image it was computed for (heatmap * alpha + image, rescaled: the
    /// walk-through's superimposed image); with a centre crop, over the part the model saw.
    #[pyo3(signature = (alpha=0.4, colormap="jet"))]
    fn overlay(&self, py: Python<'_>, alpha: f32, colormap: &str) -> PyResult<PyPicture> {
        let style = overlay_style(alpha, colormap)?;
        Ok(PyPicture::new(
            py.detach(|| self.map.overlay_input(&style)).or_raise()?,
        ))
    }

    /// Writes the overlay as a PNG file, atomically.
    #[pyo3(signature = (path, alpha=0.4, colormap="jet"))]
    fn save(&self, py: Python<'_>, path: PathBuf, alpha: f32, colormap: &str) -> PyResult<()> {
        let style = overlay_style(alpha, colormap)?;
        py.detach(|| self.map.overlay_input(&style)?.save(&path))
            .or_raise()
    }

    /// The target's name (the class index for a class).
    #[getter]
    fn target(&self) -> String {
        self.map.target().to_string()
    }

    /// The class, when the target is one class (else None).
    #[getter]
    fn class_index(&self) -> Option<usize> {
        self.map.class()
    }

    /// The class label (or the target's name).
    #[getter]
    fn label(&self) -> String {
        self.map.label().to_string()
    }

    /// The class probability, when the target is one class of a classifier.
    #[getter]
    fn probability(&self) -> Option<f32> {
        self.map.probability()
    }

    /// The target's score (the pre-softmax logit for a class, when available).
    #[getter]
    fn score(&self) -> f32 {
        self.map.score()
    }

    /// The method's registry name.
    #[getter]
    fn method(&self) -> &'static str {
        self.map.method()
    }

    /// The layer the map was computed at.
    #[getter]
    fn layer(&self) -> String {
        self.map.layer().to_string()
    }

    /// (row, col) of the strongest evidence at the layer's resolution.
    #[getter]
    fn peak(&self) -> (usize, usize) {
        self.map.peak()
    }

    /// True when the map is zero everywhere: no positive evidence at this layer.
    #[getter]
    fn all_zero(&self) -> bool {
        self.map.all_zero()
    }

    fn _repr_png_(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        let picture = py
            .detach(|| self.map.overlay_input(&OverlayStyle::default()))
            .or_raise()?;
        png_of(py, &picture)
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.CamMap {} of {} ({}) at '{}' {} score={:.4}>",
            self.map.method(),
            self.map.target(),
            self.map.label(),
            self.map.layer(),
            self.map.size(),
            self.map.score()
        )
    }
}

/// A saliency map: the attribution of every input value.
#[pyclass(module = "convscope", name = "SaliencyMap", frozen)]
pub struct PySaliencyMap {
    pub map: convscope::SaliencyMap,
}

#[pymethods]
impl PySaliencyMap {
    /// The attribution in the model's input layout (float32, a batch of one); the CLI's `.npy`.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let raw = self.map.raw();
        f32_array(py, raw.shape(), raw.data().to_vec())
    }

    /// (height, width) magnitudes: the largest |value| over the colour channels.
    fn magnitudes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let s = self.map.size();
        f32_array(py, &[s.height, s.width], self.map.magnitudes().to_vec())
    }

    /// The map divided by its maximum, coloured.
    #[pyo3(signature = (colormap="inferno"))]
    fn picture(&self, py: Python<'_>, colormap: &str) -> PyResult<PyPicture> {
        let cmap = parse_colormap(colormap)?;
        Ok(PyPicture::new(
            py.detach(|| self.map.picture(cmap)).or_raise()?,
        ))
    }

    /// Writes the picture as a PNG file, atomically.
    #[pyo3(signature = (path, colormap="inferno"))]
    fn save(&self, py: Python<'_>, path: PathBuf, colormap: &str) -> PyResult<()> {
        let cmap = parse_colormap(colormap)?;
        py.detach(|| self.map.picture(cmap)?.save(&path)).or_raise()
    }

    /// The method's registry name.
    #[getter]
    fn method(&self) -> String {
        self.map.method().to_string()
    }

    /// The class, when the target is one class (else None).
    #[getter]
    fn class_index(&self) -> Option<usize> {
        self.map.class()
    }

    /// The class label or the target's name.
    #[getter]
    fn label(&self) -> String {
        self.map.label().to_string()
    }

    /// The target's score for the input.
    #[getter]
    fn score(&self) -> f32 {
        self.map.score()
    }

    /// Integrated Gradients' completeness check as (sum of attributions, score(input) -
    /// score(baseline)); None for other methods.
    #[getter]
    fn completeness(&self) -> Option<(f64, f64)> {
        self.map
            .completeness()
            .map(|c| (c.attribution_sum, c.score_difference))
    }

    fn _repr_png_(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        let picture = py
            .detach(|| self.map.picture(Colormap::Inferno))
            .or_raise()?;
        png_of(py, &picture)
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.SaliencyMap {} of {} ({}) {}>",
            self.map.method(),
            self.map.target(),
            self.map.label(),
            self.map.size()
        )
    }
}

/// The input patterns the filters of one layer respond to most.
#[pyclass(module = "convscope", name = "FilterGrid", frozen)]
pub struct PyFilterGrid {
    pub grid: convscope::FilterGrid,
}

#[pymethods]
impl PyFilterGrid {
    /// Every pattern: uint8, shape (filters, height, width, 3), in the order asked for.
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        let tiles = self.grid.tiles();
        let (w, h) = tiles.first().map_or((0, 0), |t| {
            let s = t.size();
            (s.width, s.height)
        });
        let mut data = Vec::with_capacity(tiles.len() * w * h * 3);
        for t in &tiles {
            data.extend_from_slice(t.rgb().as_raw());
        }
        u8_array(py, &[tiles.len(), h, w, 3], data)
    }

    /// The filter indices, in order.
    #[getter]
    fn filters(&self) -> Vec<usize> {
        self.grid.patterns.iter().map(|p| p.filter).collect()
    }

    /// The layer's name.
    #[getter]
    fn layer(&self) -> String {
        self.grid.layer.clone()
    }

    /// How many filters the layer has.
    #[getter]
    fn channels(&self) -> usize {
        self.grid.channels
    }

    /// Each filter's objective (its mean activation) before each step and after the last.
    #[getter]
    fn curves(&self) -> Vec<Vec<f32>> {
        self.grid.patterns.iter().map(|p| p.curve.clone()).collect()
    }

    /// Every pattern tiled into one picture (the walk-through's 8x8 grid with 5 px margins for
    /// 64 filters); `grid=(columns, rows)`, `labels=True` writes each filter's index.
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
            py.detach(|| self.grid.picture(&style)).or_raise()?,
        ))
    }

    /// Writes the tiled picture as a PNG file, atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let picture = py
            .detach(|| self.grid.picture(&TileStyle::default()))
            .or_raise()?;
        save_picture(py, &picture, path)
    }

    fn _repr_png_(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        let picture = py
            .detach(|| self.grid.picture(&TileStyle::default()))
            .or_raise()?;
        png_of(py, &picture)
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.FilterGrid '{}': {} of {} filters, {} rose>",
            self.grid.layer,
            self.grid.patterns.len(),
            self.grid.channels,
            self.grid.rising()
        )
    }
}
