//! Ops that build or place values by index: Expand, Range, ScatterND.
//!
//! ViT exports `Expand` the class token to the batch; Swin exports build the shifted-window
//! attention mask with `Range` and `ScatterND` (the `mask[h0:h1, w0:w1] = k` assignments).
//! Expand and ScatterND pass gradients; Range makes indices.

use std::collections::HashMap;

use super::binary::{broadcast_shape, broadcast_sources};
use super::{any_input, check_size, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::tensor::{strides_of, IntTensor, Tensor, TensorOf, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Expand", |_| Ok(Box::new(Expand)));
    reg.insert("Range", |_| Ok(Box::new(RangeOp)));
    reg.insert("ScatterND", |c| {
        let add = match c.string("reduction", "none").as_str() {
            "none" => false,
            "add" => true,
            other => {
                return Err(Error::InvalidModel(format!(
                    "ScatterND with reduction '{other}' is not supported (only none and add)"
                )))
            }
        };
        Ok(Box::new(ScatterNd { add }))
    });
}

/// Sums `g` (of the broadcast shape) back onto the `shape` it was broadcast from.
fn sum_back(g: &Tensor, shape: &[usize], sources: &[usize]) -> Tensor {
    let mut acc = vec![0.0f32; shape.iter().product()];
    for (&gv, &s) in g.data().iter().zip(sources) {
        acc[s] += gv;
    }
    Tensor::from_parts(shape.to_vec(), acc)
}

/// `Expand(input, shape)`: the input broadcast (both ways, as ONNX defines it) with `shape`.
struct Expand;

impl Expand {
    fn out_shape(inputs: &[Option<&Value>]) -> Result<(Vec<usize>, Vec<usize>)> {
        let x = any_input(inputs, 0)?;
        let dims = any_input(inputs, 1)?.to_i64_vec();
        let target: Vec<usize> = dims
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| Error::Shape(format!("Expand to {dims:?}: negative dimension")))
            })
            .collect::<Result<_>>()?;
        let out = broadcast_shape(x.shape(), &target)?;
        let sources = broadcast_sources(x.shape(), &out)?;
        Ok((out, sources))
    }
}

fn gather<T: Copy>(data: &[T], sources: &[usize]) -> Vec<T> {
    sources.iter().map(|&s| data[s]).collect()
}

impl Op for Expand {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (out, src) = Expand::out_shape(inputs)?;
        Ok(vec![match any_input(inputs, 0)? {
            Value::Float(t) => Tensor::from_parts(out, gather(t.data(), &src)).into(),
            Value::Int(t) => IntTensor::from_parts(out, gather(t.data(), &src)).into(),
        }])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (_, src) = Expand::out_shape(v.inputs)?;
        let x = v.input(0)?;
        Ok(vec![Some(sum_back(v.grad(0)?, x.shape(), &src)), None])
    }
}

/// `Range(start, limit, delta)`: `start, start + delta, …` up to (not including) `limit`.
struct RangeOp;

impl Op for RangeOp {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let scalar = |i: usize| -> Result<&Value> {
            let v = any_input(inputs, i)?;
            if v.shape().iter().product::<usize>() != 1 {
                return Err(Error::Shape(format!(
                    "Range input {i} must be a scalar, got shape {:?}",
                    v.shape()
                )));
            }
            Ok(v)
        };
        let (s, l, d) = (scalar(0)?, scalar(1)?, scalar(2)?);
        if let (Value::Int(s), Value::Int(l), Value::Int(d)) = (s, l, d) {
            let (s, l, d) = (s.data()[0], l.data()[0], d.data()[0]);
            if d == 0 {
                return Err(Error::Shape("Range with a zero step".into()));
            }
            // ceil((l − s) / d), clamped at 0, in i128 so extreme bounds cannot overflow.
            let span = l as i128 - s as i128;
            let n = ((span + d as i128 - d.signum() as i128) / d as i128).max(0);
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            check_size(&[n], "Range")?;
            let data = (0..n as i64).map(|k| s + k * d).collect();
            return Ok(vec![IntTensor::from_parts(vec![n], data).into()]);
        }
        let f = |v: &Value| v.to_i64_vec()[0] as f64;
        let as_f = |v: &Value| match v {
            Value::Float(t) => t.data()[0] as f64,
            Value::Int(_) => f(v),
        };
        let (s, l, d) = (as_f(s), as_f(l), as_f(d));
        if d == 0.0 || !(s.is_finite() && l.is_finite() && d.is_finite()) {
            return Err(Error::Shape(format!(
                "Range({s}, {l}, {d}) has no finite length"
            )));
        }
        let n = ((l - s) / d).ceil().max(0.0);
        let n = if n > usize::MAX as f64 {
            usize::MAX
        } else {
            n as usize
        };
        check_size(&[n], "Range")?;
        let data = (0..n).map(|k| (s + k as f64 * d) as f32).collect();
        Ok(vec![Tensor::from_parts(vec![n], data).into()])
    }
}

/// `ScatterND(data, indices, updates)`: `data` with the slices `indices` names replaced by (or,
/// with `reduction = add`, increased by) `updates`.
struct ScatterNd {
    add: bool,
}

/// Where each update slice goes: its offset in `data` (in elements) and the slice length.
struct Placement {
    offsets: Vec<usize>,
    slice: usize,
}

fn placement(data: &[usize], indices: &Value, updates: &[usize]) -> Result<Placement> {
    let idx = indices.as_int("ScatterND indices")?;
    let ishape = idx.shape();
    let Some((&k, lead)) = ishape.split_last() else {
        return Err(Error::Shape("ScatterND indices must have rank ≥ 1".into()));
    };
    if k > data.len() {
        return Err(Error::Shape(format!(
            "ScatterND index tuples of {k} into data of rank {}",
            data.len()
        )));
    }
    let want: Vec<usize> = lead.iter().chain(&data[k..]).copied().collect();
    if updates != want.as_slice() {
        return Err(Error::Shape(format!(
            "ScatterND updates of shape {updates:?}; indices {ishape:?} into data {data:?} need {want:?}"
        )));
    }
    let strides = strides_of(data);
    let slice: usize = data[k..].iter().product();
    let offsets = idx
        .data()
        .chunks(k.max(1))
        .take(lead.iter().product())
        .map(|tuple| {
            let mut off = 0;
            for (ax, &i) in tuple.iter().enumerate().take(k) {
                let d = data[ax] as i64;
                let j = if i < 0 { i + d } else { i };
                if !(0..d).contains(&j) {
                    return Err(Error::Shape(format!(
                        "ScatterND index {i} out of range for axis {ax} of size {d}"
                    )));
                }
                off += j as usize * strides[ax];
            }
            Ok(off)
        })
        .collect::<Result<Vec<usize>>>()?;
    Ok(Placement { offsets, slice })
}

fn scatter<T: Copy + Default>(
    data: &TensorOf<T>,
    updates: &TensorOf<T>,
    p: &Placement,
    combine: impl Fn(T, T) -> T,
) -> TensorOf<T> {
    let mut out = data.clone();
    let d = out.data_mut();
    for (u, &off) in updates.data().chunks(p.slice.max(1)).zip(&p.offsets) {
        for (o, &v) in d[off..off + p.slice].iter_mut().zip(u) {
            *o = combine(*o, v);
        }
    }
    out
}

impl Op for ScatterNd {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (data, indices, updates) = (
            any_input(inputs, 0)?,
            any_input(inputs, 1)?,
            any_input(inputs, 2)?,
        );
        let p = placement(data.shape(), indices, updates.shape())?;
        let add = self.add;
        Ok(vec![match (data, updates) {
            (Value::Float(d), Value::Float(u)) => {
                scatter(d, u, &p, |o, v| if add { o + v } else { v }).into()
            }
            (Value::Int(d), Value::Int(u)) => {
                scatter(d, u, &p, |o, v| if add { o.wrapping_add(v) } else { v }).into()
            }
            _ => {
                return Err(Error::Type(
                    "ScatterND of an integer and a float tensor".into(),
                ))
            }
        }])
    }

    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (data, updates, g) = (v.input(0)?, v.input(2)?, v.grad(0)?);
        let indices = any_input(v.inputs, 1)?;
        let p = placement(data.shape(), indices, updates.shape())?;
        let mut grads: Vec<Option<Tensor>> = vec![None, None, None];
        if v.needs[0] {
            // Replaced elements no longer depend on the data (a later duplicate index wins, as
            // in the forward pass, so zeroing every named slice is exact).
            let mut dd = g.clone();
            if !self.add {
                for &off in &p.offsets {
                    dd.data_mut()[off..off + p.slice].fill(0.0);
                }
            }
            grads[0] = Some(dd);
        }
        if v.needs.get(2).copied().unwrap_or(false) {
            // An update overwritten by a later duplicate index gets no gradient.
            let mut last = HashMap::new();
            for (i, &off) in p.offsets.iter().enumerate() {
                last.insert(off, i);
            }
            let mut du = vec![0.0f32; updates.len()];
            for (i, &off) in p.offsets.iter().enumerate() {
                if self.add || last[&off] == i {
                    du[i * p.slice..(i + 1) * p.slice]
                        .copy_from_slice(&g.data()[off..off + p.slice]);
                }
            }
            grads[2] = Some(Tensor::from_parts(updates.shape().to_vec(), du));
        }
        Ok(grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(shape: &[usize], d: &[i64]) -> Value {
        IntTensor::new(shape.to_vec(), d.to_vec()).unwrap().into()
    }
    fn floats(shape: &[usize], d: &[f32]) -> Value {
        Tensor::new(shape.to_vec(), d.to_vec()).unwrap().into()
    }
    fn run(op: &dyn Op, ins: &[&Value]) -> Result<Value> {
        let ins: Vec<Option<&Value>> = ins.iter().map(|v| Some(*v)).collect();
        Ok(op.forward(&ExecConfig::default(), &ins)?.remove(0))
    }

    #[test]
    fn expand_broadcasts_both_ways() {
        let x = floats(&[3, 1], &[1.0, 2.0, 3.0]);
        // Target [1, 2]: the 1 keeps the input's 3, the 2 repeats the column.
        let y = run(&Expand, &[&x, &ints(&[2], &[1, 2])]).unwrap();
        assert_eq!(y, floats(&[3, 2], &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]));
        assert!(run(&Expand, &[&x, &ints(&[2], &[2, 2])]).is_err());
        assert!(run(&Expand, &[&x, &ints(&[1], &[-1])]).is_err());
    }

    #[test]
    fn range_counts_like_numpy_arange() {
        let r = |s: i64, l: i64, d: i64| {
            run(
                &RangeOp,
                &[&ints(&[], &[s]), &ints(&[], &[l]), &ints(&[], &[d])],
            )
            .unwrap()
        };
        assert_eq!(r(0, 5, 2), ints(&[3], &[0, 2, 4]));
        assert_eq!(r(5, 0, -2), ints(&[3], &[5, 3, 1]));
        assert_eq!(r(3, 3, 1), ints(&[0], &[]));
        let f = run(
            &RangeOp,
            &[
                &floats(&[], &[0.5]),
                &floats(&[], &[2.0]),
                &floats(&[], &[0.5]),
            ],
        )
        .unwrap();
        assert_eq!(f, floats(&[3], &[0.5, 1.0, 1.5]));
        assert!(run(
            &RangeOp,
            &[&ints(&[], &[0]), &ints(&[], &[4]), &ints(&[], &[0])]
        )
        .is_err());
        let huge = run(
            &RangeOp,
            &[&ints(&[], &[0]), &ints(&[], &[i64::MAX]), &ints(&[], &[1])],
        );
        assert!(huge.is_err(), "a range past the element limit is refused");
    }

    #[test]
    fn scatter_nd_replaces_slices() {
        let data = floats(&[3, 2], &[0.0; 6]);
        let idx = ints(&[2, 1], &[2, -3]);
        let upd = floats(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let y = run(&ScatterNd { add: false }, &[&data, &idx, &upd]).unwrap();
        assert_eq!(y, floats(&[3, 2], &[3.0, 4.0, 0.0, 0.0, 1.0, 2.0]));
        let out_of_range = ints(&[2, 1], &[3, 0]);
        assert!(run(&ScatterNd { add: false }, &[&data, &out_of_range, &upd]).is_err());
        let wrong_updates = floats(&[2], &[1.0, 2.0]);
        assert!(run(&ScatterNd { add: false }, &[&data, &idx, &wrong_updates]).is_err());
    }
}
