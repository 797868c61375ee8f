//! `convscope filters`: the input pattern each filter of a layer responds to most.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use convscope_image::{tile_images, Normalize};
use convscope_methods::filters::{check_layer, visualize_filters, FiltersConfig, Optimizer};
use convscope_methods::select::select_layers;
use serde_json::json;

use crate::common::{file_stem, parse_indices, progress, Staged};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum OptimizerArg {
    /// The walk-through's rule: x += step · g / rms(g).
    Sgd,
    /// Adam with learning rate --step.
    Adam,
}

#[derive(Args)]
pub(crate) struct FiltersArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The layer whose filters to visualise (friendly or raw ONNX name, or index).
    #[arg(long)]
    pub layer: String,
    /// Filters: 0..64, 3,7,9, all.
    #[arg(long, default_value = "0..64")]
    pub filters: String,
    /// Gradient-ascent steps.
    #[arg(long, default_value_t = 40)]
    pub steps: usize,
    /// Step size (learning rate with --optimizer adam).
    #[arg(long, default_value_t = 1.0)]
    pub step: f32,
    /// Image size in pixels (W or WxH).
    #[arg(long, value_parser = crate::parse_size, default_value = "150")]
    pub size: (usize, usize),
    /// Seed of the starting noise and random transformations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The model's pixel normalisation: unit, imagenet, caffe, tf, raw.
    #[arg(long, default_value = "unit")]
    pub preprocess: Normalize,
    /// Output: a .png path for the grid alone, or a folder for the grid plus one PNG per filter.
    #[arg(long, default_value = "convscope-out/filters")]
    pub out: PathBuf,
    /// Grid columns x rows (default: as square as fits).
    #[arg(long, value_parser = crate::parse_size)]
    pub grid: Option<(usize, usize)>,
    /// Pixels between grid cells.
    #[arg(long, default_value_t = 5)]
    pub margin: usize,
    /// Write each filter's index on its cell.
    #[arg(long)]
    pub labels: bool,
    /// Write the objective curve of every filter to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Update rule.
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerArg,
    /// Random shift of up to N pixels per step.
    #[arg(long, default_value_t = 0)]
    pub jitter: usize,
    /// Random scaling by up to this fraction per step (e.g. 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub scale: f32,
    /// Random rotation by up to this many degrees per step.
    #[arg(long, default_value_t = 0.0)]
    pub rotate: f32,
    /// Total-variation penalty weight.
    #[arg(long, default_value_t = 0.0)]
    pub tv: f32,
    /// L2 penalty weight.
    #[arg(long, default_value_t = 0.0)]
    pub l2: f32,
    /// Optimise at several scales, small to large.
    #[arg(long, default_value_t = 1)]
    pub octaves: usize,
    /// Size ratio between octaves.
    #[arg(long, default_value_t = 1.4)]
    pub octave_scale: f32,
    /// Filters optimised together per batch (default: from a memory budget).
    #[arg(long)]
    pub chunk: Option<usize>,
}

pub(crate) fn run(args: FiltersArgs) -> Result<()> {
    let start = Instant::now();
    let model = crate::load(&args.model)?;
    let sel = select_layers(&model, &args.layer)?;
    let [target] = sel.as_slice() else {
        bail!(
            "--layer takes one layer, '{}' selects {}",
            args.layer,
            sel.len()
        )
    };
    let channels = check_layer(
        &model,
        target.value,
        &target.label,
        &[],
        (args.size.0.max(32), args.size.1.max(32)),
    )?;
    let filters = parse_indices(
        &args.filters.replace("all", &format!("0..{channels}")),
        channels,
        "filter",
    )
    .map_err(|e| anyhow::anyhow!("{e} in '{}' ({} filters)", target.label, channels))?;
    let (cols, rows) = match args.grid {
        Some((rows, cols)) => (cols, rows),
        None => {
            let cols = (filters.len() as f64).sqrt().ceil() as usize;
            (cols, filters.len().div_ceil(cols))
        }
    };
    if cols * rows < filters.len() {
        bail!(
            "a {cols}x{rows} grid holds {} filters, {} were asked for",
            cols * rows,
            filters.len()
        );
    }
    let cfg = FiltersConfig {
        filters: filters.clone(),
        steps: args.steps,
        step: args.step,
        size: args.size,
        seed: args.seed,
        normalize: args.preprocess,
        optimizer: match args.optimizer {
            OptimizerArg::Sgd => Optimizer::NormalizedAscent,
            OptimizerArg::Adam => Optimizer::Adam,
        },
        jitter: args.jitter,
        scale: args.scale,
        rotate: args.rotate,
        tv: args.tv,
        l2: args.l2,
        octaves: args.octaves,
        octave_scale: args.octave_scale,
        chunk: args.chunk,
    };
    let bar = progress((filters.len() * args.steps * args.octaves) as u64, "ascent");
    let patterns = visualize_filters(&model, target.value, &cfg, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();

    let cells: Vec<_> = patterns.iter().map(|p| p.image.to_rgb8()).collect();
    let labels: Vec<String> = patterns.iter().map(|p| p.filter.to_string()).collect();
    let grid = tile_images(
        &cells,
        cols,
        rows,
        args.margin,
        [0, 0, 0],
        args.labels.then_some(labels.as_slice()),
    )?;
    let stem = file_stem(&target.label);
    let is_png = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let rising = patterns.iter().filter(|p| p.end() > p.start()).count();
    let mean_end = patterns.iter().map(|p| p.end() as f64).sum::<f64>() / patterns.len() as f64;
    // Stage every file first (images and JSON), then move them all into place, so a failure
    // anywhere leaves nothing behind.
    let parent_of = |p: &std::path::Path| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf()
    };
    let name_of = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().to_string());
    let (mut out, written) = if is_png {
        let mut out = Staged::new(&parent_of(&args.out))?;
        let name = name_of(&args.out)
            .ok_or_else(|| anyhow::anyhow!("--out {} has no file name", args.out.display()))?;
        out.write_png(&name, &grid)?;
        (out, args.out.clone())
    } else {
        let mut out = Staged::new(&args.out)?;
        out.write_png(&format!("{stem}_grid.png"), &grid)?;
        for (p, img) in patterns.iter().zip(&cells) {
            out.write_png(&format!("{stem}_filter{:03}.png", p.filter), img)?;
        }
        (out, args.out.join(format!("{stem}_grid.png")))
    };
    let json_out = match &args.json {
        Some(json_path) => {
            let items: Vec<_> = patterns
                .iter()
                .map(|p| json!({"filter": p.filter, "start": p.start(), "end": p.end(), "curve": p.curve, "rose": p.end() > p.start()}))
                .collect();
            let doc = json!({
                "model": args.model.display().to_string(), "layer": target.label, "value": model.value_name(target.value),
                "size": [args.size.1, args.size.0], "steps": args.steps, "step": args.step, "seed": args.seed,
                "filters": items, "rising": rising, "mean_end": mean_end,
            });
            let name = name_of(json_path).ok_or_else(|| {
                anyhow::anyhow!("--json {} has no file name", json_path.display())
            })?;
            let bytes = serde_json::to_string_pretty(&doc)?;
            if parent_of(json_path) == parent_of(&written) {
                out.write(&name, bytes.as_bytes())?;
                None
            } else {
                let mut j = Staged::new(&parent_of(json_path))?;
                j.write(&name, bytes.as_bytes())?;
                Some(j)
            }
        }
        None => None,
    };
    out.commit()?;
    if let Some(j) = json_out {
        j.commit()?;
    }
    eprintln!(
        "{} filters of {}: objective rose for {rising}, mean final {mean_end:.3}; grid {}x{} px written to {} in {:.1} s",
        patterns.len(),
        target.label,
        grid.width(),
        grid.height(),
        written.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
