//! The plan layer: what a pass runs and what runs fused, decided once per model, targets,
//! mode and input shapes, as a list of [`Step`]s.
//!
//! A step is one node in execution order with the fused forms that may run it together with
//! the nodes after it, best first: an inverted-residual block run by its depthwise convolution
//! (its 1×1 expansion first, or the depthwise node itself first), a 1×1 convolution formed
//! inside the depthwise convolution that reads it, a convolution with its ReLU/Clip, a
//! convolution with the residual `Add` after it. The patterns are found here, once, from the
//! graph's structure and the ops' kinds ([`OpKind`]); the executor only walks the steps.
//!
//! Whether a fused form fits the shapes is the kernel's to say, when the step first runs (a
//! block needs maps of 56 columns or more, the panel kernel AVX-512, …). A form that declines
//! is marked so and skipped in later passes of the same plan: plans are kept per input shape
//! ([`PlanKey`]), so a form declines the same way every time. Its nodes then run apart (or in
//! the next form that fits), as they would have without the plan.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::graph::{Graph, Source, ValueId};
use crate::ops::conv::BlockRole;
use crate::ops::{Clamp, ExecConfig, OpKind};
use crate::tensor::Value;

/// What a plan is for: the values asked for, the values given (the model input, or the feeds
/// of a run from an intermediate layer) with their shapes, whether every value is kept for a
/// backward pass, and how the run computes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PlanKey {
    pub targets: Vec<ValueId>,
    pub leaves: Vec<(ValueId, Vec<usize>)>,
    pub keep: bool,
    pub config: ExecConfig,
}

/// A Relu or Clip node (with constant bounds) run inside the convolution before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Act {
    pub node: usize,
    pub clamp: Clamp,
}

/// A residual `Add` after a convolution: the Add node and its other operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Residual {
    pub add: usize,
    pub other: ValueId,
}

/// A fused form of a step (see the module). Node indices are the graph's.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fused {
    /// An inverted-residual block, run by its depthwise node: the 1×1 expansion (with its
    /// clamp) when it is the step's node, the depthwise convolution and its clamp, the 1×1
    /// projection and its clamp, and the residual `Add` after an unclamped projection (used
    /// when its other operand is a float value already computed when the step runs).
    Block {
        expand: Option<(usize, Option<Act>)>,
        dw: usize,
        dw_act: Option<Act>,
        proj: usize,
        proj_act: Option<Act>,
        residual: Option<Residual>,
    },
    /// A 1×1 convolution (the step's node, with its clamp) formed inside the depthwise
    /// convolution that reads it (with its clamp).
    PointwiseDepthwise {
        pw_act: Option<Act>,
        dw: usize,
        dw_act: Option<Act>,
    },
    /// The step's convolution with its Relu/Clip in the epilogue.
    Activation(Act),
    /// The step's convolution with the residual `Add` after it.
    Residual(Residual),
}

impl Fused {
    /// The nodes the form runs besides the step's own, in order; `with_residual`: whether a
    /// block's residual `Add` is among them.
    pub fn taken(&self, with_residual: bool) -> Vec<usize> {
        let act = |a: &Option<Act>| a.map(|a| a.node);
        match self {
            Fused::Block {
                expand,
                dw,
                dw_act,
                proj,
                proj_act,
                residual,
            } => {
                let mut taken = Vec::new();
                if let Some((_, e_act)) = expand {
                    taken.extend(act(e_act));
                    taken.push(*dw);
                }
                taken.extend(act(dw_act));
                taken.push(*proj);
                taken.extend(act(proj_act));
                taken.extend(residual.filter(|_| with_residual).map(|r| r.add));
                taken
            }
            Fused::PointwiseDepthwise { pw_act, dw, dw_act } => {
                let mut taken: Vec<usize> = act(pw_act).into_iter().collect();
                taken.push(*dw);
                taken.extend(act(dw_act));
                taken
            }
            Fused::Activation(a) => vec![a.node],
            Fused::Residual(r) => vec![r.add],
        }
    }

    /// The value the form stores: the last taken node's output (or, for a block without its
    /// residual, the projection's).
    pub fn output(&self, graph: &Graph, with_residual: bool) -> ValueId {
        let last = *self
            .taken(with_residual)
            .last()
            .expect("every form takes a node");
        graph.nodes[last].outputs[0]
    }

    /// The clamp nodes the form runs.
    fn acts(&self) -> Vec<Act> {
        match self {
            Fused::Block {
                expand,
                dw_act,
                proj_act,
                ..
            } => [expand.and_then(|e| e.1), *dw_act, *proj_act]
                .into_iter()
                .flatten()
                .collect(),
            Fused::PointwiseDepthwise { pw_act, dw_act, .. } => {
                [*pw_act, *dw_act].into_iter().flatten().collect()
            }
            Fused::Activation(a) => vec![*a],
            Fused::Residual(_) => Vec::new(),
        }
    }
}

/// A fused form and whether it has declined the plan's shapes.
#[derive(Debug)]
pub(crate) struct Fusion {
    pub form: Fused,
    declined: AtomicBool,
}

impl Fusion {
    fn new(form: Fused) -> Fusion {
        Fusion {
            form,
            declined: AtomicBool::new(false),
        }
    }

    /// Whether the form declined in an earlier pass of this plan (so this one need not ask).
    pub fn declined(&self) -> bool {
        self.declined.load(Ordering::Relaxed)
    }

    /// Records that the form declined the plan's shapes.
    pub fn decline(&self) {
        self.declined.store(true, Ordering::Relaxed);
    }
}

/// One node of a pass, with the fused forms that may run it (best first).
#[derive(Debug)]
pub(crate) struct Step {
    pub node: usize,
    pub fusions: Vec<Fusion>,
}

/// What a pass runs (see the module).
#[derive(Debug)]
pub(crate) struct Plan {
    /// One per node that runs, in execution order.
    pub steps: Vec<Step>,
    /// The nodes of the steps, in order.
    pub nodes: Vec<usize>,
    /// For each value, the step of its last reader, after which an inference pass frees it
    /// (`usize::MAX`: kept, in a taped pass and for the targets).
    pub last_use: Vec<usize>,
    /// For each node, its clamp when it is a Relu/Clip that may run inside the convolution
    /// before it (its backward pass then reads the clamp from here).
    pub clamps: Vec<Option<Clamp>>,
    /// The values folded for the leaves' shapes that the steps read (or that are asked for):
    /// every pass starts with them in its store.
    pub folded: Vec<(ValueId, Value)>,
    /// How many of the nodes the targets need do not run: their outputs were folded, or only
    /// folded nodes read them (a node whose output only a `Shape` reads).
    pub skipped: usize,
}

impl Plan {
    /// The plan for computing `targets` from `leaves` of the given shapes, keeping every value
    /// (`keep`, a taped pass) or freeing each after its last reader (an inference pass).
    ///
    /// With `config.fold_shapes`, the values that follow from the leaves' shapes and the
    /// constants alone are computed here, once ([`Graph::fold_values`]), and the nodes that
    /// form them leave the pass, as do the nodes whose outputs only they read.
    pub fn new(
        graph: &Graph,
        config: &ExecConfig,
        targets: &[ValueId],
        leaves: &[(ValueId, Vec<usize>)],
        keep: bool,
    ) -> Plan {
        let leaf_ids: Vec<ValueId> = leaves.iter().map(|(id, _)| *id).collect();
        let all = graph.needed_nodes(targets, &leaf_ids);
        let mut folded = if config.fold_shapes {
            graph.fold_values(config, leaves, &all)
        } else {
            Vec::new()
        };
        let nodes = if folded.is_empty() {
            all.clone()
        } else {
            let given: Vec<ValueId> = leaf_ids
                .iter()
                .copied()
                .chain(folded.iter().map(|(id, _)| *id))
                .collect();
            graph.needed_nodes(targets, &given)
        };
        // Keep only the folded values the pass reads (or returns).
        let mut read = vec![false; graph.values.len()];
        for &n in &nodes {
            graph.nodes[n]
                .inputs
                .iter()
                .flatten()
                .for_each(|id| read[id.0] = true);
        }
        targets.iter().for_each(|t| read[t.0] = true);
        folded.retain(|(id, _)| read[id.0]);
        let mut runs = vec![false; graph.nodes.len()];
        nodes.iter().for_each(|&n| runs[n] = true);
        let mut last_use = vec![usize::MAX; graph.values.len()];
        if !keep {
            for (pos, &n) in nodes.iter().enumerate() {
                for id in graph.nodes[n].inputs.iter().flatten() {
                    last_use[id.0] = pos;
                }
            }
            for t in targets {
                last_use[t.0] = usize::MAX;
            }
        }
        let finder = Finder {
            graph,
            runs: &runs,
            targets,
        };
        let mut clamps = vec![None; graph.nodes.len()];
        let steps = nodes
            .iter()
            .map(|&node| {
                let fusions = finder.fusions(node, keep);
                for f in &fusions {
                    for a in f.acts() {
                        clamps[a.node] = Some(a.clamp);
                    }
                }
                Step {
                    node,
                    fusions: fusions.into_iter().map(Fusion::new).collect(),
                }
            })
            .collect();
        Plan {
            steps,
            skipped: all.len() - nodes.len(),
            nodes,
            last_use,
            clamps,
            folded,
        }
    }
}

/// The patterns of one plan: the graph, the nodes that run, and the values asked for (which
/// are never fused away).
struct Finder<'g> {
    graph: &'g Graph,
    runs: &'g [bool],
    targets: &'g [ValueId],
}

/// What follows a convolution: a fusable clamp node, nothing fusable, or a Relu/Clip whose
/// bounds are not a clamp (which ends every pattern through this convolution).
enum After {
    Act(Act),
    Nothing,
    Unfusable,
}

impl Finder<'_> {
    /// The fused forms of node `ni`, best first (none for anything but a convolution).
    fn fusions(&self, ni: usize, keep: bool) -> Vec<Fused> {
        let mut forms = Vec::new();
        if self.conv_output(ni).is_none() {
            return forms;
        }
        if !keep {
            // The inverted-residual block: `ni` as its expansion first, then as its depthwise
            // layer; then the 1×1 convolution inside the depthwise one.
            if let Some((act, mid)) = self.activated(ni) {
                let raw_is_output = self
                    .graph
                    .outputs
                    .contains(&self.graph.nodes[ni].outputs[0]);
                // The depthwise convolution reading this 1×1 (or small dense) convolution's
                // (clamped) output.
                let role = self.role(ni);
                let dw = (!raw_is_output
                    && matches!(role, BlockRole::Pointwise | BlockRole::Dense))
                .then(|| self.sole_conv_reader(mid))
                .flatten()
                .filter(|&dw| self.role(dw) == BlockRole::Depthwise);
                if let Some(dw) = dw {
                    forms.extend(self.block_after(dw, Some((ni, act))));
                }
                if role == BlockRole::Depthwise {
                    forms.extend(self.block_after(ni, None));
                }
                // The pair without the projection: a 1×1 expansion only.
                let pair = dw.filter(|_| role == BlockRole::Pointwise);
                if let Some((dw, (dw_act, _))) = pair.and_then(|dw| Some((dw, self.activated(dw)?)))
                {
                    forms.push(Fused::PointwiseDepthwise {
                        pw_act: act,
                        dw,
                        dw_act,
                    });
                }
            }
        }
        // The convolution's activation, in every pass: only the activated value is kept (the
        // backward pass reads the ReLU mask from it).
        if let After::Act(a) = self.after(ni) {
            forms.push(Fused::Activation(a));
        }
        if !keep {
            // A residual `Add`, in an inference pass only (a tape keeps the convolution's own
            // output, which this never forms).
            forms.extend(self.residual_after(ni).map(Fused::Residual));
        }
        forms
    }

    /// What convolution node `ni` can be in a fused block (from its attributes and constant
    /// weights; the kernels check each call's shapes).
    fn role(&self, ni: usize) -> BlockRole {
        let node = &self.graph.nodes[ni];
        let OpKind::Conv(conv) = node.op.kind() else {
            return BlockRole::Other;
        };
        let weights = node.inputs.get(1).copied().flatten().and_then(|id| {
            match &self.graph.values[id.0].source {
                Source::Const(Value::Float(t)) => Some(t),
                _ => None,
            }
        });
        conv.block_role(weights)
    }

    /// The output of node `ni` when it is a Conv with one output.
    fn conv_output(&self, ni: usize) -> Option<ValueId> {
        let node = &self.graph.nodes[ni];
        (matches!(node.op.kind(), OpKind::Conv(_)) && node.outputs.len() == 1)
            .then(|| node.outputs[0])
    }

    /// The one node that reads value `v`, when `v` is not wanted itself (asked for, or an
    /// output of the model) and that node runs in this pass.
    fn sole_reader(&self, v: ValueId) -> Option<usize> {
        if self.targets.contains(&v) || self.graph.outputs.contains(&v) {
            return None;
        }
        let [reader] = self.graph.consumers[v.0][..] else {
            return None;
        };
        self.runs[reader].then_some(reader)
    }

    /// What follows convolution node `ni`: a Relu or constant-bound Clip that is the only
    /// reader of its output (see [`Finder::sole_reader`]), reading it as its data input.
    fn after(&self, ni: usize) -> After {
        let Some(out) = self.conv_output(ni) else {
            return After::Nothing;
        };
        let Some(a) = self.sole_reader(out) else {
            return After::Nothing;
        };
        let node = &self.graph.nodes[a];
        let only_reader = node.inputs.first() == Some(&Some(out))
            && node.inputs[1..]
                .iter()
                .flatten()
                .all(|&id| self.graph.is_const(id));
        let OpKind::Unary(unary) = node.op.kind() else {
            return After::Nothing;
        };
        if !only_reader || !unary.is_relu_or_clip() {
            return After::Nothing;
        }
        // The bounds are constants (checked above): read them now, once.
        let bounds: Vec<_> = node
            .inputs
            .iter()
            .map(|i| {
                i.and_then(|id| match &self.graph.values[id.0].source {
                    Source::Const(v) => Some(v),
                    _ => None,
                })
            })
            .collect();
        match unary.clamp(&bounds) {
            Some(clamp) => After::Act(Act { node: a, clamp }),
            None => After::Unfusable,
        }
    }

    /// Node `ni`'s output as the next node reads it: the clamp fused into it, if any, and the
    /// value it leaves (the clamp's output, else the node's own). `None` when a Relu/Clip
    /// follows whose bounds are not a clamp.
    fn activated(&self, ni: usize) -> Option<(Option<Act>, ValueId)> {
        match self.after(ni) {
            After::Act(a) => Some((Some(a), *self.graph.nodes[a.node].outputs.first()?)),
            After::Nothing => Some((None, *self.graph.nodes[ni].outputs.first()?)),
            After::Unfusable => None,
        }
    }

    /// The Conv node that is the only reader of value `v` (as its data input, not its weights
    /// or bias) and runs in this pass, when `v` is not wanted itself.
    fn sole_conv_reader(&self, v: ValueId) -> Option<usize> {
        let c = self.sole_reader(v)?;
        let d = &self.graph.nodes[c];
        let reads = matches!(d.op.kind(), OpKind::Conv(_))
            && d.outputs.len() == 1
            && d.inputs.first() == Some(&Some(v))
            && !d.inputs[1..].iter().flatten().any(|&id| id == v);
        reads.then_some(c)
    }

    /// The block from its depthwise node `dw` on (after the expansion `expand`, if any): its
    /// clamp, the projection reading it and the projection's clamp or residual `Add`.
    fn block_after(&self, dw: usize, expand: Option<(usize, Option<Act>)>) -> Option<Fused> {
        let (dw_act, dw_out) = self.activated(dw)?;
        if self
            .graph
            .outputs
            .contains(&self.graph.nodes[dw].outputs[0])
        {
            return None;
        }
        let proj = self
            .sole_conv_reader(dw_out)
            .filter(|&p| self.role(p) == BlockRole::Pointwise)?;
        let (proj_act, _) = self.activated(proj)?;
        // A residual `Add` after an unclamped projection.
        let residual = match proj_act {
            Some(_) => None,
            None => self.residual_after(proj),
        };
        Some(Fused::Block {
            expand,
            dw,
            dw_act,
            proj,
            proj_act,
            residual,
        })
    }

    /// When Conv node `ni`'s output only feeds an `Add` of two values (the residual
    /// connection of a ResNet or MobileNet block): that Add and its other operand.
    fn residual_after(&self, ni: usize) -> Option<Residual> {
        let out = self.conv_output(ni)?;
        let add = self.sole_reader(out)?;
        let a = &self.graph.nodes[add];
        if !matches!(a.op.kind(), OpKind::Add) || a.outputs.len() != 1 {
            return None;
        }
        let other = match a.inputs[..] {
            [Some(x), Some(y)] if x == out && y != out => y,
            [Some(x), Some(y)] if y == out && x != out => x,
            _ => return None,
        };
        Some(Residual { add, other })
    }
}
