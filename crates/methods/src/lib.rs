//! # convscope-methods
//!
//! The visualization methods of convscope, on top of the differentiable engine:
//! intermediate activations, filter patterns by gradient ascent in input space, and class
//! activation maps, plus saliency maps.
//!
//! ```
//! use convscope_engine::{Model, Tensor};
//! use convscope_methods::activations::compute_activations;
//! use convscope_methods::filters::{visualize_filters, FiltersConfig};
//! use convscope_methods::select::select_layers;
//! use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
//!
//! // A one-layer model: two 3×3 filters over an RGB image, then ReLU.
//! let weights: Vec<f32> = (0..54).map(|i| ((i % 7) as f32 - 3.0) / 10.0).collect();
//! let mut g = GraphBuilder::new("tiny");
//! g.input("x", &[Dim::Value(1), Dim::Value(3), Dim::Value(16), Dim::Value(16)])
//!     .output("y", &[])
//!     .initializer(TensorProto::from_f32("w", &[2, 3, 3, 3], &weights))
//!     .node("Conv", "conv1", &["x", "w"], &["c"], vec![AttributeProto::ints("pads", &[1, 1, 1, 1])])
//!     .node("Relu", "relu1", &["c"], &["y"], vec![]);
//! let model = Model::from_proto(g.build(13))?;
//!
//! // Every channel of the selected layers, with statistics.
//! let layers = select_layers(&model, "conv1")?;
//! let acts = compute_activations(&model, &Tensor::full(&[1, 3, 16, 16], 0.5), &layers)?;
//! assert_eq!(acts[0].values.shape(), &[1, 2, 16, 16]);
//!
//! // The input pattern each filter responds to most (the walk-through's gradient ascent).
//! let cfg = FiltersConfig { filters: vec![0, 1], size: (16, 16), steps: 10, ..FiltersConfig::default() };
//! let patterns = visualize_filters(&model, layers[0].value, &cfg, &mut |_| {})?;
//! assert!(patterns.iter().all(|p| p.end() >= p.start()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod activations;
mod batch;
pub mod cam;
mod error;
pub mod filters;
pub mod fvis;
pub mod input;
pub mod saliency;
pub mod select;
pub mod target;
pub mod tokens;
pub mod transform;

pub use error::{Error, Result};
