//! Fused routes against unfused ones and finite differences: convolutions with their
//! activation (and the masked input gradient of the next layer), the panel kernel's shapes,
//! and weights computed at run time (never cached), on both convolution routes.

mod common;

use common::grad::*;
use convscope_engine::{ExecConfig, ReluRule, Tensor, ValueId};
use convscope_onnx::AttributeProto as A;

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
