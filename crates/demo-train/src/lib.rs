//! # convscope-demo-train
//!
//! The tool that makes the assets of `convscope-demo` (`crates/demo/assets`): the demo CNN
//! (circle / square / triangle / stripes) built, trained and exported to ONNX by convscope's
//! own code. The `convscope` program does not link this crate; it only embeds the assets.
//!
//! * [`train`] is the from-scratch trainer (forward and backward passes, Adam), fed with the
//!   procedural scenes of [`convscope_demo::scene`];
//! * [`export`] writes the trained network as ONNX;
//! * `src/bin/train_demo.rs` ties them together and regenerates
//!   `crates/demo/assets/demo_model.onnx` and `demo_model.json` bit for bit:
//!   `cargo run --release -p convscope-demo-train --bin train_demo`;
//! * `examples/reference_io.rs` and `scripts/check_onnxruntime.py` compare the embedded
//!   model's outputs with onnxruntime's.
//!
//! ```
//! use convscope_demo::scene::{Sample, Shape};
//! use convscope_demo::CLASSES;
//! use convscope_demo_train::{demo_model, image_tensor};
//!
//! let model = demo_model()?;
//! let sample = Sample::with_class(12_345, Shape::Triangle);
//! let x = image_tensor(&sample.image);
//! let probs = model.run_float(&x, &[model.outputs()[0]])?.remove(0);
//! let best = (0..4).max_by(|&a, &b| probs.data()[a].total_cmp(&probs.data()[b])).unwrap();
//! assert_eq!(CLASSES[best], "triangle");
//! # Ok::<(), convscope_engine::Error>(())
//! ```

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod export;
pub mod train;

use convscope_demo::scene::Image;
use convscope_engine::{Model, Tensor};

/// The embedded model of `convscope-demo`, loaded by the engine.
pub fn demo_model() -> convscope_engine::Result<Model> {
    Model::from_bytes(convscope_demo::demo_model_bytes())
}

/// A one-image batch `[1, 3, H, W]` for the model ("unit" preprocessing).
pub fn image_tensor(image: &Image) -> Tensor {
    Tensor::new(vec![1, 3, image.height, image.width], image.to_chw_unit())
        .expect("an RGB image has 3·H·W values")
}
