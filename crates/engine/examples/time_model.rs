//! Times the inference pass (`Model::run`) of any ONNX file on a constant input:
//! `cargo run --release -p convscope-engine --example time_model -- MODEL 1,3,224,224 [RUNS]`.
//! Prints the median and the fastest run in ms; with `PROFILE=1` also each node's mean time;
//! with `TARGET=VALUE` the pass stops at that value (e.g. EfficientNet's
//! `/_swish_1/Clip_output_0` at any batch, as `convscope examples` runs it).
//! `scripts/bench/block_compare.py` runs it beside onnxruntime on single EfficientNet blocks.
use convscope_engine::{Model, Tensor};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: time_model MODEL SHAPE (e.g. 1,3,224,224) [RUNS]");
        std::process::exit(2);
    }
    let model = Model::load(std::path::Path::new(&args[0])).expect("a loadable model");
    let shape: Vec<usize> = args[1]
        .split(',')
        .map(|v| v.parse().expect("a shape of comma-separated sizes"))
        .collect();
    let runs: usize = args.get(2).map_or(300, |r| r.parse().expect("a run count"));
    let x = Tensor::full(&shape, 0.5);
    let out = match std::env::var("TARGET") {
        Ok(name) => vec![model
            .resolve(&name)
            .expect("TARGET names a value of the model")],
        Err(_) => model.outputs().to_vec(),
    };
    for _ in 0..10 {
        model.run(&x, &out).expect("a pass");
    }
    let profile = std::env::var_os("PROFILE").is_some();
    convscope_engine::set_profiling(profile);
    convscope_engine::set_profiling_per_node(profile);
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            model.run(&x, &out).expect("a pass");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    for (name, total, calls) in convscope_engine::take_profile() {
        println!(
            "  {name:60} {:8.1} µs",
            total.as_secs_f64() / calls as f64 * 1e6
        );
    }
    println!(
        "median {:.4} ms min {:.4}",
        times[times.len() / 2],
        times[0]
    );
}
