//! Finite-difference checks of element-wise ops: activations and math functions,
//! normalisation, softmax, and binary ops with broadcasting.

mod common;

use common::grad::*;
use convscope_engine::Tensor;
use convscope_onnx::AttributeProto as A;

// ---------------------------------------------------------------------------------------------
// Normalisation and element-wise unary ops
// ---------------------------------------------------------------------------------------------

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
