//! # convscope-engine
//!
//! A differentiable executor for ONNX convolutional networks: load a model exactly as an exporter
//! wrote it, run it up to any layer, and get the exact gradient of any objective with respect to
//! the input image and to any intermediate value.
//!
//! The ONNX graph is the tape: every op has a forward function and a vector-Jacobian product,
//! and a backward pass walks the executed nodes in reverse. Input gradients never pay for weight
//! gradients.
//!
//! ```
//! use convscope_engine::{Model, Tensor};
//! use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
//!
//! // A one-layer model: 3×3 convolution of a 1-channel image, then ReLU.
//! let mut g = GraphBuilder::new("tiny");
//! g.input("x", &[Dim::Value(1), Dim::Value(1), Dim::Value(5), Dim::Value(5)])
//!     .output("y", &[])
//!     .initializer(TensorProto::from_f32("w", &[1, 1, 3, 3], &[1.0; 9]))
//!     .node("Conv", "conv1", &["x", "w"], &["c"], vec![AttributeProto::ints("pads", &[1, 1, 1, 1])])
//!     .node("Relu", "relu1", &["c"], &["y"], vec![]);
//! let model = Model::from_proto(g.build(13))?;
//! let layer = model.layer("conv1").expect("the Conv+Relu layer");
//!
//! let x = Tensor::full(&[1, 1, 5, 5], 1.0);
//! let tape = model.forward(&x, &[layer.value])?;
//! let y = tape.value(layer.value)?;
//! assert_eq!(y.data()[12], 9.0); // centre pixel sees the whole kernel
//!
//! // d sum(y) / d x: every pixel is read by as many windows as fit around it.
//! let grads = tape.backward(vec![(layer.value, Tensor::full(y.shape(), 1.0))], &[])?;
//! assert_eq!(grads.input.data()[0], 4.0);
//! assert_eq!(grads.input.data()[12], 9.0);
//! # Ok::<(), convscope_engine::Error>(())
//! ```
//!
//! Runs compute as the model's [`ExecConfig`] says (by default: this CPU's instruction set,
//! Winograd on for 3×3 convolutions), a value set per model ([`Model::with_config`]), never
//! a process-wide switch.
//!
//! The engine is built in layers, each importing only from the ones below it: runtime
//! (threads, allocator, CPU), kernels, tensor, ops, graph, plan (fusion decided once per
//! model and input shape), exec (passes, tape, slicing) and model (docs/design.md, "Engine
//! layers").
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

// The layers, bottom to top: error, runtime, kernels, tensor, ops, graph, plan, exec, model;
// each imports only from the layers below it (checked by tests/layering.rs). See
// docs/design.md, "Engine layers".
mod error;
mod exec;
mod graph;
mod kernels;
mod model;
pub mod ops;
mod plan;
mod runtime;
mod tensor;

pub use error::{Error, Result, UnsupportedOp};
pub use exec::{
    FilterSlice, Gradients, MemoryEstimate, NonFinite, Pass, ReluRule, SliceTape, Tape,
};
pub use graph::{
    closest, ElemType, InferredValue, InputSpec, Layer, Layout, LoadOptions, ValueId,
    MAX_INPUT_SIDE,
};
pub use kernels::simd::peak_fma_gflops;
pub use model::{group_digits, LayerSummary, Model, PlanNodes, Summary};
pub use ops::ExecConfig;
pub use runtime::alloc::CachingAlloc;
pub use runtime::cpu::Isa;
pub use runtime::profile::{set_profiling, set_profiling_per_node, take_profile};
pub use tensor::{strides_of, IntTensor, Tensor, TensorOf, Value};
