//! A prost-based ONNX reader: prost decodes the generated message types, then the result is
//! converted into convscope-onnx's structs, as a replacement of the hand-written reader
//! would have to do.

use convscope_onnx::{
    AttributeProto, AttributeValue, Dim, GraphProto, ModelProto, NodeProto, OperatorSetId,
    TensorProto, ValueInfo,
};
use prost::Message;

use crate::onnx as pb;

/// Decodes `bytes` with prost and converts the model.
pub fn decode(bytes: &[u8]) -> Result<ModelProto, String> {
    let m = pb::ModelProto::decode(bytes).map_err(|e| e.to_string())?;
    let graph = m.graph.ok_or("no graph found; is this an ONNX model?")?;
    Ok(ModelProto {
        ir_version: m.ir_version.unwrap_or_default(),
        producer_name: m.producer_name.unwrap_or_default(),
        producer_version: m.producer_version.unwrap_or_default(),
        domain: m.domain.unwrap_or_default(),
        model_version: m.model_version.unwrap_or_default(),
        doc_string: m.doc_string.unwrap_or_default(),
        opset_import: m
            .opset_import
            .into_iter()
            .map(|o| OperatorSetId {
                domain: o.domain.unwrap_or_default(),
                version: o.version.unwrap_or_default(),
            })
            .collect(),
        graph: graph_of(graph),
    })
}

/// Decodes with prost only, without converting (the floor of any prost-based reader).
pub fn decode_only(bytes: &[u8]) -> Result<pb::ModelProto, String> {
    pb::ModelProto::decode(bytes).map_err(|e| e.to_string())
}

fn graph_of(g: pb::GraphProto) -> GraphProto {
    GraphProto {
        name: g.name.unwrap_or_default(),
        node: g.node.into_iter().map(node_of).collect(),
        initializer: g.initializer.into_iter().map(tensor_of).collect(),
        input: g.input.into_iter().map(value_info_of).collect(),
        output: g.output.into_iter().map(value_info_of).collect(),
        value_info: g.value_info.into_iter().map(value_info_of).collect(),
    }
}

fn node_of(n: pb::NodeProto) -> NodeProto {
    NodeProto {
        name: n.name.unwrap_or_default(),
        op_type: n.op_type.unwrap_or_default(),
        domain: n.domain.unwrap_or_default(),
        input: n.input,
        output: n.output,
        attribute: n.attribute.into_iter().filter_map(attribute_of).collect(),
    }
}

fn attribute_of(a: pb::AttributeProto) -> Option<AttributeProto> {
    use AttributeValue as V;
    let value = match a.r#type.unwrap_or_default() {
        // Untyped attributes (IR < 0.0.2): the value that is set tells the kind.
        0 => {
            if let Some(f) = a.f {
                V::Float(f)
            } else if let Some(i) = a.i {
                V::Int(i)
            } else if let Some(s) = a.s {
                V::String(s)
            } else if let Some(t) = a.t {
                V::Tensor(tensor_of(t))
            } else if let Some(g) = a.g {
                V::Graph(Box::new(graph_of(g)))
            } else if !a.floats.is_empty() {
                V::Floats(a.floats)
            } else if !a.ints.is_empty() {
                V::Ints(a.ints)
            } else if !a.strings.is_empty() {
                V::Strings(a.strings)
            } else if !a.tensors.is_empty() {
                V::Tensors(a.tensors.into_iter().map(tensor_of).collect())
            } else if !a.graphs.is_empty() {
                V::Graphs(a.graphs.into_iter().map(graph_of).collect())
            } else {
                return None;
            }
        }
        1 => V::Float(a.f.unwrap_or_default()),
        2 => V::Int(a.i.unwrap_or_default()),
        3 => V::String(a.s.unwrap_or_default()),
        4 => V::Tensor(a.t.map(tensor_of).unwrap_or_default()),
        5 => V::Graph(Box::new(a.g.map(graph_of).unwrap_or_default())),
        6 => V::Floats(a.floats),
        7 => V::Ints(a.ints),
        8 => V::Strings(a.strings),
        9 => V::Tensors(a.tensors.into_iter().map(tensor_of).collect()),
        10 => V::Graphs(a.graphs.into_iter().map(graph_of).collect()),
        _ => return None,
    };
    Some(AttributeProto {
        name: a.name.unwrap_or_default(),
        value,
    })
}

fn tensor_of(t: pb::TensorProto) -> TensorProto {
    TensorProto {
        name: t.name.unwrap_or_default(),
        dims: t.dims,
        data_type: t.data_type.unwrap_or_default(),
        raw_data: t.raw_data.unwrap_or_default(),
        float_data: t.float_data,
        int32_data: t.int32_data,
        int64_data: t.int64_data,
        double_data: t.double_data,
        uint64_data: t.uint64_data,
        external_data: t
            .external_data
            .into_iter()
            .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
            .collect(),
        data_location: t.data_location.unwrap_or_default(),
    }
}

fn value_info_of(v: pb::ValueInfoProto) -> ValueInfo {
    let (elem_type, shape) = match v.r#type.and_then(|t| t.value) {
        Some(pb::type_proto::Value::TensorType(t)) => (
            t.elem_type.unwrap_or_default(),
            t.shape.map(|s| {
                s.dim
                    .into_iter()
                    .map(|d| match d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                            Dim::Value(v)
                        }
                        Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                            Dim::Param(p)
                        }
                        None => Dim::Unknown,
                    })
                    .collect()
            }),
        ),
        _ => (0, None),
    };
    ValueInfo {
        name: v.name.unwrap_or_default(),
        elem_type,
        shape,
    }
}
