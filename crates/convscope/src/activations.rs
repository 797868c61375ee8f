//! Intermediate activations as finished results: grids, one channel large, statistics, `.npy`
//! and the `index.json` / `index.html` of the `activations` command.

use convscope_image::{channel_grid, channel_large, grid_layout, Colormap, GridConfig, Planar};

pub use convscope_image::{channel_large_box, GridLayout};
use convscope_methods::activations::{
    compute_activations_with, default_selection, LayerActivation,
};
use serde::Serialize;

use crate::budget;
use crate::error::{Error, Result};
use crate::input::Input;
use crate::model::Model;
use crate::output::Sink;
use crate::picture::Picture;
use crate::size::Size;
use crate::text::{file_stem, fit_width};

/// Which layers [`Model::activations`] computes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivationsConfig {
    /// A layer selection (see [`Model::select`]); `None` takes every layer with a spatial
    /// feature map.
    pub layers: Option<String>,
}

impl ActivationsConfig {
    /// The layers selected by `spec` (names, indices, ranges, globs, `all`).
    pub fn layers(spec: &str) -> ActivationsConfig {
        ActivationsConfig {
            layers: Some(spec.to_string()),
        }
    }
}

/// How activation grids are drawn and which files are written.
#[derive(Clone, Debug, PartialEq)]
pub struct GridStyle {
    /// Channels per row.
    pub per_row: usize,
    /// Minimum size in pixels of each channel.
    pub cell: usize,
    /// Colormap.
    pub colormap: Colormap,
    /// Also draw this channel of each layer alone, large, with a colour bar.
    pub channel: Option<usize>,
    /// Also write each layer's raw values as `.npy`.
    pub npy: bool,
    /// Draw the layer's name and shape above the grid (a page that shows them itself leaves
    /// them out).
    pub title: bool,
}

impl Default for GridStyle {
    fn default() -> Self {
        GridStyle {
            per_row: 16,
            cell: 48,
            colormap: Colormap::Viridis,
            channel: None,
            npy: false,
            title: true,
        }
    }
}

impl GridStyle {
    /// Checks the style against the layers it will draw.
    pub fn validate(&self) -> Result<()> {
        if self.per_row == 0 {
            return Err(Error::Config("--per-row must be at least 1".into()));
        }
        if self.cell == 0 || self.cell > 1024 {
            return Err(Error::Config(format!(
                "--cell must be between 1 and 1024 pixels, got {}",
                self.cell
            )));
        }
        Ok(())
    }
}

/// The activations of the selected layers for one image.
///
/// ```
/// use convscope::prelude::*;
///
/// let model = Model::demo()?;
/// let scene = convscope::demo_scene().image;
/// let acts = model.activations(&scene, &ActivationsConfig::default())?;
/// let first = &acts.layers()[0];
/// let grid = acts.grid(0, &GridStyle::default())?;
/// assert!(grid.size().width >= 16 * 48);
/// assert!(first.stats.channels > 0);
/// # Ok::<(), convscope::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Activations {
    layers: Vec<LayerActivation>,
    input: Input,
    model_source: String,
    preprocess: &'static str,
}

/// What was written for one layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerFiles {
    /// Every file of the layer.
    pub files: Vec<String>,
    /// The grid picture, when the layer is a spatial map.
    pub grid: Option<String>,
}

impl Activations {
    pub(crate) fn compute(
        model: &Model,
        input: &Input,
        config: &ActivationsConfig,
    ) -> Result<Self> {
        let engine = model.engine();
        let selection = match &config.layers {
            Some(spec) => model.select(spec)?,
            None => default_selection(engine, input.tensor())?,
        };
        let ids: Vec<_> = selection.iter().map(|s| s.value).collect();
        let size = Size::from_hw(engine.input_spec().spatial(input.tensor().shape()));
        model.check_memory(
            size,
            1,
            &ids,
            convscope_engine::Pass::Inference,
            &format!("the activations of {} layers at {size}", ids.len()),
            "use a smaller --size or fewer --layers",
        )?;
        let layers = compute_activations_with(engine, input.tensor(), &selection, model.tokens())?;
        Activations::from_layers(model, input, layers)
    }

    /// Checks computed layers for NaN and infinity and wraps them.
    pub(crate) fn from_layers(
        model: &Model,
        input: &Input,
        layers: Vec<LayerActivation>,
    ) -> Result<Self> {
        for a in &layers {
            model.check_finite(
                a.values.data(),
                &format!("the activations of '{}'", a.selected.label),
                input.tensor(),
                a.selected.value,
            )?;
        }
        Ok(Activations {
            layers,
            input: input.clone(),
            model_source: model.source().to_string(),
            preprocess: model.input_config().preprocess.name(),
        })
    }

    /// The layers, in the order selected.
    pub fn layers(&self) -> &[LayerActivation] {
        &self.layers
    }

    /// The layer called `name` (its friendly name or the name it was selected by).
    pub fn get(&self, name: &str) -> Option<&LayerActivation> {
        self.layers
            .iter()
            .find(|a| a.selected.label == name || a.value_name == name)
    }

    /// The input the activations are of.
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// Layer `i`'s grid of every channel (each standardised as the walk-through does,
    /// `(x − mean)/std·64 + 128`, clipped); an error when the layer is not a spatial map.
    pub fn grid(&self, i: usize, style: &GridStyle) -> Result<Picture> {
        let ((c, h, w), cfg) = self.grid_parts(i, style)?;
        let values = self.layer(i)?.values.data()[..c * h * w].to_vec();
        Ok(Picture::new(channel_grid(
            &Planar::new(c, h, w, values)?,
            &cfg,
        )?))
    }

    /// Where [`Activations::grid`] puts each channel of layer `i`: the picture's size and each
    /// cell's rectangle, so a page can tell which channel was clicked.
    ///
    /// ```
    /// use convscope::prelude::*;
    ///
    /// let model = Model::demo()?;
    /// let acts = model.activations(&convscope::demo_scene().image, &ActivationsConfig::layers("conv1"))?;
    /// let style = GridStyle::default();
    /// let layout = acts.grid_layout(0, &style)?;
    /// assert_eq!(acts.grid(0, &style)?.size(), Size::new(layout.width, layout.height));
    /// let (x, y, w, h) = layout.cell(3).unwrap();
    /// assert_eq!(layout.channel_at(x + w / 2, y + h / 2), Some(3));
    /// # Ok::<(), convscope::Error>(())
    /// ```
    pub fn grid_layout(&self, i: usize, style: &GridStyle) -> Result<GridLayout> {
        // The layout needs the map's dimensions only, not a copy of its values.
        let ((c, h, w), cfg) = self.grid_parts(i, style)?;
        Ok(grid_layout(c, h, w, &cfg)?)
    }

    /// The map dimensions `(channels, height, width)` of layer `i` and the grid options of
    /// `style`.
    fn grid_parts(
        &self,
        i: usize,
        style: &GridStyle,
    ) -> Result<((usize, usize, usize), GridConfig)> {
        style.validate()?;
        let a = self.layer(i)?;
        let Some((c, h, w)) = a.spatial() else {
            return Err(Error::Config(format!(
                "'{}' has no spatial feature map to draw (shape {:?})",
                a.selected.label,
                a.values.shape()
            )));
        };
        let cfg = GridConfig {
            per_row: style.per_row,
            cell_min: style.cell,
            colormap: style.colormap,
            title: style
                .title
                .then(|| format!("{}  {c}x{h}x{w}", a.selected.label)),
            ..GridConfig::default()
        };
        Ok(((c, h, w), cfg))
    }

    /// Channel `k` of layer `i` alone, large (longer side `side` pixels), with a colour bar.
    pub fn channel(&self, i: usize, k: usize, colormap: Colormap, side: usize) -> Result<Picture> {
        let a = self.layer(i)?;
        let Some((c, h, w)) = a.spatial() else {
            return Err(Error::Config(format!(
                "'{}' has no spatial feature map (shape {:?})",
                a.selected.label,
                a.values.shape()
            )));
        };
        let map = a.channel(k).ok_or_else(|| {
            Error::Config(format!(
                "channel {k} is out of range: '{}' has {c} channels (0..{c})",
                a.selected.label
            ))
        })?;
        Ok(Picture::new(channel_large(map, h, w, colormap, side)?))
    }

    fn layer(&self, i: usize) -> Result<&LayerActivation> {
        self.layers.get(i).ok_or_else(|| {
            Error::Config(format!(
                "layer {i} is out of range: {} layers were computed",
                self.layers.len()
            ))
        })
    }

    /// Checks that `style.channel` exists in every spatial layer.
    pub fn check_channel(&self, style: &GridStyle) -> Result<()> {
        let Some(k) = style.channel else {
            return Ok(());
        };
        for a in &self.layers {
            if let Some((c, ..)) = a.spatial() {
                if k >= c {
                    return Err(Error::Config(format!(
                        "channel {k} is out of range: '{}' has {c} channels (0..{c})",
                        a.selected.label
                    )));
                }
            }
        }
        Ok(())
    }

    /// The bytes the pictures of `style` take at most while one is drawn and encoded.
    pub fn render_bytes(&self, style: &GridStyle) -> u64 {
        self.layers
            .iter()
            .filter_map(|a| a.spatial())
            .map(|(c, h, w)| {
                let cell = style.cell.max(h.max(w)) as u64;
                let cols = style.per_row.min(c).max(1) as u64;
                let rows = c.div_ceil(style.per_row.max(1)) as u64;
                budget::picture_bytes(cols * (cell + 2), rows * (cell + 2) + 40)
            })
            .max()
            .unwrap_or(0)
    }

    /// Writes layer `i`'s grid (and channel view and `.npy` when the style asks) as
    /// `<prefix><i>_<name>.*`.
    pub fn write_layer(
        &self,
        sink: &mut dyn Sink,
        prefix: &str,
        i: usize,
        style: &GridStyle,
    ) -> Result<LayerFiles> {
        let a = self.layer(i)?;
        let stem = format!("{prefix}{i:02}_{}", file_stem(&a.selected.label));
        let mut written = LayerFiles::default();
        if a.spatial().is_some() {
            let grid = self.grid(i, style)?;
            let name = format!("{stem}.png");
            sink.put(&name, &grid.png_bytes()?)?;
            written.files.push(name.clone());
            written.grid = Some(name);
            if let Some(k) = style.channel {
                let name = format!("{stem}_ch{k}.png");
                sink.put(
                    &name,
                    &self.channel(i, k, style.colormap, 480)?.png_bytes()?,
                )?;
                written.files.push(name);
            }
        }
        if style.npy {
            let name = format!("{stem}.npy");
            sink.put(
                &name,
                &convscope_image::npy_bytes_f32(a.values.shape(), a.values.data()),
            )?;
            written.files.push(name);
        }
        Ok(written)
    }

    /// Writes everything the `activations` command writes: `input.png`, every layer's files,
    /// `index.json` and `index.html`. `progress` is told after each layer.
    pub fn write(
        &self,
        sink: &mut dyn Sink,
        style: &GridStyle,
        progress: &dyn crate::progress::Progress,
    ) -> Result<ActivationsIndex> {
        style.validate()?;
        self.check_channel(style)?;
        sink.put("input.png", &self.input.display().to_picture().png_bytes()?)?;
        progress.start(self.layers.len() as u64, "rendering");
        let mut written = Vec::with_capacity(self.layers.len());
        for i in 0..self.layers.len() {
            written.push(self.write_layer(sink, "", i, style)?);
            progress.set(i as u64 + 1);
        }
        progress.finish();
        let index = self.index(&written);
        let json = serde_json::to_string_pretty(&index).expect("the index encodes");
        sink.put("index.json", json.as_bytes())?;
        let html = crate::html::activations_page(self, &written, style);
        sink.put("index.html", html.as_bytes())?;
        Ok(index)
    }

    /// The `index.json` document for the files in `written` (one entry per layer).
    pub fn index(&self, written: &[LayerFiles]) -> ActivationsIndex {
        ActivationsIndex {
            model: self.model_source.clone(),
            input: self.input.source().to_string(),
            input_shape: self.input.tensor().shape().to_vec(),
            preprocess: self.preprocess.to_string(),
            input_image: "input.png".into(),
            layers: self
                .layers
                .iter()
                .zip(written)
                .map(|(a, w)| {
                    let s = &a.stats;
                    LayerIndex {
                        name: a.selected.label.clone(),
                        layer: a.selected.layer.as_ref().map(|l| l.name.clone()),
                        value: a.value_name.clone(),
                        op: a
                            .selected
                            .layer
                            .as_ref()
                            .map(|l| l.ops.clone())
                            .unwrap_or_default(),
                        shape: a.values.shape().to_vec(),
                        files: w.files.clone(),
                        stats: StatsDoc {
                            mean: s.mean,
                            std: s.std,
                            min: s.min,
                            max: s.max,
                            zero_fraction: s.zero_fraction,
                            blank_channels: s.blank_channels,
                            channels: s.channels,
                        },
                    }
                })
                .collect(),
        }
    }

    /// The statistics table the `activations` command prints.
    pub fn table(&self) -> String {
        let w = self
            .layers
            .iter()
            .map(|a| a.selected.label.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 60);
        let mut out = format!(
            "{:w$}  {:>20}  {:>10}  {:>10}  {:>7}  {:>9}\n",
            "layer", "shape", "mean", "std", "zeros", "blank ch"
        );
        for a in &self.layers {
            let s = &a.stats;
            out.push_str(&format!(
                "{:w$}  {:>20}  {:>10.4}  {:>10.4}  {:>6.1}%  {:>4}/{:<4}\n",
                fit_width(&a.selected.label, w),
                format!("{:?}", a.values.shape()),
                s.mean,
                s.std,
                100.0 * s.zero_fraction,
                s.blank_channels,
                s.channels
            ));
        }
        for (rule, count) in self.map_rules() {
            out.push_str(&format!("{rule} ({count} layer(s) read this way)\n"));
        }
        out
    }

    /// The token rules that turned layers into maps ([`crate::MapLayout::describe`]), each
    /// with the number of layers it was applied to, in order of first use; empty when every
    /// layer was a feature map already.
    pub fn map_rules(&self) -> Vec<(String, usize)> {
        let mut rules: Vec<(String, usize)> = Vec::new();
        for rule in self.layers.iter().filter_map(|a| a.layout.describe()) {
            match rules.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, n)) => *n += 1,
                None => rules.push((rule, 1)),
            }
        }
        rules
    }

    pub(crate) fn model_source(&self) -> &str {
        &self.model_source
    }

    pub(crate) fn preprocess(&self) -> &'static str {
        self.preprocess
    }
}

/// The `index.json` of the `activations` command.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivationsIndex {
    /// The model file.
    pub model: String,
    /// The input file.
    pub input: String,
    /// The input tensor's shape.
    pub input_shape: Vec<usize>,
    /// The preprocessing preset.
    pub preprocess: String,
    /// The picture of the input.
    pub input_image: String,
    /// One entry per layer.
    pub layers: Vec<LayerIndex>,
}

/// One layer of an [`ActivationsIndex`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerIndex {
    /// The name shown.
    pub name: String,
    /// The layer's friendly name, when the value is a layer output.
    pub layer: Option<String>,
    /// ONNX name of the value.
    pub value: String,
    /// The layer's fused ops.
    pub op: String,
    /// Shape, batch axis included.
    pub shape: Vec<usize>,
    /// The files written for the layer.
    pub files: Vec<String>,
    /// Statistics over the image.
    pub stats: StatsDoc,
}

/// Statistics of one layer for one image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsDoc {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Fraction of values that are exactly zero.
    pub zero_fraction: f64,
    /// Channels that are zero everywhere.
    pub blank_channels: usize,
    /// Number of channels.
    pub channels: usize,
}
