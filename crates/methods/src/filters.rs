//! What each filter responds to: gradient ascent in input space, all requested filters of a layer
//! optimised together as one batch.
//!
//! The defaults reproduce the walk-through exactly: objective = mean of channel k of the layer;
//! start from uniform noise ·20 + 128 in pixel units; 40 steps of `x += g / (rms(g) + 1e-5)`;
//! deprocess with `(x − mean)/(std + 1e-5)·0.1 + 0.5`, clipped, ·255. The image lives in pixel
//! space and goes through the model's own preprocessing, so any model works.

use std::ops::ControlFlow;

use convscope_engine::{FilterSlice, Layout, Model, Pass, Tensor, ValueId, MAX_INPUT_SIDE};
use convscope_image::{normalize_scale, Normalize, RgbImageF32};

use crate::error::{Error, Result};
use crate::input::pixel_normalization;
use crate::transform::{Rng, Warp};

/// Most ascent steps accepted (per octave).
pub const MAX_STEPS: usize = 1_000_000;
/// Most octaves accepted (at the default ratio of 1.4, the 16th octave is 150× smaller).
pub const MAX_OCTAVES: usize = 16;

/// How the image is updated from its gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// The walk-through's rule: `x += step · g / (rms(g) + 1e-5)`.
    NormalizedAscent,
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8) with learning rate `step`, in pixel units.
    Adam,
}

/// Options of [`visualize_filters`].
#[derive(Clone, Debug, PartialEq)]
pub struct FiltersConfig {
    /// Filter (channel) indices to visualise.
    pub filters: Vec<usize>,
    /// Ascent steps (per octave).
    pub steps: usize,
    /// Step size (learning rate for Adam).
    pub step: f32,
    /// Final image size `(height, width)`.
    pub size: (usize, usize),
    /// Seed of the starting noise and of the random transformations.
    pub seed: u64,
    /// Pixel → model input mapping (the model's preprocessing).
    pub normalize: Normalize,
    /// Update rule.
    pub optimizer: Optimizer,
    /// Random shift of up to this many pixels at each step (0 = off).
    pub jitter: usize,
    /// Random scale factor drawn from `[1 − scale, 1 + scale]` at each step (0 = off).
    pub scale: f32,
    /// Random rotation drawn from `[−rotate, rotate]` degrees at each step (0 = off).
    pub rotate: f32,
    /// Weight of the total-variation penalty (on pixels / 255).
    pub tv: f32,
    /// Weight of the L2 penalty (on (pixels − 128) / 128).
    pub l2: f32,
    /// Number of octaves: optimise at `size / octave_scale^(n−1)`, upscale, continue.
    pub octaves: usize,
    /// Size ratio between octaves.
    pub octave_scale: f32,
    /// Filters per batch; `None` picks a size from a memory budget.
    pub chunk: Option<usize>,
}

impl Default for FiltersConfig {
    fn default() -> Self {
        Self {
            filters: vec![0],
            steps: 40,
            step: 1.0,
            size: (150, 150),
            seed: 0,
            normalize: Normalize::Unit,
            optimizer: Optimizer::NormalizedAscent,
            jitter: 0,
            scale: 0.0,
            rotate: 0.0,
            tv: 0.0,
            l2: 0.0,
            octaves: 1,
            octave_scale: 1.4,
            chunk: None,
        }
    }
}

impl FiltersConfig {
    /// Checks every option on its own, before any model is touched: one line naming the
    /// option as the command line spells it.
    ///
    /// * `steps` in `1..=`[`MAX_STEPS`], `octaves` in `1..=`[`MAX_OCTAVES`], `chunk` ≥ 1;
    /// * `size` in `1..=`[`MAX_INPUT_SIDE`] per side, `jitter` at most that;
    /// * `step` a finite number > 0; `octave-scale` a finite number ≥ 1 (each octave is
    ///   `octave-scale` times larger than the one before);
    /// * `scale` finite in `0..1` (factors are drawn from `[1 − scale, 1 + scale]`), `rotate`,
    ///   `tv` and `l2` finite and ≥ 0;
    /// * usable normalisation statistics ([`Normalize::validate`]).
    ///
    /// ```
    /// use convscope_methods::filters::FiltersConfig;
    /// let cfg = FiltersConfig { octaves: 3, octave_scale: 0.0, ..FiltersConfig::default() };
    /// let msg = cfg.validate().unwrap_err().to_string();
    /// assert_eq!(msg, "octave-scale must be a finite number >= 1, got 0");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        let finite = |name: &str, v: f32, ok: bool, rule: &str| -> Result<()> {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{name} must be a finite number {rule}, got {v}"
                )))
            }
        };
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return bad(format!("steps must be 1..={MAX_STEPS}, got {}", self.steps));
        }
        if !(1..=MAX_OCTAVES).contains(&self.octaves) {
            return bad(format!(
                "octaves must be 1..={MAX_OCTAVES}, got {}",
                self.octaves
            ));
        }
        let (h, w) = self.size;
        if !(1..=MAX_INPUT_SIDE).contains(&h) || !(1..=MAX_INPUT_SIDE).contains(&w) {
            return bad(format!(
                "size must be 1..={MAX_INPUT_SIDE} pixels per side, got {w}x{h}"
            ));
        }
        if self.jitter > MAX_INPUT_SIDE {
            return bad(format!(
                "jitter must be at most {MAX_INPUT_SIDE} pixels, got {}",
                self.jitter
            ));
        }
        if self.chunk == Some(0) {
            return bad("chunk must be at least 1".into());
        }
        finite("step", self.step, self.step > 0.0, "> 0")?;
        finite(
            "octave-scale",
            self.octave_scale,
            self.octave_scale >= 1.0,
            ">= 1",
        )?;
        finite(
            "scale",
            self.scale,
            (0.0..1.0).contains(&self.scale),
            "in 0..1",
        )?;
        finite("rotate", self.rotate, self.rotate >= 0.0, ">= 0")?;
        finite("tv", self.tv, self.tv >= 0.0, ">= 0")?;
        finite("l2", self.l2, self.l2 >= 0.0, ">= 0")?;
        self.normalize.validate()?;
        Ok(())
    }

    /// `(height, width)` of each octave, smallest first, the last one `size` (at least 8
    /// pixels a side). Call after [`FiltersConfig::validate`].
    fn octave_sizes(&self) -> Vec<(usize, usize)> {
        (0..self.octaves)
            .map(|o| {
                // `octaves ≤ MAX_OCTAVES`, so the exponent fits; `f ≥ 1` (possibly infinite,
                // which makes an octave of the 8-pixel minimum).
                let f = self.octave_scale.powi((self.octaves - 1 - o) as i32);
                let side = |s: usize| ((s as f32 / f).round() as usize).clamp(8, s.max(8));
                (side(self.size.0), side(self.size.1))
            })
            .collect()
    }
}

/// The pattern found for one filter.
#[derive(Clone, Debug)]
pub struct FilterPattern {
    /// Filter index.
    pub filter: usize,
    /// The deprocessed image (0..255), as the walk-through displays it.
    pub image: RgbImageF32,
    /// Objective (mean activation of the filter) before each step and after the last one.
    pub curve: Vec<f32>,
}

impl FilterPattern {
    /// Objective at the start.
    pub fn start(&self) -> f32 {
        self.curve.first().copied().unwrap_or(0.0)
    }
    /// Objective at the end.
    pub fn end(&self) -> f32 {
        self.curve.last().copied().unwrap_or(0.0)
    }
}

/// Checks that `layer` is a spatial feature map and every filter exists; returns the channel count.
///
/// The layer's shape at `probe_size` is worked out from the model's shapes alone
/// ([`Model::infer_value`]), so nothing of the probe's size is allocated and a size beyond the
/// engine's limits is refused at once, naming the node that would exceed them. Only when a
/// shape depends on the input's values is the model run on a probe.
pub fn check_layer(
    model: &Model,
    layer: ValueId,
    label: &str,
    filters: &[usize],
    probe_size: (usize, usize),
) -> Result<usize> {
    let spec = model.input_spec();
    let input_shape = spec.shape(1, probe_size.0, probe_size.1);
    let (shape, is_float) = match model.infer_value(&input_shape, layer) {
        Ok(v) => (v.shape, v.is_float),
        Err(e) if e.is_shape_unknown() => {
            let x = Tensor::full(&input_shape, 0.5);
            let v = model.run(&x, &[layer])?.remove(0);
            (v.shape().to_vec(), v.is_float())
        }
        Err(e) => return Err(e.into()),
    };
    let channels = match *shape {
        [_, c, h, w] if is_float && (h > 1 || w > 1) => c,
        _ => {
            return Err(Error::Layer(format!(
                "layer '{label}' has no spatial feature map (output shape {shape:?}); pick a convolution or pooling layer"
            )))
        }
    };
    if let Some(&bad) = filters.iter().find(|&&f| f >= channels) {
        return Err(Error::Config(format!(
            "filter index {bad} is out of range: '{label}' has {channels} filters (0..{channels})"
        )));
    }
    Ok(channels)
}

/// Dimensions of a batch of pixel images (`n × c × h × w`).
struct Batch {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

/// The pixel → model-input map for `channels` model channels.
struct PixelMap {
    mul: [f32; 3],
    add: [f32; 3],
    bgr: bool,
    layout: Layout,
}

impl PixelMap {
    fn src(&self, c: usize, channels: usize) -> usize {
        if self.bgr && channels == 3 {
            2 - c
        } else {
            c
        }
    }

    fn to_input(&self, b: &Batch, images: &[Vec<f32>]) -> Tensor {
        let (c, h, w) = (b.c, b.h, b.w);
        let p = h * w;
        let mut data = vec![0.0; b.n * c * p];
        for (i, img) in images.iter().enumerate() {
            for k in 0..c {
                let s = self.src(k, c);
                for j in 0..p {
                    let v = img[s * p + j] * self.mul[k] + self.add[k];
                    match self.layout {
                        Layout::Nchw => data[(i * c + k) * p + j] = v,
                        Layout::Nhwc => data[(i * p + j) * c + k] = v,
                    }
                }
            }
        }
        let shape = match self.layout {
            Layout::Nchw => vec![b.n, c, h, w],
            Layout::Nhwc => vec![b.n, h, w, c],
        };
        Tensor::new(shape, data).expect("sizes match")
    }

    /// The gradient on the model input of item `i`, laid out as its pixel image (channels
    /// un-swapped, not scaled by the preprocessing).
    ///
    /// The ascent step is normalised where the walk-through normalises it, on the model input:
    /// a gradient taken in pixel units of a model fed `pixels / 255` is 255× smaller, and the
    /// `+ 1e-5` of the normalisation would then swamp it and stall the ascent.
    fn to_pixels(&self, g: &Tensor, b: &Batch, i: usize) -> Vec<f32> {
        let (c, p) = (b.c, b.h * b.w);
        let mut out = vec![0.0; c * p];
        for k in 0..c {
            let s = self.src(k, c);
            for j in 0..p {
                let v = match self.layout {
                    Layout::Nchw => g.data()[(i * c + k) * p + j],
                    Layout::Nhwc => g.data()[(i * p + j) * c + k],
                };
                out[s * p + j] += v;
            }
        }
        out
    }
}

/// The walk-through's deprocessing of one `C×H×W` pixel image to an RGB picture.
pub fn deprocess(x: &[f32], c: usize, h: usize, w: usize) -> RgbImageF32 {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let p = h * w;
    let mut data = vec![0.0; p * 3];
    for j in 0..p {
        for k in 0..3 {
            let v = x[k.min(c - 1) * p + j] as f64;
            let d = ((v - mean) / (std + 1e-5) * 0.1 + 0.5).clamp(0.0, 1.0) * 255.0;
            data[j * 3 + k] = d as f32;
        }
    }
    RgbImageF32::new(w, h, data).expect("sizes match")
}

/// Bilinear upscaling of each plane (align_corners = false), for octaves.
fn upscale(x: &[f32], c: usize, h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * nh * nw);
    for k in 0..c {
        let plane = &x[k * h * w..(k + 1) * h * w];
        out.extend(convscope_image::upsample_bilinear(plane, h, w, nh, nw).expect("valid sizes"));
    }
    out
}

/// Gradient of the penalties (to be subtracted from the ascent direction).
fn penalty_grad(cfg: &FiltersConfig, x: &[f32], c: usize, h: usize, w: usize) -> Option<Vec<f32>> {
    if cfg.tv == 0.0 && cfg.l2 == 0.0 {
        return None;
    }
    let n = x.len() as f32;
    let mut g = vec![0.0; x.len()];
    if cfg.l2 != 0.0 {
        // d/dx mean(((x − 128)/128)²)
        for (gi, &v) in g.iter_mut().zip(x) {
            *gi += cfg.l2 * 2.0 * (v - 128.0) / (128.0 * 128.0) / n;
        }
    }
    if cfg.tv != 0.0 {
        // d/dx mean(|Δx| / 255) over horizontal and vertical neighbours.
        let p = h * w;
        for k in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let i = k * p + y * w + xx;
                    if xx + 1 < w {
                        let s = (x[i + 1] - x[i]).signum() * cfg.tv / 255.0 / n;
                        g[i + 1] += s;
                        g[i] -= s;
                    }
                    if y + 1 < h {
                        let s = (x[i + w] - x[i]).signum() * cfg.tv / 255.0 / n;
                        g[i + w] += s;
                        g[i] -= s;
                    }
                }
            }
        }
    }
    Some(g)
}

/// Filters per batch when not given: the forward values of one image times the batch must fit
/// in about 1.5 GiB.
fn auto_chunk(
    model: &Model,
    layer: ValueId,
    c: usize,
    h: usize,
    w: usize,
    layout: Layout,
    total: usize,
) -> Result<usize> {
    let shape = match layout {
        Layout::Nchw => vec![1, c, h, w],
        Layout::Nhwc => vec![1, h, w, c],
    };
    let tape = model.forward(&Tensor::full(&shape, 0.5), &[layer])?;
    let per_item = tape.memory_bytes().max(1) * 2;
    let most = ((1536usize << 20) / per_item)
        .clamp(1, total.max(1))
        .min(64);
    // Equal batches (64 filters as 32 + 32, not 42 + 22): every batch then allocates tensors
    // of the same sizes, which the caching allocator hands back step after step.
    Ok(total.max(1).div_ceil(total.max(1).div_ceil(most)))
}

/// Refuses, from the shapes alone, an ascent pass on a batch of `input_shape` whose values
/// would exceed the engine's limit of one tensor. A pass whose shapes cannot be known without
/// running it is let through (it reports its own errors).
fn check_pass(model: &Model, layer: ValueId, input_shape: Vec<usize>) -> Result<()> {
    match model.estimate_forward_bytes(&input_shape, &[layer], Pass::Gradient) {
        Err(e) if !e.is_shape_unknown() => Err(e.into()),
        _ => Ok(()),
    }
}

/// One ascent step's forward (and, with `with_grad`, backward) pass: for image `i`, the mean of
/// channel `filters[i]` of `layer` and its gradient with respect to the model input.
///
/// With a [`FilterSlice`] the layer itself is evaluated only for each image's own channel; the
/// values and gradients are those of the full layer (the engine's slice tests check this).
fn ascent_pass(
    model: &Model,
    layer: ValueId,
    slice: Option<&FilterSlice>,
    input: &Tensor,
    filters: &[usize],
    with_grad: bool,
) -> Result<(Vec<f32>, Option<Tensor>)> {
    let mean = |v: &[f32]| (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64) as f32;
    if let Some(slice) = slice {
        let tape = model.forward(input, &[slice.input()])?;
        let head = slice.forward(tape.value(slice.input())?, filters)?;
        let out = head.output();
        let plane: usize = out.shape()[2..].iter().product();
        let objectives = out.data().chunks(plane).map(mean).collect();
        if !with_grad {
            return Ok((objectives, None));
        }
        let seed = Tensor::full(out.shape(), 1.0 / plane as f32);
        let d_in = head.backward(seed)?;
        drop(head);
        let grads = tape.backward(vec![(slice.input(), d_in)], &[])?;
        return Ok((objectives, Some(grads.input)));
    }
    let tape = model.forward(input, &[layer])?;
    let act = tape.value(layer)?;
    let [_, ac, ah, aw] = *act.shape() else {
        return Err(Error::Layer(
            "the layer's output is not a feature map".into(),
        ));
    };
    let plane = ah * aw;
    let mut seed = Tensor::zeros(act.shape());
    let mut objectives = Vec::with_capacity(filters.len());
    for (i, &f) in filters.iter().enumerate() {
        let base = (i * ac + f) * plane;
        objectives.push(mean(&act.data()[base..base + plane]));
        seed.data_mut()[base..base + plane].fill(1.0 / plane as f32);
    }
    if !with_grad {
        return Ok((objectives, None));
    }
    let grads = tape.backward(vec![(layer, seed)], &[])?;
    Ok((objectives, Some(grads.input)))
}

/// Runs gradient ascent for every filter in `cfg.filters` of the value `layer`.
///
/// `progress` is called with the number of filter-steps completed so far.
pub fn visualize_filters(
    model: &Model,
    layer: ValueId,
    cfg: &FiltersConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<FilterPattern>> {
    visualize_filters_until(model, layer, cfg, &mut |done| {
        progress(done);
        ControlFlow::Continue(())
    })
}

/// [`visualize_filters`] that stops when `progress` returns [`ControlFlow::Break`] (checked
/// after every ascent step), with [`Error::Cancelled`]: a viewer cancels the job of a page
/// that went away.
///
/// ```
/// use std::ops::ControlFlow;
/// use convscope_engine::Model;
/// use convscope_methods::filters::{visualize_filters_until, FiltersConfig};
///
/// let model = Model::from_bytes(convscope_demo::demo_model_bytes())?;
/// let layer = model.resolve("conv1")?;
/// let cfg = FiltersConfig { filters: vec![0, 1], size: (32, 32), steps: 20, ..FiltersConfig::default() };
/// let mut steps = 0;
/// let stopped = visualize_filters_until(&model, layer, &cfg, &mut |done| {
///     steps = done;
///     if done >= 4 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
/// });
/// assert!(matches!(stopped, Err(convscope_methods::Error::Cancelled)));
/// assert_eq!(steps, 4); // two filters per step: stopped after the second step
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn visualize_filters_until(
    model: &Model,
    layer: ValueId,
    cfg: &FiltersConfig,
    progress: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> Result<Vec<FilterPattern>> {
    let spec = model.input_spec();
    let c = spec.channels;
    if c != 1 && c != 3 {
        return Err(Error::Config(format!(
            "filter visualisation needs a 1- or 3-channel model, this one takes {c}"
        )));
    }
    cfg.validate()?;
    // A UINT8 model takes the pixels as they are (see `pixel_normalization`).
    let (mul, add, bgr) = normalize_scale(&pixel_normalization(spec, &cfg.normalize)?);
    let map = PixelMap {
        mul,
        add,
        bgr,
        layout: spec.layout,
    };
    let sizes = cfg.octave_sizes();
    let (h_max, w_max) = *sizes.last().expect("at least one octave");
    // Refused from the shapes alone when one image already exceeds the engine's limits,
    // before the sizing pass below runs at full size.
    check_pass(model, layer, spec.shape(1, h_max, w_max))?;
    let chunk = match cfg.chunk {
        Some(k) => k.max(1),
        None => auto_chunk(
            model,
            layer,
            c,
            cfg.size.0,
            cfg.size.1,
            spec.layout,
            cfg.filters.len(),
        )?,
    };
    check_pass(
        model,
        layer,
        spec.shape(chunk.min(cfg.filters.len().max(1)), h_max, w_max),
    )?;
    // Only each image's own channel of the layer is computed when the layer allows it.
    let slice = model.filter_slice(layer);
    let mut results = Vec::with_capacity(cfg.filters.len());
    let mut done = 0usize;
    for filters in cfg.filters.chunks(chunk) {
        // One generator per filter, so results do not depend on how filters are batched.
        let mut rngs: Vec<Rng> = filters
            .iter()
            .map(|&f| Rng::new(cfg.seed.wrapping_mul(0x1000_0001).wrapping_add(f as u64)))
            .collect();
        let (h0, w0) = sizes[0];
        let mut images: Vec<Vec<f32>> = rngs
            .iter_mut()
            .map(|r| {
                (0..c * h0 * w0)
                    .map(|_| r.uniform() * 20.0 + 128.0)
                    .collect()
            })
            .collect();
        let mut curves: Vec<Vec<f32>> = vec![Vec::new(); filters.len()];
        let mut adam: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
        let mut t_adam = 0i32;
        for (o, &(h, w)) in sizes.iter().enumerate() {
            if o > 0 {
                let (ph, pw) = sizes[o - 1];
                images = images.iter().map(|x| upscale(x, c, ph, pw, h, w)).collect();
                adam.clear();
            }
            let batch = Batch {
                n: filters.len(),
                c,
                h,
                w,
            };
            for step in 0..=cfg.steps {
                let last = step == cfg.steps;
                let warps: Vec<Warp> = rngs
                    .iter_mut()
                    .map(|r| {
                        if last || (cfg.jitter == 0 && cfg.scale == 0.0 && cfg.rotate == 0.0) {
                            return Warp::IDENTITY;
                        }
                        let shift = (r.offset(cfg.jitter), r.offset(cfg.jitter));
                        let scale = 1.0 + cfg.scale * (2.0 * r.uniform() - 1.0);
                        let angle = cfg.rotate.to_radians() * (2.0 * r.uniform() - 1.0);
                        Warp {
                            shift,
                            scale,
                            angle,
                        }
                    })
                    .collect();
                let warped: Vec<Vec<f32>> = images
                    .iter()
                    .zip(&warps)
                    .map(|(x, wp)| {
                        if *wp == Warp::IDENTITY {
                            x.clone()
                        } else {
                            wp.apply(x, c, h, w)
                        }
                    })
                    .collect();
                let input = map.to_input(&batch, &warped);
                let (objectives, grad) =
                    ascent_pass(model, layer, slice.as_ref(), &input, filters, !last)?;
                for (i, &obj) in objectives.iter().enumerate() {
                    if o == 0 || step > 0 || curves[i].is_empty() {
                        curves[i].push(obj);
                    }
                }
                let Some(grad) = grad else {
                    if o + 1 < sizes.len() {
                        // The next octave starts from this objective; do not record it twice.
                        curves.iter_mut().for_each(|cv| {
                            cv.pop();
                        });
                    }
                    break;
                };
                t_adam += 1;
                for i in 0..filters.len() {
                    let mut g = warps[i].adjoint(&map.to_pixels(&grad, &batch, i), c, h, w);
                    if let Some(pg) = penalty_grad(cfg, &images[i], c, h, w) {
                        g.iter_mut().zip(pg).for_each(|(a, b)| *a -= b);
                    }
                    let x = &mut images[i];
                    match cfg.optimizer {
                        Optimizer::NormalizedAscent => {
                            let rms = (g.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
                                / g.len() as f64)
                                .sqrt() as f32;
                            let k = cfg.step / (rms + 1e-5);
                            x.iter_mut().zip(&g).for_each(|(xv, gv)| *xv += gv * k);
                        }
                        Optimizer::Adam => {
                            if adam.len() <= i {
                                adam.resize(
                                    filters.len(),
                                    (vec![0.0; g.len()], vec![0.0; g.len()]),
                                );
                            }
                            let (m, v) = &mut adam[i];
                            let (b1, b2) = (0.9f32, 0.999f32);
                            let (c1, c2) = (1.0 - b1.powi(t_adam), 1.0 - b2.powi(t_adam));
                            for j in 0..g.len() {
                                m[j] = b1 * m[j] + (1.0 - b1) * g[j];
                                v[j] = b2 * v[j] + (1.0 - b2) * g[j] * g[j];
                                x[j] += cfg.step * (m[j] / c1) / ((v[j] / c2).sqrt() + 1e-8);
                            }
                        }
                    }
                }
                done += filters.len();
                if progress(done).is_break() {
                    return Err(Error::Cancelled);
                }
            }
        }
        let (h, w) = *sizes.last().expect("at least one octave");
        for (i, &f) in filters.iter().enumerate() {
            results.push(FilterPattern {
                filter: f,
                image: deprocess(&images[i], c, h, w),
                curve: std::mem::take(&mut curves[i]),
            });
        }
    }
    Ok(results)
}
