//! Reads Keras models directly — Keras 3 `.keras` archives, the `.h5` files Keras 3 and
//! Keras 2 (tf.keras) write — and translates them into an ONNX [`ModelProto`] that
//! convscope's engine runs like any ONNX file, with Keras's layer names.
//!
//! No Python and no conversion step: the zip is read here, the HDF5 weights with the pure-Rust
//! `hdf5-pure` crate, and each layer becomes the ONNX ops the engine already implements (the
//! input stays NHWC as in Keras). Layers it cannot translate are all listed in one error.
//!
//! ```no_run
//! let keras = convscope_keras::KerasModel::load("cats_and_dogs_small_2.h5".as_ref())?;
//! let proto = keras.proto; // hand to convscope_engine::Model::from_proto
//! # Ok::<(), convscope_keras::Error>(())
//! ```

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod config;
mod error;
mod h5;
mod translate;
mod weights;
mod zip;

use std::path::Path;

pub use convscope_onnx::ModelProto;
pub use error::{Error, Result, Unsupported};

use config::Graph;
use h5::H5;
use weights::Weights;

/// A Keras model translated into ONNX.
#[derive(Debug, Clone)]
pub struct KerasModel {
    /// The ONNX graph: NHWC image input named after the Keras input layer, each Keras layer's
    /// output value named by its path (`block1_conv1`, `vgg16/block1_conv1` when nested).
    pub proto: ModelProto,
    /// `(scale, offset)` of a `Rescaling` layer applied straight to the input: the model then
    /// wants raw `0..=255` pixels.
    pub input_rescaling: Option<(f32, f32)>,
    /// The Keras version that wrote the file, when it says.
    pub keras_version: Option<String>,
    /// Every weight value in the file: what Keras's `model.summary()` prints as "Total params"
    /// (BatchNormalization's moving statistics and an adapted Normalization's count included;
    /// constants a layer keeps in its config, such as a per-channel Rescaling's scale, not).
    pub weight_count: usize,
    /// The rows Keras's `model.summary()` prints, in its order: every top-level layer (a
    /// nested model is one row, as Keras shows it; a Sequential's InputLayer is left out, a
    /// Functional model's listed).
    pub layers: Vec<KerasLayer>,
}

/// One row of Keras's `model.summary()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerasLayer {
    /// The layer's name, e.g. `conv2d` or `vgg16`.
    pub name: String,
    /// Its class as Keras shows it: `Conv2D`, `Functional` or `Sequential` for a nested model.
    pub class: String,
    /// The graph value holding its output (of its first call). A 4-D value is held NCHW
    /// (Keras's NHWC transposed), except the model input itself, which stays NHWC.
    pub value: String,
    /// Its weight values (`layer.count_params()`: non-trainable statistics included).
    pub params: usize,
}

/// Which file format, from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Keras 3 `.keras` zip archive.
    KerasZip,
    /// An HDF5 file (`.h5`, Keras 2 or Keras 3).
    Hdf5,
}

/// Recognises a Keras file by its content: a zip archive (`.keras`) or an HDF5 file (`.h5`).
///
/// ```
/// use convscope_keras::{sniff, Format};
/// assert_eq!(sniff(b"\x89HDF\r\n\x1a\n...."), Some(Format::Hdf5));
/// assert_eq!(sniff(b"PK\x03\x04...."), Some(Format::KerasZip));
/// assert_eq!(sniff(b"\x08\x07\x12\x07tf2onnx"), None); // an ONNX file
/// ```
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(zip::MAGIC) {
        Some(Format::KerasZip)
    } else if head.starts_with(h5::MAGIC) {
        Some(Format::Hdf5)
    } else {
        None
    }
}

impl KerasModel {
    /// Reads and translates a `.keras` or `.h5` file (recognised by content, not extension).
    ///
    /// # Errors
    ///
    /// One line naming the problem: an unreadable, truncated or corrupt file, an HDF5 file
    /// that holds no Keras model, a config naming weights the file lacks, or every layer that
    /// cannot be translated ([`Error::Unsupported`]).
    pub fn load(path: &Path) -> Result<KerasModel> {
        let bytes = std::fs::read(path).map_err(|reason| Error::Io {
            path: path.to_path_buf(),
            reason,
        })?;
        KerasModel::from_bytes(&bytes)
    }

    /// [`KerasModel::load`] for bytes in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<KerasModel> {
        let result = match sniff(bytes) {
            Some(Format::KerasZip) => from_zip(bytes),
            Some(Format::Hdf5) => from_h5(bytes.to_vec()),
            None => Err(Error::UnknownFormat),
        };
        result.map_err(Error::one_line)
    }
}

fn parse_json(text: &[u8], what: &str) -> Result<serde_json::Value> {
    serde_json::from_slice(text)
        .map_err(|e| Error::Config(format!("{what} is not valid JSON: {e}")))
}

fn finish(graph: &Graph, weights: &Weights, keras_version: Option<String>) -> Result<KerasModel> {
    let keras2 = keras_version
        .as_deref()
        .is_some_and(|v| v.starts_with('2') || v.starts_with('1'));
    let t = translate::translate(graph, weights, keras2)?;
    let layers = graph
        .layers
        .iter()
        .filter(|l| !(graph.sequential && l.class == "InputLayer"))
        .map(|l| KerasLayer {
            name: l.name.clone(),
            class: match l.class.as_str() {
                // Keras 2's name for a nested Functional model; Keras shows its class.
                "Model" => "Functional".into(),
                c => c.to_string(),
            },
            value: l.name.clone(),
            params: weights.count_of(&l.name),
        })
        .collect();
    Ok(KerasModel {
        proto: t.proto,
        input_rescaling: t.input_rescaling,
        keras_version,
        weight_count: weights.element_count(),
        layers,
    })
}

fn from_zip(bytes: &[u8]) -> Result<KerasModel> {
    let entries = zip::entries(bytes)?;
    let config = parse_json(&zip::read(bytes, &entries, "config.json")?, "config.json")?;
    let keras_version = entries
        .iter()
        .any(|e| e.name == "metadata.json")
        .then(|| zip::read(bytes, &entries, "metadata.json").ok())
        .flatten()
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
        .and_then(|m| m.get("keras_version")?.as_str().map(str::to_string));
    let graph = config::parse_model(&config)?;
    let h5 = H5::from_bytes(zip::read(bytes, &entries, "model.weights.h5")?)?;
    let weights = Weights::keras3(&h5)?;
    finish(&graph, &weights, keras_version)
}

fn from_h5(bytes: Vec<u8>) -> Result<KerasModel> {
    let h5 = H5::from_bytes(bytes)?;
    let Some(config) = h5.attr_string("/", "model_config")? else {
        let what = if h5.has_group("layers") || h5.attr_string("/", "layer_names")?.is_some() {
            "this HDF5 file holds only weights (model.save_weights); save the whole model with model.save"
        } else {
            "the HDF5 file has no model_config attribute"
        };
        return Err(Error::NotAModel(what.into()));
    };
    let keras_version = h5.attr_string("/", "keras_version")?;
    let graph = config::parse_model(&parse_json(config.as_bytes(), "model_config")?)?;
    if !h5.has_group("model_weights") {
        return Err(Error::NotAModel(
            "the HDF5 file has a model_config but no model_weights group".into(),
        ));
    }
    let weights = Weights::legacy(&h5, "model_weights")?;
    finish(&graph, &weights, keras_version)
}
