//! Helpers of the gradient and forward-value tests (`grad_*.rs`, `forward_values.rs`):
//! deterministic inputs, small generated graphs, and the finite-difference check.
//!
//! Each gradient case builds a tiny model `x → op(s) → y`, draws `x` from a fixed-seed PRNG and a
//! random cotangent `r` of `y`'s shape, and compares `tape.backward([(y, r)])` with the central
//! difference of the objective `Σ r ⊙ y` (accumulated in f64 over f32 forward runs) for every input
//! element. Inputs keep away from kinks (ReLU at 0, Clip bounds, max ties): values are distinct,
//! at least 0.9/n apart and at least 0.1 from zero.

use std::panic::{catch_unwind, AssertUnwindSafe};

use convscope_engine::{Model, Tensor, ValueId};
use convscope_onnx::{AttributeProto as A, Dim, GraphBuilder, TensorProto};

// ---------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, fast and good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1B5_4A32)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// FNV-1a of the case name: every case gets its own, stable seed.
pub fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `n` distinct values in ±[0.1, 1]: magnitudes on a shuffled grid (at least 0.9/n apart), random
/// signs. No value is near zero and no two are within a finite-difference step of each other.
pub fn distinct(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut mags: Vec<f32> = (0..n)
        .map(|k| 0.1 + 0.9 * (k as f32 + 0.5) / n as f32)
        .collect();
    rng.shuffle(&mut mags);
    mags.into_iter()
        .map(|m| if rng.next_u64() & 1 == 0 { m } else { -m })
        .collect()
}

/// A distinct-valued input tensor (see [`distinct`]).
pub fn xin(rng: &mut Rng, shape: &[usize]) -> Tensor {
    Tensor::new(shape.to_vec(), distinct(rng, numel(shape))).unwrap()
}

/// Like [`xin`], scaled by `s` (for ops whose interesting range is wider than ±1).
pub fn xscaled(rng: &mut Rng, shape: &[usize], s: f32) -> Tensor {
    let d = distinct(rng, numel(shape))
        .into_iter()
        .map(|v| v * s)
        .collect();
    Tensor::new(shape.to_vec(), d).unwrap()
}

/// Distinct positive values in [0.1, 1].
pub fn xpos(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let d = distinct(rng, numel(shape))
        .into_iter()
        .map(f32::abs)
        .collect();
    Tensor::new(shape.to_vec(), d).unwrap()
}

/// Moves every element within `margin` of a kink to `margin` past it.
pub fn avoid(mut x: Tensor, kinks: &[f32], margin: f32) -> Tensor {
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
pub fn pattern(n: usize, a: usize, b: usize, m: usize, off: f32, div: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * a + b) % m) as f32 - off) / div)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Model building
// ---------------------------------------------------------------------------------------------

/// The input shape of most single-op cases.
pub const XS: [usize; 4] = [2, 3, 4, 5];

/// A test graph: input `x` of a fixed 4-D shape, output `y`.
pub struct Net {
    g: GraphBuilder,
    opset: i64,
    nodes: usize,
}

impl Net {
    pub fn new(x: &[usize], opset: i64) -> Net {
        Net::named_input("x", x, opset)
    }

    pub fn named_input(name: &str, x: &[usize], opset: i64) -> Net {
        let mut g = GraphBuilder::new("case");
        let dims: Vec<Dim> = x.iter().map(|&d| Dim::Value(d as i64)).collect();
        g.input(name, &dims).output("y", &[]);
        Net { g, opset, nodes: 0 }
    }

    /// A float initializer.
    pub fn f(&mut self, name: &str, dims: &[usize], data: &[f32]) -> &mut Self {
        assert_eq!(numel(dims), data.len(), "initializer {name}");
        self.g.initializer(TensorProto::from_f32(name, dims, data));
        self
    }

    /// A float initializer with uniform values in `[lo, hi)`.
    pub fn rand(
        &mut self,
        rng: &mut Rng,
        name: &str,
        dims: &[usize],
        lo: f32,
        hi: f32,
    ) -> &mut Self {
        let data = rng.vec(numel(dims), lo, hi);
        self.f(name, dims, &data)
    }

    /// An int64 initializer.
    pub fn i(&mut self, name: &str, dims: &[usize], data: &[i64]) -> &mut Self {
        assert_eq!(numel(dims), data.len(), "initializer {name}");
        self.g.initializer(TensorProto::from_i64(name, dims, data));
        self
    }

    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<A>,
    ) -> &mut Self {
        let name = format!("{}_{}", op.to_lowercase(), self.nodes);
        self.nodes += 1;
        self.g.node(op, &name, inputs, outputs, attrs);
        self
    }

    pub fn build(&self) -> Result<Model, String> {
        Model::from_proto(self.g.build(self.opset)).map_err(|e| format!("load: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient checking
// ---------------------------------------------------------------------------------------------

/// Finite-difference step (inputs are of scale 1).
pub const EPS: f32 = 1e-3;

pub fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// `Σ r ⊙ y(x)` in f64.
pub fn objective(model: &Model, x: &Tensor, y: ValueId, r: &Tensor) -> Result<f64, String> {
    let v = model.run_float(x, &[y]).map_err(err("forward"))?.remove(0);
    Ok(v.data()
        .iter()
        .zip(r.data())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum())
}

/// Central differences of [`objective`] for every input element.
pub fn finite_diff(model: &Model, x: &Tensor, y: ValueId, r: &Tensor) -> Result<Vec<f64>, String> {
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
pub fn compare(ana: &[f64], fd: &[f64]) -> Result<f64, String> {
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
pub fn gradients(model: &Model, x: &Tensor, r_seed: u64) -> Result<(Vec<f64>, Vec<f64>), String> {
    let y = model.resolve("y").map_err(err("resolve y"))?;
    let y0 = model.run_float(x, &[y]).map_err(err("forward"))?.remove(0);
    let mut rng = Rng::new(r_seed ^ 0xA5A5_A5A5);
    let r = Tensor::new(y0.shape().to_vec(), rng.vec(y0.len(), -1.0, 1.0)).unwrap();
    gradients_with(model, x, y, r)
}

pub fn gradients_with(
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
pub struct Family {
    failures: Vec<String>,
    passed: usize,
}

impl Family {
    /// Runs one case: `build` returns the graph and the input; the check is the gradient of a
    /// random projection of `y`.
    pub fn case(&mut self, name: &str, build: impl FnOnce(&mut Rng) -> (Net, Tensor)) {
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

    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} failing case(s) ({} passed):\n  {}",
            self.failures.len(),
            self.passed,
            self.failures.join("\n  ")
        );
    }
}

pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

/// `x → op(x, consts…) → y` with random-uniform float constants.
pub fn single(
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

/// Central differences of `side`'s objective (its first value) for every input element, with
/// the analytic gradient `ana` beside them, skipping the elements whose ±EPS step changes
/// `side`'s region code (some ReLU/Clip input or pool winner crosses a kink): `(analytic,
/// finite differences, skipped)`.
pub fn fd_away_from_kinks(
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
