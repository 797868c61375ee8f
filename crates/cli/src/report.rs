//! `convscope report` and `convscope demo`: everything on one offline HTML page.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use convscope::output::OutputDir;
use convscope::prelude::*;
use convscope::report::{write_report, ReportConfig};

use crate::args::{open_model, with_labels, Bar, InputArgs, RunArgs};

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The input image (or a preprocessed .npy tensor).
    pub input: PathBuf,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Layers whose filters to visualise (default: the first, a middle and the last convolution).
    #[arg(long)]
    pub filter_layers: Option<String>,
    /// Filters per layer (the first N).
    #[arg(long, default_value_t = 16)]
    pub filters: usize,
    /// Size of the filter patterns in pixels.
    #[arg(long, default_value_t = 96)]
    pub filter_size: usize,
    /// How the filter patterns are made: lucid (Lucid's recipe), maco, or walkthrough (the
    /// walk-through's gradient ascent).
    #[arg(long, default_value = "lucid")]
    pub recipe: Recipe,
    /// Optimisation steps per filter (default: 128 for lucid and maco, 40 for walkthrough).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Grad-CAM for the K most probable classes.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Class names, one per line.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "convscope-out/report")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "convscope-out/demo")]
    pub out: PathBuf,
}

pub(crate) fn run_report(args: ReportArgs) -> Result<()> {
    let model = open_model(&args.model, &args.run, |own| args.input_args.config(own))?;
    let model = with_labels(model, args.labels.as_ref())?;
    let input = model.input(&args.input)?;
    if let Some(labels) = model.labels() {
        if let Some(w) = model
            .predict(&input)
            .ok()
            .and_then(|p| labels.check_count(p.classes()))
        {
            eprintln!("warning: {w}");
        }
    }
    let config = ReportConfig {
        filter_layers: args.filter_layers.as_ref().map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        }),
        filters: Some(args.filters.max(1)),
        filter_size: args.filter_size.clamp(16, convscope::MAX_SIDE),
        recipe: args.recipe,
        steps: args
            .steps
            .unwrap_or(match args.recipe {
                Recipe::Walkthrough => 40,
                _ => convscope::report::REPORT_STEPS,
            })
            .max(1),
        top: args.top.max(1),
        ..ReportConfig::default()
    };
    write(&model, &input, &config, &args.out)
}

pub(crate) fn run_demo(args: DemoArgs) -> Result<()> {
    let model = Model::demo()?;
    let scene = convscope::demo_scene();
    let boxes = scene.caption();
    let input = model.input(&scene.image)?.with_source("the demo scene");
    let size = scene.image.size();
    let filter_layers: Vec<String> = model
        .layers()
        .iter()
        .filter(|l| l.ops.starts_with("Conv"))
        .map(|l| l.name.clone())
        .collect();
    let classes = model.labels().map_or(0, Labels::len);
    let config = ReportConfig {
        title: Some("convscope demo".into()),
        intro: Some(format!(
            "A small CNN that convscope trained itself on generated 64×64 pictures of four shapes \
             (circle, square, triangle, stripes), run on a {size} scene holding one shape of each \
             class ({boxes}). Everything below was computed by convscope from the embedded ONNX model."
        )),
        filter_layers: Some(filter_layers),
        // Lucid's pictures cost ~128 passes each: the first 16 filters of each layer keep the
        // demo at seconds (every filter of the four layers took 48 s on 2 loaded cores).
        filters: Some(16),
        filter_size: 64,
        recipe: Recipe::Lucid,
        steps: convscope::report::REPORT_STEPS,
        targets: convscope::lower::methods::target::classes(&(0..classes).collect::<Vec<_>>()),
        top: classes,
    };
    write(&model, &input, &config, &args.out)
}

fn write(model: &Model, input: &Input, config: &ReportConfig, dir: &std::path::Path) -> Result<()> {
    let start = std::time::Instant::now();
    let mut out = OutputDir::create(dir)?;
    write_report(model, input, config, &mut out, &Bar::new())?;
    let dir = out.commit()?;
    eprintln!(
        "report written to {} ({:.1} s)",
        dir.join("index.html").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
