//! Saliency maps as finished results.

use convscope_engine::Tensor;
use convscope_image::{heatmap_rgb, Colormap};
use convscope_methods::saliency::{compute_saliency, Completeness, Saliency};
use convscope_methods::target::TargetRef;
use serde::Serialize;

pub use convscope_methods::saliency::saliency_method_names;

use crate::error::{Error, Result};
use crate::input::Input;
use crate::labels::name_of;
use crate::model::Model;
use crate::picture::Picture;
use crate::size::Size;

/// Options of [`Model::saliency`].
#[derive(Clone, Debug)]
pub struct SaliencyConfig {
    /// `gradient`, `smoothgrad`, `integrated-gradients`, `guided-backprop` or
    /// `guided-gradcam` (see [`saliency_method_names`]).
    pub method: String,
    /// What to explain; `None` explains the most probable class.
    pub target: Option<TargetRef>,
    /// SmoothGrad: number of noisy samples.
    pub samples: usize,
    /// SmoothGrad: noise standard deviation as a fraction of the input's range.
    pub noise: f32,
    /// Integrated Gradients: intervals of the path from the baseline.
    pub steps: usize,
    /// Integrated Gradients: the baseline in model-input space (`None`: zeros).
    pub baseline: Option<Tensor>,
    /// Images per batched pass (SmoothGrad, Integrated Gradients).
    pub batch_size: usize,
    /// Seed of the SmoothGrad noise.
    pub seed: u64,
    /// Guided Grad-CAM: the layer of the Grad-CAM map (`None`: automatic).
    pub layer: Option<String>,
}

impl Default for SaliencyConfig {
    fn default() -> Self {
        let d = convscope_methods::saliency::SaliencyConfig::default();
        SaliencyConfig {
            method: "gradient".into(),
            target: None,
            samples: d.samples,
            noise: d.noise,
            steps: d.steps,
            baseline: None,
            batch_size: d.batch_size,
            seed: d.seed,
            layer: None,
        }
    }
}

impl SaliencyConfig {
    /// Checks the method name and that the numbers mean something.
    pub fn validate(&self) -> Result<()> {
        if !saliency_method_names().contains(&self.method.to_ascii_lowercase().as_str()) {
            return Err(Error::Config(format!(
                "unknown saliency method '{}'; methods: {}",
                self.method,
                saliency_method_names().join(", ")
            )));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(Error::Config(format!(
                "--noise must be a finite number >= 0, got {}",
                self.noise
            )));
        }
        if self.samples == 0 {
            return Err(Error::Config("--samples must be at least 1".into()));
        }
        if self.steps == 0 {
            return Err(Error::Config("--steps must be at least 1".into()));
        }
        Ok(())
    }
}

/// One saliency map.
///
/// ```
/// use convscope::prelude::*;
///
/// let model = Model::demo()?;
/// let scene = convscope::demo_scene().image;
/// let map = model.saliency(&scene, &SaliencyConfig::default())?;
/// assert_eq!(map.picture(Colormap::Inferno)?.size(), Size::square(160));
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SaliencyMap {
    saliency: Saliency,
    method: String,
    label: String,
}

impl SaliencyMap {
    pub(crate) fn compute(model: &Model, input: &Input, config: &SaliencyConfig) -> Result<Self> {
        config.validate()?;
        let cfg = convscope_methods::saliency::SaliencyConfig {
            target: config.target.clone(),
            samples: config.samples,
            noise: config.noise,
            steps: config.steps,
            baseline: config.baseline.clone(),
            batch_size: config.batch_size,
            seed: config.seed,
            layer: config
                .layer
                .as_deref()
                .map(|l| model.engine().resolve(l))
                .transpose()?,
        };
        let method = config.method.to_ascii_lowercase();
        let saliency = compute_saliency(model.engine(), input.tensor(), &method, &cfg)?;
        let label = match saliency.class {
            Some(c) => name_of(model.labels(), c),
            None => saliency.target.clone(),
        };
        Ok(SaliencyMap {
            saliency,
            method,
            label,
        })
    }

    /// The method's registry name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The target's name (the class index for a class).
    pub fn target(&self) -> &str {
        &self.saliency.target
    }

    /// The class, when the target is one class.
    pub fn class(&self) -> Option<usize> {
        self.saliency.class
    }

    /// The class label or the target's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The target's score for the input.
    pub fn score(&self) -> f32 {
        self.saliency.score
    }

    /// The attribution in the model's input layout (batch of one).
    pub fn raw(&self) -> &Tensor {
        &self.saliency.raw
    }

    /// `height × width` magnitudes (the largest `|value|` over the colour channels).
    pub fn magnitudes(&self) -> &[f32] {
        &self.saliency.map
    }

    /// The size of the map (the input's).
    pub fn size(&self) -> Size {
        Size::new(self.saliency.width, self.saliency.height)
    }

    /// Integrated Gradients' completeness check.
    pub fn completeness(&self) -> Option<Completeness> {
        self.saliency.completeness
    }

    /// The map divided by its maximum, coloured.
    pub fn picture(&self, colormap: Colormap) -> Result<Picture> {
        let s = &self.saliency;
        Ok(Picture::new(heatmap_rgb(
            &s.normalized(),
            s.height,
            s.width,
            colormap,
        )?))
    }

    /// The underlying result.
    pub fn saliency(&self) -> &Saliency {
        &self.saliency
    }

    /// The file stem the `saliency` command uses: `<method>_<target>`.
    pub fn file_stem(&self) -> String {
        format!("{}_{}", self.method, crate::text::file_stem(self.target()))
    }

    /// The entry of this map in the `saliency` command's `index.json`.
    pub fn index(&self, files: Vec<String>) -> SaliencyEntry {
        SaliencyEntry {
            method: self.method.clone(),
            class: self.class(),
            target: self.target().to_string(),
            label: self.label.clone(),
            score: self.score(),
            files,
            completeness: self.completeness().map(|c| CompletenessDoc {
                attribution_sum: c.attribution_sum,
                score_difference: c.score_difference,
            }),
        }
    }
}

/// The `index.json` of the `saliency` command.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SaliencyIndex {
    /// The model file.
    pub model: String,
    /// The input file.
    pub input: String,
    /// One entry per map.
    pub maps: Vec<SaliencyEntry>,
}

/// One map of a [`SaliencyIndex`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SaliencyEntry {
    /// The method.
    pub method: String,
    /// The class, when the target is one class.
    pub class: Option<usize>,
    /// The target's name.
    pub target: String,
    /// Its label.
    pub label: String,
    /// Its score.
    pub score: f32,
    /// The files written.
    pub files: Vec<String>,
    /// Integrated Gradients' completeness check.
    pub completeness: Option<CompletenessDoc>,
}

/// Integrated Gradients' completeness check in a [`SaliencyEntry`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompletenessDoc {
    /// Σ attributions.
    pub attribution_sum: f64,
    /// score(input) − score(baseline).
    pub score_difference: f64,
}
