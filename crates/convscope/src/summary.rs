//! `summary --json`: the model's layers as a serialisable document.

use convscope_engine::group_digits;
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
    /// For a model read from a Keras file: the rows Keras's `model.summary()` prints (one per
    /// Keras layer, a nested model as one row). Absent for ONNX files. `layers` stays what
    /// `--layers` selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keras_layers: Option<Vec<KerasLayerDoc>>,
}

/// One row of Keras's `model.summary()`, in a [`SummaryDoc`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KerasLayerDoc {
    /// The Keras layer name (`conv2d`, or `vgg16` for a nested model).
    pub name: String,
    /// Its class as Keras shows it (`Conv2D`, `Functional`).
    pub class: String,
    /// Output shape in Keras's order (NHWC), the batch `None` (`null` in JSON); empty when
    /// the layer has no single output value (printed `?`, as Keras prints an unknown shape).
    pub output_shape: Vec<Option<usize>>,
    /// Its parameters as Keras counts them (`count_params()`).
    pub params: usize,
}

impl KerasLayerDoc {
    /// The output shape as Keras prints it: `(None, 148, 148, 32)`.
    ///
    /// ```
    /// let row = convscope::summary::KerasLayerDoc {
    ///     name: "conv2d".into(),
    ///     class: "Conv2D".into(),
    ///     output_shape: vec![None, Some(148), Some(148), Some(32)],
    ///     params: 896,
    /// };
    /// assert_eq!(row.shape_text(), "(None, 148, 148, 32)");
    /// ```
    pub fn shape_text(&self) -> String {
        if self.output_shape.is_empty() {
            return "?".into();
        }
        let dims: Vec<String> = self
            .output_shape
            .iter()
            .map(|d| d.map_or_else(|| "None".to_string(), |d| d.to_string()))
            .collect();
        format!("({})", dims.join(", "))
    }
}

/// The rows as Keras's `model.summary()` lays them out: `name (Class)`, output shape, count.
pub(crate) fn keras_table(rows: &[KerasLayerDoc], total: usize) -> String {
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{} ({})", r.name, r.class))
        .collect();
    let shapes: Vec<String> = rows.iter().map(KerasLayerDoc::shape_text).collect();
    let name_w = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let shape_w = shapes
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let rule = "─".repeat(name_w + shape_w + 17);
    let mut out = format!(
        "As Keras's model.summary() lists it:\n{rule}\n{:name_w$}  {:shape_w$}  {:>13}\n{rule}\n",
        "Layer (type)", "Output Shape", "Param #"
    );
    for ((name, shape), r) in names.iter().zip(&shapes).zip(rows) {
        out.push_str(&format!(
            "{name:name_w$}  {shape:shape_w$}  {:>13}\n",
            group_digits(r.params)
        ));
    }
    out.push_str(&format!("{rule}\nTotal params: {}", group_digits(total)));
    out
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
            keras_layers: None,
        }
    }
}
