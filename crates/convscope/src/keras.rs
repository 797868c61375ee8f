//! Keras files (`.keras`, `.h5`) through `convscope-keras`: recognised by content, translated
//! to the engine's graph, with the input preset guessed from a leading `Rescaling` layer.

use std::io::Read;
use std::path::Path;

use convscope_engine::LoadOptions;

use crate::error::Result;
use crate::input::{InputConfig, Preprocess};
use crate::model::Model;

/// Whether `path` starts like a Keras file (a zip archive or HDF5). Unreadable files answer
/// `false`, so the ONNX loader reports the I/O error as before.
pub(crate) fn is_keras_file(path: &Path) -> bool {
    let mut head = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    convscope_keras::sniff(&head[..n]).is_some()
}

/// Loads a Keras file. A model that rescales its input itself (`Rescaling` right after the
/// input) gets raw `0..=255` pixels.
pub(crate) fn load(path: &Path, options: &LoadOptions) -> Result<Model> {
    let keras = convscope_keras::KerasModel::load(path)?;
    let engine = convscope_engine::Model::from_proto_with(keras.proto, options)?;
    let mut model = Model::from_engine(engine, path.display().to_string())
        .allow_nonfinite(options.allow_nonfinite)
        .with_declared_params(keras.weight_count)
        .with_keras_layers(keras.layers);
    if keras.input_rescaling.is_some() {
        model.set_input(InputConfig {
            preprocess: Preprocess::Raw,
            ..InputConfig::default()
        });
    }
    Ok(model)
}
