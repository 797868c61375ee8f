//! LayerNormalization (opset 17): each row of the trailing axes `axis..` normalised to zero mean
//! and unit variance, then scaled and shifted. ConvNeXt, ViT and Swin exports use it on the
//! channel axis of `[N, H, W, C]` or `[N, tokens, C]`.

use std::collections::HashMap;

use super::{float_input, norm_axis, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::runtime::pool::for_each_chunk_mut;
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("LayerNormalization", |c| {
        // The optional Mean and InvStdDev outputs are training-time statistics; no exporter
        // of an inference graph asks for them, and refusing is clearer than a wrong shape.
        if c.node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(Error::InvalidModel(
                "LayerNormalization with Mean/InvStdDev outputs is not supported".into(),
            ));
        }
        Ok(Box::new(LayerNorm {
            axis: c.int("axis", -1),
            epsilon: c.float("epsilon", 1e-5),
        }))
    });
}

struct LayerNorm {
    axis: i64,
    epsilon: f32,
}

/// The normalised rows of `x` and the per-element scale and shift, expanded to a row's length.
struct Rows {
    /// Number of elements normalised together (the product of the axes from `axis`).
    len: usize,
    scale: Vec<f32>,
    shift: Option<Vec<f32>>,
}

impl LayerNorm {
    fn rows(&self, inputs: &[Option<&Value>]) -> Result<Rows> {
        let x = float_input(inputs, 0)?;
        let axis = norm_axis(self.axis, x.rank())?;
        let tail = &x.shape()[axis..];
        let len: usize = tail.iter().product();
        let scale = expand_to_row(float_input(inputs, 1)?, tail, "Scale")?;
        let shift = match inputs.get(2).copied().flatten() {
            Some(b) => Some(expand_to_row(b.as_float("B")?, tail, "B")?),
            None => None,
        };
        Ok(Rows { len, scale, shift })
    }
}

/// A parameter broadcast (unidirectionally, NumPy style) to the normalised axes `tail`, as one
/// row of `tail`'s element count.
fn expand_to_row(p: &Tensor, tail: &[usize], what: &str) -> Result<Vec<f32>> {
    let len: usize = tail.iter().product();
    if p.shape() == tail || (p.len() == len && p.rank() <= tail.len()) {
        return Ok(p.data().to_vec());
    }
    let fits = p.rank() <= tail.len()
        && p.shape()
            .iter()
            .rev()
            .zip(tail.iter().rev())
            .all(|(&d, &t)| d == t || d == 1);
    if !fits {
        return Err(Error::Shape(format!(
            "LayerNormalization {what} of shape {:?} does not broadcast to the normalised axes {tail:?}",
            p.shape()
        )));
    }
    let ps = crate::tensor::strides_of(p.shape());
    let off = tail.len() - p.rank();
    let ts = crate::tensor::strides_of(tail);
    Ok((0..len)
        .map(|i| {
            let mut src = 0;
            for ax in off..tail.len() {
                let idx = (i / ts[ax]) % tail[ax];
                if p.shape()[ax - off] != 1 {
                    src += idx * ps[ax - off];
                }
            }
            p.data()[src]
        })
        .collect())
}

/// Mean and `1/√(var + ε)` of one row (in f64, so long rows of large values keep their digits).
fn moments(row: &[f32], epsilon: f32) -> (f32, f32) {
    let n = row.len().max(1) as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / (var + epsilon as f64).sqrt()) as f32)
}

impl Op for LayerNorm {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let r = self.rows(inputs)?;
        let mut y = x.clone();
        if r.len == 0 {
            return Ok(vec![y.into()]);
        }
        let eps = self.epsilon;
        for_each_chunk_mut(y.data_mut(), r.len, |_, row| {
            let (mean, inv) = moments(row, eps);
            match &r.shift {
                Some(b) => {
                    for ((v, &s), &b) in row.iter_mut().zip(&r.scale).zip(b) {
                        *v = (*v - mean) * inv * s + b;
                    }
                }
                None => {
                    for (v, &s) in row.iter_mut().zip(&r.scale) {
                        *v = (*v - mean) * inv * s;
                    }
                }
            }
        });
        Ok(vec![y.into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (x, g) = (v.input(0)?, v.grad(0)?);
        let r = self.rows(v.inputs)?;
        let mut grads: Vec<Option<Tensor>> = vec![None; v.inputs.len()];
        if r.len == 0 {
            return Ok(grads);
        }
        let eps = self.epsilon;
        if v.needs[0] {
            // With x̂ = (x − μ)·inv and g' = g·scale:
            // dx = inv · (g' − mean(g') − x̂ · mean(g'·x̂)).
            let mut dx = Tensor::zeros(x.shape());
            let (xd, gd) = (x.data(), g.data());
            for_each_chunk_mut(dx.data_mut(), r.len, |i, out| {
                let xr = &xd[i * r.len..][..r.len];
                let gr = &gd[i * r.len..][..r.len];
                let (mean, inv) = moments(xr, eps);
                let n = r.len as f32;
                let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                for ((&xv, &gv), &s) in xr.iter().zip(gr).zip(&r.scale) {
                    let gs = gv * s;
                    sum_g += gs;
                    sum_gx += gs * (xv - mean) * inv;
                }
                let (mg, mgx) = (sum_g / n, sum_gx / n);
                for (((o, &xv), &gv), &s) in out.iter_mut().zip(xr).zip(gr).zip(&r.scale) {
                    let xhat = (xv - mean) * inv;
                    *o = inv * (gv * s - mg - xhat * mgx);
                }
            });
            grads[0] = Some(dx);
        }
        let wants_params = v.needs.iter().skip(1).any(|&n| n);
        if wants_params {
            // Scale and B are weights; a gradient for them is only formed when they have the
            // normalised axes' own shape (no broadcast to undo).
            let tail_len = r.len;
            let (xd, gd) = (x.data(), g.data());
            let mut dscale = vec![0.0f32; tail_len];
            let mut dshift = vec![0.0f32; tail_len];
            for (xr, gr) in xd.chunks(tail_len).zip(gd.chunks(tail_len)) {
                let (mean, inv) = moments(xr, eps);
                for j in 0..tail_len {
                    dscale[j] += gr[j] * (xr[j] - mean) * inv;
                    dshift[j] += gr[j];
                }
            }
            for (k, d) in [(1usize, dscale), (2, dshift)] {
                if !v.needs.get(k).copied().unwrap_or(false) {
                    continue;
                }
                let p = v.input(k)?;
                if p.len() != tail_len {
                    return Err(Error::NotDifferentiable(
                        "a broadcast LayerNormalization parameter".into(),
                    ));
                }
                grads[k] = Some(Tensor::from_parts(p.shape().to_vec(), d));
            }
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[Option<&Value>], _outputs: &[&Value]) -> u64 {
        float_input(inputs, 0).map_or(0, |x| 4 * x.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x: Tensor, scale: Tensor, b: Option<Tensor>, axis: i64) -> Tensor {
        let op = LayerNorm {
            axis,
            epsilon: 1e-5,
        };
        let (xv, sv) = (Value::Float(x), Value::Float(scale));
        let bv = b.map(Value::Float);
        let ins = [Some(&xv), Some(&sv), bv.as_ref()];
        let mut out = op.forward(&ExecConfig::default(), &ins).unwrap();
        match out.remove(0) {
            Value::Float(t) => t,
            Value::Int(_) => panic!("float expected"),
        }
    }

    #[test]
    fn normalises_each_row_over_the_trailing_axes() {
        let x = Tensor::new(vec![2, 4], vec![1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 14.0]).unwrap();
        let y = run(
            x,
            Tensor::full(&[4], 2.0),
            Some(Tensor::full(&[4], 1.0)),
            -1,
        );
        // Row 1: mean 2.5, var 1.25 → (x − 2.5)/√1.25 · 2 + 1.
        let k = 2.0 / (1.25f32 + 1e-5).sqrt();
        let want0 = [-1.5 * k + 1.0, -0.5 * k + 1.0, 0.5 * k + 1.0, 1.5 * k + 1.0];
        for (g, w) in y.data()[..4].iter().zip(want0) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        // Row 2 has its own statistics (mean 11, var 3).
        let k2 = 2.0 / (3.0f32 + 1e-5).sqrt();
        assert!((y.data()[7] - (3.0 * k2 + 1.0)).abs() < 1e-5);
    }

    #[test]
    fn axis_one_normalises_everything_after_the_batch() {
        let x = Tensor::new(vec![1, 2, 2], vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        // Scale of shape [2] broadcasts over the last axis of the [2, 2] tail.
        let y = run(x, Tensor::new(vec![2], vec![1.0, -1.0]).unwrap(), None, 1);
        let inv = 1.0 / (1.25f32 + 1e-5).sqrt();
        let want = [-1.5 * inv, 0.5 * inv, 0.5 * inv, -1.5 * inv];
        for (g, w) in y.data().iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn a_scale_that_does_not_fit_is_an_error() {
        let op = LayerNorm {
            axis: -1,
            epsilon: 1e-5,
        };
        let x = Value::Float(Tensor::zeros(&[2, 4]));
        let s = Value::Float(Tensor::zeros(&[3]));
        let e = op.forward(&ExecConfig::default(), &[Some(&x), Some(&s)]);
        assert!(e.is_err());
    }
}
