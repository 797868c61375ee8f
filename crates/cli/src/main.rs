//! `convscope`: see what a trained convolutional network has learned.
//!
//! Argument parsing over the `convscope` library: every command loads a [`convscope::Model`],
//! asks it for one finished result and writes that into an output folder that appears all at
//! once.

mod activations;
mod alloc;
mod args;
mod bench;
mod cam;
mod examples;
mod filters;
mod report;
mod serve;
mod signals;
mod visualize;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Large tensors are reused between passes instead of being returned to the kernel; live
/// memory has a ceiling and running out of memory ends in one error line, not an abort.
#[global_allocator]
static ALLOC: alloc::GuardedAlloc = alloc::GuardedAlloc;

#[derive(Parser)]
#[command(
    name = "convscope",
    version,
    about = "See what a trained convolutional network has learned."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a Keras-style summary of a model: layers, ops, output shapes, parameters (a Keras
    /// file also gets the rows Keras's own model.summary() prints).
    Summary {
        /// The ONNX or Keras (.keras, .h5) model file.
        model: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Input size WxH for models that do not declare one (default: declared, else 224x224).
        #[arg(long, value_parser = args::parse_size)]
        size: Option<convscope::Size>,
        #[command(flatten)]
        run: args::RunArgs,
    },
    /// Show every channel of every layer for one input image, as grids, statistics and .npy.
    Activations(activations::ActivationsArgs),
    /// Show the input pattern each filter of a layer responds to (gradient ascent in input space).
    Filters(filters::FiltersArgs),
    /// Feature visualization of any objective (Lucid, MaCo or the walk-through's recipe):
    /// channels, neurons, directions, classes, inversions, with diversity.
    Visualize(visualize::VisualizeArgs),
    /// Measure the magnitude spectrum MaCo holds fixed on a folder of pictures (.npy).
    Spectrum(visualize::SpectrumArgs),
    /// Class activation maps (Grad-CAM and its family): where the evidence for a class is.
    Cam(cam::CamArgs),
    /// Saliency maps: gradients, SmoothGrad, Integrated Gradients, guided backpropagation.
    Saliency(cam::SaliencyArgs),
    /// Run everything on the embedded demo model and scene; write one HTML report.
    Demo(report::DemoArgs),
    /// Summary, activations, filters and Grad-CAM of any model and image on one HTML page.
    Report(report::ReportArgs),
    /// The images of a folder that excite each unit most and least (resumable, shardable).
    Examples(examples::ExamplesArgs),
    /// Combine the results of `examples --shard I/N` runs into one.
    Merge(examples::MergeArgs),
    /// A static, offline site with a page per layer and per unit: what it wants and the real
    /// images that excite it.
    Atlas(examples::AtlasArgs),
    /// Measure engine speed on a model (median ms and GFLOP/s).
    Bench(bench::BenchArgs),
    /// Explore a model in the browser: layers, channels, filter patterns, predictions, Grad-CAM.
    Serve(serve::ServeArgs),
}

fn summary(
    model: PathBuf,
    json: bool,
    size: Option<convscope::Size>,
    run: args::RunArgs,
) -> Result<()> {
    let m = args::open_model(&model, &run, |own| convscope::InputConfig {
        size,
        ..own.clone()
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&m.summary()?)?);
    } else {
        println!("{}", m.summary_text()?);
    }
    Ok(())
}

/// The error and its causes on one line, each message once (an error that prints its source
/// in its own message is not followed by that source again).
fn error_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line, as for every other error: clap's first line, plus the valid values and
            // a close match when it lists them on further lines (its usage hints are dropped).
            let text = e.render().to_string();
            let mut line = text
                .lines()
                .next()
                .unwrap_or("error: invalid arguments")
                .to_string();
            for extra in text.lines().skip(1).map(str::trim) {
                if extra.starts_with("[possible values:") || extra.starts_with("tip: a similar") {
                    line.push(' ');
                    line.push_str(extra);
                }
            }
            eprintln!("{line}");
            return ExitCode::from(2);
        }
    };
    signals::install();
    // CONVSCOPE_ISA=avx512|avx2|portable narrows the kernels' instruction set (read once by the
    // engine); a name this CPU cannot run, or no name at all, stops here instead of running on
    // another path than the one asked for.
    if let Err(e) = convscope::lower::engine::Isa::requested() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // CONVSCOPE_PROFILE=1 prints where the engine spent its time, per op and direction;
    // CONVSCOPE_PROFILE=nodes per node (also for `bench --profile`).
    let profile_env = std::env::var_os("CONVSCOPE_PROFILE");
    let profile = profile_env
        .as_ref()
        .is_some_and(|v| v == "1" || v == "nodes");
    convscope::lower::engine::set_profiling(profile);
    convscope::lower::engine::set_profiling_per_node(profile_env.is_some_and(|v| v == "nodes"));
    let result = match cli.command {
        Command::Summary {
            model,
            json,
            size,
            run,
        } => summary(model, json, size, run),
        Command::Activations(args) => activations::run(args),
        Command::Filters(args) => filters::run(args),
        Command::Visualize(args) => visualize::run(args),
        Command::Spectrum(args) => visualize::run_spectrum(args),
        Command::Cam(args) => cam::run(args),
        Command::Saliency(args) => cam::run_saliency(args),
        Command::Demo(args) => report::run_demo(args),
        Command::Report(args) => report::run_report(args),
        Command::Examples(args) => examples::run(args),
        Command::Merge(args) => examples::run_merge(args),
        Command::Atlas(args) => examples::run_atlas(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    };
    if profile {
        for (op, total, calls) in convscope::lower::engine::take_profile() {
            eprintln!(
                "profile: {op:<28} {:>9.1} ms  {calls:>6} calls",
                total.as_secs_f64() * 1e3
            );
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(2)
        }
    }
}
