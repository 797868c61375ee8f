//! Feature visualization for any objective (Lucid- and MaCo-quality pictures): recipes,
//! objective specs such as `conv3:5`, `class:285 - 0.5*class:281` or `invert=cat.png@conv2`,
//! and the finished pictures with their `index.json`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use convscope_engine::{Pass, ValueId};
use convscope_methods::filters::check_layer;
use convscope_methods::fvis::objective::{Objective, Term};
use convscope_methods::fvis::optimizer::Rule;
use convscope_methods::fvis::render::{render, Job, Param, RenderConfig};
use convscope_methods::fvis::spectrum::Spectrum;
use convscope_methods::fvis::transform::{LucidTransforms, MacoCrops, Transforms};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::filters::{FilterSet, TileStyle};
use crate::model::Model;
use crate::output::Sink;
use crate::picture::Picture;
use crate::progress::Progress;
use crate::size::Size;
use crate::text::file_stem;

/// A set of defaults for every part of the optimisation at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Recipe {
    /// The walk-through's: pixels, no transformations, 40 normalised steps.
    Walkthrough,
    /// Lucid's: 1/f Fourier basis with decorrelated colours, its standard transformations,
    /// Adam 0.05, 512 steps.
    #[default]
    Lucid,
    /// MaCo's: only the phase of a natural-image spectrum is optimised, random crops with
    /// noise, NAdam.
    Maco,
}

impl Recipe {
    /// Every recipe, by name.
    pub const ALL: [(&'static str, Recipe); 3] = [
        ("walkthrough", Recipe::Walkthrough),
        ("lucid", Recipe::Lucid),
        ("maco", Recipe::Maco),
    ];

    /// The recipe's name.
    pub fn name(self) -> &'static str {
        Recipe::ALL
            .iter()
            .find(|(_, r)| *r == self)
            .map(|(n, _)| *n)
            .unwrap_or("lucid")
    }

    /// Steps when not given.
    pub fn default_steps(self) -> usize {
        match self {
            Recipe::Walkthrough => 40,
            Recipe::Lucid => 512,
            Recipe::Maco => 256,
        }
    }

    /// The render options of this recipe for pictures of `size` seen at `view`.
    pub fn render_config(
        self,
        size: (usize, usize),
        view: (usize, usize),
        spectrum: Option<Arc<Spectrum>>,
    ) -> RenderConfig {
        let base = RenderConfig {
            size,
            view,
            steps: self.default_steps(),
            ..RenderConfig::default()
        };
        match self {
            Recipe::Walkthrough => RenderConfig {
                param: Param::Pixel,
                transforms: Transforms::None,
                rule: Rule::NormalizedStep,
                lr: 1.0,
                ..base
            },
            Recipe::Lucid => RenderConfig {
                param: Param::Fourier {
                    decay: 1.0,
                    sd: 0.01,
                    decorrelate: true,
                },
                transforms: Transforms::Lucid(LucidTransforms::default()),
                rule: Rule::Adam,
                lr: 0.05,
                ..base
            },
            Recipe::Maco => RenderConfig {
                param: Param::Maco(spectrum.unwrap_or_else(|| Arc::new(Spectrum::natural()))),
                transforms: Transforms::Maco(MacoCrops::default()),
                rule: Rule::NAdam,
                lr: 1.0,
                views: 2,
                ..base
            },
        }
    }

    /// The picture size when not given, for a model seen at `view`.
    pub fn default_size(self, view: Size) -> Size {
        match self {
            // MaCo crops a quarter to a half of a larger picture for each view.
            Recipe::Maco => Size::new(view.width * 2, view.height * 2),
            _ => view,
        }
    }
}

impl FromStr for Recipe {
    type Err = Error;
    fn from_str(s: &str) -> Result<Recipe> {
        Recipe::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
            .map(|(_, r)| *r)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown recipe '{s}'; choose walkthrough, lucid or maco"
                ))
            })
    }
}

/// Options of [`Model::visualize`].
#[derive(Clone, Debug)]
pub struct VisualizeConfig {
    /// Objective specs, each giving one picture (or one per channel of a range):
    /// `LAYER:K`, `LAYER:0..8`, `LAYER:K@X,Y`, `LAYER:dir=FILE.npy`, `LAYER:dir=IMAGE@X,Y`,
    /// `class:K` or `class:NAME`, `invert=IMAGE@LAYER`, `caricature=IMAGE@LAYER`, joined by
    /// `+` and `-` with optional weights `W*`.
    pub objectives: Vec<String>,
    /// The defaults.
    pub recipe: Recipe,
    /// Picture size (default: the recipe's for the model's input size).
    pub size: Option<Size>,
    /// Steps (default: the recipe's).
    pub steps: Option<usize>,
    /// Learning rate (default: the recipe's).
    pub lr: Option<f32>,
    /// Seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Pictures per objective.
    pub batch: usize,
    /// Weight of the diversity term between the pictures of one objective (needs `batch` ≥ 2).
    pub diversity: f32,
    /// The magnitude spectrum of the maco recipe (default: the shipped one).
    pub spectrum: Option<Arc<Spectrum>>,
    /// Pictures per network pass (default: as many as the memory limit allows, at most 16).
    pub chunk: Option<usize>,
    /// The size at which the network sees each picture (default: the model's input size). A
    /// smaller view makes pictures of early and middle layers of a convolutional network
    /// cheaper (the report's filter sections run at their picture size).
    pub view: Option<Size>,
    /// How a picture's pixels become the model's input (default: the model's input options).
    pub preprocess: Option<crate::Preprocess>,
}

impl Default for VisualizeConfig {
    fn default() -> Self {
        VisualizeConfig {
            objectives: Vec::new(),
            recipe: Recipe::Lucid,
            size: None,
            steps: None,
            lr: None,
            seed: 0,
            batch: 1,
            diversity: 0.0,
            spectrum: None,
            chunk: None,
            view: None,
            preprocess: None,
        }
    }
}

impl VisualizeConfig {
    /// Options for one objective spec.
    pub fn objective(spec: &str) -> VisualizeConfig {
        VisualizeConfig {
            objectives: vec![spec.to_string()],
            ..VisualizeConfig::default()
        }
    }

    /// Options for one picture per filter of `layer` (`convscope filters --recipe`): the
    /// selection is resolved against the layer, so [`FilterSet::First`] takes all filters of a
    /// smaller layer and an index past the end is refused naming the layer's size.
    ///
    /// ```
    /// use convscope::prelude::*;
    ///
    /// let model = Model::demo()?;
    /// // conv1 has 16 filters: the first 64 are all 16 of them.
    /// let cfg = VisualizeConfig::filters(&model, "conv1", &FilterSet::First(64))?;
    /// assert_eq!(cfg.objectives.len(), 16);
    /// assert_eq!(cfg.objectives[3], "conv1:3");
    /// assert!(VisualizeConfig::filters(&model, "conv1", &FilterSet::Indices(vec![16])).is_err());
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn filters(model: &Model, layer: &str, filters: &FilterSet) -> Result<VisualizeConfig> {
        let (label, channels) = layer_channels(model, layer)?;
        Ok(VisualizeConfig {
            objectives: filter_objectives(&label, channels, filters)?,
            ..VisualizeConfig::default()
        })
    }
}

/// One objective per selected filter of `label`, a layer with `channels` filters.
pub(crate) fn filter_objectives(
    label: &str,
    channels: usize,
    filters: &FilterSet,
) -> Result<Vec<String>> {
    let indices = filters.resolve(channels, label)?;
    Ok(indices.iter().map(|i| format!("{label}:{i}")).collect())
}

/// The canonical name of `layer` and its channel count (refusing a layer without a spatial
/// map).
pub(crate) fn layer_channels(model: &Model, layer: &str) -> Result<(String, usize)> {
    // Only the channel count is wanted: any size probes it on a model whose size is free.
    let view = model.input_size().unwrap_or(Size::square(224));
    let (_, label, channels) = SpecParser { model, view }.layer(layer)?;
    Ok((label, channels))
}

/// One finished picture.
#[derive(Clone, Debug)]
pub struct VisualPicture {
    /// The objective, as text (`conv3:5`, `class:285 Egyptian cat`, ...).
    pub objective: String,
    /// Which of the `batch` pictures of its objective.
    pub copy: usize,
    /// The picture.
    pub picture: Picture,
    /// The objective of the finished picture, as the model sees it untransformed.
    pub value: f32,
    /// The objective at every step.
    pub curve: Vec<f32>,
}

/// The pictures of one [`Model::visualize`] call.
#[derive(Clone, Debug)]
pub struct Visualization {
    /// Every picture, objective by objective.
    pub pictures: Vec<VisualPicture>,
    /// The recipe.
    pub recipe: Recipe,
    /// Steps run.
    pub steps: usize,
    /// Seed.
    pub seed: u64,
    model_source: String,
}

/// `index.json` of a [`Visualization`].
#[derive(Clone, Debug, Serialize)]
pub struct VisualIndex {
    /// The model.
    pub model: String,
    /// The recipe.
    pub recipe: String,
    /// Steps.
    pub steps: usize,
    /// Seed.
    pub seed: u64,
    /// The grid of all pictures.
    pub grid: String,
    /// One entry per picture.
    pub pictures: Vec<VisualEntry>,
}

/// One picture in `index.json`.
#[derive(Clone, Debug, Serialize)]
pub struct VisualEntry {
    /// The PNG file.
    pub file: String,
    /// The objective.
    pub objective: String,
    /// Which copy of its objective.
    pub copy: usize,
    /// The final objective value (untransformed picture).
    pub value: f32,
    /// The objective at the first step.
    pub start: f32,
}

impl Visualization {
    /// File name of picture `i`.
    pub fn file_name(&self, i: usize) -> String {
        let p = &self.pictures[i];
        let mut stem = file_stem(&p.objective);
        stem.truncate(80);
        format!("{i:03}_{stem}.png")
    }

    /// Every picture tiled into one, with their objectives when `style.labels`.
    pub fn grid(&self, style: &TileStyle) -> Result<Picture> {
        let n = self.pictures.len();
        let (cols, rows) = match style.grid {
            Some(g) => g,
            None => {
                let cols = (n as f64).sqrt().ceil() as usize;
                (cols.max(1), n.div_ceil(cols.max(1)))
            }
        };
        let cells: Vec<_> = self
            .pictures
            .iter()
            .map(|p| p.picture.rgb().clone())
            .collect();
        let labels: Vec<String> = self.pictures.iter().map(|p| p.objective.clone()).collect();
        Ok(Picture::new(convscope_image::tile_images(
            &cells,
            cols,
            rows,
            style.margin,
            [0, 0, 0],
            style.labels.then_some(labels.as_slice()),
        )?))
    }

    /// The `index.json` document.
    pub fn index(&self) -> VisualIndex {
        VisualIndex {
            model: self.model_source.clone(),
            recipe: self.recipe.name().to_string(),
            steps: self.steps,
            seed: self.seed,
            grid: "grid.png".into(),
            pictures: self
                .pictures
                .iter()
                .enumerate()
                .map(|(i, p)| VisualEntry {
                    file: self.file_name(i),
                    objective: p.objective.clone(),
                    copy: p.copy,
                    value: p.value,
                    start: p.curve.first().copied().unwrap_or(p.value),
                })
                .collect(),
        }
    }

    /// Writes one PNG per picture, `grid.png` and `index.json`.
    pub fn write(&self, sink: &mut dyn Sink) -> Result<()> {
        for (i, p) in self.pictures.iter().enumerate() {
            sink.put(&self.file_name(i), &p.picture.png_bytes()?)?;
        }
        let grid = self.grid(&TileStyle {
            labels: true,
            ..TileStyle::default()
        })?;
        sink.put("grid.png", &grid.png_bytes()?)?;
        let text = serde_json::to_string_pretty(&self.index())
            .map_err(|e| Error::Config(format!("cannot encode index.json: {e}")))?;
        sink.put("index.json", text.as_bytes())
    }
}

/// One parsed objective: its text and the objective (one per channel for a range).
struct Parsed {
    text: String,
    objective: Objective,
}

/// Parses the objective specs against `model` (see [`VisualizeConfig::objectives`]).
struct SpecParser<'m> {
    model: &'m Model,
    view: Size,
}

impl SpecParser<'_> {
    /// A layer and its channel count.
    fn layer(&self, name: &str) -> Result<(ValueId, String, usize)> {
        let sel = self.model.select_one(name.trim())?;
        let channels = check_layer(
            self.model.engine(),
            sel.value,
            &sel.label,
            &[],
            self.view.hw(),
        )?;
        Ok((sel.value, sel.label, channels))
    }

    /// `X,Y` to `(y, x)`.
    fn point(text: &str) -> Result<(usize, usize)> {
        let bad = || Error::Config(format!("'{text}' is not a position X,Y"));
        let (x, y) = text.split_once(',').ok_or_else(bad)?;
        Ok((
            y.trim().parse().map_err(|_| bad())?,
            x.trim().parse().map_err(|_| bad())?,
        ))
    }

    /// The activations of `image` at `layer` (`C × H × W`).
    fn activations(&self, image: &str, layer: ValueId) -> Result<(Vec<f32>, Vec<usize>)> {
        let input = self.model.input(Path::new(image))?;
        let out = self
            .model
            .engine()
            .run_float(input.tensor(), &[layer])?
            .remove(0);
        let shape = out.shape()[1..].to_vec();
        Ok((out.into_data(), shape))
    }

    /// The logits of the model's output (a Softmax's input when it ends in one).
    fn class_value(&self) -> Result<ValueId> {
        let engine = self.model.engine();
        let out = *engine
            .outputs()
            .first()
            .ok_or_else(|| Error::Config("the model has no output".into()))?;
        Ok(match engine.producer_of(out) {
            Some(("Softmax" | "LogSoftmax", inputs)) => {
                inputs.first().copied().flatten().unwrap_or(out)
            }
            _ => out,
        })
    }

    /// One term without weight: its objectives (several for a channel range) and text.
    fn atom(&self, text: &str) -> Result<Vec<(String, Term)>> {
        let text = text.trim();
        if let Some(k) = text.strip_prefix("class:") {
            let value = self.class_value()?;
            let index = match k.trim().parse::<usize>() {
                Ok(i) => i,
                Err(_) => match self.model.labels() {
                    Some(l) => l.index_of(k.trim())?,
                    None => {
                        return Err(Error::Config(format!(
                            "'{k}' is not a class index; pass --labels to use class names"
                        )))
                    }
                },
            };
            let name = self
                .model
                .labels()
                .map(|l| format!("class:{index} {}", l.name(index)))
                .unwrap_or_else(|| format!("class:{index}"));
            return Ok(vec![(name, Term::Class { value, index })]);
        }
        for (prefix, caricature) in [("invert=", false), ("caricature=", true)] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (image, layer) = rest.rsplit_once('@').ok_or_else(|| {
                    Error::Config(format!("'{text}' needs the form {prefix}IMAGE@LAYER"))
                })?;
                let (value, label, _) = self.layer(layer)?;
                let (target, _) = self.activations(image, value)?;
                let name = format!("{prefix}{}@{label}", file_name(image));
                let term = if caricature {
                    Term::Caricature {
                        layer: value,
                        target,
                    }
                } else {
                    Term::Match {
                        layer: value,
                        target,
                    }
                };
                return Ok(vec![(name, term)]);
            }
        }
        let (layer, tail) = text.rsplit_once(':').ok_or_else(|| {
            Error::Config(format!(
                "'{text}' is not an objective: use LAYER:K, LAYER:K@X,Y, LAYER:dir=FILE, class:K, invert=IMAGE@LAYER"
            ))
        })?;
        let (value, label, channels) = self.layer(layer)?;
        if let Some(dir) = tail.strip_prefix("dir=") {
            let (file, at) = match dir.rsplit_once('@') {
                Some((f, p)) => (f, Some(Self::point(p)?)),
                None => (dir, None),
            };
            let vector = if file.to_ascii_lowercase().ends_with(".npy") {
                let (_, v) = convscope_image::read_npy_f32(Path::new(file))?;
                v
            } else {
                // An image: its activation vector at the point (the centre by default).
                let (acts, shape) = self.activations(file, value)?;
                let [c, h, w] = shape[..] else {
                    return Err(Error::Config(format!("'{label}' is not a feature map")));
                };
                let (y, x) = at.unwrap_or((h / 2, w / 2));
                if y >= h || x >= w {
                    return Err(Error::Config(format!(
                        "position ({x},{y}) is outside '{label}' ({w}x{h} positions)"
                    )));
                }
                (0..c).map(|k| acts[(k * h + y) * w + x]).collect()
            };
            if vector.len() != channels || vector.iter().any(|v| !v.is_finite()) {
                return Err(Error::Config(format!(
                    "the direction from {file} has {} values; '{label}' has {channels} channels (finite values needed)",
                    vector.len()
                )));
            }
            let at_image = !file.to_ascii_lowercase().ends_with(".npy");
            let name = format!("{label}:dir={}", file_name(file));
            return Ok(vec![(
                name,
                Term::Direction {
                    layer: value,
                    vector,
                    at: if at_image { None } else { at },
                },
            )]);
        }
        if let Some((k, p)) = tail.split_once('@') {
            let channel = parse_channel(k, channels, &label)?;
            let at = Self::point(p)?;
            return Ok(vec![(
                format!("{label}:{channel}@{},{}", at.1, at.0),
                Term::Neuron {
                    layer: value,
                    channel,
                    at: Some(at),
                },
            )]);
        }
        let list = crate::text::parse_indices(tail, channels, "channel")
            .map_err(|e| Error::Config(format!("{e} in '{label}' ({channels} channels)")))?;
        if let Some(&bad) = list.iter().find(|&&k| k >= channels) {
            return Err(Error::Config(format!(
                "channel {bad} is out of range: '{label}' has {channels} channels (0..{channels})"
            )));
        }
        Ok(list
            .into_iter()
            .map(|channel| {
                (
                    format!("{label}:{channel}"),
                    Term::Channel {
                        layer: value,
                        channel,
                    },
                )
            })
            .collect())
    }

    /// A weighted term `W*ATOM`.
    fn weighted(&self, text: &str) -> Result<Vec<(String, f32, Term)>> {
        let (w, atom) = match text.split_once('*') {
            Some((w, rest)) if w.trim().parse::<f32>().is_ok() => {
                let w: f32 = w.trim().parse().expect("checked");
                if !w.is_finite() {
                    return Err(Error::Config(format!("weight '{w}' is not finite")));
                }
                (w, rest)
            }
            _ => (1.0, text),
        };
        Ok(self
            .atom(atom)?
            .into_iter()
            .map(|(name, term)| (name, w, term))
            .collect())
    }

    /// A whole spec: terms joined by `+` and `-`. Names may hold `+` or `-` themselves, so a
    /// split is taken only where both sides parse.
    fn spec(&self, text: &str) -> Result<Vec<Parsed>> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Config("an empty objective".into()));
        }
        let mut terms: Vec<(f32, String)> = Vec::new();
        if let Err(whole) = self.split(text, 1.0, &mut terms) {
            // Name the first term that does not parse, when the spacing shows the terms.
            let pieces = text.split([' ']).filter(|t| !matches!(*t, "" | "+" | "-"));
            for piece in pieces {
                self.weighted(piece.trim_start_matches(['+', '-']))?;
            }
            return Err(whole);
        }
        let mut parts: Vec<Vec<(String, f32, Term)>> = Vec::new();
        for (sign, t) in &terms {
            let mut p = self.weighted(t)?;
            p.iter_mut().for_each(|(_, w, _)| *w *= sign);
            parts.push(p);
        }
        if parts.len() == 1 {
            // One term: a channel range gives one picture per channel.
            return Ok(parts
                .remove(0)
                .into_iter()
                .map(|(name, w, term)| Parsed {
                    text: weighted_name(&name, w, true),
                    objective: w * Objective::from(term),
                })
                .collect());
        }
        let mut objective = Objective::default();
        let mut name = String::new();
        for (i, p) in parts.into_iter().enumerate() {
            if p.len() != 1 {
                return Err(Error::Config(format!(
                    "'{}' selects {} channels; a sum takes one channel per term",
                    terms[i].1,
                    p.len()
                )));
            }
            let (n, w, term) = p.into_iter().next().expect("one");
            name.push_str(&weighted_name(&n, w, i == 0));
            objective = objective + w * Objective::from(term);
        }
        Ok(vec![Parsed {
            text: name,
            objective,
        }])
    }

    /// Splits `text` into signed terms, trying every `+`/`-` where the left side parses.
    fn split(&self, text: &str, sign: f32, out: &mut Vec<(f32, String)>) -> Result<()> {
        let whole = self.weighted(text);
        if whole.is_ok() {
            out.push((sign, text.to_string()));
            return Ok(());
        }
        for (i, ch) in text.char_indices() {
            if (ch == '+' || ch == '-') && i > 0 {
                let (left, right) = (&text[..i], &text[i + 1..]);
                // A sign right after `*` or `=` or `@` or `e` of a number belongs to a value.
                if left.ends_with(['*', '=', '@', ',']) || right.trim().is_empty() {
                    continue;
                }
                if self.weighted(left).is_ok() {
                    let mut rest = Vec::new();
                    let s = if ch == '-' { -1.0 } else { 1.0 };
                    if self.split(right, s, &mut rest).is_ok() {
                        out.push((sign, left.to_string()));
                        out.extend(rest);
                        return Ok(());
                    }
                }
            }
        }
        if let Some(rest) = text.strip_prefix('-') {
            return self.split(rest, -sign, out);
        }
        whole.map(|_| ())
    }
}

/// Measures a magnitude spectrum ([`Spectrum::from_images`]) on every picture in `dir` (PNG,
/// JPEG, BMP, TIFF, WebP), at `side × side`.
pub fn spectrum_from_dir(dir: &Path, side: usize) -> Result<Spectrum> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| {
                ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"]
                    .contains(&x.to_string_lossy().to_ascii_lowercase().as_str())
            })
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no pictures (png, jpg, bmp, tiff, webp)",
            dir.display()
        )));
    }
    let images = paths
        .iter()
        .map(|p| Ok(crate::picture::Image::open(p)?.pixels().clone()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Spectrum::from_images(&images, side)?)
}

fn weighted_name(name: &str, w: f32, first: bool) -> String {
    let (sign, w) = if w < 0.0 { ("-", -w) } else { ("+", w) };
    let body = if w == 1.0 {
        name.to_string()
    } else {
        format!("{w}*{name}")
    };
    match (first, sign) {
        (true, "+") => body,
        (true, _) => format!("-{body}"),
        _ => format!(" {sign} {body}"),
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.to_string())
}

fn parse_channel(k: &str, channels: usize, label: &str) -> Result<usize> {
    let c: usize = k
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("'{k}' is not a channel index")))?;
    if c >= channels {
        return Err(Error::Config(format!(
            "channel {c} is out of range: '{label}' has {channels} channels (0..{channels})"
        )));
    }
    Ok(c)
}

impl Visualization {
    pub(crate) fn compute(
        model: &Model,
        config: &VisualizeConfig,
        progress: &dyn Progress,
    ) -> Result<Visualization> {
        if config.objectives.is_empty() {
            return Err(Error::Config(
                "no objective given (--objective SPEC)".into(),
            ));
        }
        if config.batch == 0 || config.batch > 256 {
            return Err(Error::Config(format!(
                "--batch must be 1..=256, got {}",
                config.batch
            )));
        }
        if !config.diversity.is_finite() || config.diversity < 0.0 {
            return Err(Error::Config(format!(
                "--diversity must be a finite number >= 0, got {}",
                config.diversity
            )));
        }
        if config.diversity > 0.0 && config.batch < 2 {
            return Err(Error::Config(
                "--diversity compares the pictures of one objective: use --batch 2 or more".into(),
            ));
        }
        let steps = config.steps.unwrap_or(config.recipe.default_steps());
        if !(1..=convscope_methods::filters::MAX_STEPS).contains(&steps) {
            return Err(Error::Config(format!(
                "--steps must be 1..={}, got {steps}",
                convscope_methods::filters::MAX_STEPS
            )));
        }
        if let Some(lr) = config.lr {
            if !lr.is_finite() || lr <= 0.0 {
                return Err(Error::Config(format!(
                    "--lr must be a finite number > 0, got {lr}"
                )));
            }
        }
        let view = match config.view {
            Some(view) => view,
            None => model.input_size().or_else(|e| config.size.ok_or(e))?,
        };
        view.check("--size")?;
        let size = config.size.unwrap_or(config.recipe.default_size(view));
        size.check("--size")?;
        let parser = SpecParser { model, view };
        let mut parsed = Vec::new();
        for spec in &config.objectives {
            parsed.extend(parser.spec(spec)?);
        }
        let mut jobs = Vec::new();
        let mut names = Vec::new();
        for (g, p) in parsed.iter().enumerate() {
            let mut objective = p.objective.clone();
            if config.diversity > 0.0 {
                let layer = objective.terms()[0].1.value();
                objective =
                    objective + config.diversity * Objective::from(Term::Diversity { layer });
            }
            for copy in 0..config.batch {
                jobs.push(Job {
                    objective: objective.clone(),
                    group: g,
                    index: (g * config.batch + copy) as u64,
                });
                names.push((p.text.clone(), copy));
            }
        }
        let mut rc = config
            .recipe
            .render_config(size.hw(), view.hw(), config.spectrum.clone());
        rc.steps = steps;
        rc.seed = config.seed;
        rc.normalize = config.preprocess.unwrap_or(model.input_config().preprocess);
        if let Some(lr) = config.lr {
            rc.lr = lr;
        }
        let wanted: Vec<ValueId> = {
            let mut v: Vec<ValueId> = Vec::new();
            for j in &jobs {
                for id in j.objective.values() {
                    if !v.contains(&id) {
                        v.push(id);
                    }
                }
            }
            v
        };
        // Graphs that fix their batch (EfficientNet's exported Flatten reshapes to [1, -1])
        // fail a pass of two; their views then go through the network one at a time.
        let one_at_a_time = matches!(
            model.estimate_bytes(view, 2, &wanted, Pass::Gradient),
            Err(Error::Engine(_))
        );
        let per_view = model
            .estimate_bytes(view, 1, &wanted, Pass::Gradient)?
            .unwrap_or(0)
            .max(1);
        if one_at_a_time {
            if config.diversity > 0.0 {
                return Err(Error::Config(
                    "--diversity compares pictures in one network pass, but this model's graph fixes its batch at 1 up to the objective's layer; choose an earlier layer or drop --diversity".into(),
                ));
            }
            rc.pass_batch = 1;
        }
        // Pictures per chunk: at most 16 views, and what the memory limit allows (half of it,
        // the rest for the parameters, optimiser state and pictures).
        let fit_views = ((model.memory_limit().bytes() / 2 / per_view) as usize).max(1);
        let views_per_pass = if one_at_a_time { 1 } else { fit_views.min(16) };
        let chunk = config
            .chunk
            .unwrap_or((views_per_pass / rc.views).max(1))
            .max(1);
        let pass = if one_at_a_time { 1 } else { chunk * rc.views };
        model.check_memory(
            view,
            pass,
            &wanted,
            Pass::Gradient,
            &format!("{pass} views per pass at {view}"),
            "use a smaller --size or fewer pictures",
        )?;
        rc.chunk = chunk;
        progress.start((jobs.len() * steps) as u64, "visualize");
        let rendered = render(model.engine(), &jobs, &rc, &mut |done| {
            progress.set(done as u64);
            !progress.cancelled()
        })?;
        progress.finish();
        let pictures = rendered
            .into_iter()
            .zip(names)
            .map(|(r, (objective, copy))| VisualPicture {
                objective,
                copy,
                picture: Picture::new(r.image.to_rgb8()),
                value: r.value,
                curve: r.curve,
            })
            .collect();
        Ok(Visualization {
            pictures,
            recipe: config.recipe,
            steps,
            seed: config.seed,
            model_source: model.source().to_string(),
        })
    }
}
