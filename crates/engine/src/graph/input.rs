//! The model's image input: its layout, channels and declared size, as read from the graph.

use convscope_onnx::Dim;

use super::Node;
use crate::error::{Error, Result};
use crate::ops::ExecConfig;
use crate::tensor::{Tensor, Value};

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
                    (1..=1 << 16).contains(v).then_some(*v as usize)
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
    })
}
