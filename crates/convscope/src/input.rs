//! From an image (or a preprocessed tensor) to the model's input.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use convscope_engine::Tensor;
use convscope_methods::input::{
    prepare_image_with, prepare_input_with, InputConfig as PrepareConfig, PreparedInput,
};

pub use convscope_image::{Normalize as Preprocess, ResizeFilter};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::picture::{Image, Region};
use crate::size::Size;

/// How an image becomes a model input: size, resampling, crop and pixel normalisation.
///
/// ```
/// use convscope::{InputConfig, Preprocess, Size};
///
/// let opts = InputConfig {
///     size: Some(Size::square(224)),
///     crop: true,
///     preprocess: Preprocess::Imagenet,
///     ..InputConfig::default()
/// };
/// assert_eq!(opts.preprocess.name(), "imagenet");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct InputConfig {
    /// Input size; `None` uses the size the model declares.
    pub size: Option<Size>,
    /// Resampling filter (bilinear by default; bicubic matches Pillow's default exactly).
    pub resize: ResizeFilter,
    /// Resize the shorter side to the target and crop the centre, instead of stretching.
    pub crop: bool,
    /// Pixel (`0..=255`) → model value mapping.
    pub preprocess: Preprocess,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            size: None,
            resize: ResizeFilter::Bilinear,
            crop: false,
            preprocess: Preprocess::Unit,
        }
    }
}

impl InputConfig {
    /// torchvision's ImageNet evaluation transform: the shorter side resized to the model's
    /// size, the centre cropped, ImageNet mean and standard deviation.
    pub fn imagenet() -> InputConfig {
        InputConfig {
            crop: true,
            preprocess: Preprocess::Imagenet,
            ..InputConfig::default()
        }
    }

    /// These options with another pixel normalisation.
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> InputConfig {
        self.preprocess = preprocess;
        self
    }

    /// These options with (or without) the centre crop.
    pub fn with_crop(mut self, crop: bool) -> InputConfig {
        self.crop = crop;
        self
    }

    /// These options at another input size.
    pub fn with_size(mut self, size: Size) -> InputConfig {
        self.size = Some(size);
        self
    }

    /// Checks the options: a size within limits, finite normalisation with no zero deviation.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = self.size {
            s.check("--size")?;
        }
        if let Preprocess::Custom { mean, std } = self.preprocess {
            if let Some(m) = mean.iter().find(|v| !v.is_finite()) {
                return Err(Error::Config(format!(
                    "--mean must be three finite numbers, got {m}"
                )));
            }
            if let Some(s) = std.iter().find(|v| !v.is_finite() || **v <= 0.0) {
                return Err(Error::Config(format!(
                    "--std must be three finite numbers > 0, got {s}"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn config(&self) -> PrepareConfig {
        PrepareConfig {
            size: self.size.map(Size::hw),
            filter: self.resize,
            center_crop: self.crop,
            normalize: self.preprocess,
        }
    }
}

/// An input ready for the model, with the pictures that go with it.
#[derive(Clone, Debug)]
pub struct Input {
    // Shared: results (activations, CAMs, a viewer's kept passes) each hold their input, and
    // an image's three copies are megabytes of `f32` that a clone need not copy.
    tensor: Arc<Tensor>,
    display: Arc<Image>,
    original: Arc<Image>,
    crop: Option<Region>,
    source: String,
}

impl Input {
    /// Loads `path` for `model` with the model's [`InputConfig`]: an image is resized (or
    /// resized and centre-cropped) and normalised; a `.npy` file is taken as already
    /// preprocessed, in the model's layout, with or without the batch axis.
    pub fn open(model: &Model, path: impl AsRef<Path>) -> Result<Input> {
        Input::open_with(model, path, model.input_config())
    }

    /// [`Input::open`] with other options than the model's own (a caller that sets the size,
    /// crop and preprocessing per call, as the Python package does).
    pub fn open_with(model: &Model, path: impl AsRef<Path>, opts: &InputConfig) -> Result<Input> {
        let path = path.as_ref();
        opts.validate()?;
        if !path.exists() {
            return Err(Error::Config(format!(
                "input {} does not exist",
                path.display()
            )));
        }
        let is_npy = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        if !is_npy {
            return Input::from_image_with(model, &Image::open(path)?, opts);
        }
        let prepared = prepare_input_with(
            model.engine(),
            path,
            &opts.config(),
            model.allows_nonfinite(),
        )?;
        Input::finish(model, prepared, None, path.display().to_string())
    }

    /// Prepares an image for `model` with the model's [`InputConfig`].
    pub fn from_image(model: &Model, image: &Image) -> Result<Input> {
        Input::from_image_with(model, image, model.input_config())
    }

    /// Prepares an image for `model` with other options than the model's own (a viewer lets
    /// each page choose the size, crop and preprocessing of a shared model).
    ///
    /// ```
    /// use convscope::prelude::*;
    ///
    /// let model = Model::demo()?;
    /// let scene = convscope::demo_scene().image;
    /// let small = Input::from_image_with(&model, &scene, &InputConfig::default().with_size(Size::square(64)))?;
    /// assert_eq!(small.display().size(), Size::square(64));
    /// assert_eq!(model.input(&scene)?.display().size(), Size::square(160)); // the model's own
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn from_image_with(model: &Model, image: &Image, opts: &InputConfig) -> Result<Input> {
        opts.validate()?;
        model.check_image_memory(image.size())?;
        let prepared = prepare_image_with(
            model.engine(),
            image.pixels().clone(),
            &opts.config(),
            model.allows_nonfinite(),
        )?;
        let crop = opts.crop.then(|| {
            crop_region(
                image.size(),
                Size::new(prepared.display.width, prepared.display.height),
            )
        });
        let source = image
            .source()
            .map_or_else(|| "image".to_string(), |p| p.display().to_string());
        let mut input = Input::finish(model, prepared, crop, source)?;
        input.original = Arc::new(image.clone());
        Ok(input)
    }

    /// An already preprocessed tensor in the model's layout (a batch of one).
    pub fn from_tensor(model: &Model, tensor: Tensor) -> Result<Input> {
        Input::from_tensor_shown(model, tensor, &model.input_config().preprocess)
    }

    /// [`Input::from_tensor`], its picture denormalised with `preprocess`.
    fn from_tensor_shown(model: &Model, tensor: Tensor, preprocess: &Preprocess) -> Result<Input> {
        model.engine().check_input(&tensor)?;
        if tensor.shape().first() != Some(&1) {
            return Err(Error::Config(format!(
                "a batch of {}; convscope visualizes one image at a time",
                tensor.shape().first().copied().unwrap_or(0)
            )));
        }
        let layout = model.engine().input_spec().layout;
        let planar = convscope_methods::input::tensor_to_planar(&tensor, layout, 0);
        let display = display_of(&planar, preprocess)?;
        let prepared = PreparedInput {
            tensor,
            original: display.clone(),
            display,
        };
        Input::finish(model, prepared, None, "tensor".into())
    }

    /// An already preprocessed array in the model's layout, `shape` with or without the batch
    /// axis (`[C, H, W]` or `[1, C, H, W]` for an NCHW model), `values` in row-major order: what
    /// a `.npy` file or a numpy array holds. The picture shown for it is the values
    /// denormalised with the model's preprocessing.
    ///
    /// ```
    /// use convscope::prelude::*;
    ///
    /// let model = Model::demo()?;
    /// let scene = model.input(&convscope::demo_scene().image)?;
    /// let t = scene.tensor();
    /// let again = Input::from_values(&model, &t.shape()[1..], t.data().to_vec())?;
    /// assert_eq!(again.tensor(), t);
    /// assert!(Input::from_values(&model, &[3, 4], vec![0.0; 12]).is_err());
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn from_values(model: &Model, shape: &[usize], values: Vec<f32>) -> Result<Input> {
        Input::from_values_with(model, shape, values, model.input_config())
    }

    /// [`Input::from_values`] shown with `opts`' preprocessing instead of the model's.
    pub fn from_values_with(
        model: &Model,
        shape: &[usize],
        values: Vec<f32>,
        opts: &InputConfig,
    ) -> Result<Input> {
        opts.validate()?;
        let shape = match shape.len() {
            3 => [&[1], shape].concat(),
            4 => shape.to_vec(),
            n => {
                return Err(Error::Config(format!(
                    "a preprocessed input must have 3 axes (one image) or 4 (a batch of one) \
                     in the model's layout; got {n} axes {shape:?}"
                )))
            }
        };
        let tensor = Tensor::new(shape, values).map_err(Error::Engine)?;
        Input::from_tensor_shown(model, tensor, &opts.preprocess)
    }

    fn finish(
        model: &Model,
        prepared: PreparedInput,
        crop: Option<Region>,
        source: String,
    ) -> Result<Input> {
        if !model.allows_nonfinite() {
            if let Some(i) = prepared.tensor.data().iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the input {source} holds {} at element {i} (after preprocessing); pass \
                     --allow-nonfinite to run it anyway",
                    prepared.tensor.data()[i]
                )));
            }
        }
        Ok(Input {
            tensor: Arc::new(prepared.tensor),
            display: Arc::new(Image::from_pixels(prepared.display)),
            original: Arc::new(Image::from_pixels(prepared.original)),
            crop,
            source,
        })
    }

    /// The model input (a batch of one, in the model's layout).
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The image as the model sees it: resized (and cropped), before normalisation.
    pub fn display(&self) -> &Image {
        &self.display
    }

    /// The image as loaded, before resizing.
    pub fn original(&self) -> &Image {
        &self.original
    }

    /// With a centre crop, the part of the original image the model sees.
    pub fn crop(&self) -> Option<Region> {
        self.crop
    }

    /// Where the input came from (a path, `image` or `tensor`), for captions and index files.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renames the input's source (e.g. to a path relative to a folder).
    pub fn with_source(mut self, source: impl Into<String>) -> Input {
        self.source = source.into();
        self
    }
}

/// The picture of a preprocessed tensor: denormalised for 3 channels, min-max scaled grey
/// otherwise.
fn display_of(
    planar: &convscope_image::Planar,
    preprocess: &Preprocess,
) -> Result<convscope_image::RgbImageF32> {
    if planar.channels == 3 {
        return Ok(convscope_image::denormalize(planar, preprocess)?);
    }
    let n = planar.height * planar.width;
    let first = &planar.data[..n];
    let (lo, hi) = first
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let grey: Vec<f32> = first
        .iter()
        .flat_map(|&v| {
            let g = if hi > lo {
                (v - lo) / (hi - lo) * 255.0
            } else {
                0.0
            };
            [g; 3]
        })
        .collect();
    Ok(convscope_image::RgbImageF32::new(
        planar.width,
        planar.height,
        grey,
    )?)
}

/// The part of an `original`-sized image that a shorter-side resize to `target`'s smaller side
/// followed by a centre crop to `target` keeps, in original pixels.
pub(crate) fn crop_region(original: Size, target: Size) -> Region {
    let shorter = target.width.min(target.height).max(1) as f64;
    let short = original.width.min(original.height).max(1) as f64;
    let scale = short / shorter; // original pixels per resized pixel
    let width = ((target.width as f64 * scale).round() as usize).clamp(1, original.width);
    let height = ((target.height as f64 * scale).round() as usize).clamp(1, original.height);
    Region {
        x: (original.width - width) / 2,
        y: (original.height - height) / 2,
        width,
        height,
    }
}

/// Anything that can become a model input: an [`Image`], an [`Input`] already prepared, a
/// preprocessed [`Tensor`], or a path to an image or `.npy` file.
pub trait ToInput {
    /// The input for `model` (borrowed when it is one already).
    fn to_input<'a>(&'a self, model: &Model) -> Result<Cow<'a, Input>>;
}

impl ToInput for Input {
    fn to_input<'a>(&'a self, _model: &Model) -> Result<Cow<'a, Input>> {
        Ok(Cow::Borrowed(self))
    }
}

impl ToInput for Image {
    fn to_input<'a>(&'a self, model: &Model) -> Result<Cow<'a, Input>> {
        Ok(Cow::Owned(Input::from_image(model, self)?))
    }
}

impl ToInput for Tensor {
    fn to_input<'a>(&'a self, model: &Model) -> Result<Cow<'a, Input>> {
        Ok(Cow::Owned(Input::from_tensor(model, self.clone())?))
    }
}

impl ToInput for Path {
    fn to_input<'a>(&'a self, model: &Model) -> Result<Cow<'a, Input>> {
        Ok(Cow::Owned(Input::open(model, self)?))
    }
}

impl ToInput for PathBuf {
    fn to_input<'a>(&'a self, model: &Model) -> Result<Cow<'a, Input>> {
        Ok(Cow::Owned(Input::open(model, self)?))
    }
}

impl ToInput for str {
    fn to_input<'a>(&'a self, model: &Model) -> Result<Cow<'a, Input>> {
        Ok(Cow::Owned(Input::open(model, self)?))
    }
}

impl<T: ToInput + ?Sized> ToInput for &T {
    fn to_input<'a>(&'a self, model: &Model) -> Result<Cow<'a, Input>> {
        (**self).to_input(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_region_is_the_centre_the_model_sees() {
        // 640×480 → shorter side 224 → 298×224 → centre 224×224: 480×480 of the original.
        let r = crop_region(Size::new(640, 480), Size::square(224));
        assert_eq!(
            r,
            Region {
                x: 80,
                y: 0,
                width: 480,
                height: 480
            }
        );
        let r = crop_region(Size::new(100, 300), Size::square(50));
        assert_eq!((r.x, r.y, r.width, r.height), (0, 100, 100, 100));
    }

    #[test]
    fn validate_names_the_bad_option() {
        let bad = InputConfig {
            preprocess: Preprocess::Custom {
                mean: [f32::NAN, 0.0, 0.0],
                std: [1.0; 3],
            },
            ..InputConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("--mean"));
        let bad = InputConfig {
            preprocess: Preprocess::Custom {
                mean: [0.0; 3],
                std: [0.0, 1.0, 1.0],
            },
            ..InputConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("--std"));
    }
}
