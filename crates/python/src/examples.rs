//! `convscope.Examples`: the images of a folder that excite each channel most and least
//! (`Model.examples`), with their receptive-field crops.

use std::path::PathBuf;

use convscope::examples::{write_examples, Entry, ExamplesIndex, LayerExamples};
use convscope::output::OutputDir;
use convscope::progress::NoProgress;
use convscope::Image;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{invalid, OrRaise};
use crate::results::{escape, img_tag, py_json, PyPicture};

/// For every channel of the chosen layers, the folder's images it responds to most (`top`) and
/// least (`bottom`), with the score, the position of the map's maximum and its receptive field.
#[pyclass(module = "convscope", name = "Examples", frozen)]
pub struct PyExamples {
    pub index: ExamplesIndex,
    /// The folder the image paths are relative to.
    pub dir: PathBuf,
}

/// Which end of a ranking: `'top'` or `'bottom'`.
fn end_of(end: &str) -> PyResult<bool> {
    match end {
        "top" => Ok(true),
        "bottom" => Ok(false),
        other => Err(invalid(format!(
            "end must be 'top' or 'bottom', got '{other}'"
        ))),
    }
}

impl PyExamples {
    /// The layer named `name` (a layer of this result).
    fn layer(&self, name: &str) -> PyResult<&LayerExamples> {
        self.index
            .layers
            .iter()
            .find(|l| l.name == name || l.value == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.index.layers.iter().map(|l| l.name.as_str()).collect();
                invalid(format!(
                    "'{name}' is not a layer of these examples; layers: {}",
                    names.join(", ")
                ))
            })
    }

    /// The ranked entries of one channel.
    fn entries(&self, layer: &str, channel: usize, top: bool) -> PyResult<&[Entry]> {
        let l = self.layer(layer)?;
        let unit = l.units.get(channel).ok_or_else(|| {
            invalid(format!(
                "channel {channel} is out of range: '{}' has {} channels (0..{})",
                l.name,
                l.units.len(),
                l.units.len()
            ))
        })?;
        Ok(if top { &unit.top } else { &unit.bottom })
    }

    /// The receptive field of each entry cut out of its image.
    fn cut(&self, entries: &[Entry]) -> convscope::Result<Vec<convscope::Picture>> {
        use rayon::prelude::*;
        entries
            .par_iter()
            .map(|e| {
                Ok(Image::open(self.dir.join(&e.image))?
                    .crop(e.region)
                    .to_picture())
            })
            .collect()
    }
}

#[pymethods]
impl PyExamples {
    /// The layer names, in the order asked for.
    #[getter]
    fn layers(&self) -> Vec<String> {
        self.index.layers.iter().map(|l| l.name.clone()).collect()
    }

    /// Images used.
    #[getter]
    fn images_used(&self) -> usize {
        self.index.images_used
    }

    /// Images that could not be read, as (path relative to the folder, reason).
    #[getter]
    fn skipped(&self) -> Vec<(String, String)> {
        self.index
            .skipped
            .iter()
            .map(|s| (s.image.clone(), s.reason.clone()))
            .collect()
    }

    /// The whole result as the `index.json` document `convscope examples` writes.
    fn index<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py_json(py, &self.index)
    }

    /// The images `channel` of `layer` responds to most, best first: dicts with `image` (the
    /// path relative to the folder), `score`, `x`, `y` (the map position of the maximum) and
    /// `box` (its receptive field in the image's pixels).
    fn top<'py>(
        &self,
        py: Python<'py>,
        layer: &str,
        channel: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        py_json(py, &self.entries(layer, channel, true)?)
    }

    /// The images `channel` of `layer` responds to least, worst first (as `top`).
    fn bottom<'py>(
        &self,
        py: Python<'py>,
        layer: &str,
        channel: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        py_json(py, &self.entries(layer, channel, false)?)
    }

    /// The receptive field of each of the channel's `top` (or `bottom`) entries, cut out of its
    /// image, in rank order.
    #[pyo3(signature = (layer, channel, end="top"))]
    fn crops(
        &self,
        py: Python<'_>,
        layer: &str,
        channel: usize,
        end: &str,
    ) -> PyResult<Vec<PyPicture>> {
        let entries = self.entries(layer, channel, end_of(end)?)?;
        let pictures = py.detach(|| self.cut(entries)).or_raise()?;
        Ok(pictures.into_iter().map(PyPicture::new).collect())
    }

    /// Writes `index.json` (and with `crops=True` every entry's crop as a PNG, named as
    /// `convscope examples --crop` names them) into the folder `path`, atomically.
    #[pyo3(signature = (path, crops=false))]
    fn save(&self, py: Python<'_>, path: PathBuf, crops: bool) -> PyResult<()> {
        py.detach(|| {
            let mut out = OutputDir::create(&path)?;
            write_examples(&self.index, &self.dir, crops, &mut out, &NoProgress)?;
            out.commit().map(drop)
        })
        .or_raise()
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.Examples: {} layers over {} images ({} skipped), top {}>",
            self.index.layers.len(),
            self.index.images_used,
            self.index.skipped.len(),
            self.index.top
        )
    }

    /// A table per layer: the first channels with their best images' crops.
    fn _repr_html_(&self, py: Python<'_>) -> PyResult<String> {
        const CHANNELS: usize = 8;
        const PER_CHANNEL: usize = 5;
        let mut html = String::new();
        for layer in self.index.layers.iter().take(4) {
            html.push_str(&format!(
                "<p><b>{}</b> ({} channels; top images of the first {})</p><table>",
                escape(&layer.name),
                layer.units.len(),
                CHANNELS.min(layer.units.len())
            ));
            for unit in layer.units.iter().take(CHANNELS) {
                let entries = &unit.top[..unit.top.len().min(PER_CHANNEL)];
                let crops = py.detach(|| self.cut(entries)).or_raise()?;
                html.push_str(&format!("<tr><td>{}</td>", unit.channel));
                for (e, c) in entries.iter().zip(&crops) {
                    let tag = img_tag(py, c, &e.image)?.replace(
                        "<img ",
                        "<img style=\"width:64px;height:64px;image-rendering:pixelated\" ",
                    );
                    html.push_str(&format!(
                        "<td title=\"{} ({:.3})\">{tag}</td>",
                        escape(&e.image),
                        e.score
                    ));
                }
                html.push_str("</tr>");
            }
            html.push_str("</table>");
        }
        Ok(html)
    }

    /// Each layer's map shape `[channels, height, width]` at the input size, by layer name.
    fn shapes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for l in &self.index.layers {
            d.set_item(&l.name, l.shape.to_vec())?;
        }
        Ok(d)
    }
}
