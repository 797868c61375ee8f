//! Times depthwise forward via the engine profile: `cargo run --release -p convscope-engine --example dw_micro`.
use convscope_engine::{Model, Tensor};
use convscope_onnx::{AttributeProto, Dim, GraphBuilder, TensorProto};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

fn main() {
    let cases: &[(usize, usize, usize, usize)] = &[(1152, 7, 5, 1)];
    for &(c, hw, k, s) in cases {
        let w: Vec<f32> = (0..c * k * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let p = (k / 2) as i64;
        let mut gb = GraphBuilder::new("c");
        gb.input(
            "x",
            &[
                Dim::Value(1),
                Dim::Value(c as i64),
                Dim::Value(hw as i64),
                Dim::Value(hw as i64),
            ],
        )
        .output("y", &[])
        .initializer(TensorProto::from_f32("w", &[c, 1, k, k], &w))
        .node(
            "Conv",
            "conv",
            &["x", "w"],
            &["y"],
            vec![
                AttributeProto::ints("pads", &[p, p, p, p]),
                AttributeProto::ints("strides", &[s as i64, s as i64]),
                AttributeProto::int("group", c as i64),
            ],
        );
        let model = Model::from_proto(gb.build(13)).unwrap();
        let y = model.resolve("y").unwrap();
        let x = Tensor::full(&[1, c, hw, hw], 0.5);
        convscope_engine::set_profiling(true);
        let mut best = f64::MAX;
        for _ in 0..5000 {
            let t = Instant::now();
            let tape = model.forward(&x, &[y]).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            drop(tape);
        }
        let prof = convscope_engine::take_profile();
        let conv: Vec<_> = prof
            .iter()
            .map(|(k, d, n)| format!("{k} {:.1} us/call", d.as_secs_f64() * 1e6 / *n as f64))
            .collect();
        println!(
            "c{c} {hw}px k{k} s{s}: best forward {:.1} us; {:?}",
            best * 1e6,
            conv
        );
    }
}
