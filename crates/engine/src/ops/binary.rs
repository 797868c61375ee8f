//! Element-wise binary ops with NumPy broadcasting: Add, Sub, Mul, Div, Pow, PRelu, Max, Min, Mod.

use std::collections::HashMap;

use super::{any_input, check_size, Builder, ExecConfig, Op, OpKind, Vjp};
use crate::error::{Error, Result};
use crate::tensor::{strides_of, Tensor, TensorOf, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    PRelu,
    Max,
    Min,
    /// `fmod`: the remainder takes the dividend's sign (C `fmod`) rather than the divisor's
    /// (Python `%`, what PyTorch exports for integer shape arithmetic).
    Mod {
        fmod: bool,
    },
}

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Add", |_| Ok(Box::new(Binary(Kind::Add))));
    reg.insert("Sub", |_| Ok(Box::new(Binary(Kind::Sub))));
    reg.insert("Mul", |_| Ok(Box::new(Binary(Kind::Mul))));
    reg.insert("Div", |_| Ok(Box::new(Binary(Kind::Div))));
    reg.insert("Pow", |_| Ok(Box::new(Binary(Kind::Pow))));
    reg.insert("PRelu", |_| Ok(Box::new(Binary(Kind::PRelu))));
    reg.insert("Max", |c| two_inputs(c.node.input.len(), Kind::Max));
    reg.insert("Min", |c| two_inputs(c.node.input.len(), Kind::Min));
    reg.insert("Mod", |c| {
        Ok(Box::new(Binary(Kind::Mod {
            fmod: c.int("fmod", 0) != 0,
        })))
    });
}

fn two_inputs(n: usize, kind: Kind) -> Result<Box<dyn Op>> {
    if n != 2 {
        return Err(Error::InvalidModel(format!(
            "{kind:?} with {n} inputs is not supported (only 2)"
        )));
    }
    Ok(Box::new(Binary(kind)))
}

/// The NumPy broadcast of two shapes.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(Error::Shape(format!("cannot broadcast {a:?} with {b:?}"))),
        };
    }
    // A small value broadcast against a large constant can still ask for an absurd result.
    check_size(&out, "broadcast")?;
    Ok(out)
}

/// Strides of `shape` read as `out` (0 on broadcast axes).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides_of(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                s[i - off]
            }
        })
        .collect()
}

/// Calls `f(out_index, a_index, b_index)` for every element of the broadcast output, in order.
fn for_each_broadcast(
    out: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let n: usize = out.iter().product();
    if n == 0 {
        return;
    }
    let r = out.len();
    if r == 0 {
        f(0, 0, 0);
        return;
    }
    let inner = out[r - 1];
    let (ia, ib) = (sa[r - 1], sb[r - 1]);
    let mut idx = vec![0usize; r];
    let (mut oa, mut ob) = (0usize, 0usize);
    let mut o = 0;
    while o < n {
        for k in 0..inner {
            f(o + k, oa + k * ia, ob + k * ib);
        }
        o += inner;
        // Advance the outer index (odometer), updating offsets incrementally.
        let mut ax = r - 1;
        while ax > 0 {
            ax -= 1;
            idx[ax] += 1;
            oa += sa[ax];
            ob += sb[ax];
            if idx[ax] < out[ax] {
                break;
            }
            oa -= sa[ax] * out[ax];
            ob -= sb[ax] * out[ax];
            idx[ax] = 0;
        }
    }
}

/// Broadcasting map of two tensors.
pub(crate) fn broadcast_map<T: Copy + Default>(
    a: &TensorOf<T>,
    b: &TensorOf<T>,
    f: impl Fn(T, T) -> T,
) -> Result<TensorOf<T>> {
    if a.shape() == b.shape() {
        let data = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(&x, &y)| f(x, y))
            .collect();
        return Ok(TensorOf::from_parts(a.shape().to_vec(), data));
    }
    let out = broadcast_shape(a.shape(), b.shape())?;
    let (sa, sb) = (
        broadcast_strides(a.shape(), &out),
        broadcast_strides(b.shape(), &out),
    );
    let mut data = vec![T::default(); out.iter().product()];
    let (ad, bd) = (a.data(), b.data());
    for_each_broadcast(&out, &sa, &sb, |o, i, j| data[o] = f(ad[i], bd[j]));
    Ok(TensorOf::from_parts(out, data))
}

/// Broadcasting map of two tensors of possibly different element types (comparisons: two
/// floats or two integers to a boolean, held as 0/1 integers).
pub(crate) fn broadcast_zip<A: Copy + Default, B: Copy + Default, O: Copy + Default>(
    a: &TensorOf<A>,
    b: &TensorOf<B>,
    f: impl Fn(A, B) -> O,
) -> Result<TensorOf<O>> {
    let out = broadcast_shape(a.shape(), b.shape())?;
    let (sa, sb) = (
        broadcast_strides(a.shape(), &out),
        broadcast_strides(b.shape(), &out),
    );
    let mut data = vec![O::default(); out.iter().product()];
    let (ad, bd) = (a.data(), b.data());
    for_each_broadcast(&out, &sa, &sb, |o, i, j| data[o] = f(ad[i], bd[j]));
    Ok(TensorOf::from_parts(out, data))
}

/// For every element of `out` (a shape `shape` broadcasts to), the index of the element of a
/// `shape` tensor it reads: what Where and Expand gather through, and scatter-add back along.
pub(crate) fn broadcast_sources(shape: &[usize], out: &[usize]) -> Result<Vec<usize>> {
    if out.len() < shape.len() || broadcast_shape(shape, out)? != out {
        return Err(Error::Shape(format!(
            "{shape:?} does not broadcast to {out:?}"
        )));
    }
    let s = broadcast_strides(shape, out);
    let mut src = vec![0usize; out.iter().product()];
    for_each_broadcast(out, &s, &s, |o, i, _| src[o] = i);
    Ok(src)
}

/// Sums a gradient of the broadcast shape back to `shape`, weighting element `o` by `w(o, a_idx, b_idx)`.
fn reduce_to(
    g: &Tensor,
    shape: &[usize],
    other: &[usize],
    first: bool,
    w: impl Fn(usize, usize, usize) -> f32,
) -> Tensor {
    let out = g.shape();
    let (sa, sb) = if first {
        (broadcast_strides(shape, out), broadcast_strides(other, out))
    } else {
        (broadcast_strides(other, out), broadcast_strides(shape, out))
    };
    let mut acc = vec![0.0f32; shape.iter().product()];
    let gd = g.data();
    for_each_broadcast(out, &sa, &sb, |o, i, j| {
        let t = if first { i } else { j };
        acc[t] += gd[o] * w(o, i, j);
    });
    Tensor::from_parts(shape.to_vec(), acc)
}

struct Binary(Kind);

impl Binary {
    fn f32(&self, x: f32, y: f32) -> f32 {
        match self.0 {
            Kind::Add => x + y,
            Kind::Sub => x - y,
            Kind::Mul => x * y,
            Kind::Div => x / y,
            Kind::Pow => {
                if y == 2.0 {
                    x * x
                } else {
                    x.powf(y)
                }
            }
            Kind::PRelu => {
                if x < 0.0 {
                    x * y
                } else {
                    x
                }
            }
            Kind::Max => x.max(y),
            Kind::Min => x.min(y),
            Kind::Mod { fmod } => x - mod_quotient_f32(x, y, fmod) * y,
        }
    }

    fn i64(&self, x: i64, y: i64) -> i64 {
        match self.0 {
            Kind::Add => x.wrapping_add(y),
            Kind::Sub => x.wrapping_sub(y),
            Kind::Mul => x.wrapping_mul(y),
            Kind::Div => x.checked_div(y).unwrap_or(0),
            Kind::Pow => x.checked_pow(y.clamp(0, 62) as u32).unwrap_or(i64::MAX),
            Kind::PRelu => {
                if x < 0 {
                    x.wrapping_mul(y)
                } else {
                    x
                }
            }
            Kind::Max => x.max(y),
            Kind::Min => x.min(y),
            Kind::Mod { fmod } => match x.checked_rem(y) {
                // A zero divisor gives 0 rather than a panic (the result is undefined in ONNX).
                None => 0,
                Some(r) if !fmod && r != 0 && (r < 0) != (y < 0) => r + y,
                Some(r) => r,
            },
        }
    }
}

/// The quotient a float `Mod` subtracts: truncated for `fmod`, floored otherwise.
fn mod_quotient_f32(x: f32, y: f32, fmod: bool) -> f32 {
    let q = x / y;
    if fmod {
        q.trunc()
    } else {
        q.floor()
    }
}

impl Op for Binary {
    fn kind(&self) -> OpKind<'_> {
        match self.0 {
            Kind::Add => OpKind::Add,
            _ => OpKind::Other,
        }
    }

    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (a, b) = (any_input(inputs, 0)?, any_input(inputs, 1)?);
        if self.0 == Kind::PRelu {
            // The slope broadcasts to the input, never the other way.
            let (x, s) = (a.as_float("PRelu input")?, b.as_float("PRelu slope")?);
            if broadcast_shape(x.shape(), s.shape())? != x.shape() {
                return Err(Error::Shape(format!(
                    "PRelu slope {:?} does not broadcast to {:?}",
                    s.shape(),
                    x.shape()
                )));
            }
        }
        let out: Value = match (a, b) {
            // The four arithmetic kinds get their own closures: with the kind matched per
            // element the loop did not vectorise (EfficientNet's 56×56×24 residual Add: 119 µs).
            (Value::Float(x), Value::Float(y)) => match self.0 {
                Kind::Add => broadcast_map(x, y, |p, q| p + q)?,
                Kind::Sub => broadcast_map(x, y, |p, q| p - q)?,
                Kind::Mul => broadcast_map(x, y, |p, q| p * q)?,
                Kind::Div => broadcast_map(x, y, |p, q| p / q)?,
                _ => broadcast_map(x, y, |p, q| self.f32(p, q))?,
            }
            .into(),
            (Value::Int(x), Value::Int(y)) => broadcast_map(x, y, |p, q| self.i64(p, q))?.into(),
            (Value::Float(x), Value::Int(y)) => {
                let y = Tensor::from_parts(
                    y.shape().to_vec(),
                    y.data().iter().map(|&v| v as f32).collect(),
                );
                broadcast_map(x, &y, |p, q| self.f32(p, q))?.into()
            }
            (Value::Int(_), Value::Float(_)) => {
                return Err(Error::Type(format!(
                    "{:?} of an integer and a float tensor",
                    self.0
                )))
            }
        };
        Ok(vec![out])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (v.input(0)?, v.input(1)?);
        let (g, y) = (v.grad(0)?, v.output(0)?);
        let (ad, bd, yd) = (a.data(), b.data(), y.data());
        let mut grads: Vec<Option<Tensor>> = vec![None, None];
        let same = a.shape() == b.shape();
        for (which, need) in v.needs.iter().enumerate().take(2) {
            if !*need {
                continue;
            }
            let first = which == 0;
            let (shape, other) = if first {
                (a.shape(), b.shape())
            } else {
                (b.shape(), a.shape())
            };
            // Fast path: same shapes and a constant local derivative.
            if same && matches!((self.0, first), (Kind::Add, _) | (Kind::Sub, true)) {
                grads[which] = Some(g.clone());
                continue;
            }
            let k = self.0;
            let local = move |o: usize, i: usize, j: usize| -> f32 {
                let (x, z) = (ad[i], bd[j]);
                match (k, first) {
                    (Kind::Add, _) => 1.0,
                    (Kind::Sub, true) => 1.0,
                    (Kind::Sub, false) => -1.0,
                    (Kind::Mul, true) => z,
                    (Kind::Mul, false) => x,
                    (Kind::Div, true) => 1.0 / z,
                    (Kind::Div, false) => -x / (z * z),
                    (Kind::Pow, true) => {
                        if z == 2.0 {
                            2.0 * x
                        } else {
                            z * x.powf(z - 1.0)
                        }
                    }
                    (Kind::Pow, false) => yd[o] * x.ln(),
                    (Kind::PRelu, true) => {
                        if x < 0.0 {
                            z
                        } else {
                            1.0
                        }
                    }
                    (Kind::PRelu, false) => {
                        if x < 0.0 {
                            x
                        } else {
                            0.0
                        }
                    }
                    // The gradient goes to the input that was chosen (the first one on ties).
                    (Kind::Max, true) => (x >= z) as u8 as f32,
                    (Kind::Max, false) => (z > x) as u8 as f32,
                    (Kind::Min, true) => (x <= z) as u8 as f32,
                    (Kind::Min, false) => (z < x) as u8 as f32,
                    // x − q·y with q piecewise constant.
                    (Kind::Mod { .. }, true) => 1.0,
                    (Kind::Mod { fmod }, false) => -mod_quotient_f32(x, z, fmod),
                }
            };
            grads[which] = Some(reduce_to(g, shape, other, first, local));
        }
        Ok(grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_mod_follows_the_divisor_sign_unless_fmod() {
        let python = Binary(Kind::Mod { fmod: false });
        let c = Binary(Kind::Mod { fmod: true });
        assert_eq!(
            [
                python.i64(7, 3),
                python.i64(-7, 3),
                python.i64(7, -3),
                python.i64(5, 0)
            ],
            [1, 2, -2, 0]
        );
        assert_eq!([c.i64(7, 3), c.i64(-7, 3), c.i64(7, -3)], [1, -1, 1]);
        assert_eq!(c.f32(-7.5, 2.0), -1.5);
        assert_eq!(python.f32(-7.5, 2.0), 0.5);
    }

    #[test]
    fn broadcast_add_bias() {
        let a = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let b = Tensor::new(vec![3], vec![10.0, 20.0, 30.0]).unwrap();
        let c = broadcast_map(&a, &b, |x, y| x + y).unwrap();
        assert_eq!(c.data(), &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
        let col = Tensor::new(vec![2, 1], vec![100.0, 200.0]).unwrap();
        let d = broadcast_map(&a, &col, |x, y| x + y).unwrap();
        assert_eq!(d.data(), &[101.0, 102.0, 103.0, 204.0, 205.0, 206.0]);
        assert!(broadcast_shape(&[2, 3], &[4]).is_err());
    }
}
