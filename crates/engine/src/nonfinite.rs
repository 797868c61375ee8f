//! Finding where NaN or infinity first appears, for the failure path only.
//!
//! A normal pass never looks: when a shown value turns out non-finite, the caller runs
//! [`Model::first_nonfinite`] once on the same input. It runs every node one by one (no fused
//! nodes, so every intermediate value is formed) and stops at the first node, in execution
//! order, whose output holds a non-finite element.

use std::fmt;

use crate::error::{Error, Result};
use crate::model::{node_error, Model, Source};
use crate::pool::on_pool;
use crate::tensor::{Tensor, TensorOf, Value};

/// Elements tested per branch-free block by [`TensorOf::first_nonfinite`].
const BLOCK: usize = 256;

impl TensorOf<f32> {
    /// The first element that is NaN or ±infinity, as its row-major index and value.
    ///
    /// Blocks of elements are tested without branching (the loop vectorises) and only a block
    /// that holds one is searched, so a finite tensor costs one read.
    ///
    /// ```
    /// use convscope_engine::Tensor;
    /// let t = Tensor::new(vec![2, 2], vec![0.0, 1.0, f32::INFINITY, f32::NAN])?;
    /// assert_eq!(t.first_nonfinite(), Some((2, f32::INFINITY)));
    /// assert_eq!(Tensor::zeros(&[3]).first_nonfinite(), None);
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn first_nonfinite(&self) -> Option<(usize, f32)> {
        let data = self.data();
        data.chunks(BLOCK).enumerate().find_map(|(b, block)| {
            let any = block.iter().fold(false, |acc, v| acc | !v.is_finite());
            if !any {
                return None;
            }
            let i = block.iter().position(|v| !v.is_finite())?;
            Some((b * BLOCK + i, block[i]))
        })
    }

    /// How many elements are NaN or ±infinity.
    pub fn count_nonfinite(&self) -> usize {
        self.data().iter().filter(|v| !v.is_finite()).count()
    }
}

/// Where the first NaN or infinity of a pass appeared ([`Model::first_nonfinite`]).
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

impl Model {
    /// The first value, in execution order, that holds NaN or ±infinity when the model runs on
    /// `input`: the input itself, or the output of the node that first produced one (with the
    /// non-finite weights it read, if any). `None` when every value is finite.
    ///
    /// Meant for the failure path: a normal pass pays nothing for it. This runs every node of
    /// the model apart (no fusions, every intermediate value formed and tested, each freed
    /// after its last reader), so it takes about as long as an unfused inference pass.
    ///
    /// ```
    /// use convscope_engine::{Model, Tensor};
    /// use convscope_onnx::{Dim, GraphBuilder};
    ///
    /// let mut g = GraphBuilder::new("log");
    /// g.input("x", &[Dim::Value(1), Dim::Value(1), Dim::Value(1), Dim::Value(2)])
    ///     .node("Relu", "relu", &["x"], &["r"], vec![])
    ///     .node("Log", "log", &["r"], &["y"], vec![])
    ///     .output("y", &[]);
    /// let model = Model::from_proto(g.build(13))?;
    /// let x = Tensor::new(vec![1, 1, 1, 2], vec![-1.0, 2.0])?;
    /// let found = model.first_nonfinite(&x)?.expect("log(0) is -inf");
    /// assert_eq!(found.node.as_deref(), Some("log"));
    /// assert_eq!((found.index, found.element), (0, f32::NEG_INFINITY));
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Model::run`] (an input that does not fit, a node that fails).
    pub fn first_nonfinite(&self, input: &Tensor) -> Result<Option<NonFinite>> {
        self.check_input(input)?;
        if let Some((index, element)) = input.first_nonfinite() {
            return Ok(Some(NonFinite {
                node: None,
                op: String::new(),
                value: self.values[self.input.0].name.clone(),
                index,
                element,
                count: input.count_nonfinite(),
                len: input.len(),
                nonfinite_weights: Vec::new(),
            }));
        }
        on_pool(|| self.first_nonfinite_here(input))
    }

    fn first_nonfinite_here(&self, input: &Tensor) -> Result<Option<NonFinite>> {
        let mut store: Vec<Option<Value>> = vec![None; self.values.len()];
        store[self.input.0] = Some(Value::Float(input.clone()));
        let mut last_use = vec![usize::MAX; self.values.len()];
        for (pos, node) in self.nodes.iter().enumerate() {
            for id in node.inputs.iter().flatten() {
                last_use[id.0] = pos;
            }
        }
        for (pos, node) in self.nodes.iter().enumerate() {
            let inputs: Vec<Option<&Value>> = node
                .inputs
                .iter()
                .map(|i| {
                    i.and_then(|id| match &self.values[id.0].source {
                        Source::Const(v) => Some(v),
                        _ => store[id.0].as_ref(),
                    })
                })
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
            let outs = node
                .op
                .forward(&inputs)
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
                    .filter(|id| match &self.values[id.0].source {
                        Source::Const(Value::Float(w)) => w.first_nonfinite().is_some(),
                        _ => false,
                    })
                    .map(|id| self.values[id.0].name.clone())
                    .collect();
                return Ok(Some(NonFinite {
                    node: Some(node.name.clone()),
                    op: node.op_type.clone(),
                    value: self.values[id.0].name.clone(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_nonfinite_finds_the_first_in_any_block() {
        for len in [1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 3] {
            for at in [0, len / 2, len - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut v = vec![1.0f32; len];
                    v[at] = bad;
                    if at + 1 < len {
                        v[len - 1] = f32::NAN; // a later one is not reported
                    }
                    let t = Tensor::new(vec![len], v).unwrap();
                    let (i, e) = t.first_nonfinite().unwrap();
                    assert_eq!(i, at, "len {len}");
                    assert_eq!(e.to_bits(), bad.to_bits());
                }
            }
            assert_eq!(Tensor::full(&[len], f32::MAX).first_nonfinite(), None);
        }
        assert_eq!(Tensor::zeros(&[0]).first_nonfinite(), None);
    }
}
