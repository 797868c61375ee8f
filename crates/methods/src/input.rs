//! From a file (an image or a preprocessed `.npy` tensor) to the model's input tensor.

use std::path::Path;

use convscope_engine::{ElemType, InputSpec, Layout, Model, Tensor, MAX_INPUT_SIDE};
use convscope_image::{
    load_rgb, normalize, read_npy_f32, resize, resize_shorter_and_center_crop, Normalize, Planar,
    ResizeFilter, RgbImageF32,
};

use crate::error::{Error, Result};

/// How an image becomes a model input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputConfig {
    /// Target `(height, width)`; `None` uses the model's declared size.
    pub size: Option<(usize, usize)>,
    /// Resampling filter (bilinear by default; bicubic matches Pillow's default).
    pub filter: ResizeFilter,
    /// Resize the shorter side to the target and crop the centre, instead of stretching.
    pub center_crop: bool,
    /// Pixel → model value mapping.
    pub normalize: Normalize,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            size: None,
            filter: ResizeFilter::Bilinear,
            center_crop: false,
            normalize: Normalize::Unit,
        }
    }
}

impl InputConfig {
    /// Checks the options on their own (before any model or file is touched): a `size` of
    /// `1..=`[`MAX_INPUT_SIDE`] pixels per side, and usable normalisation statistics
    /// ([`Normalize::validate`]). Errors name the option (`size`, `mean`, `std`).
    ///
    /// ```
    /// use convscope_methods::input::InputConfig;
    /// let cfg = InputConfig { size: Some((0, 224)), ..InputConfig::default() };
    /// assert!(cfg.validate().unwrap_err().to_string().starts_with("size must be"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if let Some((h, w)) = self.size {
            if !(1..=MAX_INPUT_SIDE).contains(&h) || !(1..=MAX_INPUT_SIDE).contains(&w) {
                return Err(Error::Config(format!(
                    "size must be 1..={MAX_INPUT_SIDE} pixels per side, got {w}x{h}"
                )));
            }
        }
        self.normalize.validate()?;
        Ok(())
    }
}

/// The pixel → model-input map actually used for `spec`'s input, given the one asked for.
///
/// * A float input (or one of undeclared type) takes `requested`, once
///   [`Normalize::validate`] accepts it.
/// * A UINT8 input takes raw pixel values `0..=255` (the model normalises them itself, usually
///   after a `Cast` to float): [`Normalize::Unit`], the default, and [`Normalize::Raw`] both
///   mean raw pixels, and any other mode is refused, since it would contradict the model.
/// * Any other integer type (INT64, INT8, BOOL...) is refused: there is no standard meaning for
///   an image in those types.
///
/// ```
/// # use convscope_engine::{ElemType, InputSpec, Layout};
/// use convscope_image::Normalize;
/// use convscope_methods::input::pixel_normalization;
/// # let spec = |elem_type| InputSpec { name: "x".into(), layout: Layout::Nchw, channels: 3,
/// #     height: None, width: None, batch: None, elem_type, declared_dims: vec![None; 4] };
/// let u8_input = spec(ElemType::Uint8);
/// assert_eq!(pixel_normalization(&u8_input, &Normalize::Unit)?, Normalize::Raw);
/// assert!(pixel_normalization(&u8_input, &Normalize::Imagenet).is_err());
/// assert_eq!(pixel_normalization(&spec(ElemType::Float), &Normalize::Tf)?, Normalize::Tf);
/// # Ok::<(), convscope_methods::Error>(())
/// ```
///
/// # Errors
/// [`Error::Config`] for a refused mode or input type, naming the input and its type.
pub fn pixel_normalization(spec: &InputSpec, requested: &Normalize) -> Result<Normalize> {
    requested.validate()?;
    match spec.elem_type {
        ElemType::Float => Ok(*requested),
        ElemType::Uint8 => match requested {
            Normalize::Unit | Normalize::Raw => Ok(Normalize::Raw),
            other => Err(Error::Config(format!(
                "input '{}' is UINT8: the model takes raw 0..255 pixels and normalises them itself, \
                 so normalisation '{}' does not apply (leave it at unit or raw)",
                spec.name,
                other.name()
            ))),
        },
        ElemType::Other(_) => Err(Error::Config(format!(
            "input '{}' is {}: convscope feeds images as float or UINT8 pixels and cannot tell \
             what {} values would mean",
            spec.name,
            spec.elem_type.name(),
            spec.elem_type.name()
        ))),
    }
}

/// The first sample of `img` that is not a finite number, as an error naming its pixel.
fn check_finite_pixels(img: &RgbImageF32) -> Result<()> {
    match img.data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => {
            let (pixel, channel) = (i / 3, i % 3);
            Err(Error::Input(format!(
                "the image's pixel ({}, {}) holds {} in channel {channel}; pixels must be finite (--allow-nonfinite runs it anyway)",
                pixel % img.width.max(1),
                pixel / img.width.max(1),
                img.data[i]
            )))
        }
    }
}

/// Row-major index `i` of `shape` as per-axis indices.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}

/// A model input and the pictures that go with it.
#[derive(Clone, Debug)]
pub struct PreparedInput {
    /// Batch of one, in the model's layout.
    pub tensor: Tensor,
    /// The preprocessed image as pixels (0..255) at the model's input size.
    pub display: RgbImageF32,
    /// The image as loaded, before resizing (for overlays at the original size).
    pub original: RgbImageF32,
}

/// The `(height, width)` the model runs at: `cfg.size`, else the declared size.
///
/// # Errors
/// [`Error::Config`] when neither gives a size: the model declares none, or declares one
/// outside `1..=`[`MAX_INPUT_SIDE`] (the message then says what it declares).
pub fn target_size(spec: &InputSpec, size: Option<(usize, usize)>) -> Result<(usize, usize)> {
    if let Some(s) = size.or(spec.height.zip(spec.width)) {
        return Ok(s);
    }
    let (h_axis, w_axis) = match spec.layout {
        Layout::Nchw => (2, 3),
        Layout::Nhwc => (1, 2),
    };
    let declared = |axis: usize| spec.declared_dims.get(axis).copied().flatten();
    let show = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    let (h, w) = (declared(h_axis), declared(w_axis));
    let unusable = |v: Option<i64>| v.is_some_and(|v| !(1..=MAX_INPUT_SIDE as i64).contains(&v));
    if unusable(h) || unusable(w) {
        return Err(Error::Config(format!(
            "the model declares input '{}' as {}x{} (width x height), outside the 1..={MAX_INPUT_SIDE} pixels per side convscope accepts; pass --size WxH to choose a size",
            spec.name,
            show(w),
            show(h)
        )));
    }
    Err(Error::Config(format!(
        "the model does not declare an input size for '{}'; pass --size WxH",
        spec.name
    )))
}

/// Converts CHW planes to a batch of one in `layout`.
pub fn planar_to_tensor(p: &Planar, layout: Layout) -> Tensor {
    let (c, h, w) = (p.channels, p.height, p.width);
    match layout {
        Layout::Nchw => Tensor::new(vec![1, c, h, w], p.data.clone()).expect("planar sizes"),
        Layout::Nhwc => {
            let mut out = vec![0.0; p.data.len()];
            for k in 0..c {
                for i in 0..h * w {
                    out[i * c + k] = p.data[k * h * w + i];
                }
            }
            Tensor::new(vec![1, h, w, c], out).expect("planar sizes")
        }
    }
}

/// Converts item `n` of a batch in `layout` to CHW planes.
pub fn tensor_to_planar(t: &Tensor, layout: Layout, n: usize) -> Planar {
    let s = t.shape();
    let (c, h, w) = match layout {
        Layout::Nchw => (s[1], s[2], s[3]),
        Layout::Nhwc => (s[3], s[1], s[2]),
    };
    let item = &t.data()[n * c * h * w..(n + 1) * c * h * w];
    let data = match layout {
        Layout::Nchw => item.to_vec(),
        Layout::Nhwc => {
            let mut out = vec![0.0; item.len()];
            for i in 0..h * w {
                for k in 0..c {
                    out[k * h * w + i] = item[i * c + k];
                }
            }
            out
        }
    };
    Planar {
        channels: c,
        height: h,
        width: w,
        data,
    }
}

/// Adapts a 3-channel planar image to the model's channel count (grey for 1-channel models).
fn match_channels(p: Planar, channels: usize) -> Result<Planar> {
    match (p.channels, channels) {
        (a, b) if a == b => Ok(p),
        (3, 1) => {
            let n = p.height * p.width;
            let data = (0..n)
                .map(|i| (p.data[i] + p.data[n + i] + p.data[2 * n + i]) / 3.0)
                .collect();
            Ok(Planar {
                channels: 1,
                height: p.height,
                width: p.width,
                data,
            })
        }
        (a, b) => Err(Error::Input(format!(
            "the image has {a} channels but the model takes {b}"
        ))),
    }
}

/// Loads `path` and prepares it for `model`.
///
/// Images are resized (or resized and centre-cropped) to the target size and normalised; a
/// `.npy` file is taken as already preprocessed, in the model's layout, with or without the batch
/// axis. NaN and infinity (in a `.npy` file, or in a float image) are refused naming the element;
/// see [`prepare_input_with`] to let them through.
pub fn prepare_input(model: &Model, path: &Path, cfg: &InputConfig) -> Result<PreparedInput> {
    prepare_input_with(model, path, cfg, false)
}

/// [`prepare_input`] that lets NaN and infinity through when `allow_nonfinite` (for debugging a
/// model on such an input, e.g. with [`Model::first_nonfinite`]).
pub fn prepare_input_with(
    model: &Model,
    path: &Path,
    cfg: &InputConfig,
    allow_nonfinite: bool,
) -> Result<PreparedInput> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return prepare_npy(model, path, cfg, allow_nonfinite);
    }
    prepare_image_with(model, load_rgb(path)?, cfg, allow_nonfinite)
}

/// Prepares an image already in memory (pixels 0..255) for `model`: resize or resize and crop,
/// then normalise, as [`prepare_input`] does for a file.
pub fn prepare_image(
    model: &Model,
    original: RgbImageF32,
    cfg: &InputConfig,
) -> Result<PreparedInput> {
    prepare_image_with(model, original, cfg, false)
}

/// [`prepare_image`] that lets non-finite pixels through when `allow_nonfinite`.
pub fn prepare_image_with(
    model: &Model,
    original: RgbImageF32,
    cfg: &InputConfig,
    allow_nonfinite: bool,
) -> Result<PreparedInput> {
    let spec = model.input_spec();
    cfg.validate()?;
    let map = pixel_normalization(spec, &cfg.normalize)?;
    let (h, w) = target_size(spec, cfg.size)?;
    if !allow_nonfinite {
        check_finite_pixels(&original)?;
    }
    let mut display = if cfg.center_crop {
        resize_shorter_and_center_crop(&original, h.min(w), w, h, cfg.filter)?
    } else {
        resize(&original, w, h, cfg.filter)
    };
    if spec.elem_type == ElemType::Uint8 {
        // What a UINT8 tensor can hold: resampling leaves fractions and bicubic overshoots.
        display
            .data
            .iter_mut()
            .for_each(|v| *v = v.round().clamp(0.0, 255.0));
    }
    let planar = match_channels(normalize(&display, &map), spec.channels)?;
    Ok(PreparedInput {
        tensor: planar_to_tensor(&planar, spec.layout),
        display,
        original,
    })
}

fn prepare_npy(
    model: &Model,
    path: &Path,
    cfg: &InputConfig,
    allow_nonfinite: bool,
) -> Result<PreparedInput> {
    let spec = model.input_spec();
    // The statistics also turn the tensor back into a picture (`display`).
    let map = pixel_normalization(spec, &cfg.normalize)?;
    let (shape, data) = read_npy_f32(path)?;
    let shape4 = match shape.len() {
        4 => shape.clone(),
        3 => [&[1][..], &shape].concat(),
        _ => {
            return Err(Error::Input(format!(
                "{}: a .npy input must be 3-D or 4-D, got shape {shape:?}",
                path.display()
            )))
        }
    };
    let tensor = Tensor::new(shape4, data).map_err(Error::Engine)?;
    model
        .check_input(&tensor)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    if tensor.shape()[0] != 1 {
        return Err(Error::Input(format!(
            "{}: batch of {}; convscope visualizes one image at a time",
            path.display(),
            tensor.shape()[0]
        )));
    }
    if let Some((i, v)) = tensor.first_nonfinite().filter(|_| !allow_nonfinite) {
        return Err(Error::Input(format!(
            "{}: element {i} (index {:?} of shape {shape:?}) is {v}; model inputs must be finite (--allow-nonfinite runs it anyway)",
            path.display(),
            unravel(i, &shape)
        )));
    }
    if spec.elem_type == ElemType::Uint8 {
        if let Some(i) = tensor
            .data()
            .iter()
            .position(|v| !(v.fract() == 0.0 && (0.0..=255.0).contains(v)))
        {
            return Err(Error::Input(format!(
                "{}: element {i} (index {:?} of shape {shape:?}) is {}; input '{}' is UINT8 and takes whole numbers 0..=255",
                path.display(),
                unravel(i, &shape),
                tensor.data()[i],
                spec.name
            )));
        }
    }
    let planar = tensor_to_planar(&tensor, spec.layout, 0);
    let display = if planar.channels == 3 {
        convscope_image::denormalize(&planar, &map)?
    } else {
        let n = planar.height * planar.width;
        let grey: Vec<f32> = (0..n).flat_map(|i| [planar.data[i]; 3]).collect();
        let mut img = RgbImageF32::new(planar.width, planar.height, grey)?;
        let (lo, hi) = img
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        img.data.iter_mut().for_each(|v| {
            *v = if hi > lo {
                (*v - lo) / (hi - lo) * 255.0
            } else {
                0.0
            }
        });
        img
    };
    Ok(PreparedInput {
        tensor,
        original: display.clone(),
        display,
    })
}
