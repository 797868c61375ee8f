//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading, decoding or interpreting an ONNX model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended in the middle of a field.
    #[error("truncated input while reading {context}")]
    Truncated {
        /// The protobuf message (or value) that was being read.
        context: &'static str,
    },

    /// The bytes are complete but do not form a valid ONNX message.
    #[error("malformed {context}: {detail}")]
    Malformed {
        /// The protobuf message (or value) that was being read.
        context: &'static str,
        /// What exactly is wrong.
        detail: String,
    },

    /// The input is not an ONNX model at all (wrong file type, or no graph).
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),

    /// A file could not be read.
    ///
    /// The message includes `error`'s, so `error` is not also reported as
    /// [`std::error::Error::source`] (a chain printer would show it twice).
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        error: std::io::Error,
    },

    /// A tensor's external data reference is invalid or its file cannot be read.
    #[error("external data of tensor `{tensor}`: {detail}")]
    ExternalData {
        /// Name of the tensor whose data lives outside the model file.
        tensor: String,
        /// What exactly is wrong.
        detail: String,
    },

    /// The tensor's element type cannot be converted to [`TensorValues`](crate::TensorValues).
    #[error(
        "tensor `{tensor}` has unsupported data type {data_type} ({})",
        crate::data_type::name(*data_type)
    )]
    UnsupportedDataType {
        /// Name of the tensor.
        tensor: String,
        /// The `TensorProto.data_type` value, see [`data_type`](crate::data_type).
        data_type: i32,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
