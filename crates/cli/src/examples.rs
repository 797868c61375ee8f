//! `convscope examples` and `convscope merge`: the images of a folder that excite each unit
//! most and least, resumable and sharded.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use convscope::examples::{
    merge, write_examples, ExamplesConfig, ExamplesIndex, ExamplesRun, Score, Shard,
};
use convscope::output::OutputDir;

use crate::args::{open_model, Bar, InputArgs, RunArgs};

/// The checkpoint a run keeps in its output folder (a killed run restarted with `--resume`
/// continues from it).
const CHECKPOINT: &str = ".convscope-examples-checkpoint.json";

#[derive(Args)]
pub(crate) struct ExamplesArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The folder of images (searched recursively; PNG, JPEG, WebP, BMP, TIFF).
    #[arg(long)]
    pub images: PathBuf,
    /// Layers: names, indices, ranges, globs (every one a spatial feature map).
    #[arg(long)]
    pub layers: String,
    /// Images kept per channel, most and least exciting.
    #[arg(long, default_value_t = 9)]
    pub top: usize,
    /// Score of a channel on an image: max (strongest position) or mean.
    #[arg(long, default_value = "max")]
    pub score: Score,
    /// Also cut each entry's receptive field out of its image (PNG). (`--crop` is the input
    /// option of every command: resize the shorter side and crop the centre.)
    #[arg(long)]
    pub crops: bool,
    /// Images per pass (shards and resumed runs of one job must use the same value).
    #[arg(long, default_value_t = convscope::examples::DEFAULT_BATCH)]
    pub batch: usize,
    /// Process part I of N of the images (contiguous batches in sorted path order): `--shard
    /// 3/8`. Also read from
    /// JOB_COMPLETION_INDEX (with --shards) or SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Number of shards, with a scheduler's index in the environment.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Continue a killed run from the checkpoint in its output folder.
    #[arg(long)]
    pub resume: bool,
    /// Save the checkpoint at least every this many seconds.
    #[arg(long, default_value_t = 30.0, value_parser = crate::args::finite)]
    pub checkpoint_every: f32,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Output folder (default: convscope-out/examples, or convscope-out/examples-I-of-N for a
    /// shard).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

pub(crate) fn run(args: ExamplesArgs) -> Result<()> {
    let start = Instant::now();
    let env = |k: &str| std::env::var(k).ok();
    let shard = match args.shard {
        Some(s) => s,
        None => Shard::from_env(&env, args.shards)?.unwrap_or_default(),
    };
    let out_dir = args.out.clone().unwrap_or_else(|| {
        if shard.count > 1 {
            PathBuf::from(format!(
                "convscope-out/examples-{}-of-{}",
                shard.index, shard.count
            ))
        } else {
            PathBuf::from("convscope-out/examples")
        }
    });
    let model = open_model(&args.model, &args.run, |own| args.input_args.config(own))?;
    let config = ExamplesConfig {
        layers: args.layers.clone(),
        top: args.top,
        score: args.score,
        crops: args.crops,
        batch: args.batch,
        shard,
        checkpoint_every: std::time::Duration::from_secs_f32(args.checkpoint_every.max(0.0)),
    };
    let mut out = OutputDir::create(&out_dir)?;
    let checkpoint = out_dir.join(CHECKPOINT);
    if !args.resume {
        let _ = std::fs::remove_file(&checkpoint);
    }
    let run = ExamplesRun::new(&model, &args.images, &config, Some(&checkpoint))?;
    if args.resume && run.done() > 0 {
        eprintln!("resuming after {} of {} images", run.done(), run.len());
    }
    let n = run.len();
    let index = run.run(&Bar::new())?;
    for s in &index.skipped {
        eprintln!("skipped {}: {}", s.image, s.reason);
    }
    write_examples(&index, &args.images, args.crops, &mut out, &Bar::new())?;
    let dir = out.commit()?;
    let _ = std::fs::remove_file(&checkpoint);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} of {n} images ({} skipped) over {} layers in {:.1} s ({:.1} images/s){} -> {}",
        index.images_used,
        index.skipped.len(),
        index.layers.len(),
        secs,
        index.images_used as f64 / secs.max(1e-9),
        if shard.count > 1 {
            format!(", shard {}/{}", shard.index, shard.count)
        } else {
            String::new()
        },
        dir.join("index.json").display()
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// Output folder of the merged result.
    pub out: PathBuf,
    /// The shards' output folders (each with its index.json).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Cut the receptive fields from the images (the folder the shards read, or --images).
    #[arg(long)]
    pub crops: bool,
    /// The folder of images, when it moved since the shards ran.
    #[arg(long)]
    pub images: Option<PathBuf>,
}

pub(crate) fn run_merge(args: MergeArgs) -> Result<()> {
    let parts: Vec<ExamplesIndex> = args
        .shards
        .iter()
        .map(|d| {
            let path = d.join("index.json");
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not the index of a convscope examples run",
                    path.display()
                )
            })
        })
        .collect::<Result<_>>()?;
    let merged = merge(&parts)?;
    let images = args
        .images
        .clone()
        .unwrap_or_else(|| PathBuf::from(&merged.images));
    let mut out = OutputDir::create(&args.out)?;
    write_examples(&merged, &images, args.crops, &mut out, &Bar::new())?;
    let dir = out.commit()?;
    eprintln!(
        "merged {} shards: {} images -> {}",
        parts.len(),
        merged.images_used,
        dir.join("index.json").display()
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct AtlasArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The folder of images (searched recursively).
    #[arg(long)]
    pub images: PathBuf,
    /// Layers: names, indices, ranges, globs (every one a spatial feature map).
    #[arg(long)]
    pub layers: String,
    /// Examples kept per unit, most and least exciting.
    #[arg(long, default_value_t = 9)]
    pub top: usize,
    /// Score of a unit on an image: max or mean.
    #[arg(long, default_value = "max")]
    pub score: Score,
    /// Images per pass.
    #[arg(long, default_value_t = convscope::examples::DEFAULT_BATCH)]
    pub batch: usize,
    /// Size of each unit's picture of what it wants.
    #[arg(long, value_parser = crate::args::parse_size, default_value = "96")]
    pub picture_size: convscope::Size,
    /// How those pictures are made: lucid (Lucid's recipe), maco, or walkthrough (the
    /// walk-through's gradient ascent).
    #[arg(long, default_value = "lucid")]
    pub recipe: convscope::Recipe,
    /// Optimisation steps of those pictures (default: 128 for lucid and maco, 40 for
    /// walkthrough).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Leave out the pictures of what each unit wants (only the examples).
    #[arg(long)]
    pub no_pictures: bool,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Output folder of the site.
    #[arg(long, default_value = "convscope-out/atlas")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

pub(crate) fn run_atlas(args: AtlasArgs) -> Result<()> {
    let start = Instant::now();
    let model = open_model(&args.model, &args.run, |own| args.input_args.config(own))?;
    let config = convscope::atlas::AtlasConfig {
        examples: ExamplesConfig {
            layers: args.layers.clone(),
            top: args.top,
            score: args.score,
            crops: true,
            batch: args.batch,
            ..ExamplesConfig::default()
        },
        pictures: (!args.no_pictures).then(|| convscope::atlas::UnitPictures {
            recipe: args.recipe,
            size: args.picture_size,
            steps: args.steps.map(|n| n.max(1)),
            preprocess: None,
        }),
        ..convscope::atlas::AtlasConfig::default()
    };
    let mut out = OutputDir::create(&args.out)?;
    let summary =
        convscope::atlas::write_atlas(&model, &args.images, &config, &mut out, &Bar::new())?;
    let dir = out.commit()?;
    eprintln!(
        "atlas of {} units in {} layers from {} images in {:.1} s -> {}",
        summary.units,
        summary.layers,
        summary.images,
        start.elapsed().as_secs_f64(),
        dir.join("index.html").display()
    );
    Ok(())
}
