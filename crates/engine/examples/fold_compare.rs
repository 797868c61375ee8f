//! Shape folding side by side: the nodes an inference pass runs and its time, with
//! [`ExecConfig::fold_shapes`] on and off, in one process, the runs alternating:
//! `cargo run --release -p convscope-engine --example fold_compare -- MODEL 1,3,224,224 [RUNS]`.
//!
//! Prints, for each setting, the nodes run, the nodes skipped and the values folded, then the
//! median and fastest pass in ms, and the largest difference between the two outputs (they
//! should be equal). The plans are made before the timed runs (in the warm-up pass). Last,
//! from a per-node profile of three more passes each, the time per pass of the nodes only the
//! unfolded passes run (what folding saves, less sensitive to a busy machine than the
//! difference of two whole-pass medians).
use convscope_engine::{ExecConfig, Model, Pass, Tensor};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: fold_compare MODEL SHAPE (e.g. 1,3,224,224) [RUNS]");
        std::process::exit(2);
    }
    let load = |fold: bool| {
        Model::load(std::path::Path::new(&args[0]))
            .unwrap_or_else(|e| {
                eprintln!("error: {e}");
                std::process::exit(2);
            })
            .with_config(ExecConfig {
                fold_shapes: fold,
                ..ExecConfig::default()
            })
    };
    let shape: Vec<usize> = args[1]
        .split(',')
        .map(|v| v.parse().expect("a shape of comma-separated sizes"))
        .collect();
    let runs: usize = args.get(2).map_or(5, |r| r.parse().expect("a run count"));
    let x = Tensor::new(
        shape.clone(),
        (0..shape.iter().product::<usize>())
            .map(|i| ((i as f32) * 0.173).sin())
            .collect(),
    )
    .expect("a shape");
    let models = [load(true), load(false)];
    let out = models[0].outputs().to_vec();
    let mut results = Vec::new();
    for (model, label) in models.iter().zip(["folded", "unfolded"]) {
        let t = Instant::now();
        let nodes = model.plan_nodes(&shape, &out, Pass::Inference);
        let plan_ms = t.elapsed().as_secs_f64() * 1e3;
        let y = model.run_float(&x, &out).expect("a pass").remove(0);
        println!(
            "{label:9} nodes run {:5}, skipped {:5}, folded values {:5} (plan made in {plan_ms:.1} ms)",
            nodes.run, nodes.skipped, nodes.folded_values
        );
        results.push(y);
    }
    let diff = results[0]
        .data()
        .iter()
        .zip(results[1].data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..runs.max(1) {
        for (model, t) in models.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            model.run(&x, &out).expect("a pass");
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut medians = Vec::new();
    for (t, label) in times.iter_mut().zip(["folded", "unfolded"]) {
        t.sort_by(f64::total_cmp);
        let median = t[t.len() / 2];
        medians.push(median);
        println!("{label:9} median {median:.1} ms, min {:.1} ms", t[0]);
    }
    println!(
        "unfolded / folded {:.3}; largest output difference {diff:e}",
        medians[1] / medians[0]
    );
    convscope_engine::set_profiling(true);
    convscope_engine::set_profiling_per_node(true);
    let mut profiles = Vec::new();
    for model in &models {
        for _ in 0..3 {
            model.run(&x, &out).expect("a pass");
        }
        profiles.push(convscope_engine::take_profile());
    }
    let run_folded: std::collections::HashSet<&str> =
        profiles[0].iter().map(|(l, _, _)| l.as_str()).collect();
    let (skipped, count) = profiles[1]
        .iter()
        .filter(|(l, _, _)| !run_folded.contains(l.as_str()))
        .fold((0.0, 0), |(t, n), (_, d, _)| (t + d.as_secs_f64(), n + 1));
    println!(
        "nodes only the unfolded pass runs: {count}, {:.2} ms per pass",
        skipped * 1e3 / 3.0
    );
}
