//! What the model declares about its image input beyond the layout: the element type, and the
//! dimensions exactly as written (also the ones too large to use).

use convscope_onnx::{data_type, Dim, ValueInfo};

/// Largest input height or width taken from a file's declaration (larger ones are treated as
/// undeclared, see [`crate::InputSpec::declared_dims`]).
pub const MAX_INPUT_SIDE: usize = 1 << 16;

/// The element type a model declares for its input.
///
/// The engine always computes in `f32` and feeds the input tensor as given; the type tells
/// input preparation what the values should be (see `convscope_methods::input`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    /// FLOAT, DOUBLE, FLOAT16 or BFLOAT16, or no type declared.
    Float,
    /// UINT8: raw pixel values `0..=255` (the graph casts them to float itself).
    Uint8,
    /// Any other type, by its ONNX `TensorProto.DataType` code (INT64, INT32, INT8, BOOL...).
    Other(i32),
}

impl ElemType {
    /// The type of an ONNX `elem_type` code.
    pub fn from_onnx(code: i32) -> ElemType {
        match code {
            0 | data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 | data_type::BFLOAT16 => {
                ElemType::Float
            }
            data_type::UINT8 => ElemType::Uint8,
            other => ElemType::Other(other),
        }
    }

    /// Upper-case ONNX name, e.g. `"UINT8"` (`"FLOAT"` for every float type).
    ///
    /// ```
    /// use convscope_engine::ElemType;
    /// assert_eq!(ElemType::from_onnx(7).name(), "INT64");
    /// assert_eq!(ElemType::Uint8.name(), "UINT8");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            ElemType::Float => "FLOAT",
            ElemType::Uint8 => "UINT8",
            ElemType::Other(code) => data_type::name(*code),
        }
    }
}

/// The input's dimensions as declared: `Some(v)` for a fixed size (whatever its value),
/// `None` for a symbolic or unknown one; four unknowns when not even the rank is declared.
pub(crate) fn declared_dims(info: &ValueInfo) -> Vec<Option<i64>> {
    match &info.shape {
        Some(d) => d
            .iter()
            .map(|d| match d {
                Dim::Value(v) => Some(*v),
                _ => None,
            })
            .collect(),
        None => vec![None; 4],
    }
}
