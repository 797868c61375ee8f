//! The tape of a forward pass, and the backward pass over it: one reverse sweep over the same
//! steps for the gradient of any objective, with respect to the input or any value.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::{node_error, Graph, Source, ValueId};
use crate::ops::{mask_between, Clamp, ExecConfig, OpKind, Vjp};
use crate::plan::Plan;
use crate::runtime::pool::on_pool;
use crate::runtime::profile;
use crate::tensor::{Tensor, Value};

/// Forward values kept for a backward pass.
pub struct Tape<'m> {
    graph: &'m Graph,
    /// The plan the pass ran (its nodes, and the clamps of the activations fused into the
    /// convolutions before them).
    plan: Arc<Plan>,
    config: ExecConfig,
    values: Vec<Option<Value>>,
    /// Activation nodes that ran inside the convolution before them; the convolution's own
    /// output was never stored.
    fused: Vec<bool>,
    flops: u64,
}

/// How gradients pass back through ReLU-like nodes (`Relu`, `Clip`, `LeakyRelu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReluRule {
    /// The exact derivative.
    Exact,
    /// Guided backpropagation (Springenberg et al., 2015): the exact derivative, then negative
    /// gradients are zeroed.
    Guided,
}

/// The result of [`Tape::backward`].
#[derive(Debug, Clone)]
pub struct Gradients {
    /// d(objective)/d(model input), in the input's layout.
    pub input: Tensor,
    /// d(objective)/d(value) for every value asked for in `wrt`.
    pub values: HashMap<ValueId, Tensor>,
}

impl<'m> Tape<'m> {
    /// The tape of a taped forward pass of `plan` (see [`super::execute`]).
    pub(crate) fn new(
        graph: &'m Graph,
        plan: Arc<Plan>,
        config: ExecConfig,
        pass: super::Executed,
    ) -> Tape<'m> {
        Tape {
            graph,
            plan,
            config,
            values: pass.store,
            fused: pass.fused,
            flops: pass.flops,
        }
    }
}

impl Tape<'_> {
    /// A float value computed by the forward pass.
    pub fn value(&self, id: ValueId) -> Result<&Tensor> {
        self.graph
            .lookup(&self.values, id)
            .ok_or_else(|| {
                Error::InvalidModel(format!(
                    "'{}' was not computed by this pass",
                    self.graph.value_name(id)
                ))
            })?
            .as_float(self.graph.value_name(id))
    }

    /// Floating-point operations (2 per multiply-add) of the convolutions and matrix products run.
    pub fn flops(&self) -> u64 {
        self.flops
    }

    /// Bytes held by the forward values of this pass (what a batch item costs in memory).
    pub fn memory_bytes(&self) -> usize {
        self.values
            .iter()
            .flatten()
            .map(|v| v.shape().iter().product::<usize>() * 4)
            .sum()
    }

    /// Back-propagates `seeds` (d objective / d value for some values) to the input.
    ///
    /// Returns the input gradient and the gradient of every value in `wrt`. Only values that
    /// depend on the input get gradients; weights never do.
    pub fn backward(&self, seeds: Vec<(ValueId, Tensor)>, wrt: &[ValueId]) -> Result<Gradients> {
        self.backward_with(seeds, wrt, ReluRule::Exact)
    }

    /// [`Tape::backward`] with a choice of rule for ReLU-like nodes (guided backpropagation).
    pub fn backward_with(
        &self,
        seeds: Vec<(ValueId, Tensor)>,
        wrt: &[ValueId],
        rule: ReluRule,
    ) -> Result<Gradients> {
        let m = self.graph;
        let mut grads = self.propagate(seeds, wrt, None, rule)?;
        let shape = self.value(m.input)?.shape().to_vec();
        let input = grads[m.input.0]
            .take()
            .unwrap_or_else(|| Tensor::zeros(&shape));
        let values = wrt
            .iter()
            .filter_map(|&id| grads[id.0].take().map(|g| (id, g)))
            .collect();
        Ok(Gradients { input, values })
    }

    /// Gradients of `seeds` with respect to the values in `wrt` only.
    ///
    /// The sweep visits only the nodes downstream of `wrt` (for Grad-CAM, the classifier head),
    /// so several targets cost several passes through the head, not through the whole network.
    /// Values the objective does not reach get a zero gradient.
    pub fn backward_to(
        &self,
        seeds: Vec<(ValueId, Tensor)>,
        wrt: &[ValueId],
    ) -> Result<HashMap<ValueId, Tensor>> {
        let m = self.graph;
        let mut downstream = vec![false; m.values.len()];
        wrt.iter().for_each(|id| downstream[id.0] = true);
        let mut visit = vec![false; m.nodes.len()];
        for &ni in &self.plan.nodes {
            if m.nodes[ni]
                .inputs
                .iter()
                .flatten()
                .any(|id| downstream[id.0])
            {
                visit[ni] = true;
                m.nodes[ni]
                    .outputs
                    .iter()
                    .for_each(|o| downstream[o.0] = true);
            }
        }
        let mut grads = self.propagate(seeds, wrt, Some(&visit), ReluRule::Exact)?;
        wrt.iter()
            .map(|&id| {
                let g = match grads[id.0].take() {
                    Some(g) => g,
                    None => Tensor::zeros(self.value(id)?.shape()),
                };
                Ok((id, g))
            })
            .collect()
    }

    /// When node `ni`'s input 0 is the output `u` of a clamp fused into the convolution before
    /// it, `ni` is `u`'s only reader, and `u` is neither seeded nor asked for: `u` and the
    /// clamp. `ni` may then return its input gradient already masked by the clamp's derivative
    /// ([`crate::ops::Conv::backward_masked`]), which saves the clamp's own backward pass over
    /// the activation (it reads the gradient and the value and writes the gradient again).
    fn premask(&self, ni: usize, wrt: &[ValueId], seeded: &[bool]) -> Option<(ValueId, Clamp)> {
        let m = self.graph;
        let u = m.nodes[ni].inputs.first().copied().flatten()?;
        let Source::Node(a) = m.values[u.0].source else {
            return None;
        };
        if !self.fused[a] || m.consumers[u.0] != [ni] || seeded[u.0] || wrt.contains(&u) {
            return None;
        }
        Some((u, self.plan.clamps[a]?))
    }

    /// Whether `v` is a convolution output consumed by an activation fused into it.
    fn fused_into(&self, v: ValueId) -> bool {
        let m = self.graph;
        m.consumers[v.0].iter().any(|&c| self.fused[c])
    }

    /// The backward pass of activation node `ni` that ran inside its convolution: the gradient
    /// passes where the stored activated value lies strictly between the bounds.
    fn fused_activation_backward(
        &self,
        ni: usize,
        grads: &mut [Option<Tensor>],
        wrt: &[ValueId],
        rule: ReluRule,
        premasked: bool,
    ) -> Result<()> {
        let m = self.graph;
        let node = &m.nodes[ni];
        let (out, input) = (node.outputs[0], node.inputs[0].expect("checked by fusion"));
        let y = self.value(out)?;
        let clamp = self.plan.clamps[ni]
            .ok_or_else(|| Error::InvalidModel("fused activation without bounds".into()))?;
        let t0 = profile::enabled().then(std::time::Instant::now);
        let dy = if wrt.contains(&out) {
            grads[out.0].clone()
        } else {
            grads[out.0].take()
        };
        if let Some(mut dx) = dy {
            if !premasked {
                mask_between(self.config.isa, &mut dx, y, clamp, rule == ReluRule::Guided);
            }
            accumulate(&mut grads[input.0], dx)?;
        }
        if let Some(t0) = t0 {
            let label = profile::label(&node.op_type, &node.name, "backward");
            profile::record(&label, t0.elapsed());
        }
        Ok(())
    }

    /// The reverse sweep shared by [`Tape::backward`] and [`Tape::backward_to`].
    fn propagate(
        &self,
        seeds: Vec<(ValueId, Tensor)>,
        wrt: &[ValueId],
        only: Option<&[bool]>,
        rule: ReluRule,
    ) -> Result<Vec<Option<Tensor>>> {
        on_pool(|| self.propagate_here(seeds, wrt, only, rule))
    }

    fn propagate_here(
        &self,
        seeds: Vec<(ValueId, Tensor)>,
        wrt: &[ValueId],
        only: Option<&[bool]>,
        rule: ReluRule,
    ) -> Result<Vec<Option<Tensor>>> {
        let m = self.graph;
        let mut grads: Vec<Option<Tensor>> = vec![None; m.values.len()];
        // Values whose gradient already carries the derivative of the fused clamp producing
        // them (see `premask`), and values seeded directly (never premasked).
        let mut premasked = vec![false; m.values.len()];
        let mut seeded = vec![false; m.values.len()];
        for (id, g) in seeds {
            seeded[id.0] = true;
            let v = self.value(id)?;
            if v.shape() != g.shape() {
                return Err(Error::Shape(format!(
                    "seed for '{}' has shape {:?}, the value has {:?}",
                    m.value_name(id),
                    g.shape(),
                    v.shape()
                )));
            }
            accumulate(&mut grads[id.0], g)?;
        }
        // Stands in for a convolution output that a fused activation never stored; only the
        // convolution's backward sees it, and it reads its inputs, not its output.
        let unstored = Value::Float(Tensor::zeros(&[0]));
        for &ni in self.plan.nodes.iter().rev() {
            let node = &m.nodes[ni];
            if only.is_some_and(|v| !v[ni]) || node.outputs.iter().all(|o| grads[o.0].is_none()) {
                continue;
            }
            if self.fused[ni] {
                let out = node.outputs[0];
                self.fused_activation_backward(ni, &mut grads, wrt, rule, premasked[out.0])?;
                continue;
            }
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|i| {
                    i.is_some_and(|id| {
                        m.values[id.0].varies
                            && m.lookup(&self.values, id).is_some_and(Value::is_float)
                    })
                })
                .collect();
            if needs.iter().any(|&n| n) {
                let inputs: Vec<Option<&Value>> = node
                    .inputs
                    .iter()
                    .map(|i| i.and_then(|id| m.lookup(&self.values, id)))
                    .collect();
                let outputs: Vec<&Value> = node
                    .outputs
                    .iter()
                    .map(|o| match m.lookup(&self.values, *o) {
                        Some(v) => Ok(v),
                        None if self.fused_into(*o) => Ok(&unstored),
                        None => Err(Error::InvalidModel("missing forward value".into())),
                    })
                    .collect::<Result<_>>()?;
                let out_grads: Vec<Option<&Tensor>> =
                    node.outputs.iter().map(|o| grads[o.0].as_ref()).collect();
                let vjp = Vjp {
                    config: &self.config,
                    inputs: &inputs,
                    outputs: &outputs,
                    grads: &out_grads,
                    needs: &needs,
                };
                let t0 = profile::enabled().then(std::time::Instant::now);
                let premask = (rule == ReluRule::Exact)
                    .then(|| self.premask(ni, wrt, &seeded))
                    .flatten();
                let masked = premask.and_then(|(u, clamp)| {
                    let r = match node.op.kind() {
                        OpKind::Conv(conv) => Some(conv.backward_masked(&vjp, clamp)),
                        OpKind::Pool(pool) => pool.backward_masked(&vjp, clamp),
                        _ => None,
                    }?;
                    premasked[u.0] = true;
                    Some(r)
                });
                let mut input_grads = match masked {
                    Some(r) => r,
                    None => node.op.backward(&vjp),
                }
                .map_err(|e| node_error(&node.name, &node.op_type, e))?;
                if let Some(t0) = t0 {
                    let label = profile::label(&node.op_type, &node.name, "backward");
                    profile::record(&label, t0.elapsed());
                }
                if rule == ReluRule::Guided
                    && matches!(node.op.kind(), OpKind::Unary(u) if u.is_rectifier())
                {
                    // Guided backpropagation: only positive gradients pass back through ReLUs.
                    if let Some(g) = input_grads.first_mut().and_then(Option::as_mut) {
                        g.data_mut().iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                }
                for ((id, g), need) in node.inputs.iter().zip(input_grads).zip(&needs) {
                    if let (Some(id), Some(g), true) = (id, g, need) {
                        accumulate(&mut grads[id.0], g)?;
                    }
                }
            }
            for o in &node.outputs {
                if !wrt.contains(o) {
                    grads[o.0] = None;
                }
            }
        }
        Ok(grads)
    }
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    match slot {
        Some(acc) if acc.shape() != g.shape() => {
            return Err(Error::Shape(format!(
                "gradients of shapes {:?} and {:?} meet at one value",
                acc.shape(),
                g.shape()
            )))
        }
        Some(acc) => acc
            .data_mut()
            .iter_mut()
            .zip(g.data())
            .for_each(|(a, b)| *a += b),
        None => *slot = Some(g),
    }
    Ok(())
}
