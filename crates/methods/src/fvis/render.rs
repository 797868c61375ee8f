//! The render loop: parameterise, transform, run the network, evaluate the objectives, pull the
//! gradient back through everything, step; all pictures of a batch through the network at once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use convscope_engine::{Layout, Model, Tensor, ValueId};
use convscope_image::{normalize_scale, Normalize, RgbImageF32};
use rayon::prelude::*;

use super::objective::{evaluate, Objective};
use super::optimizer::{Optimizer, Rule};
use super::param::{Fourier, Maco, Parameterization, Pixel};
use super::spectrum::Spectrum;
use super::transform::{adjoint, apply, Step, Transforms};
use super::Planes;
use crate::error::{Error, Result};
use crate::input::pixel_normalization;
use crate::transform::Rng;

/// Which parameterisation.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// The walk-through's pixels ([`Pixel`]).
    Pixel,
    /// Lucid's Fourier parameterisation ([`Fourier`]).
    Fourier {
        /// Exponent of the `1/f` scaling (1 in Lucid).
        decay: f32,
        /// Standard deviation of the starting spectrum (0.01 in Lucid).
        sd: f32,
        /// Recorrelate colours (Lucid: yes).
        decorrelate: bool,
    },
    /// MaCo's phase-only parameterisation with this magnitude spectrum ([`Maco`]).
    Maco(Arc<Spectrum>),
}

impl Param {
    /// The parameterisation of a picture of `size`.
    pub fn build(&self, size: (usize, usize)) -> Box<dyn Parameterization> {
        match self {
            Param::Pixel => Box::new(Pixel { size }),
            Param::Fourier {
                decay,
                sd,
                decorrelate,
            } => Box::new(Fourier::new(size, *decay, *sd, *decorrelate)),
            Param::Maco(s) => Box::new(Maco::new(size, s)),
        }
    }
}

/// Options of [`render`].
#[derive(Clone, Debug, PartialEq)]
pub struct RenderConfig {
    /// Parameterisation.
    pub param: Param,
    /// Random transformations.
    pub transforms: Transforms,
    /// Update rule.
    pub rule: Rule,
    /// Learning rate (step size of the normalised step).
    pub lr: f32,
    /// Steps.
    pub steps: usize,
    /// Picture size `(height, width)`.
    pub size: (usize, usize),
    /// Size the model sees `(height, width)`: every transformed view is brought to it.
    pub view: (usize, usize),
    /// Views of each picture per step (each its own random transformation; the objective is
    /// their mean).
    pub views: usize,
    /// Seed.
    pub seed: u64,
    /// The model's pixel normalisation.
    pub normalize: Normalize,
    /// Pictures per network pass (a diversity group is never split).
    pub chunk: usize,
    /// Views per network pass: the chunk's views are run in passes of at most this many (for
    /// graphs that fix their batch, e.g. a Flatten to `[1, -1]`, this is 1; their pictures
    /// cannot be coupled by diversity).
    pub pass_batch: usize,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            param: Param::Fourier {
                decay: 1.0,
                sd: 0.01,
                decorrelate: true,
            },
            transforms: Transforms::None,
            rule: Rule::Adam,
            lr: 0.05,
            steps: 512,
            size: (224, 224),
            view: (224, 224),
            views: 1,
            seed: 0,
            normalize: Normalize::Unit,
            chunk: 16,
            pass_batch: usize::MAX,
        }
    }
}

/// One picture to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// What it should maximise.
    pub objective: Objective,
    /// Pictures with the same group are compared by diversity terms.
    pub group: usize,
    /// Index mixed into the seed (the same index and seed give the same picture, however the
    /// pictures are batched).
    pub index: u64,
}

/// A finished picture.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The picture as shown (0..255).
    pub image: RgbImageF32,
    /// The objective at each step (under that step's transformations).
    pub curve: Vec<f32>,
    /// The objective of the finished picture as the model sees it, untransformed.
    pub value: f32,
}

/// The unit-RGB picture → model input map.
struct InputMap {
    mul: [f32; 3],
    add: [f32; 3],
    bgr: bool,
    layout: Layout,
    channels: usize,
}

impl InputMap {
    fn new(model: &Model, normalize: &Normalize) -> Result<InputMap> {
        let spec = model.input_spec();
        if spec.channels != 1 && spec.channels != 3 {
            return Err(Error::Config(format!(
                "feature visualization needs a 1- or 3-channel model, this one takes {}",
                spec.channels
            )));
        }
        let (mul, add, bgr) = normalize_scale(&pixel_normalization(spec, normalize)?);
        Ok(InputMap {
            mul,
            add,
            bgr,
            layout: spec.layout,
            channels: spec.channels,
        })
    }

    /// Model channel `k` reads picture channel `src(k)`.
    fn src(&self, k: usize) -> usize {
        if self.bgr {
            2 - k
        } else {
            k
        }
    }

    fn to_input(&self, views: &[Planes]) -> Tensor {
        let (h, w) = (views[0].height, views[0].width);
        let (c, p) = (self.channels, h * w);
        let mut data = vec![0.0; views.len() * c * p];
        for (i, v) in views.iter().enumerate() {
            for k in 0..c {
                for j in 0..p {
                    let unit = if c == 1 {
                        (v.data[j] + v.data[p + j] + v.data[2 * p + j]) / 3.0
                    } else {
                        v.data[self.src(k) * p + j]
                    };
                    let x = unit * 255.0 * self.mul[k] + self.add[k];
                    match self.layout {
                        Layout::Nchw => data[(i * c + k) * p + j] = x,
                        Layout::Nhwc => data[(i * p + j) * c + k] = x,
                    }
                }
            }
        }
        let shape = match self.layout {
            Layout::Nchw => vec![views.len(), c, h, w],
            Layout::Nhwc => vec![views.len(), h, w, c],
        };
        Tensor::new(shape, data).expect("sizes match")
    }

    /// The gradient on picture `i` (unit RGB planes) from the gradient on the model input.
    fn to_picture(&self, g: &Tensor, i: usize, h: usize, w: usize) -> Planes {
        let (c, p) = (self.channels, h * w);
        let mut out = vec![0.0; 3 * p];
        for k in 0..c {
            let scale = 255.0 * self.mul[k];
            for j in 0..p {
                let v = match self.layout {
                    Layout::Nchw => g.data()[(i * c + k) * p + j],
                    Layout::Nhwc => g.data()[(i * p + j) * c + k],
                } * scale;
                if c == 1 {
                    for s in 0..3 {
                        out[s * p + j] += v / 3.0;
                    }
                } else {
                    out[self.src(k) * p + j] += v;
                }
            }
        }
        Planes::new(3, h, w, out)
    }
}

/// Pictures per chunk: whole groups, at most `chunk` pictures unless one group is larger.
fn chunks(jobs: &[Job], chunk: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < jobs.len() {
        let mut end = i + 1;
        while end < jobs.len() && jobs[end].group == jobs[i].group {
            end += 1;
        }
        if end - start > chunk.max(1) && i > start {
            out.push(start..i);
            start = i;
        }
        i = end;
    }
    if start < jobs.len() {
        out.push(start..jobs.len());
    }
    out
}

/// Makes one picture per job. `progress` is called with the number of picture-steps done and
/// returns whether to go on: `false` stops the work with [`Error::Cancelled`] (a closed page, a
/// Ctrl-C in a notebook).
pub fn render(
    model: &Model,
    jobs: &[Job],
    cfg: &RenderConfig,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<Rendered>> {
    if cfg.steps == 0 || cfg.views == 0 {
        return Err(Error::Config("steps and views must be at least 1".into()));
    }
    let map = InputMap::new(model, &cfg.normalize)?;
    let pass_batch = cfg.pass_batch.max(1);
    if pass_batch < usize::MAX && jobs.iter().any(|j| j.objective.couples()) {
        let largest = chunks(jobs, cfg.chunk)
            .iter()
            .map(|r| r.len() * cfg.views)
            .max()
            .unwrap_or(0);
        if largest > pass_batch {
            return Err(Error::Config(format!(
                "diversity compares the pictures of one network pass, but this model takes at most {pass_batch} per pass"
            )));
        }
    }
    let param = cfg.param.build(cfg.size);
    let names = |id: ValueId| model.value_name(id).to_string();
    let mut wanted: Vec<ValueId> = Vec::new();
    for j in jobs {
        for v in j.objective.values() {
            if !wanted.contains(&v) {
                wanted.push(v);
            }
        }
    }
    let mut results = Vec::with_capacity(jobs.len());
    let mut done = 0usize;
    for range in chunks(jobs, cfg.chunk) {
        let batch = &jobs[range];
        let mut rngs: Vec<Rng> = batch
            .iter()
            .map(|j| Rng::new(cfg.seed.wrapping_mul(0x1000_0001).wrapping_add(j.index)))
            .collect();
        let mut params: Vec<Vec<f32>> = rngs.iter_mut().map(|r| param.init(r)).collect();
        let mut opts: Vec<Optimizer> = params
            .iter()
            .map(|p| Optimizer::new(cfg.rule, cfg.lr, p.len()))
            .collect();
        let mut curves: Vec<Vec<f32>> = vec![Vec::with_capacity(cfg.steps); batch.len()];
        // Each picture's transformations: objectives that read positions keep them in place.
        let transforms: Vec<Cow<Transforms>> = batch
            .iter()
            .map(|j| {
                if j.objective.reads_positions() {
                    Cow::Owned(cfg.transforms.keeping_positions())
                } else {
                    Cow::Borrowed(&cfg.transforms)
                }
            })
            .collect();
        // Every view of picture i is item i·views + v; views share their picture's objective
        // and are compared by diversity only with the same view of the group's other pictures.
        let objectives: Vec<&Objective> = batch
            .iter()
            .flat_map(|j| std::iter::repeat_n(&j.objective, cfg.views))
            .collect();
        let groups: Vec<usize> = batch
            .iter()
            .flat_map(|j| (0..cfg.views).map(move |v| j.group * cfg.views + v))
            .collect();
        for _ in 0..cfg.steps {
            let steps: Vec<Vec<Vec<Step>>> = rngs
                .iter_mut()
                .zip(&transforms)
                .map(|(r, t)| {
                    (0..cfg.views)
                        .map(|_| t.sample(r, cfg.size, cfg.view))
                        .collect()
                })
                .collect();
            let views: Vec<Planes> = params
                .par_iter()
                .zip(&steps)
                .flat_map_iter(|(p, s)| {
                    let img = param.image(p);
                    s.iter().map(move |s| apply(s, &img)).collect::<Vec<_>>()
                })
                .collect();
            // The views in passes of at most `pass_batch`; gradients back on the picture grid.
            let (vh, vw) = cfg.view;
            let mut values = Vec::with_capacity(views.len());
            let mut view_grads: Vec<Planes> = Vec::with_capacity(views.len());
            for start in (0..views.len()).step_by(pass_batch) {
                let end = (start + pass_batch).min(views.len());
                let input = map.to_input(&views[start..end]);
                let tape = model.forward(&input, &wanted)?;
                let acts: HashMap<ValueId, &Tensor> = wanted
                    .iter()
                    .map(|&v| Ok((v, tape.value(v)?)))
                    .collect::<Result<_>>()?;
                let eval = evaluate(&objectives[start..end], &groups[start..end], &acts, &names)?;
                drop(acts);
                let grads = tape.backward(eval.seeds, &[])?;
                drop(tape);
                values.extend(eval.values);
                view_grads
                    .extend((0..end - start).map(|j| map.to_picture(&grads.input, j, vh, vw)));
            }
            let k = 1.0 / cfg.views as f32;
            for (i, curve) in curves.iter_mut().enumerate() {
                let v: f32 = values[i * cfg.views..(i + 1) * cfg.views].iter().sum();
                curve.push(v * k);
            }
            let (h, w) = cfg.size;
            let updates: Vec<Vec<f32>> = (0..batch.len())
                .into_par_iter()
                .map(|i| {
                    let mut g = Planes::new(3, h, w, vec![0.0; 3 * h * w]);
                    for (v, s) in steps[i].iter().enumerate() {
                        let back = adjoint(s, &view_grads[i * cfg.views + v], h, w);
                        g.data
                            .iter_mut()
                            .zip(&back.data)
                            .for_each(|(a, b)| *a += b * k);
                    }
                    param.pull_back(&params[i], &g)
                })
                .collect();
            for ((p, o), g) in params.iter_mut().zip(&mut opts).zip(&updates) {
                o.ascend(p, g);
            }
            done += batch.len();
            if !progress(done) {
                return Err(Error::Cancelled);
            }
        }
        // The finished pictures, untransformed, as the model sees them.
        let plain: Vec<Planes> = params
            .par_iter()
            .map(|p| {
                let fit = Transforms::None.sample(&mut Rng::new(0), cfg.size, cfg.view);
                apply(&fit, &param.image(p))
            })
            .collect();
        let single: Vec<&Objective> = batch.iter().map(|j| &j.objective).collect();
        let single_groups: Vec<usize> = batch.iter().map(|j| j.group).collect();
        let mut finals = Vec::with_capacity(plain.len());
        for start in (0..plain.len()).step_by(pass_batch) {
            let end = (start + pass_batch).min(plain.len());
            let outs = model.run_float(&map.to_input(&plain[start..end]), &wanted)?;
            let acts: HashMap<ValueId, &Tensor> = wanted.iter().copied().zip(outs.iter()).collect();
            let eval = evaluate(
                &single[start..end],
                &single_groups[start..end],
                &acts,
                &names,
            )?;
            finals.extend(eval.values);
        }
        let (h, w) = cfg.size;
        for (i, p) in params.iter().enumerate() {
            results.push(Rendered {
                image: RgbImageF32::new(w, h, param.display(p)).expect("sizes match"),
                curve: std::mem::take(&mut curves[i]),
                value: finals[i],
            });
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(group: usize) -> Job {
        Job {
            objective: Objective::default(),
            group,
            index: 0,
        }
    }

    #[test]
    fn chunks_keep_groups_whole() {
        let jobs: Vec<Job> = [0, 0, 0, 1, 1, 2].iter().map(|&g| job(g)).collect();
        assert_eq!(chunks(&jobs, 2), vec![0..3, 3..5, 5..6]);
        assert_eq!(chunks(&jobs, 4), vec![0..3, 3..6]);
        let single: Vec<Job> = (0..5).map(job).collect();
        assert_eq!(chunks(&single, 2), vec![0..2, 2..4, 4..5]);
    }
}

#[cfg(test)]
mod pass_tests {
    use super::*;
    use crate::fvis::objective::Term;
    use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};

    /// Two 3×3 filters over a 16×16 RGB picture, then ReLU.
    fn tiny() -> Model {
        let weights: Vec<f32> = (0..54).map(|i| ((i % 7) as f32 - 3.0) / 10.0).collect();
        let mut g = GraphBuilder::new("tiny");
        g.input(
            "x",
            &[
                Dim::Param("n".into()),
                Dim::Value(3),
                Dim::Value(16),
                Dim::Value(16),
            ],
        )
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[2, 3, 3, 3], &weights))
        .node(
            "Conv",
            "conv1",
            &["x", "w"],
            &["c"],
            vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", "relu1", &["c"], &["y"], vec![]);
        Model::from_proto(g.build(13)).unwrap()
    }

    fn jobs(model: &Model, diversity: bool) -> Vec<Job> {
        let layer = model.layer("conv1").unwrap().value;
        (0..3)
            .map(|i| {
                let mut objective = Objective::from(Term::Channel { layer, channel: 1 });
                if diversity {
                    objective = objective + Objective::from(Term::Diversity { layer });
                }
                Job {
                    objective,
                    group: 0,
                    index: i,
                }
            })
            .collect()
    }

    fn config(pass_batch: usize) -> RenderConfig {
        RenderConfig {
            steps: 6,
            size: (20, 20),
            view: (16, 16),
            views: 2,
            transforms: Transforms::Lucid(Default::default()),
            pass_batch,
            ..RenderConfig::default()
        }
    }

    /// A progress callback that says stop ends the render at that step with `Cancelled`.
    #[test]
    fn a_progress_callback_can_stop_the_render() {
        let model = tiny();
        let mut calls = 0;
        let err = render(
            &model,
            &jobs(&model, false),
            &config(usize::MAX),
            &mut |_| {
                calls += 1;
                calls < 2
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        assert_eq!(
            calls, 2,
            "the render stops at the step whose callback said stop"
        );
    }

    /// Running the views one per pass (graphs with a fixed batch) gives the same pictures as
    /// one pass for the whole batch.
    #[test]
    fn passes_of_one_equal_one_pass() {
        let model = tiny();
        let all = render(
            &model,
            &jobs(&model, false),
            &config(usize::MAX),
            &mut |_| true,
        )
        .unwrap();
        let ones = render(&model, &jobs(&model, false), &config(1), &mut |_| true).unwrap();
        for (a, b) in all.iter().zip(&ones) {
            assert_eq!(a.curve, b.curve);
            let diff = a
                .image
                .data
                .iter()
                .zip(&b.image.data)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-3, "{diff}");
        }
    }

    /// Diversity needs every picture of its group in one pass: refused, not silently dropped.
    #[test]
    fn diversity_across_passes_is_refused() {
        let model = tiny();
        let err = render(&model, &jobs(&model, true), &config(1), &mut |_| true).unwrap_err();
        assert!(err.to_string().contains("at most 1 per pass"), "{err}");
    }
}
