//! The one error type of the convscope library.

use std::path::{Path, PathBuf};

/// Everything that can go wrong, each with a one-line message that names the problem.
///
/// The lower crates' errors are folded in, so a caller matches one enum:
///
/// ```
/// use convscope::{Error, Model};
///
/// let err = Model::load("no/such/model.onnx").unwrap_err();
/// assert!(matches!(err, Error::Engine(_) | Error::Io { .. }));
/// assert!(err.to_string().contains("no/such/model.onnx"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading, running or differentiating the model failed.
    #[error(transparent)]
    Engine(#[from] convscope_engine::Error),
    /// Reading, decoding, resizing or rendering an image failed.
    #[error(transparent)]
    Image(#[from] convscope_image::Error),
    /// A visualization method refused its input or options.
    #[error(transparent)]
    Method(convscope_methods::Error),
    /// A file could not be read or written.
    ///
    /// The reason is part of the message and not also a `source()`, so no chain printer shows
    /// it twice.
    #[error("cannot {action} {}: {reason}", path.display())]
    Io {
        /// What was being done: `read`, `write`, `create`, ...
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// Options that contradict each other or the model.
    #[error("{0}")]
    Config(String),
    /// The job would need more memory than the limit allows.
    #[error(
        "{what} needs about {} but the memory limit is {}; {hint}, or raise --memory-limit",
        crate::budget::human_bytes(*needed),
        crate::budget::human_bytes(*limit)
    )]
    Memory {
        /// What needs the memory, e.g. `the activations of 66 layers at 2800x2800`.
        what: String,
        /// Estimated peak, in bytes.
        needed: u64,
        /// The limit, in bytes.
        limit: u64,
        /// The option that lowers the need, e.g. `use a smaller --size`.
        hint: String,
    },
    /// A value meant for display or output holds NaN or infinity.
    #[error("{0}")]
    NonFinite(String),
    /// The job stopped because its [`crate::progress::Progress`] said it was cancelled.
    #[error("the job was cancelled")]
    Cancelled,
}

impl From<convscope_methods::Error> for Error {
    fn from(e: convscope_methods::Error) -> Self {
        // Flatten, so one variant carries each kind of failure whichever crate reported it.
        match e {
            convscope_methods::Error::Engine(e) => Error::Engine(e),
            convscope_methods::Error::Image(e) => Error::Image(e),
            convscope_methods::Error::Cancelled => Error::Cancelled,
            other => Error::Method(other),
        }
    }
}

impl Error {
    /// An I/O error with the file it concerns.
    pub fn io(action: &'static str, path: &Path, reason: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_path_buf(),
            reason,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of an error and its sources on one line, each part once.
///
/// Errors that print their source in their own message and also return it from `source()`
/// would otherwise show it twice (`group 0 must be >= 1: invalid model: group 0 must be >= 1`).
///
/// ```
/// use convscope::error::one_line;
///
/// let e = std::io::Error::new(std::io::ErrorKind::Other, "disk full");
/// assert_eq!(one_line(&e), "disk full");
/// ```
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("invalid model: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("group 0 must be >= 1")]
    struct Inner;

    #[test]
    fn one_line_prints_each_part_once() {
        let e = Outer(Inner);
        assert_eq!(one_line(&e), "invalid model: group 0 must be >= 1");
        let io = Error::io(
            "write",
            Path::new("out/x.png"),
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(one_line(&io), "cannot write out/x.png: denied");
    }

    #[test]
    fn memory_errors_name_the_need_the_limit_and_the_way_out() {
        let e = Error::Memory {
            what: "the activations of 3 layers at 2800x2800".into(),
            needed: 7 << 30,
            limit: 4 << 30,
            hint: "use a smaller --size or fewer --layers".into(),
        };
        assert_eq!(
            e.to_string(),
            "the activations of 3 layers at 2800x2800 needs about 7.0 GiB but the memory limit is \
             4.0 GiB; use a smaller --size or fewer --layers, or raise --memory-limit"
        );
    }
}
