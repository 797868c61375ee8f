//! One filter per batch item: a convolution layer evaluated only for the channel each image
//! asks for.
//!
//! Filter visualisation optimises a batch of images, image `i` for the mean of channel `kᵢ` of
//! one layer. The full layer computes every channel of every image although the objective reads
//! one per image: at VGG16's `block1_conv1` that is 64× the needed work in the layer and in its
//! activation, forward and backward. When the layer is a convolution followed only by
//! element-wise activations, every channel depends on its own filter alone, so the layer can run
//! as a grouped convolution with one group per image and one filter per group.

use crate::error::{Error, Result};
use crate::graph::{Graph, Source, ValueId};
use crate::ops::{Conv, ExecConfig, Op, OpKind, Vjp};
use crate::tensor::{Tensor, Value};

/// A layer that can be evaluated one channel per batch item; see
/// [`Model::filter_slice`](crate::Model::filter_slice) (with an example).
pub struct FilterSlice<'m> {
    model: &'m Graph,
    config: ExecConfig,
    /// The convolution node.
    conv: usize,
    /// The element-wise nodes after it, in order, ending at the layer's value.
    chain: Vec<usize>,
}

/// The forward values of a [`FilterSlice`] pass, kept for its backward pass.
pub struct SliceTape<'s, 'm> {
    slice: &'s FilterSlice<'m>,
    op: Conv,
    weights: Value,
    bias: Option<Value>,
    /// The input, stacked as `[1, n·C, H, W]`.
    input: Value,
    /// The convolution's output, then each chain node's output, all `[1, n, h, w]`.
    values: Vec<Value>,
    output: Tensor,
}

impl<'m> FilterSlice<'m> {
    /// The layer producing `value` as a slice, when it is a convolution (one group, constant
    /// weights and bias) followed only by element-wise activations (see
    /// [`Model::filter_slice`](crate::Model::filter_slice)); its passes run as `config` says.
    pub(crate) fn new(
        graph: &'m Graph,
        config: ExecConfig,
        value: ValueId,
    ) -> Option<FilterSlice<'m>> {
        let model = graph;
        let is_const = |id: &Option<ValueId>| match id {
            None => true,
            Some(id) => matches!(model.values[id.0].source, Source::Const(Value::Float(_))),
        };
        let mut chain = Vec::new();
        let mut at = value;
        loop {
            let Source::Node(ni) = model.values[at.0].source else {
                return None;
            };
            let node = &model.nodes[ni];
            if node.outputs.len() != 1 {
                return None;
            }
            let input = node.inputs.first().copied().flatten()?;
            let kind = node.op.kind();
            if matches!(kind, OpKind::Unary(_)) && node.inputs[1..].iter().all(is_const) {
                chain.push(ni);
                at = input;
                continue;
            }
            let sliceable = matches!(kind, OpKind::Conv(conv) if conv.one_filter_per_item(1).is_some())
                && node.inputs.get(1).is_some_and(Option::is_some)
                && node.inputs[1..].iter().all(is_const);
            if !sliceable {
                return None;
            }
            chain.reverse();
            return Some(FilterSlice {
                model,
                config,
                conv: ni,
                chain,
            });
        }
    }

    /// The convolution's input: run the model to this value, then [`FilterSlice::forward`].
    pub fn input(&self) -> ValueId {
        self.model.nodes[self.conv].inputs[0].expect("checked in filter_slice")
    }

    /// Number of filters (output channels) of the layer.
    pub fn filters(&self) -> usize {
        self.constant(1).map_or(0, |w| w.shape()[0])
    }

    fn constant(&self, i: usize) -> Option<&'m Tensor> {
        let id = self.model.nodes[self.conv]
            .inputs
            .get(i)
            .copied()
            .flatten()?;
        match &self.model.values[id.0].source {
            Source::Const(Value::Float(t)) => Some(t),
            _ => None,
        }
    }

    /// Inputs of chain node `ni` with input 0 replaced by `x`.
    fn chain_inputs<'a>(&'a self, ni: usize, x: &'a Value) -> Vec<Option<&'a Value>> {
        let m = self.model;
        let node = &m.nodes[ni];
        std::iter::once(Some(x))
            .chain(node.inputs[1..].iter().map(|id| {
                id.and_then(|id| match &m.values[id.0].source {
                    Source::Const(v) => Some(v),
                    _ => None,
                })
            }))
            .collect()
    }

    /// Evaluates the layer for batch item `i` at channel `filters[i]` only.
    ///
    /// `x` is the convolution's input `[n, C, H, W]` (the value of [`FilterSlice::input`]);
    /// the output is `[n, 1, h, w]`, equal to channel `filters[i]` of the full layer for item `i`.
    pub fn forward<'s>(&'s self, x: &Tensor, filters: &[usize]) -> Result<SliceTape<'s, 'm>> {
        let m = self.model;
        let w = self
            .constant(1)
            .ok_or_else(|| Error::InvalidModel("convolution weights are not constant".into()))?;
        let [n, c, h, wd] = *x.shape() else {
            return Err(Error::Shape(format!(
                "the layer's input must be 4-D NCHW, got {:?}",
                x.shape()
            )));
        };
        let total = w.shape()[0];
        if filters.len() != n {
            return Err(Error::Shape(format!(
                "{} filters for a batch of {n}",
                filters.len()
            )));
        }
        if let Some(&bad) = filters.iter().find(|&&f| f >= total) {
            return Err(Error::Input(format!(
                "filter {bad} is out of range: the layer has {total} filters"
            )));
        }
        let per = w.len() / total.max(1);
        let mut ws = Vec::with_capacity(n * per);
        for &f in filters {
            ws.extend_from_slice(&w.data()[f * per..(f + 1) * per]);
        }
        let mut wshape = w.shape().to_vec();
        wshape[0] = n;
        let weights = Tensor::new(wshape, ws)?;
        let bias = match self.constant(2) {
            Some(b) if b.len() == total => Some(Tensor::new(
                vec![n],
                filters.iter().map(|&f| b.data()[f]).collect(),
            )?),
            Some(b) => {
                return Err(Error::Shape(format!(
                    "bias has {} values for {total} filters",
                    b.len()
                )))
            }
            None => None,
        };
        let op = match m.nodes[self.conv].op.kind() {
            OpKind::Conv(conv) => conv.one_filter_per_item(n),
            _ => None,
        }
        .ok_or_else(|| Error::InvalidModel("the convolution cannot be sliced".into()))?;
        let input = Value::Float(Tensor::new(vec![1, n * c, h, wd], x.data().to_vec())?);
        let weights = Value::Float(weights);
        let bias = bias.map(Value::Float);
        let mut values: Vec<Value> = Vec::with_capacity(self.chain.len() + 1);
        values.push(single_float(
            op.forward(&self.config, &[Some(&input), Some(&weights), bias.as_ref()])?,
            "Conv",
        )?);
        for &ni in &self.chain {
            let cur = values.last().expect("pushed above");
            let out = m.nodes[ni]
                .op
                .forward(&self.config, &self.chain_inputs(ni, cur))?;
            values.push(single_float(out, &m.nodes[ni].name)?);
        }
        let last = values.last().expect("at least the convolution");
        let [_, _, oh, ow] = *last.shape() else {
            return Err(Error::Shape("the layer's output is not 4-D".into()));
        };
        let output = Tensor::new(
            vec![n, 1, oh, ow],
            last.as_float("layer output")?.data().to_vec(),
        )?;
        Ok(SliceTape {
            slice: self,
            op,
            weights,
            bias,
            input,
            values,
            output,
        })
    }
}

/// The one float output of a node.
fn single_float(out: Vec<Value>, node: &str) -> Result<Value> {
    match out.into_iter().next() {
        Some(v @ Value::Float(_)) => Ok(v),
        _ => Err(Error::InvalidModel(format!(
            "node '{node}' gave no float output"
        ))),
    }
}

impl SliceTape<'_, '_> {
    /// The layer's value for each item's own channel, `[n, 1, h, w]`.
    pub fn output(&self) -> &Tensor {
        &self.output
    }

    /// d(objective)/d(layer input) `[n, C, H, W]` from d(objective)/d(output) `[n, 1, h, w]`.
    pub fn backward(&self, grad: Tensor) -> Result<Tensor> {
        let m = self.slice.model;
        if grad.shape() != self.output.shape() {
            return Err(Error::Shape(format!(
                "gradient of shape {:?} for an output of shape {:?}",
                grad.shape(),
                self.output.shape()
            )));
        }
        let mut g = Tensor::new(
            self.values.last().expect("forward").shape().to_vec(),
            grad.into_data(),
        )?;
        for (pos, &ni) in self.slice.chain.iter().enumerate().rev() {
            let inputs = self.slice.chain_inputs(ni, &self.values[pos]);
            let mut needs = vec![false; inputs.len()];
            needs[0] = true;
            let vjp = Vjp {
                config: &self.slice.config,
                inputs: &inputs,
                outputs: &[&self.values[pos + 1]],
                grads: &[Some(&g)],
                needs: &needs,
            };
            g = first_grad(m.nodes[ni].op.backward(&vjp)?, &m.nodes[ni].name)?;
        }
        let inputs = [Some(&self.input), Some(&self.weights), self.bias.as_ref()];
        let vjp = Vjp {
            config: &self.slice.config,
            inputs: &inputs,
            outputs: &[&self.values[0]],
            grads: &[Some(&g)],
            needs: &[true, false, false],
        };
        let dx = first_grad(self.op.backward(&vjp)?, "Conv")?;
        let n = self.output.shape()[0];
        let [_, nc, h, w] = *dx.shape() else {
            return Err(Error::Shape("the input gradient is not 4-D".into()));
        };
        Tensor::new(vec![n, nc / n, h, w], dx.into_data())
    }
}

/// The gradient of a node's first input.
fn first_grad(grads: Vec<Option<Tensor>>, node: &str) -> Result<Tensor> {
    grads
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| Error::InvalidModel(format!("node '{node}' gave no input gradient")))
}
