//! ONNX operators: each one a forward function and a vector-Jacobian product.
//!
//! The graph is the tape: the executor keeps the forward values it needs and walks the nodes
//! backwards, asking each op for the gradient of its inputs given the gradient of its outputs.
//! Ops only produce gradients for inputs that depend on the model input (`needs`), so weights never
//! pay for a gradient nobody asked for.
//!
//! Every op lives in a family module that registers its builders in [`registry`], the way tract's
//! `onnx/src/ops/mod.rs` does.
//!
//! The [`Op`] trait is narrow: forward, backward, cost, and [`OpKind`]. The fused forms the
//! planner may choose (a convolution with its activation, its residual `Add`, the 1×1
//! convolution before it, a whole inverted-residual block; a masked input gradient) are methods
//! of the concrete ops ([`Conv`], [`Pool`], [`Unary`]), reached through [`Op::kind`].

use std::collections::HashMap;
use std::sync::OnceLock;

use convscope_onnx::NodeProto;

use crate::error::{Error, Result};
use crate::kernels::epilogue;
pub use crate::kernels::epilogue::Clamp;
use crate::runtime::cpu::Isa;
use crate::runtime::pool::for_each_chunk_mut;
use crate::tensor::{Tensor, Value};
pub use activation::Unary;
pub use conv::Conv;
pub use pool::Pool;

pub(crate) mod activation;
pub(crate) mod binary;
pub(crate) mod conv;
pub(crate) mod einsum;
pub(crate) mod gemm;
pub(crate) mod index;
pub(crate) mod layer_norm;
pub(crate) mod logic;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod pad;
pub(crate) mod pool;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod shape;
pub(crate) mod softmax;

/// How a run may compute: the instruction set its kernels use and whether 3×3 convolutions may
/// take the Winograd route. A value, carried by a model ([`crate::Model::with_config`]) and
/// handed to every op of a run, so two models (or two tests) in one process can run
/// differently at the same time.
///
/// ```
/// use convscope_engine::{ExecConfig, Isa};
/// // What a machine without AVX-512 or AVX2 runs, with im2col + GEMM for every convolution.
/// let portable = ExecConfig {
///     isa: Isa::portable(),
///     winograd: false,
///     ..ExecConfig::default()
/// };
/// assert_ne!(portable, ExecConfig::default());
/// assert_eq!(ExecConfig::default().isa, Isa::host());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExecConfig {
    /// The instruction set the kernels may use (default: this CPU's, [`Isa::host`]).
    pub isa: Isa,
    /// Whether 3×3, stride-1 convolutions large enough to gain take the Winograd F(4×4, 3×3)
    /// route (default: on). Off, every convolution is im2col + GEMM: about 4× the
    /// multiply-adds for 3×3 layers but the rounding of a plain dot product; the `conv_micro`
    /// example times both.
    pub winograd: bool,
    /// Whether a pass's plan folds the values that follow from the input's shape and the
    /// constants alone (the `Shape → Gather → Concat → Reshape` subgraphs exporters emit,
    /// masks built from them), computing them once per input shape instead of in every pass
    /// (default: on). Off, every node runs in every pass; the values are the same.
    pub fold_shapes: bool,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            isa: Isa::host(),
            winograd: true,
            fold_shapes: true,
        }
    }
}

/// Everything a vector-Jacobian product may look at.
pub struct Vjp<'a> {
    /// How the run computes.
    pub config: &'a ExecConfig,
    /// The node's inputs (`None` for omitted optional inputs).
    pub inputs: &'a [Option<&'a Value>],
    /// The node's outputs from the forward pass.
    pub outputs: &'a [&'a Value],
    /// Gradient of the objective with respect to each output (`None` when it does not reach it).
    pub grads: &'a [Option<&'a Tensor>],
    /// Which inputs need a gradient.
    pub needs: &'a [bool],
}

impl Vjp<'_> {
    /// Float input `i`.
    pub fn input(&self, i: usize) -> Result<&Tensor> {
        float_input(self.inputs, i)
    }
    /// Float output `i`.
    pub fn output(&self, i: usize) -> Result<&Tensor> {
        self.outputs[i].as_float("output")
    }
    /// Gradient of output `i`, or an error if it is missing.
    pub fn grad(&self, i: usize) -> Result<&Tensor> {
        self.grads
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| Error::Shape(format!("missing gradient for output {i}")))
    }
}

/// `g ← g` where `lo < y < hi`, else 0 (and, when `guided`, negative gradients become 0 too):
/// the backward pass of a [`Clamp`] read from its output `y`.
///
/// Exactly ReLU's derivative; for `Clip` it differs from the inclusive rule of the unfused op
/// only where the input equals a bound exactly.
pub(crate) fn mask_between(isa: Isa, g: &mut Tensor, y: &Tensor, c: Clamp, guided: bool) {
    let y = y.data();
    for_each_chunk_mut(g.data_mut(), 1 << 14, |i, g| {
        let y = &y[i << 14..][..g.len()];
        // Branch-free loops (one per rule, `&` not `&&`) so each compiles to vector selects.
        if guided {
            for (gv, &yv) in g.iter_mut().zip(y) {
                let keep = c.passes(yv) & (*gv > 0.0);
                *gv = if keep { *gv } else { 0.0 };
            }
        } else {
            epilogue::mask(isa, c, g, y);
        }
    });
}

/// What the planner may know of an op beyond its forward and backward passes: the few kinds
/// of op that take part in fusions and slicing, as their concrete types (whose fused forms are
/// their own methods). Everything else is [`OpKind::Other`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum OpKind<'a> {
    /// Nothing the planner looks into.
    Other,
    /// An element-wise unary op (activations and math functions): maps each element of input
    /// 0 to the output element at the same position, its other inputs being scalars, so it
    /// commutes with slicing channels.
    Unary(&'a Unary),
    /// `Conv`.
    Conv(&'a Conv),
    /// `MaxPool` or `AveragePool`.
    Pool(&'a Pool),
    /// `Add` (of two values, broadcasting).
    Add,
}

/// One executable ONNX node: a forward pass, a vector-Jacobian product, its cost, and what
/// kind of op it is for the planner ([`OpKind`]).
pub trait Op: Send + Sync {
    /// Computes the outputs from the inputs.
    fn forward(&self, config: &ExecConfig, inputs: &[Option<&Value>]) -> Result<Vec<Value>>;

    /// Returns, for each input, the gradient of the objective (or `None` where `needs` is false).
    fn backward(&self, v: &Vjp) -> Result<Vec<Option<Tensor>>> {
        let _ = v;
        Err(Error::NotDifferentiable("this op".into()))
    }

    /// Multiply-add count of a forward pass for the given input shapes, for GFLOP/s figures.
    fn flops(&self, inputs: &[Option<&Value>], outputs: &[&Value]) -> u64 {
        let _ = (inputs, outputs);
        0
    }

    /// The op's kind, for fusion and slicing.
    fn kind(&self) -> OpKind<'_> {
        OpKind::Other
    }
}

/// What an op builder sees: the node and the inputs that are known constants.
pub struct BuildCtx<'a> {
    /// The node being built.
    pub node: &'a NodeProto,
    /// For each input, its value when it is an initializer or a folded constant.
    pub consts: Vec<Option<&'a Value>>,
    /// The model's `ai.onnx` opset version.
    pub opset: i64,
}

impl BuildCtx<'_> {
    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.node.attr_int(name).unwrap_or(default)
    }
    pub(crate) fn float(&self, name: &str, default: f32) -> f32 {
        self.node.attr_float(name).unwrap_or(default)
    }
    pub(crate) fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.node.attr_ints(name).map(|v| v.to_vec())
    }
    pub(crate) fn string(&self, name: &str, default: &str) -> String {
        self.node
            .attr_string(name)
            .unwrap_or_else(|| default.to_string())
    }
}

/// Builds an op from its node.
pub type Builder = fn(&BuildCtx) -> Result<Box<dyn Op>>;

/// The op-type → builder table.
pub fn registry() -> &'static HashMap<&'static str, Builder> {
    static REG: OnceLock<HashMap<&'static str, Builder>> = OnceLock::new();
    REG.get_or_init(|| {
        let mut reg: HashMap<&'static str, Builder> = HashMap::new();
        activation::register(&mut reg);
        binary::register(&mut reg);
        conv::register(&mut reg);
        einsum::register(&mut reg);
        gemm::register(&mut reg);
        index::register(&mut reg);
        layer_norm::register(&mut reg);
        logic::register(&mut reg);
        matmul::register(&mut reg);
        norm::register(&mut reg);
        pad::register(&mut reg);
        pool::register(&mut reg);
        reduce::register(&mut reg);
        resize::register(&mut reg);
        shape::register(&mut reg);
        softmax::register(&mut reg);
        reg
    })
}

/// Float input `i`, with a clear error when it is missing or an integer.
pub(crate) fn float_input<'a>(inputs: &[Option<&'a Value>], i: usize) -> Result<&'a Tensor> {
    match inputs.get(i).copied().flatten() {
        // The name is formatted only for the error: every node's inputs come through here.
        Some(Value::Float(t)) => Ok(t),
        Some(v) => v.as_float(&format!("input {i}")),
        None => Err(Error::Shape(format!("missing input {i}"))),
    }
}

/// Any input `i`.
pub(crate) fn any_input<'a>(inputs: &[Option<&'a Value>], i: usize) -> Result<&'a Value> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| Error::Shape(format!("missing input {i}")))
}

/// Normalises a possibly negative axis against `rank`.
///
/// A scalar (rank 0) has no axis: every caller indexes the shape with the result, so accepting
/// axis 0 there (as `r.max(1)` used to) turned e.g. a Concat or Gather of scalars into a panic.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::Shape(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// Gradient list with only input 0 set.
pub(crate) fn only_first(g: Tensor, n_inputs: usize) -> Vec<Option<Tensor>> {
    let mut v: Vec<Option<Tensor>> = (0..n_inputs).map(|_| None).collect();
    v[0] = Some(g);
    v
}

/// Largest tensor, in elements, an op allocates: 2^28 values (1 GiB of `f32`).
///
/// Output shapes computed from attributes or constant inputs (pads, Resize sizes and scales,
/// ConstantOfShape, broadcasts against large constants) are checked against it, so a corrupt or
/// hostile model gets an error instead of an allocation that aborts the process.
pub(crate) const MAX_ELEMENTS: usize = 1 << 28;

/// Checks that a tensor of `shape` may be allocated and returns its element count.
///
/// Zero-sized axes do not excuse huge others (they would still drive per-axis work), so the bound
/// is on the product of `max(d, 1)`.
pub(crate) fn check_size(shape: &[usize], what: &str) -> Result<usize> {
    let bounded = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&n| n <= MAX_ELEMENTS);
    match bounded {
        Some(_) => Ok(shape.iter().product()),
        None => Err(Error::Shape(format!(
            "{what} would produce a tensor of shape {shape:?}, larger than the {MAX_ELEMENTS}-element limit"
        ))),
    }
}
