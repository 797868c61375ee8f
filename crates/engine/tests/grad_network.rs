//! A small CNN end to end, gradients with respect to an intermediate value, and negative
//! controls showing the finite-difference check catches wrong gradients.

mod common;

use common::grad::*;
use convscope_engine::{Model, Tensor};
use convscope_onnx::AttributeProto as A;

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
