//! Times single convolutions (forward and input gradient) in isolation: `cargo run --release --example conv_micro`.
use convscope_engine::{Model, Tensor};
use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
use std::time::Instant;

fn main() {
    for &(c, m, hw, n) in &[
        (64usize, 64usize, 240usize, 1usize),
        (128, 256, 60, 1),
        (512, 512, 30, 1),
        (512, 512, 15, 1),
        (3, 64, 64, 64),
        (64, 64, 64, 8),
    ] {
        let w: Vec<f32> = (0..m * c * 9)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut g = GraphBuilder::new("c");
        g.input(
            "x",
            &[
                Dim::Value(n as i64),
                Dim::Value(c as i64),
                Dim::Value(hw as i64),
                Dim::Value(hw as i64),
            ],
        )
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[m, c, 3, 3], &w))
        .node(
            "Conv",
            "conv",
            &["x", "w"],
            &["y"],
            vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
        );
        let model = Model::from_proto(g.build(13)).unwrap();
        let y = model.resolve("y").unwrap();
        let x = Tensor::full(&[n, c, hw, hw], 0.5);
        let flops = 2.0 * (n * m * c * 9 * hw * hw) as f64;
        let mut best_f = f64::MAX;
        let mut best_b = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            let tape = model.forward(&x, &[y]).unwrap();
            best_f = best_f.min(t.elapsed().as_secs_f64());
            let seed = Tensor::full(tape.value(y).unwrap().shape(), 1.0);
            let t = Instant::now();
            tape.backward(vec![(y, seed)], &[]).unwrap();
            best_b = best_b.min(t.elapsed().as_secs_f64());
        }
        println!(
            "c{c} m{m} hw{hw} n{n}: fwd {:.2} ms {:.0} GF/s | bwd {:.2} ms {:.0} GF/s",
            best_f * 1e3,
            flops / best_f / 1e9,
            best_b * 1e3,
            flops / best_b / 1e9
        );
    }
}

#[allow(dead_code)]
fn gemm_only() {}

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;
