//! The top layer: the public [`Model`]. A loaded graph, the [`ExecConfig`] its runs use, and
//! the plans of its passes, kept per targets, mode and input shapes so that each is made once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use convscope_onnx::ModelProto;

use crate::error::{Error, Result};
use crate::exec::{self, FilterSlice, Tape};
use crate::graph::{Graph, InputSpec, Layer, LoadOptions, ValueId};
use crate::ops::ExecConfig;
use crate::plan::{Plan, PlanKey};
use crate::tensor::{Tensor, Value};

mod inspect;
mod summary;

pub use inspect::PlanNodes;
pub use summary::{group_digits, LayerSummary, Summary};

/// Plans kept per model: more than a process asks for in practice (one per layer set, mode and
/// batch shape); past it the oldest half is dropped.
const MAX_PLANS: usize = 64;

/// A model ready to run and differentiate.
pub struct Model {
    pub(crate) graph: Graph,
    config: ExecConfig,
    plans: Mutex<PlanCache>,
}

/// The plans made so far, and the order they were made in (for dropping the oldest).
#[derive(Default)]
struct PlanCache {
    made: HashMap<PlanKey, Arc<Plan>>,
    order: Vec<PlanKey>,
}

impl Model {
    /// Loads an ONNX file (weights inside it or in external-data files beside it).
    ///
    /// ```no_run
    /// let model = convscope_engine::Model::load("model.onnx".as_ref())?;
    /// println!("{} layers", model.layers().len());
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn load(path: &Path) -> Result<Model> {
        Model::from_proto(ModelProto::load(path)?)
    }

    /// Decodes and prepares a model held in memory (external data is not resolved).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Model::from_proto(ModelProto::decode(bytes)?)
    }

    /// Prepares a decoded model: checks every op, sorts the nodes, folds constants.
    ///
    /// Weights that hold NaN or infinity are refused ([`Error::NonFiniteWeight`]; see
    /// [`Model::from_proto_with`] to load them anyway).
    pub fn from_proto(proto: ModelProto) -> Result<Model> {
        Model::from_proto_with(proto, &LoadOptions::default())
    }

    /// [`Model::load`] with options.
    ///
    /// # Errors
    ///
    /// Those of [`Model::load`]; [`Error::NonFiniteWeight`] unless
    /// [`LoadOptions::allow_nonfinite`].
    pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Model> {
        Model::from_proto_with(ModelProto::load(path)?, options)
    }

    /// [`Model::from_bytes`] with options.
    ///
    /// # Errors
    ///
    /// As [`Model::load_with`].
    pub fn from_bytes_with(bytes: &[u8], options: &LoadOptions) -> Result<Model> {
        Model::from_proto_with(ModelProto::decode(bytes)?, options)
    }

    /// [`Model::from_proto`] with options.
    ///
    /// # Errors
    ///
    /// As [`Model::load_with`].
    pub fn from_proto_with(proto: ModelProto, options: &LoadOptions) -> Result<Model> {
        Ok(Model {
            graph: Graph::from_proto(proto, options)?,
            config: ExecConfig::default(),
            plans: Mutex::new(PlanCache::default()),
        })
    }

    /// The same model with its runs computing as `config` says (by default
    /// [`ExecConfig::default`]: this CPU's instruction set, Winograd on).
    ///
    /// ```
    /// # use convscope_engine::{ExecConfig, Model};
    /// # use convscope_onnx::{Dim, GraphBuilder};
    /// # let mut g = GraphBuilder::new("id");
    /// # g.input("x", &[Dim::Value(1), Dim::Value(1), Dim::Value(2), Dim::Value(2)])
    /// #     .output("y", &[])
    /// #     .node("Relu", "relu", &["x"], &["y"], vec![]);
    /// let model = Model::from_proto(g.build(13))?.with_config(ExecConfig {
    ///     winograd: false,
    ///     ..ExecConfig::default()
    /// });
    /// assert!(!model.config().winograd);
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn with_config(mut self, config: ExecConfig) -> Model {
        self.set_config(config);
        self
    }

    /// Makes later runs compute as `config` says (see [`Model::with_config`]).
    pub fn set_config(&mut self, config: ExecConfig) {
        self.config = config;
    }

    /// How this model's runs compute.
    pub fn config(&self) -> &ExecConfig {
        &self.config
    }

    /// The model's image input.
    pub fn input_spec(&self) -> &InputSpec {
        &self.graph.input_spec
    }

    /// Named layers in execution order.
    pub fn layers(&self) -> &[Layer] {
        &self.graph.layers
    }

    /// The program that wrote the file (e.g. `tf2onnx 1.17.0`).
    pub fn producer(&self) -> &str {
        &self.graph.producer
    }

    /// The `ai.onnx` opset version.
    pub fn opset(&self) -> i64 {
        self.graph.opset
    }

    /// The graph outputs.
    pub fn outputs(&self) -> &[ValueId] {
        &self.graph.outputs
    }

    /// The op type and inputs of the node that produces `id`; `None` for the model input and
    /// constants.
    pub fn producer_of(&self, id: ValueId) -> Option<(&str, &[Option<ValueId>])> {
        self.graph.producer_of(id)
    }

    /// The ONNX name of a value.
    pub fn value_name(&self, id: ValueId) -> &str {
        self.graph.value_name(id)
    }

    /// Number of learned parameters (elements of float initializers and folded constants).
    pub fn parameter_count(&self) -> usize {
        self.graph.parameter_count()
    }

    /// The layer with this friendly name, if any.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.graph.layer(name)
    }

    /// Resolves a friendly layer name, a raw ONNX value name or a node name to a value.
    ///
    /// Unknown names give [`Error::UnknownName`] with the closest existing names.
    pub fn resolve(&self, name: &str) -> Result<ValueId> {
        self.graph.resolve(name)
    }

    /// The value with exactly this ONNX name (no layer or node names, unlike [`Model::resolve`]).
    pub fn value_named(&self, name: &str) -> Option<ValueId> {
        self.graph.by_name.get(name).copied()
    }

    /// Checks that `x` can be fed to the model, with a one-line explanation when not.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        self.graph.check_input(x)
    }

    /// The plan of a pass computing `targets` from `leaves` (their shapes part of the key),
    /// made on first use and kept.
    pub(crate) fn plan(
        &self,
        targets: &[ValueId],
        leaves: &[(ValueId, Value)],
        keep: bool,
    ) -> Arc<Plan> {
        let shapes = leaves
            .iter()
            .map(|(id, v)| (*id, v.shape().to_vec()))
            .collect();
        self.plan_for_shapes(targets, shapes, keep)
    }

    /// [`Model::plan`] from the leaves' shapes alone (what the memory estimate knows; the
    /// pass it estimates then finds the same plan).
    pub(crate) fn plan_for_shapes(
        &self,
        targets: &[ValueId],
        leaves: Vec<(ValueId, Vec<usize>)>,
        keep: bool,
    ) -> Arc<Plan> {
        let key = PlanKey {
            targets: targets.to_vec(),
            leaves,
            keep,
            config: self.config,
        };
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let PlanCache { made, order } = &mut *plans;
        if let Some(plan) = made.get(&key) {
            return Arc::clone(plan);
        }
        if made.len() >= MAX_PLANS {
            for old in order.drain(..MAX_PLANS / 2) {
                made.remove(&old);
            }
        }
        let plan = Arc::new(Plan::new(
            &self.graph,
            &self.config,
            targets,
            &key.leaves,
            keep,
        ));
        order.push(key.clone());
        made.insert(key, Arc::clone(&plan));
        plan
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
        self.run_leaves(
            vec![(self.graph.input, Value::Float(input.clone()))],
            targets,
        )
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
    fn run_leaves(&self, leaves: Vec<(ValueId, Value)>, targets: &[ValueId]) -> Result<Vec<Value>> {
        Ok(self.run_pass(leaves, targets)?.0)
    }

    /// An inference pass: the targets' values, and which nodes ran inside the node before them.
    pub(crate) fn run_pass(
        &self,
        leaves: Vec<(ValueId, Value)>,
        targets: &[ValueId],
    ) -> Result<(Vec<Value>, Vec<bool>)> {
        let plan = self.plan(targets, &leaves, false);
        let mut pass = exec::execute(&self.graph, &plan, &self.config, leaves, false)?;
        let values = exec::take_targets(&self.graph, &mut pass.store, targets)?;
        Ok((values, pass.fused))
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
                    self.graph.value_name(*t)
                ))),
            })
            .collect()
    }

    /// Runs the graph up to `targets`, keeping every value for a later [`Tape::backward`].
    pub fn forward(&self, input: &Tensor, targets: &[ValueId]) -> Result<Tape<'_>> {
        self.check_input(input)?;
        let leaves = vec![(self.graph.input, Value::Float(input.clone()))];
        let plan = self.plan(targets, &leaves, true);
        let pass = exec::execute(&self.graph, &plan, &self.config, leaves, true)?;
        Ok(Tape::new(&self.graph, plan, self.config, pass))
    }

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
        FilterSlice::new(&self.graph, self.config, value)
    }
}

#[cfg(test)]
mod tests;
