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

/// Median of `n` runs of `f`, in milliseconds.
fn median_ms(n: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

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

fn measure(model_path: &Path, image: &Path, layer: &str, input: InputConfig) {
    let name = model_path.file_name().unwrap().to_string_lossy();
    println!("\n## {name}, layer {layer}, image {}", image.display());
    // The same job through the facade, as the CLI runs it.
    let model = Model::load(model_path).unwrap().with_input(input.clone());
    let prepared = model.input(image).unwrap();
    let value = model.select_one(layer).unwrap().value;
    let runs = 15;
    let forward_layer = median_ms(runs, || {
        model.engine().run(prepared.tensor(), &[value]).unwrap();
    });
    let forward_full = median_ms(runs, || {
        model.pass(&prepared).unwrap();
    });
    let class = model.predict(&prepared).unwrap().best();
    let cli_cam = median_ms(runs, || {
        let cam = model.gradcam(&prepared, Class(class)).unwrap();
        cam.overlay_input(&OverlayStyle::default())
            .unwrap()
            .png_bytes()
            .unwrap();
    });
    let filter_config = |k: usize| FiltersConfig {
        filters: FilterSet::Indices(vec![k]),
        size: Size::square(128),
        preprocess: input.preprocess,
        ..FiltersConfig::default()
    };
    let cli_filter = median_ms(3, || {
        model.filters(layer, &filter_config(0)).unwrap();
    });

    // The server, with the image in its folder.
    let dir = std::env::temp_dir().join(format!("serve-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = image.file_name().unwrap().to_string_lossy().to_string();
    std::fs::copy(image, dir.join(&file)).unwrap();
    let served = Model::load(model_path).unwrap();
    let server = Server::start(
        served,
        ServeConfig {
            port: 0,
            images: Some(dir.clone()),
            input: Some(input),
            ..ServeConfig::default()
        },
    )
    .unwrap();
    let img = format!("image={}", enc(&file));
    let l = enc(layer);
    // The first pass of a freshly loaded model also builds the kernels' per-layer caches:
    // warm them with the scene, so "cold" is what a new image costs.
    get(&server, "/api/predictions?image=scene");
    let cold = {
        let s = Instant::now();
        get(&server, &format!("/api/predictions?{img}"));
        s.elapsed().as_secs_f64() * 1e3
    };
    let predictions = median_ms(runs, || {
        get(&server, &format!("/api/predictions?{img}"));
    });
    let grid = median_ms(runs, || {
        get(&server, &format!("/api/activations?{img}&layer={l}"));
    });
    let npy = median_ms(runs, || {
        get(
            &server,
            &format!("/api/activations?{img}&layer={l}&format=npy"),
        );
    });
    let channel = median_ms(runs, || {
        get(
            &server,
            &format!("/api/activations?{img}&layer={l}&channel=1"),
        );
    });
    let cam = median_ms(runs, || {
        get(
            &server,
            &format!("/api/cam?{img}&class={class}&method=gradcam"),
        );
    });
    let mut k = 0;
    let filter = median_ms(3, || {
        k += 1; // a new channel each time: nothing kept
        get(
            &server,
            &format!("/api/filter?layer={l}&channel={k}&size=128&wait=1"),
        );
    });
    let _ = std::fs::remove_dir_all(&dir);

    println!("| job | server (median ms) | reference in-process (ms) | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |job: &str, server: f64, reference: f64, what: &str| {
        println!(
            "| {job} | {server:.1} | {reference:.1} ({what}) | {:.2}× |",
            server / reference
        )
    };
    row(
        "first click on a new image: predictions, cold",
        cold,
        forward_full,
        "taped forward pass",
    );
    row(
        "predictions, warm",
        predictions,
        forward_layer,
        "engine forward to the layer",
    );
    row(
        "activations grid PNG, warm",
        grid,
        forward_layer,
        "engine forward to the layer",
    );
    row(
        "activations .npy, warm",
        npy,
        forward_layer,
        "engine forward to the layer",
    );
    row(
        "one channel large PNG, warm",
        channel,
        forward_layer,
        "engine forward to the layer",
    );
    row(
        "Grad-CAM overlay PNG, warm",
        cam,
        cli_cam,
        "CLI: gradcam + overlay PNG",
    );
    row(
        "filter pattern (128 px, 40 steps)",
        filter,
        cli_filter,
        "CLI: filters of one channel",
    );
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
