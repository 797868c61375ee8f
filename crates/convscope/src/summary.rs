//! `summary --json`: the model's layers as a serialisable document.

use convscope_engine::{Layout, Summary};
use serde::Serialize;

/// The model summary as the `summary --json` document and the viewer's `/api/model`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryDoc {
    /// The input.
    pub input: InputDoc,
    /// Producer and version, as the file says.
    pub producer: String,
    /// `ai.onnx` opset.
    pub opset: i64,
    /// Every layer in execution order.
    pub layers: Vec<LayerDoc>,
    /// Total learned parameters.
    pub total_params: usize,
}

/// The input part of a [`SummaryDoc`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputDoc {
    /// ONNX name.
    pub name: String,
    /// Shape used for the summary (batch 1).
    pub shape: Vec<usize>,
    /// `NCHW` or `NHWC`.
    pub layout: &'static str,
    /// Whether the file declares the spatial size.
    pub declared_size: bool,
}

/// One layer of a [`SummaryDoc`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerDoc {
    /// Position in execution order.
    pub index: usize,
    /// Friendly name.
    pub name: String,
    /// Fused ops, e.g. `Conv+Relu`.
    pub ops: String,
    /// ONNX name of the value.
    pub value: String,
    /// Output shape (batch 1), in the model's layout.
    pub shape: Vec<usize>,
    /// Learned parameters.
    pub params: usize,
}

/// `NCHW` or `NHWC`.
pub(crate) fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::Nchw => "NCHW",
        Layout::Nhwc => "NHWC",
    }
}

impl SummaryDoc {
    /// The document of an engine summary.
    pub fn new(s: &Summary) -> SummaryDoc {
        SummaryDoc {
            input: InputDoc {
                name: s.input.clone(),
                shape: s.input_shape.clone(),
                layout: layout_name(s.layout),
                declared_size: s.declared_size,
            },
            producer: s.producer.clone(),
            opset: s.opset,
            layers: s
                .layers
                .iter()
                .map(|l| LayerDoc {
                    index: l.index,
                    name: l.name.clone(),
                    ops: l.ops.clone(),
                    value: l.value.clone(),
                    shape: l.shape.clone(),
                    params: l.params,
                })
                .collect(),
            total_params: s.total_params,
        }
    }
}
