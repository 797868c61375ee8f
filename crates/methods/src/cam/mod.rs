//! Class activation maps: where in the image the evidence for a class is.
//!
//! The design follows pytorch-grad-cam: one file per method, a small [`CamMethod`] trait whose
//! default [`CamMethod::cam_image`] is `relu(Σ_k w_k A_k)` over the channel weights of
//! [`CamMethod::weights`], and a name → constructor registry ([`method_names`], [`method`]).
//!
//! | name | weights / map | gradients |
//! | --- | --- | --- |
//! | `gradcam` | spatial mean of dScore/dA | yes |
//! | `gradcam++` | Σ relu(g)·g²/(2g² + ΣA·g³) | yes |
//! | `xgradcam` | Σ g·A / ΣA | yes |
//! | `layercam` | map Σ_k relu(g_k)·A_k | yes |
//! | `hirescam` | map Σ_k g_k·A_k | yes |
//! | `eigencam` | first principal component of the activations | no |
//! | `scorecam` | softmax over channels of the score of the input masked by each channel | no |
//! | `ablationcam` | relative score drop when a channel is zeroed | no |
//!
//! One forward pass serves every target class: it keeps the layer's activations `A` and the
//! class scores, and each target costs one backward sweep through the classifier head only
//! ([`convscope_engine::Tape::backward_to`]). The score is the pre-softmax logit, also for a
//! model that ends in a Softmax (see [`find_classifier`]).
//!
//! ```no_run
//! use convscope_engine::Model;
//! use convscope_methods::cam::{auto_layer, compute_cams, method};
//! use convscope_methods::input::{prepare_input, InputConfig};
//!
//! let model = Model::load("model.onnx".as_ref())?;
//! let x = prepare_input(&model, "cat.png".as_ref(), &InputConfig::default())?.tensor;
//! let layer = auto_layer(&model, &x)?;
//! let cams = compute_cams(&model, &x, layer.value, &[285], method("gradcam")?.as_ref())?;
//! let heat = cams[0].normalized(224, 224); // 0..1, ready for convscope_image::heatmap_rgb
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ablation_cam;
mod eigen_cam;
mod grad_cam;
mod grad_cam_plusplus;
mod hires_cam;
mod layer_cam;
mod predict;
mod score_cam;
mod xgrad_cam;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use convscope_engine::{Layer, Model, Tape, Tensor, ValueId};

pub use ablation_cam::AblationCam;
pub use eigen_cam::EigenCam;
pub use grad_cam::GradCam;
pub use grad_cam_plusplus::GradCamPlusPlus;
pub use hires_cam::HiResCam;
pub use layer_cam::LayerCam;
pub use predict::{find_classifier, predict, prediction, ClassifierOutput, OutputKind, Prediction};
pub use score_cam::ScoreCam;
pub use xgrad_cam::XGradCam;

pub(crate) use predict::{check_class, first_output};

use crate::error::{Error, Result};

/// Batch size of the extra forward passes of Score-CAM and Ablation-CAM.
pub const DEFAULT_BATCH: usize = 32;

/// A class activation map method.
///
/// Methods with one weight per channel implement [`CamMethod::weights`] and keep the default
/// [`CamMethod::cam_image`]; methods whose map is not a channel-weighted sum override
/// `cam_image` (and their `weights` explain why there are none).
pub trait CamMethod: Send + Sync {
    /// The registry name, e.g. `gradcam`.
    fn name(&self) -> &'static str;

    /// Whether the method needs dScore/dA ([`CamContext::grads`] is `None` otherwise).
    fn uses_gradients(&self) -> bool {
        true
    }

    /// One weight per channel of the layer.
    fn weights(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>>;

    /// The map at the layer's resolution (`height × width`, row-major), after ReLU:
    /// `relu(Σ_k w_k A_k)` by default.
    fn cam_image(&self, ctx: &CamContext<'_>) -> Result<Vec<f32>> {
        let w = self.weights(ctx)?;
        Ok(ctx.weighted_sum(&w))
    }
}

/// Everything a method sees for one image and one target class.
pub struct CamContext<'a> {
    /// The model.
    pub model: &'a Model,
    /// The input image (a batch of one, in the model's layout).
    pub input: &'a Tensor,
    /// The layer's value (an NCHW feature map).
    pub layer: ValueId,
    /// The value holding the class scores (the pre-softmax logits when found).
    pub output: ValueId,
    /// Number of classes.
    pub classes: usize,
    /// The activations `A` of the single image, `channels × height × width`.
    pub activations: &'a [f32],
    /// Channels of the layer.
    pub channels: usize,
    /// Height of the feature map.
    pub height: usize,
    /// Width of the feature map.
    pub width: usize,
    /// dScore/dA for the target, `channels × height × width`; `None` when the method does not
    /// use gradients.
    pub grads: Option<&'a [f32]>,
    /// The target class.
    pub target: usize,
    /// The target's score for the unmodified input.
    pub score: f32,
    /// Batch size of extra forward passes (Score-CAM, Ablation-CAM).
    pub batch_size: usize,
    /// Class scores of the extra passes, shared by the targets of one call.
    cache: &'a ScoreCache,
}

/// Class scores (`n × classes`) of batches of modified inputs or activations, by key.
#[derive(Default)]
struct ScoreCache(Mutex<HashMap<&'static str, Arc<Vec<f32>>>>);

impl CamContext<'_> {
    /// Elements of one channel (`height × width`).
    pub fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Activations of channel `k`.
    pub fn activation(&self, k: usize) -> &[f32] {
        let p = self.plane();
        &self.activations[k * p..(k + 1) * p]
    }

    /// The gradients, or an error naming `method` when the pass did not compute them.
    pub fn require_grads(&self, method: &str) -> Result<&[f32]> {
        self.grads.ok_or_else(|| {
            Error::Config(format!("{method} needs gradients, but none were computed"))
        })
    }

    /// Gradient of channel `k`, when computed.
    pub fn grad(&self, k: usize) -> Option<&[f32]> {
        let p = self.plane();
        self.grads.map(|g| &g[k * p..(k + 1) * p])
    }

    /// `relu(Σ_k w_k A_k)` at the layer's resolution (sums in f64).
    pub fn weighted_sum(&self, weights: &[f32]) -> Vec<f32> {
        let p = self.plane();
        let mut acc = vec![0.0f64; p];
        for (k, &w) in weights.iter().enumerate().take(self.channels) {
            if w == 0.0 {
                continue;
            }
            for (a, &v) in acc.iter_mut().zip(self.activation(k)) {
                *a += w as f64 * v as f64;
            }
        }
        acc.into_iter().map(|v| v.max(0.0) as f32).collect()
    }

    /// The target's score for `n` modified copies of the input, built by `fill(i, item)` (each
    /// item in the model's input layout, batch axis excluded), in forward passes of
    /// [`CamContext::batch_size`] images.
    ///
    /// The passes give every class's score; they run once per `key` and are reused for the
    /// other targets of the same [`compute_cams`] call, so `fill` must not depend on the
    /// target.
    pub fn scores_for_inputs(
        &self,
        key: &'static str,
        n: usize,
        fill: &dyn Fn(usize, &mut [f32]),
    ) -> Result<Vec<f32>> {
        let model = self.model;
        self.memo(key, n, &|| {
            batched_scores(
                self.input.shape(),
                n,
                self.batch_size,
                fill,
                self.classes,
                &|t| Ok(model.run_float(t, &[self.output])?.remove(0)),
            )
        })
    }

    /// The target's score for `n` modified copies of the layer's activations, built by
    /// `fill(i, item)` (`channels × height × width`), running only the part of the graph after
    /// the layer ([`Model::run_from`]), [`CamContext::batch_size`] at a time. Memoised by `key`
    /// as [`CamContext::scores_for_inputs`].
    pub fn scores_for_activations(
        &self,
        key: &'static str,
        n: usize,
        fill: &dyn Fn(usize, &mut [f32]),
    ) -> Result<Vec<f32>> {
        let model = self.model;
        let shape = [1, self.channels, self.height, self.width];
        self.memo(key, n, &|| {
            batched_scores(&shape, n, self.batch_size, fill, self.classes, &|t| {
                let v = model.run_from(&[(self.layer, t.clone())], &[self.output]).map_err(|e| {
                Error::Layer(format!(
                    "cannot rerun the model from layer '{}' ({e}); pick a layer that every path to the \
                     output goes through",
                    model.value_name(self.layer)
                ))
            })?;
                Ok(v[0].as_float(model.value_name(self.output))?.clone())
            })
        })
    }

    /// The target's column of the `n × classes` scores stored under `key` (computed first if
    /// needed).
    fn memo(
        &self,
        key: &'static str,
        n: usize,
        compute: &dyn Fn() -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let cached = self.cache.0.lock().expect("score cache").get(key).cloned();
        let all = match cached {
            Some(all) if all.len() == n * self.classes => all,
            _ => {
                let all = Arc::new(compute()?);
                self.cache
                    .0
                    .lock()
                    .expect("score cache")
                    .insert(key, all.clone());
                all
            }
        };
        Ok((0..n)
            .map(|i| all[i * self.classes + self.target])
            .collect())
    }
}

/// Runs `n` items through `run` in batches of `chunk`; returns the `n × classes` scores.
///
/// Some graphs only take one image (e.g. a Reshape to the constant shape `[1, -1]`): when a
/// batch fails or comes back with the wrong shape, the rest runs one item at a time.
fn batched_scores(
    item_shape: &[usize],
    n: usize,
    chunk: usize,
    fill: &dyn Fn(usize, &mut [f32]),
    classes: usize,
    run: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let item: usize = item_shape[1..].iter().product();
    let mut chunk = chunk.max(1);
    let mut out = Vec::with_capacity(n * classes);
    let mut start = 0;
    while start < n {
        let m = chunk.min(n - start);
        let mut data = vec![0.0f32; m * item];
        for (i, buf) in data.chunks_mut(item).enumerate() {
            fill(start + i, buf);
        }
        let mut shape = item_shape.to_vec();
        shape[0] = m;
        let result = run(&Tensor::new(shape, data)?);
        let fits = |t: &Tensor| t.len() == m * classes && (m == 1 || t.shape().first() == Some(&m));
        match result {
            Ok(t) if fits(&t) => out.extend_from_slice(t.data()),
            Ok(_) | Err(_) if m > 1 => {
                chunk = 1;
                continue;
            }
            Ok(t) => {
                return Err(Error::Config(format!(
                    "the class scores have shape {:?}, expected {classes} values",
                    t.shape()
                )))
            }
            Err(e) => return Err(e),
        }
        start += m;
    }
    Ok(out)
}

/// One class activation map.
#[derive(Clone, Debug, PartialEq)]
pub struct Cam {
    /// The target class.
    pub target: usize,
    /// The target's score (pre-softmax logit when available) for the input.
    pub score: f32,
    /// The map at the layer's resolution, `height × width` row-major, after ReLU (≥ 0, finite).
    pub raw: Vec<f32>,
    /// Height of the layer's feature map.
    pub height: usize,
    /// Width of the layer's feature map.
    pub width: usize,
    /// True when the map is zero everywhere (no positive evidence for the class at this layer).
    pub all_zero: bool,
}

impl Cam {
    fn new(target: usize, score: f32, mut raw: Vec<f32>, height: usize, width: usize) -> Cam {
        raw.iter_mut().for_each(|v| {
            if !v.is_finite() || *v < 0.0 {
                *v = 0.0;
            }
        });
        let all_zero = raw.iter().all(|&v| v == 0.0);
        Cam {
            target,
            score,
            raw,
            height,
            width,
            all_zero,
        }
    }

    /// The map scaled to `0..=1` and resized to `out_h × out_w`, as pytorch-grad-cam's output:
    /// `scale_cam_image` (`x − min`, then `/ (1e-7 + max)`), a bilinear resize with OpenCV's
    /// `INTER_LINEAR` rule ([`convscope_image::upsample_bilinear`]), then the same min-max
    /// scaling again (its `aggregate_multi_layers`). An all-zero map stays all zero.
    pub fn normalized(&self, out_h: usize, out_w: usize) -> Vec<f32> {
        let scaled = scale_min_max(&self.raw);
        let up = convscope_image::upsample_bilinear(&scaled, self.height, self.width, out_h, out_w)
            .expect("the map has height × width values");
        scale_min_max(&up)
    }

    /// `(row, col)` of the largest value of the raw map (the first one on ties).
    pub fn peak(&self) -> (usize, usize) {
        let i = argmax(&self.raw);
        (i / self.width.max(1), i % self.width.max(1))
    }
}

/// pytorch-grad-cam's `scale_cam_image` without the resize: `x − min`, then `/ (1e-7 + max)`.
fn scale_min_max(v: &[f32]) -> Vec<f32> {
    let min = v.iter().copied().fold(f32::INFINITY, f32::min);
    if !min.is_finite() {
        return vec![0.0; v.len()];
    }
    let max = v.iter().map(|&x| x - min).fold(0.0f32, f32::max);
    v.iter().map(|&x| (x - min) / (1e-7 + max)).collect()
}

/// Index of the largest value (first on ties).
pub(crate) fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// The registry names of the methods, in the order of pytorch-grad-cam's README.
pub fn method_names() -> &'static [&'static str] {
    &[
        "gradcam",
        "gradcam++",
        "xgradcam",
        "layercam",
        "hirescam",
        "eigencam",
        "scorecam",
        "ablationcam",
    ]
}

/// The method called `name` (case-insensitive; see [`method_names`]).
pub fn method(name: &str) -> Result<Box<dyn CamMethod>> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "gradcam" => Box::new(GradCam),
        "gradcam++" => Box::new(GradCamPlusPlus),
        "xgradcam" => Box::new(XGradCam),
        "layercam" => Box::new(LayerCam),
        "hirescam" => Box::new(HiResCam),
        "eigencam" => Box::new(EigenCam),
        "scorecam" => Box::new(ScoreCam),
        "ablationcam" => Box::new(AblationCam),
        _ => {
            return Err(Error::Config(format!(
                "unknown CAM method '{name}'; valid methods: {}",
                method_names().join(", ")
            )))
        }
    })
}

/// The last layer with a spatial feature map (height and width > 1) for `input`: the usual
/// Grad-CAM layer, just before the classifier pools the map away (`block5_pool` for VGG16,
/// `_conv_head` for EfficientNet).
pub fn auto_layer(model: &Model, input: &Tensor) -> Result<Layer> {
    let tape = model.forward(input, &[first_output(model)?])?;
    auto_layer_in(model, &tape)
}

/// [`auto_layer`] over the values of a forward pass.
pub(crate) fn auto_layer_in(model: &Model, tape: &Tape<'_>) -> Result<Layer> {
    model
        .layers()
        .iter()
        .rev()
        .find(|l| {
            tape.value(l.value)
                .is_ok_and(|t| matches!(*t.shape(), [_, _, h, w] if h > 1 && w > 1))
        })
        .cloned()
        .ok_or_else(|| {
            Error::Layer(
                "the model has no layer with a spatial feature map (height and width > 1)".into(),
            )
        })
}

/// Options of [`run_cams`].
#[derive(Clone, Debug, PartialEq)]
pub struct CamConfig {
    /// Method name (see [`method_names`]).
    pub method: String,
    /// Layer (friendly layer name or ONNX value/node name); `None` picks [`auto_layer`].
    pub layer: Option<String>,
    /// Target classes; empty means the `top` most probable classes.
    pub targets: Vec<usize>,
    /// How many top classes to explain when `targets` is empty.
    pub top: usize,
    /// Batch size of the extra forward passes of Score-CAM and Ablation-CAM.
    pub batch_size: usize,
}

impl Default for CamConfig {
    fn default() -> Self {
        Self {
            method: "gradcam".into(),
            layer: None,
            targets: Vec::new(),
            top: 1,
            batch_size: DEFAULT_BATCH,
        }
    }
}

/// The result of [`run_cams`].
#[derive(Clone, Debug, PartialEq)]
pub struct CamRun {
    /// The method's registry name.
    pub method: &'static str,
    /// The layer's value.
    pub layer: ValueId,
    /// The layer's friendly name, or the name it was given by.
    pub layer_label: String,
    /// The model's prediction for the input.
    pub prediction: Prediction,
    /// Which value the class scores were read from.
    pub classifier: ClassifierOutput,
    /// One map per target class, in the order of the targets.
    pub cams: Vec<Cam>,
}

/// Resolves the layer, the targets and the method of `cfg`, then computes the maps, all from
/// one forward pass.
pub fn run_cams(model: &Model, input: &Tensor, cfg: &CamConfig) -> Result<CamRun> {
    let method = method(&cfg.method)?;
    let output = first_output(model)?;
    let (tape, layer, label) = match &cfg.layer {
        Some(name) => {
            let id = model.resolve(name)?;
            let label = model
                .layers()
                .iter()
                .find(|l| l.value == id)
                .map_or(name.clone(), |l| l.name.clone());
            (model.forward(input, &[output, id])?, id, label)
        }
        None => {
            let tape = model.forward(input, &[output])?;
            let l = auto_layer_in(model, &tape)?;
            (tape, l.value, l.name)
        }
    };
    let classifier = find_classifier(model, &tape)?;
    let prediction = prediction(&tape, &classifier)?;
    let targets: Vec<usize> = if cfg.targets.is_empty() {
        prediction
            .top(cfg.top.max(1))
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    } else {
        cfg.targets.clone()
    };
    let cams = cams_from_tape(
        model,
        input,
        &tape,
        &classifier,
        layer,
        &targets,
        method.as_ref(),
        cfg.batch_size,
    )?;
    Ok(CamRun {
        method: method.name(),
        layer,
        layer_label: label,
        prediction,
        classifier,
        cams,
    })
}

/// Class activation maps of `layer` for each class in `targets`, from one forward pass.
///
/// `input` is one image in the model's layout; `layer` must be an NCHW feature map with more
/// than one position. Errors name the number of classes when a target is out of range.
pub fn compute_cams(
    model: &Model,
    input: &Tensor,
    layer: ValueId,
    targets: &[usize],
    method: &dyn CamMethod,
) -> Result<Vec<Cam>> {
    let tape = model.forward(input, &[first_output(model)?, layer])?;
    let classifier = find_classifier(model, &tape)?;
    cams_from_tape(
        model,
        input,
        &tape,
        &classifier,
        layer,
        targets,
        method,
        DEFAULT_BATCH,
    )
}

/// The activations of `layer` in a pass, as `(channels, height, width)` and data, with errors
/// for a batch or a value that is not a spatial map.
pub(crate) fn feature_map<'t>(
    model: &Model,
    tape: &'t Tape<'_>,
    layer: ValueId,
) -> Result<(usize, usize, usize, &'t [f32])> {
    let a = tape.value(layer)?;
    match *a.shape() {
        [1, c, h, w] if h * w > 1 && c > 0 => Ok((c, h, w, a.data())),
        _ => Err(Error::Layer(format!(
            "layer '{}' has no spatial feature map (output shape {:?}); pick a convolution or pooling \
             layer before the classifier",
            model
                .layers()
                .iter()
                .find(|l| l.value == layer)
                .map_or(model.value_name(layer), |l| l.name.as_str()),
            a.shape()
        ))),
    }
}

/// Maps from a pass that computed the layer and the classifier output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cams_from_tape(
    model: &Model,
    input: &Tensor,
    tape: &Tape<'_>,
    classifier: &ClassifierOutput,
    layer: ValueId,
    targets: &[usize],
    method: &dyn CamMethod,
    batch_size: usize,
) -> Result<Vec<Cam>> {
    if input.shape().first() != Some(&1) {
        return Err(Error::Input(format!(
            "class activation maps take one image, got input shape {:?}",
            input.shape()
        )));
    }
    for &t in targets {
        check_class(t, classifier.classes)?;
    }
    let (channels, height, width, activations) = feature_map(model, tape, layer)?;
    let scores = tape.value(classifier.score)?;
    let cache = ScoreCache::default();
    let mut cams = Vec::with_capacity(targets.len());
    for &target in targets {
        let grads = if method.uses_gradients() {
            let mut seed = Tensor::zeros(scores.shape());
            seed.data_mut()[target] = 1.0;
            let mut g = tape.backward_to(vec![(classifier.score, seed)], &[layer])?;
            Some(
                g.remove(&layer)
                    .expect("backward_to returns every wrt value"),
            )
        } else {
            None
        };
        let ctx = CamContext {
            model,
            input,
            layer,
            output: classifier.score,
            classes: classifier.classes,
            activations,
            channels,
            height,
            width,
            grads: grads.as_ref().map(Tensor::data),
            target,
            score: scores.data()[target],
            batch_size: batch_size.max(1),
            cache: &cache,
        };
        let raw = method.cam_image(&ctx)?;
        cams.push(Cam::new(target, ctx.score, raw, height, width));
    }
    Ok(cams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_knows_every_name() {
        for &n in method_names() {
            assert_eq!(method(n).unwrap().name(), n);
        }
        let e = method("gradcam+++").err().unwrap().to_string();
        assert!(e.contains("gradcam++") && e.contains("ablationcam"), "{e}");
    }

    #[test]
    fn zero_map_normalizes_to_zero() {
        let c = Cam::new(0, 1.0, vec![0.0, -1.0, f32::NAN, 0.0], 2, 2);
        assert!(c.all_zero);
        assert!(c.normalized(5, 3).iter().all(|&v| v == 0.0));
        let c = Cam::new(0, 1.0, vec![0.0, 1.0, 2.0, 4.0], 2, 2);
        let n = c.normalized(4, 4);
        assert!(n.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!((n.iter().copied().fold(0.0, f32::max) - 1.0).abs() < 1e-5);
        assert_eq!(c.peak(), (1, 1));
    }
}
