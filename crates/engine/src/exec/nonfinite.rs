//! Finding where NaN or infinity first appears, for the failure path only.
//!
//! A normal pass never looks: when a shown value turns out non-finite, the caller runs
//! `Model::first_nonfinite` once on the same input. It runs every node one by one, outside any
//! plan (no fused forms, so every intermediate value is formed), and stops at the first node,
//! in execution order, whose output holds a non-finite element.

use std::fmt;

use crate::error::{Error, Result};
use crate::graph::{node_error, Graph, Source};
use crate::ops::ExecConfig;
use crate::runtime::pool::on_pool;
use crate::tensor::{Tensor, Value};

/// Where the first NaN or infinity of a pass appeared
/// ([`Model::first_nonfinite`](crate::Model::first_nonfinite)).
#[derive(Clone, Debug, PartialEq)]
pub struct NonFinite {
    /// The node that produced it (its name, or its first output when unnamed); `None` when the
    /// model input itself holds it.
    pub node: Option<String>,
    /// That node's op type (empty for the input).
    pub op: String,
    /// ONNX name of the value holding it.
    pub value: String,
    /// Row-major index of the first non-finite element of the value.
    pub index: usize,
    /// That element: NaN, `inf` or `-inf`.
    pub element: f32,
    /// Non-finite elements in the value.
    pub count: usize,
    /// Elements in the value.
    pub len: usize,
    /// Constant inputs of the node (weights loaded with
    /// [`LoadOptions::allow_nonfinite`](crate::LoadOptions::allow_nonfinite)) that hold
    /// non-finite values themselves: the likely cause. Empty when every input was finite.
    pub nonfinite_weights: Vec<String>,
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = format!(
            "{} at element {} ({} of {} values non-finite)",
            self.element, self.index, self.count, self.len
        );
        match &self.node {
            None => write!(f, "the input '{}' holds {at}", self.value),
            Some(node) => {
                write!(
                    f,
                    "node '{node}' ({}) produced {at} in '{}'",
                    self.op, self.value
                )?;
                if self.nonfinite_weights.is_empty() {
                    write!(f, ", from finite inputs")
                } else {
                    write!(
                        f,
                        ", reading non-finite weight{} '{}'",
                        if self.nonfinite_weights.len() > 1 {
                            "s"
                        } else {
                            ""
                        },
                        self.nonfinite_weights.join("', '")
                    )
                }
            }
        }
    }
}

/// The first value, in execution order, that holds NaN or ±infinity when `graph` runs on
/// `input` with `config` (see `Model::first_nonfinite`); `None` when every value is finite.
pub(crate) fn first_nonfinite(
    graph: &Graph,
    config: &ExecConfig,
    input: &Tensor,
) -> Result<Option<NonFinite>> {
    graph.check_input(input)?;
    if let Some((index, element)) = input.first_nonfinite() {
        return Ok(Some(NonFinite {
            node: None,
            op: String::new(),
            value: graph.values[graph.input.0].name.clone(),
            index,
            element,
            count: input.count_nonfinite(),
            len: input.len(),
            nonfinite_weights: Vec::new(),
        }));
    }
    on_pool(|| first_nonfinite_here(graph, config, input))
}

fn first_nonfinite_here(
    graph: &Graph,
    config: &ExecConfig,
    input: &Tensor,
) -> Result<Option<NonFinite>> {
    let mut store: Vec<Option<Value>> = vec![None; graph.values.len()];
    store[graph.input.0] = Some(Value::Float(input.clone()));
    let mut last_use = vec![usize::MAX; graph.values.len()];
    for (pos, node) in graph.nodes.iter().enumerate() {
        for id in node.inputs.iter().flatten() {
            last_use[id.0] = pos;
        }
    }
    for (pos, node) in graph.nodes.iter().enumerate() {
        let inputs = graph.inputs_of(pos, &store);
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
        let outs = node
            .op
            .forward(config, &inputs)
            .map_err(|e| node_error(&node.name, &node.op_type, e))?;
        for (id, out) in node.outputs.iter().zip(&outs) {
            let Value::Float(t) = out else { continue };
            let Some((index, element)) = t.first_nonfinite() else {
                continue;
            };
            let nonfinite_weights = node
                .inputs
                .iter()
                .flatten()
                .filter(|id| match &graph.values[id.0].source {
                    Source::Const(Value::Float(w)) => w.first_nonfinite().is_some(),
                    _ => false,
                })
                .map(|id| graph.values[id.0].name.clone())
                .collect();
            return Ok(Some(NonFinite {
                node: Some(node.name.clone()),
                op: node.op_type.clone(),
                value: graph.values[id.0].name.clone(),
                index,
                element,
                count: t.count_nonfinite(),
                len: t.len(),
                nonfinite_weights,
            }));
        }
        drop(inputs);
        for id in node.inputs.iter().flatten() {
            if last_use[id.0] == pos {
                store[id.0] = None;
            }
        }
        for (id, out) in node.outputs.iter().zip(outs) {
            // Values nothing reads are tested above and need not be kept.
            if last_use[id.0] != usize::MAX {
                store[id.0] = Some(out);
            }
        }
    }
    Ok(None)
}
