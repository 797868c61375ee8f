//! Measures convscope-onnx's hand-written protobuf reader against a prost-based one
//! (`src/reader.rs` over the committed prost-build output `src/onnx.rs`):
//!
//! * `speed [RUNS]`: median time to decode each of the three shared models, both readers
//!   alternating in one run, and whether they decode to the same `ModelProto`;
//! * `fuzz`: the onnx crate's malformed inputs (structure-aware mutants of EfficientNet-Lite0
//!   and of a small generated model, protobuf-shaped noise, random bytes, truncations, deep
//!   nesting) through both readers: panics, largest allocation against the input size, and
//!   errors longer than one line.
//!
//! ```text
//! cd scripts/bench/prost_compare && cargo run --release -- speed 21 && cargo run --release -- fuzz
//! ```

mod onnx;
mod reader;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use convscope_onnx::{AttributeProto, Dim, GraphBuilder, ModelProto, TensorProto};
use convscope_test_support::protobuf::{mutants, noise_message, varint};
use convscope_test_support::{shared_bytes, Rng};

/// Tracks the largest single allocation (the program is single-threaded).
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Reader = fn(&[u8]) -> Result<ModelProto, String>;

fn hand_written(bytes: &[u8]) -> Result<ModelProto, String> {
    ModelProto::decode(bytes).map_err(|e| e.to_string())
}

const READERS: [(&str, Reader); 2] = [("hand-written", hand_written), ("prost", reader::decode)];

const MODELS: [&str; 3] = [
    "models/vgg16_tumor.onnx",
    "models/efficientnet_lite0.onnx",
    "models/efficientnet_lite1.onnx",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("speed") => speed(args.get(1).and_then(|r| r.parse().ok()).unwrap_or(21)),
        Some("fuzz") => fuzz(),
        _ => eprintln!("usage: prost-compare speed [RUNS] | fuzz"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn speed(runs: usize) {
    println!(
        "{:<28} {:>9} {:>13} {:>13} {:>13} {:>8}",
        "model", "MB", "hand ms", "prost ms", "prost+conv ms", "ratio"
    );
    for rel in MODELS {
        let Some(bytes) = shared_bytes(rel) else {
            continue;
        };
        let same = hand_written(&bytes).ok() == reader::decode(&bytes).ok();
        let (mut hand, mut raw, mut full) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..runs + 2 {
            // Alternate the order so neither reader always runs on a warm cache.
            let mut times = [0.0f64; 3];
            for k in 0..3 {
                let which = (k + round) % 3;
                let start = Instant::now();
                match which {
                    0 => drop(std::hint::black_box(hand_written(&bytes))),
                    1 => drop(std::hint::black_box(reader::decode_only(&bytes))),
                    _ => drop(std::hint::black_box(reader::decode(&bytes))),
                }
                times[which] = start.elapsed().as_secs_f64() * 1e3;
            }
            if round >= 2 {
                hand.push(times[0]);
                raw.push(times[1]);
                full.push(times[2]);
            }
        }
        let (h, r, f) = (median(hand), median(raw), median(full));
        println!(
            "{:<28} {:>9.1} {:>13.2} {:>13.2} {:>13.2} {:>7.2}x{}",
            rel.trim_start_matches("models/"),
            bytes.len() as f64 / 1e6,
            h,
            r,
            f,
            f / h,
            if same { "" } else { "  (models differ!)" }
        );
    }
    println!(
        "median of {runs} runs; ratio = prost+conversion / hand-written (above 1: prost slower)"
    );
}

/// One reader's record over all inputs.
#[derive(Default)]
struct Tally {
    inputs: usize,
    accepted: usize,
    panics: Vec<String>,
    multi_line: Vec<String>,
    /// Length of the longest error message.
    longest_error: usize,
    /// Largest allocation divided by the input size, with the input it happened on.
    worst_ratio: (f64, String),
}

fn run(reader: Reader, bytes: &[u8], what: &str, tally: &mut Tally) {
    tally.inputs += 1;
    LARGEST.store(0, Ordering::Relaxed);
    let outcome = catch_unwind(AssertUnwindSafe(|| reader(bytes)));
    let ratio = LARGEST.load(Ordering::Relaxed) as f64 / bytes.len().max(1) as f64;
    if ratio > tally.worst_ratio.0 && bytes.len() > 1024 {
        tally.worst_ratio = (ratio, what.to_string());
    }
    match outcome {
        Err(_) => tally.panics.push(what.to_string()),
        Ok(Ok(_)) => tally.accepted += 1,
        Ok(Err(e)) => {
            tally.longest_error = tally.longest_error.max(e.len());
            if e.contains('\n') {
                tally.multi_line.push(format!("{what}: {e}"));
            }
        }
    }
}

/// A small model with every kind of field the reader models (dense structure, so nearly
/// every mutation lands in decoder logic).
fn small_model() -> Vec<u8> {
    let mut g = GraphBuilder::new("small");
    g.input("x", &[Dim::Param("N".into()), Dim::Value(3)])
        .initializer(TensorProto::from_f32("w", &[3], &[0.5, -1.0, 2.0]))
        .initializer(TensorProto::from_i64("shape", &[2], &[1, -1]))
        .node(
            "Conv",
            "conv",
            &["x", "w"],
            &["c"],
            vec![
                AttributeProto::ints("pads", &[1, 1, 1, 1]),
                AttributeProto::float("alpha", 0.25),
                AttributeProto::string("auto_pad", "NOTSET"),
                AttributeProto::tensor("value", TensorProto::from_f32("t", &[1], &[3.0])),
            ],
        )
        .node("Reshape", "flat", &["c", "shape"], &["y"], vec![])
        .output("y", &[Dim::Value(1), Dim::Unknown]);
    g.build(13).encode()
}

/// A model whose graph nests through `If`-style graph attributes `depth` levels deep.
fn nested_model(depth: usize) -> Vec<u8> {
    // GraphProto { node: [NodeProto { attribute: [AttributeProto { g: GraphProto {...} }] }] }
    let mut graph: Vec<u8> = Vec::new();
    for _ in 0..depth {
        let mut attribute = vec![0x0a, 1, b'g', 0xa0, 0x01, 5]; // name "g", type GRAPH
        attribute.push(0x32); // field 6: g
        attribute.extend(varint(graph.len() as u64));
        attribute.extend(&graph);
        let mut node = vec![0x2a]; // field 5: attribute
        node.extend(varint(attribute.len() as u64));
        node.extend(attribute);
        let mut next = vec![0x0a]; // field 1: node
        next.extend(varint(node.len() as u64));
        next.extend(node);
        graph = next;
    }
    let mut model = vec![0x08, 0x08, 0x3a]; // ir_version 8, field 7: graph
    model.extend(varint(graph.len() as u64));
    model.extend(graph);
    model
}

fn fuzz() {
    let mut inputs: Vec<(Vec<u8>, String)> = Vec::new();
    let small = small_model();
    inputs.extend(mutants(0x5eed_0002, &small, 5000).map(|(b, w)| (b, format!("small {w}"))));
    if let Some(effnet) = shared_bytes(MODELS[1]) {
        inputs.extend(mutants(0x5eed_0001, &effnet, 300).map(|(b, w)| (b, format!("effnet {w}"))));
        for cut in [1, 2, 100, 4096, effnet.len() / 2, effnet.len() - 1] {
            inputs.push((effnet[..cut].to_vec(), format!("effnet cut at {cut}")));
        }
    }
    let mut rng = Rng::new(0x5eed_0003);
    for i in 0..200 {
        let n = rng.below(4096);
        inputs.push((rng.bytes(n), format!("random bytes {i}")));
        let mut shaped = vec![0x08, 0x08, 0x3a];
        let body = noise_message(&mut rng, 0);
        shaped.extend(varint(body.len() as u64));
        shaped.extend(body);
        inputs.push((shaped, format!("protobuf-shaped noise {i}")));
    }
    for depth in [30, 60, 200, 5000] {
        inputs.push((nested_model(depth), format!("graphs nested {depth} deep")));
    }
    for (name, reader) in READERS {
        let mut tally = Tally::default();
        let start = Instant::now();
        for (bytes, what) in &inputs {
            run(reader, bytes, what, &mut tally);
        }
        println!(
            "{name:<13} {} inputs in {:.1} s: {} accepted, {} panics, {} multi-line errors, \
             longest error {} characters, largest allocation {:.1}x the input ({})",
            tally.inputs,
            start.elapsed().as_secs_f64(),
            tally.accepted,
            tally.panics.len(),
            tally.multi_line.len(),
            tally.longest_error,
            tally.worst_ratio.0,
            tally.worst_ratio.1
        );
        for p in tally.panics.iter().take(5) {
            println!("    panic: {p}");
        }
        for m in tally.multi_line.iter().take(3) {
            println!("    multi-line: {m}");
        }
        for depth in [60, 200, 5000] {
            let r = reader(&nested_model(depth));
            let said = match r {
                Ok(_) => "accepted".to_string(),
                Err(e) if e.len() > 120 => format!("{}… ({} characters)", &e[..100], e.len()),
                Err(e) => e,
            };
            println!("    nested {depth}: {said}");
        }
    }
}
