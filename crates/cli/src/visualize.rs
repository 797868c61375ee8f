//! `convscope visualize`: feature visualization of any objective; `convscope spectrum`: the
//! magnitude spectrum MaCo holds fixed, measured on a folder of pictures.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use convscope::output::{OutputDir, Sink};
use convscope::prelude::*;
use convscope::visualize::spectrum_from_dir;

use crate::args::{finite, open_model, parse_size, with_labels, Bar, RunArgs};

#[derive(Args)]
pub(crate) struct VisualizeArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// What to maximise (repeatable): LAYER:K, LAYER:0..8 (one picture each), LAYER:K@X,Y
    /// (a neuron), LAYER:dir=FILE.npy, LAYER:dir=IMAGE@X,Y, class:K or class:NAME,
    /// invert=IMAGE@LAYER, caricature=IMAGE@LAYER; terms joined by + and -, weighted W*TERM.
    #[arg(long, required = true)]
    pub objective: Vec<String>,
    /// Defaults for everything: walkthrough, lucid, maco.
    #[arg(long, default_value = "lucid")]
    pub recipe: Recipe,
    /// Picture size W or WxH (default: the model's input size; twice that for maco).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<Size>,
    /// Optimisation steps (default: the recipe's: walkthrough 40, lucid 512, maco 256).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Learning rate (default: the recipe's).
    #[arg(long, value_parser = finite)]
    pub lr: Option<f32>,
    /// Seed: the same seed gives the same pictures.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pictures per objective.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Weight of the diversity term between the pictures of one objective (with --batch 2+).
    #[arg(long, default_value_t = 0.0, value_parser = finite)]
    pub diversity: f32,
    /// Measure MaCo's magnitude spectrum on the pictures in this folder instead of using the
    /// shipped one.
    #[arg(long)]
    pub spectrum_from: Option<PathBuf>,
    /// Pictures per network pass (default: from the memory limit, at most 16).
    #[arg(long)]
    pub chunk: Option<usize>,
    /// The model's pixel normalisation: unit, imagenet, caffe, tf, raw (default: unit, or raw
    /// for a Keras model that rescales its input itself).
    #[arg(long)]
    pub preprocess: Option<Preprocess>,
    /// Class names, one per line (for class:NAME and the captions).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Output folder: one PNG per picture, grid.png and index.json.
    #[arg(long, default_value = "convscope-out/visualize")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

pub(crate) fn run(args: VisualizeArgs) -> Result<()> {
    let start = Instant::now();
    let model = with_labels(
        open_model(&args.model, &args.run, |own| {
            crate::args::model_input(own, args.preprocess)
        })?,
        args.labels.as_ref(),
    )?;
    let spectrum = match &args.spectrum_from {
        Some(dir) => Some(Arc::new(spectrum_from_dir(dir, 256)?)),
        None => None,
    };
    let config = VisualizeConfig {
        objectives: args.objective.clone(),
        recipe: args.recipe,
        size: args.size,
        steps: args.steps,
        lr: args.lr,
        seed: args.seed,
        batch: args.batch,
        diversity: args.diversity,
        spectrum,
        chunk: args.chunk,
        ..VisualizeConfig::default()
    };
    let vis = model.visualize_with_progress(&config, &Bar::new())?;
    let mut out = OutputDir::create(&args.out)?;
    vis.write(&mut out)?;
    out.commit()?;
    for (i, p) in vis.pictures.iter().enumerate() {
        eprintln!(
            "{}  {}: {:.3} (from {:.3})",
            vis.file_name(i),
            p.objective,
            p.value,
            p.curve.first().copied().unwrap_or(p.value)
        );
    }
    eprintln!(
        "{} pictures ({} recipe, {} steps) written to {} in {:.1} s",
        vis.pictures.len(),
        vis.recipe.name(),
        vis.steps,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct SpectrumArgs {
    /// Folder of pictures (PNG, JPEG, ...) to measure.
    #[arg(long)]
    pub images: PathBuf,
    /// Side of the square each picture is cropped and resized to (even).
    #[arg(long, default_value_t = 256)]
    pub side: usize,
    /// The .npy file to write (3 x side x side/2+1 float32).
    #[arg(long, default_value = "spectrum.npy")]
    pub out: PathBuf,
}

pub(crate) fn run_spectrum(args: SpectrumArgs) -> Result<()> {
    let spectrum = spectrum_from_dir(&args.images, args.side)?;
    let parent = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| anyhow::anyhow!("--out {} has no file name", args.out.display()))?;
    let mut out = OutputDir::beside(&parent)?;
    out.put(&name, &spectrum.to_npy())?;
    out.commit()?;
    eprintln!(
        "spectrum of the pictures in {} ({}x{}) written to {}",
        args.images.display(),
        args.side,
        args.side,
        args.out.display()
    );
    Ok(())
}
