//! Targets: the scalar a class activation map or a saliency map explains.
//!
//! As pytorch-grad-cam's targets are callables on the model output, a [`Target`] here is a small
//! object that reads one graph value of one image and turns it into a score, with the gradient
//! of that score. The usual target is one class of a classifier ([`Class`]); a set of classes
//! ([`Classes`]) explains their summed score, and [`OutputElement`] any scalar of any value
//! (a segmentation pixel, a detection box's score), so later targets slot in without touching
//! the methods.
//!
//! ```
//! use convscope_methods::target::{Class, Classes, Target};
//!
//! let logits = [0.5, 2.0, -1.0];
//! assert_eq!(Class(1).score(&logits), 2.0);
//! assert_eq!(Classes(vec![0, 1]).score(&logits), 2.5);
//! let mut grad = vec![0.0; 3];
//! Classes(vec![0, 2]).gradient(&logits, &mut grad);
//! assert_eq!(grad, vec![1.0, 0.0, 1.0]);
//! ```

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Where a target reads its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSource {
    /// The classifier's class scores: the pre-softmax logits when the model ends in a Softmax
    /// and they are found, else the model's first output (see [`crate::cam::find_classifier`]).
    ClassScores,
    /// Any graph value, by layer name or raw ONNX value name.
    Value(String),
}

/// A scalar computed from one graph value of one image, with its gradient.
pub trait Target: Send + Sync + fmt::Debug {
    /// The value the score is computed from.
    fn source(&self) -> TargetSource {
        TargetSource::ClassScores
    }

    /// Checks that the target fits a value holding `len` numbers per image.
    fn check(&self, len: usize) -> Result<()>;

    /// The score of one image's values (`len` numbers, as passed to [`Target::check`]).
    fn score(&self, values: &[f32]) -> f32;

    /// Adds d score / d values into `grad` (same length as `values`).
    fn gradient(&self, values: &[f32], grad: &mut [f32]);

    /// A short name for captions and file names, e.g. `285` or `281+285`.
    fn name(&self) -> String;

    /// The class index, when the target is one class of the classifier (used to show its
    /// probability and label).
    fn class(&self) -> Option<usize> {
        None
    }
}

/// A shared, dynamically typed target, as configuration structs hold them.
pub type TargetRef = Arc<dyn Target>;

/// The score of one class: the pre-softmax logit when available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class(pub usize);

impl Target for Class {
    fn check(&self, len: usize) -> Result<()> {
        check_class(self.0, len)
    }

    fn score(&self, values: &[f32]) -> f32 {
        values[self.0]
    }

    fn gradient(&self, _values: &[f32], grad: &mut [f32]) {
        grad[self.0] += 1.0;
    }

    fn name(&self) -> String {
        self.0.to_string()
    }

    fn class(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// The summed score of several classes (e.g. every dog breed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classes(pub Vec<usize>);

impl Target for Classes {
    fn check(&self, len: usize) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::Config("a set of classes needs at least one".into()));
        }
        self.0.iter().try_for_each(|&c| check_class(c, len))
    }

    fn score(&self, values: &[f32]) -> f32 {
        self.0.iter().map(|&c| values[c] as f64).sum::<f64>() as f32
    }

    fn gradient(&self, _values: &[f32], grad: &mut [f32]) {
        for &c in &self.0 {
            grad[c] += 1.0;
        }
    }

    fn name(&self) -> String {
        let names: Vec<String> = self.0.iter().map(usize::to_string).collect();
        names.join("+")
    }

    fn class(&self) -> Option<usize> {
        match self.0.as_slice() {
            [c] => Some(*c),
            _ => None,
        }
    }
}

/// One element of any graph value (flat index within one image's values), e.g. a pixel of a
/// segmentation output or one unit of a hidden layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputElement {
    /// Layer name or raw ONNX value name.
    pub value: String,
    /// Flat index into one image's values (batch axis excluded).
    pub index: usize,
}

impl Target for OutputElement {
    fn source(&self) -> TargetSource {
        TargetSource::Value(self.value.clone())
    }

    fn check(&self, len: usize) -> Result<()> {
        if self.index >= len {
            return Err(Error::Config(format!(
                "element {} is out of range: '{}' holds {len} values per image (0..{len})",
                self.index, self.value
            )));
        }
        Ok(())
    }

    fn score(&self, values: &[f32]) -> f32 {
        values[self.index]
    }

    fn gradient(&self, _values: &[f32], grad: &mut [f32]) {
        grad[self.index] += 1.0;
    }

    fn name(&self) -> String {
        format!("{}[{}]", self.value, self.index)
    }
}

/// Checks a class index against the number of classes.
pub(crate) fn check_class(class: usize, classes: usize) -> Result<()> {
    if class >= classes {
        return Err(Error::Config(format!(
            "class index {class} is out of range: the model has {classes} classes (0..{classes})"
        )));
    }
    Ok(())
}

/// Wraps class indices as targets.
pub fn classes(indices: &[usize]) -> Vec<TargetRef> {
    indices
        .iter()
        .map(|&c| Arc::new(Class(c)) as TargetRef)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_targets_name_the_count() {
        let e = Class(7).check(4).unwrap_err().to_string();
        assert!(
            e.contains("class index 7") && e.contains("4 classes"),
            "{e}"
        );
        assert!(Classes(vec![]).check(4).is_err());
        assert!(Classes(vec![1, 9]).check(4).is_err());
        let e = OutputElement {
            value: "seg".into(),
            index: 10,
        }
        .check(10)
        .unwrap_err()
        .to_string();
        assert!(e.contains("'seg'") && e.contains("10 values"), "{e}");
    }

    #[test]
    fn names_and_classes() {
        assert_eq!(Class(3).name(), "3");
        assert_eq!(Class(3).class(), Some(3));
        assert_eq!(Classes(vec![2, 5]).name(), "2+5");
        assert_eq!(Classes(vec![2, 5]).class(), None);
        assert_eq!(Classes(vec![5]).class(), Some(5));
        let e = OutputElement {
            value: "out".into(),
            index: 4,
        };
        assert_eq!(e.source(), TargetSource::Value("out".into()));
        assert_eq!(e.name(), "out[4]");
    }
}
