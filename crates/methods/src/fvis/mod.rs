//! Feature visualization at the level of Lucid and MaCo, for any objective, split as Lucent
//! splits it:
//!
//! * [`param`]: how parameters become a picture (pixels, Lucid's decorrelated Fourier basis,
//!   MaCo's phase under a fixed [`spectrum`]);
//! * [`transform`]: random transformations with exact adjoints (Lucid's standard set, MaCo's
//!   crops with noise, none);
//! * [`objective`]: what to maximise (channel, neuron, direction, class, inversion, caricature,
//!   diversity, and their weighted sums);
//! * [`optimizer`]: the walk-through's normalised step, Adam, NAdam;
//! * [`render`]: the loop that ties them together, one batch through the network per step.
//!
//! ```
//! use convscope_engine::Model;
//! use convscope_methods::fvis::objective::{Objective, Term};
//! use convscope_methods::fvis::render::{render, Job, RenderConfig};
//! use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
//!
//! // Two 3×3 filters over an RGB image, then ReLU.
//! let weights: Vec<f32> = (0..54).map(|i| ((i % 7) as f32 - 3.0) / 10.0).collect();
//! let mut g = GraphBuilder::new("tiny");
//! g.input("x", &[Dim::Value(1), Dim::Value(3), Dim::Value(16), Dim::Value(16)])
//!     .output("y", &[])
//!     .initializer(TensorProto::from_f32("w", &[2, 3, 3, 3], &weights))
//!     .node("Conv", "conv1", &["x", "w"], &["c"], vec![AttributeProto::ints("pads", &[1, 1, 1, 1])])
//!     .node("Relu", "relu1", &["c"], &["y"], vec![]);
//! let model = Model::from_proto(g.build(13))?;
//! let layer = model.layer("conv1").unwrap().value;
//!
//! let job = Job { objective: Objective::from(Term::Channel { layer, channel: 1 }), group: 0, index: 0 };
//! let cfg = RenderConfig { steps: 10, size: (16, 16), view: (16, 16), ..RenderConfig::default() };
//! let pictures = render(&model, &[job], &cfg, &mut |_| true)?;
//! assert!(pictures[0].curve[9] > pictures[0].curve[0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod fft;
pub mod objective;
pub mod optimizer;
pub mod param;
pub mod render;
pub mod spectrum;
pub mod transform;

#[cfg(test)]
mod reference_tests;

/// A planar picture or gradient: `channels × height × width` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Planes {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels · height · width` values, channel-major.
    pub data: Vec<f32>,
}

impl Planes {
    /// Wraps `data` (its length must be `channels · height · width`).
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Planes {
        debug_assert_eq!(data.len(), channels * height * width);
        Planes {
            channels,
            height,
            width,
            data,
        }
    }
}
