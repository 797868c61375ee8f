//! The graph layer: a model's ONNX graph loaded once. Nodes in topological order with their
//! ops built, constants folded, the image input described, values named, and the graph's
//! feature-producing steps grouped into named [`Layer`]s.
//!
//! Nothing here runs a pass: the planner (`plan`) reads the graph to decide what runs and
//! what runs fused, and the executor (`exec`) runs it.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::ops::Op;
use crate::tensor::{Tensor, Value};

pub(crate) mod infer;
mod input;
pub(crate) mod layers;
mod load;
mod load_options;

pub use infer::InferredValue;
pub use input::{ElemType, InputSpec, Layout, MAX_INPUT_SIDE};
pub use layers::{closest, Layer};
pub use load_options::LoadOptions;

/// Index of a value (an edge of the graph).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Where a value comes from.
pub(crate) enum Source {
    /// The model's image input.
    Input,
    /// An initializer or a folded constant.
    Const(Value),
    /// The output of node `.0`.
    Node(usize),
}

/// One value of the graph.
pub(crate) struct ValueInfo {
    pub name: String,
    pub source: Source,
    /// Whether the value depends on the model input (and so may carry a gradient).
    pub varies: bool,
}

/// One node of the graph, with its op built.
pub(crate) struct Node {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
    pub op: Box<dyn Op>,
    /// The node's ONNX attributes, for shape inference without running the op ([`infer`]).
    pub attrs: Vec<convscope_onnx::AttributeProto>,
}

/// A loaded ONNX graph (see the module).
pub(crate) struct Graph {
    pub values: Vec<ValueInfo>,
    /// In topological order.
    pub nodes: Vec<Node>,
    pub by_name: HashMap<String, ValueId>,
    pub input: ValueId,
    pub outputs: Vec<ValueId>,
    /// For each value, the nodes that read it.
    pub consumers: Vec<Vec<usize>>,
    pub input_spec: InputSpec,
    pub layers: Vec<Layer>,
    pub producer: String,
    pub opset: i64,
}

impl Graph {
    /// The op type and inputs of the node that produces `id`; `None` for the model input and
    /// constants.
    pub fn producer_of(&self, id: ValueId) -> Option<(&str, &[Option<ValueId>])> {
        match self.values.get(id.0)?.source {
            Source::Node(n) => Some((
                self.nodes[n].op_type.as_str(),
                self.nodes[n].inputs.as_slice(),
            )),
            _ => None,
        }
    }

    /// The ONNX name of a value.
    pub fn value_name(&self, id: ValueId) -> &str {
        &self.values[id.0].name
    }

    /// Whether value `id` is a constant (initializer or folded).
    pub fn is_const(&self, id: ValueId) -> bool {
        matches!(self.values[id.0].source, Source::Const(_))
    }

    /// Number of learned parameters: the elements of the float constants the nodes read (each
    /// constant once), by [`Graph::parameter_elements`].
    pub fn parameter_count(&self) -> usize {
        let mut seen = vec![false; self.values.len()];
        let mut total = 0;
        for node in &self.nodes {
            for (slot, id) in node.inputs.iter().enumerate() {
                let Some(id) = *id else { continue };
                if !seen[id.0] {
                    let n = self.parameter_elements(&node.op_type, slot, id);
                    seen[id.0] = n > 0;
                    total += n;
                }
            }
        }
        total
    }

    /// How many parameters input `slot` of an `op` node adds when it reads value `id`: the
    /// elements of a float constant, except one-element constants outside a layer's weight
    /// slots, which are scalars of the computation (Clip bounds, the 0.5 of an exported GELU),
    /// and the geometry of shape ops (a Resize's scales), which is not learned. A layer's
    /// weights count whatever their size (a Keras `Dense(1)` has a one-element bias, which
    /// Keras counts).
    pub(crate) fn parameter_elements(&self, op: &str, slot: usize, id: ValueId) -> usize {
        let Source::Const(crate::tensor::Value::Float(t)) = &self.values[id.0].source else {
            return 0;
        };
        if matches!(
            op,
            "Resize" | "Upsample" | "Pad" | "Clip" | "Reshape" | "Expand" | "Tile" | "Slice"
        ) {
            return 0;
        }
        let weight_slot = matches!(
            (op, slot),
            ("Conv" | "ConvTranspose" | "Gemm", 1 | 2)
                | ("BatchNormalization" | "InstanceNormalization", 1..=4)
                | ("LayerNormalization", 1 | 2)
                | ("PRelu" | "MatMul", 1)
        );
        if t.len() > 1 || weight_slot {
            t.len()
        } else {
            0
        }
    }

    /// The layer with this friendly name, if any.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Resolves a friendly layer name, a raw ONNX value name or a node name to a value.
    pub fn resolve(&self, name: &str) -> Result<ValueId> {
        if let Some(l) = self.layer(name) {
            return Ok(l.value);
        }
        if let Some(&id) = self.by_name.get(name) {
            return Ok(id);
        }
        if let Some(n) = self.nodes.iter().find(|n| n.name == name) {
            return Ok(n.outputs[0]);
        }
        // A short name ending several paths (two nested Keras models with a layer of the same
        // name) must not silently pick one.
        let suffix = format!("/{name}");
        let paths: Vec<String> = self
            .values
            .iter()
            .filter(|v| v.name.ends_with(&suffix))
            .map(|v| v.name.clone())
            .collect();
        if paths.len() > 1 {
            return Err(Error::AmbiguousName {
                name: name.to_string(),
                paths,
            });
        }
        let candidates = self
            .layers
            .iter()
            .map(|l| l.name.as_str())
            .chain(self.values.iter().map(|v| v.name.as_str()));
        Err(Error::UnknownName {
            name: name.to_string(),
            closest: closest(name, candidates, 5),
        })
    }

    /// Value `id`: the constant itself, else what `store` holds for it.
    #[inline]
    pub fn lookup<'a>(&'a self, store: &'a [Option<Value>], id: ValueId) -> Option<&'a Value> {
        match &self.values[id.0].source {
            Source::Const(v) => Some(v),
            _ => store[id.0].as_ref(),
        }
    }

    /// Node `n`'s inputs as found in `store` (or the constants).
    pub fn inputs_of<'a>(&'a self, n: usize, store: &'a [Option<Value>]) -> Vec<Option<&'a Value>> {
        self.nodes[n]
            .inputs
            .iter()
            .map(|i| i.and_then(|id| self.lookup(store, id)))
            .collect()
    }

    /// Indices of the nodes needed to compute `targets` when `leaves` are given, in order.
    pub fn needed_nodes(&self, targets: &[ValueId], leaves: &[ValueId]) -> Vec<usize> {
        let mut need = vec![false; self.nodes.len()];
        let mut stack: Vec<ValueId> = targets.to_vec();
        let mut seen = vec![false; self.values.len()];
        // A plan passes its folded values as leaves too: thousands on a Swin.
        let mut given = vec![false; self.values.len()];
        leaves.iter().for_each(|l| given[l.0] = true);
        while let Some(v) = stack.pop() {
            if std::mem::replace(&mut seen[v.0], true) || given[v.0] {
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

    /// Checks that `x` can be fed to the model, with a one-line explanation when not.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        self.input_spec.check(x)
    }
}

/// An error inside node `node` (of type `op`), with the node for context.
pub(crate) fn node_error(node: &str, op: &str, e: Error) -> Error {
    Error::Node {
        node: node.to_string(),
        op: op.to_string(),
        error: Box::new(e),
    }
}
