//! `convscope`: see what a trained convolutional network has learned.

mod activations;
mod bench;
mod cam;
mod common;
mod filters;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use convscope_engine::{Layout, Model};

/// Large tensors are reused between passes instead of being returned to the kernel.
#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

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
    /// Print a Keras-style summary of an ONNX model: layers, ops, output shapes, parameters.
    Summary {
        /// The ONNX model file.
        model: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Input size WxH for models that do not declare one (default: declared, else 224x224).
        #[arg(long, value_parser = parse_size)]
        size: Option<(usize, usize)>,
    },
    /// Show every channel of every layer for one input image, as grids, statistics and .npy.
    Activations(activations::ActivationsArgs),
    /// Show the input pattern each filter of a layer responds to (gradient ascent in input space).
    Filters(filters::FiltersArgs),
    /// Class activation maps (Grad-CAM and its family): where the evidence for a class is.
    Cam(cam::CamArgs),
    /// Saliency maps: gradients, SmoothGrad, Integrated Gradients, guided backpropagation.
    Saliency(cam::SaliencyArgs),
    /// Run everything on the embedded demo model and scene; write one HTML report.
    Demo(report::DemoArgs),
    /// Summary, activations, filters and Grad-CAM of any model and image on one HTML page.
    Report(report::ReportArgs),
    /// Measure engine speed on a model (median ms and GFLOP/s).
    Bench(bench::BenchArgs),
}

/// Parses `W`, `WxH`.
pub(crate) fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0 && n <= 16384)
    };
    let (w, h) = match s.split_once(['x', 'X']) {
        Some((w, h)) => (parse(w), parse(h)),
        None => (parse(s), parse(s)),
    };
    match (w, h) {
        (Some(w), Some(h)) => Ok((h, w)),
        _ => Err(format!(
            "'{s}' is not a size; use W or WxH, e.g. 150 or 224x224"
        )),
    }
}

pub(crate) fn load(path: &std::path::Path) -> Result<Model> {
    Model::load(path).with_context(|| format!("cannot load {}", path.display()))
}

fn summary(model: PathBuf, json: bool, size: Option<(usize, usize)>) -> Result<()> {
    let m = load(&model)?;
    let s = m
        .summary(size)
        .context("cannot run the model to get its shapes")?;
    if json {
        let layers: Vec<_> = s
            .layers
            .iter()
            .map(|l| serde_json::json!({"index": l.index, "name": l.name, "ops": l.ops, "value": l.value, "shape": l.shape, "params": l.params}))
            .collect();
        let out = serde_json::json!({
            "input": {"name": s.input, "shape": s.input_shape, "layout": match s.layout { Layout::Nchw => "NCHW", Layout::Nhwc => "NHWC" }, "declared_size": s.declared_size},
            "producer": s.producer, "opset": s.opset, "layers": layers, "total_params": s.total_params,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{s}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line, as for every other error (clap adds usage hints on further lines).
            let text = e.render().to_string();
            eprintln!(
                "{}",
                text.lines().next().unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
    };
    // CONVSCOPE_PROFILE=1 prints where the engine spent its time, per op and direction;
    // CONVSCOPE_PROFILE=nodes per node (also for `bench --profile`).
    let profile_env = std::env::var_os("CONVSCOPE_PROFILE");
    let profile = profile_env
        .as_ref()
        .is_some_and(|v| v == "1" || v == "nodes");
    convscope_engine::set_profiling(profile);
    convscope_engine::set_profiling_per_node(profile_env.is_some_and(|v| v == "nodes"));
    let result = match cli.command {
        Command::Summary { model, json, size } => summary(model, json, size),
        Command::Activations(args) => activations::run(args),
        Command::Filters(args) => filters::run(args),
        Command::Cam(args) => cam::run(args),
        Command::Saliency(args) => cam::run_saliency(args),
        Command::Demo(args) => report::run_demo(args),
        Command::Report(args) => report::run_report(args),
        Command::Bench(args) => bench::run(args),
    };
    if profile {
        for (op, total, calls) in convscope_engine::take_profile() {
            eprintln!(
                "profile: {op:<28} {:>9.1} ms  {calls:>6} calls",
                total.as_secs_f64() * 1e3
            );
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
