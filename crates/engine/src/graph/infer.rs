//! Shapes of a pass worked out before running it: no tensor of the input's size is allocated,
//! so a job that cannot fit is refused at once instead of after seconds of work and gigabytes
//! of memory (the memory estimate built on these shapes is `exec::estimate`'s).
//!
//! Every node gets the ONNX shape rule of its op, applied to the shapes of its inputs and to
//! the values of its constant and shape-derived integer inputs (the `Shape → Gather → Concat →
//! Reshape` subgraphs exporters emit). Integer values are computed for real, by the op itself,
//! whenever all of a node's inputs are known and its outputs are small, so a `Reshape` fed by
//! such a subgraph gets the very shape the pass will use. Every output shape is held to the
//! same element limit the ops enforce when they run.
//!
//! `tests/estimate_tests.rs` compares every inferred shape with the shapes of a real pass on
//! generated models and on VGG16 and EfficientNet.

use std::borrow::Cow;

use convscope_onnx::{data_type, AttributeProto, AttributeValue};

use super::{node_error, Graph, Node, Source, ValueId};
use crate::error::{Error, Result};
use crate::kernels::geometry::same_pads;
use crate::ops::{
    binary::broadcast_shape, check_size, einsum, norm_axis, ExecConfig, MAX_ELEMENTS,
};
use crate::tensor::{IntTensor, Tensor, Value};

/// A value's shape and kind, worked out without running the model
/// ([`Model::infer_value`](crate::Model::infer_value)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferredValue {
    /// The shape the value will have.
    pub shape: Vec<usize>,
    /// Whether it holds float data (else integers: shapes, indices).
    pub is_float: bool,
}

/// What is known about a value without running the model.
#[derive(Clone, Debug)]
enum Abs<'m> {
    /// Only the shape (the data depends on the input's values); `float` tells the kind.
    Shape { shape: Vec<usize>, float: bool },
    /// The value itself: a constant, or computed from shapes and constants.
    Known(Cow<'m, Value>),
}

impl Abs<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Abs::Shape { shape, .. } => shape,
            Abs::Known(v) => v.shape(),
        }
    }
    fn is_float(&self) -> bool {
        match self {
            Abs::Shape { float, .. } => *float,
            Abs::Known(v) => v.is_float(),
        }
    }
    fn known(&self) -> Option<&Value> {
        match self {
            Abs::Known(v) => Some(v),
            Abs::Shape { .. } => None,
        }
    }
}

/// Outputs of at most this many elements are computed for real when every input is known.
const SMALL: usize = 1 << 16;

/// Longest axis a Resize forms (its limit in `ops/resize.rs`).
const MAX_RESIZED_AXIS: usize = 1 << 20;

/// The shape of a value of `shape` and kind `float`.
fn out(shape: Vec<usize>, float: bool) -> Abs<'static> {
    Abs::Shape { shape, float }
}

fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn shape_err(msg: String) -> Error {
    Error::Shape(msg)
}

/// A node's attributes, read the way the op builders read them.
struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.0.iter().find(|a| a.name == name).map(|a| &a.value)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        match self.get(name) {
            Some(AttributeValue::Int(v)) => *v,
            _ => default,
        }
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        match self.get(name) {
            Some(AttributeValue::Ints(v)) => Some(v.clone()),
            _ => None,
        }
    }
    fn floats(&self, name: &str) -> Option<Vec<f32>> {
        match self.get(name) {
            Some(AttributeValue::Floats(v)) => Some(v.clone()),
            _ => None,
        }
    }
    fn string(&self, name: &str, default: &str) -> String {
        match self.get(name) {
            Some(AttributeValue::String(v)) => String::from_utf8_lossy(v).into_owned(),
            _ => default.to_string(),
        }
    }
    /// `[a, b]` of a 2-D attribute; `default` when absent.
    fn pair(&self, name: &str, default: usize) -> Result<[usize; 2]> {
        match self.ints(name).as_deref() {
            None => Ok([default; 2]),
            Some(&[a, b]) if a >= 1 && b >= 1 => Ok([a as usize, b as usize]),
            Some(v) => Err(shape_err(format!("{name} {v:?}"))),
        }
    }
    /// `[top, left, bottom, right]` pads.
    fn pads(&self) -> Result<[usize; 4]> {
        match self.ints("pads").as_deref() {
            None => Ok([0; 4]),
            Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            Some(p) => Err(shape_err(format!("pads {p:?}"))),
        }
    }
}

/// Output positions of a convolution or pooling window along one axis (ONNX's rule, as the
/// ops apply it).
struct Window {
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
    auto_pad: String,
    ceil: bool,
}

impl Window {
    fn output(&self, input: usize) -> Result<usize> {
        if input == 0 || self.kernel == 0 {
            return Err(shape_err(format!(
                "a window of {} over an axis of {input}",
                self.kernel
            )));
        }
        let span = (self.kernel - 1)
            .checked_mul(self.dilation)
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| shape_err("window overflow".into()))?;
        let (pb, pe) = match self.auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                same_pads(input, self.stride, span, self.auto_pad == "SAME_UPPER")
            }
            "VALID" => (0, 0),
            _ => self.pads,
        };
        let padded = input + pb + pe;
        if padded < span {
            return Err(shape_err(format!(
                "input size {input} (padded {padded}) is smaller than the window {span}"
            )));
        }
        let num = padded - span;
        let mut n = if self.ceil {
            num.div_ceil(self.stride) + 1
        } else {
            num / self.stride + 1
        };
        if self.ceil && (n - 1) * self.stride >= input + pb {
            n -= 1;
        }
        Ok(n)
    }
}

/// Integer values of input `i`, when known.
fn ints_in(ins: &[Option<Abs>], i: usize) -> Option<Vec<i64>> {
    ins.get(i)?.as_ref()?.known().map(Value::to_i64_vec)
}

/// Whether input `i` is present.
fn has(ins: &[Option<Abs>], i: usize) -> bool {
    ins.get(i).is_some_and(Option::is_some)
}

fn need<'a, 'm>(ins: &'a [Option<Abs<'m>>], i: usize) -> Result<&'a Abs<'m>> {
    ins.get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| shape_err(format!("missing input {i}")))
}

/// Integer values of input `i`, which the output shape depends on: an error when they come
/// from the input's data rather than from shapes and constants.
fn known_ints(ins: &[Option<Abs>], i: usize, what: &str) -> Result<Vec<i64>> {
    ints_in(ins, i).ok_or_else(|| {
        Error::ShapeUnknown(format!("the {what} are computed from the input's values"))
    })
}

fn to_usize(v: i64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| shape_err(format!("{what} {v}")))
}

/// The shape rule of one op: output shapes (and kinds) from the inputs; `None` for an op
/// without a rule.
fn rule<'m>(node: &Node, ins: &[Option<Abs<'m>>], opset: i64) -> Option<Result<Vec<Abs<'m>>>> {
    if !has_rule(&node.op_type) {
        return None;
    }
    Some(apply_rule(node, ins, opset))
}

/// Op types [`apply_rule`] knows (every op the engine implements when this was written).
const RULES: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Erf",
    "Gelu",
    "Sqrt",
    "Exp",
    "Log",
    "Neg",
    "Abs",
    "Reciprocal",
    "Softplus",
    "Clip",
    "Softmax",
    "LogSoftmax",
    "BatchNormalization",
    "Identity",
    "Dropout",
    "Cast",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "PRelu",
    "Max",
    "Min",
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Gemm",
    "MatMul",
    "Pad",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "Resize",
    "Upsample",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "Shape",
    "ConstantOfShape",
    "LayerNormalization",
    "Mod",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "Not",
    "Where",
    "Expand",
    "ScatterND",
    "Einsum",
];

fn has_rule(op: &str) -> bool {
    RULES.contains(&op)
}

fn apply_rule<'m>(node: &Node, ins: &[Option<Abs<'m>>], opset: i64) -> Result<Vec<Abs<'m>>> {
    let a = Attrs(&node.attrs);
    let x = || need(ins, 0);
    let same = || -> Result<Abs<'m>> {
        let x = x()?;
        Ok(out(x.shape().to_vec(), x.is_float()))
    };
    Ok(match node.op_type.as_str() {
        "Relu" | "LeakyRelu" | "Elu" | "Selu" | "Sigmoid" | "Tanh" | "HardSigmoid"
        | "HardSwish" | "Erf" | "Gelu" | "Sqrt" | "Exp" | "Log" | "Neg" | "Abs" | "Reciprocal"
        | "Softplus" | "Clip" | "Softmax" | "LogSoftmax" | "BatchNormalization" | "Identity"
        | "LayerNormalization" | "ScatterND" => {
            vec![same()?]
        }
        "Not" => vec![out(x()?.shape().to_vec(), false)],
        "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" | "And" | "Or" | "Xor" => {
            let shape = broadcast_shape(x()?.shape(), need(ins, 1)?.shape())?;
            vec![out(shape, false)]
        }
        "Where" => {
            let (c, t, f) = (x()?, need(ins, 1)?, need(ins, 2)?);
            let shape = broadcast_shape(&broadcast_shape(c.shape(), t.shape())?, f.shape())?;
            vec![out(shape, t.is_float())]
        }
        "Expand" => {
            let dims = known_ints(ins, 1, "Expand sizes")?
                .into_iter()
                .map(|d| to_usize(d, "Expand dimension"))
                .collect::<Result<Vec<_>>>()?;
            vec![out(broadcast_shape(x()?.shape(), &dims)?, x()?.is_float())]
        }
        "Einsum" => {
            let shapes: Vec<&[usize]> = ins.iter().flatten().map(Abs::shape).collect();
            let shape = einsum::output_shape(&a.string("equation", ""), &shapes)?;
            vec![out(shape, true)]
        }
        "Dropout" => {
            let mut v = vec![same()?];
            if node.outputs.len() > 1 {
                v.push(out(x()?.shape().to_vec(), false));
            }
            v
        }
        "Cast" => {
            let to = a.int("to", i64::from(data_type::FLOAT)) as i32;
            let float = matches!(
                to,
                data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 | data_type::BFLOAT16
            );
            vec![out(x()?.shape().to_vec(), float)]
        }
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "PRelu" | "Max" | "Min" | "Mod" => {
            let present: Vec<&Abs> = ins.iter().flatten().collect();
            let mut shape = x()?.shape().to_vec();
            for v in present.iter().skip(1) {
                shape = broadcast_shape(&shape, v.shape())?;
            }
            vec![out(shape, x()?.is_float())]
        }
        "Conv" => {
            let (xs, ws) = (x()?.shape(), need(ins, 1)?.shape());
            let (&[n, c, ih, iw], &[m, cg, kh, kw]) = (xs, ws) else {
                return Err(shape_err(format!("Conv of {xs:?} with weight {ws:?}")));
            };
            let group = a.int("group", 1).max(1) as usize;
            if cg.checked_mul(group) != Some(c) {
                return Err(shape_err(format!(
                    "input has {c} channels but weight {ws:?} with group {group} expects {cg}·{group}"
                )));
            }
            let (strides, dilations, pads) =
                (a.pair("strides", 1)?, a.pair("dilations", 1)?, a.pads()?);
            let axis = |i: usize, input: usize, k: usize| {
                Window {
                    kernel: k,
                    stride: strides[i],
                    dilation: dilations[i],
                    pads: (pads[i], pads[i + 2]),
                    auto_pad: a.string("auto_pad", "NOTSET"),
                    ceil: false,
                }
                .output(input)
            };
            vec![out(vec![n, m, axis(0, ih, kh)?, axis(1, iw, kw)?], true)]
        }
        "ConvTranspose" => {
            let (xs, ws) = (x()?.shape(), need(ins, 1)?.shape());
            let (&[n, _, ih, iw], &[_, mg, kh, kw]) = (xs, ws) else {
                return Err(shape_err(format!(
                    "ConvTranspose of {xs:?} with weight {ws:?}"
                )));
            };
            let group = a.int("group", 1).max(1) as usize;
            let (strides, dilations, pads) =
                (a.pair("strides", 1)?, a.pair("dilations", 1)?, a.pads()?);
            let output_padding = a.ints("output_padding").unwrap_or_default();
            let output_shape = a.ints("output_shape");
            let auto_pad = a.string("auto_pad", "NOTSET");
            let axis = |i: usize, input: usize, k: usize| -> Result<usize> {
                if input == 0 || k == 0 {
                    return Err(shape_err("ConvTranspose of an empty axis".into()));
                }
                let span = (k - 1) * dilations[i] + 1;
                let op = output_padding.get(i).copied().unwrap_or(0).max(0) as usize;
                let full = strides[i] * (input - 1) + op + span;
                Ok(match (&output_shape, auto_pad.as_str()) {
                    (Some(os), _) if os.len() == 2 => os[i].max(1) as usize,
                    (_, "SAME_UPPER" | "SAME_LOWER") => input * strides[i],
                    (_, "VALID") => full,
                    _ => full
                        .checked_sub(pads[i] + pads[i + 2])
                        .filter(|&v| v >= 1)
                        .ok_or_else(|| shape_err("ConvTranspose pads exceed its output".into()))?,
                })
            };
            let m = mg
                .checked_mul(group)
                .ok_or_else(|| shape_err("ConvTranspose channels overflow".into()))?;
            vec![out(vec![n, m, axis(0, ih, kh)?, axis(1, iw, kw)?], true)]
        }
        "MaxPool" | "AveragePool" => {
            let xs = x()?.shape();
            let &[n, c, ih, iw] = xs else {
                return Err(shape_err(format!("pooling of {xs:?}")));
            };
            let kernel = match a.ints("kernel_shape").as_deref() {
                Some(&[kh, kw]) if kh >= 1 && kw >= 1 => [kh as usize, kw as usize],
                other => return Err(shape_err(format!("kernel_shape {other:?}"))),
            };
            let (strides, dilations, pads) =
                (a.pair("strides", 1)?, a.pair("dilations", 1)?, a.pads()?);
            let axis = |i: usize, input: usize| {
                Window {
                    kernel: kernel[i],
                    stride: strides[i],
                    dilation: dilations[i],
                    pads: (pads[i], pads[i + 2]),
                    auto_pad: a.string("auto_pad", "NOTSET"),
                    ceil: a.int("ceil_mode", 0) != 0,
                }
                .output(input)
            };
            vec![out(vec![n, c, axis(0, ih)?, axis(1, iw)?], true)]
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let xs = x()?.shape();
            if xs.len() < 2 {
                return Err(shape_err(format!("global pooling of {xs:?}")));
            }
            let mut s = xs[..2].to_vec();
            s.extend(std::iter::repeat_n(1, xs.len() - 2));
            vec![out(s, true)]
        }
        "Gemm" => {
            let (as_, bs) = (x()?.shape(), need(ins, 1)?.shape());
            let (&[ar, ac], &[br, bc]) = (as_, bs) else {
                return Err(shape_err(format!("Gemm of {as_:?} and {bs:?}")));
            };
            let (m, k) = if a.int("transA", 0) != 0 {
                (ac, ar)
            } else {
                (ar, ac)
            };
            let (k2, n) = if a.int("transB", 0) != 0 {
                (bc, br)
            } else {
                (br, bc)
            };
            if k != k2 {
                return Err(shape_err(format!(
                    "Gemm of {as_:?} and {bs:?}: inner sizes {k} and {k2} differ (a layer after a Flatten needs the model's declared input size)"
                )));
            }
            vec![out(vec![m, n], true)]
        }
        "MatMul" => {
            let (as_, bs) = (x()?.shape(), need(ins, 1)?.shape());
            if as_.is_empty() || bs.is_empty() {
                return Err(shape_err("MatMul of a scalar".into()));
            }
            let a2 = if as_.len() == 1 {
                vec![1, as_[0]]
            } else {
                as_.to_vec()
            };
            let b2 = if bs.len() == 1 {
                vec![bs[0], 1]
            } else {
                bs.to_vec()
            };
            let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
            let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
            if k != k2 {
                return Err(shape_err(format!(
                    "MatMul of {as_:?} and {bs:?}: inner sizes {k} and {k2} differ (a layer after a Flatten needs the model's declared input size)"
                )));
            }
            let mut s = broadcast_shape(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
            if as_.len() > 1 {
                s.push(m);
            }
            if bs.len() > 1 {
                s.push(n);
            }
            vec![out(s, true)]
        }
        "Pad" => {
            let x = x()?;
            let rank = x.shape().len();
            let raw = if opset < 11 {
                a.ints("pads").unwrap_or_default()
            } else {
                known_ints(ins, 1, "pads")?
            };
            let axes: Vec<usize> = match (opset >= 11).then(|| ints_in(ins, 3)).flatten() {
                Some(ax) => ax
                    .iter()
                    .map(|&v| norm_axis(v, rank))
                    .collect::<Result<_>>()?,
                None if opset >= 11 && has(ins, 3) => {
                    return Err(Error::ShapeUnknown(
                        "the Pad axes are computed from the input's values".into(),
                    ))
                }
                None => (0..rank).collect(),
            };
            if raw.len() != 2 * axes.len() {
                return Err(shape_err(format!(
                    "Pad has {} pads for {} axes",
                    raw.len(),
                    axes.len()
                )));
            }
            let mut s = x.shape().to_vec();
            for (i, &ax) in axes.iter().enumerate() {
                let v = (s[ax] as i64)
                    .checked_add(raw[i])
                    .and_then(|v| v.checked_add(raw[i + axes.len()]))
                    .filter(|&v| v >= 0)
                    .ok_or_else(|| shape_err(format!("Pad {raw:?} of {:?}", x.shape())))?;
                s[ax] = to_usize(v, "Pad size")?;
            }
            vec![out(s, x.is_float())]
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" => {
            let xs = x()?.shape();
            let axes = match a.ints("axes") {
                Some(v) => v,
                None if has(ins, 1) => known_ints(ins, 1, "axes")?,
                None => vec![],
            };
            let keep = a.int("keepdims", 1) != 0;
            let flags: Vec<bool> = if axes.is_empty() {
                vec![a.int("noop_with_empty_axes", 0) == 0; xs.len()]
            } else {
                let mut f = vec![false; xs.len()];
                for ax in axes {
                    f[norm_axis(ax, xs.len())?] = true;
                }
                f
            };
            let s = xs
                .iter()
                .zip(&flags)
                .filter_map(|(&d, &r)| match (r, keep) {
                    (false, _) => Some(d),
                    (true, true) => Some(1),
                    (true, false) => None,
                })
                .collect();
            vec![out(s, true)]
        }
        "Resize" | "Upsample" => {
            let xs = x()?.shape();
            let legacy = node.op_type == "Upsample" || opset < 11;
            let sizes = if legacy { None } else { ints_in(ins, 3) };
            let scales = a.floats("scales").or_else(|| {
                let t = need(ins, if legacy { 1 } else { 2 }).ok()?.known()?;
                match t {
                    Value::Float(t) if !t.is_empty() => Some(t.data().to_vec()),
                    _ => None,
                }
            });
            let s: Vec<usize> = match (sizes, scales) {
                (Some(s), _) if s.len() == xs.len() => s
                    .iter()
                    .map(|&v| to_usize(v, "Resize size"))
                    .collect::<Result<_>>()?,
                (_, Some(sc)) if sc.len() == xs.len() => {
                    if let Some(bad) = sc.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                        return Err(shape_err(format!("Resize scale {bad}")));
                    }
                    xs.iter()
                        .zip(&sc)
                        .map(|(&i, &s)| (i as f32 * s).floor() as usize)
                        .collect()
                }
                _ if legacy || has(ins, 2) || has(ins, 3) => {
                    return Err(Error::ShapeUnknown(
                        "the Resize scales or sizes are computed from the input's values".into(),
                    ))
                }
                _ => {
                    return Err(shape_err(
                        "Resize needs scales or sizes for all axes".into(),
                    ))
                }
            };
            if let Some(&o) = s.iter().find(|&&o| o > MAX_RESIZED_AXIS) {
                return Err(shape_err(format!(
                    "Resize to {s:?}: an axis of {o} exceeds the {MAX_RESIZED_AXIS} limit"
                )));
            }
            vec![out(s, true)]
        }
        "Reshape" => {
            let x = x()?;
            let spec = known_ints(ins, 1, "Reshape sizes")?;
            let n = elements(x.shape()).unwrap_or(usize::MAX);
            let allowzero = a.int("allowzero", 0) != 0;
            let mut s = Vec::with_capacity(spec.len());
            let mut infer = None;
            for (i, &d) in spec.iter().enumerate() {
                match d {
                    0 if !allowzero => s.push(*x.shape().get(i).ok_or_else(|| {
                        shape_err(format!("Reshape 0 at axis {i} of {:?}", x.shape()))
                    })?),
                    -1 if infer.is_none() => {
                        infer = Some(i);
                        s.push(1);
                    }
                    d => s.push(to_usize(d, "Reshape dimension")?),
                }
            }
            if let Some(i) = infer {
                let known = elements(&s).unwrap_or(0);
                if known == 0 || !n.is_multiple_of(known) {
                    return Err(shape_err(format!(
                        "cannot reshape {:?} ({n} values) to {spec:?} (a Flatten feeding a dense layer needs the model's declared input size)",
                        x.shape()
                    )));
                }
                s[i] = n / known;
            }
            if elements(&s) != Some(n) {
                return Err(shape_err(format!(
                    "cannot reshape {:?} ({n} values) to {spec:?} (a Flatten feeding a dense layer needs the model's declared input size)",
                    x.shape()
                )));
            }
            vec![out(s, x.is_float())]
        }
        "Flatten" => {
            let x = x()?;
            let r = x.shape().len() as i64;
            let axis = a.int("axis", 1);
            let axis = if axis < 0 { axis + r } else { axis };
            if !(0..=r).contains(&axis) {
                return Err(shape_err(format!("Flatten axis {axis} for rank {r}")));
            }
            let (o, i) = x.shape().split_at(axis as usize);
            vec![out(
                vec![o.iter().product(), i.iter().product()],
                x.is_float(),
            )]
        }
        "Transpose" => {
            let x = x()?;
            let rank = x.shape().len();
            let perm: Vec<usize> = match a.ints("perm") {
                Some(p) => p
                    .iter()
                    .map(|&v| norm_axis(v, rank))
                    .collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let mut seen = vec![false; rank];
            if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
                return Err(shape_err(format!(
                    "Transpose perm {perm:?} for rank {rank}"
                )));
            }
            vec![out(
                perm.iter().map(|&p| x.shape()[p]).collect(),
                x.is_float(),
            )]
        }
        "Squeeze" | "Unsqueeze" => {
            let x = x()?;
            let xs = x.shape();
            let axes = match a.ints("axes") {
                Some(v) => Some(v),
                None if has(ins, 1) => Some(known_ints(ins, 1, "axes")?),
                None => None,
            };
            let s: Vec<usize> = if node.op_type == "Unsqueeze" {
                let axes = axes.ok_or_else(|| shape_err("Unsqueeze without axes".into()))?;
                let r = xs.len() + axes.len();
                let mut flags = vec![false; r];
                for ax in axes {
                    flags[norm_axis(ax, r)?] = true;
                }
                let mut it = xs.iter();
                flags
                    .iter()
                    .map(|&f| if f { Some(1) } else { it.next().copied() })
                    .collect::<Option<_>>()
                    .ok_or_else(|| shape_err("Unsqueeze axes repeat".into()))?
            } else {
                let flags: Vec<bool> = match axes {
                    Some(ax) if !ax.is_empty() => {
                        let mut f = vec![false; xs.len()];
                        for v in ax {
                            let i = norm_axis(v, xs.len())?;
                            if xs[i] != 1 {
                                return Err(shape_err(format!(
                                    "Squeeze axis {v} of {xs:?} is not 1"
                                )));
                            }
                            f[i] = true;
                        }
                        f
                    }
                    _ => xs.iter().map(|&d| d == 1).collect(),
                };
                xs.iter()
                    .zip(flags)
                    .filter(|(_, f)| !f)
                    .map(|(&d, _)| d)
                    .collect()
            };
            vec![out(s, x.is_float())]
        }
        "Concat" => {
            let present: Vec<&Abs> = ins.iter().flatten().collect();
            let first = present
                .first()
                .ok_or_else(|| shape_err("Concat of nothing".into()))?;
            let axis = norm_axis(a.int("axis", 0), first.shape().len())?;
            let mut s = first.shape().to_vec();
            s[axis] = 0;
            for p in &present {
                let fits = p.shape().len() == s.len()
                    && p.shape()
                        .iter()
                        .zip(first.shape())
                        .enumerate()
                        .all(|(i, (a, b))| i == axis || a == b);
                if !fits {
                    return Err(shape_err(format!(
                        "Concat of {:?} and {:?}",
                        first.shape(),
                        p.shape()
                    )));
                }
                s[axis] += p.shape()[axis];
            }
            vec![out(s, present.iter().all(|p| p.is_float()))]
        }
        "Split" => {
            let x = x()?;
            let axis = norm_axis(a.int("axis", 0), x.shape().len())?;
            let len = x.shape()[axis];
            let outputs = node.outputs.len();
            let sizes: Vec<usize> = match a.ints("split") {
                Some(v) => v
                    .iter()
                    .map(|&d| to_usize(d, "Split size"))
                    .collect::<Result<_>>()?,
                None if has(ins, 1) => known_ints(ins, 1, "Split sizes")?
                    .iter()
                    .map(|&d| to_usize(d, "Split size"))
                    .collect::<Result<_>>()?,
                None => {
                    let n = outputs.max(1);
                    let part = len.div_ceil(n);
                    (0..n)
                        .map(|i| part.min(len.saturating_sub(i * part)))
                        .collect()
                }
            };
            // Checked: sizes near i64::MAX overflowed the sum (a panic in debug builds, and
            // since plans fold shapes, on the way of every pass).
            let total = sizes.iter().try_fold(0usize, |acc, &d| acc.checked_add(d));
            if sizes.len() != outputs || total != Some(len) {
                return Err(shape_err(format!(
                    "Split sizes {sizes:?} for {outputs} outputs of an axis of {len}"
                )));
            }
            sizes
                .into_iter()
                .map(|d| {
                    let mut s = x.shape().to_vec();
                    s[axis] = d;
                    out(s, x.is_float())
                })
                .collect()
        }
        "Slice" => {
            let x = x()?;
            let xs = x.shape();
            let (starts, ends, axes, steps) = if opset < 10 {
                (a.ints("starts"), a.ints("ends"), a.ints("axes"), None)
            } else {
                (
                    Some(known_ints(ins, 1, "Slice starts")?),
                    Some(known_ints(ins, 2, "Slice ends")?),
                    if has(ins, 3) {
                        Some(known_ints(ins, 3, "Slice axes")?)
                    } else {
                        None
                    },
                    if has(ins, 4) {
                        Some(known_ints(ins, 4, "Slice steps")?)
                    } else {
                        None
                    },
                )
            };
            let (starts, ends) = match (starts, ends) {
                (Some(s), Some(e)) if s.len() == e.len() => (s, e),
                _ => {
                    return Err(shape_err(
                        "Slice needs starts and ends of equal length".into(),
                    ))
                }
            };
            let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
            if axes.len() != starts.len() || steps.len() != starts.len() {
                return Err(shape_err(format!(
                    "Slice of {} starts over {} axes with {} steps",
                    starts.len(),
                    axes.len(),
                    steps.len()
                )));
            }
            let mut s = xs.to_vec();
            for (i, &ax) in axes.iter().enumerate() {
                let ax = norm_axis(ax, xs.len())?;
                let d = xs[ax] as i64;
                let step = steps[i];
                if step == 0 {
                    return Err(shape_err("Slice step 0".into()));
                }
                if d == 0 {
                    s[ax] = 0;
                    continue;
                }
                let fix = |v: i64, lo: i64, hi: i64| {
                    let v = if v < 0 { v.saturating_add(d) } else { v };
                    v.clamp(lo, hi)
                };
                let (b, e) = if step > 0 {
                    (fix(starts[i], 0, d), fix(ends[i], 0, d))
                } else {
                    (fix(starts[i], 0, d - 1), fix(ends[i], -1, d - 1))
                };
                s[ax] = slice_len(if step > 0 { e - b } else { b - e }, step);
            }
            vec![out(s, x.is_float())]
        }
        "Gather" => {
            let (x, idx) = (x()?, need(ins, 1)?);
            let axis = norm_axis(a.int("axis", 0), x.shape().len())?;
            let mut s = x.shape()[..axis].to_vec();
            s.extend_from_slice(idx.shape());
            s.extend_from_slice(&x.shape()[axis + 1..]);
            vec![out(s, x.is_float())]
        }
        "Shape" => {
            // Depends on the shape only: known even when the data is not.
            let shape = x()?.shape();
            let r = shape.len() as i64;
            let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let start = fix(a.int("start", 0));
            let end = fix(a.int("end", r));
            let dims: Vec<i64> = shape[start..end.max(start)]
                .iter()
                .map(|&d| d as i64)
                .collect();
            let t = IntTensor::new(vec![dims.len()], dims)?;
            vec![Abs::Known(Cow::Owned(Value::Int(t)))]
        }
        "ConstantOfShape" => {
            let dims = known_ints(ins, 0, "ConstantOfShape sizes")?;
            let s = dims
                .iter()
                .map(|&d| to_usize(d, "ConstantOfShape size"))
                .collect::<Result<_>>()?;
            let float = match a.get("value") {
                Some(AttributeValue::Tensor(t)) => matches!(
                    t.data_type,
                    data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 | data_type::BFLOAT16
                ),
                _ => true,
            };
            vec![out(s, float)]
        }
        other => return Err(Error::ShapeUnknown(format!("no shape rule for {other}"))),
    })
}

/// The row-major element count of a slice of `span` positions taken every `step`.
fn slice_len(span: i64, step: i64) -> usize {
    if span <= 0 {
        return 0;
    }
    let step = i128::from(step).unsigned_abs();
    (span as u128).div_ceil(step) as usize
}

/// How [`Graph::infer`] goes about a pass: which values it computes, and what a node it cannot
/// work out does to the rest.
#[derive(Clone, Copy)]
struct Mode {
    /// Outputs of at most this many elements are computed when everything their node reads
    /// is known.
    known_limit: usize,
    /// Whether a node whose shapes cannot be worked out (or whose inputs are not known) only
    /// leaves its own outputs unknown, instead of failing the whole inference.
    lenient: bool,
}

/// What the shape questions ([`Graph::infer_shapes`], [`Graph::infer_value`]) ask for.
const STRICT: Mode = Mode {
    known_limit: SMALL,
    lenient: false,
};

/// Largest value, in elements, that a plan folds ([`Graph::fold_values`]): Swin-T's
/// shifted-window mask of its first stage, `[64, 49, 49]` (153,664), fits; anything this size
/// costs a few milliseconds at most to form once and 4 MB to keep.
pub(crate) const FOLD_LIMIT: usize = 1 << 20;

impl Graph {
    /// What is known about every value `nodes` need, given the shapes of the `leaves` (the
    /// values a pass starts from); small integer values (shapes, sizes) are computed with
    /// `config`.
    fn infer(
        &self,
        config: &ExecConfig,
        leaves: &[(ValueId, &[usize])],
        nodes: &[usize],
        mode: Mode,
    ) -> Result<Vec<Option<Abs<'_>>>> {
        let mut store: Vec<Option<Abs>> = vec![None; self.values.len()];
        for &(id, shape) in leaves {
            if check_size(shape, "").is_err() {
                return Err(Error::Input(format!(
                    "an input of shape {shape:?} is larger than the {MAX_ELEMENTS}-element limit of one tensor"
                )));
            }
            store[id.0] = Some(out(shape.to_vec(), true));
        }
        for &ni in nodes {
            let node = &self.nodes[ni];
            let ins: Vec<Option<Abs>> = node
                .inputs
                .iter()
                .map(|i| {
                    i.and_then(|id| match &self.values[id.0].source {
                        Source::Const(v) => Some(Abs::Known(Cow::Borrowed(v))),
                        _ => store[id.0].clone(),
                    })
                })
                .collect();
            if let Some(missing) = node
                .inputs
                .iter()
                .zip(&ins)
                .find_map(|(id, v)| id.filter(|_| v.is_none()))
            {
                if mode.lenient {
                    continue;
                }
                return Err(Error::Input(format!(
                    "'{}' is needed by node '{}' but was not given",
                    self.values[missing.0].name, node.name
                )));
            }
            let outs = match self.infer_node(config, node, &ins, mode.known_limit) {
                Ok(outs) => outs,
                Err(_) if mode.lenient => continue,
                Err(e) => return Err(node_error(&node.name, &node.op_type, e)),
            };
            for (id, v) in node.outputs.iter().zip(outs) {
                store[id.0] = Some(v);
            }
        }
        Ok(store)
    }

    /// The values among the outputs of `nodes` that follow from the shapes of the `leaves` and
    /// the constants alone (the `Shape → Gather → Concat → Reshape` subgraphs of exporters,
    /// masks and position tables built from them), up to [`FOLD_LIMIT`] elements each: what a
    /// plan for these leaf shapes folds. Nodes whose shapes cannot be worked out only leave
    /// their own outputs (and what follows from them) out.
    pub(crate) fn fold_values(
        &self,
        config: &ExecConfig,
        leaves: &[(ValueId, Vec<usize>)],
        nodes: &[usize],
    ) -> Vec<(ValueId, Value)> {
        let leaves: Vec<(ValueId, &[usize])> =
            leaves.iter().map(|(id, s)| (*id, s.as_slice())).collect();
        let mode = Mode {
            known_limit: FOLD_LIMIT,
            lenient: true,
        };
        let Ok(store) = self.infer(config, &leaves, nodes, mode) else {
            // Only a leaf beyond the element limit fails here; the pass refuses it itself.
            return Vec::new();
        };
        let mut folded = Vec::new();
        for &ni in nodes {
            for &id in &self.nodes[ni].outputs {
                if let Some(Abs::Known(v)) = &store[id.0] {
                    folded.push((id, v.clone().into_owned()));
                }
            }
        }
        folded
    }

    /// The shape and kind of every value `nodes` form (and of the input) for an input of
    /// `input_shape`, by value index; `None` for constants and values not formed.
    ///
    /// # Errors
    ///
    /// As [`Graph::infer_value`].
    pub fn infer_shapes(
        &self,
        config: &ExecConfig,
        input_shape: &[usize],
        nodes: &[usize],
    ) -> Result<Vec<Option<InferredValue>>> {
        let store = self.infer(config, &[(self.input, input_shape)], nodes, STRICT)?;
        Ok(store
            .iter()
            .zip(&self.values)
            .map(|(v, info)| match (&info.source, v) {
                (Source::Const(_), _) | (_, None) => None,
                (_, Some(v)) => Some(InferredValue {
                    shape: v.shape().to_vec(),
                    is_float: v.is_float(),
                }),
            })
            .collect())
    }

    /// The shape and kind `value` will have when the graph runs on an input of `input_shape`.
    ///
    /// # Errors
    ///
    /// The errors the pass would give on shapes (a value beyond the element limit, shapes that
    /// do not fit, naming the node), and [`Error::ShapeUnknown`] when a shape depends on the
    /// input's values rather than its size.
    pub fn infer_value(
        &self,
        config: &ExecConfig,
        input_shape: &[usize],
        value: ValueId,
    ) -> Result<InferredValue> {
        if let Source::Const(v) = &self.values[value.0].source {
            return Ok(InferredValue {
                shape: v.shape().to_vec(),
                is_float: v.is_float(),
            });
        }
        let nodes = self.needed_nodes(&[value], &[]);
        let store = self.infer(config, &[(self.input, input_shape)], &nodes, STRICT)?;
        store[value.0]
            .as_ref()
            .map(|v| InferredValue {
                shape: v.shape().to_vec(),
                is_float: v.is_float(),
            })
            .ok_or_else(|| {
                Error::InvalidModel(format!("'{}' is not computed", self.value_name(value)))
            })
    }

    /// One node: its shape rule, then the values themselves when everything it reads is known
    /// and its outputs are small.
    fn infer_node<'m>(
        &'m self,
        config: &ExecConfig,
        node: &Node,
        ins: &[Option<Abs<'m>>],
        known_limit: usize,
    ) -> Result<Vec<Abs<'m>>> {
        let shapes = match rule(node, ins, self.opset) {
            Some(shapes) => shapes?,
            None => {
                // An op without a rule (added since): run it on stand-ins when its inputs are
                // small and no integer input (sizes, axes...) depends on the input's values.
                let small = ins
                    .iter()
                    .flatten()
                    .all(|i| elements(i.shape()).is_some_and(|n| n <= SMALL));
                let unknown_ints = ins
                    .iter()
                    .skip(1)
                    .flatten()
                    .any(|i| i.known().is_none() && !i.is_float());
                if !small || unknown_ints {
                    return Err(Error::ShapeUnknown(format!(
                        "no shape rule for {}",
                        node.op_type
                    )));
                }
                let all_known = ins.iter().flatten().all(|i| i.known().is_some());
                return run_small(config, node, ins, all_known);
            }
        };
        for s in &shapes {
            check_size(s.shape(), &node.op_type)?;
        }
        let all_known = ins.iter().flatten().all(|i| i.known().is_some());
        let small = shapes
            .iter()
            .all(|s| elements(s.shape()).is_some_and(|n| n <= known_limit));
        if all_known && small && !matches!(shapes.first(), Some(Abs::Known(_))) {
            return run_small(config, node, ins, true);
        }
        Ok(shapes)
    }
}

/// Runs `node` itself on its inputs, zeros standing in for the unknown ones; the outputs
/// are known values only when `all_known` (else only their shapes are kept).
fn run_small<'m>(
    config: &ExecConfig,
    node: &Node,
    ins: &[Option<Abs<'m>>],
    all_known: bool,
) -> Result<Vec<Abs<'m>>> {
    let standins: Vec<Option<Value>> = ins
        .iter()
        .map(|i| match i {
            Some(Abs::Shape { shape, float: true }) => Some(Value::Float(Tensor::zeros(shape))),
            Some(Abs::Shape {
                shape,
                float: false,
            }) => Some(Value::Int(IntTensor::zeros(shape))),
            _ => None,
        })
        .collect();
    let values: Vec<Option<&Value>> = ins
        .iter()
        .zip(&standins)
        .map(|(i, s)| s.as_ref().or_else(|| i.as_ref().and_then(Abs::known)))
        .collect();
    let outs = node.op.forward(config, &values)?;
    Ok(outs
        .into_iter()
        .map(|v| {
            if all_known {
                Abs::Known(Cow::Owned(v))
            } else {
                out(v.shape().to_vec(), v.is_float())
            }
        })
        .collect())
}
