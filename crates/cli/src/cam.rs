//! `convscope cam` and `convscope saliency`: where in the image the evidence for a class is.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use convscope_engine::Model;
use convscope_image::{heatmap_rgb, superimpose, upsample_bilinear, Colormap, RgbImageF32};
use convscope_methods::cam::{method_names, run_cams, CamConfig, CamRun};
use convscope_methods::input::{prepare_input, PreparedInput};
use convscope_methods::saliency::{compute_saliency, saliency_method_names, SaliencyConfig};
use serde_json::json;

use crate::common::{file_stem, InputArgs, Staged};

#[derive(Args)]
pub(crate) struct CamArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// An image or a preprocessed .npy tensor.
    pub input: PathBuf,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Target classes: indices or label names (comma-separated). Default: the top --top classes.
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
    /// Method: gradcam, gradcam++, xgradcam, layercam, hirescam, eigencam, scorecam, ablationcam.
    #[arg(long, default_value = "gradcam")]
    pub method: String,
    /// Heatmap weight in the overlay (heatmap·alpha + image, rescaled).
    #[arg(long, default_value_t = 0.4)]
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
}

/// Reads a label file: one name per line.
pub(crate) fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read labels {}", path.display()))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// Resolves `--class` items (indices or label names).
fn parse_classes(spec: &str, labels: Option<&[String]>) -> Result<Vec<usize>> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if let Ok(i) = item.parse::<usize>() {
                return Ok(i);
            }
            let Some(labels) = labels else {
                bail!("'{item}' is not a class index (pass --labels FILE to use class names)")
            };
            if let Some(i) = labels.iter().position(|l| l.eq_ignore_ascii_case(item)) {
                return Ok(i);
            }
            let close = convscope_engine::closest(item, labels.iter().map(String::as_str), 5);
            bail!("no class named '{item}'; closest: {}", close.join(", "))
        })
        .collect()
}

fn label_of(labels: Option<&[String]>, c: usize) -> String {
    labels
        .and_then(|l| l.get(c))
        .cloned()
        .unwrap_or_else(|| format!("class {c}"))
}

/// The picture the map is laid over: the original image, or the crop the model saw.
fn backdrop(prepared: &PreparedInput, cropped: bool) -> &RgbImageF32 {
    if cropped {
        &prepared.display
    } else {
        &prepared.original
    }
}

/// Upsamples a map already scaled to 0..1 to `img`'s size and colours it.
fn heat_for(
    map01: &[f32],
    h: usize,
    w: usize,
    img: &RgbImageF32,
    colormap: Colormap,
) -> Result<convscope_image::RgbImage> {
    let up = upsample_bilinear(map01, h, w, img.height, img.width)?;
    Ok(heatmap_rgb(&up, img.height, img.width, colormap)?)
}

pub(crate) fn print_predictions(run: &CamRun, labels: Option<&[String]>) {
    println!("top predictions:");
    for (c, p) in run.prediction.top(5.min(run.prediction.classes())) {
        println!("  {c:>5}  {:<30} {p:.4}", label_of(labels, c));
    }
}

pub(crate) fn run(args: CamArgs) -> Result<()> {
    let start = Instant::now();
    let model = crate::load(&args.model)?;
    let labels = args.labels.as_deref().map(read_labels).transpose()?;
    let prepared = prepare_input(&model, &args.input, &args.input_args.config())?;
    let targets = match &args.class {
        Some(spec) => parse_classes(spec, labels.as_deref())?,
        None => Vec::new(),
    };
    if !method_names().contains(&args.method.as_str()) {
        bail!(
            "unknown method '{}'; methods: {}",
            args.method,
            method_names().join(", ")
        );
    }
    let cfg = CamConfig {
        method: args.method.clone(),
        layer: (args.layer != "auto").then(|| args.layer.clone()),
        targets,
        top: args.top.max(1),
        ..CamConfig::default()
    };
    // Open the output folder before the work, so an unwritable folder fails fast.
    let mut out = Staged::new(&args.out)?;
    let run = run_cams(&model, &prepared.tensor, &cfg)?;
    print_predictions(&run, labels.as_deref());
    println!(
        "layer: {}{}",
        run.layer_label,
        if args.layer == "auto" {
            " (chosen automatically: last spatial feature map)"
        } else {
            ""
        }
    );
    let img = backdrop(&prepared, args.input_args.crop);
    let mut entries = Vec::new();
    for cam in &run.cams {
        let label = label_of(labels.as_deref(), cam.target);
        let stem = format!(
            "{}_{}_{}",
            args.method.replace('+', "p"),
            cam.target,
            file_stem(&label)
        );
        if cam.all_zero {
            eprintln!("note: the {} map for {label} is zero everywhere: no positive evidence at this layer", args.method);
        }
        let (ih, iw) = (prepared.display.height, prepared.display.width);
        let norm = cam.normalized(ih, iw);
        let heat_small = heatmap_rgb(&norm, ih, iw, args.colormap)?;
        let peak01 = cam.normalized(cam.height, cam.width);
        let heat_full = heat_for(&peak01, cam.height, cam.width, img, args.colormap)?;
        let over = superimpose(img, &heat_full, args.alpha)?;
        let mut files = vec![format!("{stem}_heatmap.png"), format!("{stem}_overlay.png")];
        out.write_png(&files[0], &heat_small)?;
        out.write_png(&files[1], &over)?;
        if args.npy {
            files.push(format!("{stem}_raw.npy"));
            out.write_npy(&files[2], &[cam.height, cam.width], &cam.raw)?;
            files.push(format!("{stem}_normalized.npy"));
            out.write_npy(&files[3], &[ih, iw], &norm)?;
        }
        let p = run.prediction.probs.get(cam.target).copied().unwrap_or(0.0);
        println!(
            "{:>5}  {label:<30} score {:.4}  p {p:.4}  peak {:?} of {}x{}  -> {}",
            cam.target,
            cam.score,
            cam.peak(),
            cam.height,
            cam.width,
            files[1]
        );
        entries.push(json!({
            "class": cam.target, "label": label, "score": cam.score, "probability": p,
            "all_zero": cam.all_zero, "peak": [cam.peak().0, cam.peak().1], "files": files,
        }));
    }
    let index = json!({
        "model": args.model.display().to_string(), "input": args.input.display().to_string(),
        "method": run.method, "layer": run.layer_label, "layer_value": model.value_name(run.layer),
        "layer_shape": [run.cams.first().map_or(0, |c| c.height), run.cams.first().map_or(0, |c| c.width)],
        "score_is_logit": run.classifier.score_is_logit(),
        "top": run.prediction.top(5.min(run.prediction.classes())).iter().map(|(c, p)| json!({"class": c, "label": label_of(labels.as_deref(), *c), "probability": p})).collect::<Vec<_>>(),
        "targets": entries,
    });
    out.write(
        "index.json",
        serde_json::to_string_pretty(&index)?.as_bytes(),
    )?;
    let dir = out.commit()?;
    eprintln!(
        "wrote {} map(s) to {} in {:.2} s",
        run.cams.len(),
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
    /// Methods (comma-separated or `all`): gradient, smoothgrad, integrated-gradients,
    /// guided-backprop, guided-gradcam.
    #[arg(long, default_value = "gradient")]
    pub method: String,
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
    #[arg(long, default_value_t = 0.15)]
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
}

pub(crate) fn run_saliency(args: SaliencyArgs) -> Result<()> {
    let start = Instant::now();
    let model: Model = crate::load(&args.model)?;
    let labels = args.labels.as_deref().map(read_labels).transpose()?;
    let prepared = prepare_input(&model, &args.input, &args.input_args.config())?;
    let names: Vec<&str> = if args.method == "all" {
        saliency_method_names().to_vec()
    } else {
        args.method
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(bad) = names.iter().find(|n| !saliency_method_names().contains(n)) {
        bail!(
            "unknown saliency method '{bad}'; methods: {}",
            saliency_method_names().join(", ")
        );
    }
    let cfg = SaliencyConfig {
        target: args.class,
        samples: args.samples,
        noise: args.noise,
        steps: args.steps,
        seed: args.seed,
        layer: args
            .layer
            .as_deref()
            .map(|l| model.resolve(l))
            .transpose()?,
        ..SaliencyConfig::default()
    };
    let mut out = Staged::new(&args.out)?;
    out.write_png("input.png", &prepared.display.to_rgb8())?;
    let mut entries = Vec::new();
    for name in names {
        let s = compute_saliency(&model, &prepared.tensor, name, &cfg)?;
        let label = label_of(labels.as_deref(), s.target);
        let img = heatmap_rgb(&s.normalized(), s.height, s.width, args.colormap)?;
        let mut files = vec![format!("{name}_{}.png", s.target)];
        out.write_png(&files[0], &img)?;
        if args.npy {
            files.push(format!("{name}_{}.npy", s.target));
            out.write_npy(&files[1], s.raw.shape(), s.raw.data())?;
        }
        let extra = s
            .completeness
            .map(|c| {
                format!(
                    "  completeness: Σattr {:.4} vs Δscore {:.4}",
                    c.attribution_sum, c.score_difference
                )
            })
            .unwrap_or_default();
        println!(
            "{name:<22} class {} ({label}) score {:.4} -> {}{extra}",
            s.target, s.score, files[0]
        );
        entries.push(json!({"method": name, "class": s.target, "label": label, "score": s.score, "files": files,
            "completeness": s.completeness.map(|c| json!({"attribution_sum": c.attribution_sum, "score_difference": c.score_difference}))}));
    }
    let index = json!({"model": args.model.display().to_string(), "input": args.input.display().to_string(), "maps": entries});
    out.write(
        "index.json",
        serde_json::to_string_pretty(&index)?.as_bytes(),
    )?;
    let dir = out.commit()?;
    eprintln!(
        "wrote {} to {} in {:.2} s",
        entries.len(),
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
