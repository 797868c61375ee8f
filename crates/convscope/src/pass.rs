//! One image's forward pass, kept: the prediction, any layer's activations and the class
//! activation maps of any class and gradient method come from the same pass.
//!
//! A viewer keeps a [`ForwardPass`] per image, so a click on another layer costs only the drawing, and
//! a click on another class only the backward sweep through the classifier head.

use convscope_engine::{Pass, Tape, ValueId};
use convscope_methods::activations::LayerActivation;
use convscope_methods::activations::{compute_activations_with, default_selection};
use convscope_methods::cam::{cam_values, find_classifier, prediction, run_cams_in};

use crate::activations::{Activations, ActivationsConfig};
use crate::cam::{CamConfig, CamSet};
use crate::error::{Error, Result};
use crate::input::{Input, ToInput};
use crate::model::{Model, Predictions};

/// The forward pass of one image up to the model's output, every layer's value kept.
///
/// ```
/// use convscope::prelude::*;
///
/// let model = Model::demo()?;
/// let pass = model.pass(&convscope::demo_scene().image)?;
/// let top = pass.predictions()?.best();
/// // Any layer's activations and any class's map, without another forward pass:
/// let acts = pass.activations(&ActivationsConfig::layers("conv1"))?;
/// assert_eq!(acts.layers()[0].selected.label, "conv1");
/// let cams = pass.cam(&CamConfig { targets: vec![std::sync::Arc::new(Class(top))], ..CamConfig::default() })?;
/// assert_eq!(cams.maps[0].class(), Some(top));
/// // The same numbers as the one-shot calls:
/// assert_eq!(cams.maps[0].raw(), model.gradcam(pass.input(), Class(top))?.raw());
/// # Ok::<(), convscope::Error>(())
/// ```
pub struct ForwardPass<'m> {
    model: &'m Model,
    input: Input,
    tape: Tape<'m>,
}

impl std::fmt::Debug for ForwardPass<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardPass")
            .field("input", &self.input.source())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl Model {
    /// Runs `x` through the model once, keeping every value, for [`ForwardPass::predictions`],
    /// [`ForwardPass::activations`] and [`ForwardPass::cam`]. The pass's memory is checked against the
    /// limit first.
    pub fn pass(&self, x: impl ToInput) -> Result<ForwardPass<'_>> {
        let input = x.to_input(self)?.into_owned();
        let output = self.first_output()?;
        self.check_pass_memory(&input, &[output], Pass::Tape, 1, "the forward pass")?;
        let tape = self.engine().forward(input.tensor(), &[output])?;
        Ok(ForwardPass {
            model: self,
            input,
            tape,
        })
    }

    pub(crate) fn first_output(&self) -> Result<ValueId> {
        self.engine()
            .outputs()
            .first()
            .copied()
            .ok_or_else(|| Error::Config("the model has no output".into()))
    }
}

impl<'m> ForwardPass<'m> {
    /// The model the pass ran on.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The input the pass ran on.
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// Bytes the pass holds: every kept value, the input tensor and its pictures.
    pub fn memory_bytes(&self) -> u64 {
        let pictures = self.input.display().size().area() + self.input.original().size().area();
        (self.tape.memory_bytes() + self.input.tensor().len() * 4) as u64 + pictures * 12
    }

    /// The model's prediction for the input (as [`Model::predict`]).
    pub fn predictions(&self) -> Result<Predictions> {
        let engine = self.model.engine();
        let cls = find_classifier(engine, &self.tape)?;
        let p = prediction(&self.tape, &cls)?;
        let output = self.model.first_output()?;
        self.model.check_finite(
            &p.probs,
            "the class probabilities",
            self.input.tensor(),
            output,
        )?;
        Ok(Predictions::new(
            p,
            self.model.labels().cloned(),
            cls.score_is_logit(),
        ))
    }

    /// The activations of the selected layers (as [`Model::activations`]); layers the pass
    /// kept cost no computation, others (a raw convolution output the pass fused away, a value
    /// the output does not depend on) run a pass of their own.
    pub fn activations(&self, config: &ActivationsConfig) -> Result<Activations> {
        let engine = self.model.engine();
        let selection = match &config.layers {
            Some(spec) => self.model.select(spec)?,
            None => default_selection(engine, self.input.tensor())?,
        };
        let missing: Vec<_> = selection
            .iter()
            .filter(|s| self.tape.value(s.value).is_err())
            .cloned()
            .collect();
        let mut computed = if missing.is_empty() {
            Vec::new()
        } else {
            compute_activations_with(engine, self.input.tensor(), &missing, self.model.tokens())?
        }
        .into_iter();
        let mut layers = Vec::with_capacity(selection.len());
        for s in selection {
            let layer = match self.tape.value(s.value) {
                Ok(values) => LayerActivation::from_value(
                    engine,
                    self.input.tensor(),
                    s,
                    values.clone(),
                    self.model.tokens(),
                ),
                Err(_) => computed
                    .next()
                    .expect("one computed layer per missing selection"),
            };
            layers.push(layer);
        }
        Activations::from_layers(self.model, &self.input, layers)
    }

    /// Class activation maps (as [`Model::cam`]); gradient methods cost one backward sweep
    /// through the classifier head per target. When the pass lacks a value the maps need (a
    /// layer the output does not depend on), the maps run a pass of their own.
    pub fn cam(&self, config: &CamConfig) -> Result<CamSet> {
        let engine = self.model.engine();
        let kept = cam_values(engine, config)?
            .iter()
            .all(|&v| self.tape.value(v).is_ok());
        if !kept {
            return self.model.cam(&self.input, config);
        }
        // Gradient methods add one sweep through the head to a pass that exists; only the
        // batched methods (Score-CAM, Ablation-CAM) need a check of their own.
        if config.method.eq_ignore_ascii_case("scorecam")
            || config.method.eq_ignore_ascii_case("ablationcam")
        {
            self.model.check_cam_memory(&self.input, config)?;
        }
        let config = self.model.cam_config(config);
        let run = run_cams_in(engine, self.input.tensor(), &self.tape, &config)?;
        self.model.finish_cams(&self.input, run)
    }
}
