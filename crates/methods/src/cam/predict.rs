//! Class scores: which graph value holds them, the prediction, and the score a CAM
//! differentiates.

use convscope_engine::{Model, Tape, Tensor, ValueId};

use crate::error::{Error, Result};

/// Where a classifier's class scores are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifierOutput {
    /// The graph output: probabilities when [`ClassifierOutput::kind`] is a softmax, else
    /// logits.
    pub output: ValueId,
    /// The value whose element `class` is the score differentiated and ablated: the
    /// pre-softmax logits when the graph ends in a Softmax and they were found, else
    /// [`ClassifierOutput::output`].
    pub score: ValueId,
    /// What the output holds.
    pub kind: OutputKind,
    /// Number of classes.
    pub classes: usize,
}

impl ClassifierOutput {
    /// Whether the score is a pre-softmax logit (always, except for a softmax output whose
    /// input could not be identified).
    pub fn score_is_logit(&self) -> bool {
        self.kind == OutputKind::Logits || self.score != self.output
    }
}

/// What a classifier's graph output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Raw scores (the graph does not end in a Softmax).
    Logits,
    /// Probabilities: the last op is a `Softmax`.
    Softmax,
    /// Log-probabilities: the last op is a `LogSoftmax`.
    LogSoftmax,
}

/// The model's class probabilities (and logits) for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Class probabilities: the model's own when it ends in a Softmax, else the softmax of its
    /// logits.
    pub probs: Vec<f32>,
    /// Pre-softmax scores, when the model outputs them or its Softmax input was found.
    pub logits: Option<Vec<f32>>,
}

impl Prediction {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.probs.len()
    }

    /// The `k` most probable classes as `(class, probability)`, most probable first (ties keep
    /// the lower index first).
    pub fn top(&self, k: usize) -> Vec<(usize, f32)> {
        let mut idx: Vec<usize> = (0..self.probs.len()).collect();
        idx.sort_by(|&a, &b| self.probs[b].total_cmp(&self.probs[a]).then(a.cmp(&b)));
        idx.into_iter()
            .take(k)
            .map(|i| (i, self.probs[i]))
            .collect()
    }
}

/// Runs the model once on `input` (a batch of one) and returns its prediction.
///
/// The model must end in a vector of class scores (`[1, K]`, or any shape with a single
/// non-unit axis); when its last op is a Softmax, its outputs are taken as probabilities (never
/// softmaxed twice) and the Softmax input, when found, as the logits.
pub fn predict(model: &Model, input: &Tensor) -> Result<Prediction> {
    if input.shape().first() != Some(&1) {
        return Err(Error::Input(format!(
            "predict takes one image, got input shape {:?}",
            input.shape()
        )));
    }
    let output = first_output(model)?;
    let tape = model.forward(input, &[output])?;
    let cls = find_classifier(model, &tape)?;
    prediction(&tape, &cls)
}

/// The prediction held by a forward pass that computed the classifier output.
pub fn prediction(tape: &Tape<'_>, cls: &ClassifierOutput) -> Result<Prediction> {
    let out = tape.value(cls.output)?.data().to_vec();
    let logits = if cls.score_is_logit() {
        Some(tape.value(cls.score)?.data().to_vec())
    } else {
        None
    };
    let probs = match cls.kind {
        OutputKind::Softmax => out,
        OutputKind::LogSoftmax => out.iter().map(|v| v.exp()).collect(),
        OutputKind::Logits => softmax(&out),
    };
    Ok(Prediction { probs, logits })
}

/// The model's first graph output.
pub(crate) fn first_output(model: &Model) -> Result<ValueId> {
    model
        .outputs()
        .first()
        .copied()
        .ok_or_else(|| Error::Config("the model has no output".into()))
}

/// Identifies the class scores in a forward pass of one image that computed the model's first
/// output.
///
/// The output must be a vector of class scores. When the output is produced by a Softmax or
/// LogSoftmax, the class score is that node's input (the logits): Grad-CAM and the other
/// methods then differentiate the logit, as pytorch-grad-cam's `ClassifierOutputTarget` does on
/// a PyTorch model's logits (the gradient of a probability is the logit's gradient minus a
/// mixture of every other class's, which blurs what is specific to the class).
pub fn find_classifier(model: &Model, tape: &Tape<'_>) -> Result<ClassifierOutput> {
    let output = first_output(model)?;
    let out = tape.value(output)?;
    let shape = out.shape();
    if shape.iter().filter(|&&d| d != 1).count() > 1 || out.is_empty() {
        return Err(Error::Config(format!(
            "model without a classifier output: its output '{}' has shape {shape:?}; class activation \
             maps and saliency need a vector of class scores ([1, K]) for one image",
            model.value_name(output)
        )));
    }
    let classes = out.len();
    let (kind, logits) = match model.producer_of(output) {
        Some(("Softmax", inputs)) => (OutputKind::Softmax, inputs.first().copied().flatten()),
        Some(("LogSoftmax", inputs)) => (OutputKind::LogSoftmax, inputs.first().copied().flatten()),
        _ => (OutputKind::Logits, None),
    };
    // The logits must have been computed by this pass and hold one score per class.
    let score = logits
        .filter(|&id| tape.value(id).is_ok_and(|t| t.len() == classes))
        .unwrap_or(output);
    Ok(ClassifierOutput {
        output,
        score,
        kind,
        classes,
    })
}

/// Softmax of a vector (in f64, returned as f32).
pub(crate) fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_orders_by_probability() {
        let p = Prediction {
            probs: vec![0.1, 0.5, 0.1, 0.3],
            logits: None,
        };
        assert_eq!(p.top(3), vec![(1, 0.5), (3, 0.3), (0, 0.1)]);
        assert_eq!(p.top(10).len(), 4);
    }

    #[test]
    fn softmax_sums_to_one() {
        let s = softmax(&[1.0, 2.0, 3.0, 1000.0]);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s.iter().all(|v| v.is_finite()));
    }
}
