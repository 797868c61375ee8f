//! From a file (an image or a preprocessed `.npy` tensor) to the model's input tensor.

use std::path::Path;

use convscope_engine::{InputSpec, Layout, Model, Tensor};
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
pub fn target_size(spec: &InputSpec, size: Option<(usize, usize)>) -> Result<(usize, usize)> {
    size.or(spec.height.zip(spec.width)).ok_or_else(|| {
        Error::Config(format!(
            "the model does not declare an input size for '{}'; pass --size WxH",
            spec.name
        ))
    })
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
/// axis.
pub fn prepare_input(model: &Model, path: &Path, cfg: &InputConfig) -> Result<PreparedInput> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return prepare_npy(model, path, cfg);
    }
    prepare_image(model, load_rgb(path)?, cfg)
}

/// Prepares an image already in memory (pixels 0..255) for `model`: resize or resize and crop,
/// then normalise, as [`prepare_input`] does for a file.
pub fn prepare_image(
    model: &Model,
    original: RgbImageF32,
    cfg: &InputConfig,
) -> Result<PreparedInput> {
    let spec = model.input_spec();
    let (h, w) = target_size(spec, cfg.size)?;
    let display = if cfg.center_crop {
        resize_shorter_and_center_crop(&original, h.min(w), w, h, cfg.filter)?
    } else {
        resize(&original, w, h, cfg.filter)
    };
    let planar = match_channels(normalize(&display, &cfg.normalize), spec.channels)?;
    Ok(PreparedInput {
        tensor: planar_to_tensor(&planar, spec.layout),
        display,
        original,
    })
}

fn prepare_npy(model: &Model, path: &Path, cfg: &InputConfig) -> Result<PreparedInput> {
    let spec = model.input_spec();
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
    let planar = tensor_to_planar(&tensor, spec.layout, 0);
    let display = if planar.channels == 3 {
        convscope_image::denormalize(&planar, &cfg.normalize)?
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
