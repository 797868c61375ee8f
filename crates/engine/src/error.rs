//! The engine's error type.

use std::fmt;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or decoded as ONNX.
    #[error(transparent)]
    Onnx(#[from] convscope_onnx::Error),
    /// The model uses ops the engine does not implement; every one is listed.
    #[error("{}", UnsupportedList(.0))]
    UnsupportedOps(Vec<UnsupportedOp>),
    /// A layer or value name that does not exist; `closest` holds the nearest existing names.
    #[error("no layer or value named '{name}'{}", closest_hint(.closest))]
    UnknownName {
        /// The name that was asked for.
        name: String,
        /// Existing names, closest first.
        closest: Vec<String>,
    },
    /// A short name that ends more than one path (`conv` when two nested Keras models each
    /// hold a `conv`: `inner_a/conv`, `inner_b/conv`); every path is listed.
    #[error("'{name}' is ambiguous: it names {}; give the full path", .paths.join(", "))]
    AmbiguousName {
        /// The name that was asked for.
        name: String,
        /// Every value path ending in `/name`.
        paths: Vec<String>,
    },
    /// The input tensor does not fit the model.
    #[error("bad input: {0}")]
    Input(String),
    /// Shapes that do not fit together.
    #[error("shape error: {0}")]
    Shape(String),
    /// A value of the wrong element type.
    #[error("type error: {0}")]
    Type(String),
    /// The graph is not a valid ONNX graph (cycles, missing values, bad attributes).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// `CONVSCOPE_ISA` names no instruction set, or one this CPU lacks
    /// ([`Isa::requested`](crate::Isa::requested)).
    #[error("{0}")]
    Isa(String),
    /// A failure inside one node, with the node's name and op for context.
    ///
    /// The message already includes `error`'s, so `error` is deliberately not reported as
    /// [`std::error::Error::source`]: a chain printer (`anyhow`'s `{:#}`) would print it twice.
    #[error("node '{node}' ({op}): {error}")]
    Node {
        /// Node name (or its first output when unnamed).
        node: String,
        /// ONNX op type.
        op: String,
        /// What went wrong.
        error: Box<Error>,
    },
    /// A weight (initializer or `Constant`) holds NaN or ±infinity; refused at load unless
    /// [`LoadOptions::allow_nonfinite`](crate::LoadOptions::allow_nonfinite).
    #[error(
        "weight '{tensor}' holds {value} at element {index} ({}); a model with non-finite weights is refused (load it with allow_nonfinite to inspect it anyway)",
        ReadersText(.readers)
    )]
    NonFiniteWeight {
        /// Name of the initializer (or of the `Constant` node's output).
        tensor: String,
        /// Row-major index of the first non-finite element.
        index: usize,
        /// That element (NaN, `inf` or `-inf`).
        value: f32,
        /// The nodes that read it, as `'name' (Op)`.
        readers: Vec<String>,
    },
    /// A shape that is only known by running the model (it depends on the input's values, or
    /// the op has no shape rule): [`Model::value_shape`](crate::Model::value_shape) and
    /// [`Model::estimate_forward_bytes`](crate::Model::estimate_forward_bytes) cannot answer,
    /// though the pass itself may well succeed.
    #[error("shape not known before running: {0}")]
    ShapeUnknown(String),
    /// A gradient was requested through an op that has none.
    #[error("cannot differentiate through {0}")]
    NotDifferentiable(String),
}

impl Error {
    /// Whether this is (or wraps, through [`Error::Node`]) an [`Error::ShapeUnknown`]: the
    /// estimate could not be made, which says nothing about whether the pass would work.
    pub fn is_shape_unknown(&self) -> bool {
        match self {
            Error::ShapeUnknown(_) => true,
            Error::Node { error, .. } => error.is_shape_unknown(),
            _ => false,
        }
    }
}

/// One unsupported op type and the nodes that use it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsupportedOp {
    /// The ONNX op type (with its domain when not the default one).
    pub op_type: String,
    /// Names of the nodes using it.
    pub nodes: Vec<String>,
}

/// How many readers [`Error::NonFiniteWeight`]'s message names.
const READERS_SHOWN: usize = 5;

/// The readers part of [`Error::NonFiniteWeight`]'s message.
struct ReadersText<'a>(&'a [String]);

impl fmt::Display for ReadersText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => write!(f, "read by no node"),
            [one] => write!(f, "read by node {one}"),
            many => {
                let shown = many[..many.len().min(READERS_SHOWN)].join(", ");
                match many.len().checked_sub(READERS_SHOWN) {
                    Some(more) if more > 0 => write!(f, "read by nodes {shown} and {more} more"),
                    _ => write!(f, "read by nodes {shown}"),
                }
            }
        }
    }
}

struct UnsupportedList<'a>(&'a [UnsupportedOp]);

impl fmt::Display for UnsupportedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported ONNX ops: ")?;
        for (i, op) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            let shown: Vec<&str> = op.nodes.iter().take(5).map(String::as_str).collect();
            write!(
                f,
                "{} (node{} {}",
                op.op_type,
                if op.nodes.len() > 1 { "s" } else { "" },
                shown.join(", ")
            )?;
            if op.nodes.len() > 5 {
                write!(f, " and {} more", op.nodes.len() - 5)?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

fn closest_hint(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!("; closest: {}", closest.join(", "))
    }
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns early with an [`Error::InvalidModel`] built from a format string.
#[macro_export]
macro_rules! bail_model {
    ($($arg:tt)*) => { return Err($crate::Error::InvalidModel(format!($($arg)*))) };
}

/// Returns early with an [`Error::Shape`] built from a format string.
#[macro_export]
macro_rules! bail_shape {
    ($($arg:tt)*) => { return Err($crate::Error::Shape(format!($($arg)*))) };
}
