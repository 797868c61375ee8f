//! The methods crate's error type.

/// Everything that can go wrong while computing a visualization.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine failed (loading, running or differentiating the model).
    #[error(transparent)]
    Engine(#[from] convscope_engine::Error),
    /// Reading, decoding or preprocessing an image failed.
    #[error(transparent)]
    Image(#[from] convscope_image::Error),
    /// The input cannot be fed to the model.
    #[error("{0}")]
    Input(String),
    /// A layer selection that does not fit the model.
    #[error("{0}")]
    Layer(String),
    /// Options that contradict each other or the model.
    #[error("{0}")]
    Config(String),
    /// The caller asked the job to stop (e.g. the page that wanted it went away).
    #[error("the job was cancelled")]
    Cancelled,
}

/// The methods crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
