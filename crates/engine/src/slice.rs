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
use crate::model::{Model, Source, ValueId};
use crate::ops::{Op, Vjp};
use crate::tensor::{Tensor, Value};

/// A layer that can be evaluated one channel per batch item; see [`Model::filter_slice`] (with
/// an example).
pub struct FilterSlice<'m> {
    model: &'m Model,
    /// The convolution node.
    conv: usize,
    /// The element-wise nodes after it, in order, ending at the layer's value.
    chain: Vec<usize>,
}

/// The forward values of a [`FilterSlice`] pass, kept for its backward pass.
pub struct SliceTape<'s, 'm> {
    slice: &'s FilterSlice<'m>,
    op: Box<dyn Op>,
    weights: Value,
    bias: Option<Value>,
    /// The input, stacked as `[1, n·C, H, W]`.
    input: Value,
    /// The convolution's output, then each chain node's output, all `[1, n, h, w]`.
    values: Vec<Value>,
    output: Tensor,
}

impl Model {
    /// The layer producing `value` as a [`FilterSlice`], when it is a convolution (one group,
    /// constant weights and bias) followed only by element-wise activations; `None` otherwise
    /// (pooling layers, grouped or depthwise convolutions, batch normalisation left unfused).
    ///
    /// ```
    /// use convscope_engine::{Model, Tensor};
    /// use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
    ///
    /// // Two 3×3 filters over a 1-channel image, then ReLU.
    /// let w: Vec<f32> = (0..18).map(|i| i as f32 - 9.0).collect();
    /// let mut g = GraphBuilder::new("tiny");
    /// g.input("x", &[Dim::Value(1), Dim::Value(1), Dim::Value(5), Dim::Value(5)])
    ///     .output("y", &[])
    ///     .initializer(TensorProto::from_f32("w", &[2, 1, 3, 3], &w))
    ///     .node("Conv", "conv1", &["x", "w"], &["c"], vec![AttributeProto::ints("pads", &[1, 1, 1, 1])])
    ///     .node("Relu", "relu1", &["c"], &["y"], vec![]);
    /// let model = Model::from_proto(g.build(13))?;
    /// let layer = model.layer("conv1").unwrap().value;
    /// let slice = model.filter_slice(layer).expect("Conv+Relu slices");
    ///
    /// // Image 0 asks for filter 1, image 1 for filter 0.
    /// let x = Tensor::new(vec![2, 1, 5, 5], (0..50).map(|i| (i as f32 * 0.3).sin()).collect())?;
    /// let tape = slice.forward(&x, &[1, 0])?;
    /// let full = model.run_float(&x, &[layer])?.remove(0);
    /// assert_eq!(tape.output().shape(), &[2, 1, 5, 5]);
    /// let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    /// assert!(same(&tape.output().data()[..25], &full.data()[25..50]));
    /// assert!(same(&tape.output().data()[25..], &full.data()[50..75]));
    ///
    /// let dx = tape.backward(Tensor::full(&[2, 1, 5, 5], 1.0))?;
    /// assert_eq!(dx.shape(), &[2, 1, 5, 5]);
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn filter_slice(&self, value: ValueId) -> Option<FilterSlice<'_>> {
        let is_const = |id: &Option<ValueId>| match id {
            None => true,
            Some(id) => matches!(self.values[id.0].source, Source::Const(Value::Float(_))),
        };
        let mut chain = Vec::new();
        let mut at = value;
        loop {
            let Source::Node(ni) = self.values[at.0].source else {
                return None;
            };
            let node = &self.nodes[ni];
            if node.outputs.len() != 1 {
                return None;
            }
            let input = node.inputs.first().copied().flatten()?;
            if node.op.elementwise() && node.inputs[1..].iter().all(is_const) {
                chain.push(ni);
                at = input;
                continue;
            }
            let sliceable = node.op_type == "Conv"
                && node.op.one_filter_per_item(1).is_some()
                && node.inputs.get(1).is_some_and(Option::is_some)
                && node.inputs[1..].iter().all(is_const);
            if !sliceable {
                return None;
            }
            chain.reverse();
            return Some(FilterSlice {
                model: self,
                conv: ni,
                chain,
            });
        }
    }
}

impl<'m> FilterSlice<'m> {
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
        let op = m.nodes[self.conv]
            .op
            .one_filter_per_item(n)
            .ok_or_else(|| Error::InvalidModel("the convolution cannot be sliced".into()))?;
        let input = Value::Float(Tensor::new(vec![1, n * c, h, wd], x.data().to_vec())?);
        let weights = Value::Float(weights);
        let bias = bias.map(Value::Float);
        let mut values: Vec<Value> = Vec::with_capacity(self.chain.len() + 1);
        values.push(single_float(
            op.forward(&[Some(&input), Some(&weights), bias.as_ref()])?,
            "Conv",
        )?);
        for &ni in &self.chain {
            let cur = values.last().expect("pushed above");
            let out = m.nodes[ni].op.forward(&self.chain_inputs(ni, cur))?;
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
                inputs: &inputs,
                outputs: &[&self.values[pos + 1]],
                grads: &[Some(&g)],
                needs: &needs,
            };
            g = first_grad(m.nodes[ni].op.backward(&vjp)?, &m.nodes[ni].name)?;
        }
        let inputs = [Some(&self.input), Some(&self.weights), self.bias.as_ref()];
        let vjp = Vjp {
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

#[cfg(test)]
mod tests {
    use super::*;
    use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};

    /// Conv (stride 2, asymmetric pads, bias) → Clip(0, 0.6) → Sigmoid, 4 → 5 channels.
    fn model(group: i64) -> Model {
        let (c, m) = (4usize, 6usize);
        let cg = c / group as usize;
        let w: Vec<f32> = (0..m * cg * 9)
            .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.45)
            .collect();
        let b: Vec<f32> = (0..m).map(|i| 0.1 * i as f32 - 0.2).collect();
        let mut g = GraphBuilder::new("slice");
        g.input(
            "x",
            &[
                Dim::Param("n".into()),
                Dim::Value(4),
                Dim::Value(9),
                Dim::Value(8),
            ],
        )
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[m, cg, 3, 3], &w))
        .initializer(TensorProto::from_f32("b", &[m], &b))
        .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
        .initializer(TensorProto::from_f32("hi", &[], &[0.6]))
        .node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            vec![
                AttributeProto::ints("pads", &[1, 0, 2, 1]),
                AttributeProto::ints("strides", &[2, 1]),
                AttributeProto::int("group", group),
            ],
        )
        .node("Clip", "clip", &["c", "lo", "hi"], &["r"], vec![])
        .node("Sigmoid", "sig", &["r"], &["y"], vec![]);
        Model::from_proto(g.build(13)).unwrap()
    }

    #[test]
    fn slice_equals_the_full_layer_forward_and_backward() {
        let model = model(1);
        let y = model.resolve("y").unwrap();
        let slice = model.filter_slice(y).expect("Conv+Clip+Sigmoid slices");
        assert_eq!(slice.filters(), 6);
        assert_eq!(slice.input(), model.resolve("x").unwrap());
        let n = 3;
        let x = Tensor::new(
            vec![n, 4, 9, 8],
            (0..n * 4 * 72).map(|i| (i as f32 * 0.71).sin()).collect(),
        )
        .unwrap();
        let filters = [5, 0, 5];
        let tape = slice.forward(&x, &filters).unwrap();
        let full_tape = model.forward(&x, &[y]).unwrap();
        let full = full_tape.value(y).unwrap();
        let [_, m, oh, ow] = *full.shape() else {
            panic!()
        };
        let p = oh * ow;
        assert_eq!(tape.output().shape(), &[n, 1, oh, ow]);
        for (i, &f) in filters.iter().enumerate() {
            let want = &full.data()[(i * m + f) * p..(i * m + f + 1) * p];
            let got = &tape.output().data()[i * p..(i + 1) * p];
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
        // A seed on each item's channel: the same input gradient as the full tape's.
        let seed_small: Vec<f32> = (0..n * p).map(|i| (i as f32 * 0.3).cos()).collect();
        let mut seed_full = Tensor::zeros(full.shape());
        for (i, &f) in filters.iter().enumerate() {
            seed_full.data_mut()[(i * m + f) * p..(i * m + f + 1) * p]
                .copy_from_slice(&seed_small[i * p..(i + 1) * p]);
        }
        let dx = tape
            .backward(Tensor::new(vec![n, 1, oh, ow], seed_small).unwrap())
            .unwrap();
        let want = full_tape.backward(vec![(y, seed_full)], &[]).unwrap().input;
        assert_eq!(dx.shape(), want.shape());
        let scale = want.data().iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!(scale > 0.0);
        for (a, b) in dx.data().iter().zip(want.data()) {
            assert!((a - b).abs() < 1e-5 * scale, "{a} vs {b}");
        }
    }

    #[test]
    fn only_plain_convolutions_with_activations_slice() {
        let grouped = model(2);
        assert!(grouped
            .filter_slice(grouped.resolve("y").unwrap())
            .is_none());
        let plain = model(1);
        // The raw convolution output slices too; the input does not.
        assert!(plain.filter_slice(plain.resolve("c").unwrap()).is_some());
        assert!(plain.filter_slice(plain.resolve("x").unwrap()).is_none());
        let x = Tensor::full(&[2, 4, 9, 8], 0.5);
        let slice = plain.filter_slice(plain.resolve("y").unwrap()).unwrap();
        assert!(slice.forward(&x, &[0, 6]).is_err(), "filter 6 of 6");
        assert!(
            slice.forward(&x, &[0]).is_err(),
            "one filter for two images"
        );
    }
}
