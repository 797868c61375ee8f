//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `convscope-image`.
///
/// Every variant formats as one self-contained line; variants about files
/// name the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file does not exist.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// An I/O error while reading or writing a file.
    ///
    /// The message includes `error`'s, so `error` is not also reported as
    /// [`std::error::Error::source`] (a chain printer would show it twice).
    #[error("{}: {error}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The file exists but is not an image this crate can decode.
    #[error("{}: not a decodable image (PNG/JPEG/WebP/BMP/TIFF expected): {message}", path.display())]
    Decode {
        /// The file that failed to decode.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// Encoding an image (e.g. to PNG) failed.
    #[error("cannot encode image: {0}")]
    Encode(String),
    /// A `.npy` file is malformed or uses an unsupported layout/dtype.
    #[error("{}: invalid .npy file: {message}", path.display())]
    Npy {
        /// The `.npy` file (or `<memory>` for in-memory parsing).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Data length and declared dimensions disagree, or dimensions are unusable.
    #[error("shape error: {0}")]
    Shape(String),
    /// An argument is out of its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A name (filter, colormap, normalisation) was not recognised.
    #[error("unknown {kind} '{value}' (valid: {valid})")]
    UnknownName {
        /// What kind of name it was, e.g. `"colormap"`.
        kind: &'static str,
        /// The rejected input.
        value: String,
        /// Comma-separated list of valid names.
        valid: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
