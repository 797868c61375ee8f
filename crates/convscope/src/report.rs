//! Everything on one offline page: the summary, the input and prediction, every layer's
//! activations, the filter patterns of chosen layers and Grad-CAM of the top classes.

use std::time::Instant;

use maud::{html, Markup};

use convscope_methods::target::TargetRef;

use crate::activations::{ActivationsConfig, GridStyle};
use crate::cam::{CamConfig, OverlayStyle};
use crate::error::Result;
use crate::filters::{FilterSet, FiltersConfig, TileStyle};
use crate::input::Input;
use crate::model::Model;
use crate::output::Sink;
use crate::progress::Progress;
use crate::size::Size;
use crate::text::file_stem;
use crate::visualize::{filter_objectives, layer_channels, Recipe, Visualization, VisualizeConfig};

/// Steps per filter picture of a report with the lucid or maco recipe.
pub const REPORT_STEPS: usize = 128;

/// What a report contains.
#[derive(Clone, Debug)]
pub struct ReportConfig {
    /// Page title (default: `convscope report: <model>`).
    pub title: Option<String>,
    /// A paragraph under the title (default: what was run on what).
    pub intro: Option<String>,
    /// Layers whose filters to show (default: the first, a middle and the last convolution).
    pub filter_layers: Option<Vec<String>>,
    /// Filters per layer, the first N (`None`: all).
    pub filters: Option<usize>,
    /// Size of the filter patterns (the network sees them at this size).
    pub filter_size: usize,
    /// How the filter patterns are made: Lucid's recipe by default, the walk-through's gradient
    /// ascent one option away.
    pub recipe: Recipe,
    /// Optimisation steps per filter (default 128: Lucid's pictures settle well before its
    /// own 512 at the report's small size; the walk-through's method takes 40).
    pub steps: usize,
    /// Grad-CAM targets; empty means the `top` most probable classes.
    pub targets: Vec<TargetRef>,
    /// How many top classes get a Grad-CAM map when `targets` is empty.
    pub top: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            title: None,
            intro: None,
            filter_layers: None,
            filters: Some(16),
            filter_size: 96,
            recipe: Recipe::Lucid,
            steps: REPORT_STEPS,
            targets: Vec::new(),
            top: 3,
        }
    }
}

/// The first, a middle and the last convolution layers.
pub fn default_filter_layers(model: &Model) -> Vec<String> {
    let convs: Vec<&str> = model
        .layers()
        .iter()
        .filter(|l| l.ops.starts_with("Conv"))
        .map(|l| l.name.as_str())
        .collect();
    let mut picks: Vec<&str> = match convs.len() {
        0 => vec![],
        1..=3 => convs.clone(),
        n => vec![convs[0], convs[n / 2], convs[n - 1]],
    };
    picks.dedup();
    picks.into_iter().map(String::from).collect()
}

/// Computes a report for `input` and writes its pictures and `index.html` into `sink`.
///
/// ```
/// use convscope::prelude::*;
/// use convscope::output::Files;
/// use convscope::report::{write_report, ReportConfig};
///
/// let model = Model::demo()?;
/// let scene = convscope::demo_scene().image;
/// let input = model.input(&scene)?;
/// let cfg = ReportConfig { filters: Some(2), filter_size: 32, steps: 3, top: 1, ..ReportConfig::default() };
/// let mut files = Files::default();
/// write_report(&model, &input, &cfg, &mut files, &NoProgress)?;
/// let html = String::from_utf8(files.get("index.html").unwrap().to_vec()).unwrap();
/// assert!(html.contains("Grad-CAM"));
/// # Ok::<(), convscope::Error>(())
/// ```
pub fn write_report(
    model: &Model,
    input: &Input,
    config: &ReportConfig,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<()> {
    let start = Instant::now();
    let title = config
        .title
        .clone()
        .unwrap_or_else(|| format!("convscope report: {}", model.source()));
    let intro = config.intro.clone().unwrap_or_else(|| {
        format!(
            "What the network in {} computes for {} ({} preprocessing).",
            model.source(),
            input.source(),
            model.input_config().preprocess.name()
        )
    });
    let display = input.display().size();

    // 1. The model.
    let summary = model.summary_at(Some(display)).ok();
    let summary_html = html! {
        section {
            h2 { "1. The model" }
            p.caption { "Each layer is a feature-producing step with the bias, normalisation and activation fused after it, as Keras's " code { "model.summary()" } " lists them." }
            table {
                tr { th { "#" } th { "layer" } th { "ops" } th { "output shape" } th { "parameters" } }
                @if let Some(s) = &summary {
                    @for l in &s.layers {
                        tr { td { (l.index) } td { (l.name) } td { (l.ops) } td { (format!("{:?}", l.shape)) } td { (l.params) } }
                    }
                }
            }
            @if let Some(s) = &summary {
                p { "Total parameters: " (convscope_engine::group_digits(s.total_params)) ". Input " code { (s.input.name) } ", shape " (format!("{:?}", s.input.shape)) "." }
            } @else {
                p { "(the classifier part needs the model's declared input size)" }
            }
        }
    };

    // 2. The input and the prediction.
    sink.put("input.png", &input.display().to_picture().png_bytes()?)?;
    let cam_config = CamConfig {
        targets: config.targets.clone(),
        top: config.top,
        ..CamConfig::default()
    };
    let cams = model.cam(input, &cam_config);
    let input_html = html! {
        section {
            h2 { "2. The input and the prediction" }
            p.caption { "The image as the model sees it, after resizing and preprocessing." }
            img src="input.png" alt="input" style="width:320px";
            @if let Ok(set) = &cams {
                table {
                    tr { th { "class" } th { "probability" } }
                    @for (c, label, p) in &set.top {
                        tr { td { (label) " (" (c) ")" } td { (format!("{p:.4}")) } }
                    }
                }
            }
        }
    };

    // 3. Activations.
    let acts = model.activations(input, &ActivationsConfig::default())?;
    let style = GridStyle {
        per_row: 16,
        cell: 32,
        ..GridStyle::default()
    };
    progress.start(acts.layers().len() as u64, "activations");
    let mut act_sections: Vec<Markup> = Vec::new();
    for i in 0..acts.layers().len() {
        let files = acts.write_layer(sink, "act_", i, &style)?;
        act_sections.push(crate::html::layer_section(&acts, i, &files, true));
        progress.set(i as u64 + 1);
    }
    progress.finish();
    let acts_html = html! {
        section {
            h2 { "3. Intermediate activations" }
            p.caption { "Every channel of every layer with a spatial feature map, each standardised ((x−mean)/std·64+128) and coloured with viridis. Early layers keep most of the picture (edges, colours); deeper layers are more abstract and sparser: blank channels are filters that found nothing here." }
            @for s in &act_sections { (s) }
        }
    };

    // 4. Filters.
    let layers = config
        .filter_layers
        .clone()
        .unwrap_or_else(|| default_filter_layers(model));
    let mut filter_sections: Vec<Markup> = Vec::new();
    for name in &layers {
        let Ok(target) = model.select_one(name) else {
            continue;
        };
        let set = config
            .filters
            .map_or(FilterSet::All, |n| FilterSet::First(n.max(1)));
        let size = Size::square(config.filter_size.max(16));
        // Layers without a spatial map have no filter patterns; the report skips them.
        let section = match config.recipe {
            Recipe::Walkthrough => {
                let cfg = FiltersConfig {
                    filters: set,
                    steps: config.steps,
                    size,
                    preprocess: model.input_config().preprocess,
                    ..FiltersConfig::default()
                };
                model
                    .filters_with_progress(&target.label, &cfg, progress)
                    .map(|grid| FilterPictures::Walkthrough(Box::new(grid)))
            }
            // The layer is probed once, for its objectives and its section's caption.
            recipe => layer_channels(model, &target.label).and_then(|(layer, channels)| {
                let cfg = VisualizeConfig {
                    objectives: filter_objectives(&layer, channels, &set)?,
                    recipe,
                    steps: Some(config.steps),
                    size: Some(size),
                    view: Some(size),
                    ..VisualizeConfig::default()
                };
                let vis = model.visualize_with_progress(&cfg, progress)?;
                Ok(FilterPictures::Recipe {
                    layer,
                    channels,
                    vis: Box::new(vis),
                })
            }),
        };
        if let Ok(pictures) = section {
            filter_sections.push(filter_section(sink, &pictures)?);
        }
    }
    let method = match config.recipe {
        Recipe::Walkthrough => format!("{} steps of gradient ascent from grey noise that maximises the filter's mean activation (the walk-through's method)", config.steps),
        Recipe::Lucid => format!("{} steps of Lucid's recipe (a decorrelated 1/f Fourier image under random jitter, scaling and rotation, Adam) that maximise the filter's mean activation", config.steps),
        Recipe::Maco => format!("{} steps of MaCo's recipe (only the phase of a natural-image spectrum is optimised, over random crops) that maximise the filter's mean activation", config.steps),
    };
    let filters_html = html! {
        section {
            h2 { "4. What the filters respond to" }
            p.caption { "For each filter, the input pattern found by " (method) ", tiled in filter order. Dark or grey tiles are filters that never woke up." }
            @for s in &filter_sections { (s) }
        }
    };

    // 5. Grad-CAM.
    let mut figures: Vec<Markup> = Vec::new();
    if let Ok(set) = &cams {
        for map in &set.maps {
            let file = format!(
                "gradcam_{}_{}.png",
                file_stem(map.target()),
                file_stem(map.label())
            );
            sink.put(
                &file,
                &map.overlay_with(input.display(), &OverlayStyle::default())?
                    .png_bytes()?,
            )?;
            figures.push(html! {
                figure style="display:inline-block;margin:0 1em 1em 0" {
                    img src=(file) alt="Grad-CAM" style="width:256px";
                    figcaption {
                        (map.label()) " (p " (format!("{:.3}", map.probability().unwrap_or(0.0))) ")"
                        @if map.all_zero() { ": no positive evidence" }
                    }
                }
            });
        }
    }
    let cam_html = html! {
        section {
            h2 { "5. Where the evidence for each class is (Grad-CAM)" }
            @match &cams {
                Ok(set) => {
                    p.caption { "Grad-CAM at layer " code { (set.layer) } ": each channel weighted by the mean gradient of the class score, summed, ReLU, scaled to 0..1, upsampled and laid over the input (jet: red = strong evidence)." }
                    div { @for f in &figures { (f) } }
                }
                Err(e) => { p { "No class activation maps: " (e) } }
            }
        }
    };

    let body = html! {
        h1 { (title) }
        p { (intro) }
        (summary_html)
        (input_html)
        (acts_html)
        (filters_html)
        (cam_html)
        p.caption { "Generated by convscope " (env!("CARGO_PKG_VERSION")) " in " (format!("{:.1}", start.elapsed().as_secs_f64())) " s." }
    };
    sink.put("index.html", crate::html::page(&title, body).as_bytes())?;
    Ok(())
}

/// The filter pictures of one layer, by either method.
enum FilterPictures {
    Walkthrough(Box<crate::filters::FilterGrid>),
    Recipe {
        layer: String,
        channels: usize,
        vis: Box<Visualization>,
    },
}

fn filter_section(sink: &mut dyn Sink, pictures: &FilterPictures) -> Result<Markup> {
    let style = TileStyle {
        margin: 3,
        ..TileStyle::default()
    };
    let (layer, picture, n, channels, rising) = match pictures {
        FilterPictures::Walkthrough(grid) => (
            grid.layer.clone(),
            grid.picture(&style)?,
            grid.patterns.len(),
            grid.channels,
            grid.rising(),
        ),
        FilterPictures::Recipe {
            layer,
            channels,
            vis,
        } => {
            let rising = vis
                .pictures
                .iter()
                .filter(|p| p.curve.first().is_some_and(|&first| p.value > first))
                .count();
            (
                layer.clone(),
                vis.grid(&style)?,
                vis.pictures.len(),
                *channels,
                rising,
            )
        }
    };
    let file = format!("filters_{}.png", file_stem(&layer));
    sink.put(&file, &picture.png_bytes()?)?;
    Ok(html! {
        h3 { (layer) " " small { (n) " of " (channels) " filters" } }
        p.caption { "objective rose for " (rising) " of " (n) }
        img src=(file) alt=(format!("filters of {}", layer));
    })
}
