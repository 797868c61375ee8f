//! The model's image input: its layout, channels and declared size, as read from the graph,
//! and what it declares beyond that: the element type, and the dimensions exactly as written
//! (also the ones too large to use).

use convscope_onnx::{data_type, Dim};

use super::Node;
use crate::error::{Error, Result};
use crate::ops::ExecConfig;
use crate::tensor::{Tensor, Value};

/// Largest input height or width taken from a file's declaration (larger ones are treated as
/// undeclared, see [`InputSpec::declared_dims`]).
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

/// Memory layout of the image input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Batch, channels, height, width (PyTorch exports).
    Nchw,
    /// Batch, height, width, channels (Keras exports through tf2onnx).
    Nhwc,
}

/// What the model expects as input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// ONNX name of the input.
    pub name: String,
    /// Channel order of the 4-D input.
    pub layout: Layout,
    /// Number of channels.
    pub channels: usize,
    /// Declared height, if fixed.
    pub height: Option<usize>,
    /// Declared width, if fixed.
    pub width: Option<usize>,
    /// Declared batch size, if fixed.
    pub batch: Option<usize>,
    /// The declared element type (what the values mean; the tensor is `f32` in any case).
    pub elem_type: ElemType,
    /// The dimensions exactly as the file declares them, in the file's order (`None` where
    /// symbolic or unknown). Unlike `height` and `width`, sizes outside
    /// `1..=`[`MAX_INPUT_SIDE`] are kept here, so a refusal can say what the model declared.
    pub declared_dims: Vec<Option<i64>>,
}

impl InputSpec {
    /// Shape of a batch of `n` images of `h`×`w` in this layout.
    pub fn shape(&self, n: usize, h: usize, w: usize) -> Vec<usize> {
        match self.layout {
            Layout::Nchw => vec![n, self.channels, h, w],
            Layout::Nhwc => vec![n, h, w, self.channels],
        }
    }

    /// `(height, width)` of an input tensor of this layout.
    pub fn spatial(&self, shape: &[usize]) -> (usize, usize) {
        match self.layout {
            Layout::Nchw => (shape[2], shape[3]),
            Layout::Nhwc => (shape[1], shape[2]),
        }
    }
}

impl InputSpec {
    /// Checks that `x` can be fed to the model, with a one-line explanation when not.
    pub(crate) fn check(&self, x: &Tensor) -> Result<()> {
        let s = self;
        let want = s.shape(0, 0, 0);
        if x.rank() != 4 {
            return Err(Error::Input(format!(
                "'{}' takes a 4-D {} tensor, got shape {:?}",
                s.name,
                layout_name(s.layout),
                x.shape()
            )));
        }
        let ch_axis = want.iter().position(|&d| d == s.channels).unwrap_or(1);
        if x.shape()[ch_axis] != s.channels {
            return Err(Error::Input(format!(
                "'{}' takes {} channels ({}), got shape {:?}",
                s.name,
                s.channels,
                layout_name(s.layout),
                x.shape()
            )));
        }
        if let Some(b) = s.batch.filter(|&b| b != x.shape()[0]) {
            if b != 1 {
                return Err(Error::Input(format!(
                    "'{}' has a fixed batch of {b}, got {}",
                    s.name,
                    x.shape()[0]
                )));
            }
        }
        if x.is_empty() {
            return Err(Error::Input(format!("empty input tensor {:?}", x.shape())));
        }
        Ok(())
    }
}

fn layout_name(l: Layout) -> &'static str {
    match l {
        Layout::Nchw => "NCHW",
        Layout::Nhwc => "NHWC",
    }
}

pub(super) fn describe_input(
    info: &convscope_onnx::ValueInfo,
    nodes: &[Node],
    consumers: &[usize],
) -> Result<InputSpec> {
    let dims: Vec<Option<usize>> = match &info.shape {
        Some(d) => d
            .iter()
            .map(|d| {
                // Declared sizes beyond 65536 are corrupt; treat them as unknown.
                if let Dim::Value(v) = d {
                    (1..=MAX_INPUT_SIDE as i64)
                        .contains(v)
                        .then_some(*v as usize)
                } else {
                    None
                }
            })
            .collect(),
        None => vec![None; 4],
    };
    if dims.len() != 4 {
        return Err(Error::InvalidModel(format!(
            "input '{}' has rank {}; convscope handles image models with a 4-D input",
            info.name,
            dims.len()
        )));
    }
    let small = |d: Option<usize>| matches!(d, Some(1..=4));
    // A leading Transpose [0,3,1,2] is what tf2onnx emits for NHWC Keras models.
    let transposed = consumers.iter().any(|&c| {
        // The perm is checked with a probe shape: NHWC→NCHW maps [1,2,3,4] to [1,4,2,3].
        let probe = Value::Float(Tensor::zeros(&[1, 2, 3, 4]));
        nodes[c].op_type == "Transpose"
            && matches!(nodes[c].op.forward(&ExecConfig::default(), &[Some(&probe)]), Ok(v) if v[0].shape() == [1, 4, 2, 3])
    });
    let layout = if transposed || (small(dims[3]) && !small(dims[1])) {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    let (c, h, w) = match layout {
        Layout::Nchw => (dims[1], dims[2], dims[3]),
        Layout::Nhwc => (dims[3], dims[1], dims[2]),
    };
    let channels = c.ok_or_else(|| {
        Error::InvalidModel(format!(
            "input '{}' does not declare its channel count",
            info.name
        ))
    })?;
    Ok(InputSpec {
        name: info.name.clone(),
        layout,
        channels,
        height: h,
        width: w,
        batch: dims[0],
        elem_type: ElemType::from_onnx(info.elem_type),
        declared_dims: declared_dims(info),
    })
}

/// The input's dimensions as declared: `Some(v)` for a fixed size (whatever its value),
/// `None` for a symbolic or unknown one; four unknowns when not even the rank is declared.
fn declared_dims(info: &convscope_onnx::ValueInfo) -> Vec<Option<i64>> {
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
