//! # convscope-demo
//!
//! The assets of `convscope demo`, so the command works with no files: a small CNN that tells
//! apart four shapes (circle, square, triangle, stripes) on random gradient backgrounds, as
//! ONNX bytes and JSON metadata, its class names, and the procedural [`scene`] generator that
//! draws the demo scene. The crate has no dependencies: the model is plain bytes, which the
//! program loads with its engine (`convscope_engine::Model::from_bytes(demo_model_bytes())`).
//!
//! The model was built, trained and exported to ONNX by convscope's own code in the
//! `convscope-demo-train` crate (`crates/demo-train`), which regenerates
//! `assets/demo_model.onnx` and `assets/demo_model.json` bit for bit:
//! `cargo run --release -p convscope-demo-train --bin train_demo`.
//!
//! The model takes [`INPUT`] `[N, 3, H, W]` (RGB, values divided by 255: the "unit"
//! preprocessing; any `H` and `W`, best multiples of 8, trained at 64×64) and returns
//! [`OUTPUT`] `[N, 4]`; the classifier's pre-softmax output is the value [`LOGITS`].
//! Its last conv ([`CAM_LAYER`], value [`CAM_VALUE`]) has an 8×8 map for a 64×64 image and is
//! followed by global average pooling, so Grad-CAM there is exact class-activation mapping.
//!
//! ```
//! use convscope_demo::{demo_model_bytes, demo_scene, CLASSES, DEMO_SCENE_SIZE};
//!
//! // ONNX is a protobuf message whose first field is the IR version (field 1, varint).
//! assert_eq!(demo_model_bytes()[0], 0x08);
//! let (pixels, width, height, boxes) = demo_scene();
//! assert_eq!((width, height), (DEMO_SCENE_SIZE, DEMO_SCENE_SIZE));
//! assert_eq!(pixels.len(), width * height * 3);
//! assert_eq!(boxes.len(), CLASSES.len());
//! ```

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod scene;

pub use scene::BBox;

/// Class names in the model's output order.
pub const CLASSES: [&str; 4] = ["circle", "square", "triangle", "stripes"];

/// Side of the square images the model was trained on.
pub const INPUT_SIZE: usize = scene::IMAGE_SIZE;

/// The model's preprocessing: RGB values divided by 255, nothing else.
pub const PREPROCESSING: &str = "unit";

/// Name of the model input (`[N, 3, H, W]`).
pub const INPUT: &str = "image";

/// Name of the model output (softmax probabilities, `[N, 4]`).
pub const OUTPUT: &str = "probabilities";

/// Name of the classifier's pre-softmax output (what Grad-CAM differentiates).
pub const LOGITS: &str = "logits";

/// Name of the last conv layer (the Grad-CAM layer; its activated value is [`CAM_VALUE`]).
pub const CAM_LAYER: &str = "conv4";

/// Name of the value the Grad-CAM layer produces (the last conv after its ReLU).
pub const CAM_VALUE: &str = "relu4_out";

/// Side of the [`demo_scene`] image.
pub const DEMO_SCENE_SIZE: usize = 160;

/// Seed of the [`demo_scene`] image.
pub const DEMO_SCENE_SEED: u64 = 2024;

/// The embedded ONNX model (written by `train_demo` in `convscope-demo-train`).
pub fn demo_model_bytes() -> &'static [u8] {
    include_bytes!("../assets/demo_model.onnx")
}

/// The embedded model's metadata as JSON: classes, input size, preprocessing, held-out
/// accuracy, seeds and training settings.
pub fn demo_model_json() -> &'static str {
    include_str!("../assets/demo_model.json")
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
