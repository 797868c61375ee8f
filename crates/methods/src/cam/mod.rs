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
//! let targets = convscope_methods::target::classes(&[285]);
//! let cams = compute_cams(&model, &x, layer.value, &targets, method("gradcam")?.as_ref())?;
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

pub(crate) use predict::first_output;

use crate::batch::{fits, in_batches};
use crate::error::{Error, Result};
use crate::target::{Target, TargetRef, TargetSource};
use crate::tokens::{map_layout, MapLayout, TokenConfig};

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

/// Everything a method sees for one image and one target.
pub struct CamContext<'a> {
    /// The model.
    pub model: &'a Model,
    /// The input image (a batch of one, in the model's layout).
    pub input: &'a Tensor,
    /// The layer's value (a feature map, or tokens read as one: see [`CamContext::layout`]).
    pub layer: ValueId,
    /// How the layer's value was read as maps ([`crate::tokens`]).
    pub layout: MapLayout,
    /// The layer's value for the image, in its own layout (what [`CamContext::layout`] read
    /// the maps from; Score-CAM and Ablation-CAM write modified maps back into copies of it).
    pub layer_value: &'a Tensor,
    /// The value the target reads (for a class: the pre-softmax logits when found).
    pub output: ValueId,
    /// Numbers in that value per image (for a class: the number of classes).
    pub output_len: usize,
    /// The activations `A` of the single image, `channels × height × width` (read through
    /// [`CamContext::layout`]).
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
    /// What the map explains.
    pub target: &'a dyn Target,
    /// The target's score for the unmodified input.
    pub score: f32,
    /// Batch size of extra forward passes (Score-CAM, Ablation-CAM).
    pub batch_size: usize,
    /// Class scores of the extra passes, shared by the targets of one call.
    cache: &'a ScoreCache,
}

/// The target values (`n × output_len`) of batches of modified inputs or activations, by key
/// and value.
#[derive(Default)]
struct ScoreCache(Mutex<HashMap<ScoreKey, Arc<Vec<f32>>>>);

/// A [`ScoreCache`] entry: the kind of modification and the value read.
type ScoreKey = (&'static str, ValueId);

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
    /// The passes give the whole target value (every class's score); they run once per `key`
    /// and are reused for the other targets of the same [`compute_cams`] call, so `fill` must
    /// not depend on the target.
    pub fn scores_for_inputs(
        &self,
        key: &'static str,
        n: usize,
        fill: &dyn Fn(usize, &mut [f32]),
    ) -> Result<Vec<f32>> {
        let model = self.model;
        self.memo(key, n, &|| {
            self.batched_values(self.input.shape(), n, fill, &|t| {
                Ok(model.run_float(t, &[self.output])?.remove(0))
            })
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
        let shape = self.layer_value.shape().to_vec();
        let (layout, original) = (self.layout, self.layer_value.data());
        let mut chw = vec![0.0f32; self.channels * self.plane()];
        let chw = Mutex::new(&mut chw);
        // Each modified map is written back into a copy of the layer's own value (tokens
        // dropped from the map keep their values).
        let fill_value = |i: usize, item: &mut [f32]| {
            let mut maps = chw.lock().expect("map buffer");
            fill(i, &mut maps);
            item.copy_from_slice(&original[..item.len()]);
            layout.from_chw(&shape, &maps, item);
        };
        let item_shape = [&[1], &shape[1..]].concat();
        self.memo(key, n, &|| {
            self.batched_values(&item_shape, n, &fill_value, &|t| {
                let v = model
                    .run_from(&[(self.layer, t.clone())], &[self.output])
                    .or_else(|_| {
                        // Not a cut of the graph (a pre-norm transformer's LayerNorm: the
                        // residual path goes around it): the rest also runs from the input.
                        let input_id = model.resolve(&model.input_spec().name)?;
                        let m = t.shape()[0];
                        let tiled = Tensor::new(
                            [&[m], &self.input.shape()[1..]].concat(),
                            self.input.data().repeat(m),
                        )?;
                        model.run_from(
                            &[(input_id, tiled), (self.layer, t.clone())],
                            &[self.output],
                        )
                    })
                    .map_err(|e| {
                        Error::Layer(format!(
                            "cannot rerun the model from layer '{}' ({e}); pick a layer that every \
                             path to the output goes through",
                            model.value_name(self.layer)
                        ))
                    })?;
                Ok(v[0].as_float(model.value_name(self.output))?.clone())
            })
        })
    }

    /// The target's score for each of the `n × output_len` values stored under `key` (computed
    /// first if needed).
    fn memo(
        &self,
        key: &'static str,
        n: usize,
        compute: &dyn Fn() -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let slot = (key, self.output);
        let cached = self
            .cache
            .0
            .lock()
            .expect("score cache")
            .get(&slot)
            .cloned();
        let all = match cached {
            Some(all) if all.len() == n * self.output_len => all,
            _ => {
                let all = Arc::new(compute()?);
                self.cache
                    .0
                    .lock()
                    .expect("score cache")
                    .insert(slot, all.clone());
                all
            }
        };
        Ok(all
            .chunks(self.output_len.max(1))
            .map(|row| self.target.score(row))
            .collect())
    }

    /// Runs `n` items through `run` in batches of [`CamContext::batch_size`]; returns the
    /// `n × output_len` target values.
    fn batched_values(
        &self,
        item_shape: &[usize],
        n: usize,
        fill: &dyn Fn(usize, &mut [f32]),
        run: &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Vec<f32>> {
        let len = self.output_len;
        let mut out = Vec::with_capacity(n * len);
        in_batches(
            item_shape,
            n,
            self.batch_size,
            fill,
            &mut |_, batch| {
                let m = batch.shape()[0];
                let t = run(batch)?;
                if !fits(&t, m, len) {
                    return Ok(None);
                }
                out.extend_from_slice(t.data());
                Ok(Some(()))
            },
            &|| format!("the target value does not hold {len} values for one image"),
        )?;
        Ok(out)
    }
}

/// One class activation map.
#[derive(Clone, Debug, PartialEq)]
pub struct Cam {
    /// The target's name ([`Target::name`], e.g. the class index).
    pub target: String,
    /// The class, when the target is one class ([`Target::class`]).
    pub class: Option<usize>,
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
    fn new(target: &dyn Target, score: f32, mut raw: Vec<f32>, height: usize, width: usize) -> Cam {
        raw.iter_mut().for_each(|v| {
            if !v.is_finite() || *v < 0.0 {
                *v = 0.0;
            }
        });
        let all_zero = raw.iter().all(|&v| v == 0.0);
        Cam {
            target: target.name(),
            class: target.class(),
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

/// Builds one method.
type MakeMethod = fn() -> Box<dyn CamMethod>;

/// The registry: every method's name and constructor, in the order of pytorch-grad-cam's
/// README. The one list of method names ([`method_names`], [`method`] and the command line's
/// choices all read it).
const REGISTRY: &[(&str, MakeMethod)] = &[
    ("gradcam", || Box::new(GradCam)),
    ("gradcam++", || Box::new(GradCamPlusPlus)),
    ("xgradcam", || Box::new(XGradCam)),
    ("layercam", || Box::new(LayerCam)),
    ("hirescam", || Box::new(HiResCam)),
    ("eigencam", || Box::new(EigenCam)),
    ("scorecam", || Box::new(ScoreCam)),
    ("ablationcam", || Box::new(AblationCam)),
];

/// The registry names of the methods, in the order of pytorch-grad-cam's README.
pub fn method_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(name, _)| *name).collect()
}

/// The method called `name` (case-insensitive; see [`method_names`]).
pub fn method(name: &str) -> Result<Box<dyn CamMethod>> {
    let lower = name.to_ascii_lowercase();
    REGISTRY
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, make)| make())
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown CAM method '{name}'; valid methods: {}",
                method_names().join(", ")
            ))
        })
}

/// The last layer with a spatial feature map (height and width > 1) for `input`: the usual
/// Grad-CAM layer, just before the classifier pools the map away (`block5_pool` for VGG16,
/// `_conv_head` for EfficientNet).
pub fn auto_layer(model: &Model, input: &Tensor) -> Result<Layer> {
    let tape = model.forward(input, &[first_output(model)?])?;
    auto_layer_in(model, &tape, input)
}

/// [`auto_layer`] over the values of a forward pass of `input`, token layers read with
/// `tokens`.
///
/// In a model with a class token (ViT, DeiT) the last layers' patch tokens get no gradient
/// (only the class token reaches the head), so the layer is instead the last block's first
/// LayerNorm, as pytorch-grad-cam's ViT tutorial picks it (`blocks[-1].norm1`): the third
/// LayerNorm from the end of a pre-norm transformer (norm1, norm2 per block, then the final
/// norm). Otherwise it is the last layer whose value reads as spatial maps (Swin's final norm,
/// ConvNeXt's last stage).
pub(crate) fn auto_layer_with(
    model: &Model,
    tape: &Tape<'_>,
    input: &Tensor,
    tokens: &TokenConfig,
) -> Result<Layer> {
    let input_hw = model.input_spec().spatial(input.shape());
    let spatial: Vec<(&Layer, MapLayout)> = model
        .layers()
        .iter()
        .filter_map(|l| {
            let t = tape.value(l.value).ok()?;
            let layout = map_layout(t.shape(), input_hw, tokens)?;
            let (_, h, w) = layout.dims(t.shape());
            (h > 1 && w > 1).then_some((l, layout))
        })
        .collect();
    let class_token_norms: Vec<&Layer> = spatial
        .iter()
        .filter(|(l, layout)| {
            l.ops.starts_with("LayerNormalization")
                && matches!(layout, MapLayout::Tokens { skip, .. } if *skip >= 1)
        })
        .map(|(l, _)| *l)
        .collect();
    if class_token_norms.len() >= 3 {
        return Ok(class_token_norms[class_token_norms.len() - 3].clone());
    }
    spatial.last().map(|(l, _)| (*l).clone()).ok_or_else(|| {
        Error::Layer(
            "the model has no layer with a spatial feature map (height and width > 1) or a token \
             sequence that reads as one"
                .into(),
        )
    })
}

/// [`auto_layer_with`] with token layers read by the default rule.
pub(crate) fn auto_layer_in(model: &Model, tape: &Tape<'_>, input: &Tensor) -> Result<Layer> {
    auto_layer_with(model, tape, input, &TokenConfig::default())
}

/// How the value of `layer` in a pass of `input` reads as maps, with an error naming the layer
/// and its shape when it does not.
pub fn layer_layout(
    model: &Model,
    tape: &Tape<'_>,
    input: &Tensor,
    layer: ValueId,
    tokens: &TokenConfig,
) -> Result<MapLayout> {
    let a = tape.value(layer)?;
    let input_hw = model.input_spec().spatial(input.shape());
    match map_layout(a.shape(), input_hw, tokens) {
        Some(layout) if a.shape().first() == Some(&1) => {
            let (c, h, w) = layout.dims(a.shape());
            if h * w > 1 && c > 0 {
                return Ok(layout);
            }
        }
        _ => {}
    }
    let name = model
        .layers()
        .iter()
        .find(|l| l.value == layer)
        .map_or(model.value_name(layer), |l| l.name.as_str());
    let hint = if tokens.grid.is_some() || tokens.skip.is_some() {
        format!(" with --tokens {tokens}")
    } else if a.shape().len() == 3 {
        " (a token sequence: give its grid with --tokens grid=HxW,skip=N)".to_string()
    } else {
        String::new()
    };
    Err(Error::Layer(format!(
        "layer '{name}' has no spatial feature map (output shape {:?}){hint}; pick a convolution, \
         pooling or token layer before the classifier",
        a.shape()
    )))
}

/// Options of [`run_cams`].
#[derive(Clone, Debug)]
pub struct CamConfig {
    /// Method name (see [`method_names`]).
    pub method: String,
    /// Layer (friendly layer name or ONNX value/node name); `None` picks [`auto_layer`].
    pub layer: Option<String>,
    /// What to explain; empty means the `top` most probable classes.
    pub targets: Vec<TargetRef>,
    /// How many top classes to explain when `targets` is empty.
    pub top: usize,
    /// Batch size of the extra forward passes of Score-CAM and Ablation-CAM.
    pub batch_size: usize,
    /// How a token layer is read as maps (default: worked out, see [`crate::tokens`]).
    pub tokens: TokenConfig,
}

impl Default for CamConfig {
    fn default() -> Self {
        Self {
            method: "gradcam".into(),
            layer: None,
            targets: Vec::new(),
            top: 1,
            batch_size: DEFAULT_BATCH,
            tokens: TokenConfig::default(),
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
    /// The model's prediction for the input (`None` when the model is not a classifier and
    /// every target names its own value).
    pub prediction: Option<Prediction>,
    /// Which value the class scores were read from (`None` as for the prediction).
    pub classifier: Option<ClassifierOutput>,
    /// One map per target, in the order of the targets.
    pub cams: Vec<Cam>,
    /// How the layer's value was read as maps ([`MapLayout::describe`] says it in words).
    pub layout: MapLayout,
}

/// Resolves the layer, the targets and the method of `cfg`, then computes the maps, all from
/// one forward pass.
pub fn run_cams(model: &Model, input: &Tensor, cfg: &CamConfig) -> Result<CamRun> {
    let tape = model.forward(input, &cam_values(model, cfg)?)?;
    run_cams_in(model, input, &tape, cfg)
}

/// The values a forward pass must keep for [`run_cams_in`] with `cfg`: the model's first
/// output, the values the targets read and the chosen layer.
pub fn cam_values(model: &Model, cfg: &CamConfig) -> Result<Vec<ValueId>> {
    let mut wanted = vec![first_output(model)?];
    wanted.extend(target_values(model, &cfg.targets)?.into_iter().flatten());
    if let Some(name) = &cfg.layer {
        wanted.push(model.resolve(name)?);
    }
    Ok(wanted)
}

/// [`run_cams`] on a forward pass of `input` that already exists, e.g. one a viewer keeps for
/// an image so that the map of another class or method costs only the backward sweeps.
///
/// The pass must hold every value of [`cam_values`] (a pass to the model's output holds every
/// layer's output); a missing one is an error naming it.
pub fn run_cams_in(
    model: &Model,
    input: &Tensor,
    tape: &Tape<'_>,
    cfg: &CamConfig,
) -> Result<CamRun> {
    let method = method(&cfg.method)?;
    let sources = target_values(model, &cfg.targets)?;
    let (layer, label) = match &cfg.layer {
        Some(name) => {
            let id = model.resolve(name)?;
            let label = model
                .layers()
                .iter()
                .find(|l| l.value == id)
                .map_or(name.clone(), |l| l.name.clone());
            (id, label)
        }
        None => {
            let l = auto_layer_with(model, tape, input, &cfg.tokens)?;
            (l.value, l.name)
        }
    };
    let needs_classifier = cfg.targets.is_empty() || sources.iter().any(Option::is_none);
    let classifier = match find_classifier(model, tape) {
        Ok(c) => Some(c),
        Err(e) if needs_classifier => return Err(e),
        Err(_) => None,
    };
    let prediction = classifier
        .as_ref()
        .map(|c| prediction(tape, c))
        .transpose()?;
    let targets: Vec<TargetRef> = match (&prediction, cfg.targets.is_empty()) {
        (Some(p), true) => {
            let top: Vec<usize> = p.top(cfg.top.max(1)).into_iter().map(|(c, _)| c).collect();
            crate::target::classes(&top)
        }
        _ => cfg.targets.clone(),
    };
    let layout = layer_layout(model, tape, input, layer, &cfg.tokens)?;
    let cams = cams_from_tape(
        model,
        input,
        tape,
        classifier.as_ref(),
        layer,
        &targets,
        method.as_ref(),
        cfg.batch_size,
        &cfg.tokens,
    )?;
    Ok(CamRun {
        method: method.name(),
        layer,
        layer_label: label,
        prediction,
        classifier,
        cams,
        layout,
    })
}

/// The graph value each target reads: `Some(id)` for a [`TargetSource::Value`], `None` for
/// the class scores.
fn target_values(model: &Model, targets: &[TargetRef]) -> Result<Vec<Option<ValueId>>> {
    targets
        .iter()
        .map(|t| match t.source() {
            TargetSource::ClassScores => Ok(None),
            TargetSource::Value(name) => Ok(Some(model.resolve(&name)?)),
        })
        .collect()
}

/// Class activation maps of `layer` for each target, from one forward pass.
///
/// `input` is one image in the model's layout; `layer` must be an NCHW feature map with more
/// than one position. Errors name the number of classes when a target is out of range.
pub fn compute_cams(
    model: &Model,
    input: &Tensor,
    layer: ValueId,
    targets: &[TargetRef],
    method: &dyn CamMethod,
) -> Result<Vec<Cam>> {
    let mut wanted = vec![first_output(model)?, layer];
    wanted.extend(target_values(model, targets)?.into_iter().flatten());
    let tape = model.forward(input, &wanted)?;
    let classifier = find_classifier(model, &tape).ok();
    cams_from_tape(
        model,
        input,
        &tape,
        classifier.as_ref(),
        layer,
        targets,
        method,
        DEFAULT_BATCH,
        &TokenConfig::default(),
    )
}

/// The value a target reads in a pass, checked against the target: `(value, numbers per
/// image, score)`.
pub(crate) fn resolve_target(
    model: &Model,
    tape: &Tape<'_>,
    classifier: Option<&ClassifierOutput>,
    target: &dyn Target,
) -> Result<(ValueId, usize, f32)> {
    let id = match target.source() {
        TargetSource::ClassScores => {
            classifier
                .ok_or_else(|| {
                    Error::Config(format!(
                        "target {} needs class scores, but the model has no classifier output",
                        target.name()
                    ))
                })?
                .score
        }
        TargetSource::Value(name) => model.resolve(&name)?,
    };
    let v = tape.value(id)?;
    let n = v.shape().first().copied().unwrap_or(1).max(1);
    let len = v.len() / n;
    target.check(len)?;
    Ok((id, len, target.score(&v.data()[..len])))
}

/// The seed of a backward pass from `target`: d score / d value for item 0 of `values`.
pub(crate) fn target_seed(target: &dyn Target, values: &Tensor) -> Tensor {
    let mut seed = Tensor::zeros(values.shape());
    let n = values.shape().first().copied().unwrap_or(1).max(1);
    let len = values.len() / n;
    target.gradient(&values.data()[..len], &mut seed.data_mut()[..len]);
    seed
}

/// Maps from a pass that computed the layer and the values the targets read.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cams_from_tape(
    model: &Model,
    input: &Tensor,
    tape: &Tape<'_>,
    classifier: Option<&ClassifierOutput>,
    layer: ValueId,
    targets: &[TargetRef],
    method: &dyn CamMethod,
    batch_size: usize,
    tokens: &TokenConfig,
) -> Result<Vec<Cam>> {
    if input.shape().first() != Some(&1) {
        return Err(Error::Input(format!(
            "class activation maps take one image, got input shape {:?}",
            input.shape()
        )));
    }
    let resolved: Vec<(ValueId, usize, f32)> = targets
        .iter()
        .map(|t| resolve_target(model, tape, classifier, t.as_ref()))
        .collect::<Result<_>>()?;
    let layout = layer_layout(model, tape, input, layer, tokens)?;
    let layer_value = tape.value(layer)?;
    let (channels, height, width) = layout.dims(layer_value.shape());
    let activations = layout.to_chw(layer_value.shape(), layer_value.data());
    let cache = ScoreCache::default();
    let mut cams = Vec::with_capacity(targets.len());
    for (target, &(output, output_len, score)) in targets.iter().zip(&resolved) {
        let grads = if method.uses_gradients() {
            let seed = target_seed(target.as_ref(), tape.value(output)?);
            let mut g = tape.backward_to(vec![(output, seed)], &[layer])?;
            let g = g
                .remove(&layer)
                .expect("backward_to returns every wrt value");
            Some(layout.to_chw(g.shape(), g.data()))
        } else {
            None
        };
        let ctx = CamContext {
            model,
            input,
            layer,
            layout,
            layer_value,
            output,
            output_len,
            activations: &activations,
            channels,
            height,
            width,
            grads: grads.as_deref(),
            target: target.as_ref(),
            score,
            batch_size: batch_size.max(1),
            cache: &cache,
        };
        let raw = method.cam_image(&ctx)?;
        cams.push(Cam::new(target.as_ref(), score, raw, height, width));
    }
    Ok(cams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_knows_every_name() {
        for n in method_names() {
            assert_eq!(method(n).unwrap().name(), n);
        }
        let e = method("gradcam+++").err().unwrap().to_string();
        assert!(e.contains("gradcam++") && e.contains("ablationcam"), "{e}");
    }

    #[test]
    fn zero_map_normalizes_to_zero() {
        let t = crate::target::Class(0);
        let c = Cam::new(&t, 1.0, vec![0.0, -1.0, f32::NAN, 0.0], 2, 2);
        assert!(c.all_zero);
        assert!(c.normalized(5, 3).iter().all(|&v| v == 0.0));
        let c = Cam::new(&t, 1.0, vec![0.0, 1.0, 2.0, 4.0], 2, 2);
        let n = c.normalized(4, 4);
        assert!(n.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!((n.iter().copied().fold(0.0, f32::max) - 1.0).abs() < 1e-5);
        assert_eq!(c.peak(), (1, 1));
    }
}
