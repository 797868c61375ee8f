//! `convscope.Model`: one loaded network, every visualization as one method call.

use std::path::PathBuf;
use std::sync::Arc;

use convscope::budget::MemoryLimit;
use convscope::{
    ActivationsConfig, CamConfig, Class, Classes, FilterSet, FiltersConfig, InputConfig, Labels,
    LoadOptions, Model, Optimizer, ResizeFilter, SaliencyConfig, TargetRef,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyRange, PyString};

use convscope::examples::{ExamplesConfig, ExamplesRun};
use convscope::visualize::spectrum_from_dir;
use convscope::{Recipe, VisualizeConfig};

use crate::errors::{invalid, raise, Kind, OrRaise};
use crate::examples::PyExamples;
use crate::fvis::PyVisualization;
use crate::inputs::{self, parse_preprocess, parse_size, short_repr, Overrides};
use crate::interrupt::Interruptible;
use crate::results::{
    PyActivations, PyCamMap, PyFilterGrid, PyInput, PyPredictions, PySaliencyMap,
};

/// A convolutional network loaded from its ONNX file.
///
/// The input options (`preprocess`, `size`, `crop`, `resize`) say how images become the model's
/// input, as the CLI's options do; every method also takes them per call.
#[pyclass(module = "convscope", name = "Model", frozen)]
pub struct PyModel {
    model: Model,
}

/// Class names from a list of names or a file with one name per line.
fn read_labels(v: &Bound<'_, PyAny>) -> PyResult<Labels> {
    if let Ok(names) = v.extract::<Vec<String>>() {
        if v.cast::<PyString>().is_err() {
            return Ok(Labels::new(names));
        }
    }
    let path: PathBuf = v.extract().map_err(|_| {
        invalid(format!(
            "labels must be a list of class names or the path of a file with one per line; \
             got {}",
            short_repr(v)
        ))
    })?;
    Labels::read(&path).or_raise()
}

/// The targets of a map: None (the most probable class), a class index, a label name, or a
/// list of either (their summed score).
fn read_target(v: Option<&Bound<'_, PyAny>>, labels: Option<&Labels>) -> PyResult<Vec<TargetRef>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let class = |item: &Bound<'_, PyAny>| -> PyResult<usize> {
        if let Ok(i) = item.extract::<i64>() {
            return usize::try_from(i)
                .map_err(|_| invalid(format!("a class index is >= 0, got {i}")));
        }
        if let Ok(name) = item.extract::<String>() {
            return match labels {
                Some(l) => l.index_of(&name).or_raise(),
                None => Err(invalid(format!(
                    "'{name}' is not a class index (load the model with labels= to use class \
                     names)"
                ))),
            };
        }
        Err(invalid(format!(
            "a target is a class index, a class name or a list of them; got {}",
            short_repr(item)
        )))
    };
    if v.cast::<PyString>().is_err() {
        if let Ok(list) = v.extract::<Vec<Bound<'_, PyAny>>>() {
            let classes: Vec<usize> = list.iter().map(class).collect::<PyResult<_>>()?;
            if classes.is_empty() {
                return Err(invalid("an empty list of classes is no target"));
            }
            return Ok(vec![Arc::new(Classes(classes))]);
        }
    }
    Ok(vec![Arc::new(Class(class(v)?))])
}

/// `filters=`: None (the CLI's `0..64`), N (the first N), a range or list of indices, or a
/// selection string such as `"0..64"`, `"3,7,9"`, `"all"`.
fn read_filter_set(v: Option<&Bound<'_, PyAny>>) -> PyResult<FilterSet> {
    let Some(v) = v else {
        return Ok(FilterSet::First(64));
    };
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(FilterSet::Spec(s.to_cow()?.to_string()));
    }
    if let Ok(n) = v.extract::<usize>() {
        return Ok(FilterSet::First(n));
    }
    if v.cast::<PyRange>().is_ok() || v.cast::<PyList>().is_ok() || v.hasattr("__iter__")? {
        if let Ok(list) = v.extract::<Vec<usize>>() {
            return Ok(FilterSet::Indices(list));
        }
    }
    Err(invalid(format!(
        "filters must be N, a range or list of indices >= 0, or a selection like '0..64'; got {}",
        short_repr(v)
    )))
}

impl PyModel {
    /// Reads `image` and the input keywords, then (without the GIL) prepares the input and runs
    /// `job` on it.
    fn run<T: Send>(
        &self,
        image: &Bound<'_, PyAny>,
        overrides: Overrides,
        job: impl FnOnce(&Model, &convscope::Input) -> convscope::Result<T> + Send,
    ) -> PyResult<T> {
        let py = image.py();
        let source = inputs::read(image)?;
        inputs::check_exists(py, &source)?;
        py.detach(|| {
            let input = inputs::prepare(&self.model, source, &overrides)?;
            job(&self.model, &input)
        })
        .or_raise()
    }
}

#[pymethods]
impl PyModel {
    /// Loads an ONNX file or a Keras `.keras` / `.h5` file (recognised by content).
    ///
    /// preprocess: 'unit' (/255, the default), 'imagenet', 'caffe', 'tf', 'raw' (the default
    ///     for a Keras model that rescales its input itself), or a (mean, std) pair of three
    ///     numbers each on the 0..1 scale.
    /// size: N, (width, height) or 'WxH'; default: the size the model declares.
    /// crop: resize the shorter side and crop the centre instead of stretching.
    /// resize: 'bilinear' (default), 'bicubic' (Pillow's default) or 'nearest'.
    /// labels: class names, as a list or the path of a file with one per line.
    /// memory_limit: refuse jobs estimated above this: '4G', '512M', '50%', 'none'; default 80%
    ///     of the memory available.
    /// allow_nonfinite: let NaN and infinity through instead of raising.
    #[new]
    #[pyo3(signature = (path, *, preprocess=None, size=None, crop=false, resize="bilinear", labels=None, memory_limit=None, allow_nonfinite=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        preprocess: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        crop: bool,
        resize: &str,
        labels: Option<&Bound<'_, PyAny>>,
        memory_limit: Option<&str>,
        allow_nonfinite: bool,
    ) -> PyResult<PyModel> {
        let preprocess = preprocess.map(parse_preprocess).transpose()?;
        let config = InputConfig {
            size: size.map(parse_size).transpose()?,
            resize: resize
                .parse::<ResizeFilter>()
                .map_err(|e| invalid(e.to_string()))?,
            crop,
            preprocess: preprocess.unwrap_or_default(),
        };
        config.validate().or_raise()?;
        let limit = match memory_limit {
            Some(s) => s.parse::<MemoryLimit>().or_raise()?,
            None => MemoryLimit::default(),
        };
        let labels = labels.map(read_labels).transpose()?;
        if !path.exists() {
            return Err(raise(
                py,
                Kind::Missing,
                format!("model {} does not exist", path.display()),
            ));
        }
        let options = LoadOptions { allow_nonfinite };
        let model = py.detach(|| Model::load_with(&path, &options)).or_raise()?;
        // Without preprocess=, the model's own normalisation: raw pixels for a Keras model
        // that rescales its input itself, else /255.
        let config = InputConfig {
            preprocess: preprocess.unwrap_or(model.input_config().preprocess),
            ..config
        };
        let model = model
            .with_input(config)
            .with_memory_limit(limit)
            .allow_nonfinite(allow_nonfinite);
        let model = match labels {
            Some(l) => model.with_labels(l),
            None => model,
        };
        Ok(PyModel { model })
    }

    /// The embedded demo model: a small CNN trained on generated pictures of circles, squares,
    /// triangles and stripes (no file needed).
    #[staticmethod]
    fn demo() -> PyResult<PyModel> {
        Ok(PyModel {
            model: Model::demo().or_raise()?,
        })
    }

    /// The embedded demo scene (160x160, one shape of each demo class) as a uint8 HxWx3 array.
    #[staticmethod]
    fn demo_scene(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let picture = convscope::demo_scene().image.to_picture();
        let p = crate::results::PyPicture::new(picture);
        Bound::new(py, p)?.call_method0("numpy")
    }

    /// The layer names, in execution order (what `layers=` and `layer=` take, with indices,
    /// ranges like '0..8', globs like 'block3_*' and raw ONNX value names).
    #[getter]
    fn layers(&self) -> Vec<String> {
        self.model.layers().iter().map(|l| l.name.clone()).collect()
    }

    /// The model input: name, layout ('NCHW' or 'NHWC'), channels, the declared height and
    /// width (None when not fixed), and the input options in force.
    #[getter]
    fn input_spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let spec = self.model.engine().input_spec();
        let cfg = self.model.input_config();
        let d = PyDict::new(py);
        d.set_item("name", &spec.name)?;
        d.set_item(
            "layout",
            match spec.layout {
                convscope::lower::engine::Layout::Nchw => "NCHW",
                convscope::lower::engine::Layout::Nhwc => "NHWC",
            },
        )?;
        d.set_item("channels", spec.channels)?;
        d.set_item("height", spec.height)?;
        d.set_item("width", spec.width)?;
        d.set_item("preprocess", cfg.preprocess.to_string())?;
        d.set_item("size", cfg.size.map(|s| (s.width, s.height)))?;
        d.set_item("crop", cfg.crop)?;
        d.set_item("resize", format!("{:?}", cfg.resize).to_ascii_lowercase())?;
        Ok(d)
    }

    /// Every layer as a dict: index, name, ops (e.g. 'Conv+Relu'), value (the ONNX value
    /// name), shape (batch 1, the model's layout) and params.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let doc = py.detach(|| self.model.summary()).or_raise()?;
        let list = PyList::empty(py);
        for l in &doc.layers {
            let d = PyDict::new(py);
            d.set_item("index", l.index)?;
            d.set_item("name", &l.name)?;
            d.set_item("ops", &l.ops)?;
            d.set_item("value", &l.value)?;
            d.set_item("shape", l.shape.clone())?;
            d.set_item("params", l.params)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Prepares an image for the model once (resized, cropped, normalised), to pass to several
    /// calls.
    #[pyo3(signature = (image, *, preprocess=None, size=None, crop=None, resize=None))]
    fn prepare(
        &self,
        image: &Bound<'_, PyAny>,
        preprocess: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        crop: Option<bool>,
        resize: Option<&str>,
    ) -> PyResult<PyInput> {
        let overrides = Overrides::read(preprocess, size, crop, resize)?;
        let input = self.run(image, overrides, |_, input| Ok(input.clone()))?;
        Ok(PyInput { input })
    }

    /// The model's prediction: the `top` most probable classes as (class, label, probability),
    /// and every class's probability. `labels` names the classes for this call.
    #[pyo3(signature = (image, top=5, labels=None, *, preprocess=None, size=None, crop=None, resize=None))]
    #[allow(clippy::too_many_arguments)]
    fn predict(
        &self,
        image: &Bound<'_, PyAny>,
        top: usize,
        labels: Option<&Bound<'_, PyAny>>,
        preprocess: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        crop: Option<bool>,
        resize: Option<&str>,
    ) -> PyResult<PyPredictions> {
        let labels = labels.map(read_labels).transpose()?;
        let overrides = Overrides::read(preprocess, size, crop, resize)?;
        let p = self.run(image, overrides, |m, input| m.predict(input))?;
        let top = p
            .top(top.max(1))
            .into_iter()
            .map(|(c, name, prob)| match &labels {
                Some(l) => (c, l.name(c), prob),
                None => (c, name, prob),
            })
            .collect();
        Ok(PyPredictions {
            top,
            probabilities: p.probabilities().to_vec(),
            logits: p.logits().map(<[f32]>::to_vec),
        })
    }

    /// The activations of `layers` (names, indices, ranges like '0..8', globs, 'all', or a
    /// list of them; default: every layer with a spatial feature map) for one image: a mapping
    /// from layer name to a float32 array in the model's own layout, batch axis included.
    #[pyo3(signature = (image, layers=None, *, preprocess=None, size=None, crop=None, resize=None))]
    #[allow(clippy::too_many_arguments)]
    fn activations(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        layers: Option<&Bound<'_, PyAny>>,
        preprocess: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        crop: Option<bool>,
        resize: Option<&str>,
    ) -> PyResult<PyActivations> {
        let config = ActivationsConfig {
            layers: layers.map(layer_spec).transpose()?,
        };
        let overrides = Overrides::read(preprocess, size, crop, resize)?;
        let acts = self.run(image, overrides, |m, input| m.activations(input, &config))?;
        PyActivations::new(py, acts)
    }

    /// A class activation map. `target`: a class index, a class name (with labels), a list of
    /// them (their summed score), or None for the most probable class. `layer`: None picks the
    /// last spatial feature map before the classifier. `method`: 'gradcam', 'gradcam++',
    /// 'xgradcam', 'layercam', 'hirescam', 'eigencam', 'scorecam', 'ablationcam'.
    #[pyo3(signature = (image, target=None, layer=None, method="gradcam", *, batch_size=None, preprocess=None, size=None, crop=None, resize=None))]
    #[allow(clippy::too_many_arguments)]
    fn gradcam(
        &self,
        image: &Bound<'_, PyAny>,
        target: Option<&Bound<'_, PyAny>>,
        layer: Option<String>,
        method: &str,
        batch_size: Option<usize>,
        preprocess: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        crop: Option<bool>,
        resize: Option<&str>,
    ) -> PyResult<PyCamMap> {
        let method = method.to_ascii_lowercase();
        let names = convscope::cam::method_names();
        if !names.contains(&method.as_str()) {
            return Err(invalid(format!(
                "unknown CAM method '{method}'; methods: {}",
                names.join(", ")
            )));
        }
        let mut config = CamConfig {
            method,
            layer,
            targets: read_target(target, self.model.labels())?,
            top: 1,
            ..CamConfig::default()
        };
        if let Some(b) = batch_size {
            if b == 0 {
                return Err(invalid("batch_size must be at least 1"));
            }
            config.batch_size = b;
        }
        let overrides = Overrides::read(preprocess, size, crop, resize)?;
        let mut set = self.run(image, overrides, |m, input| m.cam(input, &config))?;
        Ok(PyCamMap {
            map: set.maps.remove(0),
        })
    }

    /// A saliency map: 'gradient', 'smoothgrad', 'integrated-gradients', 'guided-backprop' or
    /// 'guided-gradcam', of `target` (a class index; None: the most probable class).
    #[pyo3(signature = (image, method="gradient", target=None, *, samples=25, noise=0.15, steps=32, seed=0, layer=None, batch_size=None, preprocess=None, size=None, crop=None, resize=None))]
    #[allow(clippy::too_many_arguments)]
    fn saliency(
        &self,
        image: &Bound<'_, PyAny>,
        method: &str,
        target: Option<&Bound<'_, PyAny>>,
        samples: usize,
        noise: f32,
        steps: usize,
        seed: u64,
        layer: Option<String>,
        batch_size: Option<usize>,
        preprocess: Option<&Bound<'_, PyAny>>,
        size: Option<&Bound<'_, PyAny>>,
        crop: Option<bool>,
        resize: Option<&str>,
    ) -> PyResult<PySaliencyMap> {
        let mut config = SaliencyConfig {
            method: method.to_ascii_lowercase(),
            target: read_target(target, self.model.labels())?.pop(),
            samples,
            noise,
            steps,
            seed,
            layer,
            ..SaliencyConfig::default()
        };
        if let Some(b) = batch_size {
            if b == 0 {
                return Err(invalid("batch_size must be at least 1"));
            }
            config.batch_size = b;
        }
        config.validate().or_raise()?;
        let overrides = Overrides::read(preprocess, size, crop, resize)?;
        let map = self.run(image, overrides, |m, input| m.saliency(input, &config))?;
        Ok(PySaliencyMap { map })
    }

    /// The input pattern each filter of `layer` responds to most (gradient ascent in input
    /// space). `recipe='walkthrough'` is the walk-through's: 40 normalised steps from grey
    /// noise at 150x150, no transformations; every keyword changes one part of it, and the
    /// result is a `FilterGrid`. `recipe='lucid'` or `'maco'` makes Lucid's or MaCo's pictures
    /// (as `visualize`, one objective per filter; `steps`, `size` and `seed` apply) and returns
    /// a `Visualization`.
    #[pyo3(signature = (layer, filters=None, recipe="walkthrough", *, steps=None, step=None, size=None, seed=0, preprocess=None, optimizer=None, jitter=0, scale=0.0, rotate=0.0, tv=0.0, l2=0.0, octaves=1, octave_scale=1.4))]
    #[allow(clippy::too_many_arguments)]
    fn filters<'py>(
        &self,
        py: Python<'py>,
        layer: &Bound<'_, PyAny>,
        filters: Option<&Bound<'_, PyAny>>,
        recipe: &str,
        steps: Option<usize>,
        step: Option<f32>,
        size: Option<&Bound<'_, PyAny>>,
        seed: u64,
        preprocess: Option<&Bound<'_, PyAny>>,
        optimizer: Option<&str>,
        jitter: usize,
        scale: f32,
        rotate: f32,
        tv: f32,
        l2: f32,
        octaves: usize,
        octave_scale: f32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let recipe: Recipe = recipe
            .parse()
            .map_err(|e: convscope::Error| invalid(e.to_string()))?;
        if recipe != Recipe::Walkthrough {
            let walkthrough_only = [
                (step.is_some(), "step"),
                (preprocess.is_some(), "preprocess (set it on the Model)"),
                (optimizer.is_some(), "optimizer"),
                (
                    jitter != 0 || scale != 0.0 || rotate != 0.0,
                    "jitter/scale/rotate",
                ),
                (tv != 0.0 || l2 != 0.0, "tv/l2"),
                (octaves != 1, "octaves"),
            ];
            if let Some((_, name)) = walkthrough_only.iter().find(|(set, _)| *set) {
                return Err(invalid(format!(
                    "{name} tunes the walkthrough recipe; recipe='{}' sets its own (see Model.visualize)",
                    recipe.name()
                )));
            }
            let layer = layer_spec(layer)?;
            let set = read_filter_set(filters)?;
            let size = size.map(parse_size).transpose()?;
            let progress = Interruptible::new();
            let vis = py.detach(|| {
                let config = VisualizeConfig {
                    recipe,
                    steps,
                    size,
                    seed,
                    ..VisualizeConfig::filters(&self.model, &layer, &set)?
                };
                self.model.visualize_with_progress(&config, &progress)
            });
            let vis = progress.result(vis)?;
            return Ok(Bound::new(py, PyVisualization { vis })?.into_any());
        }
        let base = FiltersConfig::default();
        let optimizer = match optimizer.map(str::to_ascii_lowercase).as_deref() {
            None | Some("sgd") => Optimizer::NormalizedAscent,
            Some("adam") => Optimizer::Adam,
            Some(other) => {
                return Err(invalid(format!(
                    "unknown optimizer '{other}'; optimizers: sgd, adam"
                )))
            }
        };
        let config = FiltersConfig {
            filters: read_filter_set(filters)?,
            steps: steps.unwrap_or(base.steps),
            step: step.unwrap_or(base.step),
            size: size.map(parse_size).transpose()?.unwrap_or(base.size),
            seed,
            preprocess: match preprocess {
                Some(p) => parse_preprocess(p)?,
                None => self.model.input_config().preprocess,
            },
            optimizer,
            jitter,
            scale,
            rotate,
            tv,
            l2,
            octaves,
            octave_scale,
            chunk: None,
        };
        let layer = layer_spec(layer)?;
        let progress = Interruptible::new();
        let grid = py.detach(|| self.model.filters_with_progress(&layer, &config, &progress));
        let grid = progress.result(grid)?;
        Ok(Bound::new(py, PyFilterGrid { grid })?.into_any())
    }

    /// Feature visualization of any objective: a spec such as `'conv3:5'` (channel 5 of conv3),
    /// `'conv3:0..8'` (one picture each), `'conv3:5@10,12'` (one neuron), `'class:285'` or
    /// `'class:NAME'` (with labels), `'conv3:dir=v.npy'`, `'invert=cat.png@conv2'`, and sums
    /// such as `'class:285 - 0.5*class:281'`; or a list of specs. `recipe`: 'lucid' (Fourier
    /// basis, decorrelated colours, Lucid's transformations, Adam, 512 steps), 'maco'
    /// (phase-only Fourier under a natural-image spectrum, 256 steps) or 'walkthrough'.
    /// `batch`: pictures per objective; `diversity`: weight of the term that makes them differ;
    /// `spectrum_from`: a folder of pictures to measure MaCo's spectrum on. The model's input
    /// options (`preprocess=` on `Model`) say how pictures become its input. Ctrl-C stops it.
    #[pyo3(signature = (objective, recipe="lucid", *, steps=None, size=None, lr=None, seed=0, batch=1, diversity=0.0, spectrum_from=None, chunk=None))]
    #[allow(clippy::too_many_arguments)]
    fn visualize(
        &self,
        py: Python<'_>,
        objective: &Bound<'_, PyAny>,
        recipe: &str,
        steps: Option<usize>,
        size: Option<&Bound<'_, PyAny>>,
        lr: Option<f32>,
        seed: u64,
        batch: usize,
        diversity: f32,
        spectrum_from: Option<PathBuf>,
        chunk: Option<usize>,
    ) -> PyResult<PyVisualization> {
        let objectives: Vec<String> = if let Ok(s) = objective.cast::<PyString>() {
            vec![s.to_cow()?.to_string()]
        } else if let Ok(list) = objective.extract::<Vec<String>>() {
            list
        } else {
            return Err(invalid(format!(
                "objective must be a spec such as 'conv3:5' or a list of them; got {}",
                short_repr(objective)
            )));
        };
        if chunk == Some(0) {
            return Err(invalid("chunk must be at least 1"));
        }
        let config = VisualizeConfig {
            objectives,
            recipe: recipe
                .parse()
                .map_err(|e: convscope::Error| invalid(e.to_string()))?,
            size: size.map(parse_size).transpose()?,
            steps,
            lr,
            seed,
            batch,
            diversity,
            chunk,
            ..VisualizeConfig::default()
        };
        let progress = Interruptible::new();
        let vis = py.detach(|| {
            let spectrum = match &spectrum_from {
                Some(dir) => Some(Arc::new(spectrum_from_dir(dir, 256)?)),
                None => None,
            };
            self.model
                .visualize_with_progress(&VisualizeConfig { spectrum, ..config }, &progress)
        });
        Ok(PyVisualization {
            vis: progress.result(vis)?,
        })
    }

    /// The images of the folder `images` (searched recursively) that excite each channel of
    /// `layers` most and least: every image goes through the model once, with the model's input
    /// options; `top` images are kept per channel at each end, scored by the map's `'max'` or
    /// `'mean'`. Unreadable images are skipped and listed (`skipped`), never fatal. Memory stays
    /// bounded whatever the folder's size. Ctrl-C stops it. The CLI's `convscope examples`
    /// does the same with shards, checkpoints and crops written to disk.
    #[pyo3(signature = (images, layers, *, top=9, score="max", batch=None))]
    fn examples(
        &self,
        py: Python<'_>,
        images: PathBuf,
        layers: &Bound<'_, PyAny>,
        top: usize,
        score: &str,
        batch: Option<usize>,
    ) -> PyResult<PyExamples> {
        let base = ExamplesConfig::default();
        let config = ExamplesConfig {
            layers: layer_spec(layers)?,
            top,
            score: score
                .parse()
                .map_err(|e: convscope::Error| invalid(e.to_string()))?,
            batch: batch.unwrap_or(base.batch),
            ..base
        };
        if !images.is_dir() {
            return Err(raise(
                py,
                if images.exists() {
                    Kind::Invalid
                } else {
                    Kind::Missing
                },
                format!("{} is not a folder of images", images.display()),
            ));
        }
        let progress = Interruptible::new();
        let index =
            py.detach(|| ExamplesRun::new(&self.model, &images, &config, None)?.run(&progress));
        Ok(PyExamples {
            index: progress.result(index)?,
            dir: images,
        })
    }

    /// For the benchmark script (scripts/bench/python_compare.py): the seconds each of `reps`
    /// runs of the facade call behind `call` ('predict', 'gradcam' or 'activations') takes in
    /// Rust on a prepared input, without any Python in the loop; the binding's overhead is the
    /// Python call's time minus this.
    #[pyo3(signature = (input, call, reps=10, layers=None))]
    fn _rust_call_seconds(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyInput>,
        call: &str,
        reps: usize,
        layers: Option<String>,
    ) -> PyResult<Vec<f64>> {
        let input = input.get().input.clone();
        let config = ActivationsConfig { layers };
        let cam = CamConfig::default();
        let job = match call {
            "predict" | "gradcam" | "activations" => call.to_string(),
            other => return Err(invalid(format!("unknown call '{other}'"))),
        };
        py.detach(|| {
            (0..reps)
                .map(|_| {
                    let start = std::time::Instant::now();
                    match job.as_str() {
                        "predict" => self.model.predict(&input).map(drop),
                        "gradcam" => self.model.cam(&input, &cam).map(drop),
                        _ => self.model.activations(&input, &config).map(drop),
                    }?;
                    Ok(start.elapsed().as_secs_f64())
                })
                .collect::<convscope::Result<Vec<f64>>>()
        })
        .or_raise()
    }

    fn __repr__(&self) -> String {
        format!(
            "<convscope.Model {} ({} layers)>",
            self.model.source(),
            self.model.layers().len()
        )
    }

    /// The summary table, as Keras prints it.
    fn __str__(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| self.model.summary_text()).or_raise()
    }
}

/// A layer selection from a name, an index or a list of them.
fn layer_spec(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_cow()?.to_string());
    }
    if let Ok(i) = v.extract::<usize>() {
        return Ok(i.to_string());
    }
    if let Ok(items) = v.extract::<Vec<Bound<'_, PyAny>>>() {
        let parts: Vec<String> = items.iter().map(layer_spec).collect::<PyResult<_>>()?;
        if parts.is_empty() {
            return Err(invalid("an empty list of layers selects nothing"));
        }
        return Ok(parts.join(","));
    }
    Err(invalid(format!(
        "a layer is a name, an index or a list of them; got {}",
        short_repr(v)
    )))
}
