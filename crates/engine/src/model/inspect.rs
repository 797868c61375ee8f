//! Questions about a pass answered without running it (shapes, memory), or by running it
//! node by node on the failure path (where the first NaN or infinity appears).

use super::Model;

/// What a pass's plan runs ([`Model::plan_nodes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanNodes {
    /// Nodes the pass runs (each once; fused neighbours counted apart).
    pub run: usize,
    /// Nodes the targets need that the pass does not run: their values were folded for this
    /// input shape, or only folded nodes read them.
    pub skipped: usize,
    /// Folded values the pass starts with (those its nodes read or that are asked for).
    pub folded_values: usize,
}
use crate::error::Result;
use crate::exec::estimate::{estimate, MemoryEstimate, Pass};
use crate::exec::nonfinite::{first_nonfinite, NonFinite};
use crate::graph::{InferredValue, ValueId};
use crate::tensor::Tensor;

impl Model {
    /// The shape `value` will have when the model runs on an input of `input_shape`, worked out
    /// without running it (see [`Model::estimate_forward_bytes`]).
    ///
    /// ```
    /// use convscope_engine::Model;
    /// use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
    ///
    /// let mut g = GraphBuilder::new("pool");
    /// g.input("x", &[Dim::Value(1), Dim::Value(3), Dim::Param("H".into()), Dim::Param("W".into())])
    ///     .initializer(TensorProto::from_f32("w", &[8, 3, 3, 3], &[0.1; 216]))
    ///     .node("Conv", "conv", &["x", "w"], &["c"], vec![AttributeProto::ints("strides", &[2, 2])])
    ///     .output("c", &[]);
    /// let model = Model::from_proto(g.build(13))?;
    /// let c = model.resolve("c")?;
    /// assert_eq!(model.value_shape(&[1, 3, 4001, 6001], c)?, [1, 8, 2000, 3000]);
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The errors the pass would give on shapes (a value beyond the element limit, shapes that
    /// do not fit, naming the node), and [`Error::ShapeUnknown`](crate::Error::ShapeUnknown) when a shape depends on the
    /// input's values rather than its size.
    pub fn value_shape(&self, input_shape: &[usize], value: ValueId) -> Result<Vec<usize>> {
        Ok(self.infer_value(input_shape, value)?.shape)
    }

    /// [`Model::value_shape`] with the kind of the value (float data or integers).
    ///
    /// # Errors
    ///
    /// As [`Model::value_shape`].
    pub fn infer_value(&self, input_shape: &[usize], value: ValueId) -> Result<InferredValue> {
        self.graph.infer_value(&self.config, input_shape, value)
    }

    /// How much memory a pass over an input of `input_shape` up to `targets` will take, worked
    /// out from the shapes alone (no tensor of the input's size is allocated), so a job that
    /// cannot fit can be refused before it starts.
    ///
    /// It also fails at once, naming the node, when some value would exceed the engine's limit
    /// of 2^28 elements per tensor, which the pass itself would only find after computing every
    /// value before it.
    ///
    /// The figure counts the tensors of the pass (see [`MemoryEstimate::peak_bytes`]): the
    /// simulation frees values exactly where the executor does and reads from the pass's plan
    /// which convolutions run with their activation (the plan is made here and kept for the
    /// pass itself). Other fused forms (inverted-residual blocks, residual adds) form fewer
    /// values than counted, so the inference figure is an upper bound.
    ///
    /// ```
    /// use convscope_engine::{Model, Pass};
    /// use convscope_onnx::{Dim, GraphBuilder};
    ///
    /// let mut g = GraphBuilder::new("chain");
    /// g.input("x", &[Dim::Value(1), Dim::Value(4), Dim::Value(100), Dim::Value(100)])
    ///     .node("Relu", "a", &["x"], &["y"], vec![])
    ///     .node("Neg", "b", &["y"], &["z"], vec![])
    ///     .output("z", &[]);
    /// let model = Model::from_proto(g.build(13))?;
    /// let z = model.resolve("z")?;
    /// let one = 4 * 100 * 100 * 4; // bytes of one value
    /// let run = model.estimate_forward_bytes(&[1, 4, 100, 100], &[z], Pass::Inference)?;
    /// assert_eq!(run.peak_bytes, 2 * one); // x is freed once y exists
    /// let tape = model.estimate_forward_bytes(&[1, 4, 100, 100], &[z], Pass::Tape)?;
    /// assert_eq!(tape.peak_bytes, 3 * one);
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Model::value_shape`].
    pub fn estimate_forward_bytes(
        &self,
        input_shape: &[usize],
        targets: &[ValueId],
        pass: Pass,
    ) -> Result<MemoryEstimate> {
        let nodes = self.graph.needed_nodes(targets, &[]);
        // Shapes first: a job refused here leaves no plan behind.
        let shapes = self.graph.infer_shapes(&self.config, input_shape, &nodes)?;
        let leaves = vec![(self.graph.input, input_shape.to_vec())];
        let plan = self.plan_for_shapes(targets, leaves, pass.keeps_values());
        Ok(estimate(
            &self.graph,
            &plan,
            &shapes,
            input_shape,
            targets,
            pass,
        ))
    }

    /// What the plan of a pass over an input of `input_shape` up to `targets` runs: how many
    /// nodes are its steps, and how many of the nodes the targets need it leaves out because
    /// their values follow from the input's shape and the constants alone
    /// ([`ExecConfig::fold_shapes`](crate::ExecConfig::fold_shapes)). The plan is made here and
    /// kept for the pass itself.
    ///
    /// ```
    /// use convscope_engine::{Model, Pass};
    /// use convscope_onnx::{Dim, GraphBuilder, TensorProto};
    ///
    /// // y = Reshape(x, Shape(x)[0..2] ++ [-1]): the shape is worked out once per input shape.
    /// let mut g = GraphBuilder::new("flatten");
    /// g.input("x", &[Dim::Param("N".into()), Dim::Value(3), Dim::Value(4), Dim::Value(4)])
    ///     .initializer(TensorProto::from_i64("rest", &[1], &[-1]))
    ///     .node("Shape", "shape", &["x"], &["s"], vec![])
    ///     .node("Slice", "head", &["s", "zero", "two"], &["nc"], vec![])
    ///     .initializer(TensorProto::from_i64("zero", &[1], &[0]))
    ///     .initializer(TensorProto::from_i64("two", &[1], &[2]))
    ///     .node("Concat", "cat", &["nc", "rest"], &["dims"], vec![convscope_onnx::AttributeProto::int("axis", 0)])
    ///     .node("Reshape", "reshape", &["x", "dims"], &["y"], vec![])
    ///     .output("y", &[]);
    /// let model = Model::from_proto(g.build(13))?;
    /// let y = model.resolve("y")?;
    /// let nodes = model.plan_nodes(&[2, 3, 4, 4], &[y], Pass::Inference);
    /// assert_eq!((nodes.run, nodes.skipped), (1, 3)); // only the Reshape runs
    /// # Ok::<(), convscope_engine::Error>(())
    /// ```
    pub fn plan_nodes(&self, input_shape: &[usize], targets: &[ValueId], pass: Pass) -> PlanNodes {
        let leaves = vec![(self.graph.input, input_shape.to_vec())];
        let plan = self.plan_for_shapes(targets, leaves, pass.keeps_values());
        PlanNodes {
            run: plan.nodes.len(),
            skipped: plan.skipped,
            folded_values: plan.folded.len(),
        }
    }

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
        first_nonfinite(&self.graph, &self.config, input)
    }
}
