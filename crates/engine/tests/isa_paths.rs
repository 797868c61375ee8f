//! The real networks on every instruction-set path this CPU has (AVX-512, AVX2 + FMA,
//! portable): values and input gradients agree across paths. The kernels' own tests check each
//! path against f64 references; these check that the routes a whole network takes (fusions,
//! Winograd, depthwise strips and planes, panel products) give the same values whichever path
//! runs them.

mod common;

use std::path::Path;

use convscope_engine::{ExecConfig, Isa, Model, Tensor, Value};

/// The distinct paths of this CPU (whatever `CONVSCOPE_ISA` says), widest first.
fn isas() -> Vec<Isa> {
    let cpu = Isa::detected();
    let mut out: Vec<Isa> = Vec::new();
    for isa in [cpu, cpu.without_avx512(), Isa::portable()] {
        if out.iter().all(|o| o.name() != isa.name()) {
            out.push(isa);
        }
    }
    out
}

/// Deterministic input in [0, 1).
fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = 0x9e3779b97f4a7c15u64;
    let data = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// What one path computes: the inference pass's output (with its fusions), the taped pass's
/// values of `layers`, and the input gradient of output element `logit`.
struct Results {
    output: Tensor,
    layers: Vec<Tensor>,
    gradient: Tensor,
}

fn results(path: &Path, isa: Isa, x: &Tensor, layers: &[&str], logit: usize) -> Results {
    let model = Model::load(path).unwrap().with_config(ExecConfig {
        isa,
        ..ExecConfig::default()
    });
    let out = model.outputs()[0];
    let Value::Float(output) = model.run(x, &[out]).unwrap().remove(0) else {
        panic!("a float output")
    };
    let ids: Vec<_> = layers.iter().map(|n| model.resolve(n).unwrap()).collect();
    let targets: Vec<_> = ids.iter().copied().chain([out]).collect();
    let tape = model.forward(x, &targets).unwrap();
    let mut seed = Tensor::zeros(tape.value(out).unwrap().shape());
    seed.data_mut()[logit] = 1.0;
    Results {
        output,
        layers: ids
            .iter()
            .map(|&i| tape.value(i).unwrap().clone())
            .collect(),
        gradient: tape.backward(vec![(out, seed)], &[]).unwrap().input,
    }
}

/// The largest difference of `got` from `want` relative to `want`'s largest magnitude, and
/// the relative difference of their L2 norms.
fn differences(got: &Tensor, want: &Tensor) -> (f64, f64) {
    assert_eq!(got.shape(), want.shape());
    let scale = want.data().iter().fold(0f64, |a, &v| a.max(v.abs() as f64));
    assert!(scale > 0.0, "a meaningful value");
    let pairs = || {
        got.data()
            .iter()
            .zip(want.data())
            .map(|(&a, &b)| (a as f64, b as f64))
    };
    let worst = pairs().map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let l2 = norm(&mut pairs().map(|(a, b)| a - b)) / norm(&mut pairs().map(|(_, b)| b));
    (worst / scale, l2)
}

/// One network on every path against the widest path: outputs and layer values within
/// `value_tol` of their largest magnitude, input gradients within `grad_l2` in L2 norm.
fn agree_across_paths(file: &str, shape: &[usize], layers: &[&str], logit: usize, grad_l2: f64) {
    let Some(path) = common::shared(&format!("models/{file}")) else {
        return;
    };
    let x = input(shape);
    let isas = isas();
    let want = results(&path, isas[0], &x, layers, logit);
    for &isa in &isas[1..] {
        let got = results(&path, isa, &x, layers, logit);
        let what = format!("{file} on {} against {}", isa.name(), isas[0].name());
        // f32 sums in other orders (Winograd transforms written per path, the gemm crate on
        // the portable path) agree to a few parts in 10⁶ of the largest value.
        let named = layers.iter().zip(got.layers.iter().zip(&want.layers));
        for (name, (g, w)) in std::iter::once((&"output", (&got.output, &want.output))).chain(named)
        {
            let (worst, _) = differences(g, w);
            assert!(
                worst < 2e-5,
                "{what}: {name} off by {worst:e} of its largest value"
            );
        }
        let (_, l2) = differences(&got.gradient, &want.gradient);
        assert!(l2 < grad_l2, "{what}: input gradient off by {l2:e} in L2");
    }
}

/// Depthwise strips and planes, the fused blocks, the panel kernel: the paths agree to
/// rounding, the gradient included.
#[test]
fn efficientnet_lite0_agrees_across_paths() {
    agree_across_paths("efficientnet_lite0.onnx", &[1, 3, 224, 224], &[], 285, 1e-4);
}

/// In a batch of four, the inference pass runs EfficientNet's inverted-residual blocks on its
/// 28×28 to 7×7 maps as one too (a band per image): the head's values agree across paths, and
/// with the taped pass, which runs every node apart.
#[test]
fn efficientnet_lite0_in_a_batch_agrees_across_paths() {
    let Some(path) = common::shared("models/efficientnet_lite0.onnx") else {
        return;
    };
    let x = input(&[4, 3, 224, 224]);
    let head = "/_swish_1/Clip_output_0";
    let model = |isa: Isa| {
        Model::load(&path).unwrap().with_config(ExecConfig {
            isa,
            ..ExecConfig::default()
        })
    };
    let isas = isas();
    let widest = model(isas[0]);
    let id = widest.resolve(head).unwrap();
    let want = widest.run_float(&x, &[id]).unwrap().remove(0);
    let tape = widest.forward(&x, &[id]).unwrap();
    let (worst, _) = differences(&want, tape.value(id).unwrap());
    assert!(worst < 2e-5, "fused against taped: off by {worst:e}");
    for &isa in &isas[1..] {
        let m = model(isa);
        let got = m
            .run_float(&x, &[m.resolve(head).unwrap()])
            .unwrap()
            .remove(0);
        let (worst, _) = differences(&got, &want);
        assert!(
            worst < 2e-5,
            "{} against {}: off by {worst:e}",
            isa.name(),
            isas[0].name()
        );
    }
}

/// Winograd and im2col convolutions, max pooling. The gradient's tolerance is wide: a rounding
/// difference that swaps which of two nearly equal values a 2×2 max pool keeps sends that
/// window's gradient to the other position, and the swap spreads through the layers below (one
/// swap in block5_pool between the AVX-512 and AVX2 routes moved the input gradient by 1.3 %
/// in L2 on this input; a wrong kernel moves it by 100 %).
#[test]
fn vgg16_agrees_across_paths() {
    agree_across_paths(
        "vgg16_tumor.onnx",
        &[1, 240, 240, 3],
        &["block1_conv2", "block3_conv3", "block5_conv3"],
        1,
        5e-2,
    );
}

/// `relu(conv3x3(x, w) + b)` with padding 1, in f64: `x` is `n × c × h × w`, `w` is
/// `m × c × 3 × 3`.
fn conv_relu_f64(
    x: &[f64],
    (n, c, h, wd): (usize, usize, usize, usize),
    w: &[f32],
    b: &[f32],
) -> Vec<f64> {
    let m = b.len();
    let mut out = vec![0.0f64; n * m * h * wd];
    for (i, o) in out.iter_mut().enumerate() {
        let (img, mi, oy, ox) = (i / (m * h * wd), i / (h * wd) % m, i / wd % h, i % wd);
        let mut s = b[mi] as f64;
        for ci in 0..c {
            for (r, q) in (0..9).map(|k| (k / 3, k % 3)) {
                let (iy, ix) = ((oy + r) as isize - 1, (ox + q) as isize - 1);
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                    s += x[((img * c + ci) * h + iy as usize) * wd + ix as usize]
                        * w[((mi * c + ci) * 3 + r) * 3 + q] as f64;
                }
            }
        }
        *o = s.max(0.0);
    }
    out
}

/// The input gradient of `conv3x3(x, w)` (padding 1) for the output gradient `dy`
/// (`n × m × h × w`), in f64.
fn conv_input_grad_f64(
    dy: &[f64],
    (n, m, h, wd): (usize, usize, usize, usize),
    w: &[f32],
    c: usize,
) -> Vec<f64> {
    let mut dx = vec![0.0f64; n * c * h * wd];
    for (i, &g) in dy.iter().enumerate() {
        let (img, mi, oy, ox) = (i / (m * h * wd), i / (h * wd) % m, i / wd % h, i % wd);
        for ci in 0..c {
            for (r, q) in (0..9).map(|k| (k / 3, k % 3)) {
                let (iy, ix) = ((oy + r) as isize - 1, (ox + q) as isize - 1);
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                    dx[((img * c + ci) * h + iy as usize) * wd + ix as usize] +=
                        g * w[((mi * c + ci) * 3 + r) * 3 + q] as f64;
                }
            }
        }
    }
    dx
}

/// The largest difference of `got` from the f64 `want`, relative to `want`'s largest magnitude.
fn off_by(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
    assert!(scale > 0.0, "a meaningful value");
    let worst = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    worst / scale
}

/// The Winograd route of every path against f64 references, on a generated two-layer network
/// `x → Conv → ReLU → Conv → ReLU` (16 → 24 → 16 channels, 3×3, padding 1): the forward pass
/// (input and output transforms with bias and clamp) and the input gradient (the flipped
/// convolutions, the second with the first ReLU's mask in its epilogue). Widths of 70, 32 and
/// 9 columns give rows of 18, 8 and 3 tiles: whole groups of 8 and 16 tiles inside the image,
/// groups cut by the left and right padding, and partial groups, on every vector width.
#[test]
fn winograd_layers_match_f64_on_every_path() {
    use common::grad::{Net, Rng};
    use convscope_onnx::AttributeProto as A;
    let (c, m) = (16, 24);
    for (n, h, wd) in [(2, 13, 70), (1, 32, 32), (4, 9, 9)] {
        let mut rng = Rng::new(0x5eed + wd as u64);
        let (wa, ba) = (rng.vec(m * c * 9, -0.2, 0.2), rng.vec(m, -0.1, 0.3));
        let (wb, bb) = (rng.vec(c * m * 9, -0.2, 0.2), rng.vec(c, -0.1, 0.3));
        let x: Vec<f32> = rng.vec(n * c * h * wd, -1.0, 1.0);
        let seed: Vec<f32> = rng.vec(n * c * h * wd, -1.0, 1.0);
        let pads = || vec![A::ints("pads", &[1, 1, 1, 1])];
        let mut net = Net::new(&[n, c, h, wd], 13);
        net.f("wa", &[m, c, 3, 3], &wa)
            .f("ba", &[m], &ba)
            .f("wb", &[c, m, 3, 3], &wb)
            .f("bb", &[c], &bb)
            .node("Conv", &["x", "wa", "ba"], &["za"], pads())
            .node("Relu", &["za"], &["ha"], vec![])
            .node("Conv", &["ha", "wb", "bb"], &["zb"], pads())
            .node("Relu", &["zb"], &["y"], vec![]);
        // The forward pass in f64 from the same weights.
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let ha64 = conv_relu_f64(&x64, (n, c, h, wd), &wa, &ba);
        let y64 = conv_relu_f64(&ha64, (n, m, h, wd), &wb, &bb);
        let xt = Tensor::new(vec![n, c, h, wd], x.clone()).unwrap();
        for isa in isas() {
            let model = net.build().unwrap().with_config(ExecConfig {
                isa,
                ..ExecConfig::default()
            });
            let what = format!("{}: n {n}, {h}×{wd}", isa.name());
            let (ha, y) = (model.resolve("ha").unwrap(), model.outputs()[0]);
            let Value::Float(out) = model.run(&xt, &[y]).unwrap().remove(0) else {
                panic!("a float output")
            };
            let off = off_by(out.data(), &y64);
            assert!(off < 2e-5, "{what}: inference output off by {off:e}");
            // The input gradient of Σ seed ⊙ y, masked by the engine's own activations (a
            // value at a ReLU's kink may round to either side).
            let tape = model.forward(&xt, &[ha, y]).unwrap();
            let off = off_by(tape.value(y).unwrap().data(), &y64);
            assert!(off < 2e-5, "{what}: taped output off by {off:e}");
            let masked = |g: &[f64], act: &Tensor| -> Vec<f64> {
                g.iter()
                    .zip(act.data())
                    .map(|(&g, &a)| if a > 0.0 { g } else { 0.0 })
                    .collect()
            };
            let yv = tape.value(y).unwrap().clone();
            let hav = tape.value(ha).unwrap().clone();
            let seed64: Vec<f64> = seed.iter().map(|&v| v as f64).collect();
            let dha = conv_input_grad_f64(&masked(&seed64, &yv), (n, c, h, wd), &wb, m);
            let dx64 = conv_input_grad_f64(&masked(&dha, &hav), (n, m, h, wd), &wa, c);
            let seed_t = Tensor::new(vec![n, c, h, wd], seed.clone()).unwrap();
            let dx = tape.backward(vec![(y, seed_t)], &[]).unwrap().input;
            let off = off_by(dx.data(), &dx64);
            assert!(off < 5e-5, "{what}: input gradient off by {off:e}");
        }
    }
}
