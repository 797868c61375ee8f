//! The one error type of the Keras reader.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong reading a Keras file, each a one-line message naming the
/// problem.
///
/// ```
/// let err = convscope_keras::KerasModel::from_bytes(b"not a model").unwrap_err();
/// assert!(err.to_string().contains("neither a .keras zip archive nor an HDF5 file"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// The bytes are neither a zip archive nor an HDF5 file.
    #[error("not a Keras model: neither a .keras zip archive nor an HDF5 file")]
    UnknownFormat,
    /// The `.keras` zip archive is truncated or corrupt, or lacks a member.
    #[error("corrupt .keras archive: {0}")]
    Zip(String),
    /// The HDF5 data is truncated or corrupt.
    #[error("corrupt HDF5 data: {0}")]
    Hdf5(String),
    /// A readable HDF5 file that holds no Keras model.
    #[error("not a Keras model: {0}")]
    NotAModel(String),
    /// The model configuration is malformed or contradicts itself.
    #[error("bad Keras model config: {0}")]
    Config(String),
    /// A layer's weights are missing from the file or have the wrong shape.
    #[error("layer '{layer}' ({class}): {problem}")]
    Weights {
        /// The layer's path, e.g. `vgg16/block1_conv1`.
        layer: String,
        /// Its Keras class.
        class: String,
        /// What is wrong, e.g. `the file has no weights for it`.
        problem: String,
    },
    /// Layers (or layer options) convscope cannot translate; every one is listed.
    #[error("{}", UnsupportedList(.0))]
    Unsupported(Vec<Unsupported>),
}

/// One layer convscope cannot translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The layer's path, e.g. `base/doubling`.
    pub layer: String,
    /// Its Keras class (a custom class is shown with its registered name).
    pub class: String,
    /// Why, when the class itself is supported but an option is not (e.g. `data_format channels_first`).
    pub reason: Option<String>,
}

struct UnsupportedList<'a>(&'a [Unsupported]);

impl fmt::Display for UnsupportedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported Keras layers: ")?;
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            if i == 8 {
                return write!(f, "and {} more", self.0.len() - 8);
            }
            write!(f, "{} ({}", u.layer, u.class)?;
            if let Some(r) = &u.reason {
                write!(f, ": {r}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// `s` with control characters (a newline in a layer name a file made up) shown as `\u{..}`
/// escapes, so every message stays one line.
fn one_line(s: String) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s
    }
}

impl Error {
    /// The same error with every text from the file made printable on one line.
    pub(crate) fn one_line(self) -> Error {
        match self {
            Error::Zip(m) => Error::Zip(one_line(m)),
            Error::Hdf5(m) => Error::Hdf5(one_line(m)),
            Error::NotAModel(m) => Error::NotAModel(one_line(m)),
            Error::Config(m) => Error::Config(one_line(m)),
            Error::Weights {
                layer,
                class,
                problem,
            } => Error::Weights {
                layer: one_line(layer),
                class: one_line(class),
                problem: one_line(problem),
            },
            Error::Unsupported(list) => Error::Unsupported(
                list.into_iter()
                    .map(|u| Unsupported {
                        layer: one_line(u.layer),
                        class: one_line(u.class),
                        reason: u.reason.map(one_line),
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let e = Error::Config("layer 'a\nb'".into()).one_line();
        assert_eq!(e.to_string(), "bad Keras model config: layer 'a\\u{a}b'");
    }

    #[test]
    fn unsupported_list_is_one_line_and_capped() {
        let many: Vec<Unsupported> = (0..10)
            .map(|i| Unsupported {
                layer: format!("l{i}"),
                class: "Lambda".into(),
                reason: (i == 0).then(|| "arbitrary Python code".into()),
            })
            .collect();
        let msg = Error::Unsupported(many).to_string();
        assert!(!msg.contains('\n'));
        assert!(msg.starts_with(
            "unsupported Keras layers: l0 (Lambda: arbitrary Python code); l1 (Lambda)"
        ));
        assert!(msg.ends_with("and 2 more"), "{msg}");
    }
}
