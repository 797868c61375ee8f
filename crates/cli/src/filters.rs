//! `convscope filters`: the input pattern each filter of a layer responds to most.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use convscope::output::{OutputDir, Sink};
use convscope::prelude::*;
use convscope::text::file_stem;
use convscope::{Optimizer, Preprocess};

use crate::args::{finite, model_input, open_model, parse_size, Bar, RunArgs};

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
    /// Filters: 0..64, 3,7,9, all (default: the first 64, the walk-through's 8×8 grid, or all
    /// of a layer with fewer).
    #[arg(long)]
    pub filters: Option<String>,
    /// Gradient-ascent steps (default: 40, or the recipe's: lucid 512, maco 256).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Step size (learning rate with --optimizer adam).
    #[arg(long, default_value_t = 1.0, value_parser = finite)]
    pub step: f32,
    /// Image size in pixels (W or WxH; default 150, or the recipe's).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<Size>,
    /// walkthrough (the default: the options below), or lucid / maco: Lucid's or MaCo's
    /// pictures of the same filters (as `convscope visualize --objective LAYER:FILTERS`; the
    /// walk-through's tuning options are then refused).
    #[arg(long, default_value = "walkthrough")]
    pub recipe: Recipe,
    /// Seed of the starting noise and random transformations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The model's pixel normalisation: unit, imagenet, caffe, tf, raw (default: unit, or raw
    /// for a Keras model that rescales its input itself).
    #[arg(long)]
    pub preprocess: Option<Preprocess>,
    /// Output: a .png path for the grid alone, or a folder for the grid plus one PNG per filter.
    #[arg(long, default_value = "convscope-out/filters")]
    pub out: PathBuf,
    /// Grid columns x rows (default: as square as fits).
    #[arg(long, value_parser = parse_size)]
    pub grid: Option<Size>,
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
    #[arg(long, default_value_t = 0.0, value_parser = finite)]
    pub scale: f32,
    /// Random rotation by up to this many degrees per step.
    #[arg(long, default_value_t = 0.0, value_parser = finite)]
    pub rotate: f32,
    /// Total-variation penalty weight.
    #[arg(long, default_value_t = 0.0, value_parser = finite)]
    pub tv: f32,
    /// L2 penalty weight.
    #[arg(long, default_value_t = 0.0, value_parser = finite)]
    pub l2: f32,
    /// Optimise at several scales, small to large.
    #[arg(long, default_value_t = 1)]
    pub octaves: usize,
    /// Size ratio between octaves.
    #[arg(long, default_value_t = 1.4, value_parser = finite)]
    pub octave_scale: f32,
    /// Filters optimised together per batch (default: from a memory budget).
    #[arg(long)]
    pub chunk: Option<usize>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The folder a file path lives in (`.` for a bare name).
fn parent_of(p: &Path) -> PathBuf {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn name_of(p: &Path, option: &str) -> Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| anyhow!("{option} {} has no file name", p.display()))
}

pub(crate) fn run(args: FiltersArgs) -> Result<()> {
    if args.recipe != Recipe::Walkthrough {
        return run_recipe(args);
    }
    let start = Instant::now();
    let mut config = FiltersConfig {
        filters: filter_set(&args.filters),
        steps: args.steps.unwrap_or(40),
        step: args.step,
        size: args.size.unwrap_or(Size::square(150)),
        seed: args.seed,
        preprocess: args.preprocess.unwrap_or_default(),
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
    config.validate()?;
    let tiles = TileStyle {
        grid: args.grid.map(|g| (g.width, g.height)),
        margin: args.margin,
        labels: args.labels,
    };
    let model = open_model(&args.model, &args.run, |own| {
        model_input(own, args.preprocess)
    })?;
    config.preprocess = model.input_config().preprocess;
    let grid = model.filters_with_progress(&args.layer, &config, &Bar::new())?;
    let picture = grid.picture(&tiles)?;
    let stem = file_stem(&grid.layer);
    let is_png = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    // Stage every file first (images and JSON), then move them all into place, so a failure
    // anywhere leaves nothing behind.
    let (mut sets, written) = if is_png {
        let mut out = OutputDir::beside(parent_of(&args.out))?;
        out.put_picture(&name_of(&args.out, "--out")?, &picture)?;
        (vec![out], args.out.clone())
    } else {
        let mut out = OutputDir::create(&args.out)?;
        out.put_picture(&format!("{stem}_grid.png"), &picture)?;
        for (p, tile) in grid.patterns.iter().zip(grid.tiles()) {
            out.put_picture(&format!("{stem}_filter{:03}.png", p.filter), &tile)?;
        }
        (vec![out], args.out.join(format!("{stem}_grid.png")))
    };
    if let Some(json_path) = &args.json {
        let name = name_of(json_path, "--json")?;
        let folder = parent_of(json_path);
        let curves = grid.curves();
        if folder == parent_of(&written) {
            sets[0].put_json(&name, &curves)?;
        } else {
            let mut j = OutputDir::beside(&folder)?;
            j.put_json(&name, &curves)?;
            sets.push(j);
        }
    }
    OutputDir::commit_all(sets)?;
    eprintln!(
        "{} filters of {}: objective rose for {}, mean final {:.3}; grid {} px written to {} in {:.1} s",
        grid.patterns.len(),
        grid.layer,
        grid.rising(),
        grid.mean_end(),
        picture.size(),
        written.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--filters`: the given selection, or the first 64 filters (all of a smaller layer).
fn filter_set(filters: &Option<String>) -> FilterSet {
    filters
        .clone()
        .map_or(FilterSet::First(64), FilterSet::Spec)
}

/// `--recipe lucid|maco`: the filters' pictures by [`Model::visualize`], written like
/// `convscope visualize` (one PNG each, `grid.png`, `index.json`), or only the grid when `--out`
/// names a `.png`.
fn run_recipe(args: FiltersArgs) -> Result<()> {
    let start = Instant::now();
    let walkthrough_only = [
        (args.step != 1.0, "--step"),
        (args.tv != 0.0 || args.l2 != 0.0, "--tv/--l2"),
        (
            args.jitter != 0 || args.scale != 0.0 || args.rotate != 0.0,
            "--jitter/--scale/--rotate",
        ),
        (args.octaves != 1, "--octaves"),
        (args.json.is_some(), "--json"),
        (!matches!(args.optimizer, OptimizerArg::Sgd), "--optimizer"),
    ];
    if let Some((_, name)) = walkthrough_only.iter().find(|(set, _)| *set) {
        return Err(convscope::Error::Config(format!(
            "{name} tunes the walkthrough recipe; --recipe {} sets its own (see convscope visualize)",
            args.recipe.name()
        ))
        .into());
    }
    let model = open_model(&args.model, &args.run, |own| {
        model_input(own, args.preprocess)
    })?;
    let config = VisualizeConfig {
        recipe: args.recipe,
        size: args.size,
        steps: args.steps,
        seed: args.seed,
        chunk: args.chunk,
        ..VisualizeConfig::filters(&model, &args.layer, &filter_set(&args.filters))?
    };
    let vis = model.visualize_with_progress(&config, &Bar::new())?;
    let tiles = TileStyle {
        grid: args.grid.map(|g| (g.width, g.height)),
        margin: args.margin,
        labels: args.labels,
    };
    let is_png = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        let mut out = OutputDir::beside(parent_of(&args.out))?;
        out.put_picture(&name_of(&args.out, "--out")?, &vis.grid(&tiles)?)?;
        out.commit()?;
    } else {
        let mut out = OutputDir::create(&args.out)?;
        vis.write(&mut out)?;
        out.commit()?;
    }
    eprintln!(
        "{} filters of {} ({} recipe, {} steps) written to {} in {:.1} s",
        vis.pictures.len(),
        args.layer,
        vis.recipe.name(),
        vis.steps,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
