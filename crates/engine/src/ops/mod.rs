//! ONNX operators: each one a forward function and a vector-Jacobian product.
//!
//! The graph is the tape: the executor keeps the forward values it needs and walks the nodes
//! backwards, asking each op for the gradient of its inputs given the gradient of its outputs.
//! Ops only produce gradients for inputs that depend on the model input (`needs`), so weights never
//! pay for a gradient nobody asked for.
//!
//! Every op lives in a family module that registers its builders in [`registry`], the way tract's
//! `onnx/src/ops/mod.rs` does.

use std::collections::HashMap;
use std::sync::OnceLock;

use convscope_onnx::NodeProto;

use crate::error::{Error, Result};
use crate::kernels::epilogue;
pub use crate::kernels::epilogue::Clamp;
use crate::runtime::cpu::Isa;
use crate::tensor::{Tensor, Value};
pub use conv::{set_winograd, winograd_enabled};

pub(crate) mod activation;
pub(crate) mod binary;
pub(crate) mod conv;
pub(crate) mod gemm;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod pad;
pub(crate) mod pool;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod shape;
pub(crate) mod softmax;

/// Everything a vector-Jacobian product may look at.
pub struct Vjp<'a> {
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
pub(crate) fn mask_between(g: &mut Tensor, y: &Tensor, c: Clamp, guided: bool) {
    let y = y.data();
    crate::runtime::pool::for_each_chunk_mut(g.data_mut(), 1 << 14, |i, g| {
        let y = &y[i << 14..][..g.len()];
        // Branch-free loops (one per rule, `&` not `&&`) so each compiles to vector selects.
        if guided {
            for (gv, &yv) in g.iter_mut().zip(y) {
                let keep = c.passes(yv) & (*gv > 0.0);
                *gv = if keep { *gv } else { 0.0 };
            }
        } else {
            epilogue::mask(Isa::host(), c, g, y);
        }
    });
}

/// A layer of a fused block: its op, its inputs (the one the block forms itself absent) and
/// the clamp after it, if any.
pub type BlockLayer<'a> = (&'a dyn Op, &'a [Option<&'a Value>], Option<Clamp>);

/// The nodes of an inverted-residual block (MobileNetV2, EfficientNet) that
/// [`Op::forward_block`] runs as one: an optional 1×1 expansion, the depthwise convolution
/// (whose op receives this), a 1×1 projection reading only its output, and an optional
/// residual addend after the projection.
pub struct BlockParts<'a> {
    /// The expansion, when its output only feeds the depthwise layer.
    pub expand: Option<BlockLayer<'a>>,
    /// The depthwise layer's inputs (input 0 absent when the expansion is fused).
    pub inputs: &'a [Option<&'a Value>],
    /// The clamp after the depthwise layer.
    pub act: Option<Clamp>,
    /// The projection (input 0 absent).
    pub project: BlockLayer<'a>,
    /// The other operand of an `Add` that only reads the projection's output.
    pub residual: Option<&'a Tensor>,
}

/// One executable ONNX node.
pub trait Op: Send + Sync {
    /// Computes the outputs from the inputs.
    fn forward(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>>;

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

    /// Whether the op maps each element of input 0 to the output element at the same position
    /// (activations), its other inputs being scalars. Such ops commute with slicing channels.
    fn elementwise(&self) -> bool {
        false
    }

    /// For a convolution: the same convolution applied to `items` images stacked along the
    /// channel axis (`[1, items·C, H, W]`), each with its own single filter (weights
    /// `[items, C, kh, kw]`, bias `[items]`). `None` when the op cannot be sliced that way.
    fn one_filter_per_item(&self, items: usize) -> Option<Box<dyn Op>> {
        let _ = items;
        None
    }

    /// For `Relu` and `Clip` with constant bounds: the activation as a [`Clamp`].
    fn as_clamp(&self, inputs: &[Option<&Value>]) -> Option<Clamp> {
        let _ = inputs;
        None
    }

    /// Like [`Op::backward`], with the gradient of input 0 already multiplied by the derivative
    /// of `act` read from input 0 itself (1 where `lo < x < hi`, else 0). The executor asks for
    /// it when input 0 is the output of a clamp fused into the convolution before it and this
    /// node is its only reader; the clamp's own backward pass is then skipped. `None` when the
    /// op has no such form.
    fn backward_masked(&self, v: &Vjp, act: Clamp) -> Option<Result<Vec<Option<Tensor>>>> {
        let _ = (v, act);
        None
    }

    /// For a convolution: the forward pass with `act` applied to each output block while it is
    /// still in cache, so the pre-activation value is never written out. `None` when the op
    /// has no such form.
    fn forward_activated(&self, inputs: &[Option<&Value>], act: Clamp) -> Option<Result<Value>> {
        let _ = (inputs, act);
        None
    }

    /// For a convolution: `forward(inputs) + residual` (a residual `Add` after it), the sum
    /// formed while each output block is in cache. `None` when the op has no such form for
    /// these inputs (the caller then runs the two nodes apart); errors in the inputs also give
    /// `None`, so that the unfused pass reports them.
    fn forward_residual(
        &self,
        inputs: &[Option<&Value>],
        residual: &Tensor,
    ) -> Option<Result<Value>> {
        let _ = (inputs, residual);
        None
    }

    /// For a depthwise convolution whose input is the output of `pointwise` (a 1×1
    /// convolution with inputs `pointwise_inputs`, clamped by `pointwise_act`) that nothing
    /// else reads: both layers in one sweep, the 1×1 output never formed whole. `inputs` are
    /// this node's own, input 0 absent. `None` when the two have no such form (the caller then
    /// runs them apart); errors in the inputs also give `None`, so that the unfused pass
    /// reports them.
    fn forward_after_pointwise(
        &self,
        pointwise: &dyn Op,
        pointwise_inputs: &[Option<&Value>],
        pointwise_act: Option<Clamp>,
        inputs: &[Option<&Value>],
        act: Option<Clamp>,
    ) -> Option<Result<Value>> {
        let _ = (pointwise, pointwise_inputs, pointwise_act, inputs, act);
        None
    }

    /// For a depthwise convolution: the layers of an inverted-residual block around it in
    /// one sweep (see [`BlockParts`]), the depthwise output (and the expansion's) never formed
    /// whole. `None` when the ops or shapes have no such form (the caller then runs them
    /// apart or in the pairs above); errors in the inputs also give `None`, so that the
    /// unfused pass reports them.
    fn forward_block(&self, parts: &BlockParts) -> Option<Result<Value>> {
        let _ = parts;
        None
    }

    /// The op as `Any`, for ops that look into another op of their own kind (fusions).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
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
        gemm::register(&mut reg);
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
