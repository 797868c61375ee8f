//! `convscope activations`: every channel of every layer for one input.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use convscope::output::OutputDir;
use convscope::prelude::*;

use crate::args::{open_model, Bar, InputArgs, RunArgs};

#[derive(Args)]
pub(crate) struct ActivationsArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// An image (PNG, JPEG, WebP, BMP, TIFF) or a preprocessed .npy tensor in the model's layout.
    pub input: PathBuf,
    /// Layers: names, raw ONNX value names, indices, ranges (0..8), globs (block3_*), all.
    /// Default: every layer with a spatial feature map.
    #[arg(long)]
    pub layers: Option<String>,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Channels per row in the grids.
    #[arg(long, default_value_t = 16)]
    pub per_row: usize,
    /// Minimum size in pixels of each channel in the grids.
    #[arg(long, default_value_t = 48)]
    pub cell: usize,
    /// Colormap: viridis, magma, inferno, jet, gray.
    #[arg(long, default_value = "viridis")]
    pub colormap: Colormap,
    /// Also draw channel K of each layer alone, large, with a colour bar.
    #[arg(long)]
    pub channel: Option<usize>,
    /// Also save each layer's raw values as .npy (in the layer's own layout).
    #[arg(long)]
    pub npy: bool,
    /// Output folder.
    #[arg(long, default_value = "convscope-out/activations")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

pub(crate) fn run(args: ActivationsArgs) -> Result<()> {
    let start = Instant::now();
    let style = GridStyle {
        per_row: args.per_row,
        cell: args.cell,
        colormap: args.colormap,
        channel: args.channel,
        npy: args.npy,
        ..GridStyle::default()
    };
    style.validate()?;
    let model = open_model(&args.model, &args.run, |own| args.input_args.config(own))?;
    let input = model.input(&args.input)?;
    // Open the output folder before the work, so an unwritable folder fails fast.
    let mut out = OutputDir::create(&args.out)?;
    let acts = model.activations(
        &input,
        &ActivationsConfig {
            layers: args.layers.clone(),
        },
    )?;
    acts.check_channel(&style)?;
    model.memory_limit().check(
        acts.render_bytes(&style),
        "drawing the activation grids",
        "use a smaller --cell or --size",
    )?;
    let index = acts.write(&mut out, &style, &Bar::new())?;
    print!("{}", acts.table());
    let dir = out.commit()?;
    eprintln!(
        "wrote {} layers to {} in {:.2} s",
        index.layers.len(),
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
