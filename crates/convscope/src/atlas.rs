//! A unit atlas: one static, offline site per model and folder of images, with a page per layer
//! (every channel as a tile) and a page per unit (what it wants, the real images that excite it
//! most and least, with their receptive fields and the unit's activation over them). Units link
//! to their neighbours; every page works from the file system, no server.

use std::collections::BTreeMap;
use std::path::Path;

use convscope_engine::ValueId;
use convscope_image::{
    heatmap_rgb, resize, superimpose, upsample_bilinear, Colormap, ResizeFilter,
};
use maud::{html, Markup};

use crate::error::Result;
use crate::examples::{
    crop_name, write_examples, ExamplesConfig, ExamplesIndex, ExamplesRun, LayerExamples,
};
use crate::filters::{FilterSet, FiltersConfig};
use crate::html::page;
use crate::input::Preprocess;
use crate::model::Model;
use crate::output::Sink;
use crate::progress::Progress;
use crate::report::REPORT_STEPS;
use crate::size::Size;
use crate::text::file_stem;
use crate::visualize::{filter_objectives, layer_channels, Recipe, VisualizeConfig};

/// Options of [`write_atlas`].
#[derive(Clone, Debug)]
pub struct AtlasConfig {
    /// Which layers, how many examples, batches (the dataset examples' options; crops are
    /// always cut).
    pub examples: ExamplesConfig,
    /// How each unit's picture of what it wants is made; `None` leaves them out.
    pub pictures: Option<UnitPictures>,
    /// Side of the activation overlays, in pixels.
    pub overlay_size: usize,
    /// Page title (default: the model's name).
    pub title: Option<String>,
}

impl Default for AtlasConfig {
    fn default() -> Self {
        AtlasConfig {
            examples: ExamplesConfig::default(),
            pictures: Some(UnitPictures::default()),
            overlay_size: 112,
            title: None,
        }
    }
}

/// How an atlas makes each unit's picture of what it wants.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitPictures {
    /// Lucid's recipe by default (a decorrelated Fourier image under jitter, scaling and
    /// rotation), the walk-through's gradient ascent or MaCo's one option away.
    pub recipe: Recipe,
    /// Side of each picture; the network sees it at this size.
    pub size: Size,
    /// Optimisation steps (default: 128 for Lucid's and MaCo's recipes, as the report's
    /// pictures, 40 for the walk-through's).
    pub steps: Option<usize>,
    /// How a picture's pixels become the model's input (default: the model's input options).
    pub preprocess: Option<Preprocess>,
}

impl Default for UnitPictures {
    fn default() -> Self {
        UnitPictures {
            recipe: Recipe::Lucid,
            size: Size::square(96),
            steps: None,
            preprocess: None,
        }
    }
}

impl UnitPictures {
    /// The steps used: given, or the recipe's default for an atlas.
    pub fn steps(&self) -> usize {
        self.steps.unwrap_or(match self.recipe {
            Recipe::Walkthrough => 40,
            _ => REPORT_STEPS,
        })
    }

    /// One picture per channel of `layer`, in channel order.
    fn draw(
        &self,
        model: &Model,
        layer: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<crate::Picture>> {
        let preprocess = self.preprocess.unwrap_or(model.input_config().preprocess);
        if self.recipe == Recipe::Walkthrough {
            let cfg = FiltersConfig {
                filters: FilterSet::All,
                size: self.size,
                steps: self.steps(),
                preprocess,
                ..FiltersConfig::default()
            };
            let grid = model.filters_with_progress(layer, &cfg, progress)?;
            return Ok(grid.tiles());
        }
        let (label, channels) = layer_channels(model, layer)?;
        let cfg = VisualizeConfig {
            objectives: filter_objectives(&label, channels, &FilterSet::All)?,
            recipe: self.recipe,
            steps: Some(self.steps()),
            size: Some(self.size),
            view: Some(self.size),
            preprocess: Some(preprocess),
            ..VisualizeConfig::default()
        };
        let vis = model.visualize_with_progress(&cfg, progress)?;
        Ok(vis.pictures.into_iter().map(|p| p.picture).collect())
    }

    /// How the pictures were made, for the pages' captions.
    fn method(&self) -> String {
        match self.recipe {
            Recipe::Walkthrough => format!(
                "{} steps of gradient ascent from grey noise (the walk-through's method)",
                self.steps()
            ),
            Recipe::Lucid => format!(
                "{} steps of Lucid's recipe (a decorrelated 1/f Fourier image under random \
                 jitter, scaling and rotation)",
                self.steps()
            ),
            Recipe::Maco => format!(
                "{} steps of MaCo's recipe (only the phase of a natural-image spectrum is \
                 optimised)",
                self.steps()
            ),
        }
    }
}

/// What an atlas holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtlasSummary {
    /// Layers.
    pub layers: usize,
    /// Units (one page each).
    pub units: usize,
    /// Images the examples came from.
    pub images: usize,
}

fn layer_page(layer: &str) -> String {
    format!("layer_{}.html", file_stem(layer))
}

fn unit_page(layer: &str, channel: usize) -> String {
    format!("unit_{}_{channel:04}.html", file_stem(layer))
}

fn picture_name(layer: &str, channel: usize) -> String {
    format!("wants_{}_{channel:04}.png", file_stem(layer))
}

fn overlay_name(layer: &str, channel: usize, rank: usize) -> String {
    format!("act_{}_{channel:04}_top{rank}.png", file_stem(layer))
}

/// Runs the dataset examples of `images` and writes the whole site (`index.html`, a page per
/// layer and per unit, the pictures, crops and overlays, and the examples' `index.json`) into
/// `sink`.
///
/// ```no_run
/// use convscope::prelude::*;
/// use convscope::atlas::{write_atlas, AtlasConfig};
/// use convscope::examples::ExamplesConfig;
/// use convscope::output::OutputDir;
///
/// let model = Model::demo()?.with_input(InputConfig::default().with_size(Size::square(64)));
/// let cfg = AtlasConfig {
///     examples: ExamplesConfig { layers: "all".into(), ..ExamplesConfig::default() },
///     ..AtlasConfig::default()
/// };
/// let mut site = OutputDir::create("atlas")?;
/// write_atlas(&model, "scenes/".as_ref(), &cfg, &mut site, &NoProgress)?;
/// site.commit()?;
/// # Ok::<(), convscope::Error>(())
/// ```
pub fn write_atlas(
    model: &Model,
    images: &Path,
    config: &AtlasConfig,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<AtlasSummary> {
    let index = ExamplesRun::new(model, images, &config.examples, None)?.run(progress)?;
    write_examples(&index, images, true, sink, progress)?;
    // What each unit wants.
    let mut with_picture = Vec::new();
    if let Some(pictures) = &config.pictures {
        for layer in &index.layers {
            for (channel, tile) in pictures
                .draw(model, &layer.name, progress)?
                .iter()
                .enumerate()
            {
                sink.put(&picture_name(&layer.name, channel), &tile.png_bytes()?)?;
            }
            with_picture.push(layer.name.clone());
        }
    }
    let method = config.pictures.as_ref().map(UnitPictures::method);
    write_overlays(model, images, &index, config.overlay_size, sink, progress)?;
    let title = config
        .title
        .clone()
        .unwrap_or_else(|| format!("convscope atlas: {}", model.source()));
    let has_picture = |l: &str| {
        with_picture
            .iter()
            .any(|n| n == l)
            .then_some(method.as_deref())
            .flatten()
    };
    sink.put("index.html", index_page(&title, &index).as_bytes())?;
    let mut units = 0;
    for (li, layer) in index.layers.iter().enumerate() {
        sink.put(
            &layer_page(&layer.name),
            layer_page_html(&title, &index, li, has_picture(&layer.name)).as_bytes(),
        )?;
        for unit in &layer.units {
            sink.put(
                &unit_page(&layer.name, unit.channel),
                unit_page_html(&title, &index, li, unit.channel, has_picture(&layer.name))
                    .as_bytes(),
            )?;
            units += 1;
        }
    }
    Ok(AtlasSummary {
        layers: index.layers.len(),
        units,
        images: index.images_used,
    })
}

/// The unit's activation over each of its top images: the channel's map, scaled by the unit's
/// best score (so overlays of one unit compare), upsampled and laid over the image.
fn write_overlays(
    model: &Model,
    images: &Path,
    index: &ExamplesIndex,
    side: usize,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<()> {
    // Each image runs once, for every unit that ranks it.
    let mut wanted: BTreeMap<&str, Vec<(usize, usize, usize)>> = BTreeMap::new();
    for (li, layer) in index.layers.iter().enumerate() {
        for unit in &layer.units {
            for (rank, e) in unit.top.iter().enumerate() {
                wanted
                    .entry(e.image.as_str())
                    .or_default()
                    .push((li, unit.channel, rank));
            }
        }
    }
    let ids: Vec<ValueId> = index
        .layers
        .iter()
        .map(|l| model.engine().resolve(&l.value))
        .collect::<std::result::Result<_, _>>()?;
    progress.start(wanted.len() as u64, "overlays");
    for (done, (image, units)) in wanted.iter().enumerate() {
        let input = model.input(images.join(image))?;
        let maps = model.engine().run_float(input.tensor(), &ids)?;
        let shown = resize(input.display().pixels(), side, side, ResizeFilter::Bilinear);
        for &(li, channel, rank) in units {
            let layer: &LayerExamples = &index.layers[li];
            let [_, h, w] = layer.shape;
            let map = &maps[li].data()[channel * h * w..(channel + 1) * h * w];
            let best = layer.units[channel].top.first().map_or(1.0, |e| e.score);
            let scale = if best > 0.0 { best } else { 1.0 };
            let norm: Vec<f32> = map.iter().map(|&v| (v / scale).clamp(0.0, 1.0)).collect();
            let up = upsample_bilinear(&norm, h, w, side, side)?;
            let heat = heatmap_rgb(&up, side, side, Colormap::Jet)?;
            let over = superimpose(&shown, &heat, 0.4)?;
            sink.put(
                &overlay_name(&layer.name, channel, rank),
                &crate::picture::Picture::new(over).png_bytes()?,
            )?;
        }
        progress.set(done as u64 + 1);
    }
    progress.finish();
    Ok(())
}

fn nav(title: &str, index: &ExamplesIndex, li: Option<usize>) -> Markup {
    html! {
        p.caption {
            a href="index.html" { (title) }
            @if let Some(li) = li {
                " › " a href=(layer_page(&index.layers[li].name)) { (index.layers[li].name) }
            }
        }
    }
}

fn index_page(title: &str, index: &ExamplesIndex) -> String {
    let body = html! {
        h1 { (title) }
        p {
            "What every unit of " (index.layers.len()) " layers responds to, from "
            (index.images_used) " images of " code { (index.images) } " (score: the "
            (format!("{:?}", index.score).to_lowercase()) " of the unit's map; input "
            (index.input_size) ")."
        }
        @if !index.skipped.is_empty() {
            p.caption { (index.skipped.len()) " images could not be read and were skipped (see index.json)." }
        }
        table {
            tr { th { "layer" } th { "units" } th { "map" } }
            @for l in &index.layers {
                tr {
                    td { a href=(layer_page(&l.name)) { (l.name) } }
                    td { (l.shape[0]) }
                    td { (l.shape[2]) "×" (l.shape[1]) }
                }
            }
        }
    };
    page(title, body)
}

/// `pictures`: how the units' pictures were made, when the layer has them.
fn layer_page_html(
    title: &str,
    index: &ExamplesIndex,
    li: usize,
    pictures: Option<&str>,
) -> String {
    let layer = &index.layers[li];
    let prev = li.checked_sub(1).map(|i| &index.layers[i].name);
    let next = index.layers.get(li + 1).map(|l| &l.name);
    let body = html! {
        (nav(title, index, None))
        h1 { (layer.name) " " small { (layer.shape[0]) " units" } }
        p.caption {
            "Each tile: " @if pictures.is_some() { "what the unit wants, then " }
            "the part of the image that excites it most. Click a unit for its page."
            @if let Some(method) = pictures { " The pictures: " (method) "." }
        }
        p {
            @if let Some(p) = prev { a href=(layer_page(p)) { "← " (p) } " " }
            @if let Some(n) = next { a href=(layer_page(n)) { (n) " →" } }
        }
        div style="display:flex;flex-wrap:wrap;gap:6px" {
            @for unit in &layer.units {
                a href=(unit_page(&layer.name, unit.channel)) style="display:block;text-align:center;font-size:.8em" {
                    @if pictures.is_some() {
                        img src=(picture_name(&layer.name, unit.channel)) alt="wants" width="64" height="64";
                    }
                    @if !unit.top.is_empty() {
                        img src=(crop_name(&layer.name, unit.channel, "top", 0)) alt="top example" width="64" height="64";
                    }
                    br; (unit.channel)
                }
            }
        }
    };
    page(&format!("{} · {}", layer.name, title), body)
}

fn unit_page_html(
    title: &str,
    index: &ExamplesIndex,
    li: usize,
    channel: usize,
    pictures: Option<&str>,
) -> String {
    let layer = &index.layers[li];
    let unit = &layer.units[channel];
    let n = layer.units.len();
    let body = html! {
        (nav(title, index, Some(li)))
        h1 { (layer.name) " · unit " (channel) }
        p {
            @if channel > 0 { a href=(unit_page(&layer.name, channel - 1)) { "← unit " (channel - 1) } " " }
            @if channel + 1 < n { a href=(unit_page(&layer.name, channel + 1)) { "unit " (channel + 1) " →" } }
        }
        @if let Some(method) = pictures {
            section {
                h2 { "What it wants" }
                p.caption { "The input pattern that maximises the unit's mean activation, found by " (method) "." }
                img src=(picture_name(&layer.name, channel)) alt="what the unit wants" width="192";
            }
        }
        section {
            h2 { "The images that excite it most" }
            p.caption { "The receptive field of the strongest position, cut from each image, and the unit's activation over the whole image (jet, scaled by the best score)." }
            table {
                tr { th { "#" } th { "field" } th { "activation" } th { "image" } th { "score" } }
                @for (rank, e) in unit.top.iter().enumerate() {
                    tr {
                        td { (rank + 1) }
                        td { img src=(crop_name(&layer.name, channel, "top", rank)) alt="field" height="96"; }
                        td { img src=(overlay_name(&layer.name, channel, rank)) alt="activation" height="96"; }
                        td { (e.image) }
                        td { (format!("{:.4}", e.score)) }
                    }
                }
            }
        }
        section {
            h2 { "The images it likes least" }
            table {
                tr { th { "#" } th { "field" } th { "image" } th { "score" } }
                @for (rank, e) in unit.bottom.iter().enumerate() {
                    tr {
                        td { (rank + 1) }
                        td { img src=(crop_name(&layer.name, channel, "bottom", rank)) alt="field" height="96"; }
                        td { (e.image) }
                        td { (format!("{:.4}", e.score)) }
                    }
                }
            }
        }
    };
    page(&format!("{} unit {channel} · {}", layer.name, title), body)
}
