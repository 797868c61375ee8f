//! The exec layer: running a plan. The forward pass over the plan's steps (here), the tape and
//! its backward pass ([`tape`]), one filter per batch item ([`mod@slice`]), the memory a pass
//! will take, worked out from shapes and the plan ([`estimate`]), and the node-by-node search
//! for the first NaN or infinity ([`nonfinite`]).
//!
//! The executor decides nothing about fusion: each step carries its fused forms, and the pass
//! runs the first that its kernels accept (see `plan`).

use std::time::Instant;

use crate::error::{Error, Result};
use crate::graph::{node_error, Graph, Source, ValueId};
use crate::ops::conv::BlockParts;
use crate::ops::{ExecConfig, OpKind};
use crate::plan::{Fused, Plan};
use crate::runtime::pool::on_pool;
use crate::runtime::profile;
use crate::tensor::{Tensor, Value};

pub(crate) mod estimate;
pub(crate) mod nonfinite;
pub(crate) mod slice;
pub(crate) mod tape;

pub use estimate::{MemoryEstimate, Pass};
pub use nonfinite::NonFinite;
pub use slice::{FilterSlice, SliceTape};
pub use tape::{Gradients, ReluRule, Tape};

/// What a forward pass leaves: every value still held (all of them in a taped pass), the
/// flop count (taped passes only), and which nodes ran inside the node before them.
pub(crate) struct Executed {
    pub store: Vec<Option<Value>>,
    pub flops: u64,
    pub fused: Vec<bool>,
}

/// Runs `plan` from the given leaf values, on the pool's threads. In an inference pass (a plan
/// whose `last_use` frees values) each value is freed after its last reader.
pub(crate) fn execute(
    graph: &Graph,
    plan: &Plan,
    config: &ExecConfig,
    leaves: Vec<(ValueId, Value)>,
    keep: bool,
) -> Result<Executed> {
    on_pool(|| execute_here(graph, plan, config, leaves, keep))
}

fn execute_here(
    graph: &Graph,
    plan: &Plan,
    config: &ExecConfig,
    leaves: Vec<(ValueId, Value)>,
    keep: bool,
) -> Result<Executed> {
    let mut store: Vec<Option<Value>> = vec![None; graph.values.len()];
    for (id, v) in leaves {
        store[id.0] = Some(v);
    }
    // Values the plan folded for these shapes; the nodes forming them are not among its steps.
    for (id, v) in &plan.folded {
        store[id.0] = Some(v.clone());
    }
    let mut fused = vec![false; graph.nodes.len()];
    let mut flops = 0u64;
    for (pos, step) in plan.steps.iter().enumerate() {
        let ni = step.node;
        let node = &graph.nodes[ni];
        if fused[ni] {
            // Ran inside the node before it; its inputs may still end their lives here.
            free_inputs(graph, plan, ni, pos, &mut store);
            continue;
        }
        let inputs = graph.inputs_of(ni, &store);
        if let Some(missing) = node
            .inputs
            .iter()
            .zip(&inputs)
            .find_map(|(id, v)| id.filter(|_| v.is_none()))
        {
            return Err(Error::Input(format!(
                "'{}' is needed by node '{}' but was not given",
                graph.values[missing.0].name, node.name
            )));
        }
        let t0 = profile::enabled().then(Instant::now);
        // The first fused form the kernels accept: the nodes it runs besides this one, the
        // value it stores and that value.
        let mut taken = None;
        for fusion in &step.fusions {
            if fusion.declined() {
                continue;
            }
            match run_fused(graph, config, ni, &fusion.form, &inputs, &store) {
                Some(run) => {
                    taken = Some(run);
                    break;
                }
                None => fusion.decline(),
            }
        }
        let (outs, out_ids, taken) = match taken {
            Some((taken, output, out)) => {
                for &f in &taken {
                    fused[f] = true;
                }
                let out = out.map_err(|e| node_error(&node.name, &node.op_type, e))?;
                (vec![out], vec![output], taken)
            }
            None => (
                node.op
                    .forward(config, &inputs)
                    .map_err(|e| node_error(&node.name, &node.op_type, e))?,
                node.outputs.clone(),
                Vec::new(),
            ),
        };
        if let Some(t0) = t0 {
            // e.g. `Conv+Clip+Conv+Clip` for a 1×1 convolution run inside a depthwise one.
            let mut op = node.op_type.clone();
            for &f in &taken {
                op.push('+');
                op.push_str(&graph.nodes[f].op_type);
            }
            let label = profile::label(&op, &node.name, "forward");
            profile::record(&label, t0.elapsed());
        }
        if keep {
            let out_refs: Vec<&Value> = outs.iter().collect();
            flops += node.op.flops(&inputs, &out_refs);
        }
        drop(inputs);
        for (id, v) in out_ids.iter().zip(outs) {
            store[id.0] = Some(v);
        }
        free_inputs(graph, plan, ni, pos, &mut store);
    }
    Ok(Executed {
        store,
        flops,
        fused,
    })
}

/// Frees the inputs of node `ni` whose last reader is step `pos` (never in a taped pass, whose
/// plan keeps every value).
fn free_inputs(graph: &Graph, plan: &Plan, ni: usize, pos: usize, store: &mut [Option<Value>]) {
    for id in graph.nodes[ni].inputs.iter().flatten() {
        if plan.last_use[id.0] == pos {
            store[id.0] = None;
        }
    }
}

/// The convolution op of node `n` (the plan only builds fused forms of convolutions).
fn conv_of(graph: &Graph, n: usize) -> Option<&crate::ops::Conv> {
    match graph.nodes[n].op.kind() {
        OpKind::Conv(c) => Some(c),
        _ => None,
    }
}

/// Node `n`'s inputs from `store`, its data input left out (a fused form forms it itself).
fn inputs_but_data<'a>(
    graph: &'a Graph,
    n: usize,
    store: &'a [Option<Value>],
) -> Vec<Option<&'a Value>> {
    std::iter::once(None)
        .chain(
            graph.nodes[n].inputs[1..]
                .iter()
                .map(|i| i.and_then(|id| graph.lookup(store, id))),
        )
        .collect()
}

/// The float value `id` holds when the step runs, if any (a residual addend).
fn float_value<'a>(
    graph: &'a Graph,
    store: &'a [Option<Value>],
    id: ValueId,
) -> Option<&'a Tensor> {
    match graph.lookup(store, id)? {
        Value::Float(t) => Some(t),
        Value::Int(_) => None,
    }
}

/// Step node `ni` (with inputs `inputs`) run in the fused form `form`: the nodes taken in
/// besides `ni`, the value stored and that value; `None` when the kernels decline the form.
fn run_fused(
    graph: &Graph,
    config: &ExecConfig,
    ni: usize,
    form: &Fused,
    inputs: &[Option<&Value>],
    store: &[Option<Value>],
) -> Option<(Vec<usize>, ValueId, Result<Value>)> {
    let conv = conv_of(graph, ni)?;
    let out = match form {
        Fused::Activation(act) => Some(conv.forward_activated(config, inputs, act.clamp)),
        Fused::Residual(r) => {
            conv.forward_residual(config, inputs, float_value(graph, store, r.other)?)
        }
        Fused::PointwiseDepthwise { pw_act, dw, dw_act } => {
            let dw_inputs = inputs_but_data(graph, *dw, store);
            conv_of(graph, *dw)?.forward_after_pointwise(
                config,
                (conv, inputs, pw_act.map(|a| a.clamp)),
                &dw_inputs,
                dw_act.map(|a| a.clamp),
            )
        }
        Fused::Block {
            expand,
            dw,
            dw_act,
            proj,
            proj_act,
            residual,
        } => {
            let dw_inputs = match expand {
                Some(_) => inputs_but_data(graph, *dw, store),
                None => inputs.to_vec(),
            };
            let proj_inputs = inputs_but_data(graph, *proj, store);
            let addend = residual.and_then(|r| float_value(graph, store, r.other));
            let parts = BlockParts {
                expand: expand.map(|(_, act)| (conv, inputs, act.map(|a| a.clamp))),
                inputs: &dw_inputs,
                act: dw_act.map(|a| a.clamp),
                project: (
                    conv_of(graph, *proj)?,
                    &proj_inputs,
                    proj_act.map(|a| a.clamp),
                ),
                residual: addend,
            };
            let out = conv_of(graph, *dw)?.forward_block(config, &parts)?;
            let with_residual = addend.is_some();
            return Some((
                form.taken(with_residual),
                form.output(graph, with_residual),
                out,
            ));
        }
    }?;
    Some((form.taken(true), form.output(graph, true), out))
}

/// The values of `targets` from a pass's store (constants from the graph).
pub(crate) fn take_targets(
    graph: &Graph,
    store: &mut [Option<Value>],
    targets: &[ValueId],
) -> Result<Vec<Value>> {
    targets
        .iter()
        .map(|t| match &graph.values[t.0].source {
            Source::Const(v) => Ok(v.clone()),
            _ => store[t.0].take().ok_or_else(|| {
                Error::InvalidModel(format!(
                    "value '{}' was not computed",
                    graph.values[t.0].name
                ))
            }),
        })
        .collect()
}
