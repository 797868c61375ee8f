//! The viewer crate's error type.

/// What can stop the viewer from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The `host:port` asked for.
        addr: String,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// `--images` is not a readable folder.
    #[error("--images {path}: {reason}")]
    Images {
        /// The folder given.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The options contradict each other.
    #[error("{0}")]
    Config(String),
    /// The model could not be summarised.
    #[error(transparent)]
    Model(#[from] convscope::Error),
    /// The server's runtime could not start.
    #[error("cannot start the server: {0}")]
    Runtime(std::io::Error),
}

/// The viewer crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
