//! Times one 1×1 convolution's inference pass (`Model::run`) at a chosen shape, the fastest of
//! RUNS: `cargo run --release -p convscope-engine --example pointwise_micro -- C M H W N [RUNS]`
//! (in channels, out channels, map height and width, batch). EfficientNet's 1×1 layers on
//! 7×7 and 14×14 maps were the largest per-layer gap to onnxruntime at batch 8 (design.md,
//! "Dataset examples: speed"); this isolates them.
use convscope_engine::{Model, Tensor};
use convscope_onnx::{Dim, GraphBuilder, TensorProto};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|v| v.parse().expect("whole numbers: C M H W N [RUNS]"))
        .collect();
    if a.len() < 5 {
        eprintln!("usage: pointwise_micro C M H W N [RUNS]");
        std::process::exit(2);
    }
    let (c, m, h, w, n) = (a[0], a[1], a[2], a[3], a[4]);
    let runs = a.get(5).copied().unwrap_or(50);
    let weights: Vec<f32> = (0..m * c)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let dims = |v: &[usize]| v.iter().map(|&d| Dim::Value(d as i64)).collect::<Vec<_>>();
    let mut gb = GraphBuilder::new("pointwise");
    gb.input("x", &dims(&[n, c, h, w]))
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[m, c, 1, 1], &weights))
        .initializer(TensorProto::from_f32("b", &[m], &vec![0.1; m]))
        .node("Conv", "conv", &["x", "w", "b"], &["y"], vec![]);
    let model = Model::from_proto(gb.build(13)).expect("a 1×1 convolution");
    let y = model.resolve("y").expect("its output");
    let x = Tensor::full(&[n, c, h, w], 0.5);
    for _ in 0..5 {
        model.run(&x, &[y]).expect("a pass");
    }
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        model.run(&x, &[y]).expect("a pass");
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 2.0 * (n * m * c * h * w) as f64;
    println!(
        "c{c} m{m} {h}x{w} n{n}: {:.3} ms, {:.0} GFLOP/s, {:.2} µs per image",
        best * 1e3,
        flops / best / 1e9,
        best * 1e6 / n as f64
    );
}
