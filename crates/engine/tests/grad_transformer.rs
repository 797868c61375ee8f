//! The ops transformer and ConvNeXt exports need (LayerNormalization, Where, Expand, ScatterND,
//! Mod, Gelu, and the boolean and index ops that build masks and shapes): finite-difference
//! checks of every gradient they pass, and forward values of each on a small generated model.

mod common;

use common::grad::*;
use convscope_engine::Tensor;
use convscope_onnx::AttributeProto as A;

// ---------------------------------------------------------------------------------------------
// Gradients
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_layer_norm() {
    let mut f = Family::default();
    // ConvNeXt / ViT form: the last axis, with scale and bias.
    f.case("layer_norm_last_axis", |rng| {
        let mut n = Net::new(&XS, 17);
        n.rand(rng, "s", &[5], 0.5, 1.5)
            .rand(rng, "b", &[5], -1.0, 1.0)
            .node(
                "LayerNormalization",
                &["x", "s", "b"],
                &["y"],
                vec![A::int("axis", -1), A::float("epsilon", 1e-5)],
            );
        (n, xin(rng, &XS))
    });
    // Over the three trailing axes, no bias, a scale broadcast along them.
    f.case("layer_norm_axis1_no_bias", |rng| {
        let mut n = Net::new(&XS, 17);
        n.rand(rng, "s", &[4, 1], 0.5, 1.5).node(
            "LayerNormalization",
            &["x", "s"],
            &["y"],
            vec![A::int("axis", 1)],
        );
        (n, xin(rng, &XS))
    });
    f.case("layer_norm_axis2", |rng| {
        let mut n = Net::new(&XS, 17);
        n.rand(rng, "s", &[4, 5], 0.5, 1.5)
            .rand(rng, "b", &[4, 5], -1.0, 1.0)
            .node(
                "LayerNormalization",
                &["x", "s", "b"],
                &["y"],
                vec![A::int("axis", 2)],
            );
        (n, xin(rng, &XS))
    });
    f.finish();
}

/// Opset 20's Gelu, exact and tanh, over ±3 (both tails and the bend around zero).
#[test]
fn grad_gelu() {
    let mut f = Family::default();
    for approximate in ["none", "tanh"] {
        f.case(&format!("gelu_{approximate}"), |rng| {
            let mut n = Net::new(&XS, 20);
            n.node(
                "Gelu",
                &["x"],
                &["y"],
                vec![A::string("approximate", approximate)],
            );
            (n, xscaled(rng, &XS, 3.0))
        });
    }
    // The attribute left out means "none".
    f.case("gelu_default", |rng| {
        let mut n = Net::new(&XS, 20);
        n.node("Gelu", &["x"], &["y"], vec![]);
        (n, xscaled(rng, &XS, 3.0))
    });
    f.finish();
}

#[test]
fn grad_mask_and_index_ops() {
    let mut f = Family::default();
    // Where with the input on both sides and a broadcast condition: each branch's gradient is
    // masked and summed back to its own shape.
    f.case("where_both_branches", |rng| {
        let mut n = Net::new(&XS, 17);
        n.i("c", &[4, 1], &[1, 0, 0, 1])
            .rand(rng, "k", &[5], -1.0, 1.0)
            .node("Mul", &["x", "k"], &["xk"], vec![])
            .node("Where", &["c", "x", "xk"], &["y"], vec![]);
        (n, xin(rng, &XS))
    });
    // Where whose value input broadcasts up (a [5] row selected into [2, 3, 4, 5]).
    f.case("where_broadcast_value", |rng| {
        let mut n = Net::new(&[1, 1, 1, 5], 17);
        n.i("c", &[2, 1, 4, 1], &[1, 0, 1, 1, 0, 1, 1, 0])
            .rand(rng, "z", &[3, 1, 1], -1.0, 1.0)
            .node("Where", &["c", "x", "z"], &["y"], vec![]);
        (n, xin(rng, &[1, 1, 1, 5]))
    });
    // ViT's class token: a [1, 1, C] parameter expanded to the batch.
    f.case("expand_batch", |rng| {
        let mut n = Net::new(&[1, 1, 1, 5], 17);
        n.i("shape", &[3], &[3, 4, 1])
            .node("Expand", &["x", "shape"], &["y"], vec![]);
        (n, xin(rng, &[1, 1, 1, 5]))
    });
    // The input scattered into a constant (data gradient from the updates' side).
    f.case("scatter_nd_updates", |rng| {
        let mut n = Net::new(&[1, 1, 2, 5], 17);
        n.rand(rng, "d", &[4, 5], -1.0, 1.0)
            .i("idx", &[2, 1], &[3, 1])
            .i("rows", &[2], &[2, 5])
            .node("Reshape", &["x", "rows"], &["u"], vec![])
            .node("ScatterND", &["d", "idx", "u"], &["y"], vec![]);
        (n, xin(rng, &[1, 1, 2, 5]))
    });
    // A constant scattered into the input: the replaced elements get no gradient.
    f.case("scatter_nd_data", |rng| {
        let mut n = Net::new(&[1, 1, 4, 5], 17);
        n.rand(rng, "u", &[2], -1.0, 1.0)
            .i("idx", &[2, 4], &[0, 0, 0, 1, 0, 0, 3, -1])
            .node("ScatterND", &["x", "idx", "u"], &["y"], vec![]);
        (n, xin(rng, &[1, 1, 4, 5]))
    });
    f.case("scatter_nd_add", |rng| {
        let mut n = Net::new(&[1, 1, 4, 5], 18);
        n.rand(rng, "u", &[2, 5], -1.0, 1.0)
            .i("idx", &[2, 3], &[0, 0, 2, 0, 0, 2])
            .node(
                "ScatterND",
                &["x", "idx", "u"],
                &["y"],
                vec![A::string("reduction", "add")],
            );
        (n, xin(rng, &[1, 1, 4, 5]))
    });
    // fmod: dividend gradient 1, divisor gradient −trunc(x/y). Divisors stay away from the
    // jumps of the quotient (x/y never within a step of an integer).
    f.case("mod_fmod_both", |rng| {
        let mut n = Net::new(&XS, 17);
        n.f("num", &[1], &[2.55])
            .node("Mul", &["x", "num"], &["xs"], vec![])
            .node("Mod", &["xs", "x"], &["y"], vec![A::int("fmod", 1)]);
        (n, avoid(xin(rng, &XS), &[0.0], 0.3))
    });
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// Forward values
// ---------------------------------------------------------------------------------------------

/// Runs `net` on `x` and returns `y`.
fn run(net: &Net, x: Tensor) -> Tensor {
    let model = net.build().unwrap_or_else(|e| panic!("{e}"));
    let y = model.resolve("y").unwrap();
    model.run_float(&x, &[y]).unwrap().remove(0)
}

#[test]
fn comparisons_not_and_where_select_values() {
    // y = Where(Not(Equal(x, 2)) and (x > 0), x, −1) — the boolean ops a Swin mask is made of.
    let mut n = Net::new(&[1, 1, 1, 5], 17);
    n.f("two", &[], &[2.0])
        .f("zero", &[], &[0.0])
        .f("minus", &[], &[-1.0])
        .node("Equal", &["x", "two"], &["eq"], vec![])
        .node("Not", &["eq"], &["ne"], vec![])
        .node("Greater", &["x", "zero"], &["pos"], vec![])
        .node("And", &["ne", "pos"], &["keep"], vec![])
        .node("Where", &["keep", "x", "minus"], &["y"], vec![]);
    let y = run(
        &n,
        Tensor::new(vec![1, 1, 1, 5], vec![1.0, 2.0, -3.0, 4.0, 0.0]).unwrap(),
    );
    assert_eq!(y.data(), &[1.0, -1.0, -1.0, 4.0, -1.0]);
}

#[test]
fn range_and_integer_mod_shape_arithmetic() {
    // The shape arithmetic of a padded window partition: Range(0, W, 1) mod 3, cast and added.
    let mut n = Net::new(&[1, 1, 1, 7], 17);
    n.i("zero", &[], &[0])
        .i("one", &[], &[1])
        .i("three", &[], &[3])
        .i("idx", &[], &[3])
        .node("Shape", &["x"], &["s"], vec![])
        .node("Gather", &["s", "idx"], &["w"], vec![A::int("axis", 0)])
        .node("Range", &["zero", "w", "one"], &["r"], vec![])
        .node("Mod", &["r", "three"], &["m"], vec![])
        .node("Cast", &["m"], &["mf"], vec![A::int("to", 1)])
        .node("Add", &["x", "mf"], &["y"], vec![]);
    let y = run(&n, Tensor::zeros(&[1, 1, 1, 7]));
    assert_eq!(y.data(), &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0]);
}

#[test]
fn expand_and_scatter_nd_place_values() {
    let mut n = Net::new(&[1, 1, 2, 1], 17);
    n.i("shape", &[2], &[2, 3])
        .i("idx", &[1, 4], &[0, 0, 1, 2])
        .f("u", &[1], &[9.0])
        .node("Expand", &["x", "shape"], &["e"], vec![])
        .node("ScatterND", &["e", "idx", "u"], &["y"], vec![]);
    let y = run(&n, Tensor::new(vec![1, 1, 2, 1], vec![1.0, 2.0]).unwrap());
    assert_eq!(y.shape(), &[1, 1, 2, 3]);
    assert_eq!(y.data(), &[1.0, 1.0, 1.0, 2.0, 2.0, 9.0]);
}

#[test]
fn layer_norm_matches_its_definition() {
    let mut n = Net::new(&[1, 1, 2, 3], 17);
    n.f("s", &[3], &[1.0, 2.0, 0.5])
        .f("b", &[3], &[0.0, 1.0, -1.0])
        .node(
            "LayerNormalization",
            &["x", "s", "b"],
            &["y"],
            vec![A::float("epsilon", 0.0)],
        );
    let y = run(
        &n,
        Tensor::new(vec![1, 1, 2, 3], vec![1.0, 2.0, 3.0, -2.0, 0.0, 2.0]).unwrap(),
    );
    // Row means 2 and 0, standard deviations √(2/3) and √(8/3); both normalise to (−a, 0, a).
    let a = 1.5f32.sqrt();
    let want = [-a, 1.0, 0.5 * a - 1.0, -a, 1.0, 0.5 * a - 1.0];
    for (g, w) in y.data().iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{:?} vs {want:?}", y.data());
    }
}

/// Gelu against onnxruntime's opset-20 Gelu and torch.nn.functional.gelu (values and
/// derivatives) at 130 points in [−12, 12], from `scripts/reference/gelu_reference.py`.
#[test]
fn gelu_matches_onnxruntime_and_torch() {
    let doc = common::load_json("gelu_opset20.json");
    let x = common::f32s(&doc["x"]);
    let n = x.len();
    for approximate in ["none", "tanh"] {
        let mut net = Net::new(&[1, 1, 1, n], 20);
        net.node(
            "Gelu",
            &["x"],
            &["y"],
            vec![A::string("approximate", approximate)],
        );
        let model = net.build().unwrap();
        let y_id = model.resolve("y").unwrap();
        let input = Tensor::new(vec![1, 1, 1, n], x.clone()).unwrap();
        let y = model.run_float(&input, &[y_id]).unwrap().remove(0);
        let tape = model.forward(&input, &[y_id]).unwrap();
        let dx = tape
            .backward(vec![(y_id, Tensor::full(&[1, 1, 1, n], 1.0))], &[])
            .unwrap()
            .input;
        let ort = common::f32s(&doc[format!("ort_{approximate}").as_str()]);
        let torch = common::f32s(&doc[format!("torch_{approximate}").as_str()]);
        let grad = common::f32s(&doc[format!("torch_{approximate}_grad").as_str()]);
        for i in 0..n {
            // 2e-7 of erf's approximation, times |x| up to 12, plus float rounding.
            let tol = 3e-7 * (1.0 + x[i].abs());
            let got = y.data()[i];
            assert!(
                (got - ort[i]).abs() <= tol,
                "{approximate} at {}: {got} vs onnxruntime {}",
                x[i],
                ort[i]
            );
            assert!(
                (got - torch[i]).abs() <= tol,
                "{approximate} at {}: {got} vs torch {}",
                x[i],
                torch[i]
            );
            let d = dx.data()[i];
            assert!(
                (d - grad[i]).abs() <= 1e-6,
                "{approximate}' at {}: {d} vs torch {}",
                x[i],
                grad[i]
            );
        }
    }
}

#[test]
fn gelu_refuses_an_unknown_approximation() {
    let mut n = Net::new(&[1, 1, 1, 2], 20);
    n.node(
        "Gelu",
        &["x"],
        &["y"],
        vec![A::string("approximate", "fast")],
    );
    let e = n.build().err().expect("refused");
    assert!(e.contains("gelu_0") && e.contains("'fast'"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn unsupported_ops_are_listed_together() {
    // Gelu (opset 20) is implemented: only the unknown ops are listed.
    let mut n = Net::new(&[1, 1, 1, 2], 20);
    n.node("Einsum2", &["x"], &["a"], vec![])
        .node("Gelu", &["a"], &["g"], vec![])
        .node("Hardmax2", &["g"], &["b"], vec![])
        .node("Einsum2", &["b"], &["y"], vec![]);
    let Err(e) = n.build() else {
        panic!("unknown ops are refused")
    };
    assert!(e.contains("Einsum2") && e.contains("Hardmax2"), "{e}");
    assert!(!e.contains("Gelu"), "{e}");
}
