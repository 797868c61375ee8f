//! `model.summary()` for an ONNX file: every layer with its ops, output shape and parameters.

use std::fmt;

use super::Model;
use crate::error::Result;
use crate::graph::{Layout, MAX_INPUT_SIDE};
use crate::tensor::Tensor;

/// One row of a [`Summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    /// Position in execution order.
    pub index: usize,
    /// Friendly layer name.
    pub name: String,
    /// Fused ops, e.g. `Conv+Relu`.
    pub ops: String,
    /// ONNX name of the value the layer produces.
    pub value: String,
    /// Output shape for a batch of one at the summary's input size, in the model's own layout.
    pub shape: Vec<usize>,
    /// Learned parameters.
    pub params: usize,
}

/// A Keras-style summary of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Input name.
    pub input: String,
    /// Input shape used for the summary (batch 1).
    pub input_shape: Vec<usize>,
    /// Input layout.
    pub layout: Layout,
    /// Whether the spatial size was declared by the file (otherwise a default was used).
    pub declared_size: bool,
    /// A spatial size the file declares but convscope cannot use (a side beyond
    /// [`MAX_INPUT_SIDE`]), as `(height, width)`; `None` otherwise.
    pub unusable_size: Option<(i64, i64)>,
    /// Producer and version.
    pub producer: String,
    /// `ai.onnx` opset.
    pub opset: i64,
    /// Layers in order.
    pub layers: Vec<LayerSummary>,
    /// Total learned parameters.
    pub total_params: usize,
}

impl Model {
    /// Runs one zero image through the model (at `size`, else the declared size, else 224×224)
    /// and reports every layer's output shape.
    pub fn summary(&self, size: Option<(usize, usize)>) -> Result<Summary> {
        let spec = self.input_spec();
        let declared = spec.height.zip(spec.width);
        let (h, w) = size.or(declared).unwrap_or((224, 224));
        let shape = spec.shape(1, h, w);
        let targets: Vec<_> = self.layers().iter().map(|l| l.value).collect();
        let tape = self.forward(&Tensor::zeros(&shape), &targets)?;
        let layers = self
            .layers()
            .iter()
            .map(|l| {
                Ok(LayerSummary {
                    index: l.index,
                    name: l.name.clone(),
                    ops: l.ops.clone(),
                    value: self.value_name(l.value).to_string(),
                    shape: tape.value(l.value)?.shape().to_vec(),
                    params: l.params,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (h_axis, w_axis) = match spec.layout {
            Layout::Nchw => (2, 3),
            Layout::Nhwc => (1, 2),
        };
        let dim = |a: usize| spec.declared_dims.get(a).copied().flatten();
        let unusable_size = match (dim(h_axis), dim(w_axis)) {
            (Some(h), Some(w)) if declared.is_none() => Some((h, w)),
            _ => None,
        };
        Ok(Summary {
            input: spec.name.clone(),
            input_shape: shape,
            layout: spec.layout,
            declared_size: declared.is_some(),
            unusable_size,
            producer: self.producer().to_string(),
            opset: self.opset(),
            layers,
            total_params: self.parameter_count(),
        })
    }
}

/// `1234567` → `1,234,567`, as Keras prints parameter counts.
///
/// ```
/// assert_eq!(convscope_engine::group_digits(16_363_524), "16,363,524");
/// assert_eq!(convscope_engine::group_digits(896), "896");
/// ```
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Widest a text column of the table grows; longer entries are printed whole and only push
/// their own row out of line.
///
/// Without a cap, one 70,000-character node name (or the `Relu+Relu+…` ops of a 200,000-node
/// chain) became a format width beyond what `std::fmt` accepts (65,535), and printing panicked
/// with "formatting width out of range".
const MAX_COLUMN: usize = 48;

/// Width of a column holding `texts` (in characters, as `std::fmt` pads), at least `min` and
/// at most [`MAX_COLUMN`].
fn column_width<'a>(texts: impl Iterator<Item = &'a str>, min: usize) -> usize {
    texts
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(min)
        .clamp(min, MAX_COLUMN)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layout = match self.layout {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        };
        writeln!(
            f,
            "Model: {} (opset {})",
            if self.producer.is_empty() {
                "unknown producer"
            } else {
                &self.producer
            },
            self.opset
        )?;
        writeln!(
            f,
            "Input: {} {:?} {layout}{}",
            self.input,
            self.input_shape,
            match (self.declared_size, self.unusable_size) {
                (true, _) => String::new(),
                (false, Some((h, w))) => format!(
                    " (declares {w}x{h}, beyond the {} pixels per side convscope runs; shapes shown at this size)",
                    MAX_INPUT_SIDE
                ),
                (false, None) => " (size not declared; shapes shown at this size)".into(),
            }
        )?;
        let name_w = column_width(self.layers.iter().map(|l| l.name.as_str()), 5);
        let ops_w = column_width(self.layers.iter().map(|l| l.ops.as_str()), 2);
        let rule = "─".repeat(name_w + ops_w + 38);
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "{:>3}  {:name_w$}  {:ops_w$}  {:20}  {:>10}",
            "#", "Layer", "Op", "Output shape", "Param #"
        )?;
        writeln!(f, "{rule}")?;
        for l in &self.layers {
            writeln!(
                f,
                "{:>3}  {:name_w$}  {:ops_w$}  {:20}  {:>10}",
                l.index,
                l.name,
                l.ops,
                format!("{:?}", l.shape),
                group_digits(l.params)
            )?;
        }
        writeln!(f, "{rule}")?;
        write!(f, "Total params: {}", group_digits(self.total_params))
    }
}
