//! `convscope activations`: every channel of every layer for one input.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use convscope_image::{channel_grid, channel_large, Colormap, GridConfig, Planar};
use convscope_methods::activations::{compute_activations, default_selection, LayerActivation};
use convscope_methods::input::prepare_input;
use convscope_methods::select::select_layers;
use serde_json::json;

use crate::common::{file_stem, html_escape, progress, InputArgs, Staged, PAGE_STYLE};

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
}

/// What was written for one layer.
pub(crate) struct Written {
    pub files: Vec<String>,
    pub grid: Option<String>,
}

pub(crate) fn run(args: ActivationsArgs) -> Result<()> {
    let start = Instant::now();
    let model = crate::load(&args.model)?;
    let prepared = prepare_input(&model, &args.input, &args.input_args.config())?;
    // Open the output folder before the work, so an unwritable folder fails fast.
    let mut out = Staged::new(&args.out)?;
    let selection = match &args.layers {
        Some(spec) => select_layers(&model, spec)?,
        None => default_selection(&model, &prepared.tensor)?,
    };
    if args.per_row == 0 {
        bail!("--per-row must be at least 1");
    }
    let acts = compute_activations(&model, &prepared.tensor, &selection)?;
    if let Some(k) = args.channel {
        for a in &acts {
            match a.spatial() {
                Some((c, ..)) if k >= c => bail!(
                    "channel {k} is out of range: '{}' has {c} channels (0..{c})",
                    a.selected.label
                ),
                _ => {}
            }
        }
    }
    out.write_png("input.png", &prepared.display.to_rgb8())?;
    let bar = progress(acts.len() as u64, "rendering");
    let mut written = Vec::with_capacity(acts.len());
    for (i, a) in acts.iter().enumerate() {
        written.push(render_layer(&mut out, "", i, a, &args.style())?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    print_table(&acts);
    let index = index_json(&args, &acts, &written, prepared.tensor.shape());
    out.write(
        "index.json",
        serde_json::to_string_pretty(&index)?.as_bytes(),
    )?;
    out.write("index.html", index_html(&args, &acts, &written).as_bytes())?;
    let dir = out.commit()?;
    eprintln!(
        "wrote {} layers to {} in {:.2} s",
        acts.len(),
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How activation grids are drawn.
pub(crate) struct GridStyle {
    pub per_row: usize,
    pub cell: usize,
    pub colormap: Colormap,
    pub channel: Option<usize>,
    pub npy: bool,
}

impl ActivationsArgs {
    fn style(&self) -> GridStyle {
        GridStyle {
            per_row: self.per_row,
            cell: self.cell,
            colormap: self.colormap,
            channel: self.channel,
            npy: self.npy,
        }
    }
}

/// Writes layer `i`'s grid (and optional channel view and .npy) as `<prefix><i>_<name>.*`.
pub(crate) fn render_layer(
    out: &mut Staged,
    prefix: &str,
    i: usize,
    a: &LayerActivation,
    args: &GridStyle,
) -> Result<Written> {
    let stem = format!("{prefix}{i:02}_{}", file_stem(&a.selected.label));
    let mut files = Vec::new();
    let mut grid = None;
    if let Some((c, h, w)) = a.spatial() {
        let planar = Planar::new(c, h, w, a.values.data()[..c * h * w].to_vec())?;
        let cfg = GridConfig {
            per_row: args.per_row,
            cell_min: args.cell,
            colormap: args.colormap,
            title: Some(format!("{}  {c}x{h}x{w}", a.selected.label)),
            ..GridConfig::default()
        };
        let name = format!("{stem}.png");
        out.write_png(&name, &channel_grid(&planar, &cfg)?)?;
        files.push(name.clone());
        grid = Some(name);
        if let Some(k) = args.channel {
            let name = format!("{stem}_ch{k}.png");
            let ch = a.channel(k).expect("checked above");
            out.write_png(&name, &channel_large(ch, h, w, args.colormap, 480)?)?;
            files.push(name);
        }
    }
    if args.npy {
        let name = format!("{stem}.npy");
        out.write_npy(&name, a.values.shape(), a.values.data())?;
        files.push(name);
    }
    Ok(Written { files, grid })
}

fn print_table(acts: &[LayerActivation]) {
    let w = acts
        .iter()
        .map(|a| a.selected.label.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:w$}  {:>20}  {:>10}  {:>10}  {:>7}  {:>9}",
        "layer", "shape", "mean", "std", "zeros", "blank ch"
    );
    for a in acts {
        let s = &a.stats;
        println!(
            "{:w$}  {:>20}  {:>10.4}  {:>10.4}  {:>6.1}%  {:>4}/{:<4}",
            a.selected.label,
            format!("{:?}", a.values.shape()),
            s.mean,
            s.std,
            100.0 * s.zero_fraction,
            s.blank_channels,
            s.channels
        );
    }
}

fn index_json(
    args: &ActivationsArgs,
    acts: &[LayerActivation],
    written: &[Written],
    input_shape: &[usize],
) -> serde_json::Value {
    let layers: Vec<_> = acts
        .iter()
        .zip(written)
        .map(|(a, w)| {
            let s = &a.stats;
            json!({
                "name": a.selected.label,
                "layer": a.selected.layer.as_ref().map(|l| &l.name),
                "value": a.value_name,
                "op": a.selected.layer.as_ref().map(|l| l.ops.clone()).unwrap_or_default(),
                "shape": a.values.shape(),
                "files": w.files,
                "stats": {"mean": s.mean, "std": s.std, "min": s.min, "max": s.max, "zero_fraction": s.zero_fraction,
                          "blank_channels": s.blank_channels, "channels": s.channels},
            })
        })
        .collect();
    json!({
        "model": args.model.display().to_string(),
        "input": args.input.display().to_string(),
        "input_shape": input_shape,
        "preprocess": args.input_args.normalize().name(),
        "input_image": "input.png",
        "layers": layers,
    })
}

fn index_html(args: &ActivationsArgs, acts: &[LayerActivation], written: &[Written]) -> String {
    let mut h = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>convscope activations</title><style>{PAGE_STYLE}</style></head><body>\
<h1>Activations of {}</h1><p class=\"caption\">Input {} ({} preprocessing). Each grid shows every channel of one layer, \
each channel standardised ((x−mean)/std·64+128) and coloured with {}. Blank channels are filters that found nothing in this image.</p>\
<section><h2>Input</h2><img src=\"input.png\" alt=\"input\"></section>",
        html_escape(&args.model.display().to_string()),
        html_escape(&args.input.display().to_string()),
        args.input_args.normalize().name(),
        args.colormap.name()
    );
    for (a, w) in acts.iter().zip(written) {
        let s = &a.stats;
        h.push_str(&format!(
            "<section><h2>{} <small>{:?}</small></h2><p class=\"caption\">{} — mean {:.4}, std {:.4}, {:.1}% zeros, {} of {} channels blank</p>",
            html_escape(&a.selected.label),
            a.values.shape(),
            html_escape(&a.value_name),
            s.mean,
            s.std,
            100.0 * s.zero_fraction,
            s.blank_channels,
            s.channels
        ));
        if let Some(g) = &w.grid {
            h.push_str(&format!(
                "<img src=\"{}\" alt=\"{}\">",
                html_escape(g),
                html_escape(&a.selected.label)
            ));
        }
        for f in w.files.iter().filter(|f| Some(*f) != w.grid.as_ref()) {
            if f.ends_with(".png") {
                h.push_str(&format!(
                    "<p><img src=\"{0}\" alt=\"{0}\"></p>",
                    html_escape(f)
                ));
            } else {
                h.push_str(&format!("<p><a href=\"{0}\">{0}</a></p>", html_escape(f)));
            }
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    h
}
