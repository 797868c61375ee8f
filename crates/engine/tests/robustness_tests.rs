//! The loader and the executor never panic on bad models.
//!
//! (a) Fuzzing: byte-level mutants (bit flips, overwritten bytes, truncations, overwritten
//! varints) of the real EfficientNet-Lite0 file and of a generated CNN, and structure-level
//! mutants (attributes, op types, inputs, dims, opsets) of generated models. Every mutant is
//! loaded, and when it loads it is run forward and backward on a small input, all inside
//! `catch_unwind`; any panic fails the test with the mutation that caused it.
//!
//! (b) Semantic mutations that decode fine but make no sense: each must give an `Err` whose
//! message names the problem.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};
use std::time::Instant;

use convscope_engine::{Error, Model, Tensor};
use convscope_onnx::{
    AttributeProto as A, AttributeValue, Dim, GraphBuilder, ModelProto, TensorProto,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            .collect()
    }
}

/// Every panic message with its location, from any thread (rayon workers included).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn install_panic_recorder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut p) = PANICS.lock() {
                p.push(info.to_string());
            }
            previous(info);
        }));
    });
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into());
    // The recorder has the location; the payload only the message.
    let recorded = PANICS
        .lock()
        .ok()
        .and_then(|v| v.iter().rev().find(|r| r.contains(&msg)).cloned());
    recorded.unwrap_or(msg)
}

/// `n` scaled by `CONVSCOPE_FUZZ_SCALE` (default 1) and the seed offset `CONVSCOPE_FUZZ_SEED`,
/// for longer fuzzing sessions than the default test run.
fn budget(n: usize, seed: u64) -> (usize, u64) {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let scale = var("CONVSCOPE_FUZZ_SCALE").unwrap_or(1) as usize;
    (
        n * scale.max(1),
        seed.wrapping_add(var("CONVSCOPE_FUZZ_SEED").unwrap_or(0)),
    )
}

/// What happened to one mutant.
#[derive(Default)]
struct Tally {
    rejected_at_load: usize,
    loaded: usize,
    ran: usize,
    failed_at_run: usize,
    panics: Vec<String>,
}

impl Tally {
    fn report(&self, what: &str, started: Instant) {
        eprintln!(
            "{what}: {} rejected at load, {} loaded ({} ran, {} failed cleanly at run), {:.1} s",
            self.rejected_at_load,
            self.loaded,
            self.ran,
            self.failed_at_run,
            started.elapsed().as_secs_f64()
        );
        assert!(
            self.panics.is_empty(),
            "{what}: {} panic(s):\n  {}",
            self.panics.len(),
            self.panics.join("\n  ")
        );
    }
}

/// A small input for `model`: batch 1, `size`×`size`, the declared channel count when sane.
fn small_input(model: &Model, size: usize) -> Tensor {
    let spec = model.input_spec();
    let mut s = spec.clone();
    if s.channels > 16 {
        // A mutated channel count is rejected by check_input; do not allocate it.
        s.channels = 3;
    }
    let shape = s.shape(1, size, size);
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::new(shape, data).unwrap()
}

/// Loads `proto` (or `bytes`) and, when it loads, runs it forward and backward; records panics.
fn exercise(
    tally: &mut Tally,
    what: &str,
    load: impl FnOnce() -> Result<Model, Error>,
    size: usize,
) {
    if std::env::var_os("CONVSCOPE_FUZZ_VERBOSE").is_some() {
        eprintln!("{what}");
    }
    let loaded = catch_unwind(AssertUnwindSafe(load));
    let model = match loaded {
        Err(p) => {
            tally
                .panics
                .push(format!("{what}: load panicked: {}", panic_text(&p)));
            return;
        }
        Ok(Err(e)) => {
            // Loading failed cleanly; the message must be printable.
            let _ = e.to_string();
            tally.rejected_at_load += 1;
            return;
        }
        Ok(Ok(m)) => m,
    };
    tally.loaded += 1;
    let run = catch_unwind(AssertUnwindSafe(|| -> bool {
        let x = small_input(&model, size);
        // `summary` builds its zero image from the declared channel count, so a corrupt count
        // (e.g. 2^40) aborts on allocation there (summary.rs, reported); keep to sane ones.
        if model.input_spec().channels <= 16 {
            let _ = model.summary(Some((size, size))).map(|s| s.to_string());
        }
        let outs = model.outputs().to_vec();
        let targets: Vec<_> = if outs.is_empty() {
            model.layers().iter().map(|l| l.value).collect()
        } else {
            outs
        };
        let tape = match model.forward(&x, &targets) {
            Ok(t) => t,
            Err(e) => {
                let _ = e.to_string();
                return false;
            }
        };
        for &t in &targets {
            if let Ok(v) = tape.value(t) {
                let seed = Tensor::full(v.shape(), 1.0);
                if let Err(e) = tape.backward(vec![(t, seed)], &targets) {
                    let _ = e.to_string();
                }
            }
        }
        true
    }));
    match run {
        Err(p) => tally
            .panics
            .push(format!("{what}: run panicked: {}", panic_text(&p))),
        Ok(true) => tally.ran += 1,
        Ok(false) => tally.failed_at_run += 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Generated models
// ---------------------------------------------------------------------------------------------

fn dims(v: &[usize]) -> Vec<Dim> {
    v.iter().map(|&d| Dim::Value(d as i64)).collect()
}

fn f32s(rng: &mut Rng, name: &str, shape: &[usize]) -> TensorProto {
    let n = shape.iter().product();
    TensorProto::from_f32(name, shape, &rng.vec(n))
}

/// Conv→BN→Relu→MaxPool→Conv→Add(residual)→GlobalAveragePool→Flatten→Gemm→Softmax.
fn chain_model() -> ModelProto {
    let mut rng = Rng(7);
    let mut g = GraphBuilder::new("chain");
    g.input("x", &dims(&[1, 3, 8, 8]))
        .output("y", &[])
        .initializer(f32s(&mut rng, "w1", &[4, 3, 3, 3]))
        .initializer(f32s(&mut rng, "b1", &[4]))
        .initializer(TensorProto::from_f32("bn_s", &[4], &[1.0, 0.9, 1.1, 1.2]))
        .initializer(f32s(&mut rng, "bn_b", &[4]))
        .initializer(f32s(&mut rng, "bn_m", &[4]))
        .initializer(TensorProto::from_f32("bn_v", &[4], &[1.0, 0.5, 2.0, 1.5]))
        .initializer(f32s(&mut rng, "w2", &[4, 4, 3, 3]))
        .initializer(f32s(&mut rng, "fc_w", &[5, 4]))
        .initializer(f32s(&mut rng, "fc_b", &[5]))
        .node(
            "Conv",
            "conv1",
            &["x", "w1", "b1"],
            &["c1"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node(
            "BatchNormalization",
            "bn1",
            &["c1", "bn_s", "bn_b", "bn_m", "bn_v"],
            &["bn"],
            vec![],
        )
        .node("Relu", "relu1", &["bn"], &["r1"], vec![])
        .node(
            "MaxPool",
            "pool1",
            &["r1"],
            &["p1"],
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("strides", &[2, 2]),
            ],
        )
        .node(
            "Conv",
            "conv2",
            &["p1", "w2"],
            &["c2"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Add", "add1", &["p1", "c2"], &["res"], vec![])
        .node("GlobalAveragePool", "gap", &["res"], &["gap_out"], vec![])
        .node("Flatten", "flat", &["gap_out"], &["f"], vec![])
        .node(
            "Gemm",
            "fc",
            &["f", "fc_w", "fc_b"],
            &["logits"],
            vec![A::int("transB", 1)],
        )
        .node("Softmax", "softmax", &["logits"], &["y"], vec![]);
    g.build(13)
}

/// One graph touching most ops, so that mutations reach their code.
fn zoo_model() -> ModelProto {
    let mut rng = Rng(11);
    let mut g = GraphBuilder::new("zoo");
    g.input("x", &dims(&[1, 3, 8, 8]))
        .output("y", &[])
        .output("aux", &[])
        .output("w2", &[])
        .initializer(TensorProto::from_i64("starts2", &[2], &[0, 3]))
        .initializer(TensorProto::from_i64("ends2", &[2], &[1, -1]))
        .initializer(f32s(&mut rng, "dw", &[3, 1, 3, 3]))
        .initializer(TensorProto::from_f32("lo", &[], &[0.0]))
        .initializer(TensorProto::from_f32("hi", &[], &[6.0]))
        .initializer(TensorProto::from_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0]))
        .initializer(TensorProto::from_i64(
            "pads",
            &[8],
            &[0, 0, 1, 1, 0, 0, 1, 1],
        ))
        .initializer(TensorProto::from_i64("starts", &[2], &[1, -1]))
        .initializer(TensorProto::from_i64("ends", &[2], &[-1, -100]))
        .initializer(TensorProto::from_i64("axes", &[2], &[2, 3]))
        .initializer(TensorProto::from_i64("steps", &[2], &[1, -2]))
        .initializer(TensorProto::from_i64("idx", &[3], &[0, 2, -1]))
        .initializer(TensorProto::from_i64("shape", &[3], &[0, 3, -1]))
        .initializer(TensorProto::from_i64("split", &[2], &[1, 2]))
        .initializer(TensorProto::from_i64("uaxes", &[1], &[0]))
        .initializer(f32s(&mut rng, "mm", &[2, 6]))
        .initializer(f32s(&mut rng, "ct_w", &[3, 2, 3, 3]))
        .initializer(f32s(&mut rng, "slope", &[3, 1, 1]))
        .node(
            "Conv",
            "dwconv",
            &["x", "dw"],
            &["a"],
            vec![A::int("group", 3), A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Clip", "clip", &["a", "lo", "hi"], &["b"], vec![])
        .node(
            "AveragePool",
            "avg",
            &["b"],
            &["c"],
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("strides", &[2, 2]),
                A::int("ceil_mode", 1),
            ],
        )
        .node(
            "Resize",
            "resize",
            &["c", "", "scales"],
            &["d"],
            vec![A::string("mode", "linear")],
        )
        .node(
            "Pad",
            "pad",
            &["d", "pads"],
            &["e"],
            vec![A::string("mode", "reflect")],
        )
        .node(
            "Slice",
            "slice",
            &["e", "starts", "ends", "axes", "steps"],
            &["f"],
            vec![],
        )
        .node(
            "Transpose",
            "transpose",
            &["f"],
            &["g"],
            vec![A::ints("perm", &[0, 1, 3, 2])],
        )
        .node(
            "Gather",
            "gather",
            &["g", "idx"],
            &["h"],
            vec![A::int("axis", 1)],
        )
        .node("Reshape", "reshape", &["h", "shape"], &["i"], vec![])
        .node(
            "Split",
            "split",
            &["h", "split"],
            &["s1", "s2"],
            vec![A::int("axis", 1)],
        )
        .node(
            "Concat",
            "concat",
            &["s2", "s1"],
            &["j"],
            vec![A::int("axis", 1)],
        )
        .node("PRelu", "prelu", &["j", "slope"], &["k"], vec![])
        .node(
            "ReduceMean",
            "rmean",
            &["k"],
            &["l"],
            vec![A::ints("axes", &[2]), A::int("keepdims", 1)],
        )
        .node("Unsqueeze", "unsq", &["l", "uaxes"], &["m"], vec![])
        .node("Squeeze", "sq", &["m", "uaxes"], &["n"], vec![])
        .node(
            "ConvTranspose",
            "convT",
            &["n", "ct_w"],
            &["o"],
            vec![A::ints("strides", &[1, 2])],
        )
        .node("GlobalMaxPool", "gmp", &["o"], &["p"], vec![])
        .node("Flatten", "flatten", &["p"], &["q"], vec![])
        .node(
            "Softmax",
            "softmax",
            &["i"],
            &["r"],
            vec![A::int("axis", -1)],
        )
        .node(
            "ReduceMax",
            "rmax",
            &["r"],
            &["s"],
            vec![A::ints("axes", &[1]), A::int("keepdims", 0)],
        )
        .node(
            "MaxPool",
            "mp",
            &["e"],
            &["t"],
            vec![
                A::ints("kernel_shape", &[3, 3]),
                A::ints("dilations", &[2, 2]),
            ],
        )
        .node("Mul", "mul", &["t", "t"], &["u"], vec![])
        .node("Sigmoid", "sig", &["u"], &["v"], vec![])
        .node("Flatten", "flatten2", &["v"], &["w"], vec![])
        .node(
            "Slice",
            "slice2",
            &["w", "starts2", "ends2"],
            &["w2"],
            vec![],
        )
        .node("MatMul", "matmul", &["q", "mm"], &["y0"], vec![])
        .node("Identity", "ident", &["y0"], &["y"], vec![])
        .node("Dropout", "drop", &["s"], &["aux"], vec![]);
    g.build(13)
}

/// A Keras-style NHWC graph with an input Transpose, Gemm-free head and Upsample (opset 9).
fn nhwc_model() -> ModelProto {
    let mut rng = Rng(13);
    let mut g = GraphBuilder::new("nhwc");
    g.input("x", &dims(&[1, 8, 8, 3]))
        .output("y", &[])
        .initializer(f32s(&mut rng, "w", &[4, 3, 3, 3]))
        .initializer(TensorProto::from_f32("up", &[4], &[1.0, 1.0, 2.0, 2.0]))
        .initializer(f32s(&mut rng, "k", &[4, 1, 1]))
        .node(
            "Transpose",
            "to_nchw",
            &["x"],
            &["xt"],
            vec![A::ints("perm", &[0, 3, 1, 2])],
        )
        .node(
            "Conv",
            "conv",
            &["xt", "w"],
            &["c"],
            vec![
                A::string("auto_pad", "SAME_UPPER"),
                A::ints("strides", &[2, 2]),
            ],
        )
        .node(
            "LeakyRelu",
            "lrelu",
            &["c"],
            &["l"],
            vec![A::float("alpha", 0.1)],
        )
        .node(
            "Upsample",
            "up",
            &["l", "up"],
            &["u"],
            vec![A::string("mode", "nearest")],
        )
        .node("Div", "div", &["u", "k"], &["d"], vec![])
        .node("Pow", "pow", &["d", "k"], &["p"], vec![])
        .node("Max", "max", &["p", "d"], &["m"], vec![])
        .node(
            "ReduceSum",
            "rsum",
            &["m"],
            &["y"],
            vec![A::ints("axes", &[1, 2]), A::int("keepdims", 0)],
        );
    g.build(9)
}

// ---------------------------------------------------------------------------------------------
// (a) Byte-level fuzzing
// ---------------------------------------------------------------------------------------------

/// Values written over varints: boundaries, powers of two, negatives (10-byte varints).
/// Values a few hundred wide are left out on purpose: they make valid but slow models
/// (e.g. pads of 500 on every convolution), which are not what this test is after.
const INTERESTING: &[i64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    15,
    16,
    31,
    64,
    127,
    128,
    255,
    1 << 16,
    1 << 20,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 62,
    i64::MAX,
    -1,
    -2,
    -7,
    -1000,
    -(1 << 31),
    i64::MIN,
];

fn encode_varint(v: u64, min_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut v = v;
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 && out.len() + 1 >= min_len {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Length of the varint starting at `pos` (at most 10 bytes, or to the end).
fn varint_len(bytes: &[u8], pos: usize) -> usize {
    let mut n = 0;
    while pos + n < bytes.len() && n < 10 {
        n += 1;
        if bytes[pos + n - 1] & 0x80 == 0 {
            break;
        }
    }
    n
}

/// One byte-level mutant of `base` and a description; positions prefer the `hot` ranges (graph
/// structure rather than weight bytes) 3 times out of 4.
fn mutate_bytes(rng: &mut Rng, base: &[u8], hot: &[std::ops::Range<usize>]) -> (String, Vec<u8>) {
    let len = base.len();
    let pos = |rng: &mut Rng| -> usize {
        if !hot.is_empty() && rng.chance(75) {
            let r = rng.pick(hot).clone();
            r.start + rng.below(r.end - r.start)
        } else {
            rng.below(len)
        }
    };
    let mut b = base.to_vec();
    match rng.below(5) {
        0 => {
            let n = 1 + rng.below(3);
            let mut at = Vec::new();
            for _ in 0..n {
                let p = pos(rng);
                let bit = rng.below(8);
                b[p] ^= 1 << bit;
                at.push(format!("{p}.{bit}"));
            }
            (format!("flip bits {}", at.join(",")), b)
        }
        1 => {
            let p = pos(rng);
            let n = (1 + rng.below(4)).min(len - p);
            for i in 0..n {
                b[p + i] = rng.next_u64() as u8;
            }
            (format!("overwrite {n} bytes at {p}"), b)
        }
        2 => {
            let cut = if rng.chance(50) {
                pos(rng)
            } else {
                rng.below(len)
            };
            b.truncate(cut);
            (format!("truncate to {cut}"), b)
        }
        kind => {
            let p = pos(rng);
            let old = varint_len(&b, p);
            let v = *rng.pick(INTERESTING) as u64;
            // 3: keep the length (non-canonical padding) when it fits; 4: splice.
            let new = if kind == 3 {
                let e = encode_varint(v, old);
                if e.len() == old {
                    e
                } else {
                    encode_varint(v, 0)
                }
            } else {
                encode_varint(v, 0)
            };
            b.splice(p..p + old, new);
            (format!("varint at {p} ({old} bytes) := {}", v as i64), b)
        }
    }
}

fn fuzz_bytes(
    name: &str,
    base: &[u8],
    hot: &[std::ops::Range<usize>],
    count: usize,
    seed: u64,
    size: usize,
) {
    install_panic_recorder();
    let started = Instant::now();
    let (count, seed) = budget(count, seed);
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    for i in 0..count {
        let (what, bytes) = mutate_bytes(&mut rng, base, hot);
        exercise(
            &mut tally,
            &format!("{name} mutant {i} ({what})"),
            || Model::from_bytes(&bytes),
            size,
        );
    }
    tally.report(name, started);
}

#[test]
fn fuzz_efficientnet_bytes() {
    let Some(path) = common::shared("models/efficientnet_lite0.onnx") else {
        return;
    };
    let base = std::fs::read(&path).expect("read efficientnet_lite0.onnx");
    // The unmutated model loads and runs at 32×32.
    let model = Model::from_bytes(&base).expect("the original loads");
    let x = small_input(&model, 32);
    model
        .run_float(&x, model.outputs())
        .expect("the original runs");
    // Nodes come first in the file and the graph inputs, outputs and opsets last; the middle
    // is mostly weight bytes.
    let hot = [0..24_000, base.len() - 4_000..base.len()];
    fuzz_bytes("efficientnet", &base, &hot, 110, 0xEFF1, 32);
}

#[test]
fn fuzz_generated_model_bytes() {
    for (name, proto, seed) in [
        ("chain", chain_model(), 0xC4A1),
        ("zoo", zoo_model(), 0x200),
        ("nhwc", nhwc_model(), 0x4C),
    ] {
        let base = proto.encode();
        let model = Model::from_bytes(&base).unwrap_or_else(|e| panic!("{name} loads: {e}"));
        let x = small_input(&model, 8);
        model
            .run_float(&x, model.outputs())
            .unwrap_or_else(|e| panic!("{name} runs: {e}"));
        fuzz_bytes(name, &base, &[], 300, seed, 8);
    }
}

// ---------------------------------------------------------------------------------------------
// (a') Structure-level fuzzing: decoded models with one or two fields changed
// ---------------------------------------------------------------------------------------------

/// Every op the engine registers, and two it does not.
const OPS: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Erf",
    "Sqrt",
    "Exp",
    "Log",
    "Neg",
    "Abs",
    "Reciprocal",
    "Softplus",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "PRelu",
    "Max",
    "Min",
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "BatchNormalization",
    "Pad",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "Resize",
    "Upsample",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "Shape",
    "Cast",
    "Identity",
    "Dropout",
    "Constant",
    "ConstantOfShape",
    "Softmax",
    "LogSoftmax",
    "Loop",
    "NotAnOp",
];

const ATTR_NAMES: &[&str] = &[
    "pads",
    "strides",
    "dilations",
    "kernel_shape",
    "group",
    "axis",
    "axes",
    "perm",
    "keepdims",
    "ceil_mode",
    "count_include_pad",
    "auto_pad",
    "mode",
    "alpha",
    "beta",
    "transA",
    "transB",
    "output_padding",
    "output_shape",
    "split",
    "starts",
    "ends",
    "to",
    "value",
    "min",
    "max",
    "scales",
    "coordinate_transformation_mode",
    "nearest_mode",
    "epsilon",
    "allowzero",
    "noop_with_empty_axes",
    "value_ints",
    "value_float",
];

const STRINGS: &[&str] = &[
    "NOTSET",
    "SAME_UPPER",
    "SAME_LOWER",
    "VALID",
    "constant",
    "reflect",
    "edge",
    "wrap",
    "nearest",
    "linear",
    "cubic",
    "half_pixel",
    "align_corners",
    "asymmetric",
    "pytorch_half_pixel",
    "tf_crop_and_resize",
    "floor",
    "ceil",
    "",
    "\u{fffd}garbage",
];

fn random_int(rng: &mut Rng) -> i64 {
    if rng.chance(60) {
        rng.below(9) as i64 - 3
    } else {
        *rng.pick(INTERESTING)
    }
}

fn random_float(rng: &mut Rng) -> f32 {
    *rng.pick(&[
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        2.0,
        3.0,
        1e-30,
        1e30,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -7.5,
    ])
}

fn random_ints(rng: &mut Rng) -> Vec<i64> {
    let n = *rng.pick(&[0usize, 1, 2, 2, 3, 4, 4, 5, 8]);
    (0..n).map(|_| random_int(rng)).collect()
}

fn random_attr_value(rng: &mut Rng, like: Option<&AttributeValue>) -> AttributeValue {
    let kind = match like {
        Some(AttributeValue::Int(_)) if rng.chance(80) => 0,
        Some(AttributeValue::Ints(_)) if rng.chance(80) => 1,
        Some(AttributeValue::Float(_)) if rng.chance(80) => 2,
        Some(AttributeValue::String(_)) if rng.chance(80) => 3,
        _ => rng.below(6),
    };
    match kind {
        0 => AttributeValue::Int(random_int(rng)),
        1 => AttributeValue::Ints(random_ints(rng)),
        2 => AttributeValue::Float(random_float(rng)),
        3 => AttributeValue::String(rng.pick(STRINGS).as_bytes().to_vec()),
        4 => AttributeValue::Floats((0..rng.below(5)).map(|_| random_float(rng)).collect()),
        _ => {
            let dims: Vec<usize> = (0..rng.below(3)).map(|_| rng.below(4)).collect();
            let n = dims.iter().product::<usize>();
            let t = if rng.chance(50) {
                TensorProto::from_f32("t", &dims, &rng.vec(n))
            } else {
                let v: Vec<i64> = (0..n).map(|_| random_int(rng)).collect();
                TensorProto::from_i64("t", &dims, &v)
            };
            AttributeValue::Tensor(t)
        }
    }
}

/// Applies 1–2 random structural changes to `m`; returns their description.
fn mutate_structure(rng: &mut Rng, m: &mut ModelProto) -> String {
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let g = &mut m.graph;
        let names: Vec<String> = g
            .node
            .iter()
            .flat_map(|n| n.output.iter().cloned())
            .chain(g.initializer.iter().map(|t| t.name.clone()))
            .chain(g.input.iter().map(|i| i.name.clone()))
            .collect();
        let ni = rng.below(g.node.len());
        match rng.below(11) {
            0..=2 => {
                // Change or add an attribute.
                let node = &mut g.node[ni];
                if !node.attribute.is_empty() && rng.chance(70) {
                    let ai = rng.below(node.attribute.len());
                    let v = random_attr_value(rng, Some(&node.attribute[ai].value));
                    what.push(format!(
                        "{}.{} := {v:?}",
                        node.name, node.attribute[ai].name
                    ));
                    node.attribute[ai].value = v;
                } else {
                    let name = rng.pick(ATTR_NAMES).to_string();
                    let v = random_attr_value(rng, None);
                    what.push(format!("{}.{name} += {v:?}", node.name));
                    node.attribute.push(A { name, value: v });
                }
            }
            3 | 4 => {
                let op = rng.pick(OPS).to_string();
                what.push(format!(
                    "{}: op {} := {op}",
                    g.node[ni].name, g.node[ni].op_type
                ));
                g.node[ni].op_type = op;
            }
            5 | 6 => {
                // Rewire, drop or add an input.
                let node = &mut g.node[ni];
                let choice = rng.below(4);
                if choice == 0 && !node.input.is_empty() {
                    let i = rng.below(node.input.len());
                    what.push(format!("{}: drop input {i}", node.name));
                    node.input.remove(i);
                } else {
                    let new = match rng.below(5) {
                        0 => String::new(),
                        1 => "undefined_value".to_string(),
                        _ => rng.pick(&names).clone(),
                    };
                    if choice == 1 || node.input.is_empty() {
                        what.push(format!("{}: add input '{new}'", node.name));
                        node.input.push(new);
                    } else {
                        let i = rng.below(node.input.len());
                        what.push(format!("{}: input {i} := '{new}'", node.name));
                        node.input[i] = new;
                    }
                }
            }
            7 => {
                // Reshape an initializer (same element count or not), or change its type.
                if g.initializer.is_empty() {
                    continue;
                }
                let ti = rng.below(g.initializer.len());
                let t = &mut g.initializer[ti];
                if rng.chance(50) {
                    let n: i64 = t.dims.iter().fold(1i64, |a, &d| a.wrapping_mul(d));
                    t.dims = match rng.below(4) {
                        0 => vec![n],
                        1 => vec![1, n],
                        2 => t.dims.iter().rev().copied().collect(),
                        _ => random_ints(rng),
                    };
                    what.push(format!("initializer {} dims := {:?}", t.name, t.dims));
                } else {
                    t.data_type = *rng.pick(&[1, 6, 7, 9, 10, 11, 8, 0, 99]);
                    what.push(format!("initializer {} type := {}", t.name, t.data_type));
                }
            }
            8 => {
                let dims: Vec<Dim> = (0..*rng.pick(&[3usize, 4, 4, 4, 5]))
                    .map(|_| match rng.below(6) {
                        0 => Dim::Param("N".into()),
                        1 => Dim::Unknown,
                        _ => Dim::Value(*rng.pick(&[0, 1, 2, 3, 8, -1, 1 << 40])),
                    })
                    .collect();
                what.push(format!("input dims := {dims:?}"));
                g.input[0].shape = Some(dims);
            }
            9 => {
                if rng.chance(50) {
                    what.push(format!("remove node {}", g.node[ni].name));
                    g.node.remove(ni);
                } else {
                    let mut dup = g.node[ni].clone();
                    dup.name.push_str("_dup");
                    if rng.chance(50) {
                        for o in &mut dup.output {
                            o.push_str("_dup");
                        }
                    }
                    what.push(format!("duplicate node {}", dup.name));
                    g.node.push(dup);
                }
                if g.node.is_empty() {
                    break;
                }
            }
            _ => {
                let v = *rng.pick(&[1i64, 6, 7, 9, 10, 11, 12, 13, 17, 18, 19, 99, -1]);
                what.push(format!("opset := {v}"));
                m.opset_import = vec![convscope_onnx::OperatorSetId {
                    domain: String::new(),
                    version: v,
                }];
            }
        }
    }
    what.join("; ")
}

#[test]
fn fuzz_generated_model_structure() {
    install_panic_recorder();
    let started = Instant::now();
    let mut tally = Tally::default();
    let bases = [
        ("chain", chain_model()),
        ("zoo", zoo_model()),
        ("nhwc", nhwc_model()),
    ];
    let (count, seed) = budget(2400, 0x5EED);
    let mut rng = Rng(seed);
    for i in 0..count {
        let (name, base) = &bases[i % bases.len()];
        let mut m = base.clone();
        let what = mutate_structure(&mut rng, &mut m);
        // Half of the mutants also go through the encoder and decoder.
        if i % 2 == 0 {
            let bytes = m.encode();
            exercise(
                &mut tally,
                &format!("{name} #{i}: {what}"),
                || Model::from_bytes(&bytes),
                8,
            );
        } else {
            exercise(
                &mut tally,
                &format!("{name} #{i}: {what}"),
                || Model::from_proto(m),
                8,
            );
        }
    }
    tally.report("structure fuzz", started);
}

// ---------------------------------------------------------------------------------------------
// (b) Semantic mutations: decode fine, make no sense, must fail with a clear message
// ---------------------------------------------------------------------------------------------

/// A model `x [1, 2, 5, 5] → nodes → y` with the given initializers.
/// One node: op type, inputs, outputs, attributes.
type NodeSpec<'a> = (&'a str, &'a [&'a str], &'a [&'a str], Vec<A>);

fn net(nodes: &[NodeSpec], inits: Vec<TensorProto>) -> ModelProto {
    net_with_input(&[1, 2, 5, 5], nodes, inits, 13)
}

fn net_with_input(
    x: &[usize],
    nodes: &[NodeSpec],
    inits: Vec<TensorProto>,
    opset: i64,
) -> ModelProto {
    let mut g = GraphBuilder::new("bad");
    g.input("x", &dims(x)).output("y", &[]);
    for t in inits {
        g.initializer(t);
    }
    for (i, (op, ins, outs, attrs)) in nodes.iter().enumerate() {
        g.node(
            op,
            &format!("{}_{i}", op.to_lowercase()),
            ins,
            outs,
            attrs.clone(),
        );
    }
    g.build(opset)
}

/// The error a model gives at load or, when it loads, when run on a `[1, 2, 5, 5]`-like input.
/// Panics (with the case name) if the model loads and runs, or if anything panics.
fn error_of(case: &str, proto: ModelProto) -> Error {
    install_panic_recorder();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), Error> {
        // The ops' own refusals (NaN and infinite scales, pads...) are what these cases test,
        // so the load-time refusal of non-finite weights (hostile_inputs_tests) is turned off.
        let options = convscope_engine::LoadOptions {
            allow_nonfinite: true,
        };
        let model = Model::from_proto_with(proto, &options)?;
        let x = small_input(&model, 5);
        let targets = model.outputs().to_vec();
        let tape = model.forward(&x, &targets)?;
        let y = tape.value(targets[0])?;
        tape.backward(vec![(targets[0], Tensor::full(y.shape(), 1.0))], &[])?;
        Ok(())
    }));
    match outcome {
        Err(p) => panic!(
            "{case}: panicked instead of returning an error: {}",
            panic_text(&p)
        ),
        Ok(Ok(())) => panic!("{case}: the model loaded and ran without an error"),
        Ok(Err(e)) => e,
    }
}

/// Asserts that the error message contains every one of `words` (case-insensitive).
fn expect_error(case: &str, proto: ModelProto, words: &[&str]) {
    let e = error_of(case, proto);
    let msg = e.to_string();
    let lower = msg.to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "{case}: error message does not mention '{w}': {msg}"
        );
    }
    eprintln!("{case:<40} {msg}");
}

fn w(name: &str, shape: &[usize]) -> TensorProto {
    let n = shape.iter().product();
    TensorProto::from_f32(name, shape, &vec![0.5; n])
}

fn ints(name: &str, shape: &[usize], v: &[i64]) -> TensorProto {
    TensorProto::from_i64(name, shape, v)
}

#[test]
fn bad_conv_attributes_and_weights() {
    let conv =
        |attrs: Vec<A>, wt: TensorProto| net(&[("Conv", &["x", "w"], &["y"], attrs)], vec![wt]);
    expect_error(
        "conv kernel 0×3",
        conv(vec![], w("w", &[2, 2, 0, 3])),
        &["conv_0", "kernel", "empty"],
    );
    expect_error(
        "conv kernel 3×0",
        conv(vec![], w("w", &[2, 2, 3, 0])),
        &["kernel", "empty"],
    );
    expect_error(
        "conv negative pads",
        conv(vec![A::ints("pads", &[-1, 0, 0, 0])], w("w", &[2, 2, 3, 3])),
        &["pads", "[-1, 0, 0, 0]"],
    );
    expect_error(
        "conv 3 pads",
        conv(vec![A::ints("pads", &[1, 1, 1])], w("w", &[2, 2, 3, 3])),
        &["pads"],
    );
    expect_error(
        "conv group 0",
        conv(vec![A::int("group", 0)], w("w", &[2, 2, 3, 3])),
        &["group 0"],
    );
    expect_error(
        "conv group -3",
        conv(vec![A::int("group", -3)], w("w", &[2, 2, 3, 3])),
        &["group -3"],
    );
    expect_error(
        "conv group 3 for 2 channels",
        conv(vec![A::int("group", 3)], w("w", &[2, 2, 3, 3])),
        &["group 3", "channels"],
    );
    expect_error(
        "conv group overflow",
        conv(vec![A::int("group", 1 << 62)], w("w", &[4, 4, 3, 3])),
        &["group"],
    );
    expect_error(
        "conv weight rank 2",
        conv(vec![], w("w", &[2, 2])),
        &["weight", "4-D"],
    );
    expect_error(
        "conv stride 0",
        conv(vec![A::ints("strides", &[0, 1])], w("w", &[2, 2, 3, 3])),
        &["strides"],
    );
    expect_error(
        "conv dilation huge",
        conv(
            vec![A::ints("dilations", &[1 << 40, 1])],
            w("w", &[2, 2, 3, 3]),
        ),
        &["dilations"],
    );
    expect_error(
        "conv 3-D strides",
        conv(vec![A::ints("strides", &[1, 1, 1])], w("w", &[2, 2, 3, 3])),
        &["strides", "2-D"],
    );
    expect_error(
        "conv kernel larger than input",
        conv(vec![], w("w", &[2, 2, 7, 7])),
        &["kernel", "smaller"],
    );
    expect_error(
        "conv pads make huge output",
        conv(
            vec![A::ints("pads", &[1 << 20, 1 << 20, 1 << 20, 1 << 20])],
            w("w", &[64, 2, 1, 1]),
        ),
        &["conv", "limit"],
    );
    expect_error(
        "conv unknown auto_pad",
        conv(
            vec![A::string("auto_pad", "SAME_MIDDLE")],
            w("w", &[2, 2, 3, 3]),
        ),
        &["auto_pad", "SAME_MIDDLE"],
    );
    expect_error(
        "conv bias of wrong length",
        net(
            &[("Conv", &["x", "w", "b"], &["y"], vec![])],
            vec![w("w", &[2, 2, 3, 3]), w("b", &[3])],
        ),
        &["bias", "3"],
    );
    expect_error(
        "conv on an integer tensor",
        net(
            &[
                ("Cast", &["x"], &["xi"], vec![A::int("to", 7)]),
                ("Conv", &["xi", "w"], &["y"], vec![]),
            ],
            vec![w("w", &[2, 2, 3, 3])],
        ),
        &["float"],
    );
    let ct = |attrs: Vec<A>, wt: TensorProto| {
        net(&[("ConvTranspose", &["x", "w"], &["y"], attrs)], vec![wt])
    };
    expect_error(
        "convT kernel 0",
        ct(vec![], w("w", &[2, 2, 0, 3])),
        &["ConvTranspose", "kernel"],
    );
    expect_error(
        "convT output_padding ≥ stride",
        ct(
            vec![A::ints("output_padding", &[1, 1])],
            w("w", &[2, 2, 3, 3]),
        ),
        &["output_padding"],
    );
    expect_error(
        "convT output_padding huge",
        ct(
            vec![
                A::ints("strides", &[2, 2]),
                A::ints("output_padding", &[i64::MAX, 0]),
            ],
            w("w", &[2, 2, 3, 3]),
        ),
        &["output_padding"],
    );
    expect_error(
        "convT output_shape huge",
        ct(
            vec![A::ints("output_shape", &[1 << 40, 5])],
            w("w", &[2, 2, 3, 3]),
        ),
        &["output_shape"],
    );
    expect_error(
        "convT channels mismatch",
        ct(vec![], w("w", &[3, 2, 3, 3])),
        &["channels"],
    );
}

#[test]
fn bad_shape_ops() {
    let reshape = |shape: &[i64]| {
        net(
            &[("Reshape", &["x", "s"], &["y"], vec![])],
            vec![ints("s", &[shape.len()], shape)],
        )
    };
    expect_error(
        "reshape 50 → [7, -1]",
        reshape(&[7, -1]),
        &["reshape_0", "cannot reshape", "[7, -1]"],
    );
    expect_error("reshape two -1", reshape(&[-1, -1]), &["bad dimension -1"]);
    expect_error("reshape -2", reshape(&[5, -2]), &["bad dimension -2"]);
    expect_error(
        "reshape overflowing dims",
        reshape(&[1 << 40, 1 << 40, 1 << 40]),
        &["cannot reshape"],
    );
    expect_error(
        "reshape 0 beyond rank",
        reshape(&[1, 2, 5, 5, 0]),
        &["reshape 0 at axis 4"],
    );
    expect_error(
        "gather index out of range",
        net(
            &[("Gather", &["x", "i"], &["y"], vec![A::int("axis", 1)])],
            vec![ints("i", &[2], &[0, 2])],
        ),
        &["gather", "index 2 out of range", "size 2"],
    );
    expect_error(
        "gather negative index out of range",
        net(
            &[("Gather", &["x", "i"], &["y"], vec![A::int("axis", 3)])],
            vec![ints("i", &[1], &[-6])],
        ),
        &["index -6 out of range"],
    );
    expect_error(
        "gather axis out of range",
        net(
            &[("Gather", &["x", "i"], &["y"], vec![A::int("axis", 4)])],
            vec![ints("i", &[1], &[0])],
        ),
        &["axis 4 out of range"],
    );
    expect_error(
        "gather on a scalar",
        net(
            &[
                ("Gather", &["s", "i"], &["g"], vec![]),
                ("Add", &["x", "g"], &["y"], vec![]),
            ],
            vec![w("s", &[]), ints("i", &[1], &[0])],
        ),
        &["axis 0 out of range for rank 0"],
    );
    let slice = |st: &[i64], en: &[i64], ax: &[i64], sp: &[i64]| {
        net(
            &[("Slice", &["x", "st", "en", "ax", "sp"], &["y"], vec![])],
            vec![
                ints("st", &[st.len()], st),
                ints("en", &[en.len()], en),
                ints("ax", &[ax.len()], ax),
                ints("sp", &[sp.len()], sp),
            ],
        )
    };
    expect_error(
        "slice step 0",
        slice(&[0], &[2], &[2], &[0]),
        &["slice", "step 0"],
    );
    expect_error(
        "slice repeated axis",
        slice(&[2, 2], &[3, 3], &[3, 3], &[1, 1]),
        &["repeat"],
    );
    expect_error(
        "slice length mismatch",
        slice(&[0, 0], &[2], &[2], &[1]),
        &["starts and ends"],
    );
    expect_error(
        "slice axis out of range",
        slice(&[0], &[2], &[7], &[1]),
        &["axis 7"],
    );
    // Extreme steps are fine (one element), not an overflow.
    let m = Model::from_proto(slice(&[4, 0], &[0, 5], &[3, 2], &[i64::MIN, i64::MAX])).unwrap();
    let y = m.run_float(&small_input(&m, 5), m.outputs()).unwrap();
    assert_eq!(y[0].shape(), &[1, 2, 1, 1]);
    expect_error(
        "concat of mismatched ranks",
        net(
            &[("Concat", &["x", "c"], &["y"], vec![A::int("axis", 1)])],
            vec![w("c", &[5, 5])],
        ),
        &["concat", "[1, 2, 5, 5]", "[5, 5]"],
    );
    expect_error(
        "concat of mismatched sizes",
        net(
            &[("Concat", &["x", "c"], &["y"], vec![A::int("axis", 1)])],
            vec![w("c", &[1, 2, 5, 4])],
        ),
        &["concat", "[1, 2, 5, 4]"],
    );
    expect_error(
        "concat of scalars",
        net(
            &[
                ("Concat", &["s", "s"], &["c"], vec![]),
                ("Add", &["x", "c"], &["y"], vec![]),
            ],
            vec![w("s", &[])],
        ),
        &["rank 0"],
    );
    let transpose = |perm: &[i64]| {
        net(
            &[("Transpose", &["x"], &["y"], vec![A::ints("perm", perm)])],
            vec![],
        )
    };
    expect_error(
        "transpose repeated perm",
        transpose(&[0, 1, 1, 2]),
        &["perm", "[0, 1, 1, 2]", "not a permutation"],
    );
    expect_error(
        "transpose perm out of range",
        transpose(&[0, 1, 2, 7]),
        &["perm", "7"],
    );
    expect_error(
        "transpose short perm",
        transpose(&[1, 0]),
        &["perm", "rank 4"],
    );
    // Permuting recurses once per axis: 10⁵ unit axes used to overflow the stack (an abort).
    expect_error(
        "transpose of a rank-100000 tensor",
        net(
            &[
                ("Reshape", &["x", "s"], &["d"], vec![]),
                ("Transpose", &["d"], &["y"], vec![]),
            ],
            vec![ints(
                "s",
                &[100_000],
                &[&[2, 25][..], &vec![1; 99_998]].concat(),
            )],
        ),
        &["transpose", "rank-100000"],
    );
    let split = |sizes: &[i64], outs: &[&str]| {
        net(
            &[
                ("Split", &["x", "s"], outs, vec![A::int("axis", 3)]),
                ("Identity", &[outs[0]], &["y"], vec![]),
            ],
            vec![ints("s", &[sizes.len()], sizes)],
        )
    };
    expect_error(
        "split sizes overflow",
        split(&[i64::MAX, i64::MAX, 2], &["a", "b", "c"]),
        &["split"],
    );
    expect_error(
        "split sizes do not add up",
        split(&[2, 2], &["a", "b"]),
        &["do not add up to 5"],
    );
    expect_error(
        "split more sizes than outputs",
        split(&[2, 2, 1], &["a", "b"]),
        &["[2, 2, 1]", "2 outputs"],
    );
    expect_error(
        "split negative size",
        split(&[6, -1], &["a", "b"]),
        &["split", "-1"],
    );
    expect_error(
        "squeeze of a non-1 axis",
        net(
            &[("Squeeze", &["x", "a"], &["y"], vec![])],
            vec![ints("a", &[1], &[1])],
        ),
        &["squeeze axis 1", "not 1"],
    );
    expect_error(
        "unsqueeze repeated axes",
        net(
            &[("Unsqueeze", &["x", "a"], &["y"], vec![])],
            vec![ints("a", &[2], &[0, 0])],
        ),
        &["unsqueeze"],
    );
    expect_error(
        "flatten axis out of range",
        net(
            &[("Flatten", &["x"], &["y"], vec![A::int("axis", 9)])],
            vec![],
        ),
        &["flatten axis 9"],
    );
}

#[test]
fn bad_pool_resize_pad_and_sizes() {
    let pool = |op: &str, attrs: Vec<A>| net(&[(op, &["x"], &["y"], attrs)], vec![]);
    expect_error(
        "maxpool kernel larger than input",
        pool("MaxPool", vec![A::ints("kernel_shape", &[9, 9])]),
        &["maxpool_0", "window 9", "larger", "input 5"],
    );
    expect_error(
        "maxpool without kernel_shape",
        pool("MaxPool", vec![]),
        &["kernel_shape"],
    );
    expect_error(
        "maxpool kernel 0",
        pool("MaxPool", vec![A::ints("kernel_shape", &[0, 2])]),
        &["kernel_shape"],
    );
    expect_error(
        "avgpool negative pads",
        pool(
            "AveragePool",
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("pads", &[0, -1, 0, 0]),
            ],
        ),
        &["pads"],
    );
    expect_error(
        "maxpool indices output",
        net(
            &[(
                "MaxPool",
                &["x"],
                &["y", "idx"],
                vec![A::ints("kernel_shape", &[2, 2])],
            )],
            vec![],
        ),
        &["indices"],
    );
    let resize = |scales: &[f32]| {
        net(
            &[("Resize", &["x", "", "s"], &["y"], vec![])],
            vec![TensorProto::from_f32("s", &[scales.len()], scales)],
        )
    };
    expect_error(
        "resize zero scale",
        resize(&[1.0, 1.0, 0.0, 2.0]),
        &["resize", "scale 0"],
    );
    expect_error(
        "resize negative scale",
        resize(&[1.0, 1.0, -2.0, 2.0]),
        &["scale -2"],
    );
    expect_error(
        "resize NaN scale",
        resize(&[1.0, 1.0, f32::NAN, 2.0]),
        &["scale nan"],
    );
    expect_error(
        "resize infinite scale",
        resize(&[1.0, 1.0, f32::INFINITY, 2.0]),
        &["scale inf"],
    );
    expect_error(
        "resize huge scale",
        resize(&[1.0, 1.0, 1e9, 1e9]),
        &["resize", "limit"],
    );
    expect_error(
        "resize tiny scale empties an axis",
        resize(&[1.0, 1.0, 0.01, 1.0]),
        &["resize", "from 5 to 0"],
    );
    expect_error(
        "resize 3 scales for rank 4",
        resize(&[1.0, 2.0, 2.0]),
        &["scales or sizes", "4 axes"],
    );
    let resize_sizes = |sizes: &[i64]| {
        net(
            &[(
                "Resize",
                &["x", "", "", "s"],
                &["y"],
                vec![A::string("mode", "linear")],
            )],
            vec![ints("s", &[sizes.len()], sizes)],
        )
    };
    expect_error(
        "resize negative size",
        resize_sizes(&[1, 2, -5, 5]),
        &["size -5"],
    );
    expect_error(
        "resize huge sizes",
        resize_sizes(&[1, 2, 1 << 40, 1 << 40]),
        &["limit"],
    );
    expect_error(
        "resize size 0",
        resize_sizes(&[1, 2, 0, 5]),
        &["from 5 to 0"],
    );
    expect_error(
        "resize unknown mode",
        net(
            &[(
                "Resize",
                &["x", "", "s"],
                &["y"],
                vec![A::string("mode", "cubic")],
            )],
            vec![w("s", &[4])],
        ),
        &["mode", "cubic"],
    );
    expect_error(
        "upsample infinite scale (opset 9)",
        net_with_input(
            &[1, 2, 5, 5],
            &[("Upsample", &["x", "s"], &["y"], vec![])],
            vec![TensorProto::from_f32(
                "s",
                &[4],
                &[1.0, 1.0, f32::INFINITY, 1.0],
            )],
            9,
        ),
        &["scale inf"],
    );
    let pad = |mode: &str, pads: &[i64]| {
        net(
            &[("Pad", &["x", "p"], &["y"], vec![A::string("mode", mode)])],
            vec![ints("p", &[pads.len()], pads)],
        )
    };
    expect_error(
        "pad huge",
        pad(
            "constant",
            &[0, 0, 1 << 30, 1 << 30, 0, 0, 1 << 30, 1 << 30],
        ),
        &["pad", "limit"],
    );
    expect_error(
        "pad overflowing",
        pad("constant", &[0, 0, i64::MAX, 0, 0, 0, i64::MAX, 0]),
        &["pad of"],
    );
    // The output is small (5 + MIN + MAX = 4) but `position − begin` overflowed.
    expect_error(
        "pad with compensating extreme pads",
        pad("edge", &[0, 0, i64::MIN, 0, 0, 0, i64::MAX, 0]),
        &["pad"],
    );
    expect_error(
        "pad crops below zero",
        pad("constant", &[0, 0, -4, 0, 0, 0, -4, 0]),
        &["pad of -4,-4"],
    );
    expect_error(
        "pad reflect wider than axis",
        pad("reflect", &[0, 0, 5, 0, 0, 0, 0, 0]),
        &["reflect", "smaller"],
    );
    expect_error(
        "pad wrong count",
        pad("constant", &[1, 1, 1]),
        &["3 pads", "4 axes"],
    );
    expect_error(
        "pad unknown mode",
        net(
            &[("Pad", &["x", "p"], &["y"], vec![A::string("mode", "wrap")])],
            vec![ints("p", &[8], &[0; 8])],
        ),
        &["mode", "wrap"],
    );
    // Edge padding of an axis emptied by a Slice.
    expect_error(
        "pad edge of an empty axis",
        net(
            &[
                ("Slice", &["x", "st", "en", "ax"], &["e"], vec![]),
                ("Pad", &["e", "p"], &["y"], vec![A::string("mode", "edge")]),
            ],
            vec![
                ints("st", &[1], &[3]),
                ints("en", &[1], &[3]),
                ints("ax", &[1], &[3]),
                ints("p", &[8], &[0, 0, 0, 1, 0, 0, 0, 1]),
            ],
        ),
        &["edge", "empty"],
    );
    expect_error(
        "global average pool of an empty plane",
        net(
            &[
                ("Slice", &["x", "st", "en", "ax"], &["e"], vec![]),
                ("GlobalAveragePool", &["e"], &["y"], vec![]),
            ],
            vec![
                ints("st", &[1], &[3]),
                ints("en", &[1], &[3]),
                ints("ax", &[1], &[2]),
            ],
        ),
        &["global pooling", "empty"],
    );
    expect_error(
        "maxpool of an empty axis (SAME_UPPER)",
        net(
            &[
                ("Slice", &["x", "st", "en", "ax"], &["e"], vec![]),
                (
                    "MaxPool",
                    &["e"],
                    &["y"],
                    vec![
                        A::ints("kernel_shape", &[2, 2]),
                        A::string("auto_pad", "SAME_UPPER"),
                    ],
                ),
            ],
            vec![
                ints("st", &[1], &[3]),
                ints("en", &[1], &[3]),
                ints("ax", &[1], &[2]),
            ],
        ),
        &["empty axis"],
    );
    expect_error(
        "conv of an empty batch",
        net(
            &[
                ("Slice", &["x", "st", "en", "ax"], &["e"], vec![]),
                (
                    "Conv",
                    &["e", "w"],
                    &["y"],
                    vec![A::string("auto_pad", "SAME_LOWER")],
                ),
            ],
            vec![
                ints("st", &[1], &[2]),
                ints("en", &[1], &[2]),
                ints("ax", &[1], &[3]),
                w("w", &[2, 2, 3, 3]),
            ],
        ),
        &["size 0"],
    );
    // Huge results from small inputs and shape-making ops: refused, never allocated.
    let big = |n: i64| ints("big_shape", &[4], &[n, 1, 1, 1]);
    expect_error(
        "constant of shape too large",
        net(
            &[
                ("ConstantOfShape", &["s"], &["c"], vec![]),
                ("Add", &["x", "c"], &["y"], vec![]),
            ],
            vec![ints("s", &[3], &[1 << 62, 1 << 62, 4])],
        ),
        &["constantofshape", "limit"],
    );
    expect_error(
        "constant of shape negative",
        net(
            &[
                ("ConstantOfShape", &["s"], &["c"], vec![]),
                ("Add", &["x", "c"], &["y"], vec![]),
            ],
            vec![ints("s", &[2], &[4, -1])],
        ),
        &["negative"],
    );
    expect_error(
        "broadcast against a large constant",
        net(
            &[
                ("ConstantOfShape", &["big_shape"], &["c"], vec![]),
                ("Add", &["x", "c"], &["y"], vec![]),
            ],
            vec![big(1 << 24)],
        ),
        &["broadcast", "limit"],
    );
    expect_error(
        "matmul outer product too large",
        net(
            &[
                ("Reshape", &["x", "s"], &["col"], vec![]),
                ("ConstantOfShape", &["rs"], &["row"], vec![]),
                ("MatMul", &["col", "row"], &["y"], vec![]),
            ],
            vec![ints("s", &[2], &[50, 1]), ints("rs", &[2], &[1, 1 << 24])],
        ),
        &["matmul", "limit"],
    );
    expect_error(
        "gemm outer product too large",
        net(
            &[
                ("Reshape", &["x", "s"], &["col"], vec![]),
                ("ConstantOfShape", &["rs"], &["row"], vec![]),
                ("Gemm", &["col", "row"], &["y"], vec![]),
            ],
            vec![ints("s", &[2], &[50, 1]), ints("rs", &[2], &[1, 1 << 24])],
        ),
        &["gemm", "limit"],
    );
}

#[test]
fn bad_other_ops() {
    let unary = |op: &str, attrs: Vec<A>, inits: Vec<TensorProto>, ins: &[&str]| {
        net(&[(op, ins, &["y"], attrs)], inits)
    };
    expect_error(
        "softmax axis out of range",
        unary("Softmax", vec![A::int("axis", 4)], vec![], &["x"]),
        &["axis 4"],
    );
    expect_error(
        "reduce axis out of range",
        unary("ReduceMean", vec![A::ints("axes", &[-5])], vec![], &["x"]),
        &["axis -5"],
    );
    expect_error(
        "clip with vector bounds",
        unary("Clip", vec![], vec![w("lo", &[2])], &["x", "lo"]),
        &["clip", "scalar"],
    );
    expect_error(
        "batchnorm with wrong parameter length",
        unary(
            "BatchNormalization",
            vec![],
            vec![w("s", &[3]), w("b", &[2]), w("m", &[2]), w("v", &[2])],
            &["x", "s", "b", "m", "v"],
        ),
        &["batchnormalization", "3 values", "2 channels"],
    );
    expect_error(
        "batchnorm in training mode",
        net(
            &[(
                "BatchNormalization",
                &["x", "s", "b", "m", "v"],
                &["y", "rm", "rv"],
                vec![],
            )],
            vec![w("s", &[2]), w("b", &[2]), w("m", &[2]), w("v", &[2])],
        ),
        &["training"],
    );
    expect_error(
        "gemm of 4-D inputs",
        unary("Gemm", vec![], vec![w("b", &[5, 5])], &["x", "b"]),
        &["gemm", "2-d"],
    );
    expect_error(
        "matmul inner sizes differ",
        unary("MatMul", vec![], vec![w("b", &[4, 3])], &["x", "b"]),
        &["matmul", "inner sizes 5 and 4"],
    );
    expect_error(
        "add shapes do not broadcast",
        unary("Add", vec![], vec![w("c", &[3])], &["x", "c"]),
        &["broadcast", "[3]"],
    );
    expect_error(
        "prelu slope too big",
        unary("PRelu", vec![], vec![w("c", &[2, 2, 5, 5])], &["x", "c"]),
        &["prelu", "slope"],
    );
    expect_error(
        "max of three inputs",
        unary("Max", vec![], vec![w("c", &[1])], &["x", "c", "c"]),
        &["max", "3 inputs"],
    );
    expect_error(
        "missing input",
        unary("Add", vec![], vec![], &["x"]),
        &["missing input 1"],
    );
    expect_error(
        "constant without value",
        net(
            &[
                ("Constant", &[], &["c"], vec![]),
                ("Add", &["x", "c"], &["y"], vec![]),
            ],
            vec![],
        ),
        &["constant", "value"],
    );
}

/// Integer edge values in shape arithmetic wrap (as in NumPy) instead of panicking.
#[test]
fn integer_extremes_do_not_panic() {
    install_panic_recorder();
    for op in ["Neg", "Abs"] {
        let proto = net(
            &[
                (op, &["c"], &["n"], vec![]),
                ("Cast", &["n"], &["f"], vec![A::int("to", 1)]),
                ("Add", &["x", "f"], &["y"], vec![]),
            ],
            vec![ints("c", &[1], &[i64::MIN])],
        );
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let m = Model::from_proto(proto)?;
            m.run_float(&small_input(&m, 5), m.outputs())
        }));
        match outcome {
            Err(p) => panic!("{op} of i64::MIN panicked: {}", panic_text(&p)),
            Ok(r) => {
                r.unwrap_or_else(|e| panic!("{op} of i64::MIN: {e}"));
            }
        }
    }
}

#[test]
fn bad_graphs() {
    expect_error(
        "input of rank 3",
        net_with_input(&[1, 5, 5], &[("Relu", &["x"], &["y"], vec![])], vec![], 13),
        &["input 'x'", "rank 3"],
    );
    expect_error(
        "input without channel count",
        {
            let mut m = net(&[("Relu", &["x"], &["y"], vec![])], vec![]);
            m.graph.input[0].shape = Some(vec![
                Dim::Value(1),
                Dim::Param("C".into()),
                Dim::Value(5),
                Dim::Value(5),
            ]);
            m
        },
        &["channel"],
    );
    // A valid model fed a 3-D tensor.
    let m = Model::from_proto(net(&[("Relu", &["x"], &["y"], vec![])], vec![])).unwrap();
    let e = m
        .run_float(&Tensor::zeros(&[2, 5, 5]), m.outputs())
        .unwrap_err();
    assert!(e.to_string().contains("4-D"), "{e}");
    let e = m
        .run_float(&Tensor::zeros(&[1, 3, 5, 5]), m.outputs())
        .unwrap_err();
    assert!(e.to_string().contains("2 channels"), "{e}");
    let e = m
        .run_float(&Tensor::zeros(&[1, 2, 0, 5]), m.outputs())
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");

    expect_error(
        "cycle",
        net(
            &[
                ("Add", &["x", "b"], &["a"], vec![]),
                ("Relu", &["a"], &["b"], vec![]),
                ("Relu", &["a"], &["y"], vec![]),
            ],
            vec![],
        ),
        &["cycle"],
    );
    expect_error(
        "self loop",
        net(&[("Add", &["x", "y"], &["y"], vec![])], vec![]),
        &["cycle"],
    );
    expect_error(
        "undefined value",
        net(&[("Add", &["x", "nowhere"], &["y"], vec![])], vec![]),
        &["add_0", "'nowhere'"],
    );
    expect_error(
        "value produced twice",
        net(
            &[
                ("Relu", &["x"], &["y"], vec![]),
                ("Sigmoid", &["x"], &["y"], vec![]),
            ],
            vec![],
        ),
        &["'y'", "twice"],
    );
    expect_error(
        "graph output never produced",
        net(&[("Relu", &["x"], &["z"], vec![])], vec![]),
        &["output 'y'"],
    );
    expect_error(
        "two graph inputs",
        {
            let mut m = net(&[("Add", &["x", "x2"], &["y"], vec![])], vec![]);
            m.graph.input.push(m.graph.input[0].clone());
            m.graph.input[1].name = "x2".into();
            m
        },
        &["2 inputs", "x2"],
    );
    expect_error(
        "initializer with missing data",
        net(
            &[("Add", &["x", "c"], &["y"], vec![])],
            vec![TensorProto::from_f32("c", &[4], &[1.0])],
        ),
        &["initializer 'c'"],
    );

    // Unsupported ops: every op type and every node in one message.
    let proto = net(
        &[
            ("FooBar", &["x"], &["a"], vec![]),
            ("Relu", &["a"], &["b"], vec![]),
            ("FooBar", &["b"], &["c"], vec![]),
            ("Loop", &["c"], &["y"], vec![]),
        ],
        vec![],
    );
    let e = error_of("unsupported ops", proto);
    let msg = e.to_string();
    match &e {
        Error::UnsupportedOps(ops) => {
            let types: Vec<&str> = ops.iter().map(|o| o.op_type.as_str()).collect();
            assert_eq!(types, ["FooBar", "Loop"], "{msg}");
            assert_eq!(ops[0].nodes, ["foobar_0", "foobar_2"], "{msg}");
            assert_eq!(ops[1].nodes, ["loop_3"], "{msg}");
        }
        other => panic!("expected UnsupportedOps, got {other:?}"),
    }
    for word in ["FooBar", "foobar_0", "foobar_2", "Loop", "loop_3"] {
        assert!(msg.contains(word), "'{word}' missing from: {msg}");
    }
    assert_eq!(msg.lines().count(), 1, "one message: {msg}");
    eprintln!("{msg}");
}

/// A node with no outputs that reads the input: `build_layers` indexes `outputs[0]`.
#[test]
fn node_without_outputs_is_an_error() {
    let proto = net(
        &[
            ("Relu", &["x"], &[], vec![]),
            ("Sigmoid", &["x"], &["y"], vec![]),
        ],
        vec![],
    );
    let e = error_of("node without outputs", proto);
    assert!(e.to_string().contains("relu_0"), "{e}");
}
