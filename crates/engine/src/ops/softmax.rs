//! Softmax and LogSoftmax along one axis (opset ≥ 13 semantics; older opsets flatten from `axis`).

use std::collections::HashMap;

use super::{float_input, norm_axis, only_first, Builder, ExecConfig, Op, Vjp};
use crate::error::Result;
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Softmax", |c| {
        Ok(Box::new(Softmax {
            log: false,
            axis: c.int("axis", if c.opset >= 13 { -1 } else { 1 }),
            legacy: c.opset < 13,
        }))
    });
    reg.insert("LogSoftmax", |c| {
        Ok(Box::new(Softmax {
            log: true,
            axis: c.int("axis", if c.opset >= 13 { -1 } else { 1 }),
            legacy: c.opset < 13,
        }))
    });
}

struct Softmax {
    log: bool,
    axis: i64,
    legacy: bool,
}

impl Softmax {
    /// `(outer, len, inner)`: the axis has `len` elements spaced `inner` apart.
    fn layout(&self, shape: &[usize]) -> Result<(usize, usize, usize)> {
        let a = norm_axis(self.axis, shape.len())?;
        let outer: usize = shape[..a].iter().product();
        if self.legacy {
            // Before opset 13 the input is coerced to 2-D at `axis`.
            return Ok((outer, shape[a..].iter().product(), 1));
        }
        Ok((outer, shape[a], shape[a + 1..].iter().product()))
    }
}

impl Op for Softmax {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        if x.rank() == 0 {
            return Ok(vec![Tensor::scalar(if self.log { 0.0 } else { 1.0 }).into()]);
        }
        let (outer, len, inner) = self.layout(x.shape())?;
        let mut y = x.clone();
        let d = y.data_mut();
        for o in 0..outer {
            for i in 0..inner {
                let idx = |j: usize| (o * len + j) * inner + i;
                let max = (0..len)
                    .map(|j| d[idx(j)])
                    .fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = (0..len).map(|j| (d[idx(j)] - max).exp()).sum();
                let lse = max + sum.ln();
                for j in 0..len {
                    let v = d[idx(j)] - lse;
                    d[idx(j)] = if self.log { v } else { v.exp() };
                }
            }
        }
        Ok(vec![y.into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (y, g) = (v.output(0)?, v.grad(0)?);
        let mut dx = g.clone();
        if y.rank() == 0 {
            dx.data_mut()[0] = 0.0;
            return Ok(only_first(dx, v.inputs.len()));
        }
        let (outer, len, inner) = self.layout(y.shape())?;
        let (yd, gd) = (y.data(), g.data());
        let d = dx.data_mut();
        for o in 0..outer {
            for i in 0..inner {
                let idx = |j: usize| (o * len + j) * inner + i;
                if self.log {
                    // d x_j = g_j − softmax_j · Σ g
                    let s: f32 = (0..len).map(|j| gd[idx(j)]).sum();
                    for j in 0..len {
                        d[idx(j)] = gd[idx(j)] - yd[idx(j)].exp() * s;
                    }
                } else {
                    // d x_j = y_j · (g_j − Σ g·y)
                    let s: f32 = (0..len).map(|j| gd[idx(j)] * yd[idx(j)]).sum();
                    for j in 0..len {
                        d[idx(j)] = yd[idx(j)] * (gd[idx(j)] - s);
                    }
                }
            }
        }
        Ok(only_first(dx, v.inputs.len()))
    }
}
