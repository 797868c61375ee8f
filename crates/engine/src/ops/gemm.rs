//! Gemm: `alpha·op(A)·op(B) + beta·C` with optional transposes and a broadcast `C`.

use std::collections::HashMap;

use super::binary::broadcast_map;
use super::{check_size, float_input, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::kernels::gemm::{dot, dot4, matmul, Mat};
use crate::tensor::{Tensor, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Gemm", |c| {
        Ok(Box::new(Gemm {
            alpha: c.float("alpha", 1.0),
            beta: c.float("beta", 1.0),
            trans_a: c.int("transA", 0) != 0,
            trans_b: c.int("transB", 0) != 0,
        }))
    });
}

struct Gemm {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
}

impl Gemm {
    /// `(m, k, n, view of A as m×k, view of B as k×n)`.
    fn views(&self, a: &Tensor, b: &Tensor) -> Result<(usize, usize, usize, Mat, Mat)> {
        let (&[ar, ac], &[br, bc]) = (a.shape(), b.shape()) else {
            return Err(Error::Shape(format!(
                "Gemm needs 2-D inputs, got {:?} and {:?}",
                a.shape(),
                b.shape()
            )));
        };
        let am = if self.trans_a {
            Mat::row_major(ar, ac).t()
        } else {
            Mat::row_major(ar, ac)
        };
        let bm = if self.trans_b {
            Mat::row_major(br, bc).t()
        } else {
            Mat::row_major(br, bc)
        };
        if am.cols != bm.rows {
            return Err(Error::Shape(format!(
                "Gemm of {:?} and {:?}: inner sizes {} and {} differ (a layer after a Flatten needs the model's declared input size)",
                a.shape(),
                b.shape(),
                am.cols,
                bm.rows
            )));
        }
        check_size(&[am.rows, bm.cols], "Gemm")?;
        Ok((am.rows, am.cols, bm.cols, am, bm))
    }
}

impl Op for Gemm {
    fn forward(&self, config: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (a, b) = (float_input(inputs, 0)?, float_input(inputs, 1)?);
        let (m, k, n, am, bm) = self.views(a, b)?;
        let mut out = vec![0.0f32; m * n];
        if m <= 4 && self.trans_b && !self.trans_a {
            // A classifier head at batch 1: one dot product per output, rows of B (as stored)
            // split over the threads. The GEMM ran it on one thread, repacking all of B
            // (EfficientNet-Lite0's 1000 × 1280 head: 0.55 ms, onnxruntime 0.33 ms). At batch 1
            // four rows at a time: four streams of weights in flight (that head's node 165–197
            // → 126–157 µs on two threads, AVX2).
            let (ad, bd) = (a.data(), b.data());
            crate::runtime::pool::for_each_chunk_mut(&mut out, 64, |c, o| {
                // Chunks of 64 outputs; a row of n outputs may end inside one.
                let first = c * 64;
                let quads = if m == 1 { o.len() / 4 } else { 0 };
                let (by_four, rest) = o.split_at_mut(4 * quads);
                for (q, v) in by_four.chunks_exact_mut(4).enumerate() {
                    let r = first + 4 * q;
                    let v: &mut [f32; 4] = v.try_into().expect("chunks of 4");
                    dot4(config.isa, &ad[..k], &bd[r * k..(r + 4) * k], v);
                }
                for (at, v) in (first + 4 * quads..).zip(rest) {
                    let (i, r) = (at / n, at % n);
                    *v = dot(config.isa, &ad[i * k..(i + 1) * k], &bd[r * k..(r + 1) * k]);
                }
            });
        } else {
            matmul(
                a.data(),
                am,
                b.data(),
                bm,
                &mut out,
                Mat::row_major(m, n),
                false,
                0,
            );
        }
        if self.alpha != 1.0 {
            out.iter_mut().for_each(|v| *v *= self.alpha);
        }
        let mut y = Tensor::from_parts(vec![m, n], out);
        if let Some(c) = inputs.get(2).copied().flatten() {
            let c = c.as_float("C")?;
            let beta = self.beta;
            y = broadcast_map(&y, c, |p, q| p + beta * q)?;
            if y.shape() != [m, n] {
                return Err(Error::Shape(format!(
                    "Gemm bias {:?} does not broadcast to [{m}, {n}]",
                    c.shape()
                )));
            }
        }
        Ok(vec![y.into()])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (a, b, g) = (v.input(0)?, v.input(1)?, v.grad(0)?);
        let (m, k, n, am, bm) = self.views(a, b)?;
        let mut grads: Vec<Option<Tensor>> = v.inputs.iter().map(|_| None).collect();
        let scale = |mut t: Vec<f32>| {
            if self.alpha != 1.0 {
                t.iter_mut().for_each(|x| *x *= self.alpha);
            }
            t
        };
        if v.needs[0] {
            // d op(A) = g·op(B)ᵀ, laid out as A is stored.
            let mut da = vec![0.0f32; a.len()];
            let dm = if self.trans_a {
                Mat::row_major(k, m).t()
            } else {
                Mat::row_major(m, k)
            };
            matmul(
                g.data(),
                Mat::row_major(m, n),
                b.data(),
                bm.t(),
                &mut da,
                dm,
                false,
                0,
            );
            grads[0] = Some(Tensor::from_parts(a.shape().to_vec(), scale(da)));
        }
        if v.needs[1] {
            let mut db = vec![0.0f32; b.len()];
            let dm = if self.trans_b {
                Mat::row_major(n, k).t()
            } else {
                Mat::row_major(k, n)
            };
            matmul(
                a.data(),
                am.t(),
                g.data(),
                Mat::row_major(m, n),
                &mut db,
                dm,
                false,
                0,
            );
            grads[1] = Some(Tensor::from_parts(b.shape().to_vec(), scale(db)));
        }
        if v.needs.get(2).copied().unwrap_or(false) {
            return Err(Error::NotDifferentiable("Gemm with respect to C".into()));
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[Option<&Value>], _outputs: &[&Value]) -> u64 {
        match (float_input(inputs, 0), float_input(inputs, 1)) {
            (Ok(a), Ok(b)) => self
                .views(a, b)
                .map_or(0, |(m, k, n, ..)| 2 * (m * k * n) as u64),
            _ => 0,
        }
    }
}
