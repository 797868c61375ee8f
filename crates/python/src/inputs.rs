//! Python values → model inputs: a path, a PIL image, an `H×W×3` uint8 array, a preprocessed
//! float32 array, or a `convscope.Input` already prepared.
//!
//! The Python objects are read (and their pixels copied) while the GIL is held; preparing the
//! input (decoding, resizing, normalising) runs later without it.

use std::path::PathBuf;

use convscope::{Image, Input, InputConfig, Model, Preprocess, ResizeFilter, Size};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::{invalid, raise, Kind, OrRaise};
use crate::results::PyInput;

/// An input read from Python, not yet prepared for the model.
pub enum Source {
    /// An image file or a `.npy` tensor.
    Path(PathBuf),
    /// Pixels from a PIL image or a uint8 array.
    Image(Image),
    /// A preprocessed array in the model's layout.
    Values { shape: Vec<usize>, values: Vec<f32> },
    /// A `convscope.Input`.
    Prepared(Input),
}

/// What the input keywords (`preprocess=`, `size=`, `crop=`, `resize=`) of a call change.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub preprocess: Option<Preprocess>,
    pub size: Option<Size>,
    pub crop: Option<bool>,
    pub resize: Option<ResizeFilter>,
}

impl Overrides {
    /// Reads the keywords.
    pub fn read(
        preprocess: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        crop: Option<bool>,
        resize: Option<&str>,
    ) -> PyResult<Overrides> {
        Ok(Overrides {
            preprocess: preprocess.map(parse_preprocess).transpose()?,
            size: size.map(parse_size).transpose()?,
            crop,
            resize: resize
                .map(|r| {
                    r.parse::<ResizeFilter>()
                        .map_err(|e| invalid(e.to_string()))
                })
                .transpose()?,
        })
    }

    /// Whether any keyword was given.
    pub fn any(&self) -> bool {
        self.preprocess.is_some() || self.size.is_some() || self.crop.is_some()
    }

    /// `base` with these changes.
    pub fn apply(&self, base: &InputConfig) -> InputConfig {
        InputConfig {
            size: self.size.or(base.size),
            resize: self.resize.unwrap_or(base.resize),
            crop: self.crop.unwrap_or(base.crop),
            preprocess: self.preprocess.unwrap_or(base.preprocess),
        }
    }
}

/// `preprocess=`: a preset name (`unit`, `imagenet`, `caffe`, `tf`, `raw`) or a
/// `(mean, std)` pair of three numbers each on the 0..1 scale.
pub fn parse_preprocess(v: &Bound<'_, PyAny>) -> PyResult<Preprocess> {
    if let Ok(name) = v.cast::<PyString>() {
        return name
            .to_cow()?
            .parse::<Preprocess>()
            .map_err(|e| invalid(e.to_string()));
    }
    let pair: Result<([f32; 3], [f32; 3]), _> = v.extract();
    match pair {
        Ok((mean, std)) => Ok(Preprocess::Custom { mean, std }),
        Err(_) => Err(invalid(format!(
            "preprocess must be unit, imagenet, caffe, tf, raw or a (mean, std) pair of three \
             numbers each; got {}",
            short_repr(v)
        ))),
    }
}

/// `size=`: `N`, `(width, height)` or `"WxH"`.
pub fn parse_size(v: &Bound<'_, PyAny>) -> PyResult<Size> {
    let size = if let Ok(s) = v.cast::<PyString>() {
        s.to_cow()?.parse::<Size>().or_raise()?
    } else if let Ok(n) = v.extract::<usize>() {
        Size::square(n)
    } else if let Ok((w, h)) = v.extract::<(usize, usize)>() {
        Size::new(w, h)
    } else {
        return Err(invalid(format!(
            "size must be N, (width, height) or 'WxH'; got {}",
            short_repr(v)
        )));
    };
    size.check("size").or_raise()
}

/// A short `repr` for messages (long reprs, e.g. of arrays, are cut).
pub fn short_repr(v: &Bound<'_, PyAny>) -> String {
    let r = v
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    let r = r.split_whitespace().collect::<Vec<_>>().join(" ");
    if r.chars().count() > 60 {
        format!("{}...", r.chars().take(57).collect::<String>())
    } else {
        r
    }
}

/// The name of `v`'s type, e.g. `int`, `PIL.Image.Image`.
fn type_name(v: &Bound<'_, PyAny>) -> String {
    let t = v.get_type();
    let module = t.module().map(|m| m.to_string()).unwrap_or_default();
    let name = t.name().map(|n| n.to_string()).unwrap_or_default();
    if module.is_empty() || module == "builtins" {
        name
    } else {
        format!("{module}.{name}")
    }
}

const KINDS: &str = "a path, a PIL image, an HxWx3 uint8 array or a preprocessed float32 array \
                     in the model's layout";

/// Reads an input from Python.
pub fn read(v: &Bound<'_, PyAny>) -> PyResult<Source> {
    let py = v.py();
    if let Ok(prepared) = v.cast::<PyInput>() {
        return Ok(Source::Prepared(prepared.get().input.clone()));
    }
    if v.cast::<PyString>().is_ok() || v.hasattr("__fspath__")? {
        let path: PathBuf = py
            .import("os")?
            .call_method1("fspath", (v,))?
            .extract()
            .map_err(|_| invalid(format!("{} is not a usable path", short_repr(v))))?;
        return Ok(Source::Path(path));
    }
    let type_name = type_name(v);
    if type_name.starts_with("PIL.") {
        // Grey, palette and RGBA images become RGB as Pillow converts them.
        let rgb = v.call_method1("convert", ("RGB",))?;
        let array = py.import("numpy")?.call_method1("asarray", (rgb,))?;
        return read_array(&array);
    }
    if type_name == "numpy.ndarray" {
        return read_array(v);
    }
    Err(invalid(format!(
        "cannot use a {type_name} as an image; pass {KINDS}"
    )))
}

/// A uint8 `H×W×3` image or a float32 preprocessed tensor.
fn read_array(v: &Bound<'_, PyAny>) -> PyResult<Source> {
    if let Ok(a) = v.cast::<PyArrayDyn<u8>>() {
        let shape = a.shape().to_vec();
        let [h, w, 3] = shape[..] else {
            return Err(invalid(format!(
                "a uint8 array is an image and must be HxWx3 (RGB); got shape {shape:?}"
            )));
        };
        let ro = a.readonly();
        // Logical (C) order whatever the strides: a transposed or sliced view reads right.
        let pixels: Vec<u8> = match ro.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => ro.as_array().iter().copied().collect(),
        };
        let image = Image::from_rgb8(Size::new(w, h), &pixels).or_raise()?;
        return Ok(Source::Image(image));
    }
    if let Ok(a) = v.cast::<PyArrayDyn<f32>>() {
        let shape = a.shape().to_vec();
        let ro = a.readonly();
        let values: Vec<f32> = match ro.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => ro.as_array().iter().copied().collect(),
        };
        return Ok(Source::Values { shape, values });
    }
    let dtype = v
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(invalid(format!(
        "an array of {dtype} cannot be an input: a uint8 HxWx3 array is an image, a float32 array \
         is a preprocessed tensor in the model's layout (convert with .astype(numpy.float32))"
    )))
}

/// Prepares a source for `model` (call without the GIL: decoding and resizing are work).
pub fn prepare(model: &Model, source: Source, overrides: &Overrides) -> convscope::Result<Input> {
    let opts = overrides.apply(model.input_config());
    match source {
        Source::Path(path) => Input::open_with(model, &path, &opts),
        Source::Image(image) => Input::from_image_with(model, &image, &opts),
        Source::Values { shape, values } => {
            if overrides.size.is_some() || overrides.crop.is_some() {
                return Err(convscope::Error::Config(
                    "size= and crop= resize images; a float32 array is already the model's \
                     input"
                        .into(),
                ));
            }
            Input::from_values_with(model, &shape, values, &opts)
        }
        Source::Prepared(input) => {
            if overrides.any() {
                return Err(convscope::Error::Config(
                    "this convscope.Input is already prepared; pass preprocess=, size= and \
                     crop= to Model.prepare instead"
                        .into(),
                ));
            }
            Ok(input)
        }
    }
}

/// A missing input path raises `FileNotFoundError` (the library says so in a `Config` error,
/// which would otherwise be a `ValueError`).
pub fn check_exists(py: Python<'_>, source: &Source) -> PyResult<()> {
    if let Source::Path(p) = source {
        if !p.exists() {
            return Err(raise(
                py,
                Kind::Missing,
                format!("input {} does not exist", p.display()),
            ));
        }
    }
    Ok(())
}
