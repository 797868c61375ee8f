//! Saliency: which input pixels the class score depends on, from gradients with respect to the
//! input.
//!
//! * [`vanilla_gradient`]: dScore/dx (Simonyan et al., 2014).
//! * [`smooth_grad`]: the gradient averaged over noisy copies of the input (Smilkov et al., 2017).
//! * [`integrated_gradients`]: the gradient integrated along the straight path from a baseline
//!   (Sundararajan et al., 2017), with its completeness check.
//! * [`guided_backprop`]: only positive gradients pass back through ReLUs (Springenberg et al.,
//!   2015).
//! * [`guided_gradcam`]: guided backpropagation times the upsampled Grad-CAM map.
//!
//! The score is the class's pre-softmax logit, as for the CAM methods (see
//! [`crate::cam::find_classifier`]). Every result holds the raw attribution in the model's input
//! layout and a `height × width` magnitude map (the largest `|value|` over the colour channels).

use convscope_engine::{Layout, Model, ReluRule, Tape, Tensor, ValueId};

use crate::batch::{fits, in_batches};
use crate::cam::{self, find_classifier, first_output, resolve_target, target_seed, GradCam};
use crate::error::{Error, Result};
use crate::target::{Class, TargetRef, TargetSource};
use crate::transform::Rng;

/// Options of the saliency methods.
#[derive(Clone, Debug)]
pub struct SaliencyConfig {
    /// What to explain; `None` explains the most probable class.
    pub target: Option<TargetRef>,
    /// SmoothGrad: number of noisy samples.
    pub samples: usize,
    /// SmoothGrad: noise standard deviation as a fraction of the input's range (max − min).
    pub noise: f32,
    /// Integrated Gradients: number of intervals of the path (the trapezoid rule evaluates
    /// `steps + 1` points).
    pub steps: usize,
    /// Integrated Gradients: the baseline in model-input space (same shape as the input);
    /// `None` is all zeros.
    pub baseline: Option<Tensor>,
    /// Images per forward and backward pass (SmoothGrad, Integrated Gradients); fewer when the
    /// passes would take more than about 1.5 GiB.
    pub batch_size: usize,
    /// Seed of the SmoothGrad noise.
    pub seed: u64,
    /// Guided Grad-CAM: the layer of the Grad-CAM map; `None` uses [`cam::auto_layer`].
    pub layer: Option<ValueId>,
}

impl Default for SaliencyConfig {
    fn default() -> Self {
        Self {
            target: None,
            samples: 25,
            noise: 0.15,
            steps: 32,
            baseline: None,
            batch_size: 16,
            seed: 0,
            layer: None,
        }
    }
}

impl SaliencyConfig {
    /// Checks every option on its own: `noise` a finite number ≥ 0, `samples`, `steps` and
    /// `batch-size` at least 1, and a finite `baseline`. Errors name the option as the command
    /// line spells it.
    ///
    /// ```
    /// use convscope_methods::saliency::SaliencyConfig;
    /// let cfg = SaliencyConfig { noise: f32::NAN, ..SaliencyConfig::default() };
    /// assert_eq!(
    ///     cfg.validate().unwrap_err().to_string(),
    ///     "noise must be a finite number >= 0, got NaN"
    /// );
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(Error::Config(format!(
                "noise must be a finite number >= 0, got {}",
                self.noise
            )));
        }
        for (name, v) in [
            ("samples", self.samples),
            ("steps", self.steps),
            ("batch-size", self.batch_size),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be at least 1, got 0")));
            }
        }
        if let Some((i, v)) = self.baseline.as_ref().and_then(Tensor::first_nonfinite) {
            return Err(Error::Config(format!(
                "baseline element {i} is {v}; the baseline must be finite"
            )));
        }
        Ok(())
    }
}

/// Integrated Gradients' completeness check: the attributions should add up to the score
/// difference between the input and the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Completeness {
    /// Σ attributions.
    pub attribution_sum: f64,
    /// score(input) − score(baseline).
    pub score_difference: f64,
}

impl Completeness {
    /// `|Σ attributions − Δscore| / max(|Δscore|, 1e-12)`.
    pub fn relative_error(&self) -> f64 {
        (self.attribution_sum - self.score_difference).abs()
            / self.score_difference.abs().max(1e-12)
    }
}

/// A saliency map.
#[derive(Clone, Debug, PartialEq)]
pub struct Saliency {
    /// The explained target's name ([`crate::target::Target::name`], e.g. the class index).
    pub target: String,
    /// The explained class, when the target is one class.
    pub class: Option<usize>,
    /// Its score for the input (pre-softmax logit when available).
    pub score: f32,
    /// `height × width` magnitudes (≥ 0): the largest `|raw|` over the input channels.
    pub map: Vec<f32>,
    /// Height of the input.
    pub height: usize,
    /// Width of the input.
    pub width: usize,
    /// The attribution itself, in the model's input layout (batch of one).
    pub raw: Tensor,
    /// Integrated Gradients only: the completeness check.
    pub completeness: Option<Completeness>,
}

impl Saliency {
    /// [`Saliency::map`] divided by its maximum (`0..=1`; an all-zero map stays zero).
    pub fn normalized(&self) -> Vec<f32> {
        let max = self.map.iter().copied().fold(0.0f32, f32::max);
        if max > 0.0 && max.is_finite() {
            self.map.iter().map(|&v| v / max).collect()
        } else {
            vec![0.0; self.map.len()]
        }
    }
}

/// A saliency method's entry point.
type SaliencyFn = fn(&Model, &Tensor, &SaliencyConfig) -> Result<Saliency>;

/// The registry: every method's name and function, the one list of names.
const REGISTRY: &[(&str, SaliencyFn)] = &[
    ("gradient", vanilla_gradient),
    ("smoothgrad", smooth_grad),
    ("integrated-gradients", integrated_gradients),
    ("guided-backprop", guided_backprop),
    ("guided-gradcam", guided_gradcam),
];

/// Registry names of the saliency methods, for [`compute_saliency`].
pub fn saliency_method_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(name, _)| *name).collect()
}

/// Runs the saliency method called `name` (see [`saliency_method_names`]).
pub fn compute_saliency(
    model: &Model,
    input: &Tensor,
    name: &str,
    cfg: &SaliencyConfig,
) -> Result<Saliency> {
    let lower = name.to_ascii_lowercase();
    let (_, run) = REGISTRY.iter().find(|(n, _)| *n == lower).ok_or_else(|| {
        Error::Config(format!(
            "unknown saliency method '{name}'; valid methods: {}",
            saliency_method_names().join(", ")
        ))
    })?;
    run(model, input, cfg)
}

/// Memory the tapes of one batched pass may take (forward values and their gradients).
const BATCH_BUDGET: usize = 1536 << 20;

/// One forward pass of the input with the classifier identified and the target resolved.
struct Setup<'m> {
    tape: Tape<'m>,
    head: Explained,
}

/// What is being explained, resolved against one pass.
struct Explained {
    target: TargetRef,
    /// The value the target reads.
    output: ValueId,
    /// Numbers in that value per image.
    output_len: usize,
    score: f32,
}

fn setup<'m>(
    model: &'m Model,
    input: &Tensor,
    cfg: &SaliencyConfig,
    extra: &[ValueId],
) -> Result<Setup<'m>> {
    cfg.validate()?;
    if let Some((i, v)) = input.first_nonfinite() {
        return Err(Error::Input(format!(
            "input element {i} is {v}; saliency needs a finite input"
        )));
    }
    if input.shape().first() != Some(&1) {
        return Err(Error::Input(format!(
            "saliency takes one image, got input shape {:?}",
            input.shape()
        )));
    }
    let mut wanted = vec![first_output(model)?];
    wanted.extend_from_slice(extra);
    if let Some(TargetSource::Value(name)) = cfg.target.as_ref().map(|t| t.source()) {
        wanted.push(model.resolve(&name)?);
    }
    let tape = model.forward(input, &wanted)?;
    let classifier = match (&cfg.target, find_classifier(model, &tape)) {
        (_, Ok(c)) => Some(c),
        (Some(t), Err(_)) if t.source() != TargetSource::ClassScores => None,
        (_, Err(e)) => return Err(e),
    };
    let target: TargetRef = match &cfg.target {
        Some(t) => t.clone(),
        None => {
            let cls = classifier
                .as_ref()
                .expect("a missing classifier returned above");
            std::sync::Arc::new(Class(cam::prediction(&tape, cls)?.top(1)[0].0))
        }
    };
    let (output, output_len, score) =
        resolve_target(model, &tape, classifier.as_ref(), target.as_ref())?;
    Ok(Setup {
        tape,
        head: Explained {
            target,
            output,
            output_len,
            score,
        },
    })
}

impl Setup<'_> {
    /// d score / d input with the given ReLU rule.
    fn gradient(&self, rule: ReluRule) -> Result<Tensor> {
        let h = &self.head;
        let seed = target_seed(h.target.as_ref(), self.tape.value(h.output)?);
        Ok(self
            .tape
            .backward_with(vec![(h.output, seed)], &[], rule)?
            .input)
    }

    /// Images per batched pass: at most `requested`, and few enough that the batch's tape
    /// (measured on this pass of one image, twice for the gradients) fits in [`BATCH_BUDGET`].
    /// Frees this pass's values.
    fn into_batched(self, requested: usize) -> (Explained, usize) {
        let per_item = self.tape.memory_bytes().max(1) * 2;
        let chunk = (BATCH_BUDGET / per_item).clamp(1, requested.max(1));
        (self.head, chunk)
    }

    fn finish(&self, model: &Model, raw: Tensor, completeness: Option<Completeness>) -> Saliency {
        self.head.finish(model, raw, completeness)
    }
}

impl Explained {
    fn finish(&self, model: &Model, raw: Tensor, completeness: Option<Completeness>) -> Saliency {
        let (map, height, width) = magnitude_map(&raw, model.input_spec().layout);
        Saliency {
            target: self.target.name(),
            class: self.target.class(),
            score: self.score,
            map,
            height,
            width,
            raw,
            completeness,
        }
    }
}

/// The largest `|value|` over channels of a batch-of-one tensor in `layout`, as `(map, h, w)`.
fn magnitude_map(t: &Tensor, layout: Layout) -> (Vec<f32>, usize, usize) {
    let s = t.shape();
    let (c, h, w) = match layout {
        Layout::Nchw => (s[1], s[2], s[3]),
        Layout::Nhwc => (s[3], s[1], s[2]),
    };
    let d = t.data();
    let map = (0..h * w)
        .map(|i| {
            (0..c)
                .map(|k| match layout {
                    Layout::Nchw => d[k * h * w + i],
                    Layout::Nhwc => d[i * c + k],
                })
                .fold(0.0f32, |m, v| m.max(v.abs()))
        })
        .collect();
    (map, h, w)
}

/// The plain gradient of the class score with respect to the input.
pub fn vanilla_gradient(model: &Model, input: &Tensor, cfg: &SaliencyConfig) -> Result<Saliency> {
    let s = setup(model, input, cfg, &[])?;
    let g = s.gradient(ReluRule::Exact)?;
    Ok(s.finish(model, g, None))
}

/// Guided backpropagation: the gradient with negative gradients stopped at every ReLU-like
/// node ([`ReluRule::Guided`]).
pub fn guided_backprop(model: &Model, input: &Tensor, cfg: &SaliencyConfig) -> Result<Saliency> {
    let s = setup(model, input, cfg, &[])?;
    let g = s.gradient(ReluRule::Guided)?;
    Ok(s.finish(model, g, None))
}

/// Guided Grad-CAM: guided backpropagation multiplied, pixel by pixel and in every channel, by
/// the Grad-CAM map of `cfg.layer` (or [`cam::auto_layer`]) scaled to `0..1` and upsampled to
/// the input size ([`cam::Cam::normalized`]), as pytorch-grad-cam's example does.
pub fn guided_gradcam(model: &Model, input: &Tensor, cfg: &SaliencyConfig) -> Result<Saliency> {
    let extra: Vec<ValueId> = cfg.layer.into_iter().collect();
    let s = setup(model, input, cfg, &extra)?;
    let layer = match cfg.layer {
        Some(l) => l,
        None => cam::auto_layer_in(model, &s.tape, input)?.value,
    };
    let classifier = find_classifier(model, &s.tape).ok();
    let cams = cam::cams_from_tape(
        model,
        input,
        &s.tape,
        classifier.as_ref(),
        layer,
        std::slice::from_ref(&s.head.target),
        &GradCam,
        1,
        &crate::tokens::TokenConfig::default(),
    )?;
    let mut raw = s.gradient(ReluRule::Guided)?;
    let spec = model.input_spec();
    let (h, w) = spec.spatial(raw.shape());
    let mask = cams[0].normalized(h, w);
    let c = raw.len() / (h * w);
    let layout = spec.layout;
    for (j, v) in raw.data_mut().iter_mut().enumerate() {
        let pixel = match layout {
            Layout::Nchw => j % (h * w),
            Layout::Nhwc => j / c,
        };
        *v *= mask[pixel];
    }
    Ok(s.finish(model, raw, None))
}

/// SmoothGrad: the mean gradient over `cfg.samples` copies of the input with Gaussian noise of
/// standard deviation `cfg.noise × (max(x) − min(x))` (seeded, deterministic, independent of
/// the batch size).
pub fn smooth_grad(model: &Model, input: &Tensor, cfg: &SaliencyConfig) -> Result<Saliency> {
    if cfg.samples == 0 {
        return Err(Error::Config("SmoothGrad needs at least one sample".into()));
    }
    let s = setup(model, input, cfg, &[])?;
    let x = input.data();
    let (lo, hi) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let sigma = cfg.noise * (hi - lo);
    let fill = |i: usize, item: &mut [f32]| {
        let mut rng = Rng::new(cfg.seed.wrapping_mul(0x1000_0001).wrapping_add(i as u64));
        for (o, &v) in item.iter_mut().zip(x) {
            *o = v + sigma * gaussian(&mut rng);
        }
    };
    let n = cfg.samples;
    let (s, chunk) = s.into_batched(cfg.batch_size);
    let (acc, _) = accumulate_gradients(model, &s, input.shape(), n, chunk, &fill, &|_| {
        1.0 / n as f64
    })?;
    let raw = Tensor::new(
        input.shape().to_vec(),
        acc.into_iter().map(|v| v as f32).collect(),
    )?;
    Ok(s.finish(model, raw, None))
}

/// Integrated Gradients from `cfg.baseline` (zeros by default) to the input, with the
/// trapezoid rule over `cfg.steps` intervals (`steps + 1` points, evaluated
/// `cfg.batch_size` at a time with one forward and one backward pass per batch).
///
/// `raw = (x − baseline) ⊙ ∫₀¹ dScore/dx(baseline + α(x − baseline)) dα`; the result's
/// [`Saliency::completeness`] compares `Σ raw` with `score(x) − score(baseline)`.
pub fn integrated_gradients(
    model: &Model,
    input: &Tensor,
    cfg: &SaliencyConfig,
) -> Result<Saliency> {
    if cfg.steps == 0 {
        return Err(Error::Config(
            "Integrated Gradients needs at least one step".into(),
        ));
    }
    let s = setup(model, input, cfg, &[])?;
    let zeros;
    let baseline = match &cfg.baseline {
        Some(b) if b.shape() != input.shape() => {
            return Err(Error::Config(format!(
                "the baseline has shape {:?}, the input {:?}",
                b.shape(),
                input.shape()
            )))
        }
        Some(b) => b.data(),
        None => {
            zeros = vec![0.0f32; input.len()];
            &zeros
        }
    };
    let x = input.data();
    let steps = cfg.steps;
    let fill = |j: usize, item: &mut [f32]| {
        let a = j as f32 / steps as f32;
        for ((o, &xv), &bv) in item.iter_mut().zip(x).zip(baseline) {
            *o = bv + a * (xv - bv);
        }
    };
    let weight = |j: usize| {
        if j == 0 || j == steps {
            0.5 / steps as f64
        } else {
            1.0 / steps as f64
        }
    };
    let (s, chunk) = s.into_batched(cfg.batch_size);
    let (acc, scores) =
        accumulate_gradients(model, &s, input.shape(), steps + 1, chunk, &fill, &weight)?;
    let attr: Vec<f32> = acc
        .iter()
        .zip(x)
        .zip(baseline)
        .map(|((g, &xv), &bv)| (g * (xv - bv) as f64) as f32)
        .collect();
    let completeness = Completeness {
        attribution_sum: attr.iter().map(|&v| v as f64).sum(),
        score_difference: scores[steps] as f64 - scores[0] as f64,
    };
    let raw = Tensor::new(input.shape().to_vec(), attr)?;
    Ok(s.finish(model, raw, Some(completeness)))
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut Rng) -> f32 {
    let u1 = 1.0 - rng.uniform() as f64; // (0, 1]
    let u2 = rng.uniform() as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// `Σ_i weight(i) · dScore/dx` over `n` inputs built by `fill(i, item)`, and each input's
/// score, in batches of `chunk` (one forward and one backward pass per batch).
fn accumulate_gradients(
    model: &Model,
    head: &Explained,
    input_shape: &[usize],
    n: usize,
    chunk: usize,
    fill: &dyn Fn(usize, &mut [f32]),
    weight: &dyn Fn(usize) -> f64,
) -> Result<(Vec<f64>, Vec<f32>)> {
    let item: usize = input_shape[1..].iter().product();
    let len = head.output_len;
    let mut acc = vec![0.0f64; item];
    let mut scores = Vec::with_capacity(n);
    in_batches(
        input_shape,
        n,
        chunk,
        fill,
        &mut |start, batch| {
            let m = batch.shape()[0];
            let tape = model.forward(batch, &[head.output])?;
            let values = tape.value(head.output)?;
            if !fits(values, m, len) {
                return Ok(None);
            }
            let mut seed = Tensor::zeros(values.shape());
            for (row, grad) in values
                .data()
                .chunks(len)
                .zip(seed.data_mut().chunks_mut(len))
            {
                head.target.gradient(row, grad);
            }
            let batch_scores: Vec<f32> = values
                .data()
                .chunks(len)
                .map(|row| head.target.score(row))
                .collect();
            let g = tape.backward(vec![(head.output, seed)], &[])?.input;
            for (i, gi) in g.data().chunks(item).enumerate() {
                let wi = weight(start + i);
                acc.iter_mut()
                    .zip(gi)
                    .for_each(|(a, &v)| *a += wi * v as f64);
            }
            scores.extend(batch_scores);
            Ok(Some(()))
        },
        &|| format!("the target value does not hold {len} values for one image"),
    )?;
    Ok((acc, scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_has_unit_variance() {
        let mut r = Rng::new(1);
        let v: Vec<f64> = (0..20000).map(|_| gaussian(&mut r) as f64).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn magnitude_map_takes_max_abs_over_channels() {
        let t = Tensor::new(vec![1, 2, 1, 2], vec![1.0, -3.0, -2.0, 0.5]).unwrap();
        assert_eq!(magnitude_map(&t, Layout::Nchw).0, vec![2.0, 3.0]);
        let t = Tensor::new(vec![1, 1, 2, 2], vec![1.0, -3.0, -2.0, 0.5]).unwrap();
        assert_eq!(magnitude_map(&t, Layout::Nhwc).0, vec![3.0, 2.0]);
    }
}
