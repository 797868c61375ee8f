//! Times single convolutions (forward and input gradient) in isolation:
//! `cargo run --release -p convscope-engine --example conv_micro`.
use convscope_engine::{ExecConfig, Model, Tensor};
use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

fn main() {
    // (in channels, out channels, size, batch, kernel, stride, group)
    let cases: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
        (64, 64, 240, 1, 3, 1, 1),
        (128, 256, 60, 1, 3, 1, 1),
        (512, 512, 30, 1, 3, 1, 1),
        (512, 512, 15, 1, 3, 1, 1),
        (3, 64, 64, 64, 3, 1, 1),
        (64, 64, 64, 8, 3, 1, 1),
        (256, 256, 32, 32, 3, 1, 1),
        (96, 24, 56, 1, 1, 1, 1),
        (24, 144, 56, 1, 1, 1, 1),
        (144, 144, 56, 1, 3, 1, 144),
        (240, 240, 28, 1, 5, 2, 240),
        (320, 1280, 7, 1, 1, 1, 1),
        (1152, 1152, 7, 1, 5, 1, 1152),
        (192, 1152, 7, 1, 1, 1, 1),
        (1152, 192, 7, 1, 1, 1, 1),
        (16, 96, 112, 1, 1, 1, 1),
        (32, 32, 112, 1, 3, 1, 32),
        (96, 96, 112, 1, 3, 2, 96),
        (64, 64, 128, 32, 3, 1, 1),
        (3, 32, 224, 1, 3, 2, 1),
        (1280, 1280, 1, 1, 1, 1, 1),
        (32, 16, 112, 1, 1, 1, 1),
        (144, 24, 56, 1, 1, 1, 1),
        (1152, 320, 7, 1, 1, 1, 1),
        (144, 40, 28, 1, 1, 1, 1),
        (480, 80, 14, 1, 1, 1, 1),
        (32, 16, 56, 1, 1, 1, 1),
        (96, 24, 28, 1, 1, 1, 1),
        (672, 112, 14, 1, 1, 1, 1),
        (112, 672, 14, 1, 1, 1, 1),
        // Small maps: where the Winograd route stops paying (winograd::applies).
        (512, 512, 9, 1, 3, 1, 1),
        (512, 512, 7, 1, 3, 1, 1),
        (512, 512, 4, 1, 3, 1, 1),
        (256, 256, 8, 1, 3, 1, 1),
        (64, 64, 8, 1, 3, 1, 1),
    ];
    // `conv_micro 0` runs only case 0. Each case runs with and without the Winograd path.
    let only: Option<usize> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    for (case, &(c, m, hw, n, k, s, g)) in cases.iter().enumerate() {
        if only.is_some_and(|o| o != case) {
            continue;
        }
        let w: Vec<f32> = (0..m * (c / g) * k * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let p = (k / 2) as i64;
        let mut gb = GraphBuilder::new("c");
        gb.input(
            "x",
            &[
                Dim::Value(n as i64),
                Dim::Value(c as i64),
                Dim::Value(hw as i64),
                Dim::Value(hw as i64),
            ],
        )
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[m, c / g, k, k], &w))
        .node(
            "Conv",
            "conv",
            &["x", "w"],
            &["y"],
            vec![
                AttributeProto::ints("pads", &[p, p, p, p]),
                AttributeProto::ints("strides", &[s as i64, s as i64]),
                AttributeProto::int("group", g as i64),
            ],
        );
        let mut model = Model::from_proto(gb.build(13)).unwrap();
        let y = model.resolve("y").unwrap();
        let x = Tensor::full(&[n, c, hw, hw], 0.5);
        let out = hw.div_ceil(s);
        let flops = 2.0 * (n * m * (c / g) * k * k * out * out) as f64;
        // Best of each path, the two paths alternating so that machine load hits both alike.
        let (mut best_f, mut best_b) = ([f64::MAX; 2], [f64::MAX; 2]);
        let reps = std::env::var("CONV_MICRO_RUNS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(if only.is_some() { 40 } else { 7 });
        for run in 0..2 * reps {
            let path = run % 2;
            model.set_config(ExecConfig {
                winograd: path == 0,
                ..ExecConfig::default()
            });
            let t = Instant::now();
            let tape = model.forward(&x, &[y]).unwrap();
            best_f[path] = best_f[path].min(t.elapsed().as_secs_f64());
            if std::env::var_os("CONV_MICRO_FORWARD_ONLY").is_some() {
                continue;
            }
            let seed = Tensor::full(tape.value(y).unwrap().shape(), 1.0);
            let t = Instant::now();
            tape.backward(vec![(y, seed)], &[]).unwrap();
            best_b[path] = best_b[path].min(t.elapsed().as_secs_f64());
        }
        println!(
            "c{c:<4} m{m:<4} {hw:>3}px n{n:<3} k{k} s{s} g{g:<4}: fwd {:7.2} ms {:5.0} GF/s (im2col {:7.2} ms) | bwd {:7.2} ms {:5.0} GF/s (im2col {:7.2} ms)",
            best_f[0] * 1e3,
            flops / best_f[0] / 1e9,
            best_f[1] * 1e3,
            best_b[0] * 1e3,
            flops / best_b[0] / 1e9,
            best_b[1] * 1e3,
        );
    }
}
