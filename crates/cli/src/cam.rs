//! `convscope cam` and `convscope saliency`: where in the image the evidence for a class is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use convscope::cam::method_names;
use convscope::output::{OutputDir, Sink};
use convscope::prelude::*;
use convscope::saliency::{saliency_method_names, SaliencyIndex};
use convscope::TargetRef;

use crate::args::{finite, open_model, with_labels, InputArgs, RunArgs};

#[derive(Args)]
pub(crate) struct CamArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// An image or a preprocessed .npy tensor.
    pub input: PathBuf,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Targets: class indices or label names, comma-separated; `a+b` sums classes into one
    /// target. Default: the top --top classes.
    #[arg(long = "class")]
    pub class: Option<String>,
    /// Explain the K most probable classes (when --class is not given).
    #[arg(long, default_value_t = 1)]
    pub top: usize,
    /// Class names, one per line in index order.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Layer: `auto` (the last spatial feature map before the classifier) or any layer name.
    #[arg(long, default_value = "auto")]
    pub layer: String,
    /// The class activation map method.
    #[arg(long, default_value = "gradcam", value_parser = cam_methods(), ignore_case = true)]
    pub method: String,
    /// Heatmap weight in the overlay (heatmap·alpha + image, rescaled).
    #[arg(long, default_value_t = 0.4, value_parser = finite)]
    pub alpha: f32,
    /// Heatmap colormap.
    #[arg(long, default_value = "jet")]
    pub colormap: Colormap,
    /// Also save the raw map (layer resolution) and the normalised map (input resolution) as .npy.
    #[arg(long)]
    pub npy: bool,
    /// Output folder.
    #[arg(long, default_value = "convscope-out/cam")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `--method` choices of `cam`, from the methods' registry.
fn cam_methods() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(method_names())
}

/// `--method` choices of `saliency`, from the methods' registry, and `all`.
fn saliency_methods() -> clap::builder::PossibleValuesParser {
    let mut names = saliency_method_names();
    names.push("all");
    clap::builder::PossibleValuesParser::new(names)
}

/// Resolves `--class` items: indices, label names, and `a+b` sums of either.
fn parse_targets(spec: &str, labels: Option<&Labels>) -> Result<Vec<TargetRef>> {
    let class = |item: &str| -> Result<usize> {
        if let Ok(i) = item.parse::<usize>() {
            return Ok(i);
        }
        match labels {
            Some(l) => Ok(l.index_of(item)?),
            None => {
                bail!("'{item}' is not a class index (pass --labels FILE to use class names)")
            }
        }
    };
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| -> Result<TargetRef> {
            let parts: Vec<usize> = item
                .split('+')
                .map(|p| class(p.trim()))
                .collect::<Result<_>>()?;
            Ok(match parts.as_slice() {
                [c] => Arc::new(Class(*c)),
                _ => Arc::new(Classes(parts)),
            })
        })
        .collect()
}

pub(crate) fn run(args: CamArgs) -> Result<()> {
    let start = Instant::now();
    let style = OverlayStyle {
        alpha: args.alpha,
        colormap: args.colormap,
    };
    style.validate()?;
    let method = args.method.to_ascii_lowercase();
    let model = open_model(&args.model, &args.run, |own| args.input_args.config(own))?;
    let model = with_labels(model, args.labels.as_ref())?;
    let input = model.input(&args.input)?;
    let targets = match &args.class {
        Some(spec) => parse_targets(spec, model.labels())?,
        None => Vec::new(),
    };
    let config = CamConfig {
        method,
        layer: (args.layer != "auto").then(|| args.layer.clone()),
        targets,
        top: args.top.max(1),
        ..CamConfig::default()
    };
    // Open the output folder before the work, so an unwritable folder fails fast.
    let mut out = OutputDir::create(&args.out)?;
    let set = model.cam(&input, &config)?;
    if let Some(w) = set.label_warning(model.labels()) {
        eprintln!("warning: {w}");
    }
    if !set.top.is_empty() {
        println!("top predictions:");
        for (c, label, p) in &set.top {
            println!("  {c:>5}  {label:<30} {p:.4}");
        }
    }
    println!(
        "layer: {}{}",
        set.layer,
        if args.layer == "auto" {
            " (chosen automatically: last spatial feature map, or a class-token model's last \
             block's first LayerNorm)"
        } else {
            ""
        }
    );
    if let Some(rule) = &set.map_rule {
        println!("map: {rule}");
    }
    let index = set.write(&mut out, &style, args.npy)?;
    for (map, entry) in set.maps.iter().zip(&index.targets) {
        if map.all_zero() {
            eprintln!(
                "note: the {} map for {} is zero everywhere: no positive evidence at this layer",
                set.method,
                map.label()
            );
        }
        println!(
            "{:>5}  {:<30} score {:.4}  p {:.4}  peak {:?} of {}  -> {}",
            map.target(),
            map.label(),
            map.score(),
            map.probability().unwrap_or(0.0),
            map.peak(),
            map.size(),
            entry.files[1]
        );
    }
    let dir = out.commit()?;
    eprintln!(
        "wrote {} map(s) to {} in {:.2} s",
        set.maps.len(),
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct SaliencyArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// An image or a preprocessed .npy tensor.
    pub input: PathBuf,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Saliency methods, comma-separated, or `all`.
    #[arg(long, default_value = "gradient", value_delimiter = ',', value_parser = saliency_methods(), ignore_case = true)]
    pub method: Vec<String>,
    /// Target class index (default: the most probable class).
    #[arg(long = "class")]
    pub class: Option<usize>,
    /// Class names, one per line.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// SmoothGrad samples.
    #[arg(long, default_value_t = 25)]
    pub samples: usize,
    /// SmoothGrad noise, as a fraction of the input range.
    #[arg(long, default_value_t = 0.15, value_parser = finite)]
    pub noise: f32,
    /// Integrated Gradients steps.
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// Seed of the SmoothGrad noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Layer of the Grad-CAM part of guided-gradcam (default: automatic).
    #[arg(long)]
    pub layer: Option<String>,
    /// Colormap of the maps.
    #[arg(long, default_value = "inferno")]
    pub colormap: Colormap,
    /// Also save the raw attribution (model input layout) as .npy.
    #[arg(long)]
    pub npy: bool,
    /// Output folder.
    #[arg(long, default_value = "convscope-out/saliency")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

pub(crate) fn run_saliency(args: SaliencyArgs) -> Result<()> {
    let start = Instant::now();
    let names: Vec<String> = if args.method.iter().any(|m| m == "all") {
        saliency_method_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.method.iter().map(|m| m.to_ascii_lowercase()).collect()
    };
    let base = SaliencyConfig {
        target: args.class.map(|c| Arc::new(Class(c)) as TargetRef),
        samples: args.samples,
        noise: args.noise,
        steps: args.steps,
        seed: args.seed,
        layer: args.layer.clone(),
        ..SaliencyConfig::default()
    };
    for name in &names {
        SaliencyConfig {
            method: name.clone(),
            ..base.clone()
        }
        .validate()?;
    }
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
    let mut out = OutputDir::create(&args.out)?;
    out.put_picture("input.png", &input.display().to_picture())?;
    let mut maps = Vec::new();
    for name in &names {
        let config = SaliencyConfig {
            method: name.clone(),
            ..base.clone()
        };
        let s = model.saliency(&input, &config)?;
        let stem = s.file_stem();
        let mut files = vec![format!("{stem}.png")];
        out.put_picture(&files[0], &s.picture(args.colormap)?)?;
        if args.npy {
            files.push(format!("{stem}.npy"));
            out.put_npy(&files[1], s.raw().shape(), s.raw().data())?;
        }
        let extra = s
            .completeness()
            .map(|c| {
                format!(
                    "  completeness: Σattr {:.4} vs Δscore {:.4}",
                    c.attribution_sum, c.score_difference
                )
            })
            .unwrap_or_default();
        println!(
            "{name:<22} class {} ({}) score {:.4} -> {}{extra}",
            s.target(),
            s.label(),
            s.score(),
            files[0]
        );
        maps.push(s.index(files));
    }
    let index = SaliencyIndex {
        model: model.source().to_string(),
        input: input.source().to_string(),
        maps,
    };
    out.put_json("index.json", &index)?;
    let dir = out.commit()?;
    eprintln!(
        "wrote {} to {} in {:.2} s",
        index.maps.len(),
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
