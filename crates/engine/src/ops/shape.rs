//! Data-movement and shape ops. They work on float and integer values alike, so that the shape
//! subgraphs exporters emit (Shape → Gather → Concat → Reshape) run like any other node.

use std::collections::HashMap;

use convscope_onnx::data_type;

use super::{any_input, check_size, norm_axis, only_first, BuildCtx, Builder, ExecConfig, Op, Vjp};
use crate::error::{Error, Result};
use crate::tensor::{strides_of, value_from_proto, IntTensor, Tensor, TensorOf, Value};

pub(crate) fn register(reg: &mut HashMap<&'static str, Builder>) {
    reg.insert("Reshape", |c| {
        Ok(Box::new(Reshape {
            allowzero: c.int("allowzero", 0) != 0,
        }))
    });
    reg.insert("Flatten", |c| {
        Ok(Box::new(Flatten {
            axis: c.int("axis", 1),
        }))
    });
    reg.insert("Transpose", |c| {
        Ok(Box::new(Transpose {
            perm: c.ints("perm"),
        }))
    });
    reg.insert("Squeeze", |c| {
        Ok(Box::new(Squeeze {
            axes: c.ints("axes"),
            unsqueeze: false,
        }))
    });
    reg.insert("Unsqueeze", |c| {
        Ok(Box::new(Squeeze {
            axes: c.ints("axes"),
            unsqueeze: true,
        }))
    });
    reg.insert("Concat", |c| {
        Ok(Box::new(Concat {
            axis: c.int("axis", 0),
        }))
    });
    reg.insert("Split", split);
    reg.insert("Slice", |c| {
        Ok(Box::new(Slice {
            attrs: (c.opset < 10).then(|| (c.ints("starts"), c.ints("ends"), c.ints("axes"))),
        }))
    });
    reg.insert("Gather", |c| {
        Ok(Box::new(Gather {
            axis: c.int("axis", 0),
        }))
    });
    reg.insert("Shape", |c| {
        Ok(Box::new(ShapeOp {
            start: c.int("start", 0),
            end: c.node.attr_int("end"),
        }))
    });
    reg.insert("Cast", |c| {
        Ok(Box::new(Cast {
            to_float: is_float_type(c.int("to", 1) as i32),
        }))
    });
    reg.insert("Identity", |_| Ok(Box::new(Identity { mask: false })));
    reg.insert("Dropout", |c| {
        Ok(Box::new(Identity {
            mask: c.node.output.len() > 1,
        }))
    });
    reg.insert("Constant", constant);
    reg.insert("ConstantOfShape", |c| {
        let value = match c.node.attr_tensor("value") {
            Some(t) => value_from_proto(t)?,
            None => Value::Float(Tensor::scalar(0.0)),
        };
        Ok(Box::new(ConstantOfShape { value }))
    });
}

fn is_float_type(t: i32) -> bool {
    matches!(
        t,
        data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 | data_type::BFLOAT16
    )
}

/// Applies a generic tensor transform to either kind of value.
macro_rules! on_value {
    ($v:expr, |$t:ident| $body:expr) => {
        match $v {
            Value::Float($t) => Value::Float($body),
            Value::Int($t) => Value::Int($body),
        }
    };
}

fn ints_of(inputs: &[Option<&Value>], i: usize) -> Option<Vec<i64>> {
    inputs.get(i).copied().flatten().map(Value::to_i64_vec)
}

fn reshaped(v: &Value, shape: Vec<usize>) -> Result<Value> {
    Ok(match v {
        Value::Float(t) => Value::Float(t.clone().reshape(shape)?),
        Value::Int(t) => Value::Int(t.clone().reshape(shape)?),
    })
}

/// Gradient for ops that only change the shape: reshape the output gradient back.
fn reshape_back(v: &Vjp) -> Result<Vec<Option<Tensor>>> {
    let shape = v.inputs[0].map(|x| x.shape().to_vec()).unwrap_or_default();
    Ok(only_first(
        v.grad(0)?.clone().reshape(shape)?,
        v.inputs.len(),
    ))
}

struct Reshape {
    allowzero: bool,
}

impl Op for Reshape {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?;
        let spec =
            ints_of(inputs, 1).ok_or_else(|| Error::Shape("Reshape without a shape".into()))?;
        let n: usize = x.shape().iter().product();
        let mut out = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            match d {
                0 if !self.allowzero => out.push(*x.shape().get(i).ok_or_else(|| {
                    Error::Shape(format!("Reshape 0 at axis {i} of {:?}", x.shape()))
                })?),
                -1 if infer.is_none() => {
                    infer = Some(i);
                    out.push(1);
                }
                d if d >= 0 => out.push(usize::try_from(d).unwrap_or(usize::MAX)),
                d => {
                    return Err(Error::Shape(format!(
                        "Reshape to {spec:?}: bad dimension {d}"
                    )))
                }
            }
        }
        // Checked: dims from a corrupt shape input can overflow a plain product.
        let product = |v: &[usize]| v.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if let Some(i) = infer {
            let known = product(&out).unwrap_or(0);
            if known == 0 || !n.is_multiple_of(known) {
                return Err(Error::Shape(format!(
                    "cannot reshape {:?} ({n} values) to {spec:?} (a Flatten feeding a dense layer needs the model's declared input size)",
                    x.shape()
                )));
            }
            out[i] = n / known;
        }
        if product(&out) != Some(n) {
            return Err(Error::Shape(format!(
                "cannot reshape {:?} ({n} values) to {spec:?} (a Flatten feeding a dense layer needs the model's declared input size)",
                x.shape()
            )));
        }
        Ok(vec![reshaped(x, out)?])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        reshape_back(v)
    }
}

struct Flatten {
    axis: i64,
}

impl Op for Flatten {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?;
        let r = x.shape().len();
        let a = if self.axis < 0 {
            self.axis + r as i64
        } else {
            self.axis
        };
        if a < 0 || a as usize > r {
            return Err(Error::Shape(format!(
                "Flatten axis {} for rank {r}",
                self.axis
            )));
        }
        let (outer, inner) = x.shape().split_at(a as usize);
        Ok(vec![reshaped(
            x,
            vec![outer.iter().product(), inner.iter().product()],
        )?])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        reshape_back(v)
    }
}

struct Transpose {
    perm: Option<Vec<i64>>,
}

/// Highest rank Transpose accepts: `Tensor::permute` recurses once per axis, so a tensor
/// reshaped to 10⁵ unit axes overflowed the stack (an abort, not a panic).
const MAX_TRANSPOSE_RANK: usize = 64;

impl Transpose {
    fn perm(&self, rank: usize) -> Result<Vec<usize>> {
        if rank > MAX_TRANSPOSE_RANK {
            return Err(Error::Shape(format!(
                "Transpose of a rank-{rank} tensor (at most {MAX_TRANSPOSE_RANK} axes are supported)"
            )));
        }
        let p: Vec<usize> = match &self.perm {
            Some(p) => p
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_>>()
                .map_err(|e| {
                    Error::Shape(format!(
                        "Transpose perm {p:?} is not a permutation of rank {rank} ({e})"
                    ))
                })?,
            None => (0..rank).rev().collect(),
        };
        let mut seen = vec![false; rank];
        if p.len() != rank || p.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
            return Err(Error::Shape(format!(
                "Transpose perm {p:?} is not a permutation of rank {rank}"
            )));
        }
        Ok(p)
    }
}

impl Op for Transpose {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?;
        let p = self.perm(x.shape().len())?;
        Ok(vec![on_value!(x, |t| t.permute(&p))])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let p = self.perm(v.input(0)?.rank())?;
        let mut inv = vec![0; p.len()];
        for (i, &a) in p.iter().enumerate() {
            inv[a] = i;
        }
        Ok(only_first(v.grad(0)?.permute(&inv), v.inputs.len()))
    }
}

struct Squeeze {
    axes: Option<Vec<i64>>,
    unsqueeze: bool,
}

impl Op for Squeeze {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?;
        let axes = self.axes.clone().or_else(|| ints_of(inputs, 1));
        let shape = x.shape();
        let out = if self.unsqueeze {
            let axes = axes.ok_or_else(|| Error::Shape("Unsqueeze without axes".into()))?;
            let r = shape.len() + axes.len();
            let mut flags = vec![false; r];
            for a in axes {
                flags[norm_axis(a, r)?] = true;
            }
            let mut it = shape.iter();
            flags
                .iter()
                .map(|&f| if f { Some(1) } else { it.next().copied() })
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| Error::Shape("Unsqueeze axes repeat".into()))?
        } else {
            let flags: Vec<bool> = match axes {
                Some(a) if !a.is_empty() => {
                    let mut f = vec![false; shape.len()];
                    for ax in a {
                        let i = norm_axis(ax, shape.len())?;
                        if shape[i] != 1 {
                            return Err(Error::Shape(format!(
                                "Squeeze axis {ax} of {shape:?} is not 1"
                            )));
                        }
                        f[i] = true;
                    }
                    f
                }
                _ => shape.iter().map(|&d| d == 1).collect(),
            };
            shape
                .iter()
                .zip(flags)
                .filter(|(_, f)| !f)
                .map(|(&d, _)| d)
                .collect()
        };
        Ok(vec![reshaped(x, out)?])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        reshape_back(v)
    }
}

/// `(outer, axis length, inner)` of a shape around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn concat_t<T: Copy + Default>(parts: &[&TensorOf<T>], axis: usize) -> Result<TensorOf<T>> {
    let first = parts[0].shape();
    let mut shape = first.to_vec();
    shape[axis] = 0;
    for p in parts {
        if p.rank() != first.len()
            || p.shape()
                .iter()
                .enumerate()
                .any(|(i, &d)| i != axis && d != first[i])
        {
            return Err(Error::Shape(format!(
                "Concat of {first:?} and {:?} on axis {axis}",
                p.shape()
            )));
        }
        shape[axis] += p.shape()[axis];
    }
    let (outer, _, inner) = around(first, axis);
    let mut out = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for p in parts {
            let len = p.shape()[axis] * inner;
            out.extend_from_slice(&p.data()[o * len..(o + 1) * len]);
        }
    }
    Ok(TensorOf::from_parts(shape, out))
}

/// Splits `t` along `axis` into pieces of the given sizes.
fn split_t<T: Copy + Default>(t: &TensorOf<T>, axis: usize, sizes: &[usize]) -> Vec<TensorOf<T>> {
    let (outer, len, inner) = around(t.shape(), axis);
    let mut start = 0;
    sizes
        .iter()
        .map(|&s| {
            let mut data = Vec::with_capacity(outer * s * inner);
            for o in 0..outer {
                let base = (o * len + start) * inner;
                data.extend_from_slice(&t.data()[base..base + s * inner]);
            }
            start += s;
            let mut shape = t.shape().to_vec();
            shape[axis] = s;
            TensorOf::from_parts(shape, data)
        })
        .collect()
}

struct Concat {
    axis: i64,
}

impl Op for Concat {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let vals: Vec<&Value> = inputs.iter().flatten().copied().collect();
        if vals.is_empty() {
            return Err(Error::Shape("Concat of nothing".into()));
        }
        let axis = norm_axis(self.axis, vals[0].shape().len())?;
        if vals.iter().all(|v| v.is_float()) {
            let ts: Vec<&Tensor> = vals.iter().map(|v| v.as_float("")).collect::<Result<_>>()?;
            Ok(vec![concat_t(&ts, axis)?.into()])
        } else {
            let owned: Vec<IntTensor> = vals.iter().map(|v| to_int(v)).collect();
            let ts: Vec<&IntTensor> = owned.iter().collect();
            Ok(vec![concat_t(&ts, axis)?.into()])
        }
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let g = v.grad(0)?;
        let axis = norm_axis(self.axis, g.rank())?;
        let sizes: Vec<usize> = v
            .inputs
            .iter()
            .map(|i| i.map_or(0, |x| x.shape()[axis]))
            .collect();
        let parts = split_t(g, axis, &sizes);
        Ok(parts
            .into_iter()
            .zip(v.needs)
            .map(|(p, &n)| n.then_some(p))
            .collect())
    }
}

fn to_int(v: &Value) -> IntTensor {
    match v {
        Value::Int(t) => t.clone(),
        Value::Float(t) => IntTensor::from_parts(
            t.shape().to_vec(),
            t.data().iter().map(|&x| x as i64).collect(),
        ),
    }
}

fn split(ctx: &BuildCtx) -> Result<Box<dyn Op>> {
    if ctx.node.output.is_empty() {
        return Err(Error::InvalidModel("Split without outputs".into()));
    }
    Ok(Box::new(Split {
        axis: ctx.int("axis", 0),
        sizes: ctx.ints("split"),
        outputs: ctx.node.output.len(),
    }))
}

struct Split {
    axis: i64,
    sizes: Option<Vec<i64>>,
    outputs: usize,
}

impl Split {
    fn sizes(&self, inputs: &[Option<&Value>], len: usize) -> Result<Vec<usize>> {
        let given = self.sizes.clone().or_else(|| ints_of(inputs, 1));
        let sizes: Vec<usize> = match given {
            Some(s) => {
                if s.iter().any(|&v| v < 0) || s.len() != self.outputs {
                    return Err(Error::Shape(format!(
                        "Split sizes {s:?} for {} outputs: need one non-negative size per output",
                        self.outputs
                    )));
                }
                s.iter().map(|&v| v as usize).collect()
            }
            None => {
                // Equal parts; the last one smaller when it does not divide (opset 18).
                let n = self.outputs.max(1);
                let part = len.div_ceil(n);
                (0..n)
                    .map(|i| part.min(len.saturating_sub(i * part)))
                    .collect()
            }
        };
        // Checked: huge sizes could overflow the sum.
        let total = sizes.iter().try_fold(0usize, |a, &v| a.checked_add(v));
        if total != Some(len) {
            return Err(Error::Shape(format!(
                "Split sizes {sizes:?} do not add up to {len}"
            )));
        }
        Ok(sizes)
    }
}

impl Op for Split {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?;
        let axis = norm_axis(self.axis, x.shape().len())?;
        let sizes = self.sizes(inputs, x.shape()[axis])?;
        Ok(match x {
            Value::Float(t) => split_t(t, axis, &sizes)
                .into_iter()
                .map(Value::Float)
                .collect(),
            Value::Int(t) => split_t(t, axis, &sizes)
                .into_iter()
                .map(Value::Int)
                .collect(),
        })
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let x = v.input(0)?;
        let axis = norm_axis(self.axis, x.rank())?;
        let parts: Vec<Tensor> = v
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                v.grads
                    .get(i)
                    .copied()
                    .flatten()
                    .cloned()
                    .unwrap_or_else(|| Tensor::zeros(o.shape()))
            })
            .collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        Ok(only_first(concat_t(&refs, axis)?, v.inputs.len()))
    }
}

/// A strided selection: output element at multi-index `i` reads `offset + Σ i·strides`.
struct Selection {
    shape: Vec<usize>,
    strides: Vec<isize>,
    offset: isize,
}

impl Selection {
    fn for_each(&self, mut f: impl FnMut(usize, usize)) {
        let n: usize = self.shape.iter().product();
        let os = strides_of(&self.shape);
        for o in 0..n {
            let mut src = self.offset;
            for ((&s, &dim), &stride) in os.iter().zip(&self.shape).zip(&self.strides) {
                src += ((o / s) % dim) as isize * stride;
            }
            f(o, src as usize);
        }
    }
}

/// Opset < 10 attribute form of Slice: `(starts, ends, axes)`.
type SliceAttrs = (Option<Vec<i64>>, Option<Vec<i64>>, Option<Vec<i64>>);

struct Slice {
    attrs: Option<SliceAttrs>,
}

impl Slice {
    fn selection(&self, inputs: &[Option<&Value>], shape: &[usize]) -> Result<Selection> {
        let (starts, ends, axes, steps) = match &self.attrs {
            Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), None),
            None => (
                ints_of(inputs, 1),
                ints_of(inputs, 2),
                ints_of(inputs, 3),
                ints_of(inputs, 4),
            ),
        };
        let (starts, ends) = match (starts, ends) {
            (Some(s), Some(e)) if s.len() == e.len() => (s, e),
            _ => {
                return Err(Error::Shape(
                    "Slice needs starts and ends of equal length".into(),
                ))
            }
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(Error::Shape("Slice axes/steps length mismatch".into()));
        }
        let base = strides_of(shape);
        // A repeated axis would add its start offset twice and read out of bounds.
        let mut seen = vec![false; shape.len()];
        let mut sel = Selection {
            shape: shape.to_vec(),
            strides: base.iter().map(|&s| s as isize).collect(),
            offset: 0,
        };
        for i in 0..starts.len() {
            let ax = norm_axis(axes[i], shape.len())?;
            if std::mem::replace(&mut seen[ax], true) {
                return Err(Error::Shape(format!(
                    "Slice axes {axes:?} repeat axis {ax}"
                )));
            }
            let dim = shape[ax] as i64;
            let step = steps[i];
            if step == 0 {
                return Err(Error::Shape("Slice step 0".into()));
            }
            let clampi = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
            let fix = |v: i64| if v < 0 { v + dim } else { v };
            // ONNX clamps starts to [0, dim−1] for negative steps (a start below −dim selects
            // from element 0); only ends may reach −1, "before the first element".
            let (start, end) = if step > 0 {
                (clampi(fix(starts[i]), 0, dim), clampi(fix(ends[i]), 0, dim))
            } else {
                (
                    clampi(fix(starts[i]), 0, dim - 1),
                    clampi(fix(ends[i]), -1, dim - 1),
                )
            };
            let span = if step > 0 { end - start } else { start - end };
            // In u64: |i64::MIN| and span + |step| overflow i64.
            let abs_step = step.unsigned_abs();
            let count = if span > 0 {
                (span as u64).div_ceil(abs_step)
            } else {
                0
            } as usize;
            sel.shape[ax] = count;
            // With |step| ≥ dim at most one element is read, so a saturated stride is never used.
            sel.strides[ax] = (base[ax] as isize).saturating_mul(step as isize);
            if count > 0 {
                sel.offset += start as isize * base[ax] as isize;
            }
        }
        Ok(sel)
    }
}

fn select<T: Copy + Default>(t: &TensorOf<T>, sel: &Selection) -> TensorOf<T> {
    let mut out = vec![T::default(); sel.shape.iter().product()];
    sel.for_each(|o, s| out[o] = t.data()[s]);
    TensorOf::from_parts(sel.shape.clone(), out)
}

impl Op for Slice {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?;
        let sel = self.selection(inputs, x.shape())?;
        Ok(vec![on_value!(x, |t| select(t, &sel))])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let x = v.input(0)?;
        let sel = self.selection(v.inputs, x.shape())?;
        let g = v.grad(0)?;
        let mut dx = vec![0.0f32; x.len()];
        sel.for_each(|o, s| dx[s] += g.data()[o]);
        Ok(only_first(
            Tensor::from_parts(x.shape().to_vec(), dx),
            v.inputs.len(),
        ))
    }
}

struct Gather {
    axis: i64,
}

impl Gather {
    fn plan(&self, shape: &[usize], idx: &Value) -> Result<(usize, Vec<usize>, Vec<usize>)> {
        let axis = norm_axis(self.axis, shape.len())?;
        let dim = shape[axis] as i64;
        let indices = idx
            .to_i64_vec()
            .into_iter()
            .map(|i| {
                let j = if i < 0 { i + dim } else { i };
                if j < 0 || j >= dim {
                    Err(Error::Shape(format!(
                        "Gather index {i} out of range for axis of size {dim}"
                    )))
                } else {
                    Ok(j as usize)
                }
            })
            .collect::<Result<Vec<usize>>>()?;
        let mut out_shape = shape[..axis].to_vec();
        out_shape.extend_from_slice(idx.shape());
        out_shape.extend_from_slice(&shape[axis + 1..]);
        check_size(&out_shape, "Gather")?;
        Ok((axis, indices, out_shape))
    }
}

fn gather_t<T: Copy + Default>(
    t: &TensorOf<T>,
    axis: usize,
    indices: &[usize],
    out_shape: Vec<usize>,
) -> TensorOf<T> {
    let (outer, len, inner) = around(t.shape(), axis);
    let mut out = Vec::with_capacity(out_shape.iter().product());
    for o in 0..outer {
        for &i in indices {
            let base = (o * len + i) * inner;
            out.extend_from_slice(&t.data()[base..base + inner]);
        }
    }
    TensorOf::from_parts(out_shape, out)
}

impl Op for Gather {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let (x, idx) = (any_input(inputs, 0)?, any_input(inputs, 1)?);
        let (axis, indices, out_shape) = self.plan(x.shape(), idx)?;
        Ok(vec![on_value!(x, |t| gather_t(
            t, axis, &indices, out_shape
        ))])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let (x, idx, g) = (v.input(0)?, any_input(v.inputs, 1)?, v.grad(0)?);
        let (axis, indices, _) = self.plan(x.shape(), idx)?;
        let (outer, len, inner) = around(x.shape(), axis);
        let mut dx = vec![0.0f32; x.len()];
        let mut src = 0;
        for o in 0..outer {
            for &i in &indices {
                let base = (o * len + i) * inner;
                for k in 0..inner {
                    dx[base + k] += g.data()[src + k];
                }
                src += inner;
            }
        }
        Ok(only_first(
            Tensor::from_parts(x.shape().to_vec(), dx),
            v.inputs.len(),
        ))
    }
}

struct ShapeOp {
    start: i64,
    end: Option<i64>,
}

impl Op for ShapeOp {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let shape = any_input(inputs, 0)?.shape();
        let r = shape.len() as i64;
        let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (s, e) = (fix(self.start), fix(self.end.unwrap_or(r)));
        let dims: Vec<i64> = shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
        Ok(vec![IntTensor::from_parts(vec![dims.len()], dims).into()])
    }
}

struct Cast {
    to_float: bool,
}

impl Op for Cast {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?;
        Ok(vec![match (x, self.to_float) {
            (Value::Float(t), true) => Value::Float(t.clone()),
            (Value::Int(t), false) => Value::Int(t.clone()),
            (Value::Int(t), true) => Tensor::from_parts(
                t.shape().to_vec(),
                t.data().iter().map(|&v| v as f32).collect(),
            )
            .into(),
            (Value::Float(t), false) => to_int(&Value::Float(t.clone())).into(),
        }])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        Ok(only_first(v.grad(0)?.clone(), v.inputs.len()))
    }
}

/// Identity, and Dropout in inference.
struct Identity {
    /// Whether the node declares Dropout's mask output (only then is it built: an `i64` mask
    /// costs twice the memory of the value itself).
    mask: bool,
}

impl Op for Identity {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let x = any_input(inputs, 0)?.clone();
        if !self.mask {
            return Ok(vec![x]);
        }
        // Dropout's optional mask output: all ones in inference.
        let mask = Value::Int(IntTensor::full(x.shape(), 1));
        Ok(vec![x, mask])
    }
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        Ok(only_first(v.grad(0)?.clone(), v.inputs.len()))
    }
}

fn constant(ctx: &BuildCtx) -> Result<Box<dyn Op>> {
    let n = ctx.node;
    let value = if let Some(t) = n.attr_tensor("value") {
        value_from_proto(t)?
    } else if let Some(f) = n.attr_float("value_float") {
        Tensor::scalar(f).into()
    } else if let Some(f) = n.attr_floats("value_floats") {
        Tensor::from_parts(vec![f.len()], f.to_vec()).into()
    } else if let Some(i) = n.attr_int("value_int") {
        IntTensor::scalar(i).into()
    } else if let Some(i) = n.attr_ints("value_ints") {
        IntTensor::from_parts(vec![i.len()], i.to_vec()).into()
    } else {
        return Err(Error::InvalidModel(
            "Constant without a supported value attribute".into(),
        ));
    };
    Ok(Box::new(ConstantOp { value }))
}

struct ConstantOp {
    value: Value,
}

impl Op for ConstantOp {
    fn forward(&self, _: &ExecConfig, _inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        Ok(vec![self.value.clone()])
    }
}

struct ConstantOfShape {
    value: Value,
}

impl Op for ConstantOfShape {
    fn forward(&self, _: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>> {
        let dims = any_input(inputs, 0)?.to_i64_vec();
        if dims.iter().any(|&d| d < 0) {
            return Err(Error::Shape(format!(
                "ConstantOfShape {dims:?}: negative dimension"
            )));
        }
        // Checked product and the shared size limit (the u128 product used to overflow with
        // three huge dims, and 2^31 elements was 8 GiB).
        let shape: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        check_size(&shape, "ConstantOfShape")?;
        Ok(vec![match &self.value {
            Value::Float(t) => {
                Tensor::full(&shape, t.data().first().copied().unwrap_or(0.0)).into()
            }
            Value::Int(t) => IntTensor::full(&shape, t.data().first().copied().unwrap_or(0)).into(),
        }])
    }
}
