//! Times a ReLU forward and backward on a large tensor: `cargo run --release --example relu_micro`.
#![allow(missing_docs)]
use convscope_engine::{Model, Tensor};
use convscope_onnx::{Dim, GraphBuilder};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

fn main() {
    let mut g = GraphBuilder::new("r");
    g.input(
        "x",
        &[
            Dim::Value(64),
            Dim::Value(64),
            Dim::Value(64),
            Dim::Value(64),
        ],
    )
    .output("y", &[])
    .node("Relu", "relu", &["x"], &["y"], vec![]);
    let model = Model::from_proto(g.build(13)).unwrap();
    let y = model.resolve("y").unwrap();
    let x = Tensor::new(
        vec![64, 64, 64, 64],
        (0..64 * 64 * 64 * 64)
            .map(|i| ((i % 7) as f32) - 3.0)
            .collect(),
    )
    .unwrap();
    variants(x.data());
    variants(x.data());
    for _ in 0..2 {
        let t = Instant::now();
        let tape = model.forward(&x, &[y]).unwrap();
        let f = t.elapsed();
        let seed = Tensor::full(x.shape(), 1.0);
        let t = Instant::now();
        tape.backward(vec![(y, seed)], &[]).unwrap();
        println!("fwd {:?} bwd {:?}", f, t.elapsed());
    }
}

#[allow(dead_code)]
fn variants(x: &[f32]) {
    use rayon::prelude::*;
    let t = Instant::now();
    let v: Vec<f32> = x.iter().map(|&a| a.max(0.0)).collect();
    println!("serial collect {:?} {}", t.elapsed(), v.len());
    let t = Instant::now();
    let mut out = Vec::with_capacity(x.len());
    out.par_extend(x.par_iter().with_min_len(1 << 14).map(|&a| a.max(0.0)));
    println!("par_extend {:?} {}", t.elapsed(), out.len());
    let t = Instant::now();
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16))
        .for_each(|(o, i)| o.iter_mut().zip(i).for_each(|(o, &i)| *o = i.max(0.0)));
    println!("par_chunks zeroed {:?} {}", t.elapsed(), out.len());
}
