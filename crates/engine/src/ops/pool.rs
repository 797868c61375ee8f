//! MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (2-D, NCHW).
//!
//! MaxPool's gradient goes to the first maximum of each window, as in PyTorch, so a gradient is
//! never scaled by the number of ties.

use std::collections::HashMap;

use super::{
    check_size, float_input, only_first, BuildCtx, Builder, Clamp, ExecConfig, Op, OpKind, Vjp,
};
use crate::error::{Error, Result};
use crate::kernels::geometry::{same_pads, Axis};
use crate::kernels::pooling::{lane_sum, max2x2_backward, max_plain, plain_windows};
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

/// `MaxPool` or `AveragePool` (2-D, NCHW).
pub struct Pool {
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

impl Op for Pool {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
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

    fn kind(&self) -> OpKind<'_> {
        OpKind::Pool(self)
    }
}

impl Pool {
    /// Like [`Op::backward`], with the gradient of input 0 already multiplied by the derivative
    /// of the clamp `act` read from input 0 itself (1 where `lo < x < hi`, else 0): the
    /// backward pass of a clamp fused into the convolution before this pool, done here.
    /// `None` when the pool has no such form for these inputs (2×2 max pooling only).
    pub(crate) fn backward_masked(
        &self,
        v: &Vjp,
        act: Clamp,
    ) -> Option<Result<Vec<Option<Tensor>>>> {
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
                max2x2_backward(v.config.isa, xp, yp, dyp, g, &h, &w, mask);
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

struct GlobalPool {
    max: bool,
}

impl Op for GlobalPool {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
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
