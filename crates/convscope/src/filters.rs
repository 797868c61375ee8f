//! Filter patterns (gradient ascent in input space) as finished results: tiles, the grid and the
//! objective curves.

use convscope_image::tile_images;
use std::ops::ControlFlow;

use convscope_methods::filters::{check_layer, visualize_filters_until, FilterPattern};
use serde::Serialize;

pub use convscope_methods::filters::Optimizer;

use crate::error::{Error, Result};
use crate::input::Preprocess;
use crate::model::Model;
use crate::picture::Picture;
use crate::progress::Progress;
use crate::size::Size;

/// Which filters of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum FilterSet {
    /// Every filter.
    #[default]
    All,
    /// The first N filters (all of them when the layer has fewer).
    First(usize),
    /// These indices, in this order.
    Indices(Vec<usize>),
    /// A selection such as `0..64`, `3,7,9`, `2..=4`, `all`, resolved against the layer.
    Spec(String),
}

impl FilterSet {
    /// The indices among `channels` filters of `layer`.
    pub fn resolve(&self, channels: usize, layer: &str) -> Result<Vec<usize>> {
        let list = match self {
            FilterSet::All => (0..channels).collect(),
            FilterSet::First(n) => (0..(*n).min(channels)).collect(),
            FilterSet::Indices(v) => v.clone(),
            FilterSet::Spec(spec) => crate::text::parse_indices(spec, channels, "filter")
                .map_err(|e| Error::Config(format!("{e} in '{layer}' ({channels} filters)")))?,
        };
        if list.is_empty() {
            return Err(Error::Config("no filters selected".into()));
        }
        if let Some(&bad) = list.iter().find(|&&f| f >= channels) {
            return Err(Error::Config(format!(
                "filter index {bad} is out of range: '{layer}' has {channels} filters (0..{channels})"
            )));
        }
        Ok(list)
    }
}

/// Options of [`Model::filters`]. The defaults are the walk-through's: 40 normalised steps from
/// grey noise at 150×150, no transformations.
#[derive(Clone, Debug, PartialEq)]
pub struct FiltersConfig {
    /// Which filters.
    pub filters: FilterSet,
    /// Ascent steps (per octave).
    pub steps: usize,
    /// Step size (learning rate with Adam).
    pub step: f32,
    /// Picture size.
    pub size: Size,
    /// Seed of the starting noise and of the random transformations.
    pub seed: u64,
    /// The model's pixel normalisation (the pictures live in pixel space).
    pub preprocess: Preprocess,
    /// Update rule.
    pub optimizer: Optimizer,
    /// Random shift of up to this many pixels per step.
    pub jitter: usize,
    /// Random scaling by up to this fraction per step.
    pub scale: f32,
    /// Random rotation by up to this many degrees per step.
    pub rotate: f32,
    /// Total-variation penalty weight.
    pub tv: f32,
    /// L2 penalty weight.
    pub l2: f32,
    /// Optimise at this many scales, small to large.
    pub octaves: usize,
    /// Size ratio between octaves (> 1).
    pub octave_scale: f32,
    /// Filters optimised together per batch (`None`: from a memory budget).
    pub chunk: Option<usize>,
}

impl Default for FiltersConfig {
    fn default() -> Self {
        FiltersConfig {
            filters: FilterSet::All,
            steps: 40,
            step: 1.0,
            size: Size::square(150),
            seed: 0,
            preprocess: Preprocess::Unit,
            optimizer: Optimizer::NormalizedAscent,
            jitter: 0,
            scale: 0.0,
            rotate: 0.0,
            tv: 0.0,
            l2: 0.0,
            octaves: 1,
            octave_scale: 1.4,
            chunk: None,
        }
    }
}

impl FiltersConfig {
    /// The walk-through's options for the first `n` filters.
    pub fn first(n: usize) -> FiltersConfig {
        FiltersConfig {
            filters: FilterSet::First(n),
            ..FiltersConfig::default()
        }
    }

    /// Checks that every number means something, naming the option that does not.
    pub fn validate(&self) -> Result<()> {
        let finite = |v: f32, name: &str, lo: f32, strict: bool| -> Result<()> {
            let ok = v.is_finite() && if strict { v > lo } else { v >= lo };
            if ok {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "--{name} must be a finite number {} {lo}, got {v}",
                    if strict { ">" } else { ">=" }
                )))
            }
        };
        finite(self.step, "step", 0.0, true)?;
        finite(self.scale, "scale", 0.0, false)?;
        if self.scale >= 1.0 {
            return Err(Error::Config(format!(
                "--scale must be below 1 (a fraction of the size), got {}",
                self.scale
            )));
        }
        finite(self.rotate, "rotate", 0.0, false)?;
        finite(self.tv, "tv", 0.0, false)?;
        finite(self.l2, "l2", 0.0, false)?;
        if self.octaves > 1 {
            finite(self.octave_scale, "octave-scale", 1.0, true)?;
        }
        if self.steps == 0 {
            return Err(Error::Config("--steps must be at least 1".into()));
        }
        if self.octaves == 0 || self.octaves > 16 {
            return Err(Error::Config(format!(
                "--octaves must be between 1 and 16, got {}",
                self.octaves
            )));
        }
        if self.chunk == Some(0) {
            return Err(Error::Config("--chunk must be at least 1".into()));
        }
        self.size.check("--size")?;
        Ok(())
    }
}

/// How the patterns are tiled into one picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileStyle {
    /// Columns and rows; `None` makes the grid as square as fits.
    pub grid: Option<(usize, usize)>,
    /// Pixels between cells (none around the grid, as the walk-through's).
    pub margin: usize,
    /// Write each filter's index on its cell.
    pub labels: bool,
}

impl Default for TileStyle {
    fn default() -> Self {
        TileStyle {
            grid: None,
            margin: 5,
            labels: false,
        }
    }
}

/// The patterns of the filters of one layer.
///
/// ```
/// use convscope::prelude::*;
///
/// let model = Model::demo()?;
/// let cfg = FiltersConfig { filters: FilterSet::Indices(vec![0, 1, 2, 3]), size: Size::square(32), steps: 5, ..FiltersConfig::default() };
/// let grid = model.filters("conv1", &cfg)?;
/// let picture = grid.picture(&TileStyle::default())?;
/// assert_eq!(picture.size(), Size::square(2 * 32 + 5));
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FilterGrid {
    /// The layer's friendly name.
    pub layer: String,
    /// Its ONNX value name.
    pub value: String,
    /// Filters in the layer.
    pub channels: usize,
    /// One pattern per requested filter, in order.
    pub patterns: Vec<FilterPattern>,
    config: FiltersConfig,
    model_source: String,
}

impl FilterGrid {
    pub(crate) fn compute(
        model: &Model,
        layer: &str,
        config: &FiltersConfig,
        progress: &dyn Progress,
    ) -> Result<FilterGrid> {
        config.validate()?;
        let target = model.select_one(layer)?;
        let engine = model.engine();
        // Before any pass at the requested size: the shapes alone bound the memory.
        model.check_memory(
            config.size,
            1,
            &[target.value],
            convscope_engine::Pass::Gradient,
            &format!("one filter pattern at {}", config.size),
            "use a smaller --size",
        )?;
        let probe = (config.size.height.max(32), config.size.width.max(32));
        let channels = check_layer(engine, target.value, &target.label, &[], probe)?;
        let filters = config.filters.resolve(channels, &target.label)?;
        let cfg = convscope_methods::filters::FiltersConfig {
            filters: filters.clone(),
            steps: config.steps,
            step: config.step,
            size: config.size.hw(),
            seed: config.seed,
            normalize: config.preprocess,
            optimizer: config.optimizer,
            jitter: config.jitter,
            scale: config.scale,
            rotate: config.rotate,
            tv: config.tv,
            l2: config.l2,
            octaves: config.octaves,
            octave_scale: config.octave_scale,
            chunk: config.chunk,
        };
        progress.start(
            (filters.len() * config.steps * config.octaves) as u64,
            &target.label,
        );
        // Checked after every ascent step: a viewer's page that went away stops the job.
        let patterns = visualize_filters_until(engine, target.value, &cfg, &mut |done| {
            progress.set(done as u64);
            if progress.cancelled() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        progress.finish();
        Ok(FilterGrid {
            layer: target.label.clone(),
            value: engine.value_name(target.value).to_string(),
            channels,
            patterns,
            config: config.clone(),
            model_source: model.source().to_string(),
        })
    }

    /// Each pattern as a picture, in filter order.
    pub fn tiles(&self) -> Vec<Picture> {
        self.patterns
            .iter()
            .map(|p| Picture::new(p.image.to_rgb8()))
            .collect()
    }

    /// `(columns, rows)` of the grid for `style`.
    pub fn grid_shape(&self, style: &TileStyle) -> Result<(usize, usize)> {
        let n = self.patterns.len();
        let (cols, rows) = match style.grid {
            Some(g) => g,
            None => {
                let cols = (n as f64).sqrt().ceil() as usize;
                (cols, n.div_ceil(cols.max(1)))
            }
        };
        if cols == 0 || rows == 0 || cols.saturating_mul(rows) < n {
            return Err(Error::Config(format!(
                "a {cols}x{rows} grid holds {} filters, {n} were asked for",
                cols.saturating_mul(rows)
            )));
        }
        Ok((cols, rows))
    }

    /// Every pattern tiled into one picture (the walk-through's 8×8 grid with 5 px margins for
    /// 64 filters).
    pub fn picture(&self, style: &TileStyle) -> Result<Picture> {
        let (cols, rows) = self.grid_shape(style)?;
        let cells: Vec<_> = self.patterns.iter().map(|p| p.image.to_rgb8()).collect();
        let labels: Vec<String> = self.patterns.iter().map(|p| p.filter.to_string()).collect();
        Ok(Picture::new(tile_images(
            &cells,
            cols,
            rows,
            style.margin,
            [0, 0, 0],
            style.labels.then_some(labels.as_slice()),
        )?))
    }

    /// Filters whose objective rose.
    pub fn rising(&self) -> usize {
        self.patterns.iter().filter(|p| p.end() > p.start()).count()
    }

    /// Mean final objective.
    pub fn mean_end(&self) -> f64 {
        self.patterns.iter().map(|p| p.end() as f64).sum::<f64>()
            / self.patterns.len().max(1) as f64
    }

    /// The objective curves (the `--json` document of the `filters` command).
    pub fn curves(&self) -> FilterCurves {
        FilterCurves {
            model: self.model_source.clone(),
            layer: self.layer.clone(),
            value: self.value.clone(),
            size: [self.config.size.width, self.config.size.height],
            steps: self.config.steps,
            step: self.config.step,
            seed: self.config.seed,
            filters: self
                .patterns
                .iter()
                .map(|p| FilterCurve {
                    filter: p.filter,
                    start: p.start(),
                    end: p.end(),
                    curve: p.curve.clone(),
                    rose: p.end() > p.start(),
                })
                .collect(),
            rising: self.rising(),
            mean_end: self.mean_end(),
        }
    }
}

/// The objective curves of a [`FilterGrid`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FilterCurves {
    /// The model file.
    pub model: String,
    /// The layer.
    pub layer: String,
    /// Its ONNX value name.
    pub value: String,
    /// `[width, height]`.
    pub size: [usize; 2],
    /// Steps per octave.
    pub steps: usize,
    /// Step size.
    pub step: f32,
    /// Seed.
    pub seed: u64,
    /// One curve per filter.
    pub filters: Vec<FilterCurve>,
    /// Filters whose objective rose.
    pub rising: usize,
    /// Mean final objective.
    pub mean_end: f64,
}

/// One filter's objective before each step and after the last.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FilterCurve {
    /// Filter index.
    pub filter: usize,
    /// Objective at the start.
    pub start: f32,
    /// Objective at the end.
    pub end: f32,
    /// Every value.
    pub curve: Vec<f32>,
    /// Whether it rose.
    pub rose: bool,
}
