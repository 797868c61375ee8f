//! A small builder for generating ONNX models in tests and tools.

use crate::data_type;
use crate::proto::{
    AttributeProto, Dim, GraphProto, ModelProto, NodeProto, OperatorSetId, TensorProto, ValueInfo,
};

/// Builds a [`ModelProto`] one input, node, initializer and output at a time.
///
/// ```
/// use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
///
/// let mut g = GraphBuilder::new("relu6");
/// g.input("x", &[Dim::Value(1), Dim::Value(4)])
///     .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
///     .initializer(TensorProto::from_f32("hi", &[], &[6.0]))
///     .node("Clip", "clip", &["x", "lo", "hi"], &["y"], vec![])
///     .output("y", &[Dim::Value(1), Dim::Value(4)]);
/// let model = g.build(17);
/// assert_eq!(model.graph.node[0].input, ["x", "lo", "hi"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
}

impl GraphBuilder {
    /// Starts an empty graph called `name`.
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
        }
    }

    /// Adds a FLOAT graph input.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> &mut Self {
        self.graph
            .input
            .push(ValueInfo::new(name, data_type::FLOAT, dims));
        self
    }

    /// Adds a graph input of element type `elem_type` (a [`data_type`] constant), e.g. a
    /// UINT8 image input that the graph casts to float itself.
    ///
    /// ```
    /// use convscope_onnx::{data_type, Dim, GraphBuilder};
    /// let mut g = GraphBuilder::new("u8");
    /// g.typed_input("pixels", data_type::UINT8, &[Dim::Value(1), Dim::Value(3)]);
    /// assert_eq!(g.build(13).graph.input[0].elem_type, data_type::UINT8);
    /// ```
    pub fn typed_input(&mut self, name: &str, elem_type: i32, dims: &[Dim]) -> &mut Self {
        self.graph.input.push(ValueInfo::new(name, elem_type, dims));
        self
    }

    /// Adds a FLOAT graph output.
    pub fn output(&mut self, name: &str, dims: &[Dim]) -> &mut Self {
        self.graph
            .output
            .push(ValueInfo::new(name, data_type::FLOAT, dims));
        self
    }

    /// Adds a constant tensor, referenced by nodes through its name.
    pub fn initializer(&mut self, t: TensorProto) -> &mut Self {
        self.graph.initializer.push(t);
        self
    }

    /// Appends a node of the default (`ai.onnx`) domain. Nodes must be added in topological
    /// order.
    pub fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> &mut Self {
        self.graph.node.push(NodeProto {
            name: name.to_string(),
            op_type: op_type.to_string(),
            domain: String::new(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
        });
        self
    }

    /// The finished model: IR version 8, producer `convscope`, importing the default domain
    /// at `opset`.
    pub fn build(&self, opset: i64) -> ModelProto {
        ModelProto {
            ir_version: 8,
            producer_name: "convscope".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            opset_import: vec![OperatorSetId {
                domain: String::new(),
                version: opset,
            }],
            graph: self.graph.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_sets_model_header_and_keeps_order() {
        let mut g = GraphBuilder::new("g");
        g.input("x", &[Dim::Param("N".into()), Dim::Value(3)])
            .node("Relu", "r", &["x"], &["y"], vec![])
            .node(
                "Conv",
                "c",
                &["y", "w", ""],
                &["z"],
                vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
            )
            .output("z", &[Dim::Unknown]);
        let m = g.build(13);
        assert_eq!(m.ir_version, 8);
        assert_eq!(m.producer_name, "convscope");
        assert_eq!(
            m.opset_import,
            [OperatorSetId {
                domain: String::new(),
                version: 13
            }]
        );
        assert_eq!(m.graph.name, "g");
        let ops: Vec<_> = m.graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Relu", "Conv"]);
        assert_eq!(m.graph.node[1].input, ["y", "w", ""]);
        assert_eq!(m.graph.input[0].elem_type, data_type::FLOAT);
        assert_eq!(ModelProto::decode(&m.encode()).unwrap(), m);
    }
}
