//! Reading and writing ONNX models without protobuf code generation.
//!
//! ONNX files are protobuf-encoded `ModelProto` messages. This crate decodes the wire format
//! by hand into plain structs covering what a CNN visualizer needs (graph, nodes, attributes,
//! tensors, value shapes), and encodes them back, so tests and tools can generate models.
//!
//! Decoding is meant to be safe on untrusted files: it never panics, every length prefix is
//! checked against the bytes actually left before anything is allocated (memory stays
//! linear in the input size), and message nesting is capped at 64 levels.
//!
//! ```
//! use convscope_onnx::{AttributeProto, Dim, GraphBuilder, ModelProto, TensorProto, TensorValues};
//!
//! let mut g = GraphBuilder::new("tiny");
//! g.input("x", &[Dim::Param("N".into()), Dim::Value(2)])
//!     .initializer(TensorProto::from_f32("w", &[2], &[0.5, -1.0]))
//!     .node("Mul", "scale", &["x", "w"], &["y"], vec![])
//!     .node("LeakyRelu", "act", &["y"], &["z"], vec![AttributeProto::float("alpha", 0.1)])
//!     .output("z", &[Dim::Param("N".into()), Dim::Value(2)]);
//! let bytes = g.build(17).encode();
//!
//! let model = ModelProto::decode(&bytes)?;
//! let act = &model.graph.node[1];
//! assert_eq!(act.op_type, "LeakyRelu");
//! assert_eq!(act.attr_float("alpha"), Some(0.1));
//! assert_eq!(
//!     model.graph.initializer[0].values()?,
//!     TensorValues::Float(vec![0.5, -1.0])
//! );
//! # Ok::<(), convscope_onnx::Error>(())
//! ```
//!
//! Use [`ModelProto::load`] for files on disk: it also resolves tensors whose data lives in
//! separate files (ONNX "external data").

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod builder;
mod error;
mod proto;
mod tensor;
mod wire;

pub use builder::GraphBuilder;
pub use error::{Error, Result};
pub use proto::{
    AttributeProto, AttributeValue, Dim, GraphProto, ModelProto, NodeProto, OperatorSetId,
    TensorProto, ValueInfo,
};
pub use tensor::{data_type, TensorValues};
