//! The FMA peak of each instruction-set path this CPU has, and the fraction of it that each
//! class of convolution reaches (1×1, 3×3 on the Winograd route, depthwise), forward, at 2
//! threads unless `RAYON_NUM_THREADS` says otherwise:
//! `cargo run --release -p convscope-engine --example peak_fraction [CLASS [LAYER]]` (only the
//! classes whose name contains CLASS, and of those only layer number LAYER).
//!
//! A convolution's rate counts the multiply-adds of the direct convolution (2·C·M·kh·kw flops
//! per output position, C = 1 per channel for depthwise), so the Winograd route, which does
//! about a quarter of them, can pass 100 %.
use convscope_engine::{peak_fma_gflops, ExecConfig, Isa, Model, Tensor};
use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

/// A class of convolution and its EfficientNet-Lite0 / VGG16 layers:
/// (in channels, out channels, size, kernel, stride, group).
type Case = (usize, usize, usize, usize, usize, usize);
const CLASSES: &[(&str, &[Case])] = &[
    (
        "1x1",
        &[
            (16, 96, 112, 1, 1, 1),
            (144, 24, 56, 1, 1, 1),
            (240, 40, 28, 1, 1, 1),
            (480, 80, 14, 1, 1, 1),
            (1152, 192, 7, 1, 1, 1),
        ],
    ),
    (
        "3x3 Winograd",
        &[
            (64, 64, 120, 3, 1, 1),
            (128, 128, 60, 3, 1, 1),
            (256, 256, 30, 3, 1, 1),
            (512, 512, 15, 3, 1, 1),
        ],
    ),
    (
        "depthwise",
        &[
            (32, 32, 112, 3, 1, 32),
            (96, 96, 112, 3, 2, 96),
            (144, 144, 56, 3, 1, 144),
            (240, 240, 28, 5, 1, 240),
            (480, 480, 14, 3, 1, 480),
            (1152, 1152, 7, 5, 1, 1152),
        ],
    ),
];

/// One convolution as a model, with its input and direct-convolution flops.
fn conv((c, m, hw, k, s, g): Case) -> (Model, Tensor, f64) {
    let w: Vec<f32> = (0..m * (c / g) * k * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let p = (k / 2) as i64;
    let mut gb = GraphBuilder::new("c");
    gb.input("x", &[1, c, hw, hw].map(|d| Dim::Value(d as i64)))
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[m, c / g, k, k], &w))
        .node(
            "Conv",
            "conv",
            &["x", "w"],
            &["y"],
            vec![
                AttributeProto::ints("pads", &[p; 4]),
                AttributeProto::ints("strides", &[s as i64; 2]),
                AttributeProto::int("group", g as i64),
            ],
        );
    let model = Model::from_proto(gb.build(13)).expect("a valid convolution");
    let x: Vec<f32> = (0..c * hw * hw)
        .map(|i| ((i * 104729) % 997) as f32 / 997.0)
        .collect();
    let out = hw.div_ceil(s);
    let flops = 2.0 * (c / g * k * k * m * out * out) as f64;
    (model, Tensor::new(vec![1, c, hw, hw], x).unwrap(), flops)
}

/// GFLOP/s of the fastest forward pass of `case` on `isa`.
fn gflops(case: Case, isa: Isa) -> f64 {
    let (model, x, flops) = conv(case);
    let model = model.with_config(ExecConfig {
        isa,
        ..ExecConfig::default()
    });
    let out = model.outputs().to_vec();
    model.run(&x, &out).unwrap();
    let runs = std::env::var("PEAK_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            model.run(&x, &out).unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    // The fastest run: on a shared machine the others measure the neighbours too.
    times.sort_by(f64::total_cmp);
    flops / times[0] / 1e9
}

fn main() {
    let cpu = Isa::detected();
    let mut isas = vec![cpu];
    if cpu.without_avx512().name() != cpu.name() {
        isas.push(cpu.without_avx512());
    }
    let class_filter = std::env::args().nth(1).unwrap_or_default();
    let layer_filter: Option<usize> = std::env::args().nth(2).and_then(|a| a.parse().ok());
    println!("threads={}", rayon::current_num_threads());
    for isa in isas {
        // The best of five, as the convolutions' fastest runs.
        let peak = (0..5)
            .map(|_| peak_fma_gflops(isa, 0.2))
            .fold(0.0, f64::max);
        println!("path {}: FMA peak {peak:.0} GFLOP/s", isa.name());
        for (class, cases) in CLASSES.iter().filter(|(c, _)| c.contains(&class_filter)) {
            let rates: Vec<f64> = cases
                .iter()
                .enumerate()
                .filter(|(i, _)| layer_filter.is_none_or(|l| l == *i))
                .map(|(_, &c)| gflops(c, isa))
                .collect();
            // The geometric mean of the layers' rates: each layer counts alike.
            let mean = rates.iter().map(|r| r.ln()).sum::<f64>() / rates.len() as f64;
            let mean = mean.exp();
            let each: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "  {class:<13} {mean:>6.1} GFLOP/s = {:>5.1} % of peak   (layers: {})",
                100.0 * mean / peak,
                each.join(", ")
            );
        }
    }
}
