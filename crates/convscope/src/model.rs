//! The model: loading, input options, and every visualization as one method call.

use std::path::Path;
use std::sync::Arc;

use convscope_engine::{Layer, LoadOptions, Pass, Tensor, ValueId};
use convscope_methods::cam::{run_cams, CamRun, Prediction};
use convscope_methods::select::{select_layers, Selected};
use convscope_methods::target::Target;
use convscope_methods::tokens::TokenConfig;

use crate::activations::{Activations, ActivationsConfig};
use crate::budget::{self, MemoryLimit};
use crate::cam::{CamConfig, CamMap, CamSet};
use crate::error::{Error, Result};
use crate::filters::{FilterGrid, FiltersConfig};
use crate::input::{Input, InputConfig, ToInput};
use crate::labels::Labels;
use crate::picture::{Image, Region};
use crate::progress::{NoProgress, Progress};
use crate::saliency::{SaliencyConfig, SaliencyMap};
use crate::size::Size;
use crate::summary::{KerasLayerDoc, SummaryDoc};
use crate::visualize::{Visualization, VisualizeConfig};

/// A convolutional network, ready to show what it has learned.
///
/// Holds the loaded graph, how images become its input ([`InputConfig`]), optional class
/// names and the memory limit every job is checked against.
///
/// ```
/// use convscope::prelude::*;
///
/// let model = Model::demo()?; // the embedded demo CNN: no files needed
/// let scene = convscope::demo_scene().image;
/// let top = model.predict(&scene)?;
/// assert_eq!(top.classes(), 4);
/// let cam = model.gradcam(&scene, Class(top.best()))?;
/// let overlay = cam.overlay(&scene)?;
/// assert_eq!(overlay.size(), scene.size());
/// # Ok::<(), convscope::Error>(())
/// ```
pub struct Model {
    engine: convscope_engine::Model,
    source: String,
    input: InputConfig,
    labels: Option<Labels>,
    memory: MemoryLimit,
    allow_nonfinite: bool,
    /// The parameter count the file's own tool reports (Keras's "Total params"), which the
    /// summary shows instead of the graph's count.
    declared_params: Option<usize>,
    /// The rows Keras's `model.summary()` prints, for a model read from a Keras file.
    keras_layers: Option<Vec<convscope_keras::KerasLayer>>,
    tokens: TokenConfig,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("source", &self.source)
            .field("layers", &self.engine.layers().len())
            .field("input", &self.input)
            .field("memory_limit", &self.memory)
            .finish()
    }
}

impl Model {
    /// Loads an ONNX file, or a Keras `.keras` / `.h5` file (recognised by content). Weights
    /// holding NaN or infinity are refused (see [`Model::load_with`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(path, &LoadOptions::default())
    }

    /// Loads an ONNX file with options (e.g. `allow_nonfinite` for a model whose weights hold
    /// NaN); the model then also lets non-finite values through ([`Model::allow_nonfinite`]).
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Model> {
        let path = path.as_ref();
        if crate::keras::is_keras_file(path) {
            return crate::keras::load(path, options);
        }
        let engine = convscope_engine::Model::load_with(path, options)?;
        Ok(Model::from_engine(engine, path.display().to_string())
            .allow_nonfinite(options.allow_nonfinite))
    }

    /// Loads an ONNX model from bytes; `name` says where it came from in captions.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Model> {
        let engine = convscope_engine::Model::from_bytes(bytes)?;
        Ok(Model::from_engine(engine, name.to_string()))
    }

    /// Wraps an engine model.
    pub fn from_engine(engine: convscope_engine::Model, source: String) -> Model {
        Model {
            engine,
            source,
            input: InputConfig::default(),
            labels: None,
            memory: MemoryLimit::from_available(),
            allow_nonfinite: false,
            declared_params: None,
            keras_layers: None,
            tokens: TokenConfig::default(),
        }
    }

    /// The embedded demo model: a small CNN that convscope trained on generated pictures of
    /// circles, squares, triangles and stripes, with its class names and preprocessing.
    pub fn demo() -> Result<Model> {
        let engine = convscope_engine::Model::from_bytes(convscope_demo::demo_model_bytes())?;
        let mut m = Model::from_engine(engine, "demo".into());
        m.labels = Some(Labels::new(convscope_demo::CLASSES));
        // The network is fully convolutional; it runs on the whole demo scene.
        m.input.size = Some(Size::square(convscope_demo::DEMO_SCENE_SIZE));
        Ok(m)
    }

    /// How token layers (ViT, DeiT, Swin) are read as spatial maps for activation grids and
    /// class activation maps; by default the rule of [`convscope_methods::tokens`] works it
    /// out from each value's shape.
    pub fn tokens(&self) -> &TokenConfig {
        &self.tokens
    }

    /// The model with token layers read by `tokens` (the command line's
    /// `--tokens grid=14x14,skip=1`), as pytorch-grad-cam's `reshape_transform` would.
    ///
    /// ```no_run
    /// let model = convscope::Model::load("vit_b_16.onnx")?.with_tokens("grid=14x14,skip=1".parse()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_tokens(mut self, tokens: TokenConfig) -> Model {
        self.tokens = tokens;
        self
    }

    /// `config` with the model's token rule when it names none of its own.
    pub(crate) fn cam_config(&self, config: &CamConfig) -> CamConfig {
        let mut c = config.clone();
        if c.tokens == TokenConfig::default() {
            c.tokens = self.tokens;
        }
        c
    }

    /// The engine model underneath, for work the facade does not cover.
    pub fn engine(&self) -> &convscope_engine::Model {
        &self.engine
    }

    /// Where the model came from (its path, or `demo`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The named layers, in execution order.
    pub fn layers(&self) -> &[Layer] {
        self.engine.layers()
    }

    /// How images become this model's input.
    pub fn input_config(&self) -> &InputConfig {
        &self.input
    }

    /// Sets how images become this model's input.
    pub fn with_input(mut self, config: InputConfig) -> Model {
        self.input = config;
        self
    }

    /// Sets how images become this model's input, in place.
    pub fn set_input(&mut self, config: InputConfig) {
        self.input = config;
    }

    /// The input options this model most likely expects, for a viewer to pre-select: the
    /// options set on the model when they differ from the defaults (the demo model's, or the
    /// command line's), else by the exporter: a PyTorch export gets torchvision's ImageNet
    /// transform (shorter side resized, centre crop, ImageNet mean and deviation), anything
    /// else `/255` without a crop (Keras models exported by tf2onnx usually rescale inside or
    /// expect `0..1`). A guess: the page lets people change it.
    ///
    /// ```
    /// use convscope::prelude::*;
    ///
    /// let demo = Model::demo()?;
    /// assert_eq!(demo.likely_input_config(), *demo.input_config());
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn likely_input_config(&self) -> InputConfig {
        let default = InputConfig::default();
        let set = &self.input;
        if set.preprocess != default.preprocess || set.crop != default.crop {
            return set.clone();
        }
        if self
            .engine
            .producer()
            .to_ascii_lowercase()
            .contains("pytorch")
        {
            InputConfig {
                size: set.size,
                resize: set.resize,
                ..InputConfig::imagenet()
            }
        } else {
            set.clone()
        }
    }

    /// The class names, when known.
    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }

    /// Sets the class names.
    pub fn with_labels(mut self, labels: Labels) -> Model {
        self.labels = Some(labels);
        self
    }

    /// The memory limit jobs are checked against.
    pub fn memory_limit(&self) -> MemoryLimit {
        self.memory
    }

    /// Sets the memory limit.
    pub fn with_memory_limit(mut self, limit: MemoryLimit) -> Model {
        self.memory = limit;
        self
    }

    /// Lets NaN and infinity through instead of stopping with an error naming where they
    /// first appear (for people debugging such a model).
    pub fn allow_nonfinite(mut self, allow: bool) -> Model {
        self.allow_nonfinite = allow;
        self
    }

    pub(crate) fn allows_nonfinite(&self) -> bool {
        self.allow_nonfinite
    }

    /// The input size jobs run at: the configured size, else the declared one.
    pub fn input_size(&self) -> Result<Size> {
        let spec = self.engine.input_spec();
        self.input
            .size
            .or_else(|| spec.height.zip(spec.width).map(Size::from_hw))
            .ok_or_else(|| {
                Error::Config(format!(
                    "the model does not declare an input size for '{}'; pass --size WxH",
                    spec.name
                ))
            })
    }

    /// Prepares `x` (an [`Image`], a path, a tensor, or an [`Input`]) as this model's input.
    pub fn input(&self, x: impl ToInput) -> Result<Input> {
        Ok(x.to_input(self)?.into_owned())
    }

    /// A Keras-style summary: every layer with its ops, output shape and parameters.
    pub fn summary(&self) -> Result<SummaryDoc> {
        self.summary_at(self.input.size)
    }

    /// [`Model::summary`] at a given input size (`None`: the declared size, else 224×224).
    pub fn summary_at(&self, size: Option<Size>) -> Result<SummaryDoc> {
        let engine = self.engine_summary(size)?;
        let mut doc = SummaryDoc::new(&engine);
        doc.keras_layers = self.keras_rows(&engine.input_shape)?;
        Ok(doc)
    }

    /// The plain-text table of [`Model::summary`], as Keras prints it; a model read from a
    /// Keras file also gets the rows of Keras's own `model.summary()` (one per Keras layer,
    /// a nested model as one row).
    pub fn summary_text(&self) -> Result<String> {
        let engine = self.engine_summary(self.input.size)?;
        let mut text = engine.to_string();
        if let Some(rows) = self.keras_rows(&engine.input_shape)? {
            text.push_str("\n\n");
            text.push_str(&crate::summary::keras_table(&rows, engine.total_params));
        }
        Ok(text)
    }

    /// Keras's summary rows with their output shapes for an input of `input_shape`.
    fn keras_rows(&self, input_shape: &[usize]) -> Result<Option<Vec<KerasLayerDoc>>> {
        let Some(layers) = &self.keras_layers else {
            return Ok(None);
        };
        let spec = self.engine.input_spec();
        let input = spec.name.clone();
        // A file that leaves the input's size free: Keras shows `None` for every dimension that
        // follows it. Those are the dimensions that change when the input's size does.
        let other_size = match (spec.height, spec.width, spec.layout) {
            (Some(_), Some(_), _) | (_, _, convscope_engine::Layout::Nchw) => None,
            _ => input_shape
                .get(1..3)
                .map(|hw| spec.shape(1, hw[0] + 7, hw[1] + 5)),
        };
        let mut rows = Vec::with_capacity(layers.len());
        for l in layers {
            // By value name: an engine layer of the same name may end elsewhere (a
            // GlobalAveragePooling2D's layer is the pooling, its Keras output the flattened one).
            // A row without one value (a nested model with several outputs) shows `?`, as Keras
            // does for a shape it cannot tell, rather than failing the whole summary.
            let id = self
                .engine
                .value_named(&l.value)
                .or_else(|| self.engine.resolve(&l.value).ok());
            let shape = match id {
                Some(id) => self.engine.value_shape(input_shape, id)?,
                None => Vec::new(),
            };
            let mut output_shape = keras_shape(shape, l.value == input);
            if let (Some(id), Some(other)) = (id, &other_size) {
                let moved = keras_shape(self.engine.value_shape(other, id)?, l.value == input);
                for (d, m) in output_shape.iter_mut().zip(moved) {
                    if *d != m {
                        *d = None;
                    }
                }
            }
            rows.push(KerasLayerDoc {
                name: l.name.clone(),
                class: l.class.clone(),
                output_shape,
                params: l.params,
            });
        }
        Ok(Some(rows))
    }

    /// Keeps the rows of Keras's `model.summary()` for [`Model::summary`].
    pub(crate) fn with_keras_layers(mut self, layers: Vec<convscope_keras::KerasLayer>) -> Model {
        self.keras_layers = Some(layers);
        self
    }

    /// The engine's summary, with the file's own parameter count when it declares one.
    fn engine_summary(&self, size: Option<Size>) -> Result<convscope_engine::Summary> {
        let mut summary = self.engine.summary(size.map(Size::hw))?;
        if let Some(n) = self.declared_params {
            summary.total_params = n;
        }
        Ok(summary)
    }

    /// Sets the parameter count the summary reports, as the model file's own tool counts it
    /// (a Keras file: every weight in it, non-trainable statistics included).
    pub fn with_declared_params(mut self, count: usize) -> Model {
        self.declared_params = Some(count);
        self
    }

    /// Resolves a layer selection: names, raw ONNX value names, indices, ranges (`0..8`),
    /// globs (`block3_*`), `all`. Unknown names are refused with the closest names.
    pub fn select(&self, spec: &str) -> Result<Vec<Selected>> {
        Ok(select_layers(&self.engine, spec)?)
    }

    /// Exactly one layer (see [`Model::select`]).
    pub fn select_one(&self, spec: &str) -> Result<Selected> {
        let mut sel = self.select(spec)?;
        if sel.len() != 1 {
            return Err(Error::Config(format!(
                "'{spec}' selects {} layers; name one",
                sel.len()
            )));
        }
        Ok(sel.remove(0))
    }

    /// The model's prediction for one image: class probabilities, most probable first via
    /// [`Predictions::top`].
    pub fn predict(&self, x: impl ToInput) -> Result<Predictions> {
        self.pass(x)?.predictions()
    }

    /// Every channel of the selected layers for one image, with statistics.
    pub fn activations(&self, x: impl ToInput, config: &ActivationsConfig) -> Result<Activations> {
        Activations::compute(self, x.to_input(self)?.as_ref(), config)
    }

    /// Grad-CAM of one target (e.g. [`crate::Class`]) at the automatic layer.
    pub fn gradcam(&self, x: impl ToInput, target: impl Target + 'static) -> Result<CamMap> {
        let config = CamConfig {
            targets: vec![Arc::new(target)],
            ..CamConfig::default()
        };
        let mut set = self.cam(x, &config)?;
        Ok(set.maps.remove(0))
    }

    /// Class activation maps of any method, layer and targets (see [`CamConfig`]).
    pub fn cam(&self, x: impl ToInput, config: &CamConfig) -> Result<CamSet> {
        let input = x.to_input(self)?;
        self.check_cam_memory(&input, config)?;
        let run = run_cams(&self.engine, input.tensor(), &self.cam_config(config))?;
        self.finish_cams(&input, run)
    }

    /// Refuses maps whose pass (and batched extra passes) would exceed the memory limit.
    pub(crate) fn check_cam_memory(&self, input: &Input, config: &CamConfig) -> Result<()> {
        let outputs = self.engine.outputs().to_vec();
        let what = "the class activation maps";
        self.check_pass_memory(input, &outputs, Pass::Gradient, 1, what)?;
        if matches!(
            config.method.to_ascii_lowercase().as_str(),
            "scorecam" | "ablationcam"
        ) {
            // Batches of masked inputs run as inference passes.
            self.check_pass_memory(input, &outputs, Pass::Inference, config.batch_size, what)?;
        }
        Ok(())
    }

    /// Checks the scores of a run and makes its maps.
    pub(crate) fn finish_cams(&self, input: &Input, run: CamRun) -> Result<CamSet> {
        for cam in &run.cams {
            if !self.allow_nonfinite && !cam.score.is_finite() {
                return Err(self.nonfinite_error(
                    &format!("the score of target {}", cam.target),
                    input.tensor(),
                ));
            }
        }
        Ok(CamSet::new(self, input, run))
    }

    /// A saliency map (`gradient`, `smoothgrad`, `integrated-gradients`, `guided-backprop`,
    /// `guided-gradcam`).
    pub fn saliency(&self, x: impl ToInput, config: &SaliencyConfig) -> Result<SaliencyMap> {
        let input = x.to_input(self)?;
        let outputs = self.engine.outputs().to_vec();
        self.check_pass_memory(&input, &outputs, Pass::Gradient, 1, "the saliency map")?;
        let map = SaliencyMap::compute(self, &input, config)?;
        if !self.allow_nonfinite {
            if let Some(i) = map.raw().data().iter().position(|v| !v.is_finite()) {
                return Err(self.nonfinite_error(
                    &format!("the {} attribution (element {i})", config.method),
                    input.tensor(),
                ));
            }
        }
        Ok(map)
    }

    /// For every channel of `config.layers`, the images of `dir` (recursively) that excite it
    /// most and least (see [`crate::examples`]); [`crate::examples::ExamplesRun`] adds
    /// checkpoints and progress.
    ///
    /// ```no_run
    /// use convscope::prelude::*;
    /// use convscope::examples::ExamplesConfig;
    ///
    /// let model = Model::load("efficientnet_lite0.onnx")?.with_input(InputConfig::imagenet());
    /// let cfg = ExamplesConfig { layers: "_conv_head".into(), ..ExamplesConfig::default() };
    /// let index = model.examples("photos/", &cfg)?;
    /// println!("channel 7 likes {} most", index.layers[0].units[7].top[0].image);
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn examples(
        &self,
        dir: impl AsRef<Path>,
        config: &crate::examples::ExamplesConfig,
    ) -> Result<crate::examples::ExamplesIndex> {
        crate::examples::ExamplesRun::new(self, dir.as_ref(), config, None)?.run(&NoProgress)
    }

    /// The input pattern each filter of `layer` responds to most (gradient ascent in input
    /// space; the walk-through's method by default).
    pub fn filters(&self, layer: &str, config: &FiltersConfig) -> Result<FilterGrid> {
        self.filters_with_progress(layer, config, &NoProgress)
    }

    /// [`Model::filters`], reporting its steps to `progress`.
    pub fn filters_with_progress(
        &self,
        layer: &str,
        config: &FiltersConfig,
        progress: &dyn Progress,
    ) -> Result<FilterGrid> {
        FilterGrid::compute(self, layer, config, progress)
    }

    /// Feature visualization of any objective ([`VisualizeConfig`]): Lucid's or MaCo's
    /// pictures, or the walk-through's, all pictures of a call optimised as one batch where
    /// memory allows.
    ///
    /// ```
    /// use convscope::prelude::*;
    ///
    /// let model = Model::demo()?;
    /// let cfg = VisualizeConfig { steps: Some(4), size: Some(Size::square(48)), ..VisualizeConfig::objective("conv1:0..2") };
    /// let vis = model.visualize(&cfg)?;
    /// assert_eq!(vis.pictures.len(), 2);
    /// assert_eq!(vis.pictures[1].objective, "conv1:1");
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn visualize(&self, config: &VisualizeConfig) -> Result<Visualization> {
        self.visualize_with_progress(config, &NoProgress)
    }

    /// [`Model::visualize`], reporting its steps to `progress`.
    pub fn visualize_with_progress(
        &self,
        config: &VisualizeConfig,
        progress: &dyn Progress,
    ) -> Result<Visualization> {
        Visualization::compute(self, config, progress)
    }

    /// Refuses a pass of a batch of `batch` copies of `input` up to `wanted` whose estimated
    /// memory exceeds the limit.
    pub(crate) fn check_pass_memory(
        &self,
        input: &Input,
        wanted: &[ValueId],
        pass: Pass,
        batch: usize,
        what: &str,
    ) -> Result<()> {
        let size = Size::from_hw(self.engine.input_spec().spatial(input.tensor().shape()));
        let what = if batch > 1 {
            format!("{what} at {size} (batches of {batch})")
        } else {
            format!("{what} at {size}")
        };
        self.check_memory(size, batch, wanted, pass, &what, "use a smaller --size")
    }

    /// Refuses a job ([`Model::estimate_bytes`]) that exceeds the memory limit or holds a value
    /// beyond the engine's size limit, naming `what` and the way out (`hint`).
    pub(crate) fn check_memory(
        &self,
        size: Size,
        batch: usize,
        wanted: &[ValueId],
        pass: Pass,
        what: &str,
        hint: &str,
    ) -> Result<()> {
        match self.estimate_bytes(size, batch, wanted, pass) {
            Ok(Some(need)) => self.memory.check(need, what, hint),
            Ok(None) => Ok(()),
            Err(Error::Engine(e)) => Err(Error::Config(format!("{what}: {e}; {hint}"))),
            Err(e) => Err(e),
        }
    }

    /// Refuses an image whose decoding and resizing would exceed the limit.
    pub(crate) fn check_image_memory(&self, size: Size) -> Result<()> {
        // The float copy of the image and at most one resampled copy of the same size.
        let need = budget::f32_bytes(size.area().saturating_mul(3)).saturating_mul(2);
        self.memory
            .check(need, &format!("an image of {size}"), "use a smaller image")
    }

    /// The bytes a pass of `batch` images of `size` up to `wanted` needs at its peak, with the
    /// kernels' per-model caches (four times the weights: Winograd's transformed weights are
    /// 36/9 of a 3×3 layer's). Shapes are inferred without running the model
    /// ([`convscope_engine::Model::estimate_forward_bytes`]); where a shape depends on
    /// computed values, a probe pass at a small size is scaled by area instead. `Ok(None)`
    /// when neither works (the job then runs unchecked, behind the allocator's ceiling); an
    /// error when a value would exceed the engine's size limit.
    ///
    /// ```
    /// use convscope::prelude::*;
    /// use convscope::lower::engine::Pass;
    ///
    /// let model = Model::demo()?;
    /// let values: Vec<_> = model.layers().iter().map(|l| l.value).collect();
    /// let small = model.estimate_bytes(Size::square(256), 1, &values, Pass::Tape)?.unwrap();
    /// let large = model.estimate_bytes(Size::square(512), 1, &values, Pass::Tape)?.unwrap();
    /// assert!(large > 3 * (small - 16 * model.engine().parameter_count() as u64));
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn estimate_bytes(
        &self,
        size: Size,
        batch: usize,
        wanted: &[ValueId],
        pass: Pass,
    ) -> Result<Option<u64>> {
        let caches = 4 * 4 * self.engine.parameter_count() as u64;
        let spec = self.engine.input_spec();
        let shape = spec.shape(batch.max(1), size.height, size.width);
        match self.engine.estimate_forward_bytes(&shape, wanted, pass) {
            Ok(e) => Ok(Some(e.peak_bytes.saturating_add(caches))),
            Err(e) if e.is_shape_unknown() => Ok(self
                .probe_bytes(size, wanted, pass)
                .map(|b| b.saturating_mul(batch.max(1) as u64).saturating_add(caches))),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Model::estimate_bytes`] of a taped pass of one image.
    pub fn estimate_pass_bytes(&self, size: Size, wanted: &[ValueId]) -> Result<Option<u64>> {
        self.estimate_bytes(size, 1, wanted, Pass::Tape)
    }

    /// A probe pass at a small size (longer side 64, both at least 32) up to `wanted`, its
    /// tape's bytes scaled by area (twice for a gradient pass). `None` for small inputs or when
    /// the probe cannot run.
    fn probe_bytes(&self, size: Size, wanted: &[ValueId], pass: Pass) -> Option<u64> {
        const PROBE: usize = 64;
        if size.width.max(size.height) <= 2 * PROBE {
            return None;
        }
        let scale = PROBE as f64 / size.width.max(size.height) as f64;
        let side = |v: usize| ((v as f64 * scale).ceil() as usize).clamp(32.min(v), v);
        let probe = Size::new(side(size.width), side(size.height));
        let spec = self.engine.input_spec();
        let x = Tensor::zeros(&spec.shape(1, probe.height, probe.width));
        let bytes = match self.engine.forward(&x, wanted) {
            Ok(tape) => tape.memory_bytes() as u64,
            // A head that only takes the declared size: measure what runs at the probe size.
            Err(_) => wanted
                .iter()
                .filter_map(|&v| self.engine.forward(&x, &[v]).ok())
                .map(|t| t.memory_bytes() as u64)
                .max()?,
        };
        let factor = if pass == Pass::Gradient { 2.0 } else { 1.0 };
        Some((factor * bytes as f64 * size.area() as f64 / probe.area() as f64) as u64)
    }

    /// Checks values that will be shown; on NaN or infinity, finds where it first appears.
    pub(crate) fn check_finite(
        &self,
        values: &[f32],
        what: &str,
        input: &Tensor,
        _value: ValueId,
    ) -> Result<()> {
        if self.allow_nonfinite || values.iter().all(|v| v.is_finite()) {
            return Ok(());
        }
        Err(self.nonfinite_error(what, input))
    }

    /// The error for a non-finite shown value: names the first node whose output holds NaN or
    /// infinity for this input (a second, unfused pass, only on this failure path).
    pub(crate) fn nonfinite_error(&self, what: &str, input: &Tensor) -> Error {
        let origin = match self.engine.first_nonfinite(input) {
            Ok(Some(found)) => format!("; {found}"),
            _ => String::new(),
        };
        Error::NonFinite(format!(
            "{what} holds NaN or infinity{origin}; pass --allow-nonfinite to show it anyway"
        ))
    }
}

/// A classifier's prediction for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    prediction: Prediction,
    labels: Option<Labels>,
    score_is_logit: bool,
}

impl Predictions {
    pub(crate) fn new(
        prediction: Prediction,
        labels: Option<Labels>,
        score_is_logit: bool,
    ) -> Predictions {
        Predictions {
            prediction,
            labels,
            score_is_logit,
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.prediction.classes()
    }

    /// Class probabilities (the model's own when it ends in a Softmax, else the softmax of its
    /// logits).
    pub fn probabilities(&self) -> &[f32] {
        &self.prediction.probs
    }

    /// Pre-softmax scores, when available.
    pub fn logits(&self) -> Option<&[f32]> {
        self.prediction.logits.as_deref()
    }

    /// The most probable class.
    pub fn best(&self) -> usize {
        self.prediction.top(1)[0].0
    }

    /// The `k` most probable classes as `(class, label, probability)`.
    pub fn top(&self, k: usize) -> Vec<(usize, String, f32)> {
        self.prediction
            .top(k)
            .into_iter()
            .map(|(c, p)| (c, crate::labels::name_of(self.labels.as_ref(), c), p))
            .collect()
    }

    /// Whether the class scores that maps explain are pre-softmax logits.
    pub fn score_is_logit(&self) -> bool {
        self.score_is_logit
    }

    /// The underlying prediction.
    pub fn prediction(&self) -> &Prediction {
        &self.prediction
    }
}

/// The embedded demo scene: one shape of each class of [`Model::demo`].
#[derive(Clone, Debug)]
pub struct DemoScene {
    /// The picture (160×160).
    pub image: Image,
    /// Each class's name and the box of its shape, in class order.
    pub shapes: Vec<(String, Region)>,
}

impl DemoScene {
    /// Where each shape is, e.g. `circle at x 10..50, y 20..60; ...`.
    pub fn caption(&self) -> String {
        let parts: Vec<String> = self
            .shapes
            .iter()
            .map(|(c, r)| {
                format!(
                    "{c} at x {}..{}, y {}..{}",
                    r.x,
                    r.x + r.width,
                    r.y,
                    r.y + r.height
                )
            })
            .collect();
        parts.join("; ")
    }
}

/// The embedded demo scene (see [`DemoScene`]).
///
/// ```
/// let scene = convscope::demo_scene();
/// assert_eq!(scene.shapes.len(), 4);
/// assert!(scene.caption().starts_with("circle at x "));
/// ```
pub fn demo_scene() -> DemoScene {
    let (pixels, w, h, boxes) = convscope_demo::demo_scene();
    let image = Image::from_rgb8(Size::new(w, h), &pixels).expect("the scene has w·h·3 bytes");
    let shapes = boxes
        .iter()
        .zip(convscope_demo::CLASSES)
        .map(|(b, c)| {
            (
                c.to_string(),
                Region {
                    x: b.x0,
                    y: b.y0,
                    width: b.x1 - b.x0,
                    height: b.y1 - b.y0,
                },
            )
        })
        .collect();
    DemoScene { image, shapes }
}

/// An engine shape as Keras shows it: 4-D values other than the model input are held NCHW
/// and go back to NHWC, and the batch is `None`.
fn keras_shape(mut shape: Vec<usize>, is_input: bool) -> Vec<Option<usize>> {
    if shape.len() == 4 && !is_input {
        shape = vec![shape[0], shape[2], shape[3], shape[1]];
    }
    let mut out: Vec<Option<usize>> = shape.into_iter().map(Some).collect();
    if let Some(batch) = out.first_mut() {
        *batch = None;
    }
    out
}

#[cfg(test)]
mod keras_summary_tests {
    use super::*;

    #[test]
    fn keras_shapes_are_nhwc_with_a_free_batch() {
        assert_eq!(
            keras_shape(vec![1, 32, 148, 140], false),
            [None, Some(148), Some(140), Some(32)]
        );
        assert_eq!(
            keras_shape(vec![1, 150, 150, 3], true),
            [None, Some(150), Some(150), Some(3)]
        );
        assert_eq!(
            keras_shape(vec![1, 30, 4], false),
            [None, Some(30), Some(4)]
        );
    }

    /// A row whose value the graph lacks shows `?` instead of failing the summary.
    #[test]
    fn a_row_without_a_value_shows_a_question_mark() {
        let model = Model::demo()
            .unwrap()
            .with_keras_layers(vec![convscope_keras::KerasLayer {
                name: "two_outputs".into(),
                class: "Functional".into(),
                value: "no such value".into(),
                params: 7,
            }]);
        let doc = model.summary().unwrap();
        let row = &doc.keras_layers.unwrap()[0];
        assert_eq!((row.shape_text().as_str(), row.params), ("?", 7));
        assert!(model
            .summary_text()
            .unwrap()
            .contains("two_outputs (Functional)  ?"));
    }
}
