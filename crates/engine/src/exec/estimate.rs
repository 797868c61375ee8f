//! The memory of a pass worked out from the shapes alone (`graph::infer`) and the plan the pass
//! will run: the values the executor keeps and frees, step by step, without forming any.
//!
//! The estimate lives beside the executor because it mirrors it: an inference pass frees each
//! value after the step the plan names as its last reader, a taped pass keeps every value, and
//! the backward sweep (`tape.rs`) keeps a gradient until the node that produced its value has
//! been swept. Which convolutions run with their activation is read from the plan, not matched
//! again here.

use std::fmt;

use crate::graph::{Graph, InferredValue, ValueId};
use crate::plan::{Fused, Plan};

/// Which pass [`Model::estimate_forward_bytes`](crate::Model::estimate_forward_bytes)
/// estimates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// [`Model::run`](crate::Model::run): each value is freed after its last reader.
    Inference,
    /// [`Model::forward`](crate::Model::forward): every value computed is kept on the tape.
    Tape,
    /// [`Model::forward`](crate::Model::forward) and then [`crate::Tape::backward`] from the
    /// targets to the input: the tape plus the gradients alive at once during the backward
    /// sweep.
    Gradient,
}

impl Pass {
    /// Whether the pass keeps every value (a taped plan).
    pub(crate) fn keeps_values(self) -> bool {
        self != Pass::Inference
    }
}

/// The memory a pass will take, from
/// [`Model::estimate_forward_bytes`](crate::Model::estimate_forward_bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Bytes of the pass's tensors alive at once at the worst moment: the input, the forward
    /// values (all of them on a tape) and, for [`Pass::Gradient`], the gradients. The model's
    /// weights and the kernels' caches (already resident once the model has run) and small
    /// per-thread scratch buffers come on top; see design.md ("Hostile inputs") for measured
    /// figures.
    pub peak_bytes: u64,
    /// Sum of the bytes of every value the pass forms (input included).
    pub total_bytes: u64,
    /// The largest single value: its ONNX name and shape.
    pub largest: (String, Vec<usize>),
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1} MB at the peak (largest value '{}' {:?})",
            self.peak_bytes as f64 / 1e6,
            self.largest.0,
            self.largest.1
        )
    }
}

fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The memory of running `plan` (made for `pass`'s mode, targets `targets`, from the graph's
/// input of `input_shape`) on values of the inferred `shapes` (by value index, from
/// `Graph::infer_shapes` over the plan's nodes).
pub(crate) fn estimate(
    graph: &Graph,
    plan: &Plan,
    shapes: &[Option<InferredValue>],
    input_shape: &[usize],
    targets: &[ValueId],
    pass: Pass,
) -> MemoryEstimate {
    // f32 data, i64 integers; nothing for constants.
    let size_of = |id: ValueId| -> u64 {
        match &shapes[id.0] {
            None => 0,
            Some(v) => {
                let size = if v.is_float { 4 } else { 8 };
                elements(&v.shape).map_or(u64::MAX, |n| (n as u64).saturating_mul(size))
            }
        }
    };
    // The activation node each convolution runs in its sweep, as the plan says: in every pass
    // (the form is offered to inference and taped plans alike), the convolution's own output
    // is never stored (its gradient is still formed). Other fused forms (blocks, residual
    // adds, a 1×1 convolution inside a depthwise one) are not counted: they form fewer values,
    // so the inference figure is an upper bound.
    let mut activation = vec![None; graph.nodes.len()];
    let mut in_activation = vec![false; graph.values.len()];
    for step in &plan.steps {
        for fusion in &step.fusions {
            if let Fused::Activation(act) = &fusion.form {
                activation[step.node] = Some(act.node);
                in_activation[graph.nodes[step.node].outputs[0].0] = true;
            }
        }
    }
    let bytes_of = |id: ValueId| -> u64 {
        if in_activation[id.0] {
            0
        } else {
            size_of(id)
        }
    };
    let input_bytes = bytes_of(graph.input);
    let mut largest = (
        graph.values[graph.input.0].name.clone(),
        input_shape.to_vec(),
        input_bytes,
    );
    // The values the plan folded are in the store from the start, as the input is.
    let folded_bytes = plan
        .folded
        .iter()
        .fold(0u64, |acc, (id, _)| acc.saturating_add(bytes_of(*id)));
    let mut total = input_bytes.saturating_add(folded_bytes);
    for &ni in &plan.nodes {
        for &o in &graph.nodes[ni].outputs {
            let b = bytes_of(o);
            total = total.saturating_add(b);
            if b > largest.2 {
                let shape = shapes[o.0]
                    .as_ref()
                    .map(|v| v.shape.clone())
                    .unwrap_or_default();
                largest = (graph.values[o.0].name.clone(), shape, b);
            }
        }
    }
    let peak = match pass {
        Pass::Inference => inference_peak(
            graph,
            plan,
            input_bytes.saturating_add(folded_bytes),
            &bytes_of,
            &activation,
        ),
        Pass::Tape => total,
        Pass::Gradient => {
            total.saturating_add(gradient_peak(graph, plan, targets, shapes, &size_of))
        }
    };
    MemoryEstimate {
        peak_bytes: peak,
        total_bytes: total,
        largest: (largest.0, largest.1),
    }
}

/// The most bytes alive at once in an inference pass starting with `input_bytes` (the input and
/// the folded values): values are freed after their last reader (the plan's `last_use`; targets are kept), a node's inputs are alive while it forms
/// its outputs, and a convolution forms the output of the activation run in its sweep
/// (`activation[conv]`).
fn inference_peak(
    graph: &Graph,
    plan: &Plan,
    input_bytes: u64,
    bytes_of: &dyn Fn(ValueId) -> u64,
    activation: &[Option<usize>],
) -> u64 {
    let (mut live, mut peak) = (input_bytes, input_bytes);
    let output_bytes =
        |n: usize| -> u64 { graph.nodes[n].outputs.iter().map(|&o| bytes_of(o)).sum() };
    let mut made_early = vec![false; graph.nodes.len()];
    for (pos, &n) in plan.nodes.iter().enumerate() {
        let node = &graph.nodes[n];
        let mut made = if made_early[n] { 0 } else { output_bytes(n) };
        if let Some(act) = activation[n] {
            made = made.saturating_add(output_bytes(act));
            made_early[act] = true;
        }
        live = live.saturating_add(made);
        peak = peak.max(live);
        let mut freed: Vec<ValueId> = Vec::new();
        for &id in node.inputs.iter().flatten() {
            if plan.last_use[id.0] == pos && !freed.contains(&id) {
                freed.push(id);
                live = live.saturating_sub(bytes_of(id));
            }
        }
    }
    peak
}

/// The most gradient bytes alive at once in a backward sweep over the plan's nodes seeded at
/// `targets`, as `Tape::backward` keeps them: a node's input gradients are formed apart (then
/// added into an existing one) while its output gradients are alive, and the output gradients
/// are dropped after the node.
fn gradient_peak(
    graph: &Graph,
    plan: &Plan,
    targets: &[ValueId],
    shapes: &[Option<InferredValue>],
    bytes_of: &dyn Fn(ValueId) -> u64,
) -> u64 {
    let differentiable = |id: ValueId| {
        graph.values[id.0].varies && shapes[id.0].as_ref().is_some_and(|v| v.is_float)
    };
    let mut has = vec![false; graph.values.len()];
    let mut live = 0u64;
    for &t in targets {
        if differentiable(t) && !std::mem::replace(&mut has[t.0], true) {
            live = live.saturating_add(bytes_of(t));
        }
    }
    let mut peak = live;
    for &n in plan.nodes.iter().rev() {
        let node = &graph.nodes[n];
        if !node.outputs.iter().any(|o| has[o.0]) {
            continue;
        }
        let mut inputs: Vec<ValueId> = node.inputs.iter().flatten().copied().collect();
        inputs.dedup();
        let formed: u64 = inputs
            .iter()
            .filter(|&&id| differentiable(id))
            .map(|&id| bytes_of(id))
            .sum();
        peak = peak.max(live.saturating_add(formed));
        for id in inputs {
            if differentiable(id) && !std::mem::replace(&mut has[id.0], true) {
                live = live.saturating_add(bytes_of(id));
            }
        }
        for &o in &node.outputs {
            if std::mem::replace(&mut has[o.0], false) {
                live = live.saturating_sub(bytes_of(o));
            }
        }
    }
    peak
}
