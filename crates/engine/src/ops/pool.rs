//! MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (2-D, NCHW).
//!
//! MaxPool's gradient goes to the first maximum of each window, as in PyTorch, so a gradient is
//! never scaled by the number of ties.

use std::collections::HashMap;
use std::mem::MaybeUninit;

use super::{check_size, float_input, only_first, BuildCtx, Builder, Clamp, Op, Vjp};
use crate::error::{Error, Result};
use crate::kernels::{same_pads, Axis};
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("MaxPool", |ctx| {
        if ctx.node.output.len() > 1 && !ctx.node.output[1].is_empty() {
            return Err(Error::InvalidModel(
                "MaxPool's Indices output is not supported".into(),
            ));
        }
        Ok(Box::new(Pool {
            kind: Kind::Max,
            attrs: PoolAttrs::parse(ctx)?,
        }))
    });
    reg.insert("AveragePool", |ctx| {
        let include = ctx.int("count_include_pad", 0) != 0;
        Ok(Box::new(Pool {
            kind: Kind::Avg {
                include_pad: include,
            },
            attrs: PoolAttrs::parse(ctx)?,
        }))
    });
    reg.insert("GlobalAveragePool", |_| {
        Ok(Box::new(GlobalPool { max: false }))
    });
    reg.insert("GlobalMaxPool", |_| Ok(Box::new(GlobalPool { max: true })));
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Max,
    Avg { include_pad: bool },
}

#[derive(Clone, Debug)]
struct PoolAttrs {
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
    auto_pad: String,
    ceil_mode: bool,
}

/// Largest kernel, stride, dilation or pad accepted: far above real networks, low enough that
/// the window arithmetic cannot overflow on corrupt values.
const MAX_GEOMETRY: i64 = 1 << 20;

impl PoolAttrs {
    fn parse(ctx: &BuildCtx) -> Result<Self> {
        let ok = |x: i64| (1..=MAX_GEOMETRY).contains(&x);
        let two = |name: &str, default: Option<[usize; 2]>| -> Result<[usize; 2]> {
            match (ctx.ints(name).as_deref(), default) {
                (Some([a, b]), _) if ok(*a) && ok(*b) => Ok([*a as usize, *b as usize]),
                (None, Some(d)) => Ok(d),
                (v, _) => Err(Error::InvalidModel(format!(
                    "{name} {v:?}: only 2-D pooling with values in 1..={MAX_GEOMETRY} is supported"
                ))),
            }
        };
        let kernel = two("kernel_shape", None)?;
        let pads = match ctx.ints("pads").as_deref() {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&v| (0..=MAX_GEOMETRY).contains(&v)) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => {
                return Err(Error::InvalidModel(format!(
                    "pads {p:?}: expected 4 non-negative values up to {MAX_GEOMETRY}"
                )))
            }
        };
        Ok(Self {
            kernel,
            strides: two("strides", Some([1, 1]))?,
            dilations: two("dilations", Some([1, 1]))?,
            pads,
            auto_pad: ctx.string("auto_pad", "NOTSET"),
            ceil_mode: ctx.int("ceil_mode", 0) != 0,
        })
    }

    fn axis(&self, a: usize, input: usize) -> Result<(Axis, usize)> {
        let (k, s, d) = (self.kernel[a], self.strides[a], self.dilations[a]);
        // An empty axis would underflow `out - 1` below (SAME) and pool only padding.
        if input == 0 {
            return Err(Error::Shape("pooling over an empty axis".into()));
        }
        let span = (k - 1) * d + 1;
        let (pb, pe) = match self.auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => same_pads(input, s, span, self.auto_pad == "SAME_UPPER"),
            "VALID" => (0, 0),
            _ => (self.pads[a], self.pads[a + 2]),
        };
        if input + pb + pe < span {
            return Err(Error::Shape(format!(
                "pooling window {span} is larger than the padded input {}",
                input + pb + pe
            )));
        }
        let num = input + pb + pe - span;
        let mut out = if self.ceil_mode {
            num.div_ceil(s) + 1
        } else {
            num / s + 1
        };
        // A window may not start inside the end padding (PyTorch and ONNX agree on this rule).
        if self.ceil_mode && (out - 1) * s >= input + pb {
            out -= 1;
        }
        Ok((
            Axis {
                input,
                output: out,
                kernel: k,
                stride: s,
                dilation: d,
                pad_begin: pb,
            },
            pe,
        ))
    }
}

struct Pool {
    kind: Kind,
    attrs: PoolAttrs,
}

impl Pool {
    fn geometry(&self, x: &Tensor) -> Result<(usize, Axis, Axis)> {
        let [n, c, h, w] = *x.shape() else {
            return Err(Error::Shape(format!(
                "pooling input must be 4-D NCHW, got {:?}",
                x.shape()
            )));
        };
        let (ah, aw) = (self.attrs.axis(0, h)?.0, self.attrs.axis(1, w)?.0);
        check_size(&[n, c, ah.output, aw.output], "pooling")?;
        Ok((n * c, ah, aw))
    }

    /// Number of elements an average divides by for window (oh, ow).
    fn divisor(&self, include_pad: bool, h: &Axis, w: &Axis, oh: usize, ow: usize) -> f32 {
        let count = |a: &Axis, o: usize, pe: usize| -> usize {
            (0..a.kernel)
                .filter(|&k| {
                    let i = (o * a.stride + k * a.dilation) as isize - a.pad_begin as isize;
                    if include_pad {
                        // Positions in explicit padding count; positions past it (ceil_mode) do not.
                        i < (a.input + pe) as isize
                    } else {
                        i >= 0 && (i as usize) < a.input
                    }
                })
                .count()
        };
        let peh = self.attrs.axis(0, h.input).map_or(0, |v| v.1);
        let pew = self.attrs.axis(1, w.input).map_or(0, |v| v.1);
        (count(h, oh, peh) * count(w, ow, pew)).max(1) as f32
    }
}

/// Windows that tile the axis without padding or dilation (VGG's 2×2 stride-2 pools): every
/// tap is inside the input, so the loops index directly.
fn plain_windows(a: &Axis) -> bool {
    a.pad_begin == 0 && a.dilation == 1 && a.stride == a.kernel && a.output * a.stride <= a.input
}

/// The running maximum of the general loop: a NaN wins, as in onnxruntime. Written with `|`
/// so that loops of it compile to vector compares and selects.
#[inline(always)]
fn pick(acc: f32, v: f32) -> f32 {
    if (v > acc) | v.is_nan() {
        v
    } else {
        acc
    }
}

/// Max pooling of one plane with [`plain_windows`] geometry (same results as the general loop).
fn max_plain(xp: &[f32], o: &mut [f32], h: &Axis, w: &Axis) {
    if h.kernel == 2 && w.kernel == 2 {
        // VGG's 2×2 windows: four loads and three vector selects per output.
        let ow_n = w.output;
        for (oh, orow) in o.chunks_exact_mut(ow_n).enumerate().take(h.output) {
            let r0 = &xp[2 * oh * w.input..][..2 * ow_n];
            let r1 = &xp[(2 * oh + 1) * w.input..][..2 * ow_n];
            for (i, ov) in orow.iter_mut().enumerate() {
                *ov = pick(
                    pick(pick(r0[2 * i], r0[2 * i + 1]), r1[2 * i]),
                    r1[2 * i + 1],
                );
            }
        }
        return;
    }
    for oh in 0..h.output {
        let orow = &mut o[oh * w.output..(oh + 1) * w.output];
        orow.fill(f32::NEG_INFINITY);
        for ki in 0..h.kernel {
            let xrow = &xp[(oh * h.stride + ki) * w.input..][..w.input];
            for (ow, ov) in orow.iter_mut().enumerate() {
                for &v in &xrow[ow * w.stride..ow * w.stride + w.kernel] {
                    if v > *ov || v.is_nan() {
                        *ov = v;
                    }
                }
            }
        }
    }
}

impl Op for Pool {
    fn forward(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let (planes, h, w) = self.geometry(x)?;
        let (pin, pout) = (h.input * w.input, h.output * w.output);
        let mut out = vec![0.0f32; planes * pout];
        let divisors: Vec<f32> = match self.kind {
            Kind::Avg { include_pad } => (0..pout)
                .map(|p| self.divisor(include_pad, &h, &w, p / w.output, p % w.output))
                .collect(),
            Kind::Max => Vec::new(),
        };
        let plain = matches!(self.kind, Kind::Max) && plain_windows(&h) && plain_windows(&w);
        crate::runtime::pool::for_each_chunk_mut(&mut out, pout, |plane, o| {
            let xp = &x.data()[plane * pin..(plane + 1) * pin];
            if plain {
                max_plain(xp, o, &h, &w);
                return;
            }
            for oh in 0..h.output {
                for ow in 0..w.output {
                    let mut acc = match self.kind {
                        Kind::Max => f32::NEG_INFINITY,
                        Kind::Avg { .. } => 0.0,
                    };
                    for ki in 0..h.kernel {
                        let Some(ih) = h.source(oh, ki) else { continue };
                        for kj in 0..w.kernel {
                            let Some(iw) = w.source(ow, kj) else { continue };
                            let v = xp[ih * w.input + iw];
                            match self.kind {
                                Kind::Max => {
                                    if v > acc || v.is_nan() {
                                        acc = v
                                    }
                                }
                                Kind::Avg { .. } => acc += v,
                            }
                        }
                    }
                    o[oh * w.output + ow] = match self.kind {
                        Kind::Max => acc,
                        Kind::Avg { .. } => acc / divisors[oh * w.output + ow],
                    };
                }
            }
        });
        let [n, c, ..] = *x.shape() else {
            unreachable!()
        };
        Ok(vec![Tensor::from_parts(
            vec![n, c, h.output, w.output],
            out,
        )
        .into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        self.input_grad(v, None)
    }

    fn backward_masked(&self, v: &Vjp, act: Clamp) -> Option<Result<Vec<Option<Tensor>>>> {
        // Max pooling picks one input per window, so masking by the input equals masking by
        // the chosen maximum; implemented for the branch-free 2×2 windows only.
        let x = v.input(0).ok()?;
        let (_, h, w) = self.geometry(x).ok()?;
        let plain2 = matches!(self.kind, Kind::Max)
            && plain_windows(&h)
            && plain_windows(&w)
            && h.kernel == 2
            && w.kernel == 2;
        plain2.then(|| self.input_grad(v, Some(act)))
    }
}

impl Pool {
    /// The input gradient; `mask` (2×2 max pooling only) zeroes it where the input is outside
    /// the clamp's open interval.
    fn input_grad(&self, v: &Vjp, mask: Option<Clamp>) -> Result<Vec<Option<Tensor>>> {
        let x = v.input(0)?;
        let dy = v.grad(0)?;
        let (_, h, w) = self.geometry(x)?;
        let (pin, pout) = (h.input * w.input, h.output * w.output);
        let y = v.output(0)?;
        let plain2 = matches!(self.kind, Kind::Max)
            && plain_windows(&h)
            && plain_windows(&w)
            && h.kernel == 2
            && w.kernel == 2;
        if plain2 && pin > 0 {
            // Every input element is written once (the windows tile the plane), so the
            // gradient needs no zeroing pass first (a memset of 134 MB per VGG block1 pool at
            // batch 32: 4 % of a filter ascent).
            let mut dx: Vec<f32> = Vec::with_capacity(x.len());
            crate::runtime::pool::for_each_chunk_mut(dx.spare_capacity_mut(), pin, |plane, g| {
                let xp = &x.data()[plane * pin..(plane + 1) * pin];
                let dyp = &dy.data()[plane * pout..(plane + 1) * pout];
                let yp = &y.data()[plane * pout..(plane + 1) * pout];
                max2x2_backward(xp, yp, dyp, g, &h, &w, mask);
            });
            // SAFETY: `max2x2_backward` wrote every element of every plane.
            unsafe { dx.set_len(x.len()) };
            return Ok(only_first(
                Tensor::from_parts(x.shape().to_vec(), dx),
                v.inputs.len(),
            ));
        }
        let mut dx = vec![0.0f32; x.len()];
        crate::runtime::pool::for_each_chunk_mut(&mut dx, pin, |plane, g| {
            let xp = &x.data()[plane * pin..(plane + 1) * pin];
            let dyp = &dy.data()[plane * pout..(plane + 1) * pout];
            for oh in 0..h.output {
                for ow in 0..w.output {
                    let gv = dyp[oh * w.output + ow];
                    if gv == 0.0 {
                        continue;
                    }
                    match self.kind {
                        Kind::Max => {
                            // Route to the first element equal to the forward maximum.
                            let target = y.data()[plane * pout + oh * w.output + ow];
                            'win: for ki in 0..h.kernel {
                                let Some(ih) = h.source(oh, ki) else { continue };
                                for kj in 0..w.kernel {
                                    let Some(iw) = w.source(ow, kj) else { continue };
                                    let v = xp[ih * w.input + iw];
                                    if v == target || (v.is_nan() && target.is_nan()) {
                                        g[ih * w.input + iw] += gv;
                                        break 'win;
                                    }
                                }
                            }
                        }
                        Kind::Avg { include_pad } => {
                            let share = gv / self.divisor(include_pad, &h, &w, oh, ow);
                            for ki in 0..h.kernel {
                                let Some(ih) = h.source(oh, ki) else { continue };
                                for kj in 0..w.kernel {
                                    let Some(iw) = w.source(ow, kj) else { continue };
                                    g[ih * w.input + iw] += share;
                                }
                            }
                        }
                    }
                }
            }
        });
        Ok(only_first(
            Tensor::from_parts(x.shape().to_vec(), dx),
            v.inputs.len(),
        ))
    }
}

/// The backward pass of [`max_plain`]'s 2×2 windows: each window's gradient goes to its first
/// element equal to the maximum (as the general loop routes it). Windows do not overlap, so
/// every input element is written once, without branches.
///
/// `g` (one plane) may be uninitialised: every element is written, the rows and columns no
/// window covers (odd sizes) with zeros.
fn max2x2_backward(
    xp: &[f32],
    yp: &[f32],
    dy: &[f32],
    g: &mut [MaybeUninit<f32>],
    h: &Axis,
    w: &Axis,
    mask: Option<Clamp>,
) {
    let ow_n = w.output;
    assert_eq!(g.len(), h.input * w.input, "one input plane");
    // Rows below the last window, and in every row the columns right of it.
    g[2 * h.output * w.input..].fill(MaybeUninit::new(0.0));
    for row in g[..2 * h.output * w.input].chunks_mut(w.input) {
        row[2 * ow_n..].fill(MaybeUninit::new(0.0));
    }
    for oh in 0..h.output {
        let (top, bottom) = g[2 * oh * w.input..].split_at_mut(w.input);
        let (g0, g1) = (&mut top[..2 * ow_n], &mut bottom[..2 * ow_n]);
        let r0 = &xp[2 * oh * w.input..][..2 * ow_n];
        let r1 = &xp[(2 * oh + 1) * w.input..][..2 * ow_n];
        let (yr, dr) = (&yp[oh * ow_n..][..ow_n], &dy[oh * ow_n..][..ow_n]);
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if crate::runtime::cpu::Isa::host().avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            done = unsafe { max2x2_row_avx2(g0, g1, r0, r1, yr, dr, mask) };
        }
        max2x2_row(g0, g1, r0, r1, yr, dr, mask, done);
    }
}

/// One output row of [`max2x2_backward`] from window `from` on: `g0`/`g1` are the two input
/// rows' gradients, `r0`/`r1` the inputs, `yr`/`dr` the pooled values and their gradients.
#[allow(clippy::too_many_arguments)]
fn max2x2_row(
    g0: &mut [MaybeUninit<f32>],
    g1: &mut [MaybeUninit<f32>],
    r0: &[f32],
    r1: &[f32],
    yr: &[f32],
    dr: &[f32],
    mask: Option<Clamp>,
    from: usize,
) {
    let hit = |v: f32, t: f32| (v == t) | (v.is_nan() & t.is_nan());
    for i in from..yr.len() {
        let (t, d) = (yr[i], dr[i]);
        // The maximum's own clamp derivative, when masked.
        let d = match mask {
            Some(c) if !c.passes(t) => 0.0,
            _ => d,
        };
        let a = hit(r0[2 * i], t);
        let b = !a & hit(r0[2 * i + 1], t);
        let c = !(a | b) & hit(r1[2 * i], t);
        let e = !(a | b | c) & hit(r1[2 * i + 1], t);
        g0[2 * i].write(if a { d } else { 0.0 });
        g0[2 * i + 1].write(if b { d } else { 0.0 });
        g1[2 * i].write(if c { d } else { 0.0 });
        g1[2 * i + 1].write(if e { d } else { 0.0 });
    }
}

/// [`max2x2_row`] for 8 windows at a time; returns how many windows it did (a multiple of 8).
///
/// The loops above did not vectorise (the window pairs interleave): here each row's pairs are
/// split into even and odd elements with shuffles, the pooled values and gradients permuted to
/// the same order, and the four results interleaved back.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max2x2_row_avx2(
    g0: &mut [MaybeUninit<f32>],
    g1: &mut [MaybeUninit<f32>],
    r0: &[f32],
    r1: &[f32],
    yr: &[f32],
    dr: &[f32],
    mask: Option<Clamp>,
) -> usize {
    use std::arch::x86_64::*;
    let n = yr.len() / 8 * 8;
    assert!(dr.len() >= n && r0.len() >= 2 * n && r1.len() >= 2 * n);
    assert!(g0.len() >= 2 * n && g1.len() >= 2 * n);
    // SAFETY: every load and store below covers windows i..i+8 < n, inside the slices (checked
    // by the asserts above).
    unsafe {
        // Even/odd shuffles of two 8-float registers yield windows in the order 0,1,4,5,2,3,6,7.
        let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        let (lo, hi) = mask.map_or((f32::NEG_INFINITY, f32::INFINITY), |c| (c.lo, c.hi));
        let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        for i in (0..n).step_by(8) {
            let t = _mm256_permutevar8x32_ps(_mm256_loadu_ps(yr.as_ptr().add(i)), order);
            let mut d = _mm256_permutevar8x32_ps(_mm256_loadu_ps(dr.as_ptr().add(i)), order);
            if mask.is_some() {
                let pass = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(t, lo),
                    _mm256_cmp_ps::<_CMP_LT_OQ>(t, hi),
                );
                d = _mm256_and_ps(d, pass);
            }
            let t_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(t, t);
            let hit = |v: __m256| {
                _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_EQ_OQ>(v, t),
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v), t_nan),
                )
            };
            let (a0, b0) = (
                _mm256_loadu_ps(r0.as_ptr().add(2 * i)),
                _mm256_loadu_ps(r0.as_ptr().add(2 * i + 8)),
            );
            let (a1, b1) = (
                _mm256_loadu_ps(r1.as_ptr().add(2 * i)),
                _mm256_loadu_ps(r1.as_ptr().add(2 * i + 8)),
            );
            let (x00, x01) = (
                _mm256_shuffle_ps::<0x88>(a0, b0),
                _mm256_shuffle_ps::<0xDD>(a0, b0),
            );
            let (x10, x11) = (
                _mm256_shuffle_ps::<0x88>(a1, b1),
                _mm256_shuffle_ps::<0xDD>(a1, b1),
            );
            let ha = hit(x00);
            let hb = _mm256_andnot_ps(ha, hit(x01));
            let seen = _mm256_or_ps(ha, hb);
            let hc = _mm256_andnot_ps(seen, hit(x10));
            let he = _mm256_andnot_ps(_mm256_or_ps(seen, hc), hit(x11));
            let (e0, o0) = (_mm256_and_ps(ha, d), _mm256_and_ps(hb, d));
            let (e1, o1) = (_mm256_and_ps(hc, d), _mm256_and_ps(he, d));
            let (p0, p1) = (g0.as_mut_ptr().cast::<f32>(), g1.as_mut_ptr().cast::<f32>());
            _mm256_storeu_ps(p0.add(2 * i), _mm256_unpacklo_ps(e0, o0));
            _mm256_storeu_ps(p0.add(2 * i + 8), _mm256_unpackhi_ps(e0, o0));
            _mm256_storeu_ps(p1.add(2 * i), _mm256_unpacklo_ps(e1, o1));
            _mm256_storeu_ps(p1.add(2 * i + 8), _mm256_unpackhi_ps(e1, o1));
        }
    }
    n
}

struct GlobalPool {
    max: bool,
}

impl Op for GlobalPool {
    fn forward(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        if x.rank() < 3 {
            return Err(Error::Shape(format!(
                "global pooling needs N×C×spatial input, got {:?}",
                x.shape()
            )));
        }
        let plane: usize = x.shape()[2..].iter().product();
        // Without this, an empty plane gave no chunks and an output shorter than its shape.
        if plane == 0 {
            return Err(Error::Shape(format!(
                "global pooling of an empty spatial extent {:?}",
                x.shape()
            )));
        }
        let out: Vec<f32> = x
            .data()
            .chunks(plane.max(1))
            .map(|p| {
                if self.max {
                    p.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                } else {
                    lane_sum(p) / plane as f32
                }
            })
            .collect();
        let mut shape = x.shape().to_vec();
        shape[2..].iter_mut().for_each(|d| *d = 1);
        Ok(vec![Tensor::from_parts(shape, out).into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (x, dy, y) = (v.input(0)?, v.grad(0)?, v.output(0)?);
        let plane: usize = x.shape()[2..].iter().product();
        let mut dx = vec![0.0f32; x.len()];
        for (i, g) in dx.chunks_mut(plane.max(1)).enumerate() {
            if self.max {
                let xp = &x.data()[i * plane..(i + 1) * plane];
                if let Some(j) = xp.iter().position(|&v| v == y.data()[i]) {
                    g[j] = dy.data()[i];
                }
            } else {
                g.fill(dy.data()[i] / plane as f32);
            }
        }
        Ok(only_first(
            Tensor::from_parts(x.shape().to_vec(), dx),
            v.inputs.len(),
        ))
    }
}

/// `Σ v` in 16 interleaved partial sums (lanes a compiler can keep in one vector register),
/// added up at the end. One running sum is a chain of dependent adds, one per value: it made
/// EfficientNet's global pool of 1280 planes of 49 values take ~50 µs.
fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::lane_sum;

    /// Every length around the 16-lane boundaries, against an f64 sum.
    #[test]
    fn lane_sum_adds_every_value() {
        for n in 0..70 {
            let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let want: f64 = v.iter().map(|&x| x as f64).sum();
            assert!((lane_sum(&v) as f64 - want).abs() < 1e-5, "length {n}");
        }
    }
}
