//! Latency of `convscope serve` per endpoint, beside the engine's and the CLI's own compute time
//! for the same job, measured in the same run (a benchmark, not a test).
//!
//! ```sh
//! cargo run --release -p convscope-viewer --example serve_latency
//! cargo run --release -p convscope-viewer --example serve_latency -- MODEL IMAGE LAYER PREPROCESS
//! ```
//!
//! Without arguments it measures EfficientNet-Lite0 and VGG16 from `../shared/models` on
//! `../shared/images/chelsea.png`. The server runs in-process on a free loopback port and is
//! asked over real HTTP; a request's time is measured at the client (loopback adds ~0.1 ms).
//! "Warm" means the image's forward pass is already kept, as it is after the first click.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use convscope::prelude::*;
use convscope::{FilterSet, InputConfig};
use convscope_viewer::{ServeConfig, Server};

/// The allocator `convscope serve` runs with (the CLI wraps it with a byte counter): large
/// freed blocks are kept for the next pass instead of being returned to the kernel.
#[global_allocator]
static ALLOC: convscope::lower::engine::CachingAlloc = convscope::lower::engine::CachingAlloc;

/// `GET` over a fresh loopback connection; panics unless the status is 200.
fn get(server: &Server, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    write!(
        s,
        "GET {path}&token={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        server.token()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(200)]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    raw
}

/// Percent-encodes a layer name for a query.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Medians in milliseconds of `n` alternating runs of `reference` and `server`: each pair
/// runs back to back, so load from other work on a shared machine falls on both sides.
fn paired(n: usize, mut reference: impl FnMut(), mut server: impl FnMut()) -> (f64, f64) {
    let time = |f: &mut dyn FnMut()| {
        let s = Instant::now();
        f();
        s.elapsed().as_secs_f64() * 1e3
    };
    let (mut r, mut s): (Vec<f64>, Vec<f64>) = (0..n)
        .map(|_| (time(&mut reference), time(&mut server)))
        .unzip();
    r.sort_by(f64::total_cmp);
    s.sort_by(f64::total_cmp);
    (r[n / 2], s[n / 2])
}

fn measure(model_path: &Path, image: &Path, layer: &str, input: InputConfig) {
    let name = model_path.file_name().unwrap().to_string_lossy();
    println!("\n## {name}, layer {layer}, image {}", image.display());
    // The same jobs through the facade, as the CLI runs them.
    let model = Model::load(model_path).unwrap().with_input(input.clone());
    let prepared = model.input(image).unwrap();
    let value = model.select_one(layer).unwrap().value;
    let runs = 15;
    let class = model.predict(&prepared).unwrap().best();
    let filter_config = |k: usize| FiltersConfig {
        filters: FilterSet::Indices(vec![k]),
        size: Size::square(128),
        preprocess: input.preprocess,
        ..FiltersConfig::default()
    };
    // The viewer's default recipe (lucid, 128 steps) through the facade, one channel.
    let lucid_config = VisualizeConfig {
        steps: Some(128),
        size: Some(Size::square(128)),
        view: Some(Size::square(128)),
        preprocess: Some(input.preprocess),
        ..VisualizeConfig::filters(&model, layer, &FilterSet::Indices(vec![0])).unwrap()
    };

    // The server, with the image in its folder.
    let dir = std::env::temp_dir().join(format!("serve-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = image.file_name().unwrap().to_string_lossy().to_string();
    std::fs::copy(image, dir.join(&file)).unwrap();
    // Copies under new names: each is a new image to the server, so a cold click can be
    // repeated (three references below, each paired with its own cold clicks).
    let copies: Vec<String> = (0..3 * runs)
        .map(|i| {
            let name = format!("new{i}-{file}");
            std::fs::copy(image, dir.join(&name)).unwrap();
            name
        })
        .collect();
    let served = Model::load(model_path).unwrap();
    let server = Server::start(
        served,
        ServeConfig {
            port: 0,
            images: Some(dir.clone()),
            input: Some(input.clone()),
            ..ServeConfig::default()
        },
    )
    .unwrap();
    let img = format!("image={}", enc(&file));
    let l = enc(layer);
    // The first pass of a freshly loaded model also builds the kernels' per-layer caches:
    // warm them with the scene, so "cold" is what a new image costs.
    get(&server, "/api/predictions?image=scene");
    get(&server, &format!("/api/predictions?{img}"));
    let server = &server;
    let mut copy = copies.iter();
    let mut cold = || {
        let name = enc(copy.next().unwrap());
        get(server, &format!("/api/predictions?image={name}"));
    };
    let forward_layer = || {
        model.engine().run(prepared.tensor(), &[value]).unwrap();
    };
    let endpoint = |query: String| move || drop(get(server, &query));

    println!("| job | server (median ms) | reference in-process (ms) | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |job: &str, (reference, server): (f64, f64), what: &str| {
        println!(
            "| {job} | {server:.1} | {reference:.1} ({what}) | {:.2}× |",
            server / reference
        )
    };
    // What a new image costs in-process: read and decode the file, prepare it, taped pass.
    row(
        "first click on a new image: predictions, cold",
        paired(
            runs,
            || {
                let input = model.input(image).unwrap();
                model.pass(&input).unwrap();
            },
            &mut cold,
        ),
        "read + decode + prepare + taped pass",
    );
    // The same, keeping each pass as the server keeps it for the next clicks: the memory is
    // then new to the process each time, and the operating system's page faults count.
    let mut kept = Vec::new();
    row(
        "first click on a new image: predictions, cold",
        paired(
            runs,
            || {
                let input = model.input(image).unwrap();
                kept.push(model.pass(&input).unwrap());
            },
            &mut cold,
        ),
        "the same, each pass kept",
    );
    drop(kept);
    row(
        "first click on a new image: predictions, cold",
        paired(
            runs,
            || {
                model.pass(&prepared).unwrap();
            },
            &mut cold,
        ),
        "taped forward pass alone",
    );
    let warm = [
        ("predictions, warm", format!("/api/predictions?{img}")),
        (
            "activations grid PNG, warm",
            format!("/api/activations?{img}&layer={l}"),
        ),
        (
            "the page's grid PNG (cell=1, title=0), warm",
            format!("/api/activations?{img}&layer={l}&cell=1&title=0"),
        ),
        (
            "activations .npy, warm",
            format!("/api/activations?{img}&layer={l}&format=npy"),
        ),
        (
            "one channel large PNG, warm",
            format!("/api/activations?{img}&layer={l}&channel=1"),
        ),
    ];
    for (job, query) in warm {
        row(
            job,
            paired(runs, forward_layer, endpoint(query)),
            "engine forward to the layer",
        );
    }
    row(
        "Grad-CAM overlay PNG, warm",
        paired(
            runs,
            || {
                let cam = model.gradcam(&prepared, Class(class)).unwrap();
                cam.overlay_input(&OverlayStyle::default())
                    .unwrap()
                    .png_bytes()
                    .unwrap();
            },
            endpoint(format!("/api/cam?{img}&class={class}&method=gradcam")),
        ),
        "CLI: gradcam + overlay PNG",
    );
    let mut k = 0;
    row(
        "filter pattern, walk-through (128 px, 40 steps)",
        paired(
            3,
            || {
                model.filters(layer, &filter_config(0)).unwrap();
            },
            || {
                k += 1; // a new channel each time: nothing kept
                get(
                    server,
                    &format!(
                        "/api/filter?layer={l}&channel={k}&size=128&recipe=walkthrough&wait=1"
                    ),
                );
            },
        ),
        "CLI: filters of one channel",
    );
    row(
        "filter pattern, lucid (128 px, 128 steps)",
        paired(
            3,
            || {
                model.visualize(&lucid_config).unwrap();
            },
            || {
                k += 1;
                get(
                    server,
                    &format!("/api/filter?layer={l}&channel={k}&size=128&wait=1"),
                );
            },
        ),
        "facade: VisualizeConfig::lucid, one channel",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let isa = if cpu.contains("avx512f") {
        "AVX-512"
    } else if cpu.contains("avx2") {
        "AVX2"
    } else {
        "no AVX2"
    };
    println!(
        "serve_latency: {} cores, {isa}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if args.len() >= 3 {
        let preprocess = args.get(3).map_or(Preprocess::Unit, |p| p.parse().unwrap());
        measure(
            Path::new(&args[0]),
            Path::new(&args[1]),
            &args[2],
            InputConfig::default().with_preprocess(preprocess),
        );
        return;
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let image = shared.join("images/chelsea.png");
    let cases: Vec<(&str, &str, InputConfig)> = vec![
        (
            "models/efficientnet_lite0.onnx",
            "_blocks.5._expand_conv",
            InputConfig::imagenet(),
        ),
        (
            "models/vgg16_tumor.onnx",
            "block3_conv3",
            InputConfig::default(),
        ),
    ];
    for (model, layer, input) in cases {
        let path = shared.join(model);
        if !path.exists() || !image.exists() {
            eprintln!("skipping {}: not found", path.display());
            continue;
        }
        measure(&path, &image, layer, input);
    }
}
