//! Finite-difference checks of every differentiable op, on small generated graphs, plus forward
//! values of the geometry-heavy ops against onnxruntime.
//!
//! Each gradient case builds a tiny model `x → op(s) → y`, draws `x` from a fixed-seed PRNG and a
//! random cotangent `r` of `y`'s shape, and compares `tape.backward([(y, r)])` with the central
//! difference of the objective `Σ r ⊙ y` (accumulated in f64 over f32 forward runs) for every input
//! element. Inputs keep away from kinks (ReLU at 0, Clip bounds, max ties): values are distinct,
//! at least 0.9/n apart and at least 0.1 from zero.

use std::panic::{catch_unwind, AssertUnwindSafe};

use convscope_engine::{ExecConfig, Model, ReluRule, Tensor, ValueId};
use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, TensorProto};

// ---------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1B5_4A32)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// FNV-1a of the case name: every case gets its own, stable seed.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `n` distinct values in ±[0.1, 1]: magnitudes on a shuffled grid (at least 0.9/n apart), random
/// signs. No value is near zero and no two are within a finite-difference step of each other.
fn distinct(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut mags: Vec<f32> = (0..n)
        .map(|k| 0.1 + 0.9 * (k as f32 + 0.5) / n as f32)
        .collect();
    rng.shuffle(&mut mags);
    mags.into_iter()
        .map(|m| if rng.next_u64() & 1 == 0 { m } else { -m })
        .collect()
}

/// A distinct-valued input tensor (see [`distinct`]).
fn xin(rng: &mut Rng, shape: &[usize]) -> Tensor {
    Tensor::new(shape.to_vec(), distinct(rng, numel(shape))).unwrap()
}

/// Like [`xin`], scaled by `s` (for ops whose interesting range is wider than ±1).
fn xscaled(rng: &mut Rng, shape: &[usize], s: f32) -> Tensor {
    let d = distinct(rng, numel(shape))
        .into_iter()
        .map(|v| v * s)
        .collect();
    Tensor::new(shape.to_vec(), d).unwrap()
}

/// Distinct positive values in [0.1, 1].
fn xpos(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let d = distinct(rng, numel(shape))
        .into_iter()
        .map(f32::abs)
        .collect();
    Tensor::new(shape.to_vec(), d).unwrap()
}

/// Moves every element within `margin` of a kink to `margin` past it.
fn avoid(mut x: Tensor, kinks: &[f32], margin: f32) -> Tensor {
    for v in x.data_mut() {
        for &k in kinks {
            if (*v - k).abs() < margin {
                *v = if *v >= k { k + margin } else { k - margin };
            }
        }
    }
    x
}

/// Deterministic "pattern" data shared with the onnxruntime one-off below:
/// `(((i·a + b) mod m) − off) / div`.
fn pattern(n: usize, a: usize, b: usize, m: usize, off: f32, div: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * a + b) % m) as f32 - off) / div)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Model building
// ---------------------------------------------------------------------------------------------

/// A test graph: input `x` of a fixed 4-D shape, output `y`.
struct Net {
    g: GraphBuilder,
    opset: i64,
    nodes: usize,
}

impl Net {
    fn new(x: &[usize], opset: i64) -> Net {
        Net::named_input("x", x, opset)
    }

    fn named_input(name: &str, x: &[usize], opset: i64) -> Net {
        let mut g = GraphBuilder::new("case");
        let dims: Vec<Dim> = x.iter().map(|&d| Dim::Value(d as i64)).collect();
        g.input(name, &dims).output("y", &[]);
        Net { g, opset, nodes: 0 }
    }

    /// A float initializer.
    fn f(&mut self, name: &str, dims: &[usize], data: &[f32]) -> &mut Self {
        assert_eq!(numel(dims), data.len(), "initializer {name}");
        self.g.initializer(TensorProto::from_f32(name, dims, data));
        self
    }

    /// A float initializer with uniform values in `[lo, hi)`.
    fn rand(&mut self, rng: &mut Rng, name: &str, dims: &[usize], lo: f32, hi: f32) -> &mut Self {
        let data = rng.vec(numel(dims), lo, hi);
        self.f(name, dims, &data)
    }

    /// An int64 initializer.
    fn i(&mut self, name: &str, dims: &[usize], data: &[i64]) -> &mut Self {
        assert_eq!(numel(dims), data.len(), "initializer {name}");
        self.g.initializer(TensorProto::from_i64(name, dims, data));
        self
    }

    fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<A>) -> &mut Self {
        let name = format!("{}_{}", op.to_lowercase(), self.nodes);
        self.nodes += 1;
        self.g.node(op, &name, inputs, outputs, attrs);
        self
    }

    fn build(&self) -> Result<Model, String> {
        Model::from_proto(self.g.build(self.opset)).map_err(|e| format!("load: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient checking
// ---------------------------------------------------------------------------------------------

/// Finite-difference step (inputs are of scale 1).
const EPS: f32 = 1e-3;

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// `Σ r ⊙ y(x)` in f64.
fn objective(model: &Model, x: &Tensor, y: ValueId, r: &Tensor) -> Result<f64, String> {
    let v = model.run_float(x, &[y]).map_err(err("forward"))?.remove(0);
    Ok(v.data()
        .iter()
        .zip(r.data())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum())
}

/// Central differences of [`objective`] for every input element.
fn finite_diff(model: &Model, x: &Tensor, y: ValueId, r: &Tensor) -> Result<Vec<f64>, String> {
    let mut xp = x.clone();
    (0..x.len())
        .map(|i| {
            let x0 = x.data()[i];
            let (hi, lo) = (x0 + EPS, x0 - EPS);
            xp.data_mut()[i] = hi;
            let jp = objective(model, &xp, y, r)?;
            xp.data_mut()[i] = lo;
            let jm = objective(model, &xp, y, r)?;
            xp.data_mut()[i] = x0;
            // Divide by the step actually taken in f32.
            Ok((jp - jm) / (hi as f64 - lo as f64))
        })
        .collect()
}

/// Passes when `max |ana − fd| ≤ 2e-2·max|fd| + 1e-3`; returns the worst error relative to
/// `max|fd|`. A gradient off by 10 % anywhere near its largest entries fails.
fn compare(ana: &[f64], fd: &[f64]) -> Result<f64, String> {
    if ana.len() != fd.len() {
        return Err(format!(
            "gradient has {} elements, the input {}",
            ana.len(),
            fd.len()
        ));
    }
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale < 1e-3 {
        return Err(format!(
            "finite-difference gradient is ~0 (max {scale:e}): the case checks nothing"
        ));
    }
    let tol = 2e-2 * scale + 1e-3;
    let (worst_i, worst) = ana
        .iter()
        .zip(fd)
        .map(|(a, f)| {
            if a.is_finite() {
                (a - f).abs()
            } else {
                f64::INFINITY
            }
        })
        .enumerate()
        .fold((0, 0.0f64), |m, (i, e)| if e > m.1 { (i, e) } else { m });
    if worst > tol {
        return Err(format!(
            "max |analytic - fd| = {worst:.3e} at element {worst_i} (analytic {:.6}, fd {:.6}); \
             tolerance {tol:.3e}, max |fd| {scale:.3e}",
            ana[worst_i], fd[worst_i]
        ));
    }
    Ok(worst / scale)
}

/// Analytic input gradient of `Σ r ⊙ y` and its finite-difference estimate.
fn gradients(model: &Model, x: &Tensor, r_seed: u64) -> Result<(Vec<f64>, Vec<f64>), String> {
    let y = model.resolve("y").map_err(err("resolve y"))?;
    let y0 = model.run_float(x, &[y]).map_err(err("forward"))?.remove(0);
    let mut rng = Rng::new(r_seed ^ 0xA5A5_A5A5);
    let r = Tensor::new(y0.shape().to_vec(), rng.vec(y0.len(), -1.0, 1.0)).unwrap();
    gradients_with(model, x, y, r)
}

fn gradients_with(
    model: &Model,
    x: &Tensor,
    y: ValueId,
    r: Tensor,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let tape = model.forward(x, &[y]).map_err(err("forward"))?;
    let ana = tape
        .backward(vec![(y, r.clone())], &[])
        .map_err(err("backward"))?
        .input;
    if ana.shape() != x.shape() {
        return Err(format!(
            "input gradient has shape {:?}, input {:?}",
            ana.shape(),
            x.shape()
        ));
    }
    let fd = finite_diff(model, x, y, &r)?;
    Ok((ana.data().iter().map(|&v| v as f64).collect(), fd))
}

/// Collects the failures of a family of named cases and reports them all at the end.
#[derive(Default)]
struct Family {
    failures: Vec<String>,
    passed: usize,
}

impl Family {
    /// Runs one case: `build` returns the graph and the input; the check is the gradient of a
    /// random projection of `y`.
    fn case(&mut self, name: &str, build: impl FnOnce(&mut Rng) -> (Net, Tensor)) {
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<f64, String> {
            let mut rng = Rng::new(seed_of(name));
            let (net, x) = build(&mut rng);
            let model = net.build()?;
            let (ana, fd) = gradients(&model, &x, seed_of(name))?;
            compare(&ana, &fd)
        }));
        match outcome {
            Ok(Ok(rel)) => {
                self.passed += 1;
                eprintln!("ok   {name:<44} worst error {rel:.2e} of max|grad|");
            }
            Ok(Err(e)) => self.failures.push(format!("{name}: {e}")),
            Err(p) => self
                .failures
                .push(format!("{name}: panicked: {}", panic_text(&p))),
        }
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} failing case(s) ({} passed):\n  {}",
            self.failures.len(),
            self.passed,
            self.failures.join("\n  ")
        );
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

/// `x → op(x, consts…) → y` with random-uniform float constants.
fn single(
    rng: &mut Rng,
    x: &[usize],
    opset: i64,
    op: &str,
    inputs: &[&str],
    consts: &[(&str, &[usize])],
    attrs: Vec<A>,
) -> Net {
    let mut n = Net::new(x, opset);
    for (name, dims) in consts {
        n.rand(rng, name, dims, -1.0, 1.0);
    }
    n.node(op, inputs, &["y"], attrs);
    n
}

// ---------------------------------------------------------------------------------------------
// Conv and ConvTranspose
// ---------------------------------------------------------------------------------------------

fn conv_case(fam: &mut Family, name: &str, x: &[usize], w: &[usize], bias: bool, attrs: Vec<A>) {
    conv_like(fam, "Conv", name, x, w, bias, attrs)
}

fn conv_like(
    fam: &mut Family,
    op: &str,
    name: &str,
    x: &[usize],
    w: &[usize],
    bias: bool,
    attrs: Vec<A>,
) {
    let group = attrs
        .iter()
        .find(|a| a.name == "group")
        .map_or(1, |a| match a.value {
            convscope_onnx::AttributeValue::Int(g) => g as usize,
            _ => 1,
        });
    let out_channels = if op == "Conv" { w[0] } else { w[1] * group };
    fam.case(name, |rng| {
        let mut n = Net::new(x, 13);
        n.rand(rng, "w", w, -1.0, 1.0);
        let mut inputs = vec!["x", "w"];
        if bias {
            n.rand(rng, "b", &[out_channels], -1.0, 1.0);
            inputs.push("b");
        }
        n.node(op, &inputs, &["y"], attrs);
        (n, xin(rng, x))
    });
}

#[test]
fn grad_conv() {
    let mut f = Family::default();
    let p = |v: &[i64]| A::ints("pads", v);
    conv_case(
        &mut f,
        "conv_3x3_pad1_bias",
        &[1, 2, 5, 5],
        &[3, 2, 3, 3],
        true,
        vec![p(&[1, 1, 1, 1])],
    );
    conv_case(
        &mut f,
        "conv_3x3_pad1_nobias_batch2",
        &[2, 2, 5, 5],
        &[3, 2, 3, 3],
        false,
        vec![p(&[1, 1, 1, 1])],
    );
    conv_case(
        &mut f,
        "conv_3x3_nopad",
        &[1, 3, 6, 5],
        &[2, 3, 3, 3],
        false,
        vec![],
    );
    conv_case(
        &mut f,
        "conv_stride2_pads_0011",
        &[1, 2, 6, 6],
        &[3, 2, 3, 3],
        true,
        vec![p(&[0, 0, 1, 1]), A::ints("strides", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_stride2_batch2",
        &[2, 2, 5, 6],
        &[3, 2, 3, 3],
        false,
        vec![p(&[1, 0, 0, 1]), A::ints("strides", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_dilation2",
        &[1, 2, 7, 7],
        &[2, 2, 3, 3],
        true,
        vec![p(&[1, 2, 2, 1]), A::ints("dilations", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_groups2",
        &[1, 4, 5, 5],
        &[4, 2, 3, 3],
        true,
        vec![p(&[1, 1, 1, 1]), A::int("group", 2)],
    );
    conv_case(
        &mut f,
        "conv_groups2_stride2_batch2",
        &[2, 4, 5, 5],
        &[6, 2, 3, 3],
        false,
        vec![
            p(&[1, 1, 1, 1]),
            A::int("group", 2),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_depthwise_5x5_s2_pads_1122",
        &[1, 3, 9, 9],
        &[3, 1, 5, 5],
        true,
        vec![
            p(&[1, 1, 2, 2]),
            A::int("group", 3),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_depthwise_3x3_batch2",
        &[2, 3, 5, 5],
        &[3, 1, 3, 3],
        false,
        vec![p(&[1, 1, 1, 1]), A::int("group", 3)],
    );
    conv_case(
        &mut f,
        "conv_depthwise_dilated_rect",
        &[1, 2, 6, 7],
        &[2, 1, 3, 2],
        false,
        vec![
            p(&[2, 0, 1, 1]),
            A::int("group", 2),
            A::ints("dilations", &[2, 1]),
            A::ints("strides", &[1, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_depth_multiplier2",
        &[1, 2, 5, 5],
        &[4, 1, 3, 3],
        false,
        vec![p(&[1, 1, 1, 1]), A::int("group", 2)],
    );
    conv_case(
        &mut f,
        "conv_pointwise_1x1",
        &[1, 3, 4, 4],
        &[5, 3, 1, 1],
        true,
        vec![],
    );
    conv_case(
        &mut f,
        "conv_pointwise_1x1_batch2",
        &[2, 3, 4, 5],
        &[2, 3, 1, 1],
        false,
        vec![],
    );
    conv_case(
        &mut f,
        "conv_pointwise_1x1_stride2",
        &[1, 3, 5, 5],
        &[2, 3, 1, 1],
        false,
        vec![A::ints("strides", &[2, 2])],
    );
    conv_case(
        &mut f,
        "conv_same_upper_s2",
        &[1, 2, 6, 6],
        &[2, 2, 3, 3],
        true,
        vec![
            A::string("auto_pad", "SAME_UPPER"),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_same_upper_k4",
        &[1, 2, 5, 6],
        &[2, 2, 4, 4],
        false,
        vec![A::string("auto_pad", "SAME_UPPER")],
    );
    conv_case(
        &mut f,
        "conv_same_lower_k4",
        &[1, 2, 5, 6],
        &[2, 2, 4, 4],
        false,
        vec![A::string("auto_pad", "SAME_LOWER")],
    );
    conv_case(
        &mut f,
        "conv_same_lower_s2",
        &[1, 2, 7, 6],
        &[2, 2, 3, 3],
        false,
        vec![
            A::string("auto_pad", "SAME_LOWER"),
            A::ints("strides", &[2, 2]),
        ],
    );
    conv_case(
        &mut f,
        "conv_valid",
        &[1, 2, 6, 5],
        &[2, 2, 3, 2],
        true,
        vec![A::string("auto_pad", "VALID")],
    );
    conv_case(
        &mut f,
        "conv_rect_kernel_stride_1x2",
        &[1, 2, 5, 7],
        &[3, 2, 3, 2],
        false,
        vec![p(&[1, 0, 0, 1]), A::ints("strides", &[1, 2])],
    );
    conv_case(
        &mut f,
        "conv_kernel_shape_attr",
        &[1, 2, 5, 5],
        &[2, 2, 3, 3],
        false,
        vec![A::ints("kernel_shape", &[3, 3]), p(&[0, 1, 2, 1])],
    );
    f.finish();
}

#[test]
fn grad_conv_transpose() {
    let mut f = Family::default();
    let ct = |f: &mut Family, name: &str, x: &[usize], w: &[usize], bias: bool, attrs: Vec<A>| {
        conv_like(f, "ConvTranspose", name, x, w, bias, attrs)
    };
    ct(
        &mut f,
        "convT_s2_pads1_outpad1_bias",
        &[1, 3, 4, 4],
        &[3, 2, 3, 3],
        true,
        vec![
            A::ints("strides", &[2, 2]),
            A::ints("pads", &[1, 1, 1, 1]),
            A::ints("output_padding", &[1, 1]),
        ],
    );
    ct(
        &mut f,
        "convT_s1_plain",
        &[1, 2, 3, 4],
        &[2, 3, 3, 3],
        false,
        vec![],
    );
    ct(
        &mut f,
        "convT_group2_s2",
        &[1, 4, 3, 3],
        &[4, 1, 3, 3],
        true,
        vec![A::ints("strides", &[2, 2]), A::int("group", 2)],
    );
    ct(
        &mut f,
        "convT_group2_dilated_asym",
        &[1, 4, 2, 3],
        &[4, 1, 2, 3],
        false,
        vec![
            A::ints("strides", &[1, 2]),
            A::ints("dilations", &[2, 1]),
            A::ints("pads", &[0, 1, 1, 0]),
            A::int("group", 2),
        ],
    );
    ct(
        &mut f,
        "convT_same_upper_s2",
        &[1, 2, 3, 3],
        &[2, 2, 3, 3],
        false,
        vec![
            A::ints("strides", &[2, 2]),
            A::string("auto_pad", "SAME_UPPER"),
        ],
    );
    ct(
        &mut f,
        "convT_output_shape",
        &[1, 2, 3, 3],
        &[2, 2, 3, 3],
        false,
        vec![
            A::ints("strides", &[2, 2]),
            A::ints("output_shape", &[6, 5]),
        ],
    );
    ct(
        &mut f,
        "convT_batch2_s3_k2",
        &[2, 2, 3, 3],
        &[2, 2, 2, 2],
        false,
        vec![A::ints("strides", &[3, 3])],
    );
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Normalisation and element-wise unary ops
// ---------------------------------------------------------------------------------------------

const XS: [usize; 4] = [2, 3, 4, 5];

#[test]
fn grad_unary() {
    let mut f = Family::default();
    f.case("batchnorm", |rng| {
        let mut n = Net::new(&XS, 13);
        n.rand(rng, "s", &[3], 0.5, 1.5)
            .rand(rng, "b", &[3], -1.0, 1.0)
            .rand(rng, "m", &[3], -0.5, 0.5)
            .rand(rng, "v", &[3], 0.2, 2.0)
            .node(
                "BatchNormalization",
                &["x", "s", "b", "m", "v"],
                &["y"],
                vec![A::float("epsilon", 1e-3)],
            );
        (n, xin(rng, &XS))
    });
    let simple: &[(&str, &str, Vec<A>)] = &[
        ("relu", "Relu", vec![]),
        ("leaky_relu", "LeakyRelu", vec![A::float("alpha", 0.2)]),
        ("leaky_relu_default", "LeakyRelu", vec![]),
        ("elu", "Elu", vec![A::float("alpha", 0.7)]),
        ("selu", "Selu", vec![]),
        ("sigmoid", "Sigmoid", vec![]),
        ("tanh", "Tanh", vec![]),
        ("erf", "Erf", vec![]),
        ("exp", "Exp", vec![]),
        ("neg", "Neg", vec![]),
        ("abs", "Abs", vec![]),
        ("reciprocal", "Reciprocal", vec![]),
        ("softplus", "Softplus", vec![]),
    ];
    for (name, op, attrs) in simple {
        f.case(name, |rng| {
            (
                single(rng, &XS, 13, op, &["x"], &[], attrs.clone()),
                xscaled(rng, &XS, 2.0),
            )
        });
    }
    for (name, op) in [("sqrt", "Sqrt"), ("log", "Log")] {
        f.case(name, |rng| {
            (
                single(rng, &XS, 13, op, &["x"], &[], vec![]),
                xpos(rng, &XS),
            )
        });
    }
    f.case("prelu_per_channel", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "PRelu",
            &["x", "slope"],
            &[("slope", &[3, 1, 1])],
            vec![],
        );
        (n, xin(rng, &XS))
    });
    // Scaled to ±4 so that both saturated ends are exercised; kinks at z = 0 and z = 1.
    f.case("hard_sigmoid", |rng| {
        let x = avoid(xscaled(rng, &XS, 4.0), &[-2.5, 2.5], 0.02);
        (single(rng, &XS, 13, "HardSigmoid", &["x"], &[], vec![]), x)
    });
    f.case("hard_sigmoid_alpha_beta", |rng| {
        let x = avoid(xscaled(rng, &XS, 4.0), &[-2.0, 3.0], 0.02);
        let attrs = vec![A::float("alpha", 0.25), A::float("beta", 0.5)];
        (single(rng, &XS, 13, "HardSigmoid", &["x"], &[], attrs), x)
    });
    f.case("hard_swish", |rng| {
        let x = avoid(xscaled(rng, &XS, 4.0), &[-3.0, 3.0], 0.02);
        (single(rng, &XS, 14, "HardSwish", &["x"], &[], vec![]), x)
    });
    f.case("clip_opset13_inputs", |rng| {
        let mut n = Net::new(&XS, 13);
        n.f("lo", &[], &[-0.5]).f("hi", &[], &[0.6]).node(
            "Clip",
            &["x", "lo", "hi"],
            &["y"],
            vec![],
        );
        (n, avoid(xin(rng, &XS), &[-0.5, 0.6], 0.01))
    });
    f.case("clip_opset13_min_only", |rng| {
        let mut n = Net::new(&XS, 13);
        n.f("lo", &[], &[-0.3])
            .node("Clip", &["x", "lo"], &["y"], vec![]);
        (n, avoid(xin(rng, &XS), &[-0.3], 0.01))
    });
    f.case("clip_opset13_max_only", |rng| {
        let mut n = Net::new(&XS, 13);
        n.f("hi", &[], &[0.2])
            .node("Clip", &["x", "", "hi"], &["y"], vec![]);
        (n, avoid(xin(rng, &XS), &[0.2], 0.01))
    });
    f.case("clip_opset6_attrs", |rng| {
        let attrs = vec![A::float("min", -0.4), A::float("max", 0.3)];
        let x = avoid(xin(rng, &XS), &[-0.4, 0.3], 0.01);
        (single(rng, &XS, 6, "Clip", &["x"], &[], attrs), x)
    });
    f.case("identity", |rng| {
        (
            single(rng, &XS, 13, "Identity", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("dropout_opset13", |rng| {
        (
            single(rng, &XS, 13, "Dropout", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("dropout_opset13_with_mask", |rng| {
        let mut n = Net::new(&XS, 13);
        n.node("Dropout", &["x"], &["y", "mask"], vec![]);
        (n, xin(rng, &XS))
    });
    f.case("dropout_opset10_ratio_attr", |rng| {
        let attrs = vec![A::float("ratio", 0.3)];
        (
            single(rng, &XS, 10, "Dropout", &["x"], &[], attrs),
            xin(rng, &XS),
        )
    });
    f.case("cast_float_to_float", |rng| {
        (
            single(rng, &XS, 13, "Cast", &["x"], &[], vec![A::int("to", 1)]),
            xin(rng, &XS),
        )
    });
    f.finish();
}

#[test]
fn grad_softmax() {
    let mut f = Family::default();
    let cases: &[(&str, &str, i64, Option<i64>)] = &[
        ("softmax_axis1_opset13", "Softmax", 13, Some(1)),
        ("softmax_default_opset13", "Softmax", 13, None),
        ("softmax_axis_neg2_opset13", "Softmax", 13, Some(-2)),
        ("softmax_legacy_default_opset11", "Softmax", 11, None),
        ("softmax_legacy_axis2_opset11", "Softmax", 11, Some(2)),
        ("logsoftmax_axis1_opset13", "LogSoftmax", 13, Some(1)),
        ("logsoftmax_default_opset13", "LogSoftmax", 13, None),
        ("logsoftmax_legacy_default_opset11", "LogSoftmax", 11, None),
    ];
    for &(name, op, opset, axis) in cases {
        let attrs: Vec<A> = axis.map(|a| A::int("axis", a)).into_iter().collect();
        f.case(name, |rng| {
            (
                single(rng, &XS, opset, op, &["x"], &[], attrs),
                xscaled(rng, &XS, 2.0),
            )
        });
    }
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Binary ops with broadcasting
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_binary() {
    let mut f = Family::default();
    for op in ["Add", "Sub", "Mul", "Div", "Pow"] {
        for (cshape, cname) in [
            (&[3usize, 1, 1][..], "c311"),
            (&[5][..], "c5"),
            (&XS[..], "same"),
        ] {
            for x_first in [true, false] {
                let name = format!(
                    "{}_{}",
                    op.to_lowercase(),
                    if x_first {
                        format!("x_{cname}")
                    } else {
                        format!("{cname}_x")
                    }
                );
                f.case(&name, |rng| {
                    let mut n = Net::new(&XS, 13);
                    let cdata: Vec<f32> = match (op, x_first) {
                        // Exponents, including exactly 2 (a fast path in the op).
                        ("Pow", true) => {
                            let mut c = rng.vec(numel(cshape), 0.5, 2.5);
                            c[0] = 2.0;
                            c
                        }
                        // Positive bases for c^x.
                        ("Pow", false) => rng.vec(numel(cshape), 0.5, 2.0),
                        // Divisors away from zero.
                        ("Div", true) => distinct(rng, numel(cshape)),
                        _ => rng.vec(numel(cshape), -1.0, 1.0),
                    };
                    n.f("c", cshape, &cdata);
                    let inputs = if x_first { ["x", "c"] } else { ["c", "x"] };
                    n.node(op, &inputs, &["y"], vec![]);
                    // x^c needs a positive base.
                    let x = if op == "Pow" && x_first {
                        xpos(rng, &XS)
                    } else {
                        xin(rng, &XS)
                    };
                    (n, x)
                });
            }
        }
    }
    f.case("add_x_x", |rng| {
        (
            single(rng, &XS, 13, "Add", &["x", "x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("mul_x_x", |rng| {
        (
            single(rng, &XS, 13, "Mul", &["x", "x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    // Both operands vary and the second one broadcasts: x · mean_c(x).
    f.case("mul_x_by_its_channel_mean", |rng| {
        let mut n = Net::new(&XS, 13);
        n.node("ReduceMean", &["x"], &["m"], vec![A::ints("axes", &[1])])
            .node("Mul", &["x", "m"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    f.case("div_x_by_shifted_x", |rng| {
        let mut n = Net::new(&XS, 13);
        n.f("k", &[1], &[3.0])
            .node("Add", &["x", "k"], &["d"], vec![])
            .node("Div", &["x", "d"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    for (name, op, c_first, cshape) in [
        ("max_x_c_same", "Max", false, &XS[..]),
        ("min_c_x_same", "Min", true, &XS[..]),
        ("max_c5_x_broadcast", "Max", true, &[5][..]),
        ("min_x_c311_broadcast", "Min", false, &[3, 1, 1][..]),
    ] {
        f.case(name, |rng| {
            // x and c drawn from one distinct set so that no pair is within a step.
            let nx = numel(&XS);
            let all = distinct(rng, nx + numel(cshape));
            let mut n = Net::new(&XS, 13);
            n.f("c", cshape, &all[nx..]);
            let inputs = if c_first { ["c", "x"] } else { ["x", "c"] };
            n.node(op, &inputs, &["y"], vec![]);
            (n, Tensor::new(XS.to_vec(), all[..nx].to_vec()).unwrap())
        });
    }
    f.case("max_x_negx", |rng| {
        let mut n = Net::new(&XS, 13);
        n.node("Neg", &["x"], &["nx"], vec![])
            .node("Max", &["x", "nx"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// MatMul and Gemm
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_matmul_gemm() {
    let mut f = Family::default();
    let reshape_then =
        |rng: &mut Rng, shape: &[i64], op: &str, x_first: bool, c: &[usize], attrs: Vec<A>| {
            let mut n = Net::new(&XS, 13);
            n.i("shape", &[shape.len()], shape)
                .rand(rng, "c", c, -1.0, 1.0)
                .node("Reshape", &["x", "shape"], &["xr"], vec![]);
            let inputs = if x_first { ["xr", "c"] } else { ["c", "xr"] };
            n.node(op, &inputs, &["y"], attrs);
            n
        };
    f.case("matmul_2d_x_c", |rng| {
        (
            reshape_then(rng, &[24, 5], "MatMul", true, &[5, 3], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_2d_c_x", |rng| {
        (
            reshape_then(rng, &[6, 20], "MatMul", false, &[4, 6], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_3d_batched_x_c2d", |rng| {
        (
            reshape_then(rng, &[6, 4, 5], "MatMul", true, &[5, 2], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_3d_batched_x_c3d", |rng| {
        (
            reshape_then(rng, &[6, 4, 5], "MatMul", true, &[6, 5, 2], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_4d_x_broadcast_c3d", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "MatMul",
            &["x", "c"],
            &[("c", &[3, 5, 2])],
            vec![],
        );
        (n, xin(rng, &XS))
    });
    f.case("matmul_c2d_x_4d", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "MatMul",
            &["c", "x"],
            &[("c", &[3, 4])],
            vec![],
        );
        (n, xin(rng, &XS))
    });
    f.case("matmul_c_batched_x_4d", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "MatMul",
            &["c", "x"],
            &[("c", &[2, 1, 2, 4])],
            vec![],
        );
        (n, xin(rng, &XS))
    });
    f.case("matmul_x_vector", |rng| {
        (
            reshape_then(rng, &[2, 60], "MatMul", true, &[60], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_vector_x", |rng| {
        (
            reshape_then(rng, &[6, 20], "MatMul", false, &[6], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("matmul_x_xt", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("shape", &[3], &[6, 4, 5])
            .node("Reshape", &["x", "shape"], &["a"], vec![])
            .node(
                "Transpose",
                &["a"],
                &["at"],
                vec![A::ints("perm", &[0, 2, 1])],
            )
            .node("MatMul", &["a", "at"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    let gemm = |rng: &mut Rng,
                shape: &[i64],
                x_first: bool,
                other: &[usize],
                c: Option<&[usize]>,
                attrs: Vec<A>| {
        let mut n = Net::new(&XS, 13);
        n.i("shape", &[shape.len()], shape)
            .rand(rng, "o", other, -1.0, 1.0)
            .node("Reshape", &["x", "shape"], &["xr"], vec![]);
        let mut inputs = if x_first {
            vec!["xr", "o"]
        } else {
            vec!["o", "xr"]
        };
        if let Some(c) = c {
            n.rand(rng, "c", c, -1.0, 1.0);
            inputs.push("c");
        }
        n.node("Gemm", &inputs, &["y"], attrs);
        n
    };
    f.case("gemm_plain_bias_vector", |rng| {
        (
            gemm(rng, &[2, 60], true, &[60, 4], Some(&[4]), vec![]),
            xin(rng, &XS),
        )
    });
    f.case("gemm_transB_alpha_beta", |rng| {
        let attrs = vec![
            A::int("transB", 1),
            A::float("alpha", 0.5),
            A::float("beta", 2.0),
        ];
        (
            gemm(rng, &[2, 60], true, &[4, 60], Some(&[1, 4]), attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_transA_full_bias", |rng| {
        let attrs = vec![
            A::int("transA", 1),
            A::float("alpha", 1.5),
            A::float("beta", 0.3),
        ];
        (
            gemm(rng, &[60, 2], true, &[60, 3], Some(&[2, 3]), attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_transA_transB_no_bias", |rng| {
        let attrs = vec![A::int("transA", 1), A::int("transB", 1)];
        (
            gemm(rng, &[20, 6], true, &[3, 20], None, attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_x_as_B", |rng| {
        (
            gemm(rng, &[60, 2], false, &[4, 60], Some(&[4, 1]), vec![]),
            xin(rng, &XS),
        )
    });
    f.case("gemm_x_as_B_transB_alpha", |rng| {
        let attrs = vec![A::int("transB", 1), A::float("alpha", -0.7)];
        (
            gemm(rng, &[2, 60], false, &[3, 60], None, attrs),
            xin(rng, &XS),
        )
    });
    f.case("gemm_x_as_B_transA_transB", |rng| {
        let attrs = vec![A::int("transA", 1), A::int("transB", 1)];
        (
            gemm(rng, &[6, 20], false, &[20, 3], Some(&[1]), attrs),
            xin(rng, &XS),
        )
    });
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_pool() {
    let mut f = Family::default();
    let pool = |f: &mut Family, name: &str, op: &str, x: &[usize], attrs: Vec<A>| {
        f.case(name, |rng| {
            (single(rng, x, 13, op, &["x"], &[], attrs), xin(rng, x))
        });
    };
    let k = |a: i64, b: i64| A::ints("kernel_shape", &[a, b]);
    let s = |a: i64, b: i64| A::ints("strides", &[a, b]);
    let p = |v: &[i64]| A::ints("pads", v);
    pool(
        &mut f,
        "maxpool_k2s2",
        "MaxPool",
        &[2, 2, 4, 6],
        vec![k(2, 2), s(2, 2)],
    );
    pool(
        &mut f,
        "maxpool_k3s2_pads1_ceil",
        "MaxPool",
        &[1, 2, 6, 6],
        vec![k(3, 3), s(2, 2), p(&[1, 1, 1, 1]), A::int("ceil_mode", 1)],
    );
    pool(
        &mut f,
        "maxpool_k2s2_ceil_odd",
        "MaxPool",
        &[1, 3, 5, 5],
        vec![k(2, 2), s(2, 2), A::int("ceil_mode", 1)],
    );
    pool(
        &mut f,
        "maxpool_dilation2",
        "MaxPool",
        &[1, 2, 5, 6],
        vec![k(2, 2), A::ints("dilations", &[2, 2])],
    );
    pool(
        &mut f,
        "maxpool_rect_asym_pads",
        "MaxPool",
        &[2, 2, 5, 4],
        vec![k(2, 3), s(2, 1), p(&[0, 1, 1, 0])],
    );
    pool(
        &mut f,
        "maxpool_same_upper",
        "MaxPool",
        &[1, 2, 5, 5],
        vec![k(3, 3), s(2, 2), A::string("auto_pad", "SAME_UPPER")],
    );
    for include in [0, 1] {
        pool(
            &mut f,
            &format!("avgpool_k3s2_pads1_include{include}"),
            "AveragePool",
            &[1, 2, 5, 5],
            vec![
                k(3, 3),
                s(2, 2),
                p(&[1, 1, 1, 1]),
                A::int("count_include_pad", include),
            ],
        );
        pool(
            &mut f,
            &format!("avgpool_ceil_pads0011_include{include}"),
            "AveragePool",
            &[1, 2, 5, 5],
            vec![
                k(3, 3),
                s(2, 2),
                p(&[0, 0, 1, 1]),
                A::int("ceil_mode", 1),
                A::int("count_include_pad", include),
            ],
        );
    }
    pool(
        &mut f,
        "avgpool_rect_nopad",
        "AveragePool",
        &[2, 2, 4, 5],
        vec![k(2, 3), s(1, 2)],
    );
    f.case("global_average_pool", |rng| {
        (
            single(rng, &XS, 13, "GlobalAveragePool", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("global_max_pool", |rng| {
        (
            single(rng, &XS, 13, "GlobalMaxPool", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Shape and data-movement ops
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_shape_ops() {
    let mut f = Family::default();
    f.case("flatten_axis1", |rng| {
        (
            single(rng, &XS, 13, "Flatten", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("flatten_axis_neg1", |rng| {
        (
            single(
                rng,
                &XS,
                13,
                "Flatten",
                &["x"],
                &[],
                vec![A::int("axis", -1)],
            ),
            xin(rng, &XS),
        )
    });
    f.case("reshape_0_and_minus1", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("s", &[3], &[0, -1, 5])
            .node("Reshape", &["x", "s"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    // Reshape, then an op that is not symmetric in the new axes, then reshape back.
    f.case("reshape_softmax_reshape", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("s", &[2], &[-1, 10])
            .i("back", &[4], &[2, 3, 4, 5])
            .node("Reshape", &["x", "s"], &["a"], vec![])
            .node("Softmax", &["a"], &["b"], vec![])
            .node("Reshape", &["b", "back"], &["y"], vec![]);
        (n, xscaled(rng, &XS, 2.0))
    });
    for (name, perm) in [
        ("transpose_0231", [0i64, 2, 3, 1]),
        ("transpose_3102", [3, 1, 0, 2]),
    ] {
        f.case(name, |rng| {
            (
                single(
                    rng,
                    &XS,
                    13,
                    "Transpose",
                    &["x"],
                    &[],
                    vec![A::ints("perm", &perm)],
                ),
                xin(rng, &XS),
            )
        });
    }
    f.case("transpose_default_reverse", |rng| {
        (
            single(rng, &XS, 13, "Transpose", &["x"], &[], vec![]),
            xin(rng, &XS),
        )
    });
    f.case("concat_x_x_axis1", |rng| {
        (
            single(
                rng,
                &XS,
                13,
                "Concat",
                &["x", "x"],
                &[],
                vec![A::int("axis", 1)],
            ),
            xin(rng, &XS),
        )
    });
    f.case("concat_x_c_x_axis_neg1", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "Concat",
            &["x", "c", "x"],
            &[("c", &[2, 3, 4, 2])],
            vec![A::int("axis", -1)],
        );
        (n, xin(rng, &XS))
    });
    f.case("concat_c_x_axis2", |rng| {
        let n = single(
            rng,
            &XS,
            13,
            "Concat",
            &["c", "x"],
            &[("c", &[2, 3, 1, 5])],
            vec![A::int("axis", 2)],
        );
        (n, xin(rng, &XS))
    });
    f.case("split_input_sizes_swapped_concat", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("sizes", &[2], &[1, 2])
            .node(
                "Split",
                &["x", "sizes"],
                &["a", "b"],
                vec![A::int("axis", 1)],
            )
            .node("Concat", &["b", "a"], &["y"], vec![A::int("axis", 1)]);
        (n, xin(rng, &XS))
    });
    f.case("split_unused_output", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("sizes", &[3], &[1, 2, 2])
            .node(
                "Split",
                &["x", "sizes"],
                &["a", "b", "c"],
                vec![A::int("axis", 3)],
            )
            .node("Concat", &["c", "a"], &["y"], vec![A::int("axis", 3)]);
        (n, xin(rng, &XS))
    });
    f.case("split_opset11_attr", |rng| {
        let mut n = Net::new(&XS, 11);
        n.node(
            "Split",
            &["x"],
            &["a", "b"],
            vec![A::int("axis", -2), A::ints("split", &[3, 1])],
        )
        .node("Mul", &["a", "a"], &["a2"], vec![])
        .node("Concat", &["b", "a2"], &["y"], vec![A::int("axis", 2)]);
        (n, xin(rng, &XS))
    });
    f.case("split_equal_parts", |rng| {
        let mut n = Net::new(&XS, 13);
        n.node("Split", &["x"], &["a", "b"], vec![A::int("axis", 2)])
            .node("Sub", &["a", "b"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    let slice = |rng: &mut Rng,
                 starts: &[i64],
                 ends: &[i64],
                 axes: Option<&[i64]>,
                 steps: Option<&[i64]>| {
        let mut n = Net::new(&XS, 13);
        n.i("st", &[starts.len()], starts)
            .i("en", &[ends.len()], ends);
        let mut inputs = vec!["x", "st", "en"];
        if let Some(a) = axes {
            n.i("ax", &[a.len()], a);
            inputs.push("ax");
        } else if steps.is_some() {
            inputs.push("");
        }
        if let Some(s) = steps {
            n.i("sp", &[s.len()], s);
            inputs.push("sp");
        }
        n.node("Slice", &inputs, &["y"], vec![]);
        (n, xin(rng, &XS))
    };
    f.case("slice_negative_step", |rng| {
        slice(rng, &[-1], &[-1000], Some(&[3]), Some(&[-2]))
    });
    f.case("slice_multi_axes_mixed_steps_clamped", |rng| {
        slice(
            rng,
            &[1, 3, 0],
            &[3, 0, 100],
            Some(&[1, -2, 3]),
            Some(&[1, -1, 2]),
        )
    });
    f.case("slice_default_axes", |rng| {
        slice(rng, &[1, 1], &[2, 100], None, None)
    });
    f.case("slice_steps_without_axes", |rng| {
        slice(rng, &[0, 2, 3], &[2, -100, 0], None, Some(&[1, -2, -1]))
    });
    f.case("slice_opset9_attrs", |rng| {
        let attrs = vec![
            A::ints("starts", &[1, -3]),
            A::ints("ends", &[100, -1]),
            A::ints("axes", &[2, 3]),
        ];
        (
            single(rng, &XS, 9, "Slice", &["x"], &[], attrs),
            xin(rng, &XS),
        )
    });
    f.case("unsqueeze_squeeze_opset13_inputs", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("ua", &[2], &[0, -1])
            .i("sa", &[1], &[0])
            .rand(rng, "c", &[5, 1], -1.0, 1.0)
            .node("Unsqueeze", &["x", "ua"], &["u"], vec![])
            .node("Mul", &["u", "c"], &["m"], vec![])
            .node("Squeeze", &["m", "sa"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    f.case("unsqueeze_squeeze_opset11_attrs", |rng| {
        let mut n = Net::new(&XS, 11);
        n.node("Unsqueeze", &["x"], &["u"], vec![A::ints("axes", &[1, 5])])
            .node("Softmax", &["u"], &["s"], vec![A::int("axis", 2)])
            .node("Squeeze", &["s"], &["y"], vec![A::ints("axes", &[-1, 1])]);
        (n, xscaled(rng, &XS, 2.0))
    });
    f.case("squeeze_no_axes", |rng| {
        let mut n = Net::new(&XS, 13);
        n.i("s", &[5], &[2, 1, 12, 1, 5])
            .node("Reshape", &["x", "s"], &["r"], vec![])
            .node("Squeeze", &["r"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    let gather = |rng: &mut Rng, axis: i64, dims: &[usize], idx: &[i64]| {
        let mut n = Net::new(&XS, 13);
        n.i("idx", dims, idx)
            .node("Gather", &["x", "idx"], &["y"], vec![A::int("axis", axis)]);
        (n, xin(rng, &XS))
    };
    // Index 2 appears three times (2, -1 and 2): its gradient must be the sum of three slices.
    f.case("gather_axis1_negative_and_duplicates", |rng| {
        gather(rng, 1, &[4], &[2, -1, 0, 2])
    });
    f.case("gather_axis3_2d_indices", |rng| {
        gather(rng, 3, &[2, 2], &[0, 4, 4, -5])
    });
    f.case("gather_axis0_scalar_index", |rng| gather(rng, 0, &[], &[1]));
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Pad, Resize, Upsample
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_pad_resize() {
    let mut f = Family::default();
    let pads13 = |rng: &mut Rng, mode: &str, pads: &[i64], value: Option<f32>| {
        let mut n = Net::new(&XS, 13);
        n.i("p", &[8], pads);
        let mut inputs = vec!["x", "p"];
        if let Some(v) = value {
            n.f("v", &[], &[v]);
            inputs.push("v");
        }
        n.node("Pad", &inputs, &["y"], vec![A::string("mode", mode)]);
        (n, xin(rng, &XS))
    };
    f.case("pad_constant_opset13", |rng| {
        pads13(rng, "constant", &[0, 0, 1, 2, 0, 0, 2, 1], Some(0.3))
    });
    f.case("pad_reflect_opset13", |rng| {
        pads13(rng, "reflect", &[0, 0, 3, 2, 0, 0, 2, 4], None)
    });
    f.case("pad_edge_opset13", |rng| {
        pads13(rng, "edge", &[0, 1, 2, 3, 1, 0, 3, 2], None)
    });
    f.case("pad_negative_crops", |rng| {
        pads13(rng, "constant", &[0, 0, -1, 1, 0, 0, 1, -2], None)
    });
    f.case("pad_reflect_negative_crops", |rng| {
        pads13(rng, "reflect", &[0, 0, -1, 2, 0, 0, 1, -2], None)
    });
    for mode in ["constant", "reflect", "edge"] {
        f.case(&format!("pad_{mode}_opset2_attrs"), |rng| {
            let attrs = vec![
                A::string("mode", mode),
                A::ints("pads", &[0, 0, 2, 1, 0, 0, 1, 3]),
                A::float("value", -0.2),
            ];
            (
                single(rng, &XS, 2, "Pad", &["x"], &[], attrs),
                xin(rng, &XS),
            )
        });
    }
    f.case("pad_reflect_opset18_axes", |rng| {
        let mut n = Net::new(&XS, 18);
        n.i("p", &[4], &[1, 2, 2, 1])
            .i("axes", &[2], &[-1, 2])
            .node(
                "Pad",
                &["x", "p", "", "axes"],
                &["y"],
                vec![A::string("mode", "reflect")],
            );
        (n, xin(rng, &XS))
    });

    let x4 = [1usize, 2, 4, 5];
    let resize = |rng: &mut Rng, attrs: Vec<A>, scales: Option<&[f32]>, sizes: Option<&[i64]>| {
        let mut n = Net::new(&x4, 13);
        let mut inputs = vec!["x", ""];
        match (scales, sizes) {
            (Some(s), _) => {
                n.f("scales", &[4], s);
                inputs.push("scales");
            }
            (None, Some(s)) => {
                n.i("sizes", &[4], s);
                inputs.extend(["", "sizes"]);
            }
            _ => unreachable!(),
        }
        n.node("Resize", &inputs, &["y"], attrs);
        (n, xin(rng, &x4))
    };
    let mode = |m: &str| A::string("mode", m);
    let ctm = |m: &str| A::string("coordinate_transformation_mode", m);
    f.case("resize_nearest_2x_asymmetric", |rng| {
        resize(
            rng,
            vec![mode("nearest"), ctm("asymmetric")],
            Some(&[1.0, 1.0, 2.0, 2.0]),
            None,
        )
    });
    f.case("resize_nearest_half_pixel_down", |rng| {
        resize(
            rng,
            vec![mode("nearest")],
            Some(&[1.0, 1.0, 0.5, 0.6]),
            None,
        )
    });
    f.case("resize_nearest_floor_sizes_up", |rng| {
        let attrs = vec![
            mode("nearest"),
            ctm("align_corners"),
            A::string("nearest_mode", "floor"),
        ];
        resize(rng, attrs, None, Some(&[1, 2, 7, 8]))
    });
    f.case("resize_nearest_ceil_half_pixel", |rng| {
        let attrs = vec![mode("nearest"), A::string("nearest_mode", "ceil")];
        resize(rng, attrs, Some(&[1.0, 1.0, 1.5, 1.4]), None)
    });
    f.case("resize_linear_half_pixel_2x", |rng| {
        resize(rng, vec![mode("linear")], Some(&[1.0, 1.0, 2.0, 2.0]), None)
    });
    f.case("resize_linear_half_pixel_down", |rng| {
        resize(rng, vec![mode("linear")], Some(&[1.0, 1.0, 0.6, 0.5]), None)
    });
    f.case("resize_linear_align_corners_sizes", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("align_corners")],
            None,
            Some(&[1, 2, 5, 7]),
        )
    });
    f.case("resize_linear_align_corners_down", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("align_corners")],
            None,
            Some(&[1, 2, 3, 3]),
        )
    });
    f.case("resize_linear_asymmetric_up", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("asymmetric")],
            Some(&[1.0, 1.0, 1.5, 2.5]),
            None,
        )
    });
    f.case("resize_linear_pytorch_half_pixel_down", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("pytorch_half_pixel")],
            None,
            Some(&[1, 2, 2, 3]),
        )
    });
    f.case("resize_linear_pytorch_half_pixel_to_1", |rng| {
        resize(
            rng,
            vec![mode("linear"), ctm("pytorch_half_pixel")],
            None,
            Some(&[1, 2, 1, 3]),
        )
    });
    f.case("resize_opset10_scales", |rng| {
        let mut n = Net::new(&x4, 10);
        n.f("scales", &[4], &[1.0, 1.0, 2.0, 1.5]).node(
            "Resize",
            &["x", "scales"],
            &["y"],
            vec![mode("linear")],
        );
        (n, xin(rng, &x4))
    });
    f.case("resize_opset11_roi_scales", |rng| {
        let mut n = Net::new(&x4, 11);
        n.f("roi", &[0], &[])
            .f("scales", &[4], &[1.0, 1.0, 1.5, 2.0])
            .node(
                "Resize",
                &["x", "roi", "scales"],
                &["y"],
                vec![mode("linear")],
            );
        (n, xin(rng, &x4))
    });
    f.case("upsample_opset9_nearest", |rng| {
        let mut n = Net::new(&x4, 9);
        n.f("scales", &[4], &[1.0, 1.0, 2.0, 3.0]).node(
            "Upsample",
            &["x", "scales"],
            &["y"],
            vec![mode("nearest")],
        );
        (n, xin(rng, &x4))
    });
    f.case("upsample_opset9_linear", |rng| {
        let mut n = Net::new(&x4, 9);
        n.f("scales", &[4], &[1.0, 1.0, 2.0, 2.0]).node(
            "Upsample",
            &["x", "scales"],
            &["y"],
            vec![mode("linear")],
        );
        (n, xin(rng, &x4))
    });
    f.case("upsample_opset7_attr_scales", |rng| {
        let attrs = vec![mode("nearest"), A::floats("scales", &[1.0, 1.0, 3.0, 2.0])];
        (
            single(rng, &x4, 7, "Upsample", &["x"], &[], attrs),
            xin(rng, &x4),
        )
    });
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_reduce() {
    let mut f = Family::default();
    let attr = |rng: &mut Rng, op: &str, opset: i64, axes: Option<&[i64]>, keep: i64| {
        let mut attrs = vec![A::int("keepdims", keep)];
        if let Some(a) = axes {
            attrs.push(A::ints("axes", a));
        }
        (
            single(rng, &XS, opset, op, &["x"], &[], attrs),
            xin(rng, &XS),
        )
    };
    let input = |rng: &mut Rng, op: &str, opset: i64, axes: &[i64], keep: i64| {
        let mut n = Net::new(&XS, opset);
        n.i("axes", &[axes.len()], axes).node(
            op,
            &["x", "axes"],
            &["y"],
            vec![A::int("keepdims", keep)],
        );
        (n, xin(rng, &XS))
    };
    f.case("reduce_mean_attr_axes13_keep", |rng| {
        attr(rng, "ReduceMean", 13, Some(&[1, 3]), 1)
    });
    f.case("reduce_mean_all", |rng| {
        attr(rng, "ReduceMean", 13, None, 0)
    });
    f.case("reduce_mean_input_axes_opset18_nokeep", |rng| {
        input(rng, "ReduceMean", 18, &[2], 0)
    });
    f.case("reduce_sum_attr_opset11", |rng| {
        attr(rng, "ReduceSum", 11, Some(&[2, -1]), 1)
    });
    f.case("reduce_sum_input_axes_opset13_nokeep", |rng| {
        input(rng, "ReduceSum", 13, &[1], 0)
    });
    f.case("reduce_max_attr_last_nokeep", |rng| {
        attr(rng, "ReduceMax", 13, Some(&[-1]), 0)
    });
    f.case("reduce_max_input_axes_opset18", |rng| {
        input(rng, "ReduceMax", 18, &[1, 2], 1)
    });
    f.case("reduce_max_all_keep", |rng| {
        attr(rng, "ReduceMax", 13, None, 1)
    });
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// A small CNN end to end, and gradients with respect to an intermediate value
// ---------------------------------------------------------------------------------------------

/// Conv→BN→Relu→MaxPool→Conv→Add(residual)→GlobalAveragePool→Flatten→Gemm→Softmax.
fn chain_net(rng: &mut Rng) -> Net {
    let mut n = Net::new(&[1, 3, 8, 8], 13);
    n.rand(rng, "w1", &[4, 3, 3, 3], -0.6, 0.6)
        .rand(rng, "b1", &[4], -0.2, 0.2)
        .rand(rng, "bn_s", &[4], 0.8, 1.2)
        .rand(rng, "bn_b", &[4], -0.1, 0.1)
        .rand(rng, "bn_m", &[4], -0.1, 0.1)
        .rand(rng, "bn_v", &[4], 0.8, 1.2)
        .rand(rng, "w2", &[4, 4, 3, 3], -0.5, 0.5)
        .rand(rng, "fc_w", &[5, 4], -2.0, 2.0)
        .rand(rng, "fc_b", &[5], -0.5, 0.5)
        .node(
            "Conv",
            &["x", "w1", "b1"],
            &["c1"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node(
            "BatchNormalization",
            &["c1", "bn_s", "bn_b", "bn_m", "bn_v"],
            &["bn"],
            vec![],
        )
        .node("Relu", &["bn"], &["r1"], vec![])
        .node(
            "MaxPool",
            &["r1"],
            &["p1"],
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("strides", &[2, 2]),
            ],
        )
        .node(
            "Conv",
            &["p1", "w2"],
            &["c2"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        )
        .node("Add", &["p1", "c2"], &["res"], vec![])
        .node("GlobalAveragePool", &["res"], &["gap"], vec![])
        .node("Flatten", &["gap"], &["flat"], vec![])
        .node(
            "Gemm",
            &["flat", "fc_w", "fc_b"],
            &["logits"],
            vec![A::int("transB", 1)],
        )
        .node("Softmax", &["logits"], &["y"], vec![]);
    n
}

/// Whether a finite-difference step of `EPS` on any input element stays clear of the ReLU kink
/// and of ties inside the 2×2 max-pool windows (a step moves `bn` by at most ~0.6·1.2·EPS).
fn chain_is_smooth(model: &Model, x: &Tensor) -> bool {
    let ids = [model.resolve("bn").unwrap(), model.resolve("r1").unwrap()];
    let v = model.run_float(x, &ids).unwrap();
    let margin = 0.01;
    if v[0].data().iter().any(|b| b.abs() < margin) {
        return false;
    }
    let r = &v[1];
    let [_, c, h, w] = *r.shape() else {
        unreachable!()
    };
    for ch in 0..c {
        for oh in 0..h / 2 {
            for ow in 0..w / 2 {
                let mut win: Vec<f32> = (0..4)
                    .map(|k| r.data()[(ch * h + 2 * oh + k / 2) * w + 2 * ow + k % 2])
                    .collect();
                win.sort_by(|a, b| b.total_cmp(a));
                if win[0] > 0.0 && win[0] - win[1] < margin {
                    return false;
                }
            }
        }
    }
    true
}

#[test]
fn grad_chain_cnn_class_score() {
    // The first seed whose input keeps every kink a safe distance away (deterministic).
    let (model, x) = (0..50)
        .find_map(|s| {
            let mut rng = Rng::new(1000 + s);
            let model = chain_net(&mut rng).build().unwrap();
            let x = Tensor::new(vec![1, 3, 8, 8], rng.vec(192, -1.0, 1.0)).unwrap();
            chain_is_smooth(&model, &x).then_some((model, x))
        })
        .expect("a seed without kinks near the input");
    let y = model.resolve("y").unwrap();
    // Objective: the probability of class 2.
    let mut r = Tensor::zeros(&[1, 5]);
    r.data_mut()[2] = 1.0;
    let (ana, fd) = gradients_with(&model, &x, y, r).unwrap();
    let rel = compare(&ana, &fd).unwrap_or_else(|e| panic!("chain CNN: {e}"));
    eprintln!("chain CNN worst error {rel:.2e} of max|grad|");
}

#[test]
fn grad_wrt_intermediate_value() {
    // y = Relu(c) + c·k with c = Conv(x): c has two consumers, so its gradient is a sum.
    let build = |rng: &mut Rng| {
        let mut n = Net::new(&[1, 2, 5, 5], 13);
        n.rand(rng, "w", &[3, 2, 3, 3], -1.0, 1.0)
            .rand(rng, "k", &[3, 1, 1], -1.0, 1.0)
            .node(
                "Conv",
                &["x", "w"],
                &["c"],
                vec![A::ints("pads", &[1, 1, 1, 1])],
            );
        n
    };
    let tail = |n: &mut Net, c: &str| {
        n.node("Relu", &[c], &["r"], vec![])
            .node("Mul", &[c, "k"], &["m"], vec![])
            .node("Add", &["r", "m"], &["y"], vec![]);
    };
    let (model, x) = (0..50)
        .find_map(|s| {
            let mut rng = Rng::new(77 + s);
            let mut n = build(&mut rng);
            tail(&mut n, "c");
            let model = n.build().unwrap();
            let x = xin(&mut rng, &[1, 2, 5, 5]);
            let c = model.run_float(&x, &[model.resolve("c").unwrap()]).unwrap();
            // Clear of the ReLU kink for a step on c.
            let smooth = c[0].data().iter().all(|v| v.abs() > 0.01);
            smooth.then_some((model, x))
        })
        .expect("a seed without kinks");
    let (y, c) = (model.resolve("y").unwrap(), model.resolve("c").unwrap());
    let tape = model.forward(&x, &[y]).unwrap();
    let c_val = tape.value(c).unwrap().clone();
    let mut rng = Rng::new(5);
    let r = Tensor::new(vec![1, 3, 5, 5], rng.vec(75, -1.0, 1.0)).unwrap();
    let g = tape.backward(vec![(y, r.clone())], &[c]).unwrap();
    let g_c = g.values.get(&c).expect("gradient of c").clone();

    // 1. d objective / d c by finite differences of the tail alone, fed c as its input (with
    //    the same constant k, read back from the model).
    let k_vals = model
        .run_float(&x, &[model.resolve("k").unwrap()])
        .unwrap()
        .remove(0);
    let mut tn = Net::named_input("c", &[1, 3, 5, 5], 13);
    tn.f("k", &[3, 1, 1], k_vals.data());
    tail(&mut tn, "c");
    let tail_model = tn.build().unwrap();
    let ty = tail_model.resolve("y").unwrap();
    let fd = finite_diff(&tail_model, &c_val, ty, &r).unwrap();
    let ana: Vec<f64> = g_c.data().iter().map(|&v| v as f64).collect();
    compare(&ana, &fd).unwrap_or_else(|e| panic!("gradient wrt intermediate c: {e}"));

    // 2. Seeding c with that gradient reproduces the input gradient.
    let from_c = tape.backward(vec![(c, g_c)], &[]).unwrap().input;
    for (a, b) in from_c.data().iter().zip(g.input.data()) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // 3. And the input gradient itself matches finite differences.
    let fd_x = finite_diff(&model, &x, y, &r).unwrap();
    let ana_x: Vec<f64> = g.input.data().iter().map(|&v| v as f64).collect();
    compare(&ana_x, &fd_x).unwrap_or_else(|e| panic!("input gradient: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Negative controls: the check is sharp enough to catch wrong factors and flipped kernels
// ---------------------------------------------------------------------------------------------

#[test]
fn negative_controls_are_caught() {
    let mut rng = Rng::new(42);
    let x = xin(&mut rng, &[1, 2, 5, 5]);
    let w = rng.vec(3 * 2 * 3 * 3, -1.0, 1.0);
    let conv = |w: &[f32]| {
        let mut n = Net::new(&[1, 2, 5, 5], 13);
        n.f("w", &[3, 2, 3, 3], w).node(
            "Conv",
            &["x", "w"],
            &["y"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        );
        n.build().unwrap()
    };
    let model = conv(&w);
    let (ana, fd) = gradients(&model, &x, 9).unwrap();
    compare(&ana, &fd).expect("the correct gradient passes");

    let scaled = |s: f64| ana.iter().map(|v| v * s).collect::<Vec<_>>();
    assert!(
        compare(&scaled(0.9), &fd).is_err(),
        "a 0.9× gradient must fail"
    );
    assert!(
        compare(&scaled(1.1), &fd).is_err(),
        "a 1.1× gradient must fail"
    );
    assert!(
        compare(&scaled(0.25), &fd).is_err(),
        "a 1/4× gradient must fail"
    );

    // The gradient a backward pass with a spatially flipped (un-flipped) kernel would give.
    let mut flipped = w.clone();
    for mc in 0..6 {
        flipped[mc * 9..(mc + 1) * 9].reverse();
    }
    let (ana_flipped, _) = gradients(&conv(&flipped), &x, 9).unwrap();
    assert!(
        compare(&ana_flipped, &fd).is_err(),
        "a flipped-kernel gradient must fail"
    );

    // A gradient that lands one pixel off.
    let mut shifted = ana.clone();
    shifted.rotate_right(1);
    assert!(
        compare(&shifted, &fd).is_err(),
        "a shifted gradient must fail"
    );
}

// ---------------------------------------------------------------------------------------------
// Forward values against onnxruntime
// ---------------------------------------------------------------------------------------------
//
// Inputs are `pattern(n, 5, 3, 11, 5, 4)` (values in −1.25..1.25 step 0.25) and weights
// `pattern(n, 7, 1, 13, 6, 4)`. Expected values come from onnxruntime 1.32 (onnx 1.23), one model
// per case, with this one-off:
//
//   import numpy as np, onnxruntime as ort
//   from onnx import helper as h, TensorProto as T, numpy_helper as nh
//   P = lambda n, a, b, m, o, d: np.array([((i*a+b) % m - o)/d for i in range(n)], np.float32)
//   def run(op, xs, inits, opset=13, ins=None, **attrs):  # inits: name -> array, in input order
//       x = P(int(np.prod(xs)), 5, 3, 11, 5, 4).reshape(xs)
//       g = h.make_graph([h.make_node(op, ins or ["x", *inits], ["y"], **attrs)], "g",
//           [h.make_tensor_value_info("x", T.FLOAT, xs)], [h.make_tensor_value_info("y", T.FLOAT, None)],
//           [nh.from_array(v, k) for k, v in inits.items()])
//       m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)]); m.ir_version = 8
//       return ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
//   # e.g. CONVT_S2_P1_OP1:
//   run("ConvTranspose", [1,2,3,3], {"w": P(36,7,1,13,6,4).reshape(2,2,3,3),
//       "b": np.array([.5,-.25], np.float32)}, strides=[2,2], pads=[1,1,1,1], output_padding=[1,1])
//   # e.g. resize_linear_align_corners_sizes (omitted inputs as ""):
//   run("Resize", [1,1,2,3], {"sz": np.array([1,1,3,5])}, ins=["x", "", "", "sz"], mode="linear",
//       coordinate_transformation_mode="align_corners")

/// Runs `net` on the pattern input and checks shape and values within 1e-5.
fn check_forward(name: &str, net: &Net, x_shape: &[usize], shape: &[usize], want: &[f32]) {
    let model = net.build().unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = Tensor::new(
        x_shape.to_vec(),
        pattern(numel(x_shape), 5, 3, 11, 5.0, 4.0),
    )
    .unwrap();
    let y = model
        .run_float(&x, &[model.resolve("y").unwrap()])
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .remove(0);
    assert_eq!(y.shape(), shape, "{name}: output shape");
    for (i, (&g, &w)) in y.data().iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{name}: element {i} is {g}, onnxruntime gives {w}\n got {:?}",
            y.data()
        );
    }
}

fn weights(n: usize) -> Vec<f32> {
    pattern(n, 7, 1, 13, 6.0, 4.0)
}

fn one_op(x: &[usize], opset: i64, op: &str, inputs: &[&str], attrs: Vec<A>) -> Net {
    let mut n = Net::new(x, opset);
    n.node(op, inputs, &["y"], attrs);
    n
}

#[test]
fn forward_resize_matches_onnxruntime() {
    let x = [1, 1, 2, 3];
    let mode = |m: &str| A::string("mode", m);
    let ctm = |m: &str| A::string("coordinate_transformation_mode", m);

    let mut n = one_op(
        &x,
        13,
        "Resize",
        &["x", "", "s"],
        vec![mode("nearest"), ctm("asymmetric")],
    );
    n.f("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
    // By hand too: every input pixel becomes a 2×2 block.
    check_forward(
        "resize_nearest_asym_2x",
        &n,
        &x,
        &[1, 1, 4, 6],
        &[
            -0.5, -0.5, 0.75, 0.75, -0.75, -0.75, -0.5, -0.5, 0.75, 0.75, -0.75, -0.75, 0.5, 0.5,
            -1.0, -1.0, 0.25, 0.25, 0.5, 0.5, -1.0, -1.0, 0.25, 0.25,
        ],
    );

    let mut n = one_op(&x, 13, "Resize", &["x", "", "s"], vec![mode("linear")]);
    n.f("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
    check_forward(
        "resize_linear_half_pixel_2x",
        &n,
        &x,
        &[1, 1, 4, 6],
        &[
            -0.5, -0.1875, 0.4375, 0.375, -0.375, -0.75, -0.25, -0.109375, 0.171875, 0.109375,
            -0.296875, -0.5, 0.25, 0.046875, -0.359375, -0.421875, -0.140625, 0.0, 0.5, 0.125,
            -0.625, -0.6875, -0.0625, 0.25,
        ],
    );

    let mut n = one_op(
        &x,
        13,
        "Resize",
        &["x", "", "", "sz"],
        vec![mode("linear"), ctm("align_corners")],
    );
    n.i("sz", &[4], &[1, 1, 3, 5]);
    check_forward(
        "resize_linear_align_corners_sizes",
        &n,
        &x,
        &[1, 1, 3, 5],
        &[
            -0.5, 0.125, 0.75, 0.0, -0.75, 0.0, -0.0625, -0.125, -0.1875, -0.25, 0.5, -0.25, -1.0,
            -0.375, 0.25,
        ],
    );

    let x34 = [1, 1, 3, 4];
    let mut n = one_op(
        &x34,
        13,
        "Resize",
        &["x", "", "", "sz"],
        vec![mode("linear"), ctm("pytorch_half_pixel")],
    );
    n.i("sz", &[4], &[1, 1, 1, 2]);
    check_forward(
        "resize_linear_pytorch_half_pixel_down",
        &n,
        &x34,
        &[1, 1, 1, 2],
        &[0.125, -0.125],
    );

    let x35 = [1, 1, 3, 5];
    let mut n = one_op(
        &x35,
        13,
        "Resize",
        &["x", "", "s"],
        vec![mode("linear"), ctm("asymmetric")],
    );
    n.f("s", &[4], &[1.0, 1.0, 0.7, 0.6]);
    check_forward(
        "resize_linear_asym_down",
        &n,
        &x35,
        &[1, 1, 2, 3],
        &[
            -0.5,
            -0.25,
            1.192_092_9e-7,
            0.571_428_6,
            -0.095_238_09,
            0.285_714_27,
        ],
    );

    let x45 = [1, 1, 4, 5];
    let mut n = one_op(&x45, 13, "Resize", &["x", "", "s"], vec![mode("nearest")]);
    n.f("s", &[4], &[1.0, 1.0, 0.5, 0.6]);
    check_forward(
        "resize_nearest_half_pixel_down",
        &n,
        &x45,
        &[1, 1, 2, 3],
        &[-0.5, -0.75, -1.0, 1.0, 0.75, 0.5],
    );

    // Upsample (opset 9) and Resize-10 pick floor(x_out / scale), not the nearest pixel: with a
    // scale of 2.6, outputs 2 and 5 (sources 0.77 and 1.92) read pixels 0 and 1.
    for (opset, op) in [(9, "Upsample"), (10, "Resize")] {
        let mut n = one_op(&[1, 1, 1, 4], opset, op, &["x", "s"], vec![mode("nearest")]);
        n.f("s", &[4], &[1.0, 1.0, 1.0, 2.6]);
        let model = n.build().unwrap();
        let x = Tensor::new(vec![1, 1, 1, 4], vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        let y = model.run_float(&x, model.outputs()).unwrap().remove(0);
        // onnxruntime: [0. 0. 0. 1. 1. 1. 2. 2. 3. 3.] for both.
        assert_eq!(
            y.data(),
            &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
            "{op}-{opset}"
        );
    }

    let x22 = [1, 1, 2, 2];
    let mut n = one_op(&x22, 9, "Upsample", &["x", "s"], vec![mode("nearest")]);
    n.f("s", &[4], &[1.0, 1.0, 2.0, 3.0]);
    check_forward(
        "upsample_nearest_opset9",
        &n,
        &x22,
        &[1, 1, 4, 6],
        &[
            -0.5, -0.5, -0.5, 0.75, 0.75, 0.75, -0.5, -0.5, -0.5, 0.75, 0.75, 0.75, -0.75, -0.75,
            -0.75, 0.5, 0.5, 0.5, -0.75, -0.75, -0.75, 0.5, 0.5, 0.5,
        ],
    );
    let mut n = one_op(&x22, 9, "Upsample", &["x", "s"], vec![mode("linear")]);
    n.f("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
    check_forward(
        "upsample_linear_opset9",
        &n,
        &x22,
        &[1, 1, 4, 4],
        &[
            -0.5, 0.125, 0.75, 0.75, -0.625, 0.0, 0.625, 0.625, -0.75, -0.125, 0.5, 0.5, -0.75,
            -0.125, 0.5, 0.5,
        ],
    );
}

#[test]
fn forward_pool_matches_onnxruntime() {
    let k = |a: i64| A::ints("kernel_shape", &[a, a]);
    let s2 = || A::ints("strides", &[2, 2]);
    let x5 = [1, 1, 5, 5];
    // ceil_mode: (5 − 2)/2 rounded up + 1 = 3 windows; the last one reads only row/column 4.
    check_forward(
        "maxpool_ceil_k2s2",
        &one_op(
            &x5,
            13,
            "MaxPool",
            &["x"],
            vec![k(2), s2(), A::int("ceil_mode", 1)],
        ),
        &x5,
        &[1, 1, 3, 3],
        &[0.75, 1.25, -0.25, 1.0, 0.75, 1.25, 1.0, 0.75, -0.75],
    );
    let x6 = [1, 1, 6, 6];
    check_forward(
        "maxpool_ceil_k3s2p1",
        &one_op(
            &x6,
            13,
            "MaxPool",
            &["x"],
            vec![
                k(3),
                s2(),
                A::ints("pads", &[1, 1, 1, 1]),
                A::int("ceil_mode", 1),
            ],
        ),
        &x6,
        &[1, 1, 4, 4],
        &[
            0.75, 1.25, 1.0, 0.25, 1.25, 1.25, 1.0, 0.75, 1.25, 1.25, 1.0, 0.75, 1.25, 1.0, 0.75,
            -0.75,
        ],
    );
    let avg = |pads: &[i64], ceil: i64, include: i64| {
        one_op(
            &x5,
            13,
            "AveragePool",
            &["x"],
            vec![
                k(3),
                s2(),
                A::ints("pads", pads),
                A::int("ceil_mode", ceil),
                A::int("count_include_pad", include),
            ],
        )
    };
    // Corner windows: 4 real pixels of 9 (divisor 4 excluding, 9 including the padding).
    check_forward(
        "avgpool_k3s2p1_exclude_pad",
        &avg(&[1, 1, 1, 1], 0, 0),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.1875,
            0.083_333_336,
            0.125,
            -0.208_333_33,
            -0.166_666_67,
            0.333_333_34,
            0.0,
            0.041_666_668,
            0.3125,
        ],
    );
    check_forward(
        "avgpool_k3s2p1_include_pad",
        &avg(&[1, 1, 1, 1], 0, 1),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.083_333_336,
            0.055_555_556,
            0.055_555_556,
            -0.138_888_9,
            -0.166_666_67,
            0.222_222_22,
            0.0,
            0.027_777_778,
            0.138_888_9,
        ],
    );
    // ceil_mode: the last window covers row 4, one row of end padding and one row past it; with
    // count_include_pad the divisor counts the padding row but not the row past it (3·2 = 6).
    check_forward(
        "avgpool_ceil_exclude_pad",
        &avg(&[0, 0, 1, 1], 1, 0),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.027_777_778,
            0.027_777_778,
            -0.25,
            -0.055_555_556,
            0.0,
            0.333_333_34,
            0.083_333_336,
            -0.166_666_67,
            -0.75,
        ],
    );
    check_forward(
        "avgpool_ceil_include_pad",
        &avg(&[0, 0, 1, 1], 1, 1),
        &x5,
        &[1, 1, 3, 3],
        &[
            -0.027_777_778,
            0.027_777_778,
            -0.125,
            -0.055_555_556,
            0.0,
            0.166_666_67,
            0.041_666_668,
            -0.083_333_336,
            -0.1875,
        ],
    );
}

#[test]
fn forward_pad_slice_softmax_match_onnxruntime() {
    let x = [1, 1, 2, 3];
    let mut n = one_op(
        &x,
        13,
        "Pad",
        &["x", "p"],
        vec![A::string("mode", "reflect")],
    );
    n.i("p", &[8], &[0, 0, 1, 2, 0, 0, 1, 1]);
    // Rows reflect as r1 r0 r1 r0, columns as c2 c1 c0 c1 c2 c1.
    check_forward(
        "pad_reflect",
        &n,
        &x,
        &[1, 1, 4, 6],
        &[
            0.25, -1.0, 0.5, -1.0, 0.25, -1.0, -0.75, 0.75, -0.5, 0.75, -0.75, 0.75, 0.25, -1.0,
            0.5, -1.0, 0.25, -1.0, -0.75, 0.75, -0.5, 0.75, -0.75, 0.75,
        ],
    );
    let mut n = one_op(&x, 13, "Pad", &["x", "p"], vec![A::string("mode", "edge")]);
    n.i("p", &[8], &[0, 0, 1, 2, 0, 0, 0, 1]);
    check_forward(
        "pad_edge",
        &n,
        &x,
        &[1, 1, 3, 6],
        &[
            -0.5, -0.5, -0.5, 0.75, -0.75, -0.75, -0.5, -0.5, -0.5, 0.75, -0.75, -0.75, 0.5, 0.5,
            0.5, -1.0, 0.25, 0.25,
        ],
    );

    let slice = |x: &[usize], st: &[i64], en: &[i64], ax: &[i64], sp: &[i64]| {
        let mut n = one_op(x, 13, "Slice", &["x", "st", "en", "ax", "sp"], vec![]);
        n.i("st", &[st.len()], st)
            .i("en", &[en.len()], en)
            .i("ax", &[ax.len()], ax)
            .i("sp", &[sp.len()], sp);
        n
    };
    // Columns 4, 2, 0 of each row.
    check_forward(
        "slice_negative_step",
        &slice(&[1, 1, 3, 5], &[-1], &[-1000], &[3], &[-2]),
        &[1, 1, 3, 5],
        &[1, 1, 3, 3],
        &[-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
    );
    // A start below −dim clamps to 0 for a negative step (one element), not to −1 (none).
    check_forward(
        "slice_negative_step_clamped_start",
        &slice(&[1, 1, 2, 4], &[-10, 1], &[-20, -100], &[3, 2], &[-1, -1]),
        &[1, 1, 2, 4],
        &[1, 1, 2, 1],
        &[-1.0, -0.5],
    );

    let x2 = [1, 2, 2, 2];
    check_forward(
        "softmax_opset11_axis1_flattens",
        &one_op(&x2, 11, "Softmax", &["x"], vec![A::int("axis", 1)]),
        &x2,
        &[1, 2, 2, 2],
        &[
            0.077_929_91,
            0.272_002_1,
            0.060_691_874,
            0.211_835_44,
            0.047_266_88,
            0.164_977_61,
            0.036_811_482,
            0.128_484_7,
        ],
    );
}

#[test]
fn forward_conv_geometry_matches_onnxruntime() {
    let conv = |op: &str, x: &[usize], w: &[usize], bias: Option<&[f32]>, attrs: Vec<A>| {
        let mut inputs = vec!["x", "w"];
        if bias.is_some() {
            inputs.push("b");
        }
        let mut n = one_op(x, 13, op, &inputs, attrs);
        n.f("w", w, &weights(numel(w)));
        if let Some(b) = bias {
            n.f("b", &[b.len()], b);
        }
        n
    };
    let s2 = || A::ints("strides", &[2, 2]);
    let x = [1, 2, 3, 3];
    let w = [2, 2, 3, 3];
    check_forward(
        "convtranspose_s2_p1_outpad1_bias",
        &conv(
            "ConvTranspose",
            &x,
            &w,
            Some(&[0.5, -0.25]),
            vec![
                s2(),
                A::ints("pads", &[1, 1, 1, 1]),
                A::ints("output_padding", &[1, 1]),
            ],
        ),
        &x,
        &[1, 2, 6, 6],
        &CONVT_S2_P1_OP1,
    );
    check_forward(
        "convtranspose_same_upper",
        &conv(
            "ConvTranspose",
            &x,
            &w,
            None,
            vec![s2(), A::string("auto_pad", "SAME_UPPER")],
        ),
        &x,
        &[1, 2, 6, 6],
        &CONVT_SAME_UPPER,
    );
    check_forward(
        "convtranspose_output_shape",
        &conv(
            "ConvTranspose",
            &x,
            &w,
            None,
            vec![s2(), A::ints("output_shape", &[6, 5])],
        ),
        &x,
        &[1, 2, 6, 5],
        &CONVT_OUTPUT_SHAPE,
    );
    let xg = [1, 4, 2, 3];
    check_forward(
        "convtranspose_group2_dilated",
        &conv(
            "ConvTranspose",
            &xg,
            &[4, 1, 2, 3],
            None,
            vec![
                A::ints("strides", &[1, 2]),
                A::ints("dilations", &[2, 1]),
                A::ints("pads", &[0, 1, 1, 0]),
                A::int("group", 2),
            ],
        ),
        &xg,
        &[1, 2, 3, 6],
        &CONVT_GROUP2_DILATED,
    );
    let xc = [1, 2, 5, 6];
    let wc = [2, 2, 4, 4];
    check_forward(
        "conv_same_lower_k4",
        &conv(
            "Conv",
            &xc,
            &wc,
            None,
            vec![A::string("auto_pad", "SAME_LOWER")],
        ),
        &xc,
        &[1, 2, 5, 6],
        &CONV_SAME_LOWER_K4,
    );
    check_forward(
        "conv_same_upper_k4_s2",
        &conv(
            "Conv",
            &xc,
            &wc,
            None,
            vec![A::string("auto_pad", "SAME_UPPER"), s2()],
        ),
        &xc,
        &[1, 2, 3, 3],
        &CONV_SAME_UPPER_K4_S2,
    );
    check_forward(
        "conv_depthwise_s2_pads_1122",
        &conv(
            "Conv",
            &[1, 2, 5, 6],
            &[2, 1, 3, 3],
            Some(&[0.25, -0.5]),
            vec![s2(), A::ints("pads", &[1, 1, 2, 2]), A::int("group", 2)],
        ),
        &[1, 2, 5, 6],
        &[1, 2, 3, 4],
        &CONV_DEPTHWISE_S2,
    );
}

// Expected outputs of forward_conv_geometry_matches_onnxruntime (onnxruntime 1.32).
const CONVT_S2_P1_OP1: [f32; 72] = [
    0.5, 0.3125, 1.4375, 0.8125, 0.3125, -0.25, -0.3125, 0.0, 1.5625, 0.4375, -0.6875, 1.6875,
    1.25, 0.4375, 0.125, -0.4375, 1.0625, 0.75, 1.1875, 1.3125, -1.0625, -1.6875, 2.1875, -3.0,
    -0.0625, -0.8125, 0.875, 1.75, -2.3125, 1.75, -1.3125, 1.6875, 0.5625, 1.4375, 1.75, 1.75,
    0.125, -0.9375, -0.1875, -0.1875, 0.1875, -0.375, -1.3125, -1.8125, 0.8125, 2.375, -1.1875,
    -0.4375, -0.125, -0.0625, 0.25, -0.6875, -0.0625, -0.375, 0.9375, 1.8125, -1.0625, 1.1875,
    1.0625, -2.5, 0.3125, -0.5625, 0.0, 0.875, -3.0625, 1.0, -0.9375, -0.5, -0.3125, -2.6875, 1.0,
    -3.0625,
];
const CONVT_SAME_UPPER: [f32; 72] = [
    0.375, -0.125, 0.25, -0.125, 0.9375, -0.125, -0.3125, 0.0, -0.1875, 0.9375, 0.3125, -0.1875,
    0.75, -0.8125, -0.5, 1.0625, -0.0625, -1.1875, 0.1875, 0.75, -0.0625, -0.375, -0.9375, 0.5625,
    -0.8125, 0.6875, 0.8125, -1.5625, -2.1875, 1.6875, -0.6875, -0.5625, -1.3125, 0.375, 1.25,
    -2.8125, -0.875, 0.25, 2.1875, -1.0, -1.75, 0.5, 0.0625, 0.375, -0.6875, 0.0625, 0.0625,
    0.4375, 1.3125, -1.0625, -1.5625, 1.0625, 2.625, -0.9375, -0.4375, 0.125, 0.1875, 0.5, -0.4375,
    0.1875, -1.9375, 1.1875, 2.0625, -0.8125, 1.4375, 1.3125, 0.4375, 0.5625, -0.3125, 0.25, 1.125,
    -2.8125,
];
const CONVT_OUTPUT_SHAPE: [f32; 60] = [
    0.0, -0.1875, 0.9375, 0.3125, -0.1875, -0.8125, -0.5, 1.0625, -0.0625, -1.1875, 0.75, -0.0625,
    -0.375, -0.9375, 0.5625, 0.6875, 0.8125, -1.5625, -2.1875, 1.6875, -0.5625, -1.3125, 0.375,
    1.25, -2.8125, -1.8125, 1.1875, 0.0625, 0.9375, 1.25, 0.375, -0.6875, 0.0625, 0.0625, 0.4375,
    -1.0625, -1.5625, 1.0625, 2.625, -0.9375, 0.125, 0.1875, 0.5, -0.4375, 0.1875, 1.1875, 2.0625,
    -0.8125, 1.4375, 1.3125, 0.5625, -0.3125, 0.25, 1.125, -2.8125, -0.6875, -0.25, -0.0625,
    -2.4375, 1.25,
];
const CONVT_GROUP2_DILATED: [f32; 36] = [
    -1.8125, -0.125, 0.375, -0.4375, 1.1875, 0.4375, -0.0625, 0.3125, 0.75, 0.6875, -0.5, -0.125,
    0.375, 1.9375, -0.5625, 2.0625, 0.5625, -2.625, -0.9375, 1.4375, 0.3125, 1.0625, -0.5, -0.0625,
    0.75, 0.3125, -0.0625, -0.0625, 1.1875, 0.3125, 0.5625, -0.125, 1.3125, 0.125, 0.0, -0.375,
];
const CONV_SAME_LOWER_K4: [f32; 60] = [
    -4.8125, 3.1875, -5.0625, 1.25, -0.6875, -1.0, 4.25, -8.0, 8.5, -4.875, 9.25, -4.4375, 5.5,
    -7.0625, 7.0, -5.625, 3.0625, -0.25, -2.0625, 5.375, -2.75, 8.6875, -10.8125, 8.25, -4.25,
    4.25, -7.3125, 5.3125, -3.375, 2.5, -1.9375, 4.9375, -3.625, 4.0625, -5.4375, 1.875, -5.3125,
    4.0625, -5.125, 1.625, 0.125, -1.875, -0.4375, -0.625, 4.75, -8.375, 6.6875, -1.6875, 1.0,
    -1.5, 1.625, 3.625, -0.5625, 0.0, -3.125, 3.25, -7.3125, 7.5625, -9.875, 6.25,
];
const CONV_SAME_UPPER_K4_S2: [f32; 18] = [
    -8.0, -4.875, -4.4375, 5.375, 8.6875, 8.25, -3.0625, -7.5625, -7.4375, 4.0625, 1.625, -1.875,
    -1.5, 3.625, 0.0, 2.6875, 4.0, 3.125,
];
const CONV_DEPTHWISE_S2: [f32; 24] = [
    -0.1875, 3.5, 3.125, 0.6875, -2.0, -2.0, -1.9375, -0.4375, 0.0625, -1.0625, -0.875, -0.6875,
    -1.0625, 0.0625, -1.625, -1.9375, 0.875, -0.0625, -1.75, 1.75, -2.375, -1.5625, -1.4375,
    -1.125,
];

/// Central differences of `side`'s objective (its first value) for every input element, with
/// the analytic gradient `ana` beside them, skipping the elements whose ±EPS step changes
/// `side`'s region code (some ReLU/Clip input or pool winner crosses a kink): `(analytic,
/// finite differences, skipped)`.
fn fd_away_from_kinks(
    x: &Tensor,
    ana: &Tensor,
    side: impl Fn(&Tensor) -> (f64, Vec<u8>),
) -> (Vec<f64>, Vec<f64>, usize) {
    let (_, base) = side(x);
    let mut xp = x.clone();
    let (mut ana_kept, mut fd_kept, mut skipped) = (Vec::new(), Vec::new(), 0);
    for i in 0..x.len() {
        let x0 = x.data()[i];
        let (hi, lo) = (x0 + EPS, x0 - EPS);
        xp.data_mut()[i] = hi;
        let (jp, rp) = side(&xp);
        xp.data_mut()[i] = lo;
        let (jm, rm) = side(&xp);
        xp.data_mut()[i] = x0;
        if rp != base || rm != base {
            skipped += 1;
            continue;
        }
        ana_kept.push(ana.data()[i] as f64);
        fd_kept.push((jp - jm) / (hi - lo) as f64);
    }
    (ana_kept, fd_kept, skipped)
}

/// Conv → Relu and Conv → Clip run fused (the activation inside the convolution's sweep, only
/// the activated value kept) unless the raw convolution output is asked for; the next
/// convolution (or 2×2 max pool) then masks its input gradient itself and the activation's
/// backward pass is skipped. Both routes must give the same values and gradients, and the
/// fused gradient must match finite differences. The shapes (16 channels, 32 tiles of 4×4)
/// also put both 3×3 convolutions and their input gradients on the Winograd path.
#[test]
fn fused_conv_activations_match_unfused_and_finite_differences() {
    let mut rng = Rng::new(seed_of("fused"));
    let mut net = Net::new(&[2, 16, 16, 16], 13);
    let p1 = A::ints("pads", &[1, 1, 1, 1]);
    net.rand(&mut rng, "w1", &[16, 16, 3, 3], -0.2, 0.2)
        .rand(&mut rng, "b1", &[16], -0.1, 0.1)
        .rand(&mut rng, "w2", &[16, 16, 3, 3], -0.2, 0.2)
        .rand(&mut rng, "b2", &[16], -0.1, 0.1)
        .rand(&mut rng, "w3", &[4, 16, 1, 1], -0.5, 0.5)
        .f("lo", &[], &[0.0])
        .f("hi", &[], &[0.4])
        .node("Conv", &["x", "w1", "b1"], &["c1"], vec![p1.clone()])
        .node("Relu", &["c1"], &["r1"], vec![])
        .node("Conv", &["r1", "w2", "b2"], &["c2"], vec![p1])
        .node("Clip", &["c2", "lo", "hi"], &["r2"], vec![])
        .node(
            "MaxPool",
            &["r2"],
            &["p2"],
            vec![
                A::ints("kernel_shape", &[2, 2]),
                A::ints("strides", &[2, 2]),
            ],
        )
        .node("Conv", &["p2", "w3"], &["y"], vec![]);
    let model = net.build().unwrap();
    let x = xin(&mut rng, &[2, 16, 16, 16]);
    let ids = |names: &[&str]| -> Vec<ValueId> {
        names.iter().map(|n| model.resolve(n).unwrap()).collect()
    };
    let [y, c1, c2] = ids(&["y", "c1", "c2"])[..] else {
        unreachable!()
    };
    let fused = model.forward(&x, &[y]).unwrap();
    let plain = model.forward(&x, &[y, c1, c2]).unwrap();
    assert!(
        fused.value(c1).is_err(),
        "the fused pass keeps no raw conv output"
    );
    let (yf, yp) = (fused.value(y).unwrap(), plain.value(y).unwrap());
    assert_eq!(yf.data(), yp.data(), "fusion does not change the values");
    let r = Tensor::new(yf.shape().to_vec(), rng.vec(yf.len(), -1.0, 1.0)).unwrap();
    for rule in [ReluRule::Exact, ReluRule::Guided] {
        let gf = fused
            .backward_with(vec![(y, r.clone())], &[], rule)
            .unwrap();
        let gp = plain
            .backward_with(vec![(y, r.clone())], &[], rule)
            .unwrap();
        let scale = gp.input.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for (a, b) in gf.input.data().iter().zip(gp.input.data()) {
            assert!((a - b).abs() <= 1e-6 * scale, "{rule:?}: {a} vs {b}");
        }
    }
    // Finite differences, skipping the inputs whose ±EPS step moves some ReLU or Clip input
    // across a kink (each input feeds 144 activations, so a few do): detected exactly from
    // the pre-activation values on both sides.
    let ana = fused.backward(vec![(y, r.clone())], &[]).unwrap().input;
    let r2 = model.resolve("r2").unwrap();
    let side = |x: &Tensor| -> (f64, Vec<u8>) {
        let v = model.run_float(x, &[y, c1, c2, r2]).unwrap();
        // Which element wins each 2×2 pool window (a switch is a kink too).
        let pr = &v[3];
        let argmax = (0..pr.len() / 4).map(|win| {
            let (plane, rest) = (win / 64, win % 64);
            let (i, j) = (rest / 8 * 2, rest % 8 * 2);
            let at = |a: usize, b: usize| pr.data()[plane * 256 + (i + a) * 16 + j + b];
            let cands = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
            let best = cands.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            cands.iter().position(|&c| c == best).unwrap() as u8 + 10
        });
        let j = v[0]
            .data()
            .iter()
            .zip(r.data())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let regions = v[1]
            .data()
            .iter()
            .map(|&a| (a > 0.0) as u8)
            .chain(
                v[2].data()
                    .iter()
                    .map(|&a| (a >= 0.0) as u8 + (a > 0.4) as u8),
            )
            .chain(argmax)
            .collect();
        (j, regions)
    };
    let (ana_kept, fd_kept, skipped) = fd_away_from_kinks(&x, &ana, side);
    assert!(
        skipped * 10 < x.len(),
        "{skipped} of {} inputs near a kink",
        x.len()
    );
    let rel = compare(&ana_kept, &fd_kept).unwrap();
    eprintln!(
        "fused conv chain: worst error {rel:.2e} of max|grad| ({skipped} of {} inputs skipped at kinks)",
        x.len()
    );
}

/// A model of one 2×2, stride-2 MaxPool (VGG's) from `x` of `shape` to `y`.
fn maxpool_2x2(shape: &[usize]) -> Model {
    let mut net = Net::new(shape, 13);
    net.node(
        "MaxPool",
        &["x"],
        &["y"],
        vec![
            A::ints("kernel_shape", &[2, 2]),
            A::ints("strides", &[2, 2]),
        ],
    );
    let model = net.build().unwrap();
    model
}

/// VGG's 2×2 stride-2 max pools run a branch-free path: ties send the gradient to the first
/// maximum in row-major window order (never split, never scaled), and a NaN wins its window.
#[test]
fn maxpool_2x2_routes_ties_to_the_first_maximum() {
    let model = maxpool_2x2(&[1, 1, 2, 6]);
    let y = model.resolve("y").unwrap();
    let nan = f32::NAN;
    // Windows: [1 3; 3 2] (tie of 3s), [5 5; 5 5] (all equal), [0 NaN; 1 2] (NaN).
    let x = Tensor::new(
        vec![1, 1, 2, 6],
        vec![1.0, 3.0, 5.0, 5.0, 0.0, nan, 3.0, 2.0, 5.0, 5.0, 1.0, 2.0],
    )
    .unwrap();
    let tape = model.forward(&x, &[y]).unwrap();
    let out = tape.value(y).unwrap().data().to_vec();
    assert_eq!(&out[..2], &[3.0, 5.0]);
    assert!(out[2].is_nan());
    let g = tape
        .backward(
            vec![(
                y,
                Tensor::new(vec![1, 1, 1, 3], vec![1.0, 2.0, 4.0]).unwrap(),
            )],
            &[],
        )
        .unwrap()
        .input;
    assert_eq!(
        g.data(),
        &[0.0, 1.0, 2.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

/// Convolution weights computed from the input at run time are transformed afresh on every
/// call (only model constants are cached): two inputs in a row give the same results on the
/// Winograd path (16 channels, 36 tiles) as on the im2col path.
#[test]
fn run_time_conv_weights_are_never_cached() {
    let mut net = Net::new(&[1, 16, 24, 24], 13);
    net.i("flat", &[1], &[9216])
        .i("start", &[1], &[0])
        .i("end", &[1], &[2304])
        .i("wshape", &[4], &[16, 16, 3, 3])
        .node("Reshape", &["x", "flat"], &["xf"], vec![])
        .node("Slice", &["xf", "start", "end"], &["ws"], vec![])
        .node("Reshape", &["ws", "wshape"], &["w"], vec![])
        .node(
            "Conv",
            &["x", "w"],
            &["y"],
            vec![A::ints("pads", &[1, 1, 1, 1])],
        );
    let mut model = net.build().unwrap();
    let y = model.resolve("y").unwrap();
    let mut rng = Rng::new(seed_of("runtime weights"));
    let inputs = [
        xin(&mut rng, &[1, 16, 24, 24]),
        xin(&mut rng, &[1, 16, 24, 24]),
    ];
    let winograd: Vec<Tensor> = inputs
        .iter()
        .map(|x| model.run_float(x, &[y]).unwrap().remove(0))
        .collect();
    model.set_config(ExecConfig {
        winograd: false,
        ..ExecConfig::default()
    });
    let im2col: Vec<Tensor> = inputs
        .iter()
        .map(|x| model.run_float(x, &[y]).unwrap().remove(0))
        .collect();
    for (a, b) in winograd.iter().zip(&im2col) {
        let scale = b.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (u, v) in a.data().iter().zip(b.data()) {
            assert!((u - v).abs() <= 1e-5 * scale, "{u} vs {v}");
        }
    }
}

/// The vectorised 2×2 max-pool backward (8 windows at a time, then one by one) routes exactly
/// as the rule says on a wide input full of ties and a few NaNs.
#[test]
fn maxpool_2x2_backward_wide_rows_match_the_first_maximum_rule() {
    // 19 windows per row (16 vectorised + 3); odd sizes leave a last row and column that no
    // window covers, whose gradient must be written as zero (the buffer starts uninitialised).
    let (c, h, w) = (2usize, 5usize, 39usize);
    let model = maxpool_2x2(&[1, c, h, w]);
    let y = model.resolve("y").unwrap();
    let mut rng = Rng::new(seed_of("pool ties"));
    // Values from a set of four, so most windows hold ties; every 29th is NaN.
    let xs: Vec<f32> = (0..c * h * w)
        .map(|i| {
            if i % 29 == 7 {
                f32::NAN
            } else {
                (rng.vec(1, 0.0, 4.0)[0]).floor() - 1.0
            }
        })
        .collect();
    let x = Tensor::new(vec![1, c, h, w], xs.clone()).unwrap();
    let (oh, ow) = (h / 2, w / 2);
    let dy: Vec<f32> = (0..c * oh * ow).map(|i| 1.0 + i as f32).collect();
    let tape = model.forward(&x, &[y]).unwrap();
    let g = tape
        .backward(
            vec![(y, Tensor::new(vec![1, c, oh, ow], dy.clone()).unwrap())],
            &[],
        )
        .unwrap()
        .input;
    let mut want = vec![0.0f32; xs.len()];
    for ch in 0..c {
        for i in 0..oh {
            for j in 0..ow {
                let at = |a: usize, b: usize| (ch * h + 2 * i + a) * w + 2 * j + b;
                let cells = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                // A NaN wins (the first NaN), else the first of the largest.
                let pick = cells
                    .iter()
                    .copied()
                    .find(|&k| xs[k].is_nan())
                    .unwrap_or_else(|| {
                        let best = cells
                            .iter()
                            .map(|&k| xs[k])
                            .fold(f32::NEG_INFINITY, f32::max);
                        cells.iter().copied().find(|&k| xs[k] == best).unwrap()
                    });
                want[pick] = dy[(ch * oh + i) * ow + j];
            }
        }
    }
    assert_eq!(g.data(), &want[..]);
}

/// The panel kernel's shapes: a strided 3×3 (im2col tiles), then 1×1 convolutions with 16, 12
/// and 8 output channels (whole and partial panels of 8), Relu and Clip fused into them, and
/// input gradients through the flipped 1×1 route with the activation masks in the kernel's
/// epilogue. Values and gradients must equal the unfused route's, and the gradient must
/// match finite differences away from kinks.
#[test]
fn panel_convolutions_match_unfused_and_finite_differences() {
    let mut rng = Rng::new(seed_of("panel"));
    let mut net = Net::new(&[2, 8, 9, 9], 13);
    net.rand(&mut rng, "w1", &[16, 8, 3, 3], -0.3, 0.3)
        .rand(&mut rng, "b1", &[16], -0.1, 0.1)
        .rand(&mut rng, "w2", &[12, 16, 1, 1], -0.4, 0.4)
        .rand(&mut rng, "b2", &[12], -0.1, 0.1)
        .rand(&mut rng, "w3", &[8, 12, 1, 1], -0.5, 0.5)
        .f("lo", &[], &[0.0])
        .f("hi", &[], &[0.3])
        .node(
            "Conv",
            &["x", "w1", "b1"],
            &["c1"],
            vec![A::ints("pads", &[1, 0, 1, 1]), A::ints("strides", &[2, 2])],
        )
        .node("Relu", &["c1"], &["r1"], vec![])
        .node("Conv", &["r1", "w2", "b2"], &["c2"], vec![])
        .node("Clip", &["c2", "lo", "hi"], &["r2"], vec![])
        .node("Conv", &["r2", "w3"], &["y"], vec![]);
    let model = net.build().unwrap();
    let x = xin(&mut rng, &[2, 8, 9, 9]);
    let id = |n: &str| model.resolve(n).unwrap();
    let (y, c1, c2) = (id("y"), id("c1"), id("c2"));
    let fused = model.forward(&x, &[y]).unwrap();
    let plain = model.forward(&x, &[y, c1, c2]).unwrap();
    let (yf, yp) = (fused.value(y).unwrap(), plain.value(y).unwrap());
    assert_eq!(yf.data(), yp.data(), "fusion does not change the values");
    let r = Tensor::new(yf.shape().to_vec(), rng.vec(yf.len(), -1.0, 1.0)).unwrap();
    let gf = fused.backward(vec![(y, r.clone())], &[]).unwrap().input;
    let gp = plain.backward(vec![(y, r.clone())], &[]).unwrap().input;
    let scale = gp.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    for (a, b) in gf.data().iter().zip(gp.data()) {
        assert!((a - b).abs() <= 1e-6 * scale, "fused {a} vs unfused {b}");
    }
    // Finite differences, skipping inputs whose step moves a Relu or Clip input across a kink.
    let side = |x: &Tensor| -> (f64, Vec<u8>) {
        let v = model.run_float(x, &[y, c1, c2]).unwrap();
        let j = v[0]
            .data()
            .iter()
            .zip(r.data())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let regions = v[1].data().iter().map(|&a| (a > 0.0) as u8);
        let regions = regions.chain(
            v[2].data()
                .iter()
                .map(|&a| (a >= 0.0) as u8 + (a > 0.3) as u8),
        );
        (j, regions.collect())
    };
    let (ana, fd, skipped) = fd_away_from_kinks(&x, &gf, side);
    assert!(
        skipped * 5 < x.len(),
        "{skipped} of {} inputs near a kink",
        x.len()
    );
    let rel = compare(&ana, &fd).unwrap();
    eprintln!(
        "panel conv chain: worst error {rel:.2e} ({skipped} of {} skipped)",
        x.len()
    );
}
