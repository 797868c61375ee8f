//! # convscope-demo
//!
//! A small CNN that tells apart four shapes (circle, square, triangle, stripes) on random
//! gradient backgrounds, built, trained and exported to ONNX by convscope's own code, and
//! embedded in the library so `convscope demo` works with no files.
//!
//! * [`scene`] draws the procedural scenes (seeded and deterministic);
//! * [`train`] is the from-scratch trainer (forward and backward passes, Adam);
//! * [`export`] writes the trained network as ONNX;
//! * `src/bin/train_demo.rs` ties them together and regenerates `assets/demo_model.onnx` and
//!   `assets/demo_model.json`: `cargo run --release -p convscope-demo --bin train_demo`.
//!
//! The model takes `image` `[N, 3, H, W]` (RGB, values divided by 255: the "unit"
//! preprocessing; any `H` and `W`, best multiples of 8, trained at 64×64) and returns
//! `probabilities` `[N, 4]`; the classifier's pre-softmax output is the value `logits`.
//! Its last conv (`conv4`, value `relu4_out`) has an 8×8 map for a 64×64 image and is followed
//! by global average pooling, so Grad-CAM there is exact class-activation mapping.
//!
//! ```
//! use convscope_demo::{demo_model_bytes, image_tensor, scene::{Sample, Shape}, CLASSES};
//! use convscope_engine::Model;
//!
//! let model = Model::from_bytes(demo_model_bytes())?;
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
pub mod scene;
pub mod train;

use convscope_engine::{Model, Tensor};

pub use scene::BBox;

/// Class names in the model's output order.
pub const CLASSES: [&str; 4] = ["circle", "square", "triangle", "stripes"];

/// Side of the square images the model was trained on.
pub const INPUT_SIZE: usize = scene::IMAGE_SIZE;

/// The model's preprocessing: RGB values divided by 255, nothing else.
pub const PREPROCESSING: &str = "unit";

/// Name of the last conv layer (the Grad-CAM layer; its activated value is `relu4_out`).
pub const CAM_LAYER: &str = "conv4";

/// Side of the [`demo_scene`] image.
pub const DEMO_SCENE_SIZE: usize = 160;

/// Seed of the [`demo_scene`] image.
pub const DEMO_SCENE_SEED: u64 = 2024;

/// The embedded ONNX model (written by `train_demo`).
pub fn demo_model_bytes() -> &'static [u8] {
    include_bytes!("../assets/demo_model.onnx")
}

/// The embedded model's metadata as JSON: classes, input size, preprocessing, held-out
/// accuracy, seeds and training settings.
pub fn demo_model_json() -> &'static str {
    include_str!("../assets/demo_model.json")
}

/// The embedded model, ready to run.
pub fn demo_model() -> convscope_engine::Result<Model> {
    Model::from_bytes(demo_model_bytes())
}

/// The demo scene: a deterministic [`DEMO_SCENE_SIZE`]² RGB image (HWC bytes) with one shape
/// of every class, returned as `(pixels, width, height, boxes)` where `boxes[c]` is the box of
/// the shape of class `c` ([`CLASSES`] order).
///
/// ```
/// let (pixels, w, h, boxes) = convscope_demo::demo_scene();
/// assert_eq!(pixels.len(), w * h * 3);
/// assert!(boxes.iter().all(|b| b.x1 <= w && b.y1 <= h));
/// ```
pub fn demo_scene() -> (Vec<u8>, usize, usize, [BBox; 4]) {
    let s = scene::scene_with_all_classes(DEMO_SCENE_SEED, DEMO_SCENE_SIZE);
    (s.image.data, s.image.width, s.image.height, s.boxes)
}

/// A one-image batch `[1, 3, H, W]` for the model ("unit" preprocessing).
pub fn image_tensor(image: &scene::Image) -> Tensor {
    Tensor::new(vec![1, 3, image.height, image.width], image.to_chw_unit())
        .expect("an RGB image has 3·H·W values")
}
