//! Running a model: forward over the part of the graph the targets need, and one backward pass
//! over the same nodes for the gradient of any objective.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::{node_error, Model, Source, ValueId};
use crate::ops::{Clamp, Vjp};
use crate::runtime::pool::on_pool;
use crate::tensor::{Tensor, Value};

/// Forward values kept for a backward pass.
pub struct Tape<'m> {
    model: &'m Model,
    values: Vec<Option<Value>>,
    nodes: Vec<usize>,
    /// Activation nodes that ran inside the convolution before them ([`Model::fusion`]); the
    /// convolution's own output was never stored.
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

impl Model {
    /// The activation node that can run inside convolution node `ni`, if any: a `Relu` or
    /// constant-bound `Clip` that is the only reader of the convolution's output, when that
    /// output is not itself wanted (`targets`) and the activation runs in this pass (`run`).
    fn fusion(&self, ni: usize, run: &[bool], targets: &[ValueId]) -> Option<usize> {
        let out = self.conv_output(ni)?;
        let act = self.sole_reader(out, run, targets)?;
        let a = &self.nodes[act];
        let only_reader = a.inputs.first() == Some(&Some(out))
            && a.inputs[1..]
                .iter()
                .flatten()
                .all(|id| matches!(self.values[id.0].source, Source::Const(_)));
        (only_reader && matches!(a.op_type.as_str(), "Relu" | "Clip")).then_some(act)
    }

    /// The output of node `ni` when it is a Conv with one output.
    fn conv_output(&self, ni: usize) -> Option<ValueId> {
        let node = &self.nodes[ni];
        (node.op_type == "Conv" && node.outputs.len() == 1).then(|| node.outputs[0])
    }

    /// The one node that reads value `v`, when `v` is not wanted itself (asked for in
    /// `targets`, or an output of the model) and that node runs in this pass (`run`).
    fn sole_reader(&self, v: ValueId, run: &[bool], targets: &[ValueId]) -> Option<usize> {
        if targets.contains(&v) || self.outputs.contains(&v) {
            return None;
        }
        let [reader] = self.consumers[v.0][..] else {
            return None;
        };
        run[reader].then_some(reader)
    }

    /// Node `ni`'s output as the next node reads it: the clamp node fused into it (see
    /// [`Model::fusion`]), that clamp, and the value it leaves (the clamp's output, else the
    /// node's own).
    fn activated(
        &self,
        ni: usize,
        run: &[bool],
        targets: &[ValueId],
        store: &[Option<Value>],
    ) -> Option<(Option<usize>, Option<Clamp>, ValueId)> {
        let node = &self.nodes[ni];
        let act = self.fusion(ni, run, targets);
        Some(match act {
            Some(a) => (
                act,
                Some(self.clamp_of(a, store)?),
                *self.nodes[a].outputs.first()?,
            ),
            None => (None, None, *node.outputs.first()?),
        })
    }

    /// Conv node `ni` as the first node of a fusion of an inference pass (`keep` false): the
    /// node and its output as the next node reads it ([`Model::activated`]).
    #[allow(clippy::type_complexity)]
    fn fusion_start(
        &self,
        ni: usize,
        run: &[bool],
        targets: &[ValueId],
        store: &[Option<Value>],
        keep: bool,
    ) -> Option<(&crate::model::Node, Option<usize>, Option<Clamp>, ValueId)> {
        if keep {
            return None;
        }
        self.conv_output(ni)?;
        let (act, clamp, mid) = self.activated(ni, run, targets, store)?;
        Some((&self.nodes[ni], act, clamp, mid))
    }

    /// The Conv node that is the only reader of value `v` (as its data input, not its weights
    /// or bias) and runs in this pass, when `v` is not wanted itself.
    fn sole_conv_reader(&self, v: ValueId, run: &[bool], targets: &[ValueId]) -> Option<usize> {
        let c = self.sole_reader(v, run, targets)?;
        let d = &self.nodes[c];
        let reads = d.op_type == "Conv"
            && d.outputs.len() == 1
            && d.inputs.first() == Some(&Some(v))
            && !d.inputs[1..].iter().flatten().any(|&id| id == v);
        reads.then_some(c)
    }

    /// Node `n`'s inputs from `store`, its data input left out.
    fn inputs_but_data<'a>(
        &'a self,
        n: usize,
        store: &'a [Option<Value>],
    ) -> Vec<Option<&'a Value>> {
        std::iter::once(None)
            .chain(
                self.nodes[n].inputs[1..]
                    .iter()
                    .map(|i| i.and_then(|id| self.lookup(store, id))),
            )
            .collect()
    }

    /// A 1×1 Conv node `ni` (with its fused clamp, if any) whose output only feeds a depthwise
    /// Conv (with its fused clamp, if any), in an inference pass: the depthwise node runs both
    /// ([`crate::ops::Op::forward_after_pointwise`]). Returns the nodes taken in (the 1×1
    /// clamp, the depthwise node, its clamp), the value stored and that value, or `None` when
    /// the pattern or the ops do not fit (the nodes then run one by one).
    fn pointwise_depthwise(
        &self,
        ni: usize,
        run: &[bool],
        targets: &[ValueId],
        store: &[Option<Value>],
        keep: bool,
        inputs: &[Option<&Value>],
    ) -> Option<(Vec<usize>, ValueId, Result<Value>)> {
        let (node, act, clamp, mid) = self.fusion_start(ni, run, targets, store, keep)?;
        if self.outputs.contains(&node.outputs[0]) {
            return None;
        }
        let dw = self.sole_conv_reader(mid, run, targets)?;
        let (dw_act, dw_clamp, output) = self.activated(dw, run, targets, store)?;
        let dw_inputs = self.inputs_but_data(dw, store);
        let d = &self.nodes[dw];
        let out =
            d.op.forward_after_pointwise(node.op.as_ref(), inputs, clamp, &dw_inputs, dw_clamp)?;
        let taken = [act, Some(dw), dw_act].into_iter().flatten().collect();
        Some((taken, output, out))
    }

    /// An inverted-residual block from Conv node `ni`, in an inference pass: `ni` is its 1×1
    /// expansion (with its clamp) feeding a depthwise Conv, or the depthwise Conv itself; the
    /// depthwise output (after its clamp) only feeds a 1×1 projection Conv, possibly followed
    /// by a residual `Add`. The depthwise node runs them all
    /// ([`crate::ops::Op::forward_block`]). Returns the nodes taken in (all but `ni`), the
    /// value stored and that value, or `None` when the pattern or the ops do not fit.
    fn depthwise_block(
        &self,
        ni: usize,
        run: &[bool],
        targets: &[ValueId],
        store: &[Option<Value>],
        keep: bool,
        inputs: &[Option<&Value>],
    ) -> Option<(Vec<usize>, ValueId, Result<Value>)> {
        let (node, act, clamp, mid) = self.fusion_start(ni, run, targets, store, keep)?;
        let after_expansion = match self.outputs.contains(&node.outputs[0]) {
            true => None,
            false => self.sole_conv_reader(mid, run, targets),
        };
        // With `ni` as the expansion first, then as the depthwise layer.
        let expanded = after_expansion.and_then(|dw| {
            let dw_inputs = self.inputs_but_data(dw, store);
            let expand = (node.op.as_ref(), inputs, clamp);
            self.block_after(dw, Some(expand), &dw_inputs, run, targets, store)
                .map(|(mut taken, output, out)| {
                    taken.splice(0..0, [act, Some(dw)].into_iter().flatten());
                    (taken, output, out)
                })
        });
        expanded.or_else(|| self.block_after(ni, None, inputs, run, targets, store))
    }

    /// The rest of [`Model::depthwise_block`] from its depthwise node `dw`: the nodes taken
    /// in after it, the value stored and that value.
    fn block_after(
        &self,
        dw: usize,
        expand: Option<crate::ops::BlockLayer<'_>>,
        dw_inputs: &[Option<&Value>],
        run: &[bool],
        targets: &[ValueId],
        store: &[Option<Value>],
    ) -> Option<(Vec<usize>, ValueId, Result<Value>)> {
        let (dw_act, dw_clamp, dw_out) = self.activated(dw, run, targets, store)?;
        if self.outputs.contains(&self.nodes[dw].outputs[0]) {
            return None;
        }
        let proj = self.sole_conv_reader(dw_out, run, targets)?;
        let (proj_act, proj_clamp, proj_out) = self.activated(proj, run, targets, store)?;
        // A residual `Add` after an unclamped projection.
        let residual = match proj_act {
            Some(_) => None,
            None => self.residual_fusion(proj, run, targets, store, false),
        };
        let proj_inputs = self.inputs_but_data(proj, store);
        let parts = crate::ops::BlockParts {
            expand,
            inputs: dw_inputs,
            act: dw_clamp,
            project: (self.nodes[proj].op.as_ref(), &proj_inputs, proj_clamp),
            residual: residual.map(|(_, r)| r),
        };
        let out = self.nodes[dw].op.forward_block(&parts)?;
        let output = match residual {
            Some((add, _)) => *self.nodes[add].outputs.first()?,
            None => proj_out,
        };
        let taken = [dw_act, Some(proj), proj_act, residual.map(|(add, _)| add)]
            .into_iter()
            .flatten()
            .collect();
        Some((taken, output, out))
    }

    /// When Conv node `ni`'s output only feeds an `Add` of another float value (the residual
    /// connection of a ResNet or MobileNet block) and `keep` is false: that Add node and the
    /// other value. The convolution then forms the sum itself (if its route can, see
    /// [`crate::ops::Op::forward_residual`]).
    fn residual_fusion<'s>(
        &'s self,
        ni: usize,
        run: &[bool],
        targets: &[ValueId],
        store: &'s [Option<Value>],
        keep: bool,
    ) -> Option<(usize, &'s Tensor)> {
        if keep {
            return None;
        }
        let out = self.conv_output(ni)?;
        let add = self.sole_reader(out, run, targets)?;
        let a = &self.nodes[add];
        if a.op_type != "Add" || a.outputs.len() != 1 {
            return None;
        }
        let other = match a.inputs[..] {
            [Some(x), Some(y)] if x == out && y != out => y,
            [Some(x), Some(y)] if y == out && x != out => x,
            _ => return None,
        };
        match self.lookup(store, other)? {
            Value::Float(t) => Some((add, t)),
            Value::Int(_) => None,
        }
    }

    /// Activation node `a` as a [`Clamp`], its bounds read from `store` (or the constants).
    fn clamp_of(&self, a: usize, store: &[Option<Value>]) -> Option<Clamp> {
        let inputs: Vec<Option<&Value>> = self.nodes[a]
            .inputs
            .iter()
            .map(|i| i.and_then(|id| self.lookup(store, id)))
            .collect();
        self.nodes[a].op.as_clamp(&inputs)
    }

    /// Indices of the nodes needed to compute `targets` when `leaves` are given, in order.
    fn needed_nodes(&self, targets: &[ValueId], leaves: &[ValueId]) -> Vec<usize> {
        let mut need = vec![false; self.nodes.len()];
        let mut stack: Vec<ValueId> = targets.to_vec();
        let mut seen = vec![false; self.values.len()];
        while let Some(v) = stack.pop() {
            if std::mem::replace(&mut seen[v.0], true) || leaves.contains(&v) {
                continue;
            }
            if let Source::Node(n) = self.values[v.0].source {
                if !need[n] {
                    need[n] = true;
                    stack.extend(self.nodes[n].inputs.iter().flatten().copied());
                }
            }
        }
        (0..self.nodes.len()).filter(|&i| need[i]).collect()
    }

    fn lookup<'a>(&'a self, store: &'a [Option<Value>], id: ValueId) -> Option<&'a Value> {
        match &self.values[id.0].source {
            Source::Const(v) => Some(v),
            _ => store[id.0].as_ref(),
        }
    }

    /// Executes `nodes` from the given leaf values; when `keep` is false, frees each value after
    /// its last reader. Returns the values, the flop count and which activation nodes were fused
    /// into the convolution before them.
    fn execute(
        &self,
        leaves: Vec<(ValueId, Value)>,
        nodes: &[usize],
        targets: &[ValueId],
        keep: bool,
    ) -> Result<(Vec<Option<Value>>, u64, Vec<bool>)> {
        on_pool(|| self.execute_here(leaves, nodes, targets, keep))
    }

    fn execute_here(
        &self,
        leaves: Vec<(ValueId, Value)>,
        nodes: &[usize],
        targets: &[ValueId],
        keep: bool,
    ) -> Result<(Vec<Option<Value>>, u64, Vec<bool>)> {
        let mut store: Vec<Option<Value>> = vec![None; self.values.len()];
        for (id, v) in leaves {
            store[id.0] = Some(v);
        }
        let mut last_use = vec![usize::MAX; self.values.len()];
        if !keep {
            for (pos, &n) in nodes.iter().enumerate() {
                for id in self.nodes[n].inputs.iter().flatten() {
                    last_use[id.0] = pos;
                }
            }
            for t in targets {
                last_use[t.0] = usize::MAX;
            }
        }
        let mut runs = vec![false; self.nodes.len()];
        nodes.iter().for_each(|&n| runs[n] = true);
        let mut fused = vec![false; self.nodes.len()];
        let mut flops = 0u64;
        for (pos, &ni) in nodes.iter().enumerate() {
            if fused[ni] {
                // Ran inside the node before it; its inputs may still end their lives here.
                if !keep {
                    for id in self.nodes[ni].inputs.iter().flatten() {
                        if last_use[id.0] == pos {
                            store[id.0] = None;
                        }
                    }
                }
                continue;
            }
            let node = &self.nodes[ni];
            let inputs: Vec<Option<&Value>> = node
                .inputs
                .iter()
                .map(|i| i.and_then(|id| self.lookup(&store, id)))
                .collect();
            if let Some(missing) = node
                .inputs
                .iter()
                .zip(&inputs)
                .find_map(|(id, v)| id.filter(|_| v.is_none()))
            {
                return Err(Error::Input(format!(
                    "'{}' is needed by node '{}' but was not given",
                    self.values[missing.0].name, node.name
                )));
            }
            let t0 = crate::runtime::profile::enabled().then(std::time::Instant::now);
            // Nodes this one runs inside its own sweep, the value it then stores, and that value.
            // In an inference pass, an inverted-residual block (1×1 expansion → depthwise →
            // 1×1 projection → residual Add) runs as one where the depthwise op can; else
            // 1×1 Conv (→ Clip) → depthwise Conv (→ Clip): the depthwise layer forms the 1×1
            // output itself, a few rows at a time.
            let taken = self
                .depthwise_block(ni, &runs, targets, &store, keep, &inputs)
                .or_else(|| self.pointwise_depthwise(ni, &runs, targets, &store, keep, &inputs))
                .or_else(|| {
                    // Conv → Relu/Clip: the activation runs inside the convolution's sweep and
                    // only the activated value is stored (the backward pass reads the ReLU mask
                    // from it).
                    let a = self.fusion(ni, &runs, targets)?;
                    let clamp = self.clamp_of(a, &store)?;
                    let out = node.op.forward_activated(&inputs, clamp)?;
                    Some((vec![a], *self.nodes[a].outputs.first()?, out))
                })
                .or_else(|| {
                    // Conv → Add of a residual, in an inference pass only (a tape keeps the
                    // convolution's own output, which this never forms).
                    let (a, residual) = self.residual_fusion(ni, &runs, targets, &store, keep)?;
                    let out = node.op.forward_residual(&inputs, residual)?;
                    Some((vec![a], *self.nodes[a].outputs.first()?, out))
                });
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
                        .forward(&inputs)
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
                    op.push_str(&self.nodes[f].op_type);
                }
                let label = crate::runtime::profile::label(&op, &node.name, "forward");
                crate::runtime::profile::record(&label, t0.elapsed());
            }
            if keep {
                let out_refs: Vec<&Value> = outs.iter().collect();
                flops += node.op.flops(&inputs, &out_refs);
            }
            drop(inputs);
            for (id, v) in out_ids.iter().zip(outs) {
                store[id.0] = Some(v);
            }
            if !keep {
                for id in node.inputs.iter().flatten() {
                    if last_use[id.0] == pos {
                        store[id.0] = None;
                    }
                }
            }
        }
        Ok((store, flops, fused))
    }

    /// Runs the graph up to `targets` and returns their values (only the needed nodes run).
    ///
    /// `input` is a batch in the model's layout ([`Model::input_spec`]). This is the inference
    /// pass: each value is freed after its last reader, and some neighbouring nodes run as one
    /// (a residual `Add` inside the convolution before it; a 1×1 convolution inside the
    /// depthwise convolution that reads it), so their intermediate values are never formed.
    /// A value asked for in `targets` is never fused away. [`Model::forward`] keeps every
    /// value for gradients instead.
    pub fn run(&self, input: &Tensor, targets: &[ValueId]) -> Result<Vec<Value>> {
        self.check_input(input)?;
        // One copy of the input (the pass owns its values); going through `run_from` made two.
        self.run_leaves(vec![(self.input, Value::Float(input.clone()))], targets)
    }

    /// Runs the graph from given values instead of the input: the nodes producing `feeds` are
    /// skipped, and every other value the targets need must follow from the feeds.
    ///
    /// This runs the "head" of a network from an intermediate layer, e.g. with some channels
    /// zeroed (Ablation-CAM), at any batch size.
    pub fn run_from(&self, feeds: &[(ValueId, Tensor)], targets: &[ValueId]) -> Result<Vec<Value>> {
        let values = feeds
            .iter()
            .map(|(id, t)| (*id, Value::Float(t.clone())))
            .collect();
        self.run_leaves(values, targets)
    }

    /// [`Model::run_from`] on values the pass may own.
    fn run_leaves(&self, values: Vec<(ValueId, Value)>, targets: &[ValueId]) -> Result<Vec<Value>> {
        let leaves: Vec<ValueId> = values.iter().map(|(id, _)| *id).collect();
        let nodes = self.needed_nodes(targets, &leaves);
        let (mut store, _, _) = self.execute(values, &nodes, targets, false)?;
        targets
            .iter()
            .map(|t| match &self.values[t.0].source {
                Source::Const(v) => Ok(v.clone()),
                _ => store[t.0].take().ok_or_else(|| {
                    Error::InvalidModel(format!(
                        "value '{}' was not computed",
                        self.values[t.0].name
                    ))
                }),
            })
            .collect()
    }

    /// Like [`Model::run`] for float values.
    pub fn run_float(&self, input: &Tensor, targets: &[ValueId]) -> Result<Vec<Tensor>> {
        self.run(input, targets)?
            .into_iter()
            .zip(targets)
            .map(|(v, t)| match v {
                Value::Float(t) => Ok(t),
                Value::Int(_) => Err(Error::Type(format!(
                    "'{}' is an integer value",
                    self.values[t.0].name
                ))),
            })
            .collect()
    }

    /// Runs the graph up to `targets`, keeping every value for a later [`Tape::backward`].
    pub fn forward(&self, input: &Tensor, targets: &[ValueId]) -> Result<Tape<'_>> {
        self.check_input(input)?;
        let nodes = self.needed_nodes(targets, &[]);
        let (values, flops, fused) = self.execute(
            vec![(self.input, Value::Float(input.clone()))],
            &nodes,
            targets,
            true,
        )?;
        Ok(Tape {
            model: self,
            values,
            nodes,
            fused,
            flops,
        })
    }
}

impl Tape<'_> {
    /// A float value computed by the forward pass.
    pub fn value(&self, id: ValueId) -> Result<&Tensor> {
        self.model
            .lookup(&self.values, id)
            .ok_or_else(|| {
                Error::InvalidModel(format!(
                    "'{}' was not computed by this pass",
                    self.model.value_name(id)
                ))
            })?
            .as_float(self.model.value_name(id))
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
        let m = self.model;
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
        let m = self.model;
        let mut downstream = vec![false; m.values.len()];
        wrt.iter().for_each(|id| downstream[id.0] = true);
        let mut visit = vec![false; m.nodes.len()];
        for &ni in &self.nodes {
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
    /// ([`crate::ops::Op::backward_masked`]), which saves the clamp's own backward pass over
    /// the activation (it reads the gradient and the value and writes the gradient again).
    fn premask(&self, ni: usize, wrt: &[ValueId], seeded: &[bool]) -> Option<(ValueId, Clamp)> {
        let m = self.model;
        let u = m.nodes[ni].inputs.first().copied().flatten()?;
        let Source::Node(a) = m.values[u.0].source else {
            return None;
        };
        if !self.fused[a] || m.consumers[u.0] != [ni] || seeded[u.0] || wrt.contains(&u) {
            return None;
        }
        Some((u, m.clamp_of(a, &self.values)?))
    }

    /// Whether `v` is a convolution output consumed by an activation fused into it.
    fn fused_into(&self, v: ValueId) -> bool {
        let m = self.model;
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
        let m = self.model;
        let node = &m.nodes[ni];
        let (out, input) = (node.outputs[0], node.inputs[0].expect("checked by fusion"));
        let y = self.value(out)?;
        let clamp = m
            .clamp_of(ni, &self.values)
            .ok_or_else(|| Error::InvalidModel("fused activation without bounds".into()))?;
        let t0 = crate::runtime::profile::enabled().then(std::time::Instant::now);
        let dy = if wrt.contains(&out) {
            grads[out.0].clone()
        } else {
            grads[out.0].take()
        };
        if let Some(mut dx) = dy {
            if !premasked {
                crate::ops::mask_between(&mut dx, y, clamp, rule == ReluRule::Guided);
            }
            accumulate(&mut grads[input.0], dx)?;
        }
        if let Some(t0) = t0 {
            let label = crate::runtime::profile::label(&node.op_type, &node.name, "backward");
            crate::runtime::profile::record(&label, t0.elapsed());
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
        let m = self.model;
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
        for &ni in self.nodes.iter().rev() {
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
                    inputs: &inputs,
                    outputs: &outputs,
                    grads: &out_grads,
                    needs: &needs,
                };
                let t0 = crate::runtime::profile::enabled().then(std::time::Instant::now);
                let premask = (rule == ReluRule::Exact)
                    .then(|| self.premask(ni, wrt, &seeded))
                    .flatten();
                let masked = premask.and_then(|(u, clamp)| {
                    let r = node.op.backward_masked(&vjp, clamp)?;
                    premasked[u.0] = true;
                    Some(r)
                });
                let mut input_grads = match masked {
                    Some(r) => r,
                    None => node.op.backward(&vjp),
                }
                .map_err(|e| node_error(&node.name, &node.op_type, e))?;
                if let Some(t0) = t0 {
                    let label =
                        crate::runtime::profile::label(&node.op_type, &node.name, "backward");
                    crate::runtime::profile::record(&label, t0.elapsed());
                }
                if rule == ReluRule::Guided
                    && matches!(node.op_type.as_str(), "Relu" | "Clip" | "LeakyRelu")
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

#[cfg(test)]
mod tests {
    use crate::{Model, Tensor};
    use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};

    /// x → Conv 1×1 (16 → 16, bias) → Add with `residual` (the input, on either side, or a
    /// per-channel constant that broadcasts) → y; and a 3×3 convolution with a residual.
    fn residual_model(residual: &str, conv_first: bool, kernel: i64) -> Model {
        let c = 16usize;
        let k = kernel as usize;
        let w: Vec<f32> = (0..c * c * k * k)
            .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.45)
            .collect();
        let b: Vec<f32> = (0..c).map(|i| 0.1 * i as f32 - 0.7).collect();
        let mut g = GraphBuilder::new("residual");
        let dims = [Dim::Value(2), Dim::Value(16), Dim::Value(9), Dim::Value(13)];
        let add_inputs = if conv_first {
            ["c", residual]
        } else {
            [residual, "c"]
        };
        g.input("x", &dims)
            .output("y", &[])
            .initializer(TensorProto::from_f32("w", &[c, c, k, k], &w))
            .initializer(TensorProto::from_f32("b", &[c], &b))
            .initializer(TensorProto::from_f32("per_channel", &[1, c, 1, 1], &b))
            .node(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["c"],
                vec![AttributeProto::ints("pads", &[kernel / 2; 4])],
            )
            .node("Add", "add", &add_inputs, &["y"], vec![]);
        Model::from_proto(g.build(13)).unwrap()
    }

    /// A fused pass's value against the unfused one: same shape, within 1e-5 of the largest
    /// magnitude (a column tail may sum in another order), and not trivially small.
    fn assert_agree(fused: &Tensor, apart: &Tensor, case: &str) {
        assert_eq!(fused.shape(), apart.shape(), "{case}");
        let scale = apart.data().iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!(scale > 1.0, "{case}: a meaningful output");
        for (i, (a, b)) in fused.data().iter().zip(apart.data()).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{case}: value {i}: {a} vs {b}"
            );
        }
    }

    /// x (2 images, 8 channels) → 1×1 Conv (8 → 40, bias) → Clip(0, 6) → depthwise Conv (`k`×`k`,
    /// stride `s`, asymmetric pads, bias) → Clip(0, 6) → y.
    fn pointwise_depthwise_model(k: usize, s: i64, hw: (i64, i64)) -> Model {
        let (c, m) = (8usize, 40usize);
        let w1: Vec<f32> = (0..m * c)
            .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.4)
            .collect();
        let b1: Vec<f32> = (0..m).map(|i| 0.05 * i as f32 - 0.5).collect();
        let w2: Vec<f32> = (0..m * k * k)
            .map(|i| ((i * 13) % 17) as f32 / 17.0 - 0.45)
            .collect();
        let b2: Vec<f32> = (0..m).map(|i| 0.5 - 0.03 * i as f32).collect();
        let pad = (k / 2) as i64;
        let mut g = GraphBuilder::new("pointwise_depthwise");
        let dims = [
            Dim::Value(2),
            Dim::Value(8),
            Dim::Value(hw.0),
            Dim::Value(hw.1),
        ];
        g.input("x", &dims)
            .output("y", &[])
            .initializer(TensorProto::from_f32("w1", &[m, c, 1, 1], &w1))
            .initializer(TensorProto::from_f32("b1", &[m], &b1))
            .initializer(TensorProto::from_f32("w2", &[m, 1, k, k], &w2))
            .initializer(TensorProto::from_f32("b2", &[m], &b2))
            .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
            .initializer(TensorProto::from_f32("hi", &[], &[6.0]))
            .node("Conv", "expand", &["x", "w1", "b1"], &["e"], vec![])
            .node("Clip", "clip1", &["e", "lo", "hi"], &["r"], vec![])
            .node(
                "Conv",
                "depthwise",
                &["r", "w2", "b2"],
                &["d"],
                vec![
                    AttributeProto::int("group", m as i64),
                    AttributeProto::ints("strides", &[s, s]),
                    AttributeProto::ints("pads", &[pad - 1, pad, pad, pad - 1]),
                ],
            )
            .node("Clip", "clip2", &["d", "lo", "hi"], &["y"], vec![]);
        Model::from_proto(g.build(13)).unwrap()
    }

    /// The inference pass runs the 1×1 convolution inside the depthwise one, a few rows at a
    /// time; the taped pass runs the four nodes apart. Same values (within rounding: a column
    /// tail may sum in another order), on 40 channels (a partial group of 8), two images,
    /// strides 1 and 2, 3×3 and 5×5 taps, asymmetric pads, maps for the strips and for the
    /// plane kernel.
    /// Asking for the 1×1 output as well turns the fusion off.
    #[test]
    fn a_pointwise_convolution_fused_into_the_depthwise_one_changes_no_value() {
        // The last two have rows of 56+ outputs at stride 1: the plane kernel's route.
        for (k, s, hw) in [
            (3, 1, (13, 11)),
            (5, 2, (17, 20)),
            (3, 2, (9, 9)),
            (3, 1, (6, 60)),
            (5, 1, (5, 70)),
        ] {
            let model = pointwise_depthwise_model(k, s, hw);
            let (y, r) = (model.resolve("y").unwrap(), model.resolve("r").unwrap());
            let n = 2 * 8 * hw.0 as usize * hw.1 as usize;
            let x = Tensor::new(
                vec![2, 8, hw.0 as usize, hw.1 as usize],
                (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect(),
            )
            .unwrap();
            let case = format!("k={k} s={s} {hw:?}");
            // The fusion is offered and taken (on AVX-512: the panel kernel runs the 1×1).
            let conv = model.nodes.iter().position(|n| n.name == "expand").unwrap();
            let runs = vec![true; model.nodes.len()];
            let mut store: Vec<Option<crate::Value>> = vec![None; model.values.len()];
            store[model.resolve("x").unwrap().0] = Some(crate::Value::Float(x.clone()));
            let inputs: Vec<Option<&crate::Value>> = model.nodes[conv]
                .inputs
                .iter()
                .map(|i| i.and_then(|id| model.lookup(&store, id)))
                .collect();
            let taken = model.pointwise_depthwise(conv, &runs, &[y], &store, false, &inputs);
            assert_eq!(
                taken.is_some(),
                crate::kernels::panel::available(crate::runtime::cpu::Isa::host()),
                "{case}"
            );
            assert!(model
                .pointwise_depthwise(conv, &runs, &[y], &store, true, &inputs)
                .is_none());
            assert!(model
                .pointwise_depthwise(conv, &runs, &[y, r], &store, false, &inputs)
                .is_none());
            let fused = model.run_float(&x, &[y]).unwrap().remove(0);
            let tape = model.forward(&x, &[y, r]).unwrap();
            let apart = tape.value(y).unwrap();
            assert_agree(&fused, apart, &case);
            // With the 1×1 output asked for too, both come back as the unfused pass has them.
            let both = model.run_float(&x, &[r, y]).unwrap();
            assert_eq!(both[0].data(), tape.value(r).unwrap().data(), "{case}");
            assert_eq!(both[1].data(), apart.data(), "{case}");
        }
    }

    /// An inverted-residual block on 2 images: [1×1 Conv (8 → 40, bias) → Clip(0, 6)] →
    /// depthwise Conv (`k`×`k`, stride `s`, asymmetric pads, bias) → Clip(0, 6) → 1×1 Conv
    /// (40 → `m`, bias) → [Clip(0, 6) | Add x] → y. Without the expansion the depthwise layer
    /// reads x (40 channels). Pads are asymmetric but for the Add.
    fn block_model(expand: bool, k: usize, s: i64, hw: (i64, i64), m: usize, tail: &str) -> Model {
        let (c, e) = (if expand { 8usize } else { 40 }, 40usize);
        let values = |n: usize, a: usize, b: usize, off: f32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * a) % b) as f32 / b as f32 - off)
                .collect()
        };
        let pad = (k / 2) as i64;
        let mut g = GraphBuilder::new("block");
        let dims = [
            Dim::Value(2),
            Dim::Value(c as i64),
            Dim::Value(hw.0),
            Dim::Value(hw.1),
        ];
        g.input("x", &dims)
            .output("y", &[])
            .initializer(TensorProto::from_f32(
                "w1",
                &[e, c, 1, 1],
                &values(e * c, 37, 23, 0.4),
            ))
            .initializer(TensorProto::from_f32("b1", &[e], &values(e, 5, 11, 0.5)))
            .initializer(TensorProto::from_f32(
                "w2",
                &[e, 1, k, k],
                &values(e * k * k, 13, 17, 0.45),
            ))
            .initializer(TensorProto::from_f32("b2", &[e], &values(e, 7, 13, 0.3)))
            .initializer(TensorProto::from_f32(
                "w3",
                &[m, e, 1, 1],
                &values(m * e, 29, 31, 0.5),
            ))
            .initializer(TensorProto::from_f32("b3", &[m], &values(m, 3, 7, 0.5)))
            .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
            .initializer(TensorProto::from_f32("hi", &[], &[6.0]));
        if expand {
            g.node("Conv", "expand", &["x", "w1", "b1"], &["e"], vec![])
                .node("Clip", "clip1", &["e", "lo", "hi"], &["r"], vec![]);
        }
        g.node(
            "Conv",
            "depthwise",
            &[if expand { "r" } else { "x" }, "w2", "b2"],
            &["d"],
            vec![
                AttributeProto::int("group", e as i64),
                AttributeProto::ints("strides", &[s, s]),
                // Asymmetric, except where the residual needs the input's size.
                AttributeProto::ints(
                    "pads",
                    &[pad - 1, pad, pad, pad - 1].map(|p| if tail == "add" { pad } else { p }),
                ),
            ],
        )
        .node("Clip", "clip2", &["d", "lo", "hi"], &["a"], vec![]);
        match tail {
            "clip" => g
                .node("Conv", "project", &["a", "w3", "b3"], &["p"], vec![])
                .node("Clip", "clip3", &["p", "lo", "hi"], &["y"], vec![]),
            "add" => g
                .node("Conv", "project", &["a", "w3", "b3"], &["p"], vec![])
                .node("Add", "add", &["p", "x"], &["y"], vec![]),
            _ => g.node("Conv", "project", &["a", "w3", "b3"], &["y"], vec![]),
        };
        Model::from_proto(g.build(13)).unwrap()
    }

    /// The inference pass runs a whole inverted-residual block inside its depthwise node, in
    /// strips of rows; the taped pass runs every node apart. Same values (within rounding),
    /// with and without the expansion, strides 1 and 2, 3×3 and 5×5 taps, asymmetric pads, a
    /// partial group of 16 channels, 2 images, a projection with a clamp, with a residual Add
    /// and with neither, maps with several bands of several strips. Asking for the depthwise
    /// output as well turns the block off.
    #[test]
    fn an_inverted_residual_block_run_as_one_changes_no_value() {
        for (expand, k, s, hw, m, tail) in [
            (true, 3, 1, (100, 60), 8, "add"),
            (true, 5, 1, (40, 57), 8, "add"),
            (true, 3, 2, (41, 113), 24, "none"),
            (true, 5, 2, (12, 120), 3, "clip"),
            (false, 3, 1, (30, 70), 16, "none"),
            (false, 5, 2, (9, 121), 17, "clip"),
        ] {
            let model = block_model(expand, k, s, hw, m, tail);
            let (y, a) = (model.resolve("y").unwrap(), model.resolve("a").unwrap());
            let c = if expand { 8 } else { 40 };
            let n = 2 * c * hw.0 as usize * hw.1 as usize;
            let x = Tensor::new(
                vec![2, c, hw.0 as usize, hw.1 as usize],
                (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect(),
            )
            .unwrap();
            let case = format!("expand={expand} k={k} s={s} {hw:?} m={m} {tail}");
            let first = if expand { "expand" } else { "depthwise" };
            let ni = model.nodes.iter().position(|n| n.name == first).unwrap();
            let runs = vec![true; model.nodes.len()];
            let mut store: Vec<Option<crate::Value>> = vec![None; model.values.len()];
            store[model.resolve("x").unwrap().0] = Some(crate::Value::Float(x.clone()));
            let inputs: Vec<Option<&crate::Value>> = model.nodes[ni]
                .inputs
                .iter()
                .map(|i| i.and_then(|id| model.lookup(&store, id)))
                .collect();
            let block = |targets: &[crate::ValueId], keep: bool| {
                model
                    .depthwise_block(ni, &runs, targets, &store, keep, &inputs)
                    .map(|(taken, ..)| taken.len())
            };
            // Every node but the first is taken in (on AVX-512: the panel kernel runs the 1×1).
            let nodes = model.nodes.len() - 1;
            assert_eq!(
                block(&[y], false),
                crate::kernels::panel::available(crate::runtime::cpu::Isa::host()).then_some(nodes),
                "{case}"
            );
            assert_eq!(block(&[y], true), None, "{case}");
            assert_eq!(block(&[y, a], false), None, "{case}");
            let fused = model.run_float(&x, &[y]).unwrap().remove(0);
            let tape = model.forward(&x, &[y, a]).unwrap();
            let apart = tape.value(y).unwrap();
            assert_agree(&fused, apart, &case);
            // With the depthwise output asked for too, both come back as the unfused pass has
            // them (the expansion may still run inside the depthwise layer).
            let both = model.run_float(&x, &[a, y]).unwrap();
            assert_agree(&both[0], tape.value(a).unwrap(), &case);
            assert_agree(&both[1], apart, &case);
        }
    }

    /// The inference pass forms conv + residual inside the convolution; the taped pass runs
    /// the two nodes apart. The sums are the same floating-point operations, so the values are
    /// equal bit for bit, with the residual on either side of the Add and with a broadcasting
    /// addend (which the convolution declines, so the Add runs on its own).
    #[test]
    fn a_residual_add_fused_into_the_convolution_changes_no_value() {
        let x = Tensor::new(
            vec![2, 16, 9, 13],
            (0..2 * 16 * 117).map(|i| (i as f32 * 0.71).sin()).collect(),
        )
        .unwrap();
        for (residual, conv_first, kernel) in [
            ("x", true, 1),
            ("x", false, 1),
            ("x", true, 3),
            ("per_channel", true, 1),
        ] {
            let model = residual_model(residual, conv_first, kernel);
            let y = model.resolve("y").unwrap();
            let conv = model
                .nodes
                .iter()
                .position(|n| n.op_type == "Conv")
                .unwrap();
            let runs = vec![true; model.nodes.len()];
            let store: Vec<Option<crate::Value>> = model
                .values
                .iter()
                .map(|_| Some(crate::Value::Float(x.clone())))
                .collect();
            let case = format!("{residual} conv_first={conv_first} kernel={kernel}");
            let offered = model.residual_fusion(conv, &runs, &[y], &store, false);
            assert!(
                offered.is_some(),
                "{case}: the Add is offered to the convolution"
            );
            assert!(model
                .residual_fusion(conv, &runs, &[y], &store, true)
                .is_none());
            let fused = model.run_float(&x, &[y]).unwrap().remove(0);
            let tape = model.forward(&x, &[y]).unwrap();
            let apart = tape.value(y).unwrap();
            assert_eq!(fused.shape(), apart.shape(), "{case}");
            assert!(
                fused
                    .data()
                    .iter()
                    .zip(apart.data())
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{case}: fused and unfused sums differ"
            );
            // The panel kernel (AVX-512) forms the sum for 1×1 convolutions (a 3×3 one may
            // take the Winograd route, which declines; either way the values agree, above).
            let inputs: Vec<Option<&crate::Value>> = model.nodes[conv]
                .inputs
                .iter()
                .map(|i| i.and_then(|id| model.lookup(&store, id)))
                .collect();
            if kernel == 1 {
                let addend = offered.expect("offered above").1;
                let formed = model.nodes[conv].op.forward_residual(&inputs, addend);
                let expect = residual == "x"
                    && crate::kernels::panel::available(crate::runtime::cpu::Isa::host());
                assert_eq!(formed.is_some(), expect, "{case}");
            }
        }
    }
}
