//! `convscope report` and `convscope demo`: everything on one offline HTML page.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use convscope_engine::Model;
use convscope_image::{heatmap_rgb, superimpose, tile_images, upsample_bilinear, Colormap};
use convscope_methods::activations::{compute_activations, default_selection};
use convscope_methods::cam::{run_cams, CamConfig};
use convscope_methods::filters::{check_layer, visualize_filters, FiltersConfig};
use convscope_methods::input::{prepare_image, prepare_input, InputConfig, PreparedInput};
use convscope_methods::select::select_layers;

use crate::activations::{render_layer, GridStyle};
use crate::common::{file_stem, html_escape, progress, InputArgs, Staged, PAGE_STYLE};

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// The input image (or a preprocessed .npy tensor).
    pub input: PathBuf,
    #[command(flatten)]
    pub input_args: InputArgs,
    /// Layers whose filters to visualise (default: the first, a middle and the last convolution).
    #[arg(long)]
    pub filter_layers: Option<String>,
    /// Filters per layer (the first N).
    #[arg(long, default_value_t = 16)]
    pub filters: usize,
    /// Size of the filter patterns in pixels.
    #[arg(long, default_value_t = 96)]
    pub filter_size: usize,
    /// Gradient-ascent steps per filter.
    #[arg(long, default_value_t = 40)]
    pub steps: usize,
    /// Grad-CAM for the K most probable classes.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Class names, one per line.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "convscope-out/report")]
    pub out: PathBuf,
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "convscope-out/demo")]
    pub out: PathBuf,
}

/// What a report contains.
struct Plan {
    title: String,
    intro: String,
    filter_layers: Vec<String>,
    filters: Option<usize>,
    filter_size: usize,
    steps: usize,
    cam_targets: Vec<usize>,
    cam_top: usize,
    labels: Option<Vec<String>>,
    preprocess: convscope_image::Normalize,
}

/// The first, a middle and the last convolution layers.
fn default_filter_layers(model: &Model) -> Vec<String> {
    let convs: Vec<&str> = model
        .layers()
        .iter()
        .filter(|l| l.ops.starts_with("Conv"))
        .map(|l| l.name.as_str())
        .collect();
    let mut picks: Vec<&str> = match convs.len() {
        0 => vec![],
        1..=3 => convs.clone(),
        n => vec![convs[0], convs[n / 2], convs[n - 1]],
    };
    picks.dedup();
    picks.into_iter().map(String::from).collect()
}

pub(crate) fn run_report(args: ReportArgs) -> Result<()> {
    let model = crate::load(&args.model)?;
    let prepared = prepare_input(&model, &args.input, &args.input_args.config())?;
    let labels = args
        .labels
        .as_deref()
        .map(crate::cam::read_labels)
        .transpose()?;
    let plan = Plan {
        title: format!("convscope report: {}", args.model.display()),
        intro: format!(
            "What the network in <code>{}</code> computes for <code>{}</code> ({} preprocessing).",
            html_escape(&args.model.display().to_string()),
            html_escape(&args.input.display().to_string()),
            args.input_args.normalize().name()
        ),
        filter_layers: match &args.filter_layers {
            Some(s) => s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            None => default_filter_layers(&model),
        },
        filters: Some(args.filters.max(1)),
        filter_size: args.filter_size.max(16),
        steps: args.steps,
        cam_targets: Vec::new(),
        cam_top: args.top.max(1),
        labels,
        preprocess: args.input_args.normalize(),
    };
    write_report(&model, &prepared, &plan, &args.out)
}

pub(crate) fn run_demo(args: DemoArgs) -> Result<()> {
    let model = Model::from_bytes(convscope_demo::demo_model_bytes())?;
    let (pixels, w, h, boxes) = convscope_demo::demo_scene();
    let image = convscope_image::from_rgb8(w, h, &pixels)?;
    let cfg = InputConfig {
        size: Some((h, w)),
        ..InputConfig::default()
    };
    let prepared = prepare_image(&model, image, &cfg)?;
    let classes: Vec<String> = convscope_demo::CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let boxes_text: Vec<String> = boxes
        .iter()
        .zip(&classes)
        .map(|(b, c)| format!("{c} at x {}..{}, y {}..{}", b.x0, b.x1, b.y0, b.y1))
        .collect();
    let plan = Plan {
        title: "convscope demo".into(),
        intro: format!(
            "A small CNN that convscope trained itself on generated 64×64 pictures of four shapes \
             (circle, square, triangle, stripes), run on a {w}×{h} scene holding one shape of each \
             class ({}). Everything below was computed by convscope from the embedded ONNX model.",
            html_escape(&boxes_text.join("; "))
        ),
        filter_layers: model
            .layers()
            .iter()
            .filter(|l| l.ops.starts_with("Conv"))
            .map(|l| l.name.clone())
            .collect(),
        filters: None,
        filter_size: 64,
        steps: 40,
        cam_targets: (0..classes.len()).collect(),
        cam_top: classes.len(),
        labels: Some(classes),
        preprocess: convscope_image::Normalize::Unit,
    };
    write_report(&model, &prepared, &plan, &args.out)
}

/// Sets `data-images="loaded/total"` on `<body>` once the page has loaded (offline, no network).
const IMAGE_CHECK_SCRIPT: &str =
    "<script>window.addEventListener('load',function(){var i=document.images,n=0;\
for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}\
document.body.setAttribute('data-images',n+'/'+i.length);});</script>";

fn label(labels: &Option<Vec<String>>, c: usize) -> String {
    labels
        .as_ref()
        .and_then(|l| l.get(c))
        .cloned()
        .unwrap_or_else(|| format!("class {c}"))
}

fn write_report(
    model: &Model,
    prepared: &PreparedInput,
    plan: &Plan,
    out_dir: &std::path::Path,
) -> Result<()> {
    let start = Instant::now();
    let mut out = Staged::new(out_dir)?;
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title><style>{PAGE_STYLE}</style></head><body><h1>{0}</h1><p>{1}</p>",
        html_escape(&plan.title),
        plan.intro
    );

    // 1. Summary.
    let (ih, iw) = (prepared.display.height, prepared.display.width);
    let summary = model.summary(Some((ih, iw))).ok();
    html.push_str("<section><h2>1. The model</h2><p class=\"caption\">Each layer is a feature-producing step with the bias, normalisation and activation fused after it, as Keras's <code>model.summary()</code> lists them.</p><table><tr><th>#</th><th>layer</th><th>ops</th><th>output shape</th><th>parameters</th></tr>");
    if let Some(s) = &summary {
        for l in &s.layers {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                l.index,
                html_escape(&l.name),
                html_escape(&l.ops),
                l.shape,
                l.params
            ));
        }
        html.push_str(&format!(
            "</table><p>Total parameters: {}. Input <code>{}</code>, shape {:?}.</p></section>",
            s.total_params,
            html_escape(&s.input),
            s.input_shape
        ));
    } else {
        html.push_str(
            "</table><p>(the classifier part needs the model's declared input size)</p></section>",
        );
    }

    // 2. Input and prediction.
    out.write_png("input.png", &prepared.display.to_rgb8())?;
    let cam_cfg = CamConfig {
        targets: plan.cam_targets.clone(),
        top: plan.cam_top,
        ..CamConfig::default()
    };
    let cams = run_cams(model, &prepared.tensor, &cam_cfg);
    html.push_str("<section><h2>2. The input and the prediction</h2><p class=\"caption\">The image as the model sees it, after resizing and preprocessing.</p><img src=\"input.png\" alt=\"input\" style=\"width:320px\">");
    if let Ok(run) = &cams {
        html.push_str("<table><tr><th>class</th><th>probability</th></tr>");
        for (c, p) in run.prediction.top(run.prediction.classes().min(5)) {
            html.push_str(&format!(
                "<tr><td>{} ({c})</td><td>{p:.4}</td></tr>",
                html_escape(&label(&plan.labels, c))
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("</section>");

    // 3. Activations.
    let selection = default_selection(model, &prepared.tensor)?;
    let acts = compute_activations(model, &prepared.tensor, &selection)?;
    let style = GridStyle {
        per_row: 16,
        cell: 32,
        colormap: Colormap::Viridis,
        channel: None,
        npy: false,
    };
    html.push_str("<section><h2>3. Intermediate activations</h2><p class=\"caption\">Every channel of every layer with a spatial feature map, each standardised ((x−mean)/std·64+128) and coloured with viridis. Early layers keep most of the picture (edges, colours); deeper layers are more abstract and sparser: blank channels are filters that found nothing here.</p>");
    let bar = progress(acts.len() as u64, "activations");
    for (i, a) in acts.iter().enumerate() {
        let w = render_layer(&mut out, "act_", i, a, &style)?;
        let s = &a.stats;
        html.push_str(&format!(
            "<h3>{} <small>{:?}</small></h3><p class=\"caption\">mean {:.3}, std {:.3}, {:.1}% zeros, {} of {} channels blank</p>",
            html_escape(&a.selected.label), a.values.shape(), s.mean, s.std, 100.0 * s.zero_fraction, s.blank_channels, s.channels
        ));
        if let Some(g) = w.grid {
            html.push_str(&format!("<img src=\"{0}\" alt=\"{0}\">", html_escape(&g)));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    html.push_str("</section>");

    // 4. Filters.
    html.push_str(&format!("<section><h2>4. What the filters respond to</h2><p class=\"caption\">For each filter, the input pattern found by {} steps of gradient ascent from grey noise that maximises the filter's mean activation (the walk-through's method), tiled in filter order. Dark tiles are filters that never woke up.</p>", plan.steps));
    for name in &plan.filter_layers {
        let sel = select_layers(model, name)?;
        let Some(target) = sel.first() else { continue };
        let size = (plan.filter_size, plan.filter_size);
        let Ok(channels) = check_layer(model, target.value, &target.label, &[], size) else {
            continue;
        };
        let n = plan.filters.map_or(channels, |k| k.min(channels));
        let cfg = FiltersConfig {
            filters: (0..n).collect(),
            steps: plan.steps,
            size,
            normalize: plan.preprocess,
            ..FiltersConfig::default()
        };
        let bar = progress((n * plan.steps) as u64, &target.label);
        let patterns = visualize_filters(model, target.value, &cfg, &mut |d| {
            bar.set_position(d as u64)
        })?;
        bar.finish_and_clear();
        let cells: Vec<_> = patterns.iter().map(|p| p.image.to_rgb8()).collect();
        let cols = (n as f64).sqrt().ceil() as usize;
        let grid = tile_images(&cells, cols, n.div_ceil(cols), 3, [0, 0, 0], None)?;
        let file = format!("filters_{}.png", file_stem(&target.label));
        out.write_png(&file, &grid)?;
        let rose = patterns.iter().filter(|p| p.end() > p.start()).count();
        html.push_str(&format!(
            "<h3>{} <small>{n} of {channels} filters</small></h3><p class=\"caption\">objective rose for {rose} of {n}</p><img src=\"{}\" alt=\"filters of {}\">",
            html_escape(&target.label), html_escape(&file), html_escape(&target.label)
        ));
    }
    html.push_str("</section>");

    // 5. Grad-CAM.
    html.push_str("<section><h2>5. Where the evidence for each class is (Grad-CAM)</h2>");
    match &cams {
        Ok(run) => {
            html.push_str(&format!("<p class=\"caption\">Grad-CAM at layer <code>{}</code>: each channel weighted by the mean gradient of the class score, summed, ReLU, scaled to 0..1, upsampled and laid over the input (jet: red = strong evidence).</p><div>", html_escape(&run.layer_label)));
            for cam in &run.cams {
                let norm = cam.normalized(cam.height, cam.width);
                let up = upsample_bilinear(&norm, cam.height, cam.width, ih, iw)?;
                let heat = heatmap_rgb(&up, ih, iw, Colormap::Jet)?;
                let over = superimpose(&prepared.display, &heat, 0.4)?;
                let file = format!(
                    "gradcam_{}_{}.png",
                    cam.target,
                    file_stem(&label(&plan.labels, cam.target))
                );
                out.write_png(&file, &over)?;
                let p = run.prediction.probs.get(cam.target).copied().unwrap_or(0.0);
                html.push_str(&format!(
                    "<figure style=\"display:inline-block;margin:0 1em 1em 0\"><img src=\"{}\" alt=\"Grad-CAM\" style=\"width:256px\"><figcaption>{} (p {p:.3}){}</figcaption></figure>",
                    html_escape(&file),
                    html_escape(&label(&plan.labels, cam.target)),
                    if cam.all_zero { ": no positive evidence" } else { "" }
                ));
            }
            html.push_str("</div>");
        }
        Err(e) => html.push_str(&format!(
            "<p>No class activation maps: {}</p>",
            html_escape(&e.to_string())
        )),
    }
    html.push_str("</section>");
    // Records on <body> how many images loaded, so a headless browser test can check the page.
    html.push_str(IMAGE_CHECK_SCRIPT);
    html.push_str(&format!(
        "<p class=\"caption\">Generated by convscope {} in {:.1} s.</p></body></html>\n",
        env!("CARGO_PKG_VERSION"),
        start.elapsed().as_secs_f64()
    ));
    out.write("index.html", html.as_bytes())?;
    let dir = out.commit()?;
    if plan.filter_layers.is_empty() && plan.cam_top == 0 {
        bail!("nothing to report");
    }
    eprintln!(
        "report written to {} ({:.1} s)",
        dir.join("index.html").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
