//! Random transformations applied to the picture before the model sees it (transformation
//! robustness), each a linear map with an exact adjoint that carries the gradient back.
//!
//! A [`Transforms`] family draws, for one picture and one step, a list of [`Step`]s from a
//! seeded [`Rng`]; the steps are then applied in order ([`apply`]) and undone for the gradient
//! in reverse ([`adjoint`]). The geometry follows Lucent (`pad`, kornia `translate`,
//! `random_scale` with `Upsample(align_corners=True)`, kornia `rotate`) and horama
//! (torchvision `roi_align` crops plus noise); the tests pin each against their numbers.

use super::Planes;
use crate::transform::Rng;

/// One transformation with its parameters drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `F.pad(x, [left, right, top, bottom], value=value)`.
    Pad {
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
        /// Rows added on top.
        top: usize,
        /// Rows added at the bottom.
        bottom: usize,
        /// Value of the new pixels.
        value: f32,
    },
    /// kornia `translate`: `out(y, x) = in(y − dy, x − dx)`, zero outside.
    Translate {
        /// Rows down.
        dy: isize,
        /// Columns right.
        dx: isize,
    },
    /// Bilinear resize with `align_corners=True` (torch `Upsample`).
    Resize {
        /// New height.
        height: usize,
        /// New width.
        width: usize,
    },
    /// kornia `rotate` about `((w−1)/2, (h−1)/2)`, counter-clockwise for positive angles,
    /// bilinear, zero outside.
    Rotate {
        /// Angle in degrees.
        degrees: f32,
    },
    /// torchvision `roi_align` (`aligned=False`, adaptive sampling) of the box
    /// `(x0, y0, x1, y1)` in pixels to `height × width`.
    Crop {
        /// The box: left, top, right, bottom, in pixels.
        bbox: [f32; 4],
        /// Output height.
        height: usize,
        /// Output width.
        width: usize,
    },
    /// Adds fixed noise (drawn with the step).
    Noise {
        /// One value per output element.
        values: Vec<f32>,
    },
}

/// Output size of `step` on an `h × w` input.
fn out_size(step: &Step, h: usize, w: usize) -> (usize, usize) {
    match step {
        Step::Pad {
            left,
            right,
            top,
            bottom,
            ..
        } => (h + top + bottom, w + left + right),
        Step::Resize { height, width } | Step::Crop { height, width, .. } => (*height, *width),
        Step::Translate { .. } | Step::Rotate { .. } | Step::Noise { .. } => (h, w),
    }
}

/// A linear map given by its taps: output element `o` is `Σ weight · input[index]` over the
/// taps of `o` (one plane; the same for every channel).
struct Taps {
    offsets: Vec<u32>,
    taps: Vec<(u32, f32)>,
}

impl Taps {
    fn build(out_len: usize, mut f: impl FnMut(usize, &mut Vec<(u32, f32)>)) -> Taps {
        let mut offsets = Vec::with_capacity(out_len + 1);
        let mut taps = Vec::new();
        offsets.push(0);
        for o in 0..out_len {
            f(o, &mut taps);
            offsets.push(taps.len() as u32);
        }
        Taps { offsets, taps }
    }

    fn apply(&self, x: &[f32], out: &mut [f32]) {
        for (o, v) in out.iter_mut().enumerate() {
            let (a, b) = (self.offsets[o] as usize, self.offsets[o + 1] as usize);
            *v = self.taps[a..b]
                .iter()
                .map(|&(i, wt)| wt * x[i as usize])
                .sum();
        }
    }

    fn adjoint(&self, g: &[f32], out: &mut [f32]) {
        for (o, &gv) in g.iter().enumerate() {
            let (a, b) = (self.offsets[o] as usize, self.offsets[o + 1] as usize);
            for &(i, wt) in &self.taps[a..b] {
                out[i as usize] += wt * gv;
            }
        }
    }
}

/// Bilinear taps at `(y, x)` of an `h × w` plane, zero outside (grid_sample, zeros padding).
fn bilinear_zero(h: usize, w: usize, y: f32, x: f32, taps: &mut Vec<(u32, f32)>) {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
        for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
            let (yy, xx) = (y0 as isize + dy, x0 as isize + dx);
            let wt = wy * wx;
            if wt != 0.0 && yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                taps.push(((yy as usize * w + xx as usize) as u32, wt));
            }
        }
    }
}

/// torchvision `roi_align`'s bilinear read: zero beyond one pixel outside, clamped inside.
fn roi_bilinear(h: usize, w: usize, y: f32, x: f32, weight: f32, taps: &mut Vec<(u32, f32)>) {
    if y < -1.0 || y > h as f32 || x < -1.0 || x > w as f32 {
        return;
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let mut y_low = y as usize;
    let mut x_low = x as usize;
    let y_high;
    let x_high;
    if y_low >= h - 1 {
        y_low = h - 1;
        y_high = h - 1;
        y = y_low as f32;
    } else {
        y_high = y_low + 1;
    }
    if x_low >= w - 1 {
        x_low = w - 1;
        x_high = w - 1;
        x = x_low as f32;
    } else {
        x_high = x_low + 1;
    }
    let (ly, lx) = (y - y_low as f32, x - x_low as f32);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    for (i, wt) in [
        (y_low * w + x_low, hy * hx),
        (y_low * w + x_high, hy * lx),
        (y_high * w + x_low, ly * hx),
        (y_high * w + x_high, ly * lx),
    ] {
        taps.push((i as u32, wt * weight));
    }
}

impl Step {
    /// The taps of a geometric step on an `h × w` plane (`None` for noise and padding, which
    /// are handled directly).
    fn taps(&self, h: usize, w: usize) -> Option<Taps> {
        let (oh, ow) = out_size(self, h, w);
        match *self {
            Step::Translate { dy, dx } => Some(Taps::build(oh * ow, |o, t| {
                let (y, x) = ((o / ow) as isize - dy, (o % ow) as isize - dx);
                if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                    t.push(((y as usize * w + x as usize) as u32, 1.0));
                }
            })),
            Step::Resize { .. } => {
                let ratio = |o: usize, i: usize| {
                    if o > 1 {
                        (i as f32 - 1.0) / (o as f32 - 1.0)
                    } else {
                        0.0
                    }
                };
                let (ry, rx) = (ratio(oh, h), ratio(ow, w));
                Some(Taps::build(oh * ow, |o, t| {
                    // torch's upsample_bilinear2d with align_corners: source = ratio · index,
                    // the upper neighbour clamped.
                    let sy = ry * (o / ow) as f32;
                    let sx = rx * (o % ow) as f32;
                    let (y0, x0) = (sy as usize, sx as usize);
                    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                    let (ly, lx) = (sy - y0 as f32, sx - x0 as f32);
                    for (i, wt) in [
                        (y0 * w + x0, (1.0 - ly) * (1.0 - lx)),
                        (y0 * w + x1, (1.0 - ly) * lx),
                        (y1 * w + x0, ly * (1.0 - lx)),
                        (y1 * w + x1, ly * lx),
                    ] {
                        if wt != 0.0 {
                            t.push((i as u32, wt));
                        }
                    }
                }))
            }
            Step::Rotate { degrees } => {
                let (s, c) = (degrees as f64).to_radians().sin_cos();
                let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
                Some(Taps::build(oh * ow, |o, t| {
                    let (y, x) = ((o / ow) as f64 - cy, (o % ow) as f64 - cx);
                    // The inverse of kornia's (OpenCV's) rotation matrix [[c, s], [−s, c]].
                    let sx = c * x - s * y + cx;
                    let sy = s * x + c * y + cy;
                    bilinear_zero(h, w, sy as f32, sx as f32, t);
                }))
            }
            Step::Crop { bbox, .. } => {
                let [x0, y0, x1, y1] = bbox;
                let roi_w = (x1 - x0).max(1.0);
                let roi_h = (y1 - y0).max(1.0);
                let (bin_h, bin_w) = (roi_h / oh as f32, roi_w / ow as f32);
                let grid_h = (roi_h / oh as f32).ceil().max(1.0) as usize;
                let grid_w = (roi_w / ow as f32).ceil().max(1.0) as usize;
                let weight = 1.0 / (grid_h * grid_w) as f32;
                Some(Taps::build(oh * ow, |o, t| {
                    let (py, px) = ((o / ow) as f32, (o % ow) as f32);
                    for iy in 0..grid_h {
                        let y = y0 + py * bin_h + (iy as f32 + 0.5) * bin_h / grid_h as f32;
                        for ix in 0..grid_w {
                            let x = x0 + px * bin_w + (ix as f32 + 0.5) * bin_w / grid_w as f32;
                            roi_bilinear(h, w, y, x, weight, t);
                        }
                    }
                }))
            }
            Step::Pad { .. } | Step::Noise { .. } => None,
        }
    }
}

/// Applies `steps` in order to `x`.
pub fn apply(steps: &[Step], x: &Planes) -> Planes {
    let mut cur = x.clone();
    for step in steps {
        cur = apply_one(step, &cur);
    }
    cur
}

fn apply_one(step: &Step, x: &Planes) -> Planes {
    let (c, h, w) = (x.channels, x.height, x.width);
    let (oh, ow) = out_size(step, h, w);
    match step {
        Step::Pad {
            left, top, value, ..
        } => {
            let mut out = Planes::new(c, oh, ow, vec![*value; c * oh * ow]);
            for k in 0..c {
                for y in 0..h {
                    let src = &x.data[(k * h + y) * w..(k * h + y + 1) * w];
                    let dst = (k * oh + y + top) * ow + left;
                    out.data[dst..dst + w].copy_from_slice(src);
                }
            }
            out
        }
        Step::Noise { values } => {
            let data = x.data.iter().zip(values).map(|(a, b)| a + b).collect();
            Planes::new(c, h, w, data)
        }
        _ => {
            let taps = step.taps(h, w).expect("a geometric step");
            let mut out = Planes::new(c, oh, ow, vec![0.0; c * oh * ow]);
            for k in 0..c {
                taps.apply(
                    &x.data[k * h * w..(k + 1) * h * w],
                    &mut out.data[k * oh * ow..(k + 1) * oh * ow],
                );
            }
            out
        }
    }
}

/// Carries a gradient on the output of `steps` (applied to an `h × w` picture) back to the
/// picture: the adjoint of each step, in reverse order.
pub fn adjoint(steps: &[Step], g: &Planes, h: usize, w: usize) -> Planes {
    let mut sizes = vec![(h, w)];
    for step in steps {
        let (ph, pw) = *sizes.last().expect("nonempty");
        sizes.push(out_size(step, ph, pw));
    }
    let mut cur = g.clone();
    for (step, &(ih, iw)) in steps.iter().zip(&sizes).rev() {
        cur = adjoint_one(step, &cur, ih, iw);
    }
    cur
}

fn adjoint_one(step: &Step, g: &Planes, h: usize, w: usize) -> Planes {
    let c = g.channels;
    let (oh, ow) = (g.height, g.width);
    match step {
        Step::Pad { left, top, .. } => {
            let mut out = Planes::new(c, h, w, vec![0.0; c * h * w]);
            for k in 0..c {
                for y in 0..h {
                    let src = (k * oh + y + top) * ow + left;
                    out.data[(k * h + y) * w..(k * h + y + 1) * w]
                        .copy_from_slice(&g.data[src..src + w]);
                }
            }
            out
        }
        Step::Noise { .. } => g.clone(),
        _ => {
            let taps = step.taps(h, w).expect("a geometric step");
            let mut out = Planes::new(c, h, w, vec![0.0; c * h * w]);
            for k in 0..c {
                taps.adjoint(
                    &g.data[k * oh * ow..(k + 1) * oh * ow],
                    &mut out.data[k * h * w..(k + 1) * h * w],
                );
            }
            out
        }
    }
}

/// Lucid's standard transformations (Lucent's `standard_transforms`).
#[derive(Clone, Debug, PartialEq)]
pub struct LucidTransforms {
    /// Constant padding on every side (12), with value 0.5.
    pub pad: usize,
    /// First jitter: a shift by 0..`jitter` − 1 pixels down and right (8).
    pub jitter: usize,
    /// Scale factors drawn from (0.90, 0.92, …, 1.10).
    pub scales: Vec<f32>,
    /// Angles in degrees drawn from (−10..=10 and five more 0s).
    pub angles: Vec<f32>,
    /// Second jitter (4).
    pub jitter_after: usize,
}

impl Default for LucidTransforms {
    fn default() -> Self {
        LucidTransforms {
            pad: 12,
            jitter: 8,
            scales: (0..11).map(|i| 1.0 + (i as f32 - 5.0) / 50.0).collect(),
            angles: (-10..=10).map(|a| a as f32).chain([0.0; 5]).collect(),
            jitter_after: 4,
        }
    }
}

/// MaCo's random crops with noise (horama's `optimization_step`).
#[derive(Clone, Debug, PartialEq)]
pub struct MacoCrops {
    /// Side of the crop as a fraction of the picture, drawn uniformly from this range.
    pub box_size: (f32, f32),
    /// Standard deviation of the crop centre around the picture centre (fraction of the side).
    pub centre_sd: f32,
    /// Strength of the added noise (normal · noise + uniform(−½, ½) · noise, unit scale).
    pub noise: f32,
}

impl Default for MacoCrops {
    fn default() -> Self {
        MacoCrops {
            // Half to all of the picture's side: on a picture twice the model's input, every
            // crop is seen at or below its own resolution (horama's crops, 320–384 px of 1280,
            // are too), and what the class needs fills the picture rather than a small centre
            // (docs/design.md, "Feature visualization": 5/10 → 10/10 top-1 on the tuning classes).
            box_size: (0.5, 1.0),
            centre_sd: 0.15,
            noise: 0.02,
        }
    }
}

impl MacoCrops {
    /// These crops for objectives that read positions
    /// ([`crate::fvis::objective::Term::reads_positions`]): 0.9 to all of the side, centred
    /// within 2 %, so a position of the view stays within a few pixels of the same place in
    /// the picture from step to step, as under Lucid's jitter and ±10 % scales. The default
    /// crops move it by up to half the picture, which on the demo model left caricature at 0.46
    /// of its target and inversion at −0.61 after 256 steps, against 0.75 and −0.44 with these
    /// (docs/design.md, "Feature visualization").
    pub fn aligned(&self) -> MacoCrops {
        MacoCrops {
            box_size: (0.9, 1.0),
            centre_sd: 0.02,
            ..self.clone()
        }
    }
}

/// A family of random transformations.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Transforms {
    /// None (the walk-through's): the picture goes to the model as it is, resized to the
    /// model's size when it differs.
    #[default]
    None,
    /// Lucid's standard set, then a resize back to the model's size.
    Lucid(LucidTransforms),
    /// MaCo's random crops, resized to the model's size, plus noise.
    Maco(MacoCrops),
}

/// A resize to `view` when `size` differs from it.
fn fit(size: (usize, usize), view: (usize, usize), steps: &mut Vec<Step>) {
    if size != view {
        steps.push(Step::Resize {
            height: view.0,
            width: view.1,
        });
    }
}

/// Lucent's `_roundup`.
fn roundup(v: f32) -> usize {
    v.ceil().max(0.0) as usize
}

impl Transforms {
    /// These transformations for a picture whose objective reads positions: MaCo's crops
    /// become [`MacoCrops::aligned`]; the others move a position by a few pixels at most
    /// already and stay as they are.
    pub fn keeping_positions(&self) -> Transforms {
        match self {
            Transforms::Maco(crops) => Transforms::Maco(crops.aligned()),
            other => other.clone(),
        }
    }

    /// Draws the steps for one picture of `size` seen by the model at `view` (`(h, w)`).
    pub fn sample(&self, rng: &mut Rng, size: (usize, usize), view: (usize, usize)) -> Vec<Step> {
        let mut steps = Vec::new();
        match self {
            Transforms::None => fit(size, view, &mut steps),
            Transforms::Lucid(t) => {
                let (mut h, mut w) = size;
                if t.pad > 0 {
                    steps.push(Step::Pad {
                        left: t.pad,
                        right: t.pad,
                        top: t.pad,
                        bottom: t.pad,
                        value: 0.5,
                    });
                    h += 2 * t.pad;
                    w += 2 * t.pad;
                }
                let jitter = |d: usize, rng: &mut Rng, steps: &mut Vec<Step>| {
                    if d > 1 {
                        let dx = rng.below(d) as isize;
                        let dy = rng.below(d) as isize;
                        steps.push(Step::Translate { dy, dx });
                    }
                };
                jitter(t.jitter, rng, &mut steps);
                if !t.scales.is_empty() {
                    let s = t.scales[rng.below(t.scales.len())];
                    let (sh, sw) = (roundup(s * h as f32), roundup(s * w as f32));
                    steps.push(Step::Resize {
                        height: sh,
                        width: sw,
                    });
                    // Lucent pads with [pad_y, pad_x] * 2, i.e. left = pad_y, right = pad_x,
                    // top = pad_y, bottom = pad_x.
                    let pad_x = roundup((w as f32 - sw as f32) / 2.0);
                    let pad_y = roundup((h as f32 - sh as f32) / 2.0);
                    if pad_x > 0 || pad_y > 0 {
                        steps.push(Step::Pad {
                            left: pad_y,
                            right: pad_x,
                            top: pad_y,
                            bottom: pad_x,
                            value: 0.0,
                        });
                    }
                    (h, w) = (sh + pad_y + pad_x, sw + pad_y + pad_x);
                }
                if !t.angles.is_empty() {
                    let a = t.angles[rng.below(t.angles.len())];
                    if a != 0.0 {
                        steps.push(Step::Rotate { degrees: a });
                    }
                }
                jitter(t.jitter_after, rng, &mut steps);
                fit((h, w), view, &mut steps);
            }
            Transforms::Maco(t) => {
                let (h, w) = size;
                let side = h.min(w) as f32;
                let cy = (0.5 + rng.normal() * t.centre_sd) * h as f32;
                let cx = (0.5 + rng.normal() * t.centre_sd) * w as f32;
                let frac = t.box_size.0 + rng.uniform() * (t.box_size.1 - t.box_size.0);
                let half = frac * side / 2.0;
                steps.push(Step::Crop {
                    bbox: [cx - half, cy - half, cx + half, cy + half],
                    height: view.0,
                    width: view.1,
                });
                if t.noise > 0.0 {
                    let n = 3 * view.0 * view.1;
                    let values = (0..n)
                        .map(|_| (rng.normal() + rng.uniform() - 0.5) * t.noise)
                        .collect();
                    steps.push(Step::Noise { values });
                }
            }
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(c: usize, h: usize, w: usize, seed: u64) -> Planes {
        let mut r = Rng::new(seed);
        Planes::new(c, h, w, (0..c * h * w).map(|_| r.normal()).collect())
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    /// MaCo's crops narrow to `MacoCrops::aligned` (keeping their noise) for objectives that
    /// read positions; the other families are returned as they are.
    #[test]
    fn maco_crops_keep_positions_for_objectives_that_read_them() {
        let crops = MacoCrops {
            noise: 0.07,
            ..MacoCrops::default()
        };
        let aligned = Transforms::Maco(crops.clone()).keeping_positions();
        assert_eq!(
            aligned,
            Transforms::Maco(MacoCrops {
                box_size: (0.9, 1.0),
                centre_sd: 0.02,
                noise: 0.07,
            })
        );
        assert_ne!(aligned, Transforms::Maco(crops));
        // Lucid's transformations and none keep positions already.
        let lucid = Transforms::Lucid(LucidTransforms::default());
        assert_eq!(lucid.keeping_positions(), lucid);
        assert_eq!(Transforms::None.keeping_positions(), Transforms::None);
    }

    /// ⟨T x, g⟩ = ⟨x, Tᵀ g⟩ for every kind of step (the constant part of padding and noise
    /// aside, which do not depend on x: they are compared on T x − T 0).
    #[test]
    fn every_adjoint_is_exact() {
        let (h, w) = (9, 11);
        let cases = vec![
            Step::Pad {
                left: 2,
                right: 1,
                top: 3,
                bottom: 0,
                value: 0.5,
            },
            Step::Translate { dy: 3, dx: -2 },
            Step::Resize {
                height: 13,
                width: 7,
            },
            Step::Rotate { degrees: 7.0 },
            Step::Crop {
                bbox: [1.5, -0.5, 8.2, 6.0],
                height: 5,
                width: 4,
            },
            Step::Crop {
                bbox: [0.0, 0.0, 11.0, 9.0],
                height: 3,
                width: 3,
            },
            Step::Noise {
                values: vec![0.1; 2 * h * w],
            },
        ];
        for step in cases {
            let x = random(2, h, w, 1);
            let zero = Planes::new(2, h, w, vec![0.0; 2 * h * w]);
            let y = apply(std::slice::from_ref(&step), &x);
            let y0 = apply(std::slice::from_ref(&step), &zero);
            let g = random(2, y.height, y.width, 2);
            let lin: Vec<f32> = y.data.iter().zip(&y0.data).map(|(a, b)| a - b).collect();
            let back = adjoint(std::slice::from_ref(&step), &g, h, w);
            let (lhs, rhs) = (dot(&lin, &g.data), dot(&x.data, &back.data));
            assert!(
                (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                "{step:?}: {lhs} vs {rhs}"
            );
        }
    }

    /// The gradient of a whole sampled chain against finite differences of ⟨T x, g⟩.
    #[test]
    fn chains_match_finite_differences() {
        let (h, w) = (12, 10);
        for (k, family) in [
            Transforms::Lucid(LucidTransforms {
                pad: 2,
                jitter: 3,
                jitter_after: 2,
                ..LucidTransforms::default()
            }),
            Transforms::Maco(MacoCrops::default()),
            Transforms::None,
        ]
        .into_iter()
        .enumerate()
        {
            let steps = family.sample(&mut Rng::new(k as u64 + 5), (h, w), (8, 8));
            let x = random(3, h, w, 3);
            let g = random(3, 8, 8, 4);
            let back = adjoint(&steps, &g, h, w);
            let f = |x: &Planes| dot(&apply(&steps, x).data, &g.data);
            for i in [0, 17, 55, 101, 300] {
                let eps = 1e-2;
                let (mut a, mut b) = (x.clone(), x.clone());
                a.data[i] += eps;
                b.data[i] -= eps;
                let numeric = (f(&a) - f(&b)) / (2.0 * eps as f64);
                assert!(
                    (numeric - back.data[i] as f64).abs() < 1e-3,
                    "{family:?} [{i}]: {numeric} vs {}",
                    back.data[i]
                );
            }
        }
    }

    /// The same seed draws the same steps; the Lucid chain ends at the model's size.
    #[test]
    fn sampling_is_seeded_and_fits_the_view() {
        let t = Transforms::Lucid(LucidTransforms::default());
        let a = t.sample(&mut Rng::new(9), (64, 64), (64, 64));
        let b = t.sample(&mut Rng::new(9), (64, 64), (64, 64));
        assert_eq!(a, b);
        let x = random(3, 64, 64, 1);
        let y = apply(&a, &x);
        assert_eq!((y.height, y.width), (64, 64));
        let m =
            Transforms::Maco(MacoCrops::default()).sample(&mut Rng::new(1), (100, 100), (32, 32));
        assert_eq!((apply(&m, &random(3, 100, 100, 2)).height), 32);
    }
}
