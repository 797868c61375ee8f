//! Element-wise unary ops: activations and math functions.

use std::collections::HashMap;

use super::{float_input, only_first, BuildCtx, Builder, Clamp, ExecConfig, Op, OpKind, Vjp};
use crate::error::{Error, Result};
use crate::tensor::{Tensor, Value};

/// Element-wise functions and their derivatives, written in terms of input `x` and output `y`.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Relu,
    LeakyRelu(f32),
    Elu(f32),
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Sigmoid,
    Tanh,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Erf,
    /// ONNX's `Gelu` (opset 20): `x·Φ(x)` exactly, or with `tanh` its tanh approximation.
    Gelu {
        tanh: bool,
    },
    Sqrt,
    Exp,
    Log,
    Neg,
    Abs,
    Reciprocal,
    Softplus,
    /// Clip with bounds read at run time (attributes before opset 11, inputs after).
    Clip,
}

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    fn mk(kind: Kind) -> Result<Box<dyn Op>> {
        Ok(Box::new(Unary {
            kind,
            attr_bounds: None,
        }))
    }
    reg.insert("Relu", |_| mk(Kind::Relu));
    reg.insert("LeakyRelu", |c| mk(Kind::LeakyRelu(c.float("alpha", 0.01))));
    reg.insert("Elu", |c| mk(Kind::Elu(c.float("alpha", 1.0))));
    reg.insert("Selu", |c| {
        mk(Kind::Selu {
            alpha: c.float("alpha", 1.673_263_2),
            gamma: c.float("gamma", 1.050_701),
        })
    });
    reg.insert("Sigmoid", |_| mk(Kind::Sigmoid));
    reg.insert("Tanh", |_| mk(Kind::Tanh));
    reg.insert("HardSigmoid", |c| {
        mk(Kind::HardSigmoid {
            alpha: c.float("alpha", 0.2),
            beta: c.float("beta", 0.5),
        })
    });
    reg.insert("HardSwish", |_| mk(Kind::HardSwish));
    reg.insert("Erf", |_| mk(Kind::Erf));
    reg.insert("Gelu", |c| {
        let tanh = match c.string("approximate", "none").as_str() {
            "none" => false,
            "tanh" => true,
            other => {
                return Err(Error::InvalidModel(format!(
                    "Gelu approximate '{}' is neither 'none' nor 'tanh'",
                    other.escape_debug()
                )))
            }
        };
        mk(Kind::Gelu { tanh })
    });
    reg.insert("Sqrt", |_| mk(Kind::Sqrt));
    reg.insert("Exp", |_| mk(Kind::Exp));
    reg.insert("Log", |_| mk(Kind::Log));
    reg.insert("Neg", |_| mk(Kind::Neg));
    reg.insert("Abs", |_| mk(Kind::Abs));
    reg.insert("Reciprocal", |_| mk(Kind::Reciprocal));
    reg.insert("Softplus", |_| mk(Kind::Softplus));
    reg.insert("Clip", clip);
}

fn clip(ctx: &BuildCtx) -> Result<Box<dyn Op>> {
    let attr_bounds = if ctx.opset < 11 {
        Some((
            ctx.float("min", f32::NEG_INFINITY),
            ctx.float("max", f32::INFINITY),
        ))
    } else {
        None
    };
    Ok(Box::new(Unary {
        kind: Kind::Clip,
        attr_bounds,
    }))
}

/// An element-wise unary op: an activation (Relu, Clip, Sigmoid, …) or a math function.
pub struct Unary {
    kind: Kind,
    attr_bounds: Option<(f32, f32)>,
}

/// `erf` to within ~1e-7 (Abramowitz & Stegun 7.1.26 evaluated in f64).
fn erf(x: f32) -> f32 {
    erf_f64(f64::from(x)) as f32
}

/// [`erf`] in f64 (the approximation's error, ~1.5e-7, stays).
fn erf_f64(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let r = 1.0 - poly * (-x * x).exp();
    if x >= 0.0 {
        r
    } else {
        -r
    }
}

/// √(2/π), the scale of the tanh GELU's argument.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh GELU.
const GELU_CUBIC: f64 = 0.044_715;

/// `x·Φ(x) = x/2·(1 + erf(x/√2))`, or with `tanh` the approximation
/// `x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`; in f64, as the erf it uses.
fn gelu(x: f32, tanh: bool) -> f32 {
    let xd = f64::from(x);
    let inner = if tanh {
        (SQRT_2_OVER_PI * (xd + GELU_CUBIC * xd * xd * xd)).tanh()
    } else {
        erf_f64(xd * std::f64::consts::FRAC_1_SQRT_2)
    };
    (0.5 * xd * (1.0 + inner)) as f32
}

/// d gelu / dx: `Φ(x) + x·φ(x)`, or the derivative of the tanh form.
fn gelu_derivative(x: f32, tanh: bool) -> f32 {
    let xd = f64::from(x);
    if tanh {
        let t = (SQRT_2_OVER_PI * (xd + GELU_CUBIC * xd * xd * xd)).tanh();
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * xd * xd);
        (0.5 * (1.0 + t) + 0.5 * xd * (1.0 - t * t) * du) as f32
    } else {
        let cdf = 0.5 * (1.0 + erf_f64(xd * std::f64::consts::FRAC_1_SQRT_2));
        let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (cdf + xd * pdf) as f32
    }
}

impl Unary {
    fn bounds(&self, inputs: &[Option<&Value>]) -> Result<(f32, f32)> {
        if let Some(b) = self.attr_bounds {
            return Ok(b);
        }
        let read = |i: usize, default: f32| -> Result<f32> {
            match inputs.get(i).copied().flatten() {
                None => Ok(default),
                Some(Value::Float(t)) if t.len() == 1 => Ok(t.data()[0]),
                Some(Value::Int(t)) if t.len() == 1 => Ok(t.data()[0] as f32),
                Some(_) => Err(Error::Shape("Clip bounds must be scalars".into())),
            }
        };
        Ok((read(1, f32::NEG_INFINITY)?, read(2, f32::INFINITY)?))
    }

    fn apply(&self, x: f32, lo: f32, hi: f32) -> f32 {
        match self.kind {
            Kind::Relu => x.max(0.0),
            Kind::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Kind::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            Kind::Selu { alpha, gamma } => {
                gamma * if x > 0.0 { x } else { alpha * (x.exp() - 1.0) }
            }
            Kind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Kind::Tanh => x.tanh(),
            Kind::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Kind::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Kind::Erf => erf(x),
            Kind::Gelu { tanh } => gelu(x, tanh),
            Kind::Sqrt => x.sqrt(),
            Kind::Exp => x.exp(),
            Kind::Log => x.ln(),
            Kind::Neg => -x,
            Kind::Abs => x.abs(),
            Kind::Reciprocal => 1.0 / x,
            Kind::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            Kind::Clip => x.max(lo).min(hi),
        }
    }

    /// dy/dx at input `x` with output `y`.
    fn derivative(&self, x: f32, y: f32, lo: f32, hi: f32) -> f32 {
        match self.kind {
            Kind::Relu => (x > 0.0) as u8 as f32,
            Kind::LeakyRelu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Kind::Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    y + a
                }
            }
            Kind::Selu { alpha, gamma } => gamma * if x > 0.0 { 1.0 } else { alpha * x.exp() },
            Kind::Sigmoid => y * (1.0 - y),
            Kind::Tanh => 1.0 - y * y,
            Kind::HardSigmoid { alpha, beta } => {
                let z = alpha * x + beta;
                if z > 0.0 && z < 1.0 {
                    alpha
                } else {
                    0.0
                }
            }
            Kind::HardSwish => {
                if x < -3.0 {
                    0.0
                } else if x > 3.0 {
                    1.0
                } else {
                    (2.0 * x + 3.0) / 6.0
                }
            }
            Kind::Erf => std::f32::consts::FRAC_2_SQRT_PI * (-x * x).exp(),
            Kind::Gelu { tanh } => gelu_derivative(x, tanh),
            Kind::Sqrt => 0.5 / y,
            Kind::Exp => y,
            Kind::Log => 1.0 / x,
            Kind::Neg => -1.0,
            Kind::Abs => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Kind::Reciprocal => -y * y,
            Kind::Softplus => 1.0 / (1.0 + (-x).exp()),
            // Inclusive bounds, as torch.clamp's backward.
            Kind::Clip => (x >= lo && x <= hi) as u8 as f32,
        }
    }
}

const CHUNK: usize = 1 << 14;

impl Unary {
    /// For `Relu`, and `Clip` with these (scalar) bounds: the activation as a [`Clamp`].
    pub(crate) fn clamp(&self, inputs: &[Option<&Value>]) -> Option<Clamp> {
        match self.kind {
            Kind::Relu => Some(Clamp {
                lo: 0.0,
                hi: f32::INFINITY,
            }),
            Kind::Clip => {
                let (lo, hi) = self.bounds(inputs).ok()?;
                (lo <= hi).then_some(Clamp { lo, hi })
            }
            _ => None,
        }
    }

    /// Whether it is `Relu` or `Clip`: the activations a convolution may apply in its epilogue
    /// (see [`Unary::clamp`]).
    pub(crate) fn is_relu_or_clip(&self) -> bool {
        matches!(self.kind, Kind::Relu | Kind::Clip)
    }

    /// Whether guided backpropagation treats it as a ReLU (`Relu`, `Clip`, `LeakyRelu`): only
    /// positive gradients pass back through it.
    pub(crate) fn is_rectifier(&self) -> bool {
        matches!(self.kind, Kind::Relu | Kind::Clip | Kind::LeakyRelu(_))
    }
}

impl Op for Unary {
    fn kind(&self) -> OpKind<'_> {
        OpKind::Unary(self)
    }

    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (lo, hi) = self.bounds(inputs)?;
        // Clip also runs on integer shape values in some exports.
        if let (Kind::Clip, Some(Value::Int(t))) = (self.kind, inputs.first().copied().flatten()) {
            let mut t = t.clone();
            t.data_mut()
                .iter_mut()
                .for_each(|v| *v = (*v as f32).max(lo).min(hi) as i64);
            return Ok(vec![t.into()]);
        }
        if let (Kind::Neg | Kind::Abs, Some(Value::Int(t))) =
            (self.kind, inputs.first().copied().flatten())
        {
            let mut t = t.clone();
            let neg = matches!(self.kind, Kind::Neg);
            t.data_mut()
                .iter_mut()
                // Wrapping, as NumPy: -i64::MIN and |i64::MIN| overflow (a panic in debug).
                .for_each(|v| {
                    *v = if neg {
                        v.wrapping_neg()
                    } else {
                        v.wrapping_abs()
                    }
                });
            return Ok(vec![t.into()]);
        }
        let x = float_input(inputs, 0)?;
        // The common activations get their own monomorphised loops so they vectorise; the rest
        // share one loop that matches on the kind per element.
        let out = match self.kind {
            Kind::Relu => map1(x.data(), |v| v.max(0.0)),
            Kind::Clip => map1(x.data(), |v| v.max(lo).min(hi)),
            _ => map1(x.data(), |v| self.apply(v, lo, hi)),
        };
        Ok(vec![Tensor::from_parts(x.shape().to_vec(), out).into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (lo, hi) = self.bounds(v.inputs)?;
        let (x, y, dy) = (v.input(0)?, v.output(0)?, v.grad(0)?);
        let (g, xd, yd) = (dy.data(), x.data(), y.data());
        let dx = match self.kind {
            Kind::Relu => map3(g, xd, yd, |g, xv, _| if xv > 0.0 { g } else { 0.0 }),
            Kind::Clip => map3(
                g,
                xd,
                yd,
                |g, xv, _| if xv >= lo && xv <= hi { g } else { 0.0 },
            ),
            _ => map3(g, xd, yd, |g, xv, yv| g * self.derivative(xv, yv, lo, hi)),
        };
        Ok(only_first(
            Tensor::from_parts(x.shape().to_vec(), dx),
            v.inputs.len(),
        ))
    }
}

/// `f` over every element, in parallel blocks; each block's loop is simple enough to vectorise.
fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    crate::runtime::pool::for_each_chunk_mut(&mut out, CHUNK, |c, o| {
        let x = &x[c * CHUNK..][..o.len()];
        for (o, &i) in o.iter_mut().zip(x) {
            *o = f(i);
        }
    });
    out
}

/// `f(g, x, y)` over three equally long slices, in parallel blocks.
fn map3(g: &[f32], x: &[f32], y: &[f32], f: impl Fn(f32, f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; g.len()];
    crate::runtime::pool::for_each_chunk_mut(&mut out, CHUNK, |c, o| {
        let base = c * CHUNK;
        let n = o.len();
        let (g, x, y) = (&g[base..base + n], &x[base..base + n], &y[base..base + n]);
        for i in 0..n {
            o[i] = f(g[i], x[i], y[i]);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_matches_known_values() {
        // Values of math.erf in Python.
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((super::erf(x) - want).abs() < 2e-7, "erf({x})");
        }
    }
}
