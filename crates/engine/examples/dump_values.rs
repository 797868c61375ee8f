//! Runs a model once and writes chosen values as raw little-endian `f32` files, for comparison
//! with another runtime (`scripts/reference/modern_nets.py` compares them with onnxruntime):
//! `cargo run --release -p convscope-engine --example dump_values -- MODEL INPUT.f32 1,3,224,224 OUTDIR NAMES.txt`.
//!
//! `NAMES.txt` holds one ONNX value name per line; for each, `OUTDIR/<k>.f32` is written and a
//! line `k<TAB>name<TAB>shape` is printed (`shape` comma-separated). A name that cannot be
//! resolved or computed is printed as `k<TAB>name<TAB>error: ...` and skipped. The pass time
//! (median of 3 runs of the whole model) is printed last as `forward_ms<TAB>x`.
use convscope_engine::{Model, Tensor, Value};
use std::time::Instant;

#[global_allocator]
static ALLOC: convscope_engine::CachingAlloc = convscope_engine::CachingAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 5 {
        eprintln!("usage: dump_values MODEL INPUT.f32 SHAPE OUTDIR NAMES.txt");
        std::process::exit(2);
    }
    let model = Model::load(std::path::Path::new(&args[0])).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let bytes = std::fs::read(&args[1]).expect("a readable input file");
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let shape: Vec<usize> = args[2]
        .split(',')
        .map(|v| v.parse().expect("a shape of comma-separated sizes"))
        .collect();
    let x = Tensor::new(shape, data).expect("input size matches the shape");
    let out_dir = std::path::Path::new(&args[3]);
    std::fs::create_dir_all(out_dir).expect("a writable output folder");
    let names = std::fs::read_to_string(&args[4]).expect("a readable names file");
    let mut ids = Vec::new();
    let mut kept = Vec::new();
    for (k, name) in names.lines().filter(|l| !l.is_empty()).enumerate() {
        match model.resolve(name) {
            Ok(id) => {
                ids.push(id);
                kept.push((k, name.to_string()));
            }
            Err(e) => println!("{k}\t{name}\terror: {e}"),
        }
    }
    let values = model.run(&x, &ids).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1);
    });
    for ((k, name), v) in kept.iter().zip(values) {
        let t = match v {
            Value::Float(t) => t,
            Value::Int(t) => Tensor::new(
                t.shape().to_vec(),
                t.data().iter().map(|&v| v as f32).collect(),
            )
            .expect("same element count"),
        };
        let raw: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(out_dir.join(format!("{k}.f32")), raw).expect("a written value");
        let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
        println!("{k}\t{name}\t{}", shape.join(","));
    }
    let outputs = model.outputs().to_vec();
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            model.run(&x, &outputs).expect("a pass");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("forward_ms\t{:.1}", times[1]);
}
